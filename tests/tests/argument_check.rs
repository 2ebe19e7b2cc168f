//! Arguments checked against the connected QEMU's own schema before
//! sending (`Call::check_arguments`, `ConnectOptions::check_arguments`,
//! `Qmp::check_arguments`), against real QEMU under both runtimes: a call
//! that does not fit is refused locally with every problem named, and QEMU
//! receives nothing; one that fits runs; deprecated use is a warning only.

use qmp_tests::qemu::QemuProcess;
use serde_json::json;
use std::time::{Duration, Instant};

const MIB: i64 = 1 << 20;

qmp_tests::on_both_runtimes! {
    use qmp::typed::check::{ArgumentProblems, JsonType, ProblemKind};
    use qmp::typed::commands::{BlockdevAdd, BlockDeviceInfo, QueryNamedBlockNodes, QueryStatus};
    use qmp::{ConnectOptions, Error, ErrorClass, Qmp, SendError};

    async fn connect(qemu: &QemuProcess, options: ConnectOptions) -> Qmp {
        Qmp::connect_unix(qemu.socket(), options).await.expect("connect")
    }

    /// The problems of a call refused by the check.
    fn refused<T: std::fmt::Debug>(result: Result<T, Error>) -> ArgumentProblems {
        match result {
            Err(Error::Rejected(SendError::InvalidArguments(problems))) => problems,
            other => panic!("expected a refusal by the argument check, got {other:?}"),
        }
    }

    /// The problems as `(path, kind)`.
    fn errors(problems: &ArgumentProblems) -> Vec<(&str, &ProblemKind)> {
        problems.errors.iter().map(|p| (p.path.as_str(), &p.kind)).collect()
    }

    async fn node_names(qmp: &Qmp) -> Vec<String> {
        let nodes: Vec<BlockDeviceInfo> = qmp.execute(&QueryNamedBlockNodes::default()).await.unwrap();
        nodes.into_iter().filter_map(|n| n.node_name).collect()
    }

    #[test]
    fn a_bad_call_is_refused_locally_and_nothing_is_sent() {
        let Some(qemu) = QemuProcess::system(&[]) else { return };
        rt::block_on(async {
            let qmp = connect(&qemu, ConnectOptions::default()).await;
            // The schema is fetched once; after that the check needs
            // nothing from QEMU, which is frozen now: a command that
            // reached it would get no answer before the timeout.
            qmp.schema().await.unwrap();
            let dropped = qmp.dropped_replies();
            qemu.pause();
            let started = Instant::now();
            let typo = json!({"driver": "null-co", "node-name": "n0", "sise": MIB, "read-only": "no"});
            let problems = refused(
                qmp.call("blockdev-add", &typo)
                    .check_arguments()
                    .timeout(Duration::from_secs(10))
                    .await,
            );
            assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
            assert_eq!(problems.command, "blockdev-add");
            assert_eq!(
                errors(&problems),
                [
                    ("arguments.read-only", &ProblemKind::WrongType { found: JsonType::String }),
                    ("arguments.sise", &ProblemKind::UnknownMember),
                ]
            );
            assert_eq!(problems.errors[0].expected, "boolean");
            assert!(problems.errors[1].expected.contains("size"), "{}", problems.errors[1].expected);

            // A typed command too, refused the same way.
            let typed = BlockdevAdd::new("null-co", "n0").option("size", "big");
            let problems = refused(qmp.execute(&typed).check_arguments().timeout(Duration::from_secs(10)).await);
            assert_eq!(
                errors(&problems),
                [("arguments.size", &ProblemKind::WrongType { found: JsonType::String })]
            );
            qemu.resume();

            // QEMU got neither: no node, and no reply to a command nobody
            // waits for any more (which would be counted as late).
            assert!(!node_names(&qmp).await.contains(&"n0".to_string()));
            qmp.execute(&QueryStatus).await.unwrap();
            assert_eq!(qmp.dropped_replies(), dropped);
        });
    }

    #[test]
    fn a_good_call_passes_the_check_and_runs() {
        let Some(qemu) = QemuProcess::system(&[]) else { return };
        rt::block_on(async {
            let qmp = connect(&qemu, ConnectOptions::default()).await;
            // The first checked call fetches the schema itself.
            let node = BlockdevAdd::new("null-co", "n1").option("size", MIB);
            qmp.execute(&node).check_arguments().await.unwrap();
            assert!(node_names(&qmp).await.contains(&"n1".to_string()));
            let warnings = qmp.check_arguments("blockdev-del", &json!({"node-name": "n1"})).await.unwrap();
            assert_eq!(warnings, []);
            qmp.call("blockdev-del", &json!({"node-name": "n1"})).check_arguments().await.unwrap();
            assert!(!node_names(&qmp).await.contains(&"n1".to_string()));
        });
    }

    #[test]
    fn deprecated_use_is_a_warning_and_the_call_is_sent() {
        let Some(qemu) = QemuProcess::system(&[]) else { return };
        rt::block_on(async {
            let qmp = connect(&qemu, ConnectOptions::default()).await;
            // block-commit's `top` is deprecated (use `top-node`).
            let commit = json!({"device": "nothing-here", "top": "top.qcow2"});
            let warnings = qmp.check_arguments("block-commit", &commit).await.unwrap();
            assert_eq!(warnings.len(), 1);
            assert_eq!(warnings[0].path, "arguments.top");
            assert_eq!(warnings[0].kind, ProblemKind::Deprecated);
            assert_eq!(warnings[0].to_string(), "arguments.top: deprecated");
            // Only a warning: the command reaches QEMU, which answers it
            // (there is no such device).
            let answer = qmp.call("block-commit", &commit).check_arguments().await;
            assert!(matches!(answer, Err(Error::Qmp(_))), "{answer:?}");

            // A problem and a warning: the problem decides.
            let problems = match qmp.check_arguments("block-commit", &json!({"top": 1})).await {
                Err(Error::Rejected(SendError::InvalidArguments(problems))) => problems,
                other => panic!("{other:?}"),
            };
            assert_eq!(problems.warnings.len(), 1);
            assert_eq!(
                errors(&problems),
                [
                    ("arguments.top", &ProblemKind::WrongType { found: JsonType::Int }),
                    ("arguments.device", &ProblemKind::MissingMember),
                ]
            );
        });
    }

    #[test]
    fn checking_every_call_and_agreeing_with_qemu() {
        let Some(qemu) = QemuProcess::system(&[]) else { return };
        rt::block_on(async {
            let options = ConnectOptions::default().check_arguments(true);
            let qmp = connect(&qemu, options).await;
            // Every call is checked, the first one fetching the schema.
            qmp.execute(&QueryStatus).await.unwrap();
            // What the check refuses, QEMU refuses too: sent unchecked,
            // each gets QEMU's own GenericError.
            let bad = [
                ("query-status", json!({"bogus": 1}), "arguments.bogus"),
                ("blockdev-add", json!({"driver": "nul-co", "node-name": "x"}), "arguments.driver"),
                ("blockdev-add", json!({"driver": "null-co", "node-name": 5}), "arguments.node-name"),
                ("blockdev-add", json!({"driver": "qcow2", "node-name": "x", "file": {"driver": "file"}}), "arguments.file.filename"),
                ("blockdev-del", json!({}), "arguments.node-name"),
                ("transaction", json!({"actions": [{"type": "abort", "data": {"x": 1}}]}), "arguments.actions[0].data.x"),
            ];
            for (command, arguments, path) in bad {
                let problems = refused(qmp.call(command, &arguments).await);
                assert_eq!(problems.errors[0].path, path, "{command} {arguments}");
                let qemu_says = qmp.call(command, &arguments).skip_argument_check().await;
                match qemu_says {
                    Err(Error::Qmp(e)) => assert_eq!(e.class, ErrorClass::GenericError, "{command} {arguments}"),
                    other => panic!("QEMU accepted {command} {arguments}: {other:?}"),
                }
            }
            // An unknown command: refused here as QEMU would (CommandNotFound).
            let unknown = json!({"no-such-command": 1});
            let problems = refused(qmp.call("no-such-command", &unknown).await);
            assert_eq!(errors(&problems), [("execute", &ProblemKind::UnknownCommand)]);
            let qemu_says = qmp.call("no-such-command", &unknown).skip_argument_check().await;
            assert!(matches!(qemu_says, Err(Error::Qmp(e)) if e.class == ErrorClass::CommandNotFound));
        });
    }
}
