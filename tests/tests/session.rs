//! A whole session with a real QEMU (`qemu-system-x86_64 -M none`), and
//! the two ways a connect fails, on both runtimes. Skipped, with a note,
//! where QEMU is not installed.

use qmp_client::{ConnectOptions, Error, ErrorClass, EventFilter};
use qmp_tests::qemu::QemuProcess;
use std::future::{poll_fn, Future, IntoFuture};
use std::task::Poll;
use std::time::Duration;

qmp_tests::on_both_runtimes! {
    #[derive(serde::Deserialize)]
    struct Status {
        status: String,
        running: bool,
    }

    #[test]
    fn session_against_real_qemu() {
        // Daemonized QEMU from the workspace's test harness: ready when started,
        // killed when dropped; `None` (skip) only where QEMU is not installed.
        let Some(qemu) = QemuProcess::system(&[]) else {
            return;
        };
        rt::block_on(async {
            let options = ConnectOptions::default().connect_timeout(Duration::from_secs(10));
            let qmp = qmp::Qmp::connect_unix(qemu.socket(), options)
                .await
                .expect("connect and negotiate");
            assert!(qmp.greeting().version.qemu().unwrap().major >= 2);
            assert!(qmp.end_reason().is_none());

            let status: Status = qmp.call("query-status", &()).decode().await.unwrap();
            assert!(status.running, "status: {}", status.status);

            // 200 commands at once from 200 tasks, over the one connection.
            let tasks: Vec<_> = (0..200)
                .map(|i| {
                    let qmp = qmp.clone();
                    rt::spawn(async move {
                        let status: Status = qmp.call("query-status", &()).decode().await?;
                        Ok::<_, Error>((i, status.running))
                    })
                })
                .collect();
            for (i, task) in tasks.into_iter().enumerate() {
                assert_eq!(task.await.unwrap(), (i, true));
            }

            // The cursor comes before the command: the STOP event cannot be missed.
            let cursor = qmp.cursor();
            qmp.call("stop", &()).await.unwrap();
            let stop = qmp
                .wait_for_event(cursor, EventFilter::name("STOP"), Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(stop.event.name, "STOP");
            assert!(stop.sequence >= cursor.sequence());
            let status: Status = qmp.call("query-status", &()).decode().await.unwrap();
            assert!(!status.running);
            assert_eq!(qmp.find_events(cursor, &EventFilter::name("STOP")).len(), 1);

            // A descriptor passed with `getfd` is then known to QEMU by name.
            let file = tempfile::tempfile().unwrap();
            let name = serde_json::json!({"fdname": "passed"});
            qmp.call("getfd", &name).fds(vec![file.into()])
                .await
                .unwrap();
            qmp.call("closefd", &name).await.unwrap();

            // A call dropped after its first poll leaves the connection
            // usable. QEMU is frozen meanwhile, so that the first poll
            // surely finds no reply (a quick QEMU could answer within it).
            qemu.pause();
            let mut dropped = Box::pin(qmp.call("query-status", &()).into_future());
            let first = poll_fn(|cx| Poll::Ready(dropped.as_mut().poll(cx).is_ready())).await;
            assert!(!first, "answered at the first poll");
            drop(dropped);
            qemu.resume();
            let status: Status = qmp.call("query-status", &()).decode().await.unwrap();
            assert!(!status.running);

            let missing = qmp
                .call("device_del", &serde_json::json!({"id": "no-such-device"}))
                .await
                .unwrap_err();
            assert_eq!(
                missing.qmp_class(),
                Some(&ErrorClass::DeviceNotFound),
                "{missing}"
            );

            // QEMU answers `quit` and then closes the socket.
            let mut events = qmp.subscribe(EventFilter::all());
            qmp.call("quit", &()).await.unwrap();
            while events.next().await.is_some() {}
            let after = qmp.call("query-status", &()).await.unwrap_err();
            assert!(after.is_socket_closed(), "{after}");
            assert!(qmp.end_reason().is_some());
            assert!(events.end_reason().is_some());
        });
    }

    #[test]
    fn nobody_serving_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let error = rt::block_on(qmp::Qmp::connect_unix(
            dir.path().join("absent.sock"),
            ConnectOptions::default(),
        ))
        .unwrap_err();
        assert!(error.is_socket_not_available(), "{error}");
    }

    #[test]
    fn a_server_that_never_greets_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silent.sock");
        // Connections queue in the backlog and are never answered.
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let options = ConnectOptions::default().connect_timeout(Duration::from_millis(200));
        let error = rt::block_on(qmp::Qmp::connect_unix(&path, options)).unwrap_err();
        assert!(matches!(error, Error::ConnectTimeout), "{error}");
    }
}
