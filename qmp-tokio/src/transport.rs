//! The socket: dialing, and the reader and writer tasks that move bytes
//! between it and the router.

use crate::shared::Shared;
use qmp_proto::Error;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{tcp, unix, TcpStream, ToSocketAddrs, UnixStream};

/// The write half of a connected socket.
pub(crate) enum Writer {
    Unix(unix::OwnedWriteHalf),
    Tcp(tcp::OwnedWriteHalf),
}

pub(crate) type Reader = Box<dyn AsyncRead + Send + Unpin>;

pub(crate) async fn dial_unix(path: &Path) -> Result<(Reader, Writer), Error> {
    let stream = match connect_now(path) {
        Some(connected) => connected.and_then(UnixStream::from_std),
        None => UnixStream::connect(path).await,
    }
    .map_err(|e| Error::Connect(Arc::new(e)))?;
    Ok(split_unix(stream))
}

/// Connects a non-blocking Unix socket to `path` without waiting, which a
/// Unix socket nearly always does at once; `UnixStream::connect` would
/// wait for the runtime to report it writable, one more thread hop. `None`
/// when it cannot answer now (the listener's backlog is full, or the path
/// is not a plain socket address): the caller dials the usual way, which
/// also gives the usual errors.
fn connect_now(path: &Path) -> Option<io::Result<std::os::unix::net::UnixStream>> {
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

pub(crate) async fn dial_tcp(addr: impl ToSocketAddrs) -> Result<(Reader, Writer), Error> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| Error::Connect(Arc::new(e)))?;
    stream
        .set_nodelay(true)
        .map_err(|e| Error::Connect(Arc::new(e)))?;
    let (read, write) = stream.into_split();
    Ok((Box::new(read), Writer::Tcp(write)))
}

pub(crate) fn split_unix(stream: UnixStream) -> (Reader, Writer) {
    let (read, write) = stream.into_split();
    (Box::new(read), Writer::Unix(write))
}

impl Writer {
    pub(crate) fn can_pass_fds(&self) -> bool {
        matches!(self, Writer::Unix(_))
    }

    /// Writes as much of `bytes` as the socket takes now, without waiting.
    pub(crate) fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Writer::Unix(w) => w.try_write(bytes),
            Writer::Tcp(w) => w.try_write(bytes),
        }
    }

    async fn writable(&self) -> io::Result<()> {
        match self {
            Writer::Unix(w) => w.writable().await,
            Writer::Tcp(w) => w.writable().await,
        }
    }

    /// Writes all of `bytes`; `fds` ride along with the first byte.
    async fn write_all_with_fds(&self, mut bytes: &[u8], fds: Vec<OwnedFd>) -> io::Result<()> {
        if !fds.is_empty() {
            let Writer::Unix(half) = self else {
                return Err(io::Error::other("fd passing needs a Unix socket"));
            };
            let stream: &UnixStream = half.as_ref();
            let sent = loop {
                stream.writable().await?;
                match stream.try_io(tokio::io::Interest::WRITABLE, || {
                    send_with_fds(stream, bytes, &fds)
                }) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    other => break other?,
                }
            };
            bytes = &bytes[sent..];
        }
        while !bytes.is_empty() {
            match self.try_write(bytes) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// One `sendmsg` of `bytes` on `socket` with `fds` as
/// SCM_RIGHTS ancillary data. Returns how many bytes were sent (the
/// descriptors go with the first of them); the caller writes the rest
/// normally. `WouldBlock` comes back as an error, for the runtime to retry
/// when the socket is writable.
pub(crate) fn send_with_fds(socket: impl AsFd, bytes: &[u8], fds: &[OwnedFd]) -> io::Result<usize> {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let borrowed: Vec<_> = fds.iter().map(AsFd::as_fd).collect();
    let mut space =
        vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(borrowed.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&borrowed)) {
        return Err(io::Error::other(
            "too many file descriptors for one message",
        ));
    }
    Ok(sendmsg(
        socket,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?)
}

/// Reads until the connection ends, feeding the router.
pub(crate) async fn read_loop(shared: Arc<Shared>, mut reader: Reader) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = reader.read(&mut buf).await;
        #[cfg(feature = "tracing")]
        if let Ok(n) = read {
            tracing::trace!(bytes = n, data = %String::from_utf8_lossy(&buf[..n]), "qmp received");
        }
        let ended = shared.with_router(|router| router.receive_read(read.map(|n| &buf[..n])));
        if ended {
            return;
        }
    }
}

/// Writes what the router has to send whenever it is woken, which
/// [`State::flush`](crate::shared::State::flush) does when it cannot write
/// it all itself. At the end it drops the write half, which shuts the
/// socket down for writing.
pub(crate) async fn write_loop(shared: Arc<Shared>, writer: Arc<Writer>) {
    loop {
        shared.wake_writer.notified().await;
        loop {
            let (bytes, fds, ended) = shared.take_transmit();
            let Some(bytes) = bytes else {
                if ended {
                    shared.lock().writer = None;
                    return;
                }
                break;
            };
            #[cfg(feature = "tracing")]
            tracing::trace!(bytes = bytes.len(), data = %String::from_utf8_lossy(&bytes), "qmp sent");
            if let Err(e) = writer.write_all_with_fds(&bytes, fds).await {
                shared.with_router(|router| router.fail_transport(e.to_string()));
                return;
            }
        }
    }
}
