//! The load generator against a real gateway, reading the CPU figures it
//! reports: the gateway runs as a child process (`--gateway-pid` is its id).
//!
//! The load generator does not depend on the gateway crate (it would pull
//! in the store and io_uring), so the gateway is the `chatgw` binary Cargo
//! built beside `loadgen`: `cargo test --workspace` builds both.

use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use serde_json::Value;

const SECRET: &str = "cpu-test-secret";

/// A gateway child process, killed when dropped.
struct Gateway {
    child: Child,
    addr: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `chatgw serve` on a free port with one worker and wait for its
/// "listening" line.
fn spawn_gateway(data: &std::path::Path) -> Gateway {
    let loadgen = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"));
    let bin = loadgen.with_file_name("chatgw");
    assert!(bin.exists(), "{} is missing: build the gateway too (cargo test --workspace)", bin.display());
    let mut child = Command::new(&bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--secret", SECRET, "--workers", "1", "--data"])
        .arg(data)
        .env("CHATGW_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chatgw starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening: ws://").nth(1) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(rest.split('/').next().unwrap_or_default().to_owned());
                }
            }
        }
    });
    let mut gw = Gateway { child, addr: String::new() };
    gw.addr = rx.recv_timeout(Duration::from_secs(20)).expect("gateway printed its address");
    gw
}

#[test]
fn one_to_one_reports_cpu_per_message_for_gateway_loadgen_and_box() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = spawn_gateway(&dir.path().join("data"));
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
}
