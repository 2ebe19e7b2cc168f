//! The connection's engine: the router and the socket behind one lock, and
//! the futures that wait on them.
//!
//! Nothing runs in the background. Every future that waits on the
//! connection (a call, an event wait, a subscription, a connect) is a
//! *waiter*: it looks for its result and, if it has none, registers with
//! [`Readiness`]. The oldest [`READERS`] waiters also work the socket while
//! they wait: they write what is unsent and read what has come, routing it
//! to whoever it answers, then sleep until the socket is readable (or
//! writable) again. So a lone caller reads its own reply, woken by the
//! reactor directly, as a hand-written client would; and a connection with
//! nobody waiting costs nothing at all: not a task, not a thread, not a
//! timer.
//!
//! Every system call is non-blocking and made under the lock together with
//! the routing of what it read or wrote, never across an await, so a
//! future dropped at any await point leaves nothing half done, and bytes
//! reach the router (and the wire) in order whoever moves them.

use crate::answer::{wake_later, Answering, WakeOnRelease};
use crate::notice_queue::NoticeSink;
use crate::record::Recording;
use crate::runtime::{Direction, Moved, Runtime, Socket};
use bytes::Bytes;
use qmp_proto::router::Delivery;
use qmp_proto::transcript::Side;
use qmp_proto::{End, Failure, RawJson, Router, Sequenced};
use std::collections::BTreeMap;
use std::future::poll_fn;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

/// How many of the oldest waiters work the socket. More than one, so that
/// a waiter whose task is slow to run (or whose future is polled late)
/// does not hold up the others alone.
pub(crate) const READERS: usize = 2;

/// The most read from the socket in one system call.
const READ_SIZE: usize = 64 * 1024;

/// The most reads in a row by one waiter before it lets its task go on:
/// the socket, still readable, is read again at the next poll.
const READS_AT_ONCE: usize = 16;

/// Oneshots for calls and waits, bounded notice queues for subscribers.
pub(crate) struct Waiters;

impl Delivery for Waiters {
    type Call = Answering<Result<RawJson, Failure>>;
    type Wait = Answering<Result<Sequenced, Failure>>;
    type Subscriber = NoticeSink;
}

/// What the engine drives: a protocol machine and the routing of its
/// outputs to the futures that wait for them. The QMP router is one; the
/// guest agent's is another.
pub(crate) trait Conversation: Send + 'static {
    /// Takes bytes read from the socket.
    fn receive(&mut self, bytes: &[u8]);
    /// The peer closed the stream.
    fn receive_eof(&mut self);
    /// Reading or writing failed.
    fn fail_transport(&mut self, detail: String);
    /// Ends the conversation from this side.
    fn close(&mut self);
    /// Delivers what the machine has to say to whoever waits for it.
    fn handle_outputs(&mut self);
    /// Writes what there is to send, in order (see
    /// [`Router::transmit_with`]).
    fn transmit_with(
        &mut self,
        unsent: &mut Option<Bytes>,
        try_write: impl FnMut(&[u8]) -> Option<usize>,
    ) -> bool;
    /// How the conversation ended, once it has.
    fn end(&self) -> Option<&End>;
    /// Whether reading must stop until a consumer catches up.
    fn is_held_up(&self) -> bool;
    /// Whether a command waiting for room in the queue would be taken now.
    fn has_room(&self) -> bool;
}

impl Conversation for Router<Waiters> {
    fn receive(&mut self, bytes: &[u8]) {
        Router::receive(self, bytes);
    }
    fn receive_eof(&mut self) {
        Router::receive_eof(self);
    }
    fn fail_transport(&mut self, detail: String) {
        Router::fail_transport(self, detail);
    }
    fn close(&mut self) {
        Router::close(self);
    }
    fn handle_outputs(&mut self) {
        Router::handle_outputs(self);
    }
    fn transmit_with(
        &mut self,
        unsent: &mut Option<Bytes>,
        try_write: impl FnMut(&[u8]) -> Option<usize>,
    ) -> bool {
        Router::transmit_with(self, unsent, try_write)
    }
    fn end(&self) -> Option<&End> {
        Router::end(self)
    }
    fn is_held_up(&self) -> bool {
        Router::is_held_up(self)
    }
    fn has_room(&self) -> bool {
        self.client().has_room(false)
    }
}

/// What the lock guards.
pub(crate) struct State<R: Runtime, C = Router<Waiters>> {
    pub(crate) router: C,
    /// Descriptors that go out with the next byte written.
    pub(crate) fds: Vec<OwnedFd>,
    /// The socket, until the connection has ended and what the socket took
    /// at once of the rest is written.
    socket: Option<R::Socket>,
    /// Bytes taken from the router and not written yet (the socket was
    /// full); written before any newer ones.
    unsent: Option<Bytes>,
    /// Where reads land: empty, with room for [`READ_SIZE`] bytes.
    buffer: Vec<u8>,
    /// The readiness waker, and whether the socket is registered to wake
    /// it (shared with it: firing unregisters).
    readiness: Arc<Readiness>,
    /// Calls waiting for room in the client's queue, and for the turn to
    /// pass descriptors, in order.
    pub(crate) room: Line,
    pub(crate) fd_turn: Line,
    /// Holders of the descriptor turn (0 or 1).
    pub(crate) fd_turn_held: bool,
    /// A write found the peer gone (`EPIPE`, reset): what is left to send
    /// is dropped, and reading goes on to the end of the stream, which
    /// says how the connection ended (after the replies still in it).
    peer_stopped_reading: bool,
    /// The transcript being written, when the connection records.
    recording: Option<Recording>,
}

/// A first-come, first-served line of tickets, with the waker of each: a
/// waiter's turn comes when its ticket is the first.
#[derive(Default)]
pub(crate) struct Line {
    last: u64,
    waiting: BTreeMap<u64, Waker>,
}

impl Line {
    /// Joins the line with a new ticket, or updates the waker of `ticket`.
    pub(crate) fn wait(&mut self, ticket: &mut Option<u64>, waker: &Waker) {
        let ticket = *ticket.get_or_insert_with(|| {
            self.last += 1;
            self.last
        });
        match self.waiting.get_mut(&ticket) {
            Some(known) => known.clone_from(waker),
            None => {
                self.waiting.insert(ticket, waker.clone());
            }
        }
    }

    /// Whether `ticket` is first, or nobody waits.
    pub(crate) fn is_next(&self, ticket: Option<u64>) -> bool {
        match self.waiting.keys().next() {
            None => true,
            Some(first) => ticket == Some(*first),
        }
    }

    /// Leaves the line.
    pub(crate) fn leave(&mut self, ticket: &mut Option<u64>) {
        if let Some(ticket) = ticket.take() {
            self.waiting.remove(&ticket);
        }
    }

    /// Wakes the first in line (its turn may have come).
    pub(crate) fn wake_first(&self) {
        if let Some(first) = self.waiting.values().next() {
            wake_later(first.clone());
        }
    }
}

/// The waiters, in the order they started waiting, with their wakers; and
/// the waker the socket's readiness is registered with, which wakes the
/// [`READERS`] oldest.
pub(crate) struct Readiness {
    waiters: Mutex<Waiting>,
    /// The socket is registered to wake it when readable (the last read
    /// attempt found nothing, and it has not fired since).
    armed: AtomicBool,
}

#[derive(Default)]
struct Waiting {
    last: u64,
    wakers: BTreeMap<u64, Waker>,
}

impl Readiness {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers (or updates) the waiter numbered `id` (numbered now if it
    /// has no number yet); returns whether it is one of the readers.
    fn register(&self, id: &mut Option<u64>, waker: &Waker) -> bool {
        let mut waiting = self.lock();
        let id = *id.get_or_insert_with(|| {
            waiting.last += 1;
            waiting.last
        });
        match waiting.wakers.get_mut(&id) {
            Some(known) if known.will_wake(waker) => {}
            Some(known) => known.clone_from(waker),
            None => {
                waiting.wakers.insert(id, waker.clone());
            }
        }
        waiting
            .wakers
            .keys()
            .take(READERS)
            .any(|&reader| reader == id)
    }

    /// The waiter numbered `id` stops waiting. If it was a reader and
    /// `hand_over`, the waiter that takes its place is woken: the
    /// readiness it was woken for may be spent. (A waiter that leaves with
    /// its result leaves the socket registered instead, which wakes
    /// whoever are the readers then.)
    fn remove(&self, id: u64, hand_over: bool) {
        let mut waiting = self.lock();
        let was_reader = waiting.wakers.keys().take(READERS).any(|&r| r == id);
        if waiting.wakers.remove(&id).is_none() || !was_reader || !hand_over {
            return;
        }
        let promoted = waiting.wakers.values().nth(READERS - 1).cloned();
        drop(waiting);
        if let Some(promoted) = promoted {
            wake_later(promoted);
        }
    }

    fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Acquire)
    }

    fn set_armed(&self, armed: bool) {
        self.armed.store(armed, Ordering::Release);
    }

    /// Whether anyone waits.
    fn anyone(&self) -> bool {
        !self.lock().wakers.is_empty()
    }
}

impl Wake for Readiness {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    /// The socket is ready: wakes the readers.
    fn wake_by_ref(self: &Arc<Self>) {
        self.armed.store(false, Ordering::Release);
        let readers: Vec<Waker> = self.lock().wakers.values().take(READERS).cloned().collect();
        for reader in readers {
            reader.wake();
        }
    }
}

/// Wakes nobody.
struct Quiet;

impl Wake for Quiet {
    fn wake(self: Arc<Self>) {}
}

/// What the handles, the waiting futures and the subscriptions share.
pub(crate) struct Shared<R: Runtime, C = Router<Waiters>> {
    state: Mutex<State<R, C>>,
    readiness: Arc<Readiness>,
    /// Registered with the socket for every readiness: wakes the readers.
    readiness_waker: Waker,
    /// A waker that does nothing (see [`poll_wait`](Self::poll_wait)).
    quiet_waker: Waker,
    pub(crate) runtime: R,
}

/// The locked state. Its fields drop in order: the lock is released, then
/// the wakers kept aside under it are woken.
pub(crate) struct Locked<'a, R: Runtime, C> {
    guard: MutexGuard<'a, State<R, C>>,
    _then: WakeOnRelease,
}

impl<R: Runtime, C> Deref for Locked<'_, R, C> {
    type Target = State<R, C>;
    fn deref(&self) -> &State<R, C> {
        &self.guard
    }
}

impl<R: Runtime, C> DerefMut for Locked<'_, R, C> {
    fn deref_mut(&mut self) -> &mut State<R, C> {
        &mut self.guard
    }
}

impl<R: Runtime, C: Conversation> Shared<R, C> {
    /// The engine of `conversation` over `socket`.
    pub(crate) fn new(
        runtime: R,
        socket: R::Socket,
        conversation: C,
        recording: Option<Recording>,
    ) -> Arc<Self> {
        let readiness = Arc::new(Readiness {
            waiters: Mutex::new(Waiting::default()),
            armed: AtomicBool::new(false),
        });
        Arc::new(Shared {
            state: Mutex::new(State {
                router: conversation,
                fds: Vec::new(),
                socket: Some(socket),
                unsent: None,
                buffer: Vec::with_capacity(READ_SIZE),
                readiness: readiness.clone(),
                room: Line::default(),
                fd_turn: Line::default(),
                fd_turn_held: false,
                peer_stopped_reading: false,
                recording,
            }),
            readiness_waker: Waker::from(readiness.clone()),
            quiet_waker: Waker::from(Arc::new(Quiet)),
            readiness,
            runtime,
        })
    }

    /// Locks the state.
    pub(crate) fn lock(&self) -> Locked<'_, R, C> {
        let then = WakeOnRelease::new();
        // Poisoning means a panic elsewhere; the router stays coherent.
        let guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Locked { guard, _then: then }
    }

    /// Looks at the router without changing it.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&C) -> T) -> T {
        f(&self.lock().router)
    }

    /// Changes the state with `f`, then routes what that produced and
    /// writes what there is to send.
    pub(crate) fn update<T>(&self, f: impl FnOnce(&mut State<R, C>) -> T) -> T {
        let mut state = self.lock();
        let result = f(&mut state);
        state.settle();
        result
    }

    /// Ends the connection from this side, at once: every waiter is
    /// answered, what the socket takes at once is written, the rest is
    /// dropped, and the socket is shut down and released.
    pub(crate) fn close(&self) {
        self.update(|state| state.router.close());
    }

    /// Reads what the socket has now (up to [`READS_AT_ONCE`] reads),
    /// without waiting, so that the router is up to date (before a cursor
    /// is taken, say). The reads are made
    /// directly, whatever the runtime last learnt of the socket's
    /// readiness: what QEMU sent a moment ago counts.
    pub(crate) fn catch_up(&self) {
        let mut state = self.lock();
        // Bounded, so that a peer that never stops sending cannot keep
        // the caller here.
        for _ in 0..READS_AT_ONCE {
            if !state.read_now() {
                return;
            }
        }
    }

    /// One poll of a waiter numbered `id`: `check` looks for its result
    /// (registering the waker of `cx` wherever the result will come from);
    /// meanwhile the waiter is registered with the readiness, and if it is
    /// a reader it works the socket and looks again after every read.
    pub(crate) fn poll_wait<T>(
        &self,
        cx: &mut Context<'_>,
        id: &mut Option<u64>,
        mut check: impl FnMut(&mut State<R, C>, &mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        let mut state = self.lock();
        let socket_cx = &mut Context::from_waker(&self.readiness_waker);
        // Looked for with a waker that does nothing while this waiter reads
        // for itself: a result it routes to itself must not wake it.
        let quiet_cx = &mut Context::from_waker(&self.quiet_waker);
        loop {
            let found = match check(&mut state, quiet_cx) {
                Poll::Ready(found) => Poll::Ready(found),
                Poll::Pending => {
                    if self.readiness.register(id, cx.waker()) && state.work(socket_cx) {
                        continue;
                    }
                    // Nothing more to read now: wait where the result comes.
                    check(&mut state, cx)
                }
            };
            let Poll::Ready(found) = found else {
                return Poll::Pending;
            };
            if let Some(id) = id.take() {
                self.readiness.remove(id, false);
            }
            // Whoever waits on is woken by the socket: it must be
            // registered for the next readiness.
            while !self.readiness.is_armed() && state.socket.is_some() && self.readiness.anyone() {
                if !state.work(socket_cx) {
                    break;
                }
            }
            return Poll::Ready(found);
        }
    }

    /// Waits until `check` finds its result (see [`poll_wait`](Self::poll_wait)).
    ///
    /// Cancel safety: dropping the future only stops the wait.
    pub(crate) async fn wait<T>(
        &self,
        mut check: impl FnMut(&mut State<R, C>, &mut Context<'_>) -> Poll<T>,
    ) -> T {
        let mut waiter = Waiter {
            shared: self,
            id: None,
        };
        poll_fn(|cx| self.poll_wait(cx, &mut waiter.id, &mut check)).await
    }

    /// The waiter numbered `id` goes away without its result (its future
    /// was dropped).
    pub(crate) fn stop_waiting(&self, id: &mut Option<u64>) {
        if let Some(id) = id.take() {
            self.readiness.remove(id, true);
        }
    }
}

/// A waiter of [`Shared::wait`]: dropped, it stops waiting.
struct Waiter<'a, R: Runtime, C: Conversation> {
    shared: &'a Shared<R, C>,
    id: Option<u64>,
}

impl<R: Runtime, C: Conversation> Drop for Waiter<'_, R, C> {
    fn drop(&mut self) {
        self.shared.stop_waiting(&mut self.id);
    }
}

impl<R: Runtime, C: Conversation> State<R, C> {
    /// Routes the router's outputs and writes what it has to send, as far
    /// as the socket takes it now. Called after every change.
    pub(crate) fn settle(&mut self) {
        self.router.handle_outputs();
        if let Err(e) = self.flush() {
            self.router.fail_transport(e.to_string());
            self.router.handle_outputs();
            self.flush().ok();
        }
        if self.router.has_room() || self.router.end().is_some() {
            self.room.wake_first();
        }
    }

    /// Writes what the router has to send, without waiting; what the
    /// socket does not take waits in `unsent`. Once the connection has
    /// ended, drops what the socket did not take, shuts the socket down for
    /// writing (QEMU answers by closing its side) and releases it.
    fn flush(&mut self) -> io::Result<()> {
        let State {
            router,
            socket: Some(socket),
            unsent,
            fds,
            peer_stopped_reading,
            recording,
            ..
        } = self
        else {
            return Ok(());
        };
        let mut failed = None;
        router.transmit_with(unsent, |bytes| {
            if *peer_stopped_reading {
                return Some(bytes.len());
            }
            match send(socket.fd(), bytes, fds, recording) {
                Ok(n) => Some(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                Err(e) if stopped_reading(&e) => {
                    *peer_stopped_reading = true;
                    Some(bytes.len())
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
            // A peer that stopped reading must not keep the socket.
            *unsent = None;
            rustix::net::shutdown(socket.fd(), rustix::net::Shutdown::Write).ok();
            if let Some(recording) = recording {
                recording.closed(Side::Client);
            }
            self.socket = None;
        }
        Ok(())
    }

    /// Works the socket once: writes what waits for room, then reads what
    /// has come, up to [`READS_AT_ONCE`] reads, routing each. Whatever it
    /// waits for is registered with `cx` (the readiness waker). Returns
    /// whether it read anything (or the connection ended): the caller
    /// looks for its result again.
    fn work(&mut self, cx: &mut Context<'_>) -> bool {
        if self.unsent.is_some() && !self.write_waiting(cx) {
            return true;
        }
        let mut progressed = false;
        for _ in 0..READS_AT_ONCE {
            if self.router.is_held_up() {
                // A lossless subscriber must take its events first; its
                // next poll reads on.
                self.readiness.set_armed(false);
                break;
            }
            let State {
                socket: Some(socket),
                buffer,
                ..
            } = self
            else {
                return progressed;
            };
            buffer.clear();
            let room = buffer.capacity();
            // Armed before the registration, so that a readiness firing
            // at once (on another thread) is not overwritten.
            self.readiness.set_armed(true);
            let read = socket.poll_io(cx, Direction::Read, &mut |fd| {
                let bytes = rustix::io::read(fd, rustix::buffer::spare_capacity(buffer))?;
                // A short read emptied the socket: no need to read again
                // to learn it.
                let exhausted = bytes > 0 && bytes < room;
                Ok(Moved { bytes, exhausted })
            });
            let Poll::Ready(read) = read else {
                break;
            };
            self.readiness.set_armed(false);
            progressed = true;
            // Read again at once only after a read that filled the buffer:
            // there may be more. Otherwise the waiter looks for its result
            // first.
            let filled = matches!(read, Ok(n) if n == room);
            self.route_read(read);
            if !filled {
                break;
            }
        }
        progressed
    }

    /// One non-blocking read straight from the socket, routed; whether it
    /// read anything (or met the end), so that there may be more.
    fn read_now(&mut self) -> bool {
        let State {
            router,
            socket: Some(socket),
            buffer,
            ..
        } = self
        else {
            return false;
        };
        if router.is_held_up() {
            return false;
        }
        buffer.clear();
        let read = match rustix::io::read(socket.fd(), rustix::buffer::spare_capacity(buffer)) {
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => return false,
            Err(e) => Err(io::Error::from(e)),
            Ok(n) => Ok(n),
        };
        self.route_read(read);
        true
    }

    /// Gives the router what one read into `buffer` gave, and settles.
    fn route_read(&mut self, read: io::Result<usize>) {
        let buffer = &self.buffer;
        #[cfg(feature = "tracing")]
        if let Ok(n) = read {
            tracing::trace!(bytes = n, data = %String::from_utf8_lossy(&buffer[..n]), "qmp received");
        }
        if let Some(recording) = &mut self.recording {
            match &read {
                Ok(0) => recording.closed(Side::Server),
                Ok(n) => recording.received(&buffer[..*n]),
                // A reset is how QEMU's socket closes when QEMU exits.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    recording.closed(Side::Server)
                }
                Err(_) => {}
            }
        }
        receive_read(&mut self.router, read.map(|n| &buffer[..n]));
        self.settle();
    }

    /// Writes what waits for room, until the socket is full (then
    /// registered for writability) or nothing waits. Returns whether the
    /// connection goes on.
    fn write_waiting(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            let State {
                socket: Some(socket),
                unsent: Some(bytes),
                fds,
                recording,
                ..
            } = self
            else {
                return true;
            };
            let written = socket.poll_io(cx, Direction::Write, &mut |fd| {
                let sent = send(fd, bytes, fds, recording)?;
                Ok(Moved {
                    bytes: sent,
                    exhausted: sent < bytes.len(),
                })
            });
            match written {
                Poll::Pending => return true,
                // A partial write filled the socket: the next attempt
                // finds it full and registers for writability. (Stopping
                // here left a command larger than the socket's buffer
                // waiting for read readiness only: it hung.)
                Poll::Ready(Ok(n)) => {
                    let rest = bytes.slice(n..);
                    self.unsent = (!rest.is_empty()).then_some(rest);
                    self.settle();
                }
                Poll::Ready(Err(e)) if stopped_reading(&e) => {
                    self.unsent = None;
                    self.peer_stopped_reading = true;
                    return true;
                }
                Poll::Ready(Err(e)) => {
                    self.unsent = None;
                    self.router.fail_transport(e.to_string());
                    self.settle();
                    return false;
                }
            }
        }
    }
}

/// Gives the router the outcome of one read: the bytes (none at the end of
/// the stream) or the error. A reset counts as the end of the stream: it
/// is how QEMU's socket closes when QEMU exits, and the framer still tells
/// a clean end from one inside a message.
fn receive_read(router: &mut impl Conversation, read: io::Result<&[u8]>) {
    match read {
        Ok([]) => router.receive_eof(),
        Ok(bytes) => router.receive(bytes),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => router.receive_eof(),
        Err(e) => router.fail_transport(e.to_string()),
    }
}

/// Whether a write failed because the peer has closed the connection.
fn stopped_reading(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

/// One non-blocking write of `bytes`; `fds`, if any, go with its first
/// byte and are closed on our side once sent. What was written goes to the
/// recording, if any.
fn send(
    fd: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &mut Vec<OwnedFd>,
    recording: &mut Option<Recording>,
) -> io::Result<usize> {
    let sent = if fds.is_empty() {
        rustix::net::send(fd, bytes, rustix::net::SendFlags::NOSIGNAL).map_err(io::Error::from)
    } else {
        crate::fd::send_with_fds(fd, bytes, fds).inspect(|_| fds.clear())
    };
    #[cfg(feature = "tracing")]
    if let Ok(n) = &sent {
        tracing::trace!(bytes = n, data = %String::from_utf8_lossy(&bytes[..*n]), "qmp sent");
    }
    if let (Some(recording), Ok(n)) = (recording, &sent) {
        recording.sent(&bytes[..*n]);
    }
    match sent {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(io::ErrorKind::WouldBlock.into()),
        other => other,
    }
}
