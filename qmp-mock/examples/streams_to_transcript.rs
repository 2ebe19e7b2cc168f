//! Converts a session captured as two raw byte streams (what the client
//! sent, what the server sent: `socat -r/-R`, `strace -e write`, or the
//! project's `tests/captures/NAME.c2s` and `NAME.s2c`) into a transcript
//! that `qmp_mock::replay` plays back:
//!
//! ```sh
//! cargo run -p qmp-mock --example streams_to_transcript -- \
//!     tests/captures/qemu-10.0-system.c2s tests/captures/qemu-10.0-system.s2c > session.jsonl
//! ```
//!
//! Raw streams carry no times: entry `i` is stamped `i` µs, so a replay
//! at the recorded pace is as fast as possible.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [c2s, s2c] = args.as_slice() else {
        eprintln!("usage: streams_to_transcript CLIENT_TO_SERVER SERVER_TO_CLIENT > TRANSCRIPT");
        return ExitCode::from(2);
    };
    let read = |path: &String| {
        std::fs::read(path).map_err(|e| eprintln!("streams_to_transcript: {path}: {e}"))
    };
    let (Ok(c2s), Ok(s2c)) = (read(c2s), read(s2c)) else {
        return ExitCode::FAILURE;
    };
    let entries = qmp_proto::transcript::from_streams(&c2s, &s2c);
    let text = qmp_proto::transcript::encode(&entries);
    match std::io::stdout().write_all(&text) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streams_to_transcript: {e}");
            ExitCode::FAILURE
        }
    }
}
