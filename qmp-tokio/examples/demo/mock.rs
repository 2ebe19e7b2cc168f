//! The demo's stand-in for `qemu-storage-daemon`: `qmp_proto::Server` plus
//! a toy block layer, served over a blocking socket on its own thread.
//!
//! It knows the commands the demo runs and answers them as QEMU 10.0 does,
//! events included. A backup job has no clock to run on: it advances a
//! quarter of its length each time its progress is queried, so the demo's
//! progress bar moves and the session ends after a few polls.

use qmp_proto::{
    Command, ErrorClass, QmpError, Server, ServerConfig, ServerOutput, Timestamp, Version,
    VersionTriple,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{SystemTime, UNIX_EPOCH};

/// The commands the mock answers; anything else is `CommandNotFound`.
const COMMANDS: [&str; 10] = [
    "qmp_capabilities",
    "query-version",
    "query-commands",
    "query-jobs",
    "query-named-block-nodes",
    "blockdev-add",
    "blockdev-create",
    "blockdev-backup",
    "job-dismiss",
    "quit",
];

/// Serves one client on `stream` until it disconnects or sends `quit`.
pub fn serve(mut stream: UnixStream) {
    let mut mock = MockDaemon::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while let Some(bytes) = mock.server.poll_transmit() {
            if stream.write_all(&bytes).is_err() {
                return;
            }
        }
        if mock.quit {
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => mock.server.receive(&buf[..n]),
        }
        while let Some(output) = mock.server.poll_output() {
            match output {
                ServerOutput::Command(command) => mock.answer(&command),
                ServerOutput::Negotiated { .. } => {}
                ServerOutput::End(_) => return,
            }
        }
    }
}

struct Node {
    name: String,
    driver: String,
    size: u64,
}

struct Job {
    id: String,
    kind: &'static str,
    status: &'static str,
    current: u64,
    total: u64,
}

struct MockDaemon {
    server: Server,
    nodes: Vec<Node>,
    jobs: Vec<Job>,
    quit: bool,
}

impl Default for MockDaemon {
    fn default() -> Self {
        let version = Version::new(
            VersionTriple {
                major: 10,
                minor: 0,
                micro: 2,
            },
            "qmp-proto mock",
        );
        MockDaemon {
            server: Server::new(ServerConfig::default().version(version)),
            nodes: Vec::new(),
            jobs: Vec::new(),
            quit: false,
        }
    }
}

#[derive(Deserialize)]
struct BlockdevAdd {
    driver: String,
    #[serde(rename = "node-name")]
    node_name: String,
    #[serde(default)]
    size: u64,
}

#[derive(Deserialize)]
struct BlockdevCreate {
    #[serde(rename = "job-id")]
    job_id: String,
}

#[derive(Deserialize)]
struct BlockdevBackup {
    #[serde(rename = "job-id")]
    job_id: String,
    device: String,
}

#[derive(Deserialize)]
struct JobId {
    id: String,
}

impl MockDaemon {
    fn answer(&mut self, command: &Command) {
        let result = match command.name.as_str() {
            "query-version" => Ok(json!({
                "qemu": {"major": 10, "minor": 0, "micro": 2},
                "package": "qmp-proto mock",
            })),
            "query-commands" => Ok(Value::Array(
                COMMANDS
                    .iter()
                    .map(|name| json!({ "name": name }))
                    .collect(),
            )),
            "query-named-block-nodes" => Ok(self
                .nodes
                .iter()
                .map(|n| json!({"node-name": n.name, "drv": n.driver}))
                .collect()),
            "blockdev-add" => self.blockdev_add(command),
            "blockdev-create" => self.blockdev_create(command),
            "blockdev-backup" => self.blockdev_backup(command),
            "query-jobs" => Ok(self.query_jobs()),
            "job-dismiss" => self.job_dismiss(command),
            "quit" => {
                self.quit = true;
                Ok(json!({}))
            }
            name => Err(QmpError::new(
                ErrorClass::CommandNotFound,
                format!("The command {name} has not been found"),
            )),
        };
        match result {
            Ok(value) => {
                // Values built above always serialize.
                self.server.reply_ok(command, &value).ok();
            }
            Err(error) => self.server.reply_error(command, &error),
        }
        self.finish_jobs();
    }

    fn blockdev_add(&mut self, command: &Command) -> Result<Value, QmpError> {
        let args: BlockdevAdd = arguments(command)?;
        if self.nodes.iter().any(|n| n.name == args.node_name) {
            return Err(QmpError::generic(format!(
                "Duplicate nodes with node-name='{}'",
                args.node_name
            )));
        }
        self.nodes.push(Node {
            name: args.node_name,
            driver: args.driver,
            size: args.size,
        });
        Ok(json!({}))
    }

    /// Image creation is instant: the job runs to `concluded` at once and
    /// waits there to be dismissed, as QEMU's `blockdev-create` jobs do.
    fn blockdev_create(&mut self, command: &Command) -> Result<Value, QmpError> {
        let args: BlockdevCreate = arguments(command)?;
        self.start_job(args.job_id, "create", 1)?;
        if let Some(job) = self.jobs.last_mut() {
            job.current = 1;
        }
        Ok(json!({}))
    }

    fn blockdev_backup(&mut self, command: &Command) -> Result<Value, QmpError> {
        let args: BlockdevBackup = arguments(command)?;
        let Some(source) = self.nodes.iter().find(|n| n.name == args.device) else {
            return Err(QmpError::generic(format!(
                "Cannot find device='{}' nor node-name='{}'",
                args.device, args.device
            )));
        };
        let size = source.size;
        self.start_job(args.job_id, "backup", size)?;
        Ok(json!({}))
    }

    fn start_job(&mut self, id: String, kind: &'static str, total: u64) -> Result<(), QmpError> {
        if self.jobs.iter().any(|job| job.id == id) {
            return Err(QmpError::generic(format!("Job ID '{id}' already in use")));
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

    /// Reports progress, then moves each running backup a quarter on.
    fn query_jobs(&mut self) -> Value {
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
        report
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
                self.event("BLOCK_JOB_COMPLETED", &data);
            }
            self.job_status_change(&id, "concluded");
            if kind == "backup" {
                self.job_status_change(&id, "null");
                self.jobs.retain(|job| job.id != id);
            }
        }
    }

    fn job_dismiss(&mut self, command: &Command) -> Result<Value, QmpError> {
        let args: JobId = arguments(command)?;
        match self.jobs.iter().position(|job| job.id == args.id) {
            Some(at) if self.jobs[at].status == "concluded" => {
                self.jobs.remove(at);
                self.job_status_change(&args.id, "null");
                Ok(json!({}))
            }
            Some(_) => Err(QmpError::generic(format!(
                "Job '{}' in state 'running' cannot accept command verb 'dismiss'",
                args.id
            ))),
            None => Err(QmpError::generic(format!("Job not found: {}", args.id))),
        }
    }

    fn job_status_change(&mut self, id: &str, status: &str) {
        self.event("JOB_STATUS_CHANGE", &json!({"id": id, "status": status}));
    }

    fn event(&mut self, name: &str, data: &Value) {
        // Serializing a `Value` cannot fail.
        self.server.send_event(name, data, now()).ok();
    }
}

/// The command's arguments as `T`, or QEMU's kind of error for bad ones.
fn arguments<T: for<'de> Deserialize<'de>>(command: &Command) -> Result<T, QmpError> {
    command
        .decode_arguments()
        .map_err(|e| QmpError::generic(format!("Invalid parameters: {e}")))
}

fn now() -> Timestamp {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: since_epoch.as_secs() as i64,
        microseconds: i64::from(since_epoch.subsec_micros()),
    }
}
