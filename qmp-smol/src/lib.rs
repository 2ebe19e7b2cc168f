//! A QEMU Machine Protocol (QMP) client on [`async-io`](async_io), over Unix
//! and TCP sockets: usable from smol or from any other executor.
//!
//! All protocol logic lives in [`qmp_proto`]; this crate moves bytes between
//! a socket and its state machine, and turns its outputs into futures and
//! streams. A call reads the socket while it waits, but only in whole
//! non-blocking reads routed under the connection's lock, so dropping a
//! call's future at any point corrupts nothing (see [below](#where-the-socket-is-driven)).
//!
//! ```
//! use qmp_smol::{ConnectOptions, EventFilter, Qmp};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), qmp_smol::Error> {
//! # use qmp_tests::mock::{docs_qemu, Mock};
//! # let (socket, _qemu) = Mock::listen(Default::default(), docs_qemu);
//! // The socket of `-qmp unix:/tmp/qmp.sock,server=on,wait=off`, say (here
//! // a mock QEMU's, so that this example runs as a test).
//! smol::block_on(async {
//!     let qmp = Qmp::connect_unix(&socket, ConnectOptions::default()).await?;
//!     println!("QEMU {}", qmp.greeting().version);
//!
//!     #[derive(serde::Deserialize)]
//!     struct Status { status: String }
//!     let status: Status = qmp.execute_as("query-status", &()).await?;
//!     println!("status: {}", status.status);
//! #     assert_eq!(status.status, "running");
//!
//!     // Race-free: the cursor is taken before the command that causes the event.
//!     let cursor = qmp.cursor();
//!     qmp.execute_raw("stop", &()).await?;
//!     let stop = qmp.wait_for_event(cursor, EventFilter::name("STOP"), Duration::from_secs(5)).await?;
//!     println!("stopped at {:?}", stop.event.timestamp);
//! #     assert_eq!(stop.event.name, "STOP");
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
//! # Where the socket is driven
//!
//! async-io has a reactor and timers but no spawner, and this crate does not
//! pick an executor for you; it still needs nothing spawned by you, and works
//! from smol, from `async_io::block_on`, or from any executor at all. The
//! socket is read by whoever waits on the connection, and otherwise by one
//! background thread for the whole process:
//!
//! - **Connecting runs on your task.** `connect_*` dials, reads the
//!   greeting, sends `qmp_capabilities` and reads its reply in the
//!   connect future itself, all within the connect timeout. Under
//!   `smol::block_on` your thread runs async-io's reactor while it waits,
//!   so the kernel wakes it directly when QEMU answers.
//! - **A call reads the socket while it waits.** The first waiting call
//!   (or event wait) takes the connection's *read turn*: it waits until the
//!   socket is readable, then reads what is there without blocking, routes
//!   it to whoever it answers, and finds its own reply without any other
//!   thread involved. Other callers meanwhile wait for their answer to be
//!   handed to them; when the turn's holder is done, the turn goes to the
//!   caller that has waited longest. Every read and write is one
//!   non-blocking system call made under the connection's lock together
//!   with the routing of its bytes, so a future dropped at any await point
//!   leaves nothing half done, and bytes reach the router in order
//!   whoever reads them.
//! - **Nobody waiting: the driver thread.** One thread (named `qmp-smol`,
//!   started by the first connect) serves every connection whose socket no
//!   call is reading: it is woken through async-io, by whichever thread
//!   runs the reactor, when such a socket is readable (an event, the end)
//!   or has room for bytes that did not fit; it never blocks and never runs
//!   the reactor itself. So events are recorded in the history, subscribers
//!   fed, and the end noticed, with nobody polling anything. Commands are
//!   written directly by the task that issues them.
//! - **The watchdog.** While a call holds (or was handed) the read turn,
//!   the driver thread looks at the connection every 10 ms and reads what
//!   is there in its place, in case that call's task is not being polled
//!   (busy, or its future kept aside). When the last waiter is done and
//!   nobody subscribes to events, the driver takes over reading at that
//!   tick rather than at once, which spares a system call on every call of
//!   a busy caller; so a connection nobody waits on may notice an event or
//!   its end up to 10 ms late. The same clock measures the connect timeout
//!   (to 10 ms), so that no async-io timer has to run on the caller's
//!   reactor.
//!
//! The connection closes when QEMU closes the socket, on [`Qmp::close`],
//! or when the last [`Qmp`] clone is dropped: what the socket takes at
//! once is written, the rest dropped (a QEMU that stopped reading cannot
//! keep it open), and the socket is half-closed and released. A connect
//! that is given up (dropped or timed out) closes the half-made
//! connection the same way.
//!
//! # Errors
//!
//! Errors are [`Error`]: the QMP error reply (with its class), the
//! connection's end with its cause, a timeout, a local rejection.
//! [`Error::is_socket_not_available`] and [`Error::is_socket_closed`] tell a
//! socket nobody serves from a connection that ended.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod answer;
mod connection;
mod driver;
mod shared;
mod subscription;
#[cfg(test)]
mod tests;
pub mod typed;

pub use connection::Qmp;
pub use qmp_proto::{
    ClientConfig, ConnectOptions, Cursor, DroppedReplies, End, Error, ErrorClass, Event,
    EventFilter, Greeting, Notice, QmpError, RawJson, SendError, Sequenced, Timestamp,
};
pub use subscription::Subscription;
