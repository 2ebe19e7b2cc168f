//! Hostile peers while connecting: what `connect` returns when the server
//! never greets, greets badly, goes away right after the greeting, or refuses
//! `qmp_capabilities`; and that a connect given up releases the socket. And
//! odd starts that are not failures: an event before the greeting (some
//! QEMU versions send one), and the greeting of a QMP server that is not
//! QEMU (StratoVirt's).
//!
//! Each case runs under tokio (`qmp-tokio`) and smol (`qmp-smol`), against
//! the mock of [`qmp_tests::mock`].

use qmp_client::{Cursor, Error, EventFilter};
use qmp_mock::{Action, Mock, MockConfig, Peer};
use qmp_proto::{End, ProtocolError, QmpError, RawJson, ServerConfig, Version, VersionTriple};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The connect deadline of the cases that expect a timeout.
const CONNECT_LIMIT: Duration = Duration::from_millis(300);
/// Far more than any case needs: reaching it means the client hung.
const HANG: Duration = Duration::from_secs(20);

fn options(connect_timeout: Duration) -> qmp_client::ConnectOptions {
    qmp_client::ConnectOptions::default().connect_timeout(connect_timeout)
}

/// The protocol error a failed connect ended with.
fn protocol_error(result: Result<impl std::fmt::Debug, Error>) -> ProtocolError {
    match result {
        Err(Error::Closed(End::Protocol(e))) => e,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

/// A mock that sends `bytes` in place of the greeting, then waits for the
/// client to give the connection up; returns whether it did.
fn greets_with(bytes: &'static [u8]) -> impl FnOnce(Peer) -> bool + Send + 'static {
    move |mut peer: Peer| {
        peer.send_raw(bytes).expect("send");
        peer.wait_for_eof();
        peer.saw_eof()
    }
}

/// An event as QEMU writes it, sent before the greeting.
const EARLY_EVENT: &[u8] = b"{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 42}, \"event\": \"EARLY\", \"data\": {\"path\": \"/a\\\"b\", \"list\": [1, null]}}\r\n";

/// StratoVirt's greeting, as reported.
const STRATOVIRT_GREETING: &[u8] = b"{\"QMP\": {\"version\": {\"StratoVirt\": {\"micro\": 1, \"minor\": 0, \"major\": 2}, \"package\": \"StratoVirt-2.1.0\"}, \"capabilities\": []}}\r\n";

/// The version object of [`STRATOVIRT_GREETING`].
const STRATOVIRT_VERSION: &str =
    r#"{"StratoVirt": {"micro": 1, "minor": 0, "major": 2}, "package": "StratoVirt-2.1.0"}"#;

/// A mock that writes `before` (if any) and then its greeting (the
/// server role's, unless `greeting` replaces it), and answers every command
/// with `{"answer_to": NAME}` until the client leaves; returns the names of
/// the commands it served.
fn greets_after(
    before: Option<&'static [u8]>,
    greeting: Option<&'static [u8]>,
) -> impl FnOnce(Peer) -> Vec<String> + Send + 'static {
    move |mut peer: Peer| {
        if let Some(bytes) = before {
            peer.send_raw(bytes).expect("send");
        }
        if let Some(bytes) = greeting {
            // The server role still negotiates: it needs no greeting of its own.
            peer.send_raw(bytes).expect("send");
        } else {
            peer.greet().expect("greet");
        }
        let mut served = Vec::new();
        while let Some(command) = peer.next_command() {
            served.push(command.name.clone());
            let answer = json!({ "answer_to": command.name });
            if peer.act(&command, [Action::Reply(answer)]).is_err() {
                break;
            }
        }
        served
    }
}

qmp_tests::on_both_runtimes! {
    /// A listening server that accepts and never says a word: the connect
    /// fails with `ConnectTimeout` when its deadline passes, and the
    /// half-made connection is closed (the mock sees end of file).
    #[test]
    fn no_greeting_times_out_over_a_path() {
        let (path, mock) = Mock::listen(MockConfig::default(), |mut peer: Peer| {
            peer.wait_for_eof();
        });
        rt::block_on(async {
            let started = Instant::now();
            let result = rt::timeout(HANG, qmp::Qmp::connect_unix(&path, options(CONNECT_LIMIT)))
                .await
                .expect("connect hung past its own deadline");
            let took = started.elapsed();
            assert!(matches!(result, Err(Error::ConnectTimeout)), "{result:?}");
            assert!(took >= CONNECT_LIMIT, "gave up early: {took:?}");
            assert!(took < CONNECT_LIMIT + Duration::from_secs(5), "gave up late: {took:?}");
        });
        // Returns only once the client has closed the socket.
        mock.join();
    }

    /// The same over an already-connected stream, and a server that greets
    /// but never answers `qmp_capabilities`: both are connect timeouts.
    #[test]
    fn no_greeting_or_no_negotiation_times_out_over_a_stream() {
        for greet in [false, true] {
            let (stream, mock) = Mock::pair(MockConfig::default(), move |mut peer: Peer| {
                if greet {
                    peer.greet().expect("greet");
                }
                // Reads qmp_capabilities (if sent) and answers nothing.
                peer.wait_for_eof();
            });
            rt::block_on(async {
                let result = rt::timeout(
                    HANG,
                    qmp::Qmp::from_unix_stream(stream, options(CONNECT_LIMIT)),
                )
                .await
                .expect("connect hung past its own deadline");
                assert!(matches!(result, Err(Error::ConnectTimeout)), "greet {greet}: {result:?}");
            });
            mock.join();
        }
    }

    /// Greetings that are not greetings: `BadGreeting` at connect, at once
    /// (not at the connect deadline), and the socket is released. (Before
    /// the fix in qmp-proto's client, the first four ended with
    /// `InvalidJson` or `UnexpectedMessage` instead.) An event where the
    /// greeting should be is no longer one of them: see
    /// `an_event_before_the_greeting_is_kept`.
    #[test]
    fn bad_greeting_is_a_typed_protocol_error() {
        let greetings: [&'static [u8]; 7] = [
            // Not JSON.
            b"Welcome to the QEMU monitor\r\n",
            // JSON, not an object.
            b"[1, 2, 3]\r\n",
            // An object that is no QMP message.
            b"{\"hello\": \"world\"}\r\n",
            // A greeting whose member is of the wrong shape.
            b"{\"QMP\": {\"version\": \"10.0\"}}\r\n",
            // A version that is no object (any object is taken).
            b"{\"QMP\": {\"version\": 3, \"capabilities\": []}}\r\n",
            // A reply where the greeting should be.
            b"{\"return\": {}, \"id\": 0}\r\n",
            // A reply after an event, where the greeting should be.
            b"{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n{\"return\": {}, \"id\": 0}\r\n",
        ];
        for greeting in greetings {
            let (stream, mock) = Mock::pair(MockConfig::default(), greets_with(greeting));
            rt::block_on(async {
                let started = Instant::now();
                let result = rt::timeout(HANG, qmp::Qmp::from_unix_stream(stream, options(HANG)))
                    .await
                    .expect("connect hung");
                let error = protocol_error(result);
                assert!(
                    matches!(error, ProtocolError::BadGreeting { .. }),
                    "greeting {:?}: unexpected error {error:?}",
                    String::from_utf8_lossy(greeting)
                );
                assert!(started.elapsed() < Duration::from_secs(5));
            });
            assert!(mock.join(), "the client did not close the socket");
        }
    }

    /// The server greets, then goes away: while the client negotiates (the
    /// mock reads `qmp_capabilities` first) the connect fails with the peer's
    /// close; right after the greeting, it fails with the connection closed
    /// (the peer's close or a broken pipe, whichever the client meets first).
    #[test]
    fn close_after_greeting_fails_the_connect() {
        // Deterministic: the close comes after the client's command is read.
        let (stream, mock) = Mock::pair(MockConfig::default(), |mut peer: Peer| {
            peer.greet().expect("greet");
            let negotiation = peer.next_message().expect("qmp_capabilities");
            assert_eq!(negotiation["execute"], "qmp_capabilities");
            peer.close();
        });
        rt::block_on(async {
            let result = rt::timeout(HANG, qmp::Qmp::from_unix_stream(stream, options(HANG)))
                .await
                .expect("connect hung");
            assert!(matches!(result, Err(Error::Closed(End::PeerClosed))), "{result:?}");
        });
        mock.join();

        // Racy by nature: the close may reach the client before or after
        // it writes `qmp_capabilities`.
        let (stream, mock) = Mock::pair(MockConfig::default(), |mut peer: Peer| {
            peer.greet().expect("greet");
            peer.close();
        });
        rt::block_on(async {
            let result = rt::timeout(HANG, qmp::Qmp::from_unix_stream(stream, options(HANG)))
                .await
                .expect("connect hung");
            match result {
                Err(Error::Closed(End::PeerClosed | End::Transport(_))) => {}
                other => panic!("expected the connection's end, got {other:?}"),
            }
        });
        mock.join();
    }

    /// `qmp_capabilities` answered with an error: the connect fails with
    /// `NegotiationFailed` carrying the server's error, and the client
    /// closes the socket.
    #[test]
    fn negotiation_refused() {
        let (stream, mock) = Mock::pair(MockConfig::default(), |mut peer: Peer| {
            peer.greet().expect("greet");
            let negotiation = peer.next_message().expect("qmp_capabilities");
            assert_eq!(negotiation["execute"], "qmp_capabilities");
            let refusal = json!({
                "error": {"class": "GenericError", "desc": "Capability 'oob' not available"},
                "id": negotiation.get("id").cloned().unwrap_or(Value::Null),
            });
            let mut line = serde_json::to_vec(&refusal).expect("encode");
            line.extend_from_slice(b"\r\n");
            peer.send_raw(&line).expect("send");
            peer.wait_for_eof();
            peer.saw_eof()
        });
        rt::block_on(async {
            let result = rt::timeout(HANG, qmp::Qmp::from_unix_stream(stream, options(HANG)))
                .await
                .expect("connect hung");
            let error = protocol_error(result);
            assert_eq!(
                error,
                ProtocolError::NegotiationFailed(QmpError::generic(
                    "Capability 'oob' not available"
                ))
            );
        });
        assert!(mock.join(), "the client did not close the socket");
    }

    /// `qmp_capabilities` answered with an error without an id (QEMU's
    /// answer to input it could not read): nothing else was sent, so it is
    /// the negotiation's answer, and the connect fails at once with
    /// `NegotiationFailed` instead of waiting out its timeout.
    #[test]
    fn negotiation_error_without_an_id_fails_at_once() {
        let (stream, mock) = Mock::pair(MockConfig::default(), |mut peer: Peer| {
            peer.greet().expect("greet");
            peer.next_message().expect("qmp_capabilities");
            let error = b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\r\n";
            peer.send_raw(error).expect("send");
            peer.wait_for_eof();
            peer.saw_eof()
        });
        rt::block_on(async {
            // The connect's own deadline is twice HANG: ending within the
            // outer timeout (HANG) is ending on the answer, not the deadline.
            let result = rt::timeout(HANG, qmp::Qmp::from_unix_stream(stream, options(HANG * 2)))
                .await
                .expect("connect waited for its deadline");
            let error = protocol_error(result);
            assert_eq!(
                error,
                ProtocolError::NegotiationFailed(QmpError::generic("JSON parse error"))
            );
        });
        assert!(mock.join(), "the client did not close the socket");
    }

    /// `qmp_capabilities` answered without its id: a return with no id, or
    /// an answer with an id never used. The client cannot attribute the
    /// answer, so it drops it and keeps waiting; the connect fails with
    /// `ConnectTimeout` at its deadline, not earlier and not later.
    #[test]
    fn negotiation_answer_without_its_id_times_out() {
        let answers: [&'static [u8]; 2] = [
            b"{\"return\": {}}\r\n",
            b"{\"return\": {}, \"id\": 424242}\r\n",
        ];
        for answer in answers {
            let (stream, mock) = Mock::pair(MockConfig::default(), move |mut peer: Peer| {
                peer.greet().expect("greet");
                peer.next_message().expect("qmp_capabilities");
                peer.send_raw(answer).expect("send");
                peer.wait_for_eof();
            });
            rt::block_on(async {
                let started = Instant::now();
                let result = rt::timeout(
                    HANG,
                    qmp::Qmp::from_unix_stream(stream, options(CONNECT_LIMIT)),
                )
                .await
                .expect("connect hung past its own deadline");
                let took = started.elapsed();
                assert!(
                    matches!(result, Err(Error::ConnectTimeout)),
                    "{:?}: {result:?}",
                    String::from_utf8_lossy(answer)
                );
                assert!(took >= CONNECT_LIMIT, "gave up early: {took:?}");
            });
            mock.join();
        }
    }

    /// An event before the greeting, as some QEMU versions send: the
    /// connect succeeds, the event is in the history from `Cursor::START`
    /// with its data as sent, and calls work. Written apart from the
    /// greeting, and a byte at a time (so the greeting arrives in pieces
    /// after it).
    #[test]
    fn an_event_before_the_greeting_is_kept() {
        for trickle in [false, true] {
            let config = MockConfig::default().byte_at_a_time(trickle);
            let (stream, mock) = Mock::pair(config, greets_after(Some(EARLY_EVENT), None));
            rt::block_on(async {
                let qmp = rt::timeout(HANG, qmp::Qmp::from_unix_stream(stream, options(HANG)))
                    .await
                    .expect("connect hung")
                    .unwrap_or_else(|e| panic!("trickle {trickle}: {e:?}"));
                let found = qmp.find_events(Cursor::START, &EventFilter::name("EARLY"));
                let [early] = found.as_slice() else {
                    panic!("trickle {trickle}: {found:?}");
                };
                assert_eq!(early.sequence, 1);
                assert_eq!(early.event.timestamp.seconds, 1_700_000_000);
                assert_eq!(early.event.timestamp.microseconds, 42);
                let data = early.event.data.as_ref().expect("data");
                assert_eq!(data.as_str(), r#"{"path": "/a\"b", "list": [1, null]}"#);
                let waited = qmp
                    .wait_for_event(Cursor::START, EventFilter::name("EARLY"), HANG)
                    .await
                    .expect("the event from the start");
                assert_eq!(&waited, early);
                let answer: Value = rt::timeout(HANG, qmp.call("query-status", &()).decode())
                    .await
                    .expect("call hung")
                    .expect("call");
                assert_eq!(answer, json!({"answer_to": "query-status"}));
                qmp.close();
            });
            assert_eq!(mock.join(), ["query-status"]);
        }
    }

    /// The greeting of a QMP server that is not QEMU (StratoVirt's, as
    /// reported, or the server role's given such a version, `pretty=on`):
    /// the connect succeeds, the version is kept with no QEMU numbers, and
    /// calls work.
    #[test]
    fn a_greeting_of_another_server_is_taken() {
        let foreign = Version::from_raw(RawJson::from_text(STRATOVIRT_VERSION).unwrap()).unwrap();
        let role = MockConfig::default()
            .server(ServerConfig::default().version(foreign.clone()))
            .pretty(true);
        let cases = [
            (MockConfig::default(), Some(STRATOVIRT_GREETING)),
            (role, None),
        ];
        for (config, greeting) in cases {
            let label = format!("{config:?}");
            let (stream, mock) = Mock::pair(config, greets_after(None, greeting));
            rt::block_on(async {
                let qmp = rt::timeout(HANG, qmp::Qmp::from_unix_stream(stream, options(HANG)))
                    .await
                    .expect("connect hung")
                    .unwrap_or_else(|e| panic!("{label}: {e:?}"));
                let version = &qmp.greeting().version;
                assert_eq!(version.qemu(), None, "{label}");
                let triple = VersionTriple { major: 2, minor: 0, micro: 1 };
                assert_eq!(version.product(), Some(("StratoVirt", triple)), "{label}");
                assert_eq!(version.package(), "StratoVirt-2.1.0", "{label}");
                assert_eq!(version, &foreign, "{label}");
                assert_eq!(version.to_string(), "StratoVirt 2.0.1 (StratoVirt-2.1.0)");
                let answer: Value = rt::timeout(HANG, qmp.call("query-status", &()).decode())
                    .await
                    .expect("call hung")
                    .expect("call");
                assert_eq!(answer, json!({"answer_to": "query-status"}), "{label}");
                qmp.close();
            });
            assert_eq!(mock.join(), ["query-status"]);
        }
    }
}
