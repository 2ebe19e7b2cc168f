//! Raw JSON payloads, kept as received until the caller asks for a type.

use alloc::string::String;
use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;
use core::ops::Range;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

/// A JSON value as it appeared on the wire (or as it was serialized).
///
/// Payloads of replies and events stay in this form until decoded, so a
/// caller that only forwards them, or only wants one field, pays nothing for
/// the rest. It shares the received buffer: no copy is made when a message is
/// split into its parts.
///
/// ```
/// use qmp_proto::RawJson;
///
/// let raw = RawJson::from_value(&serde_json::json!({"status": "running"})).unwrap();
/// #[derive(serde::Deserialize)]
/// struct Status { status: String }
/// assert_eq!(raw.decode::<Status>().unwrap().status, "running");
/// assert_eq!(raw.as_str(), r#"{"status":"running"}"#);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RawJson(Bytes);

impl RawJson {
    /// Wraps bytes known to hold exactly one valid JSON value.
    pub(crate) fn from_trusted(bytes: Bytes) -> Self {
        RawJson(bytes)
    }

    /// Validates `text` as one JSON value and wraps it.
    pub fn from_text(text: impl Into<String>) -> Result<Self, serde_json::Error> {
        let text: String = text.into();
        serde_json::from_str::<&RawValue>(&text)?;
        Ok(RawJson(Bytes::from(text.trim().as_bytes().to_vec())))
    }

    /// Serializes `value` to JSON.
    pub fn from_value<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_vec(value).map(|v| RawJson(Bytes::from(v)))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        // Only ever built from text serde_json validated as UTF-8 JSON.
        core::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The JSON text as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The JSON text as a shared buffer.
    pub fn to_bytes(&self) -> Bytes {
        self.0.clone()
    }

    /// Decodes the value into `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.0)
    }

    /// The value as an unsigned integer, if it is one (how request ids are
    /// compared without decoding).
    pub fn as_u64(&self) -> Option<u64> {
        let s = self.as_str();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawJson({})", self.as_str())
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue =
            serde_json::from_str(self.as_str()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for RawJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw: alloc::boxed::Box<RawValue> = serde::Deserialize::deserialize(deserializer)?;
        Ok(RawJson(Bytes::from(String::from(raw.get()).into_bytes())))
    }
}

/// Where `part` lies inside `whole`; `part` must be borrowed from `whole`
/// (which is how serde_json hands out `&RawValue`s of a slice it parses).
pub(crate) fn range_in(whole: &[u8], part: &str) -> Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize);
    let start = start.min(whole.len());
    let end = (start + part.len()).min(whole.len());
    start..end
}

/// A payload located in a parsed slice, turned into [`RawJson`] once the
/// slice has become a shared buffer.
pub(crate) type Span = Range<usize>;

pub(crate) fn attach(frame: &Bytes, span: &Span) -> RawJson {
    RawJson::from_trusted(frame.slice(span.clone()))
}

/// [`attach`] for the last payload of a frame: the frame itself becomes it,
/// without touching the shared buffer's count.
pub(crate) fn attach_last(mut frame: Bytes, span: &Span) -> RawJson {
    use bytes::Buf;
    frame.truncate(span.end);
    frame.advance(span.start.min(frame.len()));
    RawJson::from_trusted(frame)
}

/// Appends `s` as a JSON string literal.
pub(crate) fn push_str_literal(out: &mut Vec<u8>, s: &str) {
    // Serializing a str cannot fail.
    if let Ok(text) = serde_json::to_vec(s) {
        out.extend_from_slice(&text);
    }
}
