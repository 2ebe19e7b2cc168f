//! Typed commands and events: QEMU's QAPI schema as Rust types, for the
//! commands and events most programs use, without code generation.
//!
//! - [`Command`]: a command type is its own arguments (it serializes to the
//!   `arguments` object) and names its return type. The adapters run one
//!   with `Qmp::execute(&command)`; a custom loop issues it with
//!   [`Client::execute_command`] and decodes the reply with
//!   [`Reply::decode_as`].
//! - [`Event`]: an event type is its own `data` member. Decode one from a
//!   raw [`Event`](crate::Event) with [`decode_as`](crate::Event::decode_as)
//!   or [`Event::from_event`]; wait for or look up one with an
//!   [`EventMatcher`] (e.g. [`events::DeviceDeleted::matching_device`]).
//! - [`commands`] and [`events`]: the types themselves, with the shared
//!   enums and structs in [`types`]; [`transaction`] for atomic groups of
//!   actions and [`schema`] for the connected QEMU's own schema
//!   (`query-qmp-schema`), which says what it accepts; [`check`] checks a
//!   command's arguments against it before sending.
//! - [`agent`]: the core commands of the QEMU guest agent (QGA), a protocol
//!   of its own with the same JSON, whose commands run in the guest.
//!
//! # Newer and older QEMUs
//!
//! Every type ignores members it does not know, so a newer QEMU's additions
//! decode. Enums are open: a value this crate does not know decodes as
//! `Unknown(String)`, keeping it (see [`types::JobStatus`]). Members QEMU
//! added after 2.x are `Option`s. Events this crate has no type for still
//! arrive raw, and a typed decode that fails is an error for its caller only,
//! never for the connection.
//!
//! With the `qapi` feature, the `qapi` module runs any command and decodes any event
//! of the generated [`qapi-qmp`](https://docs.rs/qapi-qmp) crate, for the
//! parts of the schema this module does not cover.
//!
//! # Example, with the in-memory mock server
//!
//! ```
//! use qmp_proto::typed::commands::{QueryStatus, Stop, StatusInfo};
//! use qmp_proto::typed::events::Stop as StopEvent;
//! use qmp_proto::typed::types::RunState;
//! use qmp_proto::typed::{Command, Empty};
//! use qmp_proto::{Client, ClientOutput, Server, ServerConfig, ServerOutput, Timestamp};
//!
//! let mut client = Client::default();
//! let mut server = Server::new(ServerConfig::default());
//! let stop = client.execute_command(&Stop).unwrap();
//! let status = client.execute_command(&QueryStatus).unwrap();
//! let (mut stopped, mut state) = (None, None);
//! while state.is_none() {
//!     while let Some(bytes) = server.poll_transmit() {
//!         client.receive(&bytes);
//!     }
//!     while let Some(output) = client.poll_output() {
//!         match output {
//!             ClientOutput::Reply(reply) if reply.id == stop => {
//!                 let _: Empty = reply.decode_as::<Stop>().unwrap();
//!             }
//!             ClientOutput::Reply(reply) if reply.id == status => {
//!                 state = Some(reply.decode_as::<QueryStatus>().unwrap());
//!             }
//!             ClientOutput::Event(event) => stopped = event.decode_as::<StopEvent>(),
//!             _ => {}
//!         }
//!     }
//!     while let Some(bytes) = client.poll_transmit() {
//!         server.receive(&bytes);
//!     }
//!     // The mock: `stop` emits STOP, `query-status` says "paused".
//!     while let Some(output) = server.poll_output() {
//!         let ServerOutput::Command(command) = output else { continue };
//!         if command.name == Stop::NAME {
//!             server.send_typed_event(&StopEvent {}, Timestamp::default()).unwrap();
//!             server.reply_ok(&command, &Empty {}).unwrap();
//!         } else {
//!             let paused = StatusInfo { running: false, status: RunState::Paused };
//!             server.reply_ok(&command, &paused).unwrap();
//!         }
//!     }
//! }
//! assert!(stopped.unwrap().is_ok());
//! assert_eq!(state.unwrap().status, RunState::Paused);
//! ```

pub(crate) mod open_enum;

pub mod agent;
pub mod check;
pub mod commands;
pub mod events;
mod matcher;
#[cfg(feature = "qapi")]
pub mod qapi;
#[doc(hidden)]
pub mod registry;
pub mod schema;
pub mod transaction;
pub mod types;

pub use matcher::{EventMatcher, TypedEvent};

use crate::client::{Client, Reply, RequestId};
use crate::error::SendError;
use crate::message::{Event as RawEvent, QmpError, Timestamp};
use crate::server::Server;
use core::fmt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A QMP command with typed arguments and result.
///
/// The implementing type is the command's arguments: it must serialize to a
/// JSON object, or to `null` (a unit struct) when the command takes none.
///
/// ```
/// use qmp_proto::typed::Command;
/// use qmp_proto::typed::commands::QueryName;
///
/// assert_eq!(QueryName::NAME, "query-name");
/// ```
pub trait Command: Serialize {
    /// The command's wire name, e.g. `"query-status"`.
    const NAME: &'static str;
    /// Whether QEMU accepts the command out of band (`exec-oob`).
    const ALLOW_OOB: bool = false;
    /// What its `return` member decodes into ([`Empty`] for `{}`).
    type Returns: DeserializeOwned;
}

/// A QMP event with a typed `data` member.
///
/// The implementing type is the event's data. An event without data
/// decodes as the empty object, so data-less events are empty structs.
pub trait Event: DeserializeOwned {
    /// The event's wire name, e.g. `"JOB_STATUS_CHANGE"`.
    const NAME: &'static str;

    /// Decodes `event` as this type: `None` when it has another name, an
    /// error when its data does not fit.
    fn from_event(event: &RawEvent) -> Option<Result<Self, serde_json::Error>> {
        (event.name == Self::NAME).then(|| event.decode())
    }

    /// A matcher for every event of this type.
    fn matcher() -> EventMatcher<Self>
    where
        Self: 'static,
    {
        EventMatcher::any()
    }
}

/// The `{}` that most commands return (and the data of events that have
/// none). Members a newer QEMU may add are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Empty {}

/// Why a reply did not give the typed result of its command.
#[derive(Debug)]
pub enum ReplyError {
    /// The server answered with an error.
    Qmp(QmpError),
    /// The `return` value did not decode into the command's result type.
    Decode(serde_json::Error),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Qmp(e) => write!(f, "QMP error: {e}"),
            ReplyError::Decode(e) => write!(f, "cannot decode the reply: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ReplyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReplyError::Qmp(e) => Some(e),
            ReplyError::Decode(e) => Some(e),
        }
    }
}

impl Client {
    /// Issues a typed command (in band); see [`execute`](Client::execute).
    /// Decode its reply with [`Reply::decode_as`].
    pub fn execute_command<C: Command + ?Sized>(
        &mut self,
        command: &C,
    ) -> Result<RequestId, SendError> {
        self.execute(C::NAME, command)
    }

    /// Issues a typed command out of band; see
    /// [`execute_oob`](Client::execute_oob). QEMU refuses commands whose
    /// [`Command::ALLOW_OOB`] is false.
    pub fn execute_command_oob<C: Command + ?Sized>(
        &mut self,
        command: &C,
    ) -> Result<RequestId, SendError> {
        self.execute_oob(C::NAME, command)
    }
}

impl Reply {
    /// The typed result of command `C`, whose reply this is.
    pub fn decode_as<C: Command + ?Sized>(&self) -> Result<C::Returns, ReplyError> {
        match &self.result {
            Ok(raw) => raw.decode().map_err(ReplyError::Decode),
            Err(e) => Err(ReplyError::Qmp(e.clone())),
        }
    }
}

impl RawEvent {
    /// Decodes this event as `E`: `None` when it is another event, an error
    /// when its data does not fit `E` (the event is still valid as it is).
    pub fn decode_as<E: Event>(&self) -> Option<Result<E, serde_json::Error>> {
        E::from_event(self)
    }
}

impl crate::message::Command {
    /// The arguments of this received command as `C`, for mock servers:
    /// `None` when it is another command.
    pub fn decode_as<C: Command + DeserializeOwned>(&self) -> Option<Result<C, serde_json::Error>> {
        (self.name == C::NAME).then(|| self.decode_arguments())
    }
}

impl Server {
    /// Sends a typed event (see [`send_event`](Server::send_event)).
    pub fn send_typed_event<E: Event + Serialize>(
        &mut self,
        event: &E,
        timestamp: Timestamp,
    ) -> Result<bool, serde_json::Error> {
        self.send_event(E::NAME, event, timestamp)
    }
}

/// Declares the [`Command`] impls of command types: name and result, and
/// lists them in the module's `REGISTERED`, which [`registry`] gathers (an
/// invocation whose list is not gathered is dead code, which the lints
/// refuse: the list cannot be forgotten).
macro_rules! impl_command {
    ($($ty:ty => $name:literal, $returns:ty;)*) => {
        $(
            impl $crate::typed::Command for $ty {
                const NAME: &'static str = $name;
                type Returns = $returns;
            }
        )*

        /// The commands declared in this module, for
        /// [`registry`](crate::typed::registry).
        pub(crate) const REGISTERED: &[$crate::typed::registry::CommandEntry] = &[
            $( $crate::typed::registry::CommandEntry::of::<$ty>(stringify!($ty)), )*
        ];
    };
}
pub(crate) use impl_command;

/// Commands without arguments serialize to `null` (no `arguments`
/// member) and, for mock servers, accept any arguments object.
macro_rules! unit_arguments {
    ($($ty:ident),*) => {
        $(
            impl<'de> Deserialize<'de> for $ty {
                fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    serde::de::IgnoredAny::deserialize(d)?;
                    Ok($ty)
                }
            }
        )*
    };
}
pub(crate) use unit_arguments;

/// Declares the [`Event`] impls of event types, and lists them in the
/// module's `REGISTERED` (as [`impl_command!`] does).
macro_rules! impl_event {
    ($($ty:ty => $name:literal;)*) => {
        $(
            impl $crate::typed::Event for $ty {
                const NAME: &'static str = $name;
            }
        )*

        /// The events declared in this module, for
        /// [`registry`](crate::typed::registry).
        pub(crate) const REGISTERED: &[$crate::typed::registry::EventEntry] = &[
            $( $crate::typed::registry::EventEntry::of::<$ty>(stringify!($ty)), )*
        ];
    };
}
pub(crate) use impl_event;
