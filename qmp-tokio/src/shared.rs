//! The state the caller tasks and the socket tasks share: the router behind
//! a mutex, and tokio's channels as its [`Delivery`].

use crate::transport::Writer;
use bytes::Bytes;
use qmp_proto::router::{Delivery, Offer};
use qmp_proto::{End, Failure, Notice, RawJson, Router, Sequenced};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};
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
    /// The socket's write half, for [`State::flush`]; the writer task
    /// takes it out when the connection ends.
    pub(crate) writer: Option<Arc<Writer>>,
    /// Bytes taken from the router and not written yet (the socket was
    /// full); written before any new ones.
    unsent: Option<Bytes>,
    /// The writer task holds bytes it has not finished writing: nothing
    /// else may be written until it has.
    writer_busy: bool,
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
                writer: None,
                unsent: None,
                writer_busy: false,
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

    /// Runs `f` on the router, then delivers its outputs and writes what
    /// it has to send (or wakes the writer). Returns whether the connection
    /// has ended.
    pub(crate) fn with_router<R>(&self, f: impl FnOnce(&mut Router<TokioDelivery>) -> R) -> bool {
        let mut state = self.lock();
        f(&mut state.router);
        let progress = state.router.handle_outputs();
        let ended = state.router.end().cloned();
        let wake_writer = state.flush();
        drop(state);
        if progress.became_ready {
            self.phase.send_replace(Phase::Ready);
        }
        if let Some(end) = &ended {
            self.phase.send_replace(Phase::Ended(end.clone()));
        }
        if wake_writer {
            self.wake_writer.notify_one();
        }
        ended.is_some()
    }

    /// The bytes (and fds) to write next, and whether the connection ended.
    /// Until it is called again the writer task is the only one to write.
    pub(crate) fn take_transmit(&self) -> (Option<Bytes>, Vec<OwnedFd>, bool) {
        let mut state = self.lock();
        let bytes = state.unsent.take().or_else(|| state.router.poll_transmit());
        state.writer_busy = bytes.is_some();
        let fds = if bytes.is_some() {
            std::mem::take(&mut state.fds)
        } else {
            Vec::new()
        };
        (bytes, fds, state.router.end().is_some())
    }
}

impl State {
    /// Writes what the router has to send right away, as far as the socket
    /// takes it without waiting, so that a command or a reply that unblocks
    /// queued commands needs no hop through the writer task. Anything else
    /// (descriptors to pass, a full socket, an error, the end) is left to
    /// the writer task: returns whether it must be woken.
    pub(crate) fn flush(&mut self) -> bool {
        if self.writer_busy || !self.fds.is_empty() {
            return true;
        }
        let State {
            router,
            writer: Some(writer),
            unsent,
            ..
        } = self
        else {
            return true;
        };
        router.transmit_with(unsent, |bytes| {
            // An error is left for the writer task to meet and report.
            let n = writer.try_write(bytes).ok()?;
            #[cfg(feature = "tracing")]
            tracing::trace!(bytes = n, data = %String::from_utf8_lossy(&bytes[..n]), "qmp sent");
            Some(n)
        })
    }
}
