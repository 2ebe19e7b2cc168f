//! The state the callers and the driver share: the router behind a mutex,
//! and tokio's oneshots and qmp-proto's notice queues as its [`Delivery`].

use crate::transport::Socket;
use bytes::Bytes;
use qmp_proto::notice_queue::NoticeSink;
use qmp_proto::router::{Delivery, Waiter};
use qmp_proto::{End, Failure, RawJson, Router, Sequenced};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

/// The receiving end of a call's or an event wait's oneshot.
pub(crate) type Answer<T> = oneshot::Receiver<T>;

/// A oneshot for one call or event wait: the sender is the router's waiter.
pub(crate) fn answer<T>() -> (Deferred<T>, Answer<T>) {
    let (sender, receiver) = oneshot::channel();
    (Deferred(sender), receiver)
}

/// `work`'s output, or `None` if `limit` passes first.
pub(crate) async fn within<F: Future>(limit: Duration, work: F) -> Option<F::Output> {
    tokio::time::timeout(limit, work).await.ok()
}

/// tokio's oneshots and notice queues as the router's waiters.
pub(crate) struct TokioDelivery;

impl Delivery for TokioDelivery {
    type Call = Deferred<Result<RawJson, Failure>>;
    type Wait = Deferred<Result<Sequenced, Failure>>;
    type Subscriber = NoticeSink;
}

/// A oneshot's sender whose result is sent once this thread releases the
/// state lock (the router is only reached through [`Shared::lock`]).
/// Sending wakes the caller, which at once takes the lock itself (to issue
/// its next command, say): woken under the lock, it would find it held and
/// sleep on it, one more thread hop for each reply.
pub(crate) struct Deferred<T>(oneshot::Sender<T>);

impl<T: 'static> Waiter<T> for Deferred<T> {
    fn deliver(self, result: T) {
        // A caller that went away drops its result.
        let mut send = Some(move || drop(self.0.send(result)));
        let kept = COMPLETIONS.try_with(|c| {
            let send = send.take().map(|f| Box::new(f) as Completion);
            c.borrow_mut().extend(send);
        });
        // Only while the thread exits, with its thread-locals gone: send at
        // once.
        if let (Err(_), Some(send)) = (kept, send) {
            send();
        }
    }

    fn is_gone(&self) -> bool {
        self.0.is_closed()
    }
}

/// A result to send once the state lock is released.
type Completion = Box<dyn FnOnce()>;

thread_local! {
    /// The completions made under the state lock this thread holds.
    static COMPLETIONS: RefCell<VecDeque<Completion>> = const { RefCell::new(VecDeque::new()) };
}

/// What the lock guards.
pub(crate) struct State {
    pub(crate) router: Router<TokioDelivery>,
    /// File descriptors to send with the next bytes written.
    pub(crate) fds: Vec<OwnedFd>,
    /// The socket, for [`State::flush`]; the driver takes it out when the
    /// connection ends.
    pub(crate) socket: Option<Arc<Socket>>,
    /// Bytes taken from the router and not written yet (the socket was
    /// full); written before any new ones.
    unsent: Option<Bytes>,
    /// The driver holds bytes it has not finished writing: nothing else
    /// may be written until it has.
    driver_busy: bool,
}

/// What the callers and the driver share.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Wakes the driver to write what [`State::flush`] left over.
    pub(crate) wake_driver: Notify,
}

impl Shared {
    pub(crate) fn new(router: Router<TokioDelivery>) -> Self {
        Shared {
            state: Mutex::new(State {
                router,
                fds: Vec::new(),
                socket: None,
                unsent: None,
                driver_busy: false,
            }),
            wake_driver: Notify::new(),
        }
    }

    /// Locks the state; the router's completions are sent when the guard
    /// is dropped, after the lock is released.
    pub(crate) fn lock(&self) -> Locked<'_> {
        // A panic while holding the lock cannot leave the router half
        // updated in a way that matters more than losing the connection.
        let guard = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Locked {
            guard,
            _then: SendCompletions,
        }
    }

    /// Looks at the router without changing it.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Router<TokioDelivery>) -> R) -> R {
        f(&self.lock().router)
    }

    /// Runs `f` on the router, then delivers its outputs and writes what
    /// it has to send (or wakes the driver to).
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut Router<TokioDelivery>) -> R) -> R {
        self.route(f).0
    }

    /// Changes the state with `f` (issuing a command, say), then writes
    /// what the router has to send (or wakes the driver to).
    pub(crate) fn update_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (result, wake_driver) = {
            let mut state = self.lock();
            let result = f(&mut state);
            (result, state.flush())
        };
        if wake_driver {
            self.wake_driver.notify_one();
        }
        result
    }

    /// The answer on `answer`: the connection's task delivers it.
    pub(crate) fn receive<'a, T>(&self, answer: &'a mut Answer<T>) -> &'a mut Answer<T> {
        answer
    }

    /// As [`update`](Self::update), for the driver: returns whether
    /// negotiation completed just now, and the connection's end once it
    /// has ended.
    pub(crate) fn with_router(
        &self,
        f: impl FnOnce(&mut Router<TokioDelivery>),
    ) -> (bool, Option<End>) {
        let ((), became_ready, ended) = self.route(f);
        (became_ready, ended)
    }

    /// Ends the connection: every waiter is answered, subscriptions end,
    /// and the driver writes what the socket takes at once and closes it.
    pub(crate) fn close(&self) {
        self.update(|router| router.close());
    }

    fn route<R>(&self, f: impl FnOnce(&mut Router<TokioDelivery>) -> R) -> (R, bool, Option<End>) {
        let mut state = self.lock();
        let result = f(&mut state.router);
        let progress = state.router.handle_outputs();
        let ended = state.router.end().cloned();
        let wake_driver = state.flush();
        drop(state);
        if wake_driver {
            self.wake_driver.notify_one();
        }
        (result, progress.became_ready, ended)
    }

    /// The bytes (and fds) to write next, and whether the connection ended.
    /// Until it is called again the driver is the only one to write.
    pub(crate) fn take_transmit(&self) -> (Option<Bytes>, Vec<OwnedFd>, bool) {
        let mut state = self.lock();
        let bytes = state.unsent.take().or_else(|| state.router.poll_transmit());
        state.driver_busy = bytes.is_some();
        let fds = if bytes.is_some() {
            std::mem::take(&mut state.fds)
        } else {
            Vec::new()
        };
        (bytes, fds, state.router.end().is_some())
    }
}

/// The locked state (see [`Shared::lock`]). Its fields drop in order:
/// the lock is released, then the completions are sent.
pub(crate) struct Locked<'a> {
    guard: MutexGuard<'a, State>,
    _then: SendCompletions,
}

impl Deref for Locked<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        &self.guard
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.guard
    }
}

/// Sends the completions made under the lock this thread held, when
/// dropped.
struct SendCompletions;

impl Drop for SendCompletions {
    fn drop(&mut self) {
        // One at a time, not borrowed while sending: a waker may run code
        // that takes a state lock again.
        while let Some(completion) = COMPLETIONS
            .try_with(|c| c.borrow_mut().pop_front())
            .ok()
            .flatten()
        {
            completion();
        }
    }
}

impl State {
    /// Writes what the router has to send right away, as far as the socket
    /// takes it without waiting, so that a command or a reply that unblocks
    /// queued commands needs no hop through the driver. Anything else
    /// (descriptors to pass, a full socket, an error, the end) is left to
    /// the driver: returns whether it must be woken.
    pub(crate) fn flush(&mut self) -> bool {
        if self.driver_busy || !self.fds.is_empty() {
            return true;
        }
        let State {
            router,
            socket: Some(socket),
            unsent,
            ..
        } = self
        else {
            return true;
        };
        router.transmit_with(unsent, |bytes| {
            // An error is left for the driver to meet and report.
            let n = socket.try_write(bytes).ok()?;
            #[cfg(feature = "tracing")]
            tracing::trace!(bytes = n, data = %String::from_utf8_lossy(&bytes[..n]), "qmp sent");
            Some(n)
        })
    }
}
