//! The `qmp-shell` binary driven through its standard input (no terminal),
//! against real QEMU and, for timeouts, a QMP peer that stops answering;
//! `--record` against qmp-mock's mock QEMU, and its transcript replayed.

mod common;

use common::stalling_peer;
use qmp_mock::replay::{self, Pacing, ReplayServer};
use qmp_mock::MockQemu;
use qmp_tests::qemu::QemuProcess;
use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const SHELL: &str = env!("CARGO_BIN_EXE_qmp-shell");

/// What a finished run of the shell left.
struct Run {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Standard output as one JSON value per line (for `-c` runs).
    fn values(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\n{}", self.describe()))
            })
            .collect()
    }

    fn describe(&self) -> String {
        format!(
            "exit status {:?}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs the shell with `args`, `input` on its standard input, to its end.
/// A shell still running after a minute is killed and the test fails.
fn shell(args: &[&str], input: &str) -> Run {
    let mut child = Command::new(SHELL)
        .args(args)
        .env("HOME", "/nonexistent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qmp-shell");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_owned();
    // Written from a thread: the shell may exit before reading all of it.
    std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let output = match finished.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.expect("wait for qmp-shell"),
        Err(_) => {
            let pid = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            panic!("qmp-shell {args:?} did not finish within a minute");
        }
    };
    Run {
        status: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The numbers of the QEMU under test, e.g. `10.0.2`.
fn version_under_test() -> &'static str {
    // `QEMU emulator version 10.0.2 (Debian ...)`
    qmp_tests::qemu::version_under_test()
        .split_whitespace()
        .nth(3)
        .expect("a version")
}

/// `query-status`'s reply without `singlestep`, which QEMU before 8.1
/// adds (deprecated).
fn status(mut value: Value) -> Value {
    if let Some(members) = value.as_object_mut() {
        members.remove("singlestep");
    }
    value
}

fn socket(qemu: &QemuProcess) -> &str {
    qemu.socket().to_str().expect("UTF-8 path")
}

#[test]
fn replies_are_json_in_qemus_member_order() {
    let Some(qemu) = QemuProcess::system(&[]) else {
        return;
    };
    // Pretty is the default; members stay in QEMU's order ("status" first),
    // not sorted.
    let run = shell(&[socket(&qemu)], "query-status\n");
    assert_eq!(run.status, Some(0), "{}", run.describe());
    // (QEMU before 8.1 puts `singlestep` between them.)
    assert!(
        run.stdout.starts_with("{\n  \"status\": \"running\",\n")
            && run.stdout.ends_with("  \"running\": true\n}\n"),
        "{}",
        run.describe()
    );
    assert_eq!(run.stderr, "");
}

#[test]
fn raw_json_requests_comments_and_blank_lines() {
    let Some(qemu) = QemuProcess::system(&[]) else {
        return;
    };
    let input =
        "# a comment\n\n{\"execute\": \"query-version\", \"id\": \"mine\"}\n   \nquery-name\n";
    let run = shell(&["-c", socket(&qemu)], input);
    assert_eq!(run.status, Some(0), "{}", run.describe());
    let values = run.values();
    assert_eq!(values.len(), 2, "{}", run.describe());
    let major: u64 = version_under_test()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(values[0]["qemu"]["major"], major, "{}", run.describe());
    assert_eq!(values[1], json!({}));
}

#[test]
fn human_monitor_mode_prints_text() {
    let Some(qemu) = QemuProcess::system(&[]) else {
        return;
    };
    let run = shell(&["-H", socket(&qemu)], "info version\ninfo status\n");
    assert_eq!(run.status, Some(0), "{}", run.describe());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.describe());
    assert!(
        lines[0].starts_with(version_under_test()),
        "{}",
        run.describe()
    );
    assert_eq!(lines[1], "VM status: running");
}

#[test]
fn command_errors_show_class_and_description_and_the_shell_goes_on() {
    let Some(qemu) = QemuProcess::system(&[]) else {
        return;
    };
    let run = shell(
        &["-c", socket(&qemu)],
        "device_del id=nope\nno-such-command\nquery-status\n",
    );
    assert_eq!(run.status, Some(1), "a failed command fails the run");
    assert_eq!(
        run.stderr,
        "error: DeviceNotFound: Device 'nope' not found\n\
         error: CommandNotFound: The command no-such-command has not been found\n",
        "{}",
        run.describe()
    );
    let values: Vec<Value> = run.values().into_iter().map(status).collect();
    assert_eq!(values, [json!({"status": "running", "running": true})]);
}

#[test]
fn syntax_errors_are_reported_and_nothing_is_sent() {
    let Some(qemu) = QemuProcess::system(&[]) else {
        return;
    };
    // With -v every request sent is echoed: only the last line is sent.
    let run = shell(
        &["-c", "-v", socket(&qemu)],
        "stop a=1 a=2\nstop a=1 a.b=2\nstop x='unclosed\nquery-status\n",
    );
    assert_eq!(run.status, Some(1), "{}", run.describe());
    assert_eq!(
        run.stderr,
        "error: `a` is given twice\n\
         error: `a.b` conflicts with `a`: a key cannot be both a value and an object of nested keys\n\
         error: the value of `x` has no closing quote\n",
        "{}",
        run.describe()
    );
    let values: Vec<Value> = run.values().into_iter().map(status).collect();
    assert_eq!(
        values,
        [
            json!({"execute": "query-status"}),
            json!({"status": "running", "running": true}),
        ],
        "the VM was never stopped: {}",
        run.describe()
    );
}

#[test]
fn events_are_shown_in_order_with_replies() {
    let Some(qemu) = QemuProcess::system(&[]) else {
        return;
    };
    let run = shell(&["-c", socket(&qemu)], "stop\nquery-status\ncont\n");
    assert_eq!(run.status, Some(0), "{}", run.describe());
    let values = run.values();
    let shape: Vec<String> = values
        .iter()
        .map(|v| match v.get("event") {
            Some(name) => format!("event {}", name.as_str().unwrap()),
            None => status(v.clone()).to_string(),
        })
        .collect();
    // QEMU sends STOP and RESUME before the replies of the commands that
    // cause them, and the shell keeps that order.
    assert_eq!(
        shape,
        [
            "event STOP",
            "{}",
            r#"{"running":false,"status":"paused"}"#,
            "event RESUME",
            "{}"
        ],
        "{}",
        run.describe()
    );
    let stop = &values[0];
    assert!(stop["timestamp"]["seconds"].as_i64().unwrap() > 0);
    assert!(stop["timestamp"]["microseconds"].is_i64());
}

#[test]
fn dotted_keys_and_typed_values_reach_qemu() {
    let Some(qemu) = QemuProcess::storage_daemon(&[]) else {
        return;
    };
    let input =
        "blockdev-add driver=raw node-name=r0 read-only=true file.driver=null-co file.size=4096\n\
                 query-named-block-nodes flat=true\n";
    let run = shell(&["-c", socket(&qemu)], input);
    assert_eq!(run.status, Some(0), "{}", run.describe());
    let values = run.values();
    assert_eq!(values[0], json!({}));
    let nodes = values[1].as_array().expect("a list of nodes");
    let raw = nodes
        .iter()
        .find(|node| node["node-name"] == "r0")
        .unwrap_or_else(|| panic!("no node r0: {}", run.describe()));
    assert_eq!(raw["drv"], "raw");
    assert_eq!(raw["ro"], true, "read-only=true went as a boolean");
    assert_eq!(
        raw["image"]["virtual-size"], 4096,
        "file.size=4096 went as a number, nested under file"
    );
    assert!(nodes.iter().any(|node| node["drv"] == "null-co"));
}

#[test]
fn verbose_echoes_each_request() {
    let Some(qemu) = QemuProcess::storage_daemon(&[]) else {
        return;
    };
    let run = shell(
        &["-c", "-v", socket(&qemu)],
        "query-jobs\nblockdev-del node-name=none\n",
    );
    assert_eq!(run.status, Some(1), "{}", run.describe());
    assert_eq!(
        run.values(),
        [
            json!({"execute": "query-jobs"}),
            json!([]),
            json!({"execute": "blockdev-del", "arguments": {"node-name": "none"}}),
        ]
    );
    assert!(
        run.stderr.starts_with("error: GenericError: "),
        "{}",
        run.describe()
    );
}

#[test]
fn tcp_address() {
    // A second monitor on TCP, on a port the kernel picks; the Unix monitor
    // tells which.
    let Some(qemu) = QemuProcess::system(&[
        "-chardev",
        "socket,id=tcp0,host=127.0.0.1,port=0,server=on,wait=off",
        "-mon",
        "chardev=tcp0,mode=control",
    ]) else {
        return;
    };
    let run = shell(&["-c", socket(&qemu)], "query-chardev\n");
    let chardevs = run.values();
    let filename = chardevs[0]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["label"] == "tcp0")
        .and_then(|c| c["filename"].as_str())
        .unwrap_or_else(|| panic!("no tcp0: {}", run.describe()))
        .to_owned();
    // "disconnected:tcp:127.0.0.1:PORT,server=on"
    let port = filename
        .split(':')
        .nth(3)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no port in {filename}"));
    let run = shell(&["-c", &format!("127.0.0.1:{port}")], "query-status\n");
    assert_eq!(run.status, Some(0), "{}", run.describe());
    let values: Vec<Value> = run.values().into_iter().map(status).collect();
    assert_eq!(values, [json!({"status": "running", "running": true})]);
}

#[test]
fn quit_ends_the_session() {
    let Some(qemu) = QemuProcess::system(&[]) else {
        return;
    };
    // The line after quit is not run: the shell ends once QEMU has closed
    // the connection, after printing its last events.
    let run = shell(&["-c", socket(&qemu)], "quit\nquery-status\n");
    assert_eq!(run.status, Some(0), "{}", run.describe());
    assert_eq!(run.stderr, "", "{}", run.describe());
    let values = run.values();
    assert_eq!(values.len(), 2, "{}", run.describe());
    assert!(values.contains(&json!({})), "{}", run.describe());
    let shutdown = values
        .iter()
        .find(|v| v["event"] == "SHUTDOWN")
        .unwrap_or_else(|| panic!("no SHUTDOWN: {}", run.describe()));
    assert_eq!(shutdown["data"]["reason"], "host-qmp-quit");
}

#[test]
fn quit_in_human_monitor_mode() {
    let Some(qemu) = QemuProcess::system(&[]) else {
        return;
    };
    let run = shell(&["-H", socket(&qemu)], "q\ninfo status\n");
    assert_eq!(run.status, Some(0), "{}", run.describe());
    assert!(run.stdout.contains("\"SHUTDOWN\""), "{}", run.describe());
    assert!(!run.stdout.contains("VM status"), "{}", run.describe());
}

/// What one transcript line says, in short: `server greeting`,
/// `client execute NAME`, `server return VALUE`, `server event NAME`,
/// `server closed`...
fn summary(line: &Value) -> String {
    let from = line["from"].as_str().expect("a side");
    if line["closed"] == true {
        return format!("{from} closed");
    }
    let text = line["text"].as_str().expect("a message as text");
    let message: Value = serde_json::from_str(text).expect("a JSON message");
    let what = if message.get("QMP").is_some() {
        "greeting".to_owned()
    } else if let Some(name) = message["execute"].as_str() {
        format!("execute {name}")
    } else if let Some(value) = message.get("return") {
        format!("return {value}")
    } else if let Some(name) = message["event"].as_str() {
        format!("event {name}")
    } else {
        text.to_owned()
    };
    format!("{from} {what}")
}

#[test]
fn record_writes_a_transcript_that_replays() {
    let qemu = MockQemu::listen().unwrap();
    let socket = qemu.path().unwrap().to_str().expect("UTF-8 path");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("session.jsonl");
    let file = file.to_str().expect("UTF-8 path");
    let input = "query-status\nquit\n";
    let run = shell(&["-c", "--record", file, socket], input);
    assert_eq!(run.status, Some(0), "{}", run.describe());
    assert_eq!(qemu.command_names(), ["query-status", "quit"]);

    // A transcript (qmp_proto::transcript::parse reads it), one JSON
    // object per line, in order of time.
    let text = std::fs::read_to_string(file).unwrap();
    let entries = replay::load(file).expect("a valid transcript");
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(entries.len(), lines.len(), "{text}");
    let times: Vec<u64> = lines
        .iter()
        .map(|line| line["us"].as_u64().unwrap())
        .collect();
    assert!(times.is_sorted(), "{text}");
    let summaries: Vec<String> = lines.iter().map(summary).collect();
    assert_eq!(
        summaries,
        [
            "server greeting",
            "client execute qmp_capabilities",
            "server return {}",
            "client execute query-status",
            r#"server return {"running":true,"status":"running"}"#,
            "client execute quit",
            "server event SHUTDOWN",
            "server return {}",
            "server closed",
            "client closed",
        ],
        "{text}"
    );

    // Played back to the shell: the same session, the same output (the
    // event's timestamp included), and no difference found. (The same
    // lines: the shell may print `quit`'s reply and the SHUTDOWN that
    // came with it in either order.)
    let (replayed, replay) = ReplayServer::listen(entries, Pacing::AsFastAsPossible);
    let again = shell(&["-c", replayed.to_str().unwrap()], input);
    assert_eq!(again.status, Some(0), "{}", again.describe());
    let sorted = |run: &Run| {
        let mut lines: Vec<String> = run.stdout.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    assert_eq!(sorted(&again), sorted(&run), "{}", again.describe());
    replay.join().expect("the shell did what was recorded");

    // Another command than the recorded one: the shell's call fails with
    // the difference, and so does the replay.
    let entries = replay::load(file).unwrap();
    let (replayed, replay) = ReplayServer::listen(entries, Pacing::AsFastAsPossible);
    let changed = shell(&["-c", replayed.to_str().unwrap()], "query-name\nquit\n");
    assert_eq!(changed.status, Some(1), "{}", changed.describe());
    let difference = r#"recorded command "query-status", got "query-name""#;
    assert!(
        changed.stderr.starts_with("error: GenericError: ") && changed.stderr.contains(difference),
        "{}",
        changed.describe()
    );
    let mismatch = replay.join().expect_err("a mismatch");
    assert!(mismatch.to_string().contains(difference), "{mismatch}");
}

#[test]
fn connection_lost_mid_script() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hangup.sock");
    let (peer, _) = stalling_peer(&path, |_| true);
    let run = shell(&["-c", path.to_str().unwrap()], "before\nhangup\nafter\n");
    assert_eq!(run.status, Some(1), "{}", run.describe());
    assert_eq!(run.values(), [json!({"n": 1})]);
    assert!(
        run.stderr
            .contains("QMP connection closed: the peer closed the connection"),
        "{}",
        run.describe()
    );
    assert_eq!(peer.join().unwrap(), ["before", "hangup"]);
}

#[test]
fn nothing_listening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.sock");
    let run = shell(&[path.to_str().unwrap()], "query-status\n");
    assert_eq!(run.status, Some(1), "{}", run.describe());
    assert!(
        run.stderr
            .starts_with("qmp-shell: cannot connect to the QMP socket"),
        "{}",
        run.describe()
    );
    assert_eq!(run.stdout, "");
}

#[test]
fn usage() {
    let run = shell(&[], "");
    assert_eq!(run.status, Some(2), "{}", run.describe());
    assert!(run.stderr.contains("missing"), "{}", run.describe());
    let run = shell(&["--bogus", "x"], "");
    assert_eq!(run.status, Some(2), "{}", run.describe());
    let run = shell(&["--help"], "");
    assert_eq!(run.status, Some(0));
    assert!(
        run.stdout.starts_with("Usage: qmp-shell"),
        "{}",
        run.describe()
    );
    let run = shell(&["--version"], "");
    assert_eq!(
        run.stdout,
        format!("qmp-shell {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn timeout_gives_up_on_a_reply_and_the_connection_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stall.sock");
    let (peer, _) = stalling_peer(&path, |name| name != "stall");
    let run = shell(
        &["-c", "--timeout", "0.5", path.to_str().unwrap()],
        "stall\nanswer\n",
    );
    assert_eq!(run.status, Some(1), "{}", run.describe());
    assert_eq!(
        run.stderr,
        "error: the QMP call timed out\n",
        "{}",
        run.describe()
    );
    assert_eq!(run.values(), [json!({"n": 2})]);
    assert_eq!(peer.join().unwrap(), ["stall", "answer"]);
}

#[test]
fn timeout_bounds_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.sock");
    // Listening, never accepting: the connection is made, no greeting comes.
    let _listener = UnixListener::bind(&path).unwrap();
    let run = shell(&["-t", "0.3", path.to_str().unwrap()], "query-status\n");
    assert_eq!(run.status, Some(1), "{}", run.describe());
    assert!(
        run.stderr.contains("timed out connecting"),
        "{}",
        run.describe()
    );
}

#[test]
fn ctrl_c_stops_a_script() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stall.sock");
    let (peer, arrivals) = stalling_peer(&path, |name| name != "stall");
    let mut child = Command::new(SHELL)
        .args(["-c", path.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"stall\nanswer\n")
        .unwrap();
    let first = arrivals.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(first, "stall");
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: interrupted; the reply will be dropped\n"
    );
    assert!(output.stdout.is_empty());
    assert_eq!(
        peer.join().unwrap(),
        ["stall"],
        "the script went no further"
    );
}

#[test]
fn agent_mode_talks_to_a_real_guest_agent() {
    let Some(agent) = qmp_tests::agent::HostAgent::start() else {
        return;
    };
    let socket = agent.socket().to_str().expect("UTF-8 path");
    let path = agent.dir().join("note.txt");
    let open = format!("guest-file-open path={} mode=w", path.display());
    let script = format!(
        "guest-ping\n{open}\nguest-file-write handle=HANDLE buf-b64=aGkK\nguest-file-close handle=HANDLE\nguest-get-vcpus\n"
    );
    // The handle is only known once opened: a first run opens the file.
    let run = shell(&["-c", "--agent", socket], &format!("guest-ping\n{open}\n"));
    assert_eq!(run.status, Some(0), "{}", run.describe());
    let values = run.values();
    assert_eq!(values[0], json!({}), "{}", run.describe());
    let handle = values[1].as_i64().expect("a handle");
    let script = script.replace("HANDLE", &handle.to_string());
    let run = shell(
        &["-c", "--agent", socket],
        &script[script.find("guest-file-write").unwrap()..],
    );
    // guest-get-vcpus is not on the allow-list: the agent's error, exit 1.
    assert_eq!(run.status, Some(1), "{}", run.describe());
    assert_eq!(
        run.values(),
        [json!({"count": 3, "eof": false}), json!({})],
        "{}",
        run.describe()
    );
    assert!(run.stderr.contains("CommandNotFound"), "{}", run.describe());
    assert_eq!(std::fs::read(&path).expect("written"), b"hi\n");
}
