//! SIGHUP on a real `chatgw serve --config`: a changed abuse limit applies
//! to the next connections, and token keys rotate by key id: tokens of a
//! key stay valid until the key leaves the file and SIGHUP comes again,
//! tokens without `kid` keep using the secret, `chatgw token --config`
//! signs with the new key.

mod util;

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use chatgw_client::{Client, ClientError, UserId};
use chatgw_gateway::auth::{unix_now, TokenKey};
use util::{child::*, *};

fn write_config(path: &Path, per_ip: u32, keys: &[(&str, &str)], signing: &str) {
    let mut text = format!("secret = \"plain\"\nmax_connections_per_ip = {per_ip}\nsigning_key = \"{signing}\"\n");
    text.push_str("[token_keys]\n");
    for (kid, secret) in keys {
        text.push_str(&format!("{kid} = \"{secret}\"\n"));
    }
    std::fs::write(path, text).unwrap();
}

/// The HTTP status a connection with `token` is refused with, or 101.
fn status(gw: &ChildGateway, token: &str) -> u16 {
    match Client::connect(gw.addr, token) {
        Ok(c) => {
            c.close();
            101
        }
        Err(ClientError::Refused { status, .. }) => status,
        Err(e) => panic!("{e}"),
    }
}

/// Wait until `check` holds (a reload is applied by another thread).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

each_driver!(sighup_rotates_token_keys_and_applies_limits_to_new_connections);
fn sighup_rotates_token_keys_and_applies_limits_to_new_connections(io: IoDriver) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chatgw.toml");
    write_config(&file, 2, &[("k1", "one")], "k1");
    let file_arg = file.to_str().unwrap();
    let gw = ChildGateway::spawn(dir.path(), io, &["--workers", "1", "--config", file_arg]);
    let exp = unix_now() + 600;
    let by_k1 = TokenKey::with_kid(b"one", "k1").mint(UserId(1), exp);
    let by_k2 = TokenKey::with_kid(b"two", "k2").mint(UserId(2), exp);
    let plain = TokenKey::new(b"plain").mint(UserId(3), exp);
    assert_eq!(status(&gw, &by_k1), 101);
    assert_eq!(status(&gw, &plain), 101, "no kid: the secret");
    assert_eq!(status(&gw, &by_k2), 401, "unknown kid");

    // Limit: two connections from one address, then three more after SIGHUP.
    let held: Vec<Client> = (0..2).map(|_| Client::connect(gw.addr, &by_k1).unwrap()).collect();
    assert_eq!(status(&gw, &by_k1), 429);
    write_config(&file, 5, &[("k1", "one"), ("k2", "two")], "k2");
    gw.signal(libc::SIGHUP);
    eventually("the new per-address limit", || status(&gw, &by_k2) == 101);
    let more: Vec<Client> = (0..3).map(|_| Client::connect(gw.addr, &by_k1).unwrap()).collect();
    assert_eq!(status(&gw, &by_k1), 429, "five open: the sixth is refused");
    drop((held, more));
    std::thread::sleep(Duration::from_millis(300));

    // `chatgw token --config` signs with the new signing key, k2.
    let out = Command::new(env!("CARGO_BIN_EXE_chatgw"))
        .args(["token", "--user", "9", "--config", file_arg, "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let minted = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(TokenKey::with_kid(b"two", "k2").verify(&minted, unix_now()).unwrap().user, UserId(9));
    assert_eq!(status(&gw, &minted), 101);

    // k1 retired: its tokens are refused, k2's and kid-less ones still work.
    write_config(&file, 5, &[("k2", "two")], "k2");
    gw.signal(libc::SIGHUP);
    eventually("k1 retired", || status(&gw, &by_k1) == 401);
    assert_eq!(status(&gw, &by_k2), 101);
    assert_eq!(status(&gw, &plain), 101);

    // A file the gateway cannot take is refused whole: the keys stay.
    std::fs::write(&file, "signing_key = \"nope\"\nsecret = \"plain\"\n").unwrap();
    gw.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(status(&gw, &by_k2), 101);
}
