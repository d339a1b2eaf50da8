//! The load generator against a real gateway, reading the CPU figures it
//! reports: the gateway runs as a child process (`--gateway-pid` is its id).
//! See `util` for why the gateway is a child process.

mod util;

use std::process::Command;

use serde_json::Value;

use crate::util::spawn_gateway;

const SECRET: &str = "cpu-test-secret";

#[test]
fn one_to_one_reports_cpu_per_message_for_gateway_loadgen_and_box() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = spawn_gateway(&dir.path().join("data"), SECRET);
    let json = dir.path().join("run.json");
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["one-to-one", "--url", &gateway.addr, "--secret", SECRET, "--quiet"])
        .args(["--pairs", "10", "--rate", "500", "--duration", "2s", "--drain", "2s"])
        .args(["--gateway-pid", &gateway.child.id().to_string()])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "loadgen failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("== cpu (the "), "the summary has a cpu section: {stdout}");

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let cpu = &report["cpu"];
    let f = |k: &str| cpu[k].as_f64().unwrap_or_else(|| panic!("cpu.{k} is a number: {cpu}"));
    assert_eq!(
        cpu["messages"].as_u64(),
        report["scheduled"].as_u64(),
        "per-message figures divide by the window's messages"
    );
    assert_eq!(report["delivered"].as_u64(), report["scheduled"].as_u64(), "every message arrived");
    assert!((1.5..3.0).contains(&f("window_secs")), "the window is the 2 s of load: {cpu}");
    // Handling 1,000 messages over real sockets takes some CPU in both
    // programs, and far less than a second of it per message.
    for k in ["gateway_us_per_msg", "loadgen_us_per_msg"] {
        assert!(f(k) > 0.0 && f(k) < 1e6, "{k}: {cpu}");
    }
    let (user, sys, total) = (f("gateway_user_us_per_msg"), f("gateway_sys_us_per_msg"), f("gateway_us_per_msg"));
    assert!((user + sys - total).abs() < 1e-6, "user + kernel = total: {cpu}");
    assert!(f("box_busy_pct") > 0.0 && f("box_busy_pct") <= 100.0, "{cpu}");
    // Context switches over the same window: 1,000 messages over real
    // sockets wake the gateway's threads and the box's many times.
    assert!(f("box_ctxt_per_msg") > 0.0 && f("box_ctxt_per_sec") > 0.0, "{cpu}");
    let (vol, invol, all) =
        (f("gateway_voluntary_ctxt_per_msg"), f("gateway_involuntary_ctxt_per_msg"), f("gateway_ctxt_per_msg"));
    assert!(all > 0.0 && (vol + invol - all).abs() < 1e-9, "voluntary + involuntary = all: {cpu}");
    assert!(f("box_ctxt_per_msg") >= all * 0.5, "the box's switches include the gateway's: {cpu}");
}
