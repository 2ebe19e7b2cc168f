//! [`EventMatcher`]: which typed events a wait or a lookup is for.

use super::Event;
use crate::message::{Event as RawEvent, Timestamp};
use crate::router::{Cursor, EventFilter, Sequenced};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;

/// A caller's test on a typed event.
type Test<E> = Arc<dyn Fn(&E) -> bool + Send + Sync>;

/// Selects events of type `E` that pass a test on their typed data: what
/// an adapter's `wait_for` and `find` take, and what a custom loop can use
/// with [`Router`](crate::Router) through [`filter`](Self::filter) and
/// [`decode`](Self::decode).
///
/// An event of `E`'s name whose data does not decode never passes a test
/// (it cannot be tested); with no test ([`any`](Self::any)) it is
/// selected, and decoding it gives the error, to that caller alone.
///
/// ```
/// use qmp_proto::typed::events::DeviceDeleted;
/// use qmp_proto::typed::{Event as _, EventMatcher};
///
/// let mine = DeviceDeleted::matching_device("disk1");
/// let any_deletion = DeviceDeleted::matcher();
/// let by_path = EventMatcher::new(|e: &DeviceDeleted| e.path.starts_with("/machine/peripheral/"));
/// # let _ = (mine, any_deletion, by_path);
/// ```
pub struct EventMatcher<E> {
    test: Option<Test<E>>,
    kind: PhantomData<fn() -> E>,
}

impl<E> Clone for EventMatcher<E> {
    fn clone(&self) -> Self {
        EventMatcher {
            test: self.test.clone(),
            kind: PhantomData,
        }
    }
}

impl<E: Event> fmt::Debug for EventMatcher<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventMatcher")
            .field("event", &E::NAME)
            .field("test", &self.test.is_some())
            .finish()
    }
}

impl<E: Event + 'static> EventMatcher<E> {
    /// Every event of type `E`.
    pub fn any() -> Self {
        EventMatcher {
            test: None,
            kind: PhantomData,
        }
    }

    /// The events of type `E` for which `test` is true.
    pub fn new(test: impl Fn(&E) -> bool + Send + Sync + 'static) -> Self {
        EventMatcher {
            test: Some(Arc::new(test)),
            kind: PhantomData,
        }
    }

    /// Whether `event` is selected.
    pub fn matches(&self, event: &RawEvent) -> bool {
        if event.name != E::NAME {
            return false;
        }
        match &self.test {
            None => true,
            Some(test) => event.decode::<E>().is_ok_and(|data| test(&data)),
        }
    }

    /// The raw filter selecting the same events, for
    /// [`Router::wait_for_event`](crate::Router::wait_for_event),
    /// [`Router::find_events`](crate::Router::find_events) and
    /// subscriptions.
    pub fn filter(&self) -> EventFilter {
        let filter = EventFilter::name(E::NAME);
        match &self.test {
            None => filter,
            Some(test) => {
                let test = test.clone();
                filter.matching(move |event| event.decode::<E>().is_ok_and(|data| test(&data)))
            }
        }
    }

    /// Decodes a selected event.
    pub fn decode(&self, found: Sequenced) -> Result<TypedEvent<E>, serde_json::Error> {
        Ok(TypedEvent {
            data: found.event.decode()?,
            sequence: found.sequence,
            timestamp: found.event.timestamp,
        })
    }

    /// Decodes the selected ones of `events`, in order, leaving out those
    /// that do not decode.
    pub fn decode_all(&self, events: impl IntoIterator<Item = Sequenced>) -> Vec<TypedEvent<E>> {
        events
            .into_iter()
            .filter(|found| self.matches(&found.event))
            .filter_map(|found| self.decode(found).ok())
            .collect()
    }
}

/// A typed event with its place in the connection's event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedEvent<E> {
    /// The event's sequence number on its connection.
    pub sequence: u64,
    /// When the server says it happened.
    pub timestamp: Timestamp,
    /// The event's data.
    pub data: E,
}

impl<E> TypedEvent<E> {
    /// A cursor for the events after this one.
    pub fn next_cursor(&self) -> Cursor {
        Cursor(self.sequence + 1)
    }
}
