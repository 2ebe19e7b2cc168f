//! Splitting a byte stream into JSON messages.
//!
//! QMP has no framing of its own. QEMU ends each message with CRLF, but with
//! `pretty=on` one message spans many lines, and clients send a bare stream of
//! JSON objects with no separator at all. [`Framer`] therefore finds message
//! boundaries by tracking bracket depth and string state, the way QEMU's own
//! JSON streamer does.
//!
//! The scan resumes where it stopped: bytes are looked at once however the
//! stream is chunked. Outside strings a table says which bytes matter (the
//! quote and the brackets of the kind that opened the message), which beats
//! jumping between them with [`memchr`] in JSON as dense as QMP's, and the
//! indentation of `pretty=on` output is skipped eight bytes at a time. Inside
//! a string, eight bytes at a time are checked for a quote or backslash, and
//! [`memchr`] takes over in a long one.
//!
//! The client offers each message to its parser first (`next_frame_with`):
//! a message is framed by that one parse, with no scan at all. The parse is
//! resumable too: a message that arrives in pieces is parsed as they come,
//! each piece once, and the scan only takes over for what the parser
//! refuses (invalid JSON, or a case it leaves to serde_json), from the
//! message's first byte.

use bytes::{Buf, Bytes, BytesMut};

/// The default maximum size of one message: 16 MiB.
///
/// QEMU's largest routine reply, `query-qmp-schema`, is about 250 KB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// Why [`Framer::next_frame`] could not give a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A message grew past the configured maximum. Its bytes have been
    /// discarded (and will go on being discarded until it ends), so memory
    /// stays bounded.
    TooLarge {
        /// The configured maximum, in bytes.
        limit: usize,
    },
    /// The stream ended ([`Framer::finish`]) in the middle of a message.
    Truncated {
        /// How many bytes of the unfinished message had arrived.
        buffered: usize,
    },
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::TooLarge { limit } => {
                write!(f, "message larger than the limit of {limit} bytes")
            }
            FrameError::Truncated { buffered } => {
                write!(f, "stream ended inside a message ({buffered} bytes of it)")
            }
        }
    }
}

/// Everything `buffer` holds, if anything: how each machine hands out the
/// bytes it has to write.
pub(crate) fn take_all(buffer: &mut BytesMut) -> Option<Bytes> {
    (!buffer.is_empty()).then(|| buffer.split().freeze())
}

/// Writes the chunks `next` gives through `try_write`, which writes as much
/// of a chunk as it can *without waiting* and says how much, or `None` when
/// it can take nothing now (or failed). What it does not take is kept in
/// `unsent`, which must be written, waiting as needed, before anything
/// newer: so the stream stays in order whoever writes. Returns whether
/// bytes are left in `unsent`.
pub fn write_in_order(
    unsent: &mut Option<Bytes>,
    mut next: impl FnMut() -> Option<Bytes>,
    mut try_write: impl FnMut(&[u8]) -> Option<usize>,
) -> bool {
    loop {
        let Some(bytes) = unsent.take().or_else(&mut next) else {
            return false;
        };
        match try_write(&bytes) {
            Some(n) if n >= bytes.len() => {}
            Some(n) => {
                *unsent = Some(bytes.slice(n..));
                return true;
            }
            None => {
                *unsent = Some(bytes);
                return true;
            }
        }
    }
}

/// What a parser offered the front of the buffer
/// ([`Framer::next_frame_with`]) says about it.
#[derive(Debug)]
pub(crate) enum Prefix<T> {
    /// The bytes begin with a complete message, this long.
    Parsed(T, usize),
    /// The bytes may begin a message the parser accepts but do not hold
    /// all of it: offer them again, and more, when more have arrived.
    Incomplete,
    /// The parser leaves this message to the scan (and to a parse of the
    /// whole frame); it is not offered again.
    Refused,
}

/// What kind of value the frame at the front of the buffer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Between messages: whitespace is skipped, the next byte decides.
    Between,
    /// An object its parser said was incomplete (`Prefix::Incomplete`):
    /// offered again as more bytes arrive.
    Parsing,
    /// An object or array (`open` is `{` or `[`): ends when `depth`
    /// brackets of its own kind close.
    Container { open: u8, depth: usize },
    /// A top-level string (only ever garbage in QMP, but framed correctly).
    String,
    /// A top-level bare token (number, keyword, garbage): ends at whitespace
    /// or a structural byte.
    Bare,
}

/// Splits a byte stream into JSON messages; see the [module docs](self).
///
/// ```
/// use qmp_proto::framing::Framer;
///
/// let mut framer = Framer::new(1024);
/// framer.push(b"{\"return\": {}, \"id\": 1}\r\n{\"ev");
/// let first = framer.next_frame().unwrap().unwrap();
/// assert_eq!(&first[..], b"{\"return\": {}, \"id\": 1}");
/// assert!(framer.next_frame().is_none()); // the second is not complete yet
/// framer.push(b"ent\": \"STOP\"}");
/// assert_eq!(&framer.next_frame().unwrap().unwrap()[..], b"{\"event\": \"STOP\"}");
/// ```
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    max: usize,
    shape: Shape,
    /// Inside a string of the current container.
    in_string: bool,
    /// The byte after a backslash is still to come.
    escape: bool,
    /// How many bytes of the current frame have been scanned.
    scanned: usize,
    /// Discarding an oversize frame: its bytes are dropped as they are scanned.
    discarding: bool,
    /// Bytes consumed from the stream so far.
    consumed_total: u64,
    /// While `Parsing`: how many bytes were buffered when the parser last
    /// said its message was incomplete.
    offered: usize,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn ends_bare_token(b: u8) -> bool {
    is_space(b) || matches!(b, b'{' | b'}' | b'[' | b']' | b'"')
}

/// What the container scan does with a byte: most bytes need nothing.
const OTHER: u8 = 0;
const QUOTE: u8 = 1;
const OPEN: u8 = 2;
const CLOSE: u8 = 3;
const NEWLINE: u8 = 4;

const fn container_bytes(open: u8, close: u8) -> [u8; 256] {
    let mut table = [OTHER; 256];
    table[b'"' as usize] = QUOTE;
    table[open as usize] = OPEN;
    table[close as usize] = CLOSE;
    table[b'\n' as usize] = NEWLINE;
    table
}

/// Byte classes inside an object, and inside an array.
static IN_OBJECT: [u8; 256] = container_bytes(b'{', b'}');
static IN_ARRAY: [u8; 256] = container_bytes(b'[', b']');

/// How many bytes of a string are looked at a word at a time before
/// [`memchr`] takes over: QMP's strings are mostly shorter, and calling it
/// costs more than it saves on them.
const SHORT_STRING: usize = 32;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The offset of the first quote or backslash in `rest`.
fn quote_or_backslash(rest: &[u8]) -> Option<usize> {
    let mut at = 0;
    // Eight bytes at a time; the first flagged byte of a word is exact (a
    // borrow only ever flags bytes after a real match).
    while at < SHORT_STRING {
        let Some(word) = rest.get(at..).and_then(|r| r.first_chunk::<8>()) else {
            let tail = rest.get(at..)?;
            return tail
                .iter()
                .position(|&b| b == b'"' || b == b'\\')
                .map(|offset| at + offset);
        };
        let word = u64::from_le_bytes(*word);
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let flagged = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash))
            & HIGHS;
        if flagged != 0 {
            return Some(at + (flagged.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    memchr::memchr2(b'"', b'\\', &rest[at..]).map(|offset| at + offset)
}

/// Scans a string's content from `at` (just after its opening quote or an
/// escaped byte). `Ok` is the index just after the closing quote; `Err` is
/// the end of `buf` and whether its last byte was a backslash whose escaped
/// byte is still to come.
fn string_end(buf: &[u8], mut at: usize) -> Result<usize, (usize, bool)> {
    loop {
        let Some(offset) = quote_or_backslash(&buf[at..]) else {
            return Err((buf.len(), false));
        };
        let found = at + offset;
        if buf[found] == b'"' {
            return Ok(found + 1);
        }
        if found + 1 == buf.len() {
            return Err((buf.len(), true));
        }
        at = found + 2;
    }
}

/// One step of [`Framer::advance`].
enum Step {
    /// More input is needed.
    NeedMore,
    /// A frame of this many bytes is complete at the front of the buffer.
    Complete(usize),
}

impl Framer {
    /// A framer that refuses messages longer than `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        Framer {
            buf: BytesMut::new(),
            max: max_message_size.max(1),
            shape: Shape::Between,
            in_string: false,
            escape: false,
            scanned: 0,
            discarding: false,
            consumed_total: 0,
            offered: 0,
        }
    }

    /// The maximum message size this framer was made with.
    pub fn max_message_size(&self) -> usize {
        self.max
    }

    /// Appends bytes read from the peer. Nothing is parsed until
    /// [`next_frame`](Self::next_frame) is called.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes received and not yet given out as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Total bytes consumed from the stream so far (given out as frames,
    /// skipped as whitespace, or discarded).
    pub fn consumed(&self) -> u64 {
        self.consumed_total
    }

    /// The next complete message, if one has arrived.
    ///
    /// `Some(Err(FrameError::TooLarge))` is returned once per oversize
    /// message; the framer then skips the rest of it and goes on with the
    /// next one, which is what a server wants. A client treats it as fatal.
    pub fn next_frame(&mut self) -> Option<Result<Bytes, FrameError>> {
        self.next_frame_with(|_: &[u8], _| Prefix::<()>::Refused, |_| true)
            .map(|r| r.map(|(_, frame)| frame))
    }

    /// Like [`next_frame`](Self::next_frame), but first offers the buffered
    /// bytes to `parse_prefix` when an object starts at the front of the
    /// buffer.
    ///
    /// `parse_prefix` is given the bytes from the object's first byte on (at
    /// most the maximum message size of them) and whether it was given the
    /// start of them before, and says what they are ([`Prefix`]). When they
    /// begin with a complete, valid JSON object, it returns what it parsed
    /// and how many bytes that took: such an object is exactly the frame the
    /// depth scan would find, so the scan is skipped. When they may begin
    /// one but it has not all arrived ([`Prefix::Incomplete`]), the object
    /// is offered again, from its first byte, once more bytes have arrived,
    /// with `resume` set: a parser that keeps its place reads a message
    /// that arrives in pieces once. When it refuses the object (invalid or
    /// not wanted), or the object grows past the maximum message size, the
    /// framer scans it as usual from its first byte and does not offer it
    /// again, so the frames are the same for any chunking.
    ///
    /// When `needs_frame` says that what `parse_prefix` returned does not
    /// need its bytes any more (it copied what it keeps), the frame is
    /// consumed instead of split off, with the whitespace after it, and
    /// given out empty: no shared buffer's count is touched, and the buffer
    /// stays unshared, so later reads reuse it instead of allocating.
    #[inline]
    pub(crate) fn next_frame_with<T>(
        &mut self,
        mut parse_prefix: impl FnMut(&[u8], bool) -> Prefix<T>,
        needs_frame: impl Fn(&T) -> bool,
    ) -> Option<Result<(Option<T>, Bytes), FrameError>> {
        loop {
            let resume = match self.shape {
                Shape::Between => {
                    self.skip_space();
                    let first = *self.buf.first()?;
                    if first != b'{' {
                        self.begin(first);
                        None
                    } else {
                        Some(false)
                    }
                }
                // Nothing new to offer.
                Shape::Parsing if self.buf.len() == self.offered => return None,
                Shape::Parsing => Some(true),
                _ => None,
            };
            if let Some(resume) = resume {
                if let Some(found) = self.try_prefix(&mut parse_prefix, resume, &needs_frame) {
                    return Some(Ok(found));
                }
                if self.shape == Shape::Parsing {
                    return None; // still arriving
                }
                self.begin(b'{');
            }
            match self.advance() {
                Step::NeedMore => {
                    if self.discarding {
                        self.drop_scanned();
                        return None;
                    }
                    if self.scanned > self.max {
                        // Report once, then drop the message's bytes as they
                        // are scanned so memory stays bounded.
                        self.discarding = true;
                        self.drop_scanned();
                        return Some(Err(FrameError::TooLarge { limit: self.max }));
                    }
                    return None;
                }
                Step::Complete(len) => {
                    self.shape = Shape::Between;
                    self.scanned = 0;
                    if self.discarding {
                        self.discarding = false;
                        self.consume(len);
                        continue;
                    }
                    if len > self.max {
                        self.consume(len);
                        return Some(Err(FrameError::TooLarge { limit: self.max }));
                    }
                    let frame = self.take(len);
                    return Some(Ok((None, frame)));
                }
            }
        }
    }

    /// Says the stream has ended. Returns the error for an unfinished
    /// message, if any; the framer is then empty.
    pub fn finish(&mut self) -> Result<(), FrameError> {
        self.skip_space_if_between();
        let unfinished = self.shape != Shape::Between || !self.buf.is_empty();
        let buffered = self.buf.len();
        let was_discarding = self.discarding;
        self.consume(buffered);
        self.shape = Shape::Between;
        self.scanned = 0;
        self.in_string = false;
        self.escape = false;
        self.discarding = false;
        if unfinished && !was_discarding {
            Err(FrameError::Truncated { buffered })
        } else {
            Ok(())
        }
    }

    fn skip_space_if_between(&mut self) {
        if self.shape == Shape::Between {
            self.skip_space();
        }
    }

    fn skip_space(&mut self) {
        let n = self.buf.iter().take_while(|&&b| is_space(b)).count();
        self.consume(n);
    }

    /// The parse-first fast path: see [`next_frame_with`](Self::next_frame_with).
    /// `None` is an object still arriving when the framer is left `Parsing`
    /// it, else one to scan.
    #[inline]
    fn try_prefix<T>(
        &mut self,
        parse_prefix: impl FnOnce(&[u8], bool) -> Prefix<T>,
        resume: bool,
        needs_frame: impl Fn(&T) -> bool,
    ) -> Option<(Option<T>, Bytes)> {
        let offered = self.buf.len().min(self.max);
        let (parsed, len) = match parse_prefix(&self.buf[..offered], resume) {
            Prefix::Parsed(parsed, len) if len != 0 && len <= offered => (parsed, len),
            // Past the limit: the scan reports it.
            Prefix::Incomplete if offered == self.buf.len() => {
                self.shape = Shape::Parsing;
                self.offered = offered;
                return None;
            }
            _ => {
                self.shape = Shape::Between;
                return None; // not a frame of what was offered: scan instead
            }
        };
        self.shape = Shape::Between;
        if needs_frame(&parsed) {
            return Some((Some(parsed), self.take(len)));
        }
        self.consume_read(len);
        Some((Some(parsed), Bytes::new()))
    }

    /// The buffered bytes (at most the maximum message size of them) when
    /// an object whose bytes nothing has read yet starts at the front:
    /// for a reader of a message there whole, which says how long it was
    /// with [`consume_read`](Self::consume_read). A message read so does
    /// not go through [`next_frame_with`](Self::next_frame_with).
    #[inline(always)]
    pub(crate) fn unread_object(&mut self) -> Option<&[u8]> {
        if self.shape != Shape::Between {
            return None;
        }
        self.skip_space();
        if self.buf.first() != Some(&b'{') {
            return None;
        }
        let offered = self.buf.len().min(self.max);
        Some(&self.buf[..offered])
    }

    /// Drops the first `len` bytes, a message read from
    /// [`unread_object`](Self::unread_object) (or a parsed prefix), and the
    /// line ending after it: one advance instead of two.
    #[inline(always)]
    pub(crate) fn consume_read(&mut self, len: usize) {
        let rest = self.buf.get(len..).unwrap_or_default();
        let space = rest.iter().take_while(|&&b| is_space(b)).count();
        self.consume(len + space);
    }

    fn begin(&mut self, first: u8) {
        self.scanned = 1;
        self.in_string = false;
        self.escape = false;
        self.shape = match first {
            b'{' | b'[' => Shape::Container {
                open: first,
                depth: 1,
            },
            b'"' => Shape::String,
            // Anything else, a stray closing bracket included, is a bare
            // token that ends before the next whitespace or structural byte.
            _ => Shape::Bare,
        };
    }

    /// Scans from `self.scanned` to the end of the buffer or the frame.
    fn advance(&mut self) -> Step {
        match self.shape {
            Shape::Between | Shape::Parsing => Step::NeedMore,
            Shape::Bare => {
                let rest = &self.buf[self.scanned..];
                match rest.iter().position(|&b| ends_bare_token(b)) {
                    Some(at) => Step::Complete(self.scanned + at),
                    None => {
                        self.scanned = self.buf.len();
                        Step::NeedMore
                    }
                }
            }
            Shape::String => {
                let (end, closed) = self.scan_string(self.scanned);
                self.scanned = end;
                match closed {
                    true => Step::Complete(end),
                    false => Step::NeedMore,
                }
            }
            Shape::Container { open, mut depth } => {
                let table = if open == b'{' { &IN_OBJECT } else { &IN_ARRAY };
                let mut at = self.scanned;
                let step = 'scan: loop {
                    if self.in_string {
                        let (end, closed) = self.scan_string(at);
                        at = end;
                        if !closed {
                            break Step::NeedMore;
                        }
                        self.in_string = false;
                    }
                    let buf = &self.buf[..];
                    while let Some(&byte) = buf.get(at) {
                        at += 1;
                        let class = table[usize::from(byte)];
                        if class == OTHER {
                            continue;
                        }
                        if class == QUOTE {
                            self.in_string = true;
                            continue 'scan;
                        }
                        if class == NEWLINE {
                            // Pretty output indents every line.
                            while buf.get(at..at + 8) == Some(&[b' '; 8][..]) {
                                at += 8;
                            }
                        } else if class == OPEN {
                            depth += 1;
                        } else {
                            depth -= 1;
                            if depth == 0 {
                                break 'scan Step::Complete(at);
                            }
                        }
                    }
                    break Step::NeedMore;
                };
                self.scanned = at;
                if let Shape::Container { depth: d, .. } = &mut self.shape {
                    *d = depth;
                }
                step
            }
        }
    }

    /// Scans inside a string from `at`, a pending escaped byte first.
    /// Returns where the scan stopped and whether the string closed there.
    fn scan_string(&mut self, mut at: usize) -> (usize, bool) {
        if self.escape {
            if at >= self.buf.len() {
                return (at, false);
            }
            at += 1;
            self.escape = false;
        }
        match string_end(&self.buf, at) {
            Ok(end) => (end, true),
            Err((end, escape)) => {
                self.escape = escape;
                (end, false)
            }
        }
    }

    fn drop_scanned(&mut self) {
        let n = self.scanned;
        self.consume(n);
        self.scanned = 0;
    }

    fn take(&mut self, len: usize) -> Bytes {
        self.consumed_total += len as u64;
        self.buf.split_to(len).freeze()
    }

    fn consume(&mut self, len: usize) {
        self.consumed_total += len as u64;
        self.buf.advance(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// What a framer gave for a stream: every `next_frame` result, in order,
    /// and what `finish` said at the end.
    #[derive(Debug, PartialEq, Eq)]
    struct Framed {
        frames: Vec<Result<Vec<u8>, FrameError>>,
        finish: Result<(), FrameError>,
    }

    fn drain(framer: &mut Framer, frames: &mut Vec<Result<Vec<u8>, FrameError>>) {
        while let Some(frame) = framer.next_frame() {
            frames.push(frame.map(|bytes| bytes.to_vec()));
        }
    }

    /// Pushes `chunks` one by one, draining the frames after each.
    fn frame_chunks(max: usize, chunks: &[&[u8]]) -> Framed {
        let mut framer = Framer::new(max);
        let mut frames = Vec::new();
        for chunk in chunks {
            framer.push(chunk);
            drain(&mut framer, &mut frames);
        }
        let finish = framer.finish();
        assert_eq!(framer.buffered(), 0, "finish leaves the framer empty");
        Framed { frames, finish }
    }

    fn ok_frames(expected: &[&str]) -> Framed {
        Framed {
            frames: expected.iter().map(|f| Ok(f.as_bytes().to_vec())).collect(),
            finish: Ok(()),
        }
    }

    /// Frames `stream` whole, byte by byte, and split in two at every
    /// position, and checks every chunking gives `expected`.
    fn assert_frames_for_every_split(max: usize, stream: &str, expected: &Framed) {
        let bytes = stream.as_bytes();
        assert_eq!(&frame_chunks(max, &[bytes]), expected, "whole");
        let single_bytes: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(&frame_chunks(max, &single_bytes), expected, "byte by byte");
        for at in 0..=bytes.len() {
            let (head, tail) = bytes.split_at(at);
            assert_eq!(&frame_chunks(max, &[head, tail]), expected, "split at {at}");
        }
    }

    /// Like `assert_frames_for_every_split` for a stream of good frames.
    fn assert_ok_frames_for_every_split(stream: &str, expected: &[&str]) {
        assert_frames_for_every_split(DEFAULT_MAX_MESSAGE_SIZE, stream, &ok_frames(expected));
    }

    #[test]
    fn crlf_terminated_objects_are_framed_without_the_line_ending() {
        let stream = "{\"return\": {}, \"id\": 1}\r\n{\"event\": \"STOP\"}\r\n";
        assert_ok_frames_for_every_split(
            stream,
            &["{\"return\": {}, \"id\": 1}", "{\"event\": \"STOP\"}"],
        );
    }

    #[test]
    fn pretty_multi_line_object_is_one_frame() {
        let message = concat!(
            "{\r\n",
            "    \"return\": {\r\n",
            "        \"status\": \"running\",\r\n",
            "        \"list\": [\r\n",
            "            1,\r\n",
            "            {}\r\n",
            "        ]\r\n",
            "    },\r\n",
            "    \"id\": 2\r\n",
            "}"
        );
        let stream = alloc::format!("{message}\r\n{message}\r\n");
        assert_ok_frames_for_every_split(&stream, &[message, message]);
    }

    #[test]
    fn strings_with_brackets_quotes_and_backslashes_split_anywhere() {
        let tricky = r#"{"s": "}{][", "q": "say \"hi\" {", "b": "back\\", "e": "\\\"}\\\\"}"#;
        let string_at_top = r#""top } { \" \\""#;
        let stream = alloc::format!("{tricky}\r\n{string_at_top}\n{{\"after\": [\"]\"]}}\n");
        assert_ok_frames_for_every_split(&stream, &[tricky, string_at_top, r#"{"after": ["]"]}"#]);
    }

    #[test]
    fn escape_split_across_chunks_does_not_end_the_string() {
        // The chunk ends right after a backslash: the quote that follows is
        // escaped, not the end of the string.
        let mut framer = Framer::new(1024);
        framer.push(br#"{"s": "a\"#);
        assert!(framer.next_frame().is_none());
        framer.push(br#""}"#);
        assert!(
            framer.next_frame().is_none(),
            "the escaped quote closed the string"
        );
        framer.push(br#""}"#);
        let frame = framer.next_frame().unwrap().unwrap();
        assert_eq!(&frame[..], br#"{"s": "a\"}"}"#);
        // An escaped backslash split from the quote that really ends the string.
        framer.push(br#"{"s": "\\"#);
        assert!(framer.next_frame().is_none());
        framer.push(br#""}"#);
        assert_eq!(
            &framer.next_frame().unwrap().unwrap()[..],
            br#"{"s": "\\"}"#
        );
        assert_eq!(framer.finish(), Ok(()));
    }

    #[test]
    fn nested_objects_and_arrays_end_at_the_matching_bracket() {
        let object = r#"{"a": [{"b": [1, {"c": {}}]}, []], "d": {"e": [[{}]]}}"#;
        let array = r#"[1, [2, {"x": [3, "]"]}], {"y": "["}]"#;
        let stream = alloc::format!("{object}{array}\n");
        assert_ok_frames_for_every_split(&stream, &[object, array]);
    }

    #[test]
    fn bare_tokens_and_stray_closing_brackets_are_frames_of_their_own() {
        // A bare token ends before whitespace or a bracket or quote, so a
        // stray closing bracket never swallows the object after it.
        let stream = "} 123 true]\"s\"null}{\"a\": 1}\n] 4";
        // The last token may go on in the next read: at the end it is
        // unfinished.
        let expected = Framed {
            finish: Err(FrameError::Truncated { buffered: 1 }),
            ..ok_frames(&[
                "}",
                "123",
                "true",
                "]",
                "\"s\"",
                "null",
                "}",
                "{\"a\": 1}",
                "]",
            ])
        };
        assert_frames_for_every_split(DEFAULT_MAX_MESSAGE_SIZE, stream, &expected);
    }

    #[test]
    fn back_to_back_objects_without_separator() {
        let stream = r#"{"execute": "a"}{"execute": "b", "id": {"n": [1]}}[]{}"#;
        assert_ok_frames_for_every_split(
            stream,
            &[
                r#"{"execute": "a"}"#,
                r#"{"execute": "b", "id": {"n": [1]}}"#,
                "[]",
                "{}",
            ],
        );
    }

    #[test]
    fn message_at_the_limit_passes_and_one_byte_more_does_not() {
        let at_limit = r#"{"k": "123456"}"#;
        let max = at_limit.len();
        let over = r#"{"k": "1234567"}"#;
        let stream = alloc::format!("{at_limit}\r\n{over}\r\n{at_limit}\r\n");
        let expected = Framed {
            frames: alloc::vec![
                Ok(at_limit.as_bytes().to_vec()),
                Err(FrameError::TooLarge { limit: max }),
                Ok(at_limit.as_bytes().to_vec()),
            ],
            finish: Ok(()),
        };
        assert_frames_for_every_split(max, &stream, &expected);
    }

    #[test]
    fn oversize_message_is_reported_once_and_the_next_one_is_framed() {
        let big = r#"{"data": "}}}}{{{{\"\\ [[[]]] padding padding padding", "more": [1, 2, 3]}"#;
        let stream = alloc::format!("{big}\r\n{{\"ok\": 1}}\r\n");
        let expected = Framed {
            frames: alloc::vec![
                Err(FrameError::TooLarge { limit: 16 }),
                Ok(b"{\"ok\": 1}".to_vec()),
            ],
            finish: Ok(()),
        };
        assert_frames_for_every_split(16, &stream, &expected);
    }

    #[test]
    fn oversize_message_pushed_in_chunks_keeps_memory_bounded() {
        const LIMIT: usize = 4096;
        const CHUNK: usize = 1000;
        // A 10 MB string with brackets, quotes and escapes in it.
        let filler = "ab{c}[d]\\\"e ".repeat(CHUNK / 12);
        let mut framer = Framer::new(LIMIT);
        let mut frames = Vec::new();
        let mut most_buffered = 0;
        let mut pushed = 0u64;
        let mut push = |framer: &mut Framer, bytes: &[u8], frames: &mut Vec<_>| {
            framer.push(bytes);
            pushed += bytes.len() as u64;
            drain(framer, frames);
            most_buffered = most_buffered.max(framer.buffered());
        };
        push(&mut framer, b"{\"huge\": [\"", &mut frames);
        for _ in 0..10_000 {
            push(&mut framer, filler.as_bytes(), &mut frames);
        }
        push(&mut framer, b"\"]}\r\n{\"after\": true}\r\n", &mut frames);
        assert_eq!(
            frames,
            alloc::vec![
                Err(FrameError::TooLarge { limit: LIMIT }),
                Ok(b"{\"after\": true}".to_vec())
            ]
        );
        assert!(
            most_buffered <= LIMIT + filler.len(),
            "{most_buffered} bytes were kept for a message over {LIMIT}"
        );
        assert_eq!(framer.buffered(), 0);
        assert_eq!(framer.consumed(), pushed);
        assert_eq!(framer.finish(), Ok(()));
    }

    #[test]
    fn end_inside_an_oversize_message_is_not_reported_again() {
        let mut framer = Framer::new(8);
        framer.push(b"{\"a\": \"0123456789");
        assert_eq!(
            framer.next_frame(),
            Some(Err(FrameError::TooLarge { limit: 8 }))
        );
        assert_eq!(framer.next_frame(), None);
        assert_eq!(framer.finish(), Ok(()));
    }

    #[test]
    fn finish_inside_a_message_is_truncated() {
        for partial in [
            "{\"a\": [1, ",
            "{\"a\": \"b\\",
            "[[]",
            "\"open string",
            "123",
        ] {
            let stream = alloc::format!("{{}}\r\n  {partial}");
            let expected = Framed {
                frames: alloc::vec![Ok(b"{}".to_vec())],
                finish: Err(FrameError::Truncated {
                    buffered: partial.len(),
                }),
            };
            assert_frames_for_every_split(DEFAULT_MAX_MESSAGE_SIZE, &stream, &expected);
        }
    }

    #[test]
    fn finish_between_messages_is_clean_and_the_framer_can_be_reused() {
        let mut framer = Framer::new(64);
        framer.push(b"{\"a\": 1}\r\n \t\r\n");
        assert_eq!(&framer.next_frame().unwrap().unwrap()[..], b"{\"a\": 1}");
        assert_eq!(framer.finish(), Ok(()));
        framer.push(b"{\"b\": [");
        assert_eq!(framer.next_frame(), None);
        assert_eq!(framer.finish(), Err(FrameError::Truncated { buffered: 7 }));
        framer.push(b"{\"c\": 3}");
        assert_eq!(&framer.next_frame().unwrap().unwrap()[..], b"{\"c\": 3}");
        assert_eq!(framer.consumed(), 14 + 7 + 8);
    }
}
