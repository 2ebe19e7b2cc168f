//! A oneshot for the answer to one call or one event wait: the router holds
//! the sending half ([`Answering`]), the caller's future the other
//! ([`Answer`]). One allocation and one small lock; a caller that reads the
//! socket itself takes its answer without ever being woken.
//!
//! Answers are delivered under the connection's lock. Waking the receiver
//! there would let its thread run straight into that lock, so wakers are
//! kept aside ([`wake_later`]) and woken when this thread releases it
//! ([`WakeOnRelease`]).

use qmp_proto::router::Waiter;
use std::cell::{Cell, RefCell};
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
    /// Stores the answer; dropping `self` then wakes the receiver. Nobody
    /// listening any more is fine: the answer is dropped with the slot.
    fn deliver(self, value: T) {
        self.0.lock().value = Some(value);
    }

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
            wake_later(waker);
        }
    }
}

/// The sending half went away without an answer: the connection ended.
#[derive(Debug)]
pub(crate) struct Unanswered;

/// The receiving half, held by the caller.
pub(crate) struct Answer<T>(Arc<Slot<T>>);

impl<T> Answer<T> {
    /// The answer if it has come (or never will), else registers the waker
    /// of `cx` for it.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Result<T, Unanswered>> {
        let mut inner = self.0.lock();
        if let Some(value) = inner.value.take() {
            return Poll::Ready(Ok(value));
        }
        if inner.done {
            return Poll::Ready(Err(Unanswered));
        }
        match &mut inner.waker {
            Some(waker) => waker.clone_from(cx.waker()),
            none => *none = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

thread_local! {
    /// How many connection locks this thread holds (nested only across
    /// connections).
    static HELD: Cell<usize> = const { Cell::new(0) };
    /// Wakers to wake once this thread holds no connection lock.
    static LATER: RefCell<Vec<Waker>> = const { RefCell::new(Vec::new()) };
}

/// Wakes `waker` now, or once this thread releases the connection lock it
/// holds.
pub(crate) fn wake_later(waker: Waker) {
    let held = HELD.try_with(Cell::get).unwrap_or(0);
    let kept = held > 0
        && LATER
            .try_with(|l| l.borrow_mut().push(waker.clone()))
            .is_ok();
    if !kept {
        waker.wake();
    }
}

/// Marks a connection lock held by this thread while alive; dropped after
/// the lock's guard, it wakes what [`wake_later`] kept aside.
pub(crate) struct WakeOnRelease(());

impl WakeOnRelease {
    pub(crate) fn new() -> Self {
        HELD.with(|h| h.set(h.get() + 1));
        WakeOnRelease(())
    }
}

impl Drop for WakeOnRelease {
    fn drop(&mut self) {
        let held = HELD.with(|h| {
            h.set(h.get() - 1);
            h.get()
        });
        if held > 0 {
            return;
        }
        // Taken first: a waker may run code that locks a connection again.
        let wakers = LATER.with(|l| std::mem::take(&mut *l.borrow_mut()));
        for waker in wakers {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn delivered_answers_wake_once_the_lock_is_released() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let (sender, receiver) = answer::<u32>();
        let cx = &mut Context::from_waker(&waker);
        assert!(receiver.poll_take(cx).is_pending());
        let held = WakeOnRelease::new();
        sender.deliver(7);
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "woken under the lock");
        drop(held);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(matches!(receiver.poll_take(cx), Poll::Ready(Ok(7))));
    }

    #[test]
    fn a_dropped_sender_is_unanswered() {
        let (sender, receiver) = answer::<u32>();
        drop(sender);
        let cx = &mut Context::from_waker(Waker::noop());
        assert!(matches!(
            receiver.poll_take(cx),
            Poll::Ready(Err(Unanswered))
        ));
    }
}
