//! The splitter (`qmp_proto::framing::Framer`) fed arbitrary bytes in arbitrary chunks.
//! The body, and what it checks, is `qmp_tests::fuzz_bodies::framer`.
#![no_main]
#![forbid(unsafe_code)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qmp_tests::fuzz_bodies::framer(data));
