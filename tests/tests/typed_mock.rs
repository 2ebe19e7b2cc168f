//! Typed events that only a guest (or a newer QEMU) sends, through both
//! adapters: qmp-proto's server role plays QEMU on one end of a socketpair,
//! driven by a plain thread.
//!
//! On `stop` the mock sends GUEST_PANICKED, SUSPEND, WAKEUP and
//! BLOCK_IO_ERROR as QEMU 10.0 words them, an event no QEMU has yet, a
//! JOB_STATUS_CHANGE with a state no QEMU has yet and one that does not
//! decode; `query-status` answers with a state and a member no QEMU has yet.

use qmp_proto::typed::commands::{QueryStatus, Stop};
use qmp_proto::typed::Command as _;
use qmp_proto::{Server, ServerConfig, ServerOutput, Timestamp};
use serde_json::json;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// Serves the mock QEMU on `stream` until the client closes it.
fn serve(mut stream: UnixStream) {
    let mut server = Server::new(ServerConfig::default());
    let mut buf = [0u8; 4096];
    loop {
        while let Some(bytes) = server.poll_transmit() {
            if stream.write_all(&bytes).is_err() {
                return;
            }
        }
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        server.receive(&buf[..n]);
        while let Some(output) = server.poll_output() {
            let ServerOutput::Command(command) = output else {
                continue;
            };
            if command.name == Stop::NAME {
                let stamp = Timestamp {
                    seconds: 1_795_554_665,
                    microseconds: 598_141,
                };
                let events = [
                    ("STOP", json!(null)),
                    (
                        "GUEST_PANICKED",
                        json!({"action": "pause", "info": {"type": "hyper-v",
                            "arg1": 30, "arg2": 0, "arg3": 0, "arg4": 0, "arg5": 0}}),
                    ),
                    ("SUSPEND", json!(null)),
                    ("WAKEUP", json!(null)),
                    (
                        "BLOCK_IO_ERROR",
                        json!({"qom-path": "/machine/peripheral/vd0/virtio-backend",
                            "device": "", "node-name": "disk0", "operation": "read",
                            "action": "report", "reason": "Input/output error"}),
                    ),
                    ("QUANTUM_ENTANGLEMENT", json!({"partner": "vm7"})),
                    (
                        "JOB_STATUS_CHANGE",
                        json!({"id": "j0", "status": "hibernating"}),
                    ),
                    ("JOB_STATUS_CHANGE", json!({"id": ["not", "a", "string"]})),
                ];
                for (name, data) in events {
                    server.send_event(name, &data, stamp).unwrap();
                }
                server.reply_ok(&command, &json!({})).unwrap();
            } else if command.name == QueryStatus::NAME {
                let status = json!({"running": false, "status": "frozen", "singlestep": false});
                server.reply_ok(&command, &status).unwrap();
            } else {
                server.reply_ok(&command, &json!({})).unwrap();
            }
        }
    }
}

qmp_tests::on_both_runtimes! {
    use qmp::typed::events::{BlockIoError, GuestPanicked, JobStatusChange, Resume, Suspend, Wakeup};
    use qmp::typed::types::{
        BlockErrorAction, GuestPanicAction, GuestPanicInformationType, IoOperationType, JobStatus,
        RunState,
    };
    use qmp::typed::{Event as _, EventMatcher};
    use qmp::{ConnectOptions, Error, EventFilter, Qmp};

    #[test]
    fn guest_only_and_newer_events_through_the_adapter() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mock = std::thread::spawn(move || serve(theirs));
        rt::block_on(async {
            let qmp = Qmp::from_unix_stream(ours, ConnectOptions::default()).await.unwrap();
            let cursor = qmp.cursor();
            qmp.execute(&Stop).await.unwrap();

            let panicked = qmp.wait_for(cursor, &GuestPanicked::matcher(), WAIT).await.unwrap();
            assert_eq!(panicked.data.action, GuestPanicAction::Pause);
            assert_eq!(panicked.timestamp.seconds, 1_795_554_665);
            let info = panicked.data.info.unwrap();
            assert_eq!(info.kind, GuestPanicInformationType::HyperV);
            assert_eq!(info.details["arg1"], 30);

            let suspend = qmp.wait_for(cursor, &Suspend::matcher(), WAIT).await.unwrap();
            let wakeup = qmp.wait_for(cursor, &Wakeup::matcher(), WAIT).await.unwrap();
            assert_eq!(wakeup.sequence, suspend.sequence + 1);

            let io = EventMatcher::new(|e: &BlockIoError| e.node_name.as_deref() == Some("disk0"));
            let error = qmp.wait_for(cursor, &io, WAIT).await.unwrap();
            assert_eq!(error.data.operation, IoOperationType::Read);
            assert_eq!(error.data.action, BlockErrorAction::Report);
            assert_eq!(error.data.qom_path.as_deref(), Some("/machine/peripheral/vd0/virtio-backend"));
            assert_eq!(error.data.nospace, None);

            // An event without a type is delivered raw.
            let future = qmp.find_events(cursor, &EventFilter::name("QUANTUM_ENTANGLEMENT"));
            assert_eq!(future.len(), 1);
            assert_eq!(future[0].event.decode::<serde_json::Value>().unwrap()["partner"], "vm7");

            // A state no QEMU has yet keeps its name.
            let hibernating = JobStatus::Unknown("hibernating".into());
            let reaching = JobStatusChange::reaching("j0", hibernating.clone());
            let change = qmp.wait_for(cursor, &reaching, WAIT).await.unwrap();
            assert_eq!(change.data.status, hibernating);

            // A typed decode that fails is this caller's error only.
            let after = change.next_cursor();
            let broken = qmp.wait_for(after, &JobStatusChange::matcher(), WAIT).await;
            assert!(matches!(broken, Err(Error::Decode(_))), "{broken:?}");
            assert_eq!(qmp.find(cursor, &JobStatusChange::matcher()).len(), 1);
            assert!(qmp.find(cursor, &Resume::matcher()).is_empty());

            // The connection goes on; a newer reply decodes.
            let status = qmp.execute(&QueryStatus).await.unwrap();
            assert_eq!(status.status, RunState::Unknown("frozen".into()));
            assert!(qmp.end_reason().is_none());
            qmp.close();
        });
        mock.join().unwrap();
    }
}
