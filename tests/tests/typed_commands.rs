//! Typed commands and events against real QEMU, under both runtimes:
//! control and introspection, run state, devices (hot-plug on a USB bus and
//! a CD-ROM tray, which need no guest), file descriptors, QOM.

use qmp_tests::qemu::QemuProcess;
use std::time::Duration;

/// Long enough for any event here, which QEMU sends within milliseconds.
const WAIT: Duration = Duration::from_secs(20);

/// `-M pc` stopped before the first instruction (`-S`): devices and a
/// run state, no guest code needed. The later `-M` wins over the
/// harness's `-M none`.
const PC: [&str; 3] = ["-M", "pc", "-S"];

qmp_tests::on_both_runtimes! {
    use qmp::typed::commands::*;
    use qmp::typed::events::{self, DeviceDeleted, DeviceTrayMoved, Powerdown, Reset, Resume, Shutdown, TrayState};
    use qmp::typed::types::{RunState, ShutdownCause};
    use qmp::typed::{Command as _, Event as _};
    use qmp::{ConnectOptions, Error, ErrorClass, Qmp};

    async fn connect(qemu: &QemuProcess) -> Qmp {
        Qmp::connect_unix(qemu.socket(), ConnectOptions::default())
            .await
            .expect("connect")
    }

    /// The QMP error class of a failed call.
    fn class<T: std::fmt::Debug>(result: Result<T, Error>) -> ErrorClass {
        match result {
            Err(Error::Qmp(e)) => e.class,
            other => panic!("expected a QMP error, got {other:?}"),
        }
    }

    #[test]
    fn control_and_introspection() {
        let Some(qemu) = QemuProcess::system(&["-name", "typed-test"]) else { return };
        rt::block_on(async {
            let qmp = connect(&qemu).await;
            let version = qmp.execute(&QueryVersion).await.unwrap();
            assert_eq!(&version, &qmp.greeting().version);

            let name = qmp.execute(&QueryName).await.unwrap();
            assert_eq!(name.name.as_deref(), Some("typed-test"));

            let commands = qmp.execute(&QueryCommands).await.unwrap();
            for command in [QueryStatus::NAME, "qom-list", "transaction", "add-fd"] {
                assert!(commands.iter().any(|c| c.name == command), "{command}");
            }

            let status = qmp.execute(&QueryStatus).await.unwrap();
            assert_eq!(status, StatusInfo { running: true, status: RunState::Running });

            let text = qmp.human_monitor_command("info version").await.unwrap();
            assert!(text.starts_with(&format!("{}.", version.qemu().unwrap().major)), "{text}");
            let text = qmp.human_monitor_command("info name").await.unwrap();
            assert!(text.contains("typed-test"), "{text}");
            // `-M none` has no CPU: the member reached QEMU, which refused it.
            let on_cpu = HumanMonitorCommand { command_line: "info name".into(), cpu_index: Some(0) };
            assert_eq!(class(qmp.execute(&on_cpu).await), ErrorClass::GenericError);

            // Negotiation is done: QEMU refuses it again, as CommandNotFound.
            let again = qmp.execute(&QmpCapabilities::default()).await;
            assert_eq!(class(again), ErrorClass::CommandNotFound);
            // The classes can be matched on.
            match qmp.execute(&DeviceDel::new("nope")).await {
                Err(Error::Qmp(e)) => match e.class {
                    ErrorClass::DeviceNotFound => {}
                    ErrorClass::GenericError
                    | ErrorClass::CommandNotFound
                    | ErrorClass::DeviceNotActive
                    | ErrorClass::KvmMissingCap
                    | ErrorClass::Other(_) => panic!("{e}"),
                },
                other => panic!("{other:?}"),
            }
            assert_eq!(class(qmp.call("no-such-command", &()).await), ErrorClass::CommandNotFound);

            // The schema is fetched once and kept.
            let schema = qmp.schema().await.unwrap();
            assert!(schema.has_command("query-status"));
            assert!(schema.has_event("DEVICE_DELETED"));
            assert!(schema.transaction_actions().contains(&"block-dirty-bitmap-add"));
            let direct = qmp.execute(&QueryQmpSchema).await.unwrap();
            assert_eq!(direct.len(), schema.len());
            assert!(std::sync::Arc::ptr_eq(&schema, &qmp.schema().await.unwrap()));
        });
    }

    #[test]
    fn run_state_commands_and_their_events() {
        let Some(qemu) = QemuProcess::system(&PC) else { return };
        rt::block_on(async {
            let qmp = connect(&qemu).await;
            let status = qmp.execute(&QueryStatus).await.unwrap();
            assert_eq!(status, StatusInfo { running: false, status: RunState::Prelaunch });

            let cursor = qmp.cursor();
            qmp.execute(&Cont).await.unwrap();
            let resumed = qmp.wait_for(cursor, &Resume::matcher(), WAIT).await.unwrap();
            assert!(resumed.sequence >= cursor.sequence());
            assert!(qmp.execute(&QueryStatus).await.unwrap().running);

            let cursor = qmp.cursor();
            qmp.execute(&Stop).await.unwrap();
            qmp.wait_for(cursor, &events::Stop::matcher(), WAIT).await.unwrap();
            let status = qmp.execute(&QueryStatus).await.unwrap();
            assert_eq!(status.status, RunState::Paused);

            let cursor = qmp.cursor();
            qmp.execute(&SystemPowerdown).await.unwrap();
            qmp.wait_for(cursor, &Powerdown::matcher(), WAIT).await.unwrap();

            let cursor = qmp.cursor();
            qmp.execute(&SystemReset).await.unwrap();
            let reset = qmp.wait_for(cursor, &Reset::matcher(), WAIT).await.unwrap();
            assert!(!reset.data.guest);
            assert_eq!(reset.data.reason, ShutdownCause::HostQmpSystemReset);

            // QEMU sends SHUTDOWN, then (maybe) the reply, then closes: the
            // event is in the history either way.
            let cursor = qmp.cursor();
            match qmp.execute(&Quit).await {
                Ok(_) | Err(Error::Closed(_)) => {}
                Err(e) => panic!("quit: {e}"),
            }
            let shutdown = qmp.wait_for(cursor, &Shutdown::matcher(), WAIT).await.unwrap();
            assert_eq!(shutdown.data, Shutdown { guest: false, reason: ShutdownCause::HostQmpQuit });
            assert_eq!(qmp.find(cursor, &Shutdown::matcher()).len(), 1);
        });
    }

    #[test]
    fn device_add_del_and_deleted_event() {
        let extra = [&PC[..], &["-device", "qemu-xhci,id=xhci"]].concat();
        let Some(qemu) = QemuProcess::system(&extra) else { return };
        rt::block_on(async {
            let qmp = connect(&qemu).await;
            let tablet = DeviceAdd::new("usb-tablet").id("tablet0").bus("xhci.0");
            qmp.execute(&tablet).await.unwrap();
            let keyboard = DeviceAdd::new("usb-kbd").id("kbd0").property("port", "2");
            qmp.execute(&keyboard).await.unwrap();
            let peripherals = qmp.execute(&QomList::new("/machine/peripheral")).await.unwrap();
            for id in ["tablet0", "kbd0"] {
                let found = peripherals.iter().find(|p| p.name == id).unwrap();
                assert!(found.kind.starts_with("child<usb-"), "{found:?}");
            }

            // By id; the event may come before or after the wait starts.
            let cursor = qmp.cursor();
            qmp.execute(&DeviceDel::new("tablet0")).await.unwrap();
            let deleted = qmp
                .wait_for(cursor, &DeviceDeleted::matching_device("tablet0"), WAIT)
                .await
                .unwrap();
            assert_eq!(deleted.data.device.as_deref(), Some("tablet0"));
            assert_eq!(deleted.data.path, "/machine/peripheral/tablet0");

            // By QOM path.
            let cursor = qmp.cursor();
            qmp.execute(&DeviceDel::new("/machine/peripheral/kbd0")).await.unwrap();
            let by_path = DeviceDeleted::matching_device("/machine/peripheral/kbd0");
            let deleted = qmp.wait_for(cursor, &by_path, WAIT).await.unwrap();
            assert_eq!(deleted.data.device.as_deref(), Some("kbd0"));
            // Nothing else was deleted since.
            assert!(qmp.find(deleted.next_cursor(), &DeviceDeleted::matcher()).is_empty());
        });
    }

    #[test]
    fn tray_moves_of_a_cdrom() {
        let extra = [&PC[..], &["-device", "ide-cd,id=cd0,bus=ide.1"]].concat();
        let Some(qemu) = QemuProcess::system(&extra) else { return };
        rt::block_on(async {
            let qmp = connect(&qemu).await;
            let cursor = qmp.cursor();
            qmp.call("blockdev-open-tray", &serde_json::json!({"id": "cd0"})).await.unwrap();
            let opened = DeviceTrayMoved::for_device("cd0", TrayState::Open);
            let open = qmp.wait_for(cursor, &opened, WAIT).await.unwrap();
            assert!(open.data.tray_open);
            assert_eq!(open.data.id, "cd0");

            qmp.call("blockdev-close-tray", &serde_json::json!({"id": "cd0"})).await.unwrap();
            let closed = DeviceTrayMoved::for_device("cd0", TrayState::Closed);
            let close = qmp.wait_for(cursor, &closed, WAIT).await.unwrap();
            assert!(!close.data.tray_open);
            assert!(close.sequence > open.sequence);

            let any = qmp.find(cursor, &DeviceTrayMoved::for_device("cd0", TrayState::Any));
            let states: Vec<bool> = any.iter().map(|moved| moved.data.tray_open).collect();
            assert_eq!(states, [true, false]);
            assert!(qmp.find(cursor, &DeviceTrayMoved::for_device("cd1", TrayState::Any)).is_empty());
        });
    }

    #[test]
    fn file_descriptors() {
        let Some(qemu) = QemuProcess::system(&[]) else { return };
        rt::block_on(async {
            let qmp = connect(&qemu).await;
            let file = |name: &str| {
                let file = std::fs::File::create(qemu.dir().join(name)).unwrap();
                std::os::fd::OwnedFd::from(file)
            };
            qmp.execute(&Getfd::new("fd0")).fd(file("a")).await.unwrap();
            qmp.execute(&Closefd::new("fd0")).await.unwrap();
            let twice = qmp.execute(&Closefd::new("fd0")).await;
            assert_eq!(class(twice), ErrorClass::GenericError);

            let add = AddFd { fdset_id: None, opaque: Some("note".into()) };
            let added = qmp.execute(&add).fd(file("b")).await.unwrap();
            let sets = qmp.execute(&QueryFdsets).await.unwrap();
            let set = sets.iter().find(|s| s.fdset_id == added.fdset_id).unwrap();
            assert_eq!(set.fds, [FdsetFdInfo { fd: added.fd, opaque: Some("note".into()) }]);
            let remove = RemoveFd { fdset_id: added.fdset_id, fd: Some(added.fd) };
            qmp.execute(&remove).await.unwrap();
            let sets = qmp.execute(&QueryFdsets).await.unwrap();
            assert!(sets.iter().all(|s| s.fdset_id != added.fdset_id), "{sets:?}");
        });
    }

    #[test]
    fn qom_list_get_set() {
        let Some(qemu) = QemuProcess::system(&["-object", "throttle-group,id=tg0"]) else { return };
        rt::block_on(async {
            let qmp = connect(&qemu).await;
            let machine_type = qmp.execute(&QomGet::new("/machine", "type")).await.unwrap();
            assert_eq!(machine_type, "none-machine");
            let properties = qmp.execute(&QomList::new("/objects/tg0")).await.unwrap();
            let limits = properties.iter().find(|p| p.name == "limits").unwrap();
            assert_eq!(limits.kind, "ThrottleLimits");

            let value = serde_json::json!({"bps-total": 1_000_000});
            qmp.execute(&QomSet::new("/objects/tg0", "limits", value)).await.unwrap();
            let limits = qmp.execute(&QomGet::new("/objects/tg0", "limits")).await.unwrap();
            assert_eq!(limits["bps-total"], 1_000_000);
            let refused = QomSet::new("/objects/tg0", "x-bps-total", 5);
            assert_eq!(class(qmp.execute(&refused).await), ErrorClass::GenericError);
        });
    }
}
