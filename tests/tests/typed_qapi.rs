//! The `qapi` feature: commands and events of the generated `qapi-qmp`
//! crate through both adapters, against real QEMU.
#![cfg(feature = "qapi")]

use qmp_tests::qemu::QemuProcess;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

qmp_tests::on_both_runtimes! {
    use qmp::typed::qapi::{decode_event, qapi_qmp, Qapi};
    use qmp::typed::{Event as _, EventMatcher};
    use qmp::{ConnectOptions, EventFilter, Qmp};

    #[test]
    fn qapi_commands_and_events() {
        let Some(qemu) = QemuProcess::system(&["-M", "pc", "-S"]) else { return };
        rt::block_on(async {
            let qmp = Qmp::connect_unix(qemu.socket(), ConnectOptions::default()).await.unwrap();
            let version = qmp.execute_qapi(qapi_qmp::query_version {}).await.unwrap();
            assert_eq!(version.qemu.major as u64, qmp.greeting().version.qemu().unwrap().major);
            assert_eq!(version.package, qmp.greeting().version.package());

            let status = qmp.execute_qapi(qapi_qmp::query_status {}).await.unwrap();
            assert!(!status.running);
            assert!(matches!(status.status, qapi_qmp::RunState::prelaunch));

            let list = qapi_qmp::qom_list { path: "/machine".into() };
            let properties = qmp.execute_qapi(list).await.unwrap();
            assert!(properties.iter().any(|p| p.name == "type"));
            // The same through `execute` and the wrapper.
            let again = qmp.execute(&Qapi(qapi_qmp::qom_list { path: "/machine".into() })).await.unwrap();
            assert_eq!(again.len(), properties.len());

            let cursor = qmp.cursor();
            qmp.execute_qapi(qapi_qmp::cont {}).await.unwrap();
            let resume = EventMatcher::<Qapi<qapi_qmp::RESUME>>::any();
            qmp.wait_for(cursor, &resume, WAIT).await.unwrap();
            qmp.execute_qapi(qapi_qmp::system_reset {}).await.unwrap();
            let reset = qmp.wait_for(cursor, &Qapi::<qapi_qmp::RESET>::matcher(), WAIT).await.unwrap();
            assert!(!reset.data.0.guest);
            assert!(matches!(reset.data.0.reason, qapi_qmp::ShutdownCause::host_qmp_system_reset));

            // Any raw event into qapi-qmp's enum.
            let raw = qmp.find_events(cursor, &EventFilter::all());
            let decoded: Vec<qapi_qmp::Event> =
                raw.iter().map(|s| decode_event(&s.event).unwrap()).collect();
            assert!(matches!(decoded[0], qapi_qmp::Event::RESUME { .. }));
            assert!(decoded.iter().any(|e| matches!(e, qapi_qmp::Event::RESET { .. })));
        });
    }
}
