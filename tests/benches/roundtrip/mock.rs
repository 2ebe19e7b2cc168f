//! The mock QEMU every case talks to: qmp-mock's [`MockQemu`] on a Unix
//! socket, with a handler per command the cases send. Its cost is on both
//! sides of every ratio, so the answers are made ready once:
//!
//! - `query-status` (and any other command) is answered with QEMU 10.0's
//!   answer on a running VM, JSON text encoded once
//!   ([`Action::ReplyText`]); the server role still parses each command and
//!   echoes the client's id.
//! - `x-bench-events` is answered with `{}` and then a burst of [`BURST`]
//!   events, encoded once by a negotiated `Server` and written as one
//!   [`Action::Raw`] after the reply.
//!
//! A `MockQemu` serves its connections one after the other, as QEMU's
//! monitor does, so every subject that keeps a connection open has a mock
//! of its own. Each connection's thread reads its socket itself and writes
//! the answers to what one read brought in one write.

use qmp_mock::{Action, MockQemu, RawJson};
use qmp_proto::{Server, ServerConfig, Timestamp};
use serde_json::{json, Value};
use std::path::Path;

/// Events per `x-bench-events` command: the default subscriber capacity
/// (`ConnectOptions::subscriber_capacity`, 256), so a subscriber that reads
/// after the whole burst arrived still cannot lag.
pub const BURST: usize = 256;

/// The command that asks for a burst of events.
pub const EVENTS_COMMAND: &str = "x-bench-events";

/// A running mock QEMU; its socket lives in a private temporary directory,
/// removed (and the mock stopped) when it is dropped.
pub struct MockServer(MockQemu);

impl MockServer {
    pub fn start() -> MockServer {
        // QEMU 10.0's answer on a running VM, encoded once.
        let status =
            RawJson::from_text(r#"{"status": "running", "running": true}"#).expect("status JSON");
        let otherwise = status.clone();
        let empty = RawJson::from_text("{}").expect("empty JSON");
        let burst = encode_burst();
        let qemu = MockQemu::builder()
            .on("query-status", move |_| {
                vec![Action::ReplyText(status.clone())]
            })
            .on(EVENTS_COMMAND, move |_| {
                vec![Action::ReplyText(empty.clone()), Action::Raw(burst.clone())]
            })
            .otherwise(move |_| vec![Action::ReplyText(otherwise.clone())])
            .listen()
            .expect("start the mock QEMU");
        MockServer(qemu)
    }

    pub fn path(&self) -> &Path {
        self.0.path().expect("the mock listens on a Unix socket")
    }
}

/// [`BURST`] events as a negotiated `Server` writes them.
fn encode_burst() -> Vec<u8> {
    let mut server = Server::new(ServerConfig::default());
    while server.poll_transmit().is_some() {}
    server.receive(br#"{"execute": "qmp_capabilities"}"#);
    while server.poll_output().is_some() {}
    while server.poll_transmit().is_some() {}
    let data: Value = json!({"type": "commit", "id": "job0", "status": "running"});
    let mut burst = Vec::new();
    for i in 0..BURST as i64 {
        let at = Timestamp {
            seconds: 1_764_000_000 + i,
            microseconds: 123_456,
        };
        let sent = server
            .send_event("JOB_STATUS_CHANGE", &data, at)
            .expect("event");
        assert!(sent);
        while let Some(bytes) = server.poll_transmit() {
            burst.extend_from_slice(&bytes);
        }
    }
    burst
}
