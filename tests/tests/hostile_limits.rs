//! Hostile peers against the client's limits: a 100 MiB message (over the
//! size limit), an 8 MiB one (under it), and a flood of 1 000 000 events
//! while a subscriber does not read.
//!
//! What these tests prove:
//!
//! - a message over the limit ends the connection with the typed
//!   `MessageTooLarge`, fails the pending call with it, and costs bounded
//!   memory: the peak RSS stays far below the 100 MiB the server streams;
//! - a message under the limit arrives intact, and the connection goes on;
//! - during a flood replies keep flowing past a subscriber that does not
//!   read, memory stays bounded (peak RSS, and an event history capped at
//!   its configured length), and the subscriber learns by how much it
//!   lagged: `Lagged(n)` plus the events it received equals the events sent.
//!
//! The two memory cases measure the peak RSS (`VmHWM` of
//! `/proc/self/status`) in a process of their own, so that other tests
//! running in parallel do not pollute the figure: the test runs this same
//! test binary again, filtered to itself, with [`CHILD`] set; the child runs
//! the scenario, prints its figures on a line starting with [`MARK`], and
//! the parent checks them. The figures are printed with `--nocapture`.
//!
//! Each case runs under tokio (`qmp-tokio`) and smol (`qmp-smol`), against
//! the mock of [`qmp_tests::mock`].

use qmp_client::{ConnectOptions, Error};
use qmp_mock::{Action, Mock, MockConfig, Peer};
use qmp_proto::{End, ProtocolError, Timestamp, DEFAULT_MAX_MESSAGE_SIZE};
use qmp_tests::memory;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

/// Set in the environment of the child process that runs a scenario.
const CHILD: &str = "QMP_HOSTILE_MEASURE";
/// Starts the line on which the child reports its figures.
const MARK: &str = "qmp-hostile-figures:";
/// Far more than any case needs: reaching it means the client hung. The
/// flood takes a few seconds in a debug build.
const HANG: Duration = Duration::from_secs(120);

/// Size of the oversize message the mock streams.
const HUGE: usize = 100 * 1024 * 1024;
/// Allowed growth of the peak RSS over the RSS before the scenario.
const MEMORY_BUDGET_KIB: u64 = 40 * 1024;
/// Events in the flood.
const FLOOD: u64 = 1_000_000;
/// Unread events a subscriber may hold (the default, set explicitly).
const SUBSCRIBER_CAPACITY: usize = 256;

/// Figures a child reports: name to value.
type Figures = BTreeMap<String, u64>;

/// Runs `test` (a full libtest name) alone in a new process of this test
/// binary, with [`CHILD`] set, and returns the figures it printed.
fn run_child(test: &str) -> Figures {
    let exe = std::env::current_exe().expect("test binary");
    let output = std::process::Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child {test} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let line = stdout
        .lines()
        // libtest may print the test's name on the same line first.
        .find_map(|line| Some(&line[line.find(MARK)? + MARK.len()..]))
        .unwrap_or_else(|| panic!("child {test} printed no figures:\n{stdout}\n{stderr}"));
    line.split_whitespace()
        .map(|pair| {
            let (key, value) = pair.split_once('=').expect("key=value");
            (key.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

/// Prints `figures` for the parent (in the child).
fn report(figures: &Figures) {
    let pairs: Vec<String> = figures.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("{MARK} {}", pairs.join(" "));
}

/// The libtest name of test `name` in the module at `module_path`
/// (`hostile_limits::tokio_runtime` gives `tokio_runtime::NAME`).
fn test_name(module_path: &str, name: &str) -> String {
    let module = module_path.split_once("::").map_or("", |(_, rest)| rest);
    format!("{module}::{name}")
}

/// Current RSS, after resetting the peak to it (`baseline_kib`), and
/// whether the reset worked (else the peak includes the process's start).
fn start_measuring() -> (u64, bool) {
    let reset = memory::reset_peak_rss();
    let (rss, _) = memory::memory_kib().expect("/proc/self/status");
    (rss, reset)
}

/// The parent's check of a child's memory figures.
fn assert_memory_bounded(figures: &Figures, what: &str) {
    let peak_growth = figures["peak_kib"].saturating_sub(figures["baseline_kib"]);
    eprintln!("{what}: {figures:?}; peak growth {peak_growth} KiB");
    assert!(
        peak_growth < MEMORY_BUDGET_KIB,
        "{what}: the peak RSS grew by {peak_growth} KiB (budget {MEMORY_BUDGET_KIB} KiB)"
    );
}

/// The mock's answer to `big`: a `return` string of [`HUGE`] bytes,
/// streamed in 1 MiB writes, never held whole. Returns how many bytes it
/// wrote before the client gave up (a write failed).
fn stream_huge_reply(mut peer: Peer) -> usize {
    peer.greet().expect("greet");
    let big = peer.next_command().expect("big");
    let id = big.id.as_ref().map_or("null", |id| id.as_str()).to_string();
    let chunk = vec![b'x'; 1024 * 1024];
    let mut written = 0;
    let mut send = |peer: &mut Peer, bytes: &[u8]| {
        let sent = peer.send_raw(bytes).is_ok();
        if sent {
            written += bytes.len();
        }
        sent
    };
    let complete = send(&mut peer, b"{\"return\": \"")
        && (0..HUGE / chunk.len()).all(|_| send(&mut peer, &chunk))
        && send(&mut peer, format!("\", \"id\": {id}}}\r\n").as_bytes());
    assert!(!complete, "the client read all of the oversize message");
    written
}

/// The 8 MiB reply: every 8-byte cell different, with escapes and non-ASCII
/// text every 4096 cells.
fn large_text() -> String {
    let mut text = String::with_capacity(8 * 1024 * 1024 + 64 * 1024);
    for cell in 0..1024 * 1024 {
        if cell % 4096 == 0 {
            text.push_str("\"\\é😀\n{]");
        }
        std::fmt::Write::write_fmt(&mut text, format_args!("{cell:07x},")).expect("a String");
    }
    text
}

/// The mock's side of the flood: `flood` is answered at once and followed
/// by the first half of the events; `ping` is answered after that half,
/// then the second half follows; `done` is answered after all of them;
/// `final` is answered after one more event, `FLOOD_END`. The events are
/// encoded in batches and written in large chunks.
fn flood_mock(mut peer: Peer) {
    peer.greet().expect("greet");
    let flood = peer.next_command().expect("flood");
    peer.reply(&flood, json!({ "events": FLOOD }))
        .expect("reply");
    send_events(&mut peer, 0..FLOOD / 2);
    let ping = peer.next_command().expect("ping");
    assert_eq!(ping.name, "ping");
    peer.reply(&ping, json!({ "after_events": FLOOD / 2 }))
        .expect("reply");
    send_events(&mut peer, FLOOD / 2..FLOOD);
    let done = peer.next_command().expect("done");
    peer.reply(&done, json!({ "sent": FLOOD })).expect("reply");
    let last = peer.next_command().expect("final");
    let stamp = qmp_proto::Timestamp {
        seconds: 1,
        microseconds: 0,
    };
    peer.event("FLOOD_END", &Value::Null, stamp).expect("event");
    peer.reply(&last, json!({})).expect("reply");
    peer.wait_for_eof();
}

/// Writes events `FLOOD` with data `{"n": N}` for each N of `range`.
fn send_events(peer: &mut Peer, range: std::ops::Range<u64>) {
    let mut batch = Vec::with_capacity(512 * 1024);
    for n in range {
        write!(
            batch,
            "{{\"event\": \"FLOOD\", \"data\": {{\"n\": {n}}}, \"timestamp\": {{\"seconds\": 1, \"microseconds\": {}}}}}\r\n",
            n % 1_000_000
        )
        .expect("write to a Vec");
        if batch.len() >= 448 * 1024 {
            peer.send_raw(&batch).expect("send events");
            batch.clear();
        }
    }
    peer.send_raw(&batch).expect("send events");
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

    async fn call(qmp: &qmp::Qmp, name: &str) -> Result<Value, Error> {
        let raw = rt::timeout(HANG, qmp.call(name, &()))
            .await
            .expect("call hung")?;
        Ok(raw.decode().expect("a reply is JSON"))
    }

    /// The mock streams a 100 MiB reply: the call fails with
    /// `MessageTooLarge` at the default 16 MiB limit, and the peak RSS of
    /// the process grows by far less than 100 MiB. Measured in a child.
    #[test]
    fn oversize_message_is_refused_with_bounded_memory() {
        if std::env::var_os(CHILD).is_none() {
            let name = test_name(module_path!(), "oversize_message_is_refused_with_bounded_memory");
            let figures = run_child(&name);
            assert_memory_bounded(&figures, &name);
            assert!(figures["mock_wrote_bytes"] < HUGE as u64);
            return;
        }
        let (stream, mock) = Mock::pair(MockConfig::default(), stream_huge_reply);
        let mut figures = Figures::new();
        rt::block_on(async {
            let qmp = connect_with(stream, ConnectOptions::default()).await;
            let (baseline, reset) = start_measuring();
            let started = Instant::now();
            let result = call(&qmp, "big").await;
            figures.insert("elapsed_ms".into(), started.elapsed().as_millis() as u64);
            let expected = End::Protocol(ProtocolError::MessageTooLarge {
                limit: DEFAULT_MAX_MESSAGE_SIZE,
            });
            assert!(matches!(&result, Err(Error::Closed(end)) if *end == expected), "{result:?}");
            assert_eq!(qmp.end_reason(), Some(expected));
            let (_, peak) = memory::memory_kib().expect("/proc/self/status");
            figures.insert("baseline_kib".into(), baseline);
            figures.insert("peak_kib".into(), peak);
            figures.insert("peak_was_reset".into(), u64::from(reset));
        });
        figures.insert("mock_wrote_bytes".into(), mock.join() as u64);
        report(&figures);
    }

    /// An 8 MiB reply (under the limit) arrives byte for byte, twice, and
    /// the connection goes on.
    #[test]
    fn large_reply_under_the_limit_arrives_intact() {
        let text = large_text();
        assert!(text.len() >= 8 * 1024 * 1024);
        let (stream, mock) = Mock::pair(MockConfig::default(), {
            let text = text.clone();
            move |peer: Peer| {
                peer.serve(move |command| match command.name.as_str() {
                    "large" => vec![Action::Reply(Value::String(text.clone()))],
                    other => vec![Action::Reply(json!({ "answer_to": other }))],
                })
            }
        });
        rt::block_on(async {
            let qmp = connect_with(stream, ConnectOptions::default()).await;
            for _ in 0..2 {
                let started = Instant::now();
                let got: String = rt::timeout(HANG, qmp.call("large", &()).decode())
                    .await
                    .expect("hung")
                    .expect("large");
                eprintln!("8 MiB reply in {:?}", started.elapsed());
                assert_eq!(got.len(), text.len());
                assert!(got == text, "the large reply was altered");
            }
            assert_eq!(call(&qmp, "small").await.expect("small"), json!({"answer_to": "small"}));
            qmp.close();
        });
        assert_eq!(mock.join().expect("mock"), ["large", "large", "small"]);
    }

    /// Events past a full queue, then the peer closes: the subscriber gets
    /// its queued events, then `Lagged(n)` for the rest (the end does not
    /// swallow it), then the end.
    #[test]
    fn a_lag_is_told_after_the_connection_ends() {
        const SENT: u64 = 20;
        const CAPACITY: usize = 4;
        let (stream, mock) = Mock::pair(MockConfig::default(), |mut peer: Peer| {
            peer.greet().expect("greet");
            let burst = peer.next_command().expect("burst");
            peer.reply(&burst, json!({})).expect("reply");
            for n in 0..SENT {
                peer.event("E", &json!({ "n": n }), Timestamp::default())
                    .expect("event");
            }
            // Closes without answering: the call sees the end.
            peer.next_command().expect("bye");
            peer.close();
        });
        rt::block_on(async {
            let options = ConnectOptions::default().subscriber_capacity(CAPACITY);
            let qmp = connect_with(stream, options).await;
            let mut events = qmp.subscribe(qmp::EventFilter::all());
            assert_eq!(call(&qmp, "burst").await.expect("burst"), json!({}));
            let bye = call(&qmp, "bye").await;
            assert!(matches!(bye, Err(Error::Closed(End::PeerClosed))), "{bye:?}");
            let mut got = Vec::new();
            while let Some(notice) = rt::timeout(HANG, events.next()).await.expect("hung") {
                got.push(match notice {
                    qmp::Notice::Event(event) => format!("E{}", event.event.decode::<Value>().expect("data")["n"]),
                    qmp::Notice::Lagged(n) => format!("lagged {n}"),
                });
            }
            assert_eq!(got, ["E0", "E1", "E2", "E3", "lagged 16"]);
            assert_eq!(events.end_reason(), Some(End::PeerClosed));
        });
        mock.join();
    }

    /// 1 000 000 events while a subscriber reads nothing: a command issued
    /// during the flood gets its reply, the history stays at its cap, the
    /// peak RSS stays bounded, and the subscriber gets its first
    /// `SUBSCRIBER_CAPACITY` events, then `Lagged(n)` with n the rest.
    /// Measured in a child.
    #[test]
    fn event_flood_past_a_stuck_subscriber() {
        if std::env::var_os(CHILD).is_none() {
            let name = test_name(module_path!(), "event_flood_past_a_stuck_subscriber");
            let figures = run_child(&name);
            assert_memory_bounded(&figures, &name);
            assert_eq!(figures["received"] + figures["lagged"], FLOOD);
            return;
        }
        let (stream, mock) = Mock::pair(MockConfig::default(), flood_mock);
        let mut figures = Figures::new();
        rt::block_on(async {
            let options = ConnectOptions::default().subscriber_capacity(SUBSCRIBER_CAPACITY);
            let qmp = connect_with(stream, options).await;
            let mut events = qmp.subscribe(qmp::EventFilter::all());
            let before = qmp.cursor();
            let (baseline, reset) = start_measuring();
            let started = Instant::now();

            assert_eq!(call(&qmp, "flood").await.expect("flood"), json!({ "events": FLOOD }));
            // Sent by the mock only after half the flood: this reply had to
            // get past 500 000 events the subscriber does not read.
            let ping = call(&qmp, "ping").await.expect("ping during the flood");
            assert_eq!(ping, json!({ "after_events": FLOOD / 2 }));
            figures.insert("ping_ms".into(), started.elapsed().as_millis() as u64);
            // Answered after the last event: all of them have been routed.
            assert_eq!(call(&qmp, "done").await.expect("done"), json!({ "sent": FLOOD }));
            figures.insert("elapsed_ms".into(), started.elapsed().as_millis() as u64);
            let (_, peak) = memory::memory_kib().expect("/proc/self/status");
            figures.insert("baseline_kib".into(), baseline);
            figures.insert("peak_kib".into(), peak);
            figures.insert("peak_was_reset".into(), u64::from(reset));

            let kept = qmp.find_events(before, &qmp::EventFilter::all());
            assert_eq!(kept.len(), qmp_proto::RouterConfig::default().history);
            assert_eq!(kept.last().map(|e| e.sequence), Some(before.sequence() + FLOOD - 1));

            // The subscriber's queue holds the first events, in order.
            let mut received = 0;
            let mut lagged = 0;
            for i in 0..SUBSCRIBER_CAPACITY as u64 {
                match rt::timeout(HANG, events.next()).await.expect("hung") {
                    Some(qmp::Notice::Event(event)) => {
                        assert_eq!(event.sequence, before.sequence() + i);
                        let data: Value = event.event.decode().expect("data");
                        assert_eq!(data["n"], i);
                        received += 1;
                    }
                    Some(qmp::Notice::Lagged(n)) => lagged += n,
                    None => panic!("the subscription ended"),
                }
            }
            // The lag is told with the next event, once there is room.
            assert_eq!(call(&qmp, "final").await.expect("final"), json!({}));
            loop {
                match rt::timeout(HANG, events.next()).await.expect("hung") {
                    Some(qmp::Notice::Lagged(n)) => lagged += n,
                    Some(qmp::Notice::Event(event)) if event.event.name == "FLOOD_END" => break,
                    Some(qmp::Notice::Event(event)) => {
                        panic!("event {} after the subscriber's queue filled", event.sequence)
                    }
                    None => panic!("the subscription ended"),
                }
            }
            assert_eq!(received + lagged, FLOOD);
            figures.insert("received".into(), received);
            figures.insert("lagged".into(), lagged);
            qmp.close();
        });
        mock.join();
        report(&figures);
    }
}
