//! [`Subscription`]: a stream of events.

use crate::engine::Shared;
use crate::notice_queue::{notice_queue, NoticeSource};
use crate::runtime::Runtime;
use qmp_proto::router::SubscriptionId;
use qmp_proto::{Cursor, End, EventFilter, Notice, SubscribeFrom};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// How a [`Subscription`] takes events; see [`Qmp::subscribe_with`](crate::Qmp::subscribe_with).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscribeOptions {
    /// Start with the kept events at or after this cursor, then go on
    /// with new ones: [`Cursor::START`] for every event since the
    /// connection began, including those QEMU sent together with the
    /// negotiation reply (and before the greeting, as some versions do).
    /// Default: new events only.
    pub from: Option<Cursor>,
    /// How many notices may wait unread. Default: the connection's
    /// [`subscriber_capacity`](crate::ConnectOptions::subscriber_capacity).
    pub capacity: Option<usize>,
    /// Lose no event. While this subscription's queue is full, the
    /// connection stops reading the socket (so memory stays bounded) until
    /// it takes its notices: replies and everyone else's events wait too,
    /// so a lossless subscription must be read steadily. Default: off; a
    /// subscriber that falls behind is told how many events it missed
    /// ([`Notice::Lagged`]) and never holds anything up.
    pub lossless: bool,
}

impl SubscribeOptions {
    /// Sets [`from`](Self::from).
    pub fn from(mut self, cursor: Cursor) -> Self {
        self.from = Some(cursor);
        self
    }

    /// Sets [`capacity`](Self::capacity) (at least 1).
    pub fn capacity(mut self, notices: usize) -> Self {
        self.capacity = Some(notices.max(1));
        self
    }

    /// Sets [`lossless`](Self::lossless).
    pub fn lossless(mut self, lossless: bool) -> Self {
        self.lossless = lossless;
        self
    }
}

/// Events that passed a subscription's filter, as a
/// [`Stream`](futures_core::Stream) of [`Notice`]s: each event, or how many
/// were missed when the subscriber fell behind. Ends when the connection
/// does, after the notices still queued (and a last `Lagged` if it missed
/// events the full queue could not tell of); then
/// [`end_reason`](Subscription::end_reason) says why. Dropping it
/// unsubscribes.
///
/// While it waits for an event it reads the socket, as every waiting call
/// does: a task that follows events needs nothing else to keep the
/// connection's history and subscribers fed.
pub struct Subscription<R: Runtime> {
    shared: Arc<Shared<R>>,
    events: NoticeSource,
    id: SubscriptionId,
    /// Registered as a waiter of the connection, with this number.
    waiter: Option<u64>,
}

impl<R: Runtime> Subscription<R> {
    pub(crate) fn new(
        shared: Arc<Shared<R>>,
        filter: EventFilter,
        options: SubscribeOptions,
        default_capacity: usize,
    ) -> Self {
        let (sink, events) = notice_queue(options.capacity.unwrap_or(default_capacity));
        let mut from = SubscribeFrom::default();
        from.cursor = options.from;
        from.lossless = options.lossless;
        shared.catch_up();
        let id = shared.update(|state| state.router.subscribe(filter, sink, from));
        Subscription {
            shared,
            events,
            id,
            waiter: None,
        }
    }

    /// The next notice, or `None` once the connection has ended.
    ///
    /// Cancel safety: cancel safe; no notice is lost if the future is
    /// dropped.
    pub async fn next(&mut self) -> Option<Notice> {
        std::future::poll_fn(|cx| self.poll_notice(cx)).await
    }

    /// The queued notices, then what the connection's end left untold (a
    /// lag the full queue could not take), then the end.
    fn poll_notice(&mut self, cx: &mut Context<'_>) -> Poll<Option<Notice>> {
        let Subscription {
            shared,
            events,
            id,
            waiter,
        } = self;
        // Notices taken in an earlier batch need no lock.
        if let Poll::Ready(Some(notice)) = events.poll_recv(cx) {
            shared.stop_waiting(waiter);
            return Poll::Ready(Some(notice));
        }
        shared.poll_wait(cx, waiter, |state, cx| {
            // Room was made: a lossless subscription's held notices go in.
            state.router.refill(*id);
            match events.poll_recv(cx) {
                Poll::Ready(None) => Poll::Ready(state.router.take_left_at_end(*id)),
                other => other,
            }
        })
    }

    /// Why the connection ended, once it has.
    pub fn end_reason(&self) -> Option<End> {
        self.shared.read(|router| router.end().cloned())
    }
}

impl<R: Runtime> futures_core::Stream for Subscription<R> {
    type Item = Notice;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Notice>> {
        self.poll_notice(cx)
    }
}

impl<R: Runtime> Drop for Subscription<R> {
    fn drop(&mut self) {
        self.shared.stop_waiting(&mut self.waiter);
        let id = self.id;
        self.shared.update(|state| state.router.unsubscribe(id));
    }
}

impl<R: Runtime> std::fmt::Debug for Subscription<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}
