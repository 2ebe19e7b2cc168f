//! Talks to a real QEMU (`qemu-system-x86_64 -M none`) through `qmp-smol`.
//! Skipped, with a note, where QEMU is not installed.

use qmp_smol::{ConnectOptions, Error, ErrorClass, EventFilter, Qmp};
use qmp_tests::qemu::QemuProcess;
use std::time::Duration;

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
    smol::block_on(async {
        let options = ConnectOptions::default().connect_timeout(Duration::from_secs(10));
        let qmp = Qmp::connect_unix(qemu.socket(), options)
            .await
            .expect("connect and negotiate");
        assert!(qmp.greeting().version.qemu.major >= 2);
        assert!(qmp.end_reason().is_none());

        let status: Status = qmp.execute_as("query-status", &()).await.unwrap();
        assert!(status.running, "status: {}", status.status);

        // 200 commands at once from 200 tasks, over the one connection.
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let qmp = qmp.clone();
                smol::spawn(async move {
                    let status: Status = qmp.execute_as("query-status", &()).await?;
                    Ok::<_, Error>((i, status.running))
                })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.await.unwrap(), (i, true));
        }

        // The cursor comes before the command: the STOP event cannot be missed.
        let cursor = qmp.cursor();
        qmp.execute_raw("stop", &()).await.unwrap();
        let stop = qmp
            .wait_for_event(cursor, EventFilter::name("STOP"), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(stop.event.name, "STOP");
        assert!(stop.sequence >= cursor.sequence());
        let status: Status = qmp.execute_as("query-status", &()).await.unwrap();
        assert!(!status.running);
        assert_eq!(qmp.find_events(cursor, &EventFilter::name("STOP")).len(), 1);

        // A descriptor passed with `getfd` is then known to QEMU by name.
        let file = tempfile::tempfile().unwrap();
        let name = serde_json::json!({"fdname": "passed"});
        qmp.execute_with_fds("getfd", &name, vec![file.into()])
            .await
            .unwrap();
        qmp.execute_raw("closefd", &name).await.unwrap();

        // A call dropped after its first poll leaves the connection usable.
        let dropped = qmp.execute_raw("query-status", &());
        assert!(futures_lite::future::poll_once(Box::pin(dropped))
            .await
            .is_none());
        let status: Status = qmp.execute_as("query-status", &()).await.unwrap();
        assert!(!status.running);

        let missing = qmp
            .execute_raw("device_del", &serde_json::json!({"id": "no-such-device"}))
            .await
            .unwrap_err();
        assert_eq!(
            missing.qmp_class(),
            Some(&ErrorClass::DeviceNotFound),
            "{missing}"
        );

        // QEMU answers `quit` and then closes the socket.
        let mut events = qmp.subscribe(EventFilter::all());
        qmp.execute_raw("quit", &()).await.unwrap();
        while events.next().await.is_some() {}
        let after = qmp.execute_raw("query-status", &()).await.unwrap_err();
        assert!(after.is_socket_closed(), "{after}");
        assert!(qmp.end_reason().is_some());
        assert!(events.end_reason().is_some());
    });
}

#[test]
fn nobody_serving_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let error = smol::block_on(Qmp::connect_unix(
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
    let error = smol::block_on(Qmp::connect_unix(&path, options)).unwrap_err();
    assert!(matches!(error, Error::ConnectTimeout), "{error}");
}
