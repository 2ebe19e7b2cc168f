//! A oneshot for the answer to one call or one event wait: the router holds
//! the sending half, the caller's future the other. Lighter than a channel
//! (one allocation, one small lock), and the caller reading the socket
//! itself takes its answer without being woken.

use qmp_proto::router::Waiter;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// A new oneshot.
pub(crate) fn answer<T>() -> (Answering<T>, Answer<T>) {
    let slot = Arc::new(Slot(Mutex::new(Inner {
        value: None,
        waker: None,
        done: false,
    })));
    (Answering(slot.clone()), Answer(slot))
}

struct Slot<T>(Mutex<Inner<T>>);

struct Inner<T> {
    value: Option<T>,
    /// Woken when the answer comes or the sending half goes.
    waker: Option<Waker>,
    /// The sending half is gone (with or without sending).
    done: bool,
}

impl<T> Slot<T> {
    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sending half, held by the router.
pub(crate) struct Answering<T>(Arc<Slot<T>>);

impl<T> Waiter<T> for Answering<T> {
    /// Sends the answer; dropping `self` then wakes the receiver, if it
    /// waits. Nobody listening any more is fine: the answer is dropped.
    fn deliver(self, value: T) {
        self.0.lock().value = Some(value);
    }

    /// Whether the receiving half has gone away.
    fn is_gone(&self) -> bool {
        Arc::strong_count(&self.0) == 1
    }
}

impl<T> Drop for Answering<T> {
    fn drop(&mut self) {
        let waker = {
            let mut inner = self.0.lock();
            inner.done = true;
            inner.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The sending half went away without an answer.
#[derive(Debug)]
pub(crate) struct Unanswered;

/// The receiving half, held by the caller.
pub(crate) struct Answer<T>(Arc<Slot<T>>);

impl<T> Answer<T> {
    /// The answer, if it has come (or will never come), without waiting.
    pub(crate) fn try_take(&self) -> Option<Result<T, Unanswered>> {
        let mut inner = self.0.lock();
        match inner.value.take() {
            Some(value) => Some(Ok(value)),
            None => inner.done.then_some(Err(Unanswered)),
        }
    }

    /// The answer, or `Pending` with `cx` registered to be woken by it.
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<Result<T, Unanswered>> {
        let mut inner = self.0.lock();
        if let Some(value) = inner.value.take() {
            return Poll::Ready(Ok(value));
        }
        if inner.done {
            return Poll::Ready(Err(Unanswered));
        }
        if !inner
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            inner.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}
