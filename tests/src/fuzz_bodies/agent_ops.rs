//! The guest agent machine (`qmp_proto::agent::Agent`) under arbitrary
//! operations, checked against a model; and an `Agent` talking to an
//! `AgentServer` past leftovers, every command answered.
//!
//! The input (read with `arbitrary`) picks one of two scenarios.
//!
//! # `Ops`: arbitrary operations
//!
//! A setup (sync method, first command id, first sync number, queue bound,
//! message size limit), then up to [`MAX_OPS`] operations: `execute` (a name
//! of a small set; no arguments, an object, or a value that is not one),
//! `cancel` (an id `execute` returned, or any), `receive` of arbitrary bytes,
//! `receive` of bytes built from pieces (`0xFF`, `{"return": N}` with N a sync
//! number the machine sent or any, replies with an id it issued or another,
//! id-less errors, a message that is no reply, whitespace, garbage, half a
//! message), `receive_eof`, `close` and `fail_transport`. At the end the
//! channel is closed.
//!
//! Three machines take the same operations: `A` gets each `receive` whole,
//! `B` one byte at a time. `B` may write between two bytes (a sync's reply
//! or a command's completes, and the next command or sync goes out): the
//! agent could only answer what follows after that write, so `A`'s bytes are
//! cut there too, and only there. `C` gets each `receive` whole and uncut,
//! so it also meets what `A` never does (a read that goes on after the
//! reply that let a command out). Checked:
//!
//! - no panic;
//! - cut independence: `A` and `B` give the same outputs, results, writes
//!   and state (`is_in_step`, `running`, `queued`, `is_ended`) at every
//!   point they can be compared;
//! - the model ([`Model`]), written from the module's documentation: it
//!   predicts every output, result, written byte and the state exactly while
//!   it knows what the machine's JSON splitter holds (only well-formed
//!   messages since the splitter was last reset, by a `0xFF` or a resync).
//!   After garbage it accepts only outputs that are legal in its state (a
//!   `Synced` for the sync that is out, after a `0xFF`; a `Reply` for the
//!   command running; the end by an oversize reply) and one silent change,
//!   the loss of step of a machine in step with nothing running, until the
//!   next `0xFF` makes it exact again;
//! - the ledger ([`Ledger`]), which knows nothing of the machine's states
//!   and reads only what goes in and out: every id `execute` returned ends in
//!   one `Reply`, a `cancel` that returned true, or the `End`; `cancel` is
//!   true exactly for ids still pending; replies come in execution order,
//!   only for the command on the wire; the written bytes parse as syncs
//!   (`0xFF` then `guest-sync-delimited`, or `guest-sync`) and commands
//!   (`{"execute": NAME, ..., "id": ID}`), a command is only written in
//!   step (a `Synced` came after the last cancel of a command running or
//!   waiting behind a sync, and every command written since was answered),
//!   in execution order, each once; `Synced` only for the last sync written,
//!   once, after a `0xFF` that came after it; after `End`, no output, no
//!   write, `execute` fails with `SendError::Closed` and `cancel` is false.
//!   `A` and `B` (checked equal) and `C` each have one;
//! - liveness, of `C`: at rest, commands waiting are behind the one running
//!   or behind a sync that is out.
//!
//! It found three bugs of the machine, each with a regression test in
//! `qmp-proto/tests/agent.rs`: `cancel` of a command behind a sync left the
//! commands after it without one; a read that lost the step it had just
//! brought wrote no new sync; a `0xFF` did not reset a splitter that was
//! discarding an oversize leftover.
//!
//! # `RoundTrip`
//!
//! An `Agent` and an `AgentServer` over two in-memory byte queues delivered
//! in arbitrary amounts, with leftovers of an earlier client (arbitrary bytes
//! without `0xFF`, other clients' sync replies, stale replies, errors, half
//! messages) queued by the server (`send_raw`) before anything else. The
//! server answers every command (some with errors). Checked: one sync, every
//! command seen once by the server in order, every reply received in order
//! with its result, no end.
//!
//! `AGENT_OPS_TRACE=1` prints the operations and what came out.

use arbitrary::{Arbitrary, Unstructured};
use qmp_proto::agent::{
    Agent, AgentConfig, AgentOutput, AgentServer, AgentServerOutput, SyncMethod,
};
use qmp_proto::{End, ProtocolError, QmpError, RequestId, SendError};
use std::collections::{BTreeMap, VecDeque};

/// The most operations one input runs.
const MAX_OPS: usize = 256;

/// Sync numbers stay below this (the module's documentation).
const SYNC_ID_LIMIT: u64 = 1 << 53;

/// Command names `execute` picks from.
const NAMES: [&str; 6] = [
    "guest-ping",
    "guest-info",
    "guest-exec",
    "guest-get-time",
    "guest-shutdown",
    "guest-sync",
];

/// Argument names.
const KEYS: [&str; 3] = ["path", "pid", "timeout"];

/// Error classes replies carry.
const CLASSES: [&str; 3] = ["GenericError", "CommandNotFound", "NoSuchClass"];

/// Error descriptions: as written in JSON, and as read.
const DESCS: [(&str, &str); 4] = [
    (
        "JSON parse error, stray '\\ufffd'",
        "JSON parse error, stray '\u{fffd}'",
    ),
    (
        "Command guest-exec has been disabled",
        "Command guest-exec has been disabled",
    ),
    ("", ""),
    ("say \\\"no\\\"\\n", "say \"no\"\n"),
];

/// The `agent_ops` fuzz target's body: arbitrary operations on the guest
/// agent machine checked against a model, and a round trip with its server
/// half (what it checks is in this module's source docs).
pub fn agent_ops(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let trace = std::env::var_os("AGENT_OPS_TRACE").is_some();
    match Scenario::arbitrary(&mut u) {
        Ok(Scenario::Ops(setup)) => {
            if trace {
                eprintln!("{setup:?}");
            }
            let mut driver = Driver::new(&setup, trace);
            if let Ok(ops) = u.arbitrary_iter::<Op>() {
                for op in ops.take(MAX_OPS) {
                    let Ok(op) = op else { break };
                    driver.step(op);
                }
            }
            driver.finish();
        }
        Ok(Scenario::RoundTrip(round_trip)) => {
            if trace {
                eprintln!("{round_trip:?}");
            }
            round_trip.run(trace);
        }
        Err(_) => {}
    }
}

// ---------------------------------------------------------------------------
// The input.

#[derive(Arbitrary, Debug)]
enum Scenario {
    Ops(Setup),
    RoundTrip(RoundTrip),
}

/// How the machines of `Ops` are set up.
#[derive(Arbitrary, Debug)]
struct Setup {
    /// `SyncMethod::Plain` rather than `Delimited`.
    plain: bool,
    first_id: FirstId,
    first_sync_id: FirstSyncId,
    /// The queue bound: 1 to 4.
    max_queued: u8,
    /// Messages over `16 + n` bytes are too large; else the default limit.
    small_limit: Option<u8>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FirstId {
    Small(u8),
    /// `u64::MAX - n`: ids wrap.
    NearMax(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FirstSyncId {
    Small(u16),
    /// `2^53 - 1 - n`: sync numbers wrap.
    NearLimit(u8),
    /// Any: taken modulo 2^53.
    Any(u64),
}

/// One step of `Ops`.
#[derive(Arbitrary, Debug)]
enum Op {
    Execute {
        name: u8,
        arguments: Arguments,
    },
    Cancel(CancelId),
    /// Arbitrary bytes.
    Receive(Vec<u8>),
    /// Bytes built from pieces.
    ReceivePieces(Vec<Piece>),
    /// `receive_eof`, `close` or `fail_transport`.
    End(EndKind),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum EndKind {
    Eof,
    Close,
    FailTransport,
}

/// Command arguments: none, an object, or a value that is not an object
/// (refused with `SendError::ArgumentsNotObject`).
#[derive(Arbitrary, Debug)]
enum Arguments {
    None,
    Object(Vec<(u8, u32)>),
    NotObject(u32),
}

impl Arguments {
    /// What `execute` is given.
    fn map(&self) -> BTreeMap<&'static str, u32> {
        match self {
            Arguments::Object(members) => members
                .iter()
                .map(|&(key, value)| (KEYS[usize::from(key) % KEYS.len()], value))
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    /// The arguments as written on the wire (compact JSON), or why they are
    /// refused.
    fn wire(&self) -> Result<Option<String>, SendError> {
        match self {
            Arguments::None => Ok(None),
            Arguments::NotObject(_) => Err(SendError::ArgumentsNotObject),
            Arguments::Object(_) => {
                let members: Vec<String> = self
                    .map()
                    .iter()
                    .map(|(key, value)| format!("\"{key}\":{value}"))
                    .collect();
                Ok(Some(format!("{{{}}}", members.join(","))))
            }
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum CancelId {
    /// The n-th most recent id `execute` returned.
    Issued(u8),
    /// Any id, most likely never issued.
    Any(u64),
}

/// A piece of what the agent writes.
#[derive(Arbitrary, Debug)]
enum Piece {
    /// `0xFF`.
    Delimiter,
    /// A reply, and a newline.
    Message(Message),
    /// A message that is not a reply, and a newline.
    NotReply,
    /// A newline.
    Space,
    /// Arbitrary bytes.
    Garbage(Vec<u8>),
    /// The first bytes of a reply (not all of it).
    Half { message: Message, cut: u8 },
}

/// `{"return": ..., "id": ...}` or `{"error": {...}, "id": ...}`.
#[derive(Arbitrary, Debug)]
struct Message {
    result: ReplyResult,
    id: Option<ReplyId>,
    id_first: bool,
}

#[derive(Arbitrary, Debug)]
enum ReplyResult {
    /// `{}`.
    Empty,
    Number(Number),
    Error {
        class: u8,
        desc: u8,
    },
}

#[derive(Arbitrary, Debug)]
enum Number {
    /// The n-th most recent sync number the machine wrote.
    Sync(u8),
    Any(u64),
}

#[derive(Arbitrary, Debug)]
enum ReplyId {
    /// The n-th most recent id `execute` returned.
    Issued(u8),
    Any(u64),
    /// A string: never one of ours.
    Text,
}

/// The n-th most recent of `items`.
fn recent(items: &[u64], n: u8) -> Option<u64> {
    let len = items.len();
    (len > 0).then(|| items[len - 1 - usize::from(n) % len])
}

impl Message {
    /// The message's text and what it means, with `syncs` the sync numbers
    /// written so far and `issued` the ids returned so far.
    fn render(&self, syncs: &[u64], issued: &[u64]) -> (String, Meaning) {
        let (member, number, result) = match &self.result {
            ReplyResult::Empty => ("\"return\": {}".to_string(), None, Ok("{}".to_string())),
            ReplyResult::Number(number) => {
                let n = match *number {
                    Number::Sync(n) => recent(syncs, n).unwrap_or(u64::from(n)),
                    Number::Any(n) => n,
                };
                (format!("\"return\": {n}"), Some(n), Ok(n.to_string()))
            }
            ReplyResult::Error { class, desc } => {
                let class = CLASSES[usize::from(*class) % CLASSES.len()];
                let (written, read) = DESCS[usize::from(*desc) % DESCS.len()];
                (
                    format!("\"error\": {{\"class\": \"{class}\", \"desc\": \"{written}\"}}"),
                    None,
                    Err((class.to_string(), read.to_string())),
                )
            }
        };
        let (id_member, id) = match self.id {
            None => (None, None),
            Some(ReplyId::Issued(n)) => {
                let id = recent(issued, n).unwrap_or(u64::from(n));
                (Some(format!("\"id\": {id}")), Some(Some(id)))
            }
            Some(ReplyId::Any(id)) => (Some(format!("\"id\": {id}")), Some(Some(id))),
            Some(ReplyId::Text) => (Some("\"id\": \"fuzz\"".to_string()), Some(None)),
        };
        let text = match id_member {
            None => format!("{{{member}}}"),
            Some(id) if self.id_first => format!("{{{id}, {member}}}"),
            Some(id) => format!("{{{member}, {id}}}"),
        };
        let meaning = Meaning {
            reply: true,
            number,
            id,
            result,
        };
        (text, meaning)
    }
}

// ---------------------------------------------------------------------------
// Received bytes, with what the model knows of each.

/// A reply's result as compared: the `return` value as written, or the
/// error's class and description.
type Outcome = Result<String, (String, String)>;

/// What a well-formed message means to the machine.
#[derive(Debug, Clone)]
struct Meaning {
    /// A reply (`return` or `error`); else a message that is not one.
    reply: bool,
    /// The `return` value, when it is a number.
    number: Option<u64>,
    /// The `id` member: none, a number, or something else (`Some(None)`).
    id: Option<Option<u64>>,
    /// The reply's result: the `return` value as written, or the error's
    /// class and description.
    result: Outcome,
}

/// What the model knows of one received byte.
#[derive(Debug, Clone, Copy)]
enum Mark {
    /// `0xFF` with `SyncMethod::Delimited` (with `Plain` it is `Opaque`).
    Delimiter,
    /// Garbage: what the machine makes of it is not predicted.
    Opaque,
    /// Whitespace between messages.
    Space,
    /// Byte `offset` of the well-formed message `piece`, `len` bytes long.
    Message {
        piece: usize,
        offset: usize,
        len: usize,
    },
}

/// The bytes of one `receive`.
#[derive(Debug, Default)]
struct Chunk {
    bytes: Vec<u8>,
    marks: Vec<Mark>,
    meanings: Vec<Meaning>,
}

impl Chunk {
    fn opaque(&mut self, bytes: &[u8], delimited: bool) {
        for &byte in bytes {
            self.bytes.push(byte);
            self.marks.push(match byte {
                0xFF if delimited => Mark::Delimiter,
                _ => Mark::Opaque,
            });
        }
    }

    /// The first `take` bytes of message `text`. One longer than the limit
    /// is garbage to the model.
    fn message(&mut self, text: &str, meaning: Meaning, take: usize, max_message_size: usize) {
        if text.len() > max_message_size {
            return self.opaque(&text.as_bytes()[..take], false);
        }
        let piece = self.meanings.len();
        self.meanings.push(meaning);
        for (offset, &byte) in text.as_bytes()[..take].iter().enumerate() {
            self.bytes.push(byte);
            self.marks.push(Mark::Message {
                piece,
                offset,
                len: text.len(),
            });
        }
    }

    fn space(&mut self) {
        self.bytes.push(b'\n');
        self.marks.push(Mark::Space);
    }
}

// ---------------------------------------------------------------------------
// The model.

/// Where the stream stands, as the module documentation tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not in step, no sync out (or one given up on).
    Unsynced,
    /// Sync `sync_id` is out; with `Delimited`, `delimiter` says whether a
    /// `0xFF` came since (always true with `Plain`, which has none).
    Awaiting {
        sync_id: u64,
        delimiter: bool,
    },
    /// In step, with the command written and not answered, if any.
    InStep {
        running: Option<u64>,
    },
    Ended,
}

/// What the model knows of the machine's JSON splitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Empty, between messages.
    Clean,
    /// Holding the first `n` bytes of well-formed message `piece`.
    Partial { piece: usize, n: usize },
    /// Garbage went in: not predicted until the splitter is reset.
    Unknown,
}

/// An output the model expects.
#[derive(Debug, Clone, PartialEq)]
enum Expected {
    Synced(u64),
    Reply(u64, Outcome),
    End(ExpectedEnd),
}

#[derive(Debug, Clone, PartialEq)]
enum ExpectedEnd {
    PeerClosed,
    Local,
    Transport,
    Truncated(usize),
}

const TRANSPORT_DETAIL: &str = "fuzz: transport failed";

impl Expected {
    fn matches(&self, output: &AgentOutput) -> bool {
        match (self, output) {
            (Expected::Synced(id), AgentOutput::Synced { sync_id }) => id == sync_id,
            (Expected::Reply(id, result), AgentOutput::Reply(reply)) => {
                let got = match &reply.result {
                    Ok(value) => Ok(value.as_str().to_string()),
                    Err(e) => Err((e.class.as_str().to_string(), e.desc.clone())),
                };
                reply.id.get() == *id && got == *result
            }
            (Expected::End(expected), AgentOutput::End(end)) => match (expected, end) {
                (ExpectedEnd::PeerClosed, End::PeerClosed) => true,
                (ExpectedEnd::Local, End::Local) => true,
                (ExpectedEnd::Transport, End::Transport(detail)) => detail == TRANSPORT_DETAIL,
                (
                    ExpectedEnd::Truncated(n),
                    End::Protocol(ProtocolError::Truncated { buffered }),
                ) => n == buffered,
                _ => false,
            },
            _ => false,
        }
    }
}

/// What the machine must do, from the module's documentation: a sync
/// before the first command and after a command given up on (running, or
/// waiting behind a sync that is out); with `Delimited`, everything up to
/// the `0xFF` after a sync dropped; messages that are not the sync's reply
/// dropped; in step, one command at a time, the next reply (with its id or
/// none) its answer; any message in step with nothing running loses the
/// step; a write after every input.
#[derive(Debug)]
struct Model {
    delimited: bool,
    max_queued: usize,
    max_message_size: usize,
    step: Phase,
    framing: Framing,
    /// Commands not written yet, with their bytes.
    queue: VecDeque<(u64, Vec<u8>)>,
    next_id: u64,
    next_sync_id: u64,
    /// Bytes it must have written since the last check.
    transmit: Vec<u8>,
    /// Outputs expected since the last check.
    expected: Vec<Expected>,
}

impl Model {
    fn new(config: &AgentConfig) -> Self {
        Model {
            delimited: config.sync_method == SyncMethod::Delimited,
            max_queued: config.max_queued,
            max_message_size: config.max_message_size,
            step: Phase::Unsynced,
            framing: Framing::Clean,
            queue: VecDeque::new(),
            next_id: config.first_id,
            next_sync_id: config.first_sync_id % SYNC_ID_LIMIT,
            transmit: Vec::new(),
            expected: Vec::new(),
        }
    }

    fn execute(&mut self, name: &str, arguments: &Arguments) -> Result<u64, SendError> {
        if self.step == Phase::Ended {
            return Err(SendError::Closed);
        }
        let arguments = arguments.wire()?;
        if self.queue.len() >= self.max_queued {
            return Err(SendError::QueueFull {
                limit: self.max_queued,
            });
        }
        let id = self.next_id;
        self.next_id = id.wrapping_add(1);
        let bytes = match arguments {
            None => format!("{{\"execute\": \"{name}\", \"id\": {id}}}\n"),
            Some(arguments) => {
                format!("{{\"execute\": \"{name}\", \"arguments\": {arguments}, \"id\": {id}}}\n")
            }
        };
        self.queue.push_back((id, bytes.into_bytes()));
        self.advance();
        Ok(id)
    }

    fn cancel(&mut self, id: u64) -> bool {
        if let Some(at) = self.queue.iter().position(|(queued, _)| *queued == id) {
            self.queue.remove(at);
            if matches!(self.step, Phase::Awaiting { .. }) {
                // The sync may never have reached the agent: a new one.
                self.lose_step();
            }
            self.advance();
            return true;
        }
        if self.step == (Phase::InStep { running: Some(id) }) {
            self.lose_step();
            self.advance();
            return true;
        }
        false
    }

    /// Writes what the step allows.
    fn advance(&mut self) {
        match self.step {
            Phase::Unsynced if !self.queue.is_empty() => {
                let sync_id = self.next_sync_id;
                self.next_sync_id = (sync_id + 1) % SYNC_ID_LIMIT;
                let sync = if self.delimited {
                    format!("\u{0}{{\"execute\": \"guest-sync-delimited\", \"arguments\": {{\"id\": {sync_id}}}}}\n")
                } else {
                    format!(
                        "{{\"execute\": \"guest-sync\", \"arguments\": {{\"id\": {sync_id}}}}}\n"
                    )
                };
                let mut sync = sync.into_bytes();
                if self.delimited {
                    sync[0] = 0xFF;
                }
                self.transmit.extend_from_slice(&sync);
                self.step = Phase::Awaiting {
                    sync_id,
                    delimiter: !self.delimited,
                };
            }
            Phase::InStep { running: None } => {
                if let Some((id, bytes)) = self.queue.pop_front() {
                    self.transmit.extend_from_slice(&bytes);
                    self.step = Phase::InStep { running: Some(id) };
                }
            }
            _ => {}
        }
    }

    fn lose_step(&mut self) {
        self.step = Phase::Unsynced;
        if self.delimited {
            // Whatever is buffered is dropped: the next 0xFF starts afresh.
            self.framing = Framing::Clean;
        }
    }

    fn end(&mut self, end: ExpectedEnd) {
        if self.step == Phase::Ended {
            return;
        }
        self.step = Phase::Ended;
        self.queue.clear();
        self.expected.push(Expected::End(end));
    }

    /// Whether received bytes reach the splitter.
    fn pushes(&self) -> bool {
        match self.step {
            Phase::Ended => false,
            Phase::Unsynced
            | Phase::Awaiting {
                delimiter: false, ..
            } => !self.delimited,
            _ => true,
        }
    }

    /// One received byte, while the splitter is known.
    fn byte(&mut self, mark: Mark, meanings: &[Meaning]) {
        if self.step == Phase::Ended {
            return;
        }
        if let Mark::Delimiter = mark {
            match self.step {
                Phase::Awaiting {
                    sync_id,
                    delimiter: false,
                } => {
                    // The first 0xFF after the sync: a new splitter.
                    self.step = Phase::Awaiting {
                        sync_id,
                        delimiter: true,
                    };
                    self.framing = Framing::Clean;
                }
                Phase::Awaiting { .. } | Phase::InStep { .. } => {
                    self.framing = Framing::Clean;
                }
                Phase::Unsynced | Phase::Ended => {}
            }
            return;
        }
        if !self.pushes() {
            return;
        }
        self.framing = match (mark, self.framing) {
            (Mark::Space, Framing::Clean) => Framing::Clean,
            (
                Mark::Message {
                    piece, offset: 0, ..
                },
                Framing::Clean,
            ) => Framing::Partial { piece, n: 1 },
            (Mark::Message { piece, offset, .. }, Framing::Partial { piece: p, n })
                if p == piece && n == offset =>
            {
                Framing::Partial { piece, n: n + 1 }
            }
            _ => Framing::Unknown,
        };
        if let (Mark::Message { piece, len, .. }, Framing::Partial { n, .. }) = (mark, self.framing)
        {
            if n == len {
                self.framing = Framing::Clean;
                self.message(&meanings[piece]);
            }
        }
    }

    /// A whole well-formed message.
    fn message(&mut self, meaning: &Meaning) {
        match self.step {
            Phase::Awaiting {
                sync_id,
                delimiter: true,
            } if meaning.reply && meaning.number == Some(sync_id) => {
                self.step = Phase::InStep { running: None };
                self.expected.push(Expected::Synced(sync_id));
            }
            Phase::Awaiting {
                delimiter: true, ..
            } => {}
            Phase::InStep {
                running: Some(running),
            } => {
                let ours = match meaning.id {
                    // The agent's error about a command it could not read.
                    None => true,
                    Some(Some(id)) => id == running,
                    Some(None) => false,
                };
                if meaning.reply && ours {
                    self.step = Phase::InStep { running: None };
                    self.expected
                        .push(Expected::Reply(running, meaning.result.clone()));
                }
            }
            // Nothing was asked: the stream is not what it seemed.
            Phase::InStep { running: None } => self.lose_step(),
            _ => {}
        }
    }

    /// An output the machine gave while the splitter is not known: legal in
    /// the model's step, which it then follows.
    fn accept(&mut self, output: &AgentOutput) {
        match (self.step, output) {
            (
                Phase::Awaiting {
                    sync_id,
                    delimiter: true,
                },
                AgentOutput::Synced { sync_id: got },
            ) if *got == sync_id => self.step = Phase::InStep { running: None },
            (Phase::InStep { running: Some(id) }, AgentOutput::Reply(reply))
                if reply.id.get() == id =>
            {
                self.step = Phase::InStep { running: None };
            }
            (
                Phase::InStep { running: Some(_) },
                AgentOutput::End(End::Protocol(ProtocolError::MessageTooLarge { limit })),
            ) if *limit == self.max_message_size => {
                self.step = Phase::Ended;
                self.queue.clear();
            }
            _ => panic!("output {output:?} is not legal in {:?}", self.step),
        }
    }

    /// `receive_eof`: false when the end is not predicted (an unknown
    /// splitter in step may hold part of a message, or not).
    fn receive_eof(&mut self) -> bool {
        match (self.step, self.framing) {
            (Phase::Ended, _) => true,
            (Phase::InStep { .. }, Framing::Unknown) => false,
            (Phase::InStep { .. }, Framing::Partial { n, .. }) => {
                self.end(ExpectedEnd::Truncated(n));
                true
            }
            _ => {
                self.end(ExpectedEnd::PeerClosed);
                true
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The ledger.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Pending,
    Replied,
    Cancelled,
    Ended,
}

/// What must hold of any machine, read from what goes in and out only.
#[derive(Debug)]
struct Ledger {
    delimited: bool,
    /// Every id `execute` returned, with its place and fate.
    ids: BTreeMap<u64, (usize, Fate)>,
    issued: usize,
    /// The place of the last command written.
    last_written: Option<usize>,
    /// The place of the last command answered.
    last_replied: Option<usize>,
    /// The last sync written.
    sync: Option<u64>,
    /// Its reply may still bring the stream in step (not answered, and no
    /// command waiting behind it was given up on).
    sync_live: bool,
    /// A `0xFF` came since it was written.
    delimiter: bool,
    /// A `Synced` came after the last cancel of a command running or
    /// waiting behind a sync.
    in_step: bool,
    /// The command written and not answered, if any.
    on_wire: Option<u64>,
    ended: bool,
}

impl Ledger {
    fn new(delimited: bool) -> Self {
        Ledger {
            delimited,
            ids: BTreeMap::new(),
            issued: 0,
            last_written: None,
            last_replied: None,
            sync: None,
            sync_live: false,
            delimiter: false,
            in_step: false,
            on_wire: None,
            ended: false,
        }
    }

    fn pending(&self, id: u64) -> bool {
        self.ids
            .get(&id)
            .is_some_and(|(_, fate)| *fate == Fate::Pending)
    }

    fn issued(&mut self, id: u64) {
        assert!(!self.ended, "execute gave {id} after the end");
        let previous = self.ids.insert(id, (self.issued, Fate::Pending));
        assert!(previous.is_none(), "id {id} issued twice");
        self.issued += 1;
    }

    fn cancelled(&mut self, id: u64, got: bool) {
        assert_eq!(got, self.pending(id), "cancel({id}): is it pending?");
        if !got {
            return;
        }
        self.ids.get_mut(&id).expect("pending").1 = Fate::Cancelled;
        if self.on_wire == Some(id) {
            // Still on the wire: its reply may come. In step again after a sync.
            self.in_step = false;
        } else if self.sync_live {
            // It waited behind the sync: the agent may never have seen it.
            self.in_step = false;
            self.sync_live = false;
        }
    }

    fn received(&mut self, bytes: &[u8]) {
        if self.delimited && bytes.contains(&0xFF) {
            self.delimiter = true;
        }
    }

    fn output(&mut self, output: &AgentOutput) {
        assert!(!self.ended, "{output:?} after the end");
        match output {
            AgentOutput::Synced { sync_id } => {
                assert_eq!(
                    self.sync,
                    Some(*sync_id),
                    "Synced for a sync not the last written"
                );
                assert!(self.sync_live, "Synced {sync_id}: answered or given up on");
                assert!(
                    self.delimiter || !self.delimited,
                    "Synced {sync_id} with no 0xFF since it was written"
                );
                self.sync_live = false;
                self.in_step = true;
                // The agent answered the sync: whatever came before is done.
                self.on_wire = None;
            }
            AgentOutput::Reply(reply) => {
                let id = reply.id.get();
                let Some(&(place, fate)) = self.ids.get(&id) else {
                    panic!("a reply for {id}, never issued");
                };
                assert_eq!(fate, Fate::Pending, "a reply for {id}");
                assert_eq!(
                    self.on_wire,
                    Some(id),
                    "a reply for {id}, not the command on the wire"
                );
                assert!(
                    self.last_replied.is_none_or(|last| last < place),
                    "reply for {id} out of order"
                );
                assert!(
                    self.ids
                        .values()
                        .all(|&(p, fate)| p >= place || fate != Fate::Pending),
                    "reply for {id} before one of an earlier command"
                );
                self.ids.get_mut(&id).expect("known").1 = Fate::Replied;
                self.last_replied = Some(place);
                self.on_wire = None;
            }
            AgentOutput::End(_) => {
                self.ended = true;
                for (_, fate) in self.ids.values_mut() {
                    if *fate == Fate::Pending {
                        *fate = Fate::Ended;
                    }
                }
            }
        }
    }

    /// Bytes the machine wrote: syncs and commands.
    fn transmitted(&mut self, mut bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        assert!(
            !self.ended,
            "written after the end: {:?}",
            String::from_utf8_lossy(bytes)
        );
        while !bytes.is_empty() {
            let Some(at) = bytes.iter().position(|&b| b == b'\n') else {
                panic!("unterminated write {:?}", String::from_utf8_lossy(bytes));
            };
            let (item, rest) = bytes.split_at(at + 1);
            bytes = rest;
            if let Some(sync_id) = self.parse_sync(item) {
                self.sync = Some(sync_id);
                self.sync_live = true;
                self.delimiter = false;
                self.in_step = false;
                continue;
            }
            let text = std::str::from_utf8(item).expect("commands are UTF-8");
            let body = text
                .strip_prefix("{\"execute\": \"")
                .unwrap_or_else(|| panic!("neither a sync nor a command: {text:?}"));
            let (_, id) = body
                .rsplit_once(", \"id\": ")
                .unwrap_or_else(|| panic!("a command without id: {text:?}"));
            let id: u64 = id
                .strip_suffix("}\n")
                .and_then(|id| id.parse().ok())
                .unwrap_or_else(|| panic!("a command with a bad id: {text:?}"));
            assert!(
                self.pending(id),
                "command {id} written, not pending: {text:?}"
            );
            assert!(self.in_step, "command {id} written out of step: {text:?}");
            assert_eq!(
                self.on_wire, None,
                "command {id} written while another is unanswered"
            );
            let place = self.ids[&id].0;
            assert!(
                self.last_written.is_none_or(|last| last < place),
                "command {id} written out of order"
            );
            self.last_written = Some(place);
            self.on_wire = Some(id);
        }
    }

    fn parse_sync(&self, item: &[u8]) -> Option<u64> {
        let (prefix, rest) = match self.delimited {
            true => (
                &b"\xff{\"execute\": \"guest-sync-delimited\", \"arguments\": {\"id\": "[..],
                item,
            ),
            false => (
                &b"{\"execute\": \"guest-sync\", \"arguments\": {\"id\": "[..],
                item,
            ),
        };
        let digits = rest.strip_prefix(prefix)?.strip_suffix(b"}}\n")?;
        let id = std::str::from_utf8(digits).ok()?.parse().ok()?;
        assert!(id < SYNC_ID_LIMIT, "sync number {id} over 2^53");
        Some(id)
    }

    fn finish(&self) {
        assert!(self.ended, "no end after close");
        for (id, (_, fate)) in &self.ids {
            assert_ne!(*fate, Fate::Pending, "{id} never ended");
        }
    }
}

// ---------------------------------------------------------------------------
// The driver of `Ops`.

fn drain(agent: &mut Agent) -> Vec<AgentOutput> {
    std::iter::from_fn(|| agent.poll_output()).collect()
}

fn transmitted(agent: &mut Agent) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(bytes) = agent.poll_transmit() {
        out.extend_from_slice(&bytes);
    }
    out
}

struct Driver {
    /// Fed each `receive` whole (cut only where `b` wrote).
    a: Agent,
    /// Fed one byte at a time.
    b: Agent,
    /// Fed each `receive` whole, uncut; checked by its own ledger only.
    c: Uncut,
    model: Model,
    ledger: Ledger,
    config: AgentConfig,
    /// Ids `execute` returned.
    issued: Vec<RequestId>,
    /// Sync numbers written.
    syncs: Vec<u64>,
    trace: bool,
    ops: usize,
}

impl Driver {
    fn new(setup: &Setup, trace: bool) -> Self {
        let first_id = match setup.first_id {
            FirstId::Small(n) => u64::from(n),
            FirstId::NearMax(n) => u64::MAX - u64::from(n),
        };
        let first_sync_id = match setup.first_sync_id {
            FirstSyncId::Small(n) => u64::from(n),
            FirstSyncId::NearLimit(n) => SYNC_ID_LIMIT - 1 - u64::from(n),
            FirstSyncId::Any(n) => n,
        };
        let mut config = AgentConfig::default()
            .sync_method(match setup.plain {
                true => SyncMethod::Plain,
                false => SyncMethod::Delimited,
            })
            .first_id(first_id)
            .first_sync_id(first_sync_id)
            .max_queued(usize::from(setup.max_queued % 4) + 1);
        if let Some(n) = setup.small_limit {
            config = config.max_message_size(16 + usize::from(n));
        }
        Driver {
            a: Agent::new(config.clone()),
            b: Agent::new(config.clone()),
            c: Uncut {
                agent: Agent::new(config.clone()),
                ledger: Ledger::new(!setup.plain),
                issued: Vec::new(),
            },
            model: Model::new(&config),
            ledger: Ledger::new(!setup.plain),
            config,
            issued: Vec::new(),
            syncs: Vec::new(),
            trace,
            ops: 0,
        }
    }

    fn step(&mut self, op: Op) {
        self.ops += 1;
        if self.trace {
            eprintln!("op {}: {op:?}", self.ops);
        }
        match op {
            Op::Execute { name, arguments } => {
                let name = NAMES[usize::from(name) % NAMES.len()];
                let map = arguments.map();
                let got = match &arguments {
                    Arguments::NotObject(n) => (self.a.execute(name, n), self.b.execute(name, n)),
                    Arguments::None => (self.a.execute(name, &()), self.b.execute(name, &())),
                    Arguments::Object(_) => {
                        (self.a.execute(name, &map), self.b.execute(name, &map))
                    }
                };
                self.c.execute(name, &arguments, &map);
                assert_eq!(got.0, got.1, "execute: A and B");
                let expected = self.model.execute(name, &arguments);
                assert_eq!(got.0.clone().map(RequestId::get), expected, "execute");
                if self.ledger.ended {
                    assert_eq!(got.0, Err(SendError::Closed), "execute after the end");
                }
                if let Ok(id) = got.0 {
                    self.ledger.issued(id.get());
                    self.issued.push(id);
                }
                self.after_op();
            }
            Op::Cancel(which) => {
                self.c.cancel(which);
                let Some(id) = pick(&self.issued, which) else {
                    return;
                };
                let got = (self.a.cancel(id), self.b.cancel(id));
                assert_eq!(got.0, got.1, "cancel({id}): A and B");
                assert_eq!(got.0, self.model.cancel(id.get()), "cancel({id})");
                self.ledger.cancelled(id.get(), got.0);
                self.after_op();
            }
            Op::Receive(bytes) => {
                let mut chunk = Chunk::default();
                chunk.opaque(&bytes, self.model.delimited);
                self.c.receive(&chunk.bytes);
                self.receive(chunk);
            }
            Op::ReceivePieces(pieces) => {
                let chunk = self.build(&pieces);
                self.c.receive(&chunk.bytes);
                self.receive(chunk);
            }
            Op::End(EndKind::Eof) => {
                self.a.receive_eof();
                self.b.receive_eof();
                self.c.agent.receive_eof();
                self.c.settle();
                if self.model.receive_eof() {
                    self.after_op();
                } else {
                    // In step with garbage in the splitter: it may hold part
                    // of a message.
                    let outputs = self.outputs();
                    assert!(
                        matches!(
                            &outputs[..],
                            [AgentOutput::End(
                                End::PeerClosed | End::Protocol(ProtocolError::Truncated { .. })
                            )]
                        ),
                        "at EOF: {outputs:?}"
                    );
                    self.model.step = Phase::Ended;
                    self.model.queue.clear();
                    self.check_writes();
                    self.check_state();
                }
            }
            Op::End(EndKind::Close) => {
                self.a.close();
                self.b.close();
                self.c.agent.close();
                self.c.settle();
                self.model.end(ExpectedEnd::Local);
                self.after_op();
            }
            Op::End(EndKind::FailTransport) => {
                self.a.fail_transport(TRANSPORT_DETAIL);
                self.b.fail_transport(TRANSPORT_DETAIL);
                self.c.agent.fail_transport(TRANSPORT_DETAIL);
                self.c.settle();
                self.model.end(ExpectedEnd::Transport);
                self.after_op();
            }
        }
    }

    /// The bytes of `pieces`.
    fn build(&self, pieces: &[Piece]) -> Chunk {
        let ids: Vec<u64> = self.issued.iter().map(|id| id.get()).collect();
        let max = self.config.max_message_size;
        let mut chunk = Chunk::default();
        for piece in pieces {
            match piece {
                Piece::Delimiter => chunk.opaque(&[0xFF], self.model.delimited),
                Piece::Message(message) => {
                    let (text, meaning) = message.render(&self.syncs, &ids);
                    chunk.message(&text, meaning, text.len(), max);
                    chunk.space();
                }
                Piece::NotReply => {
                    let text = "{\"event\": \"SHUTDOWN\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}";
                    let meaning = Meaning {
                        reply: false,
                        number: None,
                        id: None,
                        result: Ok(String::new()),
                    };
                    chunk.message(text, meaning, text.len(), max);
                    chunk.space();
                }
                Piece::Space => chunk.space(),
                Piece::Garbage(bytes) => chunk.opaque(bytes, self.model.delimited),
                Piece::Half { message, cut } => {
                    let (text, meaning) = message.render(&self.syncs, &ids);
                    // 1 to len - 1 bytes: never the closing brace.
                    let take = 1 + usize::from(*cut) % (text.len() - 1);
                    chunk.message(&text, meaning, take, max);
                }
            }
        }
        chunk
    }

    /// Gives `chunk` to `b` a byte at a time, checking each against the
    /// model, and to `a` in pieces cut where `b` wrote.
    fn receive(&mut self, chunk: Chunk) {
        if self.trace {
            eprintln!("   bytes {:?}", String::from_utf8_lossy(&chunk.bytes));
        }
        if chunk.bytes.is_empty() {
            self.a.receive(&[]);
            self.b.receive(&[]);
            // Nothing to read, but a write as after any input.
            self.model.advance();
            return self.after_op();
        }
        let mut start = 0;
        let mut outputs_b = Vec::new();
        let mut written_b = Vec::new();
        for at in 0..chunk.bytes.len() {
            let byte = &chunk.bytes[at..at + 1];
            let mark = chunk.marks[at];
            self.b.receive(byte);
            let outputs = drain(&mut self.b);
            if self.model.framing != Framing::Unknown || !self.model.pushes() {
                self.model.byte(mark, &chunk.meanings);
                let expected = std::mem::take(&mut self.model.expected);
                check_outputs(&outputs, &expected, "B, a byte");
            } else {
                for output in &outputs {
                    self.model.accept(output);
                }
                if self.model.step == (Phase::InStep { running: None })
                    && !matches!(mark, Mark::Delimiter)
                    && !self.b.is_in_step()
                {
                    // A message came in garbage with nothing asked.
                    self.model.lose_step();
                }
                self.model.byte(mark, &chunk.meanings);
                self.model.expected.clear();
            }
            self.model.advance();
            let written = transmitted(&mut self.b);
            assert_eq!(
                String::from_utf8_lossy(&written),
                String::from_utf8_lossy(&std::mem::take(&mut self.model.transmit)),
                "B wrote, after byte {at}"
            );
            self.ledger.received(byte);
            for output in &outputs {
                self.ledger.output(output);
            }
            self.ledger.transmitted(&written);
            self.note(&outputs, &written);
            check_state(&self.b, &self.model, "B");
            let wrote = !written.is_empty();
            outputs_b.extend(outputs);
            written_b.extend(written);
            if wrote || at + 1 == chunk.bytes.len() {
                self.a.receive(&chunk.bytes[start..=at]);
                let outputs_a = drain(&mut self.a);
                assert_eq!(
                    outputs_a, outputs_b,
                    "A and B: outputs of bytes {start}..={at}"
                );
                let written_a = transmitted(&mut self.a);
                assert_eq!(
                    written_a, written_b,
                    "A and B: written after bytes {start}..={at}"
                );
                check_state(&self.a, &self.model, "A");
                start = at + 1;
                outputs_b.clear();
                written_b.clear();
            }
        }
    }

    /// After an operation other than `receive`: the same outputs and writes
    /// from both machines, those of the model, and the same state.
    fn after_op(&mut self) {
        let outputs = self.outputs();
        let expected = std::mem::take(&mut self.model.expected);
        check_outputs(&outputs, &expected, "A");
        self.check_writes();
        self.check_state();
    }

    /// The outputs of both (the same), through the ledger.
    fn outputs(&mut self) -> Vec<AgentOutput> {
        let outputs = drain(&mut self.a);
        assert_eq!(outputs, drain(&mut self.b), "A and B: outputs");
        for output in &outputs {
            self.ledger.output(output);
            if self.trace {
                eprintln!("   -> {output:?}");
            }
        }
        outputs
    }

    fn check_writes(&mut self) {
        let written = transmitted(&mut self.a);
        assert_eq!(written, transmitted(&mut self.b), "A and B: written");
        assert_eq!(
            String::from_utf8_lossy(&written),
            String::from_utf8_lossy(&std::mem::take(&mut self.model.transmit)),
            "written"
        );
        self.ledger.transmitted(&written);
        self.note(&[], &written);
    }

    fn check_state(&self) {
        check_state(&self.a, &self.model, "A");
        check_state(&self.b, &self.model, "B");
    }

    /// Traces, and keeps the sync numbers written for the pieces.
    fn note(&mut self, outputs: &[AgentOutput], written: &[u8]) {
        if let Some(sync) = self.ledger.sync {
            if self.syncs.last() != Some(&sync) {
                self.syncs.push(sync);
            }
        }
        if self.trace {
            for output in outputs {
                eprintln!("   -> {output:?}");
            }
            if !written.is_empty() {
                eprintln!("   <- {:?}", String::from_utf8_lossy(written));
            }
        }
    }

    /// Closes both machines; every id must have ended.
    fn finish(&mut self) {
        self.step(Op::End(EndKind::Close));
        assert!(self.a.is_ended() && self.b.is_ended());
        for id in self.issued.clone() {
            assert!(
                !self.a.cancel(id) && !self.b.cancel(id),
                "cancel({id}) after the end"
            );
        }
        let name = NAMES[0];
        assert_eq!(self.a.execute(name, &()), Err(SendError::Closed));
        self.a.receive(b"\xff{\"return\": 1}\n{\"return\": {}}\n");
        self.a.receive_eof();
        assert_eq!(self.a.poll_output(), None, "an output after the end");
        assert_eq!(self.a.poll_transmit(), None, "a write after the end");
        self.ledger.finish();
        self.c.ledger.finish();
    }
}

/// The id `which` names among `issued`: the n-th most recent, or any.
fn pick(issued: &[RequestId], which: CancelId) -> Option<RequestId> {
    match which {
        CancelId::Issued(n) => {
            let len = issued.len();
            (len > 0).then(|| issued[len - 1 - usize::from(n) % len])
        }
        CancelId::Any(n) => Some(any_id(n)),
    }
}

/// A machine given every `receive` whole. Its state may differ from `A`'s
/// (which is cut where `B` wrote): no model follows it, only its ledger and
/// a liveness check.
struct Uncut {
    agent: Agent,
    ledger: Ledger,
    issued: Vec<RequestId>,
}

impl Uncut {
    fn execute(&mut self, name: &str, arguments: &Arguments, map: &BTreeMap<&str, u32>) {
        let got = match arguments {
            Arguments::NotObject(n) => self.agent.execute(name, n),
            Arguments::None => self.agent.execute(name, &()),
            Arguments::Object(_) => self.agent.execute(name, map),
        };
        if self.ledger.ended {
            assert_eq!(got, Err(SendError::Closed), "C: execute after the end");
        }
        if let Ok(id) = got {
            self.ledger.issued(id.get());
            self.issued.push(id);
        }
        self.settle();
    }

    fn cancel(&mut self, which: CancelId) {
        if let Some(id) = pick(&self.issued, which) {
            let got = self.agent.cancel(id);
            self.ledger.cancelled(id.get(), got);
            self.settle();
        }
    }

    fn receive(&mut self, bytes: &[u8]) {
        self.agent.receive(bytes);
        if !self.ledger.ended {
            self.ledger.received(bytes);
        }
        self.settle();
    }

    /// Its outputs and writes through the ledger; then, at rest, commands
    /// waiting are either behind one running or behind a sync that is out.
    fn settle(&mut self) {
        for output in drain(&mut self.agent) {
            self.ledger.output(&output);
        }
        let written = transmitted(&mut self.agent);
        self.ledger.transmitted(&written);
        if self.agent.queued() > 0 {
            let ok = match self.agent.is_in_step() {
                true => self.agent.running().is_some(),
                false => self.ledger.sync_live,
            };
            assert!(
                ok,
                "C: {} commands wait, and nothing is out",
                self.agent.queued()
            );
        }
    }
}

/// A `RequestId` for `n`, which need not have been issued.
fn any_id(n: u64) -> RequestId {
    Agent::new(AgentConfig::default().first_id(n))
        .execute("any", &())
        .expect("a fresh machine takes a command")
}

fn check_outputs(outputs: &[AgentOutput], expected: &[Expected], what: &str) {
    assert!(
        outputs.len() == expected.len() && expected.iter().zip(outputs).all(|(e, o)| e.matches(o)),
        "{what}: outputs {outputs:#?}\nexpected {expected:#?}"
    );
}

fn check_state(agent: &Agent, model: &Model, what: &str) {
    let running = match model.step {
        Phase::InStep { running } => running,
        _ => None,
    };
    assert_eq!(
        agent.is_in_step(),
        matches!(model.step, Phase::InStep { .. }),
        "{what}: in step ({:?})",
        model.step
    );
    assert_eq!(
        agent.running().map(RequestId::get),
        running,
        "{what}: running"
    );
    assert_eq!(agent.queued(), model.queue.len(), "{what}: queued");
    assert_eq!(
        agent.is_ended(),
        model.step == Phase::Ended,
        "{what}: ended"
    );
}

// ---------------------------------------------------------------------------
// `RoundTrip`.

/// Our syncs are numbered from here on: no leftover carries such a number.
const ROUND_TRIP_SYNC_BASE: u64 = 1 << 40;

#[derive(Arbitrary, Debug)]
struct RoundTrip {
    first_sync_id: u16,
    /// Arbitrary bytes of an earlier conversation (`0xFF` bytes left out:
    /// after one, garbage could spell our sync's reply).
    junk: Vec<u8>,
    /// Then these.
    leftovers: Vec<Leftover>,
    steps: Vec<RoundTripStep>,
}

#[derive(Arbitrary, Debug)]
enum Leftover {
    /// Another client's sync reply: `0xFF{"return": N}`.
    OtherSync(u32),
    /// A reply nobody waits for.
    Stale(u8),
    /// An error without id (as the agent answers a `0xFF`).
    Error,
    /// The first bytes of a reply.
    Half { value: u32, cut: u8 },
    /// A lone `0xFF`.
    Delimiter,
}

#[derive(Arbitrary, Debug)]
enum RoundTripStep {
    Execute {
        name: u8,
        answer: Answer,
    },
    /// Up to n bytes each way (0: all there are).
    Pump {
        to_server: u8,
        to_agent: u8,
    },
}

/// How the server answers a command.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Answer {
    Return(u32),
    Error(u8),
}

impl Answer {
    fn expected(self) -> Outcome {
        match self {
            Answer::Return(n) => Ok(n.to_string()),
            Answer::Error(n) => Err((
                "GenericError".to_string(),
                DESCS[usize::from(n) % DESCS.len()].1.to_string(),
            )),
        }
    }
}

struct Pair {
    agent: Agent,
    server: AgentServer,
    /// Written by the agent, not yet read by the server; and the other way.
    to_server: VecDeque<u8>,
    to_agent: VecDeque<u8>,
    /// How the server answers each command, by id.
    answers: BTreeMap<u64, Answer>,
    /// The commands the server read: id and name.
    seen: Vec<(u64, String)>,
    replies: Vec<(u64, Outcome)>,
    synced: usize,
    trace: bool,
}

impl RoundTrip {
    fn run(&self, trace: bool) {
        let config = AgentConfig::default()
            .first_sync_id(ROUND_TRIP_SYNC_BASE + u64::from(self.first_sync_id));
        let mut pair = Pair {
            agent: Agent::new(config),
            server: AgentServer::new(),
            to_server: VecDeque::new(),
            to_agent: VecDeque::new(),
            answers: BTreeMap::new(),
            seen: Vec::new(),
            replies: Vec::new(),
            synced: 0,
            trace,
        };
        let junk: Vec<u8> = self.junk.iter().copied().filter(|&b| b != 0xFF).collect();
        pair.server.send_raw(&junk);
        for leftover in &self.leftovers {
            let bytes = match *leftover {
                Leftover::OtherSync(n) => format!("\u{0}{{\"return\": {n}}}\n"),
                Leftover::Stale(id) => format!("{{\"return\": {{}}, \"id\": {id}}}\n"),
                Leftover::Error => format!(
                    "{{\"error\": {{\"class\": \"GenericError\", \"desc\": \"{}\"}}}}\n",
                    DESCS[0].0
                ),
                Leftover::Half { value, cut } => {
                    let text = format!("{{\"return\": {{\"value\": {value}}}}}");
                    text[..1 + usize::from(cut) % (text.len() - 1)].to_string()
                }
                Leftover::Delimiter => "\u{0}".to_string(),
            };
            let bytes: Vec<u8> = bytes
                .into_bytes()
                .into_iter()
                .map(|b| if b == 0 { 0xFF } else { b })
                .collect();
            pair.server.send_raw(&bytes);
        }
        let mut expected = Vec::new();
        let mut names = Vec::new();
        for step in self.steps.iter().take(MAX_OPS) {
            match *step {
                RoundTripStep::Execute { name, answer } => {
                    // Not `guest-sync`, which the server answers itself.
                    let name = NAMES[usize::from(name) % (NAMES.len() - 1)];
                    let id = pair
                        .agent
                        .execute(name, &())
                        .expect("the agent takes commands");
                    pair.answers.insert(id.get(), answer);
                    expected.push((id.get(), answer.expected()));
                    names.push((id.get(), name.to_string()));
                }
                RoundTripStep::Pump {
                    to_server,
                    to_agent,
                } => pair.pump(usize::from(to_server), usize::from(to_agent)),
            }
        }
        // Then until nothing moves.
        for _ in 0..4 * expected.len() + 8 {
            pair.pump(0, 0);
        }
        pair.pump(0, 0);
        assert!(
            pair.to_server.is_empty() && pair.to_agent.is_empty(),
            "still moving"
        );
        assert_eq!(pair.seen, names, "the commands the server read");
        assert_eq!(pair.replies, expected, "the replies");
        assert_eq!(pair.synced, usize::from(!expected.is_empty()), "syncs");
        assert!(pair.agent.is_in_step() || expected.is_empty());
        assert_eq!(pair.agent.queued(), 0);
        assert_eq!(pair.agent.running(), None);
    }
}

impl Pair {
    /// Moves up to `to_server` bytes to the server and `to_agent` bytes to
    /// the agent (0: all), the server answering what it reads.
    fn pump(&mut self, to_server: usize, to_agent: usize) {
        while let Some(bytes) = self.agent.poll_transmit() {
            self.to_server.extend(bytes.iter());
        }
        let n = if to_server == 0 {
            self.to_server.len()
        } else {
            to_server.min(self.to_server.len())
        };
        let bytes: Vec<u8> = self.to_server.drain(..n).collect();
        self.server.receive(&bytes);
        while let Some(output) = self.server.poll_output() {
            match output {
                AgentServerOutput::Command(command) => {
                    let id = command
                        .id
                        .as_ref()
                        .and_then(|id| id.as_u64())
                        .expect("commands carry a number id");
                    self.seen.push((id, command.name.clone()));
                    match self
                        .answers
                        .get(&id)
                        .copied()
                        .expect("a command we executed")
                    {
                        Answer::Return(n) => self.server.reply_ok(&command, &n).expect("a number"),
                        Answer::Error(n) => self.server.reply_error(
                            &command,
                            &QmpError::generic(DESCS[usize::from(n) % DESCS.len()].1),
                        ),
                    }
                }
                AgentServerOutput::Synced { .. } => {}
                AgentServerOutput::End(end) => panic!("the server ended: {end:?}"),
            }
        }
        while let Some(bytes) = self.server.poll_transmit() {
            self.to_agent.extend(bytes.iter());
        }
        let n = if to_agent == 0 {
            self.to_agent.len()
        } else {
            to_agent.min(self.to_agent.len())
        };
        let bytes: Vec<u8> = self.to_agent.drain(..n).collect();
        if self.trace && !bytes.is_empty() {
            eprintln!("   agent reads {:?}", String::from_utf8_lossy(&bytes));
        }
        self.agent.receive(&bytes);
        while let Some(output) = self.agent.poll_output() {
            if self.trace {
                eprintln!("   -> {output:?}");
            }
            match output {
                AgentOutput::Synced { .. } => self.synced += 1,
                AgentOutput::Reply(reply) => {
                    let result = match reply.result {
                        Ok(value) => Ok(value.as_str().to_string()),
                        Err(e) => Err((e.class.as_str().to_string(), e.desc)),
                    };
                    self.replies.push((reply.id.get(), result));
                }
                AgentOutput::End(end) => panic!("the channel ended: {end:?}"),
            }
        }
    }
}
