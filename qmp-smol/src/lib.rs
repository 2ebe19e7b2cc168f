//! A QEMU Machine Protocol (QMP) client on [`async-io`](async_io), over Unix
//! and TCP sockets: usable from smol or from any other executor.
//!
//! All protocol logic lives in [`qmp_proto`]; this crate moves bytes between
//! a socket and its state machine, and turns its outputs into futures and
//! streams. Callers never touch the socket, so dropping a call's future at
//! any point corrupts nothing.
//!
//! ```no_run
//! use qmp_smol::{ConnectOptions, EventFilter, Qmp};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), qmp_smol::Error> {
//! smol::block_on(async {
//!     let qmp = Qmp::connect_unix("/tmp/qmp.sock", ConnectOptions::default()).await?;
//!     println!("QEMU {}", qmp.greeting().version);
//!
//!     #[derive(serde::Deserialize)]
//!     struct Status { status: String }
//!     let status: Status = qmp.execute_as("query-status", &()).await?;
//!     println!("status: {}", status.status);
//!
//!     // Race-free: the cursor is taken before the command that causes the event.
//!     let cursor = qmp.cursor();
//!     qmp.execute_raw("stop", &()).await?;
//!     let stop = qmp.wait_for_event(cursor, EventFilter::name("STOP"), Duration::from_secs(5)).await?;
//!     println!("stopped at {:?}", stop.event.timestamp);
//!
//!     // Commands from many tasks share the one connection.
//!     let tasks: Vec<_> = (0..8)
//!         .map(|_| {
//!             let qmp = qmp.clone();
//!             smol::spawn(async move { qmp.execute_raw("query-name", &()).await })
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
//! # Where the socket is driven: one thread per connection
//!
//! async-io has a reactor and timers but no spawner, and this crate does not
//! pick an executor for you. Each connection therefore gets one small
//! thread (named `qmp-smol`) that runs [`async_io::block_on`] over its
//! *driver*: it dials the socket, then reads it into the router and writes
//! what the router has to send, until the connection ends. The handles you
//! hold ([`Qmp`], [`Subscription`]) only lock the router and wait on
//! channels, so they work from smol, from `async_io::block_on`, or from any
//! executor at all, and need nothing spawned by you.
//!
//! The alternative, handing back a driver future for the caller to spawn (as
//! hyper does), would change the signatures of `connect_*` from those of
//! `qmp-tokio` and make a connection that nobody spawns hang silently; since
//! connecting must already make progress within its timeout, a driver that
//! runs on its own is the simpler contract. The cost is one mostly idle
//! thread per connection, which is small next to the QEMU process it talks
//! to.
//!
//! The thread exits when the connection ends: when QEMU closes the socket,
//! on [`Qmp::close`], or when the last [`Qmp`] clone is dropped (the socket
//! is half-closed and the driver stops). A connect that is given up (dropped
//! or timed out) closes the half-made connection the same way; a TCP dial
//! still in progress then ends at the operating system's own timeout.
//!
//! # Errors
//!
//! Errors are [`Error`]: the QMP error reply (with its class), the
//! connection's end with its cause, a timeout, a local rejection.
//! [`Error::is_socket_not_available`] and [`Error::is_socket_closed`] tell a
//! socket nobody serves from a connection that ended.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod connection;
mod driver;
mod shared;
mod subscription;
pub mod typed;

pub use connection::Qmp;
pub use qmp_proto::{
    ClientConfig, ConnectOptions, Cursor, DroppedReplies, End, Error, ErrorClass, Event,
    EventFilter, Greeting, Notice, QmpError, RawJson, SendError, Sequenced, Timestamp,
};
pub use subscription::Subscription;
