//! A hostile QMP server for tests: `qmp-proto`'s [`Server`] role on a plain
//! std thread, with faults injected on command.
//!
//! It needs no async runtime, so one mock serves the tokio and the smol
//! adapter alike. Each connection is one thread that runs a *script*: a
//! closure given a [`Peer`], the mock's end of the socket. The script decides
//! what the server does, step by step:
//!
//! - behave like QEMU: [`Peer::greet`], then [`Peer::next_command`] (the
//!   [`Server`] answers `qmp_capabilities` and malformed input by itself) and
//!   [`Peer::reply`];
//! - misbehave: [`Peer::act`] with [`Action`]s (reply twice, reply with an
//!   unknown id, an error without id, a reply with neither `return` nor
//!   `error`, raw bytes, wait for the test's signal, close), or write any
//!   bytes with [`Peer::send_raw`], or skip the [`Server`] entirely and read
//!   the client's messages as JSON with [`Peer::next_message`];
//! - talk differently: `pretty=on` output, LF-only line ends, one byte per
//!   write ([`MockConfig`]).
//!
//! The mock and the test synchronise through channels (a stall is an
//! [`Action::Wait`] on a receiver the test signals), never through sleeps.
//! A background thread reads the socket all the time, so the client's writes
//! never block even while the script stalls, and the script can tell when
//! the client has closed the connection ([`Peer::wait_for_eof`]): that is how
//! tests check that a client gives a connection up.
//!
//! ```no_run
//! use qmp_tests::mock::{Action, Mock, MockConfig};
//!
//! let (client_end, mock) = Mock::pair(MockConfig::default(), |peer| {
//!     peer.serve(|command| match command.name.as_str() {
//!         "query-status" => vec![Action::Reply(serde_json::json!({"status": "running"}))],
//!         _ => vec![Action::Reply("once".into()), Action::Reply("twice".into())],
//!     })
//! });
//! // ... hand `client_end` to `Qmp::from_unix_stream` ...
//! # drop(client_end);
//! mock.join().unwrap();
//! ```

use qmp_proto::framing::Framer;
use qmp_proto::{Command, QmpError, RawJson, Server, ServerConfig, ServerOutput, Timestamp};
use serde_json::Value;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

/// How the mock writes what its [`Server`] produces.
#[derive(Debug, Clone, Default)]
pub struct MockConfig {
    /// The server role's settings (version, OOB offered, `pretty=on`).
    pub server: ServerConfig,
    /// End messages with a bare LF instead of QEMU's CRLF.
    pub lf_only: bool,
    /// Write everything one byte per `write` call.
    pub byte_at_a_time: bool,
}

impl MockConfig {
    /// Sets `pretty` in [`server`](Self::server): messages span many lines,
    /// as with `-mon ...,pretty=on`.
    pub fn pretty(mut self, pretty: bool) -> Self {
        self.server = self.server.pretty(pretty);
        self
    }

    /// Sets [`lf_only`](Self::lf_only).
    pub fn lf_only(mut self, lf_only: bool) -> Self {
        self.lf_only = lf_only;
        self
    }

    /// Sets [`byte_at_a_time`](Self::byte_at_a_time).
    pub fn byte_at_a_time(mut self, trickle: bool) -> Self {
        self.byte_at_a_time = trickle;
        self
    }
}

/// One step of the mock's answer to a command; see [`Peer::act`].
#[derive(Debug)]
pub enum Action {
    /// Answer normally, with this value as `return`.
    Reply(Value),
    /// Answer with this error reply.
    ReplyError(QmpError),
    /// Answer with this value as `return` but with the given id instead of
    /// the command's (an id the client never used, or a future one).
    ReplyWithId(Value, Value),
    /// Answer with `return` and no id at all.
    ReplyWithoutId(Value),
    /// An error reply without id, as QEMU sends for input it cannot parse.
    ErrorWithoutId(QmpError),
    /// A reply with the command's id but neither `return` nor `error`.
    Empty,
    /// An event: name, data (`null` for none) and timestamp.
    Event(String, Value, Timestamp),
    /// These bytes, exactly as given.
    Raw(Vec<u8>),
    /// Stall until the test sends on (or drops) the other end.
    Wait(mpsc::Receiver<()>),
    /// Close the connection (both directions) and stop.
    Close,
}

/// The mock's end of one connection, handed to a script.
///
/// Dropping it closes the connection, as a QEMU that exits does.
#[derive(Debug)]
pub struct Peer {
    stream: UnixStream,
    incoming: mpsc::Receiver<Vec<u8>>,
    /// The client has closed its side (or the socket failed).
    eof: bool,
    server: Server,
    /// The server's greeting, held until [`greet`](Self::greet).
    greeting: Option<Vec<u8>>,
    /// Framer for [`next_message`](Self::next_message), which bypasses the
    /// server role.
    raw: Framer,
    config: MockConfig,
    closed: bool,
}

impl Peer {
    fn new(stream: UnixStream, config: MockConfig) -> io::Result<Peer> {
        let reader = stream.try_clone()?;
        let (tx, incoming) = mpsc::channel();
        std::thread::Builder::new()
            .name("qmp-mock-reader".into())
            .spawn(move || read_into(reader, tx))?;
        let mut server = Server::new(config.server.clone());
        let greeting = server.poll_transmit().map(|bytes| bytes.to_vec());
        Ok(Peer {
            stream,
            incoming,
            eof: false,
            server,
            greeting,
            raw: Framer::new(1 << 20),
            config,
            closed: false,
        })
    }

    /// Sends the greeting (once; later calls do nothing).
    pub fn greet(&mut self) -> io::Result<()> {
        match self.greeting.take() {
            Some(greeting) => self.write_server_bytes(&greeting),
            None => Ok(()),
        }
    }

    /// The next command after negotiation, or `None` once the client has
    /// closed the connection. The server role answers `qmp_capabilities`,
    /// commands before it and malformed input on its own, as QEMU does.
    pub fn next_command(&mut self) -> Option<Command> {
        loop {
            while let Some(output) = self.server.poll_output() {
                match output {
                    ServerOutput::Negotiated { .. } => {}
                    ServerOutput::Command(command) => {
                        self.flush_server().ok();
                        return Some(command);
                    }
                    ServerOutput::End(_) => {}
                }
            }
            // Negotiation replies and errors for bad input.
            if self.flush_server().is_err() || self.eof {
                return None;
            }
            match self.incoming.recv() {
                Ok(bytes) => self.server.receive(&bytes),
                Err(_) => {
                    self.eof = true;
                    self.server.receive_eof();
                }
            }
        }
    }

    /// The next message the client sent, as JSON, read *without* the server
    /// role (so nothing is answered): for scripts that negotiate by hand.
    /// `None` once the client has closed the connection.
    pub fn next_message(&mut self) -> Option<Value> {
        loop {
            if let Some(frame) = self.raw.next_frame() {
                return frame.ok().and_then(|f| serde_json::from_slice(&f).ok());
            }
            if self.eof {
                return None;
            }
            match self.incoming.recv() {
                Ok(bytes) => self.raw.push(&bytes),
                Err(_) => self.eof = true,
            }
        }
    }

    /// Reads and discards until the client closes the connection. Returns
    /// at once if it already has.
    pub fn wait_for_eof(&mut self) {
        while !self.eof {
            if self.incoming.recv().is_err() {
                self.eof = true;
            }
        }
    }

    /// Answers `command` normally with `value` as its `return`.
    pub fn reply(&mut self, command: &Command, value: impl serde::Serialize) -> io::Result<()> {
        self.server
            .reply_ok(command, &value)
            .map_err(io::Error::other)?;
        self.flush_server()
    }

    /// Sends event `name` with `data` (`null` for none) at `timestamp`.
    /// Nothing is sent before negotiation, as with QEMU.
    pub fn event(&mut self, name: &str, data: &Value, timestamp: Timestamp) -> io::Result<()> {
        self.server
            .send_event(name, data, timestamp)
            .map_err(io::Error::other)?;
        self.flush_server()
    }

    /// Writes `bytes` exactly as given (no line-end rewriting).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write(bytes)
    }

    /// Carries out `actions` in order, for `command`. Stops at
    /// [`Action::Close`]; returns `Ok(false)` then, `Ok(true)` otherwise.
    pub fn act(
        &mut self,
        command: &Command,
        actions: impl IntoIterator<Item = Action>,
    ) -> io::Result<bool> {
        let id = command.id.as_ref();
        for action in actions {
            match action {
                Action::Reply(value) => self.reply(command, value)?,
                Action::ReplyError(error) => {
                    self.server.reply_error(command, &error);
                    self.flush_server()?;
                }
                Action::ReplyWithId(id, value) => {
                    let id = RawJson::from_value(&id).map_err(io::Error::other)?;
                    let value = RawJson::from_value(&value).map_err(io::Error::other)?;
                    self.server.reply(Some(&id), Ok(&value));
                    self.flush_server()?;
                }
                Action::ReplyWithoutId(value) => {
                    let value = RawJson::from_value(&value).map_err(io::Error::other)?;
                    self.server.reply(None, Ok(&value));
                    self.flush_server()?;
                }
                Action::ErrorWithoutId(error) => {
                    self.server.reply(None, Err(&error));
                    self.flush_server()?;
                }
                Action::Empty => {
                    let id = id.map_or("null", RawJson::as_str);
                    let message = format!("{{\"id\": {id}}}\r\n");
                    self.write_server_bytes(message.as_bytes())?;
                }
                Action::Event(name, data, timestamp) => self.event(&name, &data, timestamp)?,
                Action::Raw(bytes) => self.send_raw(&bytes)?,
                // A dropped sender counts as the signal: the test is done.
                Action::Wait(signal) => signal.recv().unwrap_or(()),
                Action::Close => {
                    self.close();
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Greets, then answers each command with the actions `script` gives
    /// for it, until the client closes the connection or an action closes
    /// it. Returns the names of the commands served, in order.
    ///
    /// A write that fails because the client has closed the connection
    /// ends the loop like the client's end of file does (a client may close
    /// as soon as it has parsed a reply, before its trailing CRLF is
    /// written); other write errors are returned.
    pub fn serve(
        mut self,
        mut script: impl FnMut(&Command) -> Vec<Action>,
    ) -> io::Result<Vec<String>> {
        let mut served = Vec::new();
        let client_left = |e: &io::Error| {
            matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            )
        };
        match self.greet() {
            Err(e) if client_left(&e) => return Ok(served),
            other => other?,
        }
        while let Some(command) = self.next_command() {
            served.push(command.name.clone());
            match self.act(&command, script(&command)) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) if client_left(&e) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(served)
    }

    /// Closes the write side only: the client sees end of file, and the
    /// mock can still read what it sends.
    pub fn shutdown_write(&mut self) {
        self.stream.shutdown(Shutdown::Write).ok();
    }

    /// Closes the connection in both directions.
    pub fn close(&mut self) {
        self.closed = true;
        self.stream.shutdown(Shutdown::Both).ok();
    }

    /// Whether the client has closed its side, as far as seen so far.
    pub fn saw_eof(&self) -> bool {
        self.eof
    }

    /// Writes what the server role has produced.
    fn flush_server(&mut self) -> io::Result<()> {
        match self.server.poll_transmit() {
            Some(bytes) => self.write_server_bytes(&bytes),
            None => Ok(()),
        }
    }

    /// Writes bytes in the server's format, rewriting line ends if asked.
    fn write_server_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        if !self.config.lf_only {
            return self.write(bytes);
        }
        // A JSON text holds no raw CR or LF inside strings, so every CRLF
        // is a line end.
        let mut out = Vec::with_capacity(bytes.len());
        let mut rest = bytes;
        while let Some((&first, tail)) = rest.split_first() {
            if first == b'\r' && tail.first() == Some(&b'\n') {
                rest = tail;
                continue;
            }
            out.push(first);
            rest = tail;
        }
        self.write(&out)
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.closed {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the mock closed the connection",
            ));
        }
        if self.config.byte_at_a_time {
            for byte in bytes {
                self.stream.write_all(std::slice::from_ref(byte))?;
            }
            Ok(())
        } else {
            self.stream.write_all(bytes)
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Also ends the reader thread, which holds a clone of the socket.
        self.stream.shutdown(Shutdown::Both).ok();
    }
}

/// Reads the socket until it closes, handing each chunk to the script.
fn read_into(mut reader: UnixStream, chunks: mpsc::Sender<Vec<u8>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if chunks.send(buf[..n].to_vec()).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// A running mock: the thread that runs the script, and the socket it
/// serves.
///
/// [`join`](Self::join) waits for the script and gives its result (a panic
/// in the script, e.g. a failed assertion, fails the test there). Dropping
/// the handle instead closes the mock's socket and lets the thread finish on
/// its own.
#[derive(Debug)]
pub struct Mock<R> {
    thread: Option<JoinHandle<R>>,
    /// A clone of the mock's socket once there is one, to close on drop.
    socket: Arc<Mutex<Option<UnixStream>>>,
    /// The private directory of a listening mock.
    dir: Option<PathBuf>,
}

impl<R: Send + 'static> Mock<R> {
    /// A mock on one end of a socket pair; the other end is returned, for
    /// `Qmp::from_unix_stream`.
    pub fn pair(
        config: MockConfig,
        script: impl FnOnce(Peer) -> R + Send + 'static,
    ) -> (UnixStream, Mock<R>) {
        let (client, server) = UnixStream::pair().expect("socketpair");
        let socket = Arc::new(Mutex::new(Some(server.try_clone().expect("dup socket"))));
        let thread = std::thread::Builder::new()
            .name("qmp-mock".into())
            .spawn(move || script(Peer::new(server, config).expect("mock peer")))
            .expect("mock thread");
        let mock = Mock {
            thread: Some(thread),
            socket,
            dir: None,
        };
        (client, mock)
    }

    /// A mock listening on a Unix socket in a private temporary directory;
    /// it serves the first connection with `script`. Returns the socket's
    /// path, for `Qmp::connect_unix`.
    pub fn listen(
        config: MockConfig,
        script: impl FnOnce(Peer) -> R + Send + 'static,
    ) -> (PathBuf, Mock<R>) {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "qmp-mock-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).expect("mock directory");
        let path = dir.join("qmp.sock");
        let listener = UnixListener::bind(&path).expect("bind mock socket");
        let socket = Arc::new(Mutex::new(None));
        let accepted = socket.clone();
        let thread = std::thread::Builder::new()
            .name("qmp-mock".into())
            .spawn(move || {
                let (stream, _) = listener.accept().expect("accept");
                *lock(&accepted) = Some(stream.try_clone().expect("dup socket"));
                drop(listener);
                script(Peer::new(stream, config).expect("mock peer"))
            })
            .expect("mock thread");
        let mock = Mock {
            thread: Some(thread),
            socket,
            dir: Some(dir),
        };
        (path, mock)
    }

    /// Waits for the script to finish and returns its result; a panic in
    /// the script is raised again here.
    pub fn join(mut self) -> R {
        let thread = self.thread.take().expect("joined once");
        match thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl<R> Mock<R> {
    /// The private directory of a listening mock (`None` for a pair).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}

impl<R> Drop for Mock<R> {
    fn drop(&mut self) {
        if let Some(socket) = lock(&self.socket).take() {
            socket.shutdown(Shutdown::Both).ok();
        }
        if let Some(dir) = &self.dir {
            std::fs::remove_dir_all(dir).ok();
        }
        // The script thread is left to finish on its own: its reads now end.
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A script for the adapters' documentation examples: a QEMU that is
/// running, answers `stop` and then sends `STOP`, `device_del` and then
/// `DEVICE_DELETED`, `human-monitor-command` with a version line, and
/// anything else with `{}`, until the client leaves.
pub fn docs_qemu(peer: Peer) -> io::Result<Vec<String>> {
    let at = Timestamp {
        seconds: 1_764_000_000,
        microseconds: 0,
    };
    peer.serve(|command| {
        let arguments: Value = command.decode_arguments().unwrap_or(Value::Null);
        match command.name.as_str() {
            "query-status" => vec![Action::Reply(
                serde_json::json!({"status": "running", "running": true}),
            )],
            "stop" => vec![
                Action::Reply(serde_json::json!({})),
                Action::Event("STOP".into(), Value::Null, at),
            ],
            "device_del" => {
                let id = arguments["id"].as_str().unwrap_or_default();
                let path = format!("/machine/peripheral/{id}");
                let data = serde_json::json!({"device": id, "path": path});
                vec![
                    Action::Reply(serde_json::json!({})),
                    Action::Event("DEVICE_DELETED".into(), data, at),
                ]
            }
            "human-monitor-command" => vec![Action::Reply("10.0.2\r\n".into())],
            _ => vec![Action::Reply(serde_json::json!({}))],
        }
    })
}

/// Reads this process's resident-set figures from `/proc/self/status`, in
/// KiB: `(VmRSS, VmHWM)`, the current and the peak. `None` where the file
/// or the fields are missing (not Linux).
pub fn memory_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets this process's peak RSS (`VmHWM`) to its current RSS, by writing
/// `5` to `/proc/self/clear_refs`. Returns whether that worked (it needs
/// Linux 4.0 and may be refused in some sandboxes).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", b"5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads what the mock wrote until it closes the connection.
    fn read_all(mut stream: UnixStream) -> String {
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("read");
        text
    }

    #[test]
    fn pretty_lf_only_output_spans_lines_without_cr() {
        let config = MockConfig::default().pretty(true).lf_only(true);
        let (client, mock) = Mock::pair(config, |mut peer: Peer| peer.greet().expect("greet"));
        mock.join();
        let text = read_all(client);
        assert!(text.starts_with("{\n"), "{text:?}");
        assert!(text.lines().count() > 5, "{text:?}");
        assert!(!text.contains('\r'), "{text:?}");
        let greeting: Value = serde_json::from_str(&text).expect("one JSON value");
        assert!(greeting["QMP"]["capabilities"].is_array());
    }

    #[test]
    fn actions_write_what_they_say() {
        let (mut client, mock) = Mock::pair(MockConfig::default(), |peer: Peer| {
            peer.serve(|_| {
                vec![
                    Action::ReplyWithId(json_value("\"x\""), json_value("1")),
                    Action::ReplyWithoutId(json_value("2")),
                    Action::ErrorWithoutId(QmpError::generic("bad")),
                    Action::Empty,
                    Action::Raw(b"raw\r\n".to_vec()),
                    Action::Close,
                ]
            })
        });
        client
            .write_all(
                b"{\"execute\": \"qmp_capabilities\", \"id\": 0}{\"execute\": \"x\", \"id\": 7}",
            )
            .expect("write");
        let served = mock.join().expect("served");
        assert_eq!(served, ["x"]);
        let text = read_all(client);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(
            lines[2..],
            [
                "{\"return\": 1, \"id\": \"x\"}",
                "{\"return\": 2}",
                "{\"error\": {\"class\": \"GenericError\", \"desc\": \"bad\"}}",
                "{\"id\": 7}",
                "raw",
                "",
            ]
        );
    }

    fn json_value(text: &str) -> Value {
        serde_json::from_str(text).expect("JSON")
    }
}
