//! Playing back the server's half of a transcript to a client under test.

use super::recorder::Splitter;
use super::{compact, members, Entry, Record, Side};
use crate::framing::DEFAULT_MAX_MESSAGE_SIZE;
use crate::json::{range_in, RawJson};
use crate::message::QmpError;
use crate::server::encode_reply;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// What a [`Replay`] has to say; see [`Replay::poll_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayOutput {
    /// Write `bytes` to the client, not before `at_micros` on the clock the
    /// `now_micros` arguments are read from. They are a recorded server
    /// message followed by CRLF, as QEMU ends its messages, with its `id`
    /// replaced by the one the client used for the command it answers.
    Send {
        /// When to write: paced, the recorded delay after the client's
        /// last message; unpaced, the time of the input that released it.
        at_micros: u64,
        /// What to write.
        bytes: Bytes,
    },
    /// Close the stream, not before `at_micros`: the recorded server did.
    Close {
        /// When to close, as for [`Send`](ReplayOutput::Send).
        at_micros: u64,
    },
    /// The client did not do what was recorded. The last output: later
    /// input is ignored.
    Mismatch(Mismatch),
    /// Every entry was played and the session ended (the client closed, or
    /// the recorded server did). Given once, last.
    Finished,
}

/// Where and how the client diverged from the transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The number of the entry the client was expected to match, counted
    /// from 1 (one past the last when the transcript had ended).
    pub entry: usize,
    /// The recorded message; `None` where the client was recorded closing,
    /// or the transcript had ended.
    pub recorded: Option<Bytes>,
    /// The client's message; `None` when it closed instead (or sent one
    /// too large to keep).
    pub got: Option<Bytes>,
    /// The first difference.
    pub difference: Difference,
}

/// The first difference between what was recorded and what the client did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// Another command.
    Name {
        /// The recorded command's name.
        expected: String,
        /// The name the client sent.
        got: String,
    },
    /// The same command with `execute` where `exec-oob` was recorded, or
    /// the reverse.
    Kind {
        /// The command's name.
        command: String,
        /// Whether the recorded one was `exec-oob`.
        expected_oob: bool,
    },
    /// The same command with other arguments (an absent `arguments` is
    /// `{}`; the keys are visited in sorted order).
    Arguments {
        /// The command's name.
        command: String,
        /// Where they first differ, as a JSON pointer: `/arguments/node-name`.
        path: String,
        /// The recorded value there, as compact JSON; `None` when absent.
        expected: Option<String>,
        /// The client's value there, as compact JSON; `None` when absent.
        got: Option<String>,
    },
    /// Other bytes, where at least one side is not a command (malformed
    /// input is recorded and compared byte for byte).
    Text,
    /// The client closed where a message was recorded.
    ClientClosed,
    /// A message where the client was recorded closing, or after the end
    /// of the transcript.
    UnexpectedMessage {
        /// Whether the transcript had ended.
        transcript_ended: bool,
    },
    /// A message larger than the replay keeps (its bytes were dropped).
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entry {}: ", self.entry)?;
        let recorded = Excerpt(self.recorded.as_deref().unwrap_or_default());
        let got = Excerpt(self.got.as_deref().unwrap_or_default());
        match &self.difference {
            Difference::Name { expected, got } => {
                write!(f, "recorded command {expected:?}, got {got:?}")
            }
            Difference::Kind {
                command,
                expected_oob,
            } => {
                let key = |oob: bool| if oob { "exec-oob" } else { "execute" };
                let (expected, got) = (key(*expected_oob), key(!expected_oob));
                write!(
                    f,
                    "command {command:?} was recorded with {expected:?}, got {got:?}"
                )
            }
            Difference::Arguments {
                command,
                path,
                expected,
                got,
            } => {
                let value = |v: &Option<String>| v.as_deref().unwrap_or("nothing").to_string();
                let (expected, got) = (value(expected), value(got));
                let (expected, got) = (Excerpt(expected.as_bytes()), Excerpt(got.as_bytes()));
                write!(
                    f,
                    "command {command:?} differs at {path}: recorded {expected}, got {got}"
                )
            }
            Difference::Text => write!(f, "recorded `{recorded}`, got `{got}`"),
            Difference::ClientClosed => {
                write!(f, "recorded `{recorded}`, but the client closed the stream")
            }
            Difference::UnexpectedMessage {
                transcript_ended: false,
            } => write!(f, "recorded the client closing the stream, got `{got}`"),
            Difference::UnexpectedMessage {
                transcript_ended: true,
            } => write!(f, "the transcript has ended, got `{got}`"),
            Difference::TooLarge { limit } => write!(
                f,
                "recorded `{recorded}`, got a message over the limit of {limit} bytes"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Mismatch {}

/// At most this many bytes of a message are shown in a [`Mismatch`]'s
/// sentence: enough to recognize it, short enough to read.
const EXCERPT: usize = 200;

struct Excerpt<'a>(&'a [u8]);

impl fmt::Display for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.0[..self.0.len().min(EXCERPT)];
        f.write_str(&String::from_utf8_lossy(shown))?;
        if shown.len() < self.0.len() {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// The server half of a replay: a mock server that plays a transcript
/// back to a client under test and checks what the client sends.
///
/// Server messages are given out in order until the next client entry; then
/// the replay waits for the client's next message and compares it with the
/// recorded one. Commands match when they have the same name, the same key
/// (`execute` or `exec-oob`) and the same arguments as JSON values; their
/// `id`s are not compared but mapped, so a client with ids of its own gets
/// its own ids back in the replies. Any other message must match byte for
/// byte. A recorded client `closed` waits for the client to close; a
/// recorded server `closed` ends the replay; `too-large` entries are
/// skipped.
///
/// After every input, drain [`poll_output`](Self::poll_output). When the
/// client diverges, the replay answers its message, if it had an id, with
/// a `GenericError` that explains the difference (so the client's own call
/// fails with it), then gives the [`Mismatch`] and ignores the rest.
///
/// Paced, a server message recorded `d` microseconds after the client
/// message before it is due `d` microseconds after that message arrived
/// live; unpaced, it is due at once. Times never go back.
#[derive(Debug)]
pub struct Replay {
    entries: Vec<Entry>,
    /// The entry to play next.
    next: usize,
    paced: bool,
    /// A live time and the recorded time it stands for: the last client
    /// input matched (or the start).
    anchor_live: u64,
    anchor_recorded: u64,
    /// The latest time given in an output.
    last_at: u64,
    /// Recorded ids (compacted) and the client's ids for the same commands.
    ids: BTreeMap<Vec<u8>, Bytes>,
    client: Splitter,
    client_closed: bool,
    /// A `Mismatch` or `Finished` was given.
    over: bool,
    outputs: VecDeque<ReplayOutput>,
}

impl Replay {
    /// Starts a replay of `entries` at `now_micros`; what the server sent
    /// before the client's first message is ready in
    /// [`poll_output`](Self::poll_output).
    pub fn new(entries: Vec<Entry>, paced: bool, now_micros: u64) -> Replay {
        let mut replay = Replay {
            entries,
            next: 0,
            paced,
            anchor_live: now_micros,
            anchor_recorded: 0,
            last_at: 0,
            ids: BTreeMap::new(),
            client: Splitter::new(DEFAULT_MAX_MESSAGE_SIZE),
            client_closed: false,
            over: false,
            outputs: VecDeque::new(),
        };
        replay.play(now_micros);
        replay
    }

    /// Takes bytes the client wrote, at `now_micros`.
    pub fn receive(&mut self, bytes: &[u8], now_micros: u64) {
        if self.over || self.client_closed {
            return;
        }
        self.client.push(bytes);
        while !self.over {
            let Some(record) = self.client.next_record() else {
                break;
            };
            self.client_sent(record, now_micros);
        }
    }

    /// Says the client closed its stream, at `now_micros`. An unfinished
    /// message it left is compared first, as a message.
    pub fn receive_eof(&mut self, now_micros: u64) {
        if self.over || self.client_closed {
            return;
        }
        if let Some(leftover) = self.client.finish() {
            self.client_sent(Record::Message(leftover), now_micros);
        }
        self.client_closed = true;
        self.play(now_micros);
    }

    /// The next output, or `None` until more input comes.
    pub fn poll_output(&mut self) -> Option<ReplayOutput> {
        self.outputs.pop_front()
    }

    /// Plays entries until one the client must match.
    fn play(&mut self, now: u64) {
        while !self.over {
            let Some(entry) = self.entries.get(self.next).cloned() else {
                if self.client_closed {
                    self.end(ReplayOutput::Finished);
                }
                return;
            };
            match (entry.from, entry.record) {
                (_, Record::TooLarge { .. }) => {}
                (Side::Server, Record::Message(text)) => {
                    let at_micros = self.due(entry.micros, now);
                    let bytes = self.with_client_id(&text);
                    self.outputs
                        .push_back(ReplayOutput::Send { at_micros, bytes });
                }
                (Side::Server, Record::Closed) => {
                    let at_micros = self.due(entry.micros, now);
                    self.outputs.push_back(ReplayOutput::Close { at_micros });
                    self.end(ReplayOutput::Finished);
                }
                (Side::Client, Record::Closed) if self.client_closed => {
                    (self.anchor_live, self.anchor_recorded) = (now, entry.micros);
                }
                (Side::Client, Record::Message(text)) if self.client_closed => {
                    self.mismatch(Some(text), None, Difference::ClientClosed, now);
                }
                (Side::Client, _) => return,
            }
            self.next += 1;
        }
    }

    /// Compares a message of the client's with the entry it must match.
    fn client_sent(&mut self, record: Record, now: u64) {
        let entry = self.entries.get(self.next).cloned();
        let recorded = match entry.as_ref().map(|entry| &entry.record) {
            Some(Record::Message(text)) => Some(text.clone()),
            _ => None,
        };
        let got = match record {
            Record::Message(got) => got,
            Record::TooLarge { limit } => {
                return self.mismatch(recorded, None, Difference::TooLarge { limit }, now);
            }
            Record::Closed => return,
        };
        let (Some(entry), Some(text)) = (entry, recorded) else {
            let transcript_ended = self.next >= self.entries.len();
            let difference = Difference::UnexpectedMessage { transcript_ended };
            return self.mismatch(None, Some(got), difference, now);
        };
        match compare(&text, &got) {
            Ok(ids) => {
                if let Some((recorded_id, client_id)) = ids {
                    self.ids.insert(recorded_id, client_id);
                }
                (self.anchor_live, self.anchor_recorded) = (now, entry.micros);
                self.next += 1;
                self.play(now);
            }
            Err(difference) => self.mismatch(Some(text), Some(got), difference, now),
        }
    }

    fn mismatch(
        &mut self,
        recorded: Option<Bytes>,
        got: Option<Bytes>,
        difference: Difference,
        now: u64,
    ) {
        let mismatch = Mismatch {
            entry: self.next + 1,
            recorded,
            got,
            difference,
        };
        if let Some(id) = mismatch.got.as_ref().and_then(top_level_id) {
            let error = QmpError::generic(mismatch.to_string());
            let mut bytes = encode_reply(Some(&id), Err(&error));
            bytes.extend_from_slice(b"\r\n");
            let at_micros = self.stamp(now);
            let bytes = Bytes::from(bytes);
            self.outputs
                .push_back(ReplayOutput::Send { at_micros, bytes });
        }
        self.end(ReplayOutput::Mismatch(mismatch));
    }

    fn end(&mut self, output: ReplayOutput) {
        self.outputs.push_back(output);
        self.over = true;
    }

    /// When an entry recorded at `recorded` is due.
    fn due(&mut self, recorded: u64, now: u64) -> u64 {
        if !self.paced {
            return self.stamp(now);
        }
        let delay = recorded.saturating_sub(self.anchor_recorded);
        self.stamp(self.anchor_live.saturating_add(delay))
    }

    /// `at`, or the last time given if that is later.
    fn stamp(&mut self, at: u64) -> u64 {
        self.last_at = self.last_at.max(at);
        self.last_at
    }

    /// A recorded server message, its `id` the client's when it answers a
    /// command the client sent with an id, followed by CRLF.
    fn with_client_id(&self, text: &Bytes) -> Bytes {
        let mut out = Vec::with_capacity(text.len() + 2);
        match self.client_id_for(text) {
            Some((span, id)) => {
                out.extend_from_slice(&text[..span.start]);
                out.extend_from_slice(&id);
                out.extend_from_slice(&text[span.end..]);
            }
            None => out.extend_from_slice(text),
        }
        out.extend_from_slice(b"\r\n");
        Bytes::from(out)
    }

    /// Where `text`'s top-level `id` is, and the client's id to put there.
    fn client_id_for(&self, text: &[u8]) -> Option<(core::ops::Range<usize>, Bytes)> {
        if self.ids.is_empty() {
            return None;
        }
        let id = members(text)?.get("id").copied()?;
        let client_id = self.ids.get(&compact(id.get()))?;
        Some((range_in(text, id.get()), client_id.clone()))
    }
}

/// A message's top-level `id`, as it was written.
fn top_level_id(message: &Bytes) -> Option<RawJson> {
    let span = range_in(message, members(message)?.get("id")?.get());
    Some(RawJson::from_trusted(message.slice(span)))
}

/// A command as compared: `id` is kept as written, to be mapped.
struct CommandText<'a> {
    name: String,
    oob: bool,
    arguments: Value,
    id: Option<&'a RawValue>,
}

fn parse_command(text: &[u8]) -> Option<CommandText<'_>> {
    let members = members(text)?;
    let (oob, name) = match (members.get("execute"), members.get("exec-oob")) {
        (Some(name), None) => (false, name),
        (None, Some(name)) => (true, name),
        _ => return None,
    };
    let arguments = match members.get("arguments") {
        Some(arguments) => serde_json::from_str(arguments.get()).ok()?,
        None => Value::Object(Map::new()),
    };
    Some(CommandText {
        name: serde_json::from_str(name.get()).ok()?,
        oob,
        arguments,
        id: members.get("id").copied(),
    })
}

/// Whether the client's message `got` matches the recorded `text`, and if
/// so the recorded id (compacted) and the client's, when both have one.
fn compare(text: &[u8], got: &Bytes) -> Result<Option<(Vec<u8>, Bytes)>, Difference> {
    let (Some(expected), Some(sent)) = (parse_command(text), parse_command(got)) else {
        return if text == &got[..] {
            Ok(None)
        } else {
            Err(Difference::Text)
        };
    };
    if expected.name != sent.name {
        return Err(Difference::Name {
            expected: expected.name,
            got: sent.name,
        });
    }
    if expected.oob != sent.oob {
        return Err(Difference::Kind {
            command: expected.name,
            expected_oob: expected.oob,
        });
    }
    let mut path = String::from("/arguments");
    let (expected_args, sent_args) = (Some(&expected.arguments), Some(&sent.arguments));
    if let Some((expected_value, got_value)) = first_difference(&mut path, expected_args, sent_args)
    {
        return Err(Difference::Arguments {
            command: expected.name,
            path,
            expected: expected_value,
            got: got_value,
        });
    }
    // The same id (whitespace aside) keeps the recorded text, laid out as
    // the server laid it out (QEMU re-indents ids with `pretty=on`).
    Ok(match (expected.id, sent.id) {
        (Some(recorded), Some(client)) if compact(recorded.get()) != compact(client.get()) => {
            Some((
                compact(recorded.get()),
                got.slice(range_in(got, client.get())),
            ))
        }
        _ => None,
    })
}

/// The two values, as compact JSON, at one place where two JSON values differ.
type Values = (Option<String>, Option<String>);

/// The first place, in sorted key order, where `expected` and `got` differ:
/// `path` is extended to it, and the values there are returned (`None` for
/// a member one side lacks). Depth is bounded by serde_json's nesting limit.
fn first_difference(
    path: &mut String,
    expected: Option<&Value>,
    got: Option<&Value>,
) -> Option<Values> {
    match (expected, got) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|key| {
                let token = key.replace('~', "~0").replace('/', "~1");
                within(path, &token, a.get(key), b.get(key))
            })
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => (0..a.len().max(b.len()))
            .find_map(|at| within(path, &at.to_string(), a.get(at), b.get(at))),
        _ if expected == got => None,
        _ => Some((expected.map(Value::to_string), got.map(Value::to_string))),
    }
}

fn within(
    path: &mut String,
    token: &str,
    expected: Option<&Value>,
    got: Option<&Value>,
) -> Option<Values> {
    let len = path.len();
    path.push('/');
    path.push_str(token);
    let found = first_difference(path, expected, got);
    if found.is_none() {
        path.truncate(len);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn difference(recorded: &str, got: &str) -> Result<Option<(Vec<u8>, Bytes)>, Difference> {
        compare(recorded.as_bytes(), &Bytes::from(got.to_string()))
    }

    #[test]
    fn ids_are_mapped_and_absent_arguments_are_empty() {
        let ids = difference(
            r#"{"execute": "stop", "arguments": {}, "id": {"n": [1]}}"#,
            r#"{"id": "x", "execute": "stop"}"#,
        );
        assert_eq!(
            ids,
            Ok(Some((
                br#"{"n":[1]}"#.to_vec(),
                Bytes::from_static(b"\"x\"")
            )))
        );
    }

    #[test]
    fn the_first_difference_is_found_in_key_order() {
        let found = difference(
            r#"{"execute": "x", "arguments": {"b": [1, {"c/d": 2}], "a": 1}}"#,
            r#"{"execute": "x", "arguments": {"a": 1, "b": [1, {"c/d": 3}, 4]}}"#,
        );
        let expected = Difference::Arguments {
            command: "x".into(),
            path: "/arguments/b/1/c~1d".into(),
            expected: Some("2".into()),
            got: Some("3".into()),
        };
        assert_eq!(found, Err(expected));
        let missing = difference(
            r#"{"execute": "x", "arguments": {"a": 1}}"#,
            r#"{"execute": "x", "arguments": {"a": 1, "b": {"c": true}}}"#,
        );
        let Err(Difference::Arguments {
            path,
            expected,
            got,
            ..
        }) = missing
        else {
            panic!()
        };
        assert_eq!(
            (path.as_str(), expected, got.as_deref()),
            ("/arguments/b", None, Some(r#"{"c":true}"#))
        );
    }

    #[test]
    fn non_commands_compare_as_bytes() {
        assert_eq!(difference("[1, 2]", "[1, 2]"), Ok(None));
        assert_eq!(difference("[1, 2]", "[1,2]"), Err(Difference::Text));
        assert_eq!(
            difference(r#"{"execute": "x"}"#, "[1]"),
            Err(Difference::Text)
        );
    }

    #[test]
    fn long_messages_are_cut_in_the_sentence() {
        let mismatch = Mismatch {
            entry: 3,
            recorded: Some(Bytes::from("a".repeat(1000))),
            got: None,
            difference: Difference::ClientClosed,
        };
        let sentence = mismatch.to_string();
        assert!(sentence.starts_with("entry 3: recorded `aaa"));
        assert!(sentence.ends_with("...`, but the client closed the stream"));
        assert!(sentence.len() < 300);
    }
}
