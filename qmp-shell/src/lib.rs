//! `qmp-shell`: an interactive shell for the QEMU Machine Protocol (QMP).
//!
//! Connect it to a QMP socket and type commands; replies come back as JSON,
//! errors as `error: <class>: <description>`, and events are printed as they
//! arrive, above the line being typed. Tab completes command names (from
//! `query-commands`, fetched when the shell connects) and the history is kept
//! across sessions. On anything other than a terminal it reads lines plainly
//! from standard input, so it can be scripted.
//!
//! ```text
//! $ qemu-system-x86_64 -M none -display none -qmp unix:/tmp/qmp.sock,server=on,wait=off &
//! $ qmp-shell /tmp/qmp.sock
//! Connected to QEMU 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)
//! Tab completes command names; Ctrl-D quits.
//! (QEMU) query-st<TAB><TAB>
//! query-stats          query-stats-schemas  query-status
//! (QEMU) query-status
//! {
//!   "status": "running",
//!   "running": true
//! }
//! (QEMU) stop
//! {
//!   "event": "STOP",
//!   "timestamp": {
//!     "seconds": 1767225600,
//!     "microseconds": 123456
//!   }
//! }
//! {}
//! (QEMU) device_del id=nope
//! error: DeviceNotFound: Device 'nope' not found
//! (QEMU) blockdev-add driver=raw node-name=disk0 file.driver=null-co file.size=1048576
//! {}
//! ```
//!
//! Scripted, with `-c` for one JSON value per line:
//!
//! ```text
//! $ printf 'query-status\n{"execute": "query-version"}\n' | qmp-shell -c /tmp/qmp.sock
//! {"status":"running","running":true}
//! {"qemu":{"micro":2,"minor":0,"major":10},"package":"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1"}
//! $ echo 'info version' | qmp-shell -H /tmp/qmp.sock
//! 10.0.2Debian 1:10.0.2+ds-2+deb13u1~bpo12+1
//! ```
//!
//! # Command line
//!
//! `qmp-shell [OPTIONS] <SOCKET | HOST:PORT>`: a path (anything with a `/`,
//! or not ending in `:PORT`) is a Unix socket, `HOST:PORT` is TCP;
//! `unix:PATH` and `tcp:HOST:PORT` say which outright.
//!
//! | option | meaning |
//! | --- | --- |
//! | `-H`, `--hmp` | human monitor mode: each line goes through `human-monitor-command`; its text is printed, completion offers HMP's commands |
//! | `-p`, `--pretty` | JSON indented (the default) |
//! | `-c`, `--compact` | each JSON value on one line |
//! | `-v`, `--verbose` | print each request's JSON before sending it |
//! | `-t SECS`, `--timeout SECS` | give up connecting, and waiting for each reply, after `SECS` seconds |
//! | `--oob` | negotiate out-of-band execution, for `{"exec-oob": ...}` lines |
//! | `--history FILE`, `--no-history` | where the history is kept; by default `$XDG_STATE_HOME/qmp-shell/history` (or under `~/.local/state`) |
//!
//! Output: replies and events on standard output; without a terminal, errors
//! on standard error. Exit status: 0 when every command succeeded, 1 when
//! one failed, the connection could not be made or ended, 2 on a usage
//! error, 130 on SIGINT or SIGTERM. A successful `quit` ends the shell
//! too, once QEMU has closed the connection (its last events are printed);
//! lines after it are not run. At the prompt, Ctrl-C while typing
//! drops the line, and Ctrl-C while a command runs stops waiting for it (its
//! late reply is dropped) and the prompt comes back; a script is stopped.
//!
//! # Syntax of a line
//!
//! `name key=value ...`, with the values typed as JSON where they parse, or
//! a whole JSON request; [`syntax`] has the grammar. In short:
//!
//! | written | sent |
//! | --- | --- |
//! | `size=1024`, `x=-1.5`, `on=true`, `v=null` | numbers, booleans, `null` |
//! | `node-name=disk0`, `path=/tmp/a.img` | strings |
//! | `id='1'`, `id="1"`, `desc='two words'` | strings, quoted: single quotes as written, double quotes as JSON |
//! | `opts={"a": [1, 2]}`, `list=[1, 2]` | JSON objects and arrays (spaces allowed) |
//! | `file.driver=file file.filename=a.img` | `"file": {"driver": "file", "filename": "a.img"}` |
//! | `{"execute": "stop", "arguments": {}}` | the request's command and arguments |
//! | `# ...` | nothing (a comment) |
//!
//! A key given twice, or a key that is both a value and an object of nested
//! keys (`a=1 a.b=2`), is an error naming both; nothing is sent.
//!
//! # As a library
//!
//! The binary's grammar is here for other tools: [`syntax::parse_line`]
//! turns a line into a [`syntax::Call`] (a command name and JSON arguments),
//! and [`json::Json`] is the order-keeping JSON value it uses. Running the
//! command is [`qmp_tokio`]'s job:
//!
//! ```no_run
//! # async fn run(qmp: qmp_tokio::Qmp) -> Result<(), Box<dyn std::error::Error>> {
//! let call = qmp_shell::syntax::parse_line("device_del id=nic0")?.expect("not blank");
//! let reply = qmp.call(&call.name, &call.arguments).await?;
//! println!("{}", reply.as_str());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod json;
pub mod syntax;
