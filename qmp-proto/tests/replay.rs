//! Real QEMU sessions replayed through the client machine, under every
//! chunking: the client must send the commands the recording client sent,
//! with the same ids, and give out exactly what the recorded server said.
//!
//! Expectations are read from the capture files with serde_json, not from
//! the crate, and not hard-coded.

mod common;

use common::{every_chunking, json_stream, raw_value, replay_client, Capture, ClientReplay};
use qmp_proto::{ClientOutput, End, ErrorClass, QmpError, RawJson, OOB_QUEUE_LIMIT};
use serde_json::{json, Value};
use std::collections::{BTreeSet, VecDeque};

/// A client output reduced to what a capture can tell about it.
#[derive(Debug, PartialEq)]
enum Seen {
    Greeting(Value),
    Ready {
        oob: bool,
    },
    Reply {
        id: u64,
        result: Result<Value, (String, String)>,
    },
    UnattributedError {
        class: String,
        desc: String,
    },
    Event {
        name: String,
        data: Option<Value>,
        timestamp: (i64, i64),
    },
    End(End),
}

impl Seen {
    fn of(output: &ClientOutput) -> Seen {
        match output {
            ClientOutput::Greeting(greeting) => {
                Seen::Greeting(serde_json::to_value(greeting).expect("greeting serializes"))
            }
            ClientOutput::Ready { oob } => Seen::Ready { oob: *oob },
            ClientOutput::Reply(reply) => Seen::Reply {
                id: reply.id.get(),
                result: match &reply.result {
                    Ok(value) => Ok(raw_value(value)),
                    Err(error) => Err(class_and_desc(error)),
                },
            },
            ClientOutput::UnattributedError(error) => {
                let (class, desc) = class_and_desc(error);
                Seen::UnattributedError { class, desc }
            }
            ClientOutput::Event(event) => Seen::Event {
                name: event.name.clone(),
                data: event.data.as_ref().map(raw_value),
                timestamp: (event.timestamp.seconds, event.timestamp.microseconds),
            },
            ClientOutput::End(end) => Seen::End(end.clone()),
        }
    }
}

fn class_and_desc(error: &QmpError) -> (String, String) {
    (error.class.as_str().to_string(), error.desc.clone())
}

fn text(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value}"))
        .to_string()
}

/// What the client must give out for a capture, read from its `.s2c`, and
/// how many replies it must drop as unknown.
struct Expected {
    outputs: Vec<Seen>,
    unknown_replies: u64,
    /// Our commands answered by an error reply without an id (see
    /// [`OnTheWire`]).
    answered_without_id: BTreeSet<u64>,
}

/// Which of the replayed client's commands are on the wire, message by
/// message. The sessions' id-less errors answer input the recording
/// script wrote by hand, but the replayed client, which sends all its
/// commands at once, takes each for the answer of one of its own (the rule
/// `Client` documents: without OOB the oldest on the wire; with OOB, of
/// the commands on the wire when it came, the one left once the others
/// have their replies). Its real reply is then unknown. Worked out here
/// from the capture alone.
struct OnTheWire {
    window: usize,
    oob_negotiated: bool,
    sent: BTreeSet<u64>,
    oob: BTreeSet<u64>,
    queued: VecDeque<u64>,
    in_band: usize,
    /// Id-less errors waiting for their command, with the candidates.
    errors: VecDeque<((String, String), BTreeSet<u64>)>,
}

impl OnTheWire {
    /// Everything issued at once, once negotiated.
    fn issue_all(&mut self, commands: &[common::SentCommand], first: u64) {
        for (offset, command) in commands.iter().enumerate() {
            let id = first + offset as u64;
            if command.oob {
                self.oob.insert(id);
                self.sent.insert(id);
            } else {
                self.queued.push_back(id);
            }
        }
        self.flush();
    }

    fn flush(&mut self) {
        while self.in_band < self.window {
            let Some(id) = self.queued.pop_front() else {
                return;
            };
            self.sent.insert(id);
            self.in_band += 1;
        }
    }

    /// Command `id` is answered; whether it was on the wire.
    fn answered(&mut self, id: u64) -> bool {
        if !self.sent.remove(&id) {
            return false;
        }
        if !self.oob.contains(&id) {
            self.in_band -= 1;
        }
        self.flush();
        for (_, candidates) in &mut self.errors {
            candidates.remove(&id);
        }
        true
    }

    /// The outputs an id-less error (if any) and the replies so far make.
    fn match_errors(&mut self, error: Option<(String, String)>, expected: &mut Expected) {
        if let Some(error) = error {
            if self.sent.is_empty() {
                let (class, desc) = error;
                expected
                    .outputs
                    .push(Seen::UnattributedError { class, desc });
                return;
            }
            self.errors.push_back((error, self.sent.clone()));
        }
        while let Some((_, candidates)) = self.errors.front() {
            let within = self
                .errors
                .iter()
                .filter(|(_, c)| c.is_subset(candidates))
                .count();
            if self.oob_negotiated && candidates.len() > 1 && within < candidates.len() {
                return;
            }
            let culprit = candidates.first().copied();
            let Some(((class, desc), _)) = self.errors.pop_front() else {
                return;
            };
            match culprit {
                Some(id) => {
                    self.answered(id);
                    expected.answered_without_id.insert(id);
                    let result = Err((class, desc));
                    expected.outputs.push(Seen::Reply { id, result });
                }
                None => expected
                    .outputs
                    .push(Seen::UnattributedError { class, desc }),
            }
        }
    }
}

fn expected_from_capture(capture: &Capture) -> Expected {
    let negotiation_id = capture.negotiation().integer_id();
    let ours: Vec<u64> = capture
        .commands_after_negotiation()
        .iter()
        .filter_map(|command| command.integer_id())
        .collect();
    let mut expected = Expected {
        outputs: Vec::new(),
        unknown_replies: 0,
        answered_without_id: BTreeSet::new(),
    };
    let commands = capture.commands_after_negotiation();
    let max_in_flight = capture.client_config().max_in_flight;
    let mut wire = OnTheWire {
        oob_negotiated: capture.negotiates_oob(),
        window: match capture.negotiates_oob() {
            true => max_in_flight.min(OOB_QUEUE_LIMIT),
            false => max_in_flight,
        },
        sent: BTreeSet::new(),
        oob: BTreeSet::new(),
        queued: VecDeque::new(),
        in_band: 0,
        errors: VecDeque::new(),
    };
    for message in capture.server_messages() {
        if let Some(greeting) = message.get("QMP") {
            expected.outputs.push(Seen::Greeting(greeting.clone()));
        } else if let Some(name) = message.get("event") {
            expected.outputs.push(Seen::Event {
                name: name.as_str().expect("event name").to_string(),
                data: message.get("data").cloned(),
                timestamp: (
                    message["timestamp"]["seconds"].as_i64().expect("seconds"),
                    message["timestamp"]["microseconds"].as_i64().expect("µs"),
                ),
            });
        } else if let Some(id) = message.get("id") {
            let id = id.as_u64();
            if id.is_some() && id == negotiation_id {
                expected.outputs.push(Seen::Ready {
                    oob: capture.negotiates_oob(),
                });
                let first = negotiation_id.expect("an integer id") + 1;
                wire.issue_all(&commands, first);
            } else if let Some(id) = id.filter(|id| ours.contains(id) && wire.answered(*id)) {
                let result = match message.get("return") {
                    Some(value) => Ok(value.clone()),
                    None => Err((
                        text(&message, "/error/class"),
                        text(&message, "/error/desc"),
                    )),
                };
                expected.outputs.push(Seen::Reply { id, result });
                wire.match_errors(None, &mut expected);
            } else {
                expected.unknown_replies += 1;
            }
        } else {
            let error = (
                text(&message, "/error/class"),
                text(&message, "/error/desc"),
            );
            wire.match_errors(Some(error), &mut expected);
        }
    }
    expected.outputs.push(Seen::End(End::PeerClosed));
    expected
}

/// Our ids are consecutive from the one after `qmp_capabilities`'s, and equal
/// the recording's wherever the recording used an integer.
fn assert_ids_match_capture(capture: &Capture, replay: &ClientReplay) {
    let commands = capture.commands_after_negotiation();
    assert_eq!(replay.issued.len(), commands.len());
    let first = capture.negotiation().integer_id().expect("integer id") + 1;
    for (offset, (command, id)) in commands.iter().zip(&replay.issued).enumerate() {
        assert_eq!(id.get(), first + offset as u64, "id of {}", command.name);
        if let Some(recorded) = command.integer_id() {
            assert_eq!(id.get(), recorded, "id of {}", command.name);
        }
    }
}

/// What the client wrote is the recording's `qmp_capabilities` and commands
/// (the non-integer ids replaced by ours), compared as JSON.
fn assert_sent_matches_capture(capture: &Capture, replay: &ClientReplay) {
    let negotiation = capture.negotiation();
    let mut expected = vec![wire_form(
        &negotiation,
        negotiation.integer_id().expect("integer id"),
    )];
    let commands = capture.commands_after_negotiation();
    for (command, id) in commands.iter().zip(&replay.issued) {
        expected.push(wire_form(command, id.get()));
    }
    let mut sent = json_stream(&replay.sent);
    sent.sort_by_key(|message| message["id"].as_u64());
    assert_eq!(sent, expected);
}

fn wire_form(command: &common::SentCommand, id: u64) -> Value {
    let key = if command.oob { "exec-oob" } else { "execute" };
    let mut message = json!({ key: command.name, "id": id });
    if let Some(arguments) = &command.arguments {
        message["arguments"] = arguments.clone();
    }
    message
}

/// Commands whose id the server could not echo as ours (not an integer)
/// stay pending, unless an id-less error answered them; every other one
/// was answered.
fn assert_pending_match_capture(capture: &Capture, expected: &Expected, replay: &ClientReplay) {
    let commands = capture.commands_after_negotiation();
    let answered = &expected.answered_without_id;
    for ((command, pending), id) in commands
        .iter()
        .zip(&replay.pending_before_eof)
        .zip(&replay.issued)
    {
        assert_eq!(
            *pending,
            command.integer_id().is_none() && !answered.contains(&id.get()),
            "pending state of {} (recorded id {:?})",
            command.name,
            command.id
        );
    }
}

/// The typed classes of the errors the sessions provoked on purpose.
fn assert_error_classes(capture: &Capture, replay: &ClientReplay) {
    let provoked = [
        ("device_del", ErrorClass::DeviceNotFound),
        ("no-such-command", ErrorClass::CommandNotFound),
        ("blockdev-del", ErrorClass::GenericError),
    ];
    let commands = capture.commands_after_negotiation();
    let mut checked = 0;
    for (command, id) in commands.iter().zip(&replay.issued) {
        let class = match provoked.iter().find(|(name, _)| *name == command.name) {
            Some((_, class)) => class.clone(),
            // QEMU refuses OOB for the command the session tried it with.
            None if command.oob => ErrorClass::GenericError,
            None => continue,
        };
        let error = reply_to(replay, id.get())
            .as_ref()
            .expect_err("an error reply");
        assert_eq!(error.class, class, "class of the reply to {}", command.name);
        checked += 1;
    }
    assert!(checked > 0, "{}: no provoked error found", capture.name);
}

fn reply_to(replay: &ClientReplay, id: u64) -> &Result<RawJson, QmpError> {
    let mut replies = replay.outputs.iter().filter_map(|output| match output {
        ClientOutput::Reply(reply) if reply.id.get() == id => Some(&reply.result),
        _ => None,
    });
    let reply = replies.next().unwrap_or_else(|| panic!("no reply to {id}"));
    assert!(replies.next().is_none(), "two replies to {id}");
    reply
}

/// The capture's own counts agree with each other: what the `.c2s` says
/// the server could not attribute matches what the `.s2c` holds.
fn assert_expectations_are_consistent(capture: &Capture, expected: &Expected) {
    let inputs = capture.client_inputs();
    let unparsable = inputs
        .iter()
        .filter(|input| !matches!(input, common::ClientInput::Command(_)))
        .count();
    let unattributed = expected
        .outputs
        .iter()
        .filter(|seen| matches!(seen, Seen::UnattributedError { .. }))
        .count();
    let answered_without_id = expected.answered_without_id.len();
    assert_eq!(unparsable, unattributed + answered_without_id);
    let (before, after) = capture.commands_split_at_negotiation();
    // Replies to ids that were not ours, and the real replies of commands
    // an id-less error answered first (whose ids were ours).
    let not_ours = before.len() - 1 + after.iter().filter(|c| c.integer_id().is_none()).count();
    let late = (expected.answered_without_id.iter())
        .filter(|id| after.iter().any(|c| c.integer_id() == Some(**id)))
        .count();
    assert_eq!(expected.unknown_replies, (not_ours + late) as u64);
    let events = expected
        .outputs
        .iter()
        .filter(|seen| matches!(seen, Seen::Event { .. }))
        .count();
    assert!(events > 0, "{}: a session without events", capture.name);
}

/// Compares output sequences, naming the first difference (a whole
/// schema reply is too large to diff by eye).
fn assert_same_outputs(seen: &[Seen], expected: &[Seen], context: &str) {
    let first_difference = seen.iter().zip(expected).position(|(s, e)| s != e);
    if let Some(at) = first_difference {
        panic!(
            "{context}: output {at} is\n{:?}\nbut the capture says\n{:?}",
            seen[at], expected[at]
        );
    }
    assert_eq!(seen.len(), expected.len(), "{context}: number of outputs");
}

fn check_capture(name: &'static str) {
    let capture = Capture::load(name);
    let expected = expected_from_capture(&capture);
    assert_expectations_are_consistent(&capture, &expected);
    for (chunking, chunks) in every_chunking(&capture.s2c) {
        let replay = replay_client(&capture, &chunks);
        let seen: Vec<Seen> = replay.outputs.iter().map(Seen::of).collect();
        assert_same_outputs(&seen, &expected.outputs, &format!("{name}, {chunking}"));
        assert_eq!(
            replay.unknown_replies, expected.unknown_replies,
            "{name}, {chunking}"
        );
        assert_eq!(replay.late_replies, 0, "{name}, {chunking}");
        assert_ids_match_capture(&capture, &replay);
        assert_sent_matches_capture(&capture, &replay);
        assert_pending_match_capture(&capture, &expected, &replay);
        assert_error_classes(&capture, &replay);
    }
}

#[test]
fn qemu_7_2_system() {
    check_capture("qemu-7.2-system");
}

#[test]
fn qemu_7_2_system_pretty() {
    check_capture("qemu-7.2-system-pretty");
}

#[test]
fn qemu_7_2_storage_daemon() {
    check_capture("qemu-7.2-storage-daemon");
}

#[test]
fn qemu_10_0_system() {
    check_capture("qemu-10.0-system");
}

#[test]
fn qemu_10_0_system_pretty() {
    check_capture("qemu-10.0-system-pretty");
}

#[test]
fn qemu_10_0_storage_daemon() {
    check_capture("qemu-10.0-storage-daemon");
}
