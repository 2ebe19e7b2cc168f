//! The two kinds of failure that are not QMP error replies: local misuse
//! ([`SendError`]) and the peer breaking the protocol ([`ProtocolError`]).
//! QMP error replies are ordinary results: see [`QmpError`](crate::QmpError).

use crate::framing::{FrameError, Framer};
use crate::message::QmpError;
use crate::typed::check::ArgumentProblems;
use alloc::string::String;
use core::fmt;

/// A command could not be accepted. Nothing was sent, and the connection is
/// unaffected (except for [`SendError::Closed`], which says it has ended).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The connection has ended or was closed; no more commands are taken.
    Closed,
    /// An out-of-band command was issued before negotiation completed, when
    /// it is not yet known whether OOB will be enabled.
    NotReady,
    /// Out-of-band execution was not negotiated (the server does not offer
    /// it, or it was not asked for).
    OobNotNegotiated,
    /// The local queue behind the in-flight window is full.
    QueueFull {
        /// The configured queue bound.
        limit: usize,
    },
    /// The arguments did not serialize to a JSON object (or `null` for none).
    ArgumentsNotObject,
    /// The arguments could not be serialized.
    Serialize {
        /// serde_json's description of the problem.
        detail: String,
    },
    /// The server's schema has no such `transaction` action (see
    /// [`Schema::check_transaction`](crate::typed::schema::Schema::check_transaction)).
    UnsupportedAction {
        /// The refused action's type.
        action: String,
    },
    /// The arguments do not fit the server's schema (see
    /// [`Schema::check_call`](crate::typed::schema::Schema::check_call)):
    /// every problem, with where it is and what the schema expects.
    InvalidArguments(ArgumentProblems),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed => f.write_str("the connection is closed"),
            SendError::NotReady => {
                f.write_str("out-of-band command issued before capabilities negotiation completed")
            }
            SendError::OobNotNegotiated => f.write_str("out-of-band execution was not negotiated"),
            SendError::QueueFull { limit } => {
                write!(
                    f,
                    "the command queue is full ({limit} commands wait already)"
                )
            }
            SendError::ArgumentsNotObject => {
                f.write_str("command arguments must serialize to a JSON object")
            }
            SendError::Serialize { detail } => {
                write!(f, "command arguments could not be serialized: {detail}")
            }
            SendError::UnsupportedAction { action } => {
                write!(
                    f,
                    "the server does not accept transaction action '{action}'"
                )
            }
            SendError::InvalidArguments(problems) => problems.fmt(f),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SendError {}

/// The peer broke the protocol. Fatal: the connection ends with it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The first message other than events was not a valid greeting: not
    /// JSON, not an object, a reply, an object that is no QMP message, or a
    /// `QMP` member whose `version` is not an object or whose
    /// `capabilities` is not a list of names. (Events before the greeting
    /// are given out as events, and a `version` object of any shape is
    /// taken; see [`Version`](crate::Version).)
    BadGreeting {
        /// What was wrong with it.
        detail: String,
    },
    /// The server refused `qmp_capabilities`.
    NegotiationFailed(QmpError),
    /// The server sent bytes that are not a JSON object.
    InvalidJson {
        /// serde_json's description of the problem.
        detail: String,
    },
    /// The server sent a JSON object that is no QMP message (neither
    /// greeting, reply, error nor event), or a second greeting.
    UnexpectedMessage {
        /// What was unexpected about it.
        detail: String,
    },
    /// A message exceeded the configured maximum size.
    MessageTooLarge {
        /// The configured maximum, in bytes.
        limit: usize,
    },
    /// The stream ended in the middle of a message.
    Truncated {
        /// How many bytes of the unfinished message had arrived.
        buffered: usize,
    },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::BadGreeting { detail } => write!(f, "bad QMP greeting: {detail}"),
            ProtocolError::NegotiationFailed(e) => {
                write!(f, "capabilities negotiation failed: {e}")
            }
            ProtocolError::InvalidJson { detail } => {
                write!(f, "server sent invalid JSON: {detail}")
            }
            ProtocolError::UnexpectedMessage { detail } => {
                write!(f, "server sent an unexpected message: {detail}")
            }
            ProtocolError::MessageTooLarge { limit } => {
                write!(
                    f,
                    "server sent a message larger than the limit of {limit} bytes"
                )
            }
            ProtocolError::Truncated { buffered } => write!(
                f,
                "connection closed in the middle of a message ({buffered} bytes of it)"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ProtocolError {}

/// Why a connection ended: the last output of a machine, given exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The peer closed the stream between two messages (after `quit`, or
    /// because the process exited).
    PeerClosed,
    /// The peer broke the protocol.
    Protocol(ProtocolError),
    /// [`close`](crate::Client::close) was called.
    Local,
    /// Reading from or writing to the transport failed (the adapter says
    /// how).
    Transport(String),
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::PeerClosed => f.write_str("the peer closed the connection"),
            End::Protocol(e) => e.fmt(f),
            End::Local => f.write_str("the connection was closed locally"),
            End::Transport(detail) => write!(f, "transport error: {detail}"),
        }
    }
}

impl From<FrameError> for ProtocolError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::TooLarge { limit } => ProtocolError::MessageTooLarge { limit },
            FrameError::Truncated { buffered } => ProtocolError::Truncated { buffered },
        }
    }
}

/// How a stream that reached EOF ended: cleanly between messages, or not.
pub(crate) fn end_at_eof(framer: &mut Framer) -> End {
    match framer.finish() {
        Ok(()) => End::PeerClosed,
        Err(e) => End::Protocol(e.into()),
    }
}

#[cfg(feature = "std")]
impl std::error::Error for End {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            End::Protocol(e) => Some(e),
            _ => None,
        }
    }
}
