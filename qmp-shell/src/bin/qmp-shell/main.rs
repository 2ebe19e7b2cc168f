//! `qmp-shell`: an interactive QMP shell. See the [crate docs](qmp_shell)
//! for its usage, or run `qmp-shell --help`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cli;
mod console;
mod input;
mod render;

use cli::{History, Options, Parsed, Target};
use console::Console;
use input::Input;
use qmp_shell::json::Json;
use qmp_shell::syntax::{self, Call};
use qmp_tokio::agent::AgentOptions;
use qmp_tokio::{
    ConnectOptions, Error, EventFilter, GuestAgent, Notice, Qmp, RawJson, Subscription,
    TranscriptSink,
};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;

fn main() -> ExitCode {
    let options = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Parsed::Run(options)) => options,
        Ok(Parsed::Help) => {
            print!("{}", cli::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            println!("qmp-shell {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("qmp-shell: {e}\nTry `qmp-shell --help`.");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("qmp-shell: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    ExitCode::from(runtime.block_on(run(options)))
}

/// How the main loop ended.
enum Ending {
    /// Input ended.
    Eof,
    /// The connection ended: why, unless that was already printed.
    Closed(Option<String>),
    /// Reading input failed.
    InputFailed,
    /// SIGINT or SIGTERM while waiting for input.
    Signal,
    /// `quit` succeeded, and QEMU closed the connection (or was given
    /// time to).
    Quit,
}

/// How one line went.
enum Outcome {
    Done,
    Failed,
    /// The connection ended (the error was printed).
    Closed,
    /// SIGINT while waiting for the reply: the wait was given up.
    Interrupted,
    /// SIGTERM while waiting for the reply.
    Terminated,
    /// `quit` succeeded: QEMU is going away.
    Quit,
}

async fn run(options: Options) -> u8 {
    let mut connect = ConnectOptions::default().want_oob(options.oob);
    if let Some(timeout) = options.timeout {
        connect.connect_timeout = timeout;
        connect.call_timeout = Some(timeout);
    }
    if let Some(path) = &options.record {
        match TranscriptSink::create(path) {
            Ok(sink) => connect = connect.record(sink),
            Err(e) => {
                eprintln!("qmp-shell: cannot record to {}: {e}", path.display());
                return 1;
            }
        }
    }
    let connected = match (&options.target, options.agent) {
        (Target::Unix(path), false) => Qmp::connect_unix(path, connect).await.map(Peer::Qmp),
        (Target::Tcp(address), false) => Qmp::connect_tcp(address.clone(), connect)
            .await
            .map(Peer::Qmp),
        (target, true) => {
            let mut agent_options = AgentOptions::default();
            if let Some(timeout) = options.timeout {
                agent_options = agent_options.connect_timeout(timeout).call_timeout(timeout);
            }
            match target {
                Target::Unix(path) => GuestAgent::connect_unix(path, agent_options).await,
                Target::Tcp(address) => {
                    GuestAgent::connect_tcp(address.clone(), agent_options).await
                }
            }
            .map(Peer::Agent)
        }
    };
    let peer = match connected {
        Ok(peer) => peer,
        Err(e) => {
            eprintln!("qmp-shell: {e}");
            return 1;
        }
    };
    let events = match &peer {
        Peer::Qmp(qmp) => Some(qmp.subscribe(EventFilter::all())),
        Peer::Agent(_) => None,
    };
    let (interrupt, terminate) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("qmp-shell: cannot handle signals: {e}");
            return 1;
        }
    };
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let (lines_tx, lines) = mpsc::channel(16);
    let mut shell = Shell {
        peer,
        events,
        interrupt,
        terminate,
        console: Console::Plain,
        lines,
        next_line: None,
        options,
        failed: false,
    };
    let editor = if interactive {
        match &shell.peer {
            Peer::Qmp(qmp) => {
                // `Version` shows another server's name itself.
                let version = &qmp.greeting().version;
                let qemu = if version.qemu().is_some() {
                    "QEMU "
                } else {
                    ""
                };
                println!("Connected to {qemu}{version}");
            }
            Peer::Agent(_) => println!("Connected to the guest agent's socket"),
        }
        let names = shell.command_names().await;
        println!("Tab completes command names; Ctrl-D quits.");
        let prompt = match (&shell.peer, shell.options.hmp) {
            (Peer::Agent(_), _) => "(QGA) ",
            (_, true) => "(qemu) ",
            (_, false) => "(QEMU) ",
        };
        match input::spawn_editor(
            prompt.to_owned(),
            names,
            history_path(&shell.options.history),
            lines_tx,
        ) {
            Ok(editor) => {
                shell.console = Console::editor(editor.printer, editor.terminal);
                shell.next_line = Some(editor.next);
                Some(editor.thread)
            }
            Err(e) => {
                eprintln!("qmp-shell: {e}");
                return 1;
            }
        }
    } else {
        input::spawn_plain(lines_tx);
        None
    };

    let ending = shell.main_loop().await;
    match &ending {
        Ending::Eof => {
            if let Some(thread) = editor {
                // After Ctrl-D the cursor is still on the prompt's line.
                println!();
                let _ = thread.join();
            }
            shell.print_queued_events().await;
        }
        Ending::Closed(why) => {
            shell.console.abandon_editor();
            if let Some(why) = why {
                shell
                    .console
                    .err(&format!("qmp-shell: QMP connection closed: {why}"));
            }
        }
        Ending::InputFailed | Ending::Signal => shell.console.abandon_editor(),
        // The editor is not reading: it waits for the reply to `quit`.
        Ending::Quit => {}
    }
    shell.peer.close();
    match ending {
        Ending::Signal => 130,
        Ending::Closed(_) | Ending::InputFailed => 1,
        Ending::Eof | Ending::Quit if shell.failed => 1,
        Ending::Eof | Ending::Quit => 0,
    }
}

/// The default history file: under `$XDG_STATE_HOME`, else
/// `$HOME/.local/state`.
fn history_path(choice: &History) -> Option<PathBuf> {
    let non_empty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    match choice {
        History::Off => None,
        History::File(path) => Some(path.clone()),
        History::Default => non_empty("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| non_empty("HOME").map(|home| PathBuf::from(home).join(".local/state")))
            .map(|state| state.join("qmp-shell").join("history")),
    }
}

/// What the shell talks to.
#[derive(Clone)]
enum Peer {
    Qmp(Qmp),
    Agent(GuestAgent),
}

impl Peer {
    async fn call(&self, call: &Call) -> Result<RawJson, Error> {
        match self {
            Peer::Qmp(qmp) if call.oob => qmp.call(&call.name, &call.arguments).oob().await,
            Peer::Qmp(qmp) => qmp.call(&call.name, &call.arguments).await,
            Peer::Agent(agent) => agent.call(&call.name, &call.arguments).await,
        }
    }

    fn close(&self) {
        match self {
            Peer::Qmp(qmp) => qmp.close(),
            Peer::Agent(agent) => agent.close(),
        }
    }
}

/// The next notice of `events`; never, without events (the agent sends
/// none).
async fn next_notice(events: &mut Option<Subscription>) -> Option<Notice> {
    match events {
        Some(events) => events.next().await,
        None => std::future::pending().await,
    }
}

struct Shell {
    peer: Peer,
    events: Option<Subscription>,
    interrupt: Signal,
    terminate: Signal,
    console: Console,
    lines: mpsc::Receiver<Input>,
    /// With the editor: tells it to read the next line.
    next_line: Option<std::sync::mpsc::Sender<()>>,
    options: Options,
    /// Whether any command has failed.
    failed: bool,
}

impl Shell {
    /// Runs lines until input ends, the connection ends, or a signal.
    /// Events are printed as they arrive, including while a command runs;
    /// the select is biased towards them so that an event QEMU sent before
    /// a reply is printed before it.
    async fn main_loop(&mut self) -> Ending {
        loop {
            tokio::select! {
                biased;
                notice = next_notice(&mut self.events) => {
                    if !self.show(notice) {
                        return Ending::Closed(Some(self.end_reason()));
                    }
                }
                input = self.lines.recv() => match input {
                    Some(Input::Line(line)) => {
                        self.console.set_reading(false);
                        match self.run_line(&line).await {
                            Outcome::Done => {}
                            Outcome::Failed => self.failed = true,
                            Outcome::Closed => return Ending::Closed(None),
                            // At the prompt Ctrl-C gives up on the command
                            // only; a script is stopped.
                            Outcome::Interrupted if self.next_line.is_some() => {
                                self.failed = true;
                            }
                            Outcome::Interrupted | Outcome::Terminated => return Ending::Signal,
                            Outcome::Quit => {
                                self.print_events_until_the_end().await;
                                return Ending::Quit;
                            }
                        }
                        if let Some(next) = &self.next_line {
                            self.console.set_reading(true);
                            let _ = next.send(());
                        }
                    }
                    Some(Input::Warning(text)) => self.console.err(&text),
                    Some(Input::Failed(text)) => {
                        // The editor has stopped reading.
                        self.console.set_reading(false);
                        self.console.err(&format!("qmp-shell: {text}"));
                        return Ending::InputFailed;
                    }
                    Some(Input::Eof) | None => {
                        // The editor, if any, has stopped reading.
                        self.console.set_reading(false);
                        return Ending::Eof;
                    }
                },
                _ = self.interrupt.recv() => return Ending::Signal,
                _ = self.terminate.recv() => return Ending::Signal,
            }
        }
    }

    /// Why the connection ended.
    fn end_reason(&self) -> String {
        self.events
            .as_ref()
            .and_then(Subscription::end_reason)
            .map_or_else(|| "it ended".to_owned(), |end| end.to_string())
    }

    /// Prints a notice; false (printing nothing) once the connection has
    /// ended.
    fn show(&mut self, notice: Option<Notice>) -> bool {
        match notice {
            Some(Notice::Event(event)) => {
                let text = render::event(&event.event, self.options.pretty);
                self.console.out(&text);
                true
            }
            Some(Notice::Lagged(missed)) => {
                self.console.err(&format!(
                    "warning: {missed} events were not shown (printing fell behind)"
                ));
                true
            }
            None => false,
        }
    }

    /// Runs one line, printing events that arrive meanwhile.
    async fn run_line(&mut self, line: &str) -> Outcome {
        let call = if self.options.hmp {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return Outcome::Done;
            }
            Call {
                name: "human-monitor-command".into(),
                arguments: Some(Json::Object(vec![(
                    "command-line".into(),
                    Json::String(line.into()),
                )])),
                oob: false,
            }
        } else {
            match syntax::parse_line(line) {
                Ok(Some(call)) => call,
                Ok(None) => return Outcome::Done,
                Err(e) => {
                    self.console.err(&format!("error: {e}"));
                    return Outcome::Failed;
                }
            }
        };
        if self.options.verbose {
            let text = render::json(&call.to_request(), self.options.pretty);
            self.console.out(&text);
        }
        let peer = self.peer.clone();
        let reply = peer.call(&call);
        tokio::pin!(reply);
        let mut events_open = true;
        let result = loop {
            tokio::select! {
                biased;
                notice = next_notice(&mut self.events), if events_open => {
                    // The reply tells how the call ended, closed or not.
                    if let Some(notice) = notice {
                        self.show(Some(notice));
                    } else {
                        events_open = false;
                    }
                }
                result = &mut reply => break result,
                _ = self.interrupt.recv() => {
                    self.console.err("error: interrupted; the reply will be dropped");
                    return Outcome::Interrupted;
                }
                _ = self.terminate.recv() => return Outcome::Terminated,
            }
        };
        let quit = if self.options.hmp {
            matches!(line.split_whitespace().next(), Some("quit" | "q"))
        } else {
            call.name == "quit"
        };
        let done = if quit { Outcome::Quit } else { Outcome::Done };
        match result {
            Ok(raw) if self.options.hmp => {
                let text = render::hmp_text(&raw);
                if !text.is_empty() {
                    self.console.out(&text);
                }
                done
            }
            Ok(raw) => {
                self.console.out(&render::reply(&raw, self.options.pretty));
                done
            }
            Err(e) => {
                self.console.err(&render::error(&e));
                if e.is_socket_closed() {
                    Outcome::Closed
                } else {
                    Outcome::Failed
                }
            }
        }
    }

    /// After `quit`: prints the events QEMU still sends until it closes the
    /// connection, or for 10 s (or the `--timeout`) at most.
    async fn print_events_until_the_end(&mut self) {
        let limit = self.options.timeout.unwrap_or(Duration::from_secs(10));
        let _ = tokio::time::timeout(limit, async {
            loop {
                let notice = next_notice(&mut self.events).await;
                if !self.show(notice) {
                    return;
                }
            }
        })
        .await;
    }

    /// Prints the events already received, without waiting for more.
    async fn print_queued_events(&mut self) {
        loop {
            tokio::select! {
                biased;
                notice = next_notice(&mut self.events) => {
                    if notice.is_none() {
                        return;
                    }
                    self.show(notice);
                }
                _ = std::future::ready(()) => return,
            }
        }
    }

    /// The names to complete: QMP commands from `query-commands`, or in
    /// human monitor mode the commands HMP's `help` lists.
    async fn command_names(&mut self) -> Vec<String> {
        #[derive(serde::Deserialize)]
        struct Command {
            name: String,
        }
        let qmp = match &self.peer {
            Peer::Qmp(qmp) => qmp,
            Peer::Agent(agent) => {
                #[derive(serde::Deserialize)]
                struct Info {
                    supported_commands: Vec<Command>,
                }
                return match agent.call("guest-info", &()).decode::<Info>().await {
                    Ok(info) => info
                        .supported_commands
                        .into_iter()
                        .map(|c| c.name)
                        .collect(),
                    Err(e) => {
                        eprintln!("warning: no completion of command names: {e}");
                        Vec::new()
                    }
                };
            }
        };
        let names = if self.options.hmp {
            let help = Json::Object(vec![("command-line".into(), Json::String("help".into()))]);
            qmp.call("human-monitor-command", &help)
                .timeout(Duration::from_secs(10))
                .await
                .map(|raw| input::hmp_command_names(&render::hmp_text(&raw)))
        } else {
            qmp.call("query-commands", &())
                .timeout(Duration::from_secs(10))
                .await
                .and_then(|raw| Ok(raw.decode::<Vec<Command>>()?))
                .map(|commands| commands.into_iter().map(|c| c.name).collect())
        };
        names.unwrap_or_else(|e| {
            eprintln!("warning: no completion of command names: {e}");
            Vec::new()
        })
    }
}
