//! What real clients sent to QEMU, fed to the server machine under every
//! chunking: it must see the commands QEMU saw, and answer the input it
//! handles itself (negotiation, commands before it, garbage) as QEMU did.

mod common;

use common::{every_chunking, feed_server, json_stream, raw_value, Capture, SentCommand, CAPTURES};
use qmp_proto::{Command, End, Server, ServerConfig, ServerOutput};
use serde_json::Value;

const PARSE_ERROR_PREFIX: &str = "JSON parse error, ";

fn assert_command_is(got: &Command, sent: &SentCommand) {
    assert_eq!(got.name, sent.name);
    assert_eq!(got.oob, sent.oob, "oob flag of {}", sent.name);
    assert_eq!(
        got.arguments.as_ref().map(raw_value),
        sent.arguments,
        "arguments of {}",
        sent.name
    );
    assert_eq!(
        got.id.as_ref().map(|id| id.as_str().to_string()),
        sent.id_text,
        "id of {} (verbatim)",
        sent.name
    );
}

/// The server's outputs: negotiated once, then every command the client
/// sent after `qmp_capabilities`, then the end.
fn assert_outputs_match_capture(capture: &Capture, outputs: &[ServerOutput], context: &str) {
    let (_, after) = capture.commands_split_at_negotiation();
    let negotiated = ServerOutput::Negotiated {
        oob: capture.negotiates_oob(),
    };
    assert_eq!(outputs.first(), Some(&negotiated), "{context}");
    assert_eq!(
        outputs.last(),
        Some(&ServerOutput::End(End::PeerClosed)),
        "{context}"
    );
    let commands: Vec<&Command> = outputs[1..outputs.len() - 1]
        .iter()
        .map(|output| match output {
            ServerOutput::Command(command) => command,
            other => panic!("{context}: unexpected {other:?}"),
        })
        .collect();
    assert_eq!(commands.len(), after.len(), "{context}: number of commands");
    for (got, sent) in commands.iter().zip(&after) {
        assert_command_is(got, sent);
    }
}

/// QEMU's answers that the server machine gives by itself: those to the
/// commands up to negotiation, and the errors without an id.
fn protocol_answers(capture: &Capture) -> Vec<Value> {
    let (up_to_negotiation, _) = capture.commands_split_at_negotiation();
    let ids: Vec<Value> = up_to_negotiation
        .iter()
        .map(|command| command.id.clone().expect("an id"))
        .collect();
    capture
        .server_messages()
        .into_iter()
        .filter(|message| match message.get("id") {
            Some(id) => ids.contains(id),
            None => message.get("error").is_some(),
        })
        .collect()
}

/// Equal, except that a JSON parse error's details are serde_json's words
/// rather than QEMU's.
fn assert_same_answer(ours: &Value, qemus: &Value, context: &str) {
    let desc = |message: &Value| {
        message
            .pointer("/error/desc")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match desc(qemus) {
        Some(qemu_desc) if qemu_desc.starts_with(PARSE_ERROR_PREFIX) => {
            let our_desc = desc(ours).unwrap_or_default();
            assert!(
                our_desc.starts_with(PARSE_ERROR_PREFIX),
                "{context}: {our_desc:?}"
            );
            let without_desc = |message: &Value| {
                let mut message = message.clone();
                message["error"]["desc"] = Value::Null;
                message
            };
            assert_eq!(without_desc(ours), without_desc(qemus), "{context}");
        }
        _ => assert_eq!(ours, qemus, "{context}"),
    }
}

fn check_capture(capture: &Capture) {
    let expected_answers = protocol_answers(capture);
    assert!(!expected_answers.is_empty());
    for (chunking, chunks) in every_chunking(&capture.c2s) {
        let context = format!("{}, {chunking}", capture.name);
        let run = feed_server(&chunks);
        assert_outputs_match_capture(capture, &run.outputs, &context);
        let answers = json_stream(&run.written);
        assert_eq!(
            answers.len(),
            expected_answers.len(),
            "{context}: {answers:?}"
        );
        for (ours, qemus) in answers.iter().zip(&expected_answers) {
            assert_same_answer(ours, qemus, &context);
        }
    }
}

#[test]
fn every_capture_parses_into_the_commands_qemu_saw() {
    for name in CAPTURES {
        check_capture(&Capture::load(name));
    }
}

#[test]
fn system_captures_get_every_protocol_error_answered() {
    // Spelled out, though the comparison with QEMU's answers covers them.
    for name in CAPTURES.into_iter().filter(|name| name.contains("system")) {
        let capture = Capture::load(name);
        let answers = json_stream(&feed_server(&[&capture.c2s]).written);
        let errors: Vec<(&Value, &str, &str)> = answers
            .iter()
            .filter_map(|answer| {
                let class = answer.pointer("/error/class")?.as_str()?;
                let desc = answer.pointer("/error/desc")?.as_str()?;
                Some((answer.get("id").unwrap_or(&Value::Null), class, desc))
            })
            .collect();
        assert_eq!(errors.len(), 3, "{name}: {errors:?}");
        assert_eq!(
            errors[0],
            (
                &Value::from(0),
                "CommandNotFound",
                "Expecting capabilities negotiation with 'qmp_capabilities'"
            )
        );
        assert_eq!(
            errors[1],
            (
                &Value::Null,
                "GenericError",
                "QMP input must be a JSON object"
            )
        );
        assert_eq!(errors[2].0, &Value::Null);
        assert!(
            errors[2].2.starts_with(PARSE_ERROR_PREFIX),
            "{:?}",
            errors[2]
        );
    }
}

/// The object QEMU received in two writes arrives as one command, wherever
/// it is cut, and only once its last byte is in.
#[test]
fn object_split_across_writes_is_one_command() {
    const SPLIT_OBJECT: &[u8] = br#"{"execute": "query-name", "id": 11}"#;
    for name in CAPTURES.into_iter().filter(|name| name.contains("system")) {
        let capture = Capture::load(name);
        let start = capture
            .c2s
            .windows(SPLIT_OBJECT.len())
            .position(|window| window == SPLIT_OBJECT)
            .unwrap_or_else(|| panic!("{name}: the split object is not in the capture"));
        let end = start + SPLIT_OBJECT.len();
        for cut in start + 1..end {
            let mut server = Server::new(ServerConfig::default());
            server.receive(&capture.c2s[..cut]);
            let before = split_object_commands(&mut server);
            server.receive(&capture.c2s[cut..]);
            let after = split_object_commands(&mut server);
            assert_eq!((before, after), (0, 1), "{name}, cut at {cut}");
        }
    }
}

/// How many `query-name` commands with id 11 the server gives out now.
fn split_object_commands(server: &mut Server) -> usize {
    std::iter::from_fn(|| server.poll_output())
        .filter(|output| {
            matches!(output, ServerOutput::Command(command)
                if command.name == "query-name"
                    && command.id.as_ref().map(|id| id.as_str()) == Some("11"))
        })
        .count()
}

/// With `pretty=on` the id is re-indented but keeps its tokens: a number
/// no 64-bit type holds, and object members in the client's order.
#[test]
fn pretty_replies_echo_ids_token_for_token() {
    let id = r#"{"z": 18446744073709551616123, "a": [1.50e+3, "x, y"]}"#;
    let mut server = Server::new(ServerConfig::default().pretty(true));
    server.receive(b"{\"execute\": \"qmp_capabilities\"}");
    server.receive(format!(r#"{{"execute": "query-status", "id": {id}}}"#).as_bytes());
    let mut commands = Vec::new();
    while let Some(output) = server.poll_output() {
        if let ServerOutput::Command(command) = output {
            commands.push(command);
        }
    }
    let [command] = &commands[..] else {
        panic!("expected one command, got {commands:?}");
    };
    while server.poll_transmit().is_some() {}
    server.reply_ok(command, &()).unwrap();
    let mut wrote = Vec::new();
    while let Some(bytes) = server.poll_transmit() {
        wrote.extend_from_slice(&bytes);
    }
    let wrote = String::from_utf8(wrote).unwrap();
    let expected = "{\r\n    \"return\": null,\r\n    \"id\": {\r\n        \"z\": 18446744073709551616123,\r\n        \"a\": [\r\n            1.50e+3,\r\n            \"x, y\"\r\n        ]\r\n    }\r\n}\r\n";
    assert_eq!(wrote, expected);
}
