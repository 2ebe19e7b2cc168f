//! A QEMU Machine Protocol (QMP) client for tokio, over Unix and TCP sockets.
//!
//! The client is [`qmp_client`]'s, written once for every runtime; this
//! crate gives it tokio's timer and reactor ([`Tokio`]) and re-exports it
//! under its own names: [`Qmp`] is `qmp_client::Qmp<Tokio>`. Nothing is
//! spawned: a call reads its own reply, woken by tokio's reactor, and a
//! connection nobody waits on costs nothing (see
//! [who reads the socket](qmp_client#who-reads-the-socket)).
//!
//! ```
//! use qmp_tokio::{ConnectOptions, EventFilter, Qmp};
//! use std::time::Duration;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), qmp_tokio::Error> {
//! # let qemu = qmp_mock::docs_qemu();
//! # let socket = qemu.path().unwrap();
//! // The socket of `-qmp unix:/tmp/qmp.sock,server=on,wait=off`, say (here
//! // a mock QEMU's, so that this example runs as a test).
//! let qmp = Qmp::connect_unix(&socket, ConnectOptions::default()).await?;
//! println!("QEMU {}", qmp.greeting().version);
//!
//! #[derive(serde::Deserialize)]
//! struct Status { status: String }
//! let status: Status = qmp.call("query-status", &()).decode().await?;
//! println!("status: {}", status.status);
//! # assert_eq!(status.status, "running");
//!
//! // Race-free: the cursor is taken before the command that causes the event.
//! let cursor = qmp.cursor();
//! qmp.call("stop", &()).timeout(Duration::from_secs(5)).await?;
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

mod runtime;
pub mod typed;

pub use qmp_client::{
    Call, ClientConfig, ConnectOptions, Cursor, DroppedReplies, End, Error, ErrorClass, Event,
    EventFilter, Greeting, Notice, ProtocolError, QmpError, RawJson, RouterConfig, SendError,
    Sequenced, SubscribeOptions, Timestamp, TranscriptSink, Version, VersionTriple,
};
pub use runtime::{Tokio, TokioSocket};

/// A QMP connection on tokio (see [`qmp_client::Qmp`] for its methods).
pub type Qmp = qmp_client::Qmp<Tokio>;

/// A stream of events on tokio (see [`qmp_client::Subscription`]).
pub type Subscription = qmp_client::Subscription<Tokio>;

/// A connection to a QEMU guest agent (see [`qmp_client::agent`]).
pub type GuestAgent = qmp_client::agent::GuestAgent<Tokio>;

/// The guest agent's options, commands and results (see
/// [`qmp_client::agent`]).
pub use qmp_client::agent;

/// The README's examples, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExamples;
