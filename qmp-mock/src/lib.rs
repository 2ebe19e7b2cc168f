//! A mock QEMU, for testing code that speaks QMP without starting QEMU.
//!
//! Three levels, from the most common:
//!
//! - [`MockQemu`]: a stand-in QEMU with sensible built-in answers
//!   (`query-version`, `query-status`, `query-commands`, `stop`, `cont`,
//!   `quit`), a handler per command you add, events sent whenever the test
//!   asks, and a record of every command received;
//! - [`Mock`] with a script over a [`Peer`]: every step decided by the
//!   test, with faults: a reply delayed or never sent, the connection
//!   closed in the middle of a reply, an error without id, an oversize
//!   message, garbage, events before the greeting, a slow writer
//!   ([`Action`], [`MockConfig`]);
//! - [`replay`]: a recorded session played back, checking that the client
//!   sends what was recorded (see [`qmp_proto::transcript`] for the
//!   format, and `ConnectOptions::record` of the clients for recording).
//!
//! [`MockAgent`] does the same for the guest agent.
//!
//! The wire is `qmp-proto`'s [`Server`](qmp_proto::Server) role, which
//! speaks as QEMU 10.0 does: the greeting, negotiation, CRLF line ends,
//! QEMU's wording for commands before `qmp_capabilities` and for input it
//! cannot parse, ids echoed byte for byte.
//!
//! # Why a crate of its own, on threads
//!
//! A mock is a dev-dependency: as its own crate it adds nothing to the
//! client that ships. It runs each connection on a std thread with
//! blocking sockets, so one mock serves tokio, smol and blocking clients
//! alike, needs no runtime of its own, and never competes with the code
//! under test for its executor (a mock on the test's own runtime could
//! hide, or cause, the very stalls a test looks for). Test and mock meet
//! through channels and the record, never through sleeps.
//!
//! # The test you write
//!
//! ```
//! use qmp_mock::{Action, MockQemu};
//! use serde_json::json;
//! use std::time::Duration;
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let qemu = MockQemu::builder()
//!         .on("device_del", |command| {
//!             let id: String = command
//!                 .decode_arguments::<serde_json::Value>()
//!                 .ok()
//!                 .and_then(|arguments| Some(arguments["id"].as_str()?.to_string()))
//!                 .unwrap_or_default();
//!             vec![
//!                 Action::ok(json!({})),
//!                 Action::event("DEVICE_DELETED", json!({"device": id, "path": "/machine/peripheral/x"})),
//!             ]
//!         })
//!         .listen()?;
//!
//!     // The code under test: connects, unplugs, waits for the event.
//!     let qmp = qmp_tokio::Qmp::connect_unix(qemu.path().unwrap(), Default::default()).await?;
//!     let cursor = qmp.cursor();
//!     qmp.call("device_del", &json!({"id": "disk1"})).await?;
//!     let deleted = qmp
//!         .wait_for_event(cursor, qmp_tokio::EventFilter::name("DEVICE_DELETED"), Duration::from_secs(5))
//!         .await?;
//!     let data: serde_json::Value = deleted.event.decode()?;
//!     assert_eq!(data["device"], "disk1");
//!
//!     // What QEMU was asked, in order.
//!     assert_eq!(qemu.command_names(), ["device_del"]);
//!     Ok(())
//! }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod agent;
mod peer;
mod qemu;
pub mod replay;
mod scripted;
mod stream;

pub use agent::{AgentAction, MockAgent};
pub use peer::{Action, EventSender, MockConfig, Peer};
pub use qemu::{docs_qemu, MockQemu, MockQemuBuilder};
pub use qmp_proto::{Command, ErrorClass, QmpError, RawJson, ServerConfig, Timestamp};
pub use scripted::Mock;
