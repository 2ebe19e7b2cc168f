//! Driving `qmp-proto` from a hand-written loop over a blocking
//! [`UnixStream`]: no async runtime, no threads, just `read` and `write_all`.
//!
//! ```text
//! cargo run -p qmp-proto --example blocking -- /path/to/qmp.sock [COMMAND ...]
//! cargo run -p qmp-proto --example blocking -- [--mock [COMMAND ...]]
//! ```
//!
//! With a socket path, it connects to a running QEMU, for instance one
//! started with
//!
//! ```text
//! qemu-system-x86_64 -M none -nodefaults -display none \
//!     -qmp unix:/tmp/qmp.sock,server=on,wait=off
//! ```
//!
//! prints the greeting (QEMU version and capabilities), negotiates, runs
//! `query-version`, `query-status` and every COMMAND given (without
//! arguments), prints each reply as pretty JSON or the QMP error as
//! `class: desc`, prints the events that arrive meanwhile, and closes.
//!
//! Without a socket path (or with `--mock`, which also accepts commands) the
//! same session runs against a built-in mock QEMU made of this crate's
//! [`Server`] machine, so the example works on machines without QEMU. The
//! mock knows `query-version`, `query-status`, `query-name`, `query-kvm`,
//! `stop` and `cont` (the last two send `STOP`/`RESUME` events); anything
//! else gets `CommandNotFound`, as from QEMU.
//!
//! Every wait on the socket is bounded by a 10 s timeout, so a QEMU that
//! never answers ends the program with an error instead of hanging it.

#![forbid(unsafe_code)]

use qmp_proto::{
    Client, ClientConfig, ClientOutput, Command, End, ErrorClass, QmpError, RequestId, SendError,
    Server, ServerConfig, ServerOutput, Timestamp, Version, VersionTriple,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long any single read or write on the socket may block.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The commands every session runs before those from the command line.
const DEFAULT_COMMANDS: [&str; 2] = ["query-version", "query-status"];

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

/// Everything that can go wrong, each with the context needed to act on it.
#[derive(Debug)]
pub enum Error {
    /// The command line could not be understood.
    Usage(String),
    /// No connection could be made to the QMP socket.
    Connect { path: PathBuf, source: io::Error },
    /// Reading from or writing to the socket failed.
    Socket(io::Error),
    /// The peer stayed silent for [`TIMEOUT`] while replies were awaited.
    Timeout,
    /// The connection ended (peer closed, protocol violation) while
    /// `unanswered` commands still awaited their reply.
    Ended { end: End, unanswered: usize },
    /// The client refused to issue a command.
    Send(SendError),
    /// A reply or event payload could not be re-read as JSON.
    Decode(serde_json::Error),
    /// Writing our own output failed (for instance stdout is a closed pipe).
    Output(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(why) => write!(f, "{why}"),
            Error::Connect { path, source } => {
                write!(
                    f,
                    "cannot connect to QMP socket {}: {source}",
                    path.display()
                )
            }
            Error::Socket(e) => write!(f, "QMP socket I/O failed: {e}"),
            Error::Timeout => write!(
                f,
                "no data from QEMU for {} s while waiting for replies",
                TIMEOUT.as_secs()
            ),
            Error::Ended { end, unanswered } => write!(
                f,
                "connection ended with {unanswered} command(s) unanswered: {end}"
            ),
            Error::Send(e) => write!(f, "cannot issue command: {e}"),
            Error::Decode(e) => write!(f, "cannot decode a JSON payload: {e}"),
            Error::Output(e) => write!(f, "cannot write output: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connect { source: e, .. } | Error::Socket(e) | Error::Output(e) => Some(e),
            Error::Ended { end, .. } => Some(end),
            Error::Send(e) => Some(e),
            Error::Decode(e) => Some(e),
            Error::Usage(_) | Error::Timeout => None,
        }
    }
}

/// `writeln!` to our output, classifying failures as [`Error::Output`] so
/// they are never mistaken for socket errors.
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {
        writeln!($out, $($arg)*).map_err(Error::Output)?
    };
}

/// The whole program minus process concerns: `args` without the program
/// name, output to `out`. Separate from `main` so tests can run it in-process.
pub fn run(args: impl IntoIterator<Item = OsString>, out: &mut impl Write) -> Result<(), Error> {
    let mut args = args.into_iter();
    let target = args.next();
    let commands = args
        .map(|arg| {
            arg.into_string()
                .map_err(|arg| Error::Usage(format!("command name {arg:?} is not UTF-8")))
        })
        .collect::<Result<Vec<String>, Error>>()?;
    match target {
        Some(flag) if flag == "-h" || flag == "--help" => {
            say!(
                out,
                "usage: blocking [/path/to/qmp.sock | --mock] [COMMAND ...]"
            );
            Ok(())
        }
        Some(path) if path != "--mock" => {
            let path = PathBuf::from(path);
            let mut stream = connect(&path)?;
            say!(out, "connected to {}", path.display());
            session(&mut stream, &commands, out)
            // The stream is dropped, and so closed, on return.
        }
        _ => {
            say!(
                out,
                "no QEMU socket given: using the built-in mock QEMU (qmp_proto::Server)"
            );
            session(&mut MockQemu::new(), &commands, out)
        }
    }
}

/// Connects to a QMP socket with every blocking call bounded by [`TIMEOUT`].
fn connect(path: &Path) -> Result<UnixStream, Error> {
    let stream = UnixStream::connect(path).map_err(|source| Error::Connect {
        path: path.to_owned(),
        source,
    })?;
    // A stopped QEMU, or a socket that is not QMP at all, would otherwise
    // block the first `read` forever.
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(Error::Socket)?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(Error::Socket)?;
    Ok(stream)
}

/// One QMP conversation over any blocking byte stream: the real socket or
/// the mock. This is the only code that drives the [`Client`].
fn session(
    stream: &mut (impl Read + Write),
    extra_commands: &[String],
    out: &mut impl Write,
) -> Result<(), Error> {
    let mut client = Client::new(ClientConfig::default());

    // Issued before the greeting has even arrived: the client queues them
    // and sends them by itself once negotiation completes, so the loop below
    // needs no "wait until ready" step.
    let mut pending: BTreeMap<RequestId, &str> = BTreeMap::new();
    let names = DEFAULT_COMMANDS
        .into_iter()
        .chain(extra_commands.iter().map(String::as_str));
    for name in names {
        let id = client.execute(name, &()).map_err(Error::Send)?;
        pending.insert(id, name);
    }

    let mut buf = [0u8; 8192];
    loop {
        // The rule, part one: after every input, drain the outputs...
        while let Some(output) = client.poll_output() {
            match output {
                ClientOutput::Greeting(greeting) => {
                    let capabilities: Vec<&str> =
                        greeting.capabilities.iter().map(|c| c.as_str()).collect();
                    say!(
                        out,
                        "greeting: QEMU {}, capabilities: [{}]",
                        greeting.version,
                        capabilities.join(", ")
                    );
                }
                ClientOutput::Ready { oob } => {
                    say!(out, "capabilities negotiated (out-of-band: {oob})");
                }
                ClientOutput::Reply(reply) => {
                    // The client only reports ids it issued, all in `pending`.
                    let name = pending.remove(&reply.id).unwrap_or("?");
                    match reply.result {
                        Ok(value) => {
                            let value: Value = value.decode().map_err(Error::Decode)?;
                            say!(out, "{name} returned:\n{value:#}");
                        }
                        Err(QmpError { class, desc }) => {
                            say!(out, "{name} failed: {class}: {desc}");
                        }
                    }
                }
                ClientOutput::Event(event) => {
                    let Timestamp {
                        seconds,
                        microseconds,
                    } = event.timestamp;
                    say!(out, "event {} at {seconds}.{microseconds:06}", event.name);
                    if let Some(data) = &event.data {
                        let data: Value = data.decode().map_err(Error::Decode)?;
                        say!(out, "{data:#}");
                    }
                }
                ClientOutput::UnattributedError(error) => {
                    // QEMU's answer to input it could not parse: not fatal.
                    say!(out, "QEMU reported an error without an id: {error}");
                }
                ClientOutput::End(end) => {
                    // We stop reading once `pending` is empty, so an end is
                    // always premature.
                    return Err(Error::Ended {
                        end,
                        unanswered: pending.len(),
                    });
                }
            }
        }

        // ...part two: then write everything the client wants sent (the
        // capabilities negotiation, the queued commands).
        while let Some(bytes) = client.poll_transmit() {
            stream.write_all(&bytes).map_err(Error::Socket)?;
        }

        if pending.is_empty() {
            say!(out, "all replies received, closing");
            return Ok(());
        }

        // Block for the next input; a read of 0 bytes is the peer closing.
        match stream.read(&mut buf) {
            Ok(0) => client.receive_eof(),
            Ok(n) => client.receive(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // What a read timeout looks like (`WouldBlock` on Unix).
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(Error::Timeout)
            }
            Err(e) => return Err(Error::Socket(e)),
        }
    }
}

/// The built-in stand-in for QEMU: this crate's [`Server`] machine plus a
/// little VM state, behind the same `Read`/`Write` interface as the socket
/// so that [`session`] cannot tell the two apart.
///
/// Everything happens inside the calls: `write` feeds the server and answers
/// the commands it yields, `read` hands out what the server wrote.
struct MockQemu {
    server: Server,
    running: bool,
    /// Bytes the server wrote that the client has not read yet.
    unread: Vec<u8>,
}

impl MockQemu {
    fn new() -> Self {
        let config = ServerConfig::default().version(mock_version());
        MockQemu {
            server: Server::new(config),
            running: true,
            unread: Vec::new(),
        }
    }

    /// Answers one command the way QEMU would, events first (QEMU emits
    /// `STOP`/`RESUME` while executing the command, before replying).
    fn answer(&mut self, command: &Command) -> Result<(), serde_json::Error> {
        match command.name.as_str() {
            "query-version" => self.server.reply_ok(command, &mock_version()),
            "query-status" => {
                let status = if self.running { "running" } else { "paused" };
                let reply = json!({"status": status, "running": self.running});
                self.server.reply_ok(command, &reply)
            }
            "query-name" => self.server.reply_ok(command, &json!({})),
            "query-kvm" => {
                let reply = json!({"enabled": false, "present": false});
                self.server.reply_ok(command, &reply)
            }
            "stop" | "cont" => {
                let run = command.name == "cont";
                // Like QEMU: an event only when the state actually changes.
                if self.running != run {
                    self.running = run;
                    let event = if run { "RESUME" } else { "STOP" };
                    self.server.send_event(event, &(), now())?;
                }
                self.server.reply_ok(command, &json!({}))
            }
            name => {
                let desc = format!("The command {name} has not been found");
                let error = QmpError::new(ErrorClass::CommandNotFound, desc);
                self.server.reply_error(command, &error);
                Ok(())
            }
        }
    }
}

impl Read for MockQemu {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(bytes) = self.server.poll_transmit() {
            self.unread.extend_from_slice(&bytes);
        }
        if self.unread.is_empty() {
            // A socket would block here until its timeout; the mock knows
            // nothing more will come, so it reports the timeout at once.
            return Err(io::Error::new(
                ErrorKind::TimedOut,
                "the mock QEMU has nothing to send",
            ));
        }
        let n = buf.len().min(self.unread.len());
        buf[..n].copy_from_slice(&self.unread[..n]);
        self.unread.drain(..n);
        Ok(n)
    }
}

impl Write for MockQemu {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.server.receive(bytes);
        // The same rule as for the client: drain the outputs after input.
        while let Some(output) = self.server.poll_output() {
            match output {
                ServerOutput::Command(command) => {
                    self.answer(&command).map_err(io::Error::other)?
                }
                // Negotiation is answered by the server itself; the end of
                // the stream needs no action from a mock.
                ServerOutput::Negotiated { .. } | ServerOutput::End(_) => {}
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The version the mock announces and reports, marked as the mock's.
fn mock_version() -> Version {
    Version::new(
        VersionTriple {
            major: 10,
            minor: 0,
            micro: 2,
        },
        "qmp-proto mock",
    )
}

/// The wall clock as a QMP timestamp: the server machine has no clock.
fn now() -> Timestamp {
    Timestamp::from_unix_duration(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    )
}
