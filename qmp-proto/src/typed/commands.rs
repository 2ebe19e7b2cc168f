//! Typed commands, named after their wire names in UpperCamelCase
//! (`query-status` is [`QueryStatus`]), with their result types. Members
//! follow QEMU 10.0's QAPI schema.
//!
//! Each type is the command's arguments: build it, then run it with an
//! adapter's `execute` or [`Client::execute_command`](crate::Client::execute_command).
//! Commands without arguments are unit structs.
//!
//! The large unions of the schema (the options of `blockdev-add` and
//! `blockdev-create` for every driver, the properties of every device of
//! `device_add`) have their common members typed and the rest in a JSON
//! map, so any driver or device works:
//!
//! ```
//! use qmp_proto::typed::commands::{BlockdevAdd, DeviceAdd};
//!
//! let node = BlockdevAdd::new("null-co", "disk0").option("size", 1 << 20);
//! assert_eq!(
//!     serde_json::to_value(&node).unwrap(),
//!     serde_json::json!({"driver": "null-co", "node-name": "disk0", "size": 1048576}),
//! );
//! let tablet = DeviceAdd::new("usb-tablet").id("tablet0").bus("xhci.0");
//! assert_eq!(
//!     serde_json::to_value(&tablet).unwrap(),
//!     serde_json::json!({"driver": "usb-tablet", "id": "tablet0", "bus": "xhci.0"}),
//! );
//! ```

use super::types::{
    BitmapSyncMode, BlockDeviceIoStatus, BlockdevDetectZeroesOptions, BlockdevDiscardOptions,
    BlockdevOnError, JobStatus, JobType, MirrorCopyMode, MirrorSyncMode, RunState,
};
use super::{impl_command, unit_arguments, Empty};
use crate::message::{Capability, Version};
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use super::schema::SchemaInfo;
pub use super::transaction::Transaction;

// ----- control: negotiation, version, commands, name, HMP, quit --------------

/// `qmp_capabilities`: leaves capabilities negotiation mode, enabling the
/// listed capabilities. The clients of this crate send it themselves; it is
/// here for mock servers and custom loops.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QmpCapabilities {
    /// The capabilities to enable (of those the greeting offered).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enable: Vec<Capability>,
}

/// `query-version`: QEMU's version. Returns [`Version`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct QueryVersion;

/// `query-commands`: the commands this QEMU accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct QueryCommands;

/// One command in the result of [`QueryCommands`] (QAPI `CommandInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandInfo {
    /// The command's name.
    pub name: String,
}

/// `query-qmp-schema`: the whole QAPI schema of this QEMU, as
/// introspection data (about 250 KB). [`Schema`](super::schema::Schema)
/// indexes it; the adapters fetch it once per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct QueryQmpSchema;

/// `query-name`: the guest name given with `-name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct QueryName;

/// The result of [`QueryName`] (QAPI `NameInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NameInfo {
    /// The guest name; absent when none was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `human-monitor-command`: runs a command of the human monitor (HMP) and
/// returns its output text. HMP output is meant for people and changes
/// between releases: prefer a QMP command where there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct HumanMonitorCommand {
    /// The command line, e.g. `"info version"`.
    pub command_line: String,
    /// The CPU that commands which depend on one use (default: the
    /// monitor's current CPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_index: Option<i64>,
}

impl HumanMonitorCommand {
    /// Runs `command_line`.
    pub fn new(command_line: impl Into<String>) -> Self {
        HumanMonitorCommand {
            command_line: command_line.into(),
            cpu_index: None,
        }
    }
}

/// `quit`: makes QEMU exit at once (a `SHUTDOWN` event with reason
/// `host-qmp-quit` is sent first). The reply may or may not arrive before
/// the connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Quit;

// ----- run state ---------------------------------------------------------------

/// `query-status`: whether the VM runs, and its run state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct QueryStatus;

/// The result of [`QueryStatus`] (QAPI `StatusInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// Whether the guest's CPUs run.
    pub running: bool,
    /// The detailed state.
    pub status: RunState,
}

/// `stop`: pauses the VM (a `STOP` event follows). With `-S` before
/// `cont`, it cancels the pending start instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Stop;

/// `cont`: resumes a paused VM, or starts one launched with `-S` (a
/// `RESUME` event follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Cont;

/// `system_powerdown`: presses the power button (ACPI). QEMU sends
/// `POWERDOWN`; whether the guest shuts down is up to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SystemPowerdown;

/// `system_reset`: resets the machine at once, as the reset button does
/// (a `RESET` event follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SystemReset;

// ----- devices -------------------------------------------------------------------

/// `device_add`: plugs in a device. The properties other than `driver`,
/// `bus` and `id` depend on the device and go in
/// [`properties`](Self::properties).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DeviceAdd {
    /// The device's type name, e.g. `"virtio-blk-pci"` or `"usb-tablet"`.
    pub driver: String,
    /// The bus to plug it into (default: the first free bus of the right
    /// kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
    /// The device's id, by which `device_del` and events name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The device's own properties.
    #[serde(flatten)]
    pub properties: Map<String, Value>,
}

impl DeviceAdd {
    /// A device of type `driver`.
    pub fn new(driver: impl Into<String>) -> Self {
        DeviceAdd {
            driver: driver.into(),
            ..DeviceAdd::default()
        }
    }

    /// Sets [`id`](Self::id).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets [`bus`](Self::bus).
    pub fn bus(mut self, bus: impl Into<String>) -> Self {
        self.bus = Some(bus.into());
        self
    }

    /// Sets one device property.
    pub fn property(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }
}

/// `device_del`: asks to unplug a device. The reply only says the request
/// was taken: the device is gone when `DEVICE_DELETED` comes, which for
/// PCI devices needs the guest's cooperation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDel {
    /// The device's id or QOM path.
    pub id: String,
}

impl DeviceDel {
    /// Unplugs the device `id` (an id or a QOM path).
    pub fn new(id: impl Into<String>) -> Self {
        DeviceDel { id: id.into() }
    }
}

// ----- block nodes ---------------------------------------------------------------

/// Cache settings of a block node (QAPI `BlockdevCacheOptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockdevCacheOptions {
    /// Bypass the host page cache (`O_DIRECT`). Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct: Option<bool>,
    /// Ignore flush requests. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_flush: Option<bool>,
}

/// `blockdev-add`: creates a block node (QAPI `BlockdevOptions`). The
/// members every driver has are typed; the driver's own go in
/// [`options`](Self::options).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockdevAdd {
    /// The block driver, e.g. `"file"`, `"qcow2"`, `"null-co"`.
    pub driver: String,
    /// The node's name, by which other commands refer to it. Required for
    /// a node at the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// What to do with discard requests. Default: ignore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discard: Option<BlockdevDiscardOptions>,
    /// Cache settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<BlockdevCacheOptions>,
    /// Whether the node starts active (false: inactive, as on the
    /// destination of a migration). Since QEMU 10.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// Open read-only. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Fall back to read-only when read-write is refused, and reopen
    /// read-write when a writer appears. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_read_only: Option<bool>,
    /// Share the image with other users even where that is unsafe
    /// (requires read-only). Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_share: Option<bool>,
    /// Whether writes of zeroes are detected. Default: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect_zeroes: Option<BlockdevDetectZeroesOptions>,
    /// The driver's own options (e.g. `filename` for `file`, `file` for
    /// `qcow2`, `size` for `null-co`).
    #[serde(flatten)]
    pub options: Map<String, Value>,
}

impl BlockdevAdd {
    /// A node of `driver` named `node_name`.
    pub fn new(driver: impl Into<String>, node_name: impl Into<String>) -> Self {
        BlockdevAdd {
            driver: driver.into(),
            node_name: Some(node_name.into()),
            ..BlockdevAdd::default()
        }
    }

    /// Sets one driver option.
    pub fn option(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.options.insert(name.into(), value.into());
        self
    }
}

/// `blockdev-del`: removes a block node that nothing uses any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockdevDel {
    /// The node's name.
    pub node_name: String,
}

impl BlockdevDel {
    /// Removes node `node_name`.
    pub fn new(node_name: impl Into<String>) -> Self {
        BlockdevDel {
            node_name: node_name.into(),
        }
    }
}

/// `query-named-block-nodes`: every block node with a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueryNamedBlockNodes {
    /// Leave out each node's backing chain in [`ImageInfo::backing_image`]
    /// (smaller replies). Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flat: Option<bool>,
}

/// Cache settings as reported (QAPI `BlockdevCacheInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockdevCacheInfo {
    /// Writes complete once in the host cache.
    pub writeback: bool,
    /// The host page cache is bypassed.
    pub direct: bool,
    /// Flushes are ignored.
    pub no_flush: bool,
}

/// An image as `qemu-img info` describes it (QAPI `ImageInfo`, its common
/// members).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageInfo {
    /// The image's file name.
    pub filename: String,
    /// The image's format (the driver).
    pub format: String,
    /// Whether the image is marked dirty (not cleanly closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dirty_flag: Option<bool>,
    /// Bytes the image takes on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_size: Option<i64>,
    /// The size the guest sees, in bytes.
    pub virtual_size: i64,
    /// The format's cluster size, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_size: Option<i64>,
    /// Whether the image is encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    /// Whether the image is compressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compressed: Option<bool>,
    /// The backing file's name as written in the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backing_filename: Option<String>,
    /// The backing file's name, resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_backing_filename: Option<String>,
    /// The backing file's format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backing_filename_format: Option<String>,
    /// Format-specific details (`{"type": FORMAT, "data": {...}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_specific: Option<Value>,
    /// The backing image, described the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backing_image: Option<alloc::boxed::Box<ImageInfo>>,
}

/// A block node (QAPI `BlockDeviceInfo`, its common members; the I/O
/// throttling limits other than the totals are left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockDeviceInfo {
    /// The image's file name.
    pub file: String,
    /// The node's name.
    #[serde(rename = "node-name", default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Read-only.
    pub ro: bool,
    /// The driver (format) name.
    pub drv: String,
    /// The backing file's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backing_file: Option<String>,
    /// How many backing files the chain has.
    pub backing_file_depth: i64,
    /// Whether the node is active (not inactivated for migration). Since
    /// QEMU 10.0: older QEMUs leave it out, and it reads as true.
    #[serde(default = "yes")]
    pub active: bool,
    /// Encrypted.
    pub encrypted: bool,
    /// Whether writes of zeroes are detected.
    pub detect_zeroes: BlockdevDetectZeroesOptions,
    /// Throttling: total bytes per second (0: none).
    pub bps: i64,
    /// Throttling: total I/O operations per second (0: none).
    pub iops: i64,
    /// The image.
    pub image: ImageInfo,
    /// Cache settings.
    pub cache: BlockdevCacheInfo,
    /// The write threshold in bytes (0: none).
    pub write_threshold: i64,
    /// The node's dirty bitmaps.
    #[serde(
        rename = "dirty-bitmaps",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dirty_bitmaps: Option<Vec<BlockDirtyInfo>>,
}

/// A dirty bitmap as reported (QAPI `BlockDirtyInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDirtyInfo {
    /// The bitmap's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How many bytes it marks dirty.
    pub count: i64,
    /// Bytes per bit.
    pub granularity: u32,
    /// Whether it records writes (it is enabled).
    pub recording: bool,
    /// Whether an operation uses it, so that it cannot be changed.
    pub busy: bool,
    /// Whether it is saved in the image.
    pub persistent: bool,
    /// Whether it was not saved cleanly and cannot be trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconsistent: Option<bool>,
}

fn yes() -> bool {
    true
}

/// `blockdev-create`: starts a job that creates an image (format the
/// node given in the options). Follow it with `JOB_STATUS_CHANGE`, then
/// dismiss it with [`JobDismiss`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockdevCreate {
    /// The new job's id.
    pub job_id: String,
    /// What to create.
    pub options: BlockdevCreateOptions,
}

/// What [`BlockdevCreate`] creates (QAPI `BlockdevCreateOptions`): the
/// driver, and its own options.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BlockdevCreateOptions {
    /// The driver, e.g. `"file"` (with `filename` and `size`) or `"qcow2"`
    /// (with `file` and `size`).
    pub driver: String,
    /// The driver's options.
    #[serde(flatten)]
    pub options: Map<String, Value>,
}

impl BlockdevCreate {
    /// A job `job_id` creating an image with `driver`.
    pub fn new(job_id: impl Into<String>, driver: impl Into<String>) -> Self {
        BlockdevCreate {
            job_id: job_id.into(),
            options: BlockdevCreateOptions {
                driver: driver.into(),
                options: Map::new(),
            },
        }
    }

    /// Sets one driver option.
    pub fn option(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.options.options.insert(name.into(), value.into());
        self
    }
}

/// `blockdev-mirror`: starts a job copying a node's data to another node
/// and then mirroring new writes to it. When it is `ready`, complete it
/// ([`JobComplete`]) to switch over, or cancel it to keep the copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockdevMirror {
    /// The job's id (default: the source's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The source: a node name or device name.
    pub device: String,
    /// The target node.
    pub target: String,
    /// The node that the target replaces on completion (default: the
    /// source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// What to copy.
    pub sync: MirrorSyncMode,
    /// Maximum speed in bytes per second (0: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<i64>,
    /// The granularity of the dirty tracking, a power of 2 from 512 B to
    /// 64 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granularity: Option<u32>,
    /// The copy buffer's size, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buf_size: Option<i64>,
    /// What to do on a read error of the source. Default: report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_source_error: Option<BlockdevOnError>,
    /// What to do on a write error of the target. Default: report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_target_error: Option<BlockdevOnError>,
    /// A name for the filter node the job inserts above the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_node_name: Option<String>,
    /// How guest writes are copied. Default: background.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_mode: Option<MirrorCopyMode>,
    /// Finalize by itself when done (false: wait in `pending` for
    /// [`JobFinalize`]). Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_finalize: Option<bool>,
    /// Disappear by itself once concluded (false: wait for
    /// [`JobDismiss`]). Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_dismiss: Option<bool>,
}

impl BlockdevMirror {
    /// Mirrors `device` to `target`, copying `sync`.
    pub fn new(device: impl Into<String>, target: impl Into<String>, sync: MirrorSyncMode) -> Self {
        BlockdevMirror {
            job_id: None,
            device: device.into(),
            target: target.into(),
            replaces: None,
            sync,
            speed: None,
            granularity: None,
            buf_size: None,
            on_source_error: None,
            on_target_error: None,
            filter_node_name: None,
            copy_mode: None,
            auto_finalize: None,
            auto_dismiss: None,
        }
    }

    /// Sets [`job_id`](Self::job_id).
    pub fn job_id(mut self, job_id: impl Into<String>) -> Self {
        self.job_id = Some(job_id.into());
        self
    }
}

/// `blockdev-backup`: starts a job copying a point-in-time image of a
/// node to another node. Also a [transaction](super::transaction) action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockdevBackup {
    /// The job's id (default: the source's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The source: a node name or device name.
    pub device: String,
    /// The target node.
    pub target: String,
    /// What to copy.
    pub sync: MirrorSyncMode,
    /// Maximum speed in bytes per second (0: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<i64>,
    /// The dirty bitmap that says what to copy (sync `incremental` or
    /// `bitmap`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitmap: Option<String>,
    /// When the bitmap is updated (with a bitmap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitmap_mode: Option<BitmapSyncMode>,
    /// Compress the data written (the target must support it). Default:
    /// false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress: Option<bool>,
    /// What to do on a read error of the source. Default: report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_source_error: Option<BlockdevOnError>,
    /// What to do on a write error of the target. Default: report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_target_error: Option<BlockdevOnError>,
    /// Finalize by itself when done. Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_finalize: Option<bool>,
    /// Disappear by itself once concluded. Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_dismiss: Option<bool>,
    /// A name for the filter node the job inserts above the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_node_name: Option<String>,
    /// Discard the copied data from the source (for images that are
    /// thrown away afterwards). Since QEMU 9.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discard_source: Option<bool>,
}

impl BlockdevBackup {
    /// Backs `device` up to `target`, copying `sync`.
    pub fn new(device: impl Into<String>, target: impl Into<String>, sync: MirrorSyncMode) -> Self {
        BlockdevBackup {
            job_id: None,
            device: device.into(),
            target: target.into(),
            sync,
            speed: None,
            bitmap: None,
            bitmap_mode: None,
            compress: None,
            on_source_error: None,
            on_target_error: None,
            auto_finalize: None,
            auto_dismiss: None,
            filter_node_name: None,
            discard_source: None,
        }
    }

    /// Sets [`job_id`](Self::job_id).
    pub fn job_id(mut self, job_id: impl Into<String>) -> Self {
        self.job_id = Some(job_id.into());
        self
    }
}

// ----- jobs ------------------------------------------------------------------------

/// `query-block-jobs`: the block jobs that exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct QueryBlockJobs;

/// A block job (QAPI `BlockJobInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BlockJobInfo {
    /// The job's kind.
    #[serde(rename = "type")]
    pub kind: JobType,
    /// The job's id (named `device` for historical reasons).
    pub device: String,
    /// The estimated total work, in bytes; it may change while the job
    /// runs.
    pub len: i64,
    /// The work done so far, in the same unit as `len`.
    pub offset: i64,
    /// Whether the job is working right now (false while it sleeps or is
    /// paused).
    pub busy: bool,
    /// Whether the user paused it.
    pub paused: bool,
    /// Its speed limit in bytes per second (0: none).
    pub speed: i64,
    /// The status of its I/O.
    pub io_status: BlockDeviceIoStatus,
    /// Whether it can be completed ([`JobComplete`]).
    pub ready: bool,
    /// Its state.
    pub status: JobStatus,
    /// Whether it finalizes by itself.
    pub auto_finalize: bool,
    /// Whether it disappears by itself once concluded.
    pub auto_dismiss: bool,
    /// Why it failed, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Mirror jobs: whether guest writes are copied synchronously now.
    /// Since QEMU 8.2 (absent before, and for other jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actively_synced: Option<bool>,
}

/// `query-jobs`: every job (block or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct QueryJobs;

/// A job (QAPI `JobInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct JobInfo {
    /// The job's id.
    pub id: String,
    /// The job's kind.
    #[serde(rename = "type")]
    pub kind: JobType,
    /// Its state.
    pub status: JobStatus,
    /// The work done so far (in a unit of the job's choosing).
    pub current_progress: i64,
    /// The estimated total work, in the same unit; it may change.
    pub total_progress: i64,
    /// Why it failed, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `job-cancel`: cancels a job. A ready mirror stops and keeps its copy
/// without switching over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCancel {
    /// The job's id.
    pub id: String,
}

/// `job-complete`: completes a job that is ready (mirror, active commit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobComplete {
    /// The job's id.
    pub id: String,
}

/// `job-dismiss`: removes a concluded job (one with `auto-dismiss: false`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDismiss {
    /// The job's id.
    pub id: String,
}

/// `job-finalize`: finalizes a pending job (one with `auto-finalize:
/// false`), with the other jobs of its transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFinalize {
    /// The job's id.
    pub id: String,
}

macro_rules! job_id_constructors {
    ($($ty:ident),*) => {
        $(
            impl $ty {
                /// For job `id`.
                pub fn new(id: impl Into<String>) -> Self {
                    $ty { id: id.into() }
                }
            }
        )*
    };
}
job_id_constructors!(JobCancel, JobComplete, JobDismiss, JobFinalize);

// ----- file descriptors --------------------------------------------------------

/// `getfd`: names the file descriptor passed with this command (SCM_RIGHTS
/// over a Unix socket), for commands that take an fd by name. Run it with
/// an adapter's `execute_with_fd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Getfd {
    /// The name; an fd of the same name is replaced.
    pub fdname: String,
}

/// `closefd`: closes a descriptor named with [`Getfd`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closefd {
    /// Its name.
    pub fdname: String,
}

impl Getfd {
    /// Names the passed descriptor `fdname`.
    pub fn new(fdname: impl Into<String>) -> Self {
        Getfd {
            fdname: fdname.into(),
        }
    }
}

impl Closefd {
    /// Closes descriptor `fdname`.
    pub fn new(fdname: impl Into<String>) -> Self {
        Closefd {
            fdname: fdname.into(),
        }
    }
}

/// `add-fd`: adds the file descriptor passed with this command to an fd
/// set, which `/dev/fdset/ID` file names refer to. Run it with an
/// adapter's `execute_with_fd`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AddFd {
    /// The set to add to (default: a new set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fdset_id: Option<i64>,
    /// A free-form note kept with the descriptor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opaque: Option<String>,
}

/// The result of [`AddFd`] (QAPI `AddfdInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AddfdInfo {
    /// The set the descriptor was added to.
    pub fdset_id: i64,
    /// The descriptor's number inside QEMU.
    pub fd: i64,
}

/// `remove-fd`: removes a descriptor from an fd set, or the whole set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RemoveFd {
    /// The set.
    pub fdset_id: i64,
    /// The descriptor (QEMU's number); absent: every descriptor of the
    /// set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fd: Option<i64>,
}

/// `query-fdsets`: the fd sets and their descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct QueryFdsets;

/// An fd set (QAPI `FdsetInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FdsetInfo {
    /// The set's id.
    pub fdset_id: i64,
    /// Its descriptors.
    pub fds: Vec<FdsetFdInfo>,
}

/// A descriptor in an fd set (QAPI `FdsetFdInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdsetFdInfo {
    /// QEMU's number for it.
    pub fd: i64,
    /// The note given with [`AddFd`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opaque: Option<String>,
}

// ----- QOM -------------------------------------------------------------------------

/// `qom-list`: the properties of a QOM object (children are properties
/// of type `child<TYPE>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QomList {
    /// The object's path, absolute (`/machine`) or partial (a unique
    /// suffix).
    pub path: String,
}

/// A QOM property (QAPI `ObjectPropertyInfo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ObjectPropertyInfo {
    /// The property's name.
    pub name: String,
    /// Its type: a QAPI type name, or `child<T>` / `link<T>` for
    /// references to objects.
    #[serde(rename = "type")]
    pub kind: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its default value, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value: Option<Value>,
}

/// `qom-get`: reads a QOM property. Returns its value as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QomGet {
    /// The object's path.
    pub path: String,
    /// The property.
    pub property: String,
}

/// `qom-set`: writes a QOM property (many can only be set before the
/// object is realized).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QomSet {
    /// The object's path.
    pub path: String,
    /// The property.
    pub property: String,
    /// The new value.
    pub value: Value,
}

impl QomList {
    /// Lists the properties of the object at `path`.
    pub fn new(path: impl Into<String>) -> Self {
        QomList { path: path.into() }
    }
}

impl QomGet {
    /// Reads `property` of the object at `path`.
    pub fn new(path: impl Into<String>, property: impl Into<String>) -> Self {
        QomGet {
            path: path.into(),
            property: property.into(),
        }
    }
}

impl QomSet {
    /// Sets `property` of the object at `path` to `value`.
    pub fn new(
        path: impl Into<String>,
        property: impl Into<String>,
        value: impl Into<Value>,
    ) -> Self {
        QomSet {
            path: path.into(),
            property: property.into(),
            value: value.into(),
        }
    }
}

unit_arguments!(
    QueryQmpSchema,
    QueryVersion,
    QueryCommands,
    QueryName,
    Quit,
    QueryStatus,
    Stop,
    Cont,
    SystemPowerdown,
    SystemReset,
    QueryBlockJobs,
    QueryJobs,
    QueryFdsets
);

impl_command! {
    QmpCapabilities => "qmp_capabilities", Empty;
    QueryVersion => "query-version", Version;
    QueryCommands => "query-commands", Vec<CommandInfo>;
    QueryQmpSchema => "query-qmp-schema", Vec<SchemaInfo>;
    QueryName => "query-name", NameInfo;
    HumanMonitorCommand => "human-monitor-command", String;
    Quit => "quit", Empty;
    QueryStatus => "query-status", StatusInfo;
    Stop => "stop", Empty;
    Cont => "cont", Empty;
    SystemPowerdown => "system_powerdown", Empty;
    SystemReset => "system_reset", Empty;
    DeviceAdd => "device_add", Empty;
    DeviceDel => "device_del", Empty;
    BlockdevAdd => "blockdev-add", Empty;
    BlockdevDel => "blockdev-del", Empty;
    QueryNamedBlockNodes => "query-named-block-nodes", Vec<BlockDeviceInfo>;
    BlockdevCreate => "blockdev-create", Empty;
    BlockdevMirror => "blockdev-mirror", Empty;
    BlockdevBackup => "blockdev-backup", Empty;
    QueryBlockJobs => "query-block-jobs", Vec<BlockJobInfo>;
    QueryJobs => "query-jobs", Vec<JobInfo>;
    JobCancel => "job-cancel", Empty;
    JobComplete => "job-complete", Empty;
    JobDismiss => "job-dismiss", Empty;
    JobFinalize => "job-finalize", Empty;
    Getfd => "getfd", Empty;
    Closefd => "closefd", Empty;
    AddFd => "add-fd", AddfdInfo;
    RemoveFd => "remove-fd", Empty;
    QueryFdsets => "query-fdsets", Vec<FdsetInfo>;
    QomList => "qom-list", Vec<ObjectPropertyInfo>;
    QomGet => "qom-get", Value;
    QomSet => "qom-set", Empty;
}
