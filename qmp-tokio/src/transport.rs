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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{tcp, unix, TcpStream, ToSocketAddrs, UnixStream};

/// The write half of a connected socket.
pub(crate) enum Writer {
    Unix(unix::OwnedWriteHalf),
    Tcp(tcp::OwnedWriteHalf),
}

pub(crate) type Reader = Box<dyn AsyncRead + Send + Unpin>;

pub(crate) async fn dial_unix(path: &Path) -> Result<(Reader, Writer), Error> {
    let stream = UnixStream::connect(path)
        .await
        .map_err(|e| Error::Connect(Arc::new(e)))?;
    Ok(split_unix(stream))
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

    /// Writes all of `bytes`; `fds` ride along with the first byte.
    async fn write_all_with_fds(&mut self, mut bytes: &[u8], fds: Vec<OwnedFd>) -> io::Result<()> {
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
        match self {
            Writer::Unix(w) => w.write_all(bytes).await,
            Writer::Tcp(w) => w.write_all(bytes).await,
        }
    }

    async fn shutdown(&mut self) {
        let _ = match self {
            Writer::Unix(w) => w.shutdown().await,
            Writer::Tcp(w) => w.shutdown().await,
        };
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

/// Writes whatever the router has to send, whenever it is woken.
pub(crate) async fn write_loop(shared: Arc<Shared>, mut writer: Writer) {
    loop {
        shared.wake_writer.notified().await;
        loop {
            let (bytes, fds, ended) = shared.take_transmit();
            let Some(bytes) = bytes else {
                if ended {
                    writer.shutdown().await;
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
