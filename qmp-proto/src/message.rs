//! The values QMP exchanges: greeting, replies, events and errors.

use crate::framing::Prefix;
use crate::json::{attach, attach_last, range_in, RawJson, Span};
use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use core::fmt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

mod fast;

/// The version triple inside [`Version`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Deserialize, Serialize,
)]
pub struct VersionTriple {
    /// Major version, e.g. 10.
    pub major: u64,
    /// Minor version, e.g. 0.
    pub minor: u64,
    /// Micro version, e.g. 2.
    pub micro: u64,
}

impl fmt::Display for VersionTriple {
    /// `major.minor.micro`, e.g. `10.0.2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// The server's version, as announced in the greeting (and returned by
/// `query-version`).
///
/// QEMU's is `{"qemu": {"micro": 2, "minor": 0, "major": 10}, "package":
/// "..."}`, but other QMP servers shape theirs differently: StratoVirt's is
/// `{"StratoVirt": {"micro": 1, "minor": 0, "major": 2}, "package":
/// "StratoVirt-2.1.0"}`. So any JSON object is kept as it came
/// ([`raw`](Self::raw)), and what can be read from it is read once, when it
/// arrives: QEMU's numbers ([`qemu`](Self::qemu), `None` for a server that is
/// not QEMU), the server's name and numbers whatever the server
/// ([`product`](Self::product)) and the package string
/// ([`package`](Self::package)). A version that is not an object is refused
/// (a greeting with one is a [`BadGreeting`](crate::ProtocolError::BadGreeting)).
///
/// The fields are private, so the numbers always say what the object says;
/// build one with [`Version::new`] (QEMU's shape) or [`Version::from_raw`]
/// (any object).
///
/// Serialized, it is the object as received, less the whitespace between
/// its tokens: members in their order, numbers and strings spelt as they
/// were. Two versions are equal when those texts are, so a greeting read
/// from `pretty=on` output equals the same greeting read from plain output.
///
/// ```
/// use qmp_proto::{RawJson, Version, VersionTriple};
///
/// let qemu = Version::new(VersionTriple { major: 10, minor: 0, micro: 2 }, "Debian");
/// assert_eq!(qemu.qemu().map(|v| v.major), Some(10));
/// assert_eq!(qemu.to_string(), "10.0.2 (Debian)");
///
/// let text = r#"{"StratoVirt": {"micro": 1, "minor": 0, "major": 2}, "package": "StratoVirt-2.1.0"}"#;
/// let other = Version::from_raw(RawJson::from_text(text).unwrap()).unwrap();
/// assert_eq!(other.qemu(), None);
/// assert_eq!(other.product(), Some(("StratoVirt", VersionTriple { major: 2, minor: 0, micro: 1 })));
/// assert_eq!(other.to_string(), "StratoVirt 2.0.1 (StratoVirt-2.1.0)");
/// assert_eq!(serde_json::to_string(&other).unwrap(), text.replace(' ', ""));
/// ```
#[derive(Clone)]
pub struct Version(Box<VersionParts>);

/// What a [`Version`] holds, boxed: a greeting is received once, and a
/// small `Version` keeps every [`ClientOutput`](crate::ClientOutput) (and
/// every message being parsed) small.
#[derive(Clone)]
struct VersionParts {
    /// The object, less the whitespace between its tokens.
    raw: RawJson,
    /// The member shaped `{major, minor, micro}`: `qemu` if it is one, else
    /// the first.
    product: Option<(String, VersionTriple)>,
    /// The `package` member, if it is a string; else empty.
    package: String,
}

/// The name of QEMU's member of [`Version`].
const QEMU: &str = "qemu";

impl Version {
    /// QEMU's version `qemu` of distribution package `package` (empty for
    /// none), shaped as QEMU writes it: `{"qemu": {"micro": 2, "minor": 0,
    /// "major": 10}, "package": "..."}`, members in that order, so that it
    /// equals the one a QEMU of that version greets with.
    pub fn new(qemu: VersionTriple, package: impl Into<String>) -> Self {
        #[derive(Serialize)]
        struct Numbers {
            micro: u64,
            minor: u64,
            major: u64,
        }
        #[derive(Serialize)]
        struct Wire<'a> {
            qemu: Numbers,
            package: &'a str,
        }
        let package = package.into();
        let wire = Wire {
            qemu: Numbers {
                micro: qemu.micro,
                minor: qemu.minor,
                major: qemu.major,
            },
            package: &package,
        };
        // Serializing integers and a string cannot fail.
        let raw = serde_json::to_vec(&wire).unwrap_or_default();
        Version(Box::new(VersionParts {
            raw: RawJson::from_trusted(Bytes::from(raw)),
            product: Some((String::from(QEMU), qemu)),
            package,
        }))
    }

    /// The version `raw` says, any JSON object (an error for anything
    /// else): a server's own shape, for a mock of it, or a version received
    /// some other way.
    pub fn from_raw(raw: RawJson) -> Result<Self, serde_json::Error> {
        let text = compact(raw.as_bytes());
        let read: VersionMembers = serde_json::from_slice(&text)?;
        Ok(Version(Box::new(VersionParts {
            raw: RawJson::from_trusted(Bytes::from(text)),
            product: read.product,
            package: read.package,
        })))
    }

    /// QEMU's numbers: the `qemu` member, when it is `{"major": M, "minor":
    /// m, "micro": u}` (any other member ignored). `None` for a server that
    /// is not QEMU.
    pub fn qemu(&self) -> Option<VersionTriple> {
        match &self.0.product {
            Some((name, triple)) if name == QEMU => Some(*triple),
            _ => None,
        }
    }

    /// The server's name and numbers, whatever the server: the member shaped
    /// as [`qemu`](Self::qemu) reads it, `("qemu", 10.0.2)` for QEMU,
    /// `("StratoVirt", 2.0.1)` for StratoVirt (`qemu` if the object has it,
    /// else the first such member). `None` when no member has that shape.
    pub fn product(&self) -> Option<(&str, VersionTriple)> {
        let (name, triple) = self.0.product.as_ref()?;
        Some((name, *triple))
    }

    /// The `package` member, e.g. `"Debian 1:10.0.2+ds-2"`; empty when
    /// there is none (or it is not a string).
    pub fn package(&self) -> &str {
        &self.0.package
    }

    /// The version object as received, less the whitespace between its
    /// tokens: for what the accessors do not read.
    pub fn raw(&self) -> &RawJson {
        &self.0.raw
    }
}

impl Default for Version {
    /// QEMU 0.0.0, no package.
    fn default() -> Self {
        Version::new(VersionTriple::default(), "")
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        // The rest is read from `raw`.
        self.0.raw == other.0.raw
    }
}

impl Eq for Version {}

impl core::hash::Hash for Version {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.0.raw.hash(state);
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({})", self.0.raw)
    }
}

impl fmt::Display for Version {
    /// QEMU's as `10.0.2 (package)`, another server's as `StratoVirt 2.0.1
    /// (package)` (see [`product`](Self::product)); the package, when empty,
    /// and its parentheses left out. A version without numbers of that
    /// shape is shown as its JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.product {
            Some((name, triple)) if name == QEMU => write!(f, "{triple}")?,
            Some((name, triple)) => write!(f, "{name} {triple}")?,
            None => return f.write_str(self.0.raw.as_str()),
        }
        if !self.0.package.is_empty() {
            write!(f, " ({})", self.0.package)?;
        }
        Ok(())
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawJson::deserialize(d)?;
        Version::from_raw(raw).map_err(serde::de::Error::custom)
    }
}

/// What [`Version::from_raw`] reads in a version object, member by member
/// in order; anything but an object is an error.
struct VersionMembers {
    product: Option<(String, VersionTriple)>,
    package: String,
}

impl<'de> Deserialize<'de> for VersionMembers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = VersionMembers;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a version object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<VersionMembers, A::Error> {
                let mut product: Option<(String, VersionTriple)> = None;
                let mut package = None;
                while let Some(name) = map.next_key::<String>()? {
                    let value: &RawValue = map.next_value()?;
                    if name == "package" {
                        if package.is_none() {
                            package = serde_json::from_str::<String>(value.get()).ok();
                        }
                    } else if product.as_ref().is_none_or(|(kept, _)| kept != QEMU) {
                        // An object with the three numbers (serde would
                        // also take them as an array).
                        let triple = match value.get().as_bytes().first() {
                            Some(b'{') => serde_json::from_str(value.get()).ok(),
                            _ => None,
                        };
                        match triple {
                            Some(triple) if product.is_none() || name == QEMU => {
                                product = Some((name, triple));
                            }
                            _ => {}
                        }
                    }
                }
                Ok(VersionMembers {
                    product,
                    package: package.unwrap_or_default(),
                })
            }
        }
        d.deserialize_map(Members)
    }
}

/// `json`, valid JSON, without the whitespace between its tokens (strings
/// are copied as they are).
fn compact(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for &byte in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
        } else if matches!(byte, b' ' | b'\t' | b'\r' | b'\n') {
            continue;
        } else if byte == b'"' {
            in_string = true;
        }
        out.push(byte);
    }
    out
}

/// A QMP capability, as offered in the greeting or enabled by
/// `qmp_capabilities`. Unknown capabilities of newer QEMUs are kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Out-of-band execution (`exec-oob`).
    Oob,
    /// A capability this crate does not know.
    Other(String),
}

impl Capability {
    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Capability::Oob => "oob",
            Capability::Other(name) => name,
        }
    }

    fn from_name(name: &str) -> Self {
        match name {
            "oob" => Capability::Oob,
            other => Capability::Other(other.to_string()),
        }
    }
}

impl Serialize for Capability {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Capability {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = Cow::<str>::deserialize(d)?;
        Ok(Capability::from_name(&name))
    }
}

/// The greeting QEMU sends when a client connects.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Greeting {
    /// The server's version.
    pub version: Version,
    /// The capabilities the server offers.
    pub capabilities: Vec<Capability>,
}

impl Greeting {
    /// Whether the server offers `capability`.
    pub fn offers(&self, capability: &Capability) -> bool {
        self.capabilities.contains(capability)
    }
}

/// When an event happened, by the server's clock.
///
/// Signed: QEMU sends `-1` for both fields when it could not read the clock.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Deserialize, Serialize,
)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// Microseconds within the second.
    pub microseconds: i64,
}

impl Timestamp {
    /// The timestamp of a moment `since_epoch` after the Unix epoch (e.g.
    /// `SystemTime::now().duration_since(UNIX_EPOCH)`), as a server stamps
    /// an event.
    pub fn from_unix_duration(since_epoch: core::time::Duration) -> Timestamp {
        Timestamp {
            seconds: i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
            microseconds: i64::from(since_epoch.subsec_micros()),
        }
    }
}

/// An asynchronous event from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event's name, e.g. `"STOP"` or `"JOB_STATUS_CHANGE"`.
    pub name: String,
    /// Its `data` member as received; `None` when the event has none.
    pub data: Option<RawJson>,
    /// When the server says it happened.
    pub timestamp: Timestamp,
}

impl Event {
    /// Decodes the event's data into `T`. An event without data decodes as
    /// the empty object, so types whose fields are all optional still work.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match &self.data {
            Some(data) => data.decode(),
            None => serde_json::from_slice(b"{}"),
        }
    }
}

/// The class of a QMP error reply.
///
/// The QMP specification names five classes; QEMU adds none today, but a
/// newer one would be kept in [`ErrorClass::Other`] rather than refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Any error without a more specific class (most errors).
    GenericError,
    /// The command does not exist (or negotiation has not been done).
    CommandNotFound,
    /// A device exists but is not active.
    DeviceNotActive,
    /// The named device does not exist.
    DeviceNotFound,
    /// KVM lacks a required capability.
    KvmMissingCap,
    /// A class this crate does not know.
    Other(String),
}

impl ErrorClass {
    /// The wire name, e.g. `"DeviceNotFound"`.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorClass::GenericError => "GenericError",
            ErrorClass::CommandNotFound => "CommandNotFound",
            ErrorClass::DeviceNotActive => "DeviceNotActive",
            ErrorClass::DeviceNotFound => "DeviceNotFound",
            ErrorClass::KvmMissingCap => "KVMMissingCap",
            ErrorClass::Other(name) => name,
        }
    }

    /// The class named `name`.
    pub fn from_name(name: &str) -> Self {
        match name {
            "GenericError" => ErrorClass::GenericError,
            "CommandNotFound" => ErrorClass::CommandNotFound,
            "DeviceNotActive" => ErrorClass::DeviceNotActive,
            "DeviceNotFound" => ErrorClass::DeviceNotFound,
            "KVMMissingCap" => ErrorClass::KvmMissingCap,
            other => ErrorClass::Other(other.to_string()),
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorClass {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorClass {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = Cow::<str>::deserialize(d)?;
        Ok(ErrorClass::from_name(&name))
    }
}

/// An error reply from the server: an ordinary result of a command, not a
/// failure of the connection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct QmpError {
    /// The error's class.
    pub class: ErrorClass,
    /// QEMU's human-readable description.
    pub desc: String,
}

impl QmpError {
    /// An error of `class` described by `desc`.
    pub fn new(class: ErrorClass, desc: impl Into<String>) -> Self {
        QmpError {
            class,
            desc: desc.into(),
        }
    }

    /// A `GenericError` described by `desc`.
    pub fn generic(desc: impl Into<String>) -> Self {
        QmpError::new(ErrorClass::GenericError, desc)
    }
}

impl fmt::Display for QmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.desc)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for QmpError {}

// ---------------------------------------------------------------------------
// Server to client: one parse of the frame, payloads located as spans.

/// Deserializes a member that is present (even as `null`) to `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct ServerWire<'a> {
    #[serde(rename = "QMP", borrow, default, deserialize_with = "present")]
    greeting: Option<&'a RawValue>,
    #[serde(rename = "return", borrow, default, deserialize_with = "present")]
    ret: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<QmpError>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    #[serde(default)]
    timestamp: Option<Timestamp>,
}

/// A server message parsed from a slice, payloads as spans of that slice.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ServerMessageSpans {
    Greeting(Greeting),
    Reply {
        id: Option<Span>,
        result: Result<Span, QmpError>,
    },
    Event(EventSpans),
    /// An event with its data copied out of the bytes it was parsed from
    /// ([`ServerMessageSpans::copy_small_event`]): it needs no frame.
    CopiedEvent(Event),
}

/// The largest `data` an event has copied out of the received bytes
/// instead of sharing them (see [`ServerMessageSpans::copy_small_event`]).
const COPIED_DATA_MAX: usize = 512;

/// The size of the chunks small events' data is copied into (at least
/// [`COPIED_DATA_MAX`]).
const ARENA_CHUNK: usize = 4096;
const _: () = assert!(ARENA_CHUNK >= COPIED_DATA_MAX);

/// An event parsed from a slice, its data as a span of that slice.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct EventSpans {
    name: String,
    data: Option<Span>,
    timestamp: Timestamp,
}

impl EventSpans {
    /// The event with its data in `frame`, the bytes it was parsed from.
    #[inline]
    pub(crate) fn attach(self, frame: Bytes) -> Event {
        Event {
            name: self.name,
            data: self.data.map(|span| attach_last(frame, &span)),
            timestamp: self.timestamp,
        }
    }
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServerMessage {
    Greeting(Greeting),
    Reply {
        id: Option<RawJson>,
        result: Result<RawJson, QmpError>,
    },
    Event(Event),
}

/// Why a server message could not be classified.
#[derive(Debug)]
pub(crate) enum ServerParseError {
    /// Not valid JSON, or not an object, or members of the wrong type.
    Json(serde_json::Error),
    /// A JSON object that is none of greeting, reply or event.
    Unrecognized,
}

/// [`parse_server_message_with`] with no event name read before.
#[cfg(test)]
pub(crate) fn parse_server_message(slice: &[u8]) -> Result<ServerMessageSpans, ServerParseError> {
    parse_server_message_with(slice, &mut EventNames::default())
}

/// Parses one server message, the whole of `slice` (whitespace may follow
/// it): by the fast path when it is sure, else by serde_json. `names` has
/// the name of the last event read.
pub(crate) fn parse_server_message_with(
    slice: &[u8],
    names: &mut EventNames,
) -> Result<ServerMessageSpans, ServerParseError> {
    if let Some((message, len)) = parse_server_prefix_with(slice, names) {
        if slice[len..]
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        {
            return Ok(message);
        }
    }
    parse_server_message_serde(slice)
}

/// The name of the last event [`parse_server_prefix_with`] read: a run of
/// events of one name (the common case, a job's or a device's) has its name
/// checked as UTF-8 once, and then only compared.
#[derive(Debug, Default)]
pub(crate) struct EventNames {
    last: String,
}

/// The longest name [`EventNames`] keeps (QEMU's are below 40 bytes).
const NAME_KEPT: usize = 64;

impl EventNames {
    /// `bytes`, which hold printable ASCII, as a `String`.
    fn get(&mut self, bytes: &[u8]) -> Option<String> {
        if self.last.as_bytes() != bytes {
            let name = core::str::from_utf8(bytes).ok()?;
            if name.len() > NAME_KEPT {
                return Some(String::from(name));
            }
            self.last.clear();
            self.last.push_str(name);
        }
        Some(self.last.clone())
    }
}

/// [`parse_server_prefix_with`] with no event name read before.
#[cfg(test)]
pub(crate) fn parse_server_prefix(bytes: &[u8]) -> Option<(ServerMessageSpans, usize)> {
    parse_server_prefix_with(bytes, &mut EventNames::default())
}

/// The server message at the start of `bytes`, which may go on past it, and
/// its length, when the fast path ([`fast`]) is sure of it. `None` leaves it
/// to [`parse_server_message_serde`], errors included: whatever this returns
/// is what that would have returned for `&bytes[..len]`. `names` has the
/// name of the last event read.
#[inline]
pub(crate) fn parse_server_prefix_with(
    bytes: &[u8],
    names: &mut EventNames,
) -> Option<(ServerMessageSpans, usize)> {
    if let Some((event, len)) = fast::qemu_event(bytes) {
        let event = ServerMessageSpans::Event(EventSpans {
            name: names.get(event.name)?,
            data: event.data,
            timestamp: event.timestamp,
        });
        return Some((event, len));
    }
    let (found, len) = fast::object_members(bytes)?;
    Some((message_of(bytes, found)?, len))
}

/// A server message being parsed as its bytes arrive; see
/// [`parse_server_prefix_resumable`].
#[derive(Debug, Default)]
pub(crate) struct PartialMessage(fast::Partial);

/// [`parse_server_prefix_with`] for a message that may still be arriving:
/// `bytes` are those of the message so far (from its first byte), and when
/// `resume` is set they hold the bytes of the previous call, which returned
/// [`Prefix::Incomplete`], and more. The parse goes on where that call
/// stopped, so a message that arrives in many pieces is still read once;
/// what it gives in the end is what [`parse_server_prefix_with`] gives for
/// the whole. A small event has its data copied to `arena`
/// ([`ServerMessageSpans::copy_small_event`]). An event as QEMU writes it,
/// there whole, is the client's to read first ([`small_qemu_event`]).
#[inline]
pub(crate) fn parse_server_prefix_resumable(
    bytes: &[u8],
    partial: &mut PartialMessage,
    arena: &mut BytesMut,
    resume: bool,
) -> Prefix<ServerMessageSpans> {
    if !resume {
        partial.0 = fast::Partial::default();
    }
    match fast::object_members_from(bytes, &mut partial.0) {
        fast::Progress::Done(len) => {
            let found = core::mem::take(&mut partial.0.members);
            match message_of(&bytes[..len], found) {
                Some(message) => Prefix::Parsed(message.copy_small_event(bytes, arena), len),
                None => Prefix::Refused,
            }
        }
        fast::Progress::Starved => Prefix::Incomplete,
        fast::Progress::Refused => Prefix::Refused,
    }
}

/// The event at the start of `bytes`, as QEMU writes it and with data no
/// larger than [`COPIED_DATA_MAX`], copied to `arena`: the common case,
/// read before anything else and built where it is returned. `None` leaves
/// the message to [`parse_server_prefix_resumable`] (an event with larger
/// data too: its data then shares the received bytes).
#[inline(always)]
pub(crate) fn small_qemu_event(
    bytes: &[u8],
    names: &mut EventNames,
    arena: &mut BytesMut,
) -> Option<(Event, usize)> {
    let (event, len) = fast::qemu_event(bytes)?;
    let data = match event.data {
        None => None,
        Some(span) if span.len() <= COPIED_DATA_MAX => Some(copy_to_arena(&bytes[span], arena)),
        Some(_) => return None,
    };
    let event = Event {
        name: names.get(event.name)?,
        data,
        timestamp: event.timestamp,
    };
    Some((event, len))
}

/// `data` copied into `arena`; see [`ServerMessageSpans::copy_small_event`].
#[inline(always)]
fn copy_to_arena(data: &[u8], arena: &mut BytesMut) -> RawJson {
    if arena.capacity() - arena.len() < data.len() {
        *arena = BytesMut::with_capacity(ARENA_CHUNK);
    }
    arena.extend_from_slice(data);
    RawJson::from_trusted(arena.split().freeze())
}

/// The message whose top-level members [`fast::object_members`] found in
/// `bytes`, when the fast path is sure of it.
#[inline]
fn message_of(bytes: &[u8], found: fast::Members) -> Option<ServerMessageSpans> {
    let text = |span: &Span| &bytes[span.clone()];
    let error = match &found.error {
        Some(span) => serde_json::from_slice::<Option<QmpError>>(text(span)).ok()?,
        None => None,
    };
    let timestamp = match &found.timestamp {
        Some(span) => match timestamp_as_qemu_writes_it(text(span)) {
            Some(timestamp) => Some(timestamp),
            None => serde_json::from_slice::<Option<Timestamp>>(text(span)).ok()?,
        },
        None => None,
    };
    let event = match &found.event {
        Some(span) => match text(span) {
            b"null" => None,
            // A string without escapes (an event name always is one).
            [b'"', name @ .., b'"'] if !name.contains(&b'\\') => {
                Some(Cow::Borrowed(core::str::from_utf8(name).ok()?))
            }
            _ => return None,
        },
        None => None,
    };
    let members = Members {
        greeting: found.greeting.as_ref().map(text),
        ret: found.ret,
        error,
        id: found.id,
        event,
        data: found.data,
        timestamp,
    };
    classify(members).ok()
}

/// An event's timestamp spelt as QEMU writes it, `{"seconds": S,
/// "microseconds": U}` (or with no space at all, as [`Server`](crate::Server)
/// does): a quarter of the cost of decoding an event when serde_json reads
/// it. Anything else (other spacing, other members, numbers that are not
/// plain integers of up to 18 digits) is `None`, for serde_json to read:
/// what this accepts it reads as serde_json would.
fn timestamp_as_qemu_writes_it(text: &[u8]) -> Option<Timestamp> {
    match timestamp_prefix(text)? {
        (timestamp, []) => Some(timestamp),
        _ => None,
    }
}

/// A timestamp as [`timestamp_as_qemu_writes_it`] reads it at the start of
/// `bytes`, and the bytes after it.
fn timestamp_prefix(bytes: &[u8]) -> Option<(Timestamp, &[u8])> {
    let rest = bytes.strip_prefix(b"{\"seconds\":")?;
    let (seconds, rest) = plain_integer(rest.strip_prefix(b" ").unwrap_or(rest))?;
    let rest = rest
        .strip_prefix(b",")
        .map(|r| r.strip_prefix(b" ").unwrap_or(r))?;
    let rest = rest.strip_prefix(b"\"microseconds\":")?;
    let (microseconds, rest) = plain_integer(rest.strip_prefix(b" ").unwrap_or(rest))?;
    let timestamp = Timestamp {
        seconds,
        microseconds,
    };
    Some((timestamp, rest.strip_prefix(b"}")?))
}

/// The JSON integer at the start of `bytes` and the bytes after it, if it
/// has at most 18 digits (so that it fits an `i64`), is valid JSON (no
/// leading zero) and is not `-0` (which serde_json reads as a float). One
/// pass, inlined in [`timestamp_prefix`]: a timestamp costs a third less
/// than with a count of the digits and a second pass over them.
#[inline(always)]
fn plain_integer(bytes: &[u8]) -> Option<(i64, &[u8])> {
    let (negative, digits) = match bytes.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, bytes),
    };
    let mut value = 0i64;
    let mut len = 0;
    while let Some(digit) = digits.get(len).map(|b| b.wrapping_sub(b'0')) {
        if digit > 9 {
            break;
        }
        if len == 18 {
            return None;
        }
        value = value * 10 + i64::from(digit);
        len += 1;
    }
    if len == 0 || (digits[0] == b'0' && (len > 1 || negative)) {
        return None;
    }
    Some((if negative { -value } else { value }, &digits[len..]))
}

/// The reference parse, with serde_json: the slow path's, and the final
/// word on what is an error and how it reads.
fn parse_server_message_serde(slice: &[u8]) -> Result<ServerMessageSpans, ServerParseError> {
    // Only an object is a message. serde's derived visitor also takes a JSON
    // array, filling the members in order, so `[null, "x", null, 3]` used to
    // be a reply to request 3 (found by tests/tests/hostile_replies.rs).
    let first = slice
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
    if first != Some(&b'{') {
        let error = serde_json::from_slice::<serde::de::IgnoredAny>(slice)
            .err()
            .unwrap_or_else(|| serde::de::Error::custom("a QMP message must be a JSON object"));
        return Err(ServerParseError::Json(error));
    }
    let wire: ServerWire<'_> = serde_json::from_slice(slice).map_err(ServerParseError::Json)?;
    let span = |raw: &RawValue| range_in(slice, raw.get());
    classify(Members {
        greeting: wire.greeting.map(|raw| raw.get().as_bytes()),
        ret: wire.ret.map(span),
        error: wire.error,
        id: wire.id.map(span),
        event: wire.event,
        data: wire.data.map(span),
        timestamp: wire.timestamp,
    })
}

/// What a server message is classified by, however it was parsed.
struct Members<'a> {
    /// The text of the `QMP` member.
    greeting: Option<&'a [u8]>,
    ret: Option<Span>,
    error: Option<QmpError>,
    id: Option<Span>,
    event: Option<Cow<'a, str>>,
    data: Option<Span>,
    timestamp: Option<Timestamp>,
}

fn classify(wire: Members<'_>) -> Result<ServerMessageSpans, ServerParseError> {
    if let Some(name) = wire.event {
        return Ok(ServerMessageSpans::Event(EventSpans {
            name: name.into_owned(),
            data: wire.data,
            timestamp: wire.timestamp.unwrap_or_default(),
        }));
    }
    let id = wire.id;
    if let Some(error) = wire.error {
        return Ok(ServerMessageSpans::Reply {
            id,
            result: Err(error),
        });
    }
    if let Some(ret) = wire.ret {
        return Ok(ServerMessageSpans::Reply {
            id,
            result: Ok(ret),
        });
    }
    if let Some(greeting) = wire.greeting {
        let greeting = serde_json::from_slice(greeting).map_err(ServerParseError::Json)?;
        return Ok(ServerMessageSpans::Greeting(greeting));
    }
    Err(ServerParseError::Unrecognized)
}

impl ServerMessageSpans {
    /// The message with its payloads in `frame`, the bytes it was parsed
    /// from.
    pub(crate) fn attach(self, frame: Bytes) -> ServerMessage {
        match self {
            ServerMessageSpans::Greeting(g) => ServerMessage::Greeting(g),
            ServerMessageSpans::Reply { id, result } => ServerMessage::Reply {
                id: id.map(|s| attach(&frame, &s)),
                result: result.map(|s| attach_last(frame, &s)),
            },
            ServerMessageSpans::Event(event) => ServerMessage::Event(event.attach(frame)),
            ServerMessageSpans::CopiedEvent(event) => ServerMessage::Event(event),
        }
    }

    /// An event whose `data` is small (or absent), with the data copied out
    /// of `bytes` (the bytes it was parsed from) into `arena`, a chunk
    /// shared by the small events that follow one another; anything else as
    /// it is.
    ///
    /// The received buffer then stays unshared: it is reused for the next
    /// read instead of being kept alive, and reallocated, while any event
    /// of it lives, and handing out an event costs no operation on the
    /// buffer's count. The copies share a count per chunk (a few KiB of
    /// events) as they shared the buffer's: one cache line for a burst of
    /// events, whichever thread drops them, where a count per event (an
    /// allocation of its own, shared when a subscriber gets its copy) would
    /// move between the router's thread and a subscriber's at every event.
    #[inline]
    pub(crate) fn copy_small_event(self, bytes: &[u8], arena: &mut BytesMut) -> Self {
        match self {
            ServerMessageSpans::Event(event) => {
                let data = match &event.data {
                    None => None,
                    Some(span) if span.len() <= COPIED_DATA_MAX => match bytes.get(span.clone()) {
                        Some(data) => Some(copy_to_arena(data, arena)),
                        None => return ServerMessageSpans::Event(event),
                    },
                    Some(_) => return ServerMessageSpans::Event(event),
                };
                ServerMessageSpans::CopiedEvent(Event {
                    name: event.name,
                    data,
                    timestamp: event.timestamp,
                })
            }
            other => other,
        }
    }

    /// Whether the message's payloads are still spans of the bytes it was
    /// parsed from, to be [attached](Self::attach) to them.
    #[inline]
    pub(crate) fn needs_frame(&self) -> bool {
        !matches!(self, ServerMessageSpans::CopiedEvent(_))
    }
}

// ---------------------------------------------------------------------------
// Client to server: QEMU's checks, in QEMU's words.

/// A command received by the [`Server`](crate::Server) role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The command's name, e.g. `"query-status"`.
    pub name: String,
    /// Its `arguments` object, if it had one.
    pub arguments: Option<RawJson>,
    /// The id the client chose (any JSON value), to be echoed in the reply.
    pub id: Option<RawJson>,
    /// Sent with `exec-oob` rather than `execute`.
    pub oob: bool,
}

impl Command {
    /// Decodes the arguments into `T`; a command without arguments decodes
    /// as the empty object.
    pub fn decode_arguments<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match &self.arguments {
            Some(args) => args.decode(),
            None => serde_json::from_slice(b"{}"),
        }
    }
}

/// Parses one frame of client input, as QEMU's dispatcher checks it.
/// Errors carry the id when the input had a usable one, as QEMU's do.
pub(crate) fn parse_client_message(
    frame: &Bytes,
    oob_enabled: bool,
) -> Result<Command, (Option<RawJson>, QmpError)> {
    use alloc::collections::BTreeMap;
    let members: BTreeMap<Cow<'_, str>, &RawValue> = match serde_json::from_slice(frame) {
        Ok(members) => members,
        Err(err) => {
            // A well-formed value of the wrong type is QEMU's "must be a JSON
            // object"; anything else is a parse error.
            let well_formed = serde_json::from_slice::<serde::de::IgnoredAny>(frame).is_ok();
            let desc = if well_formed {
                "QMP input must be a JSON object".to_string()
            } else {
                alloc::format!("JSON parse error, {err}")
            };
            return Err((None, QmpError::generic(desc)));
        }
    };
    let span = |raw: &RawValue| attach(frame, &range_in(frame, raw.get()));
    let id = members.get("id").map(|raw| span(raw));
    let fail = |desc: String| Err((id.clone(), QmpError::generic(desc)));
    let mut exec_key: Option<&str> = None;
    let mut name = String::new();
    let mut arguments = None;
    for (key, value) in &members {
        let text = value.get();
        match key.as_ref() {
            "execute" | "exec-oob" if key == "execute" || oob_enabled => {
                let Ok(command) = serde_json::from_str::<String>(text) else {
                    return fail(alloc::format!("QMP input member '{key}' must be a string"));
                };
                if let Some(previous) = exec_key {
                    return fail(alloc::format!(
                        "QMP input member '{key}' clashes with '{previous}'"
                    ));
                }
                exec_key = Some(if key == "execute" {
                    "execute"
                } else {
                    "exec-oob"
                });
                name = command;
            }
            "arguments" => {
                if !text.starts_with('{') {
                    return fail("QMP input member 'arguments' must be an object".to_string());
                }
                arguments = Some(span(value));
            }
            "id" => {}
            other => return fail(alloc::format!("QMP input member '{other}' is unexpected")),
        }
    }
    let Some(exec_key) = exec_key else {
        return fail("QMP input lacks member 'execute'".to_string());
    };
    Ok(Command {
        name,
        arguments,
        id,
        oob: exec_key == "exec-oob",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_without_serde_read_as_serde_reads_them() {
        for text in [
            r#"{"seconds": 1795554620, "microseconds": 722476}"#,
            r#"{"seconds":1795554620,"microseconds":722476}"#,
            r#"{"seconds": -1, "microseconds": -1}"#,
            r#"{"seconds": 0, "microseconds": 0}"#,
            r#"{"seconds": 999999999999999999, "microseconds": -999999999999999999}"#,
        ] {
            let serde: Timestamp = serde_json::from_str(text).unwrap();
            assert_eq!(
                timestamp_as_qemu_writes_it(text.as_bytes()),
                Some(serde),
                "{text}"
            );
        }
        // Left to serde_json: valid or not, anything else.
        for text in [
            r#"{"seconds": 01, "microseconds": 2}"#,
            r#"{"seconds": 1.0, "microseconds": 2}"#,
            r#"{"seconds": 1e3, "microseconds": 2}"#,
            r#"{"seconds": 1 , "microseconds": 2}"#,
            r#"{"seconds": 1, "microseconds": 2, "x": 3}"#,
            r#"{"microseconds": 2, "seconds": 1}"#,
            r#"{"seconds": -, "microseconds": 2}"#,
            r#"{"seconds": -0, "microseconds": 2}"#,
            r#"{"seconds": -01, "microseconds": 2}"#,
            r#"{"seconds": 9999999999999999999, "microseconds": 0}"#,
            r#"{"seconds":  1, "microseconds": 2}"#,
            "null",
        ] {
            assert_eq!(timestamp_as_qemu_writes_it(text.as_bytes()), None, "{text}");
        }
    }

    /// `plain_integer` against the two-pass reading it replaced.
    #[test]
    fn plain_integers_read_in_one_pass_as_in_two() {
        fn reference(bytes: &[u8]) -> Option<(i64, &[u8])> {
            let (negative, digits) = match bytes.split_first()? {
                (b'-', rest) => (true, rest),
                _ => (false, bytes),
            };
            let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
            if len == 0 || len > 18 || (digits[0] == b'0' && (len > 1 || negative)) {
                return None;
            }
            let value = digits[..len]
                .iter()
                .fold(0i64, |value, digit| value * 10 + i64::from(digit - b'0'));
            Some((if negative { -value } else { value }, &digits[len..]))
        }
        let digits = b"9876543210123456789";
        let ends: [&[u8]; 6] = [b"", b"}", b", ", b"/", b":x", b"\xff\x00\x80\xb0 "];
        for start in 0..digits.len() {
            for len in 0..=digits.len() - start {
                for sign in [&b""[..], b"-"] {
                    for end in ends {
                        for zero in [&b""[..], b"0"] {
                            let mut text = sign.to_vec();
                            text.extend_from_slice(zero);
                            text.extend_from_slice(&digits[start..start + len]);
                            text.extend_from_slice(end);
                            assert_eq!(
                                plain_integer(&text),
                                reference(&text),
                                "{:?}",
                                String::from_utf8_lossy(&text)
                            );
                        }
                    }
                }
            }
        }
        for byte in 0..=u8::MAX {
            for at in 0..12 {
                let mut text = b"123456789012".to_vec();
                text[at] = byte;
                text.extend_from_slice(b"} padding");
                assert_eq!(plain_integer(&text), reference(&text), "{byte} at {at}");
            }
        }
    }

    #[test]
    fn event_names_are_remembered_and_given_out_whole() {
        let mut names = EventNames::default();
        let long = "L".repeat(NAME_KEPT + 1);
        for name in ["STOP", "STOP", "RESUME", "", "STOP", &long, "STOP", &long] {
            assert_eq!(names.get(name.as_bytes()).as_deref(), Some(name));
            assert!(names.last.len() <= NAME_KEPT);
        }
    }

    fn server(text: &str) -> ServerMessage {
        let frame = Bytes::copy_from_slice(text.as_bytes());
        parse_server_message(&frame).unwrap().attach(frame)
    }

    #[test]
    fn reply_payload_is_a_slice_of_the_frame() {
        let msg = server(r#"{"return": {"a": [1, 2]}, "id": 7}"#);
        let ServerMessage::Reply { id, result } = msg else {
            panic!("not a reply")
        };
        assert_eq!(id.unwrap().as_u64(), Some(7));
        assert_eq!(result.unwrap().as_str(), r#"{"a": [1, 2]}"#);
    }

    #[test]
    fn return_null_is_a_reply() {
        let msg = server(r#"{"return": null, "id": 1}"#);
        assert!(
            matches!(msg, ServerMessage::Reply { result: Ok(ref r), .. } if r.as_str() == "null")
        );
    }

    #[test]
    fn event_with_negative_timestamp_and_unknown_keys() {
        let msg = server(
            r#"{"event": "NEW_THING", "timestamp": {"seconds": -1, "microseconds": -1}, "extra": 1}"#,
        );
        let ServerMessage::Event(event) = msg else {
            panic!("not an event")
        };
        assert_eq!(event.name, "NEW_THING");
        assert_eq!(event.timestamp.seconds, -1);
        assert!(event.data.is_none());
    }

    #[test]
    fn unknown_error_class_is_kept() {
        let msg = server(r#"{"error": {"class": "FutureClass", "desc": "x"}}"#);
        let ServerMessage::Reply {
            id: None,
            result: Err(e),
        } = msg
        else {
            panic!("not an id-less error")
        };
        assert_eq!(e.class, ErrorClass::Other("FutureClass".into()));
    }

    #[test]
    fn object_without_known_members_is_unrecognized() {
        assert!(matches!(
            parse_server_message(br#"{"id": 3}"#),
            Err(ServerParseError::Unrecognized)
        ));
        assert!(matches!(
            parse_server_message(b"[1]"),
            Err(ServerParseError::Json(_))
        ));
    }

    #[test]
    fn an_array_is_never_a_message() {
        // Shaped like a reply, an event and a greeting member by member.
        for text in [
            r#"[null, "forged", null, 0]"#,
            r#"[null, 1]"#,
            r#"[]"#,
            r#"[null, null, null, null, "STOP"]"#,
        ] {
            assert!(
                matches!(
                    parse_server_message(text.as_bytes()),
                    Err(ServerParseError::Json(_))
                ),
                "{text}"
            );
        }
    }

    fn client(text: &str, oob: bool) -> Result<Command, (Option<RawJson>, QmpError)> {
        parse_client_message(&Bytes::copy_from_slice(text.as_bytes()), oob)
    }

    #[test]
    fn client_input_checks_use_qemus_words() {
        let desc = |text, oob| client(text, oob).unwrap_err().1.desc;
        assert_eq!(desc("[1, 2]", false), "QMP input must be a JSON object");
        assert!(desc(r#"{"execute": bad json}"#, false).starts_with("JSON parse error, "));
        assert_eq!(
            desc(r#"{"execute": 1, "id": 2}"#, false),
            "QMP input member 'execute' must be a string"
        );
        assert_eq!(
            desc(r#"{"exec-oob": "x"}"#, false),
            "QMP input member 'exec-oob' is unexpected"
        );
        assert_eq!(
            desc(r#"{"execute": "x", "exec-oob": "y"}"#, true),
            "QMP input member 'execute' clashes with 'exec-oob'"
        );
        assert_eq!(
            desc(r#"{"id": 1}"#, false),
            "QMP input lacks member 'execute'"
        );
        assert_eq!(
            desc(r#"{"execute": "x", "arguments": []}"#, false),
            "QMP input member 'arguments' must be an object"
        );
    }

    #[test]
    fn client_command_keeps_id_verbatim() {
        let cmd = client(r#"{"execute": "cont", "id": {"nested": [5]}}"#, false).unwrap();
        assert_eq!(cmd.name, "cont");
        assert_eq!(cmd.id.unwrap().as_str(), r#"{"nested": [5]}"#);
        let err = client(r#"{"id": "x", "bogus": 1}"#, false).unwrap_err();
        assert_eq!(err.0.unwrap().as_str(), r#""x""#);
    }
}
