//! A mock that runs one script on one connection: the low level, for
//! tests that decide every byte.

use crate::peer::{MockConfig, Peer};
use crate::stream::Stream;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// A running scripted mock: the thread that runs the script on one
/// connection, and the socket it serves.
///
/// [`join`](Self::join) waits for the script and gives its result (a panic
/// in the script, e.g. a failed assertion, is raised again there). Dropping
/// the handle instead closes the mock's socket, removes its directory and
/// lets the thread finish on its own.
///
/// ```
/// use qmp_mock::{Action, Mock, MockConfig};
///
/// // A QEMU that answers every command twice.
/// let (socket, mock) = Mock::pair(MockConfig::default(), |peer| {
///     peer.serve(|command| match command.name.as_str() {
///         "query-status" => vec![Action::ok(serde_json::json!({"status": "running"}))],
///         _ => vec![Action::ok("once"), Action::ok("twice")],
///     })
/// });
/// // ... hand `socket` to `Qmp::from_unix_stream` ...
/// drop(socket);
/// assert!(mock.join().unwrap().is_empty());
/// ```
#[derive(Debug)]
pub struct Mock<R> {
    thread: Option<JoinHandle<R>>,
    /// A clone of the mock's socket once there is one, to close on drop.
    socket: Arc<Mutex<Option<Stream>>>,
    /// The private directory of a mock listening on a Unix socket.
    dir: Option<TempDir>,
}

impl<R: Send + 'static> Mock<R> {
    /// A mock on one end of a socket pair; the other end is returned, for
    /// `Qmp::from_unix_stream`.
    pub fn pair(
        config: MockConfig,
        script: impl FnOnce(Peer) -> R + Send + 'static,
    ) -> (UnixStream, Mock<R>) {
        let (client, server) = UnixStream::pair().expect("socketpair");
        let server = Stream::Unix(server);
        // Known at once, so that dropping the mock closes it whenever.
        let clone = server.try_clone().expect("dup socket");
        let mock = Mock::accepting(move || Ok(server), config, script);
        lock(&mock.socket).get_or_insert(clone);
        (client, mock)
    }

    /// A mock listening on a Unix socket in a private temporary directory
    /// (removed when the mock is dropped); it serves the first connection
    /// with `script`. Returns the socket's path, for `Qmp::connect_unix`.
    pub fn listen(
        config: MockConfig,
        script: impl FnOnce(Peer) -> R + Send + 'static,
    ) -> (PathBuf, Mock<R>) {
        let dir = TempDir::new().expect("mock directory");
        let path = dir.socket_path();
        let listener = UnixListener::bind(&path).expect("bind mock socket");
        let accept = move || listener.accept().map(|(stream, _)| Stream::Unix(stream));
        let mut mock = Mock::accepting(accept, config, script);
        mock.dir = Some(dir);
        (path, mock)
    }

    /// A mock listening on TCP on `127.0.0.1` (a port the system picks);
    /// it serves the first connection with `script`. Returns the address,
    /// for `Qmp::connect_tcp`.
    pub fn listen_tcp(
        config: MockConfig,
        script: impl FnOnce(Peer) -> R + Send + 'static,
    ) -> (SocketAddr, Mock<R>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind mock TCP socket");
        let address = listener.local_addr().expect("mock address");
        let accept = move || listener.accept().map(|(stream, _)| Stream::Tcp(stream));
        let mock = Mock::accepting(accept, config, script);
        (address, mock)
    }

    /// A mock that runs `script` on the first connection `accept` gives
    /// (a listener is dropped then).
    fn accepting(
        accept: impl FnOnce() -> io::Result<Stream> + Send + 'static,
        config: MockConfig,
        script: impl FnOnce(Peer) -> R + Send + 'static,
    ) -> Mock<R> {
        let socket = Arc::new(Mutex::new(None));
        let accepted = socket.clone();
        let thread = spawn_script(move || {
            let stream = accept().expect("accept");
            *lock(&accepted) = Some(stream.try_clone().expect("dup socket"));
            script(Peer::new(stream, config).expect("mock peer"))
        });
        Mock {
            thread: Some(thread),
            socket,
            dir: None,
        }
    }

    /// Waits for the script to finish and returns its result; a panic in
    /// the script is raised again here.
    pub fn join(mut self) -> R {
        let thread = self.thread.take().expect("joined once");
        match thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl<R> Mock<R> {
    /// The private directory of a mock listening on a Unix socket (`None`
    /// otherwise).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(TempDir::path)
    }
}

impl<R> Drop for Mock<R> {
    fn drop(&mut self) {
        if let Some(socket) = lock(&self.socket).take() {
            socket.shutdown(Shutdown::Both);
        }
        // The script thread is left to finish on its own: its reads now end.
    }
}

fn spawn_script<R: Send + 'static>(script: impl FnOnce() -> R + Send + 'static) -> JoinHandle<R> {
    std::thread::Builder::new()
        .name("qmp-mock".into())
        .spawn(script)
        .expect("mock thread")
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A private directory for a mock's socket, removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub(crate) fn new() -> io::Result<TempDir> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "qmp-mock-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&path)?;
        Ok(TempDir { path })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn socket_path(&self) -> PathBuf {
        self.path.join("qmp.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
