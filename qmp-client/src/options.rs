//! Settings of a connection: how it connects and what it keeps.

use crate::record::TranscriptSink;
use qmp_proto::{ClientConfig, RouterConfig};
use std::time::Duration;

/// How a connection connects and what it keeps. The same for every runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// The protocol settings: OOB wanted or not, in-flight window, queue
    /// bound, maximum message size.
    pub client: ClientConfig,
    /// The event history kept for cursor waits.
    pub router: RouterConfig,
    /// One deadline for dialing, reading the greeting and negotiating.
    /// Default: 10 s.
    pub connect_timeout: Duration,
    /// A deadline for every command, unless the call gives its own.
    /// Default: none.
    pub call_timeout: Option<Duration>,
    /// How many events a subscriber may have unread before it lags, unless
    /// its own [`SubscribeOptions::capacity`](crate::SubscribeOptions::capacity)
    /// says otherwise. Default: 256.
    pub subscriber_capacity: usize,
    /// Whether connecting tries again, within
    /// [`connect_timeout`](Self::connect_timeout), while there is nothing
    /// to connect to yet: the socket file does not exist, or nobody
    /// accepts (QEMU was just started and is still setting up). Pauses of
    /// 5 ms, doubling up to 100 ms, separate the attempts. A monitor that
    /// accepts but is held by another client is a different case: the
    /// connection is made and the greeting waits, which the connect
    /// timeout bounds with or without this. Default: off (such a socket
    /// fails at once with [`Error::Connect`](crate::Error::Connect)).
    pub retry_until_ready: bool,
    /// Whether every call checks its arguments against the connected
    /// QEMU's schema before sending, as
    /// [`Call::check_arguments`](crate::Call::check_arguments) does (a
    /// call can opt out with
    /// [`skip_argument_check`](crate::Call::skip_argument_check)). The
    /// schema is fetched once, by the first call that needs it. Default:
    /// off.
    pub check_arguments: bool,
    /// Where to write a transcript of the connection: every message in
    /// and out, from the greeting on, with its time (see
    /// [`TranscriptSink`]). For reproducing a session later with
    /// `qmp-mock`'s replay. Default: none.
    pub record: Option<TranscriptSink>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            client: ClientConfig::default(),
            router: RouterConfig::default(),
            connect_timeout: Duration::from_secs(10),
            call_timeout: None,
            subscriber_capacity: 256,
            retry_until_ready: false,
            check_arguments: false,
            record: None,
        }
    }
}

impl ConnectOptions {
    /// Sets [`client`](Self::client).
    pub fn client(mut self, client: ClientConfig) -> Self {
        self.client = client;
        self
    }

    /// Enables out-of-band execution when the server offers it.
    pub fn want_oob(mut self, want: bool) -> Self {
        self.client.want_oob = want;
        self
    }

    /// Sets the event history length.
    pub fn history(mut self, events: usize) -> Self {
        self.router.history = events;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`call_timeout`](Self::call_timeout).
    pub fn call_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Sets [`subscriber_capacity`](Self::subscriber_capacity) (at least 1).
    pub fn subscriber_capacity(mut self, events: usize) -> Self {
        self.subscriber_capacity = events.max(1);
        self
    }

    /// Sets [`retry_until_ready`](Self::retry_until_ready).
    pub fn retry_until_ready(mut self, retry: bool) -> Self {
        self.retry_until_ready = retry;
        self
    }

    /// Sets [`check_arguments`](Self::check_arguments).
    pub fn check_arguments(mut self, check: bool) -> Self {
        self.check_arguments = check;
        self
    }

    /// Records the connection's transcript into `sink` (see
    /// [`record`](Self::record)).
    pub fn record(mut self, sink: TranscriptSink) -> Self {
        self.record = Some(sink);
        self
    }
}
