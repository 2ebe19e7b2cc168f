//! Every typed command and event of this crate, with a way to decode each
//! one's result or data: for tests that check the types against a QEMU's
//! schema (the workspace's `schema_drift` test). Not part of the API.
//!
//! The lists are made by the macros that declare the [`Command`] and
//! [`Event`] impls, so a type cannot be declared and left out.

use super::{Command, Event};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;
use serde::de::value::{Error as ProbeError, StrDeserializer};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde_json::Value;

/// A typed command.
#[derive(Debug, Clone, Copy)]
pub struct CommandEntry {
    /// Its wire name.
    pub name: &'static str,
    /// The Rust type, as written in its declaration.
    pub type_name: &'static str,
    /// Decodes a `return` value into the command's [`Command::Returns`],
    /// dropping the result.
    pub decode_returns: fn(Value) -> Result<(), serde_json::Error>,
    /// The structs [`Command::Returns`] reads (see [`fields`]).
    pub returns_fields: fn() -> Probed,
}

impl CommandEntry {
    pub(crate) const fn of<C: Command>(type_name: &'static str) -> Self {
        CommandEntry {
            name: C::NAME,
            type_name,
            decode_returns: decode::<C::Returns>,
            returns_fields: fields::<C::Returns>,
        }
    }
}

/// A typed event.
#[derive(Debug, Clone, Copy)]
pub struct EventEntry {
    /// Its wire name.
    pub name: &'static str,
    /// The Rust type, as written in its declaration.
    pub type_name: &'static str,
    /// Decodes a `data` value into the event's type, dropping the result.
    pub decode_data: fn(Value) -> Result<(), serde_json::Error>,
    /// The structs the event's type reads (see [`fields`]).
    pub data_fields: fn() -> Probed,
}

impl EventEntry {
    pub(crate) const fn of<E: Event>(type_name: &'static str) -> Self {
        EventEntry {
            name: E::NAME,
            type_name,
            decode_data: decode::<E>,
            data_fields: fields::<E>,
        }
    }
}

fn decode<T: DeserializeOwned>(value: Value) -> Result<(), serde_json::Error> {
    serde_json::from_value::<T>(value).map(drop)
}

/// A struct a type reads: where, and the members it looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// Where it is from the type's top: member names, and `[]` for the
    /// element of an array (empty for the type itself).
    pub path: Vec<&'static str>,
    /// The members it reads, as named on the wire.
    pub members: &'static [&'static str],
}

/// What [`fields`] found: the structs, and why it stopped early if it did
/// (a type that reads a map or an enum, e.g. with `#[serde(flatten)]`,
/// shows no members).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Probed {
    /// The structs found, outermost first.
    pub structs: Vec<Fields>,
    /// Why the walk stopped before the end.
    pub stopped: Option<String>,
}

/// The structs `T` reads, found by deserializing `T` from a source that
/// has every member a struct asks for (and each `Option` filled, down to
/// a depth): for comparing a type's member names with a schema without a
/// sample value.
pub fn fields<T: DeserializeOwned>() -> Probed {
    let found = RefCell::new(Vec::new());
    let probe = Probe {
        path: Vec::new(),
        depth: 0,
        found: &found,
    };
    let stopped = T::deserialize(probe).err().map(|e| e.to_string());
    Probed {
        structs: found.into_inner(),
        stopped,
    }
}

/// How many `Option`s deep the probe fills in (recursive types have them).
const PROBE_DEPTH: usize = 8;

/// A deserializer that gives every struct all its members, each with a
/// plain value of the type asked for, and records the structs.
struct Probe<'a> {
    path: Vec<&'static str>,
    depth: usize,
    found: &'a RefCell<Vec<Fields>>,
}

impl<'a> Probe<'a> {
    fn at(&self, step: &'static str) -> Probe<'a> {
        let mut path = self.path.clone();
        path.push(step);
        Probe {
            path,
            depth: self.depth + 1,
            found: self.found,
        }
    }
}

macro_rules! probe_with {
    ($($method:ident => $visit:ident($value:expr);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
                visitor.$visit($value)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = ProbeError;

    probe_with! {
        deserialize_bool => visit_bool(false);
        deserialize_i8 => visit_i64(0);
        deserialize_i16 => visit_i64(0);
        deserialize_i32 => visit_i64(0);
        deserialize_i64 => visit_i64(0);
        deserialize_u8 => visit_u64(0);
        deserialize_u16 => visit_u64(0);
        deserialize_u32 => visit_u64(0);
        deserialize_u64 => visit_u64(0);
        deserialize_f32 => visit_f64(0.0);
        deserialize_f64 => visit_f64(0.0);
        deserialize_char => visit_char('x');
        deserialize_str => visit_str("x");
        deserialize_string => visit_str("x");
        deserialize_identifier => visit_str("x");
        deserialize_bytes => visit_bytes(b"");
        deserialize_byte_buf => visit_bytes(b"");
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_unit()
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_unit()
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        match self.depth < PROBE_DEPTH {
            true => visitor.visit_some(self),
            false => visitor.visit_none(),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_seq(OneElement(Some(self.at("[]"))))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_map(Members {
            probe: self,
            members: &[],
            next: 0,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        members: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.found.borrow_mut().push(Fields {
            path: self.path.clone(),
            members,
        });
        visitor.visit_map(Members {
            probe: self,
            members,
            next: 0,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, ProbeError> {
        Err(de::Error::custom(alloc::format!("enum {name} not probed")))
    }
}

/// A sequence of one element.
struct OneElement<'a>(Option<Probe<'a>>);

impl<'de> de::SeqAccess<'de> for OneElement<'_> {
    type Error = ProbeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ProbeError> {
        self.0
            .take()
            .map(|probe| seed.deserialize(probe))
            .transpose()
    }
}

/// A struct's members, each once.
struct Members<'a> {
    probe: Probe<'a>,
    members: &'static [&'static str],
    next: usize,
}

impl<'de> de::MapAccess<'de> for Members<'_> {
    type Error = ProbeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ProbeError> {
        let Some(member) = self.members.get(self.next) else {
            return Ok(None);
        };
        let key: StrDeserializer<'_, ProbeError> = member.into_deserializer();
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ProbeError> {
        let member = self.members[self.next];
        self.next += 1;
        seed.deserialize(self.probe.at(member))
    }
}

/// The QMP commands of [`commands`](super::commands) and
/// [`transaction`](super::transaction).
pub fn commands() -> Vec<CommandEntry> {
    let mut all = Vec::from(super::commands::REGISTERED);
    all.extend_from_slice(super::transaction::REGISTERED);
    all
}

/// The QMP events of [`events`](super::events).
pub fn events() -> &'static [EventEntry] {
    super::events::REGISTERED
}

/// The guest agent commands of [`agent`](super::agent) (a schema of their
/// own, not QMP's).
pub fn agent_commands() -> &'static [CommandEntry] {
    super::agent::REGISTERED
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;

    #[test]
    fn names_are_unique_and_listed() {
        let commands = commands();
        let names: BTreeSet<_> = commands.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), commands.len());
        assert!(names.contains("query-status") && names.contains("transaction"));
        let events: BTreeSet<_> = events().iter().map(|e| e.name).collect();
        assert_eq!(events.len(), super::events().len());
        assert!(events.contains("JOB_STATUS_CHANGE"));
        let agent: BTreeSet<_> = agent_commands().iter().map(|c| c.name).collect();
        assert_eq!(agent.len(), agent_commands().len());
        assert!(agent.contains("guest-ping"));
    }

    #[test]
    fn fields_are_found_without_data() {
        let status = commands()
            .into_iter()
            .find(|c| c.name == "query-status")
            .unwrap();
        let probed = (status.returns_fields)();
        assert_eq!(probed.stopped, None);
        assert_eq!(probed.structs.len(), 1);
        assert_eq!(probed.structs[0].path, [] as [&str; 0]);
        assert_eq!(probed.structs[0].members, ["running", "status"]);

        let nodes = commands()
            .into_iter()
            .find(|c| c.name == "query-named-block-nodes")
            .unwrap();
        let probed = (nodes.returns_fields)();
        assert_eq!(probed.stopped, None);
        let image = probed
            .structs
            .iter()
            .find(|f| f.path == ["[]", "image"])
            .unwrap();
        assert!(image.members.contains(&"virtual-size"));
        let bitmaps = ["[]", "dirty-bitmaps", "[]"];
        assert!(probed.structs.iter().any(|f| f.path == bitmaps));
        // Recursion stops.
        assert!(probed.structs.iter().any(|f| f.path.len() > 4));
    }

    #[test]
    fn decoders_decode_the_result_type() {
        let status = commands()
            .into_iter()
            .find(|c| c.name == "query-status")
            .unwrap();
        let good = serde_json::json!({"running": true, "status": "running"});
        assert!((status.decode_returns)(good).is_ok());
        assert!((status.decode_returns)(serde_json::json!({"running": true})).is_err());
        let stop = events().iter().find(|e| e.name == "STOP").unwrap();
        assert!((stop.decode_data)(serde_json::json!({})).is_ok());
    }
}
