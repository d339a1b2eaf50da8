//! `chatgw push` from the outside: its arguments, providers and store are
//! checked before it joins a consumer group, and every refusal is one line
//! and exit 1. It at work: tests/push_worker.rs.

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

/// A webhook spec whose secret file exists.
fn webhook_spec(dir: &tempfile::TempDir) -> String {
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    format!("webhook:url=https://hooks.example/push,secret-file={}", secret.display())
}

#[test]
fn providers_are_checked_before_the_store_is_opened() {
    let base =
        ["--events", "kafka://127.0.0.1:1/chat", "--admin-listen", "off", "--store", "postgres://u@127.0.0.1:1/x"];
    let (code, err) = push(&base);
    assert_eq!((code, err.as_str()), (1, "chatgw: --push: no provider: give webhook:..., apns:... or fcm:...\n"));
    let (code, err) = push(&[&base[..], &["--push", "webhook:url=https://h/p"]].concat());
    assert_eq!(code, 1);
    assert!(err.starts_with("chatgw: --push: ") && err.contains("secret-file") && err.lines().count() == 1, "{err}");
}

#[test]
fn the_store_is_required_and_the_embedded_one_points_to_serve_push() {
    let dir = tempfile::tempdir().unwrap();
    let spec = webhook_spec(&dir);
    let base = ["--events", "kafka://127.0.0.1:1/chat", "--admin-listen", "off", "--push", &spec];
    let (code, err) = push(&base);
    assert_eq!(code, 1);
    assert!(err.starts_with("chatgw: --store is needed") && err.lines().count() == 1, "{err}");
    let (code, err) = push(&[&base[..], &["--store", "embedded"]].concat());
    assert_eq!(code, 1);
    assert!(err.contains("cannot be shared with a running gateway") && err.contains("chatgw serve --push"), "{err}");
    let (code, err) = push(&[&base[..], &["--store", "postgres://u:pw@127.0.0.1:1/x"]].concat());
    assert_eq!(code, 1);
    assert!(
        err.starts_with("chatgw: opening the store postgres://u:***@127.0.0.1:1/x") && !err.contains("pw@"),
        "{err}"
    );
}
