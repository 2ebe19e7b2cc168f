//! [`AsyncIo`]: the client's [`Runtime`] on async-io, the reactor and
//! timers of smol (and of any executor that runs them).

use async_io::{Async, Timer};
use qmp_client::runtime::{Direction, Runtime, Socket};
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
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
        Async::new_nonblocking(socket).map(AsyncIoSocket)
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        Sleep(Timer::at(deadline))
    }
}

/// A socket registered with async-io's reactor.
#[derive(Debug)]
pub struct AsyncIoSocket(Async<OwnedFd>);

impl Socket for AsyncIoSocket {
    fn fd(&self) -> BorrowedFd<'_> {
        self.0.get_ref().as_fd()
    }

    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        io: &mut dyn FnMut(BorrowedFd<'_>) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            match io(self.fd()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done),
            }
            match direction {
                Direction::Read => ready!(self.0.poll_readable(cx))?,
                Direction::Write => ready!(self.0.poll_writable(cx))?,
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
