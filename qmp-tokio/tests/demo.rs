//! Runs the README's main job, `examples/demo`, in-process: against a real
//! `qemu-storage-daemon` (when installed; CI requires it) and against the
//! built-in mock, checking what it prints and that it leaves no process and
//! no file behind.

// The example's `main` is not called from here.
#[allow(dead_code)]
#[path = "../examples/demo/main.rs"]
mod demo;

use demo::PeerChoice;

/// Runs the demo, returning its output or panicking with the error.
fn run_demo(choice: PeerChoice) -> String {
    let mut out = Vec::new();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(demo::run(choice, &mut out));
    let out = String::from_utf8(out).expect("the demo writes UTF-8");
    println!("--- demo {choice:?} ---\n{out}");
    if let Err(error) = result {
        panic!("the demo failed: {error}\noutput:\n{out}");
    }
    out
}

/// Asserts that `lines` appear in `out` in this order.
fn assert_in_order(out: &str, lines: &[&str]) {
    let mut rest = out;
    for line in lines {
        let at = rest
            .find(line)
            .unwrap_or_else(|| panic!("{line:?} missing (or out of order) in:\n{out}"));
        rest = &rest[at + line.len()..];
    }
}

/// What every session shows, real or mock.
const SESSION: &[&str] = &[
    "connected: QEMU 10.",
    "query-commands: QEMU knows ",
    "blockdev-create (file): job 'create-file' went created -> running -> waiting -> pending -> concluded",
    "blockdev-create (qcow2): job 'create-qcow2' went created -> running -> waiting -> pending -> concluded",
    "blockdev-backup: job 'backup' started",
    "%  ",
    "BLOCK_JOB_COMPLETED: job 'backup' copied 32 of 32 MiB",
    "-> concluded -> null",
    "block nodes: ",
];

#[test]
fn demo_against_the_mock() {
    let out = run_demo(PeerChoice::Mock);
    assert_in_order(&out, &["using the built-in mock QEMU"]);
    assert_in_order(&out, SESSION);
    assert_in_order(&out, &["the mock has exited"]);
}

#[test]
fn demo_against_a_real_storage_daemon() {
    let out = run_demo(PeerChoice::Auto);
    if out.contains("is not installed") {
        assert!(
            std::env::var_os("QMP_TESTS_REQUIRE_QEMU").is_none(),
            "qemu-storage-daemon is required (QMP_TESTS_REQUIRE_QEMU is set)"
        );
        return;
    }
    assert_in_order(&out, &["started a throwaway qemu-storage-daemon"]);
    assert_in_order(&out, SESSION);
    assert_in_order(&out, &["QEMU has exited (exit status: 0)"]);

    // Nothing left behind: the process is reaped, the directory gone.
    let started = out
        .lines()
        .find(|l| l.starts_with("started a throwaway"))
        .expect("the start line");
    let pid = started
        .split("pid ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("the pid");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "QEMU (pid {pid}) is still there"
    );
    let socket = started
        .split("socket ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(')'))
        .expect("the socket path");
    let dir = std::path::Path::new(socket).parent().expect("socket dir");
    assert!(!dir.exists(), "{} was left behind", dir.display());
}
