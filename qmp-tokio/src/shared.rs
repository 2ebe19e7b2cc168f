//! The state the caller tasks and the socket tasks share: the router behind
//! a mutex, and tokio's channels as its [`Delivery`].

use qmp_proto::router::{Delivery, Offer};
use qmp_proto::{End, Failure, Notice, RawJson, Router, Sequenced};
use std::os::fd::OwnedFd;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::{mpsc, oneshot, watch, Notify};

/// tokio's channels as the router's waiters.
pub(crate) struct TokioDelivery;

impl Delivery for TokioDelivery {
    type Call = oneshot::Sender<Result<RawJson, Failure>>;
    type Wait = oneshot::Sender<Result<Sequenced, Failure>>;
    type Subscriber = mpsc::Sender<Notice>;

    fn complete(call: Self::Call, result: Result<RawJson, Failure>) {
        // The caller may have gone away; its result is then dropped.
        let _ = call.send(result);
    }

    fn found(wait: Self::Wait, result: Result<Sequenced, Failure>) {
        let _ = wait.send(result);
    }

    fn offer(subscriber: &mut Self::Subscriber, notice: Notice) -> Offer {
        match subscriber.try_send(notice) {
            Ok(()) => Offer::Accepted,
            Err(mpsc::error::TrySendError::Full(_)) => Offer::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Gone,
        }
    }

    fn wait_is_gone(wait: &Self::Wait) -> bool {
        wait.is_closed()
    }
}

/// Where the connection stands, for `connect` to wait on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    Connecting,
    Ready,
    Ended(End),
}

pub(crate) struct State {
    pub(crate) router: Router<TokioDelivery>,
    /// File descriptors to send with the next bytes written.
    pub(crate) fds: Vec<OwnedFd>,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) wake_writer: Notify,
    pub(crate) phase: watch::Sender<Phase>,
}

impl Shared {
    pub(crate) fn new(router: Router<TokioDelivery>) -> Self {
        Shared {
            state: Mutex::new(State {
                router,
                fds: Vec::new(),
            }),
            wake_writer: Notify::new(),
            phase: watch::Sender::new(Phase::Connecting),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the router half
        // updated in a way that matters more than losing the connection.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the router, then delivers its outputs and wakes the
    /// writer. Returns whether the connection has ended.
    pub(crate) fn with_router<R>(&self, f: impl FnOnce(&mut Router<TokioDelivery>) -> R) -> bool {
        let mut state = self.lock();
        f(&mut state.router);
        let progress = state.router.handle_outputs();
        let ended = state.router.end().cloned();
        drop(state);
        if progress.became_ready {
            self.phase.send_replace(Phase::Ready);
        }
        if let Some(end) = &ended {
            self.phase.send_replace(Phase::Ended(end.clone()));
        }
        self.wake_writer.notify_one();
        ended.is_some()
    }

    /// The bytes (and fds) to write next, and whether the connection ended.
    pub(crate) fn take_transmit(&self) -> (Option<bytes::Bytes>, Vec<OwnedFd>, bool) {
        let mut state = self.lock();
        let bytes = state.router.poll_transmit();
        let fds = if bytes.is_some() {
            std::mem::take(&mut state.fds)
        } else {
            Vec::new()
        };
        (bytes, fds, state.router.end().is_some())
    }
}
