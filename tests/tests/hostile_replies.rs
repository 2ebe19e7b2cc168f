//! Hostile peers after negotiation: what callers get when the server sends
//! garbage, replies without id, with unknown or forged ids, twice, out of
//! order, with neither `return` nor `error`, stops in the middle of a
//! message, vanishes, or stalls.
//!
//! What these tests hold the client to:
//!
//! - a reply reaches its own caller and no other one, whatever the server
//!   does with ids;
//! - a fatal protocol error or the peer's end fails every pending call (sent
//!   or still queued), every event wait and every subscription promptly,
//!   with the cause, and later calls fail with the same cause;
//! - stray replies (unknown, duplicate, late) are dropped and the connection
//!   goes on;
//! - per-call timeouts fire on time, leave the connection usable, and the
//!   late reply of a timed-out call is never handed to the next caller.
//!
//! Each case runs under tokio (`qmp-tokio`) and smol (`qmp-smol`), against
//! the mock of [`qmp_tests::mock`]. No case sleeps to synchronise: the mock
//! and the test wait on each other's messages and channels.

use qmp_client::{ConnectOptions, Error};
use qmp_mock::{Action, Mock, MockConfig, Peer};
use qmp_proto::{ClientConfig, End, ProtocolError, QmpError, Timestamp};
use serde_json::{json, Value};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Far more than any case needs: reaching it means the client hung.
const HANG: Duration = Duration::from_secs(20);
/// The per-call deadline of the timeout cases.
const CALL_LIMIT: Duration = Duration::from_millis(200);

/// The mock's answer to every command it does not treat specially: its own
/// name, so that a caller can tell whose reply it got.
fn echo(command: &qmp_proto::Command) -> Action {
    Action::Reply(json!({ "answer_to": command.name }))
}

fn answer_to(name: &str) -> Value {
    json!({ "answer_to": name })
}

/// Answers `garbled` as QEMU answers a command it could not parse (an
/// error without an id), anything else with [`echo`].
fn garbling(peer: Peer) -> std::io::Result<Vec<String>> {
    peer.serve(|command| match command.name.as_str() {
        "garbled" => vec![Action::ErrorWithoutId(QmpError::generic(
            "JSON parse error, invalid keyword",
        ))],
        _ => vec![echo(command)],
    })
}

/// The command's id as the client sent it (an integer).
fn wire_id(command: &qmp_proto::Command) -> u64 {
    command
        .id
        .as_ref()
        .and_then(|id| id.as_u64())
        .expect("the client sends integer ids")
}

qmp_tests::on_both_runtimes! {
    async fn connect_with(
        stream: std::os::unix::net::UnixStream,
        options: ConnectOptions,
    ) -> qmp::Qmp {
        rt::timeout(HANG, qmp::Qmp::from_unix_stream(stream, options))
            .await
            .expect("connect hung")
            .expect("connect")
    }

    async fn connect(stream: std::os::unix::net::UnixStream) -> qmp::Qmp {
        connect_with(stream, ConnectOptions::default()).await
    }

    /// Runs `name` with a deadline against hangs; the `return` as JSON.
    async fn call(qmp: &qmp::Qmp, name: &str) -> Result<Value, Error> {
        let raw = rt::timeout(HANG, qmp.call(name, &()))
            .await
            .expect("call hung")?;
        Ok(raw.decode().expect("a reply is JSON"))
    }

    /// Starts `name` on its own task, so that many calls are pending at once.
    fn spawn_call(qmp: &qmp::Qmp, name: &str) -> rt::Task<Result<Value, Error>> {
        let qmp = qmp.clone();
        let name = name.to_string();
        rt::spawn(async move { call(&qmp, &name).await })
    }

    async fn finish<T>(task: rt::Task<T>) -> T {
        rt::timeout(HANG, task).await.expect("task hung")
    }

    /// Garbage, or JSON that is not an object, after negotiation: fatal.
    /// Every pending call, the event wait and the subscription fail with
    /// the protocol error; later calls too; the client closes the socket.
    #[test]
    fn garbage_or_non_object_is_fatal_for_every_pending_call() {
        // `[null, <reply>, null, <id>]` once filled a reply's members in
        // order and completed the call it named: it must be fatal as well.
        let garbage: [fn(u64) -> Vec<u8>; 6] = [
            |_| b"this is not JSON\r\n".to_vec(),
            |_| b"[1, 2, 3]\r\n".to_vec(),
            |_| b"42\r\n".to_vec(),
            |_| b"\"a lonely string\"\r\n".to_vec(),
            |_| b"{\"return\": {}, \"id\": }\r\n".to_vec(),
            |id| format!("[null, \"forged\", null, {id}]\r\n").into_bytes(),
        ];
        for make_garbage in garbage {
            let (stream, mock) = Mock::pair(MockConfig::default(), move |mut peer: Peer| {
                peer.greet().expect("greet");
                let mut ids = Vec::new();
                for _ in 0..3 {
                    ids.push(wire_id(&peer.next_command().expect("a command")));
                }
                let bytes = make_garbage(*ids.iter().min().expect("three ids"));
                peer.send_raw(&bytes).expect("send");
                peer.wait_for_eof();
                (bytes, peer.saw_eof())
            });
            rt::block_on(async {
                let qmp = connect(stream).await;
                let mut events = qmp.subscribe(qmp::EventFilter::all());
                let cursor = qmp.cursor();
                let waiter = {
                    let qmp = qmp.clone();
                    rt::spawn(async move {
                        qmp.wait_for_event(cursor, qmp::EventFilter::name("NEVER"), HANG).await
                    })
                };
                let calls: Vec<_> = ["a", "b", "c"].iter().map(|n| spawn_call(&qmp, n)).collect();
                let mut errors = Vec::new();
                for task in calls {
                    errors.push(finish(task).await.expect_err("no reply can come"));
                }
                let end = qmp.end_reason().expect("the connection has ended");
                assert!(
                    matches!(end, End::Protocol(ProtocolError::InvalidJson { .. })),
                    "{end:?}"
                );
                for error in &errors {
                    assert!(matches!(error, Error::Closed(e) if *e == end), "{error:?}");
                }
                let waited = finish(waiter).await;
                assert!(matches!(&waited, Err(Error::Closed(e)) if *e == end), "{waited:?}");
                let next = rt::timeout(HANG, events.next()).await.expect("subscription hung");
                assert!(next.is_none(), "{next:?}");
                assert_eq!(events.end_reason(), Some(end.clone()));
                let later = call(&qmp, "later").await;
                assert!(matches!(&later, Err(Error::Closed(e)) if *e == end), "{later:?}");
            });
            let (bytes, closed) = mock.join();
            let garbage = String::from_utf8_lossy(&bytes);
            assert!(closed, "after {garbage:?} the client kept the socket");
        }
    }

    /// An error reply without id (QEMU's answer to input it cannot parse)
    /// while no command is in flight: not fatal, no caller gets it, and it
    /// can be read back with `take_unattributed_errors`. (A `MARK` event
    /// follows each, so the test knows it has come while nothing was in
    /// flight.)
    #[test]
    fn error_without_id_with_nothing_in_flight_is_kept_aside() {
        let (go, wait) = std::sync::mpsc::channel();
        let mut wait = Some(wait);
        let (stream, mock) = Mock::pair(MockConfig::default(), move |peer: Peer| {
            peer.serve(|command| {
                let stray =
                    Action::ErrorWithoutId(QmpError::generic("JSON parse error, invalid keyword"));
                let mark = Action::Event("MARK".into(), Value::Null, Timestamp::default());
                match (command.name.as_str(), wait.take()) {
                    ("first", Some(wait)) => vec![echo(command), Action::Wait(wait), stray, mark],
                    _ => vec![echo(command)],
                }
            })
        });
        rt::block_on(async {
            let qmp = connect(stream).await;
            let cursor = qmp.cursor();
            assert_eq!(call(&qmp, "first").await.expect("reply"), answer_to("first"));
            go.send(()).unwrap();
            qmp.wait_for_event(cursor, qmp::EventFilter::name("MARK"), HANG).await.unwrap();
            assert_eq!(call(&qmp, "second").await.expect("reply"), answer_to("second"));
            assert_eq!(qmp.end_reason(), None);
            let strays = qmp.take_unattributed_errors();
            assert_eq!(strays.len(), 1, "{strays:?}");
            assert!(strays[0].desc.starts_with("JSON parse error"));
            assert!(qmp.take_unattributed_errors().is_empty(), "taken once");
            assert_eq!(qmp.dropped_replies(), qmp::DroppedReplies::default());
            qmp.close();
        });
        mock.join().expect("mock");
    }

    /// QEMU answers a command it could not parse with an error without an
    /// id. With that one command in flight, the call fails with it at once
    /// (it used to wait forever, and keep its slot of the window).
    #[test]
    fn error_without_id_answers_the_one_call_in_flight() {
        let (stream, mock) = Mock::pair(MockConfig::default(), garbling);
        rt::block_on(async {
            let qmp = connect(stream).await;
            let failed = call(&qmp, "garbled").await.expect_err("an error reply");
            match failed {
                Error::Qmp(e) => assert!(e.desc.starts_with("JSON parse error"), "{e}"),
                other => panic!("{other:?}"),
            }
            assert_eq!(call(&qmp, "after").await.expect("reply"), answer_to("after"));
            assert!(qmp.take_unattributed_errors().is_empty());
            assert_eq!(qmp.end_reason(), None);
            qmp.close();
        });
        mock.join().expect("mock");
    }

    /// Nine calls at once (past the window of eight), each answered with
    /// an error without an id: every call gets an error, none hangs, and
    /// the window is free for the next call (eight of them used to block
    /// every later command for good).
    #[test]
    fn errors_without_id_never_hold_the_window() {
        let (stream, mock) = Mock::pair(MockConfig::default(), garbling);
        rt::block_on(async {
            let qmp = connect(stream).await;
            let calls: Vec<_> = (0..9).map(|_| spawn_call(&qmp, "garbled")).collect();
            for task in calls {
                let failed = finish(task).await.expect_err("an error reply");
                assert!(matches!(failed, Error::Qmp(_)), "{failed:?}");
            }
            assert_eq!(call(&qmp, "after").await.expect("reply"), answer_to("after"));
            assert_eq!(qmp.end_reason(), None);
            qmp.close();
        });
        mock.join().expect("mock");
    }

    /// Replies whose id is not a pending call's: never ours, of the wrong
    /// type, absent, or that of the negotiation already done. Dropped; the
    /// caller still gets its own reply and the connection goes on.
    #[test]
    fn replies_with_unknown_ids_are_dropped() {
        let (stream, mock) = Mock::pair(MockConfig::default(), |peer: Peer| {
            peer.serve(|command| {
                let mut actions: Vec<Action> = [
                    json!(999_999),
                    json!("a string id"),
                    json!(null),
                    json!(-1),
                    json!(1.5),
                    json!({ "nested": wire_id(command) }),
                    json!([wire_id(command)]),
                    json!(u64::MAX),
                    // The right number in the wrong JSON type.
                    json!(wire_id(command).to_string()),
                    json!(wire_id(command) as f64),
                    // qmp_capabilities' id: answered long ago.
                    json!(0),
                ]
                .into_iter()
                .map(|id| Action::ReplyWithId(id, json!("stray")))
                .collect();
                actions.push(Action::ReplyWithoutId(json!("stray without id")));
                actions.push(echo(command));
                actions
            })
        });
        rt::block_on(async {
            let qmp = connect(stream).await;
            for name in ["a", "b", "c"] {
                assert_eq!(call(&qmp, name).await.expect("reply"), answer_to(name));
            }
            assert_eq!(qmp.end_reason(), None);
            // Eleven strays with ids per command, all counted; the id-less
            // success is an unexpected message of its own kind, not a reply.
            let dropped = qmp.dropped_replies();
            assert!(dropped.unknown_id >= 3 * 11, "{dropped:?}");
            assert_eq!(dropped.late, 0, "{dropped:?}");
            qmp.close();
        });
        assert_eq!(mock.join().expect("mock"), ["a", "b", "c"]);
    }

    /// A reply forged for the id the *next* command will get, sent before
    /// that command exists: dropped, and the next command gets its own.
    #[test]
    fn reply_forged_for_a_future_id_is_not_delivered() {
        let (stream, mock) = Mock::pair(MockConfig::default(), |peer: Peer| {
            peer.serve(|command| match command.name.as_str() {
                "first" => vec![
                    Action::ReplyWithId(json!(wire_id(command) + 1), json!("forged")),
                    echo(command),
                ],
                _ => vec![echo(command)],
            })
        });
        rt::block_on(async {
            let qmp = connect(stream).await;
            // The forged reply is read before `first`'s, so before `second`
            // is issued.
            assert_eq!(call(&qmp, "first").await.expect("reply"), answer_to("first"));
            assert_eq!(call(&qmp, "second").await.expect("reply"), answer_to("second"));
        });
        mock.join().expect("mock");
    }

    /// The same reply twice: the second is dropped. The duplicate carries a
    /// different value, so a client that handed it to anyone would show it.
    /// A command issued while the duplicate is on its way gets its own.
    #[test]
    fn duplicate_reply_is_dropped() {
        let (stream, mock) = Mock::pair(MockConfig::default(), |mut peer: Peer| {
            peer.greet().expect("greet");
            let first = peer.next_command().expect("first");
            peer.reply(&first, answer_to("first")).expect("reply");
            // Held until `second` is pending, then sent just before its reply.
            let second = peer.next_command().expect("second");
            peer.act(&first, [Action::Reply(json!("duplicate of first"))]).expect("dup");
            peer.reply(&second, answer_to("second")).expect("reply");
            // And a duplicate with the same value, right after the original.
            let third = peer.next_command().expect("third");
            peer.act(&third, [echo(&third), echo(&third)]).expect("twice");
            let fourth = peer.next_command().expect("fourth");
            peer.act(&fourth, [echo(&fourth)]).expect("reply");
            peer.wait_for_eof();
        });
        rt::block_on(async {
            let qmp = connect(stream).await;
            for name in ["first", "second", "third", "fourth"] {
                assert_eq!(call(&qmp, name).await.expect("reply"), answer_to(name));
            }
            qmp.close();
        });
        mock.join();
    }

    /// Eight calls in flight, answered in reverse order and then shuffled:
    /// each caller gets its own reply.
    #[test]
    fn replies_out_of_order_reach_their_callers() {
        const CALLS: usize = 8;
        let (stream, mock) = Mock::pair(MockConfig::default(), |mut peer: Peer| {
            peer.greet().expect("greet");
            let mut commands: Vec<_> =
                (0..CALLS).map(|_| peer.next_command().expect("command")).collect();
            commands.reverse();
            // Reverse order, with the middle ones swapped in pairs.
            commands.swap(2, 3);
            commands.swap(4, 5);
            for command in &commands {
                peer.act(command, [echo(command)]).expect("reply");
            }
            peer.wait_for_eof();
        });
        rt::block_on(async {
            let qmp = connect(stream).await;
            let names: Vec<String> = (0..CALLS).map(|i| format!("call-{i}")).collect();
            let tasks: Vec<_> = names.iter().map(|name| spawn_call(&qmp, name)).collect();
            for (name, task) in names.iter().zip(tasks) {
                assert_eq!(finish(task).await.expect("reply"), answer_to(name));
            }
            qmp.close();
        });
        mock.join();
    }

    /// A reply with the caller's id but neither `return` nor `error` is no
    /// QMP message: qmp-proto treats it as a fatal protocol error
    /// (`UnexpectedMessage`), so that call and every other pending one fail
    /// with it.
    #[test]
    fn reply_with_neither_return_nor_error_is_fatal() {
        let (stream, mock) = Mock::pair(MockConfig::default(), |mut peer: Peer| {
            peer.greet().expect("greet");
            let a = peer.next_command().expect("a");
            let _b = peer.next_command().expect("b");
            peer.act(&a, [Action::Empty]).expect("empty reply");
            peer.wait_for_eof();
            peer.saw_eof()
        });
        rt::block_on(async {
            let qmp = connect(stream).await;
            let (a, b) = (spawn_call(&qmp, "a"), spawn_call(&qmp, "b"));
            for task in [a, b] {
                let error = finish(task).await.expect_err("no reply");
                assert!(
                    matches!(
                        error,
                        Error::Closed(End::Protocol(ProtocolError::UnexpectedMessage { .. }))
                    ),
                    "{error:?}"
                );
            }
        });
        assert!(mock.join(), "the client kept the socket");
    }

    /// The stream ends inside a message: fatal, `Truncated` with the number
    /// of bytes of the unfinished message.
    #[test]
    fn eof_inside_a_message_fails_pending_calls() {
        const PARTIAL: &[u8] = b"{\"return\": {\"status\": \"runn";
        let (stream, mock) = Mock::pair(MockConfig::default(), |mut peer: Peer| {
            peer.greet().expect("greet");
            let _a = peer.next_command().expect("a");
            let _b = peer.next_command().expect("b");
            peer.send_raw(PARTIAL).expect("send");
            peer.close();
        });
        rt::block_on(async {
            let qmp = connect(stream).await;
            let (a, b) = (spawn_call(&qmp, "a"), spawn_call(&qmp, "b"));
            for task in [a, b] {
                let error = finish(task).await.expect_err("no reply");
                assert!(
                    matches!(
                        &error,
                        Error::Closed(End::Protocol(ProtocolError::Truncated { buffered }))
                            if *buffered == PARTIAL.len()
                    ),
                    "{error:?}"
                );
            }
        });
        mock.join();
    }

    /// The server vanishes with twenty calls pending, having read eight of
    /// them (the rest meet a closed socket). Every one fails promptly with
    /// `PeerClosed`, not a write error, and so do the subscription and
    /// later calls.
    #[test]
    fn peer_vanishing_fails_every_pending_call() {
        const CALLS: usize = 20;
        let (stream, mock) = Mock::pair(MockConfig::default(), |mut peer: Peer| {
            peer.greet().expect("greet");
            // Eight of them, then gone.
            let received: Vec<_> = (0..8).map(|_| peer.next_command().expect("command")).collect();
            peer.close();
            received.len()
        });
        rt::block_on(async {
            let qmp = connect(stream).await;
            let mut events = qmp.subscribe(qmp::EventFilter::all());
            let started = Instant::now();
            let tasks: Vec<_> =
                (0..CALLS).map(|i| spawn_call(&qmp, &format!("call-{i}"))).collect();
            for task in tasks {
                let error = finish(task).await.expect_err("no reply");
                assert!(matches!(error, Error::Closed(End::PeerClosed)), "{error:?}");
            }
            assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
            assert!(rt::timeout(HANG, events.next()).await.expect("hung").is_none());
            assert_eq!(events.end_reason(), Some(End::PeerClosed));
            let later = call(&qmp, "later").await;
            assert!(matches!(later, Err(Error::Closed(End::PeerClosed))), "{later:?}");
        });
        assert_eq!(mock.join(), 8);
    }

    /// A stalled command times out (`execute_timeout`) on time; the
    /// connection stays usable; its late reply, sent while the next command
    /// is pending and just before that command's reply, is dropped rather
    /// than handed to the next caller.
    #[test]
    fn timeout_then_late_reply_goes_to_nobody() {
        let (stream, mock) = Mock::pair(MockConfig::default(), |mut peer: Peer| {
            peer.greet().expect("greet");
            let slow = peer.next_command().expect("slow");
            assert_eq!(slow.name, "slow");
            // Comes only after `slow` timed out on the client.
            let next = peer.next_command().expect("next");
            peer.reply(&slow, json!("LATE reply to slow")).expect("late");
            peer.reply(&next, answer_to(&next.name)).expect("reply");
            peer.serve(|command| vec![echo(command)]).ok();
        });
        rt::block_on(async {
            let qmp = connect(stream).await;
            let started = Instant::now();
            let result = rt::timeout(HANG, qmp.call("slow", &()).timeout(CALL_LIMIT))
                .await
                .expect("the timeout did not fire");
            let took = started.elapsed();
            assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
            assert!(took >= CALL_LIMIT && took < CALL_LIMIT + Duration::from_secs(5), "{took:?}");
            assert_eq!(call(&qmp, "next").await.expect("reply"), answer_to("next"));
            assert_eq!(call(&qmp, "after").await.expect("reply"), answer_to("after"));
            assert_eq!(qmp.end_reason(), None);
            let dropped = qmp.dropped_replies();
            assert_eq!((dropped.late, dropped.unknown_id), (1, 0), "{dropped:?}");
            qmp.close();
        });
        mock.join();
    }

    /// The same with the connection's default deadline
    /// (`ConnectOptions::call_timeout`) and `execute_raw`, and a server that
    /// never answers the stalled command at all while it answers others.
    #[test]
    fn default_call_timeout_and_a_stall_that_never_ends() {
        let (stream, mock) = Mock::pair(MockConfig::default(), |mut peer: Peer| {
            peer.greet().expect("greet");
            let _stalled_forever = peer.next_command().expect("stalled");
            peer.serve(|command| vec![echo(command)]).ok();
        });
        rt::block_on(async {
            let options = ConnectOptions::default().call_timeout(Some(CALL_LIMIT));
            let qmp = connect_with(stream, options).await;
            let started = Instant::now();
            let result = call(&qmp, "stalled").await;
            let took = started.elapsed();
            assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
            assert!(took >= CALL_LIMIT && took < CALL_LIMIT + Duration::from_secs(5), "{took:?}");
            for name in ["next", "after"] {
                assert_eq!(call(&qmp, name).await.expect("reply"), answer_to(name));
            }
            qmp.close();
        });
        mock.join();
    }

    /// A timed-out command keeps its place in the in-flight window until
    /// its reply comes (the server is still working on it). With a window
    /// of one, a command issued meanwhile waits in the queue and times out
    /// too, and a command that timed out while queued is never sent. Once
    /// the late reply frees the window, commands flow again.
    #[test]
    fn stalled_command_holds_the_window_until_its_late_reply() {
        let (release, released) = mpsc::channel();
        let (stream, mock) = Mock::pair(MockConfig::default(), move |mut peer: Peer| {
            peer.greet().expect("greet");
            let slow = peer.next_command().expect("slow");
            peer.act(&slow, [Action::Wait(released), Action::Reply(json!("LATE"))])
                .expect("late reply");
            // `queued` timed out before it could be sent: the next command
            // the server sees must be `after`.
            let after = peer.next_command().expect("after");
            assert_eq!(after.name, "after");
            peer.reply(&after, answer_to("after")).expect("reply");
            peer.wait_for_eof();
        });
        rt::block_on(async {
            let options = ConnectOptions::default()
                .client(ClientConfig::default().max_in_flight(1))
                .call_timeout(Some(CALL_LIMIT));
            let qmp = connect_with(stream, options).await;
            assert!(matches!(call(&qmp, "slow").await, Err(Error::Timeout)));
            assert!(matches!(call(&qmp, "queued").await, Err(Error::Timeout)));
            // Issued before the release, sent once the late reply is in.
            let after = {
                let qmp = qmp.clone();
                rt::spawn(async move { qmp.call("after", &()).timeout(HANG).await })
            };
            release.send(()).expect("mock waiting");
            let reply = finish(after).await.expect("reply");
            assert_eq!(reply.decode::<Value>().expect("JSON"), answer_to("after"));
            qmp.close();
        });
        mock.join();
    }
}
