//! Dialing QMP sockets without blocking an executor: non-blocking
//! `connect` registered with the runtime; what can only block (a name
//! lookup, a Unix listener whose backlog is full) on a short-lived thread
//! of its own.

use crate::answer::answer;
use crate::runtime::{Direction, Moved, Runtime, Socket};
use qmp_proto::router::Waiter;
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use std::future::{poll_fn, Future};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

const FLAGS: SocketFlags = SocketFlags::NONBLOCK.union(SocketFlags::CLOEXEC);

/// Connects to the Unix socket at `path`. A Unix socket connects at once
/// unless its listener's backlog is full (or the path is too long for a
/// socket address): then a thread connects the usual, blocking way.
pub(crate) async fn unix<R: Runtime>(runtime: &R, path: &Path) -> io::Result<R::Socket> {
    let at_once = SocketAddrUnix::new(path).and_then(|address| {
        let socket =
            rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, FLAGS, None)?;
        rustix::net::connect(&socket, &address).map(|()| socket)
    });
    let socket = match at_once {
        Ok(socket) => socket,
        Err(Errno::AGAIN | Errno::NAMETOOLONG) => {
            let path = path.to_owned();
            let stream = on_a_thread(move || UnixStream::connect(path)).await?;
            stream.set_nonblocking(true)?;
            OwnedFd::from(stream)
        }
        Err(e) => return Err(e.into()),
    };
    runtime.register(socket)
}

/// How long to wait after the first attempt that found nothing to
/// connect to, and at most between two attempts.
const FIRST_RETRY: Duration = Duration::from_millis(5);
const LONGEST_RETRY: Duration = Duration::from_millis(100);

/// Dials with `dial` again while it finds nothing to connect to (no
/// socket file yet, or nobody accepting: the server is still starting),
/// after a short pause that doubles each time. The caller's deadline
/// bounds it.
pub(crate) async fn until_ready<R: Runtime, F: Future<Output = io::Result<R::Socket>>>(
    runtime: &R,
    mut dial: impl FnMut() -> F,
) -> io::Result<R::Socket> {
    let mut pause = FIRST_RETRY;
    loop {
        match dial().await {
            Err(e) if not_ready(&e) => {
                runtime.sleep_until(Instant::now() + pause).await;
                pause = (pause * 2).min(LONGEST_RETRY);
            }
            done => return done,
        }
    }
}

/// Whether a failed dial means the server is not there yet.
fn not_ready(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

/// Whether `listener` is a Unix socket (else TCP).
pub(crate) fn is_unix(listener: BorrowedFd<'_>) -> io::Result<bool> {
    let family = rustix::net::getsockname(listener)?.address_family();
    Ok(family == AddressFamily::UNIX)
}

/// Waits for one connection on `listener` (a server that dials us, as
/// QEMU does with `-chardev socket,server=off`) and takes it. The listener
/// is put in non-blocking mode.
pub(crate) async fn accept<R: Runtime>(
    runtime: &R,
    listener: BorrowedFd<'_>,
) -> io::Result<R::Socket> {
    rustix::io::ioctl_fionbio(listener, true)?;
    let unix = is_unix(listener)?;
    let watched = runtime.register(rustix::io::dup(listener)?)?;
    let mut accepted = None;
    poll_fn(|cx| {
        watched.poll_io(cx, Direction::Read, &mut |fd| {
            accepted = Some(rustix::net::accept_with(fd, FLAGS)?);
            Ok(Moved {
                bytes: 0,
                exhausted: false,
            })
        })
    })
    .await?;
    drop(watched);
    let stream = accepted.ok_or_else(|| io::Error::other("accept gave nothing"))?;
    if !unix {
        rustix::net::sockopt::set_tcp_nodelay(&stream, true)?;
    }
    runtime.register(stream)
}

/// Takes over a connected Unix stream.
pub(crate) fn adopt<R: Runtime>(runtime: &R, stream: UnixStream) -> io::Result<R::Socket> {
    stream.set_nonblocking(true)?;
    runtime.register(OwnedFd::from(stream))
}

/// Connects over TCP to the first address of `addr` that answers, with
/// Nagle's algorithm off. The name lookup runs on a thread of its own.
pub(crate) async fn tcp<R: Runtime>(
    runtime: &R,
    addr: impl ToSocketAddrs + Send + 'static,
) -> io::Result<R::Socket> {
    tcp_any(runtime, &resolve(addr).await?).await
}

/// The addresses `addr` names, looked up on a thread of its own.
pub(crate) async fn resolve(
    addr: impl ToSocketAddrs + Send + 'static,
) -> io::Result<Vec<SocketAddr>> {
    on_a_thread(move || addr.to_socket_addrs().map(Iterator::collect)).await
}

/// Connects over TCP to the first of `candidates` that answers.
pub(crate) async fn tcp_any<R: Runtime>(
    runtime: &R,
    candidates: &[SocketAddr],
) -> io::Result<R::Socket> {
    let mut last = None;
    for &candidate in candidates {
        match tcp_to(runtime, candidate).await {
            Ok(socket) => return Ok(socket),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        )
    }))
}

async fn tcp_to<R: Runtime>(runtime: &R, address: SocketAddr) -> io::Result<R::Socket> {
    let family = match address {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let fd = rustix::net::socket_with(family, SocketType::STREAM, FLAGS, None)?;
    rustix::net::sockopt::set_tcp_nodelay(&fd, true)?;
    let in_progress = match rustix::net::connect(&fd, &address) {
        Ok(()) => false,
        Err(Errno::INPROGRESS | Errno::AGAIN) => true,
        Err(e) => return Err(e.into()),
    };
    let socket = runtime.register(fd)?;
    if in_progress {
        // Writable once connected, or failed: the socket's error says.
        poll_fn(|cx| {
            socket.poll_io(cx, Direction::Write, &mut |fd| {
                rustix::net::sockopt::socket_error(fd)??;
                match rustix::net::getpeername(fd) {
                    Ok(_) => Ok(Moved {
                        bytes: 0,
                        exhausted: false,
                    }),
                    Err(Errno::NOTCONN) => Err(io::ErrorKind::WouldBlock.into()),
                    Err(e) => Err(e.into()),
                }
            })
        })
        .await?;
    }
    Ok(socket)
}

/// Runs `work`, which blocks, on a short-lived thread, and waits for it
/// without blocking.
async fn on_a_thread<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let (done, outcome) = answer();
    std::thread::Builder::new()
        .name("qmp-dial".into())
        .spawn(move || done.deliver(work()))?;
    poll_fn(|cx| outcome.poll_take(cx))
        .await
        .unwrap_or_else(|_| Err(io::Error::other("the dialing thread failed")))
}
