//! Sending file descriptors with bytes over a Unix socket (SCM_RIGHTS), as
//! QEMU's `getfd` and `add-fd` commands need.
//!
//! It needs no runtime (the socket is non-blocking; the engine waits for
//! room through the [`Runtime`](crate::Runtime)), so it is public for
//! programs that drive `qmp_proto` over their own event loop too. The
//! system call is rustix's, so there is no unsafe code here.
//!
//! ```
//! use std::io::Read;
//! use std::os::fd::OwnedFd;
//! use std::os::unix::net::UnixStream;
//!
//! let (ours, mut theirs) = UnixStream::pair()?;
//! let file = OwnedFd::from(std::fs::File::open("/dev/null")?);
//! let sent = qmp_client::fd::send_with_fds(&ours, b"{\"execute\": \"getfd\"}", &[file])?;
//! assert_eq!(sent, 20);
//! let mut bytes = [0; 20];
//! theirs.read_exact(&mut bytes)?;
//! # Ok::<(), std::io::Error>(())
//! ```
use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};

/// One `sendmsg` of `bytes` on `socket` with `fds` as SCM_RIGHTS ancillary
/// data. Returns how many bytes were sent: the descriptors go with the
/// first of them, and the caller writes the rest as usual. On a
/// non-blocking socket that is full, the error is `WouldBlock`: try again
/// when it is writable. `SIGPIPE` is never raised; a peer that has gone
/// gives `BrokenPipe`.
///
/// The descriptors stay open on our side: the receiver gets duplicates.
pub fn send_with_fds(socket: impl AsFd, bytes: &[u8], fds: &[OwnedFd]) -> io::Result<usize> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags};
    use std::io::{IoSliceMut, Read, Seek, Write};
    use std::os::unix::net::UnixStream;

    /// Receives up to `buf.len()` bytes and every descriptor sent with them.
    fn receive(socket: &UnixStream, buf: &mut [u8]) -> (usize, Vec<OwnedFd>) {
        let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(8))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut slices = [IoSliceMut::new(buf)];
        let received =
            recvmsg(socket, &mut slices, &mut control, RecvFlags::CMSG_CLOEXEC).expect("recvmsg");
        assert!(!received.flags.contains(ReturnFlags::CTRUNC));
        let mut fds = Vec::new();
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = message {
                fds.extend(rights);
            }
        }
        (received.bytes, fds)
    }

    #[test]
    fn the_peer_gets_the_bytes_and_working_duplicates_of_the_descriptors() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut file = tempfile();
        file.write_all(b"shared").unwrap();
        let files = vec![
            OwnedFd::from(file.try_clone().unwrap()),
            OwnedFd::from(file),
        ];
        let sent = send_with_fds(&ours, b"hello", &files).unwrap();
        assert_eq!(sent, 5);

        let mut buf = [0; 16];
        let (n, fds) = receive(&theirs, &mut buf);
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(fds.len(), 2);
        // A duplicate shares the open file: same contents.
        let mut received = std::fs::File::from(fds.into_iter().next().unwrap());
        received.rewind().unwrap();
        let mut contents = String::new();
        received.read_to_string(&mut contents).unwrap();
        assert_eq!(contents, "shared");
    }

    #[test]
    fn a_full_nonblocking_socket_says_would_block() {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let fds = vec![OwnedFd::from(tempfile())];
        let chunk = vec![0u8; 64 * 1024];
        let error = loop {
            match send_with_fds(&ours, &chunk, &fds) {
                Ok(n) => assert!(n > 0),
                Err(e) => break e,
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_gone_peer_is_a_broken_pipe_not_a_signal() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(theirs);
        let fds = vec![OwnedFd::from(tempfile())];
        let error = send_with_fds(&ours, b"x", &fds).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }

    fn tempfile() -> std::fs::File {
        tempfile::tempfile().expect("a temporary file")
    }
}
