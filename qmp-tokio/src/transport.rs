//! The socket, and the driver loop that moves bytes between it and the
//! router: it runs first in the caller's `connect` future (the handshake),
//! then in the connection's one task until the end.
//!
//! The socket is registered with the runtime for *reading only*. Commands
//! are written straight to it with non-blocking writes (see
//! [`State::flush`](crate::shared::State::flush)), so readiness to write is
//! almost never waited for; but registered for it, the socket would wake
//! the runtime's epoll for nothing every time the peer read a command (an
//! edge-triggered `EPOLLOUT`: space came free in the send buffer), one
//! thread wake-up per command. When a write does find the socket full, the
//! driver registers a duplicate of the descriptor for writability, until
//! it has written what it holds.

use crate::shared::Shared;
use bytes::{Buf, Bytes};
use qmp_proto::{End, Error};
use std::future::{poll_fn, Future};
use std::io;
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::ToSocketAddrs;

/// A connected, non-blocking stream socket.
pub(crate) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Unix(s) => s.as_fd(),
            Stream::Tcp(s) => s.as_fd(),
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

/// The connection's socket, registered with the runtime for reading. The
/// driver reads it; whoever holds the state lock may write it.
pub(crate) struct Socket {
    io: AsyncFd<Stream>,
}

pub(crate) async fn dial_unix(path: &Path) -> Result<Socket, Error> {
    let stream = match connect_now(path) {
        Some(connected) => connected,
        None => tokio::net::UnixStream::connect(path)
            .await
            .and_then(tokio::net::UnixStream::into_std),
    };
    stream
        .and_then(|s| Socket::new(Stream::Unix(s)))
        .map_err(|e| Error::Connect(Arc::new(e)))
}

/// Connects a non-blocking Unix socket to `path` without waiting, which a
/// Unix socket nearly always does at once; `UnixStream::connect` would
/// wait for the runtime to report it writable, one more thread hop. `None`
/// when it cannot answer now (the listener's backlog is full, or the path
/// is not a plain socket address): the caller dials the usual way, which
/// also gives the usual errors.
fn connect_now(path: &Path) -> Option<io::Result<UnixStream>> {
    use rustix::io::Errno;
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let address = SocketAddrUnix::new(path).ok()?;
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let socket =
        match rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None) {
            Ok(socket) => socket,
            Err(e) => return Some(Err(e.into())),
        };
    match rustix::net::connect(&socket, &address) {
        Ok(()) => Some(Ok(socket.into())),
        Err(Errno::AGAIN | Errno::INPROGRESS) => None,
        Err(e) => Some(Err(e.into())),
    }
}

pub(crate) async fn dial_tcp(addr: impl ToSocketAddrs) -> Result<Socket, Error> {
    let connect = async {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        // Non-blocking still; registered again below, for reading only.
        Socket::new(Stream::Tcp(stream.into_std()?))
    };
    connect.await.map_err(|e| Error::Connect(Arc::new(e)))
}

/// An already-connected Unix stream.
pub(crate) fn adopt_unix(stream: UnixStream) -> Result<Socket, Error> {
    stream
        .set_nonblocking(true)
        .and_then(|()| Socket::new(Stream::Unix(stream)))
        .map_err(|e| Error::Connect(Arc::new(e)))
}

impl Socket {
    /// Registers `stream` (non-blocking) with the runtime, for reading.
    fn new(stream: Stream) -> io::Result<Socket> {
        Ok(Socket {
            io: register(stream, Interest::READABLE)?,
        })
    }

    pub(crate) fn can_pass_fds(&self) -> bool {
        matches!(self.io.get_ref(), Stream::Unix(_))
    }

    /// Writes as much of `bytes` as the socket takes now, without waiting.
    pub(crate) fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        use rustix::net::{send, SendFlags};
        Ok(send(self.io.get_ref(), bytes, SendFlags::NOSIGNAL)?)
    }

    /// Writes as much of `out` as the socket takes now, without waiting;
    /// its descriptors ride along with its first byte. `Ok(true)` once all
    /// of it is written, `Ok(false)` when the socket is full.
    fn try_send(&self, out: &mut Outgoing) -> io::Result<bool> {
        while !out.bytes.is_empty() {
            let sent = if out.fds.is_empty() {
                self.try_write(&out.bytes)
            } else if self.can_pass_fds() {
                qmp_fd::send_with_fds(self.io.get_ref(), &out.bytes, &out.fds)
            } else {
                Err(io::Error::other("fd passing needs a Unix socket"))
            };
            match sent {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    // The descriptors went with the first byte.
                    out.fds.clear();
                    out.bytes.advance(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

/// Registers `io` with the runtime for `interest` only.
///
/// `AsyncFd::with_interest` is deprecated since tokio 1.53 because a safe
/// function cannot know that an arbitrary `AsRawFd` keeps returning the
/// same open descriptor (its replacement is `unsafe`, which this crate
/// forbids). Both types given here own their descriptor and always return
/// it: a socket, or an `OwnedFd`.
#[allow(deprecated)]
fn register<T: AsRawFd>(io: T, interest: Interest) -> io::Result<AsyncFd<T>> {
    AsyncFd::with_interest(io, interest)
}

/// Bytes taken from the router (and the descriptors to pass with their
/// first byte) that the driver has not finished writing.
struct Outgoing {
    bytes: Bytes,
    fds: Vec<OwnedFd>,
}

/// The driver loop's state, kept between its steps (and from the
/// handshake to the task).
pub(crate) struct Driver {
    socket: Arc<Socket>,
    buf: Vec<u8>,
    /// While this holds bytes, nobody else writes (see
    /// [`Shared::take_transmit`]).
    outgoing: Option<Outgoing>,
    /// A duplicate of the socket registered for writability, while the
    /// socket is full and `outgoing` waits.
    writable: Option<AsyncFd<OwnedFd>>,
}

/// What the driver does next.
enum Step {
    /// Bytes were read into the buffer (none at end of file), or reading
    /// failed.
    Read(io::Result<usize>),
    /// Someone asked for a write, or the socket has room again.
    Write,
}

/// How much one read takes at most.
const READ_SIZE: usize = 64 * 1024;

impl Driver {
    pub(crate) fn new(socket: Socket) -> Self {
        Driver {
            socket: Arc::new(socket),
            // Not zeroed: reads go into the spare capacity.
            buf: Vec::with_capacity(READ_SIZE),
            outgoing: None,
            writable: None,
        }
    }

    /// The socket, for [`State::flush`](crate::shared::State::flush).
    pub(crate) fn socket(&self) -> Arc<Socket> {
        self.socket.clone()
    }

    /// Reads the greeting and lets the router negotiate, writing what it
    /// sends. `Ok` once the connection is ready, `Err` with the reason if
    /// it ended first.
    ///
    /// Cancel safety: every step keeps its state in `self`, so
    /// [`serve`](Driver::serve) takes over where this stopped; dropping
    /// `self` as well closes the half-made connection.
    pub(crate) async fn negotiate(&mut self, shared: &Shared) -> Result<(), End> {
        match self.drive(shared, true).await {
            Some(end) => Err(end),
            None => Ok(()),
        }
    }

    /// Moves bytes until the connection ends and what it still had to
    /// send is written; then the socket closes.
    pub(crate) async fn serve(mut self, shared: Arc<Shared>) {
        self.drive(&shared, false).await;
    }

    /// The loop. Reads feed the router, which writes what it has to send
    /// itself ([`State::flush`](crate::shared::State::flush)); the loop
    /// writes only what that leaves over, when woken for it. With
    /// `negotiating` it returns `None` once the connection is ready;
    /// otherwise, and at the end, `Some` with the reason once everything
    /// is written.
    async fn drive(&mut self, shared: &Shared, negotiating: bool) -> Option<End> {
        let mut woken = pin!(shared.wake_driver.notified());
        let mut reading = true;
        loop {
            let step = poll_fn(|cx| self.poll_step(cx, woken.as_mut(), reading)).await;
            match step {
                Step::Read(read) => {
                    #[cfg(feature = "tracing")]
                    if let Ok(n) = read {
                        tracing::trace!(bytes = n, data = %String::from_utf8_lossy(&self.buf[..n]), "qmp received");
                    }
                    let buf = &self.buf;
                    let (ready, end) =
                        shared.with_router(|router| router.receive_read(read.map(|n| &buf[..n])));
                    if negotiating && ready && end.is_none() {
                        return None;
                    }
                    // At the end the router woke the writing side: the
                    // next step finishes up.
                    reading = end.is_none();
                }
                Step::Write => {
                    woken.set(shared.wake_driver.notified());
                    if !self.write_now(shared) {
                        return Some(shared.lock().router.end().cloned().unwrap_or(End::Local));
                    }
                }
            }
        }
    }

    fn poll_step(
        &mut self,
        cx: &mut Context<'_>,
        woken: Pin<&mut tokio::sync::futures::Notified<'_>>,
        reading: bool,
    ) -> Poll<Step> {
        if woken.poll(cx).is_ready() {
            return Poll::Ready(Step::Write);
        }
        if let Some(writable) = &self.writable {
            match writable.poll_write_ready(cx) {
                Poll::Ready(Ok(mut ready)) => {
                    // The write that follows tells whether it really is.
                    ready.clear_ready();
                    return Poll::Ready(Step::Write);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Step::Read(Err(e))),
                Poll::Pending => {}
            }
        }
        if reading {
            if let Poll::Ready(read) = self.poll_read(cx) {
                return Poll::Ready(Step::Read(read));
            }
        }
        Poll::Pending
    }

    /// Reads what the socket has into the buffer, once it has any.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            let mut ready = ready!(self.socket.io.poll_read_ready(cx))?;
            self.buf.clear();
            let room = self.buf.capacity();
            let read = ready.try_io(|io| {
                Ok(rustix::io::read(
                    io.get_ref(),
                    rustix::buffer::spare_capacity(&mut self.buf),
                )?)
            });
            match read {
                Ok(Ok(n)) => {
                    // A short read emptied the socket (as tokio's own
                    // streams assume): no need to read again to learn it.
                    if n > 0 && n < room {
                        ready.clear_ready();
                    }
                    return Poll::Ready(Ok(n));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                // Nothing after all: readiness was cleared, poll again.
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes what is left to the driver, as far as the socket takes it
    /// now. `false` once the connection has ended and all is written (or
    /// the rest dropped, or writing failed): the loop is done.
    fn write_now(&mut self, shared: &Shared) -> bool {
        loop {
            let out = match &mut self.outgoing {
                Some(out) => out,
                None => {
                    let (bytes, fds, ended) = shared.take_transmit();
                    let Some(bytes) = bytes else {
                        self.writable = None;
                        if ended {
                            shared.lock().socket = None;
                        }
                        return !ended;
                    };
                    #[cfg(feature = "tracing")]
                    tracing::trace!(bytes = bytes.len(), data = %String::from_utf8_lossy(&bytes), "qmp sent");
                    self.outgoing.insert(Outgoing { bytes, fds })
                }
            };
            let sent = self.socket.try_send(out).and_then(|all| {
                if !all && self.writable.is_none() {
                    let fd = self.socket.io.get_ref().as_fd().try_clone_to_owned()?;
                    self.writable = Some(register(fd, Interest::WRITABLE)?);
                }
                Ok(all)
            });
            match sent {
                Ok(true) => self.outgoing = None,
                // Once the connection has ended, what the socket does not
                // take at once is dropped: a peer that stopped reading
                // must not keep the socket, and this task, alive.
                Ok(false) if shared.read(|router| router.end().is_some()) => {
                    self.outgoing = None;
                    self.writable = None;
                    shared.lock().socket = None;
                    return false;
                }
                Ok(false) => return true,
                Err(e) => {
                    self.outgoing = None;
                    self.writable = None;
                    shared.with_router(|router| router.fail_transport(e.to_string()));
                    shared.lock().socket = None;
                    return false;
                }
            }
        }
    }
}
