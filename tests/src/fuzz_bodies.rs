//! The bodies of the fuzz targets in `fuzz/`, as plain functions of the
//! fuzzer's input.
//!
//! Each body panics (an `assert!`) when an invariant breaks, and returns
//! normally otherwise. cargo-fuzz runs them under libFuzzer on nightly (the
//! files in `fuzz/fuzz_targets/` are one-line calls); `tests/fuzz_corpus.rs`
//! runs them on stable over every file of the checked-in corpus, crash
//! regressions included. They need nothing but `qmp-proto`, `serde_json` and
//! `arbitrary`, so the fuzz workspace builds this crate without its default
//! `runtimes` feature.
//!
//! | body | what it drives | what it checks |
//! | --- | --- | --- |
//! | [`framer`] | [`Framer`] | no panic; byte accounting; frames are the stream's bytes; same frames for any chunking; same frames as serde_json on valid streams |
//! | [`client_bytes`] | a [`Client`] after a real greeting | no panic; one end, last; same outputs for any chunking; invalid JSON is refused; each message read as serde_json reads it |
//! | [`client_ops`] | a [`Client`] under arbitrary operations | a model of the machine, step by step; the window; each reply once; forgotten ids stay silent |
//! | [`server_bytes`] | a [`Server`] | no panic; sane commands; every input answered once; valid JSON out; same outputs for any chunking |
//!
//! # Input layout of the byte-stream bodies
//!
//! [`framer`], [`client_bytes`] and [`server_bytes`] read a small header,
//! then the stream:
//!
//! - bytes 0 and 1: settings, which each body reads its own way;
//! - byte 2: `k`, how many chunk lengths follow (`k % 16`);
//! - the next `k` bytes: chunk lengths, taken in turn and cyclically until
//!   the stream is used up (a `0` is an empty push);
//! - the rest: the stream itself.
//!
//! With `k = 0` the stream is pushed in one piece. Each body also pushes it
//! whole and checks that the outputs do not depend on the chunking. A seed
//! made from a capture is `[settings0, settings1, 0]` followed by the
//! capture's bytes.

use qmp_proto::framing::{FrameError, Framer};
use qmp_proto::{
    Client, ClientConfig, ClientOutput, End, ProtocolError, RawJson, RequestId, SendError, Server,
    ServerConfig, ServerOutput, Timestamp, DEFAULT_MAX_MESSAGE_SIZE,
};
use serde::de::IgnoredAny;
use serde_json::Value;
use std::collections::BTreeSet;

mod agent_ops;
mod client_ops;

pub use agent_ops::agent_ops;
pub use client_ops::client_ops;

/// Greetings the client bodies start from: the real ones of the captures in
/// `tests/captures/` (QEMU 7.2 and 10.0, compact and `pretty=on`), and one
/// without OOB, which no capture has.
pub const GREETINGS: [&str; 4] = [
    concat!(
        r#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "#,
        r#""package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}"#,
        "\r\n"
    ),
    concat!(
        r#"{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "#,
        r#""package": "Debian 1:10.0.2+ds-2+deb13u1~bpo12+1"}, "capabilities": ["oob"]}}"#,
        "\r\n"
    ),
    concat!(
        "{\r\n",
        "    \"QMP\": {\r\n",
        "        \"version\": {\r\n",
        "            \"qemu\": {\r\n",
        "                \"micro\": 2,\r\n",
        "                \"minor\": 0,\r\n",
        "                \"major\": 10\r\n",
        "            },\r\n",
        "            \"package\": \"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1\"\r\n",
        "        },\r\n",
        "        \"capabilities\": [\r\n",
        "            \"oob\"\r\n",
        "        ]\r\n",
        "    }\r\n",
        "}\r\n",
    ),
    concat!(
        r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 9}, "package": ""}, "#,
        r#""capabilities": []}}"#,
        "\r\n"
    ),
];

// ---------------------------------------------------------------------------
// Input layout shared by the byte-stream bodies.

/// A byte-stream body's input: settings, chunking, stream (see the
/// [module docs](self)).
struct Input<'a> {
    settings: [u8; 2],
    lengths: &'a [u8],
    stream: &'a [u8],
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Self {
        let mut header = [0u8; 3];
        let taken = data.len().min(header.len());
        header[..taken].copy_from_slice(&data[..taken]);
        let rest = &data[taken..];
        let count = usize::from(header[2] % 16).min(rest.len());
        let (lengths, stream) = rest.split_at(count);
        Input {
            settings: [header[0], header[1]],
            lengths,
            stream,
        }
    }

    /// The stream cut as the chunk lengths say.
    fn chunks(&self) -> Vec<&'a [u8]> {
        if self.lengths.iter().all(|&len| len == 0) {
            return vec![self.stream];
        }
        let mut chunks = Vec::new();
        let mut rest = self.stream;
        // Some length is non-zero, so every round of the cycle makes progress.
        for &len in self.lengths.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at(usize::from(len).min(rest.len()));
            chunks.push(chunk);
            rest = tail;
        }
        chunks
    }
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

fn trim_start(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes {
        if !is_space(*first) {
            break;
        }
        bytes = rest;
    }
    bytes
}

/// The JSON values of `bytes`, a stream of them separated by whitespace;
/// `None` if it is not one.
fn json_values(bytes: &[u8]) -> Option<Vec<Value>> {
    serde_json::Deserializer::from_slice(bytes)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .ok()
}

/// Whether `raw` holds valid JSON text, as a payload handed out must.
fn assert_valid_payload(raw: &RawJson, what: &str) {
    assert!(
        !raw.as_str().is_empty() && serde_json::from_str::<IgnoredAny>(raw.as_str()).is_ok(),
        "{what} is not valid JSON: {raw:?}"
    );
}

// ---------------------------------------------------------------------------
// framer

/// What a framer gave for a stream: every `next_frame` result, in order, and
/// what `finish` said at the end.
#[derive(Debug, PartialEq, Eq)]
struct Framed {
    frames: Vec<Result<Vec<u8>, FrameError>>,
    finish: Result<(), FrameError>,
}

/// The splitter fed arbitrary bytes in arbitrary chunks.
///
/// Settings: byte 0 picks the size limit's scale (`% 4`: the default, then
/// byte 1 times 1, 16 or 256). Checks, after every call: every pushed byte is
/// either buffered or consumed, never more; each frame is non-empty, within
/// the limit, starts with no whitespace and is exactly the stream's bytes
/// that end where the consumed count says; between calls no more than the
/// limit is kept; `finish` leaves nothing behind. The frames and the
/// `finish` result are the same chunked and whole, and on a stream of valid
/// JSON objects, arrays and strings they are the values serde_json finds.
pub fn framer(data: &[u8]) {
    let input = Input::parse(data);
    let scale = usize::from(input.settings[1]);
    let max = match input.settings[0] % 4 {
        0 => DEFAULT_MAX_MESSAGE_SIZE,
        1 => scale,
        2 => scale * 16,
        _ => scale * 256,
    };
    let whole = frame_all(max, input.stream, &[input.stream]);
    let chunked = frame_all(max, input.stream, &input.chunks());
    assert_eq!(whole, chunked, "the chunking changed the frames");
    check_frames_against_serde(input.stream, Framer::new(max).max_message_size(), &whole);
}

/// Frames `chunks` (the pieces of `stream`), checking the invariants above.
fn frame_all(max: usize, stream: &[u8], chunks: &[&[u8]]) -> Framed {
    let mut framer = Framer::new(max);
    let max = framer.max_message_size();
    let mut pushed = 0usize;
    let mut frames = Vec::new();
    let accounted = |framer: &Framer, pushed: usize| {
        let consumed = usize::try_from(framer.consumed()).expect("fits");
        assert!(consumed <= pushed, "consumed {consumed} of {pushed} bytes");
        assert_eq!(
            consumed + framer.buffered(),
            pushed,
            "bytes lost or made up"
        );
        consumed
    };
    for chunk in chunks {
        framer.push(chunk);
        pushed += chunk.len();
        accounted(&framer, pushed);
        while let Some(frame) = framer.next_frame() {
            let end = accounted(&framer, pushed);
            match &frame {
                Ok(bytes) => {
                    assert!(!bytes.is_empty(), "empty frame");
                    assert!(bytes.len() <= max, "a frame of {} bytes", bytes.len());
                    assert!(!is_space(bytes[0]), "a frame starts with whitespace");
                    assert_eq!(
                        &stream[end - bytes.len()..end],
                        &bytes[..],
                        "a frame that is not the stream's bytes"
                    );
                }
                Err(FrameError::TooLarge { limit }) => assert_eq!(*limit, max),
                Err(other) => panic!("next_frame gave {other:?}"),
            }
            frames.push(frame.map(|bytes| bytes.to_vec()));
        }
        assert!(
            framer.buffered() <= max,
            "{} bytes kept with a limit of {max}",
            framer.buffered()
        );
    }
    let finish = framer.finish();
    if let Err(error) = &finish {
        assert!(
            matches!(error, FrameError::Truncated { buffered } if (1..=max).contains(buffered)),
            "finish gave {error:?}"
        );
    }
    assert_eq!(framer.buffered(), 0, "finish left bytes behind");
    assert_eq!(accounted(&framer, pushed), pushed);
    Framed { frames, finish }
}

/// On a stream of valid JSON objects, arrays and strings, each within the
/// limit, the frames must be the values serde_json parses.
fn check_frames_against_serde(stream: &[u8], max: usize, framed: &Framed) {
    let mut values = serde_json::Deserializer::from_slice(stream).into_iter::<IgnoredAny>();
    let mut expected = Vec::new();
    loop {
        let start = values.byte_offset();
        match values.next() {
            None => break,
            Some(Ok(_)) => {}
            Some(Err(_)) => return, // not such a stream: no reference
        }
        let value = trim_start(&stream[start..values.byte_offset()]);
        // Bare tokens are framed more loosely than JSON (`truefalse` is
        // one token), and oversize values are refused: no reference.
        if !matches!(value.first(), Some(b'{' | b'[' | b'"')) || value.len() > max {
            return;
        }
        expected.push(Ok(value.to_vec()));
    }
    let expected = Framed {
        frames: expected,
        finish: Ok(()),
    };
    assert_eq!(framed, &expected, "frames differ from serde_json's values");
}

// ---------------------------------------------------------------------------
// A client, and the invariants any use of it keeps.

/// A [`Client`] with the checks every body applies to it, whatever it is fed.
struct CheckedClient {
    client: Client,
    /// Every output so far.
    outputs: Vec<ClientOutput>,
    /// Every byte it gave to write so far.
    transmitted: Vec<u8>,
    /// Ids `execute` returned.
    issued: BTreeSet<u64>,
    /// Ids `forget` said it forgot.
    forgotten: BTreeSet<u64>,
    /// Ids a reply was given out for.
    replied: BTreeSet<u64>,
    /// Ids seen in commands on the wire (`qmp_capabilities` too).
    sent: BTreeSet<u64>,
    /// The end was given out.
    ended: bool,
}

/// A command the client wrote, as parsed back from the wire.
#[derive(Debug, Clone, PartialEq)]
struct WireCommand {
    id: u64,
    name: String,
    arguments: Option<Value>,
    oob: bool,
}

impl CheckedClient {
    fn new(config: ClientConfig) -> Self {
        CheckedClient {
            client: Client::new(config),
            outputs: Vec::new(),
            transmitted: Vec::new(),
            issued: BTreeSet::new(),
            forgotten: BTreeSet::new(),
            replied: BTreeSet::new(),
            sent: BTreeSet::new(),
            ended: false,
        }
    }

    /// Drains the outputs, checking each; returns the new ones.
    fn drain(&mut self) -> &[ClientOutput] {
        let first_new = self.outputs.len();
        while let Some(output) = self.client.poll_output() {
            assert!(!self.ended, "{output:?} given out after the end");
            match &output {
                ClientOutput::End(_) => {
                    self.ended = true;
                    assert!(self.client.is_ended(), "End given out, but not is_ended()");
                }
                ClientOutput::Reply(reply) => {
                    let id = reply.id.get();
                    assert!(
                        self.issued.contains(&id),
                        "a reply for id {id}, never issued"
                    );
                    assert!(
                        !self.forgotten.contains(&id),
                        "a reply for id {id}, which was forgotten"
                    );
                    assert!(self.replied.insert(id), "a second reply for id {id}");
                    if let Ok(value) = &reply.result {
                        assert_valid_payload(value, "a reply's return value");
                    }
                }
                ClientOutput::Event(event) => {
                    if let Some(data) = &event.data {
                        assert_valid_payload(data, "an event's data");
                    }
                }
                ClientOutput::Greeting(_)
                | ClientOutput::Ready { .. }
                | ClientOutput::UnattributedError(_) => {}
            }
            self.outputs.push(output);
        }
        assert!(self.client.poll_output().is_none(), "None is not sticky");
        let config = self.client.config();
        assert!(
            self.client.in_flight() <= config.max_in_flight,
            "{} commands in flight with a window of {}",
            self.client.in_flight(),
            config.max_in_flight
        );
        assert!(
            self.client.queued() <= config.max_queued,
            "queue over its bound"
        );
        if self.ended {
            assert_eq!(self.client.in_flight(), 0, "in flight after the end");
            assert_eq!(self.client.queued(), 0, "queued after the end");
        }
        &self.outputs[first_new..]
    }

    fn execute(
        &mut self,
        name: &str,
        arguments: &Value,
        oob: bool,
    ) -> Result<RequestId, SendError> {
        let was_ended = self.client.is_ended();
        let result = if oob {
            self.client.execute_oob(name, arguments)
        } else {
            self.client.execute(name, arguments)
        };
        if was_ended {
            assert_eq!(
                result,
                Err(SendError::Closed),
                "a command taken after the end"
            );
        }
        if let Ok(id) = result {
            let id = id.get();
            assert!(self.issued.insert(id), "id {id} issued twice");
        }
        result
    }

    fn forget(&mut self, id: RequestId) -> bool {
        let forgot = self.client.forget(id);
        if forgot {
            assert!(!self.replied.contains(&id.get()), "forgot an answered id");
            self.forgotten.insert(id.get());
        }
        assert!(!self.client.is_pending(id), "pending after forget");
        forgot
    }

    /// Takes what the client has to write, checks it is a stream of well
    /// formed commands, and returns them.
    fn transmit(&mut self) -> Vec<WireCommand> {
        let mut commands = Vec::new();
        while let Some(bytes) = self.client.poll_transmit() {
            assert!(!bytes.is_empty(), "poll_transmit gave nothing");
            // The client writes whole commands, each ended by a newline.
            assert!(bytes.ends_with(b"\n"), "a partial command written");
            let values = json_values(&bytes).expect("the client wrote invalid JSON");
            for value in values {
                let command = parse_wire_command(&value);
                if self.sent.is_empty() {
                    assert_eq!(command.name, "qmp_capabilities", "the first command");
                } else if command.oob {
                    assert!(self.client.oob_enabled(), "exec-oob without OOB");
                }
                assert!(self.sent.insert(command.id), "id {} sent twice", command.id);
                commands.push(command);
            }
            self.transmitted.extend_from_slice(&bytes);
        }
        commands
    }

    /// Closes the client and checks what holds at the very end: the end
    /// was given out exactly once, last, and the machine is inert after it.
    fn finish(mut self) -> (Vec<ClientOutput>, Vec<u8>) {
        self.client.close();
        self.drain();
        self.transmit();
        let ends = self
            .outputs
            .iter()
            .filter(|output| matches!(output, ClientOutput::End(_)))
            .count();
        assert_eq!(ends, 1, "the end given out {ends} times");
        assert!(
            matches!(self.outputs.last(), Some(ClientOutput::End(_))),
            "the end is not last"
        );
        self.client.receive(
            b"{\"event\": \"LATE\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n",
        );
        self.client.receive_eof();
        self.client.close();
        assert!(self.drain().is_empty(), "outputs after the end");
        assert_eq!(
            self.client.execute("query-status", &()),
            Err(SendError::Closed)
        );
        assert!(
            self.client.poll_transmit().is_none(),
            "bytes to write after the end"
        );
        (self.outputs, self.transmitted)
    }
}

/// A command as the client writes it: `execute` or `exec-oob`, maybe
/// `arguments`, and an integer `id`, nothing else.
fn parse_wire_command(value: &Value) -> WireCommand {
    let object = value.as_object().expect("a command that is not an object");
    let (name, oob) = match (object.get("execute"), object.get("exec-oob")) {
        (Some(Value::String(name)), None) => (name.clone(), false),
        (None, Some(Value::String(name))) => (name.clone(), true),
        _ => panic!("a command without one execute or exec-oob: {value}"),
    };
    let id = object
        .get("id")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("a command without an integer id: {value}"));
    let arguments = object.get("arguments").cloned();
    if let Some(arguments) = &arguments {
        assert!(arguments.is_object(), "arguments that are not an object");
    }
    let members = 2 + usize::from(arguments.is_some());
    assert_eq!(
        object.len(),
        members,
        "a command with other members: {value}"
    );
    WireCommand {
        id,
        name,
        arguments,
        oob,
    }
}

// ---------------------------------------------------------------------------
// client_bytes

/// The client machine fed a real greeting, then arbitrary bytes in
/// arbitrary chunks, then maybe EOF.
///
/// Settings, byte 0: bits 0–1 pick the greeting ([`GREETINGS`]), bit 2 asks
/// for OOB, bit 3 ends with EOF, bits 4–5 pick the window (1, 2, 4, 8),
/// bits 6–7 the size limit (the default, 512, 2048, 16384). Byte 1: bits
/// 0–3 say how many commands to issue after the greeting (their ids are 2
/// and up, `qmp_capabilities` takes 1, so the captures' replies match
/// them), bit 4 bounds the queue at 3.
///
/// Besides the checks made on every client (replies only for issued ids, each
/// once; the window and the queue bounds; the end once, last, and nothing
/// after it; well-formed commands written), the outputs and the bytes
/// written are the same chunked, whole, and fed one frame at a time; fed a
/// frame at a time, a frame that is not valid JSON ends the connection with
/// [`ProtocolError::InvalidJson`] right there (the client is never looser
/// than serde_json), and the event, reply or id-less error made of a frame
/// has the members serde_json reads in it. With EOF, the end comes before
/// [`Client::close`].
pub fn client_bytes(data: &[u8]) {
    let input = Input::parse(data);
    let [first, second] = input.settings;
    let greeting = GREETINGS[usize::from(first & 3)].as_bytes();
    let max_message_size = [DEFAULT_MAX_MESSAGE_SIZE, 512, 2048, 16384][usize::from(first >> 6)];
    let config = ClientConfig::default()
        .want_oob(first & 4 != 0)
        .max_in_flight([1, 2, 4, 8][usize::from((first >> 4) & 3)])
        .max_message_size(max_message_size)
        .max_queued(if second & 0x10 != 0 { 3 } else { 4096 })
        .first_id(1);
    let run = ClientBytesRun {
        config,
        greeting,
        commands: usize::from(second & 0x0f),
        eof: first & 8 != 0,
    };

    let whole = run.run(&[input.stream], |_, _, _| {});
    let chunked = run.run(&input.chunks(), |_, _, _| {});
    assert_eq!(whole, chunked, "the chunking changed the client's outputs");

    // One frame at a time, cut where the client's own splitter would cut.
    let mut framer = Framer::new(max_message_size);
    let mut pieces = Vec::new();
    let mut start = 0;
    framer.push(input.stream);
    while let Some(frame) = framer.next_frame() {
        let end = usize::try_from(framer.consumed()).expect("fits");
        pieces.push((&input.stream[start..end], frame.ok()));
        start = end;
    }
    pieces.push((&input.stream[start..], None));
    let piece_bytes: Vec<&[u8]> = pieces.iter().map(|(bytes, _)| *bytes).collect();
    // A bare token (anything not starting with a bracket or a quote) is
    // known to be complete only when the byte after it arrives, with the
    // next piece: the invalid one is refused then.
    let mut invalid_bare_token = None;
    let framed = run.run(&piece_bytes, |index, was_ended, outputs| {
        let refused = |frame: &[u8]| {
            assert!(
                matches!(
                    outputs,
                    [ClientOutput::End(End::Protocol(
                        ProtocolError::InvalidJson { .. }
                    ))]
                ),
                "invalid JSON {:?} gave {outputs:?}",
                String::from_utf8_lossy(frame)
            );
        };
        if let Some(frame) = invalid_bare_token.take() {
            if !was_ended {
                refused(frame);
            }
            return;
        }
        let Some(frame) = &pieces[index].1 else {
            return;
        };
        if was_ended {
            return;
        }
        if serde_json::from_slice::<IgnoredAny>(frame).is_ok() {
            return check_meaning(frame, outputs);
        }
        match frame[0] {
            b'{' | b'[' | b'"' => refused(frame),
            _ => invalid_bare_token = Some(&frame[..]),
        }
    });
    assert_eq!(whole, framed, "feeding frame by frame changed the outputs");
}

/// The event, reply or id-less error the client made of one frame says
/// what serde_json reads in it (the client parses most messages with its
/// own fast path, and must agree with serde_json when it does).
fn check_meaning(frame: &[u8], outputs: &[ClientOutput]) {
    let [output] = outputs else {
        return;
    };
    // Numbers out of f64's range have no `Value`: nothing to compare with.
    let Ok(Value::Object(members)) = serde_json::from_slice::<Value>(frame) else {
        return;
    };
    let member = |key: &str| members.get(key).filter(|value| !value.is_null());
    let decoded = |raw: &RawJson| raw.decode::<Value>().expect("a payload with no value");
    // Typed members as serde reads them (which takes `[class, desc]` for an
    // error object too: the client is exactly as lenient).
    fn typed<T: serde::de::DeserializeOwned>(member: Option<&Value>) -> Option<T> {
        member.map(|value| serde_json::from_value(value.clone()).expect("refused by serde"))
    }
    let check_error = |error: &qmp_proto::QmpError| {
        let expected: Option<qmp_proto::QmpError> = typed(member("error"));
        assert_eq!(expected.as_ref(), Some(error), "the error");
    };
    match output {
        ClientOutput::Event(event) => {
            assert_eq!(
                member("event").and_then(Value::as_str),
                Some(event.name.as_str())
            );
            let data = event.data.as_ref().map(decoded);
            assert_eq!(data.as_ref(), members.get("data"), "the event's data");
            let timestamp: Option<Timestamp> = typed(member("timestamp"));
            assert_eq!(
                timestamp.unwrap_or_default(),
                event.timestamp,
                "the timestamp"
            );
        }
        ClientOutput::Reply(reply) => {
            assert!(member("event").is_none(), "an event taken for a reply");
            assert_eq!(
                member("id").and_then(Value::as_u64),
                Some(reply.id.get()),
                "the reply's id"
            );
            match &reply.result {
                Ok(value) => {
                    assert!(member("error").is_none(), "an error taken for a return");
                    assert_eq!(
                        Some(&decoded(value)),
                        members.get("return"),
                        "the return value"
                    );
                }
                Err(error) => check_error(error),
            }
        }
        ClientOutput::UnattributedError(error) => {
            assert!(member("event").is_none(), "an event taken for an error");
            assert!(
                !members.contains_key("id"),
                "an error with an id taken as id-less"
            );
            check_error(error);
        }
        _ => {}
    }
}

/// One way of running [`client_bytes`]'s client.
struct ClientBytesRun<'a> {
    config: ClientConfig,
    greeting: &'a [u8],
    commands: usize,
    eof: bool,
}

/// Everything a client run gave: outputs, bytes written, `execute` results.
type ClientRunResult = (
    Vec<ClientOutput>,
    Vec<u8>,
    Vec<Result<RequestId, SendError>>,
);

impl ClientBytesRun<'_> {
    /// Runs the client over `chunks`; `after_chunk` sees each chunk's index,
    /// whether the client had ended before it, and its outputs.
    fn run(
        &self,
        chunks: &[&[u8]],
        mut after_chunk: impl FnMut(usize, bool, &[ClientOutput]),
    ) -> ClientRunResult {
        let mut client = CheckedClient::new(self.config.clone());
        client.client.receive(self.greeting);
        let outputs = client.drain();
        if self.greeting.len() <= self.config.max_message_size {
            assert!(
                matches!(outputs, [ClientOutput::Greeting(_)]),
                "a real greeting gave {outputs:?}"
            );
        }
        client.transmit();
        let results = (0..self.commands)
            .map(|n| {
                let name = ["query-status", "query-version", "stop", "cont"][n % 4];
                client.execute(name, &Value::Null, false)
            })
            .collect();
        for (index, chunk) in chunks.iter().enumerate() {
            let was_ended = client.ended;
            client.client.receive(chunk);
            let outputs = client.drain();
            after_chunk(index, was_ended, outputs);
            client.transmit();
        }
        if self.eof {
            client.client.receive_eof();
            client.drain();
            assert!(client.ended, "no end after EOF");
        }
        let (outputs, transmitted) = client.finish();
        (outputs, transmitted, results)
    }
}

// ---------------------------------------------------------------------------
// server_bytes

/// What a server run gave: its outputs and every byte it wrote.
#[derive(Debug, PartialEq, Eq)]
struct ServerRun {
    outputs: Vec<ServerOutput>,
    transmitted: Vec<u8>,
    /// Replies and errors written after the greeting.
    answers: usize,
}

/// The server role fed arbitrary client bytes in arbitrary chunks, then
/// maybe EOF.
///
/// Settings, byte 0: bit 0 offers OOB, bit 1 writes `pretty=on`, bit 2 ends
/// with EOF, bits 3–4 pick the size limit (the default, 64, 512, 4096), bit 5
/// answers commands with an error rather than a return value, bit 6 sends an
/// event after each command.
///
/// Checks: negotiation is reported at most once, before any command, with
/// OOB only if offered; a command has OOB only if negotiated, an object or
/// no `arguments`, and its reply echoes its id (verbatim in compact output);
/// the end comes only after EOF, once and last; everything written is a
/// stream of JSON objects ended by CRLF, a greeting first, then one reply
/// or error per frame of input (and the events). The outputs and the bytes
/// written are the same chunked and whole.
pub fn server_bytes(data: &[u8]) {
    let input = Input::parse(data);
    let settings = input.settings[0];
    let max_message_size =
        [DEFAULT_MAX_MESSAGE_SIZE, 64, 512, 4096][usize::from((settings >> 3) & 3)];
    let config = ServerConfig::default()
        .offer_oob(settings & 1 != 0)
        .pretty(settings & 2 != 0)
        .max_message_size(max_message_size);
    let eof = settings & 4 != 0;
    let answer_error = settings & 0x20 != 0;
    let events = settings & 0x40 != 0;

    let run = |chunks: &[&[u8]]| run_server(config.clone(), chunks, eof, answer_error, events);
    let whole = run(&[input.stream]);
    let chunked = run(&input.chunks());
    assert_eq!(whole, chunked, "the chunking changed the server's outputs");

    // Every frame of input is answered once: count them with the same
    // splitter, and the messages written after the greeting.
    let mut framer = Framer::new(max_message_size);
    framer.push(input.stream);
    let frames = std::iter::from_fn(|| framer.next_frame()).count();
    let answers = whole.answers;
    assert_eq!(
        answers, frames,
        "{frames} frames of input got {answers} answers"
    );
}

fn run_server(
    config: ServerConfig,
    chunks: &[&[u8]],
    eof: bool,
    answer_error: bool,
    events: bool,
) -> ServerRun {
    let mut checked = CheckedServer {
        offer_oob: config.offer_oob,
        server: Server::new(config),
        eof: false,
        answer_error,
        events,
        negotiated: None,
        ended: false,
        run: ServerRun {
            outputs: Vec::new(),
            transmitted: Vec::new(),
            answers: 0,
        },
    };
    for chunk in chunks {
        checked.server.receive(chunk);
        checked.drain();
        checked.transmit();
    }
    if eof {
        checked.eof = true;
        checked.server.receive_eof();
        checked.drain();
        assert!(checked.ended, "no end after EOF");
        checked.server.receive(b"{\"execute\": \"late\"}");
        checked.drain();
    }
    checked.transmit();
    checked.run.answers = check_server_wrote(&checked.run.transmitted);
    checked.run
}

/// A [`Server`] under [`server_bytes`]'s checks.
struct CheckedServer {
    server: Server,
    offer_oob: bool,
    /// EOF was given.
    eof: bool,
    answer_error: bool,
    events: bool,
    /// Whether negotiation was reported, and with OOB or not.
    negotiated: Option<bool>,
    ended: bool,
    run: ServerRun,
}

impl CheckedServer {
    /// Takes what the server has to write; returns it.
    fn transmit(&mut self) -> Vec<u8> {
        let start = self.run.transmitted.len();
        while let Some(bytes) = self.server.poll_transmit() {
            self.run.transmitted.extend_from_slice(&bytes);
        }
        self.run.transmitted[start..].to_vec()
    }

    /// Drains and checks the outputs, answering each command.
    fn drain(&mut self) {
        while let Some(output) = self.server.poll_output() {
            assert!(!self.ended, "{output:?} after the end");
            match &output {
                ServerOutput::Negotiated { oob } => {
                    assert!(self.negotiated.is_none(), "negotiated twice");
                    assert!(!oob || self.offer_oob, "OOB enabled but not offered");
                    assert!(self.server.is_negotiated());
                    assert_eq!(self.server.oob_enabled(), *oob);
                    self.negotiated = Some(*oob);
                }
                ServerOutput::Command(command) => self.answer(command),
                ServerOutput::End(end) => {
                    assert!(self.eof, "ended without EOF: {end:?}");
                    assert!(
                        matches!(
                            end,
                            End::PeerClosed | End::Protocol(ProtocolError::Truncated { .. })
                        ),
                        "ended with {end:?}"
                    );
                    self.ended = true;
                }
            }
            self.run.outputs.push(output);
        }
    }

    fn answer(&mut self, command: &qmp_proto::Command) {
        let Some(oob_enabled) = self.negotiated else {
            panic!("a command before negotiation: {command:?}");
        };
        assert!(!command.oob || oob_enabled, "exec-oob without OOB");
        if let Some(arguments) = &command.arguments {
            assert_valid_payload(arguments, "arguments");
            // Not decoded as values: a valid number may be out of range.
            assert!(
                arguments
                    .decode::<std::collections::BTreeMap<String, IgnoredAny>>()
                    .is_ok(),
                "arguments that are not an object: {arguments:?}"
            );
        }
        if let Some(id) = &command.id {
            assert_valid_payload(id, "an id");
        }
        // Answer, and check the answer carries the id back.
        self.transmit();
        if self.answer_error {
            self.server
                .reply_error(command, &qmp_proto::QmpError::generic("no"));
        } else {
            self.server
                .reply_ok(command, &serde_json::json!({"fuzz": true}))
                .expect("serializable");
        }
        let reply = self.transmit();
        check_echoed_id(&reply, command.id.as_ref());
        if self.events {
            let timestamp = Timestamp {
                seconds: -1,
                microseconds: -1,
            };
            let sent = self.server.send_event("FUZZ", &(), timestamp);
            assert_eq!(sent.ok(), Some(true), "an event not sent");
        }
    }
}

/// A reply written for a command echoes its id token for token, as the
/// client wrote it (compact or re-indented, only the layout may change).
fn check_echoed_id(reply: &[u8], id: Option<&RawJson>) {
    let text = std::str::from_utf8(reply).expect("a reply that is not UTF-8");
    let mut messages = serde_json::Deserializer::from_str(text).into_iter::<Written>();
    let message = messages
        .next()
        .expect("no reply")
        .expect("a malformed reply");
    assert!(messages.next().is_none(), "more than one reply");
    match (id, message.id) {
        (None, None) => {}
        (None, Some(_)) => panic!("an id made up: {text:?}"),
        (Some(id), None) => panic!("{text:?} leaves out the id {id}"),
        (Some(id), Some(echoed)) => assert_eq!(
            without_layout(echoed.get()),
            without_layout(id.as_str()),
            "the id changed in {text:?}"
        ),
    }
}

/// `json` without the whitespace between its tokens.
fn without_layout(json: &str) -> String {
    let mut tokens = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c.is_ascii_whitespace() {
            continue;
        } else if c == '"' {
            in_string = true;
        }
        tokens.push(c);
    }
    tokens
}

/// A message the server wrote: only these members, of these types.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    #[serde(rename = "QMP")]
    greeting: Option<IgnoredAny>,
    #[serde(rename = "return")]
    ret: Option<IgnoredAny>,
    error: Option<WrittenError>,
    event: Option<String>,
    #[allow(dead_code)] // checked for its type only
    data: Option<IgnoredAny>,
    #[allow(dead_code)]
    timestamp: Option<Timestamp>,
    /// Present, even as `null`, or absent.
    #[serde(default, deserialize_with = "present")]
    id: Option<Box<serde_json::value::RawValue>>,
}

/// A member that is there, whatever its value (`Option`'s own
/// deserializer would read `null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Box<serde_json::value::RawValue>>, D::Error> {
    serde::Deserialize::deserialize(deserializer).map(Some)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenError {
    #[allow(dead_code)]
    class: String,
    #[allow(dead_code)]
    desc: String,
}

/// Everything the server wrote is JSON objects ended by CRLF: a greeting,
/// then replies, errors and events. Returns how many replies and errors.
fn check_server_wrote(transmitted: &[u8]) -> usize {
    assert!(transmitted.ends_with(b"\r\n"), "output not ended by CRLF");
    let mut messages = serde_json::Deserializer::from_slice(transmitted).into_iter::<Written>();
    let mut next = || {
        messages
            .next()
            .map(|m| m.expect("the server wrote a malformed message"))
    };
    let greeting = next().expect("no greeting");
    assert!(
        greeting.greeting.is_some(),
        "the first message is no greeting"
    );
    let mut answers = 0;
    while let Some(message) = next() {
        let kinds = [
            message.ret.is_some(),
            message.error.is_some(),
            message.event.is_some(),
        ];
        assert_eq!(
            kinds.iter().filter(|&&k| k).count(),
            1,
            "not one of return, error, event"
        );
        assert!(message.greeting.is_none(), "a second greeting");
        answers += usize::from(message.event.is_none());
    }
    answers
}
