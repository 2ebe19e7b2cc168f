//! [`Subscription`]: a stream of events.

use crate::shared::Shared;
use qmp_proto::notice_queue::NoticeSource;
use qmp_proto::router::SubscriptionId;
use qmp_proto::{End, Notice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Events that passed a subscription's filter, as a [`Stream`](futures_core::Stream)
/// of [`Notice`]s: each event, or how many were missed when the subscriber
/// fell behind. Ends when the connection does, after the notices still
/// queued (and a last `Lagged` if it missed events the full queue could not
/// tell of); then [`end_reason`](Subscription::end_reason) says why.
/// Dropping it unsubscribes.
pub struct Subscription {
    events: NoticeSource,
    id: SubscriptionId,
    shared: Arc<Shared>,
}

impl Subscription {
    pub(crate) fn new(events: NoticeSource, id: SubscriptionId, shared: Arc<Shared>) -> Self {
        Subscription { events, id, shared }
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
        match self.events.poll_recv(cx) {
            Poll::Ready(None) => {
                let lagged = self.shared.lock().router.take_lagged_at_end(self.id);
                Poll::Ready(lagged.map(Notice::Lagged))
            }
            other => other,
        }
    }

    /// Why the connection ended, once it has.
    pub fn end_reason(&self) -> Option<End> {
        self.shared.lock().router.end().cloned()
    }
}

impl futures_core::Stream for Subscription {
    type Item = Notice;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Notice>> {
        self.poll_notice(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.shared.lock().router.unsubscribe(self.id);
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}
