//! [`MockQemu`]: a QEMU stand-in with a handler per command.

use crate::peer::{client_left, Action, EventSender, MockConfig, Peer};
use crate::scripted::{lock, TempDir};
use crate::stream::Stream;
use qmp_proto::{Command, ErrorClass, RawJson};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What a handler is: given a command, the actions that answer it.
type Handler = Box<dyn FnMut(&Command) -> Vec<Action> + Send>;

/// The commands the mock answers by itself unless a handler replaces them.
const BUILT_IN: [&str; 7] = [
    "qmp_capabilities",
    "query-version",
    "query-status",
    "query-commands",
    "stop",
    "cont",
    "quit",
];

/// Builds a [`MockQemu`]: its settings and its handlers.
pub struct MockQemuBuilder {
    config: MockConfig,
    handlers: BTreeMap<String, Handler>,
    otherwise: Option<Handler>,
}

impl fmt::Debug for MockQemuBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockQemuBuilder")
            .field("config", &self.config)
            .field("handlers", &self.handlers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl MockQemuBuilder {
    /// Sets how the mock writes: version, `pretty`, line ends, a slow
    /// writer, events before the greeting (see [`MockConfig`]).
    pub fn config(mut self, config: MockConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the QEMU version the greeting and `query-version` announce
    /// (10.0.0 unless set).
    pub fn version(mut self, major: u64, minor: u64, micro: u64) -> Self {
        self.config = self.config.version(major, minor, micro);
        self
    }

    /// Answers command `name` with the actions `handler` returns (an empty
    /// list never answers). Replaces a built-in answer, and is listed by
    /// `query-commands`.
    ///
    /// Handlers run on the mock's thread, and the answers to the commands
    /// one read brought go out together: to stall, return
    /// [`Action::Wait`] or [`Action::Delay`] (which write what is answered
    /// first) rather than block inside the handler.
    pub fn on(
        mut self,
        name: &str,
        handler: impl FnMut(&Command) -> Vec<Action> + Send + 'static,
    ) -> Self {
        self.handlers.insert(name.to_string(), Box::new(handler));
        self
    }

    /// Answers every command that has neither a handler nor a built-in
    /// answer. Without it they get QEMU's `CommandNotFound`.
    pub fn otherwise(
        mut self,
        handler: impl FnMut(&Command) -> Vec<Action> + Send + 'static,
    ) -> Self {
        self.otherwise = Some(Box::new(handler));
        self
    }

    /// Listens on a Unix socket in a private temporary directory, removed
    /// when the mock is dropped: [`MockQemu::path`].
    pub fn listen(self) -> io::Result<MockQemu> {
        let dir = TempDir::new()?;
        let path = dir.socket_path();
        let listener = UnixListener::bind(&path)?;
        let accept = move || listener.accept().map(|(stream, _)| Stream::Unix(stream));
        Ok(self.start(accept, Address::Unix(path), Some(dir)))
    }

    /// Listens on TCP on `127.0.0.1`, on a port the system picks:
    /// [`MockQemu::tcp_address`].
    pub fn listen_tcp(self) -> io::Result<MockQemu> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let accept = move || listener.accept().map(|(stream, _)| Stream::Tcp(stream));
        Ok(self.start(accept, Address::Tcp(address), None))
    }

    /// Serves one end of a socket pair and returns the other, for
    /// `Qmp::from_unix_stream`.
    pub fn pair(self) -> io::Result<(UnixStream, MockQemu)> {
        let (client, server) = UnixStream::pair()?;
        let mut server = Some(server);
        let accept = move || {
            server
                .take()
                .map(Stream::Unix)
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
        };
        Ok((client, self.start(accept, Address::Pair, None)))
    }

    fn start(
        self,
        mut accept: impl FnMut() -> io::Result<Stream> + Send + 'static,
        address: Address,
        dir: Option<TempDir>,
    ) -> MockQemu {
        let shared = Arc::new(Shared::default());
        let mut state = State {
            config: self.config,
            handlers: self.handlers,
            otherwise: self.otherwise,
            running: true,
            quit: false,
            shared: shared.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("qmp-mock-qemu".into())
            .spawn(move || {
                // Connections are served one after the other, as QEMU's
                // monitor does, until `quit` or the mock is dropped.
                while !state.quit && !state.shared.stopping.load(Ordering::Acquire) {
                    let stream = match accept() {
                        Ok(stream) => stream,
                        Err(_) if state.shared.stopping.load(Ordering::Acquire) => break,
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => break,
                        Err(e) => return Err(e),
                    };
                    if state.shared.stopping.load(Ordering::Acquire) {
                        break;
                    }
                    state.serve(stream)?;
                }
                Ok(())
            })
            .expect("mock thread");
        MockQemu {
            address,
            shared,
            thread: Some(thread),
            _dir: dir,
        }
    }
}

/// Where a [`MockQemu`] listens.
#[derive(Debug, Clone)]
enum Address {
    Unix(PathBuf),
    Tcp(SocketAddr),
    Pair,
}

/// What the mock's thread and the test's handle share.
#[derive(Debug, Default)]
struct Shared {
    commands: Mutex<Vec<Command>>,
    /// The connection being served: its event sender and a clone of its
    /// socket, to close it when the mock stops.
    current: Mutex<Option<(EventSender, Stream)>>,
    connections: AtomicUsize,
    stopping: AtomicBool,
}

/// The mock's thread: handlers and the machine's state.
struct State {
    config: MockConfig,
    handlers: BTreeMap<String, Handler>,
    otherwise: Option<Handler>,
    running: bool,
    quit: bool,
    shared: Arc<Shared>,
}

impl State {
    fn serve(&mut self, stream: Stream) -> io::Result<()> {
        let mut peer = Peer::new(stream.try_clone()?, self.config.clone())?;
        *lock(&self.shared.current) = Some((peer.events(), stream));
        self.shared.connections.fetch_add(1, Ordering::AcqRel);
        if self.shared.stopping.load(Ordering::Acquire) {
            // Stopped while this connection was being set up.
            peer.close();
        }
        let served = peer.serve_commands(|command| {
            lock(&self.shared.commands).push(command.clone());
            self.answer(command)
        });
        lock(&self.shared.current).take();
        match served {
            Err(e) if client_left(&e) => Ok(()),
            other => other,
        }
    }

    fn answer(&mut self, command: &Command) -> Vec<Action> {
        let name = command.name.as_str();
        if let Some(handler) = self.handlers.get_mut(name) {
            return handler(command);
        }
        match name {
            // Written as QEMU writes them, members in its order.
            "query-version" => {
                let version = &self.config.server.version;
                let qemu = version.qemu().map_or("null".to_string(), |v| {
                    let (major, minor, micro) = (v.major, v.minor, v.micro);
                    format!(r#"{{"micro": {micro}, "minor": {minor}, "major": {major}}}"#)
                });
                let package = Value::from(version.package());
                vec![reply_text(&format!(
                    r#"{{"qemu": {qemu}, "package": {package}}}"#
                ))]
            }
            "query-status" => {
                let (status, running) = if self.running {
                    ("running", true)
                } else {
                    ("paused", false)
                };
                vec![reply_text(&format!(
                    r#"{{"status": "{status}", "running": {running}}}"#
                ))]
            }
            "query-commands" => {
                let mut names: Vec<&str> = BUILT_IN.to_vec();
                names.extend(self.handlers.keys().map(String::as_str));
                names.sort_unstable();
                names.dedup();
                let list: Vec<Value> = names.iter().map(|name| json!({"name": name})).collect();
                vec![Action::Reply(Value::Array(list))]
            }
            // QEMU sends the event before the reply, as these do.
            "stop" => {
                let was_running = std::mem::replace(&mut self.running, false);
                let mut actions = Vec::new();
                if was_running {
                    actions.push(Action::event("STOP", Value::Null));
                }
                actions.push(Action::ok(json!({})));
                actions
            }
            "cont" => {
                let was_running = std::mem::replace(&mut self.running, true);
                let mut actions = Vec::new();
                if !was_running {
                    actions.push(Action::event("RESUME", Value::Null));
                }
                actions.push(Action::ok(json!({})));
                actions
            }
            "quit" => {
                self.quit = true;
                vec![
                    Action::event(
                        "SHUTDOWN",
                        json!({"guest": false, "reason": "host-qmp-quit"}),
                    ),
                    Action::ok(json!({})),
                    Action::Close,
                ]
            }
            _ => match &mut self.otherwise {
                Some(handler) => handler(command),
                None => vec![Action::error(
                    ErrorClass::CommandNotFound,
                    format!("The command {name} has not been found"),
                )],
            },
        }
    }
}

/// A reply of JSON text built here, valid by construction.
fn reply_text(text: &str) -> Action {
    match RawJson::from_text(text) {
        Ok(text) => Action::ReplyText(text),
        Err(e) => Action::error(ErrorClass::GenericError, e.to_string()),
    }
}

/// A mock QEMU: QMP exactly as QEMU 10.0 speaks it, with a handler per
/// command, events on demand, and a record of every command received.
///
/// Built-in answers, each replaced by a handler of the same name:
/// `qmp_capabilities` (negotiation, always built in), `query-version`,
/// `query-status` (`running` until `stop`, again after `cont`),
/// `query-commands` (the built-ins and the handlers), `stop` and `cont`
/// (their `STOP` and `RESUME` events, then the reply, in QEMU's order),
/// and `quit` (its `SHUTDOWN` event and reply, then the connection closes
/// and the mock stops accepting).
/// Other commands get QEMU's `CommandNotFound`, or
/// [`otherwise`](MockQemuBuilder::otherwise)'s answer.
///
/// Connections are served one after the other, as by QEMU's monitor. The
/// mock runs on its own threads, so it serves tokio, smol or blocking
/// clients alike, and never competes with the code under test for its
/// runtime.
///
/// ```
/// use qmp_mock::{Action, MockQemu};
/// use serde_json::json;
///
/// # fn main() -> std::io::Result<()> {
/// let qemu = MockQemu::builder()
///     .on("query-block", |_| vec![Action::ok(json!([]))])
///     .listen()?;
/// smol::block_on(async {
///     let qmp = qmp_smol::Qmp::connect_unix(qemu.path().unwrap(), Default::default()).await?;
///     let devices: Vec<serde_json::Value> = qmp.call("query-block", &()).decode().await?;
///     assert!(devices.is_empty());
///     Ok::<_, qmp_smol::Error>(())
/// })
/// .unwrap();
/// assert_eq!(qemu.command_names(), ["query-block"]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct MockQemu {
    address: Address,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<io::Result<()>>>,
    /// Held for its removal on drop.
    _dir: Option<TempDir>,
}

impl MockQemu {
    /// A builder, with the built-in answers only.
    pub fn builder() -> MockQemuBuilder {
        MockQemuBuilder {
            config: MockConfig::default().version(10, 0, 0),
            handlers: BTreeMap::new(),
            otherwise: None,
        }
    }

    /// A mock with the built-in answers only, on a Unix socket:
    /// `MockQemu::builder().listen()`.
    pub fn listen() -> io::Result<MockQemu> {
        MockQemu::builder().listen()
    }

    /// The Unix socket's path (`None` for TCP or a socket pair).
    pub fn path(&self) -> Option<&Path> {
        match &self.address {
            Address::Unix(path) => Some(path),
            _ => None,
        }
    }

    /// The TCP address (`None` for a Unix socket or a socket pair).
    pub fn tcp_address(&self) -> Option<SocketAddr> {
        match &self.address {
            Address::Tcp(address) => Some(*address),
            _ => None,
        }
    }

    /// Sends event `name` with `data` (`Value::Null` for none) to the
    /// client being served, stamped when written; QEMU's rule holds: only
    /// once that client has negotiated. Returns `false` when no client is
    /// connected.
    ///
    /// The event is written as soon as the mock is not busy answering a
    /// command; to send an event in a fixed place relative to a reply, let
    /// the handler return it as an [`Action`].
    pub fn event(&self, name: &str, data: Value) -> bool {
        match &*lock(&self.shared.current) {
            Some((events, _)) => events.send(name, data),
            None => false,
        }
    }

    /// Every command received after negotiation, from every connection, in
    /// order. A command is recorded before its answer is written, so once
    /// a client has its reply, the command is here.
    pub fn commands(&self) -> Vec<Command> {
        lock(&self.shared.commands).clone()
    }

    /// The names of [`commands`](Self::commands).
    pub fn command_names(&self) -> Vec<String> {
        lock(&self.shared.commands)
            .iter()
            .map(|command| command.name.clone())
            .collect()
    }

    /// How many connections the mock has accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Acquire)
    }

    /// Stops the mock: no more connections, the current one is closed.
    /// Waits for its thread and returns its I/O error if it had one; a
    /// panic in a handler is raised again here.
    pub fn close(mut self) -> io::Result<()> {
        self.stop();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Ok(()),
        }
    }

    fn stop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        if let Some((_, stream)) = lock(&self.shared.current).take() {
            stream.shutdown(Shutdown::Both);
        }
        // Wake the thread if it waits in accept: it sees `stopping` then.
        match &self.address {
            Address::Unix(path) => drop(UnixStream::connect(path)),
            Address::Tcp(address) => drop(TcpStream::connect(address)),
            Address::Pair => {}
        }
    }
}

impl Drop for MockQemu {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
        }
    }
}

/// The QEMU of the client crates' documentation examples: the built-ins,
/// `device_del` with its `DEVICE_DELETED` event, `human-monitor-command`
/// with a version line, and `{}` for anything else.
#[doc(hidden)]
pub fn docs_qemu() -> MockQemu {
    MockQemu::builder()
        .on("device_del", |command| {
            let arguments: Value = command.decode_arguments().unwrap_or(Value::Null);
            let id = arguments["id"].as_str().unwrap_or_default();
            let path = format!("/machine/peripheral/{id}");
            vec![
                Action::ok(json!({})),
                Action::event("DEVICE_DELETED", json!({"device": id, "path": path})),
            ]
        })
        .on("human-monitor-command", |_| vec![Action::ok("10.0.0\r\n")])
        .otherwise(|_| vec![Action::ok(json!({}))])
        .listen()
        .expect("the docs' mock QEMU")
}
