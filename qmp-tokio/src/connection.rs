//! [`Qmp`]: a connected, negotiated QMP client.

use crate::shared::Shared;
use crate::subscription::Subscription;
use crate::transport::{self, Driver, Socket};
use qmp_proto::notice_queue::notice_queue;
use qmp_proto::{
    Client, ConnectOptions, Cursor, DroppedReplies, End, Error, EventFilter, Greeting, QmpError,
    RawJson, RequestId, Router, Sequenced,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::ToSocketAddrs;
use tokio::sync::oneshot;

/// A QMP connection. Cheap to clone (`Send + Sync`): every clone talks over
/// the same socket, and any number of tasks may run commands at once.
///
/// The connection closes when the last clone is dropped, or on
/// [`close`](Qmp::close).
#[derive(Clone)]
pub struct Qmp {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    options: ConnectOptions,
    greeting: Greeting,
    can_pass_fds: bool,
    /// Serializes commands that carry file descriptors, so each command's
    /// descriptors reach QEMU before any other's.
    fd_call: tokio::sync::Mutex<()>,
    schema: qmp_proto::typed::schema::SchemaCache,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The connection's task sees the end, writes what was left to send
        // and closes the socket.
        self.shared.with_router(|router| router.close());
    }
}

impl std::fmt::Debug for Qmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qmp")
            .field("greeting", &self.inner.greeting)
            .finish_non_exhaustive()
    }
}

/// Forgets a command whose caller stopped waiting (dropped or timed out).
struct ForgetOnDrop<'a> {
    shared: &'a Shared,
    id: Option<RequestId>,
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.shared.lock().router.forget(id);
        }
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
        let mut driver = Driver::new(within(deadline, dial).await?);
        let router = Router::new(Client::new(options.client.clone()), options.router.clone());
        let shared = Arc::new(Shared::new(router));
        let socket = driver.socket();
        let can_pass_fds = socket.can_pass_fds();
        shared.lock().socket = Some(socket);
        if woken_by_the_socket() {
            within(deadline, async {
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
            within(deadline, async {
                outcome
                    .await
                    .unwrap_or(Err(End::Local))
                    .map_err(Error::Closed)
            })
            .await?;
            abort.0 = None;
        }
        let greeting = shared.lock().router.client().greeting().cloned();
        Ok(Qmp {
            inner: Arc::new(Inner {
                shared,
                options,
                greeting: greeting.ok_or(Error::Closed(End::Local))?,
                can_pass_fds,
                fd_call: tokio::sync::Mutex::new(()),
                schema: Default::default(),
            }),
        })
    }

    /// The connection's schema, once fetched (see `schema`, in `typed`).
    pub(crate) fn schema_cache(&self) -> &qmp_proto::typed::schema::SchemaCache {
        &self.inner.schema
    }

    /// The server's greeting: its version and the capabilities it offers.
    pub fn greeting(&self) -> &Greeting {
        &self.inner.greeting
    }

    /// Whether out-of-band execution was negotiated.
    pub fn oob_enabled(&self) -> bool {
        self.inner.shared.lock().router.client().oob_enabled()
    }

    /// Why the connection ended, once it has.
    pub fn end_reason(&self) -> Option<End> {
        self.inner.shared.lock().router.end().cloned()
    }

    /// Runs command `name` with `arguments` (anything that serializes to a
    /// JSON object, or `&()` for none) and returns its raw `return` value.
    /// Uses the default call timeout of the options, if any.
    ///
    /// Cancel safety: dropping the future at any await point leaves the
    /// connection fully usable; the command is not sent if it had not been
    /// yet, and its late reply is dropped.
    pub async fn execute_raw<A: Serialize + ?Sized>(
        &self,
        name: &str,
        arguments: &A,
    ) -> Result<RawJson, Error> {
        self.call(
            name,
            arguments,
            false,
            self.inner.options.call_timeout,
            Vec::new(),
        )
        .await
    }

    /// Runs a command and decodes its `return` value into `R`.
    ///
    /// Cancel safety: as [`execute_raw`](Qmp::execute_raw).
    pub async fn execute_as<R: DeserializeOwned, A: Serialize + ?Sized>(
        &self,
        name: &str,
        arguments: &A,
    ) -> Result<R, Error> {
        Ok(self.execute_raw(name, arguments).await?.decode()?)
    }

    /// Runs a command with its own deadline; on timeout the connection stays
    /// usable and the late reply is dropped.
    ///
    /// Cancel safety: as [`execute_raw`](Qmp::execute_raw).
    pub async fn execute_timeout<A: Serialize + ?Sized>(
        &self,
        name: &str,
        arguments: &A,
        timeout: Duration,
    ) -> Result<RawJson, Error> {
        self.call(name, arguments, false, Some(timeout), Vec::new())
            .await
    }

    /// Runs a command out of band (`exec-oob`), past queued in-band ones.
    /// Needs OOB negotiated ([`ConnectOptions::want_oob`]).
    ///
    /// Cancel safety: as [`execute_raw`](Qmp::execute_raw).
    pub async fn execute_oob<A: Serialize + ?Sized>(
        &self,
        name: &str,
        arguments: &A,
    ) -> Result<RawJson, Error> {
        self.call(
            name,
            arguments,
            true,
            self.inner.options.call_timeout,
            Vec::new(),
        )
        .await
    }

    /// Runs a command and passes `fds` with it (SCM_RIGHTS), as `getfd` and
    /// `add-fd` need. Only over a Unix socket.
    ///
    /// Cancel safety: as [`execute_raw`](Qmp::execute_raw); the descriptors
    /// are closed on our side once sent or dropped.
    pub async fn execute_with_fds<A: Serialize + ?Sized>(
        &self,
        name: &str,
        arguments: &A,
        fds: Vec<OwnedFd>,
    ) -> Result<RawJson, Error> {
        if !self.inner.can_pass_fds {
            return Err(Error::FdPassingUnsupported);
        }
        let _one_at_a_time = self.inner.fd_call.lock().await;
        self.call(name, arguments, false, self.inner.options.call_timeout, fds)
            .await
    }

    async fn call<A: Serialize + ?Sized>(
        &self,
        name: &str,
        arguments: &A,
        oob: bool,
        timeout: Option<Duration>,
        fds: Vec<OwnedFd>,
    ) -> Result<RawJson, Error> {
        let shared = &self.inner.shared;
        let (tx, rx) = oneshot::channel();
        let (id, wake_driver) = {
            let mut state = shared.lock();
            let id = state.router.execute(name, arguments, oob, tx);
            if id.is_some() {
                state.fds.extend(fds);
            }
            (id, state.flush())
        };
        if wake_driver {
            shared.wake_driver.notify_one();
        }
        let mut forget = ForgetOnDrop { shared, id };
        let outcome = match timeout {
            Some(limit) => tokio::time::timeout(limit, rx)
                .await
                .map_err(|_| Error::Timeout)?,
            None => rx.await,
        };
        // Answered (or failed with the connection): the router has already
        // let go of the call.
        forget.id = None;
        match outcome {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Err(Error::Closed(self.end_reason().unwrap_or(End::Local))),
        }
    }

    /// Error replies QEMU sent without an id (its answer to input it could
    /// not parse), oldest first, since the last call; the last 64 are kept.
    /// No caller receives them, so this is the only place they show.
    pub fn take_unattributed_errors(&self) -> Vec<QmpError> {
        self.inner.shared.lock().router.take_unattributed()
    }

    /// How many replies were dropped instead of delivered: unknown ids, and
    /// late replies to calls that had timed out or were cancelled.
    pub fn dropped_replies(&self) -> DroppedReplies {
        self.inner.shared.lock().router.client().dropped_replies()
    }

    /// A cursor at the end of the event stream. Take it before running a
    /// command whose event you will [wait for](Qmp::wait_for_event).
    pub fn cursor(&self) -> Cursor {
        self.inner.shared.lock().router.cursor()
    }

    /// The kept events at or after `after` that pass `filter`, without
    /// waiting (go-qmp's `FindEvents`).
    pub fn find_events(&self, after: Cursor, filter: &EventFilter) -> Vec<Sequenced> {
        let state = self.inner.shared.lock();
        state.router.find_events(after, filter).cloned().collect()
    }

    /// Waits up to `timeout` for the first event at or after `after` that
    /// passes `filter`. The event may already have arrived: no race.
    ///
    /// Cancel safety: dropping the future drops the wait, nothing else.
    pub async fn wait_for_event(
        &self,
        after: Cursor,
        filter: EventFilter,
        timeout: Duration,
    ) -> Result<Sequenced, Error> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .shared
            .lock()
            .router
            .wait_for_event(after, filter, tx);
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(Error::Timeout),
            Ok(Ok(result)) => result.map_err(Error::from),
            Ok(Err(_)) => Err(Error::Closed(self.end_reason().unwrap_or(End::Local))),
        }
    }

    /// A stream of the events that pass `filter`, from now on. It holds at
    /// most `options.subscriber_capacity` unread events; past that it tells
    /// how many it missed ([`Notice::Lagged`](qmp_proto::Notice::Lagged)).
    /// It ends when the connection does.
    pub fn subscribe(&self, filter: EventFilter) -> Subscription {
        let (tx, rx) = notice_queue(self.inner.options.subscriber_capacity);
        let id = self.inner.shared.lock().router.subscribe(filter, tx);
        Subscription::new(rx, id, self.inner.shared.clone())
    }

    /// Closes the connection: pending calls fail with
    /// [`End::Local`], subscriptions end. The connection's task then writes
    /// what was still to be sent and closes the socket.
    ///
    /// Cancel safety: closing happens at once, on the first poll; the
    /// future waits for nothing.
    pub async fn close(&self) {
        self.inner.shared.with_router(|router| router.close());
    }
}

/// `work`, or [`Error::ConnectTimeout`] at `deadline`.
async fn within<T>(
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
