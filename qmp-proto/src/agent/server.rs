//! [`AgentServer`]: the guest agent's half of the channel, for tests and
//! mocks.

use super::DELIMITER;
use crate::error::End;
use crate::framing::{FrameError, Framer};
use crate::message::{parse_client_message, Command, QmpError};
use crate::server::encode_reply;
use crate::{RawJson, DEFAULT_MAX_MESSAGE_SIZE};
use alloc::collections::VecDeque;
use alloc::format;
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// What the [`AgentServer`] has to say; see [`AgentServer::poll_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentServerOutput {
    /// A command to answer (syncs are answered by the server itself).
    Command(Command),
    /// A sync was answered: the client is in step from here.
    Synced {
        /// The sync's number.
        sync_id: i64,
    },
    /// The client closed the channel.
    End(End),
}

/// The guest agent's side of a channel, with no I/O: what `qemu-ga`
/// does with the bytes a client writes, for mock agents and tests.
///
/// As the real agent (checked against `qemu-ga` 7.2 and 10.0): a `0xFF`
/// byte drops the command being read and is answered with a parse error;
/// `guest-sync-delimited` is answered with `0xFF` and its number,
/// `guest-sync` with its number alone; a reply echoes the command's `id`
/// if it had one; every reply ends with a newline. Commands come out of
/// [`poll_output`](Self::poll_output) in order, to be answered with
/// [`reply_ok`](Self::reply_ok) or [`reply_error`](Self::reply_error) (or
/// never, as an agent that hangs or goes away).
///
/// ```
/// use qmp_proto::agent::{Agent, AgentOutput, AgentServer, AgentServerOutput};
///
/// let (mut agent, mut server) = (Agent::default(), AgentServer::new());
/// let ping = agent.execute("guest-ping", &()).unwrap();
/// let mut answered = None;
/// while answered.is_none() {
///     while let Some(bytes) = agent.poll_transmit() {
///         server.receive(&bytes);
///     }
///     while let Some(output) = server.poll_output() {
///         if let AgentServerOutput::Command(command) = output {
///             server.reply_ok(&command, &serde_json::json!({})).unwrap();
///         }
///     }
///     while let Some(bytes) = server.poll_transmit() {
///         agent.receive(&bytes);
///     }
///     while let Some(output) = agent.poll_output() {
///         if let AgentOutput::Reply(reply) = output {
///             answered = Some(reply);
///         }
///     }
/// }
/// assert_eq!(answered.unwrap().id, ping);
/// ```
#[derive(Debug)]
pub struct AgentServer {
    framer: Framer,
    outputs: VecDeque<AgentServerOutput>,
    transmit: BytesMut,
    ended: bool,
}

impl Default for AgentServer {
    fn default() -> Self {
        AgentServer::new()
    }
}

#[derive(Deserialize)]
struct SyncArguments {
    id: i64,
}

impl AgentServer {
    /// A server that waits for commands.
    pub fn new() -> Self {
        AgentServer {
            framer: Framer::new(DEFAULT_MAX_MESSAGE_SIZE),
            outputs: VecDeque::new(),
            transmit: BytesMut::new(),
            ended: false,
        }
    }

    /// Handles bytes the client wrote. Commands wait in
    /// [`poll_output`](Self::poll_output), answers to syncs and errors in
    /// [`poll_transmit`](Self::poll_transmit).
    pub fn receive(&mut self, mut bytes: &[u8]) {
        if self.ended {
            return;
        }
        while let Some(at) = memchr::memchr(DELIMITER, bytes) {
            self.framer.push(&bytes[..at]);
            self.handle_frames();
            // The agent's parser stops at the byte, says so, and starts
            // afresh.
            self.framer = Framer::new(DEFAULT_MAX_MESSAGE_SIZE);
            self.write_error(
                None,
                &QmpError::generic("JSON parse error, stray '\u{FFFD}'"),
            );
            bytes = &bytes[at + 1..];
        }
        self.framer.push(bytes);
        self.handle_frames();
    }

    /// Says the client closed the channel.
    pub fn receive_eof(&mut self) {
        if !self.ended {
            self.ended = true;
            self.outputs
                .push_back(AgentServerOutput::End(End::PeerClosed));
        }
    }

    /// The agent restarts: the command it was reading is lost, and so are
    /// the commands not answered yet (their replies never come).
    pub fn restart(&mut self) {
        self.framer = Framer::new(DEFAULT_MAX_MESSAGE_SIZE);
        self.outputs
            .retain(|output| !matches!(output, AgentServerOutput::Command(_)));
    }

    /// The next output, or `None` when all input so far has been handled.
    pub fn poll_output(&mut self) -> Option<AgentServerOutput> {
        self.outputs.pop_front()
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
        let value = RawJson::from_value(value)?;
        self.write(encode_reply(command.id.as_ref(), Ok(&value)));
        Ok(())
    }

    /// Answers `command` with `error`.
    pub fn reply_error(&mut self, command: &Command, error: &QmpError) {
        self.write_error(command.id.as_ref(), error);
    }

    /// Writes `bytes` as they are: leftovers, garbage, stale replies.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.transmit.extend_from_slice(bytes);
    }

    fn handle_frames(&mut self) {
        loop {
            match self.framer.next_frame() {
                None => return,
                Some(Ok(frame)) => self.handle(&frame),
                Some(Err(FrameError::TooLarge { limit })) => self.write_error(
                    None,
                    &QmpError::generic(format!("JSON parse error, message exceeds {limit} bytes")),
                ),
                Some(Err(FrameError::Truncated { .. })) => return,
            }
        }
    }

    fn handle(&mut self, frame: &Bytes) {
        let command = match parse_client_message(frame, false) {
            Ok(command) => command,
            Err((id, error)) => return self.write_error(id.as_ref(), &error),
        };
        let delimited = match command.name.as_str() {
            "guest-sync-delimited" => true,
            "guest-sync" => false,
            _ => return self.outputs.push_back(AgentServerOutput::Command(command)),
        };
        let sync_id = match command.decode_arguments::<SyncArguments>() {
            Ok(arguments) => arguments.id,
            Err(e) => return self.reply_error(&command, &QmpError::generic(format!("{e}"))),
        };
        if delimited {
            self.transmit.extend_from_slice(&[DELIMITER]);
        }
        self.write(encode_reply(
            command.id.as_ref(),
            Ok(&RawJson::from_trusted(Bytes::from(format!("{sync_id}")))),
        ));
        self.outputs
            .push_back(AgentServerOutput::Synced { sync_id });
    }

    fn write_error(&mut self, id: Option<&RawJson>, error: &QmpError) {
        self.write(encode_reply(id, Err(error)));
    }

    fn write(&mut self, message: alloc::vec::Vec<u8>) {
        self.transmit.extend_from_slice(&message);
        self.transmit.extend_from_slice(b"\n");
    }
}
