//! Decoding recorded QEMU server streams (`tests/captures/*.s2c`), against a
//! baseline in the same run.
//!
//! - `qmp-proto`: the whole capture is given to a fresh [`Client`] at once
//!   and [`Client::poll_output`] is drained until [`ClientOutput::End`]:
//!   framing, classification and the raw payloads, everything a user gets.
//! - `qmp-proto-64k`, `qmp-proto-4k`: the same, fed in 64 KiB or 4 KiB
//!   chunks as a socket would give it (`poll_output` drained after each
//!   chunk).
//! - `baseline`: the plain capture of the same session split at `\n` and each
//!   line given to `serde_json::from_slice` into a struct whose members are
//!   `Box<RawValue>`s. It needs one message per line, so for a `-pretty`
//!   capture it decodes the plain capture of the same session: the same
//!   messages, in fewer bytes.
//!
//! Throughput is in messages, the same count for a session's plain and pretty
//! capture, so the ratio of two rows of one group is a ratio of speeds.
//! After the run a table of those ratios is printed (from criterion's saved
//! estimates; see BENCHMARKS.md).
//!
//! The large replies of the captures are repeated into [`LARGE_BYTES`]
//! (see [`LARGE`]): the `query-qmp-schema` reply of QEMU 10.0 alone, and
//! every reply over 1000 bytes of the four plain captures in turn. Each is
//! given to a negotiated [`Client`] whole (`whole`), in 64 KiB and in 4 KiB
//! pieces (`poll_output` drained after each), beside the same `baseline` as
//! above, over the same bytes: a message that spans reads should cost what
//! one that arrives whole does. They are timed last, in interleaved rounds
//! rather than by criterion ([`bench_large`]); a second table gives their
//! bytes/s and ratios.
//!
//! The `events` group is the per-event cost of the round-trip benchmark's
//! events case without its sockets and channels: a burst of [`BURST`]
//! `JOB_STATUS_CHANGE` events, as QEMU writes them, given in one piece to
//!
//! - `client`: a negotiated [`Client`], [`Client::poll_output`] drained;
//! - `router`: a [`Router`] over one, with one subscriber for every event
//!   (a plain queue emptied after each burst) and the default history;
//! - `serde`: the baseline, each line checked by `serde_json` with
//!   `IgnoredAny` (a full validation that keeps nothing).
//!
//! `cargo bench -p qmp-proto --bench decode`

use criterion::{BenchmarkId, Criterion, Throughput};
use qmp_proto::router::{Delivery, Offer, Subscriber, Waiter};
use qmp_proto::{
    Client, ClientConfig, ClientOutput, End, EventFilter, Notice, Router, RouterConfig, Server,
    ServerConfig,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::hint::black_box;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/captures/");

/// What the goal is for each kind of capture (qmp-proto / baseline).
const GOAL_PLAIN: f64 = 0.9;
const GOAL_PRETTY: f64 = 0.5;

/// Each benchmarked capture, with the plain capture of the same session.
const SESSIONS: &[(&str, &str)] = &[
    ("qemu-7.2-system", "qemu-7.2-system"),
    ("qemu-10.0-system", "qemu-10.0-system"),
    ("qemu-7.2-storage-daemon", "qemu-7.2-storage-daemon"),
    ("qemu-10.0-storage-daemon", "qemu-10.0-storage-daemon"),
    ("qemu-7.2-system-pretty", "qemu-7.2-system"),
    ("qemu-10.0-system-pretty", "qemu-10.0-system"),
];

/// The chunk sizes: a small socket read, and a large one.
const CHUNK: usize = 4096;
const BIG_CHUNK: usize = 64 * 1024;

/// The large-reply corpora: a name and the replies (whole lines of the
/// plain captures: capture, 1-based line number) repeated to fill it.
const LARGE: &[(&str, &[(&str, usize)])] = &[
    ("schema-10.0", &[("qemu-10.0-system", 18)]),
    (
        "large-mixed",
        &[
            ("qemu-7.2-system", 18),
            ("qemu-7.2-system", 19),
            ("qemu-7.2-storage-daemon", 28),
            ("qemu-7.2-storage-daemon", 30),
            ("qemu-10.0-system", 18),
            ("qemu-10.0-system", 19),
            ("qemu-10.0-storage-daemon", 28),
            ("qemu-10.0-storage-daemon", 30),
        ],
    ),
];

/// The size of each large-reply corpus (whole replies: at least this).
const LARGE_BYTES: usize = 64 << 20;

/// The baseline's view of a server message: every member kept raw.
#[derive(Deserialize)]
#[allow(dead_code)] // read only through black_box
struct Baseline {
    #[serde(rename = "QMP")]
    qmp: Option<Box<RawValue>>,
    #[serde(rename = "return")]
    ret: Option<Box<RawValue>>,
    error: Option<Box<RawValue>>,
    id: Option<Box<RawValue>>,
    event: Option<Box<RawValue>>,
    data: Option<Box<RawValue>>,
    timestamp: Option<Box<RawValue>>,
}

/// Decodes a plain capture line by line; returns how many messages it held.
fn baseline(plain: &[u8]) -> usize {
    let mut count = 0;
    let mut rest = plain;
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line = &rest[..end];
        rest = &rest[(end + 1).min(rest.len())..];
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let message: Baseline = serde_json::from_slice(line).expect("baseline: a bad line");
        black_box(&message);
        count += 1;
    }
    count
}

fn client() -> Client {
    // Id 0 is the capture's command sent before negotiation; the client's
    // qmp_capabilities must be id 1 to match the server's reply. Every other
    // reply has an id this client never used: it is still decoded in full,
    // then counted in `unknown_replies`.
    Client::new(ClientConfig::default().first_id(1))
}

/// Drains the client's outputs; returns how many server messages they stand
/// for, and the End if it came.
fn drain(client: &mut Client) -> (usize, Option<End>) {
    let mut messages = 0;
    while let Some(output) = client.poll_output() {
        match output {
            ClientOutput::End(end) => return (messages, Some(end)),
            // Ready is the reply to qmp_capabilities.
            output => {
                black_box(&output);
                messages += 1;
            }
        }
    }
    (messages, None)
}

/// qmp-proto with the whole capture in one piece.
fn qmp_proto(stream: &[u8]) -> usize {
    let mut client = client();
    client.receive(stream);
    client.receive_eof();
    let (messages, end) = drain(&mut client);
    assert_eq!(end, Some(End::PeerClosed));
    messages + client.unknown_replies() as usize
}

/// qmp-proto fed `chunk` bytes at a time.
fn qmp_proto_chunked(stream: &[u8], chunk: usize) -> usize {
    let mut client = client();
    let mut messages = 0;
    for chunk in stream.chunks(chunk) {
        client.receive(chunk);
        let (n, end) = drain(&mut client);
        assert!(end.is_none());
        messages += n;
    }
    client.receive_eof();
    let (n, end) = drain(&mut client);
    assert_eq!(end, Some(End::PeerClosed));
    messages + n + client.unknown_replies() as usize
}

fn read(name: &str) -> Vec<u8> {
    let path = format!("{CAPTURES}{name}.s2c");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

struct Row {
    capture: &'static str,
    pretty: bool,
    messages: usize,
    bytes: usize,
    plain_bytes: usize,
}

fn main() {
    let started = SystemTime::now();
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut rows = Vec::new();
    for &(capture, plain_name) in SESSIONS {
        let stream = read(capture);
        let plain = read(plain_name);
        // Every variant must decode every message, or the comparison is void.
        let messages = baseline(&plain);
        assert_eq!(qmp_proto(&stream), messages, "{capture}: qmp-proto");
        for chunk in [BIG_CHUNK, CHUNK] {
            assert_eq!(
                qmp_proto_chunked(&stream, chunk),
                messages,
                "{capture}: {chunk}"
            );
        }

        let mut group = criterion.benchmark_group(format!("decode/{capture}"));
        group.throughput(Throughput::Elements(messages as u64));
        group.bench_with_input(BenchmarkId::from_parameter("baseline"), &plain, |b, p| {
            b.iter(|| baseline(black_box(p)))
        });
        group.bench_with_input(BenchmarkId::from_parameter("qmp-proto"), &stream, |b, s| {
            b.iter(|| qmp_proto(black_box(s)))
        });
        for (name, chunk) in [("qmp-proto-64k", BIG_CHUNK), ("qmp-proto-4k", CHUNK)] {
            group.bench_with_input(BenchmarkId::from_parameter(name), &stream, |b, s| {
                b.iter(|| qmp_proto_chunked(black_box(s), chunk))
            });
        }
        group.finish();
        rows.push(Row {
            capture,
            pretty: capture != plain_name,
            messages,
            bytes: stream.len(),
            plain_bytes: plain.len(),
        });
    }
    // `cargo bench` passes --bench; `cargo test` runs each benchmark once.
    let benching = std::env::args().any(|arg| arg == "--bench");
    bench_events(&mut criterion);
    criterion.final_summary();
    let large = bench_large(if benching { LARGE_ROUNDS } else { 0 });
    if benching {
        print_ratios(&rows, started);
        print_large_ratios(&large);
        print_event_costs(started);
    }
}

// ---------------------------------------------------------------------------
// Large replies, whole and in pieces.

/// Line `number` (1-based) of a capture, with its line ending.
fn capture_line(capture: &str, number: usize) -> Vec<u8> {
    let text = read(capture);
    let line = text
        .split_inclusive(|&b| b == b'\n')
        .nth(number - 1)
        .unwrap_or_else(|| panic!("{capture} has no line {number}"));
    assert!(line.len() > 1000, "{capture}:{number} is not a large reply");
    line.to_vec()
}

/// A large-reply corpus: its replies in turn until it holds [`LARGE_BYTES`].
fn large_corpus(replies: &[(&str, usize)]) -> Vec<u8> {
    let lines: Vec<Vec<u8>> = replies
        .iter()
        .map(|&(capture, number)| capture_line(capture, number))
        .collect();
    let mut corpus = Vec::with_capacity(LARGE_BYTES + lines.iter().map(Vec::len).sum::<usize>());
    while corpus.len() < LARGE_BYTES {
        for line in &lines {
            corpus.extend_from_slice(line);
        }
    }
    corpus
}

/// Gives `corpus` to a negotiated client in pieces of `chunk` bytes (all of
/// it at once for `None`), draining its outputs after each; returns how
/// many replies it decoded. Their ids were never the client's: each is
/// decoded in full, then counted as unknown.
fn large_through(client: &mut Client, corpus: &[u8], chunk: Option<usize>) -> usize {
    let before = client.unknown_replies();
    let mut outputs = 0;
    for piece in corpus.chunks(chunk.unwrap_or(corpus.len())) {
        client.receive(piece);
        while let Some(output) = client.poll_output() {
            black_box(&output);
            outputs += 1;
        }
    }
    assert_eq!(outputs, 0, "a large reply came out as an output");
    (client.unknown_replies() - before) as usize
}

/// A large-reply corpus and the median time of each subject over the
/// rounds, in nanoseconds: baseline, whole, 64 KiB pieces, 4 KiB pieces.
struct LargeRow {
    corpus: &'static str,
    messages: usize,
    bytes: usize,
    median_ns: [f64; 4],
}

/// The ways a large-reply corpus is given to the client.
const LARGE_SUBJECTS: [(&str, Option<usize>); 3] = [
    ("whole", None),
    ("64k", Some(BIG_CHUNK)),
    ("4k", Some(CHUNK)),
];

/// Timed rounds of the large replies (after one round of warm-up).
const LARGE_ROUNDS: usize = 15;

/// Times the large-reply corpora. Not through criterion: each round runs
/// every subject once (baseline, whole, 64 KiB, 4 KiB; the order reversed
/// every other round), and each subject's time is its median over the
/// rounds. A subject then never runs alone through a quiet or a busy spell
/// of a shared machine, which moved criterion's one-after-the-other
/// figures by 20% against one another. `rounds` is 0 under `cargo test`:
/// one checked pass.
fn bench_large(rounds: usize) -> Vec<LargeRow> {
    let mut rows = Vec::new();
    for &(name, replies) in LARGE {
        let corpus = large_corpus(replies);
        let messages = baseline(&corpus);
        let mut client = negotiated_client();
        let mut times: [Vec<f64>; 4] = Default::default();
        for round in 0..=rounds {
            let order = match round % 2 {
                0 => [0, 1, 2, 3],
                _ => [3, 2, 1, 0],
            };
            for subject in order {
                let start = Instant::now();
                let decoded = match subject {
                    0 => baseline(black_box(&corpus)),
                    _ => {
                        let chunk = LARGE_SUBJECTS[subject - 1].1;
                        large_through(&mut client, black_box(&corpus), chunk)
                    }
                };
                let elapsed = start.elapsed();
                let subject_name = match subject {
                    0 => "baseline",
                    _ => LARGE_SUBJECTS[subject - 1].0,
                };
                assert_eq!(decoded, messages, "{name}: {subject_name}");
                if round > 0 {
                    times[subject].push(elapsed.as_secs_f64() * 1e9);
                }
            }
        }
        if rounds == 0 {
            continue;
        }
        let median_ns = times.map(|mut samples| {
            samples.sort_by(f64::total_cmp);
            samples[samples.len() / 2]
        });
        rows.push(LargeRow {
            corpus: name,
            messages,
            bytes: corpus.len(),
            median_ns,
        });
    }
    rows
}

fn print_large_ratios(rows: &[LargeRow]) {
    if rows.is_empty() {
        return;
    }
    println!(
        "\nLarge replies, medians of {LARGE_ROUNDS} interleaved rounds in MiB/s; ratios of throughput.\n"
    );
    println!("| corpus | replies | bytes | whole | 64 KiB pieces | 4 KiB pieces | baseline | 64 KiB / whole | 64 KiB / baseline | 4 KiB / baseline | whole / baseline |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        let [base, whole, big, small] = row.median_ns;
        let mib_s = |ns: f64| row.bytes as f64 * 1e9 / ns / f64::from(1 << 20);
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | **{:.2}** | **{:.2}** | **{:.2}** | {:.2} |",
            row.corpus,
            row.messages,
            row.bytes,
            mib_s(whole),
            mib_s(big),
            mib_s(small),
            mib_s(base),
            whole / big,
            base / big,
            base / small,
            base / whole,
        );
    }
}

// ---------------------------------------------------------------------------
// Events: the per-event cost of decoding and routing.

/// Events per burst, as in the round-trip benchmark.
const BURST: usize = 256;

/// [`BURST`] events as QEMU writes them (see the captures), one a line.
fn event_burst() -> Vec<u8> {
    let mut burst = Vec::new();
    for i in 0..BURST {
        let line = format!(
            concat!(
                r#"{{"timestamp": {{"seconds": {}, "microseconds": {}}}, "#,
                r#""event": "JOB_STATUS_CHANGE", "data": {{"status": "running", "id": "job0"}}}}"#,
                "\r\n"
            ),
            1_764_000_000 + i,
            123_456 + i,
        );
        burst.extend_from_slice(line.as_bytes());
    }
    burst
}

/// A client that has negotiated with a [`Server`].
fn negotiated_client() -> Client {
    let mut client = Client::default();
    let mut server = Server::new(ServerConfig::default());
    while !client.is_ready() {
        while let Some(bytes) = server.poll_transmit() {
            client.receive(&bytes);
        }
        while client.poll_output().is_some() {}
        while let Some(bytes) = client.poll_transmit() {
            server.receive(&bytes);
        }
        while server.poll_output().is_some() {}
    }
    client
}

/// One burst through a negotiated client; returns the events it gave.
fn client_events(client: &mut Client, burst: &[u8]) -> usize {
    client.receive(burst);
    let mut events = 0;
    while let Some(output) = client.poll_output() {
        if let ClientOutput::Event(event) = output {
            black_box(&event);
            events += 1;
        }
    }
    events
}

/// A subscriber is a plain queue of at most [`BURST`] notices.
#[derive(Clone, Default)]
struct Queue(Rc<RefCell<VecDeque<Notice>>>);

impl Subscriber for Queue {
    fn offer(&mut self, notice: Notice) -> Offer {
        let mut queue = self.0.borrow_mut();
        if queue.len() == BURST {
            return Offer::Full(notice);
        }
        queue.push_back(notice);
        Offer::Accepted
    }
}

/// No command is run and nothing waits: results would be dropped.
struct Nobody;

impl<T> Waiter<T> for Nobody {
    fn deliver(self, _: T) {}
    fn is_gone(&self) -> bool {
        true
    }
}

struct QueueDelivery;

impl Delivery for QueueDelivery {
    type Call = Nobody;
    type Wait = Nobody;
    type Subscriber = Queue;
}

/// One burst through a router with one subscriber; returns the events the
/// subscriber got.
fn router_events(router: &mut Router<QueueDelivery>, queue: &Queue, burst: &[u8]) -> usize {
    router.receive(burst);
    router.handle_outputs();
    let mut events = 0;
    for notice in queue.0.borrow_mut().drain(..) {
        assert!(matches!(notice, Notice::Event(_)), "the subscriber lagged");
        black_box(&notice);
        events += 1;
    }
    events
}

/// Each line checked by serde_json: the baseline.
fn serde_events(burst: &[u8]) -> usize {
    let mut events = 0;
    for line in burst.split(|&b| b == b'\n') {
        if !line.iter().all(u8::is_ascii_whitespace) {
            let checked = serde_json::from_slice::<serde::de::IgnoredAny>(line);
            black_box(checked.expect("valid JSON"));
            events += 1;
        }
    }
    events
}

fn bench_events(criterion: &mut Criterion) {
    let burst = event_burst();
    let mut client = negotiated_client();
    let mut router = Router::new(negotiated_client(), RouterConfig::default());
    let queue = Queue::default();
    router.subscribe(EventFilter::all(), queue.clone(), Default::default());
    assert_eq!(serde_events(&burst), BURST);
    assert_eq!(client_events(&mut client, &burst), BURST);
    assert_eq!(router_events(&mut router, &queue, &burst), BURST);

    let mut group = criterion.benchmark_group("events");
    group.throughput(Throughput::Elements(BURST as u64));
    group.bench_function("serde", |b| b.iter(|| serde_events(black_box(&burst))));
    group.bench_function("client", |b| {
        b.iter(|| client_events(&mut client, black_box(&burst)))
    });
    group.bench_function("router", |b| {
        b.iter(|| router_events(&mut router, &queue, black_box(&burst)))
    });
    group.finish();
}

fn print_event_costs(started: SystemTime) {
    let per_event = |function| {
        let path = criterion_dir()
            .join("events")
            .join(function)
            .join("new/estimates.json");
        median_ns_at(&path, started).map(|ns| ns / BURST as f64)
    };
    let (Some(serde), Some(client), Some(router)) =
        (per_event("serde"), per_event("client"), per_event("router"))
    else {
        return;
    };
    println!("\nEvents, per event (medians of this run): serde_json check {serde:.1} ns, client {client:.1} ns ({:.2}x), router {router:.1} ns ({:.2}x).", client / serde, router / serde);
}

// ---------------------------------------------------------------------------
// The ratio table, from the estimates criterion saved in this run.

fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/criterion"))
}

/// The median time of one iteration, in ns, if this run measured it.
fn median_ns(capture: &str, function: &str, started: SystemTime) -> Option<f64> {
    let path = criterion_dir()
        .join(format!("decode_{capture}"))
        .join(function)
        .join("new/estimates.json");
    median_ns_at(&path, started)
}

/// The median saved at `path`, if this run saved it.
fn median_ns_at(path: &std::path::Path, started: SystemTime) -> Option<f64> {
    if std::fs::metadata(path).ok()?.modified().ok()? < started {
        return None; // left over from an earlier run (filtered out now)
    }
    let estimates: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

fn print_ratios(rows: &[Row], started: SystemTime) {
    let mut table = Vec::new();
    let mut notes = Vec::new();
    for row in rows {
        let (Some(base), Some(whole)) = (
            median_ns(row.capture, "baseline", started),
            median_ns(row.capture, "qmp-proto", started),
        ) else {
            continue;
        };
        let per_sec = |ns: f64| row.messages as f64 * 1e9 / ns;
        let goal = if row.pretty { GOAL_PRETTY } else { GOAL_PLAIN };
        let ratio = base / whole;
        let chunked = |function| {
            median_ns(row.capture, function, started).map_or_else(
                || "- | -".to_string(),
                |ns| format!("{:.0} | {:.2}", per_sec(ns), base / ns),
            )
        };
        let chunked = format!("{} | {}", chunked("qmp-proto-4k"), chunked("qmp-proto-64k"));
        table.push(format!(
            "| {} | {} | {} | {:.0} | {:.0} | **{ratio:.2}** | {goal} | {} | {chunked} |",
            row.capture,
            row.messages,
            row.bytes,
            per_sec(base),
            per_sec(whole),
            if ratio >= goal { "yes" } else { "NO" },
        ));
        if row.pretty {
            let factor = row.bytes as f64 / row.plain_bytes as f64;
            notes.push(format!(
                "{}: in bytes/s the ratio would be {:.2} ({} bytes decoded against the baseline's {}).",
                row.capture,
                ratio * factor,
                row.bytes,
                row.plain_bytes,
            ));
        }
    }
    if table.is_empty() {
        println!("(no estimates from this run under {:?})", criterion_dir());
        return;
    }
    println!("\nMedians of this run; ratio = qmp-proto / baseline throughput, in messages/s.\n");
    println!("| capture | messages | bytes | baseline msg/s | qmp-proto msg/s | ratio | goal | met | 4 KiB chunks msg/s | ratio | 64 KiB chunks msg/s | ratio |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |");
    for line in table {
        println!("{line}");
    }
    for note in notes {
        println!("\n{note}");
    }
}
