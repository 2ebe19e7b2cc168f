//! Driving `qmp-proto` from a `poll(2)` loop: several QEMUs, one thread,
//! non-blocking sockets, and one deadline for everything.
//!
//! ```text
//! cargo run -p qmp-proto --example poll_loop -- /path/a.sock [/path/b.sock ...]
//! ```
//!
//! On every monitor given it runs `stop`, `cont` and `query-status`, and
//! waits for the `STOP` and `RESUME` events they cause; it prints replies
//! and events as they come, whichever QEMU they come from, and gives up
//! after 10 s. This is the shape of a custom event loop (mio, a game loop,
//! an embedded executor): the loop owns the sockets, the [`Client`] only
//! turns bytes into values and back. What such a loop must do that the
//! blocking example need not:
//!
//! - keep the bytes a non-blocking `write` did not take, and ask `poll` for
//!   writability only while some are left;
//! - read until `WouldBlock`, then drain `poll_output` (the client buffers
//!   partial messages itself);
//! - compute `poll`'s timeout from its own deadlines: the client has no clock.

#![forbid(unsafe_code)]

use qmp_proto::{Client, ClientConfig, ClientOutput, RequestId};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The bound on the whole run.
const DEADLINE: Duration = Duration::from_secs(10);

/// The commands run on every monitor, in order.
const COMMANDS: [&str; 3] = ["stop", "cont", "query-status"];

/// The events those commands cause, awaited on every monitor.
const EVENTS: [&str; 2] = ["STOP", "RESUME"];

fn main() -> ExitCode {
    let stdout = io::stdout();
    match run(std::env::args_os().skip(1), &mut stdout.lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// What can end the loop early.
#[derive(Debug)]
pub enum Error {
    /// No socket path was given.
    Usage,
    /// A socket could not be connected or set up.
    Connect(PathBuf, io::Error),
    /// `poll`, `read` or `write` failed.
    Io(io::Error),
    /// A connection ended before its work was done.
    Ended(PathBuf, qmp_proto::End),
    /// The client refused a command.
    Send(qmp_proto::SendError),
    /// [`DEADLINE`] passed with work left.
    Timeout,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage => write!(f, "usage: poll_loop SOCKET [SOCKET ...]"),
            Error::Connect(path, e) => write!(f, "{}: {e}", path.display()),
            Error::Io(e) => write!(f, "socket I/O failed: {e}"),
            Error::Ended(path, end) => write!(f, "{}: connection ended: {end}", path.display()),
            Error::Send(e) => write!(f, "cannot issue a command: {e}"),
            Error::Timeout => write!(f, "not done within {} s", DEADLINE.as_secs()),
        }
    }
}

impl std::error::Error for Error {}

/// One monitor: its socket, its client machine, and what is left to do.
struct Monitor {
    path: PathBuf,
    socket: UnixStream,
    client: Client,
    /// Bytes the client produced that the socket has not taken yet.
    unsent: Vec<u8>,
    /// Commands sent and not answered, by id.
    pending: BTreeMap<RequestId, &'static str>,
    /// Events still awaited.
    awaited: Vec<&'static str>,
}

impl Monitor {
    fn connect(path: PathBuf) -> Result<Monitor, Error> {
        let socket = UnixStream::connect(&path).map_err(|e| Error::Connect(path.clone(), e))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| Error::Connect(path.clone(), e))?;
        let mut client = Client::new(ClientConfig::default());
        // Queued until negotiation completes; the client sends them then.
        let mut pending = BTreeMap::new();
        for name in COMMANDS {
            pending.insert(client.execute(name, &()).map_err(Error::Send)?, name);
        }
        Ok(Monitor {
            path,
            socket,
            client,
            unsent: Vec::new(),
            pending,
            awaited: EVENTS.to_vec(),
        })
    }

    fn is_done(&self) -> bool {
        self.pending.is_empty() && self.awaited.is_empty()
    }

    /// Moves what the client wants sent into `unsent`, then writes as much
    /// of it as the socket takes without blocking.
    fn flush(&mut self) -> Result<(), Error> {
        while let Some(bytes) = self.client.poll_transmit() {
            self.unsent.extend_from_slice(&bytes);
        }
        while !self.unsent.is_empty() {
            match self.socket.write(&self.unsent) {
                Ok(n) => {
                    self.unsent.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
        Ok(())
    }

    /// Reads everything available, feeding the client.
    fn read_available(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        loop {
            match self.socket.read(buf) {
                Ok(0) => {
                    self.client.receive_eof();
                    return Ok(());
                }
                Ok(n) => self.client.receive(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.client.fail_transport(e.to_string());
                    return Ok(());
                }
            }
        }
    }

    /// Drains the client's outputs, printing them and ticking off work.
    fn handle_outputs(&mut self, out: &mut impl Write) -> Result<(), Error> {
        let name = self.path.display().to_string();
        while let Some(output) = self.client.poll_output() {
            let line = match output {
                ClientOutput::Greeting(greeting) => format!("greeting: QEMU {}", greeting.version),
                ClientOutput::Ready { oob } => format!("negotiated (out-of-band: {oob})"),
                ClientOutput::Reply(reply) => {
                    let command = self.pending.remove(&reply.id).unwrap_or("?");
                    match reply.result {
                        Ok(value) => format!("{command} returned {}", value.as_str()),
                        Err(error) => format!("{command} failed: {error}"),
                    }
                }
                ClientOutput::Event(event) => {
                    self.awaited.retain(|awaited| *awaited != event.name);
                    format!("event {}", event.name)
                }
                ClientOutput::UnattributedError(error) => format!("error without id: {error}"),
                ClientOutput::End(end) => {
                    if self.is_done() {
                        continue;
                    }
                    return Err(Error::Ended(self.path.clone(), end));
                }
            };
            writeln!(out, "[{name}] {line}").map_err(Error::Io)?;
        }
        Ok(())
    }
}

/// The whole program minus process concerns: `args` are socket paths.
pub fn run(args: impl IntoIterator<Item = OsString>, out: &mut impl Write) -> Result<(), Error> {
    let paths: Vec<PathBuf> = args.into_iter().map(PathBuf::from).collect();
    if paths.is_empty() {
        return Err(Error::Usage);
    }
    let mut monitors = paths
        .into_iter()
        .map(Monitor::connect)
        .collect::<Result<Vec<_>, _>>()?;
    let deadline = Instant::now() + DEADLINE;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        for monitor in &mut monitors {
            monitor.flush()?;
        }
        if monitors.iter().all(Monitor::is_done) {
            writeln!(out, "all done").map_err(Error::Io)?;
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout);
        }
        let timeout = Timespec::try_from(left).map_err(|_| Error::Timeout)?;
        let mut fds: Vec<PollFd<'_>> = monitors
            .iter()
            .map(|monitor| {
                let mut interest = PollFlags::IN;
                if !monitor.unsent.is_empty() {
                    interest |= PollFlags::OUT;
                }
                PollFd::new(&monitor.socket, interest)
            })
            .collect();
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::Io(e.into())),
        }
        // Readable, hung up or failed: a read tells which.
        let readable: Vec<bool> = fds
            .iter()
            .map(|fd| !(fd.revents() - PollFlags::OUT).is_empty())
            .collect();
        drop(fds);
        for (monitor, readable) in monitors.iter_mut().zip(readable) {
            if readable {
                monitor.read_available(&mut buf)?;
            }
            monitor.handle_outputs(out)?;
        }
    }
}
