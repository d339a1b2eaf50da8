//! The PROXY protocol header a balancer sends before the client's bytes
//! (harness: `chatgw_gateway::fuzzing::proxy_header`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chatgw_gateway::fuzzing::proxy_header(data));
