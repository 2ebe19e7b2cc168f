//! Command-line options.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// Run the shell.
    Run(Options),
    /// Print the help text.
    Help,
    /// Print the version.
    Version,
}

/// How to run the shell.
#[derive(Debug, PartialEq)]
pub struct Options {
    /// Where QMP is served.
    pub target: Target,
    /// Human monitor mode: every line goes through `human-monitor-command`.
    pub hmp: bool,
    /// Indented JSON (else one line per value).
    pub pretty: bool,
    /// Print each request before sending it.
    pub verbose: bool,
    /// Deadline for connecting and for each command.
    pub timeout: Option<Duration>,
    /// Negotiate out-of-band execution.
    pub oob: bool,
    /// The socket is a guest agent's.
    pub agent: bool,
    /// Where the interactive history is kept.
    pub history: History,
    /// Where to write a transcript of the QMP session.
    pub record: Option<PathBuf>,
}

/// A QMP server's address.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// A Unix socket.
    Unix(PathBuf),
    /// `HOST:PORT` over TCP.
    Tcp(String),
}

/// The history file choice.
#[derive(Debug, PartialEq, Eq)]
pub enum History {
    /// `$XDG_STATE_HOME/qmp-shell/history`, else
    /// `$HOME/.local/state/qmp-shell/history`.
    Default,
    /// This file.
    File(PathBuf),
    /// None.
    Off,
}

pub const HELP: &str = "\
Usage: qmp-shell [OPTIONS] <SOCKET | HOST:PORT>
       qmp-shell --agent [OPTIONS] <SOCKET | HOST:PORT>

An interactive QMP (QEMU Machine Protocol) shell. Type commands as
`name key=value ...` or as JSON requests, one per line; replies are printed
as JSON, errors as `error: <class>: <description>`, and events as they
arrive. Tab completes command names; the history is kept across sessions.
When standard input is not a terminal, lines are read plainly from it:

    echo query-status | qmp-shell /tmp/qmp.sock

Arguments:
  <SOCKET | HOST:PORT>  A Unix socket path, or HOST:PORT for TCP.
                        `unix:PATH` and `tcp:HOST:PORT` say which outright.

Options:
  -H, --hmp           Human monitor mode: send each line through
                      human-monitor-command and print the text it returns
  -p, --pretty        Print JSON indented (the default)
  -c, --compact       Print each JSON value on one line
  -v, --verbose       Print each request's JSON before sending it
  -t, --timeout SECS  Give up connecting, and waiting for each reply, after
                      SECS seconds (fractions allowed; default: 10 s to
                      connect, no limit on replies)
  -a, --agent         The socket is a QEMU guest agent's (QGA): the same
                      syntax, commands such as guest-ping or guest-info;
                      the shell syncs with the agent before the first
                      command and after one that timed out (default
                      timeout: 10 s)
      --oob           Negotiate out-of-band execution (for JSON requests
                      with \"exec-oob\")
      --record FILE   Write a transcript of the session to FILE: every
                      QMP message in and out with its time, as JSON lines
                      that qmp-mock can replay (not with --agent)
      --history FILE  Keep the history in FILE (default:
                      $XDG_STATE_HOME/qmp-shell/history)
      --no-history    Keep no history file
  -h, --help          Print this help
  -V, --version       Print the version

Syntax of a line:
  name key=value ...   values are JSON numbers, true, false or null where
                       they parse, strings otherwise; 'single' quotes give a
                       string as written, \"double\" quotes a JSON string,
                       {...} and [...] JSON objects and arrays (spaces
                       allowed); dotted keys nest: file.driver=file
  {\"execute\": ...}     a whole QMP request
  # ...                a comment

A successful `quit` ends the shell once QEMU has closed the connection.
At the prompt, Ctrl-C drops the line being typed, or stops waiting for the
running command; a script is stopped by it.

Exit status: 0 when every command succeeded, 1 when one failed or the
connection could not be made or ended, 2 on a usage error, 130 on SIGINT
(Ctrl-C) outside the prompt or SIGTERM.
";

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed, String> {
    use lexopt::prelude::*;
    let mut parser =
        lexopt::Parser::from_iter(std::iter::once(OsString::from("qmp-shell")).chain(args));
    let mut target = None;
    let mut options = Options {
        target: Target::Tcp(String::new()),
        hmp: false,
        pretty: true,
        verbose: false,
        timeout: None,
        oob: false,
        agent: false,
        history: History::Default,
        record: None,
    };
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('H') | Long("hmp") => options.hmp = true,
            Short('p') | Long("pretty") => options.pretty = true,
            Short('c') | Long("compact") => options.pretty = false,
            Short('v') | Long("verbose") => options.verbose = true,
            Short('t') | Long("timeout") => {
                let value = parser.value().map_err(|e| e.to_string())?;
                options.timeout = Some(parse_seconds(&value.to_string_lossy())?);
            }
            Long("oob") => options.oob = true,
            Short('a') | Long("agent") => options.agent = true,
            Long("history") => {
                let value = parser.value().map_err(|e| e.to_string())?;
                options.history = History::File(value.into());
            }
            Long("no-history") => options.history = History::Off,
            Long("record") => {
                let value = parser.value().map_err(|e| e.to_string())?;
                options.record = Some(value.into());
            }
            Short('h') | Long("help") => return Ok(Parsed::Help),
            Short('V') | Long("version") => return Ok(Parsed::Version),
            Value(value) if target.is_none() => {
                let text = value
                    .into_string()
                    .map_err(|v| format!("the address {v:?} is not UTF-8"))?;
                target = Some(parse_target(&text)?);
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    options.target = target.ok_or("missing the socket path or HOST:PORT to connect to")?;
    if options.agent && options.record.is_some() {
        return Err("--record records QMP sessions, not the guest agent's".into());
    }
    Ok(Parsed::Run(options))
}

/// `unix:PATH`, `tcp:HOST:PORT`, a path (anything with a `/`), `HOST:PORT`
/// (a numeric port after the last colon), or else a relative path.
pub fn parse_target(text: &str) -> Result<Target, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        if path.is_empty() {
            return Err("`unix:` needs a path".into());
        }
        return Ok(Target::Unix(path.into()));
    }
    if let Some(address) = text.strip_prefix("tcp:") {
        return match host_port(address) {
            Some(true) => Ok(Target::Tcp(address.into())),
            _ => Err(format!("`{address}` is not HOST:PORT")),
        };
    }
    if text.is_empty() {
        return Err("the address is empty".into());
    }
    if text.contains('/') {
        return Ok(Target::Unix(text.into()));
    }
    match host_port(text) {
        Some(true) => Ok(Target::Tcp(text.into())),
        Some(false) => Err(format!("`{text}` has no host before the port")),
        None => Ok(Target::Unix(text.into())),
    }
}

/// `None` if `text` does not end in `:PORT`; else whether a host precedes.
fn host_port(text: &str) -> Option<bool> {
    let (host, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    Some(!host.is_empty())
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("`{text}` is not a number of seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, String> {
        match parse(args.iter().map(OsString::from))? {
            Parsed::Run(options) => Ok(options),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let options = run(&["/tmp/qmp.sock"]).unwrap();
        assert_eq!(options.target, Target::Unix("/tmp/qmp.sock".into()));
        assert!(options.pretty && !options.hmp && !options.verbose && !options.oob);
        assert!(!options.agent);
        assert!(run(&["--agent", "/tmp/qga.sock"]).unwrap().agent);
        assert!(run(&["-a", "/tmp/qga.sock"]).unwrap().agent);
        assert_eq!(options.timeout, None);
        assert_eq!(options.history, History::Default);
    }

    #[test]
    fn flags() {
        let options = run(&[
            "-Hcv",
            "--timeout=2.5",
            "--oob",
            "--history",
            "/h",
            "localhost:4444",
        ])
        .unwrap();
        assert!(options.hmp && !options.pretty && options.verbose && options.oob);
        assert_eq!(options.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(options.history, History::File("/h".into()));
        assert_eq!(options.target, Target::Tcp("localhost:4444".into()));
        let options = run(&["-c", "-p", "-t", "1", "--no-history", "s"]).unwrap();
        assert!(options.pretty);
        assert_eq!(options.history, History::Off);
    }

    #[test]
    fn record() {
        assert_eq!(run(&["/tmp/qmp.sock"]).unwrap().record, None);
        let options = run(&["--record", "/tmp/session.jsonl", "/tmp/qmp.sock"]).unwrap();
        assert_eq!(options.record, Some(PathBuf::from("/tmp/session.jsonl")));
        assert_eq!(options.target, Target::Unix("/tmp/qmp.sock".into()));
        let options = run(&["localhost:4444", "--record=s.jsonl"]).unwrap();
        assert_eq!(options.record, Some(PathBuf::from("s.jsonl")));
        assert!(run(&["--record"]).is_err());
        // The agent's sessions are not QMP: refused, whatever the order.
        for args in [
            ["--agent", "--record", "F", "/tmp/qga.sock"],
            ["--record", "F", "-a", "/tmp/qga.sock"],
        ] {
            let refused = run(&args).unwrap_err();
            assert!(refused.contains("--record"), "{refused}");
        }
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse(["-h".into()]), Ok(Parsed::Help));
        assert_eq!(parse(["x".into(), "--help".into()]), Ok(Parsed::Help));
        assert_eq!(parse(["-V".into()]), Ok(Parsed::Version));
    }

    #[test]
    fn usage_errors() {
        assert!(run(&[]).unwrap_err().contains("missing"));
        assert!(run(&["a", "b"]).is_err());
        assert!(run(&["--bogus", "a"]).is_err());
        for bad in ["0", "-1", "x", "inf", "NaN"] {
            assert!(run(&["-t", bad, "s"]).is_err(), "{bad}");
        }
        assert!(run(&["-t"]).is_err());
    }

    #[test]
    fn targets() {
        let unix = |p: &str| Ok(Target::Unix(p.into()));
        let tcp = |a: &str| Ok(Target::Tcp(a.into()));
        assert_eq!(parse_target("qmp.sock"), unix("qmp.sock"));
        assert_eq!(parse_target("./a:4444"), unix("./a:4444"));
        assert_eq!(parse_target("/run/a:1"), unix("/run/a:1"));
        assert_eq!(parse_target("unix:x:1"), unix("x:1"));
        assert_eq!(parse_target("localhost:4444"), tcp("localhost:4444"));
        assert_eq!(parse_target("127.0.0.1:4444"), tcp("127.0.0.1:4444"));
        assert_eq!(parse_target("[::1]:4444"), tcp("[::1]:4444"));
        assert_eq!(parse_target("tcp:host:1"), tcp("host:1"));
        assert_eq!(parse_target("host:99999"), unix("host:99999"));
        assert!(parse_target(":4444").is_err());
        assert!(parse_target("tcp:host").is_err());
        assert!(parse_target("unix:").is_err());
        assert!(parse_target("").is_err());
    }
}
