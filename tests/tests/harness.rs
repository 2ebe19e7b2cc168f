//! The harness itself: one body on both runtimes against both QEMU binaries.

use qmp_tests::qemu::QemuProcess;

qmp_tests::on_both_runtimes! {
    #[test]
    fn greeting_from_both_binaries() {
        for qemu in [QemuProcess::system(&[]), QemuProcess::storage_daemon(&[])] {
            let Some(qemu) = qemu else { continue };
            rt::block_on(async {
                let qmp = qmp::Qmp::connect_unix(qemu.socket(), qmp::ConnectOptions::default())
                    .await
                    .expect("connect");
                let version: serde_json::Value =
                    qmp.call("query-version", &()).decode().await.expect("query-version");
                let greeted = &qmp.greeting().version;
                let numbers = greeted.qemu().expect("QEMU's numbers");
                assert_eq!(version["qemu"]["major"], numbers.major);
                assert_eq!(version["qemu"]["minor"], numbers.minor);
                assert_eq!(version["package"], greeted.package());
            });
        }
    }
}
