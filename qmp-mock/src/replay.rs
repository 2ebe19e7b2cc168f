//! Playing a recorded session back to a client, and checking that the
//! client sends what was recorded.
//!
//! A transcript (the format of [`qmp_proto::transcript`]) is recorded
//! from the client with `ConnectOptions::record` (or
//! `qmp-shell --record FILE`), or converted from two raw byte streams with
//! [`qmp_proto::transcript::from_streams`]. The
//! replay serves it: the server's messages in the recorded order, each
//! command the client sends compared with the recorded one (name,
//! `execute` or `exec-oob`, arguments; ids are mapped, so the client's own
//! come back in the replies), at the recorded pace or as fast as possible.
//! The first difference ends the replay with a [`Mismatch`] naming it, and
//! the client's mismatched command gets an error reply that says the same.
//!
//! Commands are expected in the recorded order: a client that sends
//! several at once in a different order than the recording is a mismatch.

use crate::peer::{client_left, MockConfig, Peer};
use crate::scripted::Mock;
use qmp_proto::transcript::{self, Entry, Mismatch, Replay, ReplayOutput, TranscriptError};
use std::fmt;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How fast a replay sends the server's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pacing {
    /// As soon as the client's command that precedes them arrives.
    #[default]
    AsFastAsPossible,
    /// With the recorded delays after the client's command that precedes
    /// them (a slow reply is slow again).
    Recorded,
}

/// Why a replay failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReplayError {
    /// The client did not do what the transcript says (the first
    /// difference).
    Mismatch(Box<Mismatch>),
    /// The transcript could not be read.
    Transcript(TranscriptError),
    /// The socket or the transcript's file failed.
    Io(io::Error),
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::Mismatch(mismatch) => write!(f, "replay mismatch: {mismatch}"),
            ReplayError::Transcript(e) => write!(f, "bad transcript: {e}"),
            ReplayError::Io(e) => write!(f, "replay I/O: {e}"),
        }
    }
}

impl std::error::Error for ReplayError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReplayError::Mismatch(e) => Some(e.as_ref()),
            ReplayError::Transcript(e) => Some(e),
            ReplayError::Io(e) => Some(e),
        }
    }
}

impl From<io::Error> for ReplayError {
    fn from(e: io::Error) -> Self {
        ReplayError::Io(e)
    }
}

/// Reads a transcript file.
pub fn load(path: impl AsRef<Path>) -> Result<Vec<Entry>, ReplayError> {
    let text = std::fs::read(path)?;
    transcript::parse(&text).map_err(ReplayError::Transcript)
}

/// A running replay: a [`Mock`] whose script plays a transcript.
///
/// ```no_run
/// use qmp_mock::replay::{self, Pacing, ReplayServer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let entries = replay::load("tests/data/backup-session.jsonl")?;
/// let (socket, replay) = ReplayServer::listen(entries, Pacing::AsFastAsPossible);
/// // ... run the code under test against `socket` ...
/// replay.join()?; // Err(ReplayError::Mismatch(..)) names the first difference
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ReplayServer {
    mock: Mock<Result<(), ReplayError>>,
}

impl ReplayServer {
    /// A replay on a Unix socket in a private directory; its path.
    pub fn listen(entries: Vec<Entry>, pacing: Pacing) -> (PathBuf, ReplayServer) {
        let (path, mock) = Mock::listen(MockConfig::default(), move |peer| {
            play(peer, entries, pacing)
        });
        (path, ReplayServer { mock })
    }

    /// A replay on one end of a socket pair; the other end.
    pub fn pair(entries: Vec<Entry>, pacing: Pacing) -> (UnixStream, ReplayServer) {
        let (stream, mock) = Mock::pair(MockConfig::default(), move |peer| {
            play(peer, entries, pacing)
        });
        (stream, ReplayServer { mock })
    }

    /// Waits for the replay's end: `Ok` once every entry was played and
    /// the session ended as recorded; the first difference otherwise.
    pub fn join(self) -> Result<(), ReplayError> {
        self.mock.join()
    }
}

/// Plays `entries` to the client on `peer`.
fn play(mut peer: Peer, entries: Vec<Entry>, pacing: Pacing) -> Result<(), ReplayError> {
    let start = Instant::now();
    let micros = || u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    let mut replay = Replay::new(entries, pacing == Pacing::Recorded, 0);
    let mut eof = false;
    loop {
        while let Some(output) = replay.poll_output() {
            match output {
                ReplayOutput::Send { at_micros, bytes } => {
                    wait_until(start, at_micros);
                    match peer.send_raw(&bytes) {
                        Ok(()) => {}
                        // The client has gone: the replay says whether it
                        // was meant to.
                        Err(e) if client_left(&e) && !eof => {
                            eof = true;
                            replay.receive_eof(micros());
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                ReplayOutput::Close { at_micros } => {
                    wait_until(start, at_micros);
                    peer.close();
                }
                ReplayOutput::Mismatch(mismatch) => {
                    return Err(ReplayError::Mismatch(Box::new(mismatch)))
                }
                ReplayOutput::Finished => return Ok(()),
            }
        }
        if eof {
            // The replay has had everything and said nothing more.
            return Err(
                io::Error::new(io::ErrorKind::UnexpectedEof, "the replay ended early").into(),
            );
        }
        match peer.next_bytes() {
            Some(bytes) => replay.receive(&bytes, micros()),
            None => {
                eof = true;
                replay.receive_eof(micros());
            }
        }
    }
}

/// Sleeps until `at_micros` after `start`: the recorded pace.
fn wait_until(start: Instant, at_micros: u64) {
    let at = start + Duration::from_micros(at_micros);
    let now = Instant::now();
    if at > now {
        std::thread::sleep(at - now);
    }
}
