//! [`Qmp`]: a connected, negotiated QMP client.

use crate::answer::answer;
use crate::call::Call;
use crate::engine::Shared;
use crate::record::Recording;
use crate::runtime::Runtime;
use crate::subscription::{SubscribeOptions, Subscription};
use crate::{dial, ConnectOptions, Error};
use qmp_proto::typed::schema::Schema;
use qmp_proto::{
    Client, Cursor, DroppedReplies, End, EventFilter, Greeting, QmpError, Router, Sequenced,
};
use serde::Serialize;
use std::future::{poll_fn, Future};
use std::io;
use std::net::ToSocketAddrs;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};

/// A QMP connection over runtime `R`. Cheap to clone (`Send + Sync`): every
/// clone talks over the same socket, and any number of tasks may run
/// commands at once.
///
/// The connection closes when the last clone is dropped, on
/// [`close`](Qmp::close), or when QEMU closes it.
pub struct Qmp<R: Runtime> {
    inner: Arc<Inner<R>>,
}

impl<R: Runtime> Clone for Qmp<R> {
    fn clone(&self) -> Self {
        Qmp {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<R: Runtime> {
    shared: Arc<Shared<R>>,
    options: ConnectOptions,
    greeting: Greeting,
    can_pass_fds: bool,
    /// The connected QEMU's schema, once fetched.
    schema: OnceLock<Arc<Schema>>,
}

impl<R: Runtime> Drop for Inner<R> {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl<R: Runtime> std::fmt::Debug for Qmp<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qmp")
            .field("greeting", &self.inner.greeting)
            .finish_non_exhaustive()
    }
}

/// Closes a half-made connection unless emptied first.
struct CloseOnDrop<R: Runtime>(Option<Arc<Shared<R>>>);

impl<R: Runtime> Drop for CloseOnDrop<R> {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.close();
        }
    }
}

impl<R: Runtime> Qmp<R> {
    /// Connects to the QMP socket at `path` (`-qmp unix:PATH,server=on`),
    /// reads the greeting and negotiates capabilities, all within
    /// `options.connect_timeout`.
    ///
    /// Cancel safety: dropping the future closes the half-made connection.
    pub async fn connect_unix(
        path: impl AsRef<Path>,
        options: ConnectOptions,
    ) -> Result<Self, Error> {
        let runtime = R::current().map_err(connect_error)?;
        let path = path.as_ref();
        if options.retry_until_ready {
            let dial = dial::until_ready(&runtime, || dial::unix(&runtime, path));
            Self::establish(&runtime, dial, true, options).await
        } else {
            let dial = dial::unix(&runtime, path);
            Self::establish(&runtime, dial, true, options).await
        }
    }

    /// Connects to a QMP server over TCP (`-qmp tcp:HOST:PORT,server=on`).
    /// The name lookup runs on a short-lived thread of its own and counts
    /// against the connect timeout. File descriptors cannot be passed over
    /// TCP.
    ///
    /// Cancel safety: dropping the future closes the half-made connection.
    pub async fn connect_tcp(
        addr: impl ToSocketAddrs + Send + 'static,
        options: ConnectOptions,
    ) -> Result<Self, Error> {
        let runtime = R::current().map_err(connect_error)?;
        if options.retry_until_ready {
            let dial = async {
                let candidates = dial::resolve(addr).await?;
                dial::until_ready(&runtime, || dial::tcp_any(&runtime, &candidates)).await
            };
            Self::establish(&runtime, dial, false, options).await
        } else {
            let dial = dial::tcp(&runtime, addr);
            Self::establish(&runtime, dial, false, options).await
        }
    }

    /// Waits for QEMU to connect to `listener` and talks QMP over that
    /// connection, for deployments that let QEMU dial a socket they made
    /// (`-chardev socket,id=mon0,path=PATH,server=off -mon
    /// chardev=mon0,mode=control`, or `host=...,port=...` over TCP):
    /// accepting, reading the greeting and negotiating all happen within
    /// `options.connect_timeout`. Takes one connection; call it again for
    /// the next. The listener is put in non-blocking mode. Descriptors
    /// can be passed if it is a Unix socket.
    ///
    /// Cancel safety: dropping the future leaves the listener as it was
    /// (but non-blocking) and closes a connection taken meanwhile.
    pub async fn accept(
        listener: impl std::os::fd::AsFd,
        options: ConnectOptions,
    ) -> Result<Self, Error> {
        let runtime = R::current().map_err(connect_error)?;
        let listener = listener.as_fd();
        let unix = dial::is_unix(listener).map_err(connect_error)?;
        let dial = dial::accept(&runtime, listener);
        Self::establish(&runtime, dial, unix, options).await
    }

    /// Talks QMP over an already-connected Unix stream: one end of a
    /// socketpair, or a descriptor inherited from a parent process.
    ///
    /// Cancel safety: as [`connect_unix`](Qmp::connect_unix).
    pub async fn from_unix_stream(
        stream: UnixStream,
        options: ConnectOptions,
    ) -> Result<Self, Error> {
        let runtime = R::current().map_err(connect_error)?;
        let dial = async { dial::adopt(&runtime, stream) };
        Self::establish(&runtime, dial, true, options).await
    }

    /// Dials, reads the greeting and negotiates, all before one deadline,
    /// in the caller's own future.
    async fn establish(
        runtime: &R,
        dial: impl Future<Output = io::Result<R::Socket>>,
        can_pass_fds: bool,
        options: ConnectOptions,
    ) -> Result<Self, Error> {
        let deadline = Instant::now().checked_add(options.connect_timeout);
        let handshake = async {
            let socket = dial.await.map_err(connect_error)?;
            let client = Client::new(options.client.clone());
            let router = Router::new(client, options.router.clone());
            let recording = (options.record.clone())
                .map(|sink| Recording::new(sink, options.client.max_message_size));
            let shared = Shared::new(runtime.clone(), socket, router, recording);
            let mut abandon = CloseOnDrop(Some(shared.clone()));
            shared
                .wait(|state, _| {
                    let router = &state.router;
                    if router.client().is_ready() || router.end().is_some() {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
            let greeting = shared.read(|router: &Router<_>| match router.end() {
                Some(end) => Err(Error::Closed(end.clone())),
                None => (router.client().greeting().cloned()).ok_or(Error::Closed(End::Local)),
            })?;
            abandon.0 = None;
            let inner = Inner {
                shared,
                options: options.clone(),
                greeting,
                can_pass_fds,
                schema: OnceLock::new(),
            };
            Ok(Qmp {
                inner: Arc::new(inner),
            })
        };
        within(runtime, deadline, handshake)
            .await
            .unwrap_or(Err(Error::ConnectTimeout))
    }

    pub(crate) fn shared(&self) -> &Shared<R> {
        &self.inner.shared
    }

    pub(crate) fn options(&self) -> &ConnectOptions {
        &self.inner.options
    }

    pub(crate) fn can_pass_fds(&self) -> bool {
        self.inner.can_pass_fds
    }

    pub(crate) fn schema_cache(&self) -> &OnceLock<Arc<Schema>> {
        &self.inner.schema
    }

    /// The server's greeting: its version and the capabilities it offers.
    pub fn greeting(&self) -> &Greeting {
        &self.inner.greeting
    }

    /// Whether out-of-band execution was negotiated.
    pub fn oob_enabled(&self) -> bool {
        self.shared().read(|router| router.client().oob_enabled())
    }

    /// Why the connection ended, once it has. What the socket holds is
    /// read first, so an end that nobody waited on is seen here.
    pub fn end_reason(&self) -> Option<End> {
        self.shared().catch_up();
        self.shared().read(|router| router.end().cloned())
    }

    /// Command `name` with `arguments` (anything that serializes to a JSON
    /// object, or `&()` for none): the one way to run a command. Await it
    /// for the raw `return` value, or set it up first: a
    /// [`timeout`](Call::timeout), [`oob`](Call::oob) execution,
    /// descriptors to [pass](Call::fds), the type to
    /// [`decode`](Call::decode) the result into, in any combination.
    ///
    /// ```no_run
    /// # async fn f(qmp: qmp_client::Qmp<impl qmp_client::Runtime>) -> Result<(), qmp_client::Error> {
    /// use std::time::Duration;
    /// let raw = qmp.call("query-status", &()).await?;
    /// let name: serde_json::Value = qmp
    ///     .call("query-name", &())
    ///     .timeout(Duration::from_secs(2))
    ///     .decode()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn call<'a, A>(&'a self, name: &'a str, arguments: &'a A) -> Call<'a, R, A>
    where
        A: Serialize + Sync + ?Sized,
    {
        Call::new(self, name, arguments)
    }

    /// Error replies QEMU sent without an id that no call could be
    /// answered with (no command was in flight), oldest first, since the
    /// last call; the last 64 are kept.
    pub fn take_unattributed_errors(&self) -> Vec<QmpError> {
        self.shared()
            .update(|state| state.router.take_unattributed())
    }

    /// How many replies were dropped instead of delivered: unknown ids, and
    /// late replies to calls that had timed out or were cancelled.
    pub fn dropped_replies(&self) -> DroppedReplies {
        self.shared()
            .read(|router| router.client().dropped_replies())
    }

    /// A cursor at the end of the event stream: it covers the events that
    /// come from now on. Take it before running a command whose event you
    /// will [wait for](Qmp::wait_for_event). What the socket holds already
    /// is read first, so an event QEMU sent before this call is not taken
    /// for a later one.
    pub fn cursor(&self) -> Cursor {
        self.shared().catch_up();
        self.shared().read(|router| router.cursor())
    }

    /// The kept events at or after `after` that pass `filter`, without
    /// waiting (go-qmp's `FindEvents`). [`Cursor::START`] looks at every
    /// event since the connection began (those before the greeting, which
    /// some QEMU versions send, included) that the history still holds.
    pub fn find_events(&self, after: Cursor, filter: &EventFilter) -> Vec<Sequenced> {
        self.shared().catch_up();
        self.shared()
            .read(|router| router.find_events(after, filter).cloned().collect())
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
        let shared = self.shared();
        let wait = async {
            let (found_to, found) = answer();
            shared.update(|state| state.router.wait_for_event(after, filter, found_to));
            shared.wait(|_, cx| found.poll_take(cx)).await
        };
        let deadline = Instant::now().checked_add(timeout);
        match within(&shared.runtime, deadline, wait).await {
            None => Err(Error::Timeout),
            Some(Ok(found)) => found.map_err(Error::from),
            Some(Err(_)) => Err(self.closed_error()),
        }
    }

    /// A stream of the events that pass `filter`, from now on. It holds at
    /// most `options.subscriber_capacity` unread events; past that it
    /// tells how many it missed ([`Notice::Lagged`](crate::Notice::Lagged)).
    /// It ends when the connection does.
    pub fn subscribe(&self, filter: EventFilter) -> Subscription<R> {
        self.subscribe_with(filter, SubscribeOptions::default())
    }

    /// A stream of the events that pass `filter`, set up with `options`:
    /// from a cursor (e.g. [`Cursor::START`], for the events that came with
    /// the negotiation reply), with a capacity of its own, or lossless.
    ///
    /// ```no_run
    /// # async fn f(qmp: qmp_client::Qmp<impl qmp_client::Runtime>) {
    /// use qmp_client::{Cursor, EventFilter, Notice, SubscribeOptions};
    /// let options = SubscribeOptions::default().from(Cursor::START).lossless(true);
    /// let mut jobs = qmp.subscribe_with(EventFilter::name("JOB_STATUS_CHANGE"), options);
    /// while let Some(Notice::Event(job)) = jobs.next().await {
    ///     println!("{}: {:?}", job.sequence, job.event.data);
    /// }
    /// # }
    /// ```
    pub fn subscribe_with(
        &self,
        filter: EventFilter,
        options: SubscribeOptions,
    ) -> Subscription<R> {
        let capacity = self.inner.options.subscriber_capacity;
        Subscription::new(self.inner.shared.clone(), filter, options, capacity)
    }

    /// Waits until the connection ends, reading the socket meanwhile (so
    /// events are recorded and subscribers fed), and says why it ended.
    ///
    /// Cancel safety: dropping the future only stops the wait.
    pub async fn closed(&self) -> End {
        self.shared()
            .wait(|state, _| match state.router.end() {
                Some(end) => Poll::Ready(end.clone()),
                None => Poll::Pending,
            })
            .await
    }

    /// Closes the connection, at once: pending calls fail with
    /// [`End::Local`], subscriptions end, what the socket takes at once of
    /// what was still to be sent is written and the rest dropped (a QEMU
    /// that stopped reading cannot keep the socket open), and the socket
    /// is closed before this returns.
    pub fn close(&self) {
        self.shared().close();
    }

    /// The error of a wait that the connection's end left unanswered.
    pub(crate) fn closed_error(&self) -> Error {
        Error::Closed(self.end_reason().unwrap_or(End::Local))
    }
}

fn connect_error(e: io::Error) -> Error {
    Error::Connect(Arc::new(e))
}

/// `work`'s output, or `None` once `deadline` has passed (never without a
/// deadline).
pub(crate) async fn within<R: Runtime, F: Future>(
    runtime: &R,
    deadline: Option<Instant>,
    work: F,
) -> Option<F::Output> {
    let Some(deadline) = deadline else {
        return Some(work.await);
    };
    let mut work = pin!(work);
    let mut sleep = pin!(runtime.sleep_until(deadline));
    poll_fn(|cx| {
        if let Poll::Ready(output) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        sleep.as_mut().poll(cx).map(|()| None)
    })
    .await
}
