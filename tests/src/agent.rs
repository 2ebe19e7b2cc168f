//! A real `qemu-ga` on this host for the integration tests ([`HostAgent`]);
//! the mock agent is `qmp_mock::MockAgent`.
//!
//! `qemu-ga -m unix-listen` on the host acts on the host itself, so every
//! agent started here gets an allow-list (`-a`) of harmless commands, and
//! the tests never send shutdown, suspend, set-time, fsfreeze or password
//! commands to it.

use rustix::process::{kill_process, Pid, Signal};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};

/// The guest agent binary (Debian's `qemu-guest-agent`).
pub const AGENT: &str = "qemu-ga";

/// The commands the host agent may run: nothing that changes the host.
pub const HARMLESS: &[&str] = &[
    "guest-sync-delimited",
    "guest-sync",
    "guest-ping",
    "guest-info",
    "guest-get-osinfo",
    "guest-get-time",
    "guest-get-host-name",
    "guest-get-timezone",
    "guest-network-get-interfaces",
    "guest-exec",
    "guest-exec-status",
    "guest-file-open",
    "guest-file-read",
    "guest-file-write",
    "guest-file-close",
];

/// A real `qemu-ga` serving a Unix socket in a private directory, with
/// only [`HARMLESS`] commands allowed. The test binds and listens on the
/// socket itself and hands it to the agent (socket activation, as systemd
/// does), so a client can connect as soon as this returns, with no wait
/// for the agent's start. Killed, by its pid, when dropped.
pub struct HostAgent {
    listener: UnixListener,
    child: Option<Child>,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

impl HostAgent {
    /// Starts the agent, or `None` (the test skips) if `qemu-ga` is not
    /// installed and `QMP_TESTS_REQUIRE_QEMU` is not set.
    pub fn start() -> Option<HostAgent> {
        if !installed() {
            return None;
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let socket = dir.path().join("qga.sock");
        let listener = UnixListener::bind(&socket).expect("bind the agent's socket");
        let mut agent = HostAgent {
            listener,
            child: None,
            socket,
            dir,
        };
        agent.child = Some(agent.spawn());
        Some(agent)
    }

    fn spawn(&self) -> Child {
        let listening = self.listener.try_clone().expect("dup the listener");
        // The listener goes in as descriptor 3 (LISTEN_FDS=1), with
        // LISTEN_PID the agent's own pid: the shell that execs it.
        let script = format!(
            "exec 3<&0 0</dev/null; LISTEN_FDS=1 LISTEN_PID=$$ exec {AGENT} -m unix-listen -t {} -a {}",
            self.dir.path().display(),
            HARMLESS.join(","),
        );
        match Process::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(listening)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => panic!("cannot start {AGENT}: {e}"),
        }
    }

    /// The socket to connect to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A private directory for the test's files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn signal(&self, signal: Signal) {
        if let Some(child) = &self.child {
            let pid = Pid::from_raw(child.id() as i32).expect("a pid");
            kill_process(pid, signal).expect("signal the agent");
        }
    }

    /// Freezes the agent (SIGSTOP): what is written to it waits.
    pub fn pause(&self) {
        self.signal(Signal::STOP);
    }

    /// Lets a [paused](Self::pause) agent run again (SIGCONT).
    pub fn resume(&self) {
        self.signal(Signal::CONT);
    }

    /// Kills the agent (SIGKILL, by its pid) and waits for it: its
    /// connection closes. The socket stays, listening.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = Pid::from_raw(child.id() as i32).expect("a pid");
            kill_process(pid, Signal::KILL).ok();
            child.wait().ok();
        }
    }

    /// Starts a new agent on the same socket.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Some(self.spawn());
    }
}

impl Drop for HostAgent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether `qemu-ga` is installed; panics if not and
/// `QMP_TESTS_REQUIRE_QEMU` is set.
fn installed() -> bool {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/sbin")])
            .any(|dir| dir.join(AGENT).is_file())
    });
    if !found {
        if std::env::var_os("QMP_TESTS_REQUIRE_QEMU").is_some() {
            panic!("{AGENT} is not installed and QMP_TESTS_REQUIRE_QEMU is set");
        }
        eprintln!("{AGENT} is not installed: skipping this test");
    }
    found
}
