//! The client machine driven by an arbitrary sequence of operations.
//! The body, and what it checks, is `qmp_tests::fuzz_bodies::client_ops`.
#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qmp_tests::fuzz_bodies::client_ops(data));
