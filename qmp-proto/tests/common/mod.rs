//! Helpers shared by the integration tests: the recorded QEMU sessions (read
//! and understood with serde_json alone, independently of the crate), ways to
//! chunk a byte stream, and drivers that feed a stream to the client and
//! server machines the way a socket loop would.

// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

use qmp_proto::{
    Client, ClientConfig, ClientOutput, RequestId, Server, ServerConfig, ServerOutput,
};
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;

const CAPTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/captures/");

/// Every recorded session (see `tests/captures/README.md`).
pub const CAPTURES: [&str; 6] = [
    "qemu-7.2-system",
    "qemu-7.2-system-pretty",
    "qemu-7.2-storage-daemon",
    "qemu-10.0-system",
    "qemu-10.0-system-pretty",
    "qemu-10.0-storage-daemon",
];

/// One recorded session: what the client sent and what QEMU sent back.
pub struct Capture {
    pub name: &'static str,
    pub c2s: Vec<u8>,
    pub s2c: Vec<u8>,
}

impl Capture {
    pub fn load(name: &'static str) -> Capture {
        let read = |direction: &str| {
            let path = format!("{CAPTURE_DIR}{name}.{direction}");
            std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
        };
        Capture {
            name,
            c2s: read("c2s"),
            s2c: read("s2c"),
        }
    }

    pub fn all() -> Vec<Capture> {
        CAPTURES.into_iter().map(Capture::load).collect()
    }

    /// Every message QEMU sent, in order.
    pub fn server_messages(&self) -> Vec<Value> {
        json_stream(&self.s2c)
    }

    /// Every line the client wrote, classified.
    pub fn client_inputs(&self) -> Vec<ClientInput> {
        self.c2s
            .split(|&b| b == b'\n')
            .filter(|line| !line.trim_ascii().is_empty())
            .map(ClientInput::parse)
            .collect()
    }

    /// The commands the client wrote, in order.
    pub fn commands(&self) -> Vec<SentCommand> {
        self.client_inputs()
            .into_iter()
            .filter_map(|input| match input {
                ClientInput::Command(command) => Some(command),
                _ => None,
            })
            .collect()
    }

    /// The commands up to and including `qmp_capabilities`, and those after.
    pub fn commands_split_at_negotiation(&self) -> (Vec<SentCommand>, Vec<SentCommand>) {
        let mut commands = self.commands();
        let negotiation = commands
            .iter()
            .position(SentCommand::is_negotiation)
            .unwrap_or_else(|| panic!("{}: no qmp_capabilities", self.name));
        let after = commands.split_off(negotiation + 1);
        (commands, after)
    }

    /// The commands issued once negotiation completed, in order.
    pub fn commands_after_negotiation(&self) -> Vec<SentCommand> {
        self.commands_split_at_negotiation().1
    }

    /// The `qmp_capabilities` command the client sent.
    pub fn negotiation(&self) -> SentCommand {
        let (mut before, _) = self.commands_split_at_negotiation();
        before.pop().expect("split keeps qmp_capabilities")
    }

    /// Whether the session enabled out-of-band execution.
    pub fn negotiates_oob(&self) -> bool {
        let enabled = self.negotiation().arguments.and_then(|args| {
            let enable = args.get("enable")?.as_array()?.clone();
            Some(enable.contains(&Value::from("oob")))
        });
        enabled.unwrap_or(false)
    }

    /// The client configuration that reproduces the session's ids: the
    /// client numbers from 1, as the recording script did.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::default()
            .first_id(1)
            .want_oob(self.negotiates_oob())
    }
}

/// One line of client input in a capture.
#[derive(Debug, Clone)]
pub enum ClientInput {
    /// An object (a command, or an attempt at one).
    Command(SentCommand),
    /// Valid JSON that is not an object.
    NotAnObject,
    /// Not valid JSON.
    Malformed,
}

/// A command as the client wrote it.
#[derive(Debug, Clone)]
pub struct SentCommand {
    pub name: String,
    pub arguments: Option<Value>,
    pub id: Option<Value>,
    /// The id's text exactly as written.
    pub id_text: Option<String>,
    /// Sent with `exec-oob`.
    pub oob: bool,
}

impl ClientInput {
    fn parse(line: &[u8]) -> ClientInput {
        match serde_json::from_slice::<Value>(line) {
            Err(_) => ClientInput::Malformed,
            Ok(Value::Object(members)) => {
                let raw: BTreeMap<String, Box<RawValue>> =
                    serde_json::from_slice(line).expect("an object parses as raw members");
                let oob = members.contains_key("exec-oob");
                let name = members
                    .get(if oob { "exec-oob" } else { "execute" })
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                ClientInput::Command(SentCommand {
                    name,
                    arguments: members.get("arguments").cloned(),
                    id: members.get("id").cloned(),
                    id_text: raw.get("id").map(|id| id.get().to_string()),
                    oob,
                })
            }
            Ok(_) => ClientInput::NotAnObject,
        }
    }
}

impl SentCommand {
    pub fn is_negotiation(&self) -> bool {
        self.name == "qmp_capabilities"
    }

    /// The id, when it is one our client could have chosen (an integer).
    pub fn integer_id(&self) -> Option<u64> {
        self.id.as_ref()?.as_u64()
    }
}

/// Parses a stream of JSON values (a capture or what a machine wrote).
pub fn json_stream(bytes: &[u8]) -> Vec<Value> {
    serde_json::Deserializer::from_slice(bytes)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("not a stream of JSON values: {e}"))
}

/// Decodes a payload the machines hand out, for comparison with a capture.
pub fn raw_value(raw: &qmp_proto::RawJson) -> Value {
    serde_json::from_str(raw.as_str()).expect("RawJson holds valid JSON")
}

// ---------------------------------------------------------------------------
// Chunkings.

/// `data` cut at `points` (clamped, in any order, duplicates allowed).
pub fn split_at_points(data: &[u8], points: impl IntoIterator<Item = usize>) -> Vec<&[u8]> {
    let mut points: Vec<usize> = points.into_iter().map(|p| p.min(data.len())).collect();
    points.sort_unstable();
    points.dedup();
    let mut chunks = Vec::with_capacity(points.len() + 1);
    let mut start = 0;
    for point in points {
        chunks.push(&data[start..point]);
        start = point;
    }
    chunks.push(&data[start..]);
    chunks
}

/// `count` split points in `0..=len` drawn from a xorshift generator seeded
/// with `seed`, so a failure names a reproducible chunking.
pub fn seeded_split_points(len: usize, seed: u64, count: usize) -> Vec<usize> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % (len as u64 + 1)) as usize
        })
        .collect()
}

/// The chunkings every replay runs under: whole, byte by byte, and random
/// splits from few large pieces to many small ones.
pub fn every_chunking(data: &[u8]) -> Vec<(String, Vec<&[u8]>)> {
    let mut chunkings = vec![
        ("whole".to_string(), vec![data]),
        ("byte by byte".to_string(), data.chunks(1).collect()),
    ];
    for (seed, count) in [(1, 3), (2, 40), (3, 700), (4, data.len() / 4)] {
        let points = seeded_split_points(data.len(), seed, count);
        chunkings.push((
            format!("{count} random splits (seed {seed})"),
            split_at_points(data, points),
        ));
    }
    chunkings
}

// ---------------------------------------------------------------------------
// Drivers.

/// What a client replaying a capture did.
#[derive(Debug, PartialEq)]
pub struct ClientReplay {
    /// Every output, in order, including the final `End`.
    pub outputs: Vec<ClientOutput>,
    /// The ids of the capture's post-negotiation commands, in order.
    pub issued: Vec<RequestId>,
    /// For each of `issued`: still pending when the last byte had arrived
    /// (before the EOF ended everything).
    pub pending_before_eof: Vec<bool>,
    /// Everything the client wrote.
    pub sent: Vec<u8>,
    pub unknown_replies: u64,
    pub late_replies: u64,
}

/// Feeds `chunks` (a capture's `.s2c`, cut somehow) to a client configured
/// as the recording was, issuing the capture's commands as soon as the
/// client is ready, then says EOF. Drains outputs after every input, as the
/// crate docs ask.
pub fn replay_client(capture: &Capture, chunks: &[&[u8]]) -> ClientReplay {
    let commands = capture.commands_after_negotiation();
    let mut driver = ClientDriver {
        client: Client::new(capture.client_config()),
        commands: &commands,
        outputs: Vec::new(),
        issued: Vec::new(),
        sent: Vec::new(),
    };
    for chunk in chunks {
        driver.client.receive(chunk);
        driver.drain();
    }
    let pending_before_eof = driver
        .issued
        .iter()
        .map(|&id| driver.client.is_pending(id))
        .collect();
    driver.client.receive_eof();
    driver.drain();
    ClientReplay {
        pending_before_eof,
        unknown_replies: driver.client.unknown_replies(),
        late_replies: driver.client.late_replies(),
        outputs: driver.outputs,
        issued: driver.issued,
        sent: driver.sent,
    }
}

struct ClientDriver<'a> {
    client: Client,
    commands: &'a [SentCommand],
    outputs: Vec<ClientOutput>,
    issued: Vec<RequestId>,
    sent: Vec<u8>,
}

impl ClientDriver<'_> {
    fn drain(&mut self) {
        while let Some(output) = self.client.poll_output() {
            if matches!(output, ClientOutput::Ready { .. }) {
                self.issue_all();
            }
            self.outputs.push(output);
        }
        while let Some(bytes) = self.client.poll_transmit() {
            self.sent.extend_from_slice(&bytes);
        }
    }

    fn issue_all(&mut self) {
        for command in self.commands {
            let issued = if command.oob {
                self.client.execute_oob(&command.name, &command.arguments)
            } else {
                self.client.execute(&command.name, &command.arguments)
            };
            let id = issued.unwrap_or_else(|e| panic!("issuing {}: {e}", command.name));
            self.issued.push(id);
        }
    }
}

/// What a server fed a capture's `.c2s` did.
#[derive(Debug)]
pub struct ServerRun {
    /// Every output, in order, including the final `End`.
    pub outputs: Vec<ServerOutput>,
    /// Everything it wrote after its greeting: its own answers, since the
    /// commands it hands out are not answered here.
    pub written: Vec<u8>,
}

/// Feeds `chunks` to a default server, draining after every input, then EOF.
pub fn feed_server(chunks: &[&[u8]]) -> ServerRun {
    let mut server = Server::new(ServerConfig::default());
    let greeting = server.poll_transmit().expect("the server greets at once");
    assert!(greeting.starts_with(b"{\"QMP\": "));
    let mut run = ServerRun {
        outputs: Vec::new(),
        written: Vec::new(),
    };
    let mut drain = |server: &mut Server| {
        run.outputs
            .extend(std::iter::from_fn(|| server.poll_output()));
        while let Some(bytes) = server.poll_transmit() {
            run.written.extend_from_slice(&bytes);
        }
    };
    for chunk in chunks {
        server.receive(chunk);
        drain(&mut server);
    }
    server.receive_eof();
    drain(&mut server);
    run
}
