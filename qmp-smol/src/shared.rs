//! The connection's state, shared by the handles and the driver thread: the
//! router behind a mutex, async-channel senders as its [`Delivery`], and two
//! `event-listener` events to wake whoever waits on it.

use async_channel::{Sender, TrySendError};
use bytes::Bytes;
use event_listener::Event;
use qmp_proto::router::{Delivery, Offer};
use qmp_proto::{Failure, Notice, RawJson, Router, Sequenced};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

/// async-channel senders as the router's waiters (a `bounded(1)` channel
/// serves as a oneshot).
pub(crate) struct ChannelDelivery;

impl Delivery for ChannelDelivery {
    type Call = Sender<Result<RawJson, Failure>>;
    type Wait = Sender<Result<Sequenced, Failure>>;
    type Subscriber = Sender<Notice>;

    fn complete(call: Self::Call, result: Result<RawJson, Failure>) {
        // Nobody listening any more is fine: the result is dropped.
        call.try_send(result).ok();
    }

    fn found(wait: Self::Wait, result: Result<Sequenced, Failure>) {
        wait.try_send(result).ok();
    }

    fn offer(subscriber: &mut Self::Subscriber, notice: Notice) -> Offer {
        match subscriber.try_send(notice) {
            Ok(()) => Offer::Accepted,
            Err(TrySendError::Full(_)) => Offer::Full,
            Err(TrySendError::Closed(_)) => Offer::Gone,
        }
    }

    fn wait_is_gone(wait: &Self::Wait) -> bool {
        wait.is_closed()
    }
}

pub(crate) struct State {
    pub(crate) router: Router<ChannelDelivery>,
    /// Descriptors that go out with the next bytes written.
    pub(crate) fds: Vec<OwnedFd>,
    /// The connected socket, for [`State::flush`]; the driver puts it here
    /// once dialed and takes it back when it stops.
    pub(crate) socket: Option<Arc<dyn AsFd + Send + Sync>>,
    /// Bytes taken from the router and not written yet (the socket was
    /// full); written before any new ones.
    unsent: Option<Bytes>,
    /// The driver holds bytes it has not finished writing: nothing else may
    /// be written until it has.
    writer_busy: bool,
}

impl State {
    /// Writes what the router has to send right away, as far as the socket
    /// takes it without waiting, so that a command needs no hop through the
    /// driver thread. Anything else (descriptors to pass, a full socket, an
    /// error, the end) is left to the driver: returns whether it must be
    /// woken.
    fn flush(&mut self) -> bool {
        if self.writer_busy || !self.fds.is_empty() {
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
            let n = rustix::net::send(&**socket, bytes, rustix::net::SendFlags::NOSIGNAL).ok()?;
            #[cfg(feature = "tracing")]
            tracing::trace!(bytes = n, data = %String::from_utf8_lossy(&bytes[..n]), "qmp sent");
            Some(n)
        })
    }
}

/// What the writer should do next.
pub(crate) enum Outgoing {
    /// Write these bytes, with these descriptors on the first of them.
    Send(bytes::Bytes, Vec<OwnedFd>),
    /// Nothing to write yet.
    Idle,
    /// The connection has ended and everything is written.
    Finished,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Notified when there may be bytes to write.
    writable: Event,
    /// Notified when the router may have become ready or ended.
    changed: Event,
}

impl Shared {
    pub(crate) fn new(router: Router<ChannelDelivery>) -> Self {
        Shared {
            state: Mutex::new(State {
                router,
                fds: Vec::new(),
                socket: None,
                unsent: None,
                writer_busy: false,
            }),
            writable: Event::new(),
            changed: Event::new(),
        }
    }

    /// The state, for reads that change nothing.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Poisoning only means a panic elsewhere; the router stays coherent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks at the router without changing it.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Router<ChannelDelivery>) -> R) -> R {
        f(&self.lock().router)
    }

    /// Changes the state with `f`, routes whatever that produced, writes
    /// what there is to send (or wakes the writer), and wakes anyone
    /// waiting for a change.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (result, wake_writer) = {
            let mut state = self.lock();
            let result = f(&mut state);
            state.router.handle_outputs();
            (result, state.flush())
        };
        if wake_writer {
            self.writable.notify(usize::MAX);
        }
        self.changed.notify(usize::MAX);
        result
    }

    /// Waits until `done` holds for the router.
    pub(crate) async fn wait_until(&self, done: impl Fn(&Router<ChannelDelivery>) -> bool) {
        loop {
            // Listen first, so a change between the check and the wait
            // still wakes us.
            let changed = self.changed.listen();
            if done(&self.lock().router) {
                return;
            }
            changed.await;
        }
    }

    /// The writer's next step, and a listener registered before the router
    /// was looked at, to wait on when idle.
    /// Until it is called again the driver is the only one to write.
    pub(crate) fn next_outgoing(&self) -> (Outgoing, event_listener::EventListener) {
        let listener = self.writable.listen();
        let mut state = self.lock();
        let bytes = state.unsent.take().or_else(|| state.router.poll_transmit());
        state.writer_busy = bytes.is_some();
        let step = match bytes {
            Some(bytes) => Outgoing::Send(bytes, std::mem::take(&mut state.fds)),
            None if state.router.end().is_some() => Outgoing::Finished,
            None => Outgoing::Idle,
        };
        (step, listener)
    }
}
