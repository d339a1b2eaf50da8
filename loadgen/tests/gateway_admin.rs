//! `loadgen connect` reads the gateway's count of open connections from its
//! admin listener (`--gateway-admin`): the public port serves no `/metrics`.

mod util;

use std::process::Command;

use crate::util::spawn_gateway;

const SECRET: &str = "admin-test-secret";

#[test]
fn connect_reads_open_connections_from_the_gateway_admin_address() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = spawn_gateway(&dir.path().join("data"), SECRET);
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["connect", "--url", &gateway.addr, "--secret", SECRET, "--quiet", "--sources", "0"])
        .args(["--conns", "20", "--rate", "200", "--hold", "1s", "--gateway-admin", &gateway.admin])
        .args(["--check", "conns=20,gateway_conns=20"])
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "loadgen failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("chatgw_connections_open"), "{stdout}");
}
