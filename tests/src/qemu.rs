//! Throwaway real QEMU processes for the integration tests.
//!
//! Each process runs daemonized (`-daemonize`): QEMU's parent process exits
//! only once startup is complete and the QMP socket is listening, so a test
//! waits for that exit instead of polling for the socket. The process is
//! killed when its handle drops, even when the test fails.
//!
//! Where a binary is not installed the constructors return `None` and the
//! test skips with a note, unless `QMP_TESTS_REQUIRE_QEMU` is set (CI sets
//! it), in which case a missing QEMU fails the test.

use rustix::process::{kill_process, Pid, Signal};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The system emulator binary.
pub const SYSTEM: &str = "qemu-system-x86_64";
/// The storage daemon binary.
pub const STORAGE_DAEMON: &str = "qemu-storage-daemon";

/// A running QEMU with one QMP monitor on a Unix socket in a private
/// temporary directory. Killed with SIGKILL when dropped.
pub struct QemuProcess {
    pid: Pid,
    socket: PathBuf,
    dir: tempfile::TempDir,
    killed: bool,
}

impl QemuProcess {
    /// `qemu-system-x86_64 -M none -nodefaults -display none` with a QMP
    /// monitor, plus `extra` arguments.
    pub fn system(extra: &[&str]) -> Option<QemuProcess> {
        Self::system_in(tempfile::tempdir().expect("temporary directory"), extra)
    }

    /// `qemu-system-x86_64 -M machine -nodefaults -display none` with a QMP
    /// monitor, plus `extra` arguments: for tests that need a machine with
    /// devices (and a guest), which `-M none` has not.
    pub fn system_machine(machine: &str, extra: &[&str]) -> Option<QemuProcess> {
        let machine = machine.to_string();
        Self::start(SYSTEM, extra, move |socket| {
            vec![
                "-M".into(),
                machine,
                "-nodefaults".into(),
                "-display".into(),
                "none".into(),
                "-qmp".into(),
                format!("unix:{socket},server=on,wait=off"),
                "-daemonize".into(),
            ]
        })
    }

    /// `qemu-storage-daemon` with a QMP monitor, plus `extra` arguments.
    pub fn storage_daemon(extra: &[&str]) -> Option<QemuProcess> {
        Self::start(STORAGE_DAEMON, extra, |socket| {
            vec![
                "--chardev".into(),
                format!("socket,id=qmp0,path={socket},server=on,wait=off"),
                "--monitor".into(),
                "chardev=qmp0".into(),
                "--daemonize".into(),
            ]
        })
    }

    /// [`system`](Self::system) in `dir`, a directory the test made
    /// beforehand: the QMP socket will be `dir/qmp.sock` (for a test that
    /// starts connecting before QEMU runs, or has QEMU dial a socket of
    /// its own there).
    pub fn system_in(dir: tempfile::TempDir, extra: &[&str]) -> Option<QemuProcess> {
        Self::start_in(dir, SYSTEM, extra, |socket| {
            vec![
                "-M".into(),
                "none".into(),
                "-nodefaults".into(),
                "-display".into(),
                "none".into(),
                "-qmp".into(),
                format!("unix:{socket},server=on,wait=off"),
                "-daemonize".into(),
            ]
        })
    }

    fn start(
        binary: &str,
        extra: &[&str],
        base_args: impl FnOnce(&str) -> Vec<String>,
    ) -> Option<QemuProcess> {
        let dir = tempfile::tempdir().expect("temporary directory");
        Self::start_in(dir, binary, extra, base_args)
    }

    fn start_in(
        dir: tempfile::TempDir,
        binary: &str,
        extra: &[&str],
        base_args: impl FnOnce(&str) -> Vec<String>,
    ) -> Option<QemuProcess> {
        let socket = dir.path().join("qmp.sock");
        let pidfile = dir.path().join("qemu.pid");
        let socket_text = socket.to_str().expect("temporary path is UTF-8");
        let mut args = base_args(socket_text);
        args.push("--pidfile".into());
        args.push(pidfile.to_str().expect("temporary path is UTF-8").into());
        args.extend(extra.iter().map(|a| a.to_string()));
        let output = Command::new(binary)
            .args(&args)
            .stdin(Stdio::null())
            .output();
        let output = match output {
            Ok(output) => output,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return skip(binary),
            Err(e) => panic!("cannot start {binary}: {e}"),
        };
        assert!(
            output.status.success(),
            "{binary} {args:?} failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let pid_text = std::fs::read_to_string(&pidfile).expect("QEMU wrote its pid file");
        let raw: i32 = pid_text.trim().parse().expect("pid file holds a pid");
        let pid = Pid::from_raw(raw).expect("a positive pid");
        Some(QemuProcess {
            pid,
            socket,
            dir,
            killed: false,
        })
    }

    /// The QMP socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The private directory (for images and other files of the test).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// QEMU's process id (e.g. to look at `/proc/PID/fd`).
    pub fn pid(&self) -> i32 {
        self.pid.as_raw_nonzero().get()
    }

    /// Freezes QEMU with SIGSTOP: it answers nothing until
    /// [`resume`](Self::resume), while its sockets stay open. Commands sent
    /// meanwhile wait in the socket buffer.
    pub fn pause(&self) {
        kill_process(self.pid, Signal::STOP).expect("SIGSTOP to QEMU");
    }

    /// Lets a [paused](Self::pause) QEMU run again (SIGCONT).
    pub fn resume(&self) {
        kill_process(self.pid, Signal::CONT).expect("SIGCONT to QEMU");
    }

    /// Kills QEMU with SIGKILL now: its sockets close as the kernel tears
    /// the process down.
    pub fn kill(&mut self) {
        if !self.killed {
            self.killed = true;
            // The process may have exited already (after `quit`).
            kill_process(self.pid, Signal::KILL).ok();
        }
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn skip(binary: &str) -> Option<QemuProcess> {
    if std::env::var_os("QMP_TESTS_REQUIRE_QEMU").is_some() {
        panic!("{binary} is not installed and QMP_TESTS_REQUIRE_QEMU is set");
    }
    eprintln!("{binary} is not installed: skipping this test");
    None
}
