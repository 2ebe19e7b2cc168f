//! A QMP peer for the tests that need one to stop answering.

use serde_json::{json, Value};
use std::io::{BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// A QMP peer on a Unix socket at `path`, for one client: it greets,
/// negotiates, then answers only the commands `answer` says to, with
/// `{"return": {"n": N}}` where N counts the commands from 1; on a command
/// named `hangup` it closes the connection. Each command's
/// name is sent to the receiver as it arrives; the thread returns them all
/// once the client has gone.
pub fn stalling_peer(
    path: &Path,
    answer: fn(&str) -> bool,
) -> (JoinHandle<Vec<String>>, mpsc::Receiver<String>) {
    let listener = UnixListener::bind(path).unwrap();
    let (arrived, arrivals) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut writer = stream.try_clone().unwrap();
        let greeting = json!({"QMP": {
            "version": {"qemu": {"micro": 0, "minor": 0, "major": 10}, "package": ""},
            "capabilities": []
        }});
        writeln!(writer, "{greeting}").unwrap();
        let mut seen = Vec::new();
        let requests =
            serde_json::Deserializer::from_reader(BufReader::new(stream)).into_iter::<Value>();
        for request in requests {
            let Ok(request) = request else { break };
            let name = request["execute"].as_str().unwrap_or_default().to_owned();
            let reply = if name == "qmp_capabilities" {
                json!({"return": {}, "id": request["id"]})
            } else {
                seen.push(name.clone());
                let _ = arrived.send(name.clone());
                if name == "hangup" {
                    break;
                }
                if !answer(&name) {
                    continue;
                }
                json!({"return": {"n": seen.len()}, "id": request["id"]})
            };
            if writeln!(writer, "{reply}").is_err() {
                break;
            }
        }
        seen
    });
    (thread, arrivals)
}
