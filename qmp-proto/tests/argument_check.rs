//! The argument check (`Schema::check_arguments`, `Schema::check_call`)
//! against the real schemas of QEMU 10.0 and 7.2 in `tests/captures/`:
//! every kind of problem, in nested objects, arrays, alternates and unions,
//! and the warnings for deprecated and unstable use.

mod common;

use common::Capture;
use qmp_proto::typed::check::{ArgumentProblem, ArgumentProblems, JsonType, ProblemKind};
use qmp_proto::typed::commands::{BlockdevAdd, DeviceAdd, QueryStatus};
use qmp_proto::typed::schema::{Schema, SchemaInfo};
use qmp_proto::typed::transaction::{Transaction, TransactionAction};
use qmp_proto::typed::Command;
use qmp_proto::SendError;
use serde_json::{json, Value};
use std::sync::OnceLock;

/// The `query-qmp-schema` reply of a capture.
fn captured_schema(name: &'static str) -> Schema {
    let capture = Capture::load(name);
    let reply = capture
        .server_messages()
        .into_iter()
        .find(|m| m["return"][0]["meta-type"].is_string())
        .unwrap_or_else(|| panic!("{name} has a query-qmp-schema reply"));
    let entries: Vec<SchemaInfo> = serde_json::from_value(reply["return"].clone()).unwrap();
    Schema::new(entries)
}

fn qemu_10() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| captured_schema("qemu-10.0-system"))
}

fn check(command: &str, arguments: Value) -> ArgumentProblems {
    qemu_10().check_arguments(command, &arguments)
}

/// The errors as `(path, kind)`.
fn errors(report: &ArgumentProblems) -> Vec<(&str, &ProblemKind)> {
    report
        .errors
        .iter()
        .map(|p| (p.path.as_str(), &p.kind))
        .collect()
}

fn warnings(report: &ArgumentProblems) -> Vec<(&str, &ProblemKind)> {
    report
        .warnings
        .iter()
        .map(|p| (p.path.as_str(), &p.kind))
        .collect()
}

fn wrong(found: JsonType) -> ProblemKind {
    ProblemKind::WrongType { found }
}

#[test]
fn good_arguments_pass_without_warnings() {
    let cases = [
        ("query-status", Value::Null),
        ("query-status", json!({})),
        (
            "blockdev-add",
            json!({"driver": "null-co", "node-name": "n0", "size": 1048576, "read-only": true}),
        ),
        (
            "blockdev-add",
            json!({"driver": "qcow2", "node-name": "f0", "file": "proto0", "backing": null,
                   "cache": {"direct": false}, "detect-zeroes": "unmap"}),
        ),
        (
            "blockdev-add",
            json!({"driver": "qcow2", "node-name": "f0",
                   "file": {"driver": "file", "filename": "/tmp/x.qcow2"},
                   "overlap-check": "cached"}),
        ),
        (
            "blockdev-add",
            json!({"driver": "qcow2", "node-name": "f0", "file": "p",
                   "overlap-check": {"template": "all", "main-header": false}}),
        ),
        (
            "transaction",
            json!({"actions": [
                {"type": "abort", "data": {}},
                {"type": "block-dirty-bitmap-add", "data": {"node": "n0", "name": "b0", "granularity": 65536}},
                {"type": "block-dirty-bitmap-merge",
                 "data": {"node": "n0", "target": "b0", "bitmaps": ["b1", {"node": "n1", "name": "b2"}]}}],
                "properties": {"completion-mode": "grouped"}}),
        ),
        (
            "qom-set",
            json!({"path": "/machine", "property": "p", "value": [1, {"a": null}]}),
        ),
        (
            "human-monitor-command",
            json!({"command-line": "info version", "cpu-index": 0}),
        ),
        ("qmp_capabilities", json!({"enable": ["oob"]})),
    ];
    for (command, arguments) in cases {
        let report = check(command, arguments.clone());
        assert_eq!(report.errors, [], "{command} {arguments}");
        assert_eq!(report.warnings, [], "{command} {arguments}");
        assert!(report.is_ok());
    }
}

#[test]
fn unknown_command() {
    let report = check("no-such-command", json!({}));
    assert_eq!(errors(&report), [("execute", &ProblemKind::UnknownCommand)]);
    assert_eq!(report.command, "no-such-command");
}

#[test]
fn unknown_member_names_the_members_there_are() {
    // QEMU 10.0 answers this one with "Parameter 'bogus' is unexpected"
    // (see the capture).
    let report = check("query-status", json!({"bogus": 1}));
    assert_eq!(
        errors(&report),
        [("arguments.bogus", &ProblemKind::UnknownMember)]
    );
    assert_eq!(report.errors[0].expected, "no member");

    let report = check(
        "blockdev-add",
        json!({"driver": "null-co", "node-name": "n0", "sizee": 1}),
    );
    assert_eq!(
        errors(&report),
        [("arguments.sizee", &ProblemKind::UnknownMember)]
    );
    // The base members and those of the null-co variant.
    let expected = &report.errors[0].expected;
    assert!(
        expected.starts_with("one of: driver, node-name,"),
        "{expected}"
    );
    assert!(
        expected.contains(", size, latency-ns, read-zeroes"),
        "{expected}"
    );
}

#[test]
fn missing_required_members() {
    let report = check("blockdev-del", json!({}));
    assert_eq!(
        errors(&report),
        [("arguments.node-name", &ProblemKind::MissingMember)]
    );
    assert_eq!(report.errors[0].expected, "string");

    // Without the discriminator the variant is unknown: its members are
    // not called unknown, only the discriminator missing.
    let report = check("blockdev-add", json!({"node-name": "n0", "size": 1}));
    assert_eq!(
        errors(&report),
        [("arguments.driver", &ProblemKind::MissingMember)]
    );
    assert!(report.errors[0].expected.contains("null-co"));

    // The variant's own required members count.
    let report = check("blockdev-add", json!({"driver": "file", "node-name": "p0"}));
    assert_eq!(
        errors(&report),
        [("arguments.filename", &ProblemKind::MissingMember)]
    );
}

#[test]
fn wrong_json_types() {
    let report = check(
        "blockdev-add",
        json!({"driver": "null-co", "node-name": 7, "read-only": "yes", "size": 1.5, "cache": true}),
    );
    assert_eq!(
        errors(&report),
        [
            ("arguments.cache", &wrong(JsonType::Boolean)),
            ("arguments.node-name", &wrong(JsonType::Int)),
            ("arguments.read-only", &wrong(JsonType::String)),
            ("arguments.size", &wrong(JsonType::Number)),
        ]
    );
    let expected: Vec<&str> = report.errors.iter().map(|p| p.expected.as_str()).collect();
    assert_eq!(expected, ["object", "string", "boolean", "int"]);

    // An optional member is left out, not null (unless its type takes null).
    let report = check(
        "blockdev-add",
        json!({"driver": "null-co", "node-name": null}),
    );
    assert_eq!(
        errors(&report),
        [("arguments.node-name", &wrong(JsonType::Null))]
    );

    // The arguments themselves are an object.
    let report = check("query-status", json!([1, 2]));
    assert_eq!(errors(&report), [("arguments", &wrong(JsonType::Array))]);
}

#[test]
fn nested_objects_and_alternates() {
    // `file` is an alternate (BlockdevRef): a node name, or the options of
    // a new node, checked as such.
    let report = check(
        "blockdev-add",
        json!({"driver": "qcow2", "node-name": "f0", "file": {"driver": "file", "filename": 1}}),
    );
    assert_eq!(
        errors(&report),
        [("arguments.file.filename", &wrong(JsonType::Int))]
    );

    // The README's example.
    let report = check(
        "blockdev-add",
        json!({"driver": "qcow2", "node-name": "disk0",
               "file": {"driver": "file", "filname": "/vm/disk.qcow2"}}),
    );
    assert_eq!(
        errors(&report),
        [
            ("arguments.file.filname", &ProblemKind::UnknownMember),
            ("arguments.file.filename", &ProblemKind::MissingMember),
        ]
    );
    assert!(report.errors[0].expected.contains(", filename, "));
    assert_eq!(
        report.errors[1].to_string(),
        "arguments.file.filename: required member missing (expected string)"
    );

    let report = check(
        "blockdev-add",
        json!({"driver": "qcow2", "node-name": "f0", "file": {"driver": "nul-co"}}),
    );
    assert_eq!(
        errors(&report),
        [(
            "arguments.file.driver",
            &ProblemKind::UnknownEnumValue {
                value: "nul-co".into()
            }
        )]
    );

    let report = check(
        "blockdev-add",
        json!({"driver": "qcow2", "node-name": "f0", "file": 5}),
    );
    assert_eq!(errors(&report), [("arguments.file", &wrong(JsonType::Int))]);
    assert_eq!(report.errors[0].expected, "object or string");

    // An alternate of an object and an enum: the string must be a value.
    let report = check(
        "blockdev-add",
        json!({"driver": "qcow2", "node-name": "f0", "file": "p", "overlap-check": "some"}),
    );
    assert_eq!(
        errors(&report),
        [(
            "arguments.overlap-check",
            &ProblemKind::UnknownEnumValue {
                value: "some".into()
            }
        )]
    );
    assert_eq!(
        report.errors[0].expected,
        "one of: none, constant, cached, all"
    );
}

#[test]
fn unknown_enum_values() {
    // A discriminator that is no value: that is the problem, not the
    // members of a variant nobody can tell.
    let report = check(
        "blockdev-add",
        json!({"driver": "nul-co", "node-name": "n0", "size": 1}),
    );
    assert_eq!(
        errors(&report),
        [(
            "arguments.driver",
            &ProblemKind::UnknownEnumValue {
                value: "nul-co".into()
            }
        )]
    );
    let expected = &report.errors[0].expected;
    assert!(expected.starts_with("one of: blkdebug, "), "{expected}");

    let report = check(
        "blockdev-mirror",
        json!({"device": "a", "target": "b", "sync": "everything", "copy-mode": 1}),
    );
    assert_eq!(
        errors(&report),
        [
            ("arguments.copy-mode", &wrong(JsonType::Int)),
            (
                "arguments.sync",
                &ProblemKind::UnknownEnumValue {
                    value: "everything".into()
                }
            ),
        ]
    );
}

#[test]
fn arrays_and_flat_unions() {
    let report = check(
        "transaction",
        json!({"actions": [
            {"type": "abort", "data": {}},
            {"type": "block-dirty-bitmap-add", "data": {"node": "n0", "granularity": "big"}},
            {"type": "block-dirty-bitmap-frobnicate", "data": {}},
            {"type": "blockdev-backup", "data": {"device": "a", "target": "b", "sync": "full", "compres": true}},
            "abort"]}),
    );
    assert_eq!(
        errors(&report),
        [
            (
                "arguments.actions[1].data.granularity",
                &wrong(JsonType::String)
            ),
            (
                "arguments.actions[1].data.name",
                &ProblemKind::MissingMember
            ),
            (
                "arguments.actions[2].type",
                &ProblemKind::UnknownEnumValue {
                    value: "block-dirty-bitmap-frobnicate".into()
                }
            ),
            (
                "arguments.actions[3].data.compres",
                &ProblemKind::UnknownMember
            ),
            ("arguments.actions[4]", &wrong(JsonType::String)),
        ]
    );
    let report = check("transaction", json!({"actions": {"type": "abort"}}));
    assert_eq!(
        errors(&report),
        [("arguments.actions", &wrong(JsonType::Object))]
    );
    assert!(report.errors[0].expected.starts_with("array of object"));

    // The variant of an action is selected by its `type`: the data of
    // `abort` takes no members.
    let report = check(
        "transaction",
        json!({"actions": [{"type": "abort", "data": {"node": "n0"}}]}),
    );
    assert_eq!(
        errors(&report),
        [(
            "arguments.actions[0].data.node",
            &ProblemKind::UnknownMember
        )]
    );
}

#[test]
fn deprecated_and_unstable_use_are_warnings() {
    // Deprecated members (block-commit's `top` and `base`: use `top-node`
    // and `base-node`).
    let report = check("block-commit", json!({"device": "d0", "top": "t.qcow2"}));
    assert_eq!(errors(&report), []);
    assert_eq!(
        warnings(&report),
        [("arguments.top", &ProblemKind::Deprecated)]
    );
    assert_eq!(report.warnings[0].expected, "string");
    assert_eq!(report.warnings[0].to_string(), "arguments.top: deprecated");
    assert!(report.warnings[0].is_warning());

    // A deprecated command.
    let report = check(
        "drive-backup",
        json!({"device": "d0", "target": "/tmp/b.qcow2", "sync": "full"}),
    );
    assert_eq!(errors(&report), []);
    assert_eq!(warnings(&report), [("execute", &ProblemKind::Deprecated)]);

    // An unstable command and an unstable member.
    let report = check("x-debug-query-block-graph", json!({}));
    assert_eq!(warnings(&report), [("execute", &ProblemKind::Unstable)]);
    let report = check(
        "blockdev-add",
        json!({"driver": "file", "node-name": "p0", "filename": "/tmp/x", "x-check-cache-dropped": true}),
    );
    assert_eq!(errors(&report), []);
    assert_eq!(
        warnings(&report),
        [("arguments.x-check-cache-dropped", &ProblemKind::Unstable)]
    );

    // A deprecated enum value (a transaction action kind), in an array.
    let report = check(
        "transaction",
        json!({"actions": [{"type": "drive-backup",
                            "data": {"device": "d0", "target": "/tmp/b", "sync": "full"}}]}),
    );
    assert_eq!(errors(&report), []);
    assert_eq!(
        warnings(&report),
        [("arguments.actions[0].type", &ProblemKind::Deprecated)]
    );

    // Warnings and errors together: the errors decide.
    let report = check("block-commit", json!({"top": 1}));
    assert_eq!(
        errors(&report),
        [
            ("arguments.top", &wrong(JsonType::Int)),
            ("arguments.device", &ProblemKind::MissingMember),
        ]
    );
    assert_eq!(
        warnings(&report),
        [("arguments.top", &ProblemKind::Deprecated)]
    );
    assert!(report.clone().into_result().is_err());
}

#[test]
fn device_add_takes_device_properties() {
    let report = check(
        "device_add",
        json!({"driver": "virtio-blk-pci", "id": "disk0", "drive": "n0", "num-queues": 2}),
    );
    assert_eq!(report.errors, []);
    let report = check("device_add", json!({"id": "disk0", "bus": 1}));
    assert_eq!(
        errors(&report),
        [
            ("arguments.bus", &wrong(JsonType::Int)),
            ("arguments.driver", &ProblemKind::MissingMember),
        ]
    );
}

#[test]
fn check_call_serializes_and_gives_a_send_error() {
    let schema = qemu_10();
    let node = BlockdevAdd::new("null-co", "n0").option("size", 1 << 20);
    assert_eq!(schema.check_call(BlockdevAdd::NAME, &node), Ok(vec![]));
    assert_eq!(
        schema.check_call(QueryStatus::NAME, &QueryStatus),
        Ok(vec![])
    );
    let tablet = DeviceAdd::new("usb-tablet").id("t0");
    assert_eq!(schema.check_call(DeviceAdd::NAME, &tablet), Ok(vec![]));
    let transaction = Transaction::new([
        TransactionAction::block_dirty_bitmap_add("n0", "b0"),
        TransactionAction::abort(),
    ]);
    assert_eq!(schema.check_call("transaction", &transaction), Ok(vec![]));

    let typo = BlockdevAdd::new("null-co", "n0").option("sise", 1);
    let Err(SendError::InvalidArguments(problems)) = schema.check_call(BlockdevAdd::NAME, &typo)
    else {
        panic!("refused")
    };
    assert_eq!(problems.command, "blockdev-add");
    assert_eq!(
        errors(&problems),
        [("arguments.sise", &ProblemKind::UnknownMember)]
    );
    let text = SendError::InvalidArguments(problems).to_string();
    let expected = "the arguments of 'blockdev-add' do not fit the schema: \
                    arguments.sise: unknown member (expected one of: driver, node-name, ";
    assert!(text.starts_with(expected), "{text}");

    let warned = schema.check_call("block-commit", &json!({"device": "d0", "base": "b"}));
    let warnings = warned.unwrap();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].path, "arguments.base");

    assert_eq!(
        schema.check_call("query-status", &[1, 2]),
        Err(SendError::ArgumentsNotObject)
    );
}

#[test]
fn problems_display_where_and_what() {
    let report = check(
        "blockdev-add",
        json!({"driver": "null-co", "node-name": 1, "sise": 2, "detect-zeroes": "maybe"}),
    );
    let lines: Vec<String> = report
        .errors
        .iter()
        .map(ArgumentProblem::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            "arguments.detect-zeroes: unknown value \"maybe\" (expected one of: off, on, unmap)",
            "arguments.node-name: int where string is expected",
            &lines[2],
        ]
    );
    assert!(lines[2].starts_with("arguments.sise: unknown member (expected one of: driver,"));
    let report = check("blockdev-del", json!({}));
    assert_eq!(
        report.to_string(),
        "the arguments of 'blockdev-del' do not fit the schema: \
         arguments.node-name: required member missing (expected string)"
    );
    assert_eq!(
        check("nope", json!({})).errors[0].to_string(),
        "execute: no such command"
    );
}

#[test]
fn the_schema_of_the_qemu_in_use_decides() {
    // `active` of blockdev-add is new in QEMU 10.0.
    let qemu_7 = captured_schema("qemu-7.2-system");
    let node = json!({"driver": "null-co", "node-name": "n0", "active": true});
    assert_eq!(check("blockdev-add", node.clone()).errors, []);
    let report = qemu_7.check_arguments("blockdev-add", &node);
    assert_eq!(
        errors(&report),
        [("arguments.active", &ProblemKind::UnknownMember)]
    );
    // 7.2 lists enum values without their features: no warning there, and
    // none missed where it has them.
    let storage_daemon = captured_schema("qemu-10.0-storage-daemon");
    assert!(!storage_daemon.has_command("query-status"));
    let report = storage_daemon.check_arguments("query-status", &json!({}));
    assert_eq!(errors(&report), [("execute", &ProblemKind::UnknownCommand)]);
}

#[test]
fn integers_are_numbers_and_any_takes_everything() {
    // A small schema of its own: no command of QEMU 10.0 takes a `number`.
    let entries: Vec<SchemaInfo> = serde_json::from_value(json!([
        {"name": "set", "meta-type": "command", "arg-type": "1", "ret-type": "0"},
        {"name": "0", "meta-type": "object", "members": []},
        {"name": "1", "meta-type": "object", "members": [
            {"name": "ratio", "type": "number", "default": null},
            {"name": "anything", "type": "any", "default": null},
            {"name": "choice", "type": "2", "default": null}]},
        {"name": "2", "meta-type": "alternate", "members": [{"type": "int"}, {"type": "bool"}, {"type": "[int]"}]},
        {"name": "[int]", "meta-type": "array", "element-type": "int"},
        {"name": "number", "meta-type": "builtin", "json-type": "number"},
        {"name": "int", "meta-type": "builtin", "json-type": "int"},
        {"name": "bool", "meta-type": "builtin", "json-type": "boolean"},
        {"name": "any", "meta-type": "builtin", "json-type": "value"}
    ]))
    .unwrap();
    let schema = Schema::new(entries);
    for good in [
        json!({"ratio": 1}),
        json!({"ratio": 0.5}),
        json!({"anything": null}),
        json!({"anything": {"x": [1]}}),
        json!({"choice": 3}),
        json!({"choice": false}),
        json!({"choice": [1, 2]}),
    ] {
        assert_eq!(schema.check_arguments("set", &good).errors, [], "{good}");
    }
    let report = schema.check_arguments("set", &json!({"ratio": "1", "choice": [1, "2"]}));
    assert_eq!(
        errors(&report),
        [
            ("arguments.choice[1]", &wrong(JsonType::String)),
            ("arguments.ratio", &wrong(JsonType::String)),
        ]
    );
    let report = schema.check_arguments("set", &json!({"choice": "x"}));
    assert_eq!(report.errors[0].expected, "int or boolean or array");
}
