//! Routing a [`Client`]'s outputs to the callers that wait for them.
//!
//! It is pure routing, with no I/O and no async: the async client
//! (`qmp-client`) adds its oneshots, queues and sockets, and a custom event
//! loop can use it as it is. A [`Router`] owns the client machine and:
//!
//! - hands each reply to the waiter of its command, and forgets the command
//!   when its waiter goes away;
//! - keeps a bounded history of events with sequence numbers, so a caller
//!   can take a [`Cursor`], run a command, and then wait for an event that
//!   may already have arrived, with no race;
//! - offers each event to every matching subscriber through a bounded queue:
//!   a subscriber that does not keep up is told how many events it missed,
//!   and never slows replies or grows memory (unless it asked to lose
//!   nothing: then the router holds its events and says the connection
//!   should stop reading, [`Router::is_held_up`]);
//! - fails every waiter and ends every subscription with the cause when the
//!   connection ends.
//!
//! The caller's waiters and queues come in through [`Delivery`].

use crate::client::{Client, ClientOutput, RequestId};
use crate::error::{End, SendError};
use crate::json::RawJson;
use crate::message::{Event, QmpError};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use serde::Serialize;

/// A position in the event stream: "events from here on".
///
/// Take one with [`Router::cursor`] *before* running the command whose
/// event you will wait for; the wait then sees the event even if it arrived
/// before the wait began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor(pub(crate) u64);

impl Cursor {
    /// The start of the connection: every event since it began, including
    /// those that came before the greeting (some QEMU versions send one)
    /// and in the same read as the negotiation reply, before any other
    /// cursor could have been taken (as far as the history still holds
    /// them).
    pub const START: Cursor = Cursor(1);

    /// The sequence number of the first event this cursor covers.
    pub fn sequence(self) -> u64 {
        self.0
    }
}

/// An event with its sequence number on this connection (1, 2, 3, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequenced {
    /// The event's sequence number.
    pub sequence: u64,
    /// The event.
    pub event: Event,
}

impl Sequenced {
    /// A cursor for the events after this one.
    pub fn next_cursor(&self) -> Cursor {
        Cursor(self.sequence + 1)
    }
}

/// A caller's test on an event.
type Predicate = Box<dyn Fn(&Event) -> bool + Send + Sync>;

/// Which events a subscription or a wait is for.
pub struct EventFilter {
    names: Option<Vec<String>>,
    predicate: Option<Predicate>,
}

impl EventFilter {
    /// Every event.
    pub fn all() -> Self {
        EventFilter {
            names: None,
            predicate: None,
        }
    }

    /// Events with this name.
    pub fn name(name: impl Into<String>) -> Self {
        Self::all().or_name(name)
    }

    /// Also accept events named `name` (names are alternatives).
    pub fn or_name(mut self, name: impl Into<String>) -> Self {
        self.names.get_or_insert_with(Vec::new).push(name.into());
        self
    }

    /// Only events for which `predicate` is true (on top of the names).
    pub fn matching(mut self, predicate: impl Fn(&Event) -> bool + Send + Sync + 'static) -> Self {
        self.predicate = Some(Box::new(predicate));
        self
    }

    /// Whether `event` passes the filter.
    pub fn matches(&self, event: &Event) -> bool {
        let name_ok = self
            .names
            .as_ref()
            .is_none_or(|names| names.contains(&event.name));
        name_ok && self.predicate.as_ref().is_none_or(|p| p(event))
    }
}

impl fmt::Debug for EventFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventFilter")
            .field("names", &self.names)
            .field("predicate", &self.predicate.is_some())
            .finish()
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The next matching event.
    Event(Sequenced),
    /// The subscriber's queue was full: this many matching events were
    /// dropped for it before the next one it receives.
    Lagged(u64),
}

/// How a subscriber's queue took a [`Notice`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// Queued.
    Accepted,
    /// The queue is full; the notice was not queued, and is given back.
    Full(Notice),
    /// The subscriber has gone away; forget it.
    Gone,
}

/// Why a call or a wait failed without a reply from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server answered with an error.
    Qmp(QmpError),
    /// The command was not accepted locally.
    Rejected(SendError),
    /// The connection ended before the answer came.
    Ended(End),
    /// The wait's cursor is older than the event history: matching events
    /// may have been dropped from it.
    HistoryOverrun {
        /// The oldest sequence number still in the history.
        oldest_kept: u64,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Qmp(e) => write!(f, "QMP error: {e}"),
            Failure::Rejected(e) => e.fmt(f),
            Failure::Ended(end) => write!(f, "connection ended: {end}"),
            Failure::HistoryOverrun { oldest_kept } => write!(
                f,
                "events before sequence {oldest_kept} were dropped from the history"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Failure {}

/// The runtime's side of a [`Router`]: the types its results go to.
pub trait Delivery {
    /// The waiter of one command (e.g. a oneshot's sender).
    type Call: Waiter<Result<RawJson, Failure>>;
    /// The waiter of one event wait (e.g. a oneshot's sender).
    type Wait: Waiter<Result<Sequenced, Failure>>;
    /// One subscriber's bounded queue (e.g. one its task reads).
    type Subscriber: Subscriber;
}

/// Where one result goes: the sending half of a oneshot, say.
pub trait Waiter<T> {
    /// Hands the result over; a waiter that has gone away drops it.
    fn deliver(self, result: T);
    /// Whether the waiter has gone away (a result would be dropped).
    fn is_gone(&self) -> bool;
}

/// A subscriber's bounded queue, as the router feeds it.
pub trait Subscriber {
    /// Offers a notice without blocking.
    fn offer(&mut self, notice: Notice) -> Offer;
}

/// Settings of a [`Router`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouterConfig {
    /// How many recent events are kept for cursor waits. Default: 1024.
    pub history: usize,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig { history: 1024 }
    }
}

impl RouterConfig {
    /// Sets [`history`](Self::history).
    pub fn history(mut self, events: usize) -> Self {
        self.history = events;
        self
    }
}

/// A subscription's handle inside the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriptionId(u64);

/// How a subscription takes events: from when, and what happens when its
/// queue is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscribeFrom {
    /// Start with the kept events at or after this cursor (e.g.
    /// [`Cursor::START`]), then go on with new ones. `None`: new ones only.
    pub cursor: Option<Cursor>,
    /// Lose nothing: while the subscriber's queue is full, its events are
    /// held here and the connection stops reading
    /// ([`Router::is_held_up`]) until it takes them. Otherwise it is told
    /// how many it missed ([`Notice::Lagged`]).
    pub lossless: bool,
}

struct Subscription<S> {
    id: SubscriptionId,
    filter: EventFilter,
    sink: S,
    lagged: u64,
    lossless: bool,
    /// A lossless subscriber's notices that its full queue could not take,
    /// oldest first.
    held: VecDeque<Notice>,
}

struct EventWait<W> {
    after: Cursor,
    filter: EventFilter,
    waiter: W,
}

/// What [`Router::handle_outputs`] saw, for the adapter's bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// Negotiation completed during this call.
    pub became_ready: bool,
    /// The connection ended during this call, for this reason.
    pub ended: Option<End>,
}

/// A [`Client`] plus the routing of its outputs; see the [module docs](self).
pub struct Router<D: Delivery> {
    client: Client,
    config: RouterConfig,
    calls: BTreeMap<RequestId, D::Call>,
    history: VecDeque<Sequenced>,
    next_sequence: u64,
    subscriptions: Vec<Subscription<D::Subscriber>>,
    /// What the connection's end left untold (held notices, a lag count):
    /// the subscriber's queue was full. Its handle takes them once it has
    /// drained the queue.
    left_at_end: BTreeMap<SubscriptionId, VecDeque<Notice>>,
    next_subscription: u64,
    waits: Vec<EventWait<D::Wait>>,
    unattributed: VecDeque<QmpError>,
    end: Option<End>,
}

impl<D: Delivery> fmt::Debug for Router<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("client", &self.client)
            .field("calls", &self.calls.len())
            .field("history", &self.history.len())
            .field("subscriptions", &self.subscriptions.len())
            .field("waits", &self.waits.len())
            .field("end", &self.end)
            .finish()
    }
}

/// How many id-less error replies are kept for [`Router::take_unattributed`].
const UNATTRIBUTED_KEPT: usize = 64;

impl<D: Delivery> Router<D> {
    /// Routes the outputs of `client`.
    pub fn new(client: Client, config: RouterConfig) -> Self {
        Router {
            client,
            config,
            calls: BTreeMap::new(),
            history: VecDeque::new(),
            next_sequence: 1,
            subscriptions: Vec::new(),
            left_at_end: BTreeMap::new(),
            next_subscription: 0,
            waits: Vec::new(),
            unattributed: VecDeque::new(),
            end: None,
        }
    }

    /// The client machine (for its getters: greeting, counters).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Why the connection ended, once it has.
    pub fn end(&self) -> Option<&End> {
        self.end.as_ref()
    }

    /// Commands awaiting their reply.
    pub fn pending_calls(&self) -> usize {
        self.calls.len()
    }

    /// Events kept in the history.
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// Active subscriptions.
    pub fn subscriptions(&self) -> usize {
        self.subscriptions.len()
    }

    /// A cursor at the end of the event stream: it covers the events that
    /// arrive from now on.
    pub fn cursor(&self) -> Cursor {
        Cursor(self.next_sequence)
    }

    /// The kept events at or after `cursor` that pass `filter`, oldest first,
    /// without waiting.
    pub fn find_events<'a>(
        &'a self,
        after: Cursor,
        filter: &'a EventFilter,
    ) -> impl Iterator<Item = &'a Sequenced> + 'a {
        self.history
            .iter()
            .filter(move |s| s.sequence >= after.0 && filter.matches(&s.event))
    }

    /// Error replies without an id that answered no command (none was in
    /// flight), oldest first; the last 64 are kept.
    pub fn take_unattributed(&mut self) -> Vec<QmpError> {
        self.unattributed.drain(..).collect()
    }

    /// Issues a command and registers `call` to receive its result.
    /// Rejections are delivered to `call` at once.
    pub fn execute<A: Serialize + ?Sized>(
        &mut self,
        name: &str,
        arguments: &A,
        oob: bool,
        call: D::Call,
    ) -> Option<RequestId> {
        let issued = if oob {
            self.client.execute_oob(name, arguments)
        } else {
            self.client.execute(name, arguments)
        };
        match issued {
            Ok(id) => {
                self.calls.insert(id, call);
                Some(id)
            }
            Err(SendError::Closed) if self.end.is_some() => {
                let end = self.end.clone().unwrap_or(End::Local);
                call.deliver(Err(Failure::Ended(end)));
                None
            }
            Err(e) => {
                call.deliver(Err(Failure::Rejected(e)));
                None
            }
        }
    }

    /// The waiter of command `id` has gone away: its reply will be dropped
    /// (and a command not yet sent is never sent).
    pub fn forget(&mut self, id: RequestId) {
        self.calls.remove(&id);
        self.client.forget(id);
    }

    /// Waits for the first event at or after `after` that passes `filter`.
    /// It may already be in the history; otherwise `wait` is completed when
    /// it arrives, or fails when the connection ends.
    pub fn wait_for_event(&mut self, after: Cursor, filter: EventFilter, wait: D::Wait) {
        if let Some(found) = self.find_events(after, &filter).next() {
            return wait.deliver(Ok(found.clone()));
        }
        let oldest_kept = self
            .history
            .front()
            .map_or(self.next_sequence, |s| s.sequence);
        if after.0 < oldest_kept {
            return wait.deliver(Err(Failure::HistoryOverrun { oldest_kept }));
        }
        if let Some(end) = &self.end {
            return wait.deliver(Err(Failure::Ended(end.clone())));
        }
        self.waits.push(EventWait {
            after,
            filter,
            waiter: wait,
        });
    }

    /// Starts delivering matching events to `subscriber`: the kept ones
    /// from `from.cursor` on if it is set, then each new one. A cursor
    /// older than the history starts with a [`Notice::Lagged`] of how many
    /// events (matching or not) were dropped from it since. A subscription
    /// made after the end is dropped at once.
    pub fn subscribe(
        &mut self,
        filter: EventFilter,
        subscriber: D::Subscriber,
        from: SubscribeFrom,
    ) -> SubscriptionId {
        let id = SubscriptionId(self.next_subscription);
        self.next_subscription += 1;
        if self.end.is_some() {
            return id;
        }
        let mut sub = Subscription {
            id,
            filter,
            sink: subscriber,
            lagged: 0,
            lossless: from.lossless,
            held: VecDeque::new(),
        };
        if let Some(cursor) = from.cursor {
            let oldest_kept = (self.history.front()).map_or(self.next_sequence, |s| s.sequence);
            if cursor.0 < oldest_kept {
                sub.lagged = oldest_kept - cursor.0;
            }
            let kept = self.history.iter().filter(|s| s.sequence >= cursor.0);
            for sequenced in kept {
                if sub.filter.matches(&sequenced.event)
                    && !Self::offer(&mut sub, sequenced, &mut None)
                {
                    return id;
                }
            }
        }
        self.subscriptions.push(sub);
        id
    }

    /// Stops a subscription (dropping its sender).
    pub fn unsubscribe(&mut self, id: SubscriptionId) {
        self.subscriptions.retain(|s| s.id != id);
        self.left_at_end.remove(&id);
    }

    /// Whether a lossless subscriber holds notices its full queue could
    /// not take: the connection must stop reading until
    /// [`refill`](Self::refill) has given them all.
    pub fn is_held_up(&self) -> bool {
        self.subscriptions.iter().any(|s| !s.held.is_empty())
    }

    /// Gives subscription `id` what it holds, as far as its queue takes
    /// it. Call it once the subscriber has taken notices from its queue.
    pub fn refill(&mut self, id: SubscriptionId) {
        let Some(at) = self.subscriptions.iter().position(|s| s.id == id) else {
            return;
        };
        let sub = &mut self.subscriptions[at];
        while let Some(notice) = sub.held.pop_front() {
            match sub.sink.offer(notice) {
                Offer::Accepted => {}
                Offer::Full(notice) => {
                    sub.held.push_front(notice);
                    return;
                }
                Offer::Gone => {
                    self.subscriptions.remove(at);
                    return;
                }
            }
        }
    }

    /// What the connection's end left untold to subscription `id`, one
    /// notice at a time (held notices, then a last [`Notice::Lagged`]),
    /// once its queue is drained: its queue was full when the connection
    /// ended. A stream yields these after the queued notices, then ends.
    pub fn take_left_at_end(&mut self, id: SubscriptionId) -> Option<Notice> {
        let left = self.left_at_end.get_mut(&id)?;
        let notice = left.pop_front();
        if left.is_empty() {
            self.left_at_end.remove(&id);
        }
        notice
    }

    /// Gives bytes read from the socket to the client machine.
    pub fn receive(&mut self, bytes: &[u8]) {
        self.client.receive(bytes);
    }

    /// Says the socket reached end of file.
    pub fn receive_eof(&mut self) {
        self.client.receive_eof();
    }

    /// Closes the connection from this side.
    pub fn close(&mut self) {
        self.client.close();
    }

    /// Ends the connection because the transport failed.
    pub fn fail_transport(&mut self, detail: impl Into<String>) {
        self.client.fail_transport(detail);
    }

    /// Bytes to write to the socket.
    pub fn poll_transmit(&mut self) -> Option<bytes::Bytes> {
        self.client.poll_transmit()
    }

    /// Writes what is ready to send through `try_write`, which writes as
    /// much of a chunk as it can *without waiting* and says how much, or
    /// `None` when it can take nothing now (or failed). What it does not
    /// take is kept in `unsent`, which the caller's own writer must send,
    /// waiting as needed, before anything newer: that keeps the wire in
    /// order when callers write directly and a writer task finishes up.
    ///
    /// Returns whether that writer has work: bytes left in `unsent`, or the
    /// connection's end to act on.
    pub fn transmit_with(
        &mut self,
        unsent: &mut Option<bytes::Bytes>,
        try_write: impl FnMut(&[u8]) -> Option<usize>,
    ) -> bool {
        let client = &mut self.client;
        crate::framing::write_in_order(unsent, || client.poll_transmit(), try_write)
            || self.end().is_some()
    }

    /// Drains the client's outputs and delivers each to its waiters. Call it
    /// after every input; then write [`poll_transmit`](Self::poll_transmit).
    pub fn handle_outputs(&mut self) -> Progress {
        let mut progress = Progress::default();
        loop {
            // Events are published as the client decodes them.
            let Router {
                client,
                config,
                history,
                next_sequence,
                subscriptions,
                waits,
                ..
            } = &mut *self;
            let output = client.poll_output_with(|event| {
                Self::publish_to(
                    config.history,
                    history,
                    next_sequence,
                    subscriptions,
                    waits,
                    event,
                );
            });
            let Some(output) = output else {
                break;
            };
            match output {
                ClientOutput::Greeting(_) => {}
                ClientOutput::Ready { .. } => progress.became_ready = true,
                ClientOutput::Reply(reply) => {
                    if let Some(call) = self.calls.remove(&reply.id) {
                        call.deliver(reply.result.map_err(Failure::Qmp));
                    }
                }
                ClientOutput::Event(event) => self.publish(event),
                ClientOutput::UnattributedError(error) => {
                    if self.unattributed.len() == UNATTRIBUTED_KEPT {
                        self.unattributed.pop_front();
                    }
                    self.unattributed.push_back(error);
                }
                ClientOutput::End(end) => {
                    self.finish(end.clone());
                    progress.ended = Some(end);
                }
            }
        }
        self.sweep_gone();
        progress
    }

    fn publish(&mut self, event: Event) {
        Self::publish_to(
            self.config.history,
            &mut self.history,
            &mut self.next_sequence,
            &mut self.subscriptions,
            &mut self.waits,
            event,
        );
    }

    /// [`publish`](Self::publish), on the router's parts (borrowed apart
    /// from its client, which is decoding).
    #[inline(always)]
    fn publish_to(
        history_limit: usize,
        history: &mut VecDeque<Sequenced>,
        next_sequence: &mut u64,
        subscriptions: &mut Vec<Subscription<D::Subscriber>>,
        waits: &mut Vec<EventWait<D::Wait>>,
        event: Event,
    ) {
        let sequenced = Sequenced {
            sequence: *next_sequence,
            event,
        };
        *next_sequence += 1;

        let mut i = 0;
        while i < waits.len() {
            let wait = &waits[i];
            if sequenced.sequence >= wait.after.0 && wait.filter.matches(&sequenced.event) {
                let wait = waits.swap_remove(i);
                wait.waiter.deliver(Ok(sequenced.clone()));
            } else {
                i += 1;
            }
        }

        // A full history drops its oldest event to make room: that event
        // becomes the first subscriber's copy, so its name's allocation is
        // reused instead of freed while another is made.
        let mut spare = None;
        if history_limit > 0 && history.len() >= history_limit {
            spare = history.pop_front();
        }
        let mut i = 0;
        while i < subscriptions.len() {
            let sub = &mut subscriptions[i];
            if sub.filter.matches(&sequenced.event) && !Self::offer(sub, &sequenced, &mut spare) {
                subscriptions.remove(i);
            } else {
                i += 1;
            }
        }

        if history_limit > 0 {
            history.push_back(sequenced);
        }
    }

    /// Offers `sequenced` to `sub`, after the count of what it missed if it
    /// lagged; `spare` is made into the copy if there is one. A lossless
    /// subscriber whose queue is full holds it. Returns whether the
    /// subscriber is still there.
    fn offer(
        sub: &mut Subscription<D::Subscriber>,
        sequenced: &Sequenced,
        spare: &mut Option<Sequenced>,
    ) -> bool {
        if sub.lagged > 0 {
            match sub.sink.offer(Notice::Lagged(sub.lagged)) {
                Offer::Accepted => sub.lagged = 0,
                Offer::Full(_) if !sub.lossless => {
                    sub.lagged += 1;
                    return true;
                }
                Offer::Full(lagged) => sub.held.push_back(lagged),
                Offer::Gone => return false,
            }
        }
        let copy = match spare.take() {
            Some(mut copy) => {
                // Every member, so that a new one cannot be forgotten.
                let Sequenced {
                    sequence,
                    event:
                        Event {
                            name,
                            data,
                            timestamp,
                        },
                } = &mut copy;
                *sequence = sequenced.sequence;
                name.clone_from(&sequenced.event.name);
                data.clone_from(&sequenced.event.data);
                *timestamp = sequenced.event.timestamp;
                copy
            }
            None => sequenced.clone(),
        };
        if !sub.held.is_empty() {
            // Behind what it holds already.
            sub.held.push_back(Notice::Event(copy));
            return true;
        }
        match sub.sink.offer(Notice::Event(copy)) {
            Offer::Accepted => true,
            Offer::Full(notice) if sub.lossless => {
                sub.held.push_back(notice);
                true
            }
            Offer::Full(_) => {
                sub.lagged += 1;
                true
            }
            Offer::Gone => false,
        }
    }

    /// Drops event waits whose callers went away.
    fn sweep_gone(&mut self) {
        self.waits.retain(|w| !w.waiter.is_gone());
    }

    fn finish(&mut self, end: End) {
        self.end = Some(end.clone());
        for (_, call) in core::mem::take(&mut self.calls) {
            call.deliver(Err(Failure::Ended(end.clone())));
        }
        for wait in core::mem::take(&mut self.waits) {
            wait.waiter.deliver(Err(Failure::Ended(end.clone())));
        }
        // Dropping the senders ends every subscriber's stream; the cause is
        // in `end()`. What was not told yet (held notices, a lag) is told
        // now as far as there is room, the rest kept for the subscriber to
        // take once it has drained its queue.
        for mut sub in core::mem::take(&mut self.subscriptions) {
            let mut left = core::mem::take(&mut sub.held);
            if sub.lagged > 0 {
                left.push_back(Notice::Lagged(sub.lagged));
            }
            while let Some(notice) = left.pop_front() {
                if let Offer::Full(notice) = sub.sink.offer(notice) {
                    left.push_front(notice);
                    self.left_at_end.insert(sub.id, left);
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Server, ServerConfig, ServerOutput, Timestamp};
    use alloc::rc::Rc;
    use core::cell::RefCell;

    type Slot<T> = Rc<RefCell<Option<T>>>;

    /// Waiters are shared slots; a subscriber is a bounded vector.
    struct TestDelivery;

    struct Queue {
        items: Rc<RefCell<Vec<Notice>>>,
        capacity: usize,
    }

    impl Delivery for TestDelivery {
        type Call = Filled<Result<RawJson, Failure>>;
        type Wait = Filled<Result<Sequenced, Failure>>;
        type Subscriber = Queue;
    }

    /// Fills its slot.
    struct Filled<T>(Slot<T>);

    impl<T> Waiter<T> for Filled<T> {
        fn deliver(self, result: T) {
            *self.0.borrow_mut() = Some(result);
        }
        fn is_gone(&self) -> bool {
            Rc::strong_count(&self.0) == 1
        }
    }

    impl Subscriber for Queue {
        fn offer(&mut self, notice: Notice) -> Offer {
            let mut items = self.items.borrow_mut();
            if items.len() == self.capacity {
                return Offer::Full(notice);
            }
            items.push(notice);
            Offer::Accepted
        }
    }

    /// A router connected in memory to a mock server that answers every
    /// command with `{}` and can be told to emit events.
    struct Pair {
        router: Router<TestDelivery>,
        server: Server,
    }

    impl Pair {
        fn new(history: usize) -> Self {
            let mut pair = Pair {
                router: Router::new(Client::default(), RouterConfig::default().history(history)),
                server: Server::new(ServerConfig::default()),
            };
            pair.pump();
            assert!(pair.router.client().is_ready());
            pair
        }

        fn pump(&mut self) {
            for _ in 0..8 {
                while let Some(bytes) = self.server.poll_transmit() {
                    self.router.receive(&bytes);
                }
                self.router.handle_outputs();
                while let Some(bytes) = self.router.poll_transmit() {
                    self.server.receive(&bytes);
                }
                while let Some(output) = self.server.poll_output() {
                    if let ServerOutput::Command(command) = output {
                        self.server
                            .reply_ok(&command, &serde_json::json!({}))
                            .unwrap();
                    }
                }
            }
        }

        fn emit(&mut self, name: &str) {
            let sent = self
                .server
                .send_event(name, &(), Timestamp::default())
                .unwrap();
            assert!(sent);
            self.pump();
        }
    }

    fn slot<T>() -> Slot<T> {
        Rc::new(RefCell::new(None))
    }

    #[test]
    fn transmit_with_keeps_what_was_not_written_in_order() {
        let mut pair = Pair::new(8);
        let (first, second) = (slot(), slot());
        pair.router.execute("first", &(), false, Filled(first));
        pair.router.execute("second", &(), false, Filled(second));
        let mut unsent = None;
        let mut wire = Vec::new();
        // A socket that takes 5 bytes, then nothing.
        let mut room = 5;
        let writer_has_work = pair.router.transmit_with(&mut unsent, |bytes| {
            let n = bytes.len().min(room);
            room -= n;
            wire.extend_from_slice(&bytes[..n]);
            (n > 0).then_some(n)
        });
        assert!(writer_has_work);
        assert_eq!(wire.len(), 5);
        // The writer finishes up, in order: the rest of the first chunk,
        // then everything after it.
        let writer_has_work = pair.router.transmit_with(&mut unsent, |bytes| {
            wire.extend_from_slice(bytes);
            Some(bytes.len())
        });
        assert!(!writer_has_work);
        assert!(unsent.is_none());
        let text = String::from_utf8(wire).unwrap();
        let at_first = text.find("\"first\"").expect("first sent");
        let at_second = text.find("\"second\"").expect("second sent");
        assert!(at_first < at_second, "{text}");
        assert_eq!(text.matches("execute").count(), 2, "{text}");
    }

    #[test]
    fn reply_reaches_its_waiter() {
        let mut pair = Pair::new(16);
        let call = slot();
        pair.router
            .execute("query-status", &(), false, Filled(call.clone()));
        pair.pump();
        assert_eq!(call.borrow().clone().unwrap().unwrap().as_str(), "{}");
        assert_eq!(pair.router.pending_calls(), 0);
    }

    /// An event before the greeting (some QEMU versions send one) is in
    /// the history from the start: found from `Cursor::START` once
    /// negotiation is done, and a wait from there gets it at once.
    #[test]
    fn an_event_before_the_greeting_is_kept_from_the_start() {
        let mut pair = Pair {
            router: Router::new(Client::default(), RouterConfig::default()),
            server: Server::new(ServerConfig::default()),
        };
        pair.router.receive(
            b"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"EARLY\", \"data\": {\"n\": 1}}\r\n",
        );
        let progress = pair.router.handle_outputs();
        assert!(progress.ended.is_none());
        assert!(pair.router.client().greeting().is_none());
        pair.pump();
        assert!(pair.router.client().is_ready());
        let found: Vec<Sequenced> = (pair.router)
            .find_events(Cursor::START, &EventFilter::all())
            .cloned()
            .collect();
        let [early] = found.as_slice() else {
            panic!("{found:?}");
        };
        assert_eq!((early.sequence, early.event.name.as_str()), (1, "EARLY"));
        assert_eq!(early.event.data.as_ref().unwrap().as_str(), "{\"n\": 1}");
        let wait = slot();
        pair.router.wait_for_event(
            Cursor::START,
            EventFilter::name("EARLY"),
            Filled(wait.clone()),
        );
        assert_eq!(wait.borrow().clone().unwrap().unwrap(), early.clone());
    }

    #[test]
    fn wait_sees_an_event_that_arrived_before_it() {
        let mut pair = Pair::new(16);
        let cursor = pair.router.cursor();
        pair.emit("OTHER");
        pair.emit("STOP");
        let wait = slot();
        pair.router
            .wait_for_event(cursor, EventFilter::name("STOP"), Filled(wait.clone()));
        let found = wait.borrow().clone().unwrap().unwrap();
        assert_eq!(found.event.name, "STOP");
        assert_eq!(found.sequence, cursor.sequence() + 1);
    }

    #[test]
    fn wait_ignores_events_before_its_cursor() {
        let mut pair = Pair::new(16);
        pair.emit("STOP");
        let cursor = pair.router.cursor();
        let wait = slot();
        pair.router
            .wait_for_event(cursor, EventFilter::name("STOP"), Filled(wait.clone()));
        assert!(wait.borrow().is_none());
        pair.emit("STOP");
        assert_eq!(
            wait.borrow().clone().unwrap().unwrap().sequence,
            cursor.sequence()
        );
    }

    #[test]
    fn wait_behind_the_history_is_an_overrun() {
        let mut pair = Pair::new(2);
        let cursor = pair.router.cursor();
        for _ in 0..3 {
            pair.emit("X");
        }
        let wait = slot();
        pair.router
            .wait_for_event(cursor, EventFilter::name("STOP"), Filled(wait.clone()));
        let err = wait.borrow().clone().unwrap().unwrap_err();
        assert_eq!(
            err,
            Failure::HistoryOverrun {
                oldest_kept: cursor.sequence() + 1
            }
        );
    }

    #[test]
    fn slow_subscriber_learns_how_much_it_missed() {
        let mut pair = Pair::new(0);
        let items = Rc::new(RefCell::new(Vec::new()));
        let queue = Queue {
            items: items.clone(),
            capacity: 2,
        };
        pair.router
            .subscribe(EventFilter::all(), queue, SubscribeFrom::default());
        for _ in 0..5 {
            pair.emit("E");
        }
        assert_eq!(items.borrow().len(), 2);
        items.borrow_mut().clear();
        pair.emit("E");
        let got = items.borrow().clone();
        assert_eq!(got[0], Notice::Lagged(3));
        assert!(matches!(&got[1], Notice::Event(s) if s.sequence == 6));
        assert_eq!(pair.router.history_len(), 0);
    }

    /// A lag the connection's end leaves untold is told then if the queue
    /// has room, and otherwise kept for the subscriber to take, once.
    #[test]
    fn a_lag_outlives_the_connection() {
        let mut pair = Pair::new(0);
        let queue = || Queue {
            items: Rc::new(RefCell::new(Vec::new())),
            capacity: 2,
        };
        let (full, roomy) = (queue(), queue());
        let (full_items, roomy_items) = (full.items.clone(), roomy.items.clone());
        let full = pair
            .router
            .subscribe(EventFilter::name("E"), full, SubscribeFrom::default());
        let roomy = pair
            .router
            .subscribe(EventFilter::name("F"), roomy, SubscribeFrom::default());
        for _ in 0..5 {
            pair.emit("E");
        }
        for _ in 0..3 {
            pair.emit("F");
        }
        roomy_items.borrow_mut().remove(0); // room for one more notice
        pair.router.receive_eof();
        pair.router.handle_outputs();
        assert!(pair.router.end().is_some());
        assert_eq!(full_items.borrow().len(), 2, "no room: nothing offered");
        assert_eq!(pair.router.take_left_at_end(full), Some(Notice::Lagged(3)));
        assert_eq!(pair.router.take_left_at_end(full), None, "taken once");
        assert_eq!(roomy_items.borrow().last(), Some(&Notice::Lagged(1)));
        assert_eq!(pair.router.take_left_at_end(roomy), None);
    }

    /// Once the history is full, the event it drops becomes a subscriber's
    /// copy: what subscribers get is still each event as it came.
    #[test]
    fn subscribers_get_every_event_whole_when_the_history_is_full() {
        let mut pair = Pair::new(2);
        let items = Rc::new(RefCell::new(Vec::new()));
        let queue = |capacity| Queue {
            items: items.clone(),
            capacity,
        };
        pair.router
            .subscribe(EventFilter::all(), queue(64), SubscribeFrom::default());
        pair.router
            .subscribe(EventFilter::name("B"), queue(64), SubscribeFrom::default());
        let mut sent = Vec::new();
        for i in 0..6i64 {
            let name = if i % 2 == 0 { "A" } else { "B" };
            let data = serde_json::json!({ "i": i });
            let at = Timestamp {
                seconds: i,
                microseconds: -i,
            };
            assert!(pair.server.send_event(name, &data, at).unwrap());
            pair.pump();
            sent.push((name, data, at));
        }
        let got: Vec<Sequenced> = items
            .borrow()
            .iter()
            .map(|notice| match notice {
                Notice::Event(sequenced) => sequenced.clone(),
                Notice::Lagged(n) => panic!("lagged by {n}"),
            })
            .collect();
        // Each event goes to the catch-all subscriber, then a B to the other.
        let mut expected = Vec::new();
        for (i, (name, _, at)) in sent.iter().enumerate() {
            let event = Event {
                name: String::from(*name),
                // Spaced as the server (and QEMU) writes it.
                data: Some(RawJson::from_text(alloc::format!("{{\"i\": {i}}}")).unwrap()),
                timestamp: *at,
            };
            let sequenced = Sequenced {
                sequence: i as u64 + 1,
                event,
            };
            if *name == "B" {
                expected.push(sequenced.clone());
            }
            expected.push(sequenced);
        }
        assert_eq!(got, expected);
        let kept: Vec<u64> = pair
            .router
            .find_events(Cursor(0), &EventFilter::all())
            .map(|s| s.sequence)
            .collect();
        assert_eq!(kept, [5, 6]);
    }

    #[test]
    fn end_fails_every_waiter_with_the_cause() {
        let mut pair = Pair::new(16);
        let call = slot();
        let wait = slot();
        let items = Rc::new(RefCell::new(Vec::new()));
        pair.router.subscribe(
            EventFilter::all(),
            Queue { items, capacity: 4 },
            SubscribeFrom::default(),
        );
        // The server never sees the command: the peer closes first.
        pair.router
            .execute("query-status", &(), false, Filled(call.clone()));
        let cursor = pair.router.cursor();
        pair.router
            .wait_for_event(cursor, EventFilter::all(), Filled(wait.clone()));
        pair.router.receive(b"{\"return\": {}, \"id\"");
        pair.router.receive_eof();
        let progress = pair.router.handle_outputs();
        let end = End::Protocol(crate::ProtocolError::Truncated { buffered: 19 });
        assert_eq!(progress.ended, Some(end.clone()));
        assert_eq!(
            call.borrow().clone().unwrap(),
            Err(Failure::Ended(end.clone()))
        );
        assert_eq!(
            wait.borrow().clone().unwrap(),
            Err(Failure::Ended(end.clone()))
        );
        assert_eq!(pair.router.subscriptions(), 0);
        let late = slot();
        pair.router
            .execute("query-status", &(), false, Filled(late.clone()));
        assert_eq!(late.borrow().clone().unwrap(), Err(Failure::Ended(end)));
    }

    #[test]
    fn forgotten_call_gets_nothing() {
        let mut pair = Pair::new(16);
        let call = slot();
        let id = pair
            .router
            .execute("query-status", &(), false, Filled(call.clone()))
            .unwrap();
        pair.router.forget(id);
        pair.pump();
        assert!(call.borrow().is_none());
        assert_eq!(pair.router.client().in_flight(), 0);
    }
}
