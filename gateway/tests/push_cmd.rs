//! `chatgw push` from the outside: its arguments are checked before it
//! joins a consumer group, and every refusal is one line and exit 1.

use std::process::Command;

fn push(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chatgw")).arg("push").args(args).output().expect("running chatgw");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_bad_events_url_or_gateway_list_is_refused_in_one_line() {
    let (code, err) = push(&["--events", "http://k:9092/chat"]);
    assert_eq!((code, err.as_str()), (1, "chatgw: the events URL must start with kafka://\n"));
    let (code, err) = push(&["--events", "kafka://k:9092/chat", "--gateways", "gw:9300"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("chatgw: gateway admin URLs must be http://host:port") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn without_push_targets_and_providers_it_says_so_and_exits_1() {
    let (code, err) = push(&["--events", "kafka://127.0.0.1:1/chat", "--admin-listen", "off"]);
    assert_eq!(code, 1);
    assert!(err.contains("are not built into this chatgw yet"), "{err}");
}
