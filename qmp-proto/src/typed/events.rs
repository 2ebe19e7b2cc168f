//! Typed events, named after their wire names in UpperCamelCase
//! (`JOB_STATUS_CHANGE` is [`JobStatusChange`]). Each type is the event's
//! `data`; members follow QEMU 10.0's QAPI schema.
//!
//! Besides decoding ([`Event::from_event`](super::Event::from_event),
//! [`crate::Event::decode_as`]),
//! the types have [`EventMatcher`] constructors for the waits programs do
//! most, such as [`DeviceDeleted::matching_device`] and
//! [`JobStatusChange::reaching`]:
//!
//! ```
//! use qmp_proto::typed::events::JobStatusChange;
//! use qmp_proto::typed::types::JobStatus;
//! use qmp_proto::{Event, RawJson, Timestamp};
//!
//! let event = Event {
//!     name: "JOB_STATUS_CHANGE".into(),
//!     data: Some(RawJson::from_text(r#"{"status": "concluded", "id": "job0"}"#).unwrap()),
//!     timestamp: Timestamp::default(),
//! };
//! let change = event.decode_as::<JobStatusChange>().unwrap().unwrap();
//! assert_eq!(change.status, JobStatus::Concluded);
//! assert!(JobStatusChange::reaching("job0", JobStatus::Concluded).matches(&event));
//! assert!(!JobStatusChange::reaching("job1", JobStatus::Concluded).matches(&event));
//! ```

use super::types::{
    BlockErrorAction, GuestPanicAction, GuestPanicInformationType, IoOperationType, JobStatus,
    JobType, ShutdownCause,
};
use super::{impl_event, EventMatcher};
use alloc::string::String;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

// ----- run state -------------------------------------------------------------

/// `SHUTDOWN`: the guest shut down, or QEMU was told to exit. QEMU exits
/// next, unless `-no-shutdown` keeps it alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shutdown {
    /// Whether the guest asked for it (false: the host did, e.g. `quit`
    /// or a signal).
    pub guest: bool,
    /// What caused it.
    pub reason: ShutdownCause,
}

/// `POWERDOWN`: the power button was pressed (`system_powerdown`); the
/// guest decides what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Powerdown {}

/// `RESET`: the machine was reset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reset {
    /// Whether the guest asked for it (false: the host did, e.g.
    /// `system_reset`).
    pub guest: bool,
    /// What caused it.
    pub reason: ShutdownCause,
}

/// `STOP`: the VM stopped (by `stop`, an I/O error policy, a watchdog, a
/// panic, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stop {}

/// `RESUME`: the VM runs again (after `cont`, or when started).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Resume {}

/// `SUSPEND`: the guest suspended itself (ACPI S3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Suspend {}

/// `WAKEUP`: the guest woke up from suspend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Wakeup {}

/// `GUEST_PANICKED`: the guest reported a panic (through pvpanic, Hyper-V
/// crash registers or s390 firmware).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestPanicked {
    /// What QEMU did about it.
    pub action: GuestPanicAction,
    /// Details the guest gave, when it gave any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<GuestPanicInformation>,
}

/// The details of a guest panic (QAPI `GuestPanicInformation`): their
/// kind, and the kind's members untyped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestPanicInformation {
    /// Which kind of details these are.
    #[serde(rename = "type")]
    pub kind: GuestPanicInformationType,
    /// The members of that kind (e.g. `arg1` to `arg5` for Hyper-V).
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

// ----- devices -----------------------------------------------------------------

/// `DEVICE_DELETED`: a device is gone (unplugged and removed from QEMU),
/// the answer to `device_del`. Sent for devices without an id too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDeleted {
    /// The device's id, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The device's QOM path.
    pub path: String,
}

impl DeviceDeleted {
    /// Whether this is the deletion of `device`, an id or a QOM path.
    pub fn is_device(&self, device: &str) -> bool {
        self.device.as_deref() == Some(device) || self.path == device
    }

    /// Matches the deletion of `device`, given by id or by QOM path (as
    /// go-qmp's `WaitDeviceDeletedEvent`).
    pub fn matching_device(device: impl Into<String>) -> EventMatcher<Self> {
        let device = device.into();
        EventMatcher::new(move |event: &Self| event.is_device(&device))
    }
}

/// Which tray positions a [`DeviceTrayMoved`] matcher accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TrayState {
    /// Opened or closed.
    #[default]
    Any,
    /// Opened.
    Open,
    /// Closed.
    Closed,
}

impl TrayState {
    /// Whether a tray whose `tray-open` is `open` is in this state.
    pub fn accepts(self, open: bool) -> bool {
        match self {
            TrayState::Any => true,
            TrayState::Open => open,
            TrayState::Closed => !open,
        }
    }
}

/// `DEVICE_TRAY_MOVED`: the tray of a removable-media device (a CD-ROM
/// drive) was opened or closed, by the guest or by a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DeviceTrayMoved {
    /// The block device's name; present for compatibility, and empty when
    /// the medium has no device name (with `-blockdev`).
    pub device: String,
    /// The guest device's id or QOM path.
    pub id: String,
    /// Whether the tray is now open.
    pub tray_open: bool,
}

impl DeviceTrayMoved {
    /// Matches tray moves of `device` (a block device name, a guest
    /// device id or a QOM path) into `state` (as go-qmp's
    /// `WaitDeviceTrayMovedEvent`, `...OpenedEvent` and `...ClosedEvent`).
    pub fn for_device(device: impl Into<String>, state: TrayState) -> EventMatcher<Self> {
        let device = device.into();
        EventMatcher::new(move |event: &Self| {
            (event.id == device || (!event.device.is_empty() && event.device == device))
                && state.accepts(event.tray_open)
        })
    }
}

// ----- jobs --------------------------------------------------------------------

/// `JOB_STATUS_CHANGE`: a job moved to another state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatusChange {
    /// The job's id.
    pub id: String,
    /// Its new state.
    pub status: JobStatus,
}

impl JobStatusChange {
    /// Matches job `id` entering `status` (as go-qmp's
    /// `WaitJobStatusChangeEvent`).
    pub fn reaching(id: impl Into<String>, status: JobStatus) -> EventMatcher<Self> {
        let id = id.into();
        EventMatcher::new(move |event: &Self| event.id == id && event.status == status)
    }

    /// Matches every state change of job `id`.
    pub fn for_job(id: impl Into<String>) -> EventMatcher<Self> {
        let id = id.into();
        EventMatcher::new(move |event: &Self| event.id == id)
    }
}

/// `BLOCK_JOB_COMPLETED`: a block job finished, successfully or not
/// ([`error`](Self::error) tells). Also sent after a cancelled mirror that
/// was ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockJobCompleted {
    /// The job's kind.
    #[serde(rename = "type")]
    pub kind: JobType,
    /// The job's id (named `device` for historical reasons).
    pub device: String,
    /// The final estimate of the total work, in bytes.
    pub len: i64,
    /// The work done, in bytes.
    pub offset: i64,
    /// The speed limit, in bytes per second.
    pub speed: i64,
    /// Why it failed; absent on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `BLOCK_JOB_CANCELLED`: a block job was cancelled before it finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockJobCancelled {
    /// The job's kind.
    #[serde(rename = "type")]
    pub kind: JobType,
    /// The job's id.
    pub device: String,
    /// The estimate of the total work, in bytes.
    pub len: i64,
    /// The work done, in bytes.
    pub offset: i64,
    /// The speed limit, in bytes per second.
    pub speed: i64,
}

/// `BLOCK_JOB_ERROR`: a block job hit an I/O error. (go-qmp never filled
/// `action`; here it is a required member.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockJobError {
    /// The job's id.
    pub device: String,
    /// The kind of I/O that failed.
    pub operation: IoOperationType,
    /// What the job did about it.
    pub action: BlockErrorAction,
}

/// `BLOCK_JOB_READY`: a block job can be completed now (`job-complete`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockJobReady {
    /// The job's kind.
    #[serde(rename = "type")]
    pub kind: JobType,
    /// The job's id.
    pub device: String,
    /// The estimate of the total work, in bytes.
    pub len: i64,
    /// The work done, in bytes.
    pub offset: i64,
    /// The speed limit, in bytes per second.
    pub speed: i64,
}

/// `BLOCK_JOB_PENDING`: a block job is done and waits to be finalized
/// (`job-finalize`, with `auto-finalize: false`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockJobPending {
    /// The job's kind.
    #[serde(rename = "type")]
    pub kind: JobType,
    /// The job's id.
    pub id: String,
}

/// `BLOCK_IO_ERROR`: a guest device's disk I/O failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockIoError {
    /// The guest device's QOM path. Since QEMU 9.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qom_path: Option<String>,
    /// The block device's name; empty when it has none.
    pub device: String,
    /// The node the error is reported for (the root node attached to the
    /// device, not necessarily where it happened); absent when the drive
    /// is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The kind of I/O that failed.
    pub operation: IoOperationType,
    /// What QEMU did about it (with `stop`, a `STOP` event follows).
    pub action: BlockErrorAction,
    /// Whether the disk ran out of space (present only when the device
    /// reports an I/O status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nospace: Option<bool>,
    /// A description for people (not to be parsed).
    #[serde(default)]
    pub reason: String,
}

/// Matchers of block job events by job id, which these events call
/// `device`.
macro_rules! for_device {
    ($($ty:ident: $what:literal;)*) => {
        $(
            impl $ty {
                #[doc = concat!("Matches the ", $what, " of the block job `device` (its id).")]
                pub fn for_device(device: impl Into<String>) -> EventMatcher<Self> {
                    let device = device.into();
                    EventMatcher::new(move |event: &Self| event.device == device)
                }
            }
        )*
    };
}

for_device! {
    BlockJobCompleted: "completion (as go-qmp's `FindBlockJobCompletedEvent`)";
    BlockJobCancelled: "cancellation";
    BlockJobError: "errors (as go-qmp's `FindBlockJobErrorEvent`)";
    BlockJobReady: "readiness";
}

impl BlockJobPending {
    /// Matches block job `id` becoming pending.
    pub fn for_job(id: impl Into<String>) -> EventMatcher<Self> {
        let id = id.into();
        EventMatcher::new(move |event: &Self| event.id == id)
    }
}

impl_event! {
    Shutdown => "SHUTDOWN";
    Powerdown => "POWERDOWN";
    Reset => "RESET";
    Stop => "STOP";
    Resume => "RESUME";
    Suspend => "SUSPEND";
    Wakeup => "WAKEUP";
    GuestPanicked => "GUEST_PANICKED";
    DeviceDeleted => "DEVICE_DELETED";
    DeviceTrayMoved => "DEVICE_TRAY_MOVED";
    JobStatusChange => "JOB_STATUS_CHANGE";
    BlockJobCompleted => "BLOCK_JOB_COMPLETED";
    BlockJobCancelled => "BLOCK_JOB_CANCELLED";
    BlockJobError => "BLOCK_JOB_ERROR";
    BlockJobReady => "BLOCK_JOB_READY";
    BlockJobPending => "BLOCK_JOB_PENDING";
    BlockIoError => "BLOCK_IO_ERROR";
}
