//! The adapters against real QEMU (issue 3's list), every body on both
//! runtimes (`qmp-tokio` on tokio, `qmp-smol` on smol).
//!
//! What this file proves, test by test:
//!
//! - `negotiation_and_greeting`: both binaries greet, negotiation happens by
//!   itself (QEMU then refuses a second `qmp_capabilities`), the greeting's
//!   version is what `query-version` says, OOB is offered and enabled only
//!   when wanted.
//! - `thousand_concurrent_commands_reach_their_callers`: 50 tasks × 20
//!   commands on one connection, OOB off and on. Replies that quote their
//!   caller's argument (HMP echoes, DeviceNotFound errors) are mixed with
//!   `query-status`/`-version`/`-name`, whose answers differ in shape, so
//!   any reply handed to the wrong caller fails the test.
//! - `oob_on_and_off`: `execute_oob` really sends `exec-oob` when OOB was
//!   negotiated, and is refused locally with a typed error when it was not.
//! - `stop_and_cont_events_awaited_from_cursors`: STOP and RESUME are found
//!   from cursors taken before the commands, although they arrive before
//!   the replies.
//! - `blockdev_create_jobs_followed_to_concluded`: two `blockdev-create`
//!   jobs on the storage daemon, followed through JOB_STATUS_CHANGE to
//!   `concluded`, then dismissed; the qcow2 image they made is real.
//! - `command_errors_carry_their_class`: DeviceNotFound, CommandNotFound and
//!   GenericError replies come back as `Error::Qmp` with their class, and
//!   the connection goes on.
//! - `fd_passing_add_fd_getfd_closefd`: descriptors sent with `add-fd` show
//!   in `query-fdsets` and are, in QEMU's own fd table, the files we sent,
//!   even with many `add-fd` at once; `getfd`/`closefd` by name.
//! - `second_connection_to_a_held_monitor_times_out`: a clear
//!   `ConnectTimeout` after the short connect timeout, not a hang; the
//!   monitor is usable again once the first client leaves.
//! - `sigkill_fails_pending_calls_within_100ms`: QEMU frozen with SIGSTOP
//!   so a command is really pending, then SIGKILL: the call fails as
//!   closed within 100 ms, and waits and subscriptions end too.
//! - `cancelled_calls_leave_the_connection_usable`: calls dropped after
//!   their first poll, timed out, or aborted with their task, while QEMU is
//!   frozen; afterwards every new call gets its own answer, and commands
//!   that were still queued locally were never sent.
//! - `silent_subscriber_lags_while_100k_events_flow`: a tiny guest firmware
//!   makes QEMU emit 100 000 events in about a second; a subscriber that
//!   never reads does not slow replies, its queue and the history stay at
//!   their bounds, and it learns exactly how many events it missed.
//! - `tcp_and_inherited_unix_stream`: `connect_tcp` to a TCP monitor and
//!   `from_unix_stream` on an already-connected socket both work (fds only
//!   on the Unix one).
//! - `nothing_listens_is_not_closed`: "nobody serves this socket" and "the
//!   connection ended (after `quit`)" are told apart.
//!
//! Missing QEMU binaries skip the tests (see `qmp_tests::qemu`).

use qmp_client::{ConnectOptions, Error};
use qmp_proto::{Capability, End, ErrorClass, EventFilter, Notice, SendError};
use qmp_tests::qemu::QemuProcess;
use serde::Deserialize;
use serde_json::{json, Value};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

/// A generous bound for one step (a command, an awaited event) so that a
/// bug shows as a failure, not as a hung test.
const STEP: Duration = Duration::from_secs(20);

/// The whole body of one test may take at most this long.
const WHOLE_TEST: Duration = Duration::from_secs(120);

/// The data of a JOB_STATUS_CHANGE event.
#[derive(Debug, Deserialize)]
struct JobStatus {
    id: String,
    status: String,
}

/// JOB_STATUS_CHANGE events of job `id` reaching `status`.
fn job_reaches(id: &str, status: &str) -> EventFilter {
    let (id, status) = (id.to_string(), status.to_string());
    EventFilter::name("JOB_STATUS_CHANGE").matching(move |event| {
        event
            .decode::<JobStatus>()
            .is_ok_and(|job| job.id == id && job.status == status)
    })
}

/// All JOB_STATUS_CHANGE events of job `id`.
fn job_events(id: &str) -> EventFilter {
    let id = id.to_string();
    EventFilter::name("JOB_STATUS_CHANGE")
        .matching(move |event| event.decode::<JobStatus>().is_ok_and(|job| job.id == id))
}

/// The QMP error inside `error`, or a panic saying what came instead.
fn qmp_error(error: &Error) -> &qmp_proto::QmpError {
    match error {
        Error::Qmp(e) => e,
        other => panic!("expected a QMP error reply, got {other:?}"),
    }
}

/// Polls `future` once: its output if it was ready.
async fn poll_once<F: Future + Unpin>(mut future: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| match std::pin::Pin::new(&mut future).poll(cx) {
        Poll::Ready(output) => Poll::Ready(Some(output)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// Polls `future` exactly once, then drops it: a call abandoned after it
/// started. Returns whether it had completed.
async fn poll_once_then_drop<F: Future>(future: F) -> bool {
    poll_once(std::pin::pin!(future)).await.is_some()
}

/// A 64 KiB x86 firmware image that, from the reset vector, writes 2
/// (PVPANIC_CRASH_LOADED) to the pvpanic port `n` times, then 1
/// (PVPANIC_PANICKED) once, then halts for good. With `-device pvpanic
/// -action panic=none` QEMU emits `n` GUEST_CRASHLOADED events and one
/// GUEST_PANICKED, as fast as the guest runs.
fn flood_firmware(n: u32) -> Vec<u8> {
    let mut code = vec![0x66, 0xB9]; // mov ecx, n
    code.extend_from_slice(&n.to_le_bytes());
    code.extend_from_slice(&[
        0xB0, 0x02, // mov al, 2
        0xBA, 0x05, 0x05, // mov dx, 0x505 (the pvpanic ISA port)
        0xEE, // again: out dx, al
        0x66, 0x49, // dec ecx
        0x75, 0xFB, // jnz again (-5)
        0xB0, 0x01, // mov al, 1
        0xEE, // out dx, al
        0xFA, // cli
        0xF4, // halt: hlt
        0xEB, 0xFD, // jmp halt
    ]);
    let mut image = vec![0u8; 64 * 1024];
    image[..code.len()].copy_from_slice(&code);
    // The reset vector (F000:FFF0): jmp far F000:0000, the image's start.
    image[0xFFF0..0xFFF5].copy_from_slice(&[0xEA, 0x00, 0x00, 0x00, 0xF0]);
    image
}

/// The monitors' chardevs as `query-chardev` lists them: (label, filename).
fn chardevs(reply: &Value) -> Vec<(String, String)> {
    reply
        .as_array()
        .expect("query-chardev returns a list")
        .iter()
        .map(|c| {
            (
                c["label"].as_str().unwrap_or_default().to_string(),
                c["filename"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Where `/proc/PID/fd/FD` of QEMU points.
fn qemu_fd_target(pid: i32, fd: u64) -> std::path::PathBuf {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).expect("QEMU's fd is in /proc")
}

/// Writes a file named `name` in `dir` and opens it for reading.
fn open_new_file(dir: &Path, name: &str) -> (std::path::PathBuf, std::os::fd::OwnedFd) {
    let path = dir.join(name);
    std::fs::write(&path, name).expect("write test file");
    let file = std::fs::File::open(&path).expect("open test file");
    (path, file.into())
}

qmp_tests::on_both_runtimes! {
    /// Runs an HMP command line that is no command: QEMU's answer quotes it,
    /// so the reply proves it belongs to this caller.
    async fn hmp_probe(qmp: &qmp::Qmp, token: &str) -> Result<(), String> {
        let out: String = qmp
            .call("human-monitor-command", &json!({ "command-line": token })).decode()
            .await
            .map_err(|e| format!("probe {token}: {e}"))?;
        if out.contains(&format!("'{token}'")) {
            Ok(())
        } else {
            Err(format!("probe {token} got someone else's reply: {out:?}"))
        }
    }

    /// Runs `body` with the whole-test deadline.
    fn run<F: Future<Output = ()>>(body: F) {
        rt::block_on(async {
            rt::timeout(WHOLE_TEST, body).await.expect("the test hung");
        })
    }

    #[test]
    fn negotiation_and_greeting() {
        for qemu in [QemuProcess::system(&[]), QemuProcess::storage_daemon(&[])] {
            let Some(qemu) = qemu else { continue };
            run(async {
                let qmp = qmp::Qmp::connect_unix(qemu.socket(), ConnectOptions::default())
                    .await
                    .expect("connect");
                let greeting = qmp.greeting().clone();
                assert!(
                    greeting.offers(&Capability::Oob),
                    "QEMU 10 offers OOB: {greeting:?}"
                );
                assert!(!qmp.oob_enabled(), "OOB is off unless wanted");

                let version: Value = qmp.call("query-version", &()).decode().await.unwrap();
                let numbers = greeting.version.qemu().expect("QEMU's numbers");
                assert_eq!(version["qemu"]["major"], numbers.major);
                assert_eq!(version["qemu"]["minor"], numbers.minor);
                assert_eq!(version["qemu"]["micro"], numbers.micro);
                assert_eq!(version["package"], greeting.version.package());

                // Negotiation already happened: QEMU refuses a second one
                // (before it, it would have refused every other command).
                let again = qmp.call("qmp_capabilities", &()).await.unwrap_err();
                assert_eq!(again.qmp_class(), Some(&ErrorClass::CommandNotFound));
                let commands: Vec<Value> = qmp.call("query-commands", &()).decode().await.unwrap();
                assert!(commands.iter().any(|c| c["name"] == "query-version"));

                qmp.close();
                assert_eq!(qmp.end_reason(), Some(End::Local));

                // The monitor is free again: this time OOB is wanted.
                let options = ConnectOptions::default().want_oob(true);
                let qmp = qmp::Qmp::connect_unix(qemu.socket(), options)
                    .await
                    .expect("reconnect");
                assert!(qmp.oob_enabled());
                assert_eq!(qmp.greeting(), &greeting);
            });
        }
    }

    #[test]
    fn thousand_concurrent_commands_reach_their_callers() {
        const TASKS: usize = 50;
        const PER_TASK: usize = 20;
        let name = format!("qmp-concurrency-{}", std::process::id());
        let Some(qemu) = QemuProcess::system(&["-name", &name]) else {
            return;
        };
        for want_oob in [false, true] {
            run(async {
                let options = ConnectOptions::default().want_oob(want_oob);
                let qmp = qmp::Qmp::connect_unix(qemu.socket(), options)
                    .await
                    .unwrap();
                assert_eq!(qmp.oob_enabled(), want_oob);
                let status: Value = qmp.call("query-status", &()).decode().await.unwrap();
                let version: Value = qmp.call("query-version", &()).decode().await.unwrap();
                let done = Arc::new(AtomicUsize::new(0));
                let tasks: Vec<_> = (0..TASKS)
                    .map(|t| {
                        let (qmp, status, version, name, done) = (
                            qmp.clone(),
                            status.clone(),
                            version.clone(),
                            name.clone(),
                            done.clone(),
                        );
                        rt::spawn(async move {
                            for i in 0..PER_TASK {
                                let token = format!("probe-{t}-{i}");
                                match (t * PER_TASK + i) % 5 {
                                    0 => {
                                        let got: Value = qmp
                                            .call("query-status", &()).decode()
                                            .await
                                            .map_err(|e| e.to_string())?;
                                        if got != status {
                                            return Err(format!("query-status gave {got}"));
                                        }
                                    }
                                    1 => {
                                        let got: Value = qmp
                                            .call("query-version", &()).decode()
                                            .await
                                            .map_err(|e| e.to_string())?;
                                        if got != version {
                                            return Err(format!("query-version gave {got}"));
                                        }
                                    }
                                    2 => {
                                        let got: Value = qmp
                                            .call("query-name", &()).decode()
                                            .await
                                            .map_err(|e| e.to_string())?;
                                        if got["name"] != name.as_str() {
                                            return Err(format!("query-name gave {got}"));
                                        }
                                    }
                                    3 => hmp_probe(&qmp, &token).await?,
                                    _ => {
                                        // An error reply must also reach its own caller.
                                        let id = format!("absent-{t}-{i}");
                                        let reply = qmp
                                            .call("device_del", &json!({ "id": id }))
                                            .await;
                                        match &reply {
                                            Err(Error::Qmp(e))
                                                if e.class == ErrorClass::DeviceNotFound
                                                    && e.desc.contains(&format!("'{id}'")) => {}
                                            other => {
                                                return Err(format!(
                                                    "device_del {id} gave {other:?}"
                                                ))
                                            }
                                        }
                                    }
                                }
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok::<(), String>(())
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("every reply reached its caller");
                }
                assert_eq!(done.load(Ordering::Relaxed), TASKS * PER_TASK);
                qmp.close();
            });
        }
    }

    #[test]
    fn oob_on_and_off() {
        let Some(qemu) = QemuProcess::system(&[]) else {
            return;
        };
        run(async {
            let options = ConnectOptions::default().want_oob(true);
            let qmp = qmp::Qmp::connect_unix(qemu.socket(), options)
                .await
                .unwrap();
            assert!(qmp.oob_enabled());
            // Our monitor's chardev, found by its socket path.
            let devs = chardevs(&qmp.call("query-chardev", &()).decode().await.unwrap());
            let socket = qemu.socket().to_str().unwrap();
            let (label, _) = devs
                .iter()
                .find(|(_, file)| file.contains(socket))
                .expect("our monitor's chardev is listed");
            // query-yank is one of the few commands that allow OOB.
            let yank: Value = qmp
                .call("query-yank", &()).oob()
                .await
                .unwrap()
                .decode()
                .unwrap();
            assert!(
                yank.as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["type"] == "chardev" && i["id"] == label.as_str()),
                "query-yank lists {label}: {yank}"
            );
            // It really went out as exec-oob: QEMU refuses OOB for a command
            // that does not allow it.
            let err = qmp.call("query-version", &()).oob().await.unwrap_err();
            let e = qmp_error(&err);
            assert_eq!(e.class, ErrorClass::GenericError);
            assert!(e.desc.contains("query-version"), "{e}");
            // OOB and in-band calls mixed, all answered.
            let calls: Vec<_> = (0..40)
                .map(|i| {
                    let qmp = qmp.clone();
                    rt::spawn(async move {
                        if i % 2 == 0 {
                            qmp.call("query-yank", &()).oob()
                                .await
                                .map(drop)
                                .map_err(|e| e.to_string())
                        } else {
                            hmp_probe(&qmp, &format!("mixed-{i}")).await
                        }
                    })
                })
                .collect();
            for call in calls {
                call.await.unwrap();
            }
            qmp.close();

            let options = ConnectOptions::default().want_oob(false);
            let qmp = qmp::Qmp::connect_unix(qemu.socket(), options)
                .await
                .unwrap();
            assert!(!qmp.oob_enabled());
            let err = qmp.call("query-yank", &()).oob().await.unwrap_err();
            assert!(
                matches!(err, Error::Rejected(SendError::OobNotNegotiated)),
                "{err:?}"
            );
            assert_eq!(err.qmp_class(), None);
            // The same command in band still works.
            let yank: Value = qmp.call("query-yank", &()).decode().await.unwrap();
            assert!(yank.is_array());
        });
    }

    #[test]
    fn stop_and_cont_events_awaited_from_cursors() {
        let Some(qemu) = QemuProcess::system(&[]) else {
            return;
        };
        run(async {
            let qmp = qmp::Qmp::connect_unix(qemu.socket(), ConnectOptions::default())
                .await
                .unwrap();
            let status: Value = qmp.call("query-status", &()).decode().await.unwrap();
            assert_eq!(status["running"], true);

            let cursor = qmp.cursor();
            qmp.call("stop", &()).await.unwrap();
            // QEMU sends STOP before the reply: a wait that began now without
            // a cursor would have missed it.
            assert_eq!(qmp.find_events(cursor, &EventFilter::name("STOP")).len(), 1);
            let stop = qmp
                .wait_for_event(cursor, EventFilter::name("STOP"), STEP)
                .await
                .unwrap();
            assert!(stop.sequence >= cursor.sequence());
            let status: Value = qmp.call("query-status", &()).decode().await.unwrap();
            assert_eq!(status["running"], false);

            let cursor = qmp.cursor();
            assert!(cursor >= stop.next_cursor());
            qmp.call("cont", &()).await.unwrap();
            let resume = qmp
                .wait_for_event(cursor, EventFilter::name("RESUME"), STEP)
                .await
                .unwrap();
            assert!(resume.sequence > stop.sequence);
            assert!(resume.event.timestamp >= stop.event.timestamp);
            // A cursor after the RESUME does not see it again.
            let err = qmp
                .wait_for_event(
                    resume.next_cursor(),
                    EventFilter::name("RESUME"),
                    Duration::from_millis(100),
                )
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Timeout), "{err:?}");
            let status: Value = qmp.call("query-status", &()).decode().await.unwrap();
            assert_eq!(status["running"], true);
        });
    }

    #[test]
    fn blockdev_create_jobs_followed_to_concluded() {
        const SIZE: u64 = 64 << 20;
        let Some(qemu) = QemuProcess::storage_daemon(&[]) else {
            return;
        };
        let image = qemu.dir().join("disk.qcow2");
        let image_text = image.to_str().unwrap().to_string();
        run(async {
            let qmp = qmp::Qmp::connect_unix(qemu.socket(), ConnectOptions::default())
                .await
                .unwrap();

            // Runs one blockdev-create job to `concluded`, checks its
            // lifecycle, and dismisses it.
            let create = |job: &'static str, options: Value| {
                let qmp = qmp.clone();
                async move {
                    let cursor = qmp.cursor();
                    qmp.call("blockdev-create", &json!({ "job-id": job, "options": options }))
                    .await
                    .unwrap();
                    let concluded = qmp
                        .wait_for_event(cursor, job_reaches(job, "concluded"), STEP)
                        .await
                        .unwrap();
                    let statuses: Vec<String> = qmp
                        .find_events(cursor, &job_events(job))
                        .iter()
                        .map(|s| s.event.decode::<JobStatus>().unwrap().status)
                        .collect();
                    assert_eq!(
                        statuses.first().map(String::as_str),
                        Some("created"),
                        "{statuses:?}"
                    );
                    assert_eq!(
                        statuses.last().map(String::as_str),
                        Some("concluded"),
                        "{statuses:?}"
                    );
                    assert!(statuses.iter().any(|s| s == "running"), "{statuses:?}");
                    let jobs: Vec<Value> = qmp.call("query-jobs", &()).decode().await.unwrap();
                    let listed = jobs.iter().find(|j| j["id"] == job).expect("job listed");
                    assert_eq!(listed["status"], "concluded");

                    let cursor = concluded.next_cursor();
                    qmp.call("job-dismiss", &json!({ "id": job }))
                        .await
                        .unwrap();
                    qmp.wait_for_event(cursor, job_reaches(job, "null"), STEP)
                        .await
                        .unwrap();
                    let jobs: Vec<Value> = qmp.call("query-jobs", &()).decode().await.unwrap();
                    assert!(jobs.iter().all(|j| j["id"] != job), "{jobs:?}");
                }
            };

            create(
                "make-file",
                json!({ "driver": "file", "filename": image_text, "size": 0 }),
            )
            .await;
            qmp.call("blockdev-add", &json!({ "driver": "file", "node-name": "file0", "filename": image_text }))
            .await
            .unwrap();
            create(
                "make-qcow2",
                json!({ "driver": "qcow2", "file": "file0", "size": SIZE }),
            )
            .await;

            // The image is a real qcow2 of the asked size.
            let magic = std::fs::read(&image).unwrap();
            assert_eq!(&magic[..4], b"QFI\xfb");
            qmp.call("blockdev-add", &json!({ "driver": "qcow2", "node-name": "disk0", "file": "file0" }))
            .await
            .unwrap();
            let nodes: Vec<Value> = qmp
                .call("query-named-block-nodes", &json!({ "flat": true })).decode()
                .await
                .unwrap();
            let disk = nodes
                .iter()
                .find(|n| n["node-name"] == "disk0")
                .expect("disk0 listed");
            assert_eq!(disk["drv"], "qcow2");
            assert_eq!(disk["image"]["virtual-size"], SIZE);
        });
    }

    #[test]
    fn command_errors_carry_their_class() {
        let Some(system) = QemuProcess::system(&[]) else {
            return;
        };
        run(async {
            let qmp = qmp::Qmp::connect_unix(system.socket(), ConnectOptions::default())
                .await
                .unwrap();
            let id = format!("missing-{}", std::process::id());
            let err = qmp
                .call("device_del", &json!({ "id": id }))
                .await
                .unwrap_err();
            assert_eq!(err.qmp_class(), Some(&ErrorClass::DeviceNotFound));
            assert!(qmp_error(&err).desc.contains(&id), "{err}");
            assert!(!err.is_socket_closed() && !err.is_socket_not_available());

            let name = format!("no-such-command-{}", std::process::id());
            let err = qmp.call(&name, &()).await.unwrap_err();
            assert_eq!(err.qmp_class(), Some(&ErrorClass::CommandNotFound));
            assert!(qmp_error(&err).desc.contains(&name), "{err}");

            // The connection goes on after errors.
            let status: Value = qmp.call("query-status", &()).decode().await.unwrap();
            assert!(status["status"].is_string());
        });
        let Some(daemon) = QemuProcess::storage_daemon(&[]) else {
            return;
        };
        run(async {
            let qmp = qmp::Qmp::connect_unix(daemon.socket(), ConnectOptions::default())
                .await
                .unwrap();
            let missing = daemon.dir().join("absent").join("disk.raw");
            let missing = missing.to_str().unwrap();
            let err = qmp
                .call("blockdev-add", &json!({ "driver": "file", "node-name": "bad", "filename": missing }))
                .await
                .unwrap_err();
            assert_eq!(err.qmp_class(), Some(&ErrorClass::GenericError));
            assert!(qmp_error(&err).desc.contains(missing), "{err}");
            let nodes: Vec<Value> = qmp
                .call("query-named-block-nodes", &()).decode()
                .await
                .unwrap();
            assert!(nodes.iter().all(|n| n["node-name"] != "bad"));
        });
    }

    #[test]
    fn fd_passing_add_fd_getfd_closefd() {
        let Some(qemu) = QemuProcess::system(&[]) else {
            return;
        };
        run(async {
            let qmp = qmp::Qmp::connect_unix(qemu.socket(), ConnectOptions::default())
                .await
                .unwrap();
            // Without a descriptor QEMU refuses: the one below really travels.
            let err = qmp.call("add-fd", &()).await.unwrap_err();
            assert_eq!(err.qmp_class(), Some(&ErrorClass::GenericError));

            // Many add-fd at once: each command's descriptor must arrive
            // with that command, so each opaque names its own file.
            const FILES: usize = 8;
            let calls: Vec<_> = (0..FILES)
                .map(|i| {
                    let (path, fd) = open_new_file(qemu.dir(), &format!("passed-{i}"));
                    let qmp = qmp.clone();
                    rt::spawn(async move {
                        let added = qmp
                            .call("add-fd", &json!({ "opaque": format!("opaque-{i}") })).fds(vec![fd])
                            .await?
                            .decode::<Value>()?;
                        Ok::<_, Error>((path, added))
                    })
                })
                .collect();
            let mut added = Vec::new();
            for call in calls {
                added.push(call.await.expect("add-fd"));
            }
            let fdsets: Vec<Value> = qmp.call("query-fdsets", &()).decode().await.unwrap();
            for (i, (path, reply)) in added.iter().enumerate() {
                let fdset = fdsets
                    .iter()
                    .find(|s| s["fdset-id"] == reply["fdset-id"])
                    .unwrap_or_else(|| panic!("fdset of {reply} listed in {fdsets:?}"));
                let fds = fdset["fds"].as_array().unwrap();
                let entry = fds
                    .iter()
                    .find(|f| f["fd"] == reply["fd"])
                    .expect("fd listed");
                assert_eq!(entry["opaque"], format!("opaque-{i}"));
                let fd = reply["fd"].as_u64().unwrap();
                assert_eq!(
                    &qemu_fd_target(qemu.pid(), fd),
                    path,
                    "QEMU's fd {fd} is our file"
                );
            }
            let first_set = &added[0].1["fdset-id"];
            qmp.call("remove-fd", &json!({ "fdset-id": first_set }))
                .await
                .unwrap();
            let fdsets: Vec<Value> = qmp.call("query-fdsets", &()).decode().await.unwrap();
            assert!(
                fdsets.iter().all(|s| &s["fdset-id"] != first_set),
                "{fdsets:?}"
            );

            // getfd names a descriptor; closefd closes it, once.
            let name = format!("named-{}", std::process::id());
            let (_, fd) = open_new_file(qemu.dir(), "named");
            qmp.call("getfd", &json!({ "fdname": name })).fds(vec![fd])
                .await
                .unwrap();
            qmp.call("closefd", &json!({ "fdname": name }))
                .await
                .unwrap();
            let err = qmp
                .call("closefd", &json!({ "fdname": name }))
                .await
                .unwrap_err();
            assert_eq!(err.qmp_class(), Some(&ErrorClass::GenericError));
            assert!(qmp_error(&err).desc.contains(&name), "{err}");
        });
    }

    #[test]
    fn second_connection_to_a_held_monitor_times_out() {
        let Some(qemu) = QemuProcess::system(&[]) else {
            return;
        };
        run(async {
            let first = qmp::Qmp::connect_unix(qemu.socket(), ConnectOptions::default())
                .await
                .unwrap();
            let limit = Duration::from_millis(500);
            let started = Instant::now();
            let second = qmp::Qmp::connect_unix(
                qemu.socket(),
                ConnectOptions::default().connect_timeout(limit),
            )
            .await;
            let took = started.elapsed();
            let err = second.expect_err("QEMU serves one client per monitor");
            assert!(matches!(err, Error::ConnectTimeout), "{err:?}");
            assert!(err.to_string().contains("timed out"), "{err}");
            assert!(!err.is_socket_closed() && !err.is_socket_not_available());
            assert!(took >= limit, "gave up early: {took:?}");
            assert!(
                took < limit + Duration::from_secs(2),
                "gave up late: {took:?}"
            );

            // The first client is unaffected; once it leaves, the monitor
            // takes a new client.
            first.call("query-status", &()).await.unwrap();
            first.close();
            drop(first);
            let third = qmp::Qmp::connect_unix(qemu.socket(), ConnectOptions::default())
                .await
                .unwrap();
            third.call("query-status", &()).await.unwrap();
        });
    }

    #[test]
    fn sigkill_fails_pending_calls_within_100ms() {
        let Some(mut qemu) = QemuProcess::system(&[]) else {
            return;
        };
        run(async {
            let qmp = qmp::Qmp::connect_unix(qemu.socket(), ConnectOptions::default())
                .await
                .unwrap();
            let mut events = qmp.subscribe(EventFilter::all());
            qemu.pause();
            // Polled by this test's own thread (not a spawned task), so the
            // time measured below is the adapter's, not a busy executor's.
            let mut pending = std::pin::pin!(std::future::IntoFuture::into_future(qmp.call("query-status", &())));
            let mut waiting =
                std::pin::pin!(qmp.wait_for_event(qmp.cursor(), EventFilter::name("STOP"), STEP));
            // A frozen QEMU answers nothing: the call is really pending.
            let not_yet = rt::timeout(Duration::from_millis(200), pending.as_mut()).await;
            assert!(not_yet.is_err(), "{not_yet:?}");
            assert!(poll_once(waiting.as_mut()).await.is_none());

            let killed = Instant::now();
            qemu.kill();
            let err = pending.await.expect_err("QEMU died before answering");
            let took = killed.elapsed();
            eprintln!("the pending call failed {took:?} after SIGKILL");
            assert!(err.is_socket_closed(), "{err:?}");
            assert!(!err.is_socket_not_available());
            assert!(
                took < Duration::from_millis(100),
                "the call failed {took:?} after the kill"
            );
            assert!(matches!(err, Error::Closed(End::PeerClosed)), "{err:?}");

            let err = waiting.await.expect_err("the wait ends too");
            assert!(err.is_socket_closed(), "{err:?}");
            assert_eq!(events.next().await, None, "the subscription ends");
            assert_eq!(events.end_reason(), Some(End::PeerClosed));
            assert_eq!(qmp.end_reason(), Some(End::PeerClosed));
            let err = qmp.call("query-status", &()).await.unwrap_err();
            assert!(err.is_socket_closed(), "{err:?}");
        });
    }

    #[test]
    fn cancelled_calls_leave_the_connection_usable() {
        let Some(qemu) = QemuProcess::system(&[]) else {
            return;
        };
        run(async {
            let options = ConnectOptions::default();
            let window = options.client.max_in_flight;
            let qmp = qmp::Qmp::connect_unix(qemu.socket(), options)
                .await
                .unwrap();
            let add = |id: String| json!({ "qom-type": "secret", "id": id, "data": "x" });

            qemu.pause();
            // Dropped after their first poll: the first `window` go on the
            // wire, the rest wait in the local queue and must never be sent.
            let dropped = 3 * window + 5;
            for i in 0..dropped {
                let done = poll_once_then_drop(std::future::IntoFuture::into_future(qmp.call("object-add", &add(format!("dropped-{i}"))),))
                .await;
                assert!(!done, "a frozen QEMU answered");
            }
            // Timed out while queued.
            for i in 0..5 {
                let err = qmp
                    .call("object-add", &add(format!("timed-out-{i}"))).timeout(Duration::from_millis(5))
                    .await
                    .unwrap_err();
                assert!(matches!(err, Error::Timeout), "{err:?}");
            }
            // Aborted with their task, once their call has started. Each
            // task holds a sender of `gone`: when every task's future has
            // been dropped, `gone` is closed.
            const ABORTED: usize = 10;
            let (started_tx, started) = smol::channel::unbounded::<()>();
            let (gone_tx, gone) = smol::channel::bounded::<()>(1);
            let tasks: Vec<_> = (0..ABORTED)
                .map(|i| {
                    let (qmp, started_tx, gone_tx) =
                        (qmp.clone(), started_tx.clone(), gone_tx.clone());
                    rt::spawn(async move {
                        let _alive = gone_tx;
                        let arguments = add(format!("aborted-{i}"));
                        let call = qmp.call("object-add", &arguments);
                        started_tx.try_send(()).ok();
                        call.await
                    })
                })
                .collect();
            drop((started_tx, gone_tx));
            for _ in 0..ABORTED {
                started.recv().await.unwrap();
            }
            drop(tasks);
            // Runtimes may cancel a task later than its handle is dropped:
            // wait until every aborted call is really gone.
            assert!(gone.recv().await.is_err());
            qemu.resume();

            // Late replies to the dropped calls are not handed to new callers.
            let probes: Vec<_> = (0..100)
                .map(|i| {
                    let qmp = qmp.clone();
                    rt::spawn(async move { hmp_probe(&qmp, &format!("after-{i}")).await })
                })
                .collect();
            for probe in probes {
                probe.await.unwrap();
            }
            let objects: Vec<Value> = qmp
                .call("qom-list", &json!({ "path": "/objects" })).decode()
                .await
                .unwrap();
            let created: Vec<&str> = objects
                .iter()
                .filter(|o| o["type"] == "child<secret>")
                .filter_map(|o| o["name"].as_str())
                .collect();
            let sent: Vec<String> = (0..window).map(|i| format!("dropped-{i}")).collect();
            assert!(
                created.iter().all(|name| sent.iter().any(|s| s == name)),
                "only the {window} commands on the wire ran, not the locally queued ones: {created:?}"
            );
            // Those on the wire did run: they had been written before the
            // callers went away.
            assert_eq!(created.len(), window, "{created:?}");
            let status: Value = qmp.call("query-status", &()).decode().await.unwrap();
            assert_eq!(status["running"], true);
        });
    }

    #[test]
    fn silent_subscriber_lags_while_100k_events_flow() {
        const EVENTS: u32 = 100_000;
        const CAPACITY: usize = 64;
        let firmware_dir = tempfile::tempdir().unwrap();
        let firmware = firmware_dir.path().join("flood.bin");
        std::fs::write(&firmware, flood_firmware(EVENTS)).unwrap();
        let Some(qemu) = QemuProcess::system_machine(
            "pc",
            &[
                "-accel",
                "tcg",
                "-bios",
                firmware.to_str().unwrap(),
                "-device",
                "pvpanic",
                "-action",
                "panic=none",
                "-S",
            ],
        ) else {
            return;
        };
        run(async {
            let options = ConnectOptions::default().subscriber_capacity(CAPACITY);
            let history = options.router.history;
            let qmp = qmp::Qmp::connect_unix(qemu.socket(), options)
                .await
                .unwrap();
            let mut silent = qmp.subscribe(EventFilter::all());
            // Another subscriber, which reads, for the end of the flood.
            let mut panics = qmp.subscribe(EventFilter::name("GUEST_PANICKED"));
            let start = qmp.cursor();

            // Replies keep coming while the flood runs.
            let flooding = Arc::new(AtomicBool::new(true));
            let prober = {
                let (qmp, flooding) = (qmp.clone(), flooding.clone());
                rt::spawn(async move {
                    let mut answered = 0;
                    while flooding.load(Ordering::Relaxed) {
                        hmp_probe(&qmp, &format!("flood-{answered}")).await?;
                        answered += 1;
                    }
                    Ok::<_, String>(answered)
                })
            };
            let began = Instant::now();
            qmp.call("cont", &()).await.unwrap();
            let panicked = match rt::timeout(Duration::from_secs(90), panics.next()).await {
                Ok(Some(Notice::Event(panicked))) => panicked,
                other => panic!("expected GUEST_PANICKED, got {other:?}"),
            };
            let flood_time = began.elapsed();
            flooding.store(false, Ordering::Relaxed);
            let answered = prober.await.expect("probes answered during the flood");
            assert!(answered > 0, "no reply during the flood");
            eprintln!("{EVENTS} events in {flood_time:?}; {answered} probes answered meanwhile");

            // RESUME, then the guest's events, then GUEST_PANICKED.
            assert_eq!(panicked.sequence, start.sequence() + 1 + u64::from(EVENTS));
            // The history kept only its bound, and says so to a late wait.
            let kept = qmp.find_events(start, &EventFilter::all()).len();
            assert!(kept <= history, "history holds {kept} > {history}");
            let err = qmp
                .wait_for_event(start, EventFilter::name("RESUME"), STEP)
                .await
                .unwrap_err();
            match err {
                Error::HistoryOverrun { oldest_kept } => assert!(oldest_kept > start.sequence()),
                other => panic!("expected a history overrun, got {other:?}"),
            }

            // The queue held at most its capacity: the oldest events, in order.
            for k in 0..CAPACITY as u64 {
                match silent.next().await {
                    Some(Notice::Event(e)) => {
                        assert_eq!(e.sequence, start.sequence() + k);
                        if k == 0 {
                            assert_eq!(e.event.name, "RESUME");
                        }
                    }
                    other => panic!("expected event {k}, got {other:?}"),
                }
            }
            // The next event reaches it after the count of what it missed.
            let before_stop = qmp.cursor();
            qmp.call("stop", &()).await.unwrap();
            let missed = before_stop.sequence() - start.sequence() - CAPACITY as u64;
            assert!(missed > 0);
            assert_eq!(silent.next().await, Some(Notice::Lagged(missed)));
            match silent.next().await {
                Some(Notice::Event(e)) => {
                    assert_eq!(e.event.name, "STOP");
                    assert_eq!(e.sequence, before_stop.sequence());
                }
                other => panic!("expected STOP, got {other:?}"),
            }
        });
    }

    #[test]
    fn tcp_and_inherited_unix_stream() {
        let Some(qemu) = QemuProcess::system(&["-qmp", "tcp:127.0.0.1:0,server=on,wait=off"])
        else {
            return;
        };
        run(async {
            let unix = qmp::Qmp::connect_unix(qemu.socket(), ConnectOptions::default())
                .await
                .unwrap();
            // QEMU picked the TCP port; its chardev says which.
            let devs = chardevs(&unix.call("query-chardev", &()).decode().await.unwrap());
            let port: u16 = devs
                .iter()
                .find_map(|(_, file)| file.split("tcp:127.0.0.1:").nth(1))
                .and_then(|rest| rest.split(',').next())
                .and_then(|port| port.parse().ok())
                .unwrap_or_else(|| panic!("a TCP monitor in {devs:?}"));
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let tcp = qmp::Qmp::connect_tcp(addr, ConnectOptions::default())
                .await
                .unwrap();
            assert_eq!(tcp.greeting(), unix.greeting());
            let version: Value = tcp.call("query-version", &()).decode().await.unwrap();
            assert_eq!(version["package"], tcp.greeting().version.package());
            // Both monitors at once, each with its own answers.
            hmp_probe(&tcp, "over-tcp").await.unwrap();
            hmp_probe(&unix, "over-unix").await.unwrap();
            let (_, fd) = open_new_file(qemu.dir(), "no-fds-over-tcp");
            let err = tcp
                .call("getfd", &json!({ "fdname": "x" })).fds(vec![fd])
                .await
                .unwrap_err();
            assert!(matches!(err, Error::FdPassingUnsupported), "{err:?}");
            tcp.close();
            unix.close();

            // A stream connected by someone else, fds included.
            let stream = std::os::unix::net::UnixStream::connect(qemu.socket()).unwrap();
            let inherited = qmp::Qmp::from_unix_stream(stream, ConnectOptions::default())
                .await
                .unwrap();
            hmp_probe(&inherited, "over-inherited").await.unwrap();
            let (_, fd) = open_new_file(qemu.dir(), "inherited");
            inherited
                .call("getfd", &json!({ "fdname": "inherited" })).fds(vec![fd])
                .await
                .unwrap();
            inherited
                .call("closefd", &json!({ "fdname": "inherited" }))
                .await
                .unwrap();
        });
    }

    #[test]
    fn nothing_listens_is_not_closed() {
        let Some(qemu) = QemuProcess::system(&[]) else {
            return;
        };
        run(async {
            let absent = qemu.dir().join("absent.sock");
            let err = qmp::Qmp::connect_unix(&absent, ConnectOptions::default())
                .await
                .unwrap_err();
            assert!(
                err.is_socket_not_available() && !err.is_socket_closed(),
                "{err:?}"
            );

            // A socket file left behind by a listener that went away.
            let stale = qemu.dir().join("stale.sock");
            drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
            let err = qmp::Qmp::connect_unix(&stale, ConnectOptions::default())
                .await
                .unwrap_err();
            assert!(
                err.is_socket_not_available() && !err.is_socket_closed(),
                "{err:?}"
            );

            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap();
            let err = qmp::Qmp::connect_tcp(port, ConnectOptions::default())
                .await
                .unwrap_err();
            assert!(
                err.is_socket_not_available() && !err.is_socket_closed(),
                "{err:?}"
            );

            // A connection that ended because QEMU quit.
            let qmp = qmp::Qmp::connect_unix(qemu.socket(), ConnectOptions::default())
                .await
                .unwrap();
            let mut events = qmp.subscribe(EventFilter::all());
            qmp.call("quit", &()).await.unwrap();
            while events.next().await.is_some() {}
            assert_eq!(qmp.end_reason(), Some(End::PeerClosed));
            let err = qmp.call("query-status", &()).await.unwrap_err();
            assert!(
                err.is_socket_closed() && !err.is_socket_not_available(),
                "{err:?}"
            );
            assert!(matches!(err, Error::Closed(End::PeerClosed)), "{err:?}");
        });
    }
}
