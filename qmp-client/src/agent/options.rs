//! [`AgentOptions`]: how a guest agent connection connects and waits.

use qmp_proto::agent::SyncMethod;
use qmp_proto::DEFAULT_MAX_MESSAGE_SIZE;
use std::time::Duration;

/// How a [`GuestAgent`](super::GuestAgent) connects and how long its calls
/// wait. The same for every runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentOptions {
    /// A deadline for dialing. Default: 10 s.
    pub connect_timeout: Duration,
    /// A deadline for every call, unless the call gives its own: the sync
    /// before it, its turn behind the calls before it, and its reply.
    /// Default: 10 s.
    pub call_timeout: Duration,
    /// How long a [no-reply](super::AgentCall::no_reply) call waits for an
    /// error before it counts as accepted, unless the call gives its own.
    /// Default: 2 s.
    pub no_reply_wait: Duration,
    /// How syncs are made. Default: delimited.
    pub sync_method: SyncMethod,
    /// The largest message accepted. Default: 16 MiB.
    pub max_message_size: usize,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            connect_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(10),
            no_reply_wait: Duration::from_secs(2),
            sync_method: SyncMethod::Delimited,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

impl AgentOptions {
    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`call_timeout`](Self::call_timeout).
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Sets [`no_reply_wait`](Self::no_reply_wait).
    pub fn no_reply_wait(mut self, wait: Duration) -> Self {
        self.no_reply_wait = wait;
        self
    }

    /// Sets [`sync_method`](Self::sync_method).
    pub fn sync_method(mut self, method: SyncMethod) -> Self {
        self.sync_method = method;
        self
    }

    /// Sets [`max_message_size`](Self::max_message_size).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }
}
