//! The mock's end of one connection, and the steps a script takes on it.

use crate::stream::{Inbox, Injector, Input, Stream};
use qmp_proto::framing::Framer;
use qmp_proto::{
    Command, ErrorClass, QmpError, RawJson, Server, ServerConfig, ServerOutput, Timestamp,
};
use serde_json::Value;
use std::io;
use std::net::Shutdown;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How the mock writes, and what it does before the greeting.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct MockConfig {
    /// The server role's settings (version, OOB offered, `pretty=on`).
    pub server: ServerConfig,
    /// End messages with a bare LF instead of QEMU's CRLF.
    pub lf_only: bool,
    /// Write everything one byte per `write` call: a slow writer, whose
    /// messages reach the client in the smallest pieces there are.
    pub byte_at_a_time: bool,
    /// With [`byte_at_a_time`](Self::byte_at_a_time), a pause after each
    /// byte. Default: none.
    pub pause_per_byte: Duration,
    /// Events written before the greeting (name, data), which QEMU never
    /// does but other servers and proxies may.
    pub events_before_greeting: Vec<(String, Value)>,
}

impl MockConfig {
    /// Sets the QEMU version the greeting and `query-version` announce.
    pub fn version(mut self, major: u64, minor: u64, micro: u64) -> Self {
        let version = qmp_proto::Version::new(
            qmp_proto::VersionTriple {
                major,
                minor,
                micro,
            },
            "",
        );
        self.server = self.server.version(version);
        self
    }

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

    /// A slow writer: one byte per write, `pause` after each.
    pub fn slow_writer(mut self, pause: Duration) -> Self {
        self.byte_at_a_time = true;
        self.pause_per_byte = pause;
        self
    }

    /// Adds an event written before the greeting.
    pub fn event_before_greeting(mut self, name: &str, data: Value) -> Self {
        self.events_before_greeting.push((name.to_string(), data));
        self
    }

    /// Sets [`server`](Self::server).
    pub fn server(mut self, server: ServerConfig) -> Self {
        self.server = server;
        self
    }
}

/// One step of the mock's answer to a command; see [`Peer::act`].
///
/// An empty list of actions never answers the command.
#[derive(Debug)]
#[non_exhaustive]
pub enum Action {
    /// Answer normally, with this value as `return`.
    Reply(Value),
    /// Answer normally, with this JSON text as `return`, byte for byte (a
    /// reply copied from a real QEMU keeps its member order and spacing).
    ReplyText(RawJson),
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
    /// These bytes, exactly as given (garbage, half a message...).
    Raw(Vec<u8>),
    /// Pause this long before the next action: a slow reply.
    Delay(Duration),
    /// Stall until the test sends on (or drops) the other end.
    Wait(mpsc::Receiver<()>),
    /// Write the first half of this reply, then close the connection.
    CloseMidReply(Value),
    /// Close the connection (both directions) and stop.
    Close,
}

impl Action {
    /// A normal reply with `value` as its `return`.
    pub fn ok(value: impl Into<Value>) -> Action {
        Action::Reply(value.into())
    }

    /// An error reply of `class` saying `desc`.
    pub fn error(class: ErrorClass, desc: impl Into<String>) -> Action {
        Action::ReplyError(QmpError::new(class, desc))
    }

    /// An event stamped now; `data` is `Value::Null` for none.
    pub fn event(name: &str, data: Value) -> Action {
        Action::Event(name.to_string(), data, now())
    }

    /// A reply whose `return` is a string of `bytes` bytes: larger than a
    /// client's message limit, when `bytes` is.
    pub fn oversize_reply(bytes: usize) -> Action {
        Action::Reply(Value::String("x".repeat(bytes)))
    }
}

/// The current time as a QMP event timestamp.
pub(crate) fn now() -> Timestamp {
    Timestamp::from_unix_duration(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

/// A handle that sends events on a connection from any thread; see
/// [`Peer::events`].
#[derive(Debug, Clone)]
pub struct EventSender {
    injector: Injector,
}

impl EventSender {
    /// Asks the connection to send event `name` with `data`
    /// (`Value::Null` for none), stamped when it is written. It is written
    /// as soon as the connection's script next waits for the client, and
    /// only once the client has negotiated (as with QEMU). Returns `false`
    /// if the connection is gone.
    pub fn send(&self, name: &str, data: Value) -> bool {
        self.injector.send(name, data)
    }
}

/// The mock's end of one connection, handed to a script.
///
/// Dropping it closes the connection, as a QEMU that exits does.
#[derive(Debug)]
pub struct Peer {
    stream: Stream,
    inbox: Inbox,
    injector: Injector,
    /// Bytes written while answering what one read brought, sent in one
    /// write before the next wait (see [`serve`](Self::serve)).
    out: Vec<u8>,
    /// Writes go to `out` rather than straight to the socket.
    batching: bool,
    /// The client has closed its side (or the socket failed).
    eof: bool,
    server: Server,
    server_told_eof: bool,
    /// The server's greeting, held until [`greet`](Self::greet).
    greeting: Option<Vec<u8>>,
    /// Framer for [`next_message`](Self::next_message), which bypasses the
    /// server role.
    raw: Framer,
    config: MockConfig,
    closed: bool,
}

impl Peer {
    pub(crate) fn new(stream: Stream, config: MockConfig) -> io::Result<Peer> {
        let (inbox, injector) = Inbox::new(stream.try_clone()?)?;
        let mut server = Server::new(config.server.clone());
        let greeting = server.poll_transmit().map(|bytes| bytes.to_vec());
        Ok(Peer {
            stream,
            inbox,
            injector,
            out: Vec::new(),
            batching: false,
            eof: false,
            server,
            server_told_eof: false,
            greeting,
            raw: Framer::new(1 << 20),
            config,
            closed: false,
        })
    }

    /// A handle for sending events on this connection from another
    /// thread, e.g. the test's.
    pub fn events(&self) -> EventSender {
        EventSender {
            injector: self.injector.clone(),
        }
    }

    /// Sends the configured events before the greeting, then the greeting
    /// (once; later calls do nothing).
    pub fn greet(&mut self) -> io::Result<()> {
        let Some(greeting) = self.greeting.take() else {
            return Ok(());
        };
        for (name, data) in std::mem::take(&mut self.config.events_before_greeting) {
            self.server
                .send_event_early(&name, &data, now())
                .map_err(io::Error::other)?;
            self.flush_server()?;
        }
        self.write_server_bytes(&greeting)
    }

    /// Waits for the next input, sending injected events on the way;
    /// what is batched is written first. `None` once the client has
    /// closed the connection.
    fn next_input(&mut self) -> io::Result<Option<Vec<u8>>> {
        while !self.eof {
            self.flush_out()?;
            match self.inbox.next() {
                Input::Bytes(bytes) => return Ok(Some(bytes)),
                Input::Event(name, data) => self.event(&name, &data, now())?,
                Input::Eof => self.eof = true,
            }
        }
        self.flush_out()?;
        Ok(None)
    }

    /// The next command after negotiation, or `None` once the client has
    /// closed the connection. The server role answers `qmp_capabilities`,
    /// commands before it and malformed input on its own, as QEMU does.
    pub fn next_command(&mut self) -> Option<Command> {
        loop {
            while let Some(output) = self.server.poll_output() {
                match output {
                    ServerOutput::Negotiated { .. } | ServerOutput::End(_) => {}
                    ServerOutput::Command(command) => {
                        self.flush_server().ok();
                        return Some(command);
                    }
                }
            }
            // Negotiation replies and errors for bad input.
            if self.flush_server().is_err() {
                return None;
            }
            match self.next_input() {
                Ok(Some(bytes)) => self.server.receive(&bytes),
                // The server role is told once, and its last outputs drained.
                Ok(None) if !self.server_told_eof => {
                    self.server_told_eof = true;
                    self.server.receive_eof();
                }
                Ok(None) | Err(_) => return None,
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
            match self.next_input() {
                Ok(Some(bytes)) => self.raw.push(&bytes),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The next bytes the client sent, as read, without the server role;
    /// `None` once the client has closed the connection.
    pub fn next_bytes(&mut self) -> Option<Vec<u8>> {
        self.next_input().ok().flatten()
    }

    /// Reads and discards until the client closes the connection. Returns
    /// at once if it already has.
    pub fn wait_for_eof(&mut self) {
        while let Ok(Some(_)) = self.next_input() {}
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
    /// [`Action::Close`] or [`Action::CloseMidReply`]; returns `Ok(false)`
    /// then, `Ok(true)` otherwise.
    pub fn act(
        &mut self,
        command: &Command,
        actions: impl IntoIterator<Item = Action>,
    ) -> io::Result<bool> {
        let id = command.id.as_ref();
        for action in actions {
            match action {
                Action::Reply(value) => self.reply(command, value)?,
                Action::ReplyText(text) => {
                    self.server.reply(command.id.as_ref(), Ok(&text));
                    self.flush_server()?;
                }
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
                Action::Delay(pause) => {
                    self.flush_out()?;
                    std::thread::sleep(pause);
                }
                // A dropped sender counts as the signal: the test is done.
                Action::Wait(signal) => {
                    self.flush_out()?;
                    signal.recv().unwrap_or(());
                }
                Action::CloseMidReply(value) => {
                    self.server
                        .reply_ok(command, &value)
                        .map_err(io::Error::other)?;
                    let reply = self.server.poll_transmit().unwrap_or_default();
                    self.write_server_bytes(&reply[..reply.len() / 2])?;
                    self.flush_out()?;
                    self.close();
                    return Ok(false);
                }
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
        self.serve_commands(|command| {
            served.push(command.name.clone());
            script(command)
        })?;
        Ok(served)
    }

    /// [`serve`](Self::serve) on a borrowed peer.
    ///
    /// The answers to the commands one read brought are written together,
    /// in one write, before the next wait.
    pub(crate) fn serve_commands(
        &mut self,
        script: impl FnMut(&Command) -> Vec<Action>,
    ) -> io::Result<()> {
        self.batching = true;
        let served = self.serve_batched(script);
        self.batching = false;
        let flushed = self.flush_out();
        served.and(flushed)
    }

    fn serve_batched(&mut self, mut script: impl FnMut(&Command) -> Vec<Action>) -> io::Result<()> {
        match self.greet() {
            Err(e) if client_left(&e) => return Ok(()),
            other => other?,
        }
        while let Some(command) = self.next_command() {
            match self.act(&command, script(&command)) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) if client_left(&e) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Closes the write side only: the client sees end of file, and the
    /// mock can still read what it sends.
    pub fn shutdown_write(&mut self) {
        let _ = self.flush_out();
        self.stream.shutdown(Shutdown::Write);
    }

    /// Closes the connection in both directions (after writing what is
    /// batched).
    pub fn close(&mut self) {
        let _ = self.flush_out();
        self.closed = true;
        self.stream.shutdown(Shutdown::Both);
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
            if !(first == b'\r' && tail.first() == Some(&b'\n')) {
                out.push(first);
            }
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
        if self.batching && !self.config.byte_at_a_time {
            self.out.extend_from_slice(bytes);
            return Ok(());
        }
        self.flush_out()?;
        if !self.config.byte_at_a_time {
            return self.stream.write_all(bytes);
        }
        for byte in bytes {
            self.stream.write_all(std::slice::from_ref(byte))?;
            if !self.config.pause_per_byte.is_zero() {
                std::thread::sleep(self.config.pause_per_byte);
            }
        }
        Ok(())
    }
}

impl Peer {
    /// Writes what is batched.
    fn flush_out(&mut self) -> io::Result<()> {
        if self.out.is_empty() || self.closed {
            self.out.clear();
            return Ok(());
        }
        let written = self.stream.write_all(&self.out);
        self.out.clear();
        written
    }
}

/// Whether a write failed because the client has gone.
pub(crate) fn client_left(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
    )
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.flush_out();
        self.stream.shutdown(Shutdown::Both);
    }
}
