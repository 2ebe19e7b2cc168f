//! A waiting connection sleeps: over a 3-second wait for a reply that never
//! comes, with a subscription waiting too, the whole process makes at most
//! a handful of context switches, on both runtimes. No tick, no polling,
//! no background thread: the waiters sleep until the socket or the call's
//! own deadline wakes them.
//!
//! The count is the process's, so the two cases never run at once (they
//! share a lock), and the mock's threads sleep in blocking reads meanwhile.

use qmp_client::{Error, EventFilter};
use qmp_mock::{Action, Mock, MockConfig, Peer};
use serde_json::json;
use std::future::{poll_fn, Future, IntoFuture};
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

/// How long the call waits for its reply.
const WAIT: Duration = Duration::from_secs(3);

/// The most context switches the whole process may make meanwhile, all of
/// them around the one wake-up at the call's deadline: tokio makes 0 to 6;
/// async-io about 10, as its own thread backs off (50 µs to 10 ms, about
/// ten sleeps) each time the caller's `block_on` lets go of the reactor. A
/// 10 ms tick alone would be about 300.
const BOUND: u64 = 20;

/// One case at a time: the count is the whole process's.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Voluntary and involuntary context switches of every thread of this
/// process so far.
fn context_switches() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let status = task.expect("a task").path().join("status");
        // A thread that has just exited has no status any more.
        let Ok(status) = std::fs::read_to_string(status) else {
            continue;
        };
        for line in status.lines() {
            if let Some(("voluntary_ctxt_switches" | "nonvoluntary_ctxt_switches", n)) =
                line.split_once(':')
            {
                total += n.trim().parse::<u64>().expect("a count");
            }
        }
    }
    total
}

/// Answers every command but `never`.
fn answer_but_never(peer: Peer) -> Vec<String> {
    peer.serve(|command| match command.name.as_str() {
        "never" => vec![],
        _ => vec![Action::Reply(json!({}))],
    })
    .expect("the mock")
}

qmp_tests::on_both_runtimes! {
    #[test]
    fn a_waiting_connection_sleeps() {
        let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let (stream, _mock) = Mock::pair(MockConfig::default(), answer_but_never);
        rt::block_on(async {
            let qmp = qmp::Qmp::from_unix_stream(stream, Default::default()).await.unwrap();
            qmp.call("warm-up", &()).await.unwrap();
            let mut events = qmp.subscribe(EventFilter::all());
            let mut next = Box::pin(events.next());
            let mut call = Box::pin(qmp.call("never", &()).timeout(WAIT).into_future());
            let before = context_switches();
            let result = poll_fn(|cx| {
                if let Poll::Ready(notice) = next.as_mut().poll(cx) {
                    panic!("no event comes: {notice:?}");
                }
                call.as_mut().poll(cx)
            })
            .await;
            let switches = context_switches().saturating_sub(before);
            assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
            println!("{switches} context switches over {WAIT:?}");
            assert!(switches <= BOUND, "{switches} context switches over {WAIT:?}");
        });
    }
}
