//! The server role fed arbitrary client bytes in arbitrary chunks.
//! The body, and what it checks, is `qmp_tests::fuzz_bodies::server_bytes`.
#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qmp_tests::fuzz_bodies::server_bytes(data));
