//! A subscriber's bounded queue of [`Notice`]s, for any async runtime.
//!
//! The router's side ([`NoticeSink`]) pushes one notice at a time under a
//! short lock; the subscriber's side ([`NoticeSource`]) takes everything
//! queued in one go into a local batch and pops from that without touching
//! the lock again. The subscriber is woken only when the queue goes from
//! empty to non-empty. Notices in the local batch still count as unread,
//! so at most `capacity` are ever held.

use qmp_proto::router::{Notice, Offer};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

struct Queue {
    notices: VecDeque<Notice>,
    /// The subscriber waiting for the queue to fill.
    waker: Option<Waker>,
    /// The sink was dropped: no more notices will come.
    closed: bool,
    /// The source was dropped: notices are not wanted any more.
    gone: bool,
    /// How many notices the source took at its last swap: at least what
    /// its batch still holds, so that while `notices` and this stay below
    /// the capacity the sink need not read `in_batch` (a line the source
    /// writes at every notice it returns).
    taken: usize,
}

struct Channel {
    queue: Mutex<Queue>,
    /// How many notices the source's local batch still holds.
    in_batch: OwnLine,
    capacity: usize,
}

/// A counter on a cache line of its own: the source's writes to it do not
/// take the lock's line away from the sink.
#[repr(align(128))]
struct OwnLine(AtomicUsize);

impl Channel {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The lock guards no invariant a panic could break half way.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A bounded queue holding at most `capacity` (at least 1) unread notices.
pub fn notice_queue(capacity: usize) -> (NoticeSink, NoticeSource) {
    let capacity = capacity.max(1);
    let channel = Arc::new(Channel {
        queue: Mutex::new(Queue {
            notices: VecDeque::new(),
            waker: None,
            closed: false,
            gone: false,
            taken: 0,
        }),
        in_batch: OwnLine(AtomicUsize::new(0)),
        capacity,
    });
    let sink = NoticeSink {
        channel: channel.clone(),
    };
    let source = NoticeSource {
        channel,
        batch: VecDeque::new(),
    };
    (sink, source)
}

/// The router's side of a [`notice_queue`]: dropping it ends the stream.
pub struct NoticeSink {
    channel: Arc<Channel>,
}

impl NoticeSink {
    /// Queues `notice` without blocking, if there is room and the source
    /// is still there.
    pub fn offer(&mut self, notice: Notice) -> Offer {
        let channel = &*self.channel;
        let mut queue = channel.lock();
        if queue.gone {
            return Offer::Gone;
        }
        if queue.notices.len() + queue.taken >= channel.capacity {
            let unread = queue.notices.len() + channel.in_batch.0.load(Ordering::Acquire);
            if unread >= channel.capacity {
                return Offer::Full(notice);
            }
        }
        queue.notices.push_back(notice);
        let waker = if queue.notices.len() == 1 {
            queue.waker.take()
        } else {
            None
        };
        drop(queue);
        if let Some(waker) = waker {
            waker.wake();
        }
        Offer::Accepted
    }
}

impl qmp_proto::router::Subscriber for NoticeSink {
    fn offer(&mut self, notice: Notice) -> Offer {
        NoticeSink::offer(self, notice)
    }
}

impl Drop for NoticeSink {
    fn drop(&mut self) {
        let mut queue = self.channel.lock();
        queue.closed = true;
        let waker = queue.waker.take();
        drop(queue);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The subscriber's side of a [`notice_queue`].
pub struct NoticeSource {
    channel: Arc<Channel>,
    /// Notices taken from the queue, not yet returned.
    batch: VecDeque<Notice>,
}

impl NoticeSource {
    /// The next notice; `Ready(None)` once the sink is dropped and every
    /// queued notice has been returned. Cancel safe: a notice is only
    /// removed when it is returned.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Notice>> {
        if self.batch.is_empty() {
            let mut queue = self.channel.lock();
            if queue.notices.is_empty() {
                queue.taken = 0;
                if queue.closed {
                    return Poll::Ready(None);
                }
                match &mut queue.waker {
                    Some(waker) => waker.clone_from(cx.waker()),
                    none => *none = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
            // Swapped, so both buffers keep their allocations.
            std::mem::swap(&mut self.batch, &mut queue.notices);
            queue.taken = self.batch.len();
            self.channel
                .in_batch
                .0
                .store(self.batch.len(), Ordering::Release);
        }
        let notice = self.batch.pop_front();
        self.channel
            .in_batch
            .0
            .store(self.batch.len(), Ordering::Release);
        Poll::Ready(notice)
    }
}

impl Drop for NoticeSource {
    fn drop(&mut self) {
        let mut queue = self.channel.lock();
        queue.gone = true;
        let unread = std::mem::take(&mut queue.notices);
        queue.waker = None;
        drop(queue);
        drop(unread);
    }
}

impl core::fmt::Debug for NoticeSource {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NoticeSource")
            .field("batch", &self.batch.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qmp_proto::router::Notice;
    use std::task::Waker;

    fn poll(source: &mut NoticeSource) -> Poll<Option<Notice>> {
        source.poll_recv(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn bounded_counting_the_batch() {
        let (mut sink, mut source) = notice_queue(2);
        assert_eq!(sink.offer(Notice::Lagged(1)), Offer::Accepted);
        assert_eq!(sink.offer(Notice::Lagged(2)), Offer::Accepted);
        assert_eq!(
            sink.offer(Notice::Lagged(3)),
            Offer::Full(Notice::Lagged(3))
        );
        assert_eq!(poll(&mut source), Poll::Ready(Some(Notice::Lagged(1))));
        // One in the batch, one free.
        assert_eq!(sink.offer(Notice::Lagged(4)), Offer::Accepted);
        assert_eq!(
            sink.offer(Notice::Lagged(5)),
            Offer::Full(Notice::Lagged(5))
        );
        assert_eq!(poll(&mut source), Poll::Ready(Some(Notice::Lagged(2))));
        drop(sink);
        assert_eq!(poll(&mut source), Poll::Ready(Some(Notice::Lagged(4))));
        assert_eq!(poll(&mut source), Poll::Ready(None));
    }

    #[test]
    fn pending_then_gone() {
        let (mut sink, mut source) = notice_queue(1);
        assert_eq!(poll(&mut source), Poll::Pending);
        drop(source);
        assert_eq!(sink.offer(Notice::Lagged(1)), Offer::Gone);
    }
}
