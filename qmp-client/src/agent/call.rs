//! [`AgentCall`]: one guest agent command, set up and then awaited.

use super::router::AgentRouter;
use super::GuestAgent;
use crate::answer::{answer, Answer, Unanswered};
use crate::engine::Shared;
use crate::qmp::within;
use crate::runtime::Runtime;
use crate::Error;
use qmp_proto::{End, Failure, RawJson, RequestId};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

/// One command, from [`GuestAgent::call`] (by name, raw result) or
/// [`GuestAgent::execute`] (typed). Await it to run it, after setting its
/// [`timeout`](Self::timeout) or the type it [decodes](Self::decode) to if
/// need be; or run a command that does not answer on success with
/// [`no_reply`](Self::no_reply).
///
/// Cancel safety: dropping the future at any point leaves the connection
/// usable. A command not written yet never is; the reply of one already
/// written is dropped, and the next command syncs first.
#[must_use = "a call does nothing until it is awaited"]
pub struct AgentCall<'a, R: Runtime, A: ?Sized, T = RawJson> {
    agent: &'a GuestAgent<R>,
    name: &'a str,
    arguments: &'a A,
    timeout: Option<Duration>,
    decode: fn(RawJson) -> Result<T, Error>,
}

/// How a command that does not answer on success
/// ([`AgentCall::no_reply`]) ended, with no error from the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoReply {
    /// The channel closed after the command was written: the agent (or
    /// QEMU) went away, as it does when the guest shuts down.
    Closed,
    /// Nothing came within the wait after the command was written: the
    /// agent took it and sent no error.
    Quiet,
    /// The agent answered with success after all.
    Answered,
}

impl<'a, R: Runtime, A: Serialize + Sync + ?Sized> AgentCall<'a, R, A> {
    pub(crate) fn new(agent: &'a GuestAgent<R>, name: &'a str, arguments: &'a A) -> Self {
        AgentCall {
            agent,
            name,
            arguments,
            timeout: None,
            decode: Ok,
        }
    }
}

impl<'a, R: Runtime, A: Serialize + Sync + ?Sized, T> AgentCall<'a, R, A, T> {
    /// Fails with [`Error::Timeout`] if the call is not answered within
    /// `limit` (instead of
    /// [`AgentOptions::call_timeout`](super::AgentOptions::call_timeout)).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Decodes the `return` value into `U` (a failure is
    /// [`Error::Decode`]).
    pub fn decode<U: DeserializeOwned>(self) -> AgentCall<'a, R, A, U> {
        AgentCall {
            agent: self.agent,
            name: self.name,
            arguments: self.arguments,
            timeout: self.timeout,
            decode: |raw| raw.decode().map_err(Error::from),
        }
    }

    /// Runs a command that sends no reply on success (`guest-shutdown`,
    /// `guest-suspend-*`). The command waits its turn and the sync within
    /// [`AgentOptions::call_timeout`](super::AgentOptions::call_timeout)
    /// (failing with [`Error::Timeout`] if the agent never took it); once
    /// it is written, an error from the agent fails the call, and
    /// otherwise the call ends with [`NoReply::Closed`] when the channel
    /// closes or [`NoReply::Quiet`] after the [`timeout`](Self::timeout)
    /// (default
    /// [`AgentOptions::no_reply_wait`](super::AgentOptions::no_reply_wait)).
    /// The next command syncs first, so a late error is dropped.
    pub async fn no_reply(self) -> Result<NoReply, Error> {
        let options = self.agent.options();
        let wait = self.timeout.unwrap_or(options.no_reply_wait);
        let shared = self.agent.shared();
        let (reply, mut pending) = issue(shared, self.name, self.arguments);
        let Some(id) = pending.id else {
            // Refused: the answer says why.
            let refused = shared.wait(|_, cx| reply.poll_take(cx)).await;
            return outcome(self.agent, refused).map(|_| NoReply::Answered);
        };
        // Until it is written: its turn, and the sync before it.
        let written = shared.wait(|state, cx| {
            if state.router.agent.running() == Some(id) {
                return Poll::Ready(None);
            }
            reply.poll_take(cx).map(Some)
        });
        let deadline = Instant::now().checked_add(options.call_timeout);
        let answered = match within(&shared.runtime, deadline, written).await {
            None => return Err(Error::Timeout),
            Some(Some(answered)) => answered,
            Some(None) => {
                let deadline = Instant::now().checked_add(wait);
                let answered = shared.wait(|_, cx| reply.poll_take(cx));
                match within(&shared.runtime, deadline, answered).await {
                    None => return Ok(NoReply::Quiet),
                    Some(answered) => answered,
                }
            }
        };
        pending.id = None;
        match answered {
            Ok(Err(Failure::Ended(End::PeerClosed))) => Ok(NoReply::Closed),
            answered => outcome(self.agent, answered).map(|_| NoReply::Answered),
        }
    }

    async fn run(self) -> Result<T, Error> {
        let limit = self.timeout.unwrap_or(self.agent.options().call_timeout);
        let deadline = Instant::now().checked_add(limit);
        let shared = self.agent.shared();
        let work = async {
            let (reply, mut pending) = issue(shared, self.name, self.arguments);
            let answered = shared.wait(|_, cx| reply.poll_take(cx)).await;
            pending.id = None;
            answered
        };
        match within(&shared.runtime, deadline, work).await {
            None => Err(Error::Timeout),
            Some(answered) => outcome(self.agent, answered).and_then(self.decode),
        }
    }
}

type Answered = Result<Result<RawJson, Failure>, Unanswered>;

/// Queues the command; its answer comes to the returned receiver, and the
/// command is given up on if the guard is dropped with its id still set.
fn issue<'s, R: Runtime, A: Serialize + ?Sized>(
    shared: &'s Shared<R, AgentRouter>,
    name: &str,
    arguments: &A,
) -> (Answer<Result<RawJson, Failure>>, Pending<'s, R>) {
    let (reply_to, reply) = answer();
    let id = shared.update(|state| state.router.execute(name, arguments, reply_to));
    (reply, Pending { shared, id })
}

fn outcome<R: Runtime>(agent: &GuestAgent<R>, answered: Answered) -> Result<RawJson, Error> {
    match answered {
        Ok(Ok(raw)) => Ok(raw),
        Ok(Err(failure)) => Err(failure.into()),
        Err(Unanswered) => Err(Error::Closed(agent.end_reason().unwrap_or(End::Local))),
    }
}

/// Gives up on a command whose caller stopped waiting (dropped the
/// future, or its deadline passed), unless emptied first.
struct Pending<'a, R: Runtime> {
    shared: &'a Shared<R, AgentRouter>,
    id: Option<RequestId>,
}

impl<R: Runtime> Drop for Pending<'_, R> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.shared.update(|state| state.router.cancel(id));
        }
    }
}

impl<'a, R, A, T> IntoFuture for AgentCall<'a, R, A, T>
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
