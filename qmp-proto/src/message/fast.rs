//! The fast path for server messages: one pass over the bytes that checks
//! they begin with a valid JSON object, finds where it ends, and locates its
//! top-level members.
//!
//! serde_json does the same work more generally, and skips the whitespace of
//! `pretty=on` output a byte at a time; here runs of indentation are skipped
//! eight bytes at a time and string contents a word at a time. This pass is
//! stricter than serde_json, never looser: whenever it is unsure (a key or an
//! event name with escapes, a known member given twice, nesting deeper than
//! [`MAX_DEPTH`], invalid UTF-8, anything invalid or incomplete) it gives up,
//! and the caller parses with serde_json, which has the last word on what a
//! message means and on error messages.
//!
//! An event laid out exactly as QEMU writes it (`{"timestamp": {...},
//! "event": "NAME", "data": {...}}`, one line, in that order) is read by
//! [`qemu_event`] without looking for the members at all: the fixed parts
//! are compared as they are, and only the name and the `data` value are
//! scanned. Anything else falls through to [`object_members`].

use super::{plain_integer, timestamp_prefix, Timestamp};
use core::ops::Range;

/// The deepest nesting this pass follows: a bit of a `u64` for each open
/// container above the bit that marks the bottom (one register in the
/// scan's loop), far deeper than QMP nests. Deeper messages go to
/// serde_json, which follows 128 levels.
const MAX_DEPTH: u32 = 63;

/// The members of a server message the classification looks at, as spans of
/// the bytes; other members are checked and skipped.
#[derive(Debug, Default)]
pub(super) struct Members {
    pub(super) greeting: Option<Range<usize>>,
    pub(super) ret: Option<Range<usize>>,
    pub(super) error: Option<Range<usize>>,
    pub(super) id: Option<Range<usize>>,
    pub(super) event: Option<Range<usize>>,
    pub(super) data: Option<Range<usize>>,
    pub(super) timestamp: Option<Range<usize>>,
}

/// Which of [`Members`] a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Greeting,
    Ret,
    Error,
    Id,
    Event,
    Data,
    Timestamp,
}

impl Member {
    /// The member named by `key`, the key's bytes and its closing quote
    /// (and anything after): compared with the quote, a known key cannot
    /// match a longer one.
    fn named(key: &[u8]) -> Option<Member> {
        Some(if key.starts_with(b"return\"") {
            Member::Ret
        } else if key.starts_with(b"id\"") {
            Member::Id
        } else if key.starts_with(b"event\"") {
            Member::Event
        } else if key.starts_with(b"data\"") {
            Member::Data
        } else if key.starts_with(b"timestamp\"") {
            Member::Timestamp
        } else if key.starts_with(b"error\"") {
            Member::Error
        } else if key.starts_with(b"QMP\"") {
            Member::Greeting
        } else {
            return None;
        })
    }
}

impl Members {
    fn slot(&mut self, member: Member) -> &mut Option<Range<usize>> {
        match member {
            Member::Greeting => &mut self.greeting,
            Member::Ret => &mut self.ret,
            Member::Error => &mut self.error,
            Member::Id => &mut self.id,
            Member::Event => &mut self.event,
            Member::Data => &mut self.data,
            Member::Timestamp => &mut self.timestamp,
        }
    }
}

/// The object at the start of `bytes` (which may go on past it): its members
/// and its length. `None` when `bytes` do not start with a complete, valid
/// JSON object this pass is sure about.
pub(super) fn object_members(bytes: &[u8]) -> Option<(Members, usize)> {
    let mut partial = Partial::default();
    match object_members_from(bytes, &mut partial) {
        Progress::Done(len) => Some((partial.members, len)),
        Progress::Starved | Progress::Refused => None,
    }
}

/// How far [`object_members_from`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Progress {
    /// The object is complete, this long; its members are in the
    /// [`Partial`].
    Done(usize),
    /// All of `bytes` may begin an object this pass accepts: call again
    /// with more of them, and the same [`Partial`].
    Starved,
    /// Not an object this pass is sure about (invalid, or a case left to
    /// serde_json), or one that would take rescanning too much to go on
    /// with: the caller must not call again for this object.
    Refused,
}

/// The most bytes a resumed parse goes back over: the unfinished token
/// (a key, a number, an escape) and the whitespace and punctuation before
/// it. QMP's are far shorter; past this the parse is refused, so that a
/// peer cannot make each read cost a rescan of a long token.
const RESCAN_MAX: usize = 1024;

/// Where the top level of an object's parse stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Top {
    /// At the opening brace.
    Open,
    /// At a member's key.
    Key,
    /// In a member's value, which began at `start`.
    Value {
        member: Option<Member>,
        start: usize,
        nest: Nest,
    },
    /// After a member's value.
    After,
}

/// An object's parse, stopped where the bytes ran out, to go on from when
/// more have arrived: at a point between tokens or inside a string, so that
/// what was read is not read again.
#[derive(Debug)]
pub(super) struct Partial {
    pub(super) members: Members,
    at: usize,
    non_ascii: bool,
    top: Top,
}

impl Default for Partial {
    fn default() -> Self {
        Partial {
            members: Members::default(),
            at: 0,
            non_ascii: false,
            top: Top::Open,
        }
    }
}

/// [`object_members`], resumable: the object at the start of `bytes`,
/// which hold the bytes given to the earlier calls of this `partial` and
/// more. Called on an object arriving in pieces, each piece is scanned once
/// (but for at most [`RESCAN_MAX`] bytes of an unfinished token) and the
/// result, members and length, is what [`object_members`] gives for the
/// whole: the same code reads both.
#[inline(never)]
pub(super) fn object_members_from(bytes: &[u8], partial: &mut Partial) -> Progress {
    let mut cursor = Cursor {
        buf: bytes,
        at: partial.at,
        non_ascii: partial.non_ascii,
        starved: false,
    };
    let members = &mut partial.members;
    let mut top = partial.top;
    let stopped = 'stop: loop {
        match top {
            Top::Open => {
                match cursor.peek() {
                    Some(b'{') => {}
                    Some(_) => return Progress::Refused,
                    None => break 'stop 0,
                }
                cursor.at = 1;
                cursor.skip_space();
                match cursor.peek() {
                    Some(b'}') => return Progress::Done(cursor.at + 1),
                    Some(_) => top = Top::Key,
                    None => break 'stop 0,
                }
            }
            Top::Key => {
                cursor.skip_space();
                let mark = cursor.at;
                match cursor.key() {
                    // Matching an escaped key would need unescaping: serde's job.
                    Some(true) => return Progress::Refused,
                    Some(false) => {}
                    None => break 'stop mark,
                }
                if cursor.at == bytes.len() {
                    // More space may come: the value's span starts after it.
                    cursor.starved = true;
                    break 'stop mark;
                }
                let member = Member::named(&bytes[mark + 1..]);
                top = Top::Value {
                    member,
                    start: cursor.at,
                    nest: Nest::START,
                };
            }
            Top::Value {
                member,
                start,
                mut nest,
            } => {
                if cursor.value_from(&mut nest).is_none() {
                    top = Top::Value {
                        member,
                        start,
                        nest,
                    };
                    break 'stop cursor.at;
                }
                if let Some(member) = member {
                    if members.slot(member).replace(start..cursor.at).is_some() {
                        return Progress::Refused; // serde refuses a duplicate field
                    }
                }
                top = Top::After;
            }
            Top::After => {
                let mark = cursor.at;
                cursor.skip_space();
                match cursor.peek() {
                    Some(b',') => {
                        cursor.at += 1;
                        top = Top::Key;
                    }
                    Some(b'}') => {
                        let len = cursor.at + 1;
                        if cursor.non_ascii && core::str::from_utf8(&bytes[..len]).is_err() {
                            return Progress::Refused;
                        }
                        return Progress::Done(len);
                    }
                    Some(_) => return Progress::Refused,
                    None => break 'stop mark,
                }
            }
        }
    };
    if !cursor.starved || bytes.len() - stopped > RESCAN_MAX {
        return Progress::Refused;
    }
    partial.at = stopped;
    partial.top = top;
    partial.non_ascii = cursor.non_ascii;
    Progress::Starved
}

/// An event read by [`qemu_event`]: its name (printable ASCII), its `data`
/// member as a span of the bytes, and its timestamp.
#[derive(Debug)]
pub(super) struct QemuEvent<'a> {
    pub(super) name: &'a [u8],
    pub(super) data: Option<Range<usize>>,
    pub(super) timestamp: Timestamp,
}

/// The event at the start of `bytes` (which may go on past it) and its
/// length, when it is laid out as QEMU writes it: `{"timestamp": T,
/// "event": "NAME"}` or `{"timestamp": T, "event": "NAME", "data": VALUE}`,
/// with a single space after each colon and comma, `T` as
/// [`timestamp_prefix`] reads it, a name of printable ASCII without escapes,
/// and any valid `VALUE`. That is an object of three distinct members which
/// [`object_members`] would read the same; anything else is `None`, for it.
#[inline(always)]
pub(super) fn qemu_event(bytes: &[u8]) -> Option<(QemuEvent<'_>, usize)> {
    let (timestamp, rest) = match qemu_event_head(bytes) {
        Some(head) => head,
        None => {
            let rest = bytes.strip_prefix(b"{\"timestamp\": ")?;
            let (timestamp, rest) = timestamp_prefix(rest)?;
            (timestamp, rest.strip_prefix(b", \"event\": \"")?)
        }
    };
    let (name_len, _) = next_special(rest, 0)?;
    // Printable ASCII up to the quote (next_special stops at anything else).
    let (name, rest) = rest.split_at(name_len);
    let at = bytes.len() - rest.len();
    match rest {
        [b'"', b'}', ..] => {
            let event = QemuEvent {
                name,
                data: None,
                timestamp,
            };
            return Some((event, at + 2));
        }
        [b'"', b',', b' ', b'"', b'd', b'a', b't', b'a', b'"', b':', b' ', ..] => {}
        _ => return None,
    }
    let start = at + 11;
    let mut cursor = Cursor {
        buf: bytes,
        at: start,
        non_ascii: false,
        starved: false,
    };
    cursor.value()?;
    let end = cursor.at;
    if cursor.peek()? != b'}' {
        return None;
    }
    if cursor.non_ascii && core::str::from_utf8(&bytes[start..end]).is_err() {
        return None;
    }
    let event = QemuEvent {
        name,
        data: Some(start..end),
        timestamp,
    };
    Some((event, end + 1))
}

/// The head of an event exactly as QEMU writes it, `{"timestamp":
/// {"seconds": S, "microseconds": U}, "event": "`: the timestamp and the
/// bytes after the head. The fixed parts are compared whole, a word at a
/// time; this is one of the spellings [`timestamp_prefix`] reads, and reads
/// the same.
#[inline(always)]
fn qemu_event_head(bytes: &[u8]) -> Option<(Timestamp, &[u8])> {
    let rest = strip_literal(bytes, b"{\"timestamp\": {\"seconds\": ")?;
    let (seconds, rest) = plain_integer(rest)?;
    let rest = strip_literal(rest, b", \"microseconds\": ")?;
    let (microseconds, rest) = plain_integer(rest)?;
    let rest = strip_literal(rest, b"}, \"event\": \"")?;
    let timestamp = Timestamp {
        seconds,
        microseconds,
    };
    Some((timestamp, rest))
}

/// `bytes` after `literal`, if they start with it.
#[inline(always)]
fn strip_literal<'a, const N: usize>(bytes: &'a [u8], literal: &[u8; N]) -> Option<&'a [u8]> {
    let (head, rest) = bytes.split_first_chunk::<N>()?;
    (head == literal).then_some(rest)
}

/// Whether a byte inside a string needs a look: the quote, the backslash,
/// control characters and non-ASCII bytes.
fn is_special(byte: u8) -> bool {
    !(0x20..0x80).contains(&byte) || byte == b'"' || byte == b'\\'
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The first special byte (see [`is_special`]) of `buf` at or after `at`:
/// where it is, and what it is. Eight bytes at a time: the first flagged
/// byte of a word is exact (a borrow only ever flags bytes after a real
/// match).
#[inline(always)]
fn next_special(buf: &[u8], mut at: usize) -> Option<(usize, u8)> {
    while let Some(word) = buf.get(at..at + 8) {
        let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let flagged = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (word.wrapping_sub(ONES * 0x20) & !word)
            | word)
            & HIGHS;
        if flagged != 0 {
            let offset = flagged.trailing_zeros() / 8;
            return Some((at + offset as usize, (word >> (offset * 8)) as u8));
        }
        at += 8;
    }
    let tail = buf.get(at..)?;
    let offset = tail.iter().position(|&b| is_special(b))?;
    Some((at + offset, tail[offset]))
}

struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
    /// A byte of 0x80 or more was seen (inside a string): the UTF-8 is
    /// checked once at the end.
    non_ascii: bool,
    /// A read went past the end of `buf`: a failure may be the end of what
    /// has arrived rather than an error.
    starved: bool,
}

/// What a value's scan is at, when it stops for want of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// At the first byte of a value.
    Value,
    /// Inside a string value, not in an escape.
    String,
    /// Just after a value.
    After,
}

/// How a value's scan goes on: the containers open around it, innermost in
/// the lowest bit (1 for an object) and above them a 1 that marks the
/// bottom, and what it is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Nest {
    objects: u64,
    phase: Phase,
}

impl Nest {
    /// At the first byte of a value, no container open.
    const START: Nest = Nest {
        objects: 1,
        phase: Phase::Value,
    };
}

impl Cursor<'_> {
    /// The byte at the cursor; `None` (starved) at the end.
    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        let byte = self.buf.get(self.at).copied();
        if byte.is_none() {
            self.starved = true;
        }
        byte
    }

    #[inline(always)]
    fn skip_space(&mut self) {
        while let Some(&byte) = self.buf.get(self.at) {
            if byte > b' ' {
                return; // the usual case, first
            }
            match byte {
                b' ' | b'\t' | b'\r' => self.at += 1,
                b'\n' => {
                    self.at += 1;
                    // Pretty output indents every line.
                    while self.buf.get(self.at..self.at + 8) == Some(&[b' '; 8][..]) {
                        self.at += 8;
                    }
                }
                _ => return,
            }
        }
    }

    /// The rest of a string, after its opening quote. Returns whether it
    /// had escapes. When the bytes run out, the cursor is left where the
    /// string can be read on from: the end, or the backslash of an
    /// unfinished escape.
    #[inline(always)]
    fn string(&mut self) -> Option<bool> {
        let mut escaped = false;
        loop {
            let Some((at, byte)) = next_special(self.buf, self.at) else {
                self.at = self.buf.len();
                self.starved = true;
                return None;
            };
            self.at = at + 1;
            if byte == b'"' {
                return Some(escaped);
            }
            if byte == b'\\' {
                escaped = true;
                if self.escape().is_none() {
                    self.at = at;
                    return None;
                }
            } else if byte >= 0x80 {
                self.non_ascii = true;
            } else {
                return None; // a control character
            }
        }
    }

    /// The rest of an escape, after its backslash.
    fn escape(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
            b'u' => {
                let hex = self.buf.get(self.at + 1..).unwrap_or_default();
                let hex = hex.get(..4).unwrap_or(hex);
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                if hex.len() < 4 {
                    self.starved = true;
                    return None;
                }
                self.at += 5;
            }
            _ => return None,
        }
        Some(())
    }

    /// One or more digits.
    fn digits(&mut self) -> Option<()> {
        if !self.peek()?.is_ascii_digit() {
            return None;
        }
        self.at += 1;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        Some(())
    }

    /// A number. One that reaches the end of the bytes may go on in the
    /// next ones: it is `None`, starved. Inlined: called from both
    /// instances of [`scan`](Self::scan), it was left out of line.
    #[inline(always)]
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        if self.peek()? == b'0' {
            self.at += 1;
        } else {
            self.digits()?;
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.digits()?;
        }
        if self.at == self.buf.len() {
            self.starved = true;
            return None;
        }
        Some(())
    }

    /// `word`. Cut short by the end of the bytes it is `None`, starved;
    /// anything else that is not `word` is `None`, refused. Inlined: with
    /// `word` known, the comparison is a load and a compare, not a call.
    #[inline(always)]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let rest = self.buf.get(self.at..).unwrap_or_default();
        if rest.starts_with(word) {
            self.at += word.len();
            return Some(());
        }
        if word.starts_with(rest) {
            self.starved = true;
        }
        None
    }

    /// A member's key, its colon and the space after. Returns whether the
    /// key had escapes. The bytes may end in that space, with more of it to
    /// come: a value's scan resumed there skips it first.
    #[inline(always)]
    fn key(&mut self) -> Option<bool> {
        if self.peek()? != b'"' {
            return None;
        }
        self.at += 1;
        let escaped = self.string()?;
        self.skip_space();
        if self.peek()? != b':' {
            return None;
        }
        self.at += 1;
        self.skip_space();
        Some(escaped)
    }

    /// One value, at its first byte; the cursor ends just after it. Where
    /// the bytes run out it is `None`, with nothing kept to go on from: the
    /// scan of a value that is there whole, or not at all (an event's data).
    fn value(&mut self) -> Option<()> {
        let mut nest = Nest::START;
        self.scan::<false>(&mut nest)
    }

    /// One value, or the rest of one as `nest` says; the cursor ends just
    /// after it. When the bytes run out (`starved`), `nest` and the cursor
    /// say where to go on from: a value's first byte, the inside of a
    /// string, or the end of a value.
    fn value_from(&mut self, nest: &mut Nest) -> Option<()> {
        self.scan::<true>(nest)
    }

    /// [`value_from`](Self::value_from), or with `RESUMABLE` unset
    /// [`value`](Self::value): one loop, which without `RESUMABLE` keeps
    /// nothing where it stops.
    ///
    /// The loop is the scan of a value given whole, with nothing kept for a
    /// resumption but at the places it stops; a resumed string or close is
    /// finished first, out of line ([`Cursor::resume`]).
    #[inline(never)]
    fn scan<const RESUMABLE: bool>(&mut self, nest: &mut Nest) -> Option<()> {
        let mut objects = nest.objects;
        let (phase, at) = 'stop: {
            if !RESUMABLE {
                // At the value's first byte.
            } else if nest.phase == Phase::Value {
                // Stopped where more space may come (after a key or a comma).
                self.skip_space();
            } else {
                match self.resume(nest.phase, &mut objects) {
                    Closed::Done => return Some(()),
                    Closed::Next => {}
                    Closed::Stop(phase, at) => break 'stop (phase, at),
                    Closed::Invalid => return None,
                }
            }
            loop {
                let Some(first) = self.peek() else {
                    break 'stop (Phase::Value, self.at);
                };
                if first == b'"' {
                    self.at += 1;
                    if self.string().is_none() {
                        break 'stop (Phase::String, self.at);
                    }
                } else if first == b'{' || first == b'[' {
                    let start = self.at;
                    let object = first == b'{';
                    self.at += 1;
                    self.skip_space();
                    let Some(next) = self.peek() else {
                        break 'stop (Phase::Value, start);
                    };
                    if next == if object { b'}' } else { b']' } {
                        self.at += 1;
                    } else {
                        if objects >> MAX_DEPTH != 0 {
                            return None;
                        }
                        if object && self.key().is_none() {
                            break 'stop (Phase::Value, start);
                        }
                        objects = (objects << 1) | u64::from(object);
                        continue;
                    }
                } else if first == b'-' || first.is_ascii_digit() {
                    let start = self.at;
                    if self.number().is_none() {
                        break 'stop (Phase::Value, start);
                    }
                } else if first == b't' {
                    if self.literal(b"true").is_none() {
                        break 'stop (Phase::Value, self.at);
                    }
                } else if first == b'f' {
                    if self.literal(b"false").is_none() {
                        break 'stop (Phase::Value, self.at);
                    }
                } else if first == b'n' {
                    if self.literal(b"null").is_none() {
                        break 'stop (Phase::Value, self.at);
                    }
                } else {
                    return None;
                }
                match self.close(&mut objects) {
                    Closed::Done => return Some(()),
                    Closed::Next => {}
                    Closed::Stop(phase, at) => break 'stop (phase, at),
                    Closed::Invalid => return None,
                }
            }
        };
        if RESUMABLE {
            *nest = Nest { objects, phase };
            self.at = at;
        }
        None
    }

    /// The start of a resumed [`value_from`](Self::value_from) that stopped
    /// inside a string or after a value: out of line, to keep the scan's
    /// loop as tight as the one of a value given whole.
    #[inline(never)]
    fn resume(&mut self, phase: Phase, objects: &mut u64) -> Closed {
        if phase == Phase::String && self.string().is_none() {
            return Closed::Stop(Phase::String, self.at);
        }
        self.close(objects)
    }

    /// After a value: closes containers until one goes on with another
    /// value (the cursor at its first byte) or none is left open.
    #[inline(always)]
    fn close(&mut self, objects: &mut u64) -> Closed {
        loop {
            if *objects == 1 {
                return Closed::Done;
            }
            let after = self.at;
            self.skip_space();
            let in_object = *objects & 1 == 1;
            match self.peek() {
                Some(b',') => {
                    self.at += 1;
                    self.skip_space();
                    if in_object && self.key().is_none() {
                        return Closed::Stop(Phase::After, after);
                    }
                    return Closed::Next;
                }
                Some(b'}') if in_object => {}
                Some(b']') if !in_object => {}
                Some(_) => return Closed::Invalid,
                None => return Closed::Stop(Phase::After, after),
            }
            self.at += 1;
            *objects >>= 1;
        }
    }
}

/// What [`Cursor::close`] found after a value.
enum Closed {
    /// No container is left open: the value is complete.
    Done,
    /// A container goes on with another value, at the cursor.
    Next,
    /// The bytes ran out (or were wrong: `starved` tells) there.
    Stop(Phase, usize),
    /// Not JSON.
    Invalid,
}

#[cfg(test)]
mod tests {
    //! The fast path against serde_json: whenever it gives a message, serde
    //! must give the same one, from the same bytes.
    use super::super::{parse_server_message_serde, parse_server_prefix};
    use alloc::format;
    use alloc::string::String;
    use alloc::vec::Vec;

    /// The property: a message from the fast path is serde's.
    fn check(bytes: &[u8]) -> bool {
        let Some((message, len)) = parse_server_prefix(bytes) else {
            return false;
        };
        let mut stream =
            serde_json::Deserializer::from_slice(bytes).into_iter::<serde::de::IgnoredAny>();
        assert!(
            matches!(stream.next(), Some(Ok(_))),
            "fast path accepted what serde refuses: {:?}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(
            stream.byte_offset(),
            len,
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(
            parse_server_message_serde(&bytes[..len]).ok(),
            Some(message),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
        true
    }

    const CAPTURES: &[&[u8]] = &[
        include_bytes!("../../../tests/captures/qemu-7.2-system.s2c"),
        include_bytes!("../../../tests/captures/qemu-10.0-system.s2c"),
        include_bytes!("../../../tests/captures/qemu-7.2-storage-daemon.s2c"),
        include_bytes!("../../../tests/captures/qemu-10.0-storage-daemon.s2c"),
        include_bytes!("../../../tests/captures/qemu-7.2-system-pretty.s2c"),
        include_bytes!("../../../tests/captures/qemu-10.0-system-pretty.s2c"),
    ];

    /// Each message of a capture, from its first byte to the end.
    fn message_starts(capture: &[u8]) -> Vec<&[u8]> {
        let mut starts = Vec::new();
        let mut rest = capture;
        loop {
            let space = rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
            rest = &rest[space..];
            if rest.is_empty() {
                return starts;
            }
            starts.push(rest);
            let (_, len) = parse_server_prefix(rest).expect("a capture message");
            rest = &rest[len..];
        }
    }

    /// Events as QEMU lays them out are read by `qemu_event`, anything
    /// else by `object_members`: the same messages either way.
    #[test]
    fn events_as_qemu_writes_them_read_as_serde_reads_them() {
        use super::qemu_event;
        let read: &[&str] = &[
            r#"{"timestamp": {"seconds": 1795554620, "microseconds": 722476}, "event": "STOP"}"#,
            r#"{"timestamp": {"seconds":1,"microseconds":2}, "event": "X", "data": {}}"#,
            r#"{"timestamp": {"seconds": -1, "microseconds": -1}, "event": "", "data": null}"#,
            r#"{"timestamp": {"seconds": 0, "microseconds": 0}, "event": "A B", "data": [1, {"a": "é\n\u00e9"}]}"#,
            r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "JOB_STATUS_CHANGE", "data": {"status": "running", "id": "job0"}}trailing"#,
        ];
        for text in read {
            let (event, len) = qemu_event(text.as_bytes()).expect(text);
            assert!(check(text.as_bytes()), "{text}");
            let (_, members_len) = super::object_members(text.as_bytes()).unwrap();
            assert_eq!(len, members_len, "{text}");
            assert!(text.contains(core::str::from_utf8(event.name).unwrap()));
            // Cut anywhere, it is incomplete.
            for cut in 0..len {
                assert!(
                    qemu_event(&text.as_bytes()[..cut]).is_none(),
                    "{text} cut at {cut}"
                );
            }
        }
        let left: &[&str] = &[
            // Other layouts and spellings: object_members reads them.
            r#"{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}}"#,
            r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP" }"#,
            r#"{"timestamp": {"seconds": 1, "microseconds": 2},"event": "STOP"}"#,
            r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "ST\u004fP"}"#,
            r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STÖP"}"#,
            r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "X", "data": 1 }"#,
            r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "X", "data": 1, "data": 2}"#,
            r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "X", "id": 1}"#,
            r#"{"timestamp": {"seconds": 1.5, "microseconds": 2}, "event": "X"}"#,
            r#"{"timestamp": {"seconds": 1, "microseconds": 2, "x": 3}, "event": "X"}"#,
            // Invalid: nobody reads them.
            "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"A\tB\"}",
            r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "X", "data": [1,]}"#,
            r#"{"timestamp": {"seconds": 01, "microseconds": 2}, "event": "X"}"#,
        ];
        for text in left {
            assert!(qemu_event(text.as_bytes()).is_none(), "{text}");
            check(text.as_bytes());
        }
        let bad_utf8 = b"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"X\", \"data\": \"\xff\"}";
        assert!(qemu_event(bad_utf8).is_none());
        assert!(!check(bad_utf8));
    }

    #[test]
    fn every_captured_message_takes_the_fast_path() {
        for capture in CAPTURES {
            let starts = message_starts(capture);
            assert!(starts.len() >= 21);
            for start in starts {
                assert!(check(start));
            }
        }
    }

    #[test]
    fn incomplete_messages_are_left_to_the_scan() {
        let capture = CAPTURES[4];
        for start in message_starts(capture).into_iter().take(12) {
            let (_, len) = parse_server_prefix(start).unwrap();
            for cut in 0..len {
                assert!(parse_server_prefix(&start[..cut]).is_none(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn what_the_fast_path_refuses_or_gets_right() {
        let refused: &[&str] = &[
            r#"{"ret\u0075rn": 1}"#,
            r#"{"return": 1, "return": 2}"#,
            r#"{"event": "A", "event": null}"#,
            r#"{"event": "ST\u004fP"}"#,
            r#"{"event": 5}"#,
            r#"{"return": 1,}"#,
            r#"{"return": [1,]}"#,
            r#"{"return": 01}"#,
            r#"{"return": -}"#,
            r#"{"return": 1.}"#,
            r#"{"return": 1e}"#,
            r#"{"return": .5}"#,
            r#"{"return": +1}"#,
            r#"{"return": tru}"#,
            r#"{"return": nul}"#,
            r#"{"return": "\x"}"#,
            r#"{"return": "\u12G4"}"#,
            "{\"return\": \"tab\there\"}",
            "{\"return\": \"nul\0\"}",
            r#"{"return": {"a" 1}}"#,
            r#"{"return": {1: 1}}"#,
            r#"{"return": [}"#,
            r#"{"return": {]}"#,
            r#"{"error": {"class": 1, "desc": "x"}}"#,
            r#"{"timestamp": {"seconds": 1.5, "microseconds": 0}, "event": "X"}"#,
            r#"{"QMP": {"version": 1}}"#,
            r#"{"id": 1}"#,
            "{}",
            "{ \r\n }",
            "[1]",
            " {\"return\": 1}",
            "{\"return\": 1\u{a0}}",
        ];
        for text in refused {
            assert!(!check(text.as_bytes()), "{text}");
            check_starved_only_on_a_prefix(text.as_bytes());
        }
        // Complete but invalid: refused at once, never waited on.
        for text in [
            "{\"a\":[\t\tt}",
            "{\"a\":\r\r\rnu}",
            "{\"\":f4}",
            "{\"a\": \"\\u12\"}",
            "{\"a\": [1, fals]}",
        ] {
            assert_eq!(
                super::object_members_from(text.as_bytes(), &mut Default::default()),
                super::Progress::Refused,
                "{text}"
            );
        }
        let accepted: &[&str] = &[
            r#"{"return": {}, "id": 1}"#,
            "{\"return\":{},\"id\":1}trailing garbage",
            "{\r\n    \"return\": {\r\n    },\r\n    \"id\": \"x\"\r\n}",
            "{\t\"return\" :\n[ 1 , -0.5e+3, 0, 10E-2, true, false, null, \"\" ] }",
            r#"{"return": "esc \" \\ \/ \b \f \n \r \t \u00e9 \ud800 end", "id": {"nested": [{}]}}"#,
            r#"{"return": "déjà vu, 日本, 🦀 and a longer string to take the word-wise path"}"#,
            r#"{"return": null}"#,
            r#"{"error": null, "return": 1}"#,
            r#"{"error": {"class": "GenericError", "desc": "x", "extra": [1]}, "id": 0}"#,
            r#"{"event": null, "return": 2}"#,
            r#"{"event": "X", "data": null, "timestamp": null}"#,
            r#"{"event": "X", "unknown": {"event": 1}, "eventual": 2, "events": 3}"#,
            r#"{"timestamp": {"seconds": -1, "microseconds": -1}, "event": "Y"}"#,
            r#"{"other": "x", "i\u0064": 1, "return": 3}"#,
        ];
        for text in accepted {
            // Escaped keys make the fast path give up, even unknown ones.
            let expect = !text.contains(r"i\u0064");
            assert_eq!(check(text.as_bytes()), expect, "{text}");
        }
        // Invalid UTF-8 in a string, and nesting past the depth limit.
        assert!(!check(b"{\"return\": \"\xff\"}"));
        assert!(!check(b"{\"return\": \"\xc3\"}"));
        let deep = format!("{{\"return\": {}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(!check(deep.as_bytes()));
        // The innermost `[]`, empty, needs no level of its own.
        let deep_enough = format!("{{\"return\": {}{}}}", "[".repeat(64), "]".repeat(64));
        assert!(check(deep_enough.as_bytes()));
        let past_the_limit = format!("{{\"return\": {}{}}}", "[".repeat(65), "]".repeat(65));
        assert!(!check(past_the_limit.as_bytes()));
    }

    /// Parses `bytes` with [`super::object_members_from`], given the first
    /// `cut`, then more, at each of `cuts`; returns what it gave at the end
    /// and how many times it was starved.
    fn resumed(bytes: &[u8], cuts: &[usize]) -> (Option<(super::Members, usize)>, usize) {
        use super::{object_members_from, Partial, Progress};
        let mut partial = Partial::default();
        let mut starved = 0;
        for &cut in cuts.iter().chain([bytes.len()].iter()) {
            match object_members_from(&bytes[..cut.min(bytes.len())], &mut partial) {
                Progress::Done(len) => return (Some((partial.members, len)), starved),
                Progress::Starved => starved += 1,
                Progress::Refused => return (None, starved),
            }
        }
        (None, starved)
    }

    /// Starved only where the framer's scan finds no end either: where the
    /// scan would find the end of an invalid object, it is refused at
    /// once, not waited on.
    fn check_starved_only_on_a_prefix(bytes: &[u8]) {
        use super::{object_members_from, Partial, Progress};
        if object_members_from(bytes, &mut Partial::default()) != Progress::Starved {
            return;
        }
        let mut framer = crate::framing::Framer::new(usize::MAX);
        framer.push(bytes);
        if let Some(frame) = framer.next_frame() {
            panic!(
                "starved on {:?}, where the scan found {frame:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    /// A message given in pieces is read as it is whole.
    fn check_resumed(bytes: &[u8], cuts: &[usize]) {
        let whole = super::object_members(bytes);
        let (pieces, _) = resumed(bytes, cuts);
        assert_eq!(
            format!("{pieces:?}"),
            format!("{whole:?}"),
            "{:?} cut at {cuts:?}",
            String::from_utf8_lossy(bytes)
        );
    }

    #[test]
    fn captured_messages_in_pieces_read_as_whole() {
        for capture in CAPTURES {
            for start in message_starts(capture) {
                let (_, len) = super::object_members(start).unwrap_or((Default::default(), 0));
                let message = &start[..len];
                for piece in [1, 7, 100, 4096] {
                    let cuts: Vec<usize> = (1..=message.len() / piece).map(|n| n * piece).collect();
                    let (pieces, starved) = resumed(message, &cuts);
                    assert!(
                        pieces.is_some(),
                        "refused in pieces of {piece} after {starved}"
                    );
                    check_resumed(message, &cuts);
                }
            }
        }
    }

    /// Random inputs; proptest needs std.
    #[cfg(feature = "std")]
    mod random {
        use super::{
            check, check_resumed, check_starved_only_on_a_prefix, message_starts,
            parse_server_prefix, CAPTURES,
        };
        use alloc::vec::Vec;
        use proptest::prelude::*;

        /// Bytes the mutations are drawn from: JSON's structure, and a few that
        /// break it.
        const ALPHABET: &[u8] =
            b"{}[]\":,\\ \r\n\t0123456789-+.eEtrufalsn\"u\x00\x1f\x7f\xc3\xa9\xff";

        /// The first 400 bytes of every captured message.
        fn message_heads() -> &'static [Vec<u8>] {
            static HEADS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
            HEADS.get_or_init(|| {
                let starts = CAPTURES.iter().flat_map(|c| message_starts(c));
                starts
                    .map(|start| {
                        let (_, len) = parse_server_prefix(start).unwrap();
                        start[..len.min(400)].to_vec()
                    })
                    .collect()
            })
        }

        /// Where to cut `bytes` into pieces, in order.
        fn cuts(bytes: &[u8], splits: &[proptest::sample::Index]) -> Vec<usize> {
            let mut cuts: Vec<usize> = splits.iter().map(|i| i.index(bytes.len() + 1)).collect();
            cuts.sort_unstable();
            cuts
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn mutated_capture_messages(
                message in 0usize..200,
                edits in proptest::collection::vec((any::<proptest::sample::Index>(), 0usize..ALPHABET.len(), 0u8..3), 1..4),
                splits in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
            ) {
                let heads = message_heads();
                let mut bytes = heads[message % heads.len()].clone();
                for (at, byte, kind) in edits {
                    let at = at.index(bytes.len() + 1);
                    let byte = ALPHABET[byte];
                    match kind {
                        0 if at < bytes.len() => bytes[at] = byte,
                        1 if at < bytes.len() => {
                            bytes.remove(at);
                        }
                        _ => bytes.insert(at, byte),
                    }
                }
                check(&bytes);
                check_resumed(&bytes, &cuts(&bytes, &splits));
                for cut in cuts(&bytes, &splits) {
                    check_starved_only_on_a_prefix(&bytes[..cut]);
                }
            }

            #[test]
            fn random_json_like_bytes(
                body in proptest::collection::vec(0usize..ALPHABET.len(), 0..60),
                splits in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
            ) {
                let mut bytes = b"{\"return\": ".to_vec();
                bytes.extend(body.iter().map(|&i| ALPHABET[i]));
                check(&bytes);
                check_resumed(&bytes, &cuts(&bytes, &splits));
                check_starved_only_on_a_prefix(&bytes);
                bytes.push(b'}');
                check(&bytes);
                check_resumed(&bytes, &cuts(&bytes, &splits));
            }
        }
    }
}
