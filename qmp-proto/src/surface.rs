//! The surface `qmp-tokio` and `qmp-smol` share, written once.
//!
//! Both adapters offer the same `Qmp` and `Subscription`. Most of that
//! surface does not depend on the runtime: a getter reads the router, an
//! `execute_*` method picks the arguments of one runtime-specific call, a
//! subscription is a notice queue plus its id. It cannot be plain code of
//! this crate, which does no I/O and runs no futures, so, like the typed
//! methods ([`__typed_adapter_methods`](crate::__typed_adapter_methods)),
//! it is kept here as macros that each adapter expands in its own crate,
//! around the few pieces that are its own.
//!
//! What an adapter provides, checked by the compiler where it expands them:
//!
//! - `crate::shared::Shared`, the state behind its lock, with
//!   `read(&self, f: impl FnOnce(&Router<_>) -> R) -> R` (look),
//!   `update(&self, f: impl FnOnce(&mut Router<_>) -> R) -> R` (change,
//!   then route what that produced and write what there is to send) and
//!   `close(&self)` (end the connection, answering every waiter).
//!   Its `update_state(&self, f: impl FnOnce(&mut State) -> R) -> R` is
//!   `update` with the rest of the state: `State` has the `router` and
//!   `fds`, the descriptors to send with the next byte written. Its
//!   `receive(&self, &mut Answer<T>)` waits for an answer: `Ok(T)`, or an
//!   error once the sender is dropped unanswered.
//! - In `crate::shared`: `answer()`, a oneshot whose sender is the router's
//!   waiter (its [`Delivery`](crate::router::Delivery)) and whose receiver
//!   is `Answer<T>`; and `within(limit, future)`, the future's output or
//!   `None` once `limit` has passed.
//! - On `Qmp`, in an `impl` block of its own, `async fn take_fd_turn(&self)`:
//!   the right to run the one command with descriptors in flight, given
//!   back when its result is dropped.
//!
//! Internal to the adapters: not a stable interface.

/// Expands to the adapter's `Qmp` (a handle over `Arc<Inner>`), its `Inner`
/// and the runtime-independent methods. `$fd_turn` is the type of the
/// adapter's descriptor-passing turn (built with `Default`). See the
/// module's docs (`qmp-proto/src/surface.rs`) for what the adapter provides.
#[doc(hidden)]
#[macro_export]
// `crate::` is the adapter's, where the macro expands: on purpose.
#[allow(clippy::crate_in_macro_def)]
macro_rules! __adapter_connection {
    (fd_turn: $fd_turn:ty) => {
        /// A QMP connection. Cheap to clone (`Send + Sync`): every clone talks
        /// over the same socket, and any number of tasks may run commands at
        /// once.
        ///
        /// The connection closes when the last clone is dropped, or on
        /// [`close`](Qmp::close).
        #[derive(Clone)]
        pub struct Qmp {
            inner: ::std::sync::Arc<Inner>,
        }

        struct Inner {
            shared: ::std::sync::Arc<crate::shared::Shared>,
            options: $crate::ConnectOptions,
            greeting: $crate::Greeting,
            can_pass_fds: bool,
            /// Held by the one command with descriptors in flight, so each
            /// command's descriptors reach QEMU before any other's.
            fd_turn: $fd_turn,
            schema: $crate::typed::schema::SchemaCache,
        }

        impl Drop for Inner {
            fn drop(&mut self) {
                // What the socket takes at once is written, and it is
                // closed.
                self.shared.close();
            }
        }

        /// Makes the router forget a command whose caller stopped waiting
        /// (dropped the call's future, or timed out), unless emptied first.
        struct ForgetOnDrop<'a> {
            shared: &'a crate::shared::Shared,
            id: Option<$crate::RequestId>,
        }

        impl Drop for ForgetOnDrop<'_> {
            fn drop(&mut self) {
                if let Some(id) = self.id {
                    self.shared.update(|router| router.forget(id));
                }
            }
        }

        impl ::std::fmt::Debug for Qmp {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct("Qmp")
                    .field("greeting", &self.inner.greeting)
                    .finish_non_exhaustive()
            }
        }

        impl Qmp {
            /// The handle of a negotiated connection.
            fn negotiated(
                shared: ::std::sync::Arc<crate::shared::Shared>,
                options: $crate::ConnectOptions,
                can_pass_fds: bool,
            ) -> Result<Qmp, $crate::Error> {
                let greeting = shared.read(|router| match router.end() {
                    Some(end) => Err($crate::Error::Closed(end.clone())),
                    None => (router.client().greeting().cloned())
                        .ok_or($crate::Error::Closed($crate::End::Local)),
                })?;
                let inner = Inner {
                    shared,
                    options,
                    greeting,
                    can_pass_fds,
                    fd_turn: Default::default(),
                    schema: Default::default(),
                };
                Ok(Qmp {
                    inner: ::std::sync::Arc::new(inner),
                })
            }

            /// The connection's schema, once fetched (see `schema`, in
            /// `typed`).
            pub(crate) fn schema_cache(&self) -> &$crate::typed::schema::SchemaCache {
                &self.inner.schema
            }

            /// The server's greeting: its version and the capabilities it
            /// offers.
            pub fn greeting(&self) -> &$crate::Greeting {
                &self.inner.greeting
            }

            /// Whether out-of-band execution was negotiated.
            pub fn oob_enabled(&self) -> bool {
                self.inner
                    .shared
                    .read(|router| router.client().oob_enabled())
            }

            /// Why the connection ended, once it has.
            pub fn end_reason(&self) -> Option<$crate::End> {
                self.inner.shared.read(|router| router.end().cloned())
            }

            /// Runs command `name` with `arguments` (anything that serializes
            /// to a JSON object, or `&()` for none) and returns its raw
            /// `return` value. Uses the default call timeout of the options,
            /// if any.
            ///
            /// Cancel safety: dropping the future at any await point leaves
            /// the connection fully usable; the command is not sent if it
            /// had not been yet, and its late reply is dropped.
            pub async fn execute_raw<A: ::serde::Serialize + ?Sized>(
                &self,
                name: &str,
                arguments: &A,
            ) -> Result<$crate::RawJson, $crate::Error> {
                let timeout = self.inner.options.call_timeout;
                self.call(name, arguments, false, timeout, Vec::new()).await
            }

            /// Runs a command and decodes its `return` value into `R`.
            ///
            /// Cancel safety: as [`execute_raw`](Qmp::execute_raw).
            pub async fn execute_as<R, A>(
                &self,
                name: &str,
                arguments: &A,
            ) -> Result<R, $crate::Error>
            where
                R: ::serde::de::DeserializeOwned,
                A: ::serde::Serialize + ?Sized,
            {
                let raw = self.execute_raw(name, arguments).await?;
                raw.decode().map_err($crate::Error::from)
            }

            /// Runs a command with its own deadline; on timeout the
            /// connection stays usable and the late reply is dropped.
            ///
            /// Cancel safety: as [`execute_raw`](Qmp::execute_raw).
            pub async fn execute_timeout<A: ::serde::Serialize + ?Sized>(
                &self,
                name: &str,
                arguments: &A,
                timeout: ::std::time::Duration,
            ) -> Result<$crate::RawJson, $crate::Error> {
                let timeout = Some(timeout);
                self.call(name, arguments, false, timeout, Vec::new()).await
            }

            /// Runs a command out of band (`exec-oob`), past queued in-band
            /// ones. Needs OOB negotiated
            /// ([`ConnectOptions::want_oob`](crate::ConnectOptions::want_oob)).
            ///
            /// Cancel safety: as [`execute_raw`](Qmp::execute_raw).
            pub async fn execute_oob<A: ::serde::Serialize + ?Sized>(
                &self,
                name: &str,
                arguments: &A,
            ) -> Result<$crate::RawJson, $crate::Error> {
                let timeout = self.inner.options.call_timeout;
                self.call(name, arguments, true, timeout, Vec::new()).await
            }

            /// Runs a command and passes `fds` with it (SCM_RIGHTS), as
            /// `getfd` and `add-fd` need. Only over a Unix socket.
            ///
            /// Cancel safety: as [`execute_raw`](Qmp::execute_raw); the
            /// descriptors are closed on our side once sent or dropped.
            pub async fn execute_with_fds<A: ::serde::Serialize + ?Sized>(
                &self,
                name: &str,
                arguments: &A,
                fds: Vec<::std::os::fd::OwnedFd>,
            ) -> Result<$crate::RawJson, $crate::Error> {
                if !self.inner.can_pass_fds {
                    return Err($crate::Error::FdPassingUnsupported);
                }
                let _turn = self.take_fd_turn().await;
                let timeout = self.inner.options.call_timeout;
                self.call(name, arguments, false, timeout, fds).await
            }

            /// Error replies QEMU sent without an id (its answer to input it
            /// could not parse), oldest first, since the last call; the last
            /// 64 are kept. No caller receives them, so this is the only
            /// place they show.
            pub fn take_unattributed_errors(&self) -> Vec<$crate::QmpError> {
                self.inner
                    .shared
                    .update(|router| router.take_unattributed())
            }

            /// How many replies were dropped instead of delivered: unknown
            /// ids, and late replies to calls that had timed out or were
            /// cancelled.
            pub fn dropped_replies(&self) -> $crate::DroppedReplies {
                self.inner
                    .shared
                    .read(|router| router.client().dropped_replies())
            }

            /// A cursor at the end of the event stream. Take it before
            /// running a command whose event you will
            /// [wait for](Qmp::wait_for_event).
            pub fn cursor(&self) -> $crate::Cursor {
                self.inner.shared.read(|router| router.cursor())
            }

            /// The kept events at or after `after` that pass `filter`,
            /// without waiting (go-qmp's `FindEvents`).
            pub fn find_events(
                &self,
                after: $crate::Cursor,
                filter: &$crate::EventFilter,
            ) -> Vec<$crate::Sequenced> {
                let found = |router: &$crate::Router<_>| {
                    router.find_events(after, filter).cloned().collect()
                };
                self.inner.shared.read(found)
            }

            /// Waits up to `timeout` for the first event at or after `after`
            /// that passes `filter`. The event may already have arrived: no
            /// race.
            ///
            /// Cancel safety: dropping the future drops the wait, nothing
            /// else.
            pub async fn wait_for_event(
                &self,
                after: $crate::Cursor,
                filter: $crate::EventFilter,
                timeout: ::std::time::Duration,
            ) -> Result<$crate::Sequenced, $crate::Error> {
                self.wait_event(after, filter, timeout).await
            }

            /// A stream of the events that pass `filter`, from now on. It
            /// holds at most `options.subscriber_capacity` unread events;
            /// past that it tells how many it missed
            /// ([`Notice::Lagged`](crate::Notice::Lagged)). It ends when the
            /// connection does.
            pub fn subscribe(&self, filter: $crate::EventFilter) -> crate::Subscription {
                let capacity = self.inner.options.subscriber_capacity;
                let (sink, events) = $crate::notice_queue::notice_queue(capacity);
                // An update: the driver must read for the subscriber from now on.
                let id = self
                    .inner
                    .shared
                    .update(|router| router.subscribe(filter, sink));
                crate::Subscription::new(events, id, self.inner.shared.clone())
            }

            /// Issues a command and waits for its answer, up to `timeout`;
            /// `fds` go out with its first byte. Dropped, it makes the
            /// router forget the command.
            async fn call<A: ::serde::Serialize + ?Sized>(
                &self,
                name: &str,
                arguments: &A,
                oob: bool,
                timeout: Option<::std::time::Duration>,
                fds: Vec<::std::os::fd::OwnedFd>,
            ) -> Result<$crate::RawJson, $crate::Error> {
                let (reply_to, mut reply) = crate::shared::answer();
                let shared = &*self.inner.shared;
                let issued = shared.update_state(|state| {
                    let issued = state.router.execute(name, arguments, oob, reply_to);
                    if issued.is_some() {
                        state.fds.extend(fds);
                    }
                    issued
                });
                let mut in_flight = ForgetOnDrop { shared, id: issued };
                let answer = self.receive(&mut reply, timeout).await;
                if !matches!(answer, Err($crate::Error::Timeout)) {
                    // Answered, or failed with the connection: the router
                    // has let go of the command already.
                    in_flight.id = None;
                }
                answer
            }

            /// Registers a wait for the first event at or after `after`
            /// that passes `filter`, and waits for it up to `timeout`.
            async fn wait_event(
                &self,
                after: $crate::Cursor,
                filter: $crate::EventFilter,
                timeout: ::std::time::Duration,
            ) -> Result<$crate::Sequenced, $crate::Error> {
                let (found_to, mut found) = crate::shared::answer();
                (self.inner.shared).update(|router| router.wait_for_event(after, filter, found_to));
                self.receive(&mut found, Some(timeout)).await
            }

            /// Waits for `answer`, up to `timeout`: the result, or why there
            /// is none.
            async fn receive<T>(
                &self,
                answer: &mut crate::shared::Answer<Result<T, $crate::Failure>>,
                timeout: Option<::std::time::Duration>,
            ) -> Result<T, $crate::Error> {
                let shared = &self.inner.shared;
                let received = match timeout {
                    None => shared.receive(answer).await,
                    Some(limit) => crate::shared::within(limit, shared.receive(answer))
                        .await
                        .ok_or($crate::Error::Timeout)?,
                };
                // No answer: the connection ended and dropped the waiter.
                let gone =
                    |_| $crate::Error::Closed(self.end_reason().unwrap_or($crate::End::Local));
                received.map_err(gone)?.map_err($crate::Error::from)
            }

            /// Closes the connection: pending calls fail with
            /// [`End::Local`](crate::End::Local), subscriptions end; then
            /// what the socket takes at once of what was still to be sent
            /// is written, the rest dropped (a QEMU that stopped reading
            /// cannot keep the socket open), and the socket closed.
            ///
            /// Cancel safety: the connection is closed, all at once, by the
            /// first poll, which completes the future.
            pub async fn close(&self) {
                self.inner.shared.close();
            }
        }
    };
}

/// Expands to the adapter's `Subscription`: a `futures_core::Stream` of
/// notices over a [`notice_queue`](crate::notice_queue). See the
/// module's docs (`qmp-proto/src/surface.rs`) for what the adapter provides.
#[doc(hidden)]
#[macro_export]
// `crate::` is the adapter's, where the macro expands: on purpose.
#[allow(clippy::crate_in_macro_def)]
macro_rules! __adapter_subscription {
    () => {
        /// Events that passed a subscription's filter, as a
        /// [`Stream`](futures_core::Stream) of [`Notice`](crate::Notice)s:
        /// each event, or how many were missed when the subscriber fell
        /// behind. Ends when the connection does, after the notices still
        /// queued (and a last `Lagged` if it missed events the full queue
        /// could not tell of); then
        /// [`end_reason`](Subscription::end_reason) says why. Dropping it
        /// unsubscribes.
        pub struct Subscription {
            events: $crate::notice_queue::NoticeSource,
            id: $crate::router::SubscriptionId,
            shared: ::std::sync::Arc<crate::shared::Shared>,
        }

        impl Subscription {
            pub(crate) fn new(
                events: $crate::notice_queue::NoticeSource,
                id: $crate::router::SubscriptionId,
                shared: ::std::sync::Arc<crate::shared::Shared>,
            ) -> Self {
                Subscription { events, id, shared }
            }

            /// The next notice, or `None` once the connection has ended.
            ///
            /// Cancel safety: cancel safe; no notice is lost if the future
            /// is dropped.
            pub async fn next(&mut self) -> Option<$crate::Notice> {
                ::std::future::poll_fn(|cx| self.poll_notice(cx)).await
            }

            /// The queued notices, then what the connection's end left
            /// untold (a lag the full queue could not take), then the end.
            fn poll_notice(
                &mut self,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<Option<$crate::Notice>> {
                match self.events.poll_recv(cx) {
                    ::std::task::Poll::Ready(None) => {
                        let id = self.id;
                        let lagged = self.shared.update(|router| router.take_lagged_at_end(id));
                        ::std::task::Poll::Ready(lagged.map($crate::Notice::Lagged))
                    }
                    other => other,
                }
            }

            /// Why the connection ended, once it has.
            pub fn end_reason(&self) -> Option<$crate::End> {
                self.shared.read(|router| router.end().cloned())
            }
        }

        impl ::futures_core::Stream for Subscription {
            type Item = $crate::Notice;

            fn poll_next(
                mut self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<Option<$crate::Notice>> {
                self.poll_notice(cx)
            }
        }

        impl Drop for Subscription {
            fn drop(&mut self) {
                let id = self.id;
                self.shared.update(|router| router.unsubscribe(id));
            }
        }

        impl ::std::fmt::Debug for Subscription {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct("Subscription")
                    .field("id", &self.id)
                    .finish()
            }
        }
    };
}
