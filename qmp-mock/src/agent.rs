//! [`MockAgent`]: a QEMU guest agent stand-in.

use qmp_proto::agent::{AgentServer, AgentServerOutput};
use qmp_proto::{Command, QmpError};
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// What the mock agent does with a command.
#[derive(Debug)]
#[non_exhaustive]
pub enum AgentAction {
    /// Answers with this `return` value.
    Reply(Value),
    /// Answers with a `GenericError` saying this.
    Error(String),
    /// Never answers (a command without reply, or a hung agent).
    Never,
    /// Restarts, as an agent restarted in the guest does: the command is
    /// lost, as is anything half read; the channel stays open.
    Restart,
    /// Closes the channel.
    Close,
}

/// A mock guest agent on a thread, over one end of a socket pair: the
/// agent's wire exactly as `qemu-ga` speaks it (through
/// [`AgentServer`](qmp_proto::agent::AgentServer)), syncs answered as it
/// answers them, and a script deciding what each command gets.
///
/// ```
/// use qmp_mock::{AgentAction, MockAgent};
/// use serde_json::json;
///
/// let (socket, agent) = MockAgent::pair(b"", |command| match command.name.as_str() {
///     "guest-ping" => AgentAction::Reply(json!({})),
///     _ => AgentAction::Error("not here".into()),
/// });
/// smol::block_on(async {
///     let ga = qmp_smol::GuestAgent::from_unix_stream(socket, Default::default())?;
///     ga.ping().await?;
///     ga.close();
///     Ok::<_, qmp_smol::Error>(())
/// })
/// .unwrap();
/// assert_eq!(agent.join()[1], "guest-ping");
/// ```
#[derive(Debug)]
pub struct MockAgent {
    thread: Option<JoinHandle<Vec<String>>>,
}

impl MockAgent {
    /// A mock that writes `leftovers` at once (what an earlier client
    /// left in the channel), then serves with `script`; and the client's
    /// end.
    pub fn pair(
        leftovers: &[u8],
        script: impl FnMut(&Command) -> AgentAction + Send + 'static,
    ) -> (UnixStream, MockAgent) {
        Self::pair_gated(leftovers, None, script)
    }

    /// [`pair`](Self::pair), with an agent that reads nothing until
    /// `gate` says so (or is dropped): an agent not started yet, whose
    /// channel QEMU already accepts.
    pub fn pair_gated(
        leftovers: &[u8],
        gate: Option<mpsc::Receiver<()>>,
        script: impl FnMut(&Command) -> AgentAction + Send + 'static,
    ) -> (UnixStream, MockAgent) {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let leftovers = leftovers.to_vec();
        let thread = std::thread::Builder::new()
            .name("qmp-mock-agent".into())
            .spawn(move || {
                if let Some(gate) = gate {
                    let _ = gate.recv();
                }
                serve(theirs, &leftovers, script)
            })
            .expect("mock agent thread");
        (
            ours,
            MockAgent {
                thread: Some(thread),
            },
        )
    }

    /// Waits until the client closed its end, and returns what the mock
    /// saw, in order: `sync N` for each sync, and each command's name.
    pub fn join(mut self) -> Vec<String> {
        match self.thread.take().expect("joined once").join() {
            Ok(seen) => seen,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

fn serve(
    mut stream: UnixStream,
    leftovers: &[u8],
    mut script: impl FnMut(&Command) -> AgentAction,
) -> Vec<String> {
    let mut server = AgentServer::new();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    if stream.write_all(leftovers).is_err() {
        return seen;
    }
    loop {
        let n = match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return seen,
            Ok(n) => n,
        };
        server.receive(&buffer[..n]);
        while let Some(output) = server.poll_output() {
            match output {
                AgentServerOutput::Synced { sync_id } => seen.push(format!("sync {sync_id}")),
                AgentServerOutput::Command(command) => {
                    seen.push(command.name.clone());
                    match script(&command) {
                        AgentAction::Reply(value) => {
                            if server.reply_ok(&command, &value).is_err() {
                                server.reply_error(&command, &QmpError::generic("bad JSON"));
                            }
                        }
                        AgentAction::Error(desc) => {
                            server.reply_error(&command, &QmpError::generic(desc))
                        }
                        AgentAction::Never => {}
                        AgentAction::Restart => server.restart(),
                        AgentAction::Close => return seen,
                    }
                }
                AgentServerOutput::End(_) => return seen,
            }
        }
        while let Some(bytes) = server.poll_transmit() {
            if stream.write_all(&bytes).is_err() {
                return seen;
            }
        }
    }
}
