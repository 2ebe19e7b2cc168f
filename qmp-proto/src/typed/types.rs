//! Enums and structs that several commands and events share, named as in
//! QEMU's QAPI schema (10.0). Every enum is open: a value a newer QEMU adds
//! decodes as `Unknown` with its name.
//!
//! ```
//! use qmp_proto::typed::types::JobStatus;
//!
//! let known: JobStatus = serde_json::from_str(r#""concluded""#).unwrap();
//! assert_eq!(known, JobStatus::Concluded);
//! let newer: JobStatus = serde_json::from_str(r#""hibernating""#).unwrap();
//! assert_eq!(newer, JobStatus::Unknown("hibernating".into()));
//! assert_eq!(serde_json::to_string(&newer).unwrap(), r#""hibernating""#);
//! ```

use super::open_enum::open_enum;

open_enum! {
    /// The state of the virtual machine (QAPI `RunState`).
    pub enum RunState {
        /// QEMU is running under a debugger (gdbstub) that stopped it.
        Debug = "debug",
        /// Waiting for an incoming migration.
        Inmigrate = "inmigrate",
        /// An internal error stopped the guest; it may be resumed only
        /// after a reset.
        InternalError = "internal-error",
        /// Stopped on a disk I/O error.
        IoError = "io-error",
        /// Paused by the `stop` command (or by `-S` at start).
        Paused = "paused",
        /// Stopped after an outgoing migration finished.
        Postmigrate = "postmigrate",
        /// Not started yet (`-S`): nothing has run.
        Prelaunch = "prelaunch",
        /// Stopped to finish an outgoing migration.
        FinishMigrate = "finish-migrate",
        /// Stopped while a snapshot is loaded.
        RestoreVm = "restore-vm",
        /// The guest runs.
        Running = "running",
        /// Stopped while a snapshot is saved.
        SaveVm = "save-vm",
        /// Shut down, and `-no-shutdown` kept QEMU alive.
        Shutdown = "shutdown",
        /// Suspended by the guest (ACPI S3).
        Suspended = "suspended",
        /// Stopped by a watchdog whose action is `pause`.
        Watchdog = "watchdog",
        /// Stopped after the guest panicked.
        GuestPanicked = "guest-panicked",
        /// Running as a COLO secondary.
        Colo = "colo",
    }
}

open_enum! {
    /// Why the guest shut down or reset (QAPI `ShutdownCause`).
    pub enum ShutdownCause {
        /// No shutdown or reset requested.
        None = "none",
        /// An error on the host side (e.g. a failed migration).
        HostError = "host-error",
        /// The QMP `quit` command.
        HostQmpQuit = "host-qmp-quit",
        /// The QMP `system_reset` command.
        HostQmpSystemReset = "host-qmp-system-reset",
        /// A signal sent to QEMU (e.g. SIGTERM).
        HostSignal = "host-signal",
        /// The user interface (e.g. closing the window).
        HostUi = "host-ui",
        /// The guest asked to power off.
        GuestShutdown = "guest-shutdown",
        /// The guest asked to reset.
        GuestReset = "guest-reset",
        /// The guest panicked and the panic action is to shut down.
        GuestPanic = "guest-panic",
        /// A part of the machine asked for a reset.
        SubsystemReset = "subsystem-reset",
        /// A snapshot is being loaded.
        SnapshotLoad = "snapshot-load",
    }
}

open_enum! {
    /// The state of a job (QAPI `JobStatus`), as reported by
    /// `JOB_STATUS_CHANGE` and `query-jobs`.
    pub enum JobStatus {
        /// Never reported by QEMU: an invalid state.
        Undefined = "undefined",
        /// Created, not started yet.
        Created = "created",
        /// Working.
        Running = "running",
        /// Paused by the user or by an error policy.
        Paused = "paused",
        /// Has converged and can be completed (mirror, commit of the
        /// active layer).
        Ready = "ready",
        /// Paused while it was ready.
        Standby = "standby",
        /// Done, waiting for the other jobs of its transaction.
        Waiting = "waiting",
        /// Done, waiting for `job-finalize` (with `auto-finalize: false`).
        Pending = "pending",
        /// Failing or being cancelled: cleaning up.
        Aborting = "aborting",
        /// Finished; its result is kept until `job-dismiss` (with
        /// `auto-dismiss: false`).
        Concluded = "concluded",
        /// Gone: the last state of every job.
        Null = "null",
    }
}

open_enum! {
    /// The kind of a job (QAPI `JobType`).
    pub enum JobType {
        /// `block-commit`.
        Commit = "commit",
        /// `block-stream`.
        Stream = "stream",
        /// `blockdev-mirror` or `drive-mirror`.
        Mirror = "mirror",
        /// `blockdev-backup` or `drive-backup`.
        Backup = "backup",
        /// `blockdev-create`.
        Create = "create",
        /// `x-blockdev-amend`.
        Amend = "amend",
        /// `snapshot-load`.
        SnapshotLoad = "snapshot-load",
        /// `snapshot-save`.
        SnapshotSave = "snapshot-save",
        /// `snapshot-delete`.
        SnapshotDelete = "snapshot-delete",
    }
}

open_enum! {
    /// The kind of I/O that failed (QAPI `IoOperationType`).
    pub enum IoOperationType {
        /// A read.
        Read = "read",
        /// A write.
        Write = "write",
    }
}

open_enum! {
    /// What QEMU did about an I/O error (QAPI `BlockErrorAction`).
    pub enum BlockErrorAction {
        /// Ignored it and went on.
        Ignore = "ignore",
        /// Reported it to the guest (or failed the job).
        Report = "report",
        /// Stopped the VM (or paused the job).
        Stop = "stop",
    }
}

open_enum! {
    /// What a block job does on an I/O error (QAPI `BlockdevOnError`).
    pub enum BlockdevOnError {
        /// Fail the job.
        Report = "report",
        /// Ignore the error and go on.
        Ignore = "ignore",
        /// Pause the job on ENOSPC, fail it on other errors.
        Enospc = "enospc",
        /// Pause the job on any error.
        Stop = "stop",
        /// The error policy of the device the node belongs to.
        Auto = "auto",
    }
}

open_enum! {
    /// Which data a mirror or backup job copies (QAPI `MirrorSyncMode`).
    pub enum MirrorSyncMode {
        /// The top image only (what is not in the backing chain).
        Top = "top",
        /// Everything the guest sees.
        Full = "full",
        /// Only new writes.
        None = "none",
        /// What a dirty bitmap marks, then clear it (backup).
        Incremental = "incremental",
        /// What a dirty bitmap marks, with a bitmap sync mode.
        Bitmap = "bitmap",
    }
}

open_enum! {
    /// How a mirror job copies guest writes (QAPI `MirrorCopyMode`).
    pub enum MirrorCopyMode {
        /// In the background: a guest write only marks the area dirty.
        Background = "background",
        /// Synchronously: a guest write completes once on both sides.
        WriteBlocking = "write-blocking",
    }
}

open_enum! {
    /// When a backup job updates its bitmap (QAPI `BitmapSyncMode`).
    pub enum BitmapSyncMode {
        /// When the job succeeds.
        OnSuccess = "on-success",
        /// Never.
        Never = "never",
        /// Always, whatever the outcome.
        Always = "always",
    }
}

open_enum! {
    /// The I/O status of a block device or job (QAPI
    /// `BlockDeviceIoStatus`).
    pub enum BlockDeviceIoStatus {
        /// No error.
        Ok = "ok",
        /// An I/O error other than ENOSPC happened.
        Failed = "failed",
        /// The disk ran out of space.
        Nospace = "nospace",
    }
}

open_enum! {
    /// Whether writes of zeroes are detected (QAPI
    /// `BlockdevDetectZeroesOptions`).
    pub enum BlockdevDetectZeroesOptions {
        /// Not detected.
        Off = "off",
        /// Detected and written as zero writes.
        On = "on",
        /// Detected and discarded when discard is enabled.
        Unmap = "unmap",
    }
}

open_enum! {
    /// What a node does with discard requests (QAPI
    /// `BlockdevDiscardOptions`).
    pub enum BlockdevDiscardOptions {
        /// Ignores them.
        Ignore = "ignore",
        /// Passes them on to the protocol layer.
        Unmap = "unmap",
    }
}

open_enum! {
    /// What QEMU does after a guest panic (QAPI `GuestPanicAction`).
    pub enum GuestPanicAction {
        /// The VM is paused.
        Pause = "pause",
        /// The VM is shut down.
        Poweroff = "poweroff",
        /// The VM goes on running.
        Run = "run",
    }
}

open_enum! {
    /// The kind of details a guest gave about its panic (QAPI
    /// `GuestPanicInformationType`).
    pub enum GuestPanicInformationType {
        /// Hyper-V crash registers.
        HyperV = "hyper-v",
        /// s390 crash details.
        S390 = "s390",
    }
}
