//! The mock QEMU every case talks to: `qmp_proto::Server` on a Unix socket,
//! one blocking thread per connection, kept cheap because its cost is on
//! both sides of every ratio.
//!
//! - Replies are pre-encoded (`Server::reply` with a ready `RawJson`); the
//!   server role still parses each command and echoes the client's id.
//! - `x-bench-events` is answered with `{}` and then a burst of
//!   [`BURST`] events, pre-encoded once by a `Server` and written with one
//!   `write` after the reply.
//! - A small pool of threads waits in `accept` on the same listener, so a
//!   connection is served at once even while an earlier one is still
//!   closing (the connect case opens hundreds).

use qmp_proto::{RawJson, Server, ServerConfig, ServerOutput, Timestamp};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Events per `x-bench-events` command: the default subscriber capacity
/// (`ConnectOptions::subscriber_capacity`, 256), so a subscriber that reads
/// after the whole burst arrived still cannot lag.
pub const BURST: usize = 256;

/// The command that asks for a burst of events.
pub const EVENTS_COMMAND: &str = "x-bench-events";

/// Threads accepting connections.
const ACCEPTORS: usize = 8;

/// What `query-status` returns (QEMU 10.0's answer on a running VM).
const STATUS: &str = r#"{"status": "running", "running": true}"#;

/// A running mock server; its socket lives in a private temporary directory.
/// The threads are left to the process's exit.
pub struct MockServer {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

struct Canned {
    status: RawJson,
    empty: RawJson,
    burst: Vec<u8>,
}

impl MockServer {
    pub fn start() -> MockServer {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).expect("bind the mock's socket");
        let canned = Arc::new(Canned {
            status: RawJson::from_text(STATUS).expect("status JSON"),
            empty: RawJson::from_text("{}").expect("empty JSON"),
            burst: encode_burst(),
        });
        for _ in 0..ACCEPTORS {
            let listener = listener.try_clone().expect("clone the listener");
            let canned = canned.clone();
            std::thread::Builder::new()
                .name("mock-qemu".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        match stream {
                            Ok(stream) => serve(stream, &canned),
                            Err(e) => panic!("mock accept: {e}"),
                        }
                    }
                })
                .expect("spawn a mock thread");
        }
        MockServer { _dir: dir, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// [`BURST`] events as a negotiated `Server` writes them.
fn encode_burst() -> Vec<u8> {
    let mut server = Server::new(ServerConfig::default());
    while server.poll_transmit().is_some() {}
    server.receive(br#"{"execute": "qmp_capabilities"}"#);
    while server.poll_output().is_some() {}
    while server.poll_transmit().is_some() {}
    let data = serde_json::json!({"type": "commit", "id": "job0", "status": "running"});
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

/// Serves one connection until the client closes it.
fn serve(mut stream: UnixStream, canned: &Canned) {
    let mut server = Server::new(ServerConfig::default());
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        let mut events = false;
        let mut ended = false;
        while let Some(output) = server.poll_output() {
            match output {
                ServerOutput::Command(command) => match command.name.as_str() {
                    EVENTS_COMMAND => {
                        server.reply(command.id.as_ref(), Ok(&canned.empty));
                        events = true;
                    }
                    _ => server.reply(command.id.as_ref(), Ok(&canned.status)),
                },
                ServerOutput::Negotiated { .. } => {}
                ServerOutput::End(_) => ended = true,
            }
        }
        out.clear();
        while let Some(bytes) = server.poll_transmit() {
            out.extend_from_slice(&bytes);
        }
        if events {
            out.extend_from_slice(&canned.burst);
        }
        if !out.is_empty() && stream.write_all(&out).is_err() {
            return;
        }
        if ended {
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => server.receive_eof(),
            Ok(n) => server.receive(&buf[..n]),
        }
    }
}
