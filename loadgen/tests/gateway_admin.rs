//! `loadgen connect` reads the gateway's count of open connections from its
//! admin listener (`--gateway-admin`): the public port serves no `/metrics`.

use std::process::Command;

use chatgw_gateway::{Config, Server};

const SECRET: &str = "admin-test-secret";

#[test]
fn connect_reads_open_connections_from_the_gateway_admin_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().join("data"), SECRET.into());
    config.workers = 1;
    config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = Server::start(config).expect("gateway starts");
    let admin = server.admin_addr().expect("an admin address").to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["connect", "--url", &server.addr().to_string(), "--secret", SECRET, "--quiet", "--sources", "0"])
        .args(["--conns", "20", "--rate", "200", "--hold", "1s", "--gateway-admin", &admin])
        .args(["--check", "conns=20,gateway_conns=20"])
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "loadgen failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("chatgw_connections_open"), "{stdout}");
    server.shutdown();
}
