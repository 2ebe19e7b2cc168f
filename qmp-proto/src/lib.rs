//! The QEMU Machine Protocol (QMP) as pure state machines: bytes in, values
//! out, with no I/O.
//!
//! This crate does not open sockets, read clocks, spawn threads or know about
//! async runtimes. It turns the bytes your program read from a QMP socket
//! into greetings, replies and events, and tells you which bytes to write
//! back. That makes it usable in any event loop (a blocking socket, `poll`,
//! mio, an async runtime) and on targets without `std`. The async client,
//! `qmp-client` (on tokio as `qmp-tokio`, on async-io as `qmp-smol`), drives
//! it over real sockets for you.
//!
//! # The loop you write
//!
//! A [`Client`] is driven by one rule: **after every input, drain
//! [`poll_output`](Client::poll_output) until it returns `None`, then write
//! everything [`poll_transmit`](Client::poll_transmit) gives.** Inputs are
//! [`receive`](Client::receive) (bytes read), [`receive_eof`](Client::receive_eof)
//! (the peer closed) and commands ([`execute`](Client::execute)).
//!
//! Here the socket is replaced by a [`Server`], this crate's mock QEMU, so
//! the example runs anywhere:
//!
//! ```
//! use qmp_proto::{Client, ClientConfig, ClientOutput, Server, ServerConfig, ServerOutput};
//!
//! let mut client = Client::new(ClientConfig::default());
//! let mut server = Server::new(ServerConfig::default());
//!
//! // Commands may be issued at once: they wait until negotiation is done.
//! let id = client.execute("query-status", &()).unwrap();
//!
//! let mut status = None;
//! while status.is_none() {
//!     // Server to client: what QEMU would have written on the socket.
//!     while let Some(bytes) = server.poll_transmit() {
//!         client.receive(&bytes);
//!     }
//!     while let Some(output) = client.poll_output() {
//!         match output {
//!             ClientOutput::Greeting(greeting) => println!("QEMU {}", greeting.version),
//!             ClientOutput::Ready { oob } => println!("negotiated, oob: {oob}"),
//!             ClientOutput::Reply(reply) if reply.id == id => status = Some(reply.result),
//!             ClientOutput::Reply(_) => {}
//!             ClientOutput::Event(event) => println!("event {}", event.name),
//!             ClientOutput::UnattributedError(error) => eprintln!("server error: {error}"),
//!             ClientOutput::End(why) => panic!("connection ended: {why}"),
//!         }
//!     }
//!     // Client to server: what we would write on the socket.
//!     while let Some(bytes) = client.poll_transmit() {
//!         server.receive(&bytes);
//!     }
//!     // The mock answers every command it is given.
//!     while let Some(output) = server.poll_output() {
//!         if let ServerOutput::Command(command) = output {
//!             let status = serde_json::json!({"status": "running", "running": true});
//!             server.reply_ok(&command, &status).unwrap();
//!         }
//!     }
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct Status { status: String, running: bool }
//! let status: Status = status.unwrap().expect("no QMP error").decode().unwrap();
//! assert_eq!(status.status, "running");
//! assert!(status.running);
//! ```
//!
//! The crate's `examples/blocking.rs` runs the same loop over a blocking
//! `std::os::unix::net::UnixStream` against a real QEMU.
//!
//! # Errors
//!
//! Three kinds of failure are kept apart:
//!
//! - [`SendError`]: a command was not accepted (the connection is closed,
//!   the queue is full, OOB was not negotiated, the arguments are not an
//!   object, or do not fit the server's schema when checked with
//!   [`typed::schema::Schema::check_call`]). Nothing was sent; the
//!   connection is unaffected.
//! - [`ProtocolError`]: the server broke the protocol (a bad greeting,
//!   invalid JSON, a message over the size limit, EOF inside a message).
//!   Fatal: it arrives once, as the reason in [`ClientOutput::End`].
//! - [`QmpError`]: the server answered a command with an error. This is an
//!   ordinary result, in [`Reply::result`], with the [`ErrorClass`] to
//!   `match` on.
//!
//! Replies whose id is unknown are dropped and counted
//! ([`Client::unknown_replies`]). An error reply without an id is QEMU's
//! answer to a command it could not parse, which gets no other reply: it
//! answers the command left once the others on the wire when it came have
//! their replies (at once, with one command in flight), so no command waits
//! forever or keeps its slot of the window. With none in flight it comes as
//! [`ClientOutput::UnattributedError`]. Neither ends the connection.
//!
//! Nor do two odd starts met in the field: an event before the greeting
//! (some QEMU versions send one) is given out as any event, and a greeting
//! whose `version` is not shaped as QEMU's (a QMP server that is not QEMU)
//! is taken, its [`Version`] kept whole with [`Version::qemu`] `None`.
//!
//! # Limits
//!
//! - A message may be at most [`ClientConfig::max_message_size`] bytes
//!   (default 16 MiB; QEMU's largest routine reply is about 250 KB). Past
//!   it the connection ends with [`ProtocolError::MessageTooLarge`] and the
//!   rest of the message is not stored.
//! - At most [`ClientConfig::max_in_flight`] in-band commands are on the wire
//!   at once (default 1024, and at most [`OOB_QUEUE_LIMIT`], 8, with OOB
//!   negotiated: what QEMU queues then); the rest wait in a
//!   queue of at most [`ClientConfig::max_queued`] commands, past which
//!   [`SendError::QueueFull`] is returned. Out-of-band commands skip both.
//! - A [forgotten](Client::forget) command keeps its place in the window
//!   until its reply comes (the server is still working on it).
//!
//! # What is never done
//!
//! - No I/O: no sockets, files, clocks, threads, timers or async. The
//!   [`Server`] takes event timestamps from its caller.
//! - No panics on any input: every byte sequence from the peer ends in an
//!   output or a typed error.
//! - No rescanning: bytes are scanned once however the stream is chunked,
//!   and the outputs are the same for any chunking.
//! - No copy of payloads: [`RawJson`] values share the received buffer and
//!   are decoded only when asked ([`RawJson::decode`], [`Event::decode`]).
//!
//! # Features
//!
//! - `std` (default): `std::error::Error` impls and the std-backed
//!   speedups of the dependencies. Without it the crate is `no_std` with
//!   `alloc`.
//! - `qapi` (implies `std`): `typed::qapi`, every command and event of the
//!   generated `qapi-qmp` crate.
//!
//! # Typed commands and events
//!
//! [`typed`] has the commands and events most programs use as Rust types
//! (`typed::commands::QueryStatus`, `typed::events::JobStatusChange`, ...),
//! matchers for waiting on events, transactions and the connected QEMU's
//! schema; [`Client::execute_command`] issues a typed command here.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod agent;
mod client;
mod error;
pub mod framing;
mod json;
mod message;
mod pretty;
pub mod router;
mod server;
pub mod transcript;
pub mod typed;

pub use client::{
    Client, ClientConfig, ClientOutput, DroppedReplies, Reply, RequestId, OOB_QUEUE_LIMIT,
};
pub use error::{End, ProtocolError, SendError};
pub use framing::DEFAULT_MAX_MESSAGE_SIZE;
pub use json::RawJson;
pub use message::{
    Capability, Command, ErrorClass, Event, Greeting, QmpError, Timestamp, Version, VersionTriple,
};
pub use router::{
    Cursor, EventFilter, Failure, Notice, Router, RouterConfig, Sequenced, SubscribeFrom,
};
pub use server::{Server, ServerConfig, ServerOutput};
