//! Checking a command's arguments against a QEMU's own schema before
//! sending it: [`Schema::check_arguments`] and [`Schema::check_call`].
//!
//! QEMU refuses arguments that do not fit its schema with a `GenericError`
//! that names one problem. Checked here, against the schema of the QEMU
//! the command is meant for (`query-qmp-schema`), every problem is found
//! at once, named by its place in the message, before anything is sent:
//!
//! - a member the schema does not have, or a required member missing;
//! - a value of the wrong JSON type, into nested objects, arrays,
//!   alternates (the alternative is chosen by the value's JSON type, as
//!   QEMU does) and unions (the members of the variant the discriminator
//!   selects);
//! - a string that is not one of its enum's values;
//! - and, as warnings only, commands, members and enum values the schema
//!   marks `deprecated` or `unstable`.
//!
//! ```
//! use qmp_proto::typed::check::ProblemKind;
//! use qmp_proto::typed::schema::{Schema, SchemaInfo};
//! use serde_json::json;
//!
//! let entries: Vec<SchemaInfo> = serde_json::from_value(json!([
//!     {"name": "block-resize", "meta-type": "command", "arg-type": "1", "ret-type": "0"},
//!     {"name": "0", "meta-type": "object", "members": []},
//!     {"name": "1", "meta-type": "object", "members": [
//!         {"name": "device", "type": "str", "default": null, "features": ["deprecated"]},
//!         {"name": "node-name", "type": "str", "default": null},
//!         {"name": "size", "type": "int"}]},
//!     {"name": "str", "meta-type": "builtin", "json-type": "string"},
//!     {"name": "int", "meta-type": "builtin", "json-type": "int"}
//! ])).unwrap();
//! let schema = Schema::new(entries);
//!
//! let bad = schema.check_arguments("block-resize", &json!({"node-name": 7, "sise": 1}));
//! assert_eq!(bad.errors.len(), 3);
//! assert_eq!(bad.errors[0].path, "arguments.node-name");
//! assert_eq!(bad.errors[0].expected, "string");
//! assert_eq!(bad.errors[1].path, "arguments.sise");
//! assert_eq!(bad.errors[1].kind, ProblemKind::UnknownMember);
//! assert_eq!(bad.errors[2].path, "arguments.size");
//! assert_eq!(bad.errors[2].kind, ProblemKind::MissingMember);
//!
//! let old = schema.check_arguments("block-resize", &json!({"device": "disk0", "size": 1}));
//! assert!(old.is_ok());
//! assert_eq!(old.warnings[0].path, "arguments.device");
//! assert_eq!(old.warnings[0].kind, ProblemKind::Deprecated);
//! ```
//!
//! What the schema cannot say is not checked: the range of an integer
//! (introspection shows every integer type as `int`), and the device
//! properties `device_add` takes besides `driver`, `bus` and `id` (its
//! arguments are open: QAPI does not generate them).

use super::schema::{Schema, SchemaInfo, SchemaMember, SchemaMetaType};
use crate::error::SendError;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use serde::Serialize;
use serde_json::{Map, Value};

/// Commands whose arguments may have members the schema does not list:
/// `device_add` is `'gen': false` in QAPI, and takes the device's
/// properties next to `driver`, `bus` and `id`.
const OPEN_ARGUMENTS: &[&str] = &["device_add"];

/// How deep the check follows nested values (deeper ones are not checked).
const MAX_DEPTH: usize = 64;

/// The JSON type of a value, as the schema's built-in types name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonType {
    /// `null`.
    Null,
    /// `true` or `false`.
    Boolean,
    /// A number without fraction or exponent that fits 64 bits.
    Int,
    /// Any other number.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl JsonType {
    /// The type of `value`.
    pub fn of(value: &Value) -> Self {
        match value {
            Value::Null => JsonType::Null,
            Value::Bool(_) => JsonType::Boolean,
            Value::Number(n) if n.is_i64() || n.is_u64() => JsonType::Int,
            Value::Number(_) => JsonType::Number,
            Value::String(_) => JsonType::String,
            Value::Array(_) => JsonType::Array,
            Value::Object(_) => JsonType::Object,
        }
    }

    /// Its name in the schema's `json-type` (`int`, `string`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            JsonType::Null => "null",
            JsonType::Boolean => "boolean",
            JsonType::Int => "int",
            JsonType::Number => "number",
            JsonType::String => "string",
            JsonType::Array => "array",
            JsonType::Object => "object",
        }
    }
}

impl fmt::Display for JsonType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong (or, for the last two, worth a warning) at a place in
/// the arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The schema has no such command.
    UnknownCommand,
    /// A member the object does not have.
    UnknownMember,
    /// A required member is missing.
    MissingMember,
    /// The value has another JSON type than the schema's.
    WrongType {
        /// The value's type.
        found: JsonType,
    },
    /// The string is none of its enum's values.
    UnknownEnumValue {
        /// The string.
        value: String,
    },
    /// The command, member or enum value is deprecated: it works today and
    /// is meant to go away (a warning).
    Deprecated,
    /// The command, member or enum value is unstable: experimental or for
    /// debugging, and may change without notice (a warning).
    Unstable,
}

/// One problem: where, what, and what the schema expects there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgumentProblem {
    /// Where in the message: `execute` for the command itself,
    /// `arguments` for the arguments object, `arguments.file.driver` or
    /// `arguments.actions[0].data` for what is inside.
    pub path: String,
    /// What is wrong.
    pub kind: ProblemKind,
    /// What the schema expects there: a JSON type (`string`, `int`,
    /// `array of string`, `object`, `string or object`), an enum's values
    /// (`one of: off, on, unmap`), or for an unknown member the members
    /// there are (`one of: driver, node-name, ...`). Empty when there is
    /// nothing to say (an unknown command).
    pub expected: String,
}

impl ArgumentProblem {
    /// Whether this is only a warning ([`Deprecated`](ProblemKind::Deprecated)
    /// or [`Unstable`](ProblemKind::Unstable)): the command would be
    /// accepted.
    pub fn is_warning(&self) -> bool {
        matches!(self.kind, ProblemKind::Deprecated | ProblemKind::Unstable)
    }
}

impl fmt::Display for ArgumentProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = &self.path;
        let expected = &self.expected;
        match &self.kind {
            ProblemKind::UnknownCommand => write!(f, "{path}: no such command"),
            ProblemKind::UnknownMember => {
                write!(f, "{path}: unknown member (expected {expected})")
            }
            ProblemKind::MissingMember => {
                write!(f, "{path}: required member missing (expected {expected})")
            }
            ProblemKind::WrongType { found } => {
                write!(f, "{path}: {found} where {expected} is expected")
            }
            ProblemKind::UnknownEnumValue { value } => {
                write!(f, "{path}: unknown value \"{value}\" (expected {expected})")
            }
            ProblemKind::Deprecated => write!(f, "{path}: deprecated"),
            ProblemKind::Unstable => write!(f, "{path}: unstable"),
        }
    }
}

/// The result of checking one command's arguments: the errors (any of
/// them makes QEMU refuse the command) and the warnings (deprecated or
/// unstable use, which QEMU accepts).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArgumentProblems {
    /// The command checked.
    pub command: String,
    /// What QEMU would refuse, in the order found.
    pub errors: Vec<ArgumentProblem>,
    /// What QEMU accepts but marks deprecated or unstable.
    pub warnings: Vec<ArgumentProblem>,
}

impl ArgumentProblems {
    /// Whether there are no errors (there may be warnings).
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// The warnings when there are no errors, else the whole report.
    pub fn into_result(self) -> Result<Vec<ArgumentProblem>, ArgumentProblems> {
        match self.is_ok() {
            true => Ok(self.warnings),
            false => Err(self),
        }
    }

    fn push(&mut self, path: &str, kind: ProblemKind, expected: String) {
        let problem = ArgumentProblem {
            path: path.into(),
            kind,
            expected,
        };
        match problem.is_warning() {
            true => self.warnings.push(problem),
            false => self.errors.push(problem),
        }
    }
}

impl fmt::Display for ArgumentProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let command = &self.command;
        match self.errors.len() {
            0 => write!(f, "the arguments of '{command}' fit the schema")?,
            1 => write!(f, "the arguments of '{command}' do not fit the schema:")?,
            n => write!(
                f,
                "the arguments of '{command}' do not fit the schema ({n} problems):"
            )?,
        }
        for (i, problem) in self.errors.iter().enumerate() {
            let sep = if i == 0 { " " } else { "; " };
            write!(f, "{sep}{problem}")?;
        }
        Ok(())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ArgumentProblems {}

impl Schema {
    /// Checks `arguments` (an object, or `null` for none) of command
    /// `command` against this schema. Nothing in the schema is assumed
    /// beyond what it says: a type it names but does not have is not
    /// checked.
    pub fn check_arguments(&self, command: &str, arguments: &Value) -> ArgumentProblems {
        let mut walk = Walk {
            schema: self,
            report: ArgumentProblems {
                command: command.into(),
                ..ArgumentProblems::default()
            },
        };
        let Some(info) = self.command(command) else {
            walk.report
                .push("execute", ProblemKind::UnknownCommand, String::new());
            return walk.report;
        };
        walk.features("execute", &info.features, "");
        let none = Map::new();
        let members = match arguments {
            Value::Null => &none,
            Value::Object(members) => members,
            other => {
                let found = JsonType::of(other);
                walk.report.push(
                    "arguments",
                    ProblemKind::WrongType { found },
                    "object".into(),
                );
                return walk.report;
            }
        };
        let open = OPEN_ARGUMENTS.contains(&command);
        let mut path = String::from("arguments");
        match info.arg_type.as_deref().and_then(|t| self.get(t)) {
            Some(object) if object.meta_type == SchemaMetaType::Object => {
                walk.object(&mut path, object, members, open, 0);
            }
            // No argument type: the command takes none.
            None if !open => {
                for name in members.keys() {
                    let at = format!("arguments.{name}");
                    walk.report
                        .push(&at, ProblemKind::UnknownMember, "no member".into());
                }
            }
            _ => {}
        }
        walk.report
    }

    /// Serializes `arguments` and [checks](Self::check_arguments) them:
    /// the warnings when QEMU would accept them, else
    /// [`SendError::InvalidArguments`] (or the error serializing gives).
    pub fn check_call<A: Serialize + ?Sized>(
        &self,
        command: &str,
        arguments: &A,
    ) -> Result<Vec<ArgumentProblem>, SendError> {
        let value = serde_json::to_value(arguments).map_err(|e| SendError::Serialize {
            detail: e.to_string(),
        })?;
        if !matches!(value, Value::Null | Value::Object(_)) {
            return Err(SendError::ArgumentsNotObject);
        }
        self.check_arguments(command, &value)
            .into_result()
            .map_err(SendError::InvalidArguments)
    }
}

/// One check in progress.
struct Walk<'a> {
    schema: &'a Schema,
    report: ArgumentProblems,
}

impl Walk<'_> {
    /// Warns of the features `deprecated` and `unstable`.
    fn features(&mut self, path: &str, features: &[String], expected: &str) {
        for feature in features {
            let kind = match feature.as_str() {
                "deprecated" => ProblemKind::Deprecated,
                "unstable" => ProblemKind::Unstable,
                _ => continue,
            };
            self.report.push(path, kind, expected.into());
        }
    }

    /// Checks `value` at `path` against type `ty`.
    fn value(&mut self, path: &mut String, ty: &str, value: &Value, depth: usize) {
        let Some(info) = self.schema.get(ty) else {
            return;
        };
        if depth > MAX_DEPTH {
            return;
        }
        let found = JsonType::of(value);
        let fits = match &info.meta_type {
            SchemaMetaType::Builtin => builtin_accepts(info.json_type.as_deref(), found),
            SchemaMetaType::Enum => match value {
                Value::String(name) => {
                    self.enum_value(path, info, name);
                    true
                }
                _ => false,
            },
            SchemaMetaType::Array => match (value, info.element_type.as_deref()) {
                (Value::Array(items), Some(element)) => {
                    for (i, item) in items.iter().enumerate() {
                        let len = path.len();
                        path.push_str(&format!("[{i}]"));
                        self.value(path, element, item, depth + 1);
                        path.truncate(len);
                    }
                    true
                }
                (Value::Array(_), None) => true,
                _ => false,
            },
            SchemaMetaType::Object => match value {
                Value::Object(members) => {
                    self.object(path, info, members, false, depth + 1);
                    true
                }
                _ => false,
            },
            SchemaMetaType::Alternate => match self.alternative(info, found) {
                Some(alternative) => {
                    self.value(path, alternative, value, depth + 1);
                    true
                }
                None => false,
            },
            // Not a value type; nothing to say.
            _ => true,
        };
        if !fits {
            let expected = self.describe(ty, 0);
            self.report
                .push(path, ProblemKind::WrongType { found }, expected);
        }
    }

    /// Checks a string against an enum: one of its values, perhaps
    /// deprecated.
    fn enum_value(&mut self, path: &str, info: &SchemaInfo, name: &str) {
        if !enum_values(info).any(|v| v == name) {
            let value = name.to_string();
            let expected = self.describe(&info.name, 0);
            self.report
                .push(path, ProblemKind::UnknownEnumValue { value }, expected);
            return;
        }
        // QEMU 8.0 and later list the values with their features.
        if let Some(member) = info.members.iter().find(|m| m.name == name) {
            self.features(path, &member.features, "");
        }
    }

    /// Checks an object's members: those of the type, and for a union
    /// those of the variant its discriminator selects.
    fn object(
        &mut self,
        path: &mut String,
        info: &SchemaInfo,
        members: &Map<String, Value>,
        open: bool,
        depth: usize,
    ) {
        let mut known: Vec<&SchemaMember> = info.members.iter().collect();
        // Whether every member it may have is known: not when the
        // discriminator is missing or invalid (its own problem is told).
        let mut variant_known = true;
        if let Some(tag) = info.tag.as_deref() {
            let case = members.get(tag).and_then(Value::as_str);
            let tag_type = info
                .members
                .iter()
                .find(|m| m.name == tag)
                .and_then(|m| self.schema.get(m.kind.as_deref()?));
            match case {
                Some(case) => {
                    let variant = info.variants.iter().find(|v| v.case == case);
                    if let Some(variant) = variant.and_then(|v| self.schema.get(&v.kind)) {
                        known.extend(variant.members.iter());
                    } else {
                        // A case without a variant adds no members, if it
                        // is a value of the discriminator's enum at all.
                        variant_known = tag_type.is_none_or(|t| enum_values(t).any(|v| v == case));
                    }
                }
                None => variant_known = false,
            }
        }
        for (name, value) in members {
            let len = path.len();
            path.push('.');
            path.push_str(name);
            match known.iter().find(|m| m.name == *name) {
                Some(member) => {
                    let ty = member.kind.as_deref().unwrap_or_default();
                    if member
                        .features
                        .iter()
                        .any(|f| f == "deprecated" || f == "unstable")
                    {
                        let expected = self.describe(ty, 0);
                        self.features(path, &member.features, &expected);
                    }
                    self.value(path, ty, value, depth);
                }
                None if open || !variant_known => {}
                None => {
                    let names: Vec<&str> = known.iter().map(|m| m.name.as_str()).collect();
                    let expected = one_of(&names);
                    self.report.push(path, ProblemKind::UnknownMember, expected);
                }
            }
            path.truncate(len);
        }
        for member in known.iter().filter(|m| !m.optional) {
            if !members.contains_key(&member.name) {
                let len = path.len();
                path.push('.');
                path.push_str(&member.name);
                let expected = self.describe(member.kind.as_deref().unwrap_or_default(), 0);
                self.report.push(path, ProblemKind::MissingMember, expected);
                path.truncate(len);
            }
        }
    }

    /// The alternative of `alternate` that takes a value of type `found`.
    fn alternative<'s>(&self, alternate: &'s SchemaInfo, found: JsonType) -> Option<&'s str> {
        let kinds = || {
            alternate
                .members
                .iter()
                .filter_map(|m| m.kind.as_deref())
                .filter_map(|ty| Some((ty, self.schema.get(ty)?)))
        };
        let exact = kinds().find(|(_, info)| match &info.meta_type {
            SchemaMetaType::Builtin => json_type_is(info.json_type.as_deref(), found),
            SchemaMetaType::Enum => found == JsonType::String,
            SchemaMetaType::Array => found == JsonType::Array,
            SchemaMetaType::Object => found == JsonType::Object,
            _ => false,
        });
        exact
            .or_else(|| {
                kinds().find(|(_, info)| {
                    info.meta_type == SchemaMetaType::Builtin
                        && builtin_accepts(info.json_type.as_deref(), found)
                })
            })
            .map(|(ty, _)| ty)
    }

    /// What type `ty` expects, for people: `string`, `array of int`,
    /// `one of: a, b`, `string or object`.
    fn describe(&self, ty: &str, depth: usize) -> String {
        let Some(info) = self.schema.get(ty) else {
            return ty.into();
        };
        match &info.meta_type {
            SchemaMetaType::Builtin => match info.json_type.as_deref() {
                Some("value") | None => "any value".into(),
                Some(json) => json.into(),
            },
            SchemaMetaType::Enum => {
                let values: Vec<&str> = enum_values(info).collect();
                one_of(&values)
            }
            SchemaMetaType::Array if depth < 4 => {
                let element = info.element_type.as_deref().unwrap_or_default();
                format!("array of {}", self.describe(element, depth + 1))
            }
            SchemaMetaType::Array => "array".into(),
            SchemaMetaType::Alternate => {
                let kinds: Vec<&str> = info
                    .members
                    .iter()
                    .filter_map(|m| self.schema.get(m.kind.as_deref()?))
                    .map(|alt| match &alt.meta_type {
                        SchemaMetaType::Builtin => match alt.json_type.as_deref() {
                            Some("value") | None => "any value",
                            Some(json) => json,
                        },
                        SchemaMetaType::Enum => "string",
                        SchemaMetaType::Array => "array",
                        _ => "object",
                    })
                    .collect();
                kinds.join(" or ")
            }
            _ => "object".into(),
        }
    }
}

/// The values of an enum: `values`, or (should a QEMU leave that out) the
/// names of `members`.
fn enum_values(info: &SchemaInfo) -> impl Iterator<Item = &str> {
    let names = match info.values.is_empty() {
        true => &[][..],
        false => &info.values[..],
    };
    let members = match info.values.is_empty() {
        true => &info.members[..],
        false => &[][..],
    };
    names
        .iter()
        .map(String::as_str)
        .chain(members.iter().map(|m| m.name.as_str()))
}

/// Whether a value of type `found` is exactly a built-in `json_type`.
fn json_type_is(json_type: Option<&str>, found: JsonType) -> bool {
    json_type == Some(found.as_str())
}

/// Whether a built-in type of JSON type `json_type` takes a value of type
/// `found` (an integer is a number too; `value` takes anything).
fn builtin_accepts(json_type: Option<&str>, found: JsonType) -> bool {
    match json_type {
        None | Some("value") => true,
        Some("number") => matches!(found, JsonType::Int | JsonType::Number),
        Some(json) => json == found.as_str(),
    }
}

/// `one of: a, b, c`, or `no member` for none.
fn one_of(names: &[&str]) -> String {
    match names {
        [] => "no member".into(),
        names => format!("one of: {}", names.join(", ")),
    }
}
