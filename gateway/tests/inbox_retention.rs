//! Inbox retention over real sockets: a store holding events older than
//! the retention (30 days, the default) is swept by the gateway's
//! retention thread at start; a device whose cursor is among the swept
//! events gets the kept ones and `"truncated":true` on `synced`, a device
//! with a current cursor or a new one gets no flag; `chatgw check` passes
//! with the retention and fails with `0s` and on entries lost inside it; a
//! connection catching up from a position the sweep removed gets the kept
//! events from the oldest on. Embedded on both I/O drivers, and PostgreSQL
//! (but for the catch-up).

mod util;

use std::{io::Write as _, net::TcpStream, path::Path, process::Command, time::Instant};

use chatgw_gateway::{store::StoreUrl, Config};
use chatgw_protocol::{now_ms, ConversationId, Message, MessageId, MessageKind, Snowflake, UserId};
use chatgw_storage::{EmbeddedOptions, EmbeddedStore, MessageStore, PostgresOptions, PostgresStore, Write};
use util::*;

const DAY_MS: u64 = 86_400_000;

/// The store a gateway with `config` will open, opened first by the test.
fn open(config: &Config) -> Box<dyn MessageStore> {
    match config.store.scheme() {
        "postgres" => Box::new(PostgresStore::open(config.store.as_str(), &PostgresOptions::default()).unwrap()),
        _ => {
            let dir = chatgw_gateway::store::embedded_dir(&config.data);
            std::fs::create_dir_all(&dir).unwrap();
            Box::new(EmbeddedStore::open(&dir, &EmbeddedOptions::default()).unwrap())
        }
    }
}

/// Messages from user 1 to user 2 made at each of `ages_ms` ago, committed.
fn seed(store: &dyn MessageStore, ages_ms: &[u64]) -> Vec<MessageId> {
    // Node 7: never the gateway's own (node 0), so no id can repeat.
    let mut g = Snowflake::new(7);
    let now = now_ms();
    ages_ms
        .iter()
        .enumerate()
        .map(|(i, age)| {
            let id = g.next_at(now - age);
            let m = Message {
                id,
                conversation: ConversationId::direct(UserId(1), UserId(2)),
                from: UserId(1),
                kind: MessageKind::Text,
                client_id: format!("c{i}"),
                ts: Snowflake::unix_ms(id),
                body: format!("\"m{i}\""),
                amended: None,
            };
            store
                .commit(&[Write::Message { message: &m, inboxes: &[UserId(1), UserId(2)], membership: None }], id)
                .unwrap();
            id
        })
        .collect()
}

/// `sync` after `after` on a raw socket: the text of every frame up to and
/// including `synced`.
fn sync_frames(gw: &TestGateway, user: u64, after: MessageId) -> Vec<String> {
    let mut s: TcpStream = raw_ws(gw.addr, &gw.token(user));
    let sync = format!(r#"{{"type":"sync","after":"{}"}}"#, after.0);
    s.write_all(&masked_frame(0x81, sync.as_bytes())).unwrap();
    let mut frames = Vec::new();
    loop {
        let (_, p) = read_server_frame(&mut s);
        let text = String::from_utf8(p).unwrap();
        let done = text.starts_with(r#"{"type":"synced""#);
        frames.push(text);
        if done {
            return frames;
        }
    }
}

fn check(data: &Path, store: &StoreUrl, inbox_retention: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chatgw"))
        .args(["check", "--store", store.as_str(), "--inbox-retention", inbox_retention, "--data"])
        .arg(data)
        .env_remove("CHATGW_STORE")
        .env_remove("CHATGW_INBOX_RETENTION")
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

each_store!(a_device_behind_the_retention_is_told_its_sync_is_truncated);
fn a_device_behind_the_retention_is_told_its_sync_is_truncated(on: Setup) {
    // Three events 40 days old (swept), three from a minute ago (kept).
    let mut ids = Vec::new();
    let mut gw = TestGateway::start_with(on, 2, |config| {
        let store = open(config);
        ids = seed(&*store, &[40 * DAY_MS, 40 * DAY_MS - 1, 40 * DAY_MS - 2, 60_000, 59_999, 59_998]);
    });
    let deadline = Instant::now() + WAIT;
    while gw.metric("chatgw_inbox_entries_expired_total") < 6.0 {
        assert!(Instant::now() < deadline, "the sweep at start removes both inboxes' old entries");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(gw.metric("chatgw_inbox_entries_expired_total"), 6.0);
    assert!(gw.metric("chatgw_inboxes_swept_total") >= 2.0);

    let message = |id: MessageId| format!(r#""event":"{}""#, id.0);
    // Behind the retention: the kept events, then a truncated `synced`.
    let behind = sync_frames(&gw, 2, ids[0]);
    assert_eq!(behind.len(), 4, "{behind:?}");
    for (frame, id) in behind.iter().zip(&ids[3..]) {
        assert!(frame.contains(&message(*id)), "{frame}");
    }
    assert_eq!(behind[3], format!(r#"{{"type":"synced","cursor":"{}","truncated":true}}"#, ids[5].0));
    // A cursor whose own event was swept is flagged whether or not later
    // events were: its position went with it (docs/PROTOCOL.md, `synced`).
    let last_swept = sync_frames(&gw, 1, ids[2]);
    assert!(last_swept[3].ends_with(r#","truncated":true}"#), "{last_swept:?}");
    // A current cursor: no flag.
    let current = sync_frames(&gw, 2, ids[4]);
    assert_eq!(current.len(), 2, "{current:?}");
    assert!(current[0].contains(&message(ids[5])));
    assert_eq!(current[1], format!(r#"{{"type":"synced","cursor":"{}"}}"#, ids[5].0));
    // A new device: what is kept, no flag.
    let new = sync_frames(&gw, 2, MessageId(0));
    assert_eq!(new.len(), 4, "{new:?}");
    assert_eq!(new[3], format!(r#"{{"type":"synced","cursor":"{}"}}"#, ids[5].0));
    // Live delivery goes on after a truncated sync.
    let (mut a, mut b) = (gw.online(1), gw.online(2));
    a.send_message(chatgw_client::UserId(2), "live", chatgw_client::MessageKind::Text, "after").unwrap();
    let (live, _) = sent_id(&mut a, "live");
    assert_eq!(next_message(&mut b).id, live);
    drop((a, b));
    if let Some(h) = gw.handle.take() {
        h.shutdown();
    }

    // The swept store passes the check with the retention, not without.
    let (ok, text) = check(gw.dir.path(), &gw.store, "30d");
    assert!(ok, "{text}");
    let (ok, text) = check(gw.dir.path(), &gw.store, "0s");
    assert!(!ok, "an inbox kept forever must start at its first event: {text}");

    // Entries lost inside the retention are still a violation.
    let store = open(&config_for(&gw));
    let removed = store.sweep_inboxes(None, MessageId(ids[4].0), 100).unwrap().removed;
    assert_eq!(removed, 2, "the first kept event of both inboxes");
    drop(store);
    let (ok, text) = check(gw.dir.path(), &gw.store, "30d");
    assert!(!ok, "{text}");
    assert!(text.contains(&format!("message {} is missing from its sender's inbox", ids[3].0)), "{text}");
}

/// Enough of the gateway's settings to open its store again.
fn config_for(gw: &TestGateway) -> Config {
    let mut c = Config::new("127.0.0.1:0".parse().unwrap(), gw.dir.path().to_path_buf(), SECRET.into());
    c.store = gw.store.clone();
    c
}

// Embedded only: the same catch-up on PostgreSQL, after another handle's
// commits, sometimes misses its first events with no sweep at all (seen
// while writing this test; not a retention matter, left to look into).
each_driver!(a_catch_up_from_below_what_was_swept_starts_at_the_oldest_kept_event);
fn a_catch_up_from_below_what_was_swept_starts_at_the_oldest_kept_event(io: IoDriver) {
    use std::{sync::Arc, time::Duration};

    use chatgw_client::{Client, Event};
    use chatgw_gateway::{auth::TokenKey, Server};

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf(), SECRET.into());
    (config.workers, config.io) = (1, io);
    // The test sweeps, at the moment it chooses.
    config.inbox_retention = Duration::ZERO;
    let store: Arc<dyn MessageStore> = open(&config).into();
    let old = seed(&*store, &[40 * DAY_MS, 40 * DAY_MS - 1, 40 * DAY_MS - 2]);
    let handle = Server::start_with_store(config, store.clone()).unwrap();
    let token =
        TokenKey::new(SECRET.as_bytes()).mint(chatgw_client::UserId(2), chatgw_gateway::auth::unix_now() + 3600);
    let mut device = Client::connect(handle.addr(), &token).unwrap();
    device.sync().unwrap();
    device.wait_for(WAIT, "synced", |e| matches!(e, Event::Synced { .. }).then_some(())).unwrap();

    // Another writer stores three events the device is not sent live, and
    // the sweep then removes everything before the second of them: the
    // device's position (its last old event) is gone, and so is the first.
    let fresh = seed(&*store, &[3000, 2999, 2998]);
    let mut from = None;
    loop {
        let step = store.sweep_inboxes(from, fresh[1], 100).unwrap();
        match step.next {
            Some(next) => from = Some(next),
            None => break,
        }
    }
    assert!(store.inbox_floor(UserId(2)).unwrap().0 > 0);
    handle.catch_up_user(2);
    let got: Vec<u64> = (0..2).map(|_| next_message(&mut device).id.0).collect();
    assert_eq!(got, vec![fresh[1].0, fresh[2].0], "from the oldest kept event, in order (old: {old:?})");
    let more = device.wait_for(Duration::from_millis(300), "nothing more", |e| match e {
        Event::Message(m) => Some(m.id),
        Event::Synced { .. } => panic!("a catch-up ends without synced"),
        _ => None,
    });
    assert!(more.is_err(), "the removed event is not sent: {more:?}");
    handle.shutdown();
}

/// Reproduces an open defect, which is why it is ignored: on PostgreSQL, a
/// catch-up right after another writer committed three events to a synced
/// device's inbox sometimes (about one run in six here) starts one
/// position late, so the first of them never arrives, and the device's
/// cursor then moves past it: a later `sync` from that cursor does not
/// bring it back either (the store still holds it). Run it with
/// `cargo test -p chatgw --test inbox_retention pg_catch_up -- --ignored`.
#[test]
#[ignore = "reproduces an open PostgreSQL catch-up defect (intermittent)"]
fn pg_catch_up_after_another_writers_commits_starts_at_the_next_position() {
    use std::sync::Arc;

    use chatgw_client::{Client, Event};
    use chatgw_gateway::{auth::TokenKey, Server};

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf(), SECRET.into());
    config.workers = 1;
    config.store = fresh_postgres_store();
    config.inbox_retention = std::time::Duration::ZERO;
    let store: Arc<dyn MessageStore> = open(&config).into();
    let old = seed(&*store, &[40 * DAY_MS, 40 * DAY_MS - 1, 40 * DAY_MS - 2]);
    let handle = Server::start_with_store(config, store.clone()).unwrap();
    let token =
        TokenKey::new(SECRET.as_bytes()).mint(chatgw_client::UserId(2), chatgw_gateway::auth::unix_now() + 3600);
    let mut device = Client::connect(handle.addr(), &token).unwrap();
    device.sync().unwrap();
    let mut synced = Vec::new();
    device
        .wait_for(WAIT, "synced", |e| match e {
            Event::Message(m) => {
                synced.push(m.id);
                None
            }
            Event::Synced { .. } => Some(()),
            _ => None,
        })
        .unwrap();
    assert_eq!(synced, old);
    let fresh = seed(&*store, &[3000, 2999, 2998]);
    handle.catch_up_user(2);
    let mut got = Vec::new();
    let _ = device.wait_for(std::time::Duration::from_secs(3), "all", |e| {
        if let Event::Message(m) = e {
            got.push(m.id);
        }
        (got.len() == 3).then_some(())
    });
    assert_eq!(got, fresh, "old {old:?}");
    handle.shutdown();
}
