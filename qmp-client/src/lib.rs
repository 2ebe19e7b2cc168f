//! The async QEMU Machine Protocol (QMP) client, written once for every
//! runtime.
//!
//! All protocol logic lives in [`qmp_proto`]; this crate moves bytes between
//! a socket and its state machine and turns its outputs into futures and
//! streams. It is generic over a small [`Runtime`] trait (a timer, and a
//! reactor that says when a socket is readable or writable), which
//! `qmp-tokio` implements for tokio and `qmp-smol` for async-io. Most
//! programs use one of those two crates, which re-export everything here
//! under their own names (`qmp_tokio::Qmp` is `Qmp<Tokio>`).
//!
//! # The loop you write
//!
//! ```no_run
//! use qmp_client::typed::{commands, events, Event as _};
//! use qmp_client::{ConnectOptions, Qmp, Runtime};
//! use std::time::Duration;
//!
//! async fn run<R: Runtime>() -> Result<(), qmp_client::Error> {
//!     let qmp = Qmp::<R>::connect_unix("/tmp/qmp.sock", ConnectOptions::default()).await?;
//!     println!("QEMU {}", qmp.greeting().version);
//!
//!     // Typed, with a deadline of its own.
//!     let status = qmp.execute(&commands::QueryStatus).timeout(Duration::from_secs(5)).await?;
//!     println!("running: {}", status.running);
//!
//!     // Race-free: the cursor is taken before the command that causes the event.
//!     let cursor = qmp.cursor();
//!     qmp.execute(&commands::Stop).await?;
//!     qmp.wait_for(cursor, &events::Stop::matcher(), Duration::from_secs(5)).await?;
//!
//!     // Any command by name, raw or decoded.
//!     let nodes: serde_json::Value = qmp.call("query-named-block-nodes", &()).decode().await?;
//!     println!("{nodes:#}");
//!     Ok(())
//! }
//! ```
//!
//! # Who reads the socket
//!
//! Nothing runs in the background: no task is spawned, no thread started,
//! no timer ticks. Whoever waits on the connection reads it:
//!
//! - A call writes its command itself, with a non-blocking write under the
//!   connection's lock; what the socket does not take at once is written
//!   by whoever waits next.
//! - While it waits for its reply, a call (like an event wait, a
//!   subscription waiting for its next event, or [`Qmp::closed`]) is woken
//!   by the runtime's reactor when the socket is readable, reads what has
//!   come, routes it (its own reply, others' replies, events to the
//!   history and the subscribers) and looks for its answer. The two oldest
//!   waiters do this, so a lone caller reads its own reply, woken directly
//!   by the reactor, as a hand-written client would.
//! - A connection that nobody waits on costs nothing: QEMU's events stay
//!   in the socket until someone waits (or takes a [`cursor`](Qmp::cursor),
//!   which reads what is there first), and an end is noticed then. A
//!   program that wants every event recorded as it comes keeps a
//!   subscription, or a task awaiting [`Qmp::closed`].
//!
//! Every read and write is one non-blocking system call made under the
//! lock together with the routing of what it moved, never across an
//! await: a future dropped at any await point leaves nothing half done.
//! A future that is polled once and then neither polled nor dropped may
//! hold up the calls behind it, as it would on any shared stream: await
//! what you start, or drop it.
//!
//! # The guest agent
//!
//! [`agent::GuestAgent`] talks to the QEMU guest agent (QGA) on the same
//! engine: synced past leftovers, a deadline on every call, commands one
//! at a time (see the [`agent`] module).
//!
//! # Errors
//!
//! [`Error`] tells apart the QMP error reply (with its class), the
//! connection's end with its cause, a timeout, a local rejection.
//! [`Error::is_socket_not_available`] and [`Error::is_socket_closed`] tell a
//! socket nobody serves from a connection that ended.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod agent;
mod answer;
mod call;
mod dial;
mod engine;
mod error;
pub mod fd;
mod notice_queue;
mod options;
mod qmp;
mod record;
pub mod runtime;
mod subscription;
pub mod typed;

pub use call::Call;
pub use error::Error;
pub use options::ConnectOptions;
pub use qmp::Qmp;
pub use qmp_proto::{
    ClientConfig, Cursor, DroppedReplies, End, ErrorClass, Event, EventFilter, Greeting, Notice,
    ProtocolError, QmpError, RawJson, RouterConfig, SendError, Sequenced, Timestamp, Version,
    VersionTriple,
};
pub use record::TranscriptSink;
pub use runtime::{Direction, Moved, Runtime, Socket};
pub use subscription::{SubscribeOptions, Subscription};
