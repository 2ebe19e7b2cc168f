//! Odd but legal wire output: events with timestamps of -1, unknown names,
//! extra members, no data, no timestamp, non-ASCII and escaped text;
//! `pretty=on` output over many lines; LF-only line ends; a server that
//! writes one byte at a time. Everything must still work: greeting,
//! negotiation, replies, error replies, events, cursor waits.
//!
//! Each case runs under tokio (`qmp-tokio`) and smol (`qmp-smol`), against
//! the mock of [`qmp_tests::mock`].

use qmp_mock::{Action, Mock, MockConfig, Peer};
use qmp_proto::{ErrorClass, QmpError, ServerConfig, Timestamp, Version, VersionTriple};
use serde_json::{json, Value};
use std::time::Duration;

/// Far more than any case needs: reaching it means the client hung.
const HANG: Duration = Duration::from_secs(20);

/// The unusual events, one per line, exactly as the mock writes them.
const ODD_EVENTS: &[&str] = &[
    // QEMU's timestamp when it could not read the clock.
    r#"{"timestamp": {"seconds": -1, "microseconds": -1}, "event": "STOP"}"#,
    // A name this client has never heard of, with nested data.
    r#"{"event": "X_FUTURE_EVENT", "data": {"nested": [1, {"deeper": null}], "n": 1.5e3}, "timestamp": {"seconds": 1700000000, "microseconds": 999999}}"#,
    // Members nobody defined, at the top level and inside data and timestamp.
    r#"{"event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit", "new-member": [1]}, "timestamp": {"microseconds": 2, "seconds": 1, "nanoseconds": 7}, "extra": {"x": [1, 2]}, "another": "y"}"#,
    // No data at all.
    r#"{"event": "RESUME", "timestamp": {"seconds": 3, "microseconds": 4}}"#,
    // Non-ASCII text, raw and escaped (a surrogate pair among them).
    r#"{"event": "BLOCK_IO_ERROR", "data": {"device": "диск-é", "reason": "No space ✓ 😀", "escaped": "\u00e9\ud83d\ude00\n\t\"q\"\\"}, "timestamp": {"seconds": 5, "microseconds": 6}}"#,
    // A non-ASCII name, and an escaped one.
    r#"{"event": "ÉVÉNEMENT_ÑOÑ", "timestamp": {"seconds": 7, "microseconds": 8}}"#,
    r#"{"event": "\u0045SCAPED_NAME", "timestamp": {"seconds": 9, "microseconds": 10}}"#,
    // No timestamp: accepted, with a zero timestamp.
    r#"{"event": "NO_TIMESTAMP", "data": {}}"#,
];

/// The event name, seconds, microseconds and data (`None`: no data) each
/// of [`ODD_EVENTS`] must arrive with.
fn expected_events() -> Vec<(&'static str, i64, i64, Option<Value>)> {
    vec![
        ("STOP", -1, -1, None),
        (
            "X_FUTURE_EVENT",
            1_700_000_000,
            999_999,
            Some(json!({"nested": [1, {"deeper": null}], "n": 1.5e3})),
        ),
        (
            "SHUTDOWN",
            1,
            2,
            Some(json!({"guest": false, "reason": "host-qmp-quit", "new-member": [1]})),
        ),
        ("RESUME", 3, 4, None),
        (
            "BLOCK_IO_ERROR",
            5,
            6,
            Some(json!({
                "device": "диск-é",
                "reason": "No space ✓ 😀",
                "escaped": "é😀\n\t\"q\"\\",
            })),
        ),
        ("ÉVÉNEMENT_ÑOÑ", 7, 8, None),
        ("ESCAPED_NAME", 9, 10, None),
        ("NO_TIMESTAMP", 0, 0, Some(json!({}))),
    ]
}

/// A reply whose strings hold every byte the framer must not take for
/// structure, and non-ASCII text.
fn tricky_reply() -> Value {
    json!({
        "status": "running",
        "running": true,
        "nested": {"list": [1, 2, {"s": "}{][\"\\\r\n"}], "empty": {}, "none": []},
        "text": "ünïcödé ✓ 😀 \u{0001}",
    })
}

/// A mock QEMU 10.0.2 that answers `query-status` with [`tricky_reply`],
/// `fail` with an error reply, and `emit` with an event first.
fn conversation_mock(peer: Peer) -> std::io::Result<Vec<String>> {
    peer.serve(|command| match command.name.as_str() {
        "query-status" => vec![Action::Reply(tricky_reply())],
        "fail" => vec![Action::ReplyError(QmpError::new(
            ErrorClass::DeviceNotFound,
            "Device 'nope' not found ✗",
        ))],
        "emit" => vec![
            Action::Event(
                "DEVICE_DELETED".into(),
                json!({"device": "dév0", "path": "/machine/peripheral/dév0"}),
                Timestamp {
                    seconds: -1,
                    microseconds: -1,
                },
            ),
            Action::Reply(json!({})),
        ],
        other => vec![Action::Reply(json!({ "answer_to": other }))],
    })
}

fn server_config() -> ServerConfig {
    ServerConfig::default().version(Version::new(
        VersionTriple {
            major: 10,
            minor: 0,
            micro: 2,
        },
        "mock ✓",
    ))
}

qmp_tests::on_both_runtimes! {
    async fn connect(stream: std::os::unix::net::UnixStream) -> qmp::Qmp {
        rt::timeout(HANG, qmp::Qmp::from_unix_stream(stream, qmp::ConnectOptions::default()))
            .await
            .expect("connect hung")
            .expect("connect")
    }

    /// Greeting, replies, an error reply and an event under `config`.
    fn converse(config: MockConfig) {
        let label = format!("{config:?}");
        let (stream, mock) = Mock::pair(config, conversation_mock);
        rt::block_on(async {
            let qmp = connect(stream).await;
            assert_eq!(qmp.greeting().version.qemu().unwrap().major, 10, "{label}");
            assert_eq!(qmp.greeting().version.qemu().unwrap().micro, 2, "{label}");
            assert_eq!(qmp.greeting().version.package(), "mock ✓", "{label}");

            let status: Value = rt::timeout(HANG, qmp.call("query-status", &()).decode())
                .await
                .expect("hung")
                .expect("query-status");
            assert_eq!(status, tricky_reply(), "{label}");

            let failed = rt::timeout(HANG, qmp.call("fail", &())).await.expect("hung");
            match failed {
                Err(qmp_client::Error::Qmp(e)) => {
                    assert_eq!(e.class, ErrorClass::DeviceNotFound, "{label}");
                    assert_eq!(e.desc, "Device 'nope' not found ✗", "{label}");
                }
                other => panic!("{label}: expected an error reply, got {other:?}"),
            }

            let cursor = qmp.cursor();
            rt::timeout(HANG, qmp.call("emit", &()))
                .await
                .expect("hung")
                .expect("emit");
            let deleted = qmp
                .wait_for_event(cursor, qmp::EventFilter::name("DEVICE_DELETED"), HANG)
                .await
                .expect("event");
            assert_eq!(deleted.event.timestamp.seconds, -1, "{label}");
            let data: Value = deleted.event.decode().expect("data");
            assert_eq!(data["device"], "dév0", "{label}");

            let echoed: Value = rt::timeout(HANG, qmp.call("other", &()).decode())
                .await
                .expect("hung")
                .expect("other");
            assert_eq!(echoed, json!({"answer_to": "other"}), "{label}");
            qmp.close();
        });
        let served = mock.join().expect("mock");
        assert_eq!(served, ["query-status", "fail", "emit", "other"], "{label}");
    }

    /// QEMU's plain output, the baseline of the cases below.
    #[test]
    fn plain_output() {
        converse(MockConfig::default().server(server_config()));
    }

    /// `pretty=on`: every message spans many lines.
    #[test]
    fn pretty_output() {
        converse(MockConfig::default().server(server_config()).pretty(true));
    }

    /// Lines ended by LF alone, plain and pretty.
    #[test]
    fn lf_only_line_ends() {
        for pretty in [false, true] {
            let config = MockConfig::default().server(server_config());
            converse(config.lf_only(true).pretty(pretty));
        }
    }

    /// One byte per write, plain, and pretty with LF line ends.
    #[test]
    fn one_byte_at_a_time() {
        let config = MockConfig::default().server(server_config());
        converse(config.clone().byte_at_a_time(true));
        converse(config.byte_at_a_time(true).pretty(true).lf_only(true));
    }

    /// The unusual events of [`ODD_EVENTS`] reach a subscriber, the history
    /// and a cursor wait intact, and the connection goes on.
    #[test]
    fn odd_events_arrive_intact() {
        let (stream, mock) = Mock::pair(MockConfig::default(), |peer: Peer| {
            peer.serve(|command| match command.name.as_str() {
                "emit" => {
                    let mut actions: Vec<Action> = ODD_EVENTS
                        .iter()
                        .map(|line| Action::Raw(format!("{line}\r\n").into_bytes()))
                        .collect();
                    actions.push(Action::Reply(json!("emitted")));
                    actions
                }
                other => vec![Action::Reply(json!({ "answer_to": other }))],
            })
        });
        rt::block_on(async {
            let qmp = connect(stream).await;
            let mut events = qmp.subscribe(qmp::EventFilter::all());
            let cursor = qmp.cursor();
            let emitted: Value = rt::timeout(HANG, qmp.call("emit", &()).decode())
                .await
                .expect("hung")
                .expect("emit");
            assert_eq!(emitted, "emitted");

            let expected = expected_events();
            for (i, (name, seconds, microseconds, data)) in expected.iter().enumerate() {
                let notice = rt::timeout(HANG, events.next()).await.expect("hung");
                let Some(qmp::Notice::Event(got)) = notice else {
                    panic!("event {i}: got {notice:?}");
                };
                assert_eq!(got.sequence, cursor.sequence() + i as u64);
                assert_eq!(got.event.name, *name, "event {i}");
                assert_eq!(got.event.timestamp.seconds, *seconds, "{name}");
                assert_eq!(got.event.timestamp.microseconds, *microseconds, "{name}");
                let got_data = got.event.data.as_ref().map(|d| d.decode::<Value>().expect("JSON"));
                assert_eq!(got_data, *data, "{name}");
            }

            // Known events still decode into their types, unknown members
            // notwithstanding.
            #[derive(serde::Deserialize)]
            struct Shutdown {
                guest: bool,
                reason: String,
            }
            let filter = qmp::EventFilter::name("SHUTDOWN");
            let found = qmp.find_events(cursor, &filter);
            assert_eq!(found.len(), 1);
            let shutdown: Shutdown = found[0].event.decode().expect("SHUTDOWN data");
            assert!(!shutdown.guest);
            assert_eq!(shutdown.reason, "host-qmp-quit");

            let waited = qmp
                .wait_for_event(cursor, qmp::EventFilter::name("ÉVÉNEMENT_ÑOÑ"), HANG)
                .await
                .expect("already in the history");
            assert_eq!(waited.event.timestamp.seconds, 7);

            let after: Value = rt::timeout(HANG, qmp.call("after", &()).decode())
                .await
                .expect("hung")
                .expect("after");
            assert_eq!(after, json!({"answer_to": "after"}));
            qmp.close();
        });
        mock.join().expect("mock");
    }
}
