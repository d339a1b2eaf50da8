//! WebSocket frames after the upgrade (fragments, control frames, close),
//! fed to a real engine in fuzzer-chosen reads (harness:
//! `chatgw_gateway::fuzzing::ws_frames`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chatgw_gateway::fuzzing::ws_frames(data));
