//! The whole QAPI schema through the generated
//! [`qapi-qmp`](https://docs.rs/qapi-qmp) crate (feature `qapi`, which
//! needs `std`).
//!
//! [`Qapi`] wraps any command or event type of `qapi-qmp` so it works
//! wherever this crate's [`Command`] and [`Event`] do: an adapter's
//! `execute` (or its `execute_qapi` shortcut), [`EventMatcher`](super::EventMatcher),
//! [`crate::Event::decode_as`]. [`decode_event`] decodes any raw event into
//! `qapi-qmp`'s `Event` enum.
//!
//! `qapi-qmp` 0.15 is generated from QEMU 9.1's schema: newer commands,
//! members and enum values are not in it, and its enums are closed, so a
//! value added by a newer QEMU fails to decode there (the raw event and
//! this crate's own types still work).
//!
//! ```
//! use qmp_proto::typed::qapi::{qapi_qmp, Qapi};
//! use qmp_proto::typed::Command;
//!
//! assert_eq!(<Qapi<qapi_qmp::query_status>>::NAME, "query-status");
//! let arguments = serde_json::to_value(Qapi(qapi_qmp::qom_list { path: "/machine".into() })).unwrap();
//! assert_eq!(arguments, serde_json::json!({"path": "/machine"}));
//! ```

use super::{Command, Event};
use crate::message::Event as RawEvent;
use serde::{Deserialize, Serialize};

pub use qapi_qmp;
pub use qapi_spec;

/// A command or event type of `qapi-qmp`, as this crate's [`Command`] or
/// [`Event`]. Serializes and deserializes as the wrapped value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Qapi<T>(pub T);

impl<C: qapi_spec::Command> Command for Qapi<C> {
    const NAME: &'static str = C::NAME;
    const ALLOW_OOB: bool = C::ALLOW_OOB;
    type Returns = C::Ok;
}

impl<E: qapi_spec::Event> Event for Qapi<E> {
    const NAME: &'static str = E::NAME;
}

/// Decodes any event into `qapi-qmp`'s `Event` enum. Fails for events and
/// values newer than its schema. Its timestamps are unsigned: QEMU's `-1`
/// (no clock) becomes 0.
pub fn decode_event(event: &RawEvent) -> Result<qapi_qmp::Event, serde_json::Error> {
    let data = match &event.data {
        Some(data) => data.decode::<serde_json::Value>()?,
        None => serde_json::Value::Object(serde_json::Map::new()),
    };
    serde_json::from_value(serde_json::json!({
        "event": event.name,
        "data": data,
        "timestamp": {
            "seconds": event.timestamp.seconds.max(0),
            "microseconds": event.timestamp.microseconds.max(0),
        },
    }))
}
