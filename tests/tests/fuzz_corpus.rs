//! The fuzz targets' bodies, run on stable over the checked-in corpus.
//!
//! Every file of `fuzz/corpus/<target>/` (seeds from the captures, minimised
//! with `cargo fuzz cmin`) and of `fuzz/regressions/<target>/` (inputs that
//! once crashed a body, kept whatever cmin says) is given to the body in
//! `qmp_tests::fuzz_bodies`, exactly as libFuzzer would give it.

use qmp_tests::fuzz_bodies;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The files of `fuzz/<kind>/<target>/`, sorted; none if it does not exist.
fn files(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("readable corpus directory").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `body` over the corpus and the regressions of `target`, and fails
/// naming every file that made it panic.
fn replay(target: &str, body: fn(&[u8])) {
    let corpus = files("corpus", target);
    assert!(!corpus.is_empty(), "the corpus of {target} is empty");
    let mut failed = Vec::new();
    for path in corpus.iter().chain(&files("regressions", target)) {
        let data = std::fs::read(path).expect("readable corpus file");
        if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(failed.is_empty(), "{target} failed on {failed:#?}");
}

#[test]
fn framer_corpus() {
    replay("framer", fuzz_bodies::framer);
}

#[test]
fn client_bytes_corpus() {
    replay("client_bytes", fuzz_bodies::client_bytes);
}

#[test]
fn agent_ops_corpus() {
    replay("agent_ops", fuzz_bodies::agent_ops);
}

#[test]
fn client_ops_corpus() {
    replay("client_ops", fuzz_bodies::client_ops);
}

#[test]
fn server_bytes_corpus() {
    replay("server_bytes", fuzz_bodies::server_bytes);
}
