//! Who reads the socket when, on both runtimes: the waiters that read for
//! each other, a future kept aside or dropped mid-wait, many callers at
//! once, subscriptions and event waits that read for themselves, and an
//! end noticed without a background reader.

use qmp_client::Error;
use qmp_mock::{Action, Mock, MockConfig, Peer};
use qmp_proto::{End, Timestamp};
use qmp_tests::runtime::poll_once;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use serde_json::{json, Value};
use std::future::{poll_fn, IntoFuture};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::task::Poll;
use std::time::Duration;

/// Far more than any case needs: reaching it means something hung.
const HANG: Duration = Duration::from_secs(10);

/// Replies `{}` to every command but `never`, which it leaves unanswered.
fn answer_but_never(peer: Peer) -> Vec<String> {
    peer.serve(|command| match command.name.as_str() {
        "never" => vec![],
        _ => vec![Action::Reply(json!({}))],
    })
    .expect("the mock")
}

/// A peer that greets and negotiates by hand, then leaves its end open;
/// the test reads it directly.
fn negotiating_peer() -> (UnixStream, UnixStream) {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let mut writer = theirs.try_clone().expect("dup");
    writer
        .write_all(b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": []}}\r\n")
        .expect("greet");
    let reader = theirs.try_clone().expect("dup");
    std::thread::spawn(move || {
        let mut line = String::new();
        BufReader::new(reader)
            .read_line(&mut line)
            .expect("qmp_capabilities");
        let negotiation: Value = serde_json::from_str(&line).expect("JSON");
        let reply = format!("{{\"return\": {{}}, \"id\": {}}}\r\n", negotiation["id"]);
        writer.write_all(reply.as_bytes()).expect("reply");
    });
    (ours, theirs)
}

/// Whether the peer's end sees the close right now, without waiting.
fn sees_the_close_now(theirs: &UnixStream) -> bool {
    let mut fds = [PollFd::new(theirs, PollFlags::IN | PollFlags::RDHUP)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&now)).expect("poll") == 1
        && fds[0]
            .revents()
            .intersects(PollFlags::RDHUP | PollFlags::HUP)
}

qmp_tests::on_both_runtimes! {
    async fn connect(stream: std::os::unix::net::UnixStream) -> qmp::Qmp {
        qmp::Qmp::from_unix_stream(stream, Default::default()).await.expect("connect")
    }

    /// A command the socket cannot take at once is written in pieces as
    /// room comes (it used to wait for read readiness only, and hang).
    #[test]
    fn a_command_larger_than_the_socket_buffer_is_written_whole() {
        let (stream, _mock) = Mock::pair(MockConfig::default(), answer_but_never);
        rt::block_on(async {
            let qmp = connect(stream).await;
            let big = "x".repeat(3_000_000);
            let reply = rt::timeout(HANG, qmp.call("big", &json!({"data": big}))).await;
            reply.expect("hung").expect("big");
        })
    }

    #[test]
    fn close_wakes_the_call_reading_for_its_answer() {
        let (stream, _mock) = Mock::pair(MockConfig::default(), answer_but_never);
        rt::block_on(async {
            let qmp = connect(stream).await;
            let caller = qmp.clone();
            let (polled, first_poll) = std::sync::mpsc::channel();
            let call = rt::spawn(async move {
                let mut call = Box::pin(caller.call("never", &()).into_future());
                // Polled once: it reads the socket, waiting for its reply.
                assert!(!poll_once(call.as_mut()).await);
                polled.send(()).unwrap();
                call.await
            });
            first_poll.recv().unwrap();
            qmp.close();
            // The peer keeps its end open: only the close can wake it.
            let result = rt::timeout(HANG, call).await.expect("hung");
            assert!(matches!(result, Err(Error::Closed(End::Local))), "{result:?}");
        });
    }

    /// `close` is a plain method, and the socket is shut down and released
    /// when it returns: nothing is left for a task to do later.
    #[test]
    fn close_closes_the_socket_before_it_returns() {
        let (ours, theirs) = negotiating_peer();
        rt::block_on(async {
            let qmp = connect(ours).await;
            let clone = qmp.clone();
            assert!(!sees_the_close_now(&theirs));
            qmp.close();
            assert!(sees_the_close_now(&theirs), "the socket is still open");
            assert_eq!(clone.end_reason(), Some(End::Local));
        });
    }

    #[test]
    fn a_call_kept_aside_does_not_stall_the_others() {
        let (stream, _mock) = Mock::pair(MockConfig::default(), answer_but_never);
        rt::block_on(async {
            let qmp = connect(stream).await;
            let mut aside = Box::pin(qmp.call("never", &()).into_future());
            assert!(!poll_once(aside.as_mut()).await);
            // `aside` reads the socket while it waits, and is never polled
            // again: the next caller reads for itself.
            for _ in 0..3 {
                rt::timeout(HANG, qmp.call("fast", &())).await.expect("hung").unwrap();
            }
            assert!(qmp.end_reason().is_none());
        });
    }

    #[test]
    fn a_dropped_reader_hands_over_to_a_waiter() {
        let (stream, _mock) = Mock::pair(MockConfig::default(), answer_but_never);
        rt::block_on(async {
            let qmp = connect(stream).await;
            let mut reader = Box::pin(qmp.call("never", &()).into_future());
            assert!(!poll_once(reader.as_mut()).await);
            let mut other = Box::pin(qmp.call("never", &()).into_future());
            assert!(!poll_once(other.as_mut()).await);
            let mut waiter = Box::pin(qmp.call("fast", &()).into_future());
            let answered = poll_once(waiter.as_mut()).await;
            // The two readers go away; the waiter, third, reads in their place.
            drop(reader);
            drop(other);
            if !answered {
                let reply = rt::timeout(HANG, waiter).await.expect("hung");
                assert_eq!(reply.unwrap().as_str(), "{}");
            }
        });
    }

    #[test]
    fn many_calls_from_many_tasks() {
        let (stream, _mock) = Mock::pair(MockConfig::default(), answer_but_never);
        rt::block_on(async {
            let qmp = connect(stream).await;
            let tasks: Vec<_> = (0..200)
                .map(|_| {
                    let qmp = qmp.clone();
                    rt::spawn(async move { qmp.call("fast", &()).await })
                })
                .collect();
            for task in tasks {
                rt::timeout(HANG, task).await.expect("hung").unwrap();
            }
            // And as many in one task, polled together.
            let mut calls: Vec<_> = (0..200)
                .map(|_| Some(qmp.call("fast", &()).into_future()))
                .collect();
            let all = poll_fn(|cx| {
                for slot in &mut calls {
                    if let Some(call) = slot {
                        if let Poll::Ready(reply) = call.as_mut().poll(cx) {
                            reply.unwrap();
                            *slot = None;
                        }
                    }
                }
                match calls.iter().all(Option::is_none) {
                    true => Poll::Ready(()),
                    false => Poll::Pending,
                }
            });
            rt::timeout(HANG, all).await.expect("hung");
        });
    }

    #[test]
    fn a_waiting_subscription_reads_for_itself() {
        // The STOP event comes once the test says so, after the reply:
        // by then no call waits on the connection.
        let (go, wait) = std::sync::mpsc::channel();
        let mut wait = Some(wait);
        let (stream, _mock) = Mock::pair(MockConfig::default(), move |peer| {
            peer.serve(|command| match (command.name.as_str(), wait.take()) {
                ("stop", Some(wait)) => vec![
                    Action::Reply(json!({})),
                    Action::Wait(wait),
                    Action::Event("STOP".into(), Value::Null, Timestamp::default()),
                ],
                _ => vec![Action::Reply(json!({}))],
            })
            .expect("the mock")
        });
        rt::block_on(async {
            let qmp = connect(stream).await;
            let cursor = qmp.cursor();
            let mut stops = qmp.subscribe(qmp_client::EventFilter::name("STOP"));
            qmp.call("stop", &()).await.unwrap();
            go.send(()).unwrap();
            let routed = rt::timeout(HANG, stops.next()).await.expect("hung");
            assert!(routed.is_some(), "the subscription ended");
            let found = qmp.find_events(cursor, &qmp_client::EventFilter::name("STOP"));
            assert_eq!(found.len(), 1);
            assert!(qmp.end_reason().is_none());
        });
    }

    #[test]
    fn an_end_nobody_waited_for_is_seen_when_asked() {
        // The peer answers one command, then closes the connection while
        // nobody waits on it.
        let (stream, mock) = Mock::pair(MockConfig::default(), |peer| {
            peer.serve(|_| vec![Action::Reply(json!({})), Action::Close]).expect("the mock")
        });
        rt::block_on(async {
            let qmp = connect(stream).await;
            qmp.call("query-status", &()).await.unwrap();
            mock.join();
            // Nothing read the socket since: asking reads what it holds.
            assert_eq!(qmp.end_reason(), Some(End::PeerClosed));
            let after = qmp.call("query-status", &()).await.unwrap_err();
            assert!(after.is_socket_closed(), "{after}");
        });
    }

    #[test]
    fn closed_waits_for_the_end() {
        let (stream, mock) = Mock::pair(MockConfig::default(), |peer| {
            peer.serve(|_| vec![Action::Reply(json!({})), Action::Close]).expect("the mock")
        });
        rt::block_on(async {
            let qmp = connect(stream).await;
            let waiting = qmp.clone();
            let closed = rt::spawn(async move { waiting.closed().await });
            qmp.call("quit", &()).await.unwrap();
            assert_eq!(rt::timeout(HANG, closed).await.expect("hung"), End::PeerClosed);
            mock.join();
        });
    }
}
