//! [`Call`]: one command, set up and then awaited.

use crate::answer::{answer, Answering, Unanswered};
use crate::engine::{Line, Shared, State};
use crate::qmp::within;
use crate::runtime::Runtime;
use crate::{Error, Qmp};
use qmp_proto::typed::check::ArgumentProblem;
use qmp_proto::{Failure, RawJson, RequestId};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::{Future, IntoFuture};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

/// One command, from [`Qmp::call`] (by name, raw result) or
/// [`Qmp::execute`] (typed): await it to run it, or first say how, in any
/// combination.
///
/// - [`timeout`](Call::timeout): a deadline for this call
///   ([`ConnectOptions::call_timeout`](crate::ConnectOptions::call_timeout)
///   by default), covering the wait for room, the descriptor turn and the
///   reply. On timeout the connection stays usable and a late reply is
///   dropped.
/// - [`oob`](Call::oob): out-of-band execution (`exec-oob`), past queued
///   in-band commands.
/// - [`fds`](Call::fds): descriptors passed with the command (SCM_RIGHTS),
///   as `getfd` and `add-fd` need; over a Unix socket only.
/// - [`decode`](Call::decode): the type the `return` value decodes into.
/// - [`try_now`](Call::try_now): fail at once when the queue is full
///   instead of waiting for room.
/// - [`check_arguments`](Call::check_arguments): check the arguments
///   against the connected QEMU's own schema first, and send nothing if
///   they do not fit ([`ConnectOptions::check_arguments`](crate::ConnectOptions::check_arguments)
///   does it for every call).
///
/// ```no_run
/// # async fn f(qmp: qmp_client::Qmp<impl qmp_client::Runtime>, fd: std::os::fd::OwnedFd) -> Result<(), qmp_client::Error> {
/// use qmp_client::typed::commands::{Getfd, QueryStatus};
/// use std::time::Duration;
///
/// let status = qmp.execute(&QueryStatus).timeout(Duration::from_secs(1)).await?;
/// qmp.execute(&Getfd::new("backup0")).fd(fd).await?;
/// qmp.call("x-debug-query-block-graph", &()).oob().timeout(Duration::from_secs(1)).await?;
/// qmp.call("blockdev-del", &serde_json::json!({"node-name": "disk0"})).check_arguments().await?;
/// # Ok(()) }
/// ```
///
/// Cancel safety: dropping the future at any await point leaves the
/// connection fully usable. A command not sent yet is never sent; one in
/// flight keeps its slot of the window until its reply comes, which is then
/// dropped; descriptors not sent are closed.
#[must_use = "a call does nothing until it is awaited"]
pub struct Call<'a, R: Runtime, A: ?Sized, T = RawJson> {
    qmp: &'a Qmp<R>,
    issue: Issue<'a, A>,
    /// `None`: the connection's default.
    timeout: Option<Option<Duration>>,
    /// `None`: the connection's default.
    check: Option<bool>,
    decode: fn(RawJson) -> Result<T, Error>,
}

impl<'a, R: Runtime, A: Serialize + Sync + ?Sized> Call<'a, R, A> {
    pub(crate) fn new(qmp: &'a Qmp<R>, name: &'a str, arguments: &'a A) -> Self {
        let issue = Issue {
            name,
            arguments,
            oob: false,
            fds: Vec::new(),
            wait_for_room: true,
        };
        Call {
            qmp,
            issue,
            timeout: None,
            check: None,
            decode: Ok,
        }
    }
}

impl<'a, R: Runtime, A: Serialize + Sync + ?Sized, T> Call<'a, R, A, T> {
    /// Fails with [`Error::Timeout`] if the call is not answered within
    /// `limit`.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(Some(limit));
        self
    }

    /// Waits as long as it takes, whatever the connection's default.
    pub fn no_timeout(mut self) -> Self {
        self.timeout = Some(None);
        self
    }

    /// Runs the command out of band (`exec-oob`). Needs OOB negotiated
    /// ([`ConnectOptions::want_oob`](crate::ConnectOptions::want_oob)), or
    /// the call fails with [`SendError::OobNotNegotiated`](crate::SendError::OobNotNegotiated).
    pub fn oob(mut self) -> Self {
        self.issue.oob = true;
        self
    }

    /// Passes `fds` with the command. Only one command with descriptors is
    /// in flight at a time, so each one's reach QEMU with it. Over TCP the
    /// call fails with [`Error::FdPassingUnsupported`] before anything is
    /// sent.
    pub fn fds(mut self, fds: impl IntoIterator<Item = OwnedFd>) -> Self {
        self.issue.fds.extend(fds);
        self
    }

    /// Passes one descriptor with the command (see [`fds`](Call::fds)).
    pub fn fd(self, fd: OwnedFd) -> Self {
        self.fds([fd])
    }

    /// Fails with [`SendError::QueueFull`](crate::SendError::QueueFull) at
    /// once when the in-flight window and the local queue are both full,
    /// instead of waiting for room.
    pub fn try_now(mut self) -> Self {
        self.issue.wait_for_room = false;
        self
    }

    /// Checks the arguments against the connected QEMU's schema (fetched
    /// once per connection, by [`Qmp::schema`]) before sending: a member
    /// the schema does not have, a required member missing, a value of
    /// the wrong JSON type (in nested objects, arrays, alternates and
    /// unions too), a string that is none of its enum's values. If any is
    /// found, nothing is sent and the call fails with
    /// [`Error::Rejected`] carrying
    /// [`SendError::InvalidArguments`](crate::SendError::InvalidArguments),
    /// which lists every problem with its place (`arguments.file.driver`)
    /// and what the schema expects there. Deprecated or unstable commands,
    /// members and enum values are only warnings: the call goes on (with
    /// the `tracing` feature each is logged at the `warn` level; see
    /// [`Qmp::check_arguments`] to get them).
    ///
    /// The check costs a serialization of the arguments and, on the
    /// connection's first check, the `query-qmp-schema` call (about
    /// 250 KB), within this call's timeout.
    ///
    /// ```no_run
    /// # async fn f(qmp: qmp_client::Qmp<impl qmp_client::Runtime>) -> Result<(), qmp_client::Error> {
    /// use qmp_client::typed::commands::BlockdevAdd;
    /// use qmp_client::{Error, SendError};
    ///
    /// let node = BlockdevAdd::new("null-co", "disk0").option("sise", 1 << 20);
    /// match qmp.execute(&node).check_arguments().await {
    ///     Err(Error::Rejected(SendError::InvalidArguments(problems))) => {
    ///         // "arguments.sise: unknown member (expected one of: driver, ...)"
    ///         println!("{}", problems.errors[0]);
    ///     }
    ///     other => println!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn check_arguments(mut self) -> Self {
        self.check = Some(true);
        self
    }

    /// Sends the arguments unchecked, whatever
    /// [`ConnectOptions::check_arguments`](crate::ConnectOptions::check_arguments)
    /// says.
    pub fn skip_argument_check(mut self) -> Self {
        self.check = Some(false);
        self
    }

    /// Decodes the `return` value into `U` (a decoding failure is
    /// [`Error::Decode`]).
    pub fn decode<U: DeserializeOwned>(self) -> Call<'a, R, A, U> {
        self.with_decoder(|raw| raw.decode().map_err(Error::from))
    }

    pub(crate) fn with_decoder<U>(
        self,
        decode: fn(RawJson) -> Result<U, Error>,
    ) -> Call<'a, R, A, U> {
        let Call {
            qmp,
            issue,
            timeout,
            check,
            ..
        } = self;
        Call {
            qmp,
            issue,
            timeout,
            check,
            decode,
        }
    }

    async fn run(self) -> Result<T, Error> {
        let Call {
            qmp,
            issue,
            timeout,
            check,
            decode,
        } = self;
        if !issue.fds.is_empty() && !qmp.can_pass_fds() {
            return Err(Error::FdPassingUnsupported);
        }
        let shared = qmp.shared();
        let limit = timeout.unwrap_or(qmp.options().call_timeout);
        let deadline = limit.and_then(|limit| Instant::now().checked_add(limit));
        if check.unwrap_or(qmp.options().check_arguments) {
            let checked = qmp.check_arguments(issue.name, issue.arguments);
            match within(&shared.runtime, deadline, checked).await {
                None => return Err(Error::Timeout),
                Some(Err(e)) => return Err(e),
                Some(Ok(warnings)) => log_warnings(issue.name, &warnings),
            }
        }
        let work = async {
            let _turn = match issue.fds.is_empty() {
                true => None,
                false => Some(FdTurn::take(shared).await),
            };
            let (reply_to, reply) = answer();
            let id = issue.run(shared, reply_to).await;
            let mut in_flight = Forget { shared, id };
            let answered = shared.wait(|_, cx| reply.poll_take(cx)).await;
            // Answered, or ended: the router let go of the command already.
            in_flight.id = None;
            answered
        };
        match within(&shared.runtime, deadline, work).await {
            None => Err(Error::Timeout),
            Some(Err(Unanswered)) => Err(qmp.closed_error()),
            Some(Ok(Err(failure))) => Err(failure.into()),
            Some(Ok(Ok(raw))) => decode(raw),
        }
    }
}

/// Logs what a passed argument check warned of (feature `tracing`).
fn log_warnings(command: &str, warnings: &[ArgumentProblem]) {
    #[cfg(feature = "tracing")]
    for warning in warnings {
        tracing::warn!(command, "{warning}");
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (command, warnings);
}

impl<'a, R, A, T> IntoFuture for Call<'a, R, A, T>
where
    R: Runtime,
    A: Serialize + Sync + ?Sized,
    T: Send + 'a,
{
    type Output = Result<T, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// A command to issue, and how: once there is room for it, in the order
/// callers came (unless `wait_for_room` is off).
struct Issue<'a, A: ?Sized> {
    name: &'a str,
    arguments: &'a A,
    oob: bool,
    fds: Vec<OwnedFd>,
    wait_for_room: bool,
}

impl<A: Serialize + Sync + ?Sized> Issue<'_, A> {
    /// The command's id once issued; `None` if it was rejected (its
    /// answer, the rejection, is delivered already).
    async fn run<R: Runtime>(
        self,
        shared: &Shared<R>,
        reply_to: Answering<Result<RawJson, Failure>>,
    ) -> Option<RequestId> {
        let Issue {
            name,
            arguments,
            oob,
            fds,
            wait_for_room,
        } = self;
        let mut issuing = Some((reply_to, fds));
        let mut ticket = Ticket::new(shared, room);
        shared
            .wait(|state, cx| {
                let router = &state.router;
                let room_now = router.client().has_room(oob) && state.room.is_next(ticket.id);
                if wait_for_room && !room_now && router.end().is_none() {
                    state.room.wait(&mut ticket.id, cx.waker());
                    return Poll::Pending;
                }
                state.room.leave(&mut ticket.id);
                let Some((reply_to, fds)) = issuing.take() else {
                    return Poll::Ready(None);
                };
                let id = state.router.execute(name, arguments, oob, reply_to);
                if id.is_some() {
                    state.fds.extend(fds);
                }
                // Writes it, and wakes the next in line if there is room.
                state.settle();
                Poll::Ready(id)
            })
            .await
    }
}

fn room<R: Runtime>(state: &mut State<R>) -> &mut Line {
    &mut state.room
}

fn fd_turn<R: Runtime>(state: &mut State<R>) -> &mut Line {
    &mut state.fd_turn
}

/// A place in one of the connection's lines; dropped, it leaves the line
/// and lets the next one look.
struct Ticket<'a, R: Runtime> {
    shared: &'a Shared<R>,
    line: fn(&mut State<R>) -> &mut Line,
    id: Option<u64>,
}

impl<'a, R: Runtime> Ticket<'a, R> {
    fn new(shared: &'a Shared<R>, line: fn(&mut State<R>) -> &mut Line) -> Self {
        Ticket {
            shared,
            line,
            id: None,
        }
    }
}

impl<R: Runtime> Drop for Ticket<'_, R> {
    fn drop(&mut self) {
        if self.id.is_some() {
            let mut state = self.shared.lock();
            let line = (self.line)(&mut state);
            line.leave(&mut self.id);
            line.wake_first();
        }
    }
}

/// The turn of the one command with descriptors in flight; dropped, it
/// goes to the next in line.
struct FdTurn<'a, R: Runtime> {
    shared: &'a Shared<R>,
}

impl<'a, R: Runtime> FdTurn<'a, R> {
    async fn take(shared: &'a Shared<R>) -> Self {
        let mut ticket = Ticket::new(shared, fd_turn);
        shared
            .wait(|state, cx| {
                if state.fd_turn_held || !state.fd_turn.is_next(ticket.id) {
                    state.fd_turn.wait(&mut ticket.id, cx.waker());
                    return Poll::Pending;
                }
                state.fd_turn.leave(&mut ticket.id);
                state.fd_turn_held = true;
                Poll::Ready(())
            })
            .await;
        FdTurn { shared }
    }
}

impl<R: Runtime> Drop for FdTurn<'_, R> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.fd_turn_held = false;
        state.fd_turn.wake_first();
    }
}

/// Makes the router forget a command whose caller stopped waiting (dropped
/// the call's future, or timed out), unless emptied first.
struct Forget<'a, R: Runtime> {
    shared: &'a Shared<R>,
    id: Option<RequestId>,
}

impl<R: Runtime> Drop for Forget<'_, R> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.shared.update(|state| state.router.forget(id));
        }
    }
}
