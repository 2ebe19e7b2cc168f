//! The client role: what a program that talks to QEMU runs.

use crate::error::{end_at_eof, End, ProtocolError, SendError};
use crate::framing::{Framer, DEFAULT_MAX_MESSAGE_SIZE};
use crate::json::{push_str_literal, RawJson};
use crate::message::{
    parse_server_message_with, parse_server_prefix_resumable, small_qemu_event, Capability, Event,
    EventNames, Greeting, PartialMessage, QmpError, ServerMessage, ServerMessageSpans,
    ServerParseError,
};
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::ToString;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use core::fmt;
use serde::Serialize;

/// The id the client machine gave a command. Ids are integers, allocated in
/// increasing order and never reused on one connection. (After `u64::MAX`
/// the count wraps to 0, which only a [`ClientConfig::first_id`] near the end
/// of the range can reach.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub(crate) u64);

impl RequestId {
    /// The id as sent on the wire.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The most in-band commands QEMU queues per monitor with OOB negotiated
/// (its `QMP_REQ_QUEUE_LEN_MAX`): the window's limit then.
pub const OOB_QUEUE_LIMIT: usize = 8;

/// Settings of a [`Client`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Enable out-of-band execution when the server offers it.
    /// Default: `false`.
    pub want_oob: bool,
    /// How many in-band commands may await their reply at once. With OOB
    /// negotiated the window is at most [`OOB_QUEUE_LIMIT`] (8), the
    /// commands QEMU queues per monitor; without OOB QEMU reads the next
    /// command only once it has answered one, so commands in flight wait
    /// in the socket, cost QEMU nothing and save a round trip each.
    /// Default: 1024. At least 1.
    pub max_in_flight: usize,
    /// How many commands may wait locally behind the window before
    /// [`SendError::QueueFull`]. Default: 4096.
    pub max_queued: usize,
    /// The largest server message accepted, in bytes.
    /// Default: [`DEFAULT_MAX_MESSAGE_SIZE`] (16 MiB).
    pub max_message_size: usize,
    /// The first request id to allocate (the `qmp_capabilities` command
    /// takes it). Default: 0. Lets two clients that share a transport, or a
    /// replayed transcript, keep their ids apart.
    pub first_id: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            want_oob: false,
            max_in_flight: 1024,
            max_queued: 4096,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            first_id: 0,
        }
    }
}

impl ClientConfig {
    /// Sets [`want_oob`](Self::want_oob).
    pub fn want_oob(mut self, want: bool) -> Self {
        self.want_oob = want;
        self
    }

    /// Sets [`max_in_flight`](Self::max_in_flight) (at least 1).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Sets [`max_queued`](Self::max_queued).
    pub fn max_queued(mut self, n: usize) -> Self {
        self.max_queued = n;
        self
    }

    /// Sets [`max_message_size`](Self::max_message_size).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`first_id`](Self::first_id).
    pub fn first_id(mut self, id: u64) -> Self {
        self.first_id = id;
        self
    }
}

/// A reply to one of our commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The command it answers.
    pub id: RequestId,
    /// The `return` value, or the error the server reported.
    pub result: Result<RawJson, QmpError>,
}

/// What the [`Client`] machine has to say; see [`Client::poll_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOutput {
    /// The server's greeting arrived; negotiation has been started.
    Greeting(Greeting),
    /// Negotiation completed: commands now flow.
    Ready {
        /// Whether out-of-band execution was enabled.
        oob: bool,
    },
    /// A reply to a command issued with [`Client::execute`].
    Reply(Reply),
    /// An event. It may come before the [`Greeting`](ClientOutput::Greeting):
    /// some QEMU versions have sent one first, and it is given out as any
    /// other (the greeting is still awaited).
    Event(Event),
    /// An error reply without an id (the server could not parse some
    /// input) that answers no command: none was on the wire when it came.
    /// One that came while commands were in flight answers one of them,
    /// as a [`Reply`](ClientOutput::Reply) (see [`Client`]'s docs).
    UnattributedError(QmpError),
    /// The connection has ended. Always the last output, given once. Every
    /// command still without a reply will never get one.
    End(End),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingGreeting,
    Negotiating { id: u64 },
    Ready,
    Ended,
}

#[derive(Debug, Clone, Copy)]
struct Request {
    oob: bool,
    sent: bool,
    forgotten: bool,
}

/// Replies the client dropped instead of delivering: counts that tell a
/// misbehaving or confused peer apart from a quiet one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DroppedReplies {
    /// Replies whose id was never ours, or was already answered.
    pub unknown_id: u64,
    /// Late replies to commands whose caller had gone
    /// ([forgotten](Client::forget), for instance after a timeout).
    pub late: u64,
}

/// The client side of a QMP connection, with no I/O.
///
/// Feed it what the socket gives ([`receive`](Self::receive),
/// [`receive_eof`](Self::receive_eof)), issue commands
/// ([`execute`](Self::execute)), then drain its outputs
/// ([`poll_output`](Self::poll_output) until `None`, then
/// [`poll_transmit`](Self::poll_transmit)) and write what it gives. See the
/// [crate docs](crate) for the whole loop.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    framer: Framer,
    event_names: EventNames,
    /// How far the parse of a message still arriving got.
    partial: PartialMessage,
    /// Where small events' data is copied to (see
    /// [`ServerMessageSpans::copy_small_event`]).
    event_data: BytesMut,
    phase: Phase,
    greeting: Option<Greeting>,
    oob_enabled: bool,
    eof: bool,
    next_id: u64,
    requests: BTreeMap<u64, Request>,
    queue: VecDeque<(u64, Bytes)>,
    in_flight: usize,
    /// Error replies without an id, oldest first, each with the commands
    /// it may answer: those on the wire and unanswered when it came (see
    /// [`attribute_idless_errors`](Self::attribute_idless_errors)).
    idless_errors: VecDeque<(QmpError, BTreeSet<u64>)>,
    outputs: VecDeque<ClientOutput>,
    transmit: BytesMut,
    unknown_replies: u64,
    late_replies: u64,
}

impl Default for Client {
    fn default() -> Self {
        Client::new(ClientConfig::default())
    }
}

impl Client {
    /// A client that waits for the server's greeting.
    pub fn new(config: ClientConfig) -> Self {
        let config = ClientConfig {
            max_in_flight: config.max_in_flight.max(1),
            ..config
        };
        Client {
            next_id: config.first_id,
            framer: Framer::new(config.max_message_size),
            event_names: EventNames::default(),
            partial: PartialMessage::default(),
            event_data: BytesMut::new(),
            config,
            phase: Phase::AwaitingGreeting,
            greeting: None,
            oob_enabled: false,
            eof: false,
            requests: BTreeMap::new(),
            queue: VecDeque::new(),
            in_flight: 0,
            idless_errors: VecDeque::new(),
            outputs: VecDeque::new(),
            transmit: BytesMut::new(),
            unknown_replies: 0,
            late_replies: 0,
        }
    }

    // ----- getters ---------------------------------------------------------

    /// The settings in force.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The server's greeting, once it has arrived.
    pub fn greeting(&self) -> Option<&Greeting> {
        self.greeting.as_ref()
    }

    /// Whether negotiation has completed and the connection has not ended.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// Whether the connection has ended (the [`ClientOutput::End`] may still
    /// be waiting in [`poll_output`](Self::poll_output)).
    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// Whether out-of-band execution was negotiated.
    pub fn oob_enabled(&self) -> bool {
        self.oob_enabled
    }

    /// In-band commands sent and awaiting their reply (forgotten ones too).
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Commands waiting locally to be sent.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Replies dropped because their id was unknown (never ours, or already
    /// answered).
    pub fn unknown_replies(&self) -> u64 {
        self.unknown_replies
    }

    /// Replies dropped because their command had been [forgotten](Self::forget).
    pub fn late_replies(&self) -> u64 {
        self.late_replies
    }

    /// Both counts of dropped replies at once.
    pub fn dropped_replies(&self) -> DroppedReplies {
        DroppedReplies {
            unknown_id: self.unknown_replies,
            late: self.late_replies,
        }
    }

    /// Whether `id` still awaits a reply (and has not been forgotten).
    pub fn is_pending(&self, id: RequestId) -> bool {
        self.requests.get(&id.0).is_some_and(|r| !r.forgotten)
    }

    // ----- inputs ----------------------------------------------------------

    /// Buffers bytes received from the server. Parsing happens in
    /// [`poll_output`](Self::poll_output). Ignored once the connection ended.
    pub fn receive(&mut self, bytes: &[u8]) {
        if self.phase != Phase::Ended && !self.eof {
            self.framer.push(bytes);
        }
    }

    /// Says the server closed the stream. Messages already received are
    /// still given out first; then the connection ends.
    pub fn receive_eof(&mut self) {
        self.eof = true;
    }

    // ----- commands --------------------------------------------------------

    /// Issues command `name` with `arguments`, which must serialize to a JSON
    /// object, or to `null` (`&()`) for none. Returns its id; the reply comes
    /// as a [`ClientOutput::Reply`] with that id.
    ///
    /// Before negotiation completes, or while the in-flight window is full,
    /// the command waits in a local queue and is sent in order later.
    pub fn execute<A: Serialize + ?Sized>(
        &mut self,
        name: &str,
        arguments: &A,
    ) -> Result<RequestId, SendError> {
        self.submit(name, arguments, false)
    }

    /// Issues command `name` out of band (`exec-oob`): it is sent at once,
    /// past the window and the queue, and the server may answer it before
    /// earlier commands. Needs OOB to have been negotiated.
    pub fn execute_oob<A: Serialize + ?Sized>(
        &mut self,
        name: &str,
        arguments: &A,
    ) -> Result<RequestId, SendError> {
        self.submit(name, arguments, true)
    }

    /// Gives up on request `id`: its reply will be dropped rather than given
    /// out. A command still queued is never sent; one already sent keeps its
    /// place in the window until its reply arrives. Returns whether `id` was
    /// pending.
    pub fn forget(&mut self, id: RequestId) -> bool {
        let Some(request) = self.requests.get_mut(&id.0) else {
            return false;
        };
        if request.forgotten {
            return false;
        }
        if request.sent {
            request.forgotten = true;
        } else {
            self.requests.remove(&id.0);
            self.queue.retain(|(queued, _)| *queued != id.0);
        }
        true
    }

    /// Ends the connection from this side: queued commands are dropped and
    /// [`ClientOutput::End`] with [`End::Local`] is given out.
    pub fn close(&mut self) {
        self.end(End::Local);
    }

    /// Ends the connection because the transport failed (a read or write
    /// error), with the adapter's description of it.
    pub fn fail_transport(&mut self, detail: impl Into<alloc::string::String>) {
        self.end(End::Transport(detail.into()));
    }

    // ----- outputs ---------------------------------------------------------

    /// The next output, or `None` when everything received has been handled.
    pub fn poll_output(&mut self) -> Option<ClientOutput> {
        self.next_output(&mut Some)
    }

    /// [`poll_output`](Self::poll_output), with every event given to
    /// `on_event` as it is decoded instead of returned: the router's loop,
    /// which skips wrapping each event in an output and unwrapping it.
    #[inline]
    pub(crate) fn poll_output_with(
        &mut self,
        mut on_event: impl FnMut(Event),
    ) -> Option<ClientOutput> {
        self.next_output(&mut |event| {
            on_event(event);
            None
        })
    }

    /// The next output; an event goes to `on_event` first, and is returned
    /// only if that gives it back.
    #[inline(always)]
    fn next_output(
        &mut self,
        on_event: &mut impl FnMut(Event) -> Option<Event>,
    ) -> Option<ClientOutput> {
        loop {
            if let Some(output) = self.outputs.pop_front() {
                return Some(output);
            }
            if self.phase == Phase::Ended {
                return None;
            }
            // An event as QEMU writes it, the common case, read straight
            // from the buffer and built in place: handed on through the
            // framer's results it was copied at each step.
            if let Some(bytes) = self.framer.unread_object() {
                let event = small_qemu_event(bytes, &mut self.event_names, &mut self.event_data);
                if let Some((event, len)) = event {
                    self.framer.consume_read(len);
                    match on_event(event) {
                        Some(event) => return Some(ClientOutput::Event(event)),
                        None => continue,
                    }
                }
            }
            let next = self.framer.next_frame_with(
                |bytes, resume| {
                    parse_server_prefix_resumable(
                        bytes,
                        &mut self.partial,
                        &mut self.event_data,
                        resume,
                    )
                },
                ServerMessageSpans::needs_frame,
            );
            let output = match next {
                Some(Ok((Some(spans), frame))) => self.handle(spans, frame, on_event),
                Some(Ok((None, frame))) => {
                    match parse_server_message_with(&frame, &mut self.event_names) {
                        Ok(spans) => self.handle(spans, frame, on_event),
                        // Whatever is wrong with the first message (events
                        // aside), it is a bad greeting, as a reply in its
                        // place already was (found by
                        // tests/tests/hostile_connect.rs: non-JSON, a
                        // non-object or a malformed `QMP` member used to end
                        // with InvalidJson or UnexpectedMessage instead).
                        Err(e) if self.phase == Phase::AwaitingGreeting => {
                            self.end(End::Protocol(ProtocolError::BadGreeting {
                                detail: match e {
                                    ServerParseError::Json(e) => e.to_string(),
                                    ServerParseError::Unrecognized => {
                                        "an object that is not a greeting".to_string()
                                    }
                                },
                            }));
                            None
                        }
                        Err(ServerParseError::Json(e)) => {
                            self.end(End::Protocol(ProtocolError::InvalidJson {
                                detail: e.to_string(),
                            }));
                            None
                        }
                        Err(ServerParseError::Unrecognized) => {
                            self.end(End::Protocol(ProtocolError::UnexpectedMessage {
                                detail: "an object that is neither greeting, reply nor event"
                                    .to_string(),
                            }));
                            None
                        }
                    }
                }
                Some(Err(e)) => {
                    self.end(End::Protocol(e.into()));
                    None
                }
                None if self.eof => {
                    let end = end_at_eof(&mut self.framer);
                    self.end(end);
                    None
                }
                None => return None,
            };
            // The queue was empty: what the message gave goes out at once.
            if output.is_some() {
                return output;
            }
        }
    }

    /// Bytes to write to the server, if any. Write them all, in order, before
    /// the next call's.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        crate::framing::take_all(&mut self.transmit)
    }

    // ----- internals -------------------------------------------------------

    /// How many in-band commands may be on the wire at once:
    /// [`ClientConfig::max_in_flight`], and at most [`OOB_QUEUE_LIMIT`]
    /// with OOB negotiated.
    pub fn window(&self) -> usize {
        match self.oob_enabled {
            true => self.config.max_in_flight.min(OOB_QUEUE_LIMIT),
            false => self.config.max_in_flight,
        }
    }

    /// Whether [`execute`](Self::execute) (or, with `oob`,
    /// [`execute_oob`](Self::execute_oob)) would take a command now rather
    /// than fail with [`SendError::QueueFull`]: the window or the queue has
    /// room, or the command skips both. An async caller waits until it
    /// does instead of failing.
    pub fn has_room(&self, oob: bool) -> bool {
        let goes_to_wire = oob || (self.phase == Phase::Ready && self.in_flight < self.window());
        goes_to_wire || self.queue.len() < self.config.max_queued
    }

    fn submit<A: Serialize + ?Sized>(
        &mut self,
        name: &str,
        arguments: &A,
        oob: bool,
    ) -> Result<RequestId, SendError> {
        if self.phase == Phase::Ended || self.eof {
            return Err(SendError::Closed);
        }
        let sendable_now = self.phase == Phase::Ready;
        if oob {
            if !sendable_now {
                return Err(SendError::NotReady);
            }
            if !self.oob_enabled {
                return Err(SendError::OobNotNegotiated);
            }
        }
        let goes_to_wire = oob || (sendable_now && self.in_flight < self.window());
        if !self.has_room(oob) {
            return Err(SendError::QueueFull {
                limit: self.config.max_queued,
            });
        }
        let arguments = encode_arguments(arguments)?;
        let id = self.allocate_id();
        let message = encode_command(name, arguments.as_deref(), id, oob);
        self.requests.insert(
            id,
            Request {
                oob,
                sent: goes_to_wire,
                forgotten: false,
            },
        );
        if goes_to_wire {
            if !oob {
                self.in_flight += 1;
            }
            self.transmit.extend_from_slice(&message);
        } else {
            self.queue.push_back((id, Bytes::from(message)));
        }
        Ok(RequestId(id))
    }

    /// Sends queued commands while the window has room.
    fn flush_queue(&mut self) {
        while self.phase == Phase::Ready && self.in_flight < self.window() {
            let Some((id, message)) = self.queue.pop_front() else {
                break;
            };
            if let Some(request) = self.requests.get_mut(&id) {
                request.sent = true;
                self.in_flight += 1;
                self.transmit.extend_from_slice(&message);
            }
        }
    }

    /// Acts on a message parsed from `frame`; returns its output, if it has
    /// one (an end goes to the queue of outputs). Events, the common case,
    /// go straight to `on_event`, and out if it gives them back.
    #[inline(always)]
    fn handle(
        &mut self,
        message: ServerMessageSpans,
        frame: Bytes,
        on_event: &mut impl FnMut(Event) -> Option<Event>,
    ) -> Option<ClientOutput> {
        match message {
            // In any phase: some QEMU versions have sent an event before
            // the greeting, which is then still awaited.
            ServerMessageSpans::CopiedEvent(event) => on_event(event).map(ClientOutput::Event),
            ServerMessageSpans::Event(event) => {
                on_event(event.attach(frame)).map(ClientOutput::Event)
            }
            message => self.handle_message(message.attach(frame)),
        }
    }

    /// [`handle`](Self::handle) for everything else.
    fn handle_message(&mut self, message: ServerMessage) -> Option<ClientOutput> {
        match (self.phase, message) {
            // (`handle` takes events; this is for completeness.)
            (_, ServerMessage::Event(event)) => Some(ClientOutput::Event(event)),
            (Phase::AwaitingGreeting, ServerMessage::Greeting(greeting)) => {
                self.negotiate(&greeting);
                self.greeting = Some(greeting.clone());
                Some(ClientOutput::Greeting(greeting))
            }
            (Phase::AwaitingGreeting, _) => {
                self.end(End::Protocol(ProtocolError::BadGreeting {
                    detail: "the first message other than events is not a greeting".to_string(),
                }));
                None
            }
            (_, ServerMessage::Greeting(_)) => {
                self.end(End::Protocol(ProtocolError::UnexpectedMessage {
                    detail: "a second greeting".to_string(),
                }));
                None
            }
            (
                Phase::Negotiating { id },
                ServerMessage::Reply {
                    id: Some(got),
                    result,
                },
            ) if got.as_u64() == Some(id) => match result {
                Ok(_) => {
                    self.phase = Phase::Ready;
                    self.flush_queue();
                    Some(ClientOutput::Ready {
                        oob: self.oob_enabled,
                    })
                }
                Err(e) => {
                    self.end(End::Protocol(ProtocolError::NegotiationFailed(e)));
                    None
                }
            },
            // Nothing but `qmp_capabilities` has been sent (commands wait
            // in the queue): an error without an id can only be its answer,
            // QEMU's when it could not read it. Waiting on would only run
            // out the caller's connect timeout.
            (
                Phase::Negotiating { .. },
                ServerMessage::Reply {
                    id: None,
                    result: Err(e),
                },
            ) => {
                self.end(End::Protocol(ProtocolError::NegotiationFailed(e)));
                None
            }
            (_, ServerMessage::Reply { id, result }) => self.handle_reply(id, result),
        }
    }

    fn handle_reply(
        &mut self,
        id: Option<RawJson>,
        result: Result<RawJson, QmpError>,
    ) -> Option<ClientOutput> {
        let Some(id) = id else {
            match result {
                Err(error) => {
                    let candidates: BTreeSet<u64> = (self.requests.iter())
                        .filter(|(_, request)| request.sent)
                        .map(|(id, _)| *id)
                        .collect();
                    if candidates.is_empty() {
                        return Some(ClientOutput::UnattributedError(error));
                    }
                    self.idless_errors.push_back((error, candidates));
                    self.attribute_idless_errors();
                }
                Ok(_) => self.unknown_replies += 1,
            }
            return None;
        };
        let Some((id, request)) = id
            .as_u64()
            .and_then(|id| Some((id, self.requests.remove(&id)?)))
        else {
            self.unknown_replies += 1;
            return None;
        };
        if !request.sent {
            // An answer to a command we have not sent yet: the server
            // cannot know its id, so this is a stray reply. Keep the command.
            self.requests.insert(id, request);
            self.unknown_replies += 1;
            return None;
        }
        let output = self.answered(id, request, result);
        if !self.idless_errors.is_empty() {
            for (_, candidates) in &mut self.idless_errors {
                candidates.remove(&id);
            }
            self.attribute_idless_errors();
        }
        output
    }

    /// The bookkeeping of a command's answer: its slot of the window is
    /// free, queued commands may go; the reply is dropped if the command
    /// was forgotten.
    fn answered(
        &mut self,
        id: u64,
        request: Request,
        result: Result<RawJson, QmpError>,
    ) -> Option<ClientOutput> {
        if !request.oob {
            self.in_flight -= 1;
        }
        self.flush_queue();
        if request.forgotten {
            self.late_replies += 1;
            None
        } else {
            Some(ClientOutput::Reply(Reply {
                id: RequestId(id),
                result,
            }))
        }
    }

    /// Answers commands with the error replies that came without an id.
    ///
    /// QEMU sends one when it cannot parse a command, so it cannot tell
    /// whose it is, and that command never gets another reply. Without
    /// OOB, QEMU reads a command only once it has answered the one before:
    /// the error answers the oldest command on the wire, at once. With OOB
    /// it parses ahead and answers a parse error at once, before the
    /// commands queued ahead of it: the error answers one of the commands
    /// on the wire when it came, known once the others have their replies
    /// (or once as many such errors have come as there are candidates,
    /// oldest command first). So no call waits forever, keeps its slot of
    /// the window forever, or gets another's reply. An error left with no
    /// candidate is reported as [`ClientOutput::UnattributedError`].
    fn attribute_idless_errors(&mut self) {
        while let Some((_, candidates)) = self.idless_errors.front() {
            let culprit = match candidates.len() {
                0 => None,
                1 => candidates.first().copied(),
                _ if !self.oob_enabled => candidates.first().copied(),
                n => {
                    let within = (self.idless_errors.iter())
                        .filter(|(_, c)| c.is_subset(candidates))
                        .count();
                    if within >= n {
                        candidates.first().copied()
                    } else {
                        return;
                    }
                }
            };
            let Some((error, _)) = self.idless_errors.pop_front() else {
                return;
            };
            let Some((id, request)) = culprit.and_then(|id| Some((id, self.requests.remove(&id)?)))
            else {
                self.outputs
                    .push_back(ClientOutput::UnattributedError(error));
                continue;
            };
            for (_, candidates) in &mut self.idless_errors {
                candidates.remove(&id);
            }
            if let Some(output) = self.answered(id, request, Err(error)) {
                self.outputs.push_back(output);
            }
        }
    }

    /// The next request id. It wraps after `u64::MAX` rather than overflow:
    /// `next_id += 1` panicked (debug) on the greeting or on a command once
    /// a `first_id` near `u64::MAX` had been used up (found by the
    /// `client_ops` fuzz target). Wrapped ids are still unused on this
    /// connection until 2^64 of them have been allocated.
    fn allocate_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = id.wrapping_add(1);
        id
    }

    fn negotiate(&mut self, greeting: &Greeting) {
        self.oob_enabled = self.config.want_oob && greeting.offers(&Capability::Oob);
        let id = self.allocate_id();
        let arguments: Option<&[u8]> = if self.oob_enabled {
            Some(br#"{"enable":["oob"]}"#)
        } else {
            None
        };
        let message = encode_command("qmp_capabilities", arguments, id, false);
        self.transmit.extend_from_slice(&message);
        self.phase = Phase::Negotiating { id };
    }

    fn end(&mut self, end: End) {
        if self.phase == Phase::Ended {
            return;
        }
        self.phase = Phase::Ended;
        self.queue.clear();
        self.requests.clear();
        self.idless_errors.clear();
        self.in_flight = 0;
        // Bytes buffered after the end are never looked at.
        let _ = self.framer.finish();
        self.outputs.push_back(ClientOutput::End(end));
    }
}

/// Serializes command arguments: `None` for `null`, the object text
/// otherwise.
pub(crate) fn encode_arguments<A: Serialize + ?Sized>(
    arguments: &A,
) -> Result<Option<Vec<u8>>, SendError> {
    let text = serde_json::to_vec(arguments).map_err(|e| SendError::Serialize {
        detail: e.to_string(),
    })?;
    match text.first() {
        Some(b'{') => Ok(Some(text)),
        _ if text == b"null" => Ok(None),
        _ => Err(SendError::ArgumentsNotObject),
    }
}

/// `{"execute": NAME, "arguments": ARGS, "id": ID}` and a newline.
pub(crate) fn encode_command(name: &str, arguments: Option<&[u8]>, id: u64, oob: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + name.len() + arguments.map_or(0, <[u8]>::len));
    out.extend_from_slice(if oob {
        b"{\"exec-oob\": "
    } else {
        b"{\"execute\": "
    });
    push_str_literal(&mut out, name);
    if let Some(arguments) = arguments {
        out.extend_from_slice(b", \"arguments\": ");
        out.extend_from_slice(arguments);
    }
    out.extend_from_slice(b", \"id\": ");
    out.extend_from_slice(alloc::format!("{id}").as_bytes());
    out.extend_from_slice(b"}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids wrap after `u64::MAX` instead of overflowing (a panic in debug
    /// builds, found by the `client_ops` fuzz target), and stay distinct.
    #[test]
    fn ids_wrap_after_the_last_one() {
        let mut client = Client::new(ClientConfig::default().first_id(u64::MAX - 1));
        let queued = client.execute("stop", &()).unwrap();
        client.receive(b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": []}}\r\n");
        assert!(matches!(
            client.poll_output(),
            Some(ClientOutput::Greeting(_))
        ));
        let then = client.execute("cont", &()).unwrap();
        assert_eq!([queued.get(), then.get()], [u64::MAX - 1, 0]);
        // qmp_capabilities took u64::MAX.
        client.receive(b"{\"return\": {}, \"id\": 18446744073709551615}\r\n");
        assert_eq!(
            client.poll_output(),
            Some(ClientOutput::Ready { oob: false })
        );
        client.receive(b"{\"return\": {}, \"id\": 0}\r\n");
        let Some(ClientOutput::Reply(reply)) = client.poll_output() else {
            panic!("no reply for the wrapped id")
        };
        assert_eq!(reply.id, then);
        assert!(client.is_pending(queued));
    }

    /// The first message, however it is wrong, ends the connection with
    /// `BadGreeting` (an event is no first message: see
    /// `tests/greeting.rs`).
    #[test]
    fn any_bad_first_message_is_a_bad_greeting() {
        let cases: [&[u8]; 6] = [
            b"Welcome\r\n",
            b"[1, 2]\r\n",
            b"{\"hello\": 1}\r\n",
            b"{\"QMP\": {\"version\": \"10.0\"}}\r\n",
            b"{\"QMP\": {\"version\": 3, \"capabilities\": []}}\r\n",
            b"{\"return\": {}, \"id\": 0}\r\n",
        ];
        for bytes in cases {
            let mut client = Client::default();
            client.receive(bytes);
            let output = client.poll_output();
            assert!(
                matches!(
                    output,
                    Some(ClientOutput::End(End::Protocol(
                        ProtocolError::BadGreeting { .. }
                    )))
                ),
                "{:?}: {output:?}",
                core::str::from_utf8(bytes)
            );
        }
    }

    /// Events, their data copied out of the received bytes (small, into
    /// shared chunks) or shared with them (large), come out as they were
    /// sent, given whole, byte by byte or in small pieces, and a reply
    /// between them comes out whole.
    #[test]
    fn events_come_out_as_sent_whatever_their_size() {
        use alloc::format;
        use alloc::string::String;
        let greeting = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": []}}\r\n";
        let mut stream = greeting.to_vec();
        stream.extend_from_slice(b"{\"return\": {}, \"id\": 0}\r\n");
        let mut sent = Vec::new();
        for i in 0..120usize {
            // Around the size limit of copies, and across chunks.
            let data = match i % 4 {
                0 => None,
                1 => Some(format!("{{\"s\": \"{}\"}}", "x".repeat(i * 5))),
                2 => Some(format!("[{i}, \"\u{e9}\", {{\"a\": null}}]")),
                _ => Some(format!("\"{}\"", "y".repeat(480 + i % 64))),
            };
            let line = match &data {
                Some(data) => format!(
                    "{{\"timestamp\": {{\"seconds\": {i}, \"microseconds\": -1}}, \"event\": \"E{}\", \"data\": {data}}}\r\n",
                    i % 3
                ),
                None => format!(
                    "{{\"timestamp\": {{\"seconds\": {i}, \"microseconds\": -1}}, \"event\": \"E{}\"}}\r\n",
                    i % 3
                ),
            };
            stream.extend_from_slice(line.as_bytes());
            sent.push((format!("E{}", i % 3), data, i as i64));
            if i == 60 {
                stream.extend_from_slice(b"{\"return\": {\"x\": 1}, \"id\": 1}\r\n");
            }
        }
        for chunk in [stream.len(), 1, 7] {
            let mut client = Client::new(ClientConfig::default().first_id(0));
            let mut got = Vec::new();
            let mut replies = Vec::new();
            let mut issued = false;
            for piece in stream.chunks(chunk) {
                client.receive(piece);
                while let Some(output) = client.poll_output() {
                    match output {
                        ClientOutput::Event(event) => got.push((
                            event.name,
                            event.data.map(|d| String::from(d.as_str())),
                            event.timestamp.seconds,
                        )),
                        ClientOutput::Reply(reply) => replies.push(reply.result.unwrap()),
                        ClientOutput::Ready { .. } if !issued => {
                            client.execute("x", &()).unwrap();
                            issued = true;
                        }
                        _ => {}
                    }
                }
            }
            assert_eq!(got, sent, "chunks of {chunk}");
            assert_eq!(replies.len(), 1);
            assert_eq!(replies[0].as_str(), "{\"x\": 1}");
        }
    }
}
