//! Inbox retention over real sockets: a store holding events older than
//! the retention (30 days, the default) is swept by the gateway's
//! retention thread at start; a device whose cursor is among the swept
//! events gets the kept ones and `"truncated":true` on `synced`, a device
//! with a current cursor or a new one gets no flag; `chatgw check` passes
//! with the retention and fails with `0s` and on entries lost inside it; a
//! connection catching up from a position the sweep removed gets the kept
//! events from the oldest on, and one catching up after another writer's
//! commits gets each of them once, in order. Embedded on both I/O drivers,
//! and PostgreSQL.

mod util;

use std::{
    io::Write as _,
    net::TcpStream,
    path::Path,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use chatgw_client::{Client, Event};
use chatgw_gateway::{
    auth::{unix_now, TokenKey},
    store::StoreUrl,
    Config, Server, ServerHandle,
};
use chatgw_protocol::{now_ms, ConversationId, Message, MessageId, MessageKind, Snowflake, UserId};
use chatgw_storage::{
    EmbeddedOptions, EmbeddedStore, MessageStore, PostgresOptions, PostgresStore, Write, WriteOutcome,
};
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

/// Messages from user 1 to user 2 made at each of `ages_ms` ago, each
/// committed and applied.
///
/// Every message gets a client id of its own (derived from its id): a
/// test that seeds twice must not reuse keys. The gateway's key sweep
/// (a week by default) unbinds the keys of 40-day-old messages at start,
/// while the test goes on, so a reused key made a later message a
/// duplicate (nothing stored), a conflict, or a new message, depending
/// on timing; a catch-up then rightly sent fewer events than the test
/// expected, which looked like a catch-up starting late.
fn seed(store: &dyn MessageStore, ages_ms: &[u64]) -> Vec<MessageId> {
    // Node 7: never the gateway's own (node 0), so no id can repeat.
    let mut g = Snowflake::new(7);
    let now = now_ms();
    ages_ms
        .iter()
        .enumerate()
        .map(|(i, age)| {
            let id = g.next_at(now - age);
            let client_id = format!("seed-{}", id.0);
            let m = Message {
                id,
                conversation: ConversationId::direct(UserId(1), UserId(2)),
                from: UserId(1),
                kind: MessageKind::Text,
                client_id,
                ts: Snowflake::unix_ms(id),
                body: format!("\"m{i}\""),
                amended: None,
            };
            let done = store
                .commit(&[Write::Message { message: &m, inboxes: &[UserId(1), UserId(2)], membership: None }], id)
                .unwrap();
            assert_eq!(done.outcome(0), Some(WriteOutcome::Applied), "seeded message {i} is stored");
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

/// A gateway on `on`'s store, three 40-day-old events from user 1 in user
/// 2's inbox, and a device of user 2 that synced them. The gateway sweeps
/// no inbox (a test sweeps at the moment it chooses); its key sweep runs.
fn synced_device(on: Setup) -> (tempfile::TempDir, Arc<dyn MessageStore>, ServerHandle, Client, Vec<MessageId>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf(), SECRET.into());
    (config.workers, config.io, config.store) = (1, on.io, on.store_url());
    config.inbox_retention = Duration::ZERO;
    // The test commits beside the gateway, as another node of a fleet
    // would: one pipeline, as on a shared store (several pipelines read
    // only below the ids they handed out themselves, and on the embedded
    // store nothing else writes).
    config.commit_pipelines = 1;
    let store: Arc<dyn MessageStore> = open(&config).into();
    let old = seed(&*store, &[40 * DAY_MS, 40 * DAY_MS - 1, 40 * DAY_MS - 2]);
    let handle = Server::start_with_store(config, store.clone()).unwrap();
    let token = TokenKey::new(SECRET.as_bytes()).mint(UserId(2), unix_now() + 3600);
    let mut device = Client::connect(handle.addr(), &token).unwrap();
    device.sync().unwrap();
    let synced = messages_until_synced(&mut device);
    assert_eq!(synced, old, "the device has every old event");
    (dir, store, handle, device, old)
}

/// The ids of the messages `device` gets up to its next `synced`.
fn messages_until_synced(device: &mut Client) -> Vec<MessageId> {
    let mut got = Vec::new();
    device
        .wait_for(WAIT, "synced", |e| match e {
            Event::Message(m) => {
                got.push(m.id);
                None
            }
            Event::Synced { .. } => Some(()),
            _ => None,
        })
        .unwrap();
    got
}

/// A message `device` gets within `wait`, if any; a catch-up never ends
/// with `synced`.
fn another_message(device: &mut Client, wait: Duration) -> Option<MessageId> {
    device
        .wait_for(wait, "a message", |e| match e {
            Event::Message(m) => Some(m.id),
            Event::Synced { .. } => panic!("a catch-up ends without synced"),
            _ => None,
        })
        .ok()
}

each_store!(a_catch_up_after_another_writers_commits_brings_each_event_once_in_order);
fn a_catch_up_after_another_writers_commits_brings_each_event_once_in_order(on: Setup) {
    let (_dir, store, handle, mut device, old) = synced_device(on);
    // Another writer (here the test, on the gateway's store) commits three
    // events the device is not sent live; the gateway is then told.
    let fresh = seed(&*store, &[3000, 2999, 2998]);
    handle.catch_up_user(2);
    let got: Vec<MessageId> = (0..3).filter_map(|_| another_message(&mut device, WAIT)).collect();
    assert_eq!(got, fresh, "every new event, from the first, in position order (old: {old:?})");
    assert_eq!(another_message(&mut device, Duration::from_millis(300)), None, "each event once");
    // The device's cursor stands on the last of them: a sync from it
    // brings nothing, and one from before them brings all three again.
    assert_eq!(device.cursor(), fresh[2]);
    device.sync().unwrap();
    assert_eq!(messages_until_synced(&mut device), Vec::<MessageId>::new());
    device.set_cursor(old[2]);
    device.sync().unwrap();
    assert_eq!(messages_until_synced(&mut device), fresh);
    handle.shutdown();
}

each_store!(a_catch_up_from_below_what_was_swept_starts_at_the_oldest_kept_event);
fn a_catch_up_from_below_what_was_swept_starts_at_the_oldest_kept_event(on: Setup) {
    let (_dir, store, handle, mut device, old) = synced_device(on);
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
    let got: Vec<MessageId> = (0..2).filter_map(|_| another_message(&mut device, WAIT)).collect();
    assert_eq!(got, fresh[1..], "from the oldest kept event, in order (old: {old:?})");
    assert_eq!(another_message(&mut device, Duration::from_millis(300)), None, "the removed event is not sent");
    handle.shutdown();
}
