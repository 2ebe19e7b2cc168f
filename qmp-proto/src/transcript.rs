//! Recorded QMP sessions ("transcripts"): what each side sent, message by
//! message, and when.
//!
//! A transcript is how a session seen once (against a real QEMU, in a bug
//! report, in CI) becomes a test that runs anywhere: [`Recorder`] writes one
//! from the bytes a client wrote and read, [`from_streams`] converts the raw
//! `NAME.c2s` + `NAME.s2c` captures of `tests/captures/`, and [`Replay`]
//! plays the server's half back to a client under test, checking that the
//! client sends what was recorded.
//!
//! # Format
//!
//! One JSON object per line (`\n`-terminated), in order of time:
//!
//! - `{"us": 120, "from": "client", "text": "..."}`: a message. `us` is the
//!   time in microseconds since the recording began (a monotonic clock),
//!   `from` is `"client"` or `"server"`, and `text` the message's exact
//!   bytes as a JSON string: the framed JSON text, with no surrounding
//!   whitespace (a `pretty=on` message keeps its inner CRLFs).
//! - `{"us": 130, "from": "server", "hex": "ff00"}`: the same, for bytes
//!   that are not valid UTF-8 (lowercase hex).
//! - `{"us": 900, "from": "server", "closed": true}`: that side closed the
//!   stream.
//! - `{"us": 950, "from": "server", "too-large": 16777216}`: a message
//!   larger than the recorder's limit passed; its bytes were not kept.
//!
//! Blank lines are skipped and unknown members ignored, so that later
//! versions can add to the format. A short session:
//!
//! ```text
//! {"us": 0, "from": "server", "text": "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}"}
//! {"us": 310, "from": "client", "text": "{\"execute\": \"qmp_capabilities\", \"id\": 1}"}
//! {"us": 420, "from": "server", "text": "{\"return\": {}, \"id\": 1}"}
//! {"us": 505, "from": "client", "text": "{\"execute\": \"quit\", \"id\": 2}"}
//! {"us": 790, "from": "server", "text": "{\"timestamp\": {\"seconds\": 1795554665, \"microseconds\": 598141}, \"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"}}"}
//! {"us": 801, "from": "server", "text": "{\"return\": {}, \"id\": 2}"}
//! {"us": 950, "from": "server", "closed": true}
//! ```
//!
//! # Replaying one
//!
//! The client under test may use ids of its own: replies are given back
//! with the id the client used for the command they answer.
//!
//! ```
//! use qmp_proto::transcript::{self, Replay, ReplayOutput};
//!
//! let text = br#"
//! {"us": 0, "from": "server", "text": "{\"QMP\": {\"version\": {}, \"capabilities\": []}}"}
//! {"us": 500, "from": "client", "text": "{\"execute\": \"qmp_capabilities\", \"id\": 1}"}
//! {"us": 700, "from": "server", "text": "{\"return\": {}, \"id\": 1}"}
//! {"us": 900, "from": "client", "closed": true}
//! "#;
//! let entries = transcript::parse(text).unwrap();
//! let mut replay = Replay::new(entries, true, 1_000);
//!
//! let Some(ReplayOutput::Send { at_micros: 1_000, bytes }) = replay.poll_output() else { panic!() };
//! assert!(bytes.starts_with(b"{\"QMP\""));
//! assert_eq!(replay.poll_output(), None); // waiting for the client
//!
//! replay.receive(br#"{"execute": "qmp_capabilities", "id": "a"}"#, 5_000);
//! let reply = ReplayOutput::Send { at_micros: 5_200, bytes: "{\"return\": {}, \"id\": \"a\"}\r\n".into() };
//! assert_eq!(replay.poll_output(), Some(reply));
//!
//! replay.receive_eof(6_000);
//! assert_eq!(replay.poll_output(), Some(ReplayOutput::Finished));
//! ```

use crate::json::push_str_literal;
use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;
use serde::Deserialize;
use serde_json::value::RawValue;

mod recorder;
mod replay;
mod streams;

pub use recorder::Recorder;
pub use replay::{Difference, Mismatch, Replay, ReplayOutput};
pub use streams::from_streams;

/// Which end of the connection an entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The program that sends commands.
    Client,
    /// QEMU, or whatever answers the commands.
    Server,
}

impl Side {
    /// The name used in transcripts: `"client"` or `"server"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// What one side did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Sent a message: its exact bytes as framed, with no line end.
    Message(Bytes),
    /// Closed its stream.
    Closed,
    /// Sent a message larger than the recorder's limit; the bytes were not
    /// kept, so that recording never needs more memory than framing does.
    TooLarge {
        /// The limit the message went past, in bytes.
        limit: usize,
    },
}

/// One line of a transcript: what one side did, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Microseconds since the recording began.
    pub micros: u64,
    /// The side that did it.
    pub from: Side,
    /// What it did.
    pub record: Record,
}

impl Entry {
    /// Appends the entry as one line of a transcript, `\n` included.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("{{\"us\": {}, \"from\": ", self.micros).as_bytes());
        push_str_literal(out, self.from.as_str());
        match &self.record {
            Record::Message(bytes) => match core::str::from_utf8(bytes) {
                Ok(text) => {
                    out.extend_from_slice(b", \"text\": ");
                    push_str_literal(out, text);
                }
                Err(_) => {
                    out.extend_from_slice(b", \"hex\": \"");
                    for byte in bytes.iter() {
                        out.push(HEX_DIGITS[usize::from(byte >> 4)]);
                        out.push(HEX_DIGITS[usize::from(byte & 0xf)]);
                    }
                    out.push(b'"');
                }
            },
            Record::Closed => out.extend_from_slice(b", \"closed\": true"),
            Record::TooLarge { limit } => {
                out.extend_from_slice(format!(", \"too-large\": {limit}").as_bytes());
            }
        }
        out.extend_from_slice(b"}\n");
    }

    /// Parses one line of a transcript (without its `\n`); errors name it
    /// line 1.
    pub fn parse(line: &[u8]) -> Result<Entry, TranscriptError> {
        parse_line(line, 1)
    }
}

/// Parses a whole transcript, skipping blank lines.
pub fn parse(text: &[u8]) -> Result<Vec<Entry>, TranscriptError> {
    text.split(|&byte| byte == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.trim_ascii().is_empty())
        .map(|(index, line)| parse_line(line, index + 1))
        .collect()
}

/// Encodes `entries` as a transcript, one line each.
pub fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        entry.encode(&mut out);
    }
    out
}

/// Why a transcript could not be parsed, and on which line (counted from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranscriptError {
    /// The line is not a JSON object with an integer `us` and a `from` of
    /// `"client"` or `"server"` (or a member has the wrong type).
    Json {
        /// The line's number.
        line: usize,
        /// serde_json's description of the problem.
        detail: String,
    },
    /// The line does not have exactly one of `text`, `hex`, `closed: true`
    /// and `too-large`.
    Record {
        /// The line's number.
        line: usize,
    },
    /// `hex` is not an even number of hexadecimal digits.
    Hex {
        /// The line's number.
        line: usize,
    },
}

impl TranscriptError {
    /// The number of the line at fault, counted from 1.
    pub fn line(&self) -> usize {
        match self {
            TranscriptError::Json { line, .. }
            | TranscriptError::Record { line }
            | TranscriptError::Hex { line } => *line,
        }
    }
}

impl fmt::Display for TranscriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TranscriptError::Json { line, detail } => {
                write!(f, "transcript line {line} is not an entry: {detail}")
            }
            TranscriptError::Record { line } => write!(
                f,
                "transcript line {line} needs exactly one of \"text\", \"hex\", \"closed\": true and \"too-large\""
            ),
            TranscriptError::Hex { line } => write!(
                f,
                "transcript line {line} has a \"hex\" that is not an even number of hex digits"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for TranscriptError {}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// A line as written, every record member optional so that a line with
/// none or several of them is told apart from one that is not JSON.
#[derive(Deserialize)]
struct Line<'a> {
    us: u64,
    from: Side,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    hex: Option<Cow<'a, str>>,
    #[serde(default)]
    closed: Option<bool>,
    #[serde(rename = "too-large", default)]
    too_large: Option<usize>,
}

fn parse_line(line: &[u8], number: usize) -> Result<Entry, TranscriptError> {
    let fields: Line<'_> = serde_json::from_slice(line).map_err(|e| {
        // A line is one line of JSON: only the column says where.
        let detail = e.to_string();
        let detail = match detail.rsplit_once(" at line ") {
            Some((problem, _)) => format!("{problem} (column {})", e.column()),
            None => detail,
        };
        TranscriptError::Json {
            line: number,
            detail,
        }
    })?;
    let record = match (fields.text, fields.hex, fields.closed, fields.too_large) {
        (Some(text), None, None, None) => Record::Message(Bytes::from(text.into_owned())),
        (None, Some(hex), None, None) => {
            let bytes = from_hex(&hex).ok_or(TranscriptError::Hex { line: number })?;
            Record::Message(Bytes::from(bytes))
        }
        (None, None, Some(true), None) => Record::Closed,
        (None, None, None, Some(limit)) => Record::TooLarge { limit },
        _ => return Err(TranscriptError::Record { line: number }),
    };
    Ok(Entry {
        micros: fields.us,
        from: fields.from,
        record,
    })
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    let digit = |byte: u8| char::from(byte).to_digit(16);
    let pairs = hex.as_bytes().chunks(2);
    pairs
        .map(|pair| match pair {
            [high, low] => Some(((digit(*high)? << 4) | digit(*low)?) as u8),
            _ => None,
        })
        .collect()
}

/// The top-level members of a JSON object, their values' text borrowed
/// from `text`; `None` when `text` is not a JSON object.
fn members(text: &[u8]) -> Option<BTreeMap<Cow<'_, str>, &RawValue>> {
    serde_json::from_slice(text).ok()
}

/// `json` without whitespace outside strings: how ids written by different
/// hands (a compact command, a `pretty=on` reply) are compared.
fn compact(json: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for &byte in json.as_bytes() {
        if in_string {
            (in_string, escaped) = (escaped || byte != b'"', !escaped && byte == b'\\');
        } else if matches!(byte, b' ' | b'\t' | b'\r' | b'\n') {
            continue;
        } else {
            in_string = byte == b'"';
        }
        out.push(byte);
    }
    out
}

/// The compacted text of a message's top-level `id`, if it has one.
fn id_key(text: &[u8]) -> Option<Vec<u8>> {
    members(text)?.get("id").map(|id| compact(id.get()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn compact_keeps_whitespace_inside_strings() {
        let pretty = "{\r\n    \"nested\": [\r\n        5, \"a \\\" b\\\\\"\r\n    ]\r\n}";
        assert_eq!(compact(pretty), br#"{"nested":[5,"a \" b\\"]}"#.to_vec());
    }

    #[test]
    fn id_key_reads_only_the_top_level_id() {
        assert_eq!(
            id_key(br#"{"return": {}, "id": "a b"}"#),
            Some(b"\"a b\"".to_vec())
        );
        assert_eq!(id_key(br#"{"event": "X", "data": {"id": 1}}"#), None);
        assert_eq!(id_key(b"[1, 2]"), None);
    }

    #[test]
    fn hex_takes_either_case_and_refuses_odd_or_bad_digits() {
        assert_eq!(from_hex("ff00Ab"), Some(vec![0xff, 0x00, 0xab]));
        assert_eq!(from_hex(""), Some(vec![]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
    }

    #[test]
    fn encode_writes_the_documented_members() {
        let entry = |record| Entry {
            micros: 7,
            from: Side::Server,
            record,
        };
        let mut out = Vec::new();
        entry(Record::Message(Bytes::from_static(b"{\"a\": \"\r\n\"}"))).encode(&mut out);
        entry(Record::Message(Bytes::from_static(b"\xff\x00"))).encode(&mut out);
        entry(Record::Closed).encode(&mut out);
        entry(Record::TooLarge { limit: 16 }).encode(&mut out);
        assert_eq!(
            core::str::from_utf8(&out).unwrap(),
            concat!(
                "{\"us\": 7, \"from\": \"server\", \"text\": \"{\\\"a\\\": \\\"\\r\\n\\\"}\"}\n",
                "{\"us\": 7, \"from\": \"server\", \"hex\": \"ff00\"}\n",
                "{\"us\": 7, \"from\": \"server\", \"closed\": true}\n",
                "{\"us\": 7, \"from\": \"server\", \"too-large\": 16}\n",
            )
        );
    }
}
