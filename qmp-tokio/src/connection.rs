//! [`Qmp`]: a connected, negotiated QMP client.

use crate::shared::Shared;
use crate::transport::{self, Driver, Socket};
use qmp_proto::{Client, ConnectOptions, End, Error, Router};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use tokio::net::ToSocketAddrs;
use tokio::sync::oneshot;

impl Qmp {
    /// Connects to the QMP socket at `path`, reads the greeting and
    /// negotiates capabilities, all within `options.connect_timeout`.
    ///
    /// Cancel safety: dropping the future closes the half-made connection.
    pub async fn connect_unix(
        path: impl AsRef<Path>,
        options: ConnectOptions,
    ) -> Result<Qmp, Error> {
        let path = path.as_ref();
        Qmp::establish(transport::dial_unix(path), options).await
    }

    /// Connects to a QMP server over TCP (`-qmp tcp:HOST:PORT,server=on`).
    /// File descriptors cannot be passed over TCP.
    ///
    /// Cancel safety: dropping the future closes the half-made connection.
    pub async fn connect_tcp(
        addr: impl ToSocketAddrs,
        options: ConnectOptions,
    ) -> Result<Qmp, Error> {
        Qmp::establish(transport::dial_tcp(addr), options).await
    }

    /// Talks QMP over an already-connected Unix stream: one end of a
    /// socketpair, or a descriptor inherited from a parent process.
    ///
    /// Must be called inside a tokio runtime. Cancel safety: as
    /// [`connect_unix`](Qmp::connect_unix).
    pub async fn from_unix_stream(
        stream: std::os::unix::net::UnixStream,
        options: ConnectOptions,
    ) -> Result<Qmp, Error> {
        Qmp::establish(async { transport::adopt_unix(stream) }, options).await
    }

    /// Dials, reads the greeting and negotiates, all before one deadline;
    /// only a negotiated connection gets its task.
    ///
    /// Where the handshake runs decides how many times it crosses between
    /// threads. A runtime worker is woken by the socket's readiness itself,
    /// so a caller on a worker (a task, or the `block_on` of a
    /// current-thread runtime) does the handshake in this future and
    /// starts the connection's task only afterwards: woken twice, as a
    /// blocking client is. The `block_on` of a multi-thread runtime is not
    /// woken by the socket: a worker sees it ready and wakes the caller, a
    /// hop for the greeting and another for the reply. There the
    /// connection's task does the handshake, on a worker, and wakes the
    /// caller once, at the end. The deadline's timer is always the
    /// caller's: started on a worker, it would also wake the runtime's
    /// other, idle worker. Either way, dropping this future closes the
    /// half-made connection.
    async fn establish(
        dial: impl Future<Output = Result<Socket, Error>>,
        options: ConnectOptions,
    ) -> Result<Qmp, Error> {
        let deadline = tokio::time::Instant::now() + options.connect_timeout;
        // A Unix socket is dialed without waiting: no timer starts then.
        let mut driver = Driver::new(before(deadline, dial).await?);
        let router = Router::new(Client::new(options.client.clone()), options.router.clone());
        let shared = Arc::new(Shared::new(router));
        let socket = driver.socket();
        let can_pass_fds = socket.can_pass_fds();
        shared.lock().socket = Some(socket);
        if woken_by_the_socket() {
            before(deadline, async {
                driver.negotiate(&shared).await.map_err(Error::Closed)
            })
            .await?;
            tokio::spawn(in_connection_span(driver.serve(shared.clone())));
        } else {
            let (done, outcome) = oneshot::channel();
            let task_shared = shared.clone();
            let task = tokio::spawn(in_connection_span(async move {
                let negotiated = driver.negotiate(&task_shared).await;
                let ready = negotiated.is_ok();
                // If nobody waits any more, the connection closes here.
                if done.send(negotiated).is_ok() && ready {
                    driver.serve(task_shared).await;
                }
            }));
            let mut abort = AbortOnDrop(Some(task));
            before(deadline, async {
                outcome
                    .await
                    .unwrap_or(Err(End::Local))
                    .map_err(Error::Closed)
            })
            .await?;
            abort.0 = None;
        }
        Qmp::negotiated(shared, options, can_pass_fds)
    }

    /// The turn of a command with descriptors (see `execute_with_fds`).
    async fn take_fd_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.fd_turn.lock().await
    }
}

// The handle and its runtime-independent methods, after the ones above
// (connecting) so that the docs list those first.
qmp_proto::__adapter_connection!(fd_turn: tokio::sync::Mutex<()>);

/// `work`, or [`Error::ConnectTimeout`] at `deadline`.
async fn before<T>(
    deadline: tokio::time::Instant,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout_at(deadline, work)
        .await
        .unwrap_or(Err(Error::ConnectTimeout))
}

/// Whether this thread is woken by the runtime's I/O readiness itself: a
/// worker running a task, or the `block_on` of a current-thread runtime
/// (which drives its I/O); not the `block_on` of a multi-thread runtime.
fn woken_by_the_socket() -> bool {
    tokio::task::try_id().is_some()
        || tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::CurrentThread
}

/// Aborts the handshake's task unless emptied first: the connection of a
/// `connect` that was dropped or timed out is closed.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// Runs a connection's task inside a `qmp` span, so its trace events group
/// by connection.
#[cfg(feature = "tracing")]
fn in_connection_span<F: std::future::Future>(
    task: F,
) -> impl std::future::Future<Output = F::Output> {
    use tracing::Instrument;
    task.instrument(tracing::debug_span!("qmp"))
}

#[cfg(not(feature = "tracing"))]
fn in_connection_span<F: std::future::Future>(task: F) -> F {
    task
}
