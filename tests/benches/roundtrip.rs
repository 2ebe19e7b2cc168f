//! Round trips through `qmp-tokio` and `qmp-smol` against in-process mock
//! QEMUs (qmp-mock's `MockQemu` on a Unix socket, one per subject), each
//! measured against a raw-socket floor in the same run. See BENCHMARKS.md
//! for the cases, the floors and the latest table.
//!
//! `cargo bench -p qmp-tests --bench roundtrip` (or `.ci/bench`, which also
//! runs the decode benchmark and prints one table of both).
//!
//! Runtimes, as a user gets them by default: tokio's multi-thread runtime
//! (`Runtime::new()`, one worker per core, what `#[tokio::main]` builds)
//! with the calls made from `block_on`, as in `#[tokio::main]`'s body;
//! `smol::block_on` for qmp-smol (whose waiting calls read the socket
//! themselves).
//!
//! The sequential and connect cases also measure, per column, the same
//! work done with the runtime's own socket (`roundtrip/runtime_floor.rs`),
//! for reference.
//!
//! Run without `--bench` (as `cargo test --all-targets` does) every case
//! runs once, briefly, as a smoke test.

#[path = "roundtrip/decode_table.rs"]
mod decode_table;
#[path = "roundtrip/floor.rs"]
mod floor;
#[path = "roundtrip/join.rs"]
mod join;
#[path = "roundtrip/measure.rs"]
mod measure;
#[path = "roundtrip/mock.rs"]
mod mock;
#[path = "roundtrip/runtime_floor.rs"]
#[macro_use]
mod runtime_floor;
#[path = "roundtrip/usage.rs"]
mod usage;

use floor::Floor;
use measure::{Quartiles, Rounds, Subject};
use mock::{MockServer, BURST};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The cases: what one operation is, and the goal for adapter / floor.
struct Case {
    /// For `QMP_BENCH_CASES`.
    key: &'static str,
    name: &'static str,
    floor: &'static str,
    /// Operations per subject per round, and in the smoke test.
    ops: u64,
    smoke_ops: u64,
    goal: f64,
}

const SEQUENTIAL: Case = Case {
    key: "sequential",
    name: "sequential round trip (per command)",
    floor: "write a command line, read the reply line",
    ops: 2000,
    smoke_ops: 20,
    goal: 1.15,
};

/// Commands issued at once in the pipelined case (all of them; the client
/// keeps its default window on the wire and queues the rest).
const PIPELINED: Case = Case {
    key: "pipelined",
    name: "pipelined, all issued at once (per command)",
    floor: "1024 command lines in flight: write as many lines as replies read",
    ops: 4000,
    smoke_ops: 100,
    goal: 10.0,
};

const EVENTS: Case = Case {
    key: "events",
    name: "event throughput, bursts of 256 (per event)",
    floor: "write the trigger line, read the reply line and 256 event lines",
    ops: 600 * BURST as u64,
    smoke_ops: BURST as u64,
    goal: 3.0,
};

/// Against a real QEMU: `qemu-storage-daemon`, the commands all issued at
/// once; the floor keeps 1024 lines in flight, as the client's default
/// window does without OOB (QEMU reads the next command only once it has
/// answered one, so more in flight cost it nothing).
const QEMU: Case = Case {
    key: "qemu",
    name: "20,000 `query-version` at once, real qemu-storage-daemon (per command)",
    floor: "1024 command lines in flight: write as many lines as replies read",
    ops: 20_000,
    smoke_ops: 200,
    goal: 1.1,
};

/// The rounds of the real-QEMU case (each is 20,000 commands per subject).
const QEMU_ROUNDS: usize = 3;

/// The floor's depth in the real-QEMU case.
const QEMU_WINDOW: usize = WINDOW;

/// The command line of the real-QEMU case.
const VERSION_LINE: &[u8] = b"{\"execute\": \"query-version\", \"id\": 1}\n";

const CONNECT: Case = Case {
    key: "connect",
    name: "connect + negotiate (per connection)",
    floor: "connect, read the greeting line, write qmp_capabilities, read the reply line, close",
    ops: 200,
    smoke_ops: 5,
    goal: 1.2,
};

/// The pipelining depth of the floor: the adapters' default window
/// without OOB (`ClientConfig::max_in_flight`).
const WINDOW: usize = 1024;

// ---------------------------------------------------------------------------
// The floor's subjects.

struct FloorSequential(Floor);

impl Subject for FloorSequential {
    fn run(&mut self, ops: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..ops {
            self.0.write(floor::STATUS_LINE);
            self.0.read_lines(1);
        }
        start.elapsed()
    }
}

/// Keeps `window` copies of one command line in flight.
struct FloorPipelined {
    floor: Floor,
    line: usize,
    window: usize,
    /// `window` copies of the line.
    lines: Vec<u8>,
}

impl FloorPipelined {
    fn new(floor: Floor, line: &[u8], window: usize) -> Self {
        FloorPipelined {
            floor,
            line: line.len(),
            window,
            lines: line.repeat(window),
        }
    }
}

impl Subject for FloorPipelined {
    fn run(&mut self, ops: u64) -> Duration {
        let ops = ops as usize;
        let line = self.line;
        let start = Instant::now();
        let mut sent = self.window.min(ops);
        self.floor.write(&self.lines[..sent * line]);
        let mut done = 0;
        while done < ops {
            let n = self.floor.read_some_lines(sent - done);
            done += n;
            let more = n.min(ops - sent);
            if more > 0 {
                self.floor.write(&self.lines[..more * line]);
                sent += more;
            }
        }
        start.elapsed()
    }
}

struct FloorEvents(Floor);

impl Subject for FloorEvents {
    fn run(&mut self, ops: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..ops / BURST as u64 {
            self.0.write(floor::EVENTS_LINE);
            self.0.read_lines(1 + BURST);
        }
        start.elapsed()
    }
}

/// For reference: the events floor, plus checking each event line with
/// serde_json (into `IgnoredAny`: a full validation, nothing kept), the
/// least a client that does not trust its peer must do.
struct FloorEventsChecked(Floor);

impl Subject for FloorEventsChecked {
    fn run(&mut self, ops: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..ops / BURST as u64 {
            self.0.write(floor::EVENTS_LINE);
            self.0.read_lines_with(1 + BURST, |line| {
                let checked = serde_json::from_slice::<serde::de::IgnoredAny>(line);
                checked.expect("a JSON line");
            });
        }
        start.elapsed()
    }
}

struct FloorConnect(PathBuf);

impl Subject for FloorConnect {
    fn run(&mut self, ops: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..ops {
            drop(Floor::connect(&self.0));
        }
        start.elapsed()
    }
}

// ---------------------------------------------------------------------------
// The adapters' subjects: one body, compiled for each way of running it.
// Every future is `'static` (it owns a clone of the connection) so that it
// can also run as a spawned task.

macro_rules! adapter_subjects {
    ($module:ident, $qmp:ident, $block_on:path) => {
        mod $module {
            use super::join::join_all;
            use super::measure::Subject;
            use super::mock::{BURST, EVENTS_COMMAND};
            use std::hint::black_box;
            use std::path::{Path, PathBuf};
            use std::time::{Duration, Instant};
            use $qmp::{ConnectOptions, EventFilter, Notice, Qmp, Subscription};

            fn connect(path: &Path) -> Qmp {
                let path = path.to_path_buf();
                $block_on(async move { Qmp::connect_unix(path, ConnectOptions::default()).await })
                    .expect("connect to the mock")
            }

            pub struct Sequential(Qmp);

            impl Sequential {
                pub fn new(path: &Path) -> Self {
                    Sequential(connect(path))
                }
            }

            impl Subject for Sequential {
                fn run(&mut self, ops: u64) -> Duration {
                    let qmp = self.0.clone();
                    $block_on(async move {
                        let start = Instant::now();
                        for _ in 0..ops {
                            let status = qmp.call("query-status", &()).await;
                            black_box(status.expect("query-status"));
                        }
                        start.elapsed()
                    })
                }
            }

            /// Every command issued at once: the pipelined case
            /// (`query-status` to the mock) and the real-QEMU one
            /// (`query-version`).
            pub struct AllAtOnce(Qmp, &'static str);

            impl AllAtOnce {
                pub fn new(path: &Path, command: &'static str) -> Self {
                    AllAtOnce(connect(path), command)
                }
            }

            impl Subject for AllAtOnce {
                fn run(&mut self, ops: u64) -> Duration {
                    let (qmp, command) = (self.0.clone(), self.1);
                    $block_on(async move {
                        let start = Instant::now();
                        let calls = (0..ops)
                            .map(|_| std::future::IntoFuture::into_future(qmp.call(command, &())))
                            .collect();
                        for reply in join_all(calls).await {
                            black_box(reply.expect(command));
                        }
                        start.elapsed()
                    })
                }
            }

            pub struct Events(Qmp, Option<Subscription>);

            impl Events {
                pub fn new(path: &Path) -> Self {
                    let qmp = connect(path);
                    let events = qmp.subscribe(EventFilter::all());
                    Events(qmp, Some(events))
                }
            }

            impl Subject for Events {
                fn run(&mut self, ops: u64) -> Duration {
                    let qmp = self.0.clone();
                    let mut events = self.1.take().expect("the subscription");
                    let (took, events) = $block_on(async move {
                        let start = Instant::now();
                        for _ in 0..ops / BURST as u64 {
                            qmp.call(EVENTS_COMMAND, &()).await.expect(EVENTS_COMMAND);
                            for _ in 0..BURST {
                                match events.next().await {
                                    Some(Notice::Event(event)) => {
                                        black_box(event);
                                    }
                                    Some(Notice::Lagged(n)) => {
                                        panic!("the subscriber lagged by {n} events")
                                    }
                                    None => panic!("the subscription ended"),
                                }
                            }
                        }
                        (start.elapsed(), events)
                    });
                    self.1 = Some(events);
                    took
                }
            }

            pub struct Connect(pub PathBuf);

            impl Subject for Connect {
                fn run(&mut self, ops: u64) -> Duration {
                    let path = self.0.clone();
                    $block_on(async move {
                        let start = Instant::now();
                        for _ in 0..ops {
                            let qmp = Qmp::connect_unix(&path, ConnectOptions::default())
                                .await
                                .expect("connect to the mock");
                            drop(black_box(qmp));
                        }
                        start.elapsed()
                    })
                }
            }
        }
    };
}

fn tokio_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Runtime::new().expect("tokio runtime"))
}

/// tokio as `#[tokio::main]` sets it up: the multi-thread runtime with one
/// worker per core, the calls made from `block_on` (the body of `main`).
fn tokio_block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio_runtime().block_on(future)
}

/// The same runtime, the calls made from a task spawned on it (as a server
/// that handles each request in its own task does).
fn tokio_in_task<F>(future: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let runtime = tokio_runtime();
    runtime
        .block_on(runtime.spawn(future))
        .expect("the benchmark task")
}

adapter_subjects!(on_tokio, qmp_tokio, crate::tokio_block_on);
adapter_subjects!(in_tokio_task, qmp_tokio, crate::tokio_in_task);
adapter_subjects!(on_smol, qmp_smol, smol::block_on);

runtime_floor!(
    raw_tokio,
    tokio::net::UnixStream,
    tokio::io,
    crate::tokio_block_on
);
runtime_floor!(
    raw_tokio_task,
    tokio::net::UnixStream,
    tokio::io,
    crate::tokio_in_task
);
runtime_floor!(
    raw_smol,
    smol::net::unix::UnixStream,
    smol::io,
    smol::block_on
);

/// The subjects after the floor, as the table's columns.
const ADAPTERS: [&str; 3] = [
    "qmp-tokio, `block_on`",
    "qmp-tokio, spawned task",
    "qmp-smol, `smol::block_on`",
];

/// The per-column reference floor of the sequential and connect cases.
const RUNTIME_FLOOR: &str =
    "the same through the runtime's own Unix stream, called as the column calls (`runtime_floor.rs`)";
/// Its subjects, after the floor and the adapters: one per column.
const RUNTIME_FLOOR_SUBJECTS: [usize; ADAPTERS.len()] = [4, 5, 6];

// ---------------------------------------------------------------------------

struct Measured {
    case: &'static Case,
    rounds: Rounds,
    /// Second floors, for reference: what they are, and each column's
    /// subject.
    reference: Option<(&'static str, [usize; ADAPTERS.len()])>,
}

fn run_case(
    case: &'static Case,
    subjects: &mut [&mut dyn Subject],
    rounds: usize,
    smoke: bool,
) -> Measured {
    let ops = if smoke { case.smoke_ops } else { case.ops };
    let started = Instant::now();
    let rounds = measure::interleaved(subjects, ops, rounds);
    if !smoke {
        let per_op: Vec<String> = (0..subjects.len())
            .map(|i| {
                let usage = rounds.usage[i];
                format!(
                    "{:.0} ns ({:.0} ns CPU, {:.2} switches)",
                    rounds.median_ns(i),
                    usage.cpu_ticks as f64 * 1e7 / rounds.ops as f64,
                    usage.switches as f64 / rounds.ops as f64,
                )
            })
            .collect();
        eprintln!(
            "{}: {:.1} s; median wall time per op (process CPU time, context switches), floor first: {}",
            case.name,
            started.elapsed().as_secs_f64(),
            per_op.join("; "),
        );
    }
    Measured {
        case,
        rounds,
        reference: None,
    }
}

fn main() {
    let smoke = !std::env::args().any(|arg| arg == "--bench");
    let rounds = match std::env::var("QMP_BENCH_ROUNDS") {
        Ok(n) => n.parse().expect("QMP_BENCH_ROUNDS: a number"),
        Err(_) if smoke => 1,
        Err(_) => 25,
    };
    // QMP_BENCH_CASES=sequential,events runs only those (for profiling).
    let only = std::env::var("QMP_BENCH_CASES").ok();
    let wanted = |case: &Case| {
        only.as_deref()
            .is_none_or(|only| only.split(',').any(|key| key == case.key))
    };
    let started = Instant::now();
    // A mock per subject: a `MockQemu` serves its connections one after
    // the other, and every subject but the connect case's keeps its own
    // open. Kept until the end (dropping one stops it).
    let mut mocks = Vec::new();
    let mut mock = || {
        let server = MockServer::start();
        let path = server.path().to_path_buf();
        mocks.push(server);
        path
    };
    let mut results = Vec::new();

    // A case measured with each column's runtime floor beside it: the
    // floor, the three adapters, then the three raw runtimes (subjects
    // `RUNTIME_FLOOR_SUBJECTS`), each made as `module::$subject $make`.
    macro_rules! with_runtime_floors {
        ($case:expr, $floor:expr, $subject:ident $($make:tt)+) => {{
            let mut floor = $floor;
            let mut tokio = on_tokio::$subject $($make)+;
            let mut task = in_tokio_task::$subject $($make)+;
            let mut smol = on_smol::$subject $($make)+;
            let mut raw_tokio = raw_tokio::$subject $($make)+;
            let mut raw_task = raw_tokio_task::$subject $($make)+;
            let mut raw_smol = raw_smol::$subject $($make)+;
            let mut measured = run_case(
                $case,
                &mut [
                    &mut floor,
                    &mut tokio,
                    &mut task,
                    &mut smol,
                    &mut raw_tokio,
                    &mut raw_task,
                    &mut raw_smol,
                ],
                rounds,
                smoke,
            );
            measured.reference = Some((RUNTIME_FLOOR, RUNTIME_FLOOR_SUBJECTS));
            measured
        }};
    }

    if wanted(&SEQUENTIAL) {
        let floor = FloorSequential(Floor::connect(&mock()));
        results.push(with_runtime_floors!(
            &SEQUENTIAL,
            floor,
            Sequential::new(&mock())
        ));
    }
    if wanted(&PIPELINED) {
        let floor = Floor::connect(&mock());
        let mut floor = FloorPipelined::new(floor, floor::STATUS_LINE, WINDOW);
        let mut tokio = on_tokio::AllAtOnce::new(&mock(), "query-status");
        let mut task = in_tokio_task::AllAtOnce::new(&mock(), "query-status");
        let mut smol = on_smol::AllAtOnce::new(&mock(), "query-status");
        results.push(run_case(
            &PIPELINED,
            &mut [&mut floor, &mut tokio, &mut task, &mut smol],
            rounds,
            smoke,
        ));
    }
    if wanted(&EVENTS) {
        let mut floor = FloorEvents(Floor::connect(&mock()));
        let mut tokio = on_tokio::Events::new(&mock());
        let mut task = in_tokio_task::Events::new(&mock());
        let mut smol = on_smol::Events::new(&mock());
        let mut checked = FloorEventsChecked(Floor::connect(&mock()));
        let mut measured = run_case(
            &EVENTS,
            &mut [&mut floor, &mut tokio, &mut task, &mut smol, &mut checked],
            rounds,
            smoke,
        );
        let checked = ADAPTERS.len() + 1;
        measured.reference = Some((
            "the same, and each line checked with serde_json (`IgnoredAny`)",
            [checked; ADAPTERS.len()],
        ));
        results.push(measured);
    }
    // One daemon per subject (QEMU serves one client per monitor), kept
    // until the end: each is killed when dropped.
    let mut daemons = Vec::new();
    if wanted(&QEMU) {
        daemons = (0..4)
            .map_while(|_| qmp_tests::qemu::QemuProcess::storage_daemon(&[]))
            .collect();
        match &daemons[..] {
            [floor, tokio, task, smol] => {
                let floor = Floor::connect(floor.socket());
                let mut floor = FloorPipelined::new(floor, VERSION_LINE, QEMU_WINDOW);
                let mut tokio = on_tokio::AllAtOnce::new(tokio.socket(), "query-version");
                let mut task = in_tokio_task::AllAtOnce::new(task.socket(), "query-version");
                let mut smol = on_smol::AllAtOnce::new(smol.socket(), "query-version");
                results.push(run_case(
                    &QEMU,
                    &mut [&mut floor, &mut tokio, &mut task, &mut smol],
                    rounds.min(QEMU_ROUNDS),
                    smoke,
                ));
            }
            _ => eprintln!("roundtrip: no qemu-storage-daemon, the real-QEMU case is skipped"),
        }
    }
    if wanted(&CONNECT) {
        // Hundreds of connections in a row per subject, each served once
        // the one before it has closed.
        let floor = FloorConnect(mock());
        results.push(with_runtime_floors!(&CONNECT, floor, Connect(mock())));
    }

    if smoke {
        println!("roundtrip: every case ran once (pass --bench to measure)");
        return;
    }
    let decode = match std::env::var("QMP_BENCH_DECODE_LOG") {
        Ok(log) => match std::fs::read_to_string(&log)
            .map_err(|e| e.to_string())
            .and_then(|text| decode_table::parse(&text))
        {
            Ok(rows) => rows,
            Err(e) => {
                eprintln!("{log}: {e}");
                Vec::new()
            }
        },
        Err(_) => Vec::new(),
    };
    print_table(&results, &decode, rounds);
    drop(daemons);
    eprintln!("roundtrip: {:.0} s in all", started.elapsed().as_secs_f64());
}

fn ratio_cell(q: Quartiles) -> String {
    format!("**{:.2}×** ({:.2}–{:.2})", q.median, q.q1, q.q3)
}

fn met(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "NO"
    }
}

fn print_table(results: &[Measured], decode: &[decode_table::DecodeRow], rounds: usize) {
    println!();
    println!(
        "Ratios from one run. Round trips: adapter time / floor time per operation, median of \
         {rounds} interleaved rounds (quartiles in brackets), lower is better. Decode: qmp-proto \
         messages/s / baseline messages/s, higher is better (sans-IO: the same code under every \
         runtime)."
    );
    println!();
    println!(
        "| case | floor (measured in the same run) | floor per op | {} | goal | met |",
        ADAPTERS.join(" | ")
    );
    println!(
        "| --- | --- | ---: |{} ---: | --- |",
        " ---: |".repeat(ADAPTERS.len())
    );
    for m in results {
        let ratios: Vec<Quartiles> = (1..=ADAPTERS.len()).map(|i| m.rounds.ratio(i, 0)).collect();
        let cells: Vec<String> = ratios.iter().map(|q| ratio_cell(*q)).collect();
        let verdicts: Vec<&str> = ratios
            .iter()
            .map(|q| met(q.median <= m.case.goal))
            .collect();
        println!(
            "| {} | {} | {:.2} µs | {} | ≤ {}× | {} |",
            m.case.name,
            m.case.floor,
            m.rounds.median_ns(0) / 1000.0,
            cells.join(" | "),
            m.case.goal,
            verdicts.join(", "),
        );
        if let Some((what, references)) = m.reference {
            let cells: Vec<String> = (1..=ADAPTERS.len())
                .zip(references)
                .map(|(i, reference)| ratio_cell(m.rounds.ratio(i, reference)))
                .collect();
            let mut per_op: Vec<String> = references
                .iter()
                .map(|&r| format!("{:.2}", m.rounds.median_ns(r) / 1000.0))
                .collect();
            per_op.dedup();
            println!(
                "| {}, for reference | {} | {} µs | {} | — | — |",
                m.case.name,
                what,
                per_op.join(" / "),
                cells.join(" | "),
            );
        }
    }
    for row in decode {
        let cells = vec![format!("**{:.2}**", row.ratio); ADAPTERS.len()];
        println!(
            "| decode {} | serde_json `RawValue` struct per line | — | {} | ≥ {} | {} |",
            row.capture,
            cells.join(" | "),
            row.goal,
            met(row.ratio >= row.goal),
        );
    }
}
