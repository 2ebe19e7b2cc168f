//! [`Json`]: a JSON value that keeps the order of object members.
//!
//! `serde_json::Value` sorts object members by key unless its
//! `preserve_order` feature is on, and turning that feature on here would
//! change `Value` for every crate built alongside this one. The shell wants
//! replies printed in QEMU's order and arguments sent in the order they were
//! typed, so it carries its own small value type. It (de)serializes through
//! serde, so `serde_json`'s printers and parser do all the text work.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Number;
use std::fmt;

/// A JSON value whose objects keep their members in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Number(Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, members in order. Keys are unique when the value was
    /// parsed (a repeated key is a parse error).
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses `text` as exactly one JSON value.
    pub fn parse(text: &str) -> Result<Json, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The value as compact JSON text.
    pub fn to_compact(&self) -> String {
        // Serializing a tree of strings, numbers and containers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The value as indented JSON text (serde_json's pretty printer).
    pub fn to_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl fmt::Display for Json {
    /// Compact JSON text; `{:#}` gives the indented form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            f.write_str(&self.to_pretty())
        } else {
            f.write_str(&self.to_compact())
        }
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Number(n) => n.serialize(serializer),
            Json::String(s) => serializer.serialize_str(s),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(members) => {
                let mut map = serializer.serialize_map(Some(members.len()))?;
                for (key, value) in members {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        Json::deserialize(d)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Json, E> {
        Number::from_f64(n)
            .map(Json::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E>(self, s: &str) -> Result<Json, E> {
        Ok(Json::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Json, E> {
        Ok(Json::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members: Vec<(String, Json)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format_args!(
                    "the key {key:?} appears twice in one object"
                )));
            }
            let value = map.next_value()?;
            members.push((key, value));
        }
        Ok(Json::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_member_order() {
        let text = r#"{"zeta":1,"alpha":{"y":true,"b":null},"mid":[1,"x",2.5]}"#;
        let value = Json::parse(text).unwrap();
        assert_eq!(value.to_compact(), text);
    }

    #[test]
    fn pretty_is_serde_json_pretty() {
        let value = Json::parse(r#"{"b":1,"a":[true]}"#).unwrap();
        assert_eq!(
            value.to_pretty(),
            "{\n  \"b\": 1,\n  \"a\": [\n    true\n  ]\n}"
        );
        assert_eq!(format!("{value:#}"), value.to_pretty());
        assert_eq!(format!("{value}"), r#"{"b":1,"a":[true]}"#);
    }

    #[test]
    fn numbers_round_trip() {
        for text in [
            "0",
            "-1",
            "18446744073709551615",
            "-9223372036854775808",
            "1.5",
            "1e300",
        ] {
            let value = Json::parse(text).unwrap();
            assert!(matches!(value, Json::Number(_)), "{text}");
            let again = Json::parse(&value.to_compact()).unwrap();
            assert_eq!(value, again, "{text}");
        }
    }

    #[test]
    fn repeated_key_is_an_error() {
        let err = Json::parse(r#"{"a":1,"a":2}"#).unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
    }

    #[test]
    fn get_finds_members() {
        let value = Json::parse(r#"{"a":1,"b":"x"}"#).unwrap();
        assert_eq!(value.get("b"), Some(&Json::String("x".into())));
        assert_eq!(value.get("c"), None);
        assert_eq!(Json::Null.get("a"), None);
    }

    #[test]
    fn invalid_text_is_an_error() {
        for text in ["", "{", "[1,]", "nul", "1 2", "'x'"] {
            assert!(Json::parse(text).is_err(), "{text:?}");
        }
    }
}
