//! [`Error`]: why a call on a connection failed.

use qmp_proto::{End, ErrorClass, Failure, QmpError, SendError};
use std::io;
use std::sync::Arc;

/// Why a call on a connection failed.
///
/// Tells apart, as go-qmp's `IsSocketNotAvailable` and `IsSocketClosed` do,
/// a socket nobody serves ([`is_socket_not_available`](Self::is_socket_not_available))
/// from a connection that has ended ([`is_socket_closed`](Self::is_socket_closed)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// The socket could not be connected to (nothing listens there, the
    /// connection was refused or reset, no permission).
    Connect(Arc<io::Error>),
    /// Connecting, reading the greeting and negotiating did not finish in
    /// time. QEMU serves one client per monitor: another client may hold it.
    ConnectTimeout,
    /// The server answered the command with an error.
    Qmp(QmpError),
    /// The command was not accepted locally (queue full, OOB not
    /// negotiated, arguments not an object, or arguments that do not fit
    /// the server's schema when [checked](crate::Call::check_arguments)).
    Rejected(SendError),
    /// The connection ended (or had ended) before the answer came.
    Closed(End),
    /// The call did not complete within its timeout. The connection stays
    /// usable; a late reply is dropped.
    Timeout,
    /// The reply did not decode into the requested type.
    Decode(Arc<serde_json::Error>),
    /// The event wait's cursor is older than the kept history.
    HistoryOverrun {
        /// The oldest sequence number still kept.
        oldest_kept: u64,
    },
    /// File descriptors can only be passed over a Unix socket.
    FdPassingUnsupported,
}

impl Error {
    /// Whether nothing serves the socket: not found, refused, reset, or no
    /// permission, on connecting.
    pub fn is_socket_not_available(&self) -> bool {
        matches!(self, Error::Connect(_))
    }

    /// Whether the connection has ended (EOF, QEMU exited, a fatal protocol
    /// error, or closed locally).
    pub fn is_socket_closed(&self) -> bool {
        matches!(self, Error::Closed(_))
    }

    /// The QMP error class, when the server answered with an error.
    pub fn qmp_class(&self) -> Option<&ErrorClass> {
        match self {
            Error::Qmp(e) => Some(&e.class),
            _ => None,
        }
    }
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Qmp(e) => Error::Qmp(e),
            Failure::Rejected(e) => Error::Rejected(e),
            Failure::Ended(end) => Error::Closed(end),
            Failure::HistoryOverrun { oldest_kept } => Error::HistoryOverrun { oldest_kept },
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Decode(Arc::new(e))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Connect(e) => write!(f, "cannot connect to the QMP socket: {e}"),
            Error::ConnectTimeout => {
                f.write_str("timed out connecting to QMP (is another client holding the monitor?)")
            }
            Error::Qmp(e) => write!(f, "QMP error: {e}"),
            Error::Rejected(e) => write!(f, "command not sent: {e}"),
            Error::Closed(end) => write!(f, "QMP connection closed: {end}"),
            Error::Timeout => f.write_str("the QMP call timed out"),
            Error::Decode(e) => write!(f, "cannot decode the reply: {e}"),
            Error::HistoryOverrun { oldest_kept } => write!(
                f,
                "events before sequence {oldest_kept} were dropped from the history"
            ),
            Error::FdPassingUnsupported => {
                f.write_str("file descriptors can only be passed over a Unix socket")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connect(e) => Some(&**e),
            Error::Qmp(e) => Some(e),
            Error::Closed(end) => Some(end),
            Error::Decode(e) => Some(&**e),
            _ => None,
        }
    }
}
