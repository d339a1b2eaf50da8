//! The HTTP request that opens a connection, fed to a real engine in
//! fuzzer-chosen reads (harness: `chatgw_gateway::fuzzing::http_upgrade`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chatgw_gateway::fuzzing::http_upgrade(data));
