//! Transcripts: the line format, recording, converting the raw captures and
//! replaying them to a simulated client.

use bytes::Bytes;
use qmp_proto::framing::{FrameError, Framer};
use qmp_proto::transcript::{
    self, from_streams, Difference, Entry, Mismatch, Record, Recorder, Replay, ReplayOutput, Side,
    TranscriptError,
};
use qmp_proto::DEFAULT_MAX_MESSAGE_SIZE;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;
use std::ops::Range;

mod common;

use common::{Capture, CAPTURES};

/// A capture's client-to-server and server-to-client streams.
fn load(name: &'static str) -> (Vec<u8>, Vec<u8>) {
    let capture = Capture::load(name);
    (capture.c2s, capture.s2c)
}

fn entry(micros: u64, from: Side, record: Record) -> Entry {
    Entry {
        micros,
        from,
        record,
    }
}

fn message(micros: u64, from: Side, text: &str) -> Entry {
    entry(micros, from, Record::Message(Bytes::from(text.to_string())))
}

fn text(entry: &Entry) -> &[u8] {
    match &entry.record {
        Record::Message(text) => text,
        other => panic!("not a message: {other:?}"),
    }
}

/// Where `text`'s top-level `id` is, found independently of the crate.
fn id_span(text: &[u8]) -> Option<Range<usize>> {
    let members: BTreeMap<String, &RawValue> = serde_json::from_slice(text).ok()?;
    let id = members.get("id")?.get();
    let start = id.as_ptr() as usize - text.as_ptr() as usize;
    Some(start..start + id.len())
}

fn id_value(text: &[u8]) -> Option<Value> {
    serde_json::from_slice(&text[id_span(text)?]).ok()
}

fn with_id(text: &[u8], id: &str) -> Vec<u8> {
    match id_span(text) {
        Some(span) => [&text[..span.start], id.as_bytes(), &text[span.end..]].concat(),
        None => text.to_vec(),
    }
}

// ---------------------------------------------------------------------------
// The line format

#[test]
fn every_record_kind_survives_encode_and_parse() {
    let entries = vec![
        message(0, Side::Server, "{\r\n    \"QMP\": \"é \\\" \\\\ \t\"\r\n}"),
        entry(
            5,
            Side::Client,
            Record::Message(Bytes::from_static(b"\xff{\"a\"\x00")),
        ),
        entry(6, Side::Client, Record::Message(Bytes::new())),
        entry(7, Side::Client, Record::Closed),
        entry(u64::MAX, Side::Server, Record::TooLarge { limit: 16 << 20 }),
    ];
    let text = transcript::encode(&entries);
    assert_eq!(transcript::parse(&text), Ok(entries.clone()));
    let lines: Vec<&str> = std::str::from_utf8(&text).unwrap().lines().collect();
    assert_eq!(lines.len(), entries.len(), "one line each");
    assert_eq!(
        lines[1],
        r#"{"us": 5, "from": "client", "hex": "ff7b22612200"}"#
    );
    assert_eq!(lines[3], r#"{"us": 7, "from": "client", "closed": true}"#);
    for (line, entry) in lines.iter().zip(&entries) {
        assert_eq!(Entry::parse(line.as_bytes()).as_ref(), Ok(entry));
    }
}

#[test]
fn blank_lines_unknown_members_and_crlf_are_accepted() {
    let text = b"\n  \r\n{\"us\": 1, \"new\": [1], \"from\": \"server\", \"closed\": true}\r\n\n";
    let expected = vec![entry(1, Side::Server, Record::Closed)];
    assert_eq!(transcript::parse(text), Ok(expected));
}

#[test]
fn bad_lines_are_named_by_their_number() {
    let good = "{\"us\": 1, \"from\": \"client\", \"text\": \"{}\"}\n\n";
    let cases = [
        ("not json", "is not an entry"),
        (
            "{\"from\": \"client\", \"closed\": true}",
            "missing field `us`",
        ),
        (
            "{\"us\": -1, \"from\": \"client\", \"closed\": true}",
            "is not an entry",
        ),
        (
            "{\"us\": 1, \"from\": \"peer\", \"closed\": true}",
            "unknown variant",
        ),
        ("{\"us\": 1, \"from\": \"client\"}", "exactly one of"),
        (
            "{\"us\": 1, \"from\": \"client\", \"text\": \"a\", \"closed\": true}",
            "exactly one of",
        ),
        (
            "{\"us\": 1, \"from\": \"client\", \"closed\": false}",
            "exactly one of",
        ),
        (
            "{\"us\": 1, \"from\": \"client\", \"hex\": \"abc\"}",
            "hex digits",
        ),
        (
            "{\"us\": 1, \"from\": \"client\", \"hex\": \"zz\"}",
            "hex digits",
        ),
        (
            "{\"us\": 1, \"from\": \"client\", \"text\": 5}",
            "is not an entry",
        ),
    ];
    for (bad, says) in cases {
        let text = format!("{good}{good}{bad}\n{good}");
        let error: TranscriptError = transcript::parse(text.as_bytes()).unwrap_err();
        assert_eq!(error.line(), 5, "{bad}");
        let sentence = error.to_string();
        assert!(sentence.starts_with("transcript line 5 "), "{sentence}");
        assert!(sentence.contains(says), "{bad}: {sentence}");
        assert!(!sentence.contains("at line 1"), "{sentence}");
        assert_eq!(Entry::parse(bad.as_bytes()).unwrap_err().line(), 1);
    }
}

// ---------------------------------------------------------------------------
// Recording

/// Records a capture: the client's stream first, in `chunk`-byte writes,
/// then the server's, in `chunk`-byte reads, then both ends.
fn record(c2s: &[u8], s2c: &[u8], chunk: usize, max: usize) -> Vec<Entry> {
    let mut recorder = Recorder::with_max_message_size(max);
    let mut lines = Vec::new();
    for piece in c2s.chunks(chunk) {
        recorder.sent(piece, 1);
        lines.extend(recorder.poll_lines().unwrap_or_default());
    }
    for piece in s2c.chunks(chunk) {
        recorder.received(piece, 2);
    }
    recorder.closed(Side::Client, 3);
    recorder.closed(Side::Server, 4);
    lines.extend(recorder.poll_lines().unwrap_or_default());
    assert_eq!(recorder.poll_lines(), None);
    transcript::parse(&lines).unwrap()
}

/// What a framer makes of a whole stream, an unfinished message included.
fn framed(stream: &[u8]) -> Vec<Bytes> {
    let mut framer = Framer::new(DEFAULT_MAX_MESSAGE_SIZE);
    framer.push(stream);
    let mut frames: Vec<Bytes> = std::iter::from_fn(|| framer.next_frame())
        .map(|frame| frame.unwrap())
        .collect();
    if let Err(FrameError::Truncated { buffered }) = framer.finish() {
        frames.push(Bytes::copy_from_slice(&stream[stream.len() - buffered..]));
    }
    frames
}

#[test]
fn recording_gives_the_same_entries_for_every_chunking() {
    for name in CAPTURES {
        let (c2s, s2c) = load(name);
        let whole = record(&c2s, &s2c, usize::MAX, DEFAULT_MAX_MESSAGE_SIZE);
        let messages = |side| -> Vec<Bytes> {
            whole
                .iter()
                .filter(|e| e.from == side && matches!(e.record, Record::Message(_)))
                .map(|e| Bytes::copy_from_slice(text(e)))
                .collect()
        };
        assert_eq!(messages(Side::Client), framed(&c2s), "{name}");
        assert_eq!(messages(Side::Server), framed(&s2c), "{name}");
        assert_eq!(
            whole[whole.len() - 2],
            entry(3, Side::Client, Record::Closed)
        );
        assert_eq!(
            whole[whole.len() - 1],
            entry(4, Side::Server, Record::Closed)
        );
        for chunk in [1000, 7] {
            let chunked = record(&c2s, &s2c, chunk, DEFAULT_MAX_MESSAGE_SIZE);
            assert_eq!(chunked, whole, "{name} in {chunk}-byte pieces");
        }
        if name == "qemu-10.0-system-pretty" || name == "qemu-10.0-storage-daemon" {
            let byte_by_byte = record(&c2s, &s2c, 1, DEFAULT_MAX_MESSAGE_SIZE);
            assert_eq!(byte_by_byte, whole, "{name} byte by byte");
        }
    }
}

#[test]
fn a_message_is_stamped_with_the_call_that_completed_it() {
    let mut recorder = Recorder::new();
    recorder.received(b"{\"event\": \"A\"}\r\n{\"ev", 10);
    recorder.received(b"ent\": \"B\"}", 20);
    recorder.received(b"\r\n", 30);
    let entries = transcript::parse(&recorder.poll_lines().unwrap()).unwrap();
    assert_eq!(
        entries,
        vec![
            message(10, Side::Server, "{\"event\": \"A\"}"),
            message(20, Side::Server, "{\"event\": \"B\"}"),
        ]
    );
}

#[test]
fn closing_records_an_unfinished_message_first() {
    let mut recorder = Recorder::new();
    recorder.sent(b"{\"execute\": \"quit\"}  {\"execute\": \"st", 5);
    recorder.closed(Side::Client, 9);
    recorder.received(b"{\"return\": {}}\r\n\xff\xfe", 11);
    recorder.closed(Side::Server, 12);
    recorder.closed(Side::Server, 13);
    let entries = transcript::parse(&recorder.poll_lines().unwrap()).unwrap();
    assert_eq!(
        entries,
        vec![
            message(5, Side::Client, "{\"execute\": \"quit\"}"),
            message(9, Side::Client, "{\"execute\": \"st"),
            entry(9, Side::Client, Record::Closed),
            message(11, Side::Server, "{\"return\": {}}"),
            entry(
                12,
                Side::Server,
                Record::Message(Bytes::from_static(b"\xff\xfe"))
            ),
            entry(12, Side::Server, Record::Closed),
            entry(13, Side::Server, Record::Closed),
        ]
    );
}

#[test]
fn a_message_over_the_limit_is_noted_and_not_kept() {
    let mut recorder = Recorder::with_max_message_size(32);
    recorder.received(b"{\"return\": \"", 1);
    for at in 2..1000 {
        recorder.received(b"0123456789", at);
    }
    recorder.received(
        b"\"}\r\n{\"return\": {}}\r\n{\"return\": \"this one is also far too long\"}",
        1000,
    );
    recorder.closed(Side::Server, 1001);
    let lines = recorder.poll_lines().unwrap();
    assert!(lines.len() < 300, "the oversize bytes were not kept");
    assert_eq!(
        transcript::parse(&lines).unwrap(),
        vec![
            entry(4, Side::Server, Record::TooLarge { limit: 32 }),
            message(1000, Side::Server, "{\"return\": {}}"),
            entry(1000, Side::Server, Record::TooLarge { limit: 32 }),
            entry(1001, Side::Server, Record::Closed),
        ]
    );
}

// ---------------------------------------------------------------------------
// Converting the captures

/// Checks that the side's messages are `stream` message by message, with
/// only whitespace left between them.
fn assert_accounts_for_every_byte(entries: &[Entry], side: Side, stream: &[u8], context: &str) {
    let mut at = 0;
    for entry in entries.iter().filter(|e| e.from == side) {
        let Record::Message(text) = &entry.record else {
            continue;
        };
        while stream[at].is_ascii_whitespace() {
            at += 1;
        }
        assert_eq!(
            &stream[at..at + text.len()],
            &text[..],
            "{context}: at byte {at}"
        );
        at += text.len();
    }
    assert!(
        stream[at..].iter().all(u8::is_ascii_whitespace),
        "{context}: bytes left at {at}"
    );
}

#[test]
fn captures_convert_with_every_byte_accounted_for_and_replies_after_commands() {
    for name in CAPTURES {
        let (c2s, s2c) = load(name);
        let entries = from_streams(&c2s, &s2c);
        assert_accounts_for_every_byte(&entries, Side::Client, &c2s, name);
        assert_accounts_for_every_byte(&entries, Side::Server, &s2c, name);
        let messages = |side: Side| -> Vec<Bytes> {
            let side = entries.iter().filter(|e| e.from == side);
            side.filter_map(|e| match &e.record {
                Record::Message(text) => Some(text.clone()),
                _ => None,
            })
            .collect()
        };
        assert_eq!(messages(Side::Client), framed(&c2s), "{name}");
        assert_eq!(messages(Side::Server), framed(&s2c), "{name}");

        for (at, entry) in entries.iter().enumerate() {
            assert_eq!(entry.micros, at as u64, "{name}");
            if entry.from != Side::Server || entry.record == Record::Closed {
                continue;
            }
            let Some(id) = id_value(text(entry)) else {
                continue;
            };
            let asked = entries[..at]
                .iter()
                .any(|e| e.from == Side::Client && id_value(text(e)).as_ref() == Some(&id));
            assert!(asked, "{name}: the reply at {at} comes before its command");
        }
        let n = entries.len();
        assert_eq!(entries[n - 2].from, Side::Server);
        assert_eq!(entries[n - 2].record, Record::Closed);
        assert_eq!(entries[n - 1].from, Side::Client);
        assert_eq!(entries[n - 1].record, Record::Closed);

        // The id-less errors come right after the input they answer.
        if name.contains("system") {
            let after = |input: &[u8]| {
                let at = entries
                    .iter()
                    .position(|e| e.record == Record::Message(Bytes::copy_from_slice(input)));
                let next = &entries[at.unwrap_or_else(|| panic!("{name}: no {input:?}")) + 1];
                let reply: Value = serde_json::from_slice(text(next)).unwrap();
                reply["error"]["desc"].as_str().unwrap().to_string()
            };
            assert_eq!(after(b"[1, 2]"), "QMP input must be a JSON object");
            assert!(after(b"{\"execute\": bad json}").starts_with("JSON parse error"));
        }
    }
}

// ---------------------------------------------------------------------------
// Replaying

/// Drains every output.
fn drain(replay: &mut Replay, outputs: &mut Vec<ReplayOutput>) {
    outputs.extend(std::iter::from_fn(|| replay.poll_output()));
}

/// The client messages of `entries`, each with `"x{entry index}"` as its id
/// when it had one.
fn client_messages_with_own_ids(entries: &[Entry]) -> Vec<Vec<u8>> {
    let client = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.from == Side::Client);
    client
        .filter_map(|(at, e)| match &e.record {
            Record::Message(text) => Some(with_id(text, &format!("\"x{at}\""))),
            _ => None,
        })
        .collect()
}

/// Plays `entries` unpaced to a client that sends `sent` one message at a
/// time (each one `chunk` bytes at a time), then closes.
fn play(entries: &[Entry], sent: &[Vec<u8>], chunk: usize) -> Vec<ReplayOutput> {
    let mut replay = Replay::new(entries.to_vec(), false, 0);
    let mut outputs = Vec::new();
    drain(&mut replay, &mut outputs);
    for message in sent {
        let message = [&message[..], b"\n"].concat();
        for piece in message.chunks(chunk) {
            replay.receive(piece, 0);
            drain(&mut replay, &mut outputs);
        }
    }
    replay.receive_eof(0);
    drain(&mut replay, &mut outputs);
    outputs
}

/// What the replay must send for `entries` played to a client whose ids
/// are `"x{entry index}"`: each server message with the id of the client
/// message it answers replaced, then CRLF.
fn expected_sends(entries: &[Entry]) -> Vec<Vec<u8>> {
    let mut sends = Vec::new();
    for (at, entry) in entries.iter().enumerate() {
        let Record::Message(text) = &entry.record else {
            continue;
        };
        if entry.from == Side::Client {
            continue;
        }
        let asked = id_value(text).and_then(|id| {
            let earlier = entries[..at].iter().enumerate().rev();
            let mut clients = earlier.filter(|(_, e)| e.from == Side::Client);
            clients
                .find(|(_, e)| id_value(text_of(e)) == Some(id.clone()))
                .map(|(k, _)| k)
        });
        let text = match asked {
            Some(k) => with_id(text, &format!("\"x{k}\"")),
            None => text.to_vec(),
        };
        sends.push([&text[..], b"\r\n"].concat());
    }
    sends
}

fn text_of(entry: &Entry) -> &[u8] {
    match &entry.record {
        Record::Message(text) => text,
        _ => b"",
    }
}

#[test]
fn captures_replay_to_a_client_with_ids_of_its_own() {
    for name in CAPTURES {
        let (c2s, s2c) = load(name);
        let entries = from_streams(&c2s, &s2c);
        let sent = client_messages_with_own_ids(&entries);
        let outputs = play(&entries, &sent, usize::MAX);
        let (sends, last) = outputs.split_at(outputs.len() - 2);
        assert_eq!(
            last,
            [ReplayOutput::Close { at_micros: 0 }, ReplayOutput::Finished],
            "{name}"
        );
        let sends: Vec<Vec<u8>> = sends
            .iter()
            .map(|output| match output {
                ReplayOutput::Send {
                    at_micros: 0,
                    bytes,
                } => bytes.to_vec(),
                other => panic!("{name}: {other:?}"),
            })
            .collect();
        let expected = expected_sends(&entries);
        assert_eq!(sends.len(), expected.len(), "{name}");
        for (at, (got, expected)) in sends.iter().zip(&expected).enumerate() {
            assert!(
                got == expected,
                "{name}: message {at}:\n{}\n{}",
                String::from_utf8_lossy(got),
                String::from_utf8_lossy(expected)
            );
        }
        let own_id = |send: &&Vec<u8>| {
            let id = id_value(send);
            id.is_some_and(|id| id.as_str().is_some_and(|id| id.starts_with('x')))
        };
        let rewritten = sends.iter().filter(own_id).count();
        assert!(rewritten > 5, "{name}: the client's ids came back");

        let byte_by_byte = play(&entries, &sent, 1);
        assert_eq!(byte_by_byte, outputs, "{name} byte by byte");
        let whole_stream: Vec<u8> = sent.iter().flat_map(|m| [&m[..], b"  "].concat()).collect();
        let at_once = play(&entries, &[whole_stream], usize::MAX);
        assert_eq!(at_once, outputs, "{name} in one write");
    }
}

/// Plays the capture `name` to a client that sends its recorded messages
/// (with ids of its own) until `stop` says to send something else instead.
fn play_until(
    name: &'static str,
    stop: impl Fn(&[u8]) -> Option<Vec<u8>>,
) -> (Vec<Entry>, Vec<ReplayOutput>) {
    let (c2s, s2c) = load(name);
    let entries = from_streams(&c2s, &s2c);
    let mut sent = client_messages_with_own_ids(&entries);
    if let Some(at) = sent.iter().position(|m| stop(m).is_some()) {
        let replacement = stop(&sent[at]).unwrap();
        sent.truncate(at);
        sent.push(replacement);
    }
    let outputs = play(&entries, &sent, usize::MAX);
    (entries, outputs)
}

/// Whether `output` is the replay's answer to a mismatched command.
fn is_error_reply(output: &ReplayOutput) -> bool {
    matches!(output, ReplayOutput::Send { bytes, .. } if bytes.windows(6).any(|w| w == b"entry "))
}

/// The replay's last two outputs: the error reply and the mismatch.
fn error_reply_and_mismatch(outputs: &[ReplayOutput]) -> (Value, Mismatch) {
    let [.., ReplayOutput::Send { bytes, .. }, ReplayOutput::Mismatch(mismatch)] = outputs else {
        panic!("{:?}", &outputs[outputs.len() - 2..]);
    };
    assert!(bytes.ends_with(b"}\r\n"));
    (serde_json::from_slice(bytes).unwrap(), mismatch.clone())
}

#[test]
fn a_changed_argument_is_reported_where_it_differs_and_to_the_caller() {
    let (entries, outputs) = play_until("qemu-10.0-storage-daemon", |m| {
        let m = std::str::from_utf8(m).unwrap();
        m.contains("\"null1\"")
            .then(|| m.replace("\"null1\"", "\"disk1\"").into_bytes())
    });
    let (reply, mismatch) = error_reply_and_mismatch(&outputs);
    let index = entries
        .iter()
        .position(|e| text_of(e).windows(7).any(|w| w == b"\"null1\""))
        .unwrap();
    assert_eq!(mismatch.entry, index + 1);
    assert_eq!(
        mismatch.difference,
        Difference::Arguments {
            command: "blockdev-add".into(),
            path: "/arguments/node-name".into(),
            expected: Some("\"null1\"".into()),
            got: Some("\"disk1\"".into()),
        }
    );
    let sentence = format!(
        "entry {}: command \"blockdev-add\" differs at /arguments/node-name: recorded \"null1\", got \"disk1\"",
        index + 1
    );
    assert_eq!(mismatch.to_string(), sentence);
    assert_eq!(mismatch.recorded.as_deref(), Some(text(&entries[index])));
    assert_eq!(
        reply,
        serde_json::json!({"id": format!("x{index}"), "error": {"class": "GenericError", "desc": sentence}})
    );
}

#[test]
fn a_changed_command_name_is_reported() {
    let (_, outputs) = play_until("qemu-10.0-system", |m| {
        let m = std::str::from_utf8(m).unwrap();
        m.contains("query-version")
            .then(|| m.replace("query-version", "query-kvm").into_bytes())
    });
    let (reply, mismatch) = error_reply_and_mismatch(&outputs);
    assert_eq!(
        mismatch.difference,
        Difference::Name {
            expected: "query-version".into(),
            got: "query-kvm".into()
        }
    );
    assert!(mismatch
        .to_string()
        .ends_with(": recorded command \"query-version\", got \"query-kvm\""));
    assert_eq!(reply["error"]["desc"], mismatch.to_string());
}

#[test]
fn execute_for_exec_oob_is_reported() {
    let (_, outputs) = play_until("qemu-10.0-system", |m| {
        let m = std::str::from_utf8(m).unwrap();
        m.contains("exec-oob")
            .then(|| m.replace("exec-oob", "execute").into_bytes())
    });
    let (_, mismatch) = error_reply_and_mismatch(&outputs);
    assert_eq!(
        mismatch.difference,
        Difference::Kind {
            command: "query-name".into(),
            expected_oob: true
        }
    );
    assert!(mismatch
        .to_string()
        .ends_with("command \"query-name\" was recorded with \"exec-oob\", got \"execute\""));
}

#[test]
fn a_changed_malformed_input_is_a_text_difference_without_a_reply() {
    let (_, outputs) = play_until("qemu-7.2-system", |m| {
        (m == b"[1, 2]").then(|| b"[1, 3]".to_vec())
    });
    let Some(ReplayOutput::Mismatch(mismatch)) = outputs.last() else {
        panic!("{outputs:?}")
    };
    let error_replies = outputs.iter().filter(|o| is_error_reply(o)).count();
    assert_eq!(error_replies, 0, "the input had no id to answer");
    assert_eq!(mismatch.difference, Difference::Text);
    assert_eq!(
        mismatch.to_string(),
        format!("entry {}: recorded `[1, 2]`, got `[1, 3]`", mismatch.entry)
    );
}

#[test]
fn an_extra_command_after_the_end_is_reported() {
    let (c2s, s2c) = load("qemu-10.0-system");
    let mut entries = from_streams(&c2s, &s2c);
    let mut sent = client_messages_with_own_ids(&entries);
    sent.push(b"{\"execute\": \"query-status\", \"id\": \"late\"}".to_vec());

    // The client was recorded closing (and the server was not).
    let server_closed = entries.remove(entries.len() - 2);
    assert_eq!(
        (server_closed.from, server_closed.record),
        (Side::Server, Record::Closed)
    );
    let outputs = play(&entries, &sent, usize::MAX);
    let (reply, mismatch) = error_reply_and_mismatch(&outputs);
    assert_eq!(
        mismatch.difference,
        Difference::UnexpectedMessage {
            transcript_ended: false
        }
    );
    assert_eq!(mismatch.entry, entries.len());
    assert_eq!(mismatch.recorded, None);
    assert_eq!(reply["id"], "late");
    assert!(mismatch
        .to_string()
        .contains("recorded the client closing the stream, got `{\"execute\": \"query-status\""));

    // The transcript ends without either side closing.
    entries.truncate(entries.len() - 1);
    let outputs = play(&entries, &sent, usize::MAX);
    let (_, mismatch) = error_reply_and_mismatch(&outputs);
    assert_eq!(
        mismatch.difference,
        Difference::UnexpectedMessage {
            transcript_ended: true
        }
    );
    assert_eq!(mismatch.entry, entries.len() + 1);
    assert!(mismatch
        .to_string()
        .contains(": the transcript has ended, got `"));
    // Without the extra command, the client's end finishes it.
    let outputs = play(&entries, &sent[..sent.len() - 1], usize::MAX);
    assert_eq!(outputs.last(), Some(&ReplayOutput::Finished));
    assert!(!outputs
        .iter()
        .any(|o| matches!(o, ReplayOutput::Close { .. })));
}

#[test]
fn a_client_closing_too_early_is_reported_and_later_input_ignored() {
    let (c2s, s2c) = load("qemu-7.2-storage-daemon");
    let entries = from_streams(&c2s, &s2c);
    let sent = client_messages_with_own_ids(&entries);
    let outputs = play(&entries, &sent[..3], usize::MAX);
    let Some(ReplayOutput::Mismatch(mismatch)) = outputs.last() else {
        panic!()
    };
    let fourth = entries
        .iter()
        .filter(|e| e.from == Side::Client)
        .nth(3)
        .unwrap();
    assert_eq!(mismatch.difference, Difference::ClientClosed);
    assert_eq!(mismatch.recorded.as_deref(), Some(text(fourth)));
    assert_eq!(mismatch.got, None);
    assert!(mismatch
        .to_string()
        .ends_with("`, but the client closed the stream"));
    let error_replies = outputs.iter().filter(|o| is_error_reply(o)).count();
    assert_eq!(error_replies, 0, "a closed client gets no reply");

    let mut replay = Replay::new(entries.clone(), false, 0);
    replay.receive(b"{\"execute\": \"nope\", \"id\": 1}", 1);
    let outputs: Vec<_> = std::iter::from_fn(|| replay.poll_output()).collect();
    assert!(matches!(outputs.last(), Some(ReplayOutput::Mismatch(_))));
    replay.receive(&sent[0], 2);
    replay.receive_eof(3);
    assert_eq!(
        replay.poll_output(),
        None,
        "after a mismatch input is ignored"
    );
}

fn pacing_transcript() -> Vec<Entry> {
    vec![
        message(100, Side::Server, "{\"QMP\": {}}"),
        message(1000, Side::Client, "{\"execute\": \"a\", \"id\": 1}"),
        message(1500, Side::Server, "{\"return\": {}, \"id\": 1}"),
        // Recorded out of order: never due before the message before it.
        message(1200, Side::Server, "{\"event\": \"E\"}"),
        entry(1300, Side::Server, Record::TooLarge { limit: 8 }),
        message(3000, Side::Client, "{\"execute\": \"b\"}"),
        // Recorded before the command it follows: due when it arrives.
        message(2500, Side::Server, "{\"return\": {}}"),
        entry(3400, Side::Server, Record::Closed),
        message(9999, Side::Server, "{\"event\": \"ignored\"}"),
    ]
}

fn timed(paced: bool) -> Vec<(u64, String)> {
    let mut replay = Replay::new(pacing_transcript(), paced, 50);
    let mut outputs = Vec::new();
    drain(&mut replay, &mut outputs);
    replay.receive(b"{\"execute\": \"a\", \"id\": 1}", 10_000);
    drain(&mut replay, &mut outputs);
    replay.receive(b"{\"execute\": \"b\"}", 20_000);
    drain(&mut replay, &mut outputs);
    outputs
        .into_iter()
        .map(|output| match output {
            ReplayOutput::Send { at_micros, bytes } => {
                (at_micros, String::from_utf8(bytes.to_vec()).unwrap())
            }
            ReplayOutput::Close { at_micros } => (at_micros, "close".into()),
            ReplayOutput::Finished => (0, "finished".into()),
            ReplayOutput::Mismatch(m) => panic!("{m}"),
        })
        .collect()
}

#[test]
fn paced_messages_keep_their_recorded_delays() {
    let expected = [
        (150, "{\"QMP\": {}}\r\n"),
        (10_500, "{\"return\": {}, \"id\": 1}\r\n"),
        (10_500, "{\"event\": \"E\"}\r\n"),
        (20_000, "{\"return\": {}}\r\n"),
        (20_400, "close"),
        (0, "finished"),
    ];
    let expected: Vec<(u64, String)> = expected
        .iter()
        .map(|(at, s)| (*at, s.to_string()))
        .collect();
    assert_eq!(timed(true), expected);
}

#[test]
fn unpaced_messages_are_due_when_released() {
    let expected = [
        (50, "{\"QMP\": {}}\r\n"),
        (10_000, "{\"return\": {}, \"id\": 1}\r\n"),
        (10_000, "{\"event\": \"E\"}\r\n"),
        (20_000, "{\"return\": {}}\r\n"),
        (20_000, "close"),
        (0, "finished"),
    ];
    let expected: Vec<(u64, String)> = expected
        .iter()
        .map(|(at, s)| (*at, s.to_string()))
        .collect();
    assert_eq!(timed(false), expected);
}

#[test]
fn a_recording_replays_with_its_unfinished_message_and_raw_bytes() {
    let mut recorder = Recorder::new();
    recorder.received(b"{\"QMP\": {}}\r\n\xff\xfe", 0);
    recorder.received(b"{\"return\": 1}\r\n", 0);
    recorder.sent(
        b"\xff{\"execute\": \"a\"}{\"execute\": \"b\", \"arguments\": {\"x\":",
        5,
    );
    recorder.closed(Side::Client, 6);
    let entries = transcript::parse(&recorder.poll_lines().unwrap()).unwrap();
    let text = String::from_utf8(transcript::encode(&entries)).unwrap();
    assert!(text.contains("\"hex\": \"fffe\""), "{text}");

    let mut replay = Replay::new(entries, true, 0);
    replay.receive(
        b"\xff{\"execute\":\"a\"} {\"execute\": \"b\", \"arguments\": {\"x\":",
        7,
    );
    replay.receive_eof(8);
    let outputs: Vec<_> = std::iter::from_fn(|| replay.poll_output()).collect();
    let sends: Vec<&[u8]> = outputs
        .iter()
        .filter_map(|o| match o {
            ReplayOutput::Send { bytes, .. } => Some(&bytes[..]),
            _ => None,
        })
        .collect();
    assert_eq!(
        sends,
        [
            &b"{\"QMP\": {}}\r\n"[..],
            b"\xff\xfe\r\n",
            b"{\"return\": 1}\r\n"
        ]
    );
    assert_eq!(outputs.last(), Some(&ReplayOutput::Finished));
}

#[test]
fn garbage_and_oversize_input_end_in_a_mismatch_without_panicking() {
    let (c2s, s2c) = load("qemu-10.0-system");
    let entries = from_streams(&c2s, &s2c);
    let garbage: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for chunk in [1, 3, 1000] {
        let mut replay = Replay::new(entries.clone(), true, u64::MAX - 5);
        for piece in garbage.chunks(chunk) {
            replay.receive(piece, u64::MAX);
        }
        replay.receive_eof(u64::MAX);
        let outputs: Vec<_> = std::iter::from_fn(|| replay.poll_output()).collect();
        assert!(
            matches!(outputs.last(), Some(ReplayOutput::Mismatch(_))),
            "{outputs:?}"
        );
    }

    let mut replay = Replay::new(entries.clone(), false, 0);
    replay.receive(b"{\"execute\": \"", 1);
    let piece = vec![b'a'; 1 << 20];
    for _ in 0..=(DEFAULT_MAX_MESSAGE_SIZE >> 20) {
        replay.receive(&piece, 1);
    }
    let outputs: Vec<_> = std::iter::from_fn(|| replay.poll_output()).collect();
    let Some(ReplayOutput::Mismatch(mismatch)) = outputs.last() else {
        panic!("{outputs:?}")
    };
    assert_eq!(
        mismatch.difference,
        Difference::TooLarge {
            limit: DEFAULT_MAX_MESSAGE_SIZE
        }
    );
    assert_eq!(mismatch.got, None);
}
