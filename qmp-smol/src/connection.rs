//! [`Qmp`]: a connected, negotiated QMP client.

use crate::answer::{answer, Unanswered};
use crate::driver::{self, Deadline};
use crate::shared::{Shared, Socket};
use crate::subscription::Subscription;
use async_io::{Async, Timer};
use futures_lite::future;
use qmp_proto::notice_queue::notice_queue;
use qmp_proto::{
    Client, ConnectOptions, Cursor, DroppedReplies, End, Error, EventFilter, Greeting, QmpError,
    RawJson, RequestId, Router, Sequenced,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

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
    /// One token: whoever holds it may run a command with descriptors, so
    /// each command's descriptors reach QEMU before any other's. Made on
    /// first use.
    fd_turn: OnceLock<(async_channel::Sender<()>, async_channel::Receiver<()>)>,
    schema: qmp_proto::typed::schema::SchemaCache,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl std::fmt::Debug for Qmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qmp")
            .field("greeting", &self.inner.greeting)
            .finish_non_exhaustive()
    }
}

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

/// A command awaiting its reply; dropping it (the caller stopped waiting, or
/// timed out) makes the router forget the command.
struct InFlight<'a> {
    shared: &'a Shared,
    id: RequestId,
}

impl InFlight<'_> {
    /// The command was answered: the router has let go of it already.
    fn answered(self) {
        std::mem::forget(self);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.shared.lock().router.forget(self.id);
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

        let greeting = {
            let state = shared.lock();
            if let Some(end) = state.router.end() {
                return Err(Error::Closed(end.clone()));
            }
            state.router.client().greeting().cloned()
        }
        .ok_or(Error::Closed(End::Local))?;
        abandon.0 = None;
        Ok(Qmp {
            inner: Arc::new(Inner {
                shared,
                options,
                greeting,
                can_pass_fds,
                fd_turn: OnceLock::new(),
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
        self.inner
            .shared
            .read(|router| router.client().oob_enabled())
    }

    /// Why the connection ended, once it has.
    pub fn end_reason(&self) -> Option<End> {
        self.inner.shared.read(|router| router.end().cloned())
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
        let timeout = self.inner.options.call_timeout;
        self.call(name, arguments, false, timeout, Vec::new()).await
    }

    /// Runs a command and decodes its `return` value into `R`.
    ///
    /// Cancel safety: as [`execute_raw`](Qmp::execute_raw).
    pub async fn execute_as<R: DeserializeOwned, A: Serialize + ?Sized>(
        &self,
        name: &str,
        arguments: &A,
    ) -> Result<R, Error> {
        let raw = self.execute_raw(name, arguments).await?;
        raw.decode().map_err(Error::from)
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
        let timeout = Some(timeout);
        self.call(name, arguments, false, timeout, Vec::new()).await
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
        let timeout = self.inner.options.call_timeout;
        self.call(name, arguments, true, timeout, Vec::new()).await
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
        let (give_back, take) = self.inner.fd_turn.get_or_init(|| {
            let token = async_channel::bounded(1);
            token.0.try_send(()).ok();
            token
        });
        // The token's sender lives in `Inner`, so the channel never closes.
        take.recv().await.ok();
        let _turn = FdTurn(give_back);
        let timeout = self.inner.options.call_timeout;
        self.call(name, arguments, false, timeout, fds).await
    }

    async fn call<A: Serialize + ?Sized>(
        &self,
        name: &str,
        arguments: &A,
        oob: bool,
        timeout: Option<Duration>,
        fds: Vec<OwnedFd>,
    ) -> Result<RawJson, Error> {
        let shared = &*self.inner.shared;
        let (reply_to, reply) = answer();
        let issued = shared.update(|state| {
            let issued = state.router.execute(name, arguments, oob, reply_to);
            if issued.is_some() {
                state.fds.extend(fds);
            }
            issued
        });
        let in_flight = issued.map(|id| InFlight { shared, id });
        let answer = match timeout {
            None => shared.receive(&reply).await,
            Some(limit) => within(limit, shared.receive(&reply))
                .await
                .ok_or(Error::Timeout)?,
        };
        if let Some(call) = in_flight {
            if answer.is_ok() {
                call.answered();
            }
        }
        self.settle(answer)
    }

    /// Turns what a waiter received into the caller's result: its sender
    /// dropped unanswered means the connection went away.
    fn settle<T>(
        &self,
        answer: Result<Result<T, qmp_proto::Failure>, Unanswered>,
    ) -> Result<T, Error> {
        let result = answer.map_err(|_| Error::Closed(self.end_reason().unwrap_or(End::Local)))?;
        result.map_err(Error::from)
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
        self.inner
            .shared
            .read(|router| router.client().dropped_replies())
    }

    /// A cursor at the end of the event stream. Take it before running a
    /// command whose event you will [wait for](Qmp::wait_for_event).
    pub fn cursor(&self) -> Cursor {
        self.inner.shared.read(Router::cursor)
    }

    /// The kept events at or after `after` that pass `filter`, without
    /// waiting (go-qmp's `FindEvents`).
    pub fn find_events(&self, after: Cursor, filter: &EventFilter) -> Vec<Sequenced> {
        let found = |router: &Router<_>| router.find_events(after, filter).cloned().collect();
        self.inner.shared.read(found)
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
        let (found_to, found) = answer();
        self.inner
            .shared
            .update(|state| state.router.wait_for_event(after, filter, found_to));
        let answer = within(timeout, self.inner.shared.receive(&found))
            .await
            .ok_or(Error::Timeout)?;
        self.settle(answer)
    }

    /// A stream of the events that pass `filter`, from now on. It holds at
    /// most `options.subscriber_capacity` unread events; past that it tells
    /// how many it missed ([`Notice::Lagged`](qmp_proto::Notice::Lagged)).
    /// It ends when the connection does.
    pub fn subscribe(&self, filter: EventFilter) -> Subscription {
        let (sink, events) = notice_queue(self.inner.options.subscriber_capacity);
        // An update: the driver must read for the subscriber from now on.
        let id = (self.inner.shared).update(|state| state.router.subscribe(filter, sink));
        Subscription::new(events, id, self.inner.shared.clone())
    }

    /// Closes the connection: pending calls fail with
    /// [`End::Local`], subscriptions end.
    ///
    /// Cancel safety: the connection is closed, all at once, by the first
    /// poll, which completes the future.
    pub async fn close(&self) {
        self.inner.shared.close();
    }
}

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

/// `work`'s output, or `None` if `limit` passes first.
async fn within<F: Future>(limit: Duration, work: F) -> Option<F::Output> {
    future::or(async { Some(work.await) }, async {
        Timer::after(limit).await;
        None
    })
    .await
}
