//! The QEMU guest agent protocol (QGA) as a state machine: [`Agent`].
//!
//! The agent speaks QMP's JSON, but it is another protocol. There is no
//! greeting and no negotiation, and the channel may hold leftovers: the
//! half-written command of a client that went away, replies to commands
//! nobody waits for any more. Replies carry no `id` unless the command had
//! one, and the agent runs one command at a time, in order. So the only way
//! to know that a reply answers a command is to bring the stream *in step*
//! first, with a sync:
//!
//! - The client writes a `0xFF` byte, which resets the agent's JSON parser
//!   (the agent may answer that byte with an error of its own), then
//!   `guest-sync-delimited` with a number of its own.
//! - The agent answers with a `0xFF` byte, then `{"return": N}`.
//! - The client drops everything up to that `0xFF` and then every message
//!   but the one that returns its number. From there on, the stream is in
//!   step: the next reply answers the next command. (`0xFF` never occurs in
//!   JSON text, so it cannot be confused with a message.)
//!
//! [`Agent`] syncs before its first command and again after any command it
//! gave up on ([`Agent::cancel`]: a timeout, a caller that went away), since
//! the agent may still answer that one. A command is written only once the
//! stream is in step, so a command given up on while the agent was not
//! listening (no agent runs in the guest yet: the bytes wait in QEMU) is
//! never run later; only syncs are. Every command ends in one output: its
//! [reply](AgentOutput::Reply), or the [end](AgentOutput::End) of the
//! channel.
//!
//! ```
//! use qmp_proto::agent::{Agent, AgentConfig, AgentOutput};
//!
//! let mut agent = Agent::new(AgentConfig::default().first_sync_id(42));
//! let ping = agent.execute("guest-ping", &()).unwrap();
//!
//! // The sync goes first, alone: the command waits until it is answered.
//! let sync = agent.poll_transmit().unwrap();
//! assert_eq!(&sync[..], b"\xff{\"execute\": \"guest-sync-delimited\", \"arguments\": {\"id\": 42}}\n");
//!
//! // A leftover of an earlier client, the error the 0xFF caused, the
//! // delimiter and the sync's reply.
//! agent.receive(b"{\"return\": 7}\n{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\n");
//! agent.receive(b"\xff{\"return\": 42}\n");
//! assert_eq!(agent.poll_output(), Some(AgentOutput::Synced { sync_id: 42 }));
//!
//! // In step: now the command goes out, and the next reply is its answer.
//! let command = agent.poll_transmit().unwrap();
//! assert!(command.starts_with(b"{\"execute\": \"guest-ping\""));
//! agent.receive(b"{\"return\": {}}\n");
//! match agent.poll_output() {
//!     Some(AgentOutput::Reply(reply)) => {
//!         assert_eq!(reply.id, ping);
//!         assert_eq!(reply.result.unwrap().as_str(), "{}");
//!     }
//!     other => panic!("{other:?}"),
//! }
//! ```
//!
//! Commands that do not answer on success (`guest-shutdown`,
//! `guest-suspend-*`: the guest goes away) are ordinary commands here: an
//! error comes as their reply, the channel's end as the end. The caller
//! decides when silence means success, and then cancels the command, which
//! makes the next command sync first.

use crate::client::{encode_command, Reply, RequestId};
use crate::error::{end_at_eof, End, SendError};
use crate::framing::Framer;
use crate::json::{attach, attach_last};
use crate::message::{parse_server_message_with, EventNames, ServerMessageSpans};
use crate::DEFAULT_MAX_MESSAGE_SIZE;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use serde::Serialize;

mod server;
pub use server::{AgentServer, AgentServerOutput};

/// The byte that resets the agent's parser and marks a delimited sync's
/// reply.
pub const DELIMITER: u8 = 0xFF;

/// How the stream is brought in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMethod {
    /// `0xFF` and `guest-sync-delimited` (every agent since QEMU 1.1): the
    /// delimiter in the reply marks where the agent's answer begins, so
    /// leftovers of any shape, even half a message, are skipped.
    #[default]
    Delimited,
    /// `guest-sync` alone, for agents without `guest-sync-delimited`:
    /// leftovers are skipped message by message, so half a message left in
    /// the channel can delay the sync until the next one.
    Plain,
}

/// Settings of an [`Agent`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentConfig {
    /// The largest message accepted, in bytes (default 16 MiB). A larger
    /// one ends the channel with
    /// [`ProtocolError::MessageTooLarge`](crate::ProtocolError::MessageTooLarge)
    /// if it is a reply to a command; while syncing, it is skipped.
    pub max_message_size: usize,
    /// How many commands may wait behind the one running (default 1024,
    /// at least 1); past it [`Agent::execute`] fails with
    /// [`SendError::QueueFull`].
    pub max_queued: usize,
    /// How syncs are made.
    pub sync_method: SyncMethod,
    /// The number of the first sync; each next sync takes the next number.
    /// Numbers should differ between clients of one channel, so that the
    /// reply to another client's sync is not taken for ours: an async
    /// client picks one from the clock and its process id. Kept below
    /// 2^53 (and wrapped there), which every JSON reader holds exactly.
    pub first_sync_id: u64,
    /// The `id` of the first command; each next command takes the next.
    pub first_id: u64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_queued: 1024,
            sync_method: SyncMethod::Delimited,
            first_sync_id: 1,
            first_id: 1,
        }
    }
}

impl AgentConfig {
    /// Sets [`max_message_size`](Self::max_message_size).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`max_queued`](Self::max_queued).
    pub fn max_queued(mut self, commands: usize) -> Self {
        self.max_queued = commands;
        self
    }

    /// Sets [`sync_method`](Self::sync_method).
    pub fn sync_method(mut self, method: SyncMethod) -> Self {
        self.sync_method = method;
        self
    }

    /// Sets [`first_sync_id`](Self::first_sync_id).
    pub fn first_sync_id(mut self, id: u64) -> Self {
        self.first_sync_id = id;
        self
    }

    /// Sets [`first_id`](Self::first_id).
    pub fn first_id(mut self, id: u64) -> Self {
        self.first_id = id;
        self
    }
}

/// What the [`Agent`] has to say; see [`Agent::poll_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentOutput {
    /// The agent answered sync `sync_id`: the stream is in step.
    Synced {
        /// The sync's number.
        sync_id: u64,
    },
    /// A command's reply: its `return` value or the agent's error.
    Reply(Reply),
    /// The channel ended; commands not answered get no reply. The last
    /// output.
    End(End),
}

/// Where the stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Not known to be in step: a sync goes out before the next command,
    /// and whatever arrives until then is dropped.
    Unsynced,
    /// A delimited sync is out: everything up to the next `0xFF` is dropped.
    AwaitingDelimiter { sync_id: u64 },
    /// A sync is out and its reply may come next: messages that are not
    /// it are dropped.
    AwaitingSync { sync_id: u64 },
    /// In step, with the command on the wire (if any).
    Synced { running: Option<u64> },
    /// The channel ended.
    Ended,
}

/// The client side of a guest agent channel, with no I/O; see the
/// [module docs](self).
///
/// Drive it as a [`Client`](crate::Client): after every input
/// ([`receive`](Self::receive), [`receive_eof`](Self::receive_eof),
/// [`execute`](Self::execute), [`cancel`](Self::cancel)) drain
/// [`poll_output`](Self::poll_output), then write what
/// [`poll_transmit`](Self::poll_transmit) gives.
#[derive(Debug)]
pub struct Agent {
    config: AgentConfig,
    framer: Framer,
    names: EventNames,
    step: Step,
    /// Commands not written yet, oldest first, with their bytes.
    queue: VecDeque<(u64, Vec<u8>)>,
    next_id: u64,
    next_sync_id: u64,
    outputs: VecDeque<AgentOutput>,
    transmit: BytesMut,
    /// Messages (and, while waiting for a delimiter, bytes) dropped.
    skipped_messages: u64,
    skipped_bytes: u64,
    eof: bool,
}

/// Sync numbers stay below this, which every JSON reader holds exactly.
const SYNC_ID_LIMIT: u64 = 1 << 53;

impl Default for Agent {
    fn default() -> Self {
        Agent::new(AgentConfig::default())
    }
}

impl Agent {
    /// A machine whose first command will be preceded by a sync.
    pub fn new(config: AgentConfig) -> Self {
        let config = AgentConfig {
            max_queued: config.max_queued.max(1),
            ..config
        };
        Agent {
            framer: Framer::new(config.max_message_size),
            names: EventNames::default(),
            step: Step::Unsynced,
            queue: VecDeque::new(),
            next_id: config.first_id,
            next_sync_id: config.first_sync_id % SYNC_ID_LIMIT,
            outputs: VecDeque::new(),
            transmit: BytesMut::new(),
            skipped_messages: 0,
            skipped_bytes: 0,
            eof: false,
            config,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Whether the stream is known to be in step: the last sync was
    /// answered and no command has been given up on since.
    pub fn is_in_step(&self) -> bool {
        matches!(self.step, Step::Synced { .. })
    }

    /// Whether the channel has ended (the [`AgentOutput::End`] may still be
    /// waiting in [`poll_output`](Self::poll_output)).
    pub fn is_ended(&self) -> bool {
        self.step == Step::Ended
    }

    /// The command on the wire, waiting for its reply.
    pub fn running(&self) -> Option<RequestId> {
        match self.step {
            Step::Synced { running } => running.map(RequestId),
            _ => None,
        }
    }

    /// Commands waiting to be written (behind a sync or the running one).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Messages dropped because they answered nothing of ours: leftovers
    /// of earlier clients, replies to commands given up on, other clients'
    /// syncs.
    pub fn skipped_messages(&self) -> u64 {
        self.skipped_messages
    }

    /// Bytes dropped unread while waiting for a sync's delimiter.
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped_bytes
    }

    /// Queues command `name` with `arguments` (a JSON object, or `&()` for
    /// none); it is written once the stream is in step and the commands
    /// before it are answered. Returns its id.
    pub fn execute<A: Serialize + ?Sized>(
        &mut self,
        name: &str,
        arguments: &A,
    ) -> Result<RequestId, SendError> {
        if self.step == Step::Ended || self.eof {
            return Err(SendError::Closed);
        }
        let arguments = crate::client::encode_arguments(arguments)?;
        if self.queue.len() >= self.config.max_queued {
            return Err(SendError::QueueFull {
                limit: self.config.max_queued,
            });
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.queue
            .push_back((id, encode_command(name, arguments.as_deref(), id, false)));
        self.advance();
        Ok(RequestId(id))
    }

    /// Sends a fresh sync now, before any command asks for one: on
    /// connecting, so that the first command finds the stream in step, or
    /// to learn whether the agent answers (the [`AgentOutput::Synced`]
    /// says so). Does nothing, and returns `false`, while a command runs
    /// (its reply is due first) or once the channel has ended.
    pub fn sync(&mut self) -> bool {
        if self.eof || matches!(self.step, Step::Ended | Step::Synced { running: Some(_) }) {
            return false;
        }
        self.lose_step();
        self.send_sync();
        true
    }

    /// Gives up on command `id` (its deadline passed, or its caller went
    /// away). A command not written yet never will be. One running may
    /// still be answered, so the next command syncs first and the late
    /// reply is dropped; so does one given up on while a sync is out, so
    /// that a sync the agent never saw is sent again. Returns whether `id`
    /// was pending.
    pub fn cancel(&mut self, id: RequestId) -> bool {
        if let Some(at) = self.queue.iter().position(|(queued, _)| *queued == id.0) {
            self.queue.remove(at);
            if matches!(
                self.step,
                Step::AwaitingDelimiter { .. } | Step::AwaitingSync { .. }
            ) {
                // A fresh sync for the commands still waiting (found by
                // the agent_ops fuzz target: they waited for one forever).
                self.lose_step();
                self.advance();
            }
            return true;
        }
        if self.step
            == (Step::Synced {
                running: Some(id.0),
            })
        {
            self.lose_step();
            self.advance();
            return true;
        }
        false
    }

    /// Buffers and handles bytes read from the channel; their outputs wait
    /// in [`poll_output`](Self::poll_output). Ignored once the channel
    /// ended.
    pub fn receive(&mut self, mut bytes: &[u8]) {
        if self.step == Step::Ended || self.eof {
            return;
        }
        while !bytes.is_empty() {
            if self.config.sync_method == SyncMethod::Delimited {
                match self.step {
                    Step::Unsynced => {
                        // The stream may have just lost its step: a sync
                        // goes out below if commands wait (found by the
                        // agent_ops fuzz target: returning here left them
                        // waiting).
                        self.skipped_bytes += bytes.len() as u64;
                        break;
                    }
                    Step::AwaitingDelimiter { sync_id } => {
                        let Some(at) = memchr::memchr(DELIMITER, bytes) else {
                            self.skipped_bytes += bytes.len() as u64;
                            break;
                        };
                        self.skipped_bytes += at as u64;
                        bytes = &bytes[at + 1..];
                        self.step = Step::AwaitingSync { sync_id };
                        self.framer = Framer::new(self.config.max_message_size);
                        continue;
                    }
                    _ => {}
                }
                // Up to the next delimiter, which starts a new message
                // whatever came before it.
                if let Some(at) = memchr::memchr(DELIMITER, bytes) {
                    self.framer.push(&bytes[..at]);
                    self.handle_frames();
                    // Always a fresh start: a framer discarding an oversize
                    // message holds no bytes but is not between messages
                    // (found by the agent_ops fuzz target).
                    self.skipped_bytes += self.framer.buffered() as u64;
                    self.framer = Framer::new(self.config.max_message_size);
                    bytes = &bytes[at + 1..];
                    continue;
                }
            }
            self.framer.push(bytes);
            self.handle_frames();
            break;
        }
        self.advance();
    }

    /// Says the channel was closed by the other side (the agent or QEMU
    /// went away). Replies already received are given out first.
    pub fn receive_eof(&mut self) {
        if self.step == Step::Ended || self.eof {
            return;
        }
        self.eof = true;
        let end = match self.step {
            Step::Synced { .. } => end_at_eof(&mut self.framer),
            _ => End::PeerClosed,
        };
        self.end(end);
    }

    /// Ends the channel from this side: queued commands are dropped and
    /// [`AgentOutput::End`] with [`End::Local`] is given out.
    pub fn close(&mut self) {
        self.end(End::Local);
    }

    /// Ends the channel because the transport failed, with the caller's
    /// description of it.
    pub fn fail_transport(&mut self, detail: impl Into<alloc::string::String>) {
        self.end(End::Transport(detail.into()));
    }

    /// The next output, or `None` when everything received has been handled.
    pub fn poll_output(&mut self) -> Option<AgentOutput> {
        self.outputs.pop_front()
    }

    /// Bytes to write to the channel, if any. Write them all, in order.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        crate::framing::take_all(&mut self.transmit)
    }

    // ----- internals -------------------------------------------------------

    /// Writes what the step allows: a sync when commands wait and the
    /// stream is not in step, the next command when it is and none runs.
    fn advance(&mut self) {
        match self.step {
            Step::Unsynced if !self.queue.is_empty() => self.send_sync(),
            Step::Synced { running: None } => {
                if let Some((id, bytes)) = self.queue.pop_front() {
                    self.transmit.extend_from_slice(&bytes);
                    self.step = Step::Synced { running: Some(id) };
                }
            }
            _ => {}
        }
    }

    fn send_sync(&mut self) {
        let sync_id = self.next_sync_id;
        self.next_sync_id = (self.next_sync_id + 1) % SYNC_ID_LIMIT;
        let (prefix, name): (&[u8], _) = match self.config.sync_method {
            SyncMethod::Delimited => (&[DELIMITER], "guest-sync-delimited"),
            SyncMethod::Plain => (&[], "guest-sync"),
        };
        self.transmit.extend_from_slice(prefix);
        self.transmit.extend_from_slice(b"{\"execute\": \"");
        self.transmit.extend_from_slice(name.as_bytes());
        self.transmit
            .extend_from_slice(b"\", \"arguments\": {\"id\": ");
        self.transmit
            .extend_from_slice(alloc::format!("{sync_id}").as_bytes());
        self.transmit.extend_from_slice(b"}}\n");
        self.step = match self.config.sync_method {
            SyncMethod::Delimited => Step::AwaitingDelimiter { sync_id },
            SyncMethod::Plain => Step::AwaitingSync { sync_id },
        };
    }

    /// The stream may carry a reply nobody waits for: sync before the next
    /// command.
    fn lose_step(&mut self) {
        self.step = Step::Unsynced;
        if self.config.sync_method == SyncMethod::Delimited {
            // Whatever is buffered is dropped: the delimiter says where
            // the next message begins.
            self.skipped_bytes += self.framer.buffered() as u64;
            self.framer = Framer::new(self.config.max_message_size);
        }
    }

    /// Handles every complete message the framer holds.
    fn handle_frames(&mut self) {
        while self.step != Step::Ended {
            let frame = match self.framer.next_frame() {
                None => return,
                Some(Ok(frame)) => frame,
                Some(Err(e)) => {
                    match self.step {
                        Step::Synced { running: Some(_) } => self.end(End::Protocol(e.into())),
                        // Nothing was asked: as any unexpected message.
                        Step::Synced { running: None } => {
                            self.skipped_messages += 1;
                            self.lose_step();
                        }
                        // Not ours: skipped, as any leftover.
                        _ => self.skipped_messages += 1,
                    }
                    continue;
                }
            };
            self.handle_message(frame);
        }
    }

    fn handle_message(&mut self, frame: Bytes) {
        let reply = match parse_server_message_with(&frame, &mut self.names) {
            Ok(ServerMessageSpans::Reply { id, result }) => Some((id, result)),
            _ => None,
        };
        match (self.step, reply) {
            (Step::AwaitingSync { sync_id }, Some((_, Ok(value))))
                if attach(&frame, &value).as_u64() == Some(sync_id) =>
            {
                self.step = Step::Synced { running: None };
                self.outputs.push_back(AgentOutput::Synced { sync_id });
            }
            (
                Step::Synced {
                    running: Some(running),
                },
                Some((id, result)),
            ) if id
                .as_ref()
                .is_none_or(|id| attach(&frame, id).as_u64() == Some(running)) =>
            {
                // Ours: it carries our id, or none (the agent's error about
                // a command it could not read has none).
                self.step = Step::Synced { running: None };
                self.outputs.push_back(AgentOutput::Reply(Reply {
                    id: RequestId(running),
                    result: result.map(|value| attach_last(frame, &value)),
                }));
            }
            (Step::Synced { running: None }, _) => {
                // Nothing was asked: the stream is not what we think.
                self.skipped_messages += 1;
                self.lose_step();
            }
            _ => self.skipped_messages += 1,
        }
    }

    fn end(&mut self, end: End) {
        if self.step == Step::Ended {
            return;
        }
        self.step = Step::Ended;
        self.queue.clear();
        let _ = self.framer.finish();
        self.outputs.push_back(AgentOutput::End(end));
    }
}
