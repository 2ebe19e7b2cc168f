//! Recording a live session: the bytes each way, split into messages.

use super::{Entry, Record, Side};
use crate::framing::{FrameError, Framer, DEFAULT_MAX_MESSAGE_SIZE};
use alloc::vec::Vec;
use bytes::{Buf, Bytes, BytesMut};

/// Writes a transcript of a session from the bytes a client wrote and read.
///
/// Each direction is split into messages by its own [`Framer`]; a message is
/// stamped with the time of the call that completed it. A message over the
/// limit becomes a `too-large` entry and its bytes are dropped as they come,
/// so memory stays bounded whatever the peer sends.
///
/// ```
/// use qmp_proto::transcript::{self, Recorder, Record, Side};
///
/// let mut recorder = Recorder::new();
/// recorder.received(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n", 0);
/// recorder.sent(b"{\"execute\": \"qmp_capa", 310);
/// recorder.sent(b"bilities\"}", 312);
/// recorder.closed(Side::Client, 400);
/// let lines = recorder.poll_lines().unwrap();
/// let entries = transcript::parse(&lines).unwrap();
/// assert_eq!(entries[1].micros, 312);
/// assert_eq!(entries[1].record, Record::Message("{\"execute\": \"qmp_capabilities\"}".into()));
/// assert_eq!(entries[2].record, Record::Closed);
/// ```
#[derive(Debug)]
pub struct Recorder {
    client: Splitter,
    server: Splitter,
    lines: Vec<u8>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// A recorder with the default limit, [`DEFAULT_MAX_MESSAGE_SIZE`].
    pub fn new() -> Self {
        Recorder::with_max_message_size(DEFAULT_MAX_MESSAGE_SIZE)
    }

    /// A recorder that keeps messages of at most `max_message_size` bytes.
    pub fn with_max_message_size(max_message_size: usize) -> Self {
        Recorder {
            client: Splitter::new(max_message_size),
            server: Splitter::new(max_message_size),
            lines: Vec::new(),
        }
    }

    /// Records bytes the client wrote, at `micros`.
    pub fn sent(&mut self, bytes: &[u8], micros: u64) {
        self.record(Side::Client, bytes, micros);
    }

    /// Records bytes the client read, at `micros`.
    pub fn received(&mut self, bytes: &[u8], micros: u64) {
        self.record(Side::Server, bytes, micros);
    }

    /// Records that `from` closed its stream, at `micros`. The bytes of a
    /// message it left unfinished are recorded first, as a message.
    pub fn closed(&mut self, from: Side, micros: u64) {
        if let Some(leftover) = self.splitter(from).finish() {
            self.write(from, Record::Message(leftover), micros);
        }
        self.write(from, Record::Closed, micros);
    }

    /// The lines recorded since the last call, ready to append to a file.
    pub fn poll_lines(&mut self) -> Option<Bytes> {
        (!self.lines.is_empty()).then(|| Bytes::from(core::mem::take(&mut self.lines)))
    }

    fn record(&mut self, from: Side, bytes: &[u8], micros: u64) {
        self.splitter(from).push(bytes);
        while let Some(record) = self.splitter(from).next_record() {
            self.write(from, record, micros);
        }
    }

    fn splitter(&mut self, side: Side) -> &mut Splitter {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    fn write(&mut self, from: Side, record: Record, micros: u64) {
        let entry = Entry {
            micros,
            from,
            record,
        };
        entry.encode(&mut self.lines);
    }
}

/// A [`Framer`] that also keeps the bytes it has not given out yet, so that
/// a message cut short by the end of its stream can be kept as it is (the
/// framer only says how long it was).
#[derive(Debug)]
pub(super) struct Splitter {
    framer: Framer,
    /// The stream's last bytes: at least the `framer.buffered()` ones.
    tail: BytesMut,
}

impl Splitter {
    pub(super) fn new(max_message_size: usize) -> Self {
        Splitter {
            framer: Framer::new(max_message_size),
            tail: BytesMut::new(),
        }
    }

    /// Buffers bytes of the stream; [`next_record`](Self::next_record)
    /// gives what they complete.
    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.trim_tail();
        self.tail.extend_from_slice(bytes);
        self.framer.push(bytes);
    }

    /// The next message, or a note that one was too large.
    pub(super) fn next_record(&mut self) -> Option<Record> {
        while let Some(frame) = self.framer.next_frame() {
            match frame {
                Ok(frame) => return Some(Record::Message(frame)),
                Err(FrameError::TooLarge { limit }) => return Some(Record::TooLarge { limit }),
                // Only `finish` says this.
                Err(FrameError::Truncated { .. }) => {}
            }
        }
        None
    }

    /// Ends the stream: the bytes of the message it left unfinished, if
    /// any. Call after [`next_record`](Self::next_record) gave `None`.
    pub(super) fn finish(&mut self) -> Option<Bytes> {
        let leftover = match self.framer.finish() {
            Err(FrameError::Truncated { buffered }) => {
                let start = self.tail.len().saturating_sub(buffered);
                Some(self.tail.split_off(start).freeze())
            }
            _ => None,
        };
        self.tail.clear();
        leftover
    }

    /// Drops what the framer has consumed from the front of `tail`.
    fn trim_tail(&mut self) {
        let consumed = self.tail.len().saturating_sub(self.framer.buffered());
        self.tail.advance(consumed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter_gives_back_an_unfinished_message_after_whitespace() {
        let mut splitter = Splitter::new(64);
        splitter.push(b"{\"a\": 1}\r\n  ");
        splitter.push(b"{\"b\": [");
        assert_eq!(
            splitter.next_record(),
            Some(Record::Message(Bytes::from_static(b"{\"a\": 1}")))
        );
        assert_eq!(splitter.next_record(), None);
        splitter.push(b"2");
        assert_eq!(splitter.next_record(), None);
        assert_eq!(splitter.finish(), Some(Bytes::from_static(b"{\"b\": [2")));
        assert_eq!(splitter.finish(), None);
    }

    #[test]
    fn splitter_keeps_no_more_than_the_unframed_bytes_and_the_last_push() {
        let mut splitter = Splitter::new(64);
        for _ in 0..1000 {
            splitter.push(b"{\"return\": {}}\r\n");
            while splitter.next_record().is_some() {}
        }
        assert!(splitter.tail.len() <= 16);
    }
}
