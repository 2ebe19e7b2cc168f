//! What the client needs from an async runtime, and nothing more.
//!
//! The engine is ordinary generic code over [`Runtime`]: it sleeps until an
//! instant and waits for a socket to be readable or writable. It spawns
//! nothing: a caller that waits for an answer reads the socket itself (see
//! the [crate docs](crate#who-reads-the-socket)), so no task, thread or
//! executor of the runtime is ever needed. `qmp-tokio` and `qmp-smol`
//! implement these two traits in a few dozen lines each.

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::task::{Context, Poll};
use std::time::Instant;

/// An async runtime: a timer and a reactor for sockets.
pub trait Runtime: Clone + Debug + Send + Sync + Sized + 'static {
    /// A socket registered with the runtime's reactor.
    type Socket: Socket;
    /// The future of [`sleep_until`](Runtime::sleep_until).
    type Sleep: Future<Output = ()> + Send + 'static;

    /// The runtime the calling code runs on. Errors (rather than panics)
    /// when there is none, e.g. tokio's outside a tokio context.
    fn current() -> io::Result<Self>;

    /// Registers a connected, non-blocking stream socket with the reactor.
    fn register(&self, socket: OwnedFd) -> io::Result<Self::Socket>;

    /// A future that completes at `deadline` (at once if it has passed).
    fn sleep_until(&self, deadline: Instant) -> Self::Sleep;
}

/// Which readiness a socket operation waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Data to read, or the end of the stream.
    Read,
    /// Room in the send buffer.
    Write,
}

/// What one non-blocking system call of [`Socket::poll_io`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// The bytes it read or wrote (0 on a read: the end of the stream).
    pub bytes: usize,
    /// It emptied the socket (a read shorter than its buffer) or filled it
    /// (a write shorter than asked): the next call in this direction had
    /// better wait for readiness than try, which would only find it
    /// unready.
    pub exhausted: bool,
}

/// A non-blocking socket registered with a reactor.
///
/// The engine does every system call itself, on [`fd`](Socket::fd); the
/// runtime only says when to try again.
pub trait Socket: Send + Sync + 'static {
    /// The descriptor, for the engine's own non-blocking system calls.
    fn fd(&self) -> BorrowedFd<'_>;

    /// Runs `io`, one non-blocking system call on the socket, until it
    /// does not fail with `WouldBlock`, waiting for `direction`'s
    /// readiness in between (and first, if the last call in this
    /// direction was [`exhausted`](Moved::exhausted)): `Ready` with the
    /// bytes moved, or `Pending` with the waker of `cx` registered for the
    /// next readiness. Only the waker of the latest call per direction
    /// need be kept.
    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        io: &mut dyn FnMut(BorrowedFd<'_>) -> io::Result<Moved>,
    ) -> Poll<io::Result<usize>>;
}
