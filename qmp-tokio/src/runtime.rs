//! [`Tokio`]: the client's [`Runtime`] on tokio.
//!
//! The socket is registered with tokio's reactor for *reading only*.
//! Commands are written straight to it with non-blocking writes, so room
//! to write is almost never waited for; registered for it, the socket
//! would wake the reactor every time QEMU read a command (an
//! edge-triggered `EPOLLOUT` as space came free in the send buffer). When
//! a write does find the socket full, a duplicate of the descriptor is
//! registered for writability until that write goes through.

use qmp_client::runtime::{Direction, Moved, Runtime, Socket};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use std::time::Instant;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::runtime::Handle;

/// The tokio runtime a connection was made on (a [`Handle`] to it).
#[derive(Debug, Clone)]
pub struct Tokio(Handle);

impl Runtime for Tokio {
    type Socket = TokioSocket;
    type Sleep = tokio::time::Sleep;

    fn current() -> io::Result<Self> {
        Handle::try_current().map(Tokio).map_err(io::Error::other)
    }

    fn register(&self, socket: OwnedFd) -> io::Result<TokioSocket> {
        let _in_runtime = self.0.enter();
        Ok(TokioSocket {
            io: register(socket, Interest::READABLE)?,
            writable: Mutex::new(None),
            runtime: self.0.clone(),
        })
    }

    fn sleep_until(&self, deadline: Instant) -> tokio::time::Sleep {
        let _in_runtime = self.0.enter();
        tokio::time::sleep_until(deadline.into())
    }
}

/// A socket registered with tokio's reactor, for reading.
#[derive(Debug)]
pub struct TokioSocket {
    io: AsyncFd<OwnedFd>,
    /// A duplicate registered for writability, while a write waits.
    writable: Mutex<Option<AsyncFd<OwnedFd>>>,
    runtime: Handle,
}

impl TokioSocket {
    fn writable(&self) -> MutexGuard<'_, Option<AsyncFd<OwnedFd>>> {
        self.writable.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Socket for TokioSocket {
    fn fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }

    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        io: &mut dyn FnMut(BorrowedFd<'_>) -> io::Result<Moved>,
    ) -> Poll<io::Result<usize>> {
        if direction == Direction::Read {
            return try_io(&self.io, cx, direction, io);
        }
        let mut writable = self.writable();
        if writable.is_none() {
            match io(self.fd()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done.map(|moved| moved.bytes)),
            }
            let _in_runtime = self.runtime.enter();
            let duplicate = self.fd().try_clone_to_owned()?;
            *writable = Some(register(duplicate, Interest::WRITABLE)?);
        }
        let Some(duplicate) = &*writable else {
            return Poll::Pending;
        };
        let written = ready!(try_io(duplicate, cx, direction, io));
        *writable = None;
        Poll::Ready(written)
    }
}

/// Runs `io` once `fd` is ready in `direction`, until it does not find it
/// unready after all; readiness is cleared when `io` says it exhausted the
/// socket, on the guard it ran under (so an event since is not lost).
fn try_io(
    fd: &AsyncFd<OwnedFd>,
    cx: &mut Context<'_>,
    direction: Direction,
    io: &mut dyn FnMut(BorrowedFd<'_>) -> io::Result<Moved>,
) -> Poll<io::Result<usize>> {
    loop {
        let mut ready = match direction {
            Direction::Read => ready!(fd.poll_read_ready(cx))?,
            Direction::Write => ready!(fd.poll_write_ready(cx))?,
        };
        match ready.try_io(|fd| io(fd.get_ref().as_fd())) {
            Ok(Ok(moved)) => {
                if moved.exhausted {
                    ready.clear_ready();
                }
                return Poll::Ready(Ok(moved.bytes));
            }
            Ok(Err(e)) => return Poll::Ready(Err(e)),
            Err(_would_block) => {}
        }
    }
}

/// Registers `fd` with the reactor for `interest` only.
///
/// `AsyncFd::with_interest` is deprecated since tokio 1.53 because a safe
/// function cannot know that an arbitrary `AsRawFd` keeps returning the
/// same open descriptor (its replacement is `unsafe`, which this crate
/// forbids). An `OwnedFd` owns its descriptor and always returns it.
#[allow(deprecated)]
fn register(fd: OwnedFd, interest: Interest) -> io::Result<AsyncFd<OwnedFd>> {
    AsyncFd::with_interest(fd, interest)
}
