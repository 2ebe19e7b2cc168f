//! A full queue is backpressure, not an error, on both runtimes: calls past
//! the in-flight window and the local queue wait for room, in the order
//! they came, within their timeout and cancel-safely; `try_now` keeps the
//! immediate error.

use qmp_client::{ClientConfig, ConnectOptions, Error, SendError};
use qmp_mock::{Action, Mock, MockConfig, Peer};
use qmp_tests::runtime::poll_once;
use serde_json::json;
use std::future::IntoFuture;
use std::sync::mpsc;
use std::time::Duration;

/// Far more than any case needs: reaching it means something hung.
const HANG: Duration = Duration::from_secs(60);

/// Answers every command with `{}`; `hold` only once `release` fires.
fn holding(peer: Peer, release: mpsc::Receiver<()>) -> Vec<String> {
    let mut release = Some(release);
    peer.serve(|command| match (command.name.as_str(), release.take()) {
        ("hold", Some(release)) => vec![Action::Wait(release), Action::Reply(json!({}))],
        _ => vec![Action::Reply(json!({}))],
    })
    .expect("the mock")
}

qmp_tests::on_both_runtimes! {
    /// 20,000 calls at once, far past the window (8) and the queue (4096):
    /// every one is answered (they used to fail with `QueueFull`).
    #[test]
    fn twenty_thousand_calls_at_once_all_succeed() {
        let (stream, mock) = Mock::pair(MockConfig::default(), |peer: Peer| {
            peer.serve(|_| vec![Action::Reply(json!({}))]).expect("the mock").len()
        });
        rt::block_on(async {
            let qmp = qmp::Qmp::from_unix_stream(stream, ConnectOptions::default()).await.unwrap();
            let calls: Vec<_> = (0..20_000)
                .map(|_| {
                    let qmp = qmp.clone();
                    rt::spawn(async move { qmp.call("query-status", &()).await })
                })
                .collect();
            for call in calls {
                rt::timeout(HANG, call).await.expect("hung").expect("answered");
            }
            qmp.close();
        });
        assert_eq!(mock.join(), 20_000);
    }

    /// With a window of 1 and a queue of 1, both taken: `try_now` fails at
    /// once; a call with a timeout times out while it waits for room; a
    /// waiting call dropped leaves no trace; the others go out in the
    /// order they came once there is room.
    #[test]
    fn waiting_for_room_is_ordered_timed_and_cancel_safe() {
        let (release, released) = mpsc::channel();
        let (stream, mock) = Mock::pair(MockConfig::default(), move |peer| holding(peer, released));
        let client = ClientConfig::default().max_in_flight(1).max_queued(1);
        rt::block_on(async {
            let options = ConnectOptions::default().client(client);
            let qmp = qmp::Qmp::from_unix_stream(stream, options).await.unwrap();
            let mut hold = Box::pin(qmp.call("hold", &()).into_future());
            assert!(!poll_once(hold.as_mut()).await);
            let mut queued = Box::pin(qmp.call("queued", &()).into_future());
            assert!(!poll_once(queued.as_mut()).await);

            let refused = qmp.call("refused", &()).try_now().await;
            assert!(
                matches!(refused, Err(Error::Rejected(SendError::QueueFull { limit: 1 }))),
                "{refused:?}"
            );
            let timed = qmp.call("timed", &()).timeout(Duration::from_millis(50)).await;
            assert!(matches!(timed, Err(Error::Timeout)), "{timed:?}");

            let mut first = Box::pin(qmp.call("first", &()).into_future());
            assert!(!poll_once(first.as_mut()).await);
            let mut dropped = Box::pin(qmp.call("dropped", &()).into_future());
            assert!(!poll_once(dropped.as_mut()).await);
            let mut second = Box::pin(qmp.call("second", &()).into_future());
            assert!(!poll_once(second.as_mut()).await);
            drop(dropped);

            release.send(()).unwrap();
            for call in [hold, queued, first, second] {
                rt::timeout(HANG, call).await.expect("hung").expect("answered");
            }
            qmp.close();
        });
        assert_eq!(mock.join(), ["hold", "queued", "first", "second"]);
    }
}
