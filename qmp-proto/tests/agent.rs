//! The guest agent machine: syncing past leftovers, giving up on commands,
//! and the same outputs however the bytes are cut.

use qmp_proto::agent::{
    Agent, AgentConfig, AgentOutput, AgentServer, AgentServerOutput, SyncMethod,
};
use qmp_proto::{End, ErrorClass, ProtocolError, RequestId, SendError};

fn sync_bytes(id: u64) -> Vec<u8> {
    format!("\u{0}{{\"execute\": \"guest-sync-delimited\", \"arguments\": {{\"id\": {id}}}}}\n")
        .replace('\u{0}', "")
        .into_bytes()
        .into_iter()
        .fold(vec![0xFF], |mut out, b| {
            out.push(b);
            out
        })
}

fn transmitted(agent: &mut Agent) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(bytes) = agent.poll_transmit() {
        out.extend_from_slice(&bytes);
    }
    out
}

fn outputs(agent: &mut Agent) -> Vec<AgentOutput> {
    std::iter::from_fn(|| agent.poll_output()).collect()
}

fn reply_of(output: &AgentOutput) -> (RequestId, Result<String, ErrorClass>) {
    match output {
        AgentOutput::Reply(reply) => (
            reply.id,
            reply
                .result
                .as_ref()
                .map(|value| value.as_str().to_string())
                .map_err(|e| e.class.clone()),
        ),
        other => panic!("not a reply: {other:?}"),
    }
}

/// An agent synced with number 5, `ping` written and running.
fn in_step_running_ping() -> (Agent, RequestId) {
    let mut agent = Agent::new(AgentConfig::default().first_sync_id(5).first_id(100));
    let ping = agent.execute("guest-ping", &()).unwrap();
    assert_eq!(transmitted(&mut agent), sync_bytes(5));
    agent.receive(b"\xff{\"return\": 5}\n");
    assert_eq!(outputs(&mut agent), [AgentOutput::Synced { sync_id: 5 }]);
    assert_eq!(
        transmitted(&mut agent),
        b"{\"execute\": \"guest-ping\", \"id\": 100}\n"
    );
    assert_eq!(agent.running(), Some(ping));
    (agent, ping)
}

#[test]
fn nothing_is_written_before_a_command() {
    let mut agent = Agent::default();
    assert!(agent.poll_transmit().is_none());
    assert!(!agent.is_in_step());
}

#[test]
fn leftovers_before_the_delimiter_are_skipped_whatever_their_shape() {
    let mut agent = Agent::new(AgentConfig::default().first_sync_id(9));
    let info = agent.execute("guest-info", &()).unwrap();
    transmitted(&mut agent);
    // Half a reply, garbage, a stale reply, the error the 0xFF caused.
    agent.receive(b"\"version\": \"10.0\"}}\n");
    agent.receive(b"garbage { [ \"unterminated\n");
    agent.receive(b"{\"return\": 9}\n");
    agent.receive(
        b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray\"}}\n",
    );
    assert!(outputs(&mut agent).is_empty());
    assert!(
        transmitted(&mut agent).is_empty(),
        "no command before the sync's reply"
    );
    agent.receive(b"\xff{\"return\": 9}\n{\"return\": {\"version\": \"10.0.2\"}, \"id\": 1}\n");
    let out = outputs(&mut agent);
    assert_eq!(out[0], AgentOutput::Synced { sync_id: 9 });
    assert_eq!(
        out.len(),
        1,
        "the reply came before the command was written"
    );
    assert!(agent.skipped_bytes() > 0);
    // The stale reply after the delimiter had no command to answer:
    // the next command syncs again.
    assert!(!agent.is_in_step());
    let bytes = transmitted(&mut agent);
    assert_eq!(bytes, sync_bytes(10));
    agent.receive(b"\xff{\"return\": 10}\n");
    outputs(&mut agent);
    assert!(transmitted(&mut agent).starts_with(b"{\"execute\": \"guest-info\""));
    agent.receive(b"{\"return\": {\"version\": \"10.0.2\"}, \"id\": 1}\n");
    assert_eq!(
        reply_of(&outputs(&mut agent)[0]),
        (info, Ok("{\"version\": \"10.0.2\"}".to_string()))
    );
}

#[test]
fn other_clients_syncs_are_not_taken_for_ours() {
    let mut agent = Agent::new(AgentConfig::default().first_sync_id(1000));
    agent.execute("guest-ping", &()).unwrap();
    transmitted(&mut agent);
    agent.receive(b"\xff{\"return\": 999}\n\xff{\"return\": 12345}\n");
    assert!(outputs(&mut agent).is_empty());
    assert!(!agent.is_in_step());
    agent.receive(b"\xff{\"return\": 1000}\n");
    assert_eq!(outputs(&mut agent), [AgentOutput::Synced { sync_id: 1000 }]);
    assert_eq!(agent.skipped_messages(), 2);
}

#[test]
fn a_reply_with_another_id_is_stale_and_skipped() {
    let (mut agent, ping) = in_step_running_ping();
    agent.receive(b"{\"return\": {}, \"id\": 99}\n");
    assert!(outputs(&mut agent).is_empty());
    agent.receive(b"{\"return\": {}, \"id\": 100}\n");
    assert_eq!(reply_of(&outputs(&mut agent)[0]), (ping, Ok("{}".into())));
}

#[test]
fn an_error_without_id_answers_the_running_command() {
    let (mut agent, ping) = in_step_running_ping();
    agent.receive(b"{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"disabled\"}}\n");
    assert_eq!(
        reply_of(&outputs(&mut agent)[0]),
        (ping, Err(ErrorClass::CommandNotFound))
    );
    // Still in step: the next command goes out at once.
    agent.execute("guest-info", &()).unwrap();
    assert!(transmitted(&mut agent).starts_with(b"{\"execute\": \"guest-info\""));
}

#[test]
fn commands_run_one_at_a_time_in_order() {
    let (mut agent, ping) = in_step_running_ping();
    let second = agent.execute("guest-get-time", &()).unwrap();
    let third = agent.execute("guest-info", &()).unwrap();
    assert!(transmitted(&mut agent).is_empty(), "one command at a time");
    assert_eq!(agent.queued(), 2);
    agent.receive(b"{\"return\": {}, \"id\": 100}\n");
    assert_eq!(reply_of(&outputs(&mut agent)[0]).0, ping);
    assert_eq!(
        transmitted(&mut agent),
        b"{\"execute\": \"guest-get-time\", \"id\": 101}\n"
    );
    agent.receive(b"{\"return\": 1796275207995432000, \"id\": 101}\n");
    assert_eq!(
        reply_of(&outputs(&mut agent)[0]),
        (second, Ok("1796275207995432000".into()))
    );
    assert_eq!(agent.running(), Some(third));
}

#[test]
fn a_command_given_up_on_makes_the_next_one_sync_and_its_late_reply_is_dropped() {
    let (mut agent, ping) = in_step_running_ping();
    assert!(agent.cancel(ping));
    assert!(!agent.cancel(ping), "cancelled once");
    assert!(!agent.is_in_step());
    let info = agent.execute("guest-info", &()).unwrap();
    assert_eq!(transmitted(&mut agent), sync_bytes(6));
    // The late reply to the ping, then the sync's.
    agent.receive(b"{\"return\": {}, \"id\": 100}\n\xff{\"return\": 6}\n");
    assert_eq!(outputs(&mut agent), [AgentOutput::Synced { sync_id: 6 }]);
    assert!(transmitted(&mut agent).starts_with(b"{\"execute\": \"guest-info\""));
    assert_eq!(agent.running(), Some(info));
}

#[test]
fn no_command_is_written_while_the_agent_does_not_answer() {
    // No agent runs in the guest: syncs pile up in QEMU, commands never.
    let mut agent = Agent::new(AgentConfig::default().first_sync_id(1));
    let mut wire = Vec::new();
    for attempt in 0..3 {
        let id = agent
            .execute("guest-exec", &serde_json::json!({"path": "/bin/true"}))
            .unwrap();
        wire.extend(transmitted(&mut agent));
        assert!(agent.cancel(id), "attempt {attempt}");
    }
    let text = String::from_utf8_lossy(&wire);
    assert_eq!(text.matches("guest-sync-delimited").count(), 3, "{text}");
    assert!(!text.contains("guest-exec"), "{text}");
    // When the agent comes up, it answers the three syncs; the last makes
    // the stream in step and nothing else happens.
    agent.receive(b"\xff{\"return\": 1}\n\xff{\"return\": 2}\n\xff{\"return\": 3}\n");
    assert!(
        outputs(&mut agent).is_empty(),
        "no command waits: no sync is current"
    );
}

#[test]
fn a_command_behind_an_unanswered_sync_that_is_given_up_on_resyncs() {
    let mut agent = Agent::new(AgentConfig::default().first_sync_id(1));
    let first = agent.execute("guest-ping", &()).unwrap();
    assert_eq!(transmitted(&mut agent), sync_bytes(1));
    agent.cancel(first);
    agent.execute("guest-ping", &()).unwrap();
    assert_eq!(transmitted(&mut agent), sync_bytes(2), "a fresh sync");
    // Sync 1 arrives first: skipped, sync 2 brings the stream in step.
    agent.receive(b"\xff{\"return\": 1}\n\xff{\"return\": 2}\n");
    assert_eq!(outputs(&mut agent), [AgentOutput::Synced { sync_id: 2 }]);
}

#[test]
fn the_end_ends_every_command_and_refuses_new_ones() {
    let (mut agent, _ping) = in_step_running_ping();
    agent.execute("guest-info", &()).unwrap();
    agent.receive(b"{\"return\": ");
    agent.receive_eof();
    assert_eq!(
        outputs(&mut agent),
        [AgentOutput::End(End::Protocol(ProtocolError::Truncated {
            buffered: 11
        }))]
    );
    assert_eq!(agent.execute("guest-ping", &()), Err(SendError::Closed));
    assert!(agent.is_ended());

    let (mut agent, _) = in_step_running_ping();
    agent.receive_eof();
    assert_eq!(outputs(&mut agent), [AgentOutput::End(End::PeerClosed)]);
}

#[test]
fn a_reply_over_the_size_limit_ends_the_channel_but_skipped_leftovers_do_not() {
    let mut agent = Agent::new(AgentConfig::default().max_message_size(64).first_sync_id(1));
    agent.execute("guest-ping", &()).unwrap();
    transmitted(&mut agent);
    let big = format!("\u{ff}{{\"return\": \"{}\"}}\n", "x".repeat(200));
    // A big stale reply after the delimiter, while the sync is awaited.
    let mut bytes = vec![0xFF];
    bytes.extend_from_slice(&big.as_bytes()[2..]);
    agent.receive(&bytes);
    assert!(outputs(&mut agent).is_empty());
    agent.receive(b"\xff{\"return\": 1}\n");
    assert_eq!(outputs(&mut agent), [AgentOutput::Synced { sync_id: 1 }]);
    transmitted(&mut agent);
    agent.receive(format!("{{\"return\": \"{}\"}}\n", "x".repeat(200)).as_bytes());
    assert_eq!(
        outputs(&mut agent),
        [AgentOutput::End(End::Protocol(
            ProtocolError::MessageTooLarge { limit: 64 }
        ))]
    );
}

#[test]
fn queue_is_bounded() {
    let mut agent = Agent::new(AgentConfig::default().max_queued(2));
    agent.execute("a", &()).unwrap();
    agent.execute("b", &()).unwrap();
    assert_eq!(
        agent.execute("c", &()),
        Err(SendError::QueueFull { limit: 2 })
    );
    assert_eq!(
        Agent::default().execute("d", &[1, 2]),
        Err(SendError::ArgumentsNotObject)
    );
}

#[test]
fn plain_sync_skips_whole_leftover_messages() {
    let mut agent = Agent::new(
        AgentConfig::default()
            .sync_method(SyncMethod::Plain)
            .first_sync_id(3),
    );
    let ping = agent.execute("guest-ping", &()).unwrap();
    assert_eq!(
        transmitted(&mut agent),
        b"{\"execute\": \"guest-sync\", \"arguments\": {\"id\": 3}}\n"
    );
    agent.receive(b"{\"return\": {}}\n{\"return\": 3}\n");
    assert_eq!(outputs(&mut agent), [AgentOutput::Synced { sync_id: 3 }]);
    transmitted(&mut agent);
    agent.receive(b"{\"return\": {}}\n");
    assert_eq!(reply_of(&outputs(&mut agent)[0]), (ping, Ok("{}".into())));
}

/// The client and the server half, over an in-memory channel that the
/// server side may cut anywhere: every cut gives the same outputs.
#[test]
fn outputs_do_not_depend_on_how_the_bytes_are_cut() {
    let mut server_bytes = Vec::new();
    let mut expected = None;
    // One conversation, recorded whole: leftovers, a sync, two commands.
    for cut in [usize::MAX, 1, 2, 3, 5, 7, 13] {
        let mut agent = Agent::new(AgentConfig::default().first_sync_id(77));
        let mut server = AgentServer::new();
        server.send_raw(b"{\"return\": {}}\n half a {\"message\n");
        let ping = agent.execute("guest-ping", &()).unwrap();
        let time = agent.execute("guest-get-time", &()).unwrap();
        let mut got = Vec::new();
        let mut wire = Vec::new();
        for _ in 0..20 {
            while let Some(bytes) = agent.poll_transmit() {
                server.receive(&bytes);
            }
            while let Some(output) = server.poll_output() {
                if let AgentServerOutput::Command(command) = output {
                    match command.name.as_str() {
                        "guest-ping" => server.reply_ok(&command, &serde_json::json!({})).unwrap(),
                        _ => server.reply_ok(&command, &42).unwrap(),
                    }
                }
            }
            while let Some(bytes) = server.poll_transmit() {
                wire.extend_from_slice(&bytes);
                for piece in bytes.chunks(cut.min(bytes.len().max(1))) {
                    agent.receive(piece);
                    got.extend(outputs(&mut agent));
                }
            }
        }
        let replies: Vec<_> = got
            .iter()
            .filter(|o| matches!(o, AgentOutput::Reply(_)))
            .map(reply_of)
            .collect();
        assert_eq!(
            replies,
            [(ping, Ok("{}".to_string())), (time, Ok("42".to_string()))],
            "cut {cut}"
        );
        match &expected {
            None => {
                expected = Some(got);
                server_bytes = wire;
            }
            Some(expected) => {
                assert_eq!(&got, expected, "cut {cut}");
                assert_eq!(wire, server_bytes, "cut {cut}");
            }
        }
    }
}

#[test]
fn the_server_half_answers_syncs_as_qemu_ga_does() {
    let mut server = AgentServer::new();
    server.receive(b"{\"execute\": \"guest-ping\", \"argu");
    server.receive(&sync_bytes(123));
    let mut out = Vec::new();
    while let Some(bytes) = server.poll_transmit() {
        out.extend_from_slice(&bytes);
    }
    // As qemu-ga 10.0 answered the same bytes (recorded by hand).
    assert_eq!(
        out,
        b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\xef\xbf\xbd'\"}}\n\xff{\"return\": 123}\n"
    );
    assert_eq!(
        server.poll_output(),
        Some(AgentServerOutput::Synced { sync_id: 123 })
    );
    assert_eq!(server.poll_output(), None, "the half command was dropped");
}

#[test]
fn a_sync_asked_for_brings_the_stream_in_step_before_any_command() {
    let mut agent = Agent::new(AgentConfig::default().first_sync_id(20));
    assert!(agent.sync());
    assert_eq!(transmitted(&mut agent), sync_bytes(20));
    // A second one before the first is answered replaces it.
    assert!(agent.sync());
    assert_eq!(transmitted(&mut agent), sync_bytes(21));
    agent.receive(b"\xff{\"return\": 20}\n\xff{\"return\": 21}\n");
    assert_eq!(outputs(&mut agent), [AgentOutput::Synced { sync_id: 21 }]);
    assert!(agent.is_in_step());
    agent.execute("guest-ping", &()).unwrap();
    assert!(transmitted(&mut agent).starts_with(b"{\"execute\": \"guest-ping\""));
    assert!(!agent.sync(), "not while a command runs");
}

/// Found by the agent_ops fuzz target: a command given up on behind a
/// sync left the commands after it waiting for a sync nobody sent.
#[test]
fn giving_up_on_one_of_several_commands_behind_a_sync_sends_a_fresh_one() {
    let mut agent = Agent::new(AgentConfig::default().first_sync_id(1));
    let first = agent.execute("guest-ping", &()).unwrap();
    agent.execute("guest-info", &()).unwrap();
    assert_eq!(transmitted(&mut agent), sync_bytes(1));
    assert!(agent.cancel(first));
    assert_eq!(
        transmitted(&mut agent),
        sync_bytes(2),
        "the next command's sync"
    );
    agent.receive(b"\xff{\"return\": 2}\n");
    assert_eq!(outputs(&mut agent), [AgentOutput::Synced { sync_id: 2 }]);
    assert!(transmitted(&mut agent).starts_with(b"{\"execute\": \"guest-info\""));
}

/// Found by the agent_ops fuzz target: a read that brought the stream in
/// step and then out of it again left the waiting command without a sync.
#[test]
fn a_read_that_loses_the_step_it_brought_syncs_again_for_the_waiting_command() {
    let mut agent = Agent::new(AgentConfig::default().first_sync_id(1));
    let ping = agent.execute("guest-ping", &()).unwrap();
    transmitted(&mut agent);
    // In one read: the sync's reply, then (before the command could be
    // written) a message nobody asked for, then delimiters.
    agent.receive(b"\xff{\"return\": 1}\n{\"event\": \"SHUTDOWN\"}\n\xff\xff");
    assert_eq!(outputs(&mut agent), [AgentOutput::Synced { sync_id: 1 }]);
    assert_eq!(
        transmitted(&mut agent),
        sync_bytes(2),
        "a fresh sync, not the command"
    );
    agent.receive(b"\xff{\"return\": 2}\n");
    assert_eq!(outputs(&mut agent), [AgentOutput::Synced { sync_id: 2 }]);
    assert!(transmitted(&mut agent).starts_with(b"{\"execute\": \"guest-ping\""));
    assert_eq!(agent.running(), Some(ping));
}

/// Found by the agent_ops fuzz target: a leftover longer than the size
/// limit before the delimiter swallowed the sync's reply.
#[test]
fn an_oversize_leftover_does_not_swallow_the_sync_reply() {
    let mut agent = Agent::new(AgentConfig::default().max_message_size(52).first_sync_id(5));
    agent.execute("guest-ping", &()).unwrap();
    transmitted(&mut agent);
    let mut bytes = b"\xff{\"return\": \"".to_vec();
    bytes.extend_from_slice(&[b'x'; 200]);
    bytes.extend_from_slice(b"\xff{\"return\": 5}\n");
    agent.receive(&bytes);
    assert_eq!(outputs(&mut agent), [AgentOutput::Synced { sync_id: 5 }]);
}

/// An unexpected message while in step with nothing running loses the
/// step, however large it is.
#[test]
fn an_oversize_message_nobody_asked_for_loses_the_step() {
    let mut agent = Agent::new(AgentConfig::default().max_message_size(52).first_sync_id(5));
    assert!(agent.sync());
    transmitted(&mut agent);
    agent.receive(b"\xff{\"return\": 5}\n");
    assert!(agent.is_in_step());
    agent.receive(format!("{{\"return\": \"{}\"}}\n", "x".repeat(100)).as_bytes());
    assert!(!agent.is_in_step());
}
