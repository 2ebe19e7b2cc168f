//! Typed commands of the QEMU guest agent (QGA).
//!
//! The guest agent, `qemu-ga`, runs inside the guest and answers on a
//! virtio-serial (or vsock) channel that QEMU exposes on the host as a
//! socket. Its protocol is not QMP: there is no greeting, no capabilities
//! negotiation and no events, and a client resynchronizes with
//! [`GuestSyncDelimited`]; but a command is the same JSON (`{"execute":
//! NAME, "arguments": {...}}`) and a reply the same `{"return": ...}` or
//! `{"error": ...}`, so these types implement the same [`Command`] trait as
//! the QMP ones. The commands act on the guest (they run programs, read
//! files, shut it down), not on QEMU.
//!
//! This module types the core commands of QEMU 10.0's
//! `qga/qapi-schema.json`, named after their wire names in UpperCamelCase
//! (`guest-exec` is [`GuestExec`]). Where the schema gives a result the
//! command's own name, the result is renamed: [`GuestExecResult`],
//! [`GuestExecStatusResult`], [`GuestFileReadResult`],
//! [`GuestFileWriteResult`], [`GuestFileSeekResult`] and
//! [`GuestFsfreezeState`].
//!
//! As for QMP, every result type ignores members it does not know, enums
//! are open (an unknown value is kept as `Unknown(String)`), and members
//! added after QEMU 2.x are `Option`s.
//!
//! Data of `guest-exec`, `guest-exec-status` and `guest-file-*`
//! (`input-data`, `out-data`, `err-data`, `buf-b64`) is base64 on the wire;
//! these types hold it as the base64 text, and the client crate encodes and
//! decodes it.
//!
//! [`GuestShutdown`] and the `guest-suspend-*` commands send no reply when
//! they succeed (the guest goes away): see [`NO_REPLY_ON_SUCCESS`].
//!
//! ```
//! use qmp_proto::typed::agent::GuestExec;
//! use qmp_proto::typed::Command;
//!
//! let exec = GuestExec::new("/bin/echo").arg("hi").capture_output(true);
//! assert_eq!(GuestExec::NAME, "guest-exec");
//! assert_eq!(
//!     serde_json::to_value(&exec).unwrap(),
//!     serde_json::json!({"path": "/bin/echo", "arg": ["hi"], "capture-output": true}),
//! );
//! ```
//!
//! The result of `guest-exec-status`, as the 10.0 agent sent it:
//!
//! ```
//! use qmp_proto::typed::agent::GuestExecStatus;
//! use qmp_proto::typed::Command;
//!
//! let json = r#"{"exitcode": 0, "out-data": "aGkK", "exited": true}"#;
//! let status: <GuestExecStatus as Command>::Returns = serde_json::from_str(json).unwrap();
//! assert!(status.exited);
//! assert_eq!(status.exitcode, Some(0));
//! assert_eq!(status.out_data.as_deref(), Some("aGkK")); // "hi\n"
//! assert_eq!(status.err_data, None);
//! ```
//!
//! [`Command`]: super::Command

use super::open_enum::open_enum;
use super::{impl_command, unit_arguments, Empty};
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The commands that send no reply when they succeed, as the schema marks
/// them (`'success-response': false`): the guest shuts down or suspends
/// before the agent could answer. They still reply with an error when they
/// fail, so callers send them with the client's call that expects no reply
/// and treat a reply as a failure.
pub const NO_REPLY_ON_SUCCESS: &[&str] = &[
    "guest-shutdown",
    "guest-suspend-disk",
    "guest-suspend-ram",
    "guest-suspend-hybrid",
];

// ----- synchronization, ping, agent info ------------------------------------------

/// `guest-sync-delimited`: echoes `id` back, after a 0xFF byte. Sent on
/// connecting and after a timeout: replies before the one carrying this id
/// are stale, and the 0xFF tells the reader to reset its JSON parser.
/// Returns the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestSyncDelimited {
    /// A random number, to recognize the reply.
    pub id: i64,
}

/// `guest-sync`: echoes `id` back, without the 0xFF byte of
/// [`GuestSyncDelimited`] (which is more reliable). Returns the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestSync {
    /// A random number, to recognize the reply.
    pub id: i64,
}

impl GuestSyncDelimited {
    /// Synchronizes on `id`.
    pub fn new(id: i64) -> Self {
        GuestSyncDelimited { id }
    }
}

impl GuestSync {
    /// Synchronizes on `id`.
    pub fn new(id: i64) -> Self {
        GuestSync { id }
    }
}

/// `guest-ping`: checks that the agent answers. Returns `{}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GuestPing;

/// `guest-info`: the agent's version and its commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GuestInfo;

/// The result of [`GuestInfo`] (QAPI `GuestAgentInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestAgentInfo {
    /// The agent's version, e.g. `"10.0.2"`.
    pub version: String,
    /// Every command the agent has, enabled or not (the wire name has an
    /// underscore).
    pub supported_commands: Vec<GuestAgentCommandInfo>,
}

impl GuestAgentInfo {
    /// The entry of command `name`, if the agent has it.
    pub fn command(&self, name: &str) -> Option<&GuestAgentCommandInfo> {
        self.supported_commands.iter().find(|c| c.name == name)
    }

    /// Whether the agent has command `name` and it is enabled.
    pub fn is_enabled(&self, name: &str) -> bool {
        self.command(name).is_some_and(|c| c.enabled)
    }
}

/// A command of the agent (QAPI `GuestAgentCommandInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestAgentCommandInfo {
    /// The command's name.
    pub name: String,
    /// Whether the guest's administrator allows it (`--allow-rpcs`,
    /// `--block-rpcs`).
    pub enabled: bool,
    /// Whether it replies when it succeeds (false for the commands of
    /// [`NO_REPLY_ON_SUCCESS`]).
    pub success_response: bool,
}

// ----- guest system information ----------------------------------------------------

/// `guest-get-osinfo`: the guest's operating system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GuestGetOsinfo;

/// The result of [`GuestGetOsinfo`] (QAPI `GuestOSInfo`). Every member may
/// be absent; on POSIX guests most come from `uname(2)` and
/// `os-release(5)`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestOSInfo {
    /// The kernel's release (POSIX), or the build number (Windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_release: Option<String>,
    /// The kernel's version (POSIX), or the version number (Windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_version: Option<String>,
    /// The machine, e.g. `"x86_64"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// The OS id, e.g. `"debian"` (`"mswindows"` on Windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The OS name, e.g. `"Debian GNU/Linux"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The name for display, e.g. `"Debian GNU/Linux 12 (bookworm)"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretty_name: Option<String>,
    /// The version, e.g. `"12 (bookworm)"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The short version, e.g. `"12"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// The variant (`"server"` or `"client"` on Windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The variant's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_id: Option<String>,
}

/// `guest-get-time`: the guest's clock. Returns nanoseconds since the Unix
/// epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GuestGetTime;

/// `guest-get-host-name`: the guest's host name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GuestGetHostName;

/// The result of [`GuestGetHostName`] (QAPI `GuestHostName`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestHostName {
    /// The host name; not necessarily fully qualified.
    pub host_name: String,
}

/// `guest-get-timezone`: the guest's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GuestGetTimezone;

/// The result of [`GuestGetTimezone`] (QAPI `GuestTimezone`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestTimezone {
    /// The zone's name, e.g. `"UTC"` or `"CET"`; informational only, as it
    /// depends on the guest OS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// The offset to UTC in seconds, positive east of Greenwich.
    pub offset: i64,
}

/// `guest-get-users`: the users logged in to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GuestGetUsers;

/// A user logged in to the guest (QAPI `GuestUser`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestUser {
    /// The user name.
    pub user: String,
    /// The logon domain (Windows only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// When the user logged in (the earliest of their sessions), in
    /// fractional seconds since the Unix epoch.
    pub login_time: f64,
}

/// `guest-get-vcpus`: the guest's logical processors, in no particular
/// order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GuestGetVcpus;

/// A logical processor of the guest (QAPI `GuestLogicalProcessor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestLogicalProcessor {
    /// The guest's id for it.
    pub logical_id: i64,
    /// Whether it is online.
    pub online: bool,
    /// Whether it can be taken offline (the agent always sends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_offline: Option<bool>,
}

// ----- programs -------------------------------------------------------------------

/// `guest-exec`: starts a program in the guest and returns its pid at
/// once; poll [`GuestExecStatus`] for its end and its output.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestExec {
    /// The program: a path, or a name looked up in the agent's `PATH`.
    pub path: String,
    /// Its arguments (without the program name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arg: Vec<String>,
    /// Its environment, as `NAME=value` strings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// What to write to its standard input, base64-encoded (default:
    /// nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_data: Option<String>,
    /// Which output to capture (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_output: Option<GuestExecCaptureOutput>,
}

impl GuestExec {
    /// Runs `path`.
    pub fn new(path: impl Into<String>) -> Self {
        GuestExec {
            path: path.into(),
            ..GuestExec::default()
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.arg.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I>(mut self, args: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.arg.extend(args.into_iter().map(Into::into));
        self
    }

    /// Appends one environment variable, `NAME=value`.
    pub fn env(mut self, variable: impl Into<String>) -> Self {
        self.env.push(variable.into());
        self
    }

    /// Sets [`input_data`](Self::input_data): `base64` is the standard
    /// input, already base64-encoded.
    pub fn input_data(mut self, base64: impl Into<String>) -> Self {
        self.input_data = Some(base64.into());
        self
    }

    /// Captures standard output and error, separately (`true`), or
    /// nothing (`false`). Sent as a boolean, which every agent since 2.5
    /// accepts.
    pub fn capture_output(mut self, capture: bool) -> Self {
        self.capture_output = Some(GuestExecCaptureOutput::Flag(capture));
        self
    }

    /// Captures the output as `mode` says, e.g. `"merged"` (agents 8.0
    /// and later; older ones refuse a mode).
    pub fn capture_mode(mut self, mode: impl Into<GuestExecCaptureOutputMode>) -> Self {
        self.capture_output = Some(GuestExecCaptureOutput::Mode(mode.into()));
        self
    }
}

/// What [`GuestExec`] captures of the program's output (QAPI
/// `GuestExecCaptureOutput`): a boolean, or a mode since 8.0.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GuestExecCaptureOutput {
    /// `true`: both outputs, separately (as
    /// [`Separated`](GuestExecCaptureOutputMode::Separated)); `false`:
    /// none.
    Flag(bool),
    /// A capture mode.
    Mode(GuestExecCaptureOutputMode),
}

impl From<bool> for GuestExecCaptureOutput {
    fn from(capture: bool) -> Self {
        GuestExecCaptureOutput::Flag(capture)
    }
}

impl From<GuestExecCaptureOutputMode> for GuestExecCaptureOutput {
    fn from(mode: GuestExecCaptureOutputMode) -> Self {
        GuestExecCaptureOutput::Mode(mode)
    }
}

open_enum! {
    /// A capture mode of [`GuestExec`] (QAPI `GuestExecCaptureOutputMode`,
    /// since 8.0).
    pub enum GuestExecCaptureOutputMode {
        /// Capture nothing.
        None = "none",
        /// Only standard output, into `out-data`.
        Stdout = "stdout",
        /// Only standard error, into `err-data`.
        Stderr = "stderr",
        /// Both, into `out-data` and `err-data`.
        Separated = "separated",
        /// Both, interleaved into `out-data` (not on Windows guests).
        Merged = "merged",
    }
}

/// The result of [`GuestExec`] (QAPI `GuestExec`, renamed here: the
/// command has that name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestExecResult {
    /// The program's process id in the guest, for [`GuestExecStatus`].
    pub pid: i64,
}

/// `guest-exec-status`: whether a program started with [`GuestExec`] has
/// ended, with its exit status and captured output. Once it reports the
/// end, the agent forgets the process: asking again is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestExecStatus {
    /// The pid [`GuestExec`] returned.
    pub pid: i64,
}

impl GuestExecStatus {
    /// Asks about process `pid`.
    pub fn new(pid: i64) -> Self {
        GuestExecStatus { pid }
    }
}

/// The result of [`GuestExecStatus`] (QAPI `GuestExecStatus`, renamed here:
/// the command has that name). The output members are present only once
/// the program has ended, and only for what was captured.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestExecStatusResult {
    /// Whether the program has ended.
    pub exited: bool,
    /// Its exit code, if it exited normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exitcode: Option<i64>,
    /// The signal that killed it (POSIX), or the unhandled exception's
    /// code (Windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i64>,
    /// Its captured standard output, base64-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_data: Option<String>,
    /// Its captured standard error, base64-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err_data: Option<String>,
    /// Whether the standard output was cut at the agent's size limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_truncated: Option<bool>,
    /// Whether the standard error was cut at the agent's size limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err_truncated: Option<bool>,
}

// ----- files ----------------------------------------------------------------------

/// `guest-file-open`: opens a file in the guest. Returns its handle, for
/// the other `guest-file-*` commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFileOpen {
    /// The file's full path in the guest.
    pub path: String,
    /// The mode, as for `fopen()` (default: `"r"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

impl GuestFileOpen {
    /// Opens `path` for reading.
    pub fn new(path: impl Into<String>) -> Self {
        GuestFileOpen {
            path: path.into(),
            mode: None,
        }
    }

    /// Sets [`mode`](Self::mode), e.g. `"w+"`.
    pub fn mode(mut self, mode: impl Into<String>) -> Self {
        self.mode = Some(mode.into());
        self
    }
}

/// `guest-file-close`: closes a file opened with [`GuestFileOpen`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFileClose {
    /// The file's handle.
    pub handle: i64,
}

/// `guest-file-read`: reads from an open file, at most 48 MB at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFileRead {
    /// The file's handle.
    pub handle: i64,
    /// The most bytes to read (default: 4096).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
}

/// The result of [`GuestFileRead`] (QAPI `GuestFileRead`, renamed here: the
/// command has that name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestFileReadResult {
    /// How many bytes were read (before base64 encoding).
    pub count: i64,
    /// The bytes, base64-encoded.
    pub buf_b64: String,
    /// Whether the end of the file was reached.
    pub eof: bool,
}

/// `guest-file-write`: writes to an open file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestFileWrite {
    /// The file's handle.
    pub handle: i64,
    /// The bytes to write, base64-encoded.
    pub buf_b64: String,
    /// How many of the decoded bytes to write (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
}

/// The result of [`GuestFileWrite`] (QAPI `GuestFileWrite`, renamed here:
/// the command has that name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFileWriteResult {
    /// How many bytes were written (after base64 decoding).
    pub count: i64,
    /// Whether the end of the file was reached.
    pub eof: bool,
}

/// `guest-file-seek`: moves the position of an open file, as `fseek()`
/// does, and returns the new position (`offset` 0 from
/// [`Cur`](QgaSeek::Cur) just tells it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFileSeek {
    /// The file's handle.
    pub handle: i64,
    /// How far to move, in bytes.
    pub offset: i64,
    /// From where.
    pub whence: GuestFileWhence,
}

/// Where [`GuestFileSeek`] counts from (QAPI `GuestFileWhence`): a name, or
/// the historical number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GuestFileWhence {
    /// 0 for the start, 1 for the current position, 2 for the end (QGA's
    /// own numbers, not necessarily the guest's `SEEK_*`).
    Value(i64),
    /// A name (since 2.6; the preferred form).
    Name(QgaSeek),
}

impl From<QgaSeek> for GuestFileWhence {
    fn from(name: QgaSeek) -> Self {
        GuestFileWhence::Name(name)
    }
}

open_enum! {
    /// The named origins of [`GuestFileSeek`] (QAPI `QGASeek`, since 2.6).
    pub enum QgaSeek {
        /// The start of the file.
        Set = "set",
        /// The current position.
        Cur = "cur",
        /// The end of the file.
        End = "end",
    }
}

/// The result of [`GuestFileSeek`] (QAPI `GuestFileSeek`, renamed here: the
/// command has that name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFileSeekResult {
    /// The new position.
    pub position: i64,
    /// Whether it is at the end of the file.
    pub eof: bool,
}

/// `guest-file-flush`: writes the buffered changes of an open file to the
/// guest's kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFileFlush {
    /// The file's handle.
    pub handle: i64,
}

impl GuestFileClose {
    /// Closes `handle`.
    pub fn new(handle: i64) -> Self {
        GuestFileClose { handle }
    }
}

impl GuestFileRead {
    /// Reads up to 4096 bytes of `handle`.
    pub fn new(handle: i64) -> Self {
        GuestFileRead {
            handle,
            count: None,
        }
    }

    /// Sets [`count`](Self::count).
    pub fn count(mut self, count: i64) -> Self {
        self.count = Some(count);
        self
    }
}

impl GuestFileWrite {
    /// Writes `buf_b64` (base64-encoded bytes) to `handle`.
    pub fn new(handle: i64, buf_b64: impl Into<String>) -> Self {
        GuestFileWrite {
            handle,
            buf_b64: buf_b64.into(),
            count: None,
        }
    }

    /// Sets [`count`](Self::count).
    pub fn count(mut self, count: i64) -> Self {
        self.count = Some(count);
        self
    }
}

impl GuestFileSeek {
    /// Moves `handle` by `offset` from `whence` (a [`QgaSeek`] or a
    /// [`GuestFileWhence`]).
    pub fn new(handle: i64, offset: i64, whence: impl Into<GuestFileWhence>) -> Self {
        GuestFileSeek {
            handle,
            offset,
            whence: whence.into(),
        }
    }
}

impl GuestFileFlush {
    /// Flushes `handle`.
    pub fn new(handle: i64) -> Self {
        GuestFileFlush { handle }
    }
}

// ----- file systems ------------------------------------------------------------------

/// `guest-fsfreeze-status`: whether the guest's file systems are frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GuestFsfreezeStatus;

open_enum! {
    /// The result of [`GuestFsfreezeStatus`] (QAPI `GuestFsfreezeStatus`,
    /// renamed here: the command has that name).
    pub enum GuestFsfreezeState {
        /// Not frozen.
        Thawed = "thawed",
        /// Every local file system is frozen.
        Frozen = "frozen",
    }
}

/// `guest-fsfreeze-freeze`: syncs and freezes every local file system of
/// the guest, until [`GuestFsfreezeThaw`] (on Windows, for 10 seconds at
/// most). Returns how many are frozen; on an error, all are thawed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GuestFsfreezeFreeze;

/// `guest-fsfreeze-freeze-list`: as [`GuestFsfreezeFreeze`], for the
/// listed mount points. Returns how many are frozen.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GuestFsfreezeFreezeList {
    /// The mount points (unknown ones are ignored); absent: every file
    /// system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mountpoints: Option<Vec<String>>,
}

impl GuestFsfreezeFreezeList {
    /// Freezes the file systems mounted at `mountpoints`.
    pub fn new<I>(mountpoints: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        GuestFsfreezeFreezeList {
            mountpoints: Some(mountpoints.into_iter().map(Into::into).collect()),
        }
    }
}

/// `guest-fsfreeze-thaw`: thaws the frozen file systems. Returns how many
/// were thawed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GuestFsfreezeThaw;

/// `guest-get-fsinfo`: the file systems mounted in the guest (network file
/// systems excepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GuestGetFsinfo;

/// A file system of the guest (QAPI `GuestFilesystemInfo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestFilesystemInfo {
    /// The device's name, e.g. `"sda1"`.
    pub name: String,
    /// Where it is mounted, usable with [`GuestFsfreezeFreezeList`].
    pub mountpoint: String,
    /// The file system type, e.g. `"ext4"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Bytes in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    /// The capacity for unprivileged users, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
    /// The capacity for privileged users, in bytes (since 9.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes_privileged: Option<u64>,
    /// The disks it lies on (QAPI `GuestDiskAddress`, kept as JSON); empty
    /// when the agent does not know the disk type.
    #[serde(default)]
    pub disk: Vec<Value>,
}

// ----- network ------------------------------------------------------------------------

/// `guest-network-get-interfaces`: the guest's network interfaces and
/// their addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GuestNetworkGetInterfaces;

/// A network interface of the guest (QAPI `GuestNetworkInterface`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestNetworkInterface {
    /// The interface's name, e.g. `"eth0"`.
    pub name: String,
    /// Its hardware (MAC) address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_address: Option<String>,
    /// Its IP addresses; absent when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_addresses: Option<Vec<GuestIpAddress>>,
    /// Its traffic counters (since 2.11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics: Option<GuestNetworkInterfaceStat>,
}

/// An IP address of an interface (QAPI `GuestIpAddress`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestIpAddress {
    /// The address, e.g. `"192.0.2.2"` or `"fd00::2"`.
    pub ip_address: String,
    /// Its version.
    pub ip_address_type: GuestIpAddressType,
    /// The network prefix length, e.g. 24.
    pub prefix: i64,
}

open_enum! {
    /// The version of a [`GuestIpAddress`] (QAPI `GuestIpAddressType`).
    pub enum GuestIpAddressType {
        /// IPv4.
        Ipv4 = "ipv4",
        /// IPv6.
        Ipv6 = "ipv6",
    }
}

/// The traffic counters of an interface (QAPI
/// `GuestNetworkInterfaceStat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestNetworkInterfaceStat {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Bad packets received.
    pub rx_errs: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Packets that failed to send.
    pub tx_errs: u64,
    /// Packets dropped on sending.
    pub tx_dropped: u64,
}

// ----- shutdown and suspend --------------------------------------------------------

/// `guest-shutdown`: asks the guest OS to power down, halt or reboot.
///
/// The agent sends **no reply when it succeeds** (the guest goes away; see
/// [`NO_REPLY_ON_SUCCESS`]), only an error when it fails: send it with the
/// client's call that expects no reply. Whether the guest did shut down
/// shows on the QMP side (a `SHUTDOWN` event, or QEMU exiting).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GuestShutdown {
    /// `"powerdown"` (the default), `"halt"` or `"reboot"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

impl GuestShutdown {
    /// Powers the guest down (the agent's default mode).
    pub fn new() -> Self {
        GuestShutdown::default()
    }

    /// Sets [`mode`](Self::mode): `"powerdown"`, `"halt"` or `"reboot"`.
    pub fn mode(mut self, mode: impl Into<String>) -> Self {
        self.mode = Some(mode.into());
        self
    }
}

/// `guest-suspend-disk`: suspends the guest to disk (hibernation).
///
/// **No reply when it succeeds** (see [`NO_REPLY_ON_SUCCESS`]); an error
/// (e.g. `Unsupported`) when it fails. Send [`GuestSyncDelimited`] before
/// other commands once the guest is back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GuestSuspendDisk;

/// `guest-suspend-ram`: suspends the guest to RAM (QEMU emits `SUSPEND`).
/// QEMU must be able to wake it (`wakeup-suspend-support` of
/// `query-current-machine`).
///
/// **No reply when it succeeds** (see [`NO_REPLY_ON_SUCCESS`]); an error
/// when it fails. Send [`GuestSyncDelimited`] before other commands once
/// the guest is back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GuestSuspendRam;

/// `guest-suspend-hybrid`: saves the guest to disk and suspends it to RAM
/// (Linux guests). QEMU must be able to wake it.
///
/// **No reply when it succeeds** (see [`NO_REPLY_ON_SUCCESS`]); an error
/// when it fails. Send [`GuestSyncDelimited`] before other commands once
/// the guest is back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GuestSuspendHybrid;

// ----- the Command impls ----------------------------------------------------------------

unit_arguments!(
    GuestPing,
    GuestInfo,
    GuestGetOsinfo,
    GuestGetTime,
    GuestGetHostName,
    GuestGetTimezone,
    GuestGetUsers,
    GuestGetVcpus,
    GuestFsfreezeStatus,
    GuestFsfreezeFreeze,
    GuestFsfreezeThaw,
    GuestGetFsinfo,
    GuestNetworkGetInterfaces,
    GuestSuspendDisk,
    GuestSuspendRam,
    GuestSuspendHybrid
);

impl_command! {
    GuestSyncDelimited => "guest-sync-delimited", i64;
    GuestSync => "guest-sync", i64;
    GuestPing => "guest-ping", Empty;
    GuestInfo => "guest-info", GuestAgentInfo;
    GuestGetOsinfo => "guest-get-osinfo", GuestOSInfo;
    GuestGetTime => "guest-get-time", i64;
    GuestGetHostName => "guest-get-host-name", GuestHostName;
    GuestGetTimezone => "guest-get-timezone", GuestTimezone;
    GuestGetUsers => "guest-get-users", Vec<GuestUser>;
    GuestGetVcpus => "guest-get-vcpus", Vec<GuestLogicalProcessor>;
    GuestExec => "guest-exec", GuestExecResult;
    GuestExecStatus => "guest-exec-status", GuestExecStatusResult;
    GuestFileOpen => "guest-file-open", i64;
    GuestFileClose => "guest-file-close", Empty;
    GuestFileRead => "guest-file-read", GuestFileReadResult;
    GuestFileWrite => "guest-file-write", GuestFileWriteResult;
    GuestFileSeek => "guest-file-seek", GuestFileSeekResult;
    GuestFileFlush => "guest-file-flush", Empty;
    GuestFsfreezeStatus => "guest-fsfreeze-status", GuestFsfreezeState;
    GuestFsfreezeFreeze => "guest-fsfreeze-freeze", i64;
    GuestFsfreezeFreezeList => "guest-fsfreeze-freeze-list", i64;
    GuestFsfreezeThaw => "guest-fsfreeze-thaw", i64;
    GuestGetFsinfo => "guest-get-fsinfo", Vec<GuestFilesystemInfo>;
    GuestNetworkGetInterfaces => "guest-network-get-interfaces", Vec<GuestNetworkInterface>;
    GuestShutdown => "guest-shutdown", Empty;
    GuestSuspendDisk => "guest-suspend-disk", Empty;
    GuestSuspendRam => "guest-suspend-ram", Empty;
    GuestSuspendHybrid => "guest-suspend-hybrid", Empty;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typed::Command;
    use alloc::vec;
    use serde_json::json;

    /// Decodes `json` as the `return` of command `C`.
    fn decode<C: Command>(json: &str) -> C::Returns {
        serde_json::from_str(json).unwrap()
    }

    /// The arguments `command` sends.
    fn args<C: Command>(command: &C) -> Value {
        serde_json::to_value(command).unwrap()
    }

    /// `guest-info` of the real agent 10.0.2, started with
    /// `-a guest-sync-delimited,guest-ping,guest-info,...`.
    const GUEST_INFO: &str = r#"{"version": "10.0.2", "supported_commands": [{"enabled": false, "name": "guest-network-get-route", "success-response": true}, {"enabled": false, "name": "guest-get-load", "success-response": true}, {"enabled": false, "name": "guest-get-cpustats", "success-response": true}, {"enabled": false, "name": "guest-get-diskstats", "success-response": true}, {"enabled": false, "name": "guest-ssh-remove-authorized-keys", "success-response": true}, {"enabled": false, "name": "guest-ssh-add-authorized-keys", "success-response": true}, {"enabled": false, "name": "guest-ssh-get-authorized-keys", "success-response": true}, {"enabled": true, "name": "guest-get-osinfo", "success-response": true}, {"enabled": true, "name": "guest-get-timezone", "success-response": true}, {"enabled": true, "name": "guest-get-users", "success-response": true}, {"enabled": true, "name": "guest-get-host-name", "success-response": true}, {"enabled": true, "name": "guest-exec", "success-response": true}, {"enabled": true, "name": "guest-exec-status", "success-response": true}, {"enabled": false, "name": "guest-get-memory-block-info", "success-response": true}, {"enabled": false, "name": "guest-set-memory-blocks", "success-response": true}, {"enabled": false, "name": "guest-get-memory-blocks", "success-response": true}, {"enabled": false, "name": "guest-set-user-password", "success-response": true}, {"enabled": false, "name": "guest-get-fsinfo", "success-response": true}, {"enabled": false, "name": "guest-get-disks", "success-response": true}, {"enabled": false, "name": "guest-set-vcpus", "success-response": true}, {"enabled": true, "name": "guest-get-vcpus", "success-response": true}, {"enabled": true, "name": "guest-network-get-interfaces", "success-response": true}, {"enabled": false, "name": "guest-suspend-hybrid", "success-response": false}, {"enabled": false, "name": "guest-suspend-ram", "success-response": false}, {"enabled": false, "name": "guest-suspend-disk", "success-response": false}, {"enabled": false, "name": "guest-fstrim", "success-response": true}, {"enabled": false, "name": "guest-fsfreeze-thaw", "success-response": true}, {"enabled": false, "name": "guest-fsfreeze-freeze-list", "success-response": true}, {"enabled": false, "name": "guest-fsfreeze-freeze", "success-response": true}, {"enabled": false, "name": "guest-fsfreeze-status", "success-response": true}, {"enabled": false, "name": "guest-file-flush", "success-response": true}, {"enabled": false, "name": "guest-file-seek", "success-response": true}, {"enabled": true, "name": "guest-file-write", "success-response": true}, {"enabled": true, "name": "guest-file-read", "success-response": true}, {"enabled": true, "name": "guest-file-close", "success-response": true}, {"enabled": true, "name": "guest-file-open", "success-response": true}, {"enabled": false, "name": "guest-shutdown", "success-response": false}, {"enabled": true, "name": "guest-info", "success-response": true}, {"enabled": false, "name": "guest-set-time", "success-response": true}, {"enabled": true, "name": "guest-get-time", "success-response": true}, {"enabled": true, "name": "guest-ping", "success-response": true}, {"enabled": false, "name": "guest-sync", "success-response": true}, {"enabled": true, "name": "guest-sync-delimited", "success-response": true}]}"#;

    /// Every command of this module.
    const NAMES: &[&str] = &[
        GuestSyncDelimited::NAME,
        GuestSync::NAME,
        GuestPing::NAME,
        GuestInfo::NAME,
        GuestGetOsinfo::NAME,
        GuestGetTime::NAME,
        GuestGetHostName::NAME,
        GuestGetTimezone::NAME,
        GuestGetUsers::NAME,
        GuestGetVcpus::NAME,
        GuestExec::NAME,
        GuestExecStatus::NAME,
        GuestFileOpen::NAME,
        GuestFileClose::NAME,
        GuestFileRead::NAME,
        GuestFileWrite::NAME,
        GuestFileSeek::NAME,
        GuestFileFlush::NAME,
        GuestFsfreezeStatus::NAME,
        GuestFsfreezeFreeze::NAME,
        GuestFsfreezeFreezeList::NAME,
        GuestFsfreezeThaw::NAME,
        GuestGetFsinfo::NAME,
        GuestNetworkGetInterfaces::NAME,
        GuestShutdown::NAME,
        GuestSuspendDisk::NAME,
        GuestSuspendRam::NAME,
        GuestSuspendHybrid::NAME,
    ];

    #[test]
    fn guest_info_of_the_real_agent() {
        let info = decode::<GuestInfo>(GUEST_INFO);
        assert_eq!(info.version, "10.0.2");
        assert_eq!(info.supported_commands.len(), 43);
        assert_eq!(
            info.command("guest-shutdown"),
            Some(&GuestAgentCommandInfo {
                name: "guest-shutdown".into(),
                enabled: false,
                success_response: false,
            })
        );
        assert!(info.is_enabled("guest-exec"));
        assert!(!info.is_enabled("guest-fsfreeze-freeze"));
        assert!(!info.is_enabled("guest-no-such-command"));
        // The wire names: `supported_commands` and `success-response`.
        let out = serde_json::to_value(&info).unwrap();
        assert_eq!(
            out["supported_commands"][0]["success-response"],
            json!(true)
        );
    }

    #[test]
    fn every_name_is_a_command_of_the_real_agent() {
        let info = decode::<GuestInfo>(GUEST_INFO);
        for name in NAMES {
            assert!(info.command(name).is_some(), "{name}");
        }
    }

    #[test]
    fn no_reply_list_is_what_the_real_agent_says() {
        let info = decode::<GuestInfo>(GUEST_INFO);
        let mut silent: Vec<&str> = info
            .supported_commands
            .iter()
            .filter(|c| !c.success_response)
            .map(|c| c.name.as_str())
            .collect();
        let mut expected = NO_REPLY_ON_SUCCESS.to_vec();
        silent.sort_unstable();
        expected.sort_unstable();
        assert_eq!(silent, expected);
    }

    #[test]
    fn unit_commands_send_no_arguments() {
        assert_eq!(args(&GuestPing), Value::Null);
        assert_eq!(args(&GuestInfo), Value::Null);
        assert_eq!(args(&GuestSuspendRam), Value::Null);
        assert_eq!(args(&GuestNetworkGetInterfaces), Value::Null);
        // Mock servers decode them from any arguments object.
        let _: GuestGetTime = serde_json::from_value(json!({})).unwrap();
        let _: GuestPing = serde_json::from_value(Value::Null).unwrap();
    }

    #[test]
    fn sync() {
        assert_eq!(args(&GuestSyncDelimited::new(12345)), json!({"id": 12345}));
        assert_eq!(args(&GuestSync::new(-7)), json!({"id": -7}));
        // The reply follows a 0xFF byte, which the framing removes.
        assert_eq!(decode::<GuestSyncDelimited>("12345"), 12345);
        assert_eq!(decode::<GuestPing>("{}"), Empty {});
    }

    #[test]
    fn osinfo_of_the_real_agent() {
        let info = decode::<GuestGetOsinfo>(
            r##"{"name": "Debian GNU/Linux", "kernel-release": "6.18.44-fc-v1098", "version": "12 (bookworm)", "pretty-name": "Debian GNU/Linux 12 (bookworm)", "version-id": "12", "kernel-version": "#1 SMP PREEMPT_DYNAMIC @0", "machine": "x86_64", "id": "debian"}"##,
        );
        assert_eq!(
            info,
            GuestOSInfo {
                kernel_release: Some("6.18.44-fc-v1098".into()),
                kernel_version: Some("#1 SMP PREEMPT_DYNAMIC @0".into()),
                machine: Some("x86_64".into()),
                id: Some("debian".into()),
                name: Some("Debian GNU/Linux".into()),
                pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
                version: Some("12 (bookworm)".into()),
                version_id: Some("12".into()),
                variant: None,
                variant_id: None,
            }
        );
        // Every member is optional, and unknown ones are ignored.
        assert_eq!(
            decode::<GuestGetOsinfo>(r#"{"build-id": "x"}"#),
            GuestOSInfo::default()
        );
    }

    #[test]
    fn time_host_name_timezone_of_the_real_agent() {
        assert_eq!(
            decode::<GuestGetTime>("1796275508214913000"),
            1_796_275_508_214_913_000
        );
        assert_eq!(
            decode::<GuestGetHostName>(r#"{"host-name": "vm"}"#),
            GuestHostName {
                host_name: "vm".into()
            }
        );
        assert_eq!(
            decode::<GuestGetTimezone>(r#"{"zone": "UTC", "offset": 0}"#),
            GuestTimezone {
                zone: Some("UTC".into()),
                offset: 0
            }
        );
        // `zone` is optional.
        assert_eq!(decode::<GuestGetTimezone>(r#"{"offset": 3600}"#).zone, None);
    }

    #[test]
    fn users() {
        // The real agent here has nobody logged in.
        assert_eq!(decode::<GuestGetUsers>("[]"), vec![]);
        // As a Linux agent reports a logged-in user, and a Windows one.
        let users = decode::<GuestGetUsers>(
            r#"[{"login-time": 1714060800.123456, "user": "root"},
                {"login-time": 1714060900.5, "user": "alice", "domain": "CORP"}]"#,
        );
        assert_eq!(users[0].user, "root");
        assert_eq!(users[0].domain, None);
        assert_eq!(users[0].login_time, 1714060800.123456);
        assert_eq!(users[1].domain.as_deref(), Some("CORP"));
    }

    #[test]
    fn vcpus_of_the_real_agent() {
        let vcpus = decode::<GuestGetVcpus>(
            r#"[{"online": true, "can-offline": true, "logical-id": 1}, {"online": true, "can-offline": false, "logical-id": 0}]"#,
        );
        assert_eq!(
            vcpus,
            vec![
                GuestLogicalProcessor {
                    logical_id: 1,
                    online: true,
                    can_offline: Some(true)
                },
                GuestLogicalProcessor {
                    logical_id: 0,
                    online: true,
                    can_offline: Some(false)
                },
            ]
        );
    }

    #[test]
    fn network_interfaces_of_the_real_agent() {
        let interfaces = decode::<GuestNetworkGetInterfaces>(
            r#"[{"name": "lo", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8}, {"ip-address-type": "ipv6", "ip-address": "::1", "prefix": 128}], "statistics": {"tx-packets": 719, "tx-errs": 0, "rx-bytes": 61151, "rx-dropped": 0, "rx-packets": 719, "rx-errs": 0, "tx-bytes": 61151, "tx-dropped": 0}, "hardware-address": "00:00:00:00:00:00"}, {"name": "ifb0", "hardware-address": "d6:1a:75:1c:3b:ab"}, {"name": "ifb1", "hardware-address": "4e:9d:a2:bd:5b:fb"}, {"name": "eth0", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "192.0.2.2", "prefix": 24}, {"ip-address-type": "ipv6", "ip-address": "fd00::2", "prefix": 64}, {"ip-address-type": "ipv6", "ip-address": "fe80::fc:ff:fe00:1", "prefix": 64}], "statistics": {"tx-packets": 7094, "tx-errs": 0, "rx-bytes": 374393834, "rx-dropped": 0, "rx-packets": 13571, "rx-errs": 0, "tx-bytes": 595356, "tx-dropped": 0}, "hardware-address": "02:fc:00:00:00:01"}]"#,
        );
        assert_eq!(interfaces.len(), 4);
        let lo = &interfaces[0];
        assert_eq!(lo.name, "lo");
        assert_eq!(lo.hardware_address.as_deref(), Some("00:00:00:00:00:00"));
        assert_eq!(
            lo.ip_addresses.as_deref().unwrap()[1],
            GuestIpAddress {
                ip_address: "::1".into(),
                ip_address_type: GuestIpAddressType::Ipv6,
                prefix: 128,
            }
        );
        assert_eq!(
            lo.statistics,
            Some(GuestNetworkInterfaceStat {
                rx_bytes: 61151,
                rx_packets: 719,
                rx_errs: 0,
                rx_dropped: 0,
                tx_bytes: 61151,
                tx_packets: 719,
                tx_errs: 0,
                tx_dropped: 0,
            })
        );
        // An interface without addresses or counters.
        assert_eq!(interfaces[1].ip_addresses, None);
        assert_eq!(interfaces[1].statistics, None);
        let eth0 = &interfaces[3];
        assert_eq!(
            eth0.ip_addresses.as_ref().unwrap()[0].ip_address,
            "192.0.2.2"
        );
        assert_eq!(eth0.statistics.unwrap().rx_bytes, 374_393_834);
    }

    #[test]
    fn ip_address_type_is_open() {
        let address: GuestIpAddress = serde_json::from_value(
            json!({"ip-address": "x", "ip-address-type": "ipv8", "prefix": 0}),
        )
        .unwrap();
        assert_eq!(
            address.ip_address_type,
            GuestIpAddressType::Unknown("ipv8".into())
        );
        assert_eq!(
            serde_json::to_value(&address).unwrap()["ip-address-type"],
            json!("ipv8")
        );
    }

    #[test]
    fn exec_arguments() {
        let exec = GuestExec::new("/bin/sh")
            .args(["-c", "echo out; echo err >&2"])
            .env("FOO=bar")
            .input_data("aGVsbG8K")
            .capture_mode("separated");
        assert_eq!(
            args(&exec),
            json!({
                "path": "/bin/sh",
                "arg": ["-c", "echo out; echo err >&2"],
                "env": ["FOO=bar"],
                "input-data": "aGVsbG8K",
                "capture-output": "separated",
            })
        );
        assert_eq!(
            exec.capture_output,
            Some(GuestExecCaptureOutput::Mode(
                GuestExecCaptureOutputMode::Separated
            ))
        );
        assert_eq!(
            args(&GuestExec::new("/bin/true")),
            json!({"path": "/bin/true"})
        );
        assert_eq!(
            args(&GuestExec::new("/bin/true").capture_output(false)),
            json!({"path": "/bin/true", "capture-output": false})
        );
        assert_eq!(
            args(&GuestExec::new("/bin/true").capture_mode(GuestExecCaptureOutputMode::Merged)),
            json!({"path": "/bin/true", "capture-output": "merged"})
        );
        // Mock servers decode both forms of `capture-output`.
        let flag: GuestExec =
            serde_json::from_value(json!({"path": "p", "capture-output": true})).unwrap();
        assert_eq!(
            flag.capture_output,
            Some(GuestExecCaptureOutput::Flag(true))
        );
        let mode: GuestExec =
            serde_json::from_value(json!({"path": "p", "capture-output": "tty"})).unwrap();
        assert_eq!(
            mode.capture_output,
            Some(GuestExecCaptureOutput::Mode(
                GuestExecCaptureOutputMode::Unknown("tty".into())
            ))
        );
    }

    #[test]
    fn exec_of_the_real_agent() {
        assert_eq!(
            decode::<GuestExec>(r#"{"pid": 28577}"#),
            GuestExecResult { pid: 28577 }
        );
        assert_eq!(args(&GuestExecStatus::new(28577)), json!({"pid": 28577}));
        // Still running.
        assert_eq!(
            decode::<GuestExecStatus>(r#"{"exited": false}"#),
            GuestExecStatusResult::default()
        );
        // `capture-output: "separated"`, `exit 3`.
        let status = decode::<GuestExecStatus>(
            r#"{"exitcode": 3, "err-data": "ZXJyCg==", "out-data": "b3V0Cg==", "exited": true}"#,
        );
        assert_eq!(
            status,
            GuestExecStatusResult {
                exited: true,
                exitcode: Some(3),
                out_data: Some("b3V0Cg==".into()),
                err_data: Some("ZXJyCg==".into()),
                ..GuestExecStatusResult::default()
            }
        );
        // `capture-output: "merged"`: both in `out-data`.
        let status = decode::<GuestExecStatus>(
            r#"{"exitcode": 0, "out-data": "b3V0CmVycgo=", "exited": true}"#,
        );
        assert_eq!(status.out_data.as_deref(), Some("b3V0CmVycgo="));
        assert_eq!(status.err_data, None);
        // Killed by SIGTERM.
        let status = decode::<GuestExecStatus>(r#"{"signal": 15, "exited": true}"#);
        assert_eq!((status.exitcode, status.signal), (None, Some(15)));
        // Output cut at the agent's limit (constructed: it is 16 MB).
        let status = decode::<GuestExecStatus>(
            r#"{"exitcode": 0, "out-data": "", "out-truncated": true, "exited": true}"#,
        );
        assert_eq!(status.out_truncated, Some(true));
        assert_eq!(status.err_truncated, None);
        // Round trip, for mock servers.
        let out = serde_json::to_value(&status).unwrap();
        assert_eq!(
            out,
            json!({"exited": true, "exitcode": 0, "out-data": "", "out-truncated": true})
        );
    }

    #[test]
    fn files_of_the_real_agent() {
        assert_eq!(
            args(&GuestFileOpen::new("/tmp/h1/test.txt").mode("w+")),
            json!({"path": "/tmp/h1/test.txt", "mode": "w+"})
        );
        assert_eq!(
            args(&GuestFileOpen::new("/tmp/h1/test.txt")),
            json!({"path": "/tmp/h1/test.txt"})
        );
        assert_eq!(decode::<GuestFileOpen>("1000"), 1000);

        assert_eq!(
            args(&GuestFileWrite::new(1000, "aGVsbG8gd29ybGQK")),
            json!({"handle": 1000, "buf-b64": "aGVsbG8gd29ybGQK"})
        );
        assert_eq!(
            args(&GuestFileWrite::new(1000, "aGVsbG8gd29ybGQK").count(5)),
            json!({"handle": 1000, "buf-b64": "aGVsbG8gd29ybGQK", "count": 5})
        );
        assert_eq!(
            decode::<GuestFileWrite>(r#"{"count": 12, "eof": false}"#),
            GuestFileWriteResult {
                count: 12,
                eof: false
            }
        );

        assert_eq!(args(&GuestFileClose::new(1000)), json!({"handle": 1000}));
        assert_eq!(decode::<GuestFileClose>("{}"), Empty {});

        assert_eq!(
            args(&GuestFileRead::new(1001).count(5)),
            json!({"handle": 1001, "count": 5})
        );
        assert_eq!(args(&GuestFileRead::new(1001)), json!({"handle": 1001}));
        assert_eq!(
            decode::<GuestFileRead>(r#"{"count": 5, "buf-b64": "aGVsbG8=", "eof": false}"#),
            GuestFileReadResult {
                count: 5,
                buf_b64: "aGVsbG8=".into(),
                eof: false
            }
        );
        let last = decode::<GuestFileRead>(r#"{"count": 0, "buf-b64": "", "eof": true}"#);
        assert_eq!((last.count, last.buf_b64.as_str(), last.eof), (0, "", true));

        assert_eq!(args(&GuestFileFlush::new(1001)), json!({"handle": 1001}));
    }

    #[test]
    fn file_seek() {
        assert_eq!(
            args(&GuestFileSeek::new(1001, 0, QgaSeek::Cur)),
            json!({"handle": 1001, "offset": 0, "whence": "cur"})
        );
        assert_eq!(
            args(&GuestFileSeek::new(1001, -4, GuestFileWhence::Value(2))),
            json!({"handle": 1001, "offset": -4, "whence": 2})
        );
        let by_number: GuestFileSeek =
            serde_json::from_value(json!({"handle": 1, "offset": 0, "whence": 0})).unwrap();
        assert_eq!(by_number.whence, GuestFileWhence::Value(0));
        let by_name: GuestFileSeek =
            serde_json::from_value(json!({"handle": 1, "offset": 0, "whence": "end"})).unwrap();
        assert_eq!(by_name.whence, GuestFileWhence::Name(QgaSeek::End));
        assert_eq!(
            decode::<GuestFileSeek>(r#"{"position": 12, "eof": false}"#),
            GuestFileSeekResult {
                position: 12,
                eof: false
            }
        );
    }

    #[test]
    fn fsfreeze() {
        assert_eq!(
            decode::<GuestFsfreezeStatus>(r#""thawed""#),
            GuestFsfreezeState::Thawed
        );
        assert_eq!(
            decode::<GuestFsfreezeStatus>(r#""frozen""#),
            GuestFsfreezeState::Frozen
        );
        assert_eq!(
            decode::<GuestFsfreezeStatus>(r#""thawing""#),
            GuestFsfreezeState::Unknown("thawing".into())
        );
        assert_eq!(decode::<GuestFsfreezeFreeze>("3"), 3);
        assert_eq!(decode::<GuestFsfreezeThaw>("3"), 3);
        assert_eq!(args(&GuestFsfreezeFreeze), Value::Null);
        assert_eq!(
            args(&GuestFsfreezeFreezeList::new(["/", "/var"])),
            json!({"mountpoints": ["/", "/var"]})
        );
        assert_eq!(args(&GuestFsfreezeFreezeList::default()), json!({}));
    }

    #[test]
    fn fsinfo() {
        // As a Linux agent reports a virtio disk.
        let filesystems = decode::<GuestGetFsinfo>(
            r#"[{"name": "vda1", "total-bytes-privileged": 10464022528, "total-bytes": 9915834368,
                 "mountpoint": "/", "disk": [{"serial": "abc", "bus-type": "virtio", "bus": 0, "unit": 0,
                 "pci-controller": {"bus": 0, "slot": 4, "domain": 0, "function": 0},
                 "dev": "/dev/vda1", "target": 0}],
                 "used-bytes": 2147483648, "type": "ext4"},
                {"name": "sr0", "mountpoint": "/media", "type": "iso9660", "disk": []}]"#,
        );
        let root = &filesystems[0];
        assert_eq!(
            (root.name.as_str(), root.mountpoint.as_str()),
            ("vda1", "/")
        );
        assert_eq!(root.kind, "ext4");
        assert_eq!(root.used_bytes, Some(2_147_483_648));
        assert_eq!(root.total_bytes, Some(9_915_834_368));
        assert_eq!(root.total_bytes_privileged, Some(10_464_022_528));
        assert_eq!(root.disk[0]["bus-type"], json!("virtio"));
        let cdrom = &filesystems[1];
        assert_eq!((cdrom.used_bytes, cdrom.total_bytes), (None, None));
        assert!(cdrom.disk.is_empty());
        assert_eq!(
            serde_json::to_value(cdrom).unwrap(),
            json!({"name": "sr0", "mountpoint": "/media", "type": "iso9660", "disk": []})
        );
    }

    #[test]
    fn shutdown_and_suspend() {
        assert_eq!(args(&GuestShutdown::new()), json!({}));
        assert_eq!(
            args(&GuestShutdown::new().mode("reboot")),
            json!({"mode": "reboot"})
        );
        assert_eq!(args(&GuestSuspendDisk), Value::Null);
        assert_eq!(args(&GuestSuspendHybrid), Value::Null);
        for name in [
            GuestShutdown::NAME,
            GuestSuspendDisk::NAME,
            GuestSuspendRam::NAME,
            GuestSuspendHybrid::NAME,
        ] {
            assert!(NO_REPLY_ON_SUCCESS.contains(&name), "{name}");
        }
    }

    #[test]
    fn results_ignore_unknown_members() {
        let info = decode::<GuestInfo>(
            r#"{"version": "99.0", "supported_commands": [{"name": "guest-ping", "enabled": true, "success-response": true, "since": "0.15"}], "build": "x"}"#,
        );
        assert!(info.is_enabled("guest-ping"));
        let status = decode::<GuestExecStatus>(r#"{"exited": true, "exitcode": 0, "rusage": {}}"#);
        assert_eq!(status.exitcode, Some(0));
        let vcpu = decode::<GuestGetVcpus>(r#"[{"logical-id": 0, "online": true, "node": 0}]"#);
        assert_eq!(vcpu[0].can_offline, None);
    }
}
