//! Sessions recorded and replayed: a session recorded against real QEMU
//! is played back by `qmp-mock` to a fresh client, which gets the same
//! answers; a client that changes a command gets the mismatch, naming the
//! difference. And the project's captures, converted to transcripts,
//! replay byte for byte over a socket.

use qmp_client::{ConnectOptions, Error, EventFilter, Qmp, Runtime, TranscriptSink};
use qmp_mock::replay::{Pacing, ReplayError, ReplayServer};
use qmp_proto::transcript::{self, Difference, Entry, Record, Side};
use qmp_tests::qemu::QemuProcess;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A transcript sink in memory, readable while the connection writes it.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A transcript sink whose disk is full.
struct Full;

impl Write for Full {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            "disk full",
        ))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn entries(&self) -> Vec<Entry> {
        transcript::parse(&self.0.lock().unwrap()).expect("a valid transcript")
    }
}

/// What a management tool might do in one session; the answers it got.
/// `path` is the only input, so that a replay can be made to diverge.
async fn session<R: Runtime>(qmp: &Qmp<R>, path: &str) -> Result<Vec<Value>, Error> {
    let mut answers = Vec::new();
    answers.push(qmp.call("query-version", &()).decode().await?);
    answers.push(qmp.call("query-status", &()).decode().await?);
    let cursor = qmp.cursor();
    qmp.call("stop", &()).await?;
    let stop = qmp
        .wait_for_event(cursor, EventFilter::name("STOP"), Duration::from_secs(10))
        .await?;
    answers.push(json!([stop.event.name, stop.event.timestamp.seconds]));
    answers.push(
        qmp.call("qom-list", &json!({"path": path}))
            .decode()
            .await?,
    );
    let missing = qmp
        .call("device_del", &json!({"id": "no-such-device"}))
        .await;
    answers.push(json!(missing
        .map(|_| ())
        .map_err(|e| e.to_string())
        .unwrap_err()));
    qmp.call("cont", &()).await?;
    Ok(answers)
}

/// The names of the commands in `entries` the client sent, in order.
fn commands_sent(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|entry| match (&entry.from, &entry.record) {
            (Side::Client, Record::Message(bytes)) => {
                let message: Value = serde_json::from_slice(bytes).ok()?;
                Some(message["execute"].as_str()?.to_string())
            }
            _ => None,
        })
        .collect()
}

/// The first lines of a transcript: the greeting and the negotiation, in
/// the first 20 µs.
macro_rules! opening {
    () => {
        concat!(
            r#"{"us": 0, "from": "server", "text": "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": []}}"}"#, "\n",
            r#"{"us": 10, "from": "client", "text": "{\"execute\": \"qmp_capabilities\", \"id\": 1}"}"#, "\n",
            r#"{"us": 20, "from": "server", "text": "{\"return\": {}, \"id\": 1}"}"#, "\n",
        )
    };
}

qmp_tests::on_both_runtimes! {
    #[test]
    fn a_session_recorded_against_real_qemu_replays_and_a_changed_command_is_named() {
        let Some(qemu) = QemuProcess::system(&[]) else {
            return;
        };
        let buffer = Buffer::default();
        let sink = TranscriptSink::new(buffer.clone());
        let live = rt::block_on(async {
            let options = ConnectOptions::default().record(sink.clone());
            let qmp = qmp::Qmp::connect_unix(qemu.socket(), options).await.unwrap();
            let answers = session(&qmp, "/machine").await.unwrap();
            qmp.close();
            answers
        });
        assert!(sink.take_error().is_none());
        drop(qemu);

        // Every message in and out, from the greeting to our close.
        let entries = buffer.entries();
        assert_eq!(entries.first().map(|e| e.from), Some(Side::Server));
        let Record::Message(greeting) = &entries[0].record else { panic!("{entries:?}") };
        assert!(greeting.starts_with(b"{\"QMP\": "), "{greeting:?}");
        assert_eq!(
            commands_sent(&entries),
            ["qmp_capabilities", "query-version", "query-status", "stop", "qom-list", "device_del", "cont"]
        );
        let last = entries.last().unwrap();
        assert_eq!((last.from, &last.record), (Side::Client, &Record::Closed));
        assert!(entries.windows(2).all(|w| w[0].micros <= w[1].micros));

        // A fresh client gets the same answers from the replay.
        let (stream, replay) = ReplayServer::pair(entries.clone(), Pacing::AsFastAsPossible);
        let replayed = rt::block_on(async {
            let qmp = qmp::Qmp::from_unix_stream(stream, ConnectOptions::default()).await.unwrap();
            let answers = session(&qmp, "/machine").await.unwrap();
            qmp.close();
            answers
        });
        assert_eq!(replayed, live);
        replay.join().expect("the replay matched");

        // A changed argument: the client's call fails with the difference,
        // and so does the replay.
        let (stream, replay) = ReplayServer::pair(entries, Pacing::AsFastAsPossible);
        let failed = rt::block_on(async {
            let qmp = qmp::Qmp::from_unix_stream(stream, ConnectOptions::default()).await.unwrap();
            let result = session(&qmp, "/machine/unattached").await;
            qmp.close();
            result
        });
        let error = failed.expect_err("the changed command is refused");
        assert!(error.to_string().contains("/arguments/path"), "{error}");
        let Err(ReplayError::Mismatch(mismatch)) = replay.join() else {
            panic!("expected a mismatch");
        };
        assert_eq!(
            mismatch.difference,
            Difference::Arguments {
                command: "qom-list".into(),
                path: "/arguments/path".into(),
                expected: Some("\"/machine\"".into()),
                got: Some("\"/machine/unattached\"".into()),
            },
            "{mismatch}"
        );
    }

    #[test]
    fn a_failing_transcript_stops_the_recording_not_the_connection() {
        let qemu = qmp_mock::MockQemu::listen().unwrap();
        let sink = TranscriptSink::new(Full);
        rt::block_on(async {
            let options = ConnectOptions::default().record(sink.clone());
            let qmp = qmp::Qmp::connect_unix(qemu.path().unwrap(), options).await.unwrap();
            for _ in 0..3 {
                let status: Value = qmp.call("query-status", &()).decode().await.unwrap();
                assert_eq!(status["running"], true);
            }
        });
        let error = sink.take_error().expect("the write error is kept");
        assert_eq!(error.kind(), std::io::ErrorKind::WriteZero);
        assert!(sink.take_error().is_none(), "taken once, and no write after it");
        assert_eq!(qemu.command_names().len(), 3);
    }

    #[test]
    fn a_replay_at_the_recorded_pace_keeps_the_recorded_delays() {
        // A reply recorded 300 ms after its command comes at least that
        // late; the same transcript unpaced is played too.
        let text = concat!(
            opening!(),
            r#"{"us": 1000, "from": "client", "text": "{\"execute\": \"query-name\", \"id\": 2}"}"#, "\n",
            r#"{"us": 301000, "from": "server", "text": "{\"return\": {\"name\": \"slow\"}, \"id\": 2}"}"#, "\n",
            r#"{"us": 302000, "from": "client", "closed": true}"#, "\n",
        );
        let entries = transcript::parse(text.as_bytes()).unwrap();
        for pacing in [Pacing::Recorded, Pacing::AsFastAsPossible] {
            let (stream, replay) = ReplayServer::pair(entries.clone(), pacing);
            let elapsed = rt::block_on(async {
                let qmp = qmp::Qmp::from_unix_stream(stream, ConnectOptions::default()).await.unwrap();
                let started = std::time::Instant::now();
                let name: Value = qmp.call("query-name", &()).decode().await.unwrap();
                assert_eq!(name, json!({"name": "slow"}));
                qmp.close();
                started.elapsed()
            });
            replay.join().unwrap();
            if pacing == Pacing::Recorded {
                assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
            }
        }
    }

    #[test]
    fn a_client_that_stops_early_or_sends_more_is_a_mismatch() {
        let text = concat!(
            opening!(),
            r#"{"us": 30, "from": "client", "text": "{\"execute\": \"query-name\", \"id\": 2}"}"#, "\n",
            r#"{"us": 40, "from": "server", "text": "{\"return\": {}, \"id\": 2}"}"#, "\n",
        );
        let entries = transcript::parse(text.as_bytes()).unwrap();

        // Closing before query-name.
        let (stream, replay) = ReplayServer::pair(entries.clone(), Pacing::AsFastAsPossible);
        rt::block_on(async {
            let qmp = qmp::Qmp::from_unix_stream(stream, ConnectOptions::default()).await.unwrap();
            qmp.close();
        });
        let Err(ReplayError::Mismatch(early)) = replay.join() else { panic!("no mismatch") };
        assert_eq!(early.difference, Difference::ClientClosed, "{early}");

        // A command after the end of the transcript.
        let (stream, replay) = ReplayServer::pair(entries, Pacing::AsFastAsPossible);
        let error = rt::block_on(async {
            let qmp = qmp::Qmp::from_unix_stream(stream, ConnectOptions::default()).await.unwrap();
            qmp.call("query-name", &()).await.unwrap();
            let error = qmp.call("query-status", &()).await.unwrap_err();
            qmp.close();
            error
        });
        assert!(matches!(error, Error::Qmp(_)), "{error}");
        let Err(ReplayError::Mismatch(extra)) = replay.join() else { panic!("no mismatch") };
        assert_eq!(
            extra.difference,
            Difference::UnexpectedMessage { transcript_ended: true },
            "{extra}"
        );
    }
}

/// Each capture under `tests/captures/`, converted to a transcript, is
/// served by the replay over a socket to a raw client that writes the
/// capture's client bytes: it reads back exactly the capture's server
/// bytes (ids and all), and the replay ends matched.
#[test]
fn the_captures_replay_byte_for_byte_over_a_socket() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/captures/");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|file| {
            let name = file.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".c2s")?.to_string())
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), 6, "{names:?}");
    for name in names {
        let c2s = std::fs::read(format!("{dir}{name}.c2s")).unwrap();
        let s2c = std::fs::read(format!("{dir}{name}.s2c")).unwrap();
        let entries = transcript::from_streams(&c2s, &s2c);
        let (mut stream, replay) = ReplayServer::pair(entries.clone(), Pacing::AsFastAsPossible);
        // A replay that stops answering fails the test rather than hang it.
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        // The client half, in the order the transcript says: each client
        // message written once the server messages before it were read.
        let mut read_back = Vec::new();
        let mut expected = Vec::new();
        for entry in &entries {
            match (&entry.from, &entry.record) {
                (Side::Server, Record::Message(bytes)) => {
                    expected.extend_from_slice(bytes);
                    expected.extend_from_slice(b"\r\n");
                    while read_back.len() < expected.len() {
                        let mut buf = [0u8; 65536];
                        let n = stream.read(&mut buf).unwrap_or_else(|e| {
                            panic!(
                                "{name}: waiting for {:?}: {e}",
                                String::from_utf8_lossy(bytes)
                            )
                        });
                        assert!(n > 0, "{name}: the replay closed early");
                        read_back.extend_from_slice(&buf[..n]);
                    }
                }
                (Side::Client, Record::Message(bytes)) => {
                    // One write: after `quit` the replay may close at once.
                    let line = [&bytes[..], b"\n"].concat();
                    stream.write_all(&line).unwrap();
                }
                // The replay may have closed first, as the server did.
                (Side::Client, Record::Closed) => {
                    let _ = stream.shutdown(std::net::Shutdown::Write);
                }
                _ => {}
            }
        }
        stream.read_to_end(&mut read_back).unwrap();
        assert!(read_back == expected, "{name}: the server's bytes differ");
        // And the conversion lost nothing: they are the capture's own.
        assert!(expected == s2c, "{name}: the transcript is not the capture");
        replay.join().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
