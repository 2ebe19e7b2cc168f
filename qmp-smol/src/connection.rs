//! [`Qmp`]: a connected, negotiated QMP client.

use crate::driver::{self, Deadline};
use crate::shared::{Shared, Socket};
use async_io::Async;
use futures_lite::future;
use qmp_proto::{Client, ConnectOptions, Error, Router};
use std::future::Future;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Closes a connection whose `connect` was given up (dropped, timed out or
/// failed).
struct Abandon(Option<Arc<Shared>>);

impl Drop for Abandon {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.close();
        }
    }
}

/// The turn of a command with descriptors: a token in a channel of one,
/// made on first use.
#[derive(Default)]
struct FdTurns(OnceLock<(async_channel::Sender<()>, async_channel::Receiver<()>)>);

impl FdTurns {
    async fn take(&self) -> FdTurn<'_> {
        let (give_back, take) = self.0.get_or_init(|| {
            let token = async_channel::bounded(1);
            token.0.try_send(()).ok();
            token
        });
        // The token's sender lives in `self`, so the channel never closes.
        take.recv().await.ok();
        FdTurn(give_back)
    }
}

/// Gives the descriptor-passing token back.
struct FdTurn<'a>(&'a async_channel::Sender<()>);

impl Drop for FdTurn<'_> {
    fn drop(&mut self) {
        self.0.try_send(()).ok();
    }
}

impl Qmp {
    /// Connects to the QMP socket at `path`, reads the greeting and
    /// negotiates capabilities, all within `options.connect_timeout`.
    ///
    /// Cancel safety: dropping the future closes the half-made connection.
    pub async fn connect_unix(
        path: impl AsRef<Path>,
        options: ConnectOptions,
    ) -> Result<Qmp, Error> {
        Qmp::start(dial_unix(path.as_ref()), true, options).await
    }

    /// Connects to a QMP server over TCP (`-qmp tcp:HOST:PORT,server=on`).
    /// File descriptors cannot be passed over TCP.
    ///
    /// The address is resolved on a short-lived thread of its own, so a
    /// slow name lookup blocks no executor; it counts against the connect
    /// timeout.
    ///
    /// Cancel safety: dropping the future closes the half-made connection.
    pub async fn connect_tcp(
        addr: impl ToSocketAddrs + Send + 'static,
        options: ConnectOptions,
    ) -> Result<Qmp, Error> {
        Qmp::start(dial_tcp(addr), false, options).await
    }

    /// Talks QMP over an already-connected Unix stream: one end of a
    /// socketpair, or a descriptor inherited from a parent process.
    ///
    /// Cancel safety: as [`connect_unix`](Qmp::connect_unix).
    pub async fn from_unix_stream(
        stream: UnixStream,
        options: ConnectOptions,
    ) -> Result<Qmp, Error> {
        Qmp::start(async { Async::new(OwnedFd::from(stream)) }, true, options).await
    }

    /// Dials, then reads the greeting and negotiates on the caller's own
    /// task, within the connect timeout (measured by the driver thread's
    /// clock, to its resolution of 10 ms); only then does the driver take
    /// over whenever no caller reads the socket.
    async fn start(
        dial: impl Future<Output = io::Result<Socket>>,
        can_pass_fds: bool,
        options: ConnectOptions,
    ) -> Result<Qmp, Error> {
        driver::start().map_err(|e| Error::Connect(Arc::new(e)))?;
        let deadline = Instant::now().checked_add(options.connect_timeout);
        let timed_out = async {
            match deadline {
                Some(at) => Deadline::at(at).await,
                None => future::pending().await,
            }
            Err(Error::ConnectTimeout)
        };
        future::or(Qmp::negotiate(dial, can_pass_fds, options), timed_out).await
    }

    async fn negotiate(
        dial: impl Future<Output = io::Result<Socket>>,
        can_pass_fds: bool,
        options: ConnectOptions,
    ) -> Result<Qmp, Error> {
        let socket = dial.await.map_err(|e| Error::Connect(Arc::new(e)))?;
        let router = Router::new(Client::new(options.client.clone()), options.router.clone());
        let shared = Shared::new(router, socket);
        let mut abandon = Abandon(Some(shared.clone()));
        shared.negotiate().await;

        let qmp = Qmp::negotiated(shared, options, can_pass_fds)?;
        abandon.0 = None;
        Ok(qmp)
    }

    /// The turn of a command with descriptors (see `execute_with_fds`).
    async fn take_fd_turn(&self) -> FdTurn<'_> {
        self.inner.fd_turn.take().await
    }
}

// The handle and its runtime-independent methods, after the ones above
// (connecting) so that the docs list those first.
qmp_proto::__adapter_connection!(fd_turn: FdTurns);

/// Dials the Unix socket at `path`. A Unix socket connects at once unless
/// its listener's backlog is full; then, or for a path that cannot be
/// dialed directly, async-io dials it, waiting as needed, with the usual
/// errors.
async fn dial_unix(path: &Path) -> io::Result<Socket> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let at_once = SocketAddrUnix::new(path).and_then(|address| {
        let socket =
            rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None)?;
        rustix::net::connect(&socket, &address).map(|()| socket)
    });
    let socket = match at_once {
        Ok(socket) => socket,
        Err(_) => OwnedFd::from(Async::<UnixStream>::connect(path).await?.into_inner()?),
    };
    Async::new_nonblocking(socket)
}

/// Dials the first address of `addr` that answers, with Nagle off. The
/// name lookup blocks, so it runs on a thread of its own.
async fn dial_tcp(addr: impl ToSocketAddrs + Send + 'static) -> io::Result<Socket> {
    let (found, lookup) = async_channel::bounded(1);
    std::thread::Builder::new()
        .name("qmp-smol-lookup".into())
        .spawn(move || {
            let candidates = addr.to_socket_addrs().map(Iterator::collect::<Vec<_>>);
            found.try_send(candidates).ok();
        })?;
    let candidates = lookup
        .recv()
        .await
        .map_err(|_| io::Error::other("the name lookup failed"))??;
    let mut last = None;
    for candidate in candidates {
        match Async::<TcpStream>::connect(candidate).await {
            Ok(stream) => {
                let stream = stream.into_inner()?;
                stream.set_nodelay(true)?;
                return Async::new_nonblocking(OwnedFd::from(stream));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        )
    }))
}
