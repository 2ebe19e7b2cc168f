//! Subscriptions and event waits, on both runtimes: events QEMU sends in
//! the same write as the negotiation reply are reachable from
//! `Cursor::START`; each subscription has its own capacity; a lossless one
//! misses nothing and holds the connection up instead, within bounded
//! memory.

use qmp_client::{Cursor, EventFilter, Notice, SubscribeOptions};
use qmp_mock::{Action, Mock, MockConfig, Peer};
use qmp_proto::Timestamp;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Far more than any case needs: reaching it means something hung.
const HANG: Duration = Duration::from_secs(10);

const GREETING: &[u8] = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": []}}\r\n";

/// A peer that greets, then answers `qmp_capabilities` with its reply and
/// two events in one write (as QEMU may: a job or a `RESUME` at once), and
/// then reads until the client closes.
fn events_with_the_negotiation_reply() -> (UnixStream, std::thread::JoinHandle<()>) {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let peer = std::thread::spawn(move || {
        let mut writer = theirs.try_clone().expect("dup");
        writer.write_all(GREETING).expect("greet");
        let mut lines = BufReader::new(theirs).lines();
        let negotiation: Value =
            serde_json::from_str(&lines.next().expect("a line").expect("read")).expect("JSON");
        assert_eq!(negotiation["execute"], "qmp_capabilities");
        let id = &negotiation["id"];
        let at = r#""timestamp": {"seconds": 1, "microseconds": 2}"#;
        let burst = format!(
            "{{\"return\": {{}}, \"id\": {id}}}\r\n\
             {{\"event\": \"RESUME\", {at}}}\r\n\
             {{\"event\": \"JOB_STATUS_CHANGE\", \"data\": {{\"id\": \"job0\", \"status\": \"created\"}}, {at}}}\r\n"
        );
        writer.write_all(burst.as_bytes()).expect("one write");
        for _ in lines {}
    });
    (ours, peer)
}

/// Answers `burst` with `{}` and then `n` events named `TICK` with
/// `data.n` counting up, in one go.
fn ticks(peer: Peer, n: u64) -> Vec<String> {
    peer.serve(move |command| {
        let mut actions = vec![Action::Reply(json!({}))];
        if command.name == "burst" {
            for i in 0..n {
                actions.push(Action::Event(
                    "TICK".into(),
                    json!({ "n": i }),
                    Timestamp::default(),
                ));
            }
        }
        actions
    })
    .expect("the mock")
}

qmp_tests::on_both_runtimes! {
    #[test]
    fn events_sent_with_the_negotiation_reply_are_reachable_from_the_start() {
        let (stream, peer) = events_with_the_negotiation_reply();
        rt::block_on(async {
            let qmp = qmp::Qmp::from_unix_stream(stream, Default::default()).await.unwrap();
            // A cursor taken now is past them: they came before `connect`
            // returned.
            assert!(qmp.find_events(qmp.cursor(), &EventFilter::all()).is_empty());

            let found = qmp.find_events(Cursor::START, &EventFilter::all());
            let names: Vec<_> = found.iter().map(|s| s.event.name.as_str()).collect();
            assert_eq!(names, ["RESUME", "JOB_STATUS_CHANGE"]);

            let resumed = qmp
                .wait_for_event(Cursor::START, EventFilter::name("RESUME"), HANG)
                .await
                .unwrap();
            assert_eq!(resumed.sequence, 1);

            let options = SubscribeOptions::default().from(Cursor::START);
            let mut all = qmp.subscribe_with(EventFilter::all(), options);
            for name in ["RESUME", "JOB_STATUS_CHANGE"] {
                match rt::timeout(HANG, all.next()).await.expect("hung") {
                    Some(Notice::Event(event)) => assert_eq!(event.event.name, name),
                    other => panic!("{other:?}"),
                }
            }
            qmp.close();
            assert_eq!(rt::timeout(HANG, all.next()).await.expect("hung"), None);
        });
        peer.join().expect("the peer");
    }

    #[test]
    fn each_subscription_has_its_own_capacity() {
        let (stream, _mock) = Mock::pair(MockConfig::default(), |peer| ticks(peer, 10));
        rt::block_on(async {
            let qmp = qmp::Qmp::from_unix_stream(stream, Default::default()).await.unwrap();
            let small = SubscribeOptions::default().capacity(3);
            let mut small = qmp.subscribe_with(EventFilter::name("TICK"), small);
            let mut roomy = qmp.subscribe(EventFilter::name("TICK"));
            let cursor = qmp.cursor();
            qmp.call("burst", &()).await.unwrap();
            qmp.wait_for_event(cursor, EventFilter::name("TICK").matching(|e| {
                e.data.as_ref().and_then(|d| d.decode::<Value>().ok()).is_some_and(|d| d["n"] == 9)
            }), HANG).await.unwrap();
            // The small one kept 3, and (told at the end, as no event
            // follows) lagged by the other 7.
            qmp.close();
            let mut got = Vec::new();
            while let Some(notice) = rt::timeout(HANG, small.next()).await.expect("hung") {
                got.push(notice);
            }
            assert_eq!(got.len(), 4, "{got:?}");
            assert!(matches!(got[3], Notice::Lagged(7)), "{got:?}");
            // The default one (256) kept all ten.
            for _ in 0..10 {
                let notice = rt::timeout(HANG, roomy.next()).await.expect("hung");
                assert!(matches!(notice, Some(Notice::Event(_))), "{notice:?}");
            }
        });
    }

    #[test]
    fn a_lossless_subscription_misses_nothing() {
        const EVENTS: u64 = 5000;
        let (stream, _mock) = Mock::pair(MockConfig::default(), |peer| ticks(peer, EVENTS));
        rt::block_on(async {
            let qmp = qmp::Qmp::from_unix_stream(stream, Default::default()).await.unwrap();
            let options = SubscribeOptions::default().capacity(4).lossless(true);
            let mut ticks = qmp.subscribe_with(EventFilter::name("TICK"), options);
            let lossy = SubscribeOptions::default().capacity(4);
            let mut lossy = qmp.subscribe_with(EventFilter::name("TICK"), lossy);
            let caller = qmp.clone();
            let burst = rt::spawn(async move { caller.call("burst", &()).await });
            for expected in 0..EVENTS {
                match rt::timeout(HANG, ticks.next()).await.expect("hung") {
                    Some(Notice::Event(tick)) => {
                        let data: Value = tick.event.data.expect("data").decode().unwrap();
                        assert_eq!(data["n"], expected);
                    }
                    other => panic!("at {expected}: {other:?}"),
                }
            }
            rt::timeout(HANG, burst).await.expect("hung").unwrap();
            // The lossy one, read only now, kept its four and lagged by the
            // rest (told at the end).
            qmp.close();
            let (mut events, mut lagged) = (0, 0);
            while let Some(notice) = rt::timeout(HANG, lossy.next()).await.expect("hung") {
                match notice {
                    Notice::Event(_) => events += 1,
                    Notice::Lagged(n) => lagged += n,
                }
            }
            assert_eq!(events + lagged, EVENTS);
            assert!(lagged > 0, "the lossy subscription lost nothing");
        });
    }
}
