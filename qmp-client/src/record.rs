//! Recording a connection as a transcript: every message in and out, as
//! the socket moved it.

use qmp_proto::transcript::{Recorder, Side};
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Where a connection writes its transcript; see
/// [`ConnectOptions::record`](crate::ConnectOptions::record).
///
/// The transcript is the format of [`qmp_proto::transcript`]: one JSON
/// line per message, with its direction, the time since the connection
/// began and its exact bytes. Recording changes nothing that is sent.
/// Lines are written as the socket moves the bytes, under the
/// connection's lock: give it a file or a buffer, not a slow pipe.
///
/// A clone writes to the same place; many connections may share one sink,
/// their lines interleaved. If a write fails, that connection stops
/// recording and the error is kept for [`take_error`](Self::take_error):
/// the connection itself goes on.
///
/// ```no_run
/// use qmp_client::{ConnectOptions, TranscriptSink};
///
/// # fn main() -> std::io::Result<()> {
/// let options = ConnectOptions::default().record(TranscriptSink::create("/tmp/session.jsonl")?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TranscriptSink {
    inner: Arc<Mutex<Sink>>,
}

struct Sink {
    writer: Box<dyn Write + Send>,
    error: Option<io::Error>,
}

impl TranscriptSink {
    /// A sink that writes to `writer`.
    pub fn new(writer: impl Write + Send + 'static) -> TranscriptSink {
        TranscriptSink {
            inner: Arc::new(Mutex::new(Sink {
                writer: Box::new(writer),
                error: None,
            })),
        }
    }

    /// A sink that writes to a new file at `path` (an existing one is
    /// truncated), buffered and flushed after every batch of lines.
    pub fn create(path: impl AsRef<Path>) -> io::Result<TranscriptSink> {
        Ok(TranscriptSink::new(BufWriter::new(File::create(path)?)))
    }

    /// The first error a write met, if any (taken: the next call returns
    /// `None` unless another write failed since).
    pub fn take_error(&self) -> Option<io::Error> {
        self.lock().error.take()
    }

    /// Flushes what is buffered.
    pub fn flush(&self) -> io::Result<()> {
        self.lock().writer.flush()
    }

    fn lock(&self) -> MutexGuard<'_, Sink> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `lines`; whether that worked.
    fn write(&self, lines: &[u8]) -> bool {
        let mut sink = self.lock();
        let written = sink
            .writer
            .write_all(lines)
            .and_then(|()| sink.writer.flush());
        match written {
            Ok(()) => true,
            Err(e) => {
                sink.error.get_or_insert(e);
                false
            }
        }
    }
}

impl fmt::Debug for TranscriptSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TranscriptSink").finish_non_exhaustive()
    }
}

/// Two options are equal when they write to the same sink.
impl PartialEq for TranscriptSink {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for TranscriptSink {}

/// One connection's recording: the machine that cuts the bytes into
/// messages, the clock, and the sink.
pub(crate) struct Recording {
    recorder: Recorder,
    start: Instant,
    sink: TranscriptSink,
    /// A write to the sink failed: recording has stopped.
    stopped: bool,
}

impl Recording {
    pub(crate) fn new(sink: TranscriptSink, max_message_size: usize) -> Recording {
        Recording {
            recorder: Recorder::with_max_message_size(max_message_size),
            start: Instant::now(),
            sink,
            stopped: false,
        }
    }

    fn micros(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Bytes the client wrote.
    pub(crate) fn sent(&mut self, bytes: &[u8]) {
        if !self.stopped {
            let now = self.micros();
            self.recorder.sent(bytes, now);
            self.write_lines();
        }
    }

    /// Bytes the client read.
    pub(crate) fn received(&mut self, bytes: &[u8]) {
        if !self.stopped {
            let now = self.micros();
            self.recorder.received(bytes, now);
            self.write_lines();
        }
    }

    /// `from` closed its side of the stream.
    pub(crate) fn closed(&mut self, from: Side) {
        if !self.stopped {
            let now = self.micros();
            self.recorder.closed(from, now);
            self.write_lines();
        }
    }

    fn write_lines(&mut self) {
        if let Some(lines) = self.recorder.poll_lines() {
            self.stopped = !self.sink.write(&lines);
        }
    }
}
