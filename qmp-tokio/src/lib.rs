//! A QEMU Machine Protocol (QMP) client for tokio, over Unix and TCP sockets.
//!
//! All protocol logic lives in [`qmp_proto`]; this crate moves bytes between
//! a socket and its state machine, and turns its outputs into futures and
//! streams. `connect` reads the greeting and negotiates in its own future;
//! then one task per connection reads the socket and feeds the machine. A
//! command is written by the call that issues it, with a write that never
//! waits, under the connection's lock; whatever the socket does not take
//! at once is left to the connection's task. A call's future only ever
//! waits for its reply, so dropping it at any point corrupts nothing.
//!
//! ```
//! use qmp_tokio::{ConnectOptions, EventFilter, Qmp};
//! use std::time::Duration;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), qmp_tokio::Error> {
//! # use qmp_tests::mock::{docs_qemu, Mock};
//! # let (socket, _qemu) = Mock::listen(Default::default(), docs_qemu);
//! // The socket of `-qmp unix:/tmp/qmp.sock,server=on,wait=off`, say (here
//! // a mock QEMU's, so that this example runs as a test).
//! let qmp = Qmp::connect_unix(&socket, ConnectOptions::default()).await?;
//! println!("QEMU {}", qmp.greeting().version);
//!
//! #[derive(serde::Deserialize)]
//! struct Status { status: String }
//! let status: Status = qmp.execute_as("query-status", &()).await?;
//! println!("status: {}", status.status);
//! # assert_eq!(status.status, "running");
//!
//! // Race-free: the cursor is taken before the command that causes the event.
//! let cursor = qmp.cursor();
//! qmp.execute_raw("stop", &()).await?;
//! let stop = qmp.wait_for_event(cursor, EventFilter::name("STOP"), Duration::from_secs(5)).await?;
//! println!("stopped at {:?}", stop.event.timestamp);
//! # assert_eq!(stop.event.name, "STOP");
//! # Ok(()) }
//! ```
//!
//! Errors are [`Error`]: the QMP error reply (with its class), the
//! connection's end with its cause, a timeout, a local rejection.
//! [`Error::is_socket_not_available`] and [`Error::is_socket_closed`] tell a
//! socket nobody serves from a connection that ended.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod connection;
mod shared;
mod subscription;
mod transport;
pub mod typed;

pub use connection::Qmp;
pub use qmp_proto::{
    ClientConfig, ConnectOptions, Cursor, DroppedReplies, End, Error, ErrorClass, Event,
    EventFilter, Greeting, Notice, QmpError, RawJson, SendError, Sequenced, Timestamp,
};
pub use subscription::Subscription;

/// The README's examples, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExamples;
