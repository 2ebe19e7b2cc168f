//! Connection set-up that deployments need, on both runtimes, against
//! real QEMU: connecting while QEMU is still starting (retry until ready),
//! and QEMU dialing a socket of ours (accept).

use qmp_client::{ConnectOptions, Error};
use qmp_tests::qemu::QemuProcess;
use qmp_tests::runtime::poll_once;
use std::future::IntoFuture;
use std::os::unix::net::UnixListener;
use std::time::Duration;

/// Far more than any case needs: reaching it means something hung.
const HANG: Duration = Duration::from_secs(30);

qmp_tests::on_both_runtimes! {
    #[test]
    fn without_retry_a_socket_not_there_yet_fails_at_once() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("qmp.sock");
        rt::block_on(async {
            let refused = qmp::Qmp::connect_unix(&path, ConnectOptions::default()).await;
            assert!(matches!(&refused, Err(e) if e.is_socket_not_available()), "{refused:?}");
        });
    }

    #[test]
    fn retrying_connects_to_a_qemu_started_after_the_first_attempt_failed() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("qmp.sock");
        rt::block_on(rt::timeout(HANG, async {
            let options = ConnectOptions::default()
                .retry_until_ready(true)
                .connect_timeout(Duration::from_secs(20));
            let mut connecting = Box::pin(qmp::Qmp::connect_unix(path.clone(), options).into_future());
            // The first poll makes the first attempt: no socket file yet.
            assert!(!poll_once(connecting.as_mut()).await, "connected to nothing?");
            assert!(!path.exists());
            let Some(qemu) = QemuProcess::system_in(dir, &[]) else { return };
            assert_eq!(qemu.socket(), path);
            let qmp = connecting.await.expect("connected once QEMU listened");
            let status = qmp.execute(&qmp::typed::commands::QueryStatus).await.expect("query-status");
            assert!(status.running);
        })).expect("hung");
    }

    #[test]
    fn retrying_still_ends_at_the_connect_timeout() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("qmp.sock");
        rt::block_on(rt::timeout(HANG, async {
            let options = ConnectOptions::default()
                .retry_until_ready(true)
                .connect_timeout(Duration::from_millis(300));
            let started = std::time::Instant::now();
            let late = qmp::Qmp::connect_unix(&path, options).await;
            assert!(matches!(late, Err(Error::ConnectTimeout)), "{late:?}");
            assert!(started.elapsed() >= Duration::from_millis(300));
        })).expect("hung");
    }

    #[test]
    fn accepting_a_qemu_that_dials_our_socket() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ours = dir.path().join("dial-me.sock");
        let listener = UnixListener::bind(&ours).expect("bind");
        let chardev = format!("socket,id=mon1,path={},server=off", ours.display());
        // QEMU connects while it starts, before it daemonizes: the
        // connection waits in the listener's backlog.
        let Some(_qemu) = QemuProcess::system_in(dir, &["-chardev", &chardev, "-mon", "chardev=mon1,mode=control"]) else { return };
        rt::block_on(rt::timeout(HANG, async {
            let qmp = qmp::Qmp::accept(&listener, ConnectOptions::default()).await.expect("accept");
            assert!(qmp.greeting().capabilities.iter().any(|c| c.as_str() == "oob"));
            let status = qmp.execute(&qmp::typed::commands::QueryStatus).await.expect("query-status");
            assert!(status.running);
        })).expect("hung");
    }

    #[test]
    fn accept_gives_up_at_the_connect_timeout() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let listener = UnixListener::bind(dir.path().join("nobody.sock")).expect("bind");
        rt::block_on(rt::timeout(HANG, async {
            let options = ConnectOptions::default().connect_timeout(Duration::from_millis(200));
            let nobody = qmp::Qmp::accept(&listener, options).await;
            assert!(matches!(nobody, Err(Error::ConnectTimeout)), "{nobody:?}");
        })).expect("hung");
    }

    #[test]
    fn accepting_over_tcp() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let chardev = format!("socket,id=mon1,host=127.0.0.1,port={port},server=off");
        let Some(_qemu) = QemuProcess::system(&["-chardev", &chardev, "-mon", "chardev=mon1,mode=control"]) else { return };
        rt::block_on(rt::timeout(HANG, async {
            let qmp = qmp::Qmp::accept(&listener, ConnectOptions::default()).await.expect("accept");
            qmp.execute(&qmp::typed::commands::QueryStatus).await.expect("query-status");
        })).expect("hung");
    }
}
