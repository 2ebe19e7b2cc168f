//! The driver: one thread per connection that dials the socket, then reads
//! it into the router and writes what the router has to send.

use crate::shared::{Outgoing, Shared};
use async_io::Async;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use std::future::Future;
use std::io::{self, IoSlice, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

/// Starts the driver thread: it runs `dial`, reports a dial error on
/// `dial_failed`, and otherwise drives the socket until the connection ends.
pub(crate) fn spawn<T: AsFd + Send + Sync + 'static>(
    shared: Arc<Shared>,
    dial: impl Future<Output = io::Result<Async<T>>> + Send + 'static,
    dial_failed: async_channel::Sender<io::Error>,
) -> io::Result<()>
where
    for<'a> &'a T: Read + Write,
{
    std::thread::Builder::new()
        .name("qmp-smol".into())
        .spawn(move || {
            // The thread serves this one connection: its trace events group
            // under one span.
            #[cfg(feature = "tracing")]
            let _span = tracing::debug_span!("qmp").entered();
            async_io::block_on(async move {
                match dial.await {
                    Ok(socket) => {
                        drop(dial_failed);
                        let socket = Arc::new(socket);
                        shared.lock().socket = Some(socket.clone());
                        drive(&shared, &socket).await;
                        // Ours is then the last reference: the socket
                        // closes with this thread, as it always did.
                        shared.lock().socket = None;
                    }
                    Err(e) => {
                        dial_failed.try_send(e).ok();
                    }
                }
            })
        })
        .map(drop)
}

/// Reads and writes concurrently; done when either side is.
async fn drive<T: AsFd + Send + Sync + 'static>(shared: &Shared, socket: &Async<T>)
where
    for<'a> &'a T: Read + Write,
{
    future::or(write_side(shared, socket), read_side(shared, socket)).await;
}

async fn read_side<T: AsFd + Send + Sync + 'static>(shared: &Shared, mut socket: &Async<T>)
where
    for<'a> &'a T: Read + Write,
{
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = socket.read(&mut buf).await;
        #[cfg(feature = "tracing")]
        if let Ok(n) = read {
            tracing::trace!(bytes = n, data = %String::from_utf8_lossy(&buf[..n]), "qmp received");
        }
        let ended = shared.update(|state| {
            state.router.receive_read(read.map(|n| &buf[..n]));
            state.router.end().is_some()
        });
        if ended {
            return;
        }
    }
}

async fn write_side<T: AsFd + Send + Sync + 'static>(shared: &Shared, socket: &Async<T>)
where
    for<'a> &'a T: Read + Write,
{
    loop {
        let (step, woken) = shared.next_outgoing();
        match step {
            Outgoing::Send(bytes, fds) => {
                #[cfg(feature = "tracing")]
                tracing::trace!(bytes = bytes.len(), data = %String::from_utf8_lossy(&bytes), "qmp sent");
                if let Err(e) = send(socket, &bytes, fds).await {
                    shared.update(|state| state.router.fail_transport(e.to_string()));
                    return;
                }
            }
            Outgoing::Idle => woken.await,
            Outgoing::Finished => {
                // QEMU answers our half-close by closing its side.
                rustix::net::shutdown(socket, rustix::net::Shutdown::Write).ok();
                return;
            }
        }
    }
}

/// Writes all of `bytes`; `fds` go with the first byte.
async fn send<T: AsFd + Send + Sync + 'static>(
    mut socket: &Async<T>,
    mut bytes: &[u8],
    fds: Vec<OwnedFd>,
) -> io::Result<()>
where
    for<'a> &'a T: Read + Write,
{
    if !fds.is_empty() {
        let sent = socket
            .write_with(|stream| send_with_fds(stream, bytes, &fds))
            .await?;
        bytes = &bytes[sent..];
    }
    socket.write_all(bytes).await
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
