//! The client and server machines talking to each other in memory.

use qmp_proto::{
    Capability, Client, ClientConfig, ClientOutput, Command, End, ErrorClass, ProtocolError,
    QmpError, RawJson, Reply, RequestId, SendError, Server, ServerConfig, ServerOutput, Timestamp,
    Version, VersionTriple,
};
use serde_json::{json, Value};
use std::collections::VecDeque;

/// A client and a server joined by an in-memory "socket".
struct Link {
    client: Client,
    server: Server,
    /// Client outputs not yet looked at by the test.
    client_outputs: Vec<ClientOutput>,
    /// Server outputs other than commands.
    server_outputs: Vec<ServerOutput>,
    /// Commands the server received and the test has not answered.
    commands: VecDeque<Command>,
    /// Every byte the server wrote, greeting included.
    server_wrote: Vec<u8>,
}

impl Link {
    fn new(client: ClientConfig, server: ServerConfig) -> Link {
        Link {
            client: Client::new(client),
            server: Server::new(server),
            client_outputs: Vec::new(),
            server_outputs: Vec::new(),
            commands: VecDeque::new(),
            server_wrote: Vec::new(),
        }
    }

    /// A client configured so, and a default server.
    fn with_client(client: ClientConfig) -> Link {
        Link::new(client, ServerConfig::default())
    }

    /// A link to a default server whose negotiation is done, its outputs
    /// cleared.
    fn negotiated(client: ClientConfig) -> Link {
        let mut link = Link::with_client(client);
        link.pump();
        assert!(
            matches!(
                link.take_client_outputs().as_slice(),
                [ClientOutput::Greeting(_), ClientOutput::Ready { .. }]
            ),
            "negotiation"
        );
        assert!(matches!(
            link.server_outputs.pop(),
            Some(ServerOutput::Negotiated { .. })
        ));
        link
    }

    /// A negotiated link whose client keeps one command in flight at most.
    fn one_at_a_time() -> Link {
        Link::negotiated(ClientConfig::default().max_in_flight(1))
    }

    /// Forgets `id`, which was pending: only the first time counts.
    fn forget(&mut self, id: RequestId) {
        assert!(self.client.forget(id));
        assert!(!self.client.forget(id), "forgotten only once");
        assert!(!self.client.is_pending(id));
    }

    fn default_negotiated() -> Link {
        Link::negotiated(ClientConfig::default())
    }

    /// Moves bytes both ways, draining both machines after every input, until
    /// neither has anything left to say.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(bytes) = self.server.poll_transmit() {
                self.server_wrote.extend_from_slice(&bytes);
                self.client.receive(&bytes);
                moved = true;
            }
            self.client_outputs
                .extend(std::iter::from_fn(|| self.client.poll_output()));
            while let Some(bytes) = self.client.poll_transmit() {
                self.server.receive(&bytes);
                moved = true;
            }
            while let Some(output) = self.server.poll_output() {
                match output {
                    ServerOutput::Command(command) => self.commands.push_back(command),
                    other => self.server_outputs.push(other),
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn take_client_outputs(&mut self) -> Vec<ClientOutput> {
        std::mem::take(&mut self.client_outputs)
    }

    /// The client's outputs once the server's EOF has been handled.
    fn client_outputs_after_eof(&mut self) -> Vec<ClientOutput> {
        self.client.receive_eof();
        self.pump();
        self.take_client_outputs()
    }

    /// Issues `name` and pumps it to the server.
    fn execute(&mut self, name: &str) -> RequestId {
        let id = self.client.execute(name, &()).expect("accepted");
        self.pump();
        id
    }

    fn received_names(&self) -> Vec<&str> {
        self.commands.iter().map(|c| c.name.as_str()).collect()
    }

    /// Answers the oldest command and checks that exactly its reply, for
    /// `id`, came out of the client.
    fn assert_next_answer_reaches(&mut self, id: RequestId) {
        let command = self.answer_next();
        let expected = reply(id, Ok(answer_of(&command.name)));
        assert_eq!(self.take_client_outputs(), [expected]);
    }

    /// Answers the oldest unanswered command with `{"answer": its name}`.
    fn answer_next(&mut self) -> Command {
        let command = self.commands.pop_front().expect("a command to answer");
        self.server
            .reply_ok(&command, &json!({ "answer": command.name }))
            .expect("serializes");
        self.pump();
        command
    }
}

fn reply(id: RequestId, result: Result<RawJson, QmpError>) -> ClientOutput {
    ClientOutput::Reply(Reply { id, result })
}

/// The answer's text as the server writes it: spaced as QEMU spaces it.
fn answer_of(name: &str) -> RawJson {
    let text = serde_json::to_string(&json!({ "answer": name })).expect("serializes");
    RawJson::from_text(text.replacen(':', ": ", 1)).expect("valid JSON")
}

fn assert_ended_with(outputs: &[ClientOutput], end: End) {
    assert_eq!(outputs, [ClientOutput::End(end)]);
}

/// After the end the client says nothing more, whatever it is given, and
/// takes no command.
fn assert_client_is_over(client: &mut Client) {
    client.receive(
        b"{\"event\": \"LATE\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n",
    );
    assert_eq!(client.poll_output(), None);
    assert!(client.is_ended());
    assert!(matches!(
        client.execute("query-status", &()),
        Err(SendError::Closed)
    ));
    assert!(matches!(
        client.execute_oob("query-status", &()),
        Err(SendError::Closed)
    ));
    assert_eq!(client.poll_transmit(), None);
}

// ----- negotiation ---------------------------------------------------------

#[test]
fn negotiation_enables_oob_only_when_offered_and_wanted() {
    let version = Version::new(
        VersionTriple {
            major: 10,
            minor: 0,
            micro: 2,
        },
        "loopback",
    );
    for offer in [false, true] {
        for want in [false, true] {
            let mut link = Link::new(
                ClientConfig::default().want_oob(want),
                ServerConfig::default()
                    .offer_oob(offer)
                    .version(version.clone()),
            );
            link.pump();
            let oob = offer && want;
            let outputs = link.take_client_outputs();
            let [ClientOutput::Greeting(greeting), ClientOutput::Ready { oob: ready_oob }] =
                outputs.as_slice()
            else {
                panic!("offer {offer}, want {want}: {outputs:?}");
            };
            assert_eq!(greeting.version, version);
            assert_eq!(greeting.offers(&Capability::Oob), offer);
            assert_eq!(link.client.greeting(), Some(greeting));
            assert_eq!(*ready_oob, oob, "offer {offer}, want {want}");
            assert_eq!(link.server_outputs, [ServerOutput::Negotiated { oob }]);
            assert!(link.client.is_ready() && link.server.is_negotiated());
            assert_eq!(link.client.oob_enabled(), oob);
            assert_eq!(link.server.oob_enabled(), oob);
        }
    }
}

#[test]
fn commands_issued_before_negotiation_wait_for_it() {
    let mut link = Link::with_client(ClientConfig::default());
    let first = link.client.execute("query-version", &()).unwrap();
    let second = link.client.execute("query-name", &()).unwrap();
    assert_eq!(
        link.client.poll_transmit(),
        None,
        "nothing before the greeting"
    );
    assert_eq!(link.client.queued(), 2);
    link.pump();
    assert_eq!(link.received_names(), ["query-version", "query-name"]);
    link.answer_next();
    link.answer_next();
    let outputs = link.take_client_outputs();
    assert_eq!(
        outputs[2..],
        [
            reply(first, Ok(answer_of("query-version"))),
            reply(second, Ok(answer_of("query-name")))
        ]
    );
}

#[test]
fn replies_are_matched_by_id_in_any_order() {
    let mut link = Link::default_negotiated();
    let ids: Vec<RequestId> = ["a", "b", "c"].map(|name| link.execute(name)).into();
    let mut commands: Vec<Command> = link.commands.drain(..).collect();
    commands.reverse();
    for command in &commands {
        link.server
            .reply_ok(command, &json!({ "answer": command.name }))
            .unwrap();
    }
    link.pump();
    assert_eq!(
        link.take_client_outputs(),
        [
            reply(ids[2], Ok(answer_of("c"))),
            reply(ids[1], Ok(answer_of("b"))),
            reply(ids[0], Ok(answer_of("a")))
        ]
    );
    assert_eq!(link.client.in_flight(), 0);
}

#[test]
fn error_replies_are_results_not_failures() {
    let mut link = Link::default_negotiated();
    let id = link.execute("device_del");
    let command = link.commands.pop_front().unwrap();
    let error = QmpError::new(ErrorClass::DeviceNotFound, "Device 'nope' not found");
    link.server.reply_error(&command, &error);
    link.pump();
    assert_eq!(link.take_client_outputs(), [reply(id, Err(error))]);
    assert!(link.client.is_ready());
}

// ----- out of band ---------------------------------------------------------

#[test]
fn execute_oob_needs_negotiated_oob() {
    let mut link = Link::with_client(ClientConfig::default().want_oob(true));
    assert!(matches!(
        link.client.execute_oob("query-name", &()),
        Err(SendError::NotReady)
    ));
    link.pump();
    assert_eq!(
        link.server_outputs,
        [ServerOutput::Negotiated { oob: true }]
    );
    assert!(link.commands.is_empty(), "the refused command was not sent");

    let mut without = Link::negotiated(ClientConfig::default().want_oob(false));
    assert!(matches!(
        without.client.execute_oob("query-name", &()),
        Err(SendError::OobNotNegotiated)
    ));
    assert_eq!(without.client.poll_transmit(), None);
}

#[test]
fn oob_command_is_sent_as_exec_oob_and_answered() {
    let mut link = Link::negotiated(ClientConfig::default().want_oob(true));
    let id = link.client.execute_oob("query-name", &()).unwrap();
    link.pump();
    assert!(link.commands[0].oob);
    assert_eq!(link.commands[0].name, "query-name");
    link.assert_next_answer_reaches(id);
}

// ----- window and queue ----------------------------------------------------

#[test]
fn commands_past_the_window_wait_for_free_slots_and_oob_skips_the_window() {
    let mut link = Link::negotiated(ClientConfig::default().want_oob(true));
    let window = link.client.window();
    assert_eq!(window, 8, "QEMU's queue is the limit with OOB");
    let names: Vec<String> = (0..window + 2).map(|i| format!("cmd-{i}")).collect();
    for name in &names {
        link.execute(name);
    }
    assert_eq!(link.received_names(), names[..window]);
    assert_eq!((link.client.in_flight(), link.client.queued()), (window, 2));

    link.client.execute_oob("urgent", &()).unwrap();
    link.pump();
    let last = |link: &Link| link.commands.back().map(|c| (c.name.clone(), c.oob));
    assert_eq!(last(&link), Some(("urgent".to_string(), true)));
    assert_eq!((link.client.in_flight(), link.client.queued()), (window, 2));

    // Each reply lets exactly one more command out.
    assert_eq!(link.answer_next().name, "cmd-0");
    assert_eq!(last(&link), Some((names[window].clone(), false)));
    assert_eq!((link.client.in_flight(), link.client.queued()), (window, 1));
    assert_eq!(link.answer_next().name, "cmd-1");
    assert_eq!(last(&link), Some((names[window + 1].clone(), false)));
    assert_eq!((link.client.in_flight(), link.client.queued()), (window, 0));
}

#[test]
fn commands_queued_before_negotiation_are_sent_up_to_the_window() {
    let mut link = Link::with_client(ClientConfig::default().max_in_flight(2));
    for name in ["a", "b", "c"] {
        link.client.execute(name, &()).unwrap();
    }
    link.pump();
    assert_eq!(link.received_names(), ["a", "b"]);
    assert_eq!(link.client.queued(), 1);
}

#[test]
fn full_queue_refuses_and_sends_nothing() {
    let config = ClientConfig::default().max_in_flight(1).max_queued(2);
    let mut link = Link::negotiated(config);
    link.execute("sent");
    link.execute("queued-1");
    link.execute("queued-2");
    assert!(matches!(
        link.client.execute("refused", &()),
        Err(SendError::QueueFull { limit: 2 })
    ));
    assert_eq!(link.client.poll_transmit(), None);
    assert_eq!((link.client.in_flight(), link.client.queued()), (1, 2));
    while !link.commands.is_empty() {
        link.answer_next();
    }
    assert_eq!(link.take_client_outputs().len(), 3);
    assert_eq!(link.client.queued(), 0);
}

#[test]
fn forgotten_queued_command_is_never_sent() {
    let mut link = Link::one_at_a_time();
    let sent = link.execute("sent");
    let queued = link.execute("queued");
    link.forget(queued);
    assert_eq!(link.client.queued(), 0);
    link.assert_next_answer_reaches(sent);
    assert!(
        link.commands.is_empty(),
        "the forgotten command reached the server"
    );
    assert_eq!(link.client.in_flight(), 0);
}

#[test]
fn forgotten_sent_command_keeps_its_slot_and_its_reply_is_dropped() {
    let mut link = Link::one_at_a_time();
    let forgotten = link.execute("forgotten");
    link.forget(forgotten);
    let next = link.execute("next");
    assert_eq!((link.client.in_flight(), link.client.queued()), (1, 1));
    assert_eq!(link.received_names(), ["forgotten"]);

    link.answer_next();
    assert_eq!(link.take_client_outputs(), []);
    assert_eq!(link.client.late_replies(), 1);
    assert_eq!(link.client.unknown_replies(), 0);
    assert_eq!(
        link.received_names(),
        ["next"],
        "the slot was freed by the late reply"
    );

    link.assert_next_answer_reaches(next);
}

// ----- odd replies ---------------------------------------------------------

#[test]
fn reply_with_unknown_id_is_dropped_and_counted() {
    let mut link = Link::default_negotiated();
    let stray_ids = ["999", "\"not-ours\"", "{\"nested\": [5]}"];
    for id in stray_ids {
        let id = RawJson::from_text(id).unwrap();
        link.server.reply(Some(&id), Ok(&answer_of("stray")));
    }
    link.pump();
    assert_eq!(link.take_client_outputs(), []);
    assert_eq!(link.client.unknown_replies(), stray_ids.len() as u64);
    let id = link.execute("still-works");
    link.assert_next_answer_reaches(id);
}

#[test]
fn error_without_id_with_nothing_in_flight_is_unattributed() {
    let mut link = Link::default_negotiated();
    let error = QmpError::generic("JSON parse error, invalid keyword 'bad'");
    link.server.reply(None, Err(&error));
    link.pump();
    assert_eq!(
        link.take_client_outputs(),
        [ClientOutput::UnattributedError(error)]
    );
    let id = link.execute("still-works");
    link.assert_next_answer_reaches(id);
}

/// QEMU's answer to a command it could not parse has no id: with one
/// command on the wire, it is that command's answer, at once, and the
/// window slot is free again.
#[test]
fn error_without_id_answers_the_one_command_in_flight() {
    let mut link = Link::default_negotiated();
    let pending = link.execute("pending");
    let error = QmpError::generic("JSON parse error, invalid keyword 'bad'");
    link.server.reply(None, Err(&error));
    link.pump();
    assert_eq!(
        link.take_client_outputs(),
        [ClientOutput::Reply(Reply {
            id: pending,
            result: Err(error)
        })]
    );
    assert!(!link.client.is_pending(pending));
    assert_eq!(link.client.in_flight(), 0);
}

/// Without OOB, QEMU reads a command only once it has answered the one
/// before: the error answers the oldest command on the wire, at once.
#[test]
fn error_without_id_answers_the_oldest_command_without_oob() {
    let mut link = Link::default_negotiated();
    let oldest = link.execute("oldest");
    let next = link.execute("next");
    let error = QmpError::generic("JSON parse error, invalid keyword 'bad'");
    link.server.reply(None, Err(&error));
    link.pump();
    assert_eq!(
        link.take_client_outputs(),
        [ClientOutput::Reply(Reply {
            id: oldest,
            result: Err(error)
        })]
    );
    assert!(link.client.is_pending(next));
}

/// With OOB, QEMU answers a parse error before the commands queued ahead
/// of it: with several on the wire, the error answers the one left once
/// the others have their replies, and nobody gets another's answer.
#[test]
fn error_without_id_answers_the_command_the_others_leave() {
    let mut link = Link::negotiated(ClientConfig::default().want_oob(true));
    assert!(link.client.oob_enabled());
    let first = link.execute("first");
    let broken = link.execute("broken");
    let last = link.execute("last");
    let error = QmpError::generic("JSON parse error, invalid keyword 'bad'");
    link.server.reply(None, Err(&error));
    link.pump();
    assert_eq!(link.take_client_outputs(), []);
    let ok = answer_of("ok");
    for id in [last, first] {
        let id = RawJson::from_text(id.get().to_string()).unwrap();
        link.server.reply(Some(&id), Ok(&ok));
    }
    link.pump();
    let outputs = link.take_client_outputs();
    let answered: Vec<_> = outputs
        .iter()
        .map(|output| match output {
            ClientOutput::Reply(reply) => (reply.id, reply.result.is_ok()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(answered, [(last, true), (first, true), (broken, false)]);
    assert_eq!(link.client.in_flight(), 0);
}

// ----- events --------------------------------------------------------------

#[test]
fn events_are_delivered_after_negotiation_only() {
    let mut link = Link::with_client(ClientConfig::default());
    let early = link.server.send_event("STOP", &(), Timestamp::default());
    assert!(!early.unwrap(), "no event before negotiation");
    link.pump();
    link.take_client_outputs();

    let stamp = Timestamp {
        seconds: -1,
        microseconds: -1,
    };
    assert!(link
        .server
        .send_event(
            "DEVICE_DELETED",
            &json!({"device": "disk0", "path": "/x"}),
            stamp
        )
        .unwrap());
    assert!(link.server.send_event("RESUME", &(), stamp).unwrap());
    link.pump();
    let outputs = link.take_client_outputs();
    let [ClientOutput::Event(deleted), ClientOutput::Event(resume)] = outputs.as_slice() else {
        panic!("{outputs:?}");
    };
    assert_eq!(
        (deleted.name.as_str(), deleted.timestamp),
        ("DEVICE_DELETED", stamp)
    );
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Deleted {
        device: Option<String>,
        path: String,
    }
    let expected = Deleted {
        device: Some("disk0".to_string()),
        path: "/x".to_string(),
    };
    assert_eq!(deleted.decode::<Deleted>().unwrap(), expected);
    assert_eq!(resume.name, "RESUME");
    assert_eq!(resume.data, None);
    assert_eq!(resume.decode::<Value>().unwrap(), json!({}));
}

/// The output with its payloads re-encoded compactly, so that a pretty
/// server's outputs compare equal to a plain one's.
fn compact(output: ClientOutput) -> ClientOutput {
    let recode = |raw: RawJson| RawJson::from_value(&raw.decode::<Value>().unwrap()).unwrap();
    match output {
        ClientOutput::Reply(Reply { id, result }) => reply(id, result.map(recode)),
        ClientOutput::Event(mut event) => {
            event.data = event.data.map(recode);
            ClientOutput::Event(event)
        }
        other => other,
    }
}

/// One session's client outputs (compacted) and the server's bytes, with
/// the server writing plain or pretty.
fn scripted_session(pretty: bool) -> (Vec<ClientOutput>, Vec<u8>) {
    let server = ServerConfig::default().pretty(pretty);
    let mut link = Link::new(ClientConfig::default().want_oob(true), server);
    let id = link
        .client
        .execute("query-status", &json!({"verbose": true}))
        .unwrap();
    link.pump();
    let command = link.commands.pop_front().unwrap();
    assert_eq!(
        command.decode_arguments::<Value>().unwrap(),
        json!({"verbose": true})
    );
    let status = json!({"status": "running", "running": true, "list": [1, {"a": []}]});
    link.server.reply_ok(&command, &status).unwrap();
    let data = json!({"reason": "host-qmp-quit", "guest": false});
    link.server
        .send_event("SHUTDOWN", &data, Timestamp::default())
        .unwrap();
    let error = QmpError::generic("QMP input must be a JSON object");
    link.server.reply(None, Err(&error));
    link.pump();
    let outputs: Vec<ClientOutput> = link
        .client_outputs_after_eof()
        .into_iter()
        .map(compact)
        .collect();
    assert_eq!(
        outputs[2..],
        [
            reply(id, Ok(RawJson::from_value(&status).unwrap())),
            ClientOutput::Event(qmp_proto::Event {
                name: "SHUTDOWN".to_string(),
                data: Some(RawJson::from_value(&data).unwrap()),
                timestamp: Timestamp::default(),
            }),
            ClientOutput::UnattributedError(error),
            ClientOutput::End(End::PeerClosed),
        ],
        "pretty: {pretty}"
    );
    (outputs, link.server_wrote)
}

#[test]
fn pretty_server_output_is_understood_as_the_plain_one() {
    let (plain, plain_wire) = scripted_session(false);
    let (pretty, pretty_wire) = scripted_session(true);
    assert_eq!(pretty, plain);
    let lines = |wire: &[u8]| wire.windows(2).filter(|w| w == b"\r\n").count();
    let messages = 5; // greeting, capabilities reply, reply, event, error
    assert_eq!(lines(&plain_wire), messages);
    assert!(
        lines(&pretty_wire) > 4 * messages,
        "pretty output is not multi-line"
    );
}

// ----- the end -------------------------------------------------------------

#[test]
fn eof_between_messages_is_peer_closed() {
    let mut link = Link::default_negotiated();
    let pending = link.execute("quit");
    let outputs = link.client_outputs_after_eof();
    assert_ended_with(&outputs, End::PeerClosed);
    assert!(!link.client.is_pending(pending));
    assert_client_is_over(&mut link.client);
}

#[test]
fn eof_inside_a_message_is_truncated() {
    let mut link = Link::default_negotiated();
    let partial = b"{\"return\": {\"status\": \"run";
    link.server.send_raw(partial);
    link.pump();
    assert_eq!(link.take_client_outputs(), [], "nothing before the EOF");
    let outputs = link.client_outputs_after_eof();
    let truncated = ProtocolError::Truncated {
        buffered: partial.len(),
    };
    assert_ended_with(&outputs, End::Protocol(truncated));
    assert_client_is_over(&mut link.client);
}

#[test]
fn oversize_message_ends_the_connection() {
    let limit = 256;
    let mut link = Link::negotiated(ClientConfig::default().max_message_size(limit));
    let id = link.execute("query-qmp-schema");
    let command = link.commands.pop_front().unwrap();
    link.server
        .reply_ok(&command, &"x".repeat(4 * limit))
        .unwrap();
    link.server
        .send_event("STOP", &(), Timestamp::default())
        .unwrap();
    link.pump();
    let outputs = link.take_client_outputs();
    assert_ended_with(
        &outputs,
        End::Protocol(ProtocolError::MessageTooLarge { limit }),
    );
    assert!(!link.client.is_pending(id));
    assert_client_is_over(&mut link.client);
}

#[test]
fn local_close_ends_once() {
    let mut link = Link::default_negotiated();
    link.client.close();
    link.client.close();
    link.pump();
    assert_ended_with(&link.take_client_outputs(), End::Local);
    assert_client_is_over(&mut link.client);
}

// ----- local misuse --------------------------------------------------------

#[test]
fn arguments_must_be_an_object() {
    let mut link = Link::default_negotiated();
    let refused = [json!([1, 2]), json!("text"), json!(42), json!(true)];
    for arguments in &refused {
        assert!(
            matches!(
                link.client.execute("x", arguments),
                Err(SendError::ArgumentsNotObject)
            ),
            "{arguments}"
        );
    }
    assert_eq!(link.client.poll_transmit(), None);
    link.client.execute("with-args", &json!({"a": 1})).unwrap();
    link.client.execute("without-args", &()).unwrap();
    link.pump();
    let arguments: Vec<Option<Value>> = link
        .commands
        .iter()
        .map(|c| c.arguments.as_ref().map(|a| a.decode().unwrap()))
        .collect();
    assert_eq!(arguments, [Some(json!({"a": 1})), None]);
}

// ----- the server's own answers ----------------------------------------------

fn error_answer(id: Option<Value>, class: &str, desc: &str) -> Value {
    let mut answer = json!({"error": {"class": class, "desc": desc}});
    if let Some(id) = id {
        answer["id"] = id;
    }
    answer
}

/// A server whose greeting has been read.
fn greeted_server(config: ServerConfig) -> Server {
    let mut server = Server::new(config);
    let greeting = server.poll_transmit().expect("a greeting");
    assert!(greeting.starts_with(b"{\"QMP\": "));
    server
}

/// Writes `text` to `server` as a client would; returns the server's
/// outputs and what it wrote back, parsed.
fn exchange(server: &mut Server, text: &str) -> (Vec<ServerOutput>, Vec<Value>) {
    server.receive(text.as_bytes());
    let outputs = std::iter::from_fn(|| server.poll_output()).collect();
    let mut wrote = Vec::new();
    while let Some(bytes) = server.poll_transmit() {
        wrote.extend_from_slice(&bytes);
    }
    let answers = serde_json::Deserializer::from_slice(&wrote)
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("the server writes JSON");
    (outputs, answers)
}

#[test]
fn server_refuses_commands_before_negotiation() {
    let mut server = greeted_server(ServerConfig::default());
    let refusal = error_answer(
        Some(json!("early")),
        "CommandNotFound",
        "Expecting capabilities negotiation with 'qmp_capabilities'",
    );
    assert_eq!(
        exchange(&mut server, r#"{"execute": "query-status", "id": "early"}"#),
        (vec![], vec![refusal])
    );
    assert!(!server.is_negotiated());
    assert!(!server
        .send_event("STOP", &(), Timestamp::default())
        .unwrap());
}

#[test]
fn server_refuses_a_second_negotiation() {
    let mut server = greeted_server(ServerConfig::default());
    assert_eq!(
        exchange(&mut server, r#"{"execute": "qmp_capabilities", "id": 1}"#),
        (
            vec![ServerOutput::Negotiated { oob: false }],
            vec![json!({"return": {}, "id": 1})]
        )
    );
    let refusal = error_answer(
        Some(json!(2)),
        "CommandNotFound",
        "Capabilities negotiation is already complete, command ignored",
    );
    assert_eq!(
        exchange(&mut server, r#"{"execute": "qmp_capabilities", "id": 2}"#),
        (vec![], vec![refusal])
    );
    assert!(server.is_negotiated());
}

#[test]
fn server_refuses_capabilities_it_does_not_offer() {
    let mut server = greeted_server(ServerConfig::default().offer_oob(false));
    let refusal = error_answer(
        Some(json!(1)),
        "GenericError",
        "Capability 'oob' not available",
    );
    let request = r#"{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}, "id": 1}"#;
    assert_eq!(exchange(&mut server, request), (vec![], vec![refusal]));
    assert!(!server.is_negotiated());
}

#[test]
fn server_refuses_non_object_arguments() {
    let mut server = greeted_server(ServerConfig::default());
    exchange(&mut server, r#"{"execute": "qmp_capabilities"}"#);
    let refusal = error_answer(
        Some(json!(3)),
        "GenericError",
        "QMP input member 'arguments' must be an object",
    );
    let request = r#"{"execute": "device_del", "arguments": ["nope"], "id": 3}"#;
    assert_eq!(exchange(&mut server, request), (vec![], vec![refusal]));
}
