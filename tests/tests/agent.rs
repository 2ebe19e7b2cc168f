//! The guest agent client on both runtimes: against a real `qemu-ga` on
//! this host (harmless commands only), against QEMU with a guest agent
//! port and no guest, and against a mock agent for the hostile cases.

use qmp_client::agent::{commands, AgentOptions, ExecRequest, NoReply};
use qmp_client::Error;
use qmp_mock::{Action, Mock, MockConfig};
use qmp_mock::{AgentAction, MockAgent};
use qmp_proto::Timestamp;
use qmp_tests::agent::HostAgent;
use qmp_tests::qemu::QemuProcess;
use serde_json::json;
use std::future::IntoFuture;
use std::time::{Duration, Instant};

/// Far more than any case needs: reaching it means something hung.
const HANG: Duration = Duration::from_secs(20);

/// A short deadline, for calls that are meant to time out.
const SHORT: Duration = Duration::from_millis(300);

/// A line of /proc, without its newline.
fn read_proc(path: &str) -> String {
    std::fs::read_to_string(format!("/proc/{path}"))
        .expect("/proc")
        .trim_end()
        .to_string()
}

fn quick() -> AgentOptions {
    AgentOptions::default().call_timeout(Duration::from_secs(5))
}

qmp_tests::on_both_runtimes! {
    async fn connect(agent: &HostAgent) -> qmp::GuestAgent {
        qmp::GuestAgent::connect_unix(agent.socket(), quick()).await.expect("connect")
    }

    #[test]
    fn the_core_commands_against_a_real_agent() {
        let Some(host) = HostAgent::start() else { return };
        rt::block_on(rt::timeout(HANG, async {
            let agent = connect(&host).await;
            agent.ping().await.expect("guest-ping");
            let info = agent.info().await.expect("guest-info");
            assert!(info.version.starts_with("10.") || info.version.starts_with("7."), "{}", info.version);
            let enabled: Vec<_> = info.supported_commands.iter().filter(|c| c.enabled).map(|c| c.name.as_str()).collect();
            assert!(enabled.contains(&"guest-exec"), "{enabled:?}");
            assert!(!enabled.contains(&"guest-shutdown"), "the allow-list holds: {enabled:?}");
            let os = agent.osinfo().await.expect("guest-get-osinfo");
            assert_eq!(os.kernel_release.as_deref(), Some(read_proc("sys/kernel/osrelease").as_str()));
            let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
            let time = agent.time().await.expect("guest-get-time");
            assert!((time - before).abs() < 60_000_000_000, "{time} vs {before}");
            assert_eq!(agent.host_name().await.expect("host name"), read_proc("sys/kernel/hostname"));
            let interfaces = agent.network_interfaces().await.expect("interfaces");
            assert!(interfaces.iter().any(|i| i.name == "lo"), "{interfaces:?}");

            let echo = ExecRequest::new("/bin/echo").arg("hello").arg("agent");
            let output = agent.exec(&echo, Duration::from_secs(10)).await.expect("guest-exec");
            assert!(output.success(), "{output:?}");
            assert_eq!(output.stdout, b"hello agent\n");
            let failing = ExecRequest::new("/bin/sh").arg("-c").arg("echo oops >&2; exit 3");
            let output = agent.exec(&failing, Duration::from_secs(10)).await.expect("guest-exec");
            assert_eq!((output.exit_code, &output.stderr[..]), (Some(3), &b"oops\n"[..]));

            let path = host.dir().join("file.bin");
            let contents: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
            agent.write_file(path.to_str().unwrap(), &contents).await.expect("write");
            assert_eq!(std::fs::read(&path).unwrap(), contents);
            assert_eq!(agent.read_file(path.to_str().unwrap()).await.expect("read"), contents);

            // A disabled command is the agent's error, and the channel goes on.
            let refused = agent.execute(&commands::GuestGetVcpus).await;
            assert!(matches!(refused, Err(Error::Qmp(_))), "{refused:?}");
            agent.ping().await.expect("still in step");
            assert!(agent.is_in_step());
        })).expect("hung");
    }

    #[test]
    fn a_late_reply_is_skipped_and_a_restarted_agent_is_reached_again() {
        let Some(mut host) = HostAgent::start() else { return };
        rt::block_on(rt::timeout(HANG, async {
            let agent = connect(&host).await;
            agent.ping().await.expect("in step");
            // The agent is stopped (SIGSTOP) with the command in its
            // socket: its reply comes after the deadline.
            host.pause();
            let late = agent.execute(&commands::GuestGetTime).timeout(SHORT).await;
            assert!(matches!(late, Err(Error::Timeout)), "{late:?}");
            host.resume();
            // Were the late reply (a number) taken for the ping's, the
            // ping would fail to decode it.
            agent.ping().await.expect("resynced past the late reply");

            // The agent restarted mid-call: the call fails with the
            // channel's end (qemu-ga's own socket closes), and a new
            // connection works.
            host.pause();
            let caller = agent.clone();
            let waiting = rt::spawn(async move { caller.ping().await });
            host.restart();
            let ended = waiting.await;
            assert!(matches!(ended, Err(Error::Closed(_))), "{ended:?}");
            let again = connect(&host).await;
            again.ping().await.expect("the restarted agent answers");
        })).expect("hung");
    }

    #[test]
    fn without_a_guest_calls_time_out_and_every_call_resyncs() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let qga = dir.path().join("qga.sock");
        let chardev = format!("socket,id=qga0,path={},server=on,wait=off", qga.display());
        let Some(qemu) = QemuProcess::system_machine("pc", &[
            "-S", "-accel", "tcg", "-device", "virtio-serial", "-chardev", &chardev,
            "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0,id=qga-port",
        ]) else { return };
        rt::block_on(rt::timeout(HANG, async {
            let qmp = qmp::Qmp::connect_unix(qemu.socket(), Default::default()).await.expect("QMP");
            let agent = qmp::GuestAgent::connect_unix(&qga, quick()).await.expect("QEMU takes the connection");
            for attempt in 0..3 {
                let started = Instant::now();
                let ping = agent.call("guest-ping", &()).timeout(SHORT).await;
                assert!(matches!(ping, Err(Error::Timeout)), "attempt {attempt}: {ping:?}");
                assert!(started.elapsed() < Duration::from_secs(3), "attempt {attempt}");
                assert!(!agent.is_in_step());
            }
            // Driven by QEMU's events: no port opens, so one attempt and
            // then a quiet wait until the deadline.
            let started = Instant::now();
            let ready = agent.wait_until_ready_with_events(&qmp, "qga-port", Duration::from_secs(1)).await;
            assert!(matches!(ready, Err(Error::Timeout)), "{ready:?}");
            assert!(started.elapsed() >= Duration::from_secs(1));
            assert_eq!(agent.syncs_answered(), 0);
            // Nothing is held: QEMU takes a new client once this one is
            // closed (it serves one at a time), and QMP still answers.
            agent.close();
            let second = qmp::GuestAgent::connect_unix(&qga, quick()).await.expect("again");
            let ping = second.call("guest-ping", &()).timeout(SHORT).await;
            assert!(matches!(ping, Err(Error::Timeout)), "{ping:?}");
            qmp.execute(&qmp::typed::commands::QueryStatus).await.expect("QMP answers");
        })).expect("hung");
    }

    #[test]
    fn leftovers_and_other_clients_replies_are_skipped() {
        let leftovers = b"\"half of a reply\"}}\n{\"return\": 99}\n\xff{\"return\": 12345}\n{\"return\": {}, \"id\": 1}\n";
        let (stream, mock) = MockAgent::pair(leftovers, |command| match command.name.as_str() {
            "guest-get-time" => AgentAction::Reply(json!(42)),
            _ => AgentAction::Reply(json!({})),
        });
        rt::block_on(rt::timeout(HANG, async {
            let agent = qmp::GuestAgent::from_unix_stream(stream, quick()).expect("adopt");
            assert_eq!(agent.time().await.expect("time"), 42);
            assert!(agent.skipped_messages() >= 1);
            agent.close();
        })).expect("hung");
        let seen = mock.join();
        assert_eq!(seen.len(), 2, "one sync, then the command: {seen:?}");
        assert!(seen[0].starts_with("sync "), "{seen:?}");
    }

    #[test]
    fn a_call_without_reply_times_out_and_the_next_one_resyncs() {
        let (stream, mock) = MockAgent::pair(b"", |command| match command.name.as_str() {
            "never" => AgentAction::Never,
            _ => AgentAction::Reply(json!({})),
        });
        rt::block_on(rt::timeout(HANG, async {
            let agent = qmp::GuestAgent::from_unix_stream(stream, quick()).expect("adopt");
            let started = Instant::now();
            let never = agent.call("never", &()).timeout(SHORT).await;
            assert!(matches!(never, Err(Error::Timeout)), "{never:?}");
            assert!(started.elapsed() < Duration::from_secs(3));
            assert!(!agent.is_in_step());
            agent.ping().await.expect("resynced");
            agent.ping().await.expect("in step: no sync");
            agent.close();
        })).expect("hung");
        let seen = mock.join();
        let syncs = seen.iter().filter(|s| s.starts_with("sync ")).count();
        assert_eq!(syncs, 2, "{seen:?}");
        let last = &seen[seen.len() - 3..];
        assert!(last[0].starts_with("sync ") && last[1..] == ["guest-ping", "guest-ping"], "{seen:?}");
    }

    #[test]
    fn an_agent_restarted_mid_call_fails_that_call_and_the_next_resyncs() {
        let mut restarted = false;
        let (stream, mock) = MockAgent::pair(b"", move |command| match command.name.as_str() {
            "guest-exec" if !restarted => {
                restarted = true;
                AgentAction::Restart
            }
            _ => AgentAction::Reply(json!({"pid": 7})),
        });
        rt::block_on(rt::timeout(HANG, async {
            let agent = qmp::GuestAgent::from_unix_stream(stream, quick()).expect("adopt");
            let exec = commands::GuestExec::new("/bin/true");
            let lost = agent.execute(&exec).timeout(SHORT).await;
            assert!(matches!(lost, Err(Error::Timeout)), "{lost:?}");
            let pid = agent.execute(&exec).await.expect("after the restart").pid;
            assert_eq!(pid, 7);
            agent.close();
        })).expect("hung");
        let seen = mock.join();
        let syncs = seen.iter().filter(|s| s.starts_with("sync ")).count();
        assert_eq!(syncs, 2, "{seen:?}");
    }

    #[test]
    fn a_no_reply_command_ends_with_the_channel_or_its_error() {
        let (stream, mock) = MockAgent::pair(b"", |command| match command.name.as_str() {
            "guest-shutdown" => AgentAction::Close,
            _ => AgentAction::Reply(json!({})),
        });
        rt::block_on(rt::timeout(HANG, async {
            let agent = qmp::GuestAgent::from_unix_stream(stream, quick()).expect("adopt");
            assert_eq!(agent.shutdown(None).await.expect("shutdown"), NoReply::Closed);
            assert!(matches!(agent.ping().await, Err(Error::Closed(_))));
        })).expect("hung");
        mock.join();

        let (stream, mock) = MockAgent::pair(b"", |command| match command.name.as_str() {
            "guest-shutdown" => AgentAction::Error("Command guest-shutdown has been disabled".into()),
            "guest-suspend-ram" => AgentAction::Never,
            _ => AgentAction::Reply(json!({})),
        });
        rt::block_on(rt::timeout(HANG, async {
            let agent = qmp::GuestAgent::from_unix_stream(stream, quick()).expect("adopt");
            let refused = agent.shutdown(Some("halt")).await;
            assert!(matches!(refused, Err(Error::Qmp(_))), "{refused:?}");
            let quiet = agent.call("guest-suspend-ram", &()).timeout(SHORT).no_reply().await;
            assert_eq!(quiet.expect("accepted"), NoReply::Quiet);
            agent.ping().await.expect("resynced after the no-reply command");
            agent.close();
        })).expect("hung");
        let seen = mock.join();
        assert_eq!(seen.iter().filter(|s| s.starts_with("sync ")).count(), 2, "{seen:?}");
    }

    #[test]
    fn calls_run_one_at_a_time_in_the_order_they_were_made() {
        let (stream, mock) = MockAgent::pair(b"", |command| {
            let n = command.decode_arguments::<serde_json::Value>().unwrap()["n"].clone();
            AgentAction::Reply(n)
        });
        rt::block_on(rt::timeout(HANG, async {
            let agent = qmp::GuestAgent::from_unix_stream(stream, quick()).expect("adopt");
            let calls: Vec<_> = (0..50).map(|n| {
                let agent = agent.clone();
                rt::spawn(async move { agent.call("echo", &json!({"n": n})).decode::<u64>().await })
            }).collect();
            for (n, call) in calls.into_iter().enumerate() {
                assert_eq!(call.await.expect("echo"), n as u64);
            }
            agent.close();
        })).expect("hung");
        let seen = mock.join();
        assert_eq!(seen.len(), 51, "one sync and 50 commands: {seen:?}");
    }

    #[test]
    fn a_call_dropped_before_the_agent_answered_is_never_run() {
        let Some(host) = HostAgent::start() else { return };
        let marker = host.dir().join("ran");
        rt::block_on(rt::timeout(HANG, async {
            // The agent answers nothing while stopped: the call waits
            // behind the first sync, and is dropped there.
            host.pause();
            let agent = connect(&host).await;
            let touch = ExecRequest::new("/usr/bin/touch").arg(marker.to_str().unwrap());
            let mut exec = Box::pin(agent.execute(&touch).into_future());
            assert!(!qmp_tests::runtime::poll_once(exec.as_mut()).await);
            drop(exec);
            host.resume();
            agent.ping().await.expect("ping");
            // Had it been written, the agent would have run it before the
            // ping.
            let listing = agent.exec(&ExecRequest::new("/bin/ls").arg(host.dir().to_str().unwrap()), HANG).await.expect("ls");
            assert!(listing.success(), "{listing:?}");
        })).expect("hung");
        assert!(!marker.exists(), "the dropped command ran");
    }

    #[test]
    fn a_command_larger_than_the_socket_buffer_is_written_whole() {
        let (stream, mock) = MockAgent::pair(b"", |command| {
            let data = command.decode_arguments::<serde_json::Value>().unwrap()["data"].as_str().unwrap().len();
            AgentAction::Reply(json!(data))
        });
        rt::block_on(rt::timeout(HANG, async {
            let agent = qmp::GuestAgent::from_unix_stream(stream, quick()).expect("adopt");
            let big = "x".repeat(3_000_000);
            let length: usize = agent.call("big", &json!({"data": big})).decode().await.expect("big");
            assert_eq!(length, big.len());
            agent.close();
        })).expect("hung");
        mock.join();
    }

    /// The QMP side of the test: `open-port` makes it send
    /// `VSERPORT_CHANGE` for port `qga-port` (what QEMU sends when the
    /// guest's agent opens it).
    fn qmp_with_port_events() -> (std::os::unix::net::UnixStream, Mock<Vec<String>>) {
        Mock::pair(MockConfig::default(), |peer| {
            peer.serve(|command| match command.name.as_str() {
                "open-port" => vec![
                    Action::Event("VSERPORT_CHANGE".into(), json!({"id": "qga-port", "open": true}), Timestamp::default()),
                    Action::Reply(json!({})),
                ],
                _ => vec![Action::Reply(json!({}))],
            })
            .expect("the QMP mock")
        })
    }

    #[test]
    fn waiting_on_port_events_costs_one_attempt_while_the_guest_is_down() {
        let (qmp_stream, _qmp_mock) = qmp_with_port_events();
        let (gate, gated) = std::sync::mpsc::channel();
        let (stream, mock) = MockAgent::pair_gated(b"", Some(gated), |_| AgentAction::Reply(json!({})));
        rt::block_on(rt::timeout(HANG, async {
            let qmp = qmp::Qmp::from_unix_stream(qmp_stream, Default::default()).await.expect("QMP");
            let agent = qmp::GuestAgent::from_unix_stream(stream, quick()).expect("adopt");
            let ready = agent.wait_until_ready_with_events(&qmp, "qga-port", Duration::from_millis(1500)).await;
            assert!(matches!(ready, Err(Error::Timeout)), "{ready:?}");
            // The agent starts: the port opens.
            gate.send(()).expect("the mock waits");
            let caller = agent.clone();
            let started = Instant::now();
            qmp.call("open-port", &()).await.expect("open-port");
            caller.wait_until_ready_with_events(&qmp, "qga-port", HANG).await.expect("ready");
            assert!(started.elapsed() < Duration::from_secs(5));
            agent.close();
        })).expect("hung");
        let seen = mock.join();
        // The sync of connect (the single attempt while the port was
        // closed waited behind it), and the one of the attempt that
        // succeeded. Attempts of 0.5 s, 1 s, ... would each have sent
        // one (see the next test).
        assert_eq!(seen.iter().filter(|s| s.starts_with("sync ")).count(), 2, "{seen:?}");
    }

    #[test]
    fn waiting_without_events_tries_again_after_each_attempt() {
        let (gate, gated) = std::sync::mpsc::channel();
        let (stream, mock) = MockAgent::pair_gated(b"", Some(gated), |_| AgentAction::Reply(json!({})));
        rt::block_on(rt::timeout(HANG, async {
            let agent = qmp::GuestAgent::from_unix_stream(stream, quick()).expect("adopt");
            let ready = agent.wait_until_ready(Duration::from_millis(1600)).await;
            assert!(matches!(ready, Err(Error::Timeout)), "{ready:?}");
            gate.send(()).expect("the mock waits");
            agent.wait_until_ready(HANG).await.expect("ready");
            agent.close();
        })).expect("hung");
        let seen = mock.join();
        // Connect (the first attempt waited behind it), the attempts of
        // 1 s and what was left, then the one that succeeded.
        let syncs = seen.iter().filter(|s| s.starts_with("sync ")).count();
        assert!(syncs >= 4, "{seen:?}");
    }
}
