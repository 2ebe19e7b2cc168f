//! The connection's state, shared by the handles, the callers that read the
//! socket while they wait, and the driver: the router and the socket behind
//! one mutex, oneshots and qmp-proto's notice queues as the router's
//! [`Delivery`].
//!
//! Every read and every write of the socket is a non-blocking system call
//! made under that mutex, together with the router's handling of what it
//! read or produced, so bytes are fed to the router and written to the wire
//! in order whoever makes the call, and a future dropped between two calls
//! leaves nothing half done.

pub(crate) use crate::answer::{answer, Answer};
use crate::answer::{Answering, Unanswered};
use crate::driver::{self, Task};
use async_io::{Async, ReadableOwned, WritableOwned};
use bytes::Bytes;
use qmp_proto::notice_queue::NoticeSink;
use qmp_proto::router::Delivery;
use qmp_proto::{Failure, RawJson, Router, Sequenced};
use rustix::io::Errno;
use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// A connected socket, Unix or TCP: only `recv`/`send` are used on it.
pub(crate) type Socket = Async<OwnedFd>;

/// The most read from the socket in one call.
const READ_SIZE: usize = 64 * 1024;

/// The most reads in a row before whoever reads lets others run.
const READS_AT_ONCE: usize = 16;

/// Oneshots for calls and waits, bounded notice queues for subscribers.
pub(crate) struct Waiters;

impl Delivery for Waiters {
    type Call = Answering<Result<RawJson, Failure>>;
    type Wait = Answering<Result<Sequenced, Failure>>;
    type Subscriber = NoticeSink;
}

pub(crate) struct State {
    pub(crate) router: Router<Waiters>,
    /// Descriptors that go out with the next bytes written.
    pub(crate) fds: Vec<OwnedFd>,
    /// The socket, until the connection has ended and everything is
    /// written.
    socket: Option<Arc<Socket>>,
    /// Bytes taken from the router and not written yet (the socket was
    /// full); written before any new ones.
    unsent: Option<Bytes>,
    /// Where reads land: empty, with room for [`READ_SIZE`] bytes.
    buffer: Vec<u8>,
    /// A caller reads the socket while it waits (it holds the [`Turn`]);
    /// the driver does not.
    caller_reads: bool,
    /// That caller's waker, for the watchdog to wake after reading for it.
    reader: Option<Waker>,
    /// Callers waiting for an answer without the read turn, longest
    /// waiting first, with their wakers: the turn goes to the first when
    /// its holder is done.
    waiters: BTreeMap<u64, Waker>,
    /// The last waiter's number.
    last_waiter: u64,
    /// The waiter the turn was handed to, until it takes it.
    promoted: Option<u64>,
    /// The read turn was handed to a waiter, or given back with nobody
    /// waiting: the driver starts reading at the next tick (see
    /// [`Shared::tick`]) unless someone takes the turn first.
    deferred: bool,
    /// On the driver's watch list.
    watched: bool,
    /// This connection's driver task, and its waker.
    task: Arc<Task>,
    driver: Waker,
    /// The driver's wait for the socket to be readable, while no caller
    /// reads it.
    driver_reads: Option<ReadableOwned<OwnedFd>>,
    /// The driver's wait for room in the socket, while bytes are unsent.
    driver_writes: Option<WritableOwned<OwnedFd>>,
}

impl State {
    /// Routes the router's outputs, writes what it has to send, and arms
    /// what the driver must wait for. A write that fails ends the
    /// connection, which is then routed in turn.
    fn settle(&mut self) {
        // A subscriber waits for events: the driver reads now.
        self.deferred &= self.router.subscriptions() == 0;
        loop {
            if self.router.handle_outputs().ended.is_some() {
                // The end answered every waiter; the caller reading for its
                // answer waits on the socket, not on the answer: wake it.
                if let Some(reader) = &self.reader {
                    reader.wake_by_ref();
                }
            }
            match self.flush().and_then(|()| self.arm_driver()) {
                Ok(()) => return,
                Err(e) => self.router.fail_transport(e.to_string()),
            }
        }
    }

    /// Writes what the router has to send, as far as the socket takes it
    /// without waiting; what it does not take waits in `unsent` for the
    /// driver. Once the connection has ended, drops what the socket did
    /// not take, shuts the socket down for writing (QEMU answers by closing
    /// its side) and lets it go.
    fn flush(&mut self) -> io::Result<()> {
        let State {
            router,
            socket: Some(socket),
            unsent,
            fds,
            ..
        } = self
        else {
            return Ok(());
        };
        let mut failed = None;
        router.transmit_with(unsent, |bytes| {
            let sent = if fds.is_empty() {
                rustix::net::send(socket.get_ref(), bytes, rustix::net::SendFlags::NOSIGNAL)
                    .map_err(io::Error::from)
            } else {
                // The descriptors go with the first byte; ours close once sent.
                qmp_fd::send_with_fds(socket.get_ref(), bytes, fds).inspect(|_| fds.clear())
            };
            match sent {
                Ok(n) => {
                    #[cfg(feature = "tracing")]
                    tracing::trace!(bytes = n, data = %String::from_utf8_lossy(&bytes[..n]), "qmp sent");
                    Some(n)
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                    None
                }
                Err(e) => {
                    failed = Some(e);
                    None
                }
            }
        });
        if let Some(e) = failed {
            *unsent = None;
            return Err(e);
        }
        if router.end().is_some() {
            // What the socket did not take at once is dropped: a peer that
            // stopped reading must not keep the socket alive.
            *unsent = None;
            rustix::net::shutdown(socket.get_ref(), rustix::net::Shutdown::Write).ok();
            self.socket = None;
            self.driver_reads = None;
            self.driver_writes = None;
        }
        Ok(())
    }

    /// Registers the driver's waits: readability while no caller reads,
    /// room to write while bytes are unsent. Registering wakes nobody.
    fn arm_driver(&mut self) -> io::Result<()> {
        let Some(socket) = &self.socket else {
            return Ok(());
        };
        if !self.caller_reads && !self.deferred {
            arm(&mut self.driver_reads, &self.driver, || {
                socket.clone().readable_owned()
            })?;
        }
        if self.unsent.is_some() {
            arm(&mut self.driver_writes, &self.driver, || {
                socket.clone().writable_owned()
            })?;
        }
        Ok(())
    }

    /// One non-blocking read into the router: `None` if there was nothing
    /// to read, else whether there may be more at once (the read filled the
    /// buffer).
    fn read_once(&mut self) -> Option<bool> {
        let State {
            router,
            socket: Some(socket),
            buffer,
            ..
        } = self
        else {
            return None;
        };
        buffer.clear();
        match rustix::io::read(socket.get_ref(), rustix::buffer::spare_capacity(buffer)) {
            Ok(n) => {
                #[cfg(feature = "tracing")]
                tracing::trace!(bytes = n, data = %String::from_utf8_lossy(buffer), "qmp received");
                router.receive_read(Ok(buffer));
                Some(n == READ_SIZE)
            }
            // Someone else read it first: wait again.
            Err(Errno::AGAIN) => None,
            Err(Errno::INTR) => Some(true),
            Err(e) => {
                router.receive_read(Err(e.into()));
                Some(false)
            }
        }
    }

    /// The driver's turn: reads if the socket became readable while no
    /// caller reads it; room to write is acted on by `settle`.
    fn drive(&mut self) -> io::Result<Option<bool>> {
        let driver = self.driver.clone();
        let cx = &mut Context::from_waker(&driver);
        let readable = fired(&mut self.driver_reads, cx)?;
        fired(&mut self.driver_writes, cx)?;
        Ok(if readable { self.read_once() } else { None })
    }

    /// The read turn is free: hands it to the caller that has waited
    /// longest, if any (returning its waker, to wake once the lock is
    /// released), or else to the driver. The driver takes over at once if
    /// a subscriber waits for events, and otherwise at its next tick: a
    /// busy caller most likely takes the turn back before then, which
    /// spares a system call on each of its calls.
    fn hand_over(&mut self) -> Option<Waker> {
        self.deferred = self.watched && self.router.subscriptions() == 0;
        let (id, waker) = self.waiters.pop_first()?;
        self.promoted = Some(id);
        Some(waker)
    }
}

/// Stores `wait` (made by `make`) in `slot` and polls it once with
/// `driver`, which it then wakes when ready; a wait already there is kept.
fn arm<F>(slot: &mut Option<F>, driver: &Waker, make: impl FnOnce() -> F) -> io::Result<()>
where
    F: Future<Output = io::Result<()>> + Unpin,
{
    if slot.is_some() {
        return Ok(());
    }
    let mut wait = make();
    let polled = Pin::new(&mut wait).poll(&mut Context::from_waker(driver));
    *slot = Some(wait);
    match polled {
        Poll::Pending => Ok(()),
        Poll::Ready(Ok(())) => {
            driver.wake_by_ref();
            Ok(())
        }
        Poll::Ready(Err(e)) => Err(e),
    }
}

/// Whether the wait in `slot` is over (it is then removed).
fn fired<F>(slot: &mut Option<F>, cx: &mut Context<'_>) -> io::Result<bool>
where
    F: Future<Output = io::Result<()>> + Unpin,
{
    let Some(wait) = slot else {
        return Ok(false);
    };
    let Poll::Ready(result) = Pin::new(wait).poll(cx) else {
        return Ok(false);
    };
    *slot = None;
    result.map(|()| true)
}

pub(crate) struct Shared {
    state: Mutex<State>,
}

impl Shared {
    /// The state of a connection over `socket`.
    pub(crate) fn new(router: Router<Waiters>, socket: Socket) -> Arc<Self> {
        Arc::new_cyclic(|shared| {
            let task = Task::new(shared.clone());
            Shared {
                state: Mutex::new(State {
                    router,
                    fds: Vec::new(),
                    socket: Some(Arc::new(socket)),
                    unsent: None,
                    buffer: Vec::with_capacity(READ_SIZE),
                    caller_reads: false,
                    reader: None,
                    waiters: BTreeMap::new(),
                    last_waiter: 0,
                    promoted: None,
                    deferred: false,
                    watched: false,
                    driver: Waker::from(task.clone()),
                    task,
                    driver_reads: None,
                    driver_writes: None,
                }),
            }
        })
    }

    /// The state, for reads that change nothing.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Poisoning only means a panic elsewhere; the router stays coherent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks at the router without changing it.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Router<Waiters>) -> R) -> R {
        f(&self.lock().router)
    }

    /// Changes the router with `f`, then as [`update_state`](Self::update_state).
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut Router<Waiters>) -> R) -> R {
        self.update_state(|state| f(&mut state.router))
    }

    /// Changes the state with `f`, routes whatever that produced (which
    /// wakes whoever it answers), writes what there is to send, and arms
    /// the driver.
    pub(crate) fn update_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.lock();
        let result = f(&mut state);
        state.settle();
        result
    }

    /// Closes the connection, which ends it at once (every waiter is
    /// answered), writes what the socket takes at once and lets it go.
    pub(crate) fn close(&self) {
        self.update(|router| router.close());
    }

    /// Whether the socket is still open.
    fn is_open(&self) -> bool {
        self.lock().socket.is_some()
    }

    /// Reads what the socket has now, without waiting, up to
    /// [`READS_AT_ONCE`] reads: whoever reads (a caller's task, the driver
    /// thread) gets on with its other work in between, and the socket,
    /// still readable, is read again once it is polled again.
    fn read_now(&self) {
        for _ in 0..READS_AT_ONCE {
            if self.update_state(State::read_once) != Some(true) {
                return;
            }
        }
    }

    /// The driver task's turn (see `driver`): reads if the socket became
    /// readable while no caller reads it, writes if it has room for what
    /// waits, and waits again.
    pub(crate) fn drive(&self) {
        let read = self.update_state(|state| {
            state.drive().unwrap_or_else(|e| {
                state.router.fail_transport(e.to_string());
                None
            })
        });
        if read == Some(true) {
            self.read_now();
        }
    }

    /// The watchdog, every driver tick while the connection is watched.
    /// A caller holding the read turn may not be polled (its task is busy,
    /// or its future is kept aside): whatever the socket has is read for
    /// it, so that replies to others, events and the end wait a tick at
    /// most, and it is woken to look. A turn that is free (given back with
    /// nobody waiting, or handed to a waiter that has not taken it yet)
    /// goes to the driver. Returns whether to keep watching.
    pub(crate) fn tick(&self) -> bool {
        let (watching, reader) = self.update_state(|state| {
            if state.caller_reads && state.socket.is_some() {
                let read = state.read_once().is_some();
                return (true, state.reader.clone().filter(|_| read));
            }
            state.deferred = false;
            state.watched = false;
            (false, None)
        });
        if let Some(reader) = reader {
            reader.wake();
        }
        watching
    }

    /// The read turn, if no other caller has it and the socket is open:
    /// its holder reads the socket while it waits, and the driver steps
    /// back until the turn is dropped. `waker` is the holder's.
    pub(crate) fn take_turn(&self, waker: &Waker) -> Option<Turn<'_>> {
        self.turn_or_wait(waker, &mut None)
    }

    /// The read turn as [`take_turn`](Self::take_turn) gives it; or else,
    /// with `waiter` set, registers (or updates) the waiter numbered
    /// `waiter`, to be handed the turn in its order.
    fn turn_or_wait(&self, waker: &Waker, waiter: &mut Option<u64>) -> Option<Turn<'_>> {
        let mut state = self.lock();
        let socket = match &state.socket {
            Some(socket) if !state.caller_reads => socket.clone(),
            _ => {
                let state = &mut *state;
                let id = *waiter.get_or_insert_with(|| {
                    state.last_waiter += 1;
                    state.last_waiter
                });
                let known = state.waiters.entry(id).or_insert_with(|| waker.clone());
                if !known.will_wake(waker) {
                    *known = waker.clone();
                }
                return None;
            }
        };
        if let Some(id) = waiter.take() {
            state.waiters.remove(&id);
        }
        state.caller_reads = true;
        state.deferred = false;
        state.promoted = None;
        state.driver_reads = None;
        state.reader = Some(waker.clone());
        // Until negotiation, the connecting caller is the only one waiting.
        if !state.watched && state.router.client().is_ready() {
            state.watched = true;
            driver::watch(&state.task);
        }
        Some(Turn {
            shared: self,
            socket,
            readable: None,
            waker: waker.clone(),
        })
    }

    /// Gives the read turn back, to the next waiter or the driver (see
    /// `hand_over`).
    fn give_back(&self) {
        let mut state = self.lock();
        state.caller_reads = false;
        state.reader = None;
        let promoted = state.hand_over();
        if !state.deferred {
            // The router is as it was: this only arms the driver.
            state.settle();
        }
        drop(state);
        if let Some(promoted) = promoted {
            promoted.wake();
        }
    }

    /// A waiter goes away: if the turn was handed to it, it goes on.
    fn stop_waiting(&self, id: u64) {
        let mut state = self.lock();
        state.waiters.remove(&id);
        if state.promoted != Some(id) {
            return;
        }
        drop(state);
        let promoted = self.update_state(|state| {
            state.promoted = None;
            if state.caller_reads {
                return None;
            }
            state.hand_over()
        });
        if let Some(promoted) = promoted {
            promoted.wake();
        }
    }

    /// The answer on `answer`. While it waits, the caller reads the socket
    /// itself if no other caller does, so that its reply needs no other
    /// thread to wake it; whoever reads first delivers it.
    ///
    /// Cancel safety: every read is made and routed under the lock, never
    /// across an await; dropping the future gives the read turn back.
    pub(crate) fn receive<'a, T>(&'a self, answer: &'a Answer<T>) -> Receive<'a, T> {
        Receive {
            shared: self,
            answer,
            turn: None,
            waiter: None,
        }
    }

    /// Negotiation, on the connecting caller's own task: reads until the
    /// connection is ready or has ended.
    pub(crate) async fn negotiate(&self) {
        let settled =
            |router: &Router<Waiters>| router.client().is_ready() || router.end().is_some();
        let mut turn = None;
        std::future::poll_fn(|cx| loop {
            if self.read(settled) {
                return Poll::Ready(());
            }
            if turn.is_none() {
                turn = self.take_turn(cx.waker());
                // Whatever was read before is routed: look again.
                if turn.is_some() {
                    continue;
                }
            }
            let Some(reading) = &mut turn else {
                return Poll::Ready(());
            };
            match reading.poll_read(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(true) => {}
                Poll::Ready(false) => return Poll::Ready(()),
            }
        })
        .await;
        // Watched from now on, the turn is given back lazily: a connection
        // used (or closed) at once never needs the driver.
        let mut state = self.lock();
        if !state.watched && state.socket.is_some() {
            state.watched = true;
            driver::watch(&state.task);
        }
        drop(state);
        drop(turn);
    }
}

/// The right to read the socket while waiting (see [`Shared::take_turn`]).
/// Dropping it hands reading back to the driver.
pub(crate) struct Turn<'a> {
    shared: &'a Shared,
    socket: Arc<Socket>,
    /// The wait for readability, while pending.
    readable: Option<ReadableOwned<OwnedFd>>,
    /// The holder's waker, as the watchdog knows it.
    waker: Waker,
}

impl Turn<'_> {
    /// Waits until the socket is readable, then reads what it has into the
    /// router: `Ready(true)` after a read, `Ready(false)` once the
    /// connection has ended.
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let socket = &self.socket;
        let readable = self
            .readable
            .get_or_insert_with(|| socket.clone().readable_owned());
        let Poll::Ready(result) = Pin::new(readable).poll(cx) else {
            if !self.waker.will_wake(cx.waker()) {
                self.waker = cx.waker().clone();
                self.shared.lock().reader = Some(self.waker.clone());
            }
            return Poll::Pending;
        };
        self.readable = None;
        match result {
            Ok(()) => self.shared.read_now(),
            Err(e) => self
                .shared
                .update_state(|state| state.router.fail_transport(e.to_string())),
        }
        Poll::Ready(self.shared.is_open())
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        // Our wait first: it must not count as interest in the socket.
        self.readable = None;
        self.shared.give_back();
    }
}

/// The future of [`Shared::receive`].
pub(crate) struct Receive<'a, T> {
    shared: &'a Shared,
    answer: &'a Answer<T>,
    turn: Option<Turn<'a>>,
    /// Registered as a waiter, with this number.
    waiter: Option<u64>,
}

impl<T> Future for Receive<'_, T> {
    type Output = Result<T, Unanswered>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            // Reading for ourselves, we find our answer without a wake-up.
            if let Some(answer) = this.answer.try_take() {
                return Poll::Ready(answer);
            }
            let Some(turn) = &mut this.turn else {
                // First polled, or handed the turn: take it if it is free.
                match this.shared.turn_or_wait(cx.waker(), &mut this.waiter) {
                    // What was read before is routed: look again first.
                    Some(turn) => this.turn = Some(turn),
                    None => return this.answer.poll(cx),
                }
                continue;
            };
            match turn.poll_read(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(true) => {}
                // The end answered every waiter: look again.
                Poll::Ready(false) => this.turn = None,
            }
        }
    }
}

impl<T> Drop for Receive<'_, T> {
    fn drop(&mut self) {
        if let Some(id) = self.waiter {
            self.shared.stop_waiting(id);
        }
    }
}

/// `work`'s output, or `None` if `limit` passes first.
pub(crate) async fn within<F: Future>(limit: Duration, work: F) -> Option<F::Output> {
    futures_lite::future::or(async { Some(work.await) }, async {
        async_io::Timer::after(limit).await;
        None
    })
    .await
}
