//! Closing against a peer that stopped reading: `close()` (and dropping the
//! last handle) must not wait for room in the socket. What the socket takes
//! at once is written; the rest of a command still being written is
//! dropped, the pending call fails with the local close, and the socket is
//! closed, which the peer sees without reading a byte.
//!
//! The peer here is a bare socket with `qmp_proto::Server` behind it (the
//! mock of `qmp_tests::mock` always reads, so it could never fill the
//! socket). Each case runs under tokio (`qmp-tokio`) and smol (`qmp-smol`).

use qmp_client::Error;
use qmp_proto::{End, Server, ServerConfig};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Far more than any case needs: reaching it means the client hung.
const HANG: Duration = Duration::from_secs(20);

/// A command's argument far larger than a Unix socket's buffers, so that
/// most of the command is still unwritten when the client closes.
const BLOB: usize = 4 * 1024 * 1024;

/// Greets and answers `qmp_capabilities` on `peer`, then stops reading.
fn negotiate_then_stop_reading(peer: &mut UnixStream) {
    let mut server = Server::new(ServerConfig::default());
    let greeting = server.poll_transmit().expect("a greeting");
    peer.write_all(&greeting).expect("greet");
    let mut buf = [0; 4096];
    loop {
        let n = peer.read(&mut buf).expect("read qmp_capabilities");
        assert!(n > 0, "the client left while negotiating");
        server.receive(&buf[..n]);
        while server.poll_output().is_some() {}
        if let Some(reply) = server.poll_transmit() {
            peer.write_all(&reply).expect("answer qmp_capabilities");
            return;
        }
    }
}

/// Whether the client closed its end (or shut it down for writing) within
/// `limit`, seen without reading what it wrote.
fn peer_sees_the_close(peer: &UnixStream, limit: Duration) -> bool {
    let mut fds = [PollFd::new(peer, PollFlags::RDHUP)];
    let limit = Timespec {
        tv_sec: limit.as_secs() as i64,
        tv_nsec: i64::from(limit.subsec_nanos()),
    };
    let ready = poll(&mut fds, Some(&limit)).expect("poll");
    ready == 1
        && fds[0]
            .revents()
            .intersects(PollFlags::RDHUP | PollFlags::HUP)
}

qmp_tests::on_both_runtimes! {
    /// A 4 MiB command is being written when the client closes: the call
    /// fails with the local close, and the socket closes although the peer
    /// never reads.
    #[test]
    fn close_does_not_wait_for_a_peer_that_stopped_reading() {
        let (ours, mut theirs) = UnixStream::pair().expect("socketpair");
        let peer = std::thread::spawn(move || {
            negotiate_then_stop_reading(&mut theirs);
            theirs
        });
        let options = qmp::ConnectOptions::default();
        let theirs = rt::block_on(async {
            let qmp = rt::timeout(HANG, qmp::Qmp::from_unix_stream(ours, options))
                .await
                .expect("connect hung")
                .expect("connect");
            let theirs = peer.join().expect("the peer thread");

            let caller = qmp.clone();
            let blob = "x".repeat(BLOB);
            let call = rt::spawn(async move {
                caller
                    .call("x-blob", &serde_json::json!({ "blob": blob }))
                    .await
            });
            // The command is issued once the socket is readable for the
            // peer: its first bytes have arrived.
            let mut fds = [PollFd::new(&theirs, PollFlags::IN)];
            let limit = Timespec { tv_sec: HANG.as_secs() as i64, tv_nsec: 0 };
            assert_eq!(poll(&mut fds, Some(&limit)).expect("poll"), 1, "nothing was sent");

            qmp.close();
            let result = rt::timeout(HANG, call).await.expect("the call hung");
            assert!(matches!(result, Err(Error::Closed(End::Local))), "{result:?}");
            drop(qmp);
            // Checked while the runtime still runs: shutting a runtime down
            // drops its tasks, and their sockets with them.
            assert!(
                peer_sees_the_close(&theirs, HANG),
                "the client kept the socket open for a peer that does not read"
            );
            theirs
        });
        // What arrived is a prefix of the command: the rest was dropped.
        let mut received = Vec::new();
        (&theirs).read_to_end(&mut received).expect("read what was sent");
        assert!(received.len() < BLOB, "all {} bytes were written", received.len());
        assert!(received.starts_with(b"{\"execute\": \"x-blob\""), "{:?}", &received[..40.min(received.len())]);
    }
}
