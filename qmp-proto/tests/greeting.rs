//! How the client takes the start of a connection that is not quite QEMU's
//! textbook one: events before the greeting (some QEMU versions have sent
//! one), and a greeting whose `version` is shaped otherwise (QMP servers
//! that are not QEMU, StratoVirt for one). Neither fails the connection;
//! anything else before the greeting still does, with `BadGreeting`.
//!
//! Every stream is fed under every chunking (whole, byte by byte, random
//! splits) and must give the same outputs.

mod common;

use common::{every_chunking, raw_value, replay_client, Capture};
use qmp_proto::typed::commands::QueryVersion;
use qmp_proto::{
    Client, ClientConfig, ClientOutput, End, Event, Greeting, ProtocolError, RawJson, Server,
    ServerConfig, Timestamp, Version, VersionTriple,
};
use serde_json::{json, Value};

/// QEMU's greeting, as QEMU 10.0 writes it (ids start at 0: the
/// negotiation reply is `NEGOTIATED`).
const QEMU_GREETING: &str = concat!(
    r#"{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "#,
    r#""package": "Debian 1:10.0.2+ds-2"}, "capabilities": ["oob"]}}"#,
    "\r\n"
);

/// StratoVirt's greeting (a reported one).
const STRATOVIRT_GREETING: &str = concat!(
    r#"{"QMP": {"version": {"StratoVirt": {"micro": 1, "minor": 0, "major": 2}, "#,
    r#""package": "StratoVirt-2.1.0"}, "capabilities": []}}"#,
    "\r\n"
);

/// StratoVirt's version object, as in [`STRATOVIRT_GREETING`].
const STRATOVIRT_VERSION: &str =
    r#"{"StratoVirt": {"micro": 1, "minor": 0, "major": 2}, "package": "StratoVirt-2.1.0"}"#;

/// The answer to `qmp_capabilities`, the client's first command.
const NEGOTIATED: &str = "{\"return\": {}, \"id\": 0}\r\n";

/// An event as QEMU writes it (the client's fast path), small data.
const EARLY: &str = concat!(
    r#"{"timestamp": {"seconds": 1700000000, "microseconds": 5}, "#,
    r#""event": "EARLY", "data": {"path": "/a\"b", "n": -1, "list": [1, {"x": null}]}}"#,
    "\r\n"
);

/// An event laid out otherwise (members in another order, `pretty=on`
/// lines), with data larger than the client copies out of its buffer.
fn other_early() -> String {
    let long = "é".repeat(400);
    format!(
        "{{\r\n    \"event\": \"EARLIER\",\r\n    \"data\": {{\r\n        \"long\": \"{long}\"\r\n    }},\r\n    \"timestamp\": {{\r\n        \"seconds\": -1,\r\n        \"microseconds\": -1\r\n    }}\r\n}}\r\n"
    )
}

/// An event after negotiation.
const LATER: &str =
    "{\"timestamp\": {\"seconds\": 2, \"microseconds\": 0}, \"event\": \"STOP\"}\r\n";

/// The client's outputs for `stream` fed in `chunks`, drained after each,
/// then EOF; and its greeting at the end.
fn outputs_of(chunks: &[&[u8]]) -> (Vec<ClientOutput>, Option<Greeting>) {
    let mut client = Client::new(ClientConfig::default());
    let mut outputs = Vec::new();
    for chunk in chunks {
        client.receive(chunk);
        outputs.extend(std::iter::from_fn(|| client.poll_output()));
        while client.poll_transmit().is_some() {}
    }
    client.receive_eof();
    outputs.extend(std::iter::from_fn(|| client.poll_output()));
    (outputs, client.greeting().cloned())
}

/// The outputs for `stream`, the same under every chunking.
fn outputs_under_every_chunking(stream: &str) -> (Vec<ClientOutput>, Option<Greeting>) {
    let whole = outputs_of(&[stream.as_bytes()]);
    for (label, chunks) in every_chunking(stream.as_bytes()) {
        assert_eq!(outputs_of(&chunks), whole, "{label}");
    }
    whole
}

/// The event `text` (one message) says, read with serde_json alone.
fn expected_event(text: &str) -> (String, Option<Value>, Timestamp) {
    let value: Value = serde_json::from_str(text).unwrap();
    let timestamp = serde_json::from_value(value["timestamp"].clone()).unwrap();
    let name = value["event"].as_str().unwrap().to_string();
    (name, value.get("data").cloned(), timestamp)
}

/// `event` reduced to what [`expected_event`] gives.
fn seen(event: &Event) -> (String, Option<Value>, Timestamp) {
    let data = event.data.as_ref().map(raw_value);
    (event.name.clone(), data, event.timestamp)
}

/// `stream` gives out its events before the greeting ([`EARLY`] if it
/// starts with it), then ends with `BadGreeting`, under every chunking.
fn assert_events_then_bad_greeting(stream: &str) {
    let (outputs, greeting) = outputs_under_every_chunking(stream);
    let events = usize::from(stream.starts_with(EARLY));
    let bad_greeting = |output: &ClientOutput| {
        matches!(
            output,
            ClientOutput::End(End::Protocol(ProtocolError::BadGreeting { .. }))
        )
    };
    assert!(
        outputs.len() == events + 1
            && outputs[..events]
                .iter()
                .all(|o| matches!(o, ClientOutput::Event(e) if e.name == "EARLY"))
            && bad_greeting(&outputs[events]),
        "{stream:?}: {outputs:?}"
    );
    assert!(greeting.is_none());
}

// ----- events before the greeting ------------------------------------------

#[test]
fn an_event_before_the_greeting_is_given_out_then_the_greeting() {
    let stream = [EARLY, QEMU_GREETING, NEGOTIATED, LATER].concat();
    let (outputs, greeting) = outputs_under_every_chunking(&stream);
    let [ClientOutput::Event(early), ClientOutput::Greeting(greeted), ClientOutput::Ready { oob: false }, ClientOutput::Event(later), ClientOutput::End(End::PeerClosed)] =
        outputs.as_slice()
    else {
        panic!("{outputs:?}");
    };
    assert_eq!(seen(early), expected_event(EARLY));
    // The data as it was sent, byte for byte.
    let data = early.data.as_ref().unwrap().as_str();
    assert_eq!(
        data,
        r#"{"path": "/a\"b", "n": -1, "list": [1, {"x": null}]}"#
    );
    assert_eq!(seen(later), expected_event(LATER));
    assert_eq!(greeting.as_ref(), Some(greeted));
    let triple = VersionTriple {
        major: 10,
        minor: 0,
        micro: 2,
    };
    assert_eq!(greeted.version.qemu(), Some(triple));
}

#[test]
fn two_events_before_the_greeting_are_given_out_in_order() {
    let other = other_early();
    let stream = [EARLY, &other, QEMU_GREETING, NEGOTIATED].concat();
    let (outputs, greeting) = outputs_under_every_chunking(&stream);
    let [ClientOutput::Event(first), ClientOutput::Event(second), ClientOutput::Greeting(_), ClientOutput::Ready { .. }, ClientOutput::End(End::PeerClosed)] =
        outputs.as_slice()
    else {
        panic!("{outputs:?}");
    };
    assert_eq!(seen(first), expected_event(EARLY));
    assert_eq!(seen(second), expected_event(&other));
    assert!(greeting.is_some());
}

#[test]
fn an_event_before_the_greeting_negotiates_nothing() {
    // The greeting never comes: nothing is written, nothing is ready.
    let mut client = Client::default();
    client.receive(EARLY.as_bytes());
    assert!(matches!(client.poll_output(), Some(ClientOutput::Event(_))));
    assert_eq!(client.poll_output(), None);
    assert_eq!(client.poll_transmit(), None);
    assert!(client.greeting().is_none() && !client.is_ready() && !client.is_ended());
}

#[test]
fn anything_else_before_the_greeting_is_still_a_bad_greeting() {
    let streams = [
        // A reply, first or after an event.
        [NEGOTIATED, QEMU_GREETING].concat(),
        [EARLY, NEGOTIATED, QEMU_GREETING].concat(),
        // An error without id.
        [
            EARLY,
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}}\r\n",
        ]
        .concat(),
        // Garbage or a non-object after an event.
        [EARLY, "Welcome\r\n", QEMU_GREETING].concat(),
        [EARLY, "[1, 2]\r\n", QEMU_GREETING].concat(),
        [EARLY, "{\"hello\": 1}\r\n", QEMU_GREETING].concat(),
    ];
    for stream in streams {
        assert_events_then_bad_greeting(&stream);
    }
}

// ----- greetings of other shapes -------------------------------------------

#[test]
fn a_greeting_of_another_server_is_taken() {
    let pretty = STRATOVIRT_GREETING
        .replace("{\"", "{\r\n    \"")
        .replace(", ", ",\r\n    ");
    for stream in [
        [STRATOVIRT_GREETING, NEGOTIATED].concat(),
        [&pretty, NEGOTIATED].concat(),
        [EARLY, STRATOVIRT_GREETING, NEGOTIATED].concat(),
    ] {
        let (outputs, greeting) = outputs_under_every_chunking(&stream);
        let greeted = outputs
            .iter()
            .find_map(|o| match o {
                ClientOutput::Greeting(g) => Some(g),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{stream:?}: {outputs:?}"));
        assert_eq!(greeting.as_ref(), Some(greeted));
        assert!(
            outputs.contains(&ClientOutput::Ready { oob: false }),
            "{outputs:?}"
        );
        let version = &greeted.version;
        assert_eq!(version.qemu(), None);
        let triple = VersionTriple {
            major: 2,
            minor: 0,
            micro: 1,
        };
        assert_eq!(version.product(), Some(("StratoVirt", triple)));
        assert_eq!(version.package(), "StratoVirt-2.1.0");
        assert_eq!(version.to_string(), "StratoVirt 2.0.1 (StratoVirt-2.1.0)");
        // Kept whole, in its order, less the whitespace.
        assert_eq!(version.raw().as_str(), STRATOVIRT_VERSION.replace(' ', ""));
        // And serialized as it came.
        let received: Value = serde_json::from_str(STRATOVIRT_VERSION).unwrap();
        assert_eq!(serde_json::to_value(version).unwrap(), received);
    }
}

#[test]
fn a_version_of_any_object_shape_is_kept() {
    let cases = [
        // Numbers of no known shape: shown as the JSON.
        (
            r#"{"server": "x", "build": [1, 2]}"#,
            None,
            r#"{"server":"x","build":[1,2]}"#,
        ),
        (r#"{}"#, None, "{}"),
        // QEMU's member of the wrong shape: not QEMU's numbers.
        (
            r#"{"qemu": "10.0.2", "package": "p"}"#,
            None,
            r#"{"qemu":"10.0.2","package":"p"}"#,
        ),
        // QEMU's member preferred to another of the same shape.
        (
            r#"{"x": {"major": 1, "minor": 2, "micro": 3}, "qemu": {"major": 9, "minor": 2, "micro": 0}}"#,
            Some(("qemu", (9, 2, 0))),
            "9.2.0",
        ),
        (
            r#"{"x": {"major": 1, "minor": 2, "micro": 3, "extra": true}}"#,
            Some(("x", (1, 2, 3))),
            "x 1.2.3",
        ),
    ];
    for (text, product, shown) in cases {
        let stream = format!("{{\"QMP\": {{\"version\": {text}, \"capabilities\": []}}}}\r\n");
        let (outputs, _) = outputs_under_every_chunking(&stream);
        let Some(ClientOutput::Greeting(greeting)) = outputs.first() else {
            panic!("{text}: {outputs:?}");
        };
        let version = &greeting.version;
        let product = product.map(|(name, (major, minor, micro))| {
            (
                name,
                VersionTriple {
                    major,
                    minor,
                    micro,
                },
            )
        });
        assert_eq!(version.product(), product, "{text}");
        assert_eq!(
            version.qemu(),
            product.filter(|(n, _)| *n == "qemu").map(|p| p.1)
        );
        assert_eq!(version.to_string(), shown, "{text}");
        let received: Value = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_value(version).unwrap(), received, "{text}");
    }
}

/// Whitespace goes between tokens only: strings keep theirs, escapes
/// included.
#[test]
fn a_version_keeps_its_strings_whole() {
    let text = "{ \"qemu\" : {\"major\": 1,\r\n \"minor\": 2, \"micro\": 3},\n\t\"package\": \" a \\\" b\\\\ \\t\" }";
    let version = Version::from_raw(RawJson::from_text(text).unwrap()).unwrap();
    assert_eq!(
        version.raw().as_str(),
        r#"{"qemu":{"major":1,"minor":2,"micro":3},"package":" a \" b\\ \t"}"#
    );
    assert_eq!(version.package(), " a \" b\\ \t");
    assert_eq!(version.to_string(), "1.2.3 ( a \" b\\ \t)");
}

#[test]
fn a_version_that_is_no_object_is_a_bad_greeting() {
    for version in ["3", "\"10.0.2\"", "[10, 0, 2]", "null", "true"] {
        let stream = format!("{{\"QMP\": {{\"version\": {version}, \"capabilities\": []}}}}\r\n");
        assert_events_then_bad_greeting(&stream);
        assert_events_then_bad_greeting(&[EARLY, &stream].concat());
    }
    assert!(Version::from_raw(RawJson::from_text("[1, 2, 3]").unwrap()).is_err());
}

#[test]
fn the_server_role_greets_with_the_version_it_is_given() {
    let foreign = Version::from_raw(RawJson::from_text(STRATOVIRT_VERSION).unwrap()).unwrap();
    let qemu = Version::new(
        VersionTriple {
            major: 10,
            minor: 0,
            micro: 2,
        },
        "mock \"1\" \\ a  b\t",
    );
    for version in [foreign, qemu, Version::default()] {
        for pretty in [false, true] {
            let config = ServerConfig::default()
                .version(version.clone())
                .offer_oob(false)
                .pretty(pretty);
            let mut server = Server::new(config);
            let greeting = server.poll_transmit().unwrap();
            let (outputs, greeted) = outputs_of(&[&greeting]);
            assert!(
                matches!(outputs[0], ClientOutput::Greeting(_)),
                "{outputs:?}"
            );
            assert_eq!(greeted.unwrap().version, version, "pretty {pretty}");
        }
    }
}

/// `Version::new` is QEMU's own shape: equal to what a real QEMU greets
/// with, and `Display` is as it always was.
#[test]
fn version_new_equals_what_qemu_greets_with() {
    for capture in Capture::all() {
        let replay = replay_client(&capture, &[&capture.s2c]);
        let Some(ClientOutput::Greeting(greeting)) = replay.outputs.first() else {
            panic!("{}: no greeting", capture.name);
        };
        let sent = &capture.server_messages()[0]["QMP"]["version"];
        let number = |name: &str| sent["qemu"][name].as_u64().unwrap();
        let triple = VersionTriple {
            major: number("major"),
            minor: number("minor"),
            micro: number("micro"),
        };
        let package = sent["package"].as_str().unwrap();
        let version = Version::new(triple, package);
        assert_eq!(greeting.version, version, "{}", capture.name);
        assert_eq!(greeting.version.qemu(), Some(triple));
        assert_eq!(greeting.version.package(), package);
        assert_eq!(
            greeting.version.to_string(),
            format!(
                "{}.{}.{} ({package})",
                triple.major, triple.minor, triple.micro
            )
        );
        assert_eq!(raw_value(greeting.version.raw()), *sent);
    }
    let bare = Version::new(VersionTriple::default(), "");
    assert_eq!(bare.to_string(), "0.0.0");
    assert_eq!(bare, Version::default());
}

/// `query-version`'s typed result takes QEMU's answer and another server's.
#[test]
fn query_version_decodes_any_shape() {
    let qemu = RawJson::from_value(&json!({
        "qemu": {"micro": 2, "minor": 0, "major": 10},
        "package": "Debian 1:10.0.2+ds-2"
    }))
    .unwrap();
    let version: Version = qemu
        .decode::<<QueryVersion as qmp_proto::typed::Command>::Returns>()
        .unwrap();
    assert_eq!(
        version.qemu().map(|v| (v.major, v.minor, v.micro)),
        Some((10, 0, 2))
    );
    assert_eq!(version.to_string(), "10.0.2 (Debian 1:10.0.2+ds-2)");
    let other: Version = RawJson::from_text(STRATOVIRT_VERSION)
        .unwrap()
        .decode()
        .unwrap();
    assert_eq!(other.qemu(), None);
    // From a `Value` too (the raw text is then serde_json's).
    let from_value: Version =
        serde_json::from_value(json!({"qemu": {"major": 1, "minor": 2, "micro": 3}})).unwrap();
    assert_eq!(from_value.to_string(), "1.2.3");
}
