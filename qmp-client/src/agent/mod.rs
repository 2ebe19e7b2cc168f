//! The QEMU guest agent (QGA): [`GuestAgent`], on the same engine as the
//! QMP client, [`Qmp`].
//!
//! The agent runs inside the guest and answers over a virtio-serial port,
//! which QEMU exposes on the host as a chardev socket
//! (`-chardev socket,path=/run/vm1/qga.sock,server=on,wait=off -device
//! virtserialport,chardev=...,name=org.qemu.guest_agent.0`).
//!
//! ```no_run
//! use qmp_client::agent::{AgentOptions, ExecRequest, GuestAgent};
//! use qmp_client::Runtime;
//! use std::time::Duration;
//!
//! async fn run<R: Runtime>() -> Result<(), qmp_client::Error> {
//!     let agent = GuestAgent::<R>::connect_unix("/run/vm1/qga.sock", AgentOptions::default()).await?;
//!     // The guest may still be booting: wait until its agent answers.
//!     agent.wait_until_ready(Duration::from_secs(60)).await?;
//!     println!("agent {}", agent.info().await?.version);
//!     let uname = ExecRequest::new("/bin/uname").arg("-r");
//!     let output = agent.exec(&uname, Duration::from_secs(10)).await?;
//!     println!("kernel {}", String::from_utf8_lossy(&output.stdout));
//!     Ok(())
//! }
//! ```
//!
//! # Why every call may sync first
//!
//! The channel has no greeting and no ids of its own, and may hold what
//! an earlier client left (half a command, replies nobody read). So before
//! its first command, and after any command given up on, the client
//! *syncs*: it writes `0xFF` (which resets the agent's parser) and
//! `guest-sync-delimited` with a number of its own, and drops everything
//! until the agent's `0xFF` and the reply with that number. Only then is a
//! command written (see [`qmp_proto::agent`]). Commands run one at a time,
//! in the order they were called.
//!
//! # What a deadline means
//!
//! Every call has one ([`AgentOptions::call_timeout`], or its own
//! [`timeout`](AgentCall::timeout)). When no agent answers (the guest is
//! not running, or its agent is not started), QEMU still accepts the
//! connection and the bytes, so only a deadline tells: the call fails with
//! [`Error::Timeout`], and the next call syncs again. A command is written
//! only once the agent has answered a sync, so a command whose deadline
//! passed before that is never run. One whose deadline passed while the
//! agent was running it may still complete in the guest: its late reply is
//! dropped.
//!
//! # Commands that do not answer
//!
//! `guest-shutdown` and `guest-suspend-*` send no reply on success: the
//! guest goes away. Call them with [`no_reply`](AgentCall::no_reply)
//! (as [`GuestAgent::shutdown`] does): the call ends with the agent's
//! error if it sends one, or with [`NoReply::Closed`] when the channel
//! closes, or [`NoReply::Quiet`] when nothing came within its deadline.
//! QMP's `SHUTDOWN` event, or the channel's end, confirms it.

mod call;
mod helpers;
mod options;
mod router;

pub use call::{AgentCall, NoReply};
pub use helpers::{ExecOutput, ExecRequest};
pub use options::AgentOptions;
pub use qmp_proto::agent::SyncMethod;
pub use qmp_proto::typed::agent as commands;

use crate::dial;
use crate::engine::Shared;
use crate::qmp::within;
use crate::runtime::Runtime;
use crate::{Error, Qmp};
use qmp_proto::agent::{Agent, AgentConfig};
use qmp_proto::{End, EventFilter};
use router::AgentRouter;
use serde::Serialize;
use std::io;
use std::net::ToSocketAddrs;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A connection to a guest agent. Cheap to clone; every clone talks over
/// the same channel, and calls from all of them run one at a time, in
/// order.
pub struct GuestAgent<R: Runtime> {
    inner: Arc<Inner<R>>,
}

impl<R: Runtime> Clone for GuestAgent<R> {
    fn clone(&self) -> Self {
        GuestAgent {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<R: Runtime> {
    shared: Arc<Shared<R, AgentRouter>>,
    options: AgentOptions,
}

impl<R: Runtime> Drop for Inner<R> {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl<R: Runtime> std::fmt::Debug for GuestAgent<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestAgent")
            .field("in_step", &self.is_in_step())
            .field("end", &self.end_reason())
            .finish()
    }
}

impl<R: Runtime> GuestAgent<R> {
    /// Connects to the agent's Unix socket (QEMU's chardev, or
    /// `qemu-ga -m unix-listen`) and sends the first sync. It does not wait
    /// for the agent to answer: QEMU accepts the connection whether or not
    /// an agent runs in the guest (see
    /// [`wait_until_ready`](Self::wait_until_ready)).
    ///
    /// Cancel safety: dropping the future closes the socket.
    pub async fn connect_unix(
        path: impl AsRef<Path>,
        options: AgentOptions,
    ) -> Result<Self, Error> {
        let runtime = R::current().map_err(connect_error)?;
        let dial = dial::unix(&runtime, path.as_ref());
        Self::establish(&runtime, dial, options).await
    }

    /// Connects to an agent chardev over TCP
    /// (`-chardev socket,host=...,port=...,server=on`).
    ///
    /// Cancel safety: as [`connect_unix`](Self::connect_unix).
    pub async fn connect_tcp(
        addr: impl ToSocketAddrs + Send + 'static,
        options: AgentOptions,
    ) -> Result<Self, Error> {
        let runtime = R::current().map_err(connect_error)?;
        let dial = dial::tcp(&runtime, addr);
        Self::establish(&runtime, dial, options).await
    }

    /// Talks to an agent over an already-connected Unix stream.
    pub fn from_unix_stream(stream: UnixStream, options: AgentOptions) -> Result<Self, Error> {
        let runtime = R::current().map_err(connect_error)?;
        let socket = dial::adopt(&runtime, stream).map_err(connect_error)?;
        Ok(Self::over(runtime, socket, options))
    }

    async fn establish(
        runtime: &R,
        dial: impl std::future::Future<Output = io::Result<R::Socket>>,
        options: AgentOptions,
    ) -> Result<Self, Error> {
        let deadline = Instant::now().checked_add(options.connect_timeout);
        let socket = within(runtime, deadline, dial)
            .await
            .ok_or(Error::ConnectTimeout)?
            .map_err(connect_error)?;
        Ok(Self::over(runtime.clone(), socket, options))
    }

    fn over(runtime: R, socket: R::Socket, options: AgentOptions) -> Self {
        let config = AgentConfig::default()
            .max_message_size(options.max_message_size)
            .sync_method(options.sync_method)
            .first_sync_id(fresh_sync_id())
            .first_id(1);
        let mut agent = Agent::new(config);
        agent.sync();
        let shared = Shared::new(runtime, socket, AgentRouter::new(agent), None);
        // Writes the sync.
        shared.update(|_| ());
        GuestAgent {
            inner: Arc::new(Inner { shared, options }),
        }
    }

    pub(crate) fn shared(&self) -> &Shared<R, AgentRouter> {
        &self.inner.shared
    }

    /// The settings this connection was made with.
    pub fn options(&self) -> &AgentOptions {
        &self.inner.options
    }

    /// Any command by name, with `arguments` (a struct or map that
    /// serializes to a JSON object, or `&()` for none): an [`AgentCall`]
    /// to await, after setting it up.
    pub fn call<'a, A: Serialize + Sync + ?Sized>(
        &'a self,
        name: &'a str,
        arguments: &'a A,
    ) -> AgentCall<'a, R, A> {
        AgentCall::new(self, name, arguments)
    }

    /// A typed command of [`commands`], e.g.
    /// `agent.execute(&commands::GuestGetTime).await?`.
    pub fn execute<'a, C>(&'a self, command: &'a C) -> AgentCall<'a, R, C, C::Returns>
    where
        C: qmp_proto::typed::Command + Sync + ?Sized,
    {
        self.call(C::NAME, command).decode()
    }

    /// Waits until the agent answers, for at most `within`: it sends
    /// `guest-ping` (after a sync), and again after each attempt that got
    /// no answer, with attempts of 0.5 s, 1 s, then 2 s. Any answer counts,
    /// even an error (`guest-ping` disabled by the agent's allow-list).
    /// Fails with [`Error::Timeout`] if none came, or
    /// [`Error::Closed`] if the channel ended.
    pub async fn wait_until_ready(&self, within: Duration) -> Result<(), Error> {
        self.wait_until_ready_inner(within, None).await
    }

    /// [`wait_until_ready`](Self::wait_until_ready), with QEMU's word on
    /// when to try again: after an attempt with no answer, the next one
    /// waits for `VSERPORT_CHANGE` on `qmp` saying that the guest opened
    /// port `port_id` (the `virtserialport` device's id). A guest that is
    /// down costs one attempt, not one every few seconds.
    pub async fn wait_until_ready_with_events(
        &self,
        qmp: &Qmp<R>,
        port_id: &str,
        within: Duration,
    ) -> Result<(), Error> {
        self.wait_until_ready_inner(within, Some((qmp, port_id)))
            .await
    }

    async fn wait_until_ready_inner(
        &self,
        within: Duration,
        events: Option<(&Qmp<R>, &str)>,
    ) -> Result<(), Error> {
        let deadline = Instant::now() + within;
        let mut attempt = Duration::from_millis(500);
        loop {
            let cursor = events.map(|(qmp, _)| qmp.cursor());
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .call("guest-ping", &())
                .timeout(attempt.min(left))
                .await
            {
                Ok(_) | Err(Error::Qmp(_)) => return Ok(()),
                Err(Error::Timeout) => {}
                Err(e) => return Err(e),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout);
            }
            if let (Some((qmp, port_id)), Some(cursor)) = (events, cursor) {
                let port_id = port_id.to_string();
                let opened = EventFilter::name("VSERPORT_CHANGE").matching(move |event| {
                    event.data.as_ref().is_some_and(|data| {
                        data.decode::<PortChange>()
                            .is_ok_and(|change| change.open && change.id == port_id)
                    })
                });
                qmp.wait_for_event(cursor, opened, left).await?;
            }
            attempt = (attempt * 2).min(Duration::from_secs(2));
        }
    }

    /// Whether the stream is known to be in step (the last sync was
    /// answered, and no command has been given up on since).
    pub fn is_in_step(&self) -> bool {
        self.shared().read(|router| router.agent.is_in_step())
    }

    /// How many syncs the agent has answered on this connection.
    pub fn syncs_answered(&self) -> u64 {
        self.shared().read(|router| router.syncs_answered)
    }

    /// Messages dropped because they answered nothing of ours (leftovers
    /// of earlier clients, late replies to calls given up on).
    pub fn skipped_messages(&self) -> u64 {
        self.shared().read(|router| router.agent.skipped_messages())
    }

    /// Why the channel ended, if it has.
    pub fn end_reason(&self) -> Option<End> {
        self.shared().catch_up();
        self.shared()
            .read(|router| crate::engine::Conversation::end(router).cloned())
    }

    /// Closes the channel now: calls still waiting fail with
    /// [`Error::Closed`] and the socket is shut down before this returns.
    pub fn close(&self) {
        self.shared().close();
    }
}

/// `VSERPORT_CHANGE`'s data.
#[derive(serde::Deserialize)]
struct PortChange {
    id: String,
    open: bool,
}

fn connect_error(e: io::Error) -> Error {
    Error::Connect(Arc::new(e))
}

/// A sync number unlikely to be another client's: the clock, the process
/// and a counter, below 2^53.
fn fresh_sync_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mixed = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed % (1 << 53)).max(1)
}
