//! However a stream is cut into reads, the framer gives the same frames and
//! the client the same outputs: for the real captures and for generated
//! streams of JSON objects.

mod common;

use common::{json_stream, replay_client, split_at_points, Capture, ClientReplay};
use proptest::prelude::*;
use proptest::sample::Index;
use qmp_proto::framing::{FrameError, Framer};
use qmp_proto::{Client, ClientConfig, ClientOutput, DEFAULT_MAX_MESSAGE_SIZE};
use serde_json::{json, Value};
use std::sync::OnceLock;

type Frames = Vec<Result<Vec<u8>, FrameError>>;

/// Every frame of `chunks`, pushed one by one, and what `finish` said.
fn frame_chunks(chunks: &[&[u8]]) -> (Frames, Result<(), FrameError>) {
    let mut framer = Framer::new(DEFAULT_MAX_MESSAGE_SIZE);
    let mut frames = Vec::new();
    for chunk in chunks {
        framer.push(chunk);
        frames.extend(std::iter::from_fn(|| framer.next_frame()).map(|f| f.map(|b| b.to_vec())));
    }
    (frames, framer.finish())
}

/// A capture with what its whole streams give, computed once.
struct Reference {
    capture: Capture,
    s2c_frames: Frames,
    c2s_frames: Frames,
    replay: ClientReplay,
}

fn references() -> &'static [Reference] {
    static REFERENCES: OnceLock<Vec<Reference>> = OnceLock::new();
    REFERENCES.get_or_init(|| {
        Capture::all()
            .into_iter()
            .map(|capture| Reference {
                s2c_frames: frame_chunks(&[&capture.s2c]).0,
                c2s_frames: frame_chunks(&[&capture.c2s]).0,
                replay: replay_client(&capture, &[&capture.s2c]),
                capture,
            })
            .collect()
    })
}

fn points(indices: &[Index], len: usize) -> impl Iterator<Item = usize> + '_ {
    indices.iter().map(move |index| index.index(len + 1))
}

#[test]
fn whole_capture_frames_are_the_messages_qemu_sent() {
    for reference in references() {
        let frames: Vec<Value> = reference
            .s2c_frames
            .iter()
            .map(|frame| {
                let frame = frame.as_ref().expect("no capture message is too large");
                serde_json::from_slice(frame).expect("a frame is one JSON value")
            })
            .collect();
        assert_eq!(frames, reference.capture.server_messages());
    }
}

#[test]
fn capture_framed_byte_by_byte_gives_the_same_frames() {
    for reference in references() {
        let capture = &reference.capture;
        let s2c: Vec<&[u8]> = capture.s2c.chunks(1).collect();
        assert_eq!(frame_chunks(&s2c), (reference.s2c_frames.clone(), Ok(())));
        let c2s: Vec<&[u8]> = capture.c2s.chunks(1).collect();
        assert_eq!(frame_chunks(&c2s), (reference.c2s_frames.clone(), Ok(())));
    }
}

/// Split points for any stream: few or many.
fn splits() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..300)
}

/// `data` cut at `splits` frames as `expected` did whole.
fn check_frames(data: &[u8], splits: &[Index], expected: &Frames) -> Result<(), TestCaseError> {
    let chunks = split_at_points(data, points(splits, data.len()));
    prop_assert!(frame_chunks(&chunks) == (expected.clone(), Ok(())));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn capture_frames_do_not_depend_on_chunking(splits in splits()) {
        for reference in references() {
            let capture = &reference.capture;
            check_frames(&capture.s2c, &splits, &reference.s2c_frames)?;
            check_frames(&capture.c2s, &splits, &reference.c2s_frames)?;
        }
    }

    #[test]
    fn capture_client_outputs_do_not_depend_on_chunking(splits in splits()) {
        for reference in references() {
            let capture = &reference.capture;
            let chunks = split_at_points(&capture.s2c, points(&splits, capture.s2c.len()));
            let replay = replay_client(capture, &chunks);
            prop_assert!(replay == reference.replay, "{}: differs from whole", capture.name);
        }
    }
}

// ---------------------------------------------------------------------------
// Generated streams.

/// Strings full of what the framer must not be fooled by.
fn tricky_string() -> impl Strategy<Value = String> {
    "[a-z{}\\[\\]\"\\\\ é\n\t]{0,10}"
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        tricky_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            json_object_of(inner),
        ]
    })
}

fn json_object_of(values: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    prop::collection::btree_map(tricky_string(), values, 0..5)
        .prop_map(|members| Value::Object(members.into_iter().collect()))
}

/// How a message is written: QEMU's one line, `pretty=on`, or pretty with
/// bare newlines as some other peer might.
#[derive(Debug, Clone, Copy)]
enum Layout {
    Compact,
    PrettyCrlf,
    PrettyLf,
}

impl Layout {
    fn write(self, message: &Value) -> String {
        match self {
            Layout::Compact => message.to_string(),
            Layout::PrettyCrlf => Layout::PrettyLf.write(message).replace('\n', "\r\n"),
            Layout::PrettyLf => serde_json::to_string_pretty(message).expect("serializes"),
        }
    }
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        Just(Layout::Compact),
        Just(Layout::PrettyCrlf),
        Just(Layout::PrettyLf)
    ]
}

/// What goes between two messages: nothing at all (as clients write),
/// QEMU's CRLF, or other whitespace.
fn separator() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "\r\n", " ", "\n\t \r\n"])
}

/// A stream of `messages` written in random layouts, and the text of each.
fn written_stream(
    messages: impl Strategy<Value = Value>,
) -> impl Strategy<Value = (Vec<u8>, Vec<String>)> {
    prop::collection::vec((messages, layout(), separator()), 1..8).prop_map(|parts| {
        let mut stream = Vec::new();
        let mut texts = Vec::new();
        for (message, layout, separator) in parts {
            let text = layout.write(&message);
            stream.extend_from_slice(text.as_bytes());
            stream.extend_from_slice(separator.as_bytes());
            texts.push(text);
        }
        (stream, texts)
    })
}

/// Server messages the client must handle without any command of its own:
/// events, replies to ids it never used, and errors without an id.
fn server_message() -> impl Strategy<Value = Value> {
    let timestamp = (any::<i64>(), -1i64..1_000_000).prop_map(
        |(seconds, microseconds)| json!({"seconds": seconds, "microseconds": microseconds}),
    );
    let event = (
        "[A-Z_]{1,16}",
        timestamp,
        prop::option::of(json_object_of(json_value())),
    )
        .prop_map(|(name, timestamp, data)| {
            let mut event = json!({"event": name, "timestamp": timestamp});
            if let Some(data) = data {
                event["data"] = data;
            }
            event
        });
    let stray_id = prop_oneof![
        (1u64..).prop_map(Value::from),
        tricky_string().prop_map(Value::from)
    ];
    let unknown_reply =
        (stray_id, json_value()).prop_map(|(id, value)| json!({"return": value, "id": id}));
    let unattributed =
        tricky_string().prop_map(|desc| json!({"error": {"class": "GenericError", "desc": desc}}));
    prop_oneof![event, unknown_reply, unattributed]
}

/// A negotiated session's server side: greeting, the reply to
/// `qmp_capabilities` (id 0 from a default client), then `messages`.
fn session_stream() -> impl Strategy<Value = (Vec<u8>, Vec<String>)> {
    written_stream(server_message()).prop_map(|(messages, texts)| {
        let mut stream = concat!(
            r#"{"QMP": {"version": {"qemu": {"major": 9, "minor": 1, "micro": 0}, "#,
            r#""package": ""}, "capabilities": ["oob"]}}"#,
            "\r\n",
            r#"{"return": {}, "id": 0}"#,
            "\r\n"
        )
        .as_bytes()
        .to_vec();
        stream.extend_from_slice(&messages);
        (stream, texts)
    })
}

/// Everything a default client gives for `chunks`, then EOF, and how many
/// replies it dropped as unknown.
fn client_outputs(chunks: &[&[u8]]) -> (Vec<ClientOutput>, u64) {
    client_outputs_limited(chunks, DEFAULT_MAX_MESSAGE_SIZE)
}

/// [`client_outputs`] with a maximum message size.
fn client_outputs_limited(chunks: &[&[u8]], max: usize) -> (Vec<ClientOutput>, u64) {
    let mut client = Client::new(ClientConfig::default().max_message_size(max));
    let mut outputs = Vec::new();
    for chunk in chunks {
        client.receive(chunk);
        outputs.extend(std::iter::from_fn(|| client.poll_output()));
    }
    client.receive_eof();
    outputs.extend(std::iter::from_fn(|| client.poll_output()));
    (outputs, client.unknown_replies())
}

fn count_with_key(texts: &[String], key: &str) -> usize {
    json_stream(texts.concat().as_bytes())
        .iter()
        .filter(|message| message.get(key).is_some())
        .count()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn generated_objects_are_framed_exactly_for_any_chunking(
        (stream, texts) in written_stream(json_object_of(json_value())),
        splits in prop::collection::vec(any::<Index>(), 0..40),
    ) {
        let expected: Frames = texts.iter().map(|text| Ok(text.as_bytes().to_vec())).collect();
        prop_assert_eq!(frame_chunks(&[&stream]), (expected.clone(), Ok(())));
        let chunks = split_at_points(&stream, points(&splits, stream.len()));
        prop_assert_eq!(frame_chunks(&chunks), (expected.clone(), Ok(())));
        let single_bytes: Vec<&[u8]> = stream.chunks(1).collect();
        prop_assert_eq!(frame_chunks(&single_bytes), (expected, Ok(())));
    }

    #[test]
    fn generated_sessions_give_the_same_client_outputs_for_any_chunking(
        (stream, texts) in session_stream(),
        splits in prop::collection::vec(any::<Index>(), 0..40),
    ) {
        let whole = client_outputs(&[&stream]);
        let chunks = split_at_points(&stream, points(&splits, stream.len()));
        prop_assert_eq!(&client_outputs(&chunks), &whole);
        let single_bytes: Vec<&[u8]> = stream.chunks(1).collect();
        prop_assert_eq!(&client_outputs(&single_bytes), &whole);

        check_session_outputs(&whole, &texts)?;
    }
}

/// Bytes that break JSON, or a message, where they land.
const BREAKING: &[u8] = b"{}[]\":,\\ \r\n0-.eu\x00\xff";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A session broken somewhere (invalid JSON, a message cut short or run
    /// together with the next, a message over the size limit) ends the same
    /// way, after the same outputs, however it is cut: a message refused
    /// by the parser halfway through its arrival is scanned and parsed
    /// again whole, as one that arrived whole is.
    #[test]
    fn broken_sessions_give_the_same_client_outputs_for_any_chunking(
        (stream, _) in session_stream(),
        edits in prop::collection::vec((any::<Index>(), any::<Index>(), 0u8..3), 0..4),
        max in prop::sample::select(vec![DEFAULT_MAX_MESSAGE_SIZE, 100, 400]),
        splits in prop::collection::vec(any::<Index>(), 0..40),
    ) {
        let mut stream = stream;
        for (at, byte, kind) in edits {
            let at = at.index(stream.len() + 1);
            let byte = BREAKING[byte.index(BREAKING.len())];
            match kind {
                0 if at < stream.len() => stream[at] = byte,
                1 if at < stream.len() => {
                    stream.remove(at);
                }
                _ => stream.insert(at, byte),
            }
        }
        let whole = client_outputs_limited(&[&stream], max);
        let chunks = split_at_points(&stream, points(&splits, stream.len()));
        prop_assert_eq!(&client_outputs_limited(&chunks, max), &whole);
        let single_bytes: Vec<&[u8]> = stream.chunks(1).collect();
        prop_assert_eq!(&client_outputs_limited(&single_bytes, max), &whole);
    }
}

/// Long tokens (a string, a number, whitespace, a key) and a message that
/// passes the size limit only after several reads: the same outputs in
/// pieces of any size as whole.
#[test]
fn long_tokens_and_the_size_limit_across_reads() {
    let head = concat!(
        r#"{"QMP": {"version": {"qemu": {"major": 9, "minor": 1, "micro": 0}, "#,
        r#""package": ""}, "capabilities": []}}"#,
        "\r\n",
        r#"{"return": {}, "id": 0}"#,
        "\r\n"
    );
    let long = "x".repeat(5000);
    let digits = "7".repeat(3000);
    let space = " ".repeat(3000);
    let messages = [
        format!(r#"{{"return": "{long}", "id": 9}}"#),
        format!(r#"{{"return": ["{long}", "a\"{long}\\"], "id": 9}}"#),
        format!(r#"{{"return": [1, {digits}, 2], "id": 9}}"#),
        format!(r#"{{"return": [{space}1,{space}2{space}], "id": 9}}"#),
        format!(r#"{{"{long}": 1, "return": {{"{long}": [true]}}, "id": 9}}"#),
        format!(
            r#"{{"timestamp": {{"seconds": 1, "microseconds": 2}}, "event": "E", "data": {{"s": "{long}"}}}}"#
        ),
        format!(r#"{{"error": {{"class": "GenericError", "desc": "{long}"}}}}"#),
        format!(r#"{{"return": [1, {digits}x], "id": 9}}"#),
    ];
    for max in [DEFAULT_MAX_MESSAGE_SIZE, 4500, 20_000] {
        for message in &messages {
            let stream = format!("{head}{message}\r\n{message}\r\n");
            let stream = stream.as_bytes();
            let whole = client_outputs_limited(&[stream], max);
            for piece in [1, 2, 3, 7, 100, 1000, 4096] {
                let chunks: Vec<&[u8]> = stream.chunks(piece).collect();
                assert_eq!(
                    client_outputs_limited(&chunks, max),
                    whole,
                    "pieces of {piece}, limit {max}: {}",
                    &message[..60]
                );
            }
        }
    }
}

/// Every generated message came out as what it is, and the end once, last.
fn check_session_outputs(
    (outputs, unknown_replies): &(Vec<ClientOutput>, u64),
    texts: &[String],
) -> Result<(), TestCaseError> {
    let count = |kind: fn(&ClientOutput) -> bool| outputs.iter().filter(|o| kind(o)).count();
    let events = count(|o| matches!(o, ClientOutput::Event(_)));
    prop_assert_eq!(events, count_with_key(texts, "event"));
    let unattributed = count(|o| matches!(o, ClientOutput::UnattributedError(_)));
    prop_assert_eq!(unattributed, count_with_key(texts, "error"));
    prop_assert_eq!(*unknown_replies as usize, count_with_key(texts, "return"));
    prop_assert_eq!(count(|o| matches!(o, ClientOutput::End(_))), 1);
    let peer_closed = ClientOutput::End(qmp_proto::End::PeerClosed);
    prop_assert_eq!(outputs.last(), Some(&peer_closed));
    Ok(())
}
