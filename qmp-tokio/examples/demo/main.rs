//! The library at work, start to finish: `cargo run -p qmp-tokio --example demo`.
//!
//! With `qemu-storage-daemon` installed, the demo starts a throwaway one (a
//! child process with its socket and images in a private temporary
//! directory), connects, prints the greeting, runs a few commands, creates
//! a qcow2 image with two `blockdev-create` jobs, follows a rate-limited
//! `blockdev-backup` job to its end with a progress bar, and shuts the
//! daemon down with `quit`. Without QEMU (or with `--mock`) the same session
//! runs against a mock QEMU built on `qmp_mock::MockQemu` (see `mock.rs`),
//! and the demo says so.
//!
//! Nothing is left behind: the daemon is killed and reaped, and the
//! directory removed, however the demo ends (error, panic, or Ctrl-C,
//! which also reaches the daemon as it shares the demo's process group).
//!
//! The waits are race-free: each job is followed from a cursor taken
//! *before* the command that starts it, so an event that arrives before the
//! wait begins is still found.

#![forbid(unsafe_code)]

mod mock;

use qmp_tokio::typed::commands::{
    BlockdevBackup, BlockdevCreate, JobDismiss, JobInfo, QueryCommands, QueryJobs,
};
use qmp_tokio::typed::events::{BlockJobCompleted, JobStatusChange};
use qmp_tokio::typed::types::{JobStatus, MirrorSyncMode};
use qmp_tokio::{ConnectOptions, Qmp};
use serde::Deserialize;
use serde_json::{json, Value};
use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::process::{Child, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The QEMU binary the demo drives.
const STORAGE_DAEMON: &str = "qemu-storage-daemon";
/// Size of the backup source and target.
const DISK_SIZE: u64 = 32 << 20;
/// The backup job's rate limit, so that its progress can be watched.
const BACKUP_SPEED: u64 = 16 << 20;
/// Bound on every wait of the demo: nothing can hang it.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

#[tokio::main]
async fn main() -> ExitCode {
    let choice = match std::env::args().nth(1).as_deref() {
        None => PeerChoice::Auto,
        Some("--mock") => PeerChoice::Mock,
        Some(_) => {
            eprintln!("usage: demo [--mock]");
            return ExitCode::FAILURE;
        }
    };
    let mut out = io::stdout();
    tokio::select! {
        result = run(choice, &mut out) => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("demo failed: {error}");
                ExitCode::FAILURE
            }
        },
        // Dropping `run` drops the peer, which kills QEMU and removes the
        // temporary directory.
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: QEMU stopped, temporary files removed");
            ExitCode::FAILURE
        }
    }
}

/// Which QEMU the demo talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerChoice {
    /// A real `qemu-storage-daemon` if installed, else the mock.
    Auto,
    /// The built-in mock, even where QEMU is installed.
    Mock,
}

/// What can end the demo early.
#[derive(Debug)]
pub enum DemoError {
    /// QEMU could not be started or reached.
    Start(String),
    /// A QMP call failed.
    Qmp(&'static str, qmp_tokio::Error),
    /// A reply did not have the expected shape.
    Decode(&'static str, serde_json::Error),
    /// Writing the demo's output failed.
    Output(io::Error),
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DemoError::Start(why) => write!(f, "cannot start QEMU: {why}"),
            DemoError::Qmp(step, e) => write!(f, "{step}: {e}"),
            DemoError::Decode(step, e) => write!(f, "{step}: unexpected reply: {e}"),
            DemoError::Output(e) => write!(f, "cannot write output: {e}"),
        }
    }
}

impl std::error::Error for DemoError {}

impl From<io::Error> for DemoError {
    fn from(e: io::Error) -> Self {
        DemoError::Output(e)
    }
}

/// The peer the session talks to. Dropping it stops QEMU (or the mock) and
/// removes every file the demo made.
enum Peer {
    Real {
        child: Child,
        /// Removed, with the socket and images, when dropped.
        _dir: tempfile::TempDir,
    },
    /// The mock, until it is closed (dropping it stops it too).
    Mock(Option<qmp_mock::MockQemu>),
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Peer::Real { child, .. } = self {
            // After a clean `quit` this finds the process already gone.
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// The whole demo minus process concerns, writing to `out`; the test in
/// `tests/demo.rs` calls it.
pub async fn run(choice: PeerChoice, out: &mut impl Write) -> Result<(), DemoError> {
    let (mut peer, qmp, images) = match choice {
        PeerChoice::Auto => match start_storage_daemon()? {
            Some((child, dir)) => {
                let socket = dir.path().join("qmp.sock");
                let images = dir.path().to_owned();
                let mut peer = Peer::Real { child, _dir: dir };
                if let Peer::Real { child, .. } = &peer {
                    writeln!(
                        out,
                        "started a throwaway {STORAGE_DAEMON} (pid {}, socket {})",
                        child.id(),
                        socket.display()
                    )?;
                }
                let qmp = connect_when_listening(&mut peer, &socket).await?;
                (peer, qmp, images)
            }
            None => {
                writeln!(
                    out,
                    "{STORAGE_DAEMON} is not installed: using the built-in mock QEMU (qmp-mock)"
                )?;
                start_mock().await?
            }
        },
        PeerChoice::Mock => {
            writeln!(out, "using the built-in mock QEMU (qmp-mock)")?;
            start_mock().await?
        }
    };
    session(&qmp, &images, out).await?;
    // `quit` is answered, then QEMU closes the connection and exits.
    call(&qmp, "quit", json!({})).await?;
    match &mut peer {
        Peer::Real { child, .. } => {
            let status = child.wait().map_err(|e| DemoError::Start(e.to_string()))?;
            writeln!(out, "QEMU has exited ({status}); cleaning up")?;
        }
        Peer::Mock(mock) => {
            // After `quit` the mock stops by itself: this waits for its
            // thread. An I/O error there, after the last reply, changes
            // nothing for the demo.
            if let Some(mock) = mock.take() {
                mock.close().ok();
            }
            writeln!(out, "the mock has exited")?;
        }
    }
    Ok(())
}

/// Starts `qemu-storage-daemon` with a QMP monitor in a fresh temporary
/// directory, or `None` if it is not installed.
fn start_storage_daemon() -> Result<Option<(Child, tempfile::TempDir)>, DemoError> {
    let dir = tempfile::tempdir().map_err(|e| DemoError::Start(e.to_string()))?;
    let socket = dir.path().join("qmp.sock");
    let spawned = std::process::Command::new(STORAGE_DAEMON)
        .arg("--chardev")
        .arg(format!(
            "socket,id=qmp0,path={},server=on,wait=off",
            socket.display()
        ))
        .args(["--monitor", "chardev=qmp0"])
        .stdin(Stdio::null())
        .spawn();
    match spawned {
        Ok(child) => Ok(Some((child, dir))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DemoError::Start(format!("{STORAGE_DAEMON}: {e}"))),
    }
}

/// Connects once QEMU listens. QEMU creates the socket during startup and
/// says nothing when it is ready, so the demo retries "nothing listens
/// there" until then (and gives up if QEMU exits or takes too long).
async fn connect_when_listening(peer: &mut Peer, socket: &Path) -> Result<Qmp, DemoError> {
    let started = Instant::now();
    loop {
        match Qmp::connect_unix(socket, ConnectOptions::default()).await {
            Ok(qmp) => return Ok(qmp),
            Err(e) if e.is_socket_not_available() && started.elapsed() < STEP_TIMEOUT => {
                if let Peer::Real { child, .. } = peer {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(DemoError::Start(format!("QEMU exited: {status}")));
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(DemoError::Qmp("connect", e)),
        }
    }
}

/// Starts the mock on one end of a socket pair and connects to the other.
async fn start_mock() -> Result<(Peer, Qmp, std::path::PathBuf), DemoError> {
    let (ours, mock) = mock::start().map_err(|e| DemoError::Start(e.to_string()))?;
    let qmp = Qmp::from_unix_stream(ours, ConnectOptions::default())
        .await
        .map_err(|e| DemoError::Qmp("connect to the mock", e))?;
    // The mock makes no files: image paths are only names to it.
    Ok((
        Peer::Mock(Some(mock)),
        qmp,
        std::path::PathBuf::from("/mock"),
    ))
}

/// One command with JSON arguments, its failure named after the command.
async fn call(qmp: &Qmp, name: &'static str, arguments: Value) -> Result<Value, DemoError> {
    qmp.call(name, &arguments)
        .decode()
        .await
        .map_err(|e| DemoError::Qmp(name, e))
}

/// The session itself, the same against QEMU and the mock.
async fn session(qmp: &Qmp, images: &Path, out: &mut impl Write) -> Result<(), DemoError> {
    let greeting = qmp.greeting();
    let capabilities: Vec<&str> = greeting.capabilities.iter().map(|c| c.as_str()).collect();
    writeln!(
        out,
        "connected: QEMU {}, capabilities [{}], out-of-band {}",
        greeting.version,
        capabilities.join(", "),
        if qmp.oob_enabled() { "on" } else { "off" }
    )?;

    let commands = qmp
        .execute(&QueryCommands)
        .await
        .map_err(|e| DemoError::Qmp("query-commands", e))?;
    writeln!(
        out,
        "query-commands: QEMU knows {} commands",
        commands.len()
    )?;

    // A source that reads as zeroes, and a qcow2 image to back it up to.
    call(
        qmp,
        "blockdev-add",
        json!({"driver": "null-co", "node-name": "source", "size": DISK_SIZE, "read-zeroes": true}),
    )
    .await?;
    writeln!(
        out,
        "blockdev-add: node 'source' (null-co, {} MiB)",
        DISK_SIZE >> 20
    )?;

    let image = images.join("backup.qcow2");
    let image = image.to_string_lossy();
    let create_file = BlockdevCreate::new("create-file", "file")
        .option("filename", image.as_ref())
        .option("size", 0);
    run_create_job(qmp, create_file, out).await?;
    call(
        qmp,
        "blockdev-add",
        json!({"driver": "file", "node-name": "target-file", "filename": image}),
    )
    .await?;
    let create_qcow2 = BlockdevCreate::new("create-qcow2", "qcow2")
        .option("file", "target-file")
        .option("size", DISK_SIZE);
    run_create_job(qmp, create_qcow2, out).await?;
    call(
        qmp,
        "blockdev-add",
        json!({"driver": "qcow2", "node-name": "target", "file": "target-file"}),
    )
    .await?;
    writeln!(out, "blockdev-add: node 'target' (qcow2 on {image})")?;

    follow_backup(qmp, out).await?;

    let nodes = call(qmp, "query-named-block-nodes", json!({})).await?;
    let nodes: Vec<NamedNode> = serde_json::from_value(nodes)
        .map_err(|e| DemoError::Decode("query-named-block-nodes", e))?;
    let names: Vec<String> = nodes
        .iter()
        .map(|n| format!("{} ({})", n.node_name, n.drv))
        .collect();
    writeln!(out, "block nodes: {}", names.join(", "))?;
    Ok(())
}

/// One entry of `query-named-block-nodes`, the fields the demo shows.
#[derive(Deserialize)]
struct NamedNode {
    #[serde(rename = "node-name")]
    node_name: String,
    drv: String,
}

/// Runs `blockdev-create`, follows its job to `concluded` through its
/// JOB_STATUS_CHANGE events, prints the statuses it went through, and
/// dismisses it.
async fn run_create_job(
    qmp: &Qmp,
    create: BlockdevCreate,
    out: &mut impl Write,
) -> Result<(), DemoError> {
    let id = create.job_id.clone();
    let cursor = qmp.cursor();
    qmp.execute(&create)
        .await
        .map_err(|e| DemoError::Qmp("blockdev-create", e))?;
    let concluded = JobStatusChange::reaching(id.as_str(), JobStatus::Concluded);
    qmp.wait_for(cursor, &concluded, STEP_TIMEOUT)
        .await
        .map_err(|e| DemoError::Qmp("waiting for blockdev-create", e))?;
    writeln!(
        out,
        "blockdev-create ({}): job '{id}' went {}",
        create.options.driver,
        job_statuses(qmp, cursor, &id).join(" -> ")
    )?;
    qmp.execute(&JobDismiss::new(id.as_str()))
        .await
        .map_err(|e| DemoError::Qmp("job-dismiss", e))?;
    Ok(())
}

/// The statuses job `id` announced since `cursor`, from the event history.
fn job_statuses(qmp: &Qmp, cursor: qmp_tokio::Cursor, id: &str) -> Vec<String> {
    qmp.find(cursor, &JobStatusChange::for_job(id))
        .into_iter()
        .map(|change| change.data.status.to_string())
        .collect()
}

/// Starts a rate-limited backup and draws its progress until it concludes.
async fn follow_backup(qmp: &Qmp, out: &mut impl Write) -> Result<(), DemoError> {
    let cursor = qmp.cursor();
    let mut backup = BlockdevBackup::new("source", "target", MirrorSyncMode::Full);
    backup.job_id = Some("backup".into());
    backup.speed = Some(BACKUP_SPEED as i64);
    qmp.execute(&backup)
        .await
        .map_err(|e| DemoError::Qmp("blockdev-backup", e))?;
    writeln!(
        out,
        "blockdev-backup: job 'backup' started at {} MiB/s",
        BACKUP_SPEED >> 20
    )?;
    let concluded = JobStatusChange::reaching("backup", JobStatus::Concluded);
    let started = Instant::now();
    loop {
        // QEMU sends no progress events: between status events, ask.
        let tick = Duration::from_millis(250);
        match qmp.wait_for(cursor, &concluded, tick).await {
            Ok(_) => break,
            Err(qmp_tokio::Error::Timeout) if started.elapsed() < STEP_TIMEOUT => {}
            Err(e) => return Err(DemoError::Qmp("waiting for the backup", e)),
        }
        let jobs = qmp
            .execute(&QueryJobs)
            .await
            .map_err(|e| DemoError::Qmp("query-jobs", e))?;
        if let Some(job) = jobs.iter().find(|job| job.id == "backup") {
            writeln!(out, "  {}", progress_bar(job))?;
        }
    }
    for completed in qmp.find(cursor, &BlockJobCompleted::for_device("backup")) {
        let data = completed.data;
        writeln!(
            out,
            "BLOCK_JOB_COMPLETED: job '{}' copied {} of {} MiB",
            data.device,
            data.offset >> 20,
            data.len >> 20
        )?;
    }
    let statuses = job_statuses(qmp, cursor, "backup");
    writeln!(
        out,
        "blockdev-backup: job 'backup' went {}",
        statuses.join(" -> ")
    )?;
    Ok(())
}

/// `[#########-----------]  45%  14/32 MiB  running`
fn progress_bar(job: &JobInfo) -> String {
    const WIDTH: u64 = 30;
    let total = job.total_progress.max(1) as u64;
    let done = (job.current_progress.max(0) as u64).min(total);
    let filled = (done * WIDTH / total) as usize;
    format!(
        "[{}{}] {:3}%  {}/{} MiB  {}",
        "#".repeat(filled),
        "-".repeat(WIDTH as usize - filled),
        done * 100 / total,
        done >> 20,
        total >> 20,
        job.status
    )
}
