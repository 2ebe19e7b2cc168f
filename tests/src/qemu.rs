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
//!
//! # Which QEMU
//!
//! The installed one (on `PATH`), unless `QMP_TESTS_QEMU_ROOT` names a
//! directory holding another QEMU's files, as `.ci/qemu-versions` makes
//! them: `usr/bin/qemu-system-x86_64`, its modules under
//! `usr/lib/x86_64-linux-gnu/qemu` and its firmware under `usr/share/qemu`.
//! A root that is a whole Debian system (it has its own dynamic loader,
//! `usr/lib64/ld-linux-x86-64.so.2`: sid's, whose binaries need a newer C
//! library than the host's) runs the binaries through that loader and its
//! libraries; one unpacked from packages alone (bookworm's 7.2) uses the
//! host's. Every start prints the version under test on standard error,
//! which the test harness shows with a failing test's output.

use rustix::process::{kill_process, Pid, Signal};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

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
        Self::start(SYSTEM, extra, move |socket| system_args(&machine, socket))
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
        Self::start_in(dir, SYSTEM, extra, |socket| system_args("none", socket))
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
        args.extend(data_args(binary));
        eprintln!("{binary}: {}", version_under_test());
        let output = command(binary).args(&args).stdin(Stdio::null()).output();
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

/// The system emulator's arguments: `machine`, no default devices, no
/// display, a QMP monitor at `socket`, daemonized.
fn system_args(machine: &str, socket: &str) -> Vec<String> {
    vec![
        "-M".into(),
        machine.into(),
        "-nodefaults".into(),
        "-display".into(),
        "none".into(),
        "-qmp".into(),
        format!("unix:{socket},server=on,wait=off"),
        "-daemonize".into(),
    ]
}

fn skip(binary: &str) -> Option<QemuProcess> {
    if std::env::var_os("QMP_TESTS_REQUIRE_QEMU").is_some() {
        panic!("{binary} is not installed and QMP_TESTS_REQUIRE_QEMU is set");
    }
    eprintln!("{binary} is not installed: skipping this test");
    None
}

/// Another QEMU than the installed one (see the [module docs](self)).
struct Root {
    path: PathBuf,
    /// The root's own dynamic loader and library directory, if it has them.
    loader: Option<(PathBuf, PathBuf)>,
}

fn root() -> Option<&'static Root> {
    static ROOT: OnceLock<Option<Root>> = OnceLock::new();
    ROOT.get_or_init(|| {
        let path = PathBuf::from(std::env::var_os("QMP_TESTS_QEMU_ROOT")?);
        assert!(
            path.join("usr/bin").is_dir(),
            "QMP_TESTS_QEMU_ROOT={} holds no usr/bin",
            path.display()
        );
        let loader = path.join("usr/lib64/ld-linux-x86-64.so.2");
        let loader = loader
            .exists()
            .then(|| (loader, path.join("usr/lib/x86_64-linux-gnu")));
        Some(Root { path, loader })
    })
    .as_ref()
}

/// A command that runs QEMU's `binary` (e.g. [`SYSTEM`]) of the QEMU under
/// test.
pub fn command(binary: &str) -> Command {
    let Some(root) = root() else {
        return Command::new(binary);
    };
    let executable = root.path.join("usr/bin").join(binary);
    let mut command = match &root.loader {
        Some((loader, libraries)) => {
            let mut command = Command::new(loader);
            command.arg("--library-path").arg(libraries).arg(executable);
            command
        }
        None => Command::new(executable),
    };
    command.env(
        "QEMU_MODULE_DIR",
        root.path.join("usr/lib/x86_64-linux-gnu/qemu"),
    );
    command
}

/// The arguments that point `binary` at the firmware of the QEMU under
/// test (none for the installed one): Debian's firmware directories in the
/// root, which `-L` replaces QEMU's own search path with.
fn data_args(binary: &str) -> Vec<String> {
    let Some(root) = root().filter(|_| binary == SYSTEM) else {
        return Vec::new();
    };
    ["usr/share/qemu", "usr/share/seabios", "usr/lib/ipxe/qemu"]
        .iter()
        .map(|dir| root.path.join(dir))
        .filter(|dir| dir.is_dir())
        .flat_map(|dir| ["-L".to_string(), dir.display().to_string()])
        .collect()
}

/// What `qemu-system-x86_64 --version` says of the QEMU under test (its
/// first line), or why it could not say.
pub fn version_under_test() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| match command(SYSTEM).arg("--version").output() {
        Ok(output) => String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap_or("no version printed")
            .to_owned(),
        Err(e) => format!("cannot run {SYSTEM}: {e}"),
    })
}
