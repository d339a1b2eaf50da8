//! Node-link frames from a peer (harness:
//! `chatgw_cluster::fuzzing::link_frames`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chatgw_cluster::fuzzing::link_frames(data));
