//! Runs `qmp-proto/examples/poll_loop.rs` (a custom `poll(2)` event loop
//! over non-blocking sockets) in-process against two real QEMUs at once.

// The example's `main` is not called from here.
#[allow(dead_code)]
#[path = "../../qmp-proto/examples/poll_loop.rs"]
mod poll_loop;

use qmp_tests::qemu::QemuProcess;
use std::ffi::OsString;

#[test]
fn one_poll_loop_drives_two_qemus() {
    let (Some(a), Some(b)) = (QemuProcess::system(&[]), QemuProcess::system(&[])) else {
        return;
    };
    let args = [a.socket(), b.socket()].map(|p| OsString::from(p.as_os_str()));
    let mut out = Vec::new();
    let result = poll_loop::run(args, &mut out);
    let out = String::from_utf8(out).expect("UTF-8 output");
    println!("{out}");
    if let Err(error) = result {
        panic!("the example failed: {error}\n{out}");
    }
    // `QEMU emulator version 10.0.2 (Debian ...)`: the QEMU under test.
    let version = qmp_tests::qemu::version_under_test()
        .split_whitespace()
        .nth(3)
        .expect("a version number");
    let greeting = format!("greeting: QEMU {version} ");
    for qemu in [&a, &b] {
        let tag = format!("[{}]", qemu.socket().display());
        let lines: Vec<&str> = out.lines().filter(|l| l.starts_with(&tag)).collect();
        for expected in [
            greeting.as_str(),
            "stop returned {}",
            "event STOP",
            "cont returned {}",
            "event RESUME",
            "query-status returned",
        ] {
            assert!(
                lines.iter().any(|l| l.contains(expected)),
                "{expected:?} missing for {tag} in:\n{out}"
            );
        }
        let status = lines
            .iter()
            .find(|l| l.contains("query-status returned"))
            .expect("status line");
        let json = status.split("returned ").nth(1).expect("the reply");
        let status: serde_json::Value = serde_json::from_str(json).expect("JSON reply");
        assert_eq!(status["running"], true, "{status}");
    }
    assert!(out.ends_with("all done\n"), "{out}");
}

#[test]
fn no_socket_is_a_usage_error() {
    let mut out = Vec::new();
    let result = poll_loop::run(Vec::<OsString>::new(), &mut out);
    assert!(matches!(result, Err(poll_loop::Error::Usage)));
}
