//! The `qmp-shell` binary on a pseudo-terminal, as a person uses it: tab
//! completion, history (kept across sessions), and events printed while a
//! line is being typed, against real QEMU.
//!
//! The screen is not emulated: the tests look for text in what the shell
//! writes to the terminal, and prove what the line editor did by what the
//! shell then runs (a completed name runs; a half-typed one would fail).

mod common;

use common::stalling_peer;
use qmp_tests::qemu::QemuProcess;
use rustix::fs::{Mode, OFlags};
use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
use rustix::termios::{tcgetattr, tcsetwinsize, LocalModes, Winsize};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

const SHELL: &str = env!("CARGO_BIN_EXE_qmp-shell");

/// How long to wait for text before failing.
const PATIENCE: Duration = Duration::from_secs(30);

/// What the shell wrote so far, and whether the terminal has closed.
#[derive(Default)]
struct Screen {
    bytes: Vec<u8>,
    closed: bool,
}

/// `qmp-shell` running on the slave side of a pseudo-terminal.
struct Terminal {
    master: File,
    child: Child,
    screen: Arc<(Mutex<Screen>, Condvar)>,
    /// Where the next [`expect`](Terminal::expect) starts looking.
    seen: usize,
}

impl Terminal {
    /// Starts the shell on a new 120×40 terminal with `args`, its history
    /// kept under `state` (as `$XDG_STATE_HOME`).
    fn start(args: &[&str], state: &Path) -> Terminal {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .expect("open a pseudo-terminal");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let name = ptsname(&master, Vec::new()).expect("ptsname");
        let slave: OwnedFd = rustix::fs::open(
            name.as_c_str(),
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("open the terminal's slave side");
        tcsetwinsize(
            &master,
            Winsize {
                ws_row: 40,
                ws_col: 120,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )
        .expect("set the terminal size");
        let mut command = Command::new(SHELL);
        command
            .args(args)
            .env("TERM", "xterm")
            .env("XDG_STATE_HOME", state)
            .env("HOME", state)
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        let child = command.spawn().expect("start qmp-shell");
        // The command holds the slave side's descriptors until dropped; once
        // only the shell has them, reading the master ends when it exits.
        drop(command);
        let master = File::from(master);
        let screen = Arc::new((Mutex::new(Screen::default()), Condvar::new()));
        let mut reader = master.try_clone().unwrap();
        let filling = screen.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            loop {
                let n = reader.read(&mut buffer).unwrap_or(0);
                let (lock, changed) = &*filling;
                // A failed expectation may have poisoned the lock: keep going.
                let mut screen = lock.lock().unwrap_or_else(PoisonError::into_inner);
                if n == 0 {
                    screen.closed = true;
                } else {
                    screen.bytes.extend_from_slice(&buffer[..n]);
                }
                changed.notify_all();
                if n == 0 {
                    return;
                }
            }
        });
        Terminal {
            master,
            child,
            screen,
            seen: 0,
        }
    }

    /// Types `keys`.
    fn send(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
        self.master.flush().unwrap();
    }

    /// Waits until the shell has written `text` after what earlier calls
    /// found, and moves past it.
    fn expect(&mut self, text: &str) {
        let (lock, changed) = &*self.screen;
        let deadline = Instant::now() + PATIENCE;
        let mut screen = lock.lock().unwrap();
        loop {
            let found = screen.bytes[self.seen..]
                .windows(text.len())
                .position(|window| window == text.as_bytes());
            if let Some(at) = found {
                self.seen += at + text.len();
                return;
            }
            let now = Instant::now();
            if screen.closed || now >= deadline {
                panic!(
                    "{text:?} did not appear ({}); after the last match the shell wrote:\n{}",
                    if screen.closed {
                        "the terminal closed"
                    } else {
                        "timed out"
                    },
                    String::from_utf8_lossy(&screen.bytes[self.seen..]).escape_debug()
                );
            }
            screen = changed.wait_timeout(screen, deadline - now).unwrap().0;
        }
    }

    /// Ctrl-D on an empty line, then the shell's exit status.
    fn quit(mut self) -> Option<i32> {
        self.send("\x04");
        self.exit_status()
    }

    /// Waits for the shell to exit (its side of the terminal closes then).
    fn exit_status(&mut self) -> Option<i32> {
        let (lock, changed) = &*self.screen;
        let deadline = Instant::now() + PATIENCE;
        let mut screen = lock.lock().unwrap();
        while !screen.closed {
            let now = Instant::now();
            assert!(now < deadline, "qmp-shell did not exit");
            screen = changed.wait_timeout(screen, deadline - now).unwrap().0;
        }
        drop(screen);
        self.child.wait().unwrap().code()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

const PROMPT: &str = "(QEMU) ";
const UP: &str = "\x1b[A";

#[test]
fn tab_completes_command_names() {
    let Some(qemu) = QemuProcess::system(&[]) else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let mut term = Terminal::start(&[qemu.socket().to_str().unwrap()], state.path());
    // `QEMU emulator version 10.0.2 (Debian ...)`: the QEMU under test.
    let version = qmp_tests::qemu::version_under_test()
        .split_whitespace()
        .nth(3)
        .expect("a version");
    let major = version.split('.').next().expect("a major version");
    term.expect(&format!("Connected to QEMU {version} "));
    term.expect(PROMPT);

    // A unique prefix completes to the whole name, which then runs.
    term.send("query-versi\t");
    term.send("\r");
    term.expect(&format!("\"major\": {major}"));
    term.expect(PROMPT);

    // An ambiguous prefix: the first tab completes what the candidates
    // share, the second lists them.
    term.send("query-st\t\t");
    term.expect("query-stats-schemas");
    term.send("us\r");
    term.expect("\"status\": \"running\"");
    term.expect(PROMPT);
    assert_eq!(term.quit(), Some(0));
}

#[test]
fn history_recalls_lines_within_and_across_sessions() {
    let Some(qemu) = QemuProcess::system(&[]) else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let socket = qemu.socket().to_str().unwrap();
    let mut term = Terminal::start(&[socket], state.path());
    term.expect(PROMPT);
    term.send("query-name\r");
    term.expect("{}");
    term.expect(PROMPT);
    term.send("query-status\r");
    term.expect("\"running\": true");
    term.expect(PROMPT);
    // Up twice: back past query-status to query-name.
    term.send(&format!("{UP}{UP}\r"));
    term.expect("{}");
    term.expect(PROMPT);
    assert_eq!(term.quit(), Some(0));
    let kept = std::fs::read_to_string(state.path().join("qmp-shell/history")).unwrap();
    assert!(kept.contains("query-status"), "{kept}");

    // A new session starts with the old history, in order: the last line
    // run was query-name, the one before query-status.
    let mut term = Terminal::start(&[socket], state.path());
    term.expect(PROMPT);
    term.send(&format!("{UP}{UP}\r"));
    term.expect("\"running\": true");
    term.expect(PROMPT);
    assert_eq!(term.quit(), Some(0));
}

#[test]
fn events_print_above_the_line_being_typed() {
    // A second QMP monitor, for another client to stop the VM through.
    let other = tempfile::tempdir().unwrap();
    let other_socket = other.path().join("other.sock");
    let monitor = format!("unix:{},server=on,wait=off", other_socket.display());
    let Some(qemu) = QemuProcess::system(&["-qmp", &monitor]) else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let mut term = Terminal::start(&[qemu.socket().to_str().unwrap()], state.path());
    term.expect(PROMPT);
    term.send("query-sta");
    term.expect("query-sta");

    // Stop the VM from the other monitor while the line is half typed.
    let stopped = Command::new(SHELL)
        .args(["-c", other_socket.to_str().unwrap()])
        .env("HOME", state.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(b"stop\n")?;
            child.wait()
        })
        .unwrap();
    assert!(stopped.success());
    term.expect("\"event\": \"STOP\"");
    // Printed above the line, which is drawn again below it.
    term.expect(PROMPT);
    term.expect("query-sta");

    // The half-typed line survived: finishing it runs query-status.
    term.send("tus\r");
    term.expect("\"status\": \"paused\"");
    term.expect(PROMPT);

    // Ctrl-C drops a line; the shell goes on.
    term.send("garbage\x03");
    term.expect(PROMPT);
    term.send("cont\r");
    term.expect("\"event\": \"RESUME\"");
    term.expect(PROMPT);
    assert_eq!(term.quit(), Some(0));
}

#[test]
fn human_monitor_mode_completes_hmp_commands() {
    let Some(qemu) = QemuProcess::system(&[]) else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let mut term = Terminal::start(&["-H", qemu.socket().to_str().unwrap()], state.path());
    term.expect("(qemu) ");
    term.send("inf\tstatus\r");
    term.expect("VM status: running");
    term.expect("(qemu) ");
    assert_eq!(term.quit(), Some(0));
}

#[test]
fn connection_end_while_typing_restores_the_terminal() {
    let Some(mut qemu) = QemuProcess::system(&[]) else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let mut term = Terminal::start(&[qemu.socket().to_str().unwrap()], state.path());
    term.expect(PROMPT);
    term.send("query-");
    term.expect("query-");
    qemu.kill();
    // The editor's terminal settings are undone (bracketed paste, which it
    // turned on, is turned off), then the end is reported.
    term.expect("\x1b[?2004l");
    term.expect("QMP connection closed");
    assert_eq!(term.exit_status(), Some(1));
    // The terminal is back in line mode with echo (the editor had both off).
    let modes = tcgetattr(&term.master).unwrap().local_modes;
    assert!(
        modes.contains(LocalModes::ICANON | LocalModes::ECHO),
        "{modes:?}"
    );
}

#[test]
fn ctrl_c_gives_up_on_a_command_and_the_prompt_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stall.sock");
    let (peer, arrivals) = stalling_peer(&path, |name| name != "stall");
    let mut term = Terminal::start(&[path.to_str().unwrap()], dir.path());
    term.expect(PROMPT);
    term.send("stall\r");
    // query-commands (for completion) came first.
    assert_eq!(arrivals.recv_timeout(PATIENCE).unwrap(), "query-commands");
    assert_eq!(arrivals.recv_timeout(PATIENCE).unwrap(), "stall");
    // What Ctrl-C does while a command runs (the terminal is not in raw
    // mode then): SIGINT. This terminal is not the shell's controlling one,
    // so the signal is sent directly.
    let pid = rustix::process::Pid::from_raw(term.child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    term.expect("error: interrupted; the reply will be dropped");
    term.expect(PROMPT);
    // The connection is still usable.
    term.send("answer\r");
    term.expect("\"n\": 3");
    term.expect(PROMPT);
    assert_eq!(
        term.quit(),
        Some(1),
        "an interrupted command counts as failed"
    );
    assert_eq!(peer.join().unwrap(), ["query-commands", "stall", "answer"]);
}
