//! Runs `examples/blocking.rs` against its built-in mock and, when
//! `qemu-system-x86_64` is installed, against a real QEMU (started by the
//! workspace's harness, `qmp_tests::qemu`).
//!
//! The example's source is compiled into this test as a module and its
//! `run` function (all of `main` except the process exit code and the
//! choice of stdout) is called in-process, with the output captured. That
//! tests the very code `cargo run --example blocking` runs, without
//! starting a nested `cargo` (slow, and fighting the outer one over the
//! build directory) or relying on the example binary having been built,
//! which `cargo test --test blocking_example` does not do.

// The example's `main` is not called from here.
#[allow(dead_code)]
#[path = "../examples/blocking.rs"]
mod blocking;

use qmp_tests::qemu::{self, QemuProcess};
use std::ffi::OsString;

/// Runs the example with `args` (without the program name), returning its
/// output, or panicking with the error and the output so far.
fn run_example(args: &[&str]) -> String {
    let mut out = Vec::new();
    let result = blocking::run(args.iter().map(OsString::from), &mut out);
    let out = String::from_utf8(out).expect("the example writes UTF-8");
    // Shown by `cargo test -- --nocapture`, and with any failure below.
    println!("--- blocking {args:?} ---\n{out}");
    if let Err(error) = result {
        panic!("the example failed: {error}\noutput:\n{out}");
    }
    out
}

/// The byte offset of `needle` in `haystack`, or a panic naming both.
fn position(haystack: &str, needle: &str) -> usize {
    haystack
        .find(needle)
        .unwrap_or_else(|| panic!("output lacks {needle:?}:\n{haystack}"))
}

#[test]
fn without_a_socket_the_mock_answers() {
    let out = run_example(&[]);
    position(&out, "no QEMU socket given");
    position(&out, "built-in mock QEMU");
    let greeting = position(&out, "greeting: QEMU 10.0.2 (qmp-proto mock)");
    let ready = position(&out, "capabilities negotiated");
    let version = position(&out, "query-version returned:\n{");
    position(&out, "\"major\": 10");
    let status = position(&out, "query-status returned:\n{");
    position(&out, "\"status\": \"running\"");
    let closing = position(&out, "all replies received, closing");
    assert!(greeting < ready && ready < version && version < status && status < closing);
}

#[test]
fn mock_runs_extra_commands_with_events_and_errors() {
    let out = run_example(&["--mock", "stop", "query-status", "no-such-command"]);
    position(&out, "no QEMU socket given");
    // QEMU emits STOP while executing `stop`, so before its reply.
    let event = position(&out, "event STOP at ");
    let stop = position(&out, "stop returned:\n{}");
    assert!(event < stop, "STOP event after the reply:\n{out}");
    // The default query-status sees the VM running, the later one paused.
    let running = position(&out, "\"status\": \"running\"");
    let paused = position(&out, "\"status\": \"paused\"");
    assert!(running < stop && stop < paused, "wrong order:\n{out}");
    position(
        &out,
        "no-such-command failed: CommandNotFound: The command no-such-command has not been found",
    );
}

#[test]
fn missing_socket_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let socket = dir.path().join("absent.sock");
    let mut out = Vec::new();
    let result = blocking::run([socket.clone().into_os_string()], &mut out);
    let Err(error) = result else {
        panic!("connecting to a missing socket succeeded");
    };
    assert!(
        matches!(error, blocking::Error::Connect { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("cannot connect to QMP socket")
            && message.contains(&*socket.to_string_lossy()),
        "unclear message: {message}"
    );
}

/// `10.0.2` out of `QEMU emulator version 10.0.2 (Debian ...)`, of the
/// QEMU under test.
fn installed_version() -> String {
    let text = qemu::version_under_test();
    text.split_whitespace()
        .skip_while(|word| *word != "version")
        .nth(1)
        .unwrap_or_else(|| panic!("no version in {text:?}"))
        .to_owned()
}

#[test]
fn real_qemu_session() {
    // The harness says when it skips (QEMU not installed); CI requires it.
    let Some(qemu) = QemuProcess::system(&[]) else {
        return;
    };
    let version = installed_version();
    let major = version.split('.').next().unwrap_or_default();
    let socket = qemu.socket().to_str().expect("temporary paths are UTF-8");
    let out = run_example(&[
        socket,
        "query-name",
        "stop",
        "query-status",
        "no-such-command",
    ]);

    position(&out, &format!("connected to {socket}"));
    position(&out, &format!("greeting: QEMU {version}"));
    position(&out, "capabilities: [oob]");
    position(&out, "capabilities negotiated");
    position(&out, "query-version returned:\n{");
    position(&out, &format!("\"major\": {major}"));
    let running = position(&out, "\"status\": \"running\"");
    position(&out, "query-name returned:\n{}");
    let event = position(&out, "event STOP at ");
    let stop = position(&out, "stop returned:\n{}");
    let paused = position(&out, "\"status\": \"paused\"");
    assert!(
        running < event && event < stop && stop < paused,
        "wrong order:\n{out}"
    );
    position(
        &out,
        "no-such-command failed: CommandNotFound: The command no-such-command has not been found",
    );
    position(&out, "all replies received, closing");
}
