//! The server role: what QEMU does, for mock servers and tests.

use crate::error::{end_at_eof, End};
use crate::framing::{FrameError, Framer, DEFAULT_MAX_MESSAGE_SIZE};
use crate::json::{push_str_literal, RawJson};
use crate::message::{
    parse_client_message, Capability, Command, ErrorClass, Greeting, QmpError, Timestamp, Version,
};
use crate::pretty::{write_pretty, write_spaced};
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// Settings of a [`Server`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The version announced in the greeting: QEMU 0.0.0 by default
    /// ([`Version::new`] for another QEMU, [`Version::from_raw`] for a
    /// server of another shape).
    pub version: Version,
    /// Offer out-of-band execution. Default: `true`, as QEMU does.
    pub offer_oob: bool,
    /// The largest client message accepted, in bytes; larger ones are
    /// answered with an error and skipped. Default: 16 MiB.
    pub max_message_size: usize,
    /// Write messages the way `-mon ...,pretty=on` does, over many lines.
    /// Default: `false`.
    pub pretty: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            version: Version::default(),
            offer_oob: true,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            pretty: false,
        }
    }
}

impl ServerConfig {
    /// Sets [`version`](Self::version).
    pub fn version(mut self, version: Version) -> Self {
        self.version = version;
        self
    }

    /// Sets [`offer_oob`](Self::offer_oob).
    pub fn offer_oob(mut self, offer: bool) -> Self {
        self.offer_oob = offer;
        self
    }

    /// Sets [`max_message_size`](Self::max_message_size).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`pretty`](Self::pretty).
    pub fn pretty(mut self, pretty: bool) -> Self {
        self.pretty = pretty;
        self
    }
}

/// What the [`Server`] machine has to say; see [`Server::poll_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerOutput {
    /// The client completed `qmp_capabilities` (already answered).
    Negotiated {
        /// Whether it enabled out-of-band execution.
        oob: bool,
    },
    /// A command to answer with [`Server::reply_ok`] or
    /// [`Server::reply_error`].
    Command(Command),
    /// The client closed the stream. The last output, given once.
    End(End),
}

/// The server side of a QMP connection, with no I/O: a mock QEMU.
///
/// It greets, negotiates, refuses commands before `qmp_capabilities` and
/// answers malformed input exactly as QEMU does; every valid command after
/// negotiation is handed to the caller to answer.
///
/// ```
/// use qmp_proto::{Server, ServerConfig, ServerOutput};
///
/// let mut server = Server::new(ServerConfig::default());
/// let greeting = server.poll_transmit().unwrap();
/// assert!(greeting.starts_with(b"{\"QMP\""));
///
/// server.receive(br#"{"execute": "qmp_capabilities"}{"execute": "query-status", "id": "a"}"#);
/// assert_eq!(server.poll_output(), Some(ServerOutput::Negotiated { oob: false }));
/// let Some(ServerOutput::Command(command)) = server.poll_output() else { panic!() };
/// assert_eq!(command.name, "query-status");
/// server.reply_ok(&command, &serde_json::json!({"status": "running", "running": true})).unwrap();
/// let out = server.poll_transmit().unwrap();
/// assert!(out.ends_with(b"\"id\": \"a\"}\r\n"));
/// ```
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    framer: Framer,
    negotiated: bool,
    oob_enabled: bool,
    eof: bool,
    ended: bool,
    outputs: VecDeque<ServerOutput>,
    transmit: BytesMut,
}

#[derive(Deserialize)]
struct CapabilitiesArguments {
    #[serde(default)]
    enable: Vec<String>,
}

impl Server {
    /// A server whose greeting is ready in [`poll_transmit`](Self::poll_transmit).
    pub fn new(config: ServerConfig) -> Self {
        let mut server = Server {
            framer: Framer::new(config.max_message_size),
            config,
            negotiated: false,
            oob_enabled: false,
            eof: false,
            ended: false,
            outputs: VecDeque::new(),
            transmit: BytesMut::new(),
        };
        let capabilities = if server.config.offer_oob {
            vec![Capability::Oob]
        } else {
            Vec::new()
        };
        let greeting = Greeting {
            version: server.config.version.clone(),
            capabilities,
        };
        let mut message = b"{\"QMP\": ".to_vec();
        message.extend_from_slice(&to_json(&greeting));
        message.push(b'}');
        server.write_message(message);
        server
    }

    /// Whether the client has completed negotiation.
    pub fn is_negotiated(&self) -> bool {
        self.negotiated
    }

    /// Whether out-of-band execution was enabled by the client.
    pub fn oob_enabled(&self) -> bool {
        self.oob_enabled
    }

    /// Buffers bytes received from the client.
    pub fn receive(&mut self, bytes: &[u8]) {
        if !self.eof && !self.ended {
            self.framer.push(bytes);
        }
    }

    /// Says the client closed the stream.
    pub fn receive_eof(&mut self) {
        self.eof = true;
    }

    /// The next output, or `None` when all input so far has been handled.
    /// Errors for bad input are answered on the way, as QEMU does.
    pub fn poll_output(&mut self) -> Option<ServerOutput> {
        loop {
            if let Some(output) = self.outputs.pop_front() {
                return Some(output);
            }
            if self.ended {
                return None;
            }
            match self.framer.next_frame() {
                Some(Ok(frame)) => self.handle(&frame),
                Some(Err(FrameError::TooLarge { limit })) => self.write_error(
                    None,
                    &QmpError::generic(format!("JSON parse error, message exceeds {limit} bytes")),
                ),
                Some(Err(e @ FrameError::Truncated { .. })) => self.end(End::Protocol(e.into())),
                None if self.eof => {
                    let end = end_at_eof(&mut self.framer);
                    self.end(end)
                }
                None => return None,
            }
        }
    }

    /// Bytes to write to the client, if any.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        crate::framing::take_all(&mut self.transmit)
    }

    /// Answers `command` with `value` as its `return`.
    pub fn reply_ok<T: Serialize + ?Sized>(
        &mut self,
        command: &Command,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        let value = RawJson::from_trusted(Bytes::from(to_qemu_json(value)?));
        self.reply(command.id.as_ref(), Ok(&value));
        Ok(())
    }

    /// Answers `command` with `error`.
    pub fn reply_error(&mut self, command: &Command, error: &QmpError) {
        self.reply(command.id.as_ref(), Err(error));
    }

    /// Writes a reply with `id` (echoed verbatim; none for `None`).
    pub fn reply(&mut self, id: Option<&RawJson>, result: Result<&RawJson, &QmpError>) {
        self.write_message(encode_reply(id, result));
    }

    /// Sends event `name` with `data` (which must serialize to an object, or
    /// to `null` for none) stamped `timestamp`. Like QEMU, sends nothing
    /// before negotiation; returns whether the event was sent.
    pub fn send_event<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        data: &T,
        timestamp: Timestamp,
    ) -> Result<bool, serde_json::Error> {
        if !self.negotiated || self.ended {
            return Ok(false);
        }
        self.write_event(name, data, timestamp)?;
        Ok(true)
    }

    /// Sends an event even before negotiation, which QEMU never does: for
    /// testing clients against servers that do (an event written before
    /// the greeting, say). Sends nothing once the client has gone.
    pub fn send_event_early<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        data: &T,
        timestamp: Timestamp,
    ) -> Result<(), serde_json::Error> {
        if !self.ended {
            self.write_event(name, data, timestamp)?;
        }
        Ok(())
    }

    fn write_event<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        data: &T,
        timestamp: Timestamp,
    ) -> Result<(), serde_json::Error> {
        let data = to_qemu_json(data)?;
        let mut message = b"{\"timestamp\": ".to_vec();
        message.extend_from_slice(&to_json(&timestamp));
        message.extend_from_slice(b", \"event\": ");
        push_str_literal(&mut message, name);
        if data != b"null" {
            message.extend_from_slice(b", \"data\": ");
            message.extend_from_slice(&data);
        }
        message.push(b'}');
        self.write_message(message);
        Ok(())
    }

    /// Writes `bytes` as they are: for tests that need a misbehaving server.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.transmit.extend_from_slice(bytes);
    }

    fn handle(&mut self, frame: &Bytes) {
        let command = match parse_client_message(frame, self.oob_enabled) {
            Ok(command) => command,
            Err((id, error)) => return self.write_error(id.as_ref(), &error),
        };
        match (self.negotiated, command.name.as_str()) {
            (false, "qmp_capabilities") => self.negotiate(&command),
            (false, _) => self.reply_error(
                &command,
                &QmpError::new(
                    ErrorClass::CommandNotFound,
                    "Expecting capabilities negotiation with 'qmp_capabilities'",
                ),
            ),
            (true, "qmp_capabilities") => self.reply_error(
                &command,
                &QmpError::new(
                    ErrorClass::CommandNotFound,
                    "Capabilities negotiation is already complete, command ignored",
                ),
            ),
            (true, _) => self.outputs.push_back(ServerOutput::Command(command)),
        }
    }

    fn negotiate(&mut self, command: &Command) {
        let arguments: CapabilitiesArguments = match command.decode_arguments() {
            Ok(arguments) => arguments,
            Err(e) => return self.reply_error(command, &QmpError::generic(e.to_string())),
        };
        let mut oob = false;
        for name in &arguments.enable {
            if name == "oob" && self.config.offer_oob {
                oob = true;
            } else {
                return self.reply_error(
                    command,
                    &QmpError::generic(format!("Capability '{name}' not available")),
                );
            }
        }
        self.negotiated = true;
        self.oob_enabled = oob;
        self.reply(
            command.id.as_ref(),
            Ok(&RawJson::from_trusted(Bytes::from_static(b"{}"))),
        );
        self.outputs.push_back(ServerOutput::Negotiated { oob });
    }

    fn write_error(&mut self, id: Option<&RawJson>, error: &QmpError) {
        self.write_message(encode_reply(id, Err(error)));
    }

    /// Ends `message` with CRLF, as QEMU does, re-indenting it (token by
    /// token, so ids and payloads keep their text) when `pretty` is set.
    fn write_message(&mut self, message: Vec<u8>) {
        if self.config.pretty {
            write_pretty(&message, &mut self.transmit);
        } else {
            self.transmit.extend_from_slice(&message);
            self.transmit.extend_from_slice(b"\r\n");
        }
    }

    fn end(&mut self, end: End) {
        if !self.ended {
            self.ended = true;
            self.outputs.push_back(ServerOutput::End(end));
        }
    }
}

/// A reply as QEMU writes it, without the line end: `{"return": VALUE,
/// "id": ID}`, or `{"id": ID, "error": ERROR}` (the id first, as QEMU puts
/// it in errors).
pub(crate) fn encode_reply(id: Option<&RawJson>, result: Result<&RawJson, &QmpError>) -> Vec<u8> {
    match result {
        Ok(value) => {
            let mut message = b"{\"return\": ".to_vec();
            message.extend_from_slice(value.as_bytes());
            if let Some(id) = id {
                message.extend_from_slice(b", \"id\": ");
                message.extend_from_slice(id.as_bytes());
            }
            message.push(b'}');
            message
        }
        Err(error) => {
            let mut message = b"{".to_vec();
            if let Some(id) = id {
                message.extend_from_slice(b"\"id\": ");
                message.extend_from_slice(id.as_bytes());
                message.extend_from_slice(b", ");
            }
            // Spaced as QEMU spaces it.
            message.extend_from_slice(b"\"error\": {\"class\": ");
            push_str_literal(&mut message, error.class.as_str());
            message.extend_from_slice(b", \"desc\": ");
            push_str_literal(&mut message, &error.desc);
            message.extend_from_slice(b"}}");
            message
        }
    }
}

/// Serializes `value` spaced as QEMU writes JSON on one line.
fn to_qemu_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let compact = serde_json::to_vec(value)?;
    let mut spaced = Vec::new();
    write_spaced(&compact, &mut spaced);
    Ok(spaced)
}

/// Serializes one of this crate's own types, which cannot fail.
fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    to_qemu_json(value).unwrap_or_else(|_| b"null".to_vec())
}
