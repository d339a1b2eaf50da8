//! Protocol frames in text messages (harness:
//! `chatgw_protocol::fuzzing::client_frame`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chatgw_protocol::fuzzing::client_frame(data));
