//! The raw-socket floor: a blocking `std::os::unix::net::UnixStream` that
//! writes preformatted command lines and counts the lines that come back.
//! No JSON is parsed and no id is checked: it is what talking to the mock
//! costs with no client library at all. (The events case also has a floor
//! that checks each line with serde_json, for reference.)

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// The command line of the sequential and pipelined cases.
pub const STATUS_LINE: &[u8] = b"{\"execute\": \"query-status\", \"id\": 1}\n";
/// The line that asks for a burst of events.
pub const EVENTS_LINE: &[u8] = b"{\"execute\": \"x-bench-events\", \"id\": 2}\n";
/// The negotiation line.
pub const CAPABILITIES_LINE: &[u8] = b"{\"execute\": \"qmp_capabilities\", \"id\": 0}\n";

pub struct Floor {
    stream: UnixStream,
    buf: Vec<u8>,
    /// Bytes in `buf[start..end]` not yet counted as lines.
    start: usize,
    end: usize,
}

impl Floor {
    /// Connect + negotiate: connect, read the greeting line, write
    /// `qmp_capabilities`, read its reply line.
    pub fn connect(path: &Path) -> Floor {
        let stream = UnixStream::connect(path).expect("floor: connect");
        let mut floor = Floor {
            stream,
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
        };
        floor.read_lines(1);
        floor.write(CAPABILITIES_LINE);
        floor.read_lines(1);
        floor
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("floor: write");
    }

    /// Reads until `n` more lines have arrived (bytes past them are kept).
    pub fn read_lines(&mut self, n: usize) {
        self.read_lines_with(n, |_| {});
    }

    /// Reads until `n` more lines have arrived, giving each to `each`.
    pub fn read_lines_with(&mut self, mut n: usize, mut each: impl FnMut(&[u8])) {
        while n > 0 {
            n -= self.take_buffered(n, &mut each);
            if n > 0 {
                self.fill();
            }
        }
    }

    /// Reads at least one line more; returns how many complete lines were
    /// counted (the caller's window refills by that many).
    pub fn read_some_lines(&mut self, limit: usize) -> usize {
        loop {
            let n = self.count_buffered(limit);
            if n > 0 {
                return n;
            }
            self.fill();
        }
    }

    /// Counts up to `limit` complete lines already buffered, consuming them.
    fn count_buffered(&mut self, limit: usize) -> usize {
        self.take_buffered(limit, &mut |_| {})
    }

    /// Consumes up to `limit` complete lines already buffered, giving each
    /// to `each`; returns how many.
    fn take_buffered(&mut self, limit: usize, each: &mut impl FnMut(&[u8])) -> usize {
        let mut counted = 0;
        while counted < limit {
            match memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                Some(at) => {
                    each(&self.buf[self.start..self.start + at]);
                    self.start += at + 1;
                    counted += 1;
                }
                None => break,
            }
        }
        counted
    }

    /// One `read` after what is buffered.
    fn fill(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self
            .stream
            .read(&mut self.buf[self.end..])
            .expect("floor: read");
        assert!(n > 0, "floor: the mock closed the connection");
        self.end += n;
    }
}
