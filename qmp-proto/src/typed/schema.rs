//! The connected QEMU's own schema: what `query-qmp-schema` returns, and
//! [`Schema`], an index of it that answers what this QEMU accepts.
//!
//! The schema is the truth about a QEMU binary: which commands and events
//! it has, which members they take, which actions `transaction` accepts.
//! Lists written into a client go stale (go-qmp's list of transaction
//! actions did); asking the schema does not.
//!
//! Introspection hides the names of QAPI types behind numbers (`"175"`),
//! so the walk goes from a command's name through its argument types.
//!
//! ```
//! use qmp_proto::typed::schema::{Schema, SchemaInfo};
//!
//! let entries: Vec<SchemaInfo> = serde_json::from_str(r#"[
//!     {"name": "transaction", "meta-type": "command", "arg-type": "1", "ret-type": "0"},
//!     {"name": "0", "meta-type": "object", "members": []},
//!     {"name": "1", "meta-type": "object", "members": [{"name": "actions", "type": "[2]"}]},
//!     {"name": "[2]", "meta-type": "array", "element-type": "2"},
//!     {"name": "2", "meta-type": "object", "tag": "type",
//!      "members": [{"name": "type", "type": "3"}],
//!      "variants": [{"case": "abort", "type": "0"}]},
//!     {"name": "3", "meta-type": "enum", "values": ["abort"]}
//! ]"#).unwrap();
//! let schema = Schema::new(entries);
//! assert!(schema.has_command("transaction"));
//! assert_eq!(schema.transaction_actions(), ["abort"]);
//! ```

use super::open_enum::open_enum;
use super::transaction::Transaction;
use crate::error::SendError;
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde::{Deserialize, Deserializer, Serialize};

open_enum! {
    /// What a schema entry describes (QAPI `SchemaMetaType`).
    pub enum SchemaMetaType {
        /// A built-in type (`str`, `int`, ...).
        Builtin = "builtin",
        /// An enumeration.
        Enum = "enum",
        /// An array of another type.
        Array = "array",
        /// An object (a struct, or a union with a tag and variants).
        Object = "object",
        /// One of several types, told apart by their JSON type.
        Alternate = "alternate",
        /// A command.
        Command = "command",
        /// An event.
        Event = "event",
    }
}

/// One entry of the schema (QAPI `SchemaInfo`). Its members depend on
/// [`meta_type`](Self::meta_type); those of the other kinds are empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SchemaInfo {
    /// The entity's name: a command or event name, a built-in type name,
    /// or an opaque name for any other type.
    pub name: String,
    /// What it is.
    pub meta_type: SchemaMetaType,
    /// Its features, e.g. `deprecated` or `unstable`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// Commands and events: the type of the arguments (data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arg_type: Option<String>,
    /// Commands: the type of the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret_type: Option<String>,
    /// Commands: whether it may be run out of band.
    #[serde(default, skip_serializing_if = "core::ops::Not::not")]
    pub allow_oob: bool,
    /// Objects: their members; enums: their values, with features;
    /// alternates: the alternatives (with a type and no name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<SchemaMember>,
    /// Unions: the member whose value selects the variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Unions: the members each tag value adds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<SchemaVariant>,
    /// Enums: the values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Arrays: the element type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element_type: Option<String>,
    /// Built-in types: the JSON type (`string`, `int`, `value`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_type: Option<String>,
}

/// A member of an object, enum or alternate in the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaMember {
    /// The member's name (empty for an alternative of an alternate).
    #[serde(default)]
    pub name: String,
    /// The member's type (absent for enum values).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Whether the member may be left out (the schema marks that with a
    /// `default` member, always `null` today).
    #[serde(
        rename = "default",
        default,
        deserialize_with = "present",
        skip_serializing_if = "core::ops::Not::not",
        serialize_with = "null_default"
    )]
    pub optional: bool,
    /// Its features.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

/// A variant of a union in the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaVariant {
    /// The tag value that selects it.
    pub case: String,
    /// The type whose members it adds.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A member that is there, whatever its value, is `true`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d)?;
    Ok(true)
}

fn null_default<S: serde::Serializer>(_: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_unit()
}

/// The schema of one QEMU, indexed by name. Build it from the result of
/// [`QueryQmpSchema`](super::commands::QueryQmpSchema); the adapters do
/// that once per connection (`Qmp::schema`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schema {
    entries: BTreeMap<String, SchemaInfo>,
}

impl Schema {
    /// Indexes the entries of a schema.
    pub fn new(entries: Vec<SchemaInfo>) -> Self {
        Schema {
            entries: entries.into_iter().map(|e| (e.name.clone(), e)).collect(),
        }
    }

    /// How many entries it has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Option<&SchemaInfo> {
        self.entries.get(name)
    }

    fn of_kind<'a>(&'a self, kind: &'a SchemaMetaType) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .values()
            .filter(move |e| &e.meta_type == kind)
            .map(|e| e.name.as_str())
    }

    /// The names of the commands, sorted.
    pub fn commands(&self) -> impl Iterator<Item = &str> + '_ {
        self.of_kind(&SchemaMetaType::Command)
    }

    /// The names of the events, sorted.
    pub fn events(&self) -> impl Iterator<Item = &str> + '_ {
        self.of_kind(&SchemaMetaType::Event)
    }

    /// The command named `name`.
    pub fn command(&self, name: &str) -> Option<&SchemaInfo> {
        self.get(name)
            .filter(|e| e.meta_type == SchemaMetaType::Command)
    }

    /// Whether this QEMU has command `name`.
    pub fn has_command(&self, name: &str) -> bool {
        self.command(name).is_some()
    }

    /// Whether this QEMU has event `name`.
    pub fn has_event(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|e| e.meta_type == SchemaMetaType::Event)
    }

    /// The members of command `name`'s arguments, or `None` when there is
    /// no such command.
    pub fn command_arguments(&self, name: &str) -> Option<&[SchemaMember]> {
        let arguments = self.get(self.command(name)?.arg_type.as_deref()?)?;
        Some(&arguments.members)
    }

    /// The action types the `transaction` command accepts (the cases of its
    /// `TransactionAction` union), sorted; empty when it has no
    /// `transaction`. go-qmp's `AllowedTransactionActions`, from the QEMU
    /// in use.
    pub fn transaction_actions(&self) -> Vec<&str> {
        let union = self
            .command_arguments("transaction")
            .and_then(|members| members.iter().find(|m| m.name == "actions"))
            .and_then(|actions| self.get(actions.kind.as_deref()?))
            .and_then(|array| self.get(array.element_type.as_deref()?));
        let mut cases: Vec<&str> = union
            .map(|u| u.variants.iter().map(|v| v.case.as_str()).collect())
            .unwrap_or_default();
        cases.sort_unstable();
        cases.dedup();
        cases
    }

    /// Checks that this QEMU accepts every action of `transaction`: the
    /// first it does not is [`SendError::UnsupportedAction`], and the
    /// transaction should not be sent.
    pub fn check_transaction(&self, transaction: &Transaction) -> Result<(), SendError> {
        let accepted = self.transaction_actions();
        match transaction
            .actions
            .iter()
            .find(|action| !accepted.contains(&action.kind.as_str()))
        {
            Some(refused) => Err(SendError::UnsupportedAction {
                action: refused.kind.to_string(),
            }),
            None => Ok(()),
        }
    }
}

impl From<Vec<SchemaInfo>> for Schema {
    fn from(entries: Vec<SchemaInfo>) -> Self {
        Schema::new(entries)
    }
}
