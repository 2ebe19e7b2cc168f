//! A QEMU Machine Protocol (QMP) client on [`async-io`](async_io), over Unix
//! and TCP sockets: usable from smol or from any other executor.
//!
//! All protocol logic lives in `qmp_proto`, the engine in [`qmp_client`] (see [below](#where-the-socket-is-driven)).
//!
//! ```
//! use qmp_smol::{ConnectOptions, EventFilter, Qmp};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), qmp_smol::Error> {
//! # let qemu = qmp_mock::docs_qemu();
//! # let socket = qemu.path().unwrap();
//! // The socket of `-qmp unix:/tmp/qmp.sock,server=on,wait=off`, say (here
//! // a mock QEMU's, so that this example runs as a test).
//! smol::block_on(async {
//!     let qmp = Qmp::connect_unix(&socket, ConnectOptions::default()).await?;
//!     println!("QEMU {}", qmp.greeting().version);
//!
//!     #[derive(serde::Deserialize)]
//!     struct Status { status: String }
//!     let status: Status = qmp.call("query-status", &()).decode().await?;
//!     println!("status: {}", status.status);
//! #     assert_eq!(status.status, "running");
//!
//!     // Race-free: the cursor is taken before the command that causes the event.
//!     let cursor = qmp.cursor();
//!     qmp.call("stop", &()).await?;
//!     let stop = qmp.wait_for_event(cursor, EventFilter::name("STOP"), Duration::from_secs(5)).await?;
//!     println!("stopped at {:?}", stop.event.timestamp);
//! #     assert_eq!(stop.event.name, "STOP");
//!
//!     // Commands from many tasks share the one connection.
//!     let tasks: Vec<_> = (0..8)
//!         .map(|_| {
//!             let qmp = qmp.clone();
//!             smol::spawn(async move { qmp.call("query-name", &()).await })
//!         })
//!         .collect();
//!     for task in tasks {
//!         task.await?;
//!     }
//!     Ok(())
//! })
//! # }
//! ```
//!
//! # Where the socket is driven
//!
//! The client is [`qmp_client`]'s, written once for every runtime; this
//! crate gives it async-io's timers and reactor ([`AsyncIo`]) and
//! re-exports it under its own names: [`Qmp`] is
//! `qmp_client::Qmp<AsyncIo>`. It needs no executor of its own and spawns
//! nothing: it works from smol, from `async_io::block_on`, or from any
//! executor at all. A call reads its own reply while it waits, woken by
//! async-io's reactor (under `smol::block_on`, on the caller's own thread),
//! and a connection nobody waits on costs nothing (see
//! [who reads the socket](qmp_client#who-reads-the-socket)).
//!
//! The connection closes when QEMU closes the socket, on [`Qmp::close`](qmp_client::Qmp::close),
//! or when the last [`Qmp`] clone is dropped: what the socket takes at
//! once is written, the rest dropped (a QEMU that stopped reading cannot
//! keep it open), and the socket is shut down and released.
//!
//! # Errors
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
pub use runtime::{AsyncIo, AsyncIoSocket, Sleep};

/// A QMP connection on async-io (see [`qmp_client::Qmp`] for its methods).
pub type Qmp = qmp_client::Qmp<AsyncIo>;

/// A stream of events on async-io (see [`qmp_client::Subscription`]).
pub type Subscription = qmp_client::Subscription<AsyncIo>;

/// A connection to a QEMU guest agent (see [`qmp_client::agent`]).
pub type GuestAgent = qmp_client::agent::GuestAgent<AsyncIo>;

/// The guest agent's options, commands and results (see
/// [`qmp_client::agent`]).
pub use qmp_client::agent;
