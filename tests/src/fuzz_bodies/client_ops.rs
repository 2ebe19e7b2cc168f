//! The `client_ops` body and the model it checks the client against; see
//! [`client_ops`].

use super::{CheckedClient, WireCommand};
use arbitrary::{Arbitrary, Unstructured};
use qmp_proto::{ClientConfig, ClientOutput, End, ProtocolError, SendError};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The most operations one input runs.
const MAX_OPS: usize = 256;

/// How the client is set up.
#[derive(Arbitrary, Debug)]
struct Setup {
    want_oob: bool,
    /// The window: 1 to 4.
    max_in_flight: u8,
    /// The queue bound: 0 to 7.
    max_queued: u8,
    first_id: FirstId,
    /// The peer writes `pretty=on` messages over many CRLF lines.
    pretty: bool,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FirstId {
    Zero,
    Small(u8),
    /// Near the end of the id space: `u64::MAX - n`.
    NearMax(u8),
}

/// One step.
#[derive(Arbitrary, Debug)]
enum Op {
    /// `execute` (or `execute_oob`) of a command.
    Execute {
        name: Name,
        arguments: Arguments,
        oob: bool,
    },
    /// `forget` of the n-th id `execute` returned (modulo their number).
    Forget(u8),
    /// The peer queues a greeting, offering OOB or not.
    Greeting { oob: bool },
    /// The peer queues a reply.
    Reply {
        id: ReplyId,
        result: ReplyResult,
        /// Write `id` before `return`/`error` rather than after.
        id_first: bool,
    },
    /// The peer queues an event.
    Event {
        name: Name,
        data: Option<Payload>,
        seconds: i64,
        microseconds: i64,
    },
    /// The peer queues arbitrary bytes.
    Garbage(Vec<u8>),
    /// The next n bytes of the peer's queue reach the client.
    Deliver(u16),
    /// All of the peer's queue reaches the client.
    DeliverAll,
    /// What the client has to write is taken (and checked).
    PollTransmit,
    /// The peer closes the stream.
    Eof,
    /// `close`.
    Close,
}

/// A command or event name.
#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Any(String),
}

impl Name {
    fn text(&self) -> String {
        const KNOWN: [&str; 6] = ["query-status", "stop", "cont", "STOP", "RESUME", "quit"];
        match self {
            Name::Known(n) => KNOWN[usize::from(*n) % KNOWN.len()].to_string(),
            Name::Any(name) => name.clone(),
        }
    }
}

/// Command arguments: `null` (none), an object, or a value that is not an
/// object (refused with [`SendError::ArgumentsNotObject`]).
#[derive(Arbitrary, Debug)]
enum Arguments {
    None,
    Object(Vec<(String, Scalar)>),
    NotObject(Scalar),
}

impl Arguments {
    fn value(&self) -> Value {
        match self {
            Arguments::None => Value::Null,
            Arguments::Object(members) => object(members),
            Arguments::NotObject(scalar) => scalar.value(),
        }
    }
}

/// The id member of a reply.
#[derive(Arbitrary, Debug)]
enum ReplyId {
    /// None at all.
    Absent,
    /// The n-th id the client allocated (its `qmp_capabilities` included),
    /// modulo their number.
    Allocated(u8),
    /// Any integer: most likely not one of ours.
    Number(u64),
    /// A string: never one of ours.
    Text(String),
    /// `null`: never one of ours.
    Null,
}

#[derive(Arbitrary, Debug)]
enum ReplyResult {
    Return(Payload),
    Error { class: Class, desc: String },
}

#[derive(Arbitrary, Debug)]
enum Class {
    Generic,
    CommandNotFound,
    DeviceNotFound,
    Other(String),
}

impl Class {
    fn text(&self) -> String {
        match self {
            Class::Generic => "GenericError".to_string(),
            Class::CommandNotFound => "CommandNotFound".to_string(),
            Class::DeviceNotFound => "DeviceNotFound".to_string(),
            Class::Other(name) => name.clone(),
        }
    }
}

/// A return value or event data.
#[derive(Arbitrary, Debug)]
enum Payload {
    Scalar(Scalar),
    List(Vec<Scalar>),
    Object(Vec<(String, Scalar)>),
    Nested(Vec<(String, Vec<Scalar>)>),
}

impl Payload {
    fn value(&self) -> Value {
        match self {
            Payload::Scalar(scalar) => scalar.value(),
            Payload::List(items) => Value::Array(items.iter().map(Scalar::value).collect()),
            Payload::Object(members) => object(members),
            Payload::Nested(members) => Value::Object(
                members
                    .iter()
                    .map(|(key, items)| {
                        let items = items.iter().map(Scalar::value).collect();
                        (key.clone(), Value::Array(items))
                    })
                    .collect(),
            ),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Text(String),
}

impl Scalar {
    fn value(&self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Int(n) => Value::from(*n),
            Scalar::Uint(n) => Value::from(*n),
            Scalar::Text(text) => Value::String(text.clone()),
        }
    }
}

fn object(members: &[(String, Scalar)]) -> Value {
    Value::Object(
        members
            .iter()
            .map(|(key, scalar)| (key.clone(), scalar.value()))
            .collect::<Map<_, _>>(),
    )
}

/// An object whose members are written in the given order.
struct Ordered<'a>(Vec<(&'a str, Value)>);

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

// ---------------------------------------------------------------------------
// The model.

/// A server message the model knows the meaning of.
#[derive(Debug, Clone)]
enum Message {
    Greeting {
        oob: bool,
    },
    Reply {
        /// `None`: no id member; `Some(None)`: an id that is no integer.
        id: Option<Option<u64>>,
        result: Result<Value, (String, String)>,
    },
    Event {
        name: String,
        data: Option<Value>,
        timestamp: (i64, i64),
    },
}

/// What the peer has queued: a message, or garbage, at `start..end` of the
/// outbox (a message's CRLF is not part of it).
#[derive(Debug)]
struct Segment {
    start: usize,
    end: usize,
    message: Option<Message>,
}

/// An output the model expects.
#[derive(Debug, Clone, PartialEq)]
enum Expected {
    Greeting {
        offers_oob: bool,
    },
    Ready {
        oob: bool,
    },
    Reply {
        id: u64,
        result: Result<Value, (String, String)>,
    },
    Event {
        name: String,
        data: Option<Value>,
        timestamp: (i64, i64),
    },
    UnattributedError(String, String),
    End(ExpectedEnd),
}

#[derive(Debug, Clone, PartialEq)]
enum ExpectedEnd {
    PeerClosed,
    Local,
    Truncated(usize),
    BadGreeting,
    UnexpectedMessage,
    NegotiationFailed(String, String),
}

impl Expected {
    fn matches(&self, output: &ClientOutput) -> bool {
        let qmp_error = |e: &qmp_proto::QmpError| (e.class.as_str().to_string(), e.desc.clone());
        match (self, output) {
            (Expected::Greeting { offers_oob }, ClientOutput::Greeting(greeting)) => {
                greeting.offers(&qmp_proto::Capability::Oob) == *offers_oob
            }
            (Expected::Ready { oob }, ClientOutput::Ready { oob: got }) => oob == got,
            (Expected::Reply { id, result }, ClientOutput::Reply(reply)) => {
                let got = match &reply.result {
                    Ok(raw) => Ok(raw.decode::<Value>().ok()),
                    Err(error) => Err(qmp_error(error)),
                };
                let expected = match result {
                    Ok(value) => Ok(Some(value.clone())),
                    Err(error) => Err(error.clone()),
                };
                reply.id.get() == *id && got == expected
            }
            (
                Expected::Event {
                    name,
                    data,
                    timestamp,
                },
                ClientOutput::Event(event),
            ) => {
                let got_data = event.data.as_ref().map(|raw| raw.decode::<Value>().ok());
                let expected_data = data.clone().map(Some);
                event.name == *name
                    && got_data == expected_data
                    && (event.timestamp.seconds, event.timestamp.microseconds) == *timestamp
            }
            (Expected::UnattributedError(class, desc), ClientOutput::UnattributedError(e)) => {
                qmp_error(e) == (class.clone(), desc.clone())
            }
            (Expected::End(expected), ClientOutput::End(end)) => match (expected, end) {
                (ExpectedEnd::PeerClosed, End::PeerClosed) => true,
                (ExpectedEnd::Local, End::Local) => true,
                (
                    ExpectedEnd::Truncated(n),
                    End::Protocol(ProtocolError::Truncated { buffered }),
                ) => n == buffered,
                (ExpectedEnd::BadGreeting, End::Protocol(ProtocolError::BadGreeting { .. })) => {
                    true
                }
                (
                    ExpectedEnd::UnexpectedMessage,
                    End::Protocol(ProtocolError::UnexpectedMessage { .. }),
                ) => true,
                (
                    ExpectedEnd::NegotiationFailed(class, desc),
                    End::Protocol(ProtocolError::NegotiationFailed(e)),
                ) => qmp_error(e) == (class.clone(), desc.clone()),
                _ => false,
            },
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingGreeting,
    Negotiating { id: u64 },
    Ready,
    Ended,
}

#[derive(Debug, Clone, Copy)]
struct Request {
    oob: bool,
    sent: bool,
    forgotten: bool,
}

/// What the client must do, written from its documentation: negotiation on
/// the greeting, the queue behind a window of in-band commands, forgotten
/// commands keeping their place until answered, stray replies counted and
/// dropped, the end once.
struct Model {
    max_in_flight: usize,
    max_queued: usize,
    want_oob: bool,
    phase: Phase,
    oob: bool,
    eof: bool,
    next_id: u64,
    /// Every id allocated, `qmp_capabilities` included, for replies to pick.
    allocated: Vec<u64>,
    requests: BTreeMap<u64, Request>,
    /// Queued commands, in order, with what they will look like on the wire.
    queue: VecDeque<WireCommand>,
    in_flight: usize,
    unknown: u64,
    late: u64,
    /// Commands written and not yet taken by `poll_transmit`.
    wire: Vec<WireCommand>,
    /// Outputs expected since the last check.
    expected: Vec<Expected>,
    /// Error replies without an id not matched to a command yet, each with
    /// the commands on the wire when it came: one of them is its command.
    idless: Vec<((String, String), BTreeSet<u64>)>,
}

impl Model {
    fn new(config: &ClientConfig) -> Self {
        Model {
            max_in_flight: config.max_in_flight,
            max_queued: config.max_queued,
            want_oob: config.want_oob,
            phase: Phase::AwaitingGreeting,
            oob: false,
            eof: false,
            next_id: config.first_id,
            allocated: Vec::new(),
            requests: BTreeMap::new(),
            queue: VecDeque::new(),
            in_flight: 0,
            unknown: 0,
            late: 0,
            wire: Vec::new(),
            expected: Vec::new(),
            idless: Vec::new(),
        }
    }

    /// QEMU queues at most 8 in-band commands with OOB on.
    fn window(&self) -> usize {
        match self.oob {
            true => self.max_in_flight.min(qmp_proto::OOB_QUEUE_LIMIT),
            false => self.max_in_flight,
        }
    }

    fn allocate(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = id.wrapping_add(1);
        self.allocated.push(id);
        id
    }

    fn submit(&mut self, name: String, arguments: &Value, oob: bool) -> Result<u64, SendError> {
        if self.phase == Phase::Ended || self.eof {
            return Err(SendError::Closed);
        }
        let ready = self.phase == Phase::Ready;
        if oob && !ready {
            return Err(SendError::NotReady);
        }
        if oob && !self.oob {
            return Err(SendError::OobNotNegotiated);
        }
        let to_wire = oob || (ready && self.in_flight < self.window());
        if !to_wire && self.queue.len() >= self.max_queued {
            return Err(SendError::QueueFull {
                limit: self.max_queued,
            });
        }
        let arguments = match arguments {
            Value::Null => None,
            Value::Object(_) => Some(arguments.clone()),
            _ => return Err(SendError::ArgumentsNotObject),
        };
        let id = self.allocate();
        let command = WireCommand {
            id,
            name,
            arguments,
            oob,
        };
        self.requests.insert(
            id,
            Request {
                oob,
                sent: to_wire,
                forgotten: false,
            },
        );
        if to_wire {
            self.in_flight += usize::from(!oob);
            self.wire.push(command);
        } else {
            self.queue.push_back(command);
        }
        Ok(id)
    }

    fn forget(&mut self, id: u64) -> bool {
        let Some(request) = self.requests.get_mut(&id) else {
            return false;
        };
        if request.forgotten {
            return false;
        }
        if request.sent {
            request.forgotten = true;
        } else {
            self.requests.remove(&id);
            self.queue.retain(|command| command.id != id);
        }
        true
    }

    fn flush(&mut self) {
        while self.phase == Phase::Ready && self.in_flight < self.window() {
            let Some(command) = self.queue.pop_front() else {
                break;
            };
            if let Some(request) = self.requests.get_mut(&command.id) {
                request.sent = true;
                self.in_flight += 1;
                self.wire.push(command);
            }
        }
    }

    fn end(&mut self, end: ExpectedEnd) {
        if self.phase == Phase::Ended {
            return;
        }
        self.phase = Phase::Ended;
        self.queue.clear();
        self.requests.clear();
        self.idless.clear();
        self.in_flight = 0;
        self.expected.push(Expected::End(end));
    }

    fn receive(&mut self, message: Message) {
        match (self.phase, message) {
            (Phase::Ended, _) => {}
            (Phase::AwaitingGreeting, Message::Greeting { oob }) => {
                self.oob = self.want_oob && oob;
                let id = self.allocate();
                let arguments = self.oob.then(|| serde_json::json!({"enable": ["oob"]}));
                self.wire.push(WireCommand {
                    id,
                    name: "qmp_capabilities".to_string(),
                    arguments,
                    oob: false,
                });
                self.phase = Phase::Negotiating { id };
                self.expected.push(Expected::Greeting { offers_oob: oob });
            }
            // In any phase, before the greeting too (some QEMU versions
            // send one first): the greeting is still awaited.
            (
                _,
                Message::Event {
                    name,
                    data,
                    timestamp,
                },
            ) => self.expected.push(Expected::Event {
                name,
                data,
                timestamp,
            }),
            (Phase::AwaitingGreeting, _) => self.end(ExpectedEnd::BadGreeting),
            (_, Message::Greeting { .. }) => self.end(ExpectedEnd::UnexpectedMessage),
            (Phase::Negotiating { id }, Message::Reply { id: got, result })
                if got == Some(Some(id)) =>
            {
                match result {
                    Ok(_) => {
                        self.phase = Phase::Ready;
                        self.expected.push(Expected::Ready { oob: self.oob });
                        self.flush();
                    }
                    Err((class, desc)) => self.end(ExpectedEnd::NegotiationFailed(class, desc)),
                }
            }
            // Only `qmp_capabilities` was sent: an id-less error answers it.
            (
                Phase::Negotiating { .. },
                Message::Reply {
                    id: None,
                    result: Err((class, desc)),
                },
            ) => self.end(ExpectedEnd::NegotiationFailed(class, desc)),
            (_, Message::Reply { id, result }) => self.reply(id, result),
        }
    }

    fn reply(&mut self, id: Option<Option<u64>>, result: Result<Value, (String, String)>) {
        let Some(id) = id else {
            match result {
                Err(error) => {
                    let on_the_wire: BTreeSet<u64> = (self.requests.iter())
                        .filter(|(_, request)| request.sent)
                        .map(|(id, _)| *id)
                        .collect();
                    if on_the_wire.is_empty() {
                        self.expected
                            .push(Expected::UnattributedError(error.0, error.1));
                    } else {
                        self.idless.push((error, on_the_wire));
                        self.match_idless();
                    }
                }
                Ok(_) => self.unknown += 1,
            }
            return;
        };
        let Some((id, request)) = id.and_then(|id| Some((id, *self.requests.get(&id)?))) else {
            self.unknown += 1;
            return;
        };
        if !request.sent {
            // The peer cannot know an id it was never sent.
            self.unknown += 1;
            return;
        }
        self.answered(id, request, result);
        for (_, candidates) in &mut self.idless {
            candidates.remove(&id);
        }
        self.match_idless();
    }

    fn answered(&mut self, id: u64, request: Request, result: Result<Value, (String, String)>) {
        self.requests.remove(&id);
        if !request.oob {
            self.in_flight -= 1;
        }
        if request.forgotten {
            self.late += 1;
        } else {
            self.expected.push(Expected::Reply { id, result });
        }
        self.flush();
    }

    /// An id-less error is, without OOB, the answer of the oldest command
    /// on the wire; with OOB, of the one command left of those on the wire
    /// when it came, or, when as many errors came with no other candidates,
    /// of the oldest. One with none left is unattributed.
    fn match_idless(&mut self) {
        while let Some((_, candidates)) = self.idless.first() {
            let within = self
                .idless
                .iter()
                .filter(|(_, c)| c.is_subset(candidates))
                .count();
            if self.oob && candidates.len() > 1 && within < candidates.len() {
                return;
            }
            let oldest = candidates.first().copied();
            let (error, _) = self.idless.remove(0);
            let found = oldest.and_then(|id| Some((id, *self.requests.get(&id)?)));
            let Some((id, request)) = found else {
                self.expected
                    .push(Expected::UnattributedError(error.0, error.1));
                continue;
            };
            for (_, candidates) in &mut self.idless {
                candidates.remove(&id);
            }
            self.answered(id, request, Err(error));
        }
    }

    /// The peer closed, `received` bytes of the outbox having reached the
    /// client, which ends inside `partial` if it is a message begun.
    fn at_eof(&mut self, partial: Option<usize>) {
        self.eof = true;
        match partial {
            Some(buffered) => self.end(ExpectedEnd::Truncated(buffered)),
            None => self.end(ExpectedEnd::PeerClosed),
        }
    }
}

// ---------------------------------------------------------------------------
// The driver.

/// The client machine driven by an arbitrary sequence of operations (built
/// from the input with `arbitrary`), checked after every step against a
/// model of what it must do.
///
/// The peer side is a byte queue ("outbox") that operations append whole
/// server messages (or garbage) to, and that a `Deliver` operation hands to
/// the client a few bytes at a time, so messages arrive cut anywhere and
/// interleaved with commands. As long as only well-formed messages have been
/// delivered the model is exact. Once garbage has been delivered, the
/// client's reading of it is not predicted any more, and only the
/// invariants that hold for any input are checked.
///
/// Checks after every step: while only well-formed messages were
/// delivered, the outputs, `execute` and `forget` results, commands written,
/// in-flight and queued counts, readiness, the unknown and late reply
/// counters and `is_pending` of every id are those of the model; always,
/// the invariants every client body checks (at most `max_in_flight` in-band
/// commands in flight, each id answered at most once and never after
/// `forget` said it forgot it, the end once and last, nothing after it).
pub fn client_ops(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(setup) = Setup::arbitrary(&mut u) else {
        return;
    };
    let first_id = match setup.first_id {
        FirstId::Zero => 0,
        FirstId::Small(n) => u64::from(n),
        FirstId::NearMax(n) => u64::MAX - u64::from(n),
    };
    let config = ClientConfig::default()
        .want_oob(setup.want_oob)
        .max_in_flight(usize::from(setup.max_in_flight % 4) + 1)
        .max_queued(usize::from(setup.max_queued % 8))
        .first_id(first_id);
    let mut driver = Driver {
        client: CheckedClient::new(config.clone()),
        model: Model::new(&config),
        exact: true,
        pretty: setup.pretty,
        outbox: Vec::new(),
        segments: VecDeque::new(),
        delivered: 0,
        received: 0,
        issued: Vec::new(),
    };
    if let Ok(ops) = u.arbitrary_iter::<Op>() {
        for op in ops.take(MAX_OPS) {
            let Ok(op) = op else { break };
            driver.step(op);
        }
    }
    driver.step(Op::DeliverAll);
    driver.step(Op::PollTransmit);
    driver.step(Op::Eof);
    driver.client.finish();
}

struct Driver {
    client: CheckedClient,
    model: Model,
    /// Only well-formed messages have reached the client: the model holds.
    exact: bool,
    pretty: bool,
    /// Everything the peer queued.
    outbox: Vec<u8>,
    /// The outbox's messages and garbage not yet wholly delivered.
    segments: VecDeque<Segment>,
    /// Bytes of the outbox handed to `receive`.
    delivered: usize,
    /// Bytes of the outbox the client took (`receive` before EOF and end).
    received: usize,
    /// Ids `execute` returned, for `forget` to pick from.
    issued: Vec<qmp_proto::RequestId>,
}

impl Driver {
    fn step(&mut self, op: Op) {
        match op {
            Op::Execute {
                name,
                arguments,
                oob,
            } => {
                let name = name.text();
                let arguments = arguments.value();
                let got = self.client.execute(&name, &arguments, oob);
                let expected = self.model.submit(name, &arguments, oob);
                if let Ok(id) = got {
                    self.issued.push(id);
                }
                if self.exact {
                    assert_eq!(got.map(|id| id.get()), expected, "execute");
                }
            }
            Op::Forget(n) => {
                if let Some(&id) = self.issued.get(usize::from(n) % self.issued.len().max(1)) {
                    let got = self.client.forget(id);
                    let expected = self.model.forget(id.get());
                    if self.exact {
                        assert_eq!(got, expected, "forget({id})");
                    }
                }
            }
            Op::Greeting { oob } => {
                let capabilities: Vec<&str> = if oob { vec!["oob"] } else { Vec::new() };
                let version = serde_json::json!({
                    "qemu": {"micro": 0, "minor": 2, "major": 9},
                    "package": "fuzz"
                });
                let greeting =
                    serde_json::json!({"version": version, "capabilities": capabilities});
                self.queue_message(Ordered(vec![("QMP", greeting)]), Message::Greeting { oob });
            }
            Op::Reply {
                id,
                result,
                id_first,
            } => {
                let allocated = &self.model.allocated;
                let (id_value, id_model) = match id {
                    ReplyId::Absent => (None, None),
                    ReplyId::Allocated(n) => {
                        match allocated.get(usize::from(n) % allocated.len().max(1)) {
                            Some(&id) => (Some(Value::from(id)), Some(Some(id))),
                            None => (Some(Value::from(n)), Some(Some(u64::from(n)))),
                        }
                    }
                    ReplyId::Number(n) => (Some(Value::from(n)), Some(Some(n))),
                    ReplyId::Text(text) => (Some(Value::String(text)), Some(None)),
                    ReplyId::Null => (Some(Value::Null), Some(None)),
                };
                let (member, result) = match result {
                    ReplyResult::Return(payload) => {
                        let value = payload.value();
                        (("return", value.clone()), Ok(value))
                    }
                    ReplyResult::Error { class, desc } => {
                        let class = class.text();
                        let error = serde_json::json!({"class": class, "desc": desc});
                        (("error", error), Err((class, desc)))
                    }
                };
                let mut members = vec![member];
                if let Some(id) = id_value {
                    members.insert(usize::from(!id_first), ("id", id));
                }
                self.queue_message(
                    Ordered(members),
                    Message::Reply {
                        id: id_model,
                        result,
                    },
                );
            }
            Op::Event {
                name,
                data,
                seconds,
                microseconds,
            } => {
                let name = name.text();
                let data = data.map(|payload| payload.value());
                let timestamp =
                    serde_json::json!({"seconds": seconds, "microseconds": microseconds});
                let mut members = vec![
                    ("timestamp", timestamp),
                    ("event", Value::from(name.clone())),
                ];
                if let Some(data) = &data {
                    members.push(("data", data.clone()));
                }
                self.queue_message(
                    Ordered(members),
                    Message::Event {
                        name,
                        data,
                        timestamp: (seconds, microseconds),
                    },
                );
            }
            Op::Garbage(bytes) => {
                if !bytes.is_empty() {
                    let start = self.outbox.len();
                    self.outbox.extend_from_slice(&bytes);
                    self.segments.push_back(Segment {
                        start,
                        end: self.outbox.len(),
                        message: None,
                    });
                }
            }
            Op::Deliver(n) => self.deliver(usize::from(n)),
            Op::DeliverAll => self.deliver(self.outbox.len()),
            Op::PollTransmit => {
                let commands = self.client.transmit();
                if self.exact {
                    assert_eq!(commands, self.model.wire, "the commands written");
                }
                self.model.wire.clear();
            }
            Op::Eof => {
                self.client.client.receive_eof();
                let partial = self
                    .segments
                    .front()
                    .filter(|segment| segment.start < self.received)
                    .map(|segment| self.received - segment.start);
                self.model.at_eof(partial);
            }
            Op::Close => {
                self.client.client.close();
                self.model.end(ExpectedEnd::Local);
            }
        }
        self.check();
    }

    /// Appends a message to the outbox, compact or pretty, ended by CRLF.
    fn queue_message(&mut self, members: Ordered<'_>, message: Message) {
        let text = if self.pretty {
            serde_json::to_string_pretty(&members).map(|text| text.replace('\n', "\r\n"))
        } else {
            serde_json::to_string(&members)
        };
        let text = text.expect("serializable");
        let start = self.outbox.len();
        self.outbox.extend_from_slice(text.as_bytes());
        self.segments.push_back(Segment {
            start,
            end: self.outbox.len(),
            message: Some(message),
        });
        self.outbox.extend_from_slice(b"\r\n");
    }

    /// Hands the next `n` bytes of the outbox to the client, and the
    /// messages they complete to the model.
    fn deliver(&mut self, n: usize) {
        let end = (self.delivered + n).min(self.outbox.len());
        self.client
            .client
            .receive(&self.outbox[self.delivered..end]);
        self.delivered = end;
        if self.model.eof || self.model.phase == Phase::Ended {
            return; // the client drops them, and so does the model
        }
        self.received = end;
        while let Some(segment) = self.segments.front() {
            if segment.start >= end {
                break;
            }
            if segment.message.is_none() {
                // Garbage reached the client: its reading is not predicted.
                self.exact = false;
            }
            if segment.end > end {
                break;
            }
            let segment = self.segments.pop_front().expect("just seen");
            if let Some(message) = segment.message {
                self.model.receive(message);
            }
        }
    }

    /// Drains the client, then compares it with the model while exact.
    fn check(&mut self) {
        let outputs = self.client.drain().to_vec();
        let expected = std::mem::take(&mut self.model.expected);
        if !self.exact {
            return;
        }
        assert!(
            outputs.len() == expected.len()
                && expected.iter().zip(&outputs).all(|(e, o)| e.matches(o)),
            "outputs {outputs:#?}\nexpected {expected:#?}"
        );
        let client = &self.client.client;
        let model = &self.model;
        assert_eq!(client.in_flight(), model.in_flight, "in flight");
        assert_eq!(client.queued(), model.queue.len(), "queued");
        assert_eq!(client.is_ready(), model.phase == Phase::Ready, "ready");
        assert_eq!(client.is_ended(), model.phase == Phase::Ended, "ended");
        assert_eq!(client.oob_enabled(), model.oob, "OOB");
        assert_eq!(client.unknown_replies(), model.unknown, "unknown replies");
        assert_eq!(client.late_replies(), model.late, "late replies");
        for &id in &self.issued {
            let pending = model.requests.get(&id.get()).is_some_and(|r| !r.forgotten);
            assert_eq!(client.is_pending(id), pending, "is_pending({id})");
        }
    }
}
