//! Splitting a byte stream into JSON messages.
//!
//! QMP has no framing of its own. QEMU ends each message with CRLF, but with
//! `pretty=on` one message spans many lines, and clients send a bare stream of
//! JSON objects with no separator at all. [`Framer`] therefore finds message
//! boundaries by tracking bracket depth and string state, the way QEMU's own
//! JSON streamer does.
//!
//! The scan resumes where it stopped: bytes are looked at once however the
//! stream is chunked, and [`memchr`] jumps between the few bytes that matter
//! (quotes, backslashes, and the brackets of the kind that opened the message).

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

/// What kind of value the frame at the front of the buffer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Between messages: whitespace is skipped, the next byte decides.
    Between,
    /// An object or array: ends when `depth` brackets of its own kind close.
    Container { open: u8, close: u8, depth: usize },
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
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn ends_bare_token(b: u8) -> bool {
    is_space(b) || matches!(b, b'{' | b'}' | b'[' | b']' | b'"')
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
        self.next_frame_with(&mut |_: &[u8]| None::<()>)
            .map(|r| r.map(|(_, frame)| frame))
    }

    /// Like [`next_frame`](Self::next_frame), but first offers a whole line
    /// to `parse_line` when the buffer holds one at a message boundary.
    ///
    /// Most QEMU messages are exactly one line, and a line that parses as a
    /// complete message by itself is exactly the frame the depth scan would
    /// find (a valid JSON value followed by whitespace), so the scan can be
    /// skipped. When `parse_line` returns `None` the framer scans as usual;
    /// the result is the same for any chunking. The returned frame is the
    /// line including its line ending.
    pub(crate) fn next_frame_with<T>(
        &mut self,
        parse_line: &mut dyn FnMut(&[u8]) -> Option<T>,
    ) -> Option<Result<(Option<T>, Bytes), FrameError>> {
        loop {
            if self.shape == Shape::Between {
                self.skip_space();
                let first = *self.buf.first()?;
                if first == b'{' {
                    if let Some(found) = self.try_line(parse_line) {
                        return Some(Ok(found));
                    }
                }
                self.begin(first);
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

    /// The one-line fast path: see [`next_frame_with`](Self::next_frame_with).
    fn try_line<T>(
        &mut self,
        parse_line: &mut dyn FnMut(&[u8]) -> Option<T>,
    ) -> Option<(Option<T>, Bytes)> {
        let newline = memchr::memchr(b'\n', &self.buf)?;
        if newline >= self.max {
            return None;
        }
        let parsed = parse_line(&self.buf[..=newline])?;
        Some((Some(parsed), self.take(newline + 1)))
    }

    fn begin(&mut self, first: u8) {
        self.scanned = 1;
        self.in_string = false;
        self.escape = false;
        self.shape = match first {
            b'{' => Shape::Container {
                open: b'{',
                close: b'}',
                depth: 1,
            },
            b'[' => Shape::Container {
                open: b'[',
                close: b']',
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
            Shape::Between => Step::NeedMore,
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
                self.in_string = true;
                match self.scan_string() {
                    true => Step::Complete(self.scanned),
                    false => Step::NeedMore,
                }
            }
            Shape::Container {
                open,
                close,
                mut depth,
            } => {
                let step = loop {
                    if self.in_string && !self.scan_string() {
                        break Step::NeedMore;
                    }
                    let rest = &self.buf[self.scanned..];
                    let Some(at) = memchr::memchr3(b'"', open, close, rest) else {
                        self.scanned = self.buf.len();
                        break Step::NeedMore;
                    };
                    let byte = rest[at];
                    self.scanned += at + 1;
                    if byte == b'"' {
                        self.in_string = true;
                    } else if byte == close {
                        depth -= 1;
                        if depth == 0 {
                            break Step::Complete(self.scanned);
                        }
                    } else {
                        depth += 1;
                    }
                };
                if let Shape::Container { depth: d, .. } = &mut self.shape {
                    *d = depth;
                }
                step
            }
        }
    }

    /// Scans inside a string; true when its closing quote was consumed.
    fn scan_string(&mut self) -> bool {
        loop {
            if self.escape {
                if self.scanned >= self.buf.len() {
                    return false;
                }
                self.scanned += 1;
                self.escape = false;
            }
            let rest = &self.buf[self.scanned..];
            let Some(at) = memchr::memchr2(b'"', b'\\', rest) else {
                self.scanned = self.buf.len();
                return false;
            };
            self.scanned += at + 1;
            if rest[at] == b'"' {
                self.in_string = false;
                return true;
            }
            self.escape = true;
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
