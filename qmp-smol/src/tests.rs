//! Who reads the socket when: the read turn, its hand-over, the watchdog
//! and the driver, against a peer on the other end of a socketpair.

use crate::{ConnectOptions, End, Error, EventFilter, Qmp};
use futures_lite::future::{self, poll_once};
use qmp_proto::{Command, Server, ServerConfig, ServerOutput, Timestamp};
use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::pin::pin;
use std::time::{Duration, Instant};

/// Far more than any case needs: reaching it means something hung.
const HANG: Duration = Duration::from_secs(10);

/// Starts a peer on its own thread: it greets, then gives each command to
/// `answer`, which replies (or not) through the server; after `quit` it
/// closes its end. At end of file it keeps its end of the socket open until
/// `hold` is dropped.
fn peer(
    mut answer: impl FnMut(&mut Server, Command) + Send + 'static,
) -> (UnixStream, async_channel::Sender<()>) {
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let (hold, held) = async_channel::bounded::<()>(1);
    std::thread::spawn(move || {
        let mut server = Server::new(ServerConfig::default());
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut quit = false;
            while let Some(output) = server.poll_output() {
                if let ServerOutput::Command(command) = output {
                    quit |= command.name == "quit";
                    answer(&mut server, command);
                }
            }
            while let Some(bytes) = server.poll_transmit() {
                if theirs.write_all(&bytes).is_err() {
                    return;
                }
            }
            if quit {
                return;
            }
            match theirs.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => server.receive(&buf[..n]),
            }
        }
        future::block_on(held.recv()).ok();
    });
    (ours, hold)
}

/// Replies `{}` to everything but `never`.
fn answer_but_never(server: &mut Server, command: Command) {
    if command.name != "never" {
        server.reply_ok(&command, &serde_json::json!({})).unwrap();
    }
}

async fn connect(stream: UnixStream) -> Qmp {
    Qmp::from_unix_stream(stream, ConnectOptions::default())
        .await
        .unwrap()
}

/// `work`'s output; a panic if it takes longer than `limit`.
async fn within<F: Future>(limit: Duration, work: F) -> F::Output {
    let done = crate::shared::within(limit, work).await;
    done.unwrap_or_else(|| panic!("hung past {limit:?}"))
}

#[test]
fn close_wakes_the_call_reading_for_its_answer() {
    let (stream, _hold) = peer(answer_but_never);
    smol::block_on(async {
        let qmp = connect(stream).await;
        let (polled, first_poll) = async_channel::bounded(1);
        let call = {
            let qmp = qmp.clone();
            smol::spawn(async move {
                let mut call = pin!(qmp.execute_raw("never", &()));
                // Polled once: it holds the read turn, waiting on the socket.
                assert!(poll_once(call.as_mut()).await.is_none());
                polled.send(()).await.unwrap();
                call.await
            })
        };
        first_poll.recv().await.unwrap();
        qmp.close().await;
        // The peer keeps its end open: only the end itself can wake it.
        let result = within(HANG, call).await;
        assert!(
            matches!(result, Err(Error::Closed(End::Local))),
            "{result:?}"
        );
    });
}

#[test]
fn a_call_kept_aside_does_not_stall_the_others() {
    let (stream, _hold) = peer(answer_but_never);
    smol::block_on(async {
        let qmp = connect(stream).await;
        let mut aside = pin!(qmp.execute_raw("never", &()));
        assert!(poll_once(aside.as_mut()).await.is_none());
        // `aside` holds the read turn and is never polled again: the
        // watchdog reads for it, within a tick or so.
        let started = Instant::now();
        for _ in 0..3 {
            within(HANG, qmp.execute_raw("fast", &())).await.unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(qmp.end_reason().is_none());
    });
}

#[test]
fn a_dropped_reader_hands_the_turn_to_a_waiter() {
    let (stream, _hold) = peer(answer_but_never);
    smol::block_on(async {
        let qmp = connect(stream).await;
        let mut reader = Box::pin(qmp.execute_raw("never", &()));
        assert!(poll_once(reader.as_mut()).await.is_none());
        let mut waiter = pin!(qmp.execute_raw("fast", &()));
        let first = poll_once(waiter.as_mut()).await;
        drop(reader);
        let reply = match first {
            Some(reply) => reply,
            None => within(HANG, waiter).await,
        };
        assert_eq!(reply.unwrap().as_str(), "{}");
    });
}

#[test]
fn many_calls_from_many_tasks() {
    let (stream, _hold) = peer(answer_but_never);
    smol::block_on(async {
        let qmp = connect(stream).await;
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let qmp = qmp.clone();
                smol::spawn(async move { qmp.execute_raw("fast", &()).await })
            })
            .collect();
        for task in tasks {
            within(HANG, task).await.unwrap();
        }
        // And as many in one task, polled together.
        let mut calls: Vec<_> = (0..200)
            .map(|_| Some(Box::pin(qmp.execute_raw("fast", &()))))
            .collect();
        let all = std::future::poll_fn(|cx| {
            for slot in &mut calls {
                if let Some(call) = slot {
                    if let std::task::Poll::Ready(reply) = call.as_mut().poll(cx) {
                        reply.unwrap();
                        *slot = None;
                    }
                }
            }
            let left = calls.iter().filter(|c| c.is_some()).count();
            if left == 0 {
                std::task::Poll::Ready(200)
            } else {
                std::task::Poll::Pending
            }
        });
        assert_eq!(within(HANG, all).await, 200);
    });
}

#[test]
fn events_are_recorded_with_nobody_polling() {
    let (stream, _hold) = peer(|server, command| {
        server.reply_ok(&command, &serde_json::json!({})).unwrap();
        if command.name == "stop" {
            server
                .send_event("STOP", &(), Timestamp::default())
                .unwrap();
        }
    });
    let qmp = smol::block_on(connect(stream));
    let cursor = qmp.cursor();
    // A subscription only waits on what is routed: it reads nothing.
    let mut stops = qmp.subscribe(EventFilter::name("STOP"));
    smol::block_on(qmp.execute_raw("query-status", &())).unwrap();
    // Sent on its own: the call's future is gone before it comes.
    let mut stop = Box::pin(qmp.execute_raw("stop", &()));
    assert!(smol::block_on(poll_once(stop.as_mut())).is_none());
    drop(stop);
    let routed = smol::block_on(within(HANG, stops.next()));
    assert!(routed.is_some(), "the subscription ended");
    assert!(!qmp
        .find_events(cursor, &EventFilter::name("STOP"))
        .is_empty());
    assert!(qmp.end_reason().is_none());
}

#[test]
fn the_end_is_noticed_with_nobody_polling() {
    // The peer answers the first command, then shuts its side and tells
    // when the client has closed the socket, which it does once it has
    // noticed the end.
    let (stream, mut theirs) = UnixStream::pair().unwrap();
    let (closed, client_closed) = async_channel::bounded::<()>(1);
    std::thread::spawn(move || {
        let mut server = Server::new(ServerConfig::default());
        let mut buf = vec![0u8; 64 * 1024];
        let mut answered = false;
        loop {
            while let Some(output) = server.poll_output() {
                if let ServerOutput::Command(command) = output {
                    server.reply_ok(&command, &serde_json::json!({})).unwrap();
                    answered = true;
                }
            }
            while let Some(bytes) = server.poll_transmit() {
                theirs.write_all(&bytes).unwrap();
            }
            if answered {
                break;
            }
            match theirs.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => server.receive(&buf[..n]),
            }
        }
        theirs.shutdown(std::net::Shutdown::Write).unwrap();
        while matches!(theirs.read(&mut buf), Ok(n) if n > 0) {}
        closed.try_send(()).ok();
    });
    let qmp = smol::block_on(connect(stream));
    smol::block_on(qmp.execute_raw("query-status", &())).unwrap();
    // Nobody waits on the connection when the peer closes it.
    smol::block_on(within(HANG, client_closed.recv())).expect("the peer");
    assert!(qmp.end_reason().is_some(), "the end was never noticed");
}
