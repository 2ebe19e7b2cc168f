//! The guest agent machine driven by arbitrary operations, and talking to
//! its server half past leftovers. The body, and what it checks, is
//! `qmp_tests::fuzz_bodies::agent_ops`.
#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qmp_tests::fuzz_bodies::agent_ops(data));
