//! The server sees no plaintext (docs/E2EE.md, "Threat model"): a real
//! `chatgw serve` with debug logging, on the embedded store and on
//! PostgreSQL (whose data directory is searched too), two users with encrypted devices
//! exchanging direct and group messages that carry a unique marker, and a
//! plaintext message carrying another. Afterwards every file of the data
//! directory, the `/metrics` text, the gateway's whole log and a tcpdump
//! capture of its port on `lo` (raw, and each WebSocket payload unmasked)
//! are searched for both markers, plain and in base64: the encrypted one
//! is nowhere, the plaintext one is found (in the store's files and the
//! capture), so the search provably looks where the bytes go. The gateway
//! logs no message body even in plaintext, so the control is not expected
//! in the log or the metrics; that the log was read whole is checked by
//! its size and its first lines.

mod util;

use std::{path::Path, time::Duration};

use chatgw_client::{Client, Event, GroupId, MessageKind, UserId};
use chatgw_e2ee::{DeviceCrypto, SecureClient, SecureConfig, SecureEvent};
use util::{capture::Capture, search, served::Served, *};

/// Where a marker was found, by place name.
fn places_with(marker: &str, dirs: &[&Path], metrics: &str, log: &[u8], pcap: &capture::Captured) -> Vec<String> {
    let mut places: Vec<String> = dirs
        .iter()
        .flat_map(|d| search::files_with_marker(d, marker))
        .map(|p| format!("file {}", p.display()))
        .collect();
    if search::contains_marker(metrics.as_bytes(), marker) {
        places.push("/metrics".into());
    }
    if search::contains_marker(log, marker) {
        places.push("log".into());
    }
    if search::contains_marker(&pcap.raw, marker) {
        places.push("capture".into());
    }
    if search::contains_marker(&pcap.websocket_payloads(), marker) {
        places.push("capture (WebSocket payloads)".into());
    }
    places
}

/// A marker no other bytes contain by chance.
fn marker(what: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{what}{}x{nanos:08x}", std::process::id())
}

fn device_client(addr: std::net::SocketAddr, user: u64, device: &str) -> Client {
    let now = chatgw_gateway::auth::unix_now();
    let key = chatgw_gateway::auth::TokenKey::new(SECRET.as_bytes());
    let token = key.mint_device(UserId(user), chatgw_client::DeviceName::new(device).unwrap(), now - 60, now + 3600);
    let mut c = Client::connect(addr, &token).unwrap();
    sync_all(&mut c);
    c
}

/// An encrypted device of `user` named `device`, keys published.
fn secure_device(addr: std::net::SocketAddr, user: u64, device: &str) -> SecureClient {
    let client = device_client(addr, user, device);
    let crypto = DeviceCrypto::new(UserId(user), chatgw_client::DeviceName::new(device).unwrap());
    SecureClient::new(client, crypto, None, SecureConfig::default()).expect("keys published")
}

/// The next decrypted message's body.
fn next_plaintext(c: &mut SecureClient) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        match c.next_event(Duration::from_millis(200)).unwrap() {
            Some(SecureEvent::Message(m)) => return m.body,
            Some(SecureEvent::Undecryptable { error, .. }) => panic!("undecryptable: {error}"),
            _ => {}
        }
    }
    panic!("no message in {WAIT:?}")
}

#[test]
fn base64_forms_of_a_marker_are_found_inside_longer_texts() {
    use base64::Engine;
    let marker = "MARKER-x7Qz";
    for prefix in ["", "a", "ab", "abc"] {
        let text = format!("{prefix}{marker} and more");
        for engine in [&base64::engine::general_purpose::STANDARD, &base64::engine::general_purpose::URL_SAFE_NO_PAD] {
            assert!(search::contains_marker(engine.encode(&text).as_bytes(), marker), "{prefix:?}");
        }
    }
    assert!(!search::contains_marker(b"nothing here", marker));
}

#[test]
fn encrypted_messages_leave_no_plaintext_on_the_server_while_a_plaintext_one_does() {
    no_plaintext_on(None);
}

#[test]
fn on_postgresql_neither_the_database_files_hold_the_plaintext() {
    let pg = chatgw_storage::conformance::TestPostgres::start();
    let url = pg.url(&pg.create_database());
    chatgw_gateway::store::init(&url.parse().expect("a postgres URL")).expect("store init");
    let Some(pg_data) = pg.data_dir() else {
        eprintln!("CHATGW_TEST_POSTGRES names a server whose files are elsewhere: not searched");
        return;
    };
    no_plaintext_on(Some((&url, &pg_data)));
}

/// The exchange and the search, on the embedded store, or on PostgreSQL
/// (`store`: its URL and the server's data directory, searched too).
fn no_plaintext_on(store: Option<(&str, &Path)>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let flags: Vec<&str> = store.map(|(url, _)| vec!["--store", url]).unwrap_or_default();
    let gw = Served::spawn(&data, &flags, "debug");
    let capture = Capture::start(gw.addr.port(), dir.path());
    let (secret, control) = (marker("secret"), marker("control"));

    // The control: a plaintext message, as any client may still send.
    let mut plain_a = device_client(gw.addr, 30, "plain");
    let mut plain_b = device_client(gw.addr, 31, "plain");
    plain_a.send_message(UserId(31), "control-1", MessageKind::Text, &format!("hello {control} there")).unwrap();
    sent_id(&mut plain_a, "control-1");
    let got = next_message(&mut plain_b);
    assert!(got.body.contains(&control));

    // Two encrypted devices: direct messages both ways, then a group.
    let mut alice = secure_device(gw.addr, 40, "phone");
    let mut bob = secure_device(gw.addr, 41, "laptop");
    alice.send_direct(UserId(41), MessageKind::Text, &format!("direct {secret} to bob")).unwrap();
    assert_eq!(next_plaintext(&mut bob), format!("direct {secret} to bob"));
    bob.send_direct(UserId(40), MessageKind::Text, &format!("direct {secret} to alice")).unwrap();
    assert_eq!(next_plaintext(&mut alice), format!("direct {secret} to alice"));
    alice.client().create_group("g-1", "a group", &[UserId(41)]).unwrap();
    let group: GroupId = alice
        .client()
        .wait_for(WAIT, "group", |e| match e {
            Event::Group { id, .. } => Some(*id),
            _ => None,
        })
        .unwrap();
    for i in 0..3 {
        alice.send_group(group, MessageKind::Text, &format!("group {i} {secret} from alice")).unwrap();
        assert_eq!(next_plaintext(&mut bob), format!("group {i} {secret} from alice"));
    }
    bob.send_group(group, MessageKind::Text, &format!("group {secret} from bob")).unwrap();
    assert_eq!(next_plaintext(&mut alice), format!("group {secret} from bob"));

    std::thread::sleep(Duration::from_millis(300));
    let metrics = gw.metrics();
    plain_a.close();
    plain_b.close();
    for device in [alice, bob] {
        device.into_parts().0.close();
    }
    let log = gw.stop();
    let pcap = capture.stop();
    let mut dirs = vec![data.as_path()];
    dirs.extend(store.map(|(_, pg_data)| pg_data));
    let (files, packets) = (dirs.iter().map(|d| search::file_count(d)).sum::<usize>(), pcap.packets);
    assert!(files > 0 && log.len() > 1000 && packets > 10, "{files} files, {} log bytes, {packets} packets", log.len());

    assert!(memchr::memmem::find(&log, b"listening: ws://").is_some(), "the whole log was kept");
    let found = places_with(&control, &dirs, &metrics, &log, &pcap);
    for place in ["capture (WebSocket payloads)", "capture"] {
        assert!(found.iter().any(|p| p == place), "the plaintext control is in the {place}: {found:?}");
    }
    let store_dir = store.map_or(data.as_path(), |(_, pg_data)| pg_data);
    let in_store = |p: &String| p.starts_with(&format!("file {}", store_dir.display()));
    assert!(found.iter().any(in_store), "the plaintext control is in the store's files: {found:?}");
    let found = places_with(&secret, &dirs, &metrics, &log, &pcap);
    assert!(found.is_empty(), "the encrypted marker leaked: {found:?}");
}
