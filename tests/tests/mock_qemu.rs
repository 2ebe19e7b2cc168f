//! `qmp_mock::MockQemu` against the real clients: its built-in answers,
//! handlers and the record, events sent by the test, its faults, and its
//! sockets. Each on both runtimes.

use qmp_client::{ConnectOptions, Cursor, End, Error, ErrorClass, EventFilter};
use qmp_mock::{Action, MockConfig, MockQemu};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

qmp_tests::on_both_runtimes! {
    #[test]
    fn the_built_in_answers_are_qemus() {
        let qemu = MockQemu::builder()
            .version(9, 2, 1)
            .on("query-block", |_| vec![Action::ok(json!([]))])
            .listen()
            .unwrap();
        rt::block_on(async {
            let qmp = qmp::Qmp::connect_unix(qemu.path().unwrap(), ConnectOptions::default())
                .await
                .unwrap();
            assert_eq!(qmp.greeting().version.qemu().unwrap().minor, 2);
            let version: Value = qmp.call("query-version", &()).decode().await.unwrap();
            assert_eq!(version["qemu"], json!({"major": 9, "minor": 2, "micro": 1}));

            let status: Value = qmp.call("query-status", &()).decode().await.unwrap();
            assert_eq!(status, json!({"status": "running", "running": true}));
            let cursor = qmp.cursor();
            qmp.call("stop", &()).await.unwrap();
            qmp.wait_for_event(cursor, EventFilter::name("STOP"), WAIT).await.unwrap();
            let status: Value = qmp.call("query-status", &()).decode().await.unwrap();
            assert_eq!(status, json!({"status": "paused", "running": false}));
            let cursor = qmp.cursor();
            qmp.call("cont", &()).await.unwrap();
            qmp.wait_for_event(cursor, EventFilter::name("RESUME"), WAIT).await.unwrap();

            let commands: Vec<Value> = qmp.call("query-commands", &()).decode().await.unwrap();
            let names: Vec<&str> = commands.iter().filter_map(|c| c["name"].as_str()).collect();
            for name in ["qmp_capabilities", "query-block", "query-status", "quit"] {
                assert!(names.contains(&name), "{names:?}");
            }

            let Err(Error::Qmp(missing)) = qmp.call("blockdev-snapshot", &()).await else {
                panic!("an unknown command was answered");
            };
            assert_eq!(missing.class, ErrorClass::CommandNotFound);
            assert_eq!(missing.desc, "The command blockdev-snapshot has not been found");

            // quit: its SHUTDOWN event, then the end of the connection.
            let cursor = qmp.cursor();
            qmp.call("quit", &()).await.unwrap();
            qmp.wait_for_event(cursor, EventFilter::name("SHUTDOWN"), WAIT).await.unwrap();
            qmp.closed().await;
        });
        assert_eq!(
            qemu.command_names(),
            ["query-version", "query-status", "stop", "query-status", "cont", "query-commands",
             "blockdev-snapshot", "quit"]
        );
        // Like QEMU after quit, it accepts no more connections.
        qemu.close().unwrap();
    }

    #[test]
    fn handlers_see_the_arguments_and_the_record_keeps_them() {
        let qemu = MockQemu::builder()
            .on("block_resize", |command| {
                let arguments: Value = command.decode_arguments().unwrap();
                match arguments["size"].as_u64() {
                    Some(size) if size % 512 == 0 => vec![Action::ok(json!({}))],
                    _ => vec![Action::error(ErrorClass::GenericError, "bad size")],
                }
            })
            .listen()
            .unwrap();
        rt::block_on(async {
            let qmp = qmp::Qmp::connect_unix(qemu.path().unwrap(), ConnectOptions::default())
                .await
                .unwrap();
            qmp.call("block_resize", &json!({"node-name": "disk0", "size": 1024})).await.unwrap();
            let refused = qmp.call("block_resize", &json!({"node-name": "disk0", "size": 1000})).await;
            assert!(matches!(refused, Err(Error::Qmp(e)) if e.desc == "bad size"));
        });
        let commands = qemu.commands();
        assert_eq!(commands.len(), 2);
        let second: Value = commands[1].decode_arguments().unwrap();
        assert_eq!(second, json!({"node-name": "disk0", "size": 1000}));
    }

    #[test]
    fn events_sent_by_the_test_reach_the_client() {
        let qemu = MockQemu::listen().unwrap();
        rt::block_on(async {
            let qmp = qmp::Qmp::connect_unix(qemu.path().unwrap(), ConnectOptions::default())
                .await
                .unwrap();
            let cursor = qmp.cursor();
            assert!(qemu.event("BLOCK_IO_ERROR", json!({"device": "disk0", "operation": "write"})));
            let error = qmp
                .wait_for_event(cursor, EventFilter::name("BLOCK_IO_ERROR"), WAIT)
                .await
                .unwrap();
            let data: Value = error.event.decode().unwrap();
            assert_eq!(data["device"], "disk0");
        });
    }

    #[test]
    fn faults_a_test_needs() {
        // The slow reply waits for the test's word (then a short delay),
        // so that the deadline surely comes first.
        let (release, gate) = std::sync::mpsc::channel();
        let mut gate = Some(gate);
        let qemu = MockQemu::builder()
            .config(MockConfig::default().slow_writer(Duration::ZERO).event_before_greeting("EARLY", Value::Null))
            .on("slow", move |_| match gate.take() {
                Some(gate) => vec![Action::Wait(gate), Action::Delay(Duration::from_millis(10)), Action::ok(1)],
                None => vec![Action::ok(1)],
            })
            .on("never", |_| vec![])
            .on("huge", |_| vec![Action::oversize_reply(4096)])
            .on("no-id", |_| vec![Action::ErrorWithoutId(qmp_mock::QmpError::generic("parse"))])
            .on("cut", |_| vec![Action::CloseMidReply(json!({"half": "of this"}))])
            .listen()
            .unwrap();
        rt::block_on(async {
            let options = ConnectOptions::default()
                .client(qmp_client::ClientConfig::default().max_message_size(1024));
            let qmp = qmp::Qmp::connect_unix(qemu.path().unwrap(), options).await.unwrap();
            // The event before the greeting is kept.
            assert_eq!(qmp.find_events(Cursor::START, &EventFilter::name("EARLY")).len(), 1);
            // A slow reply, and one that never comes, against a deadline.
            let late = qmp.call("slow", &()).timeout(Duration::from_millis(50)).await;
            assert!(matches!(late, Err(Error::Timeout)), "{late:?}");
            release.send(()).unwrap();
            let never = qmp.call("never", &()).timeout(Duration::from_millis(50)).await;
            assert!(matches!(never, Err(Error::Timeout)), "{never:?}");
            // An error without id answers nothing the client asked.
            let no_id = qmp.call("no-id", &()).timeout(Duration::from_millis(200)).await;
            assert!(no_id.is_err());
            // Too large for the client's limit: the client gives the
            // connection up.
            let huge = qmp.call("huge", &()).await;
            assert!(matches!(huge, Err(Error::Closed(End::Protocol(_)))), "{huge:?}");

            // The next connection: closed in the middle of a reply.
            let qmp = qmp::Qmp::connect_unix(qemu.path().unwrap(), ConnectOptions::default())
                .await
                .unwrap();
            let cut = qmp.call("cut", &()).await;
            assert!(matches!(cut, Err(Error::Closed(_))), "{cut:?}");
        });
    }

    #[test]
    fn tcp_and_one_connection_after_another() {
        let qemu = MockQemu::builder().listen_tcp().unwrap();
        let address = qemu.tcp_address().unwrap().to_string();
        rt::block_on(async {
            for _ in 0..3 {
                let qmp = qmp::Qmp::connect_tcp(address.clone(), ConnectOptions::default())
                    .await
                    .unwrap();
                qmp.call("query-status", &()).await.unwrap();
                qmp.close();
                qmp.closed().await;
            }
        });
        assert_eq!(qemu.command_names().len(), 3);
        assert!(qemu.connections() >= 3);
        qemu.close().unwrap();
    }
}

/// Before negotiation, and for input it cannot parse, the mock answers in
/// QEMU's words, byte for byte (as in the 10.0 capture).
#[test]
fn before_negotiation_the_wire_is_qemus() {
    let (mut stream, _qemu) = MockQemu::builder().pair().unwrap();
    stream
        .write_all(b"{\"execute\": \"query-status\", \"id\": 0}\n[1, 2]\n")
        .unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(
        lines[0],
        r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 10}, "package": ""}, "capabilities": ["oob"]}}"#
    );
    assert_eq!(
        lines[1],
        r#"{"id": 0, "error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}}"#
    );
    assert_eq!(
        lines[2],
        r#"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#
    );
}

/// Dropping the mock closes the connection it serves.
#[test]
fn dropping_the_mock_closes_its_connection() {
    let (mut stream, qemu) = MockQemu::builder().pair().unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut greeting = [0u8; 8];
    stream.read_exact(&mut greeting).unwrap();
    drop(qemu);
    let mut rest = Vec::new();
    // Ends (rather than timing out) only if the mock closed the socket.
    stream
        .read_to_end(&mut rest)
        .expect("the end of the stream");
}
