//! The client machine fed a real greeting, then arbitrary bytes.
//! The body, and what it checks, is `qmp_tests::fuzz_bodies::client_bytes`.
#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qmp_tests::fuzz_bodies::client_bytes(data));
