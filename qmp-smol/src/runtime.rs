//! [`AsyncIo`]: the client's [`Runtime`] on async-io, the reactor and
//! timers of smol (and of any executor that runs them).

use async_io::{Async, Timer};
use qmp_client::runtime::{Direction, Moved, Runtime, Socket};
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{ready, Context, Poll};
use std::time::Instant;

/// async-io's global reactor and timers: nothing to create, and usable
/// from any executor (or none: `async_io::block_on`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncIo;

impl Runtime for AsyncIo {
    type Socket = AsyncIoSocket;
    type Sleep = Sleep;

    fn current() -> io::Result<Self> {
        Ok(AsyncIo)
    }

    fn register(&self, socket: OwnedFd) -> io::Result<AsyncIoSocket> {
        // Non-blocking already.
        Ok(AsyncIoSocket {
            io: Async::new_nonblocking(socket)?,
            exhausted: [AtomicBool::new(false), AtomicBool::new(false)],
        })
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        Sleep(Timer::at(deadline))
    }
}

/// A socket registered with async-io's reactor.
#[derive(Debug)]
pub struct AsyncIoSocket {
    io: Async<OwnedFd>,
    /// Per direction (read, write): the last call exhausted the socket, so
    /// the next one waits for readiness before it tries.
    exhausted: [AtomicBool; 2],
}

impl Socket for AsyncIoSocket {
    fn fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }

    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        io: &mut dyn FnMut(BorrowedFd<'_>) -> io::Result<Moved>,
    ) -> Poll<io::Result<usize>> {
        let exhausted = &self.exhausted[direction as usize];
        loop {
            if !exhausted.swap(false, Ordering::Relaxed) {
                match io(self.fd()) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                    Ok(moved) => {
                        exhausted.store(moved.exhausted, Ordering::Relaxed);
                        return Poll::Ready(Ok(moved.bytes));
                    }
                }
            }
            match direction {
                Direction::Read => ready!(self.io.poll_readable(cx))?,
                Direction::Write => ready!(self.io.poll_writable(cx))?,
            }
        }
    }
}

/// The future of [`AsyncIo::sleep_until`].
#[derive(Debug)]
pub struct Sleep(Timer);

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
}
