//! The demo's stand-in for `qemu-storage-daemon`: `qmp_mock::MockQemu`
//! with a handler per block command, over a toy block layer they share.
//!
//! The handlers answer as QEMU 10.0 does, events included; the mock's
//! built-ins answer the rest (`query-version`, `query-commands`, `quit`...).
//! A backup job has no clock to run on: it advances a quarter of its length
//! each time its progress is queried, so the demo's progress bar moves and
//! the session ends after a few polls.

use qmp_mock::{Action, Command, ErrorClass, MockQemu};
use serde::Deserialize;
use serde_json::{json, Value};
use std::io;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, PoisonError};

/// Starts the mock on one end of a socket pair, returning the other end.
pub fn start() -> io::Result<(UnixStream, MockQemu)> {
    let block = Arc::new(Mutex::new(BlockLayer::default()));
    MockQemu::builder()
        .version(10, 0, 2)
        .on(
            "query-named-block-nodes",
            handler(&block, BlockLayer::named_nodes),
        )
        .on("query-jobs", handler(&block, BlockLayer::query_jobs))
        .on("blockdev-add", handler(&block, BlockLayer::blockdev_add))
        .on(
            "blockdev-create",
            handler(&block, BlockLayer::blockdev_create),
        )
        .on(
            "blockdev-backup",
            handler(&block, BlockLayer::blockdev_backup),
        )
        .on("job-dismiss", handler(&block, BlockLayer::job_dismiss))
        .pair()
}

/// What a block command does: its `return`, or a `GenericError`'s text.
type Run = fn(&mut BlockLayer, &Command) -> Result<Value, String>;

/// The handler of a command that `run` carries out on the shared `block`
/// layer: the events it raised, its reply, then the events of the jobs it
/// let finish (as QEMU's jobs finish after the command that drove them).
fn handler(
    block: &Arc<Mutex<BlockLayer>>,
    run: Run,
) -> impl FnMut(&Command) -> Vec<Action> + Send + 'static {
    let block = Arc::clone(block);
    move |command| {
        // No handler panics while holding the lock, so a poisoned one
        // still holds a consistent state.
        let mut block = block.lock().unwrap_or_else(PoisonError::into_inner);
        let reply = match run(&mut block, command) {
            Ok(value) => Action::ok(value),
            Err(desc) => Action::error(ErrorClass::GenericError, desc),
        };
        let mut actions = std::mem::take(&mut block.events);
        actions.push(reply);
        block.finish_jobs();
        actions.append(&mut block.events);
        actions
    }
}

/// A block node, as `blockdev-add` made it.
struct Node {
    name: String,
    driver: String,
    size: u64,
}

/// A job, from `running` until it is gone.
struct Job {
    id: String,
    kind: &'static str,
    status: &'static str,
    current: u64,
    total: u64,
}

/// The toy block layer: nodes, jobs, and the events not yet sent.
#[derive(Default)]
struct BlockLayer {
    nodes: Vec<Node>,
    jobs: Vec<Job>,
    events: Vec<Action>,
}

/// The arguments of `blockdev-add` the mock reads.
#[derive(Deserialize)]
struct BlockdevAdd {
    driver: String,
    #[serde(rename = "node-name")]
    node_name: String,
    #[serde(default)]
    size: u64,
}

/// The arguments of `blockdev-create` the mock reads.
#[derive(Deserialize)]
struct BlockdevCreate {
    #[serde(rename = "job-id")]
    job_id: String,
}

/// The arguments of `blockdev-backup` the mock reads.
#[derive(Deserialize)]
struct BlockdevBackup {
    #[serde(rename = "job-id")]
    job_id: String,
    device: String,
}

/// The argument of `job-dismiss`.
#[derive(Deserialize)]
struct JobId {
    id: String,
}

impl BlockLayer {
    /// `query-named-block-nodes`: each node's name and driver.
    fn named_nodes(&mut self, _: &Command) -> Result<Value, String> {
        Ok(self
            .nodes
            .iter()
            .map(|n| json!({"node-name": n.name, "drv": n.driver}))
            .collect())
    }

    /// `blockdev-add`: a new node, its name unique.
    fn blockdev_add(&mut self, command: &Command) -> Result<Value, String> {
        let args: BlockdevAdd = arguments(command)?;
        if self.nodes.iter().any(|n| n.name == args.node_name) {
            return Err(format!(
                "Duplicate nodes with node-name='{}'",
                args.node_name
            ));
        }
        self.nodes.push(Node {
            name: args.node_name,
            driver: args.driver,
            size: args.size,
        });
        Ok(json!({}))
    }

    /// `blockdev-create`. Image creation is instant: the job runs to `concluded` at once and
    /// waits there to be dismissed, as QEMU's `blockdev-create` jobs do.
    fn blockdev_create(&mut self, command: &Command) -> Result<Value, String> {
        let args: BlockdevCreate = arguments(command)?;
        self.start_job(args.job_id, "create", 1)?;
        if let Some(job) = self.jobs.last_mut() {
            job.current = 1;
        }
        Ok(json!({}))
    }

    /// `blockdev-backup`: a job as long as its source node.
    fn blockdev_backup(&mut self, command: &Command) -> Result<Value, String> {
        let args: BlockdevBackup = arguments(command)?;
        let Some(source) = self.nodes.iter().find(|n| n.name == args.device) else {
            return Err(format!(
                "Cannot find device='{}' nor node-name='{}'",
                args.device, args.device
            ));
        };
        let size = source.size;
        self.start_job(args.job_id, "backup", size)?;
        Ok(json!({}))
    }

    /// Starts job `id`, announcing `created` and `running`.
    fn start_job(&mut self, id: String, kind: &'static str, total: u64) -> Result<(), String> {
        if self.jobs.iter().any(|job| job.id == id) {
            return Err(format!("Job ID '{id}' already in use"));
        }
        for status in ["created", "running"] {
            self.job_status_change(&id, status);
        }
        self.jobs.push(Job {
            id,
            kind,
            status: "running",
            current: 0,
            total,
        });
        Ok(())
    }

    /// `query-jobs`: reports progress, then moves each running job a
    /// quarter on.
    fn query_jobs(&mut self, _: &Command) -> Result<Value, String> {
        let report = self
            .jobs
            .iter()
            .map(|job| {
                json!({"id": job.id, "type": job.kind, "status": job.status,
                       "current-progress": job.current, "total-progress": job.total})
            })
            .collect();
        for job in &mut self.jobs {
            if job.status == "running" {
                job.current = (job.current + job.total / 4).min(job.total);
            }
        }
        Ok(report)
    }

    /// Runs every job that has done its work through the end of its life:
    /// create jobs wait to be dismissed, backups dismiss themselves.
    fn finish_jobs(&mut self) {
        let mut finished = Vec::new();
        for job in &mut self.jobs {
            if job.status == "running" && job.current >= job.total {
                job.status = "concluded";
                finished.push((job.id.clone(), job.kind, job.total));
            }
        }
        for (id, kind, total) in finished {
            for status in ["waiting", "pending"] {
                self.job_status_change(&id, status);
            }
            if kind == "backup" {
                let data = json!({"device": id, "len": total, "offset": total,
                                  "speed": 0, "type": kind});
                self.events.push(Action::event("BLOCK_JOB_COMPLETED", data));
            }
            self.job_status_change(&id, "concluded");
            if kind == "backup" {
                self.job_status_change(&id, "null");
                self.jobs.retain(|job| job.id != id);
            }
        }
    }

    /// `job-dismiss`: removes a concluded job.
    fn job_dismiss(&mut self, command: &Command) -> Result<Value, String> {
        let args: JobId = arguments(command)?;
        match self.jobs.iter().position(|job| job.id == args.id) {
            Some(at) if self.jobs[at].status == "concluded" => {
                self.jobs.remove(at);
                self.job_status_change(&args.id, "null");
                Ok(json!({}))
            }
            Some(_) => Err(format!(
                "Job '{}' in state 'running' cannot accept command verb 'dismiss'",
                args.id
            )),
            None => Err(format!("Job not found: {}", args.id)),
        }
    }

    /// Queues a JOB_STATUS_CHANGE event.
    fn job_status_change(&mut self, id: &str, status: &str) {
        let data = json!({"id": id, "status": status});
        self.events.push(Action::event("JOB_STATUS_CHANGE", data));
    }
}

/// The command's arguments as `T`, or QEMU's kind of error for bad ones.
fn arguments<T: for<'de> Deserialize<'de>>(command: &Command) -> Result<T, String> {
    command
        .decode_arguments()
        .map_err(|e| format!("Invalid parameters: {e}"))
}
