//! The typed layer checked against the schema of every QEMU at hand: the
//! one installed (`qemu-system-x86_64 -M none` and `qemu-storage-daemon`,
//! started through `QemuProcess`, so whichever QEMU the harness is pointed
//! at), and the schemas recorded in `tests/captures/` (QEMU 7.2 and 10.0,
//! both binaries).
//!
//! For every typed command of `qmp_proto::typed::commands` and
//! `transaction`, and every typed event of `qmp_proto::typed::events` (the
//! lists come from the macros that declare them, `typed::registry`):
//!
//! - it exists in the system emulator's schema (the storage daemon has a
//!   subset: there only those it has are checked), unless [`ABSENT`] says
//!   which QEMU it is new in;
//! - a sample value of the command, once built as its constructor builds
//!   it and once with every optional member set ([`samples`]), passes the
//!   argument check against the schema: no member the schema lacks, every
//!   JSON type right (nested), every required member there;
//! - its result type (or event type) decodes every value the schema allows
//!   with only the required members, for each case of every union, enum
//!   and alternate in it: a member we require that QEMU may leave out
//!   fails here; and decodes them with every optional member too: a member
//!   whose JSON type we got wrong fails here;
//! - every member its structs read (listed by `registry::fields`, without
//!   data) is a member of the schema's type at that place: an optional
//!   member under a wrong name, which would never be filled, fails here;
//! - the values our enums know are values of the schema's enum ([`ENUMS`]).
//!
//! Each run prints, per QEMU version, what it checked and what drifted; any
//! drift fails the test.

use qmp_proto::typed::commands::*;
use qmp_proto::typed::registry;
use qmp_proto::typed::schema::{Schema, SchemaInfo, SchemaMetaType};
use qmp_proto::typed::transaction::{
    BlockDirtyBitmap, BlockDirtyBitmapAdd, BlockDirtyBitmapMerge, BlockDirtyBitmapOrStr,
    CompletionMode, Transaction, TransactionAction,
};
use qmp_proto::typed::types::*;
use qmp_proto::typed::Command;
use qmp_proto::Capability;
use qmp_tests::qemu::QemuProcess;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::fmt::Write as _;

// ----- what older QEMUs lack ------------------------------------------------------

/// Something of the typed layer that a QEMU older than `since` does not
/// have, as the Rust docs of the type say: the check accepts its absence
/// there, and only there.
struct Absent {
    /// A command or event name, or the Rust name of an enum.
    item: &'static str,
    /// A member of its arguments (the last part of the problem's path),
    /// or a value of the enum; `None` for the command or event itself.
    member: Option<&'static str>,
    /// The first QEMU (major, minor) that has it.
    since: (u64, u64),
    /// Where the Rust docs say so.
    reason: &'static str,
}

const ABSENT: &[Absent] = &[
    Absent {
        item: "blockdev-add",
        member: Some("active"),
        since: (10, 0),
        reason: "BlockdevAdd::active is documented \"Since QEMU 10.0\"",
    },
    Absent {
        item: "blockdev-backup",
        member: Some("discard-source"),
        since: (9, 1),
        reason: "BlockdevBackup::discard_source is documented \"Since QEMU 9.1\"",
    },
    Absent {
        item: "query-named-block-nodes",
        member: Some("active"),
        since: (10, 0),
        reason: "BlockDeviceInfo::active is documented \"Since QEMU 10.0\" (read as true before)",
    },
    Absent {
        item: "query-block-jobs",
        member: Some("actively-synced"),
        since: (8, 2),
        reason: "BlockJobInfo::actively_synced is documented \"Since QEMU 8.2\"",
    },
    Absent {
        item: "BLOCK_IO_ERROR",
        member: Some("qom-path"),
        since: (9, 2),
        reason: "BlockIoError::qom_path is documented \"Since QEMU 9.2\"",
    },
    Absent {
        item: "transaction",
        member: Some("discard-source"),
        since: (9, 1),
        reason: "a blockdev-backup action's BlockdevBackup::discard_source, \"Since QEMU 9.1\"",
    },
];

/// The matching entry of [`ABSENT`] if it excuses `item`'s `member` on
/// QEMU `version`.
fn excused(item: &str, member: Option<&str>, version: (u64, u64)) -> Option<&'static Absent> {
    ABSENT
        .iter()
        .find(|a| a.item == item && a.member == member && version < a.since)
}

// ----- samples of the commands ------------------------------------------------------

/// A command's arguments, as its constructor makes them and with every
/// optional member set.
struct Sample {
    name: &'static str,
    minimal: Value,
    full: Value,
}

fn sample<C: Command>(minimal: C, full: C) -> Sample {
    Sample {
        name: C::NAME,
        minimal: serde_json::to_value(&minimal).unwrap(),
        full: serde_json::to_value(&full).unwrap(),
    }
}

fn unit<C: Command + Default>() -> Sample {
    sample(C::default(), C::default())
}

/// One sample per typed command; a command without one fails the test.
fn samples() -> Vec<Sample> {
    let mirror = BlockdevMirror::new("src0", "dst0", MirrorSyncMode::Full);
    let backup = BlockdevBackup::new("src0", "dst0", MirrorSyncMode::Full);
    let full_backup = BlockdevBackup {
        speed: Some(0),
        bitmap: Some("bitmap0".into()),
        bitmap_mode: Some(BitmapSyncMode::OnSuccess),
        compress: Some(false),
        on_source_error: Some(BlockdevOnError::Report),
        on_target_error: Some(BlockdevOnError::Stop),
        auto_finalize: Some(true),
        auto_dismiss: Some(true),
        filter_node_name: Some("filter0".into()),
        discard_source: Some(false),
        ..backup.clone().job_id("backup0")
    };
    vec![
        sample(
            QmpCapabilities::default(),
            QmpCapabilities {
                enable: vec![Capability::Oob],
            },
        ),
        unit::<QueryVersion>(),
        unit::<QueryCommands>(),
        unit::<QueryQmpSchema>(),
        unit::<QueryName>(),
        sample(
            HumanMonitorCommand::new("info version"),
            HumanMonitorCommand {
                cpu_index: Some(0),
                ..HumanMonitorCommand::new("info version")
            },
        ),
        unit::<Quit>(),
        unit::<QueryStatus>(),
        unit::<Stop>(),
        unit::<Cont>(),
        unit::<SystemPowerdown>(),
        unit::<SystemReset>(),
        sample(
            DeviceAdd::new("usb-tablet"),
            DeviceAdd::new("usb-tablet")
                .id("tablet0")
                .bus("usb-bus.0")
                .property("port", "1"),
        ),
        sample(DeviceDel::new("tablet0"), DeviceDel::new("tablet0")),
        sample(
            BlockdevAdd::new("null-co", "null0"),
            BlockdevAdd {
                discard: Some(BlockdevDiscardOptions::Unmap),
                cache: Some(BlockdevCacheOptions {
                    direct: Some(false),
                    no_flush: Some(false),
                }),
                active: Some(true),
                read_only: Some(false),
                auto_read_only: Some(false),
                force_share: Some(false),
                detect_zeroes: Some(BlockdevDetectZeroesOptions::Unmap),
                ..BlockdevAdd::new("null-co", "null0").option("size", 1 << 20)
            },
        ),
        sample(BlockdevDel::new("null0"), BlockdevDel::new("null0")),
        sample(
            QueryNamedBlockNodes::default(),
            QueryNamedBlockNodes { flat: Some(true) },
        ),
        sample(
            BlockdevCreate::new("create0", "file")
                .option("filename", "/tmp/x")
                .option("size", 0),
            BlockdevCreate::new("create0", "file")
                .option("filename", "/tmp/x")
                .option("size", 0),
        ),
        sample(
            mirror.clone(),
            BlockdevMirror {
                replaces: Some("src0".into()),
                speed: Some(0),
                granularity: Some(65536),
                buf_size: Some(1 << 20),
                on_source_error: Some(BlockdevOnError::Report),
                on_target_error: Some(BlockdevOnError::Enospc),
                filter_node_name: Some("filter0".into()),
                copy_mode: Some(MirrorCopyMode::WriteBlocking),
                auto_finalize: Some(false),
                auto_dismiss: Some(false),
                ..mirror.job_id("mirror0")
            },
        ),
        sample(backup, full_backup.clone()),
        unit::<QueryBlockJobs>(),
        unit::<QueryJobs>(),
        sample(JobCancel::new("job0"), JobCancel::new("job0")),
        sample(JobComplete::new("job0"), JobComplete::new("job0")),
        sample(JobDismiss::new("job0"), JobDismiss::new("job0")),
        sample(JobFinalize::new("job0"), JobFinalize::new("job0")),
        sample(Getfd::new("fd0"), Getfd::new("fd0")),
        sample(Closefd::new("fd0"), Closefd::new("fd0")),
        sample(
            AddFd::default(),
            AddFd {
                fdset_id: Some(1),
                opaque: Some("note".into()),
            },
        ),
        sample(
            RemoveFd {
                fdset_id: 1,
                fd: None,
            },
            RemoveFd {
                fdset_id: 1,
                fd: Some(3),
            },
        ),
        unit::<QueryFdsets>(),
        sample(QomList::new("/machine"), QomList::new("/machine")),
        sample(
            QomGet::new("/machine", "type"),
            QomGet::new("/machine", "type"),
        ),
        sample(
            QomSet::new("/machine", "p", 1),
            QomSet::new("/machine", "p", json!({"any": ["value"]})),
        ),
        sample(
            Transaction::new([TransactionAction::abort()]),
            Transaction::new([
                TransactionAction::abort(),
                TransactionAction::block_dirty_bitmap_add_with(BlockDirtyBitmapAdd {
                    node: "n0".into(),
                    name: "b0".into(),
                    granularity: Some(65536),
                    persistent: Some(false),
                    disabled: Some(false),
                }),
                TransactionAction::block_dirty_bitmap_remove("n0", "b0"),
                TransactionAction::block_dirty_bitmap_clear("n0", "b0"),
                TransactionAction::block_dirty_bitmap_enable("n0", "b0"),
                TransactionAction::block_dirty_bitmap_disable("n0", "b0"),
                TransactionAction::block_dirty_bitmap_merge(BlockDirtyBitmapMerge {
                    node: "n0".into(),
                    target: "b0".into(),
                    bitmaps: vec![
                        BlockDirtyBitmapOrStr::Local("b1".into()),
                        BlockDirtyBitmapOrStr::External(BlockDirtyBitmap {
                            node: "n1".into(),
                            name: "b2".into(),
                        }),
                    ],
                }),
                TransactionAction::blockdev_backup(full_backup),
                TransactionAction::blockdev_snapshot("n0", "overlay0"),
                TransactionAction::blockdev_snapshot_internal_sync("n0", "snap0"),
            ])
            .completion_mode(CompletionMode::Grouped),
        ),
    ]
}

// ----- the values of our enums --------------------------------------------------------

/// Where in the schema an enum of ours is used.
enum At {
    Arguments(&'static str),
    Returns(&'static str),
    Event(&'static str),
}

/// An enum of ours, and the path (member names, `[]` for an array's
/// element) from the place to a member of the schema's enum type.
struct EnumUse {
    rust: &'static str,
    known: &'static [&'static str],
    at: At,
    path: &'static [&'static str],
}

const ENUMS: &[EnumUse] = &[
    EnumUse {
        rust: "RunState",
        known: RunState::KNOWN,
        at: At::Returns("query-status"),
        path: &["status"],
    },
    EnumUse {
        rust: "ShutdownCause",
        known: ShutdownCause::KNOWN,
        at: At::Event("SHUTDOWN"),
        path: &["reason"],
    },
    EnumUse {
        rust: "JobStatus",
        known: JobStatus::KNOWN,
        at: At::Event("JOB_STATUS_CHANGE"),
        path: &["status"],
    },
    EnumUse {
        rust: "JobType",
        known: JobType::KNOWN,
        at: At::Returns("query-jobs"),
        path: &["[]", "type"],
    },
    EnumUse {
        rust: "IoOperationType",
        known: IoOperationType::KNOWN,
        at: At::Event("BLOCK_IO_ERROR"),
        path: &["operation"],
    },
    EnumUse {
        rust: "BlockErrorAction",
        known: BlockErrorAction::KNOWN,
        at: At::Event("BLOCK_IO_ERROR"),
        path: &["action"],
    },
    EnumUse {
        rust: "BlockdevOnError",
        known: BlockdevOnError::KNOWN,
        at: At::Arguments("blockdev-mirror"),
        path: &["on-source-error"],
    },
    EnumUse {
        rust: "MirrorSyncMode",
        known: MirrorSyncMode::KNOWN,
        at: At::Arguments("blockdev-mirror"),
        path: &["sync"],
    },
    EnumUse {
        rust: "MirrorCopyMode",
        known: MirrorCopyMode::KNOWN,
        at: At::Arguments("blockdev-mirror"),
        path: &["copy-mode"],
    },
    EnumUse {
        rust: "BitmapSyncMode",
        known: BitmapSyncMode::KNOWN,
        at: At::Arguments("blockdev-backup"),
        path: &["bitmap-mode"],
    },
    EnumUse {
        rust: "BlockDeviceIoStatus",
        known: BlockDeviceIoStatus::KNOWN,
        at: At::Returns("query-block-jobs"),
        path: &["[]", "io-status"],
    },
    EnumUse {
        rust: "BlockdevDetectZeroesOptions",
        known: BlockdevDetectZeroesOptions::KNOWN,
        at: At::Arguments("blockdev-add"),
        path: &["detect-zeroes"],
    },
    EnumUse {
        rust: "BlockdevDiscardOptions",
        known: BlockdevDiscardOptions::KNOWN,
        at: At::Arguments("blockdev-add"),
        path: &["discard"],
    },
    EnumUse {
        rust: "GuestPanicAction",
        known: GuestPanicAction::KNOWN,
        at: At::Event("GUEST_PANICKED"),
        path: &["action"],
    },
    EnumUse {
        rust: "GuestPanicInformationType",
        known: GuestPanicInformationType::KNOWN,
        at: At::Event("GUEST_PANICKED"),
        path: &["info", "type"],
    },
    EnumUse {
        rust: "CompletionMode",
        known: CompletionMode::KNOWN,
        at: At::Arguments("transaction"),
        path: &["properties", "completion-mode"],
    },
    EnumUse {
        rust: "SchemaMetaType",
        known: SchemaMetaType::KNOWN,
        at: At::Returns("query-qmp-schema"),
        path: &["[]", "meta-type"],
    },
    EnumUse {
        rust: "Capability",
        known: &["oob"],
        at: At::Arguments("qmp_capabilities"),
        path: &["enable", "[]"],
    },
];

// ----- values the schema allows ------------------------------------------------------

/// Makes JSON values of a schema type: with only the required members, or
/// with every member (optional ones down to a depth), choosing in round
/// `round` the `round`-th case (wrapping) of every enum, union and
/// alternate, so that rounds `0..choices` reach every case.
struct Generator<'a> {
    schema: &'a Schema,
    round: usize,
    optional: bool,
    /// The largest number of cases met, which tells how many rounds to run.
    choices: usize,
}

/// How deep optional members are filled in (recursive types have them).
const OPTIONAL_DEPTH: usize = 4;

impl Generator<'_> {
    fn pick<'t, T>(&mut self, cases: &'t [T]) -> Option<&'t T> {
        self.choices = self.choices.max(cases.len());
        cases.get(self.round % cases.len().max(1))
    }

    fn value(&mut self, ty: &str, depth: usize) -> Value {
        let schema = self.schema;
        let Some(info) = schema.get(ty) else {
            return Value::Null;
        };
        if depth > 32 {
            return json!({});
        }
        match &info.meta_type {
            SchemaMetaType::Builtin => match info.json_type.as_deref() {
                Some("string") => json!("text"),
                Some("int") => json!(1),
                Some("number") => json!(1.5),
                Some("boolean") => json!(self.round % 2 == 0),
                Some("null") => Value::Null,
                _ => json!({}),
            },
            SchemaMetaType::Enum => match self.pick(enum_values(info).as_slice()) {
                Some(value) => json!(value),
                None => json!(""),
            },
            SchemaMetaType::Array => {
                let element = info.element_type.as_deref().unwrap_or_default();
                json!([self.value(element, depth + 1)])
            }
            SchemaMetaType::Object => Value::Object(self.object(info, depth)),
            SchemaMetaType::Alternate => {
                let alternative = self.pick(&info.members).and_then(|m| m.kind.clone());
                self.value(&alternative.unwrap_or_default(), depth + 1)
            }
            _ => Value::Null,
        }
    }

    fn object(&mut self, info: &SchemaInfo, depth: usize) -> Map<String, Value> {
        let mut object = Map::new();
        self.members(&mut object, info, depth);
        if let Some(tag) = info.tag.as_deref() {
            let case = object.get(tag).and_then(Value::as_str).map(String::from);
            let variant = info
                .variants
                .iter()
                .find(|v| Some(&v.case) == case.as_ref())
                .and_then(|v| self.schema.get(&v.kind));
            if let Some(variant) = variant {
                self.members(&mut object, variant, depth);
            }
        }
        object
    }

    fn members(&mut self, object: &mut Map<String, Value>, info: &SchemaInfo, depth: usize) {
        for member in &info.members {
            if member.optional && !(self.optional && depth < OPTIONAL_DEPTH) {
                continue;
            }
            let ty = member.kind.as_deref().unwrap_or_default();
            let value = self.value(ty, depth + 1);
            object.insert(member.name.clone(), value);
        }
    }

    /// Every value of `ty` the rounds make, with and without the optional
    /// members.
    fn all(schema: &Schema, ty: &str) -> Vec<(&'static str, Value)> {
        let mut values = Vec::new();
        for (optional, what) in [(false, "required members only"), (true, "every member")] {
            let mut generator = Generator {
                schema,
                round: 0,
                optional,
                choices: 1,
            };
            while generator.round < generator.choices.min(256) {
                let value = generator.value(ty, 0);
                values.push((what, value));
                generator.round += 1;
            }
        }
        values
    }
}

fn enum_values(info: &SchemaInfo) -> Vec<String> {
    match info.values.is_empty() {
        true => info.members.iter().map(|m| m.name.clone()).collect(),
        false => info.values.clone(),
    }
}

// ----- the check -------------------------------------------------------------------

/// A schema, and which QEMU it came from.
struct Subject {
    /// e.g. `qemu-system-x86_64 10.0.2 (Debian ...), live`.
    label: String,
    version: (u64, u64),
    /// The system emulator, which must have every typed command and event.
    complete: bool,
    schema: Schema,
}

/// What the check found about one schema.
#[derive(Default)]
struct Findings {
    drift: Vec<String>,
    excused: Vec<String>,
    warnings: Vec<String>,
    absent: Vec<String>,
    /// Types whose members could not all be listed (see `registry::fields`).
    unprobed: Vec<String>,
    checked: usize,
}

fn check(subject: &Subject) -> Findings {
    let schema = &subject.schema;
    let version = subject.version;
    let mut found = Findings::default();

    let samples = samples();
    let commands = registry::commands();
    let names: BTreeSet<&str> = commands.iter().map(|c| c.name).collect();
    for sample in &samples {
        assert!(
            names.contains(sample.name),
            "sample of {}, which is no typed command",
            sample.name
        );
    }
    for command in &commands {
        let name = command.name;
        let Some(sample) = samples.iter().find(|s| s.name == name) else {
            found.drift.push(format!(
                "{name} ({}): no sample in schema_drift.rs's samples(): add one",
                command.type_name
            ));
            continue;
        };
        let Some(info) = schema.command(name) else {
            absent(&mut found, subject, name, command.type_name);
            continue;
        };
        found.checked += 1;
        for (what, arguments) in [
            ("constructor", &sample.minimal),
            ("every member set", &sample.full),
        ] {
            let report = schema.check_arguments(name, arguments);
            for problem in &report.errors {
                let member = problem.path.rsplit(['.', ']']).next();
                let line = format!("{name} arguments ({what}): {problem}");
                match excused(name, member, version) {
                    Some(absent) => found.excused.push(format!("{line}: {}", absent.reason)),
                    None => found.drift.push(line),
                }
            }
            for problem in &report.warnings {
                found
                    .warnings
                    .push(format!("{name} arguments ({what}): {problem}"));
            }
        }
        let returns = info.ret_type.as_deref().unwrap_or_default();
        decodes(
            &mut found,
            schema,
            name,
            command.type_name,
            returns,
            command.decode_returns,
        );
        let probed = (command.returns_fields)();
        members_exist(
            &mut found,
            subject,
            name,
            command.type_name,
            returns,
            probed,
        );
    }
    for event in registry::events() {
        let name = event.name;
        let Some(info) = schema
            .get(name)
            .filter(|e| e.meta_type == SchemaMetaType::Event)
        else {
            absent(&mut found, subject, name, event.type_name);
            continue;
        };
        found.checked += 1;
        let data = info.arg_type.as_deref().unwrap_or_default();
        decodes(
            &mut found,
            schema,
            name,
            event.type_name,
            data,
            event.decode_data,
        );
        let probed = (event.data_fields)();
        members_exist(&mut found, subject, name, event.type_name, data, probed);
    }
    for use_ in ENUMS {
        enum_values_known(&mut found, subject, use_);
    }
    found
}

fn absent(found: &mut Findings, subject: &Subject, name: &str, rust: &str) {
    if let Some(absent) = excused(name, None, subject.version) {
        found
            .excused
            .push(format!("{name} ({rust}) absent: {}", absent.reason));
    } else if subject.complete {
        found
            .drift
            .push(format!("{name} ({rust}) is not in the schema"));
    } else {
        found.absent.push(name.into());
    }
}

/// Decodes every value the schema allows for type `ty` with `decode`.
fn decodes(
    found: &mut Findings,
    schema: &Schema,
    name: &str,
    rust: &str,
    ty: &str,
    decode: fn(Value) -> Result<(), serde_json::Error>,
) {
    let mut failed = BTreeSet::new();
    for (what, value) in Generator::all(schema, ty) {
        if let Err(e) = decode(value.clone()) {
            let text = format!("{name} ({rust}) does not decode a value with {what}: {e}");
            if failed.insert(text.clone()) {
                let mut json = value.to_string();
                json.truncate(400);
                found.drift.push(format!("{text}, e.g. {json}"));
            }
        }
    }
}

/// Checks that every member the structs of a result or event type read
/// is a member of the schema's type at the same place: an optional member
/// whose name we got wrong would otherwise never be filled, silently.
fn members_exist(
    found: &mut Findings,
    subject: &Subject,
    name: &str,
    rust: &str,
    ty: &str,
    probed: registry::Probed,
) {
    let schema = &subject.schema;
    if let Some(why) = probed.stopped {
        found.unprobed.push(format!("{name} ({rust}): {why}"));
    }
    for fields in &probed.structs {
        let candidates = types_at(schema, ty, &fields.path);
        // None: under a member that is itself not in the schema (told
        // already). Only objects have members to compare with.
        if candidates.is_empty()
            || candidates
                .iter()
                .any(|t| t.meta_type != SchemaMetaType::Object)
        {
            continue;
        }
        let members: BTreeSet<&str> = candidates
            .iter()
            .flat_map(|info| object_members(schema, info))
            .collect();
        for member in fields.members {
            if members.contains(member) {
                continue;
            }
            let place = match fields.path.is_empty() {
                true => String::new(),
                false => format!(" (at {})", fields.path.join(".").replace(".[]", "[]")),
            };
            let line =
                format!("{name} ({rust}) reads member {member}{place}, which is not in the schema");
            match excused(name, Some(member), subject.version) {
                Some(absent) => found.excused.push(format!("{line}: {}", absent.reason)),
                None => found.drift.push(line),
            }
        }
    }
}

/// The members of an object type, with those of every variant.
fn object_members<'s>(schema: &'s Schema, info: &'s SchemaInfo) -> BTreeSet<&'s str> {
    let mut members: BTreeSet<&str> = info.members.iter().map(|m| m.name.as_str()).collect();
    for variant in &info.variants {
        if let Some(variant) = schema.get(&variant.kind) {
            members.extend(variant.members.iter().map(|m| m.name.as_str()));
        }
    }
    members
}

/// The schema types at `path` (member names, `[]` for an array element)
/// from type `ty`: through unions, the member of every variant that has
/// it (one Rust struct may read several: `SchemaMember` reads the members
/// of objects, enums and alternates); through alternates, their object
/// or array alternative.
fn types_at<'s>(schema: &'s Schema, ty: &str, path: &[&str]) -> Vec<&'s SchemaInfo> {
    let mut here: Vec<&SchemaInfo> = schema.get(ty).into_iter().collect();
    for step in path {
        let mut next = Vec::new();
        for info in here {
            let info = match info.meta_type {
                SchemaMetaType::Alternate => {
                    let wanted = match *step {
                        "[]" => SchemaMetaType::Array,
                        _ => SchemaMetaType::Object,
                    };
                    let alternative = info
                        .members
                        .iter()
                        .filter_map(|m| schema.get(m.kind.as_deref()?))
                        .find(|alternative| alternative.meta_type == wanted);
                    match alternative {
                        Some(alternative) => alternative,
                        None => continue,
                    }
                }
                _ => info,
            };
            let kinds: Vec<&str> = match *step {
                "[]" => info.element_type.as_deref().into_iter().collect(),
                member => {
                    let variants = info.variants.iter().filter_map(|v| schema.get(&v.kind));
                    std::iter::once(info)
                        .chain(variants)
                        .flat_map(|i| &i.members)
                        .filter(|m| m.name == member)
                        .filter_map(|m| m.kind.as_deref())
                        .collect()
                }
            };
            for kind in kinds {
                if let Some(found) = schema.get(kind) {
                    if !next.iter().any(|t: &&SchemaInfo| t.name == found.name) {
                        next.push(found);
                    }
                }
            }
        }
        here = next;
    }
    here
}

/// The schema type at `use_.path` from its place.
fn enum_type<'s>(schema: &'s Schema, use_: &EnumUse) -> Option<&'s SchemaInfo> {
    let start = match use_.at {
        At::Arguments(command) => schema.command(command)?.arg_type.as_deref()?,
        At::Returns(command) => schema.command(command)?.ret_type.as_deref()?,
        At::Event(event) => schema.get(event)?.arg_type.as_deref()?,
    };
    let mut info = schema.get(start)?;
    for step in use_.path {
        let next = match *step {
            "[]" => info.element_type.as_deref()?,
            member => info
                .members
                .iter()
                .find(|m| m.name == member)?
                .kind
                .as_deref()?,
        };
        info = schema.get(next)?;
    }
    Some(info)
}

fn enum_values_known(found: &mut Findings, subject: &Subject, use_: &EnumUse) {
    let place = match use_.at {
        At::Arguments(name) | At::Returns(name) | At::Event(name) => name,
    };
    let Some(info) = enum_type(&subject.schema, use_) else {
        if subject.schema.get(place).is_some() {
            found.drift.push(format!(
                "{}: no enum at {place} {}",
                use_.rust,
                use_.path.join(".")
            ));
        }
        return;
    };
    let values = enum_values(info);
    for known in use_.known {
        if values.iter().any(|v| v == known) {
            continue;
        }
        let line = format!("{}::{known} is no value of the schema's enum", use_.rust);
        match excused(use_.rust, Some(known), subject.version) {
            Some(absent) => found.excused.push(format!("{line}: {}", absent.reason)),
            None => found.drift.push(line),
        }
    }
}

/// Checks `subject`, prints what was found, and gives the drift.
fn report(subject: &Subject) -> Vec<String> {
    let found = check(subject);
    let mut text = format!(
        "== {}: {} typed commands and events checked\n",
        subject.label, found.checked
    );
    if !found.absent.is_empty() {
        let _ = writeln!(text, "   not in this binary: {}", found.absent.join(", "));
    }
    for line in &found.excused {
        let _ = writeln!(text, "   accepted (newer than this QEMU): {line}");
    }
    for line in &found.unprobed {
        let _ = writeln!(text, "   members not all listed: {line}");
    }
    for line in &found.warnings {
        let _ = writeln!(text, "   warning: {line}");
    }
    for line in &found.drift {
        let _ = writeln!(text, "   DRIFT: {line}");
    }
    if found.drift.is_empty() {
        let _ = writeln!(text, "   no drift");
    }
    println!("{text}");
    found
        .drift
        .into_iter()
        .map(|line| format!("{}: {line}", subject.label))
        .collect()
}

fn assert_no_drift(drift: Vec<String>) {
    assert!(
        drift.is_empty(),
        "the typed layer drifted from the schema:\n{}",
        drift.join("\n")
    );
}

// ----- the schemas -------------------------------------------------------------------

/// The schema and version of a recorded session.
fn recorded(name: &str) -> Subject {
    let path = format!("{}/captures/{name}.s2c", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let messages: Vec<Value> = serde_json::Deserializer::from_slice(&bytes)
        .into_iter::<Value>()
        .map(|m| m.unwrap())
        .collect();
    let greeting = &messages[0]["QMP"]["version"];
    let schema = messages
        .iter()
        .find(|m| m["return"][0]["meta-type"].is_string())
        .expect("a query-qmp-schema reply");
    let entries: Vec<SchemaInfo> = serde_json::from_value(schema["return"].clone()).unwrap();
    let (major, minor) = triple(&greeting["qemu"]);
    Subject {
        label: format!(
            "{name} (recorded): QEMU {major}.{minor}.{} ({})",
            greeting["qemu"]["micro"],
            greeting["package"].as_str().unwrap_or_default()
        ),
        version: (major, minor),
        complete: name.contains("system"),
        schema: Schema::new(entries),
    }
}

fn triple(qemu: &Value) -> (u64, u64) {
    (
        qemu["major"].as_u64().expect("major"),
        qemu["minor"].as_u64().expect("minor"),
    )
}

/// The schema and version of a running QEMU.
fn live(qemu: &QemuProcess, binary: &str) -> Subject {
    qmp_tests::runtime::tokio_rt::block_on(async {
        let qmp = qmp_tokio::Qmp::connect_unix(qemu.socket(), Default::default())
            .await
            .expect("connect");
        let greeting = qmp.greeting().version.to_string();
        println!("{binary}: QEMU {greeting}");
        let version: Value = qmp.call("query-version", &()).decode().await.unwrap();
        let schema = qmp.schema().await.expect("query-qmp-schema");
        Subject {
            label: format!("{binary} (live): QEMU {greeting}"),
            version: triple(&version["qemu"]),
            complete: binary == qmp_tests::qemu::SYSTEM,
            schema: (*schema).clone(),
        }
    })
}

#[test]
fn live_system_emulator() {
    let Some(qemu) = QemuProcess::system(&[]) else {
        return;
    };
    assert_no_drift(report(&live(&qemu, qmp_tests::qemu::SYSTEM)));
}

#[test]
fn live_storage_daemon() {
    let Some(qemu) = QemuProcess::storage_daemon(&[]) else {
        return;
    };
    assert_no_drift(report(&live(&qemu, qmp_tests::qemu::STORAGE_DAEMON)));
}

#[test]
fn recorded_schemas() {
    let mut drift = Vec::new();
    for name in [
        "qemu-7.2-system",
        "qemu-7.2-storage-daemon",
        "qemu-10.0-system",
        "qemu-10.0-storage-daemon",
    ] {
        drift.extend(report(&recorded(name)));
    }
    assert_no_drift(drift);
}

/// The check itself finds drift: a result type that requires a member
/// QEMU may leave out, an argument member QEMU does not have, one of the
/// wrong JSON type, an enum value QEMU does not know.
#[test]
fn the_check_finds_drift() {
    let subject = recorded("qemu-10.0-system");
    let schema = &subject.schema;

    // A result type requiring `name` of NameInfo, which is optional.
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct StrictName {
        name: String,
    }
    fn strict(value: Value) -> Result<(), serde_json::Error> {
        serde_json::from_value::<StrictName>(value).map(drop)
    }
    let mut found = Findings::default();
    let ret = schema
        .command("query-name")
        .unwrap()
        .ret_type
        .clone()
        .unwrap();
    decodes(&mut found, schema, "query-name", "StrictName", &ret, strict);
    assert_eq!(found.drift.len(), 1, "{:?}", found.drift);
    assert!(
        found.drift[0].contains("missing field `name`"),
        "{}",
        found.drift[0]
    );

    // Optional members of the wrong type are found with every member set.
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct WrongType {
        name: Option<i64>,
    }
    fn wrong(value: Value) -> Result<(), serde_json::Error> {
        serde_json::from_value::<WrongType>(value).map(drop)
    }
    let mut found = Findings::default();
    decodes(&mut found, schema, "query-name", "WrongType", &ret, wrong);
    assert_eq!(found.drift.len(), 1, "{:?}", found.drift);
    assert!(
        found.drift[0].contains("every member"),
        "{}",
        found.drift[0]
    );

    // Arguments: a misspelt member and a wrong type, as a sample would
    // serialize them.
    let report = schema.check_arguments(
        "blockdev-mirror",
        &json!({"device": "a", "target": "b", "sync": "full", "buf_size": 1, "speed": "fast"}),
    );
    let paths: Vec<&str> = report.errors.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["arguments.buf_size", "arguments.speed"]);

    // An enum value QEMU does not have.
    let mut found = Findings::default();
    let bogus = EnumUse {
        rust: "MirrorSyncMode",
        known: &["full", "everything"],
        at: At::Arguments("blockdev-mirror"),
        path: &["sync"],
    };
    enum_values_known(&mut found, &subject, &bogus);
    assert_eq!(
        found.drift,
        ["MirrorSyncMode::everything is no value of the schema's enum"]
    );

    // A member we read under a name the schema does not have (an
    // optional one: it would never be filled, and nothing else tells).
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Misspelt {
        #[serde(default)]
        nmae: Option<String>,
    }
    let mut found = Findings::default();
    let probed = registry::fields::<Misspelt>();
    members_exist(&mut found, &subject, "query-name", "Misspelt", &ret, probed);
    assert_eq!(
        found.drift,
        ["query-name (Misspelt) reads member nmae, which is not in the schema"]
    );

    // And an exception holds only for the QEMUs older than it says.
    assert!(excused("blockdev-add", Some("active"), (7, 2)).is_some());
    assert!(excused("blockdev-add", Some("active"), (10, 0)).is_none());
}
