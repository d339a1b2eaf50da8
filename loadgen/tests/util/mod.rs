//! The gateway as a child process for the load generator's tests.
//!
//! The load generator does not depend on the gateway crate (it would pull
//! in the store and io_uring), so its tests run the `chatgw` binary Cargo
//! built beside `loadgen`: `cargo test --workspace` builds both.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// A gateway child process, killed when dropped.
pub(crate) struct Gateway {
    pub(crate) child: Child,
    /// The public address (`host:port`).
    pub(crate) addr: String,
    /// The admin address serving `/metrics` (`host:port`).
    pub(crate) admin: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `chatgw` binary Cargo built beside `loadgen`.
fn chatgw_bin() -> PathBuf {
    let loadgen = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"));
    let bin = loadgen.with_file_name("chatgw");
    assert!(bin.exists(), "{} is missing: build the gateway too (cargo test --workspace)", bin.display());
    bin
}

/// Start `chatgw serve` with one worker, its public and admin listeners on
/// free ports, and wait until it has logged both addresses.
#[allow(dead_code)]
pub(crate) fn spawn_gateway(data: &Path, secret: &str) -> Gateway {
    spawn_gateway_with(data, secret, &[])
}

/// Prepare the PostgreSQL database at `url` as `chatgw store init` does.
#[allow(dead_code)]
pub(crate) fn init_store(url: &str) {
    let status = Command::new(chatgw_bin()).args(["store", "init", "--store", url]).status().expect("chatgw runs");
    assert!(status.success(), "chatgw store init --store {url}");
}

/// Like [`spawn_gateway`], with `extra` arguments to `serve` (a shared
/// `--store`, a `--node-id`).
pub(crate) fn spawn_gateway_with(data: &Path, secret: &str, extra: &[&str]) -> Gateway {
    let mut child = Command::new(chatgw_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--workers", "1"])
        .args(extra)
        .args(["--secret", secret, "--data"])
        .arg(data)
        .env("CHATGW_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chatgw starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let public = line.split("listening: ws://").nth(1).map(|r| ("public", r));
            let admin = line.split("admin: http://").nth(1).map(|r| ("admin", r));
            if let Some((which, rest)) = public.or(admin) {
                let _ = tx.send((which, rest.split('/').next().unwrap_or_default().to_owned()));
            }
        }
    });
    let mut gw = Gateway { child, addr: String::new(), admin: String::new() };
    while gw.addr.is_empty() || gw.admin.is_empty() {
        let (which, addr) = rx.recv_timeout(Duration::from_secs(20)).expect("gateway printed its addresses");
        match which {
            "public" => gw.addr = addr,
            _ => gw.admin = addr,
        }
    }
    gw
}
