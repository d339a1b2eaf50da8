//! What only the PostgreSQL backend promises: the versioned schema, the
//! store-enforced idempotency key across writers, positions visible in
//! position order across writers, and a server crash.

use chatgw_protocol::{Message, MessageId, Snowflake, UserId};
use chatgw_storage::{
    conformance::{text, TestPostgres},
    InboxPos, MessageStore, PostgresOptions, PostgresStore, StoreError, Write, WriteOutcome, POSTGRES_SCHEMA_VERSION,
};

#[test]
fn a_missing_or_foreign_schema_is_a_typed_error_and_init_is_idempotent() {
    let server = TestPostgres::start();
    let url = server.url(&server.create_database());
    let open = || PostgresStore::open(&url, &PostgresOptions::default());
    match open() {
        Err(e @ StoreError::SchemaMissing) => assert!(e.to_string().contains("store init"), "says what to run: {e}"),
        other => panic!("no schema yet: {other:?}"),
    }
    PostgresStore::init(&url).unwrap();
    PostgresStore::init(&url).expect("a second init changes nothing");
    open().expect("opens after init");
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin.execute("UPDATE schema_version SET version = version + 1", &[]).unwrap();
    match open() {
        Err(StoreError::SchemaVersion { found, expected }) => {
            assert_eq!((found, expected), (POSTGRES_SCHEMA_VERSION + 1, POSTGRES_SCHEMA_VERSION))
        }
        other => panic!("another version: {other:?}"),
    }
    assert!(matches!(PostgresStore::init(&url), Err(StoreError::SchemaVersion { .. })), "init never downgrades");
}

/// Two gateways commit the same `(sender, client id)` under different ids:
/// the key stays bound to the first, the second writes nothing and learns
/// the original, and each generator keeps its own high water.
#[test]
fn an_idempotency_key_keeps_the_first_message_bound_across_writers() {
    let server = TestPostgres::start();
    let url = server.url(&server.create_database());
    PostgresStore::init(&url).unwrap();
    let (a, b) = (
        PostgresStore::open(&url, &PostgresOptions::default()).unwrap(),
        PostgresStore::open(&url, &PostgresOptions::default()).unwrap(),
    );
    let (first, second) = (text(&mut Snowflake::new(1), 1, 2, "same"), text(&mut Snowflake::new(2), 1, 2, "same"));
    let both = [UserId(1), UserId(2)];
    a.commit(&[Write::Message { message: &first, inboxes: &both, membership: None }], first.id).unwrap();
    let done = b
        .commit(&[Write::Message { message: &second, inboxes: &both, membership: None }], second.id)
        .expect("no failure for a taken key");
    assert_eq!(done.outcome(0), Some(WriteOutcome::Duplicate { conversation: first.conversation, id: first.id }));
    assert_eq!(b.message(second.conversation, second.id).unwrap(), None, "the second message is not stored");
    assert_eq!(b.messages_by_client_ids(&[(UserId(1), "same")]).unwrap(), vec![Some((first.conversation, first.id))]);
    assert_eq!(a.high_water(1).unwrap(), first.id, "one high water row per generator");
    assert_eq!(a.high_water(2).unwrap(), second.id, "one high water row per generator");
    assert_eq!(a.high_water(3).unwrap(), MessageId(0), "a generator that never committed");
}

/// `pg_ctl stop -m immediate` and a restart: a commit during the outage
/// fails, reads fail until the server is back, `recover` then succeeds
/// without reopening the store, and every committed message is there.
#[test]
fn a_server_crash_fails_commits_until_recover_and_loses_nothing_committed() {
    let server = TestPostgres::start();
    let url = server.url(&server.create_database());
    PostgresStore::init(&url).unwrap();
    let s = PostgresStore::open(&url, &PostgresOptions::default()).unwrap();
    let mut ids = Snowflake::new(1);
    let (m1, m2, m3) = (text(&mut ids, 1, 2, "1"), text(&mut ids, 1, 2, "2"), text(&mut ids, 1, 2, "3"));
    let both = [UserId(1), UserId(2)];
    s.commit(&[Write::Message { message: &m1, inboxes: &both, membership: None }], m1.id).unwrap();
    if server.crash().is_none() {
        return; // an external server is not ours to stop
    }
    assert!(
        s.commit(&[Write::Message { message: &m2, inboxes: &both, membership: None }], m2.id).is_err(),
        "no false success"
    );
    assert!(s.recover().is_err(), "the server is down");
    assert!(s.inbox_after(UserId(2), InboxPos(0), 10).is_err(), "nothing to read from");
    server.restart();
    s.recover().expect("the server is back");
    s.commit(&[Write::Message { message: &m3, inboxes: &both, membership: None }], m3.id).unwrap();
    let inbox: Vec<MessageId> =
        s.inbox_after(UserId(2), InboxPos(0), 10).unwrap().iter().map(|e| e.event.id()).collect();
    assert_eq!(inbox, vec![m1.id, m3.id], "the commit that failed before reaching the server is absent");
}

/// A read that cannot reach the server marks the store failed, as a failed
/// commit does: `recover` then has a real write to prove instead of
/// answering at once, and commits are refused until it has. Without this,
/// a committer whose batch failed on a lookup found "nothing to recover"
/// and flapped between refusing and acknowledging while the server was
/// down.
#[test]
fn a_read_that_cannot_reach_the_server_needs_a_real_recovery() {
    let server = TestPostgres::start();
    let url = server.url(&server.create_database());
    PostgresStore::init(&url).unwrap();
    let s = PostgresStore::open(&url, &PostgresOptions::default()).unwrap();
    let mut ids = Snowflake::new(1);
    let (m1, m2) = (text(&mut ids, 1, 2, "1"), text(&mut ids, 1, 2, "2"));
    let both = [UserId(1), UserId(2)];
    if server.crash().is_none() {
        return; // an external server is not ours to stop
    }
    assert!(s.high_water(1).is_err(), "nothing to read from");
    assert!(s.recover().is_err(), "no write can be proven while the server is down");
    server.restart();
    assert!(
        matches!(
            s.commit(&[Write::Message { message: &m1, inboxes: &both, membership: None }], m1.id),
            Err(StoreError::Unwritable { .. })
        ),
        "refused until recover has proven a write"
    );
    s.recover().expect("the server is back");
    s.commit(&[Write::Message { message: &m2, inboxes: &both, membership: None }], m2.id).unwrap();
}

/// The tables of schema version 1, as `chatgw store init` created them
/// before inbox positions and group versions.
const SCHEMA_V1: &str = "
CREATE TABLE schema_version (version integer NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE messages (conversation bytea NOT NULL, id bigint NOT NULL, sender bigint NOT NULL, kind smallint NOT NULL,
    client_id bytea NOT NULL, body bytea NOT NULL, PRIMARY KEY (conversation, id));
CREATE TABLE inbox (user_id bigint NOT NULL, event bigint NOT NULL, conversation bytea, receipt bytea,
    PRIMARY KEY (user_id, event), CHECK ((conversation IS NULL) <> (receipt IS NULL)));
CREATE TABLE idempotency (sender bigint NOT NULL, client_id bytea NOT NULL, conversation bytea NOT NULL,
    id bigint NOT NULL, PRIMARY KEY (sender, client_id));
CREATE TABLE delivered (conversation bytea NOT NULL, id bigint NOT NULL, user_id bigint NOT NULL, at bigint NOT NULL,
    PRIMARY KEY (conversation, id, user_id));
CREATE TABLE read_by (conversation bytea NOT NULL, id bigint NOT NULL, user_id bigint NOT NULL, at bigint NOT NULL,
    PRIMARY KEY (conversation, id, user_id));
CREATE TABLE read_marks (conversation bytea NOT NULL, reader bigint NOT NULL, up_to bigint NOT NULL, at bigint NOT NULL,
    PRIMARY KEY (conversation, reader));
CREATE TABLE groups (id bigint PRIMARY KEY, record bytea NOT NULL);
CREATE TABLE high_water (slot smallint PRIMARY KEY, id bigint NOT NULL);
CREATE TABLE write_probe (id smallint PRIMARY KEY, at timestamptz NOT NULL);
";

/// A version-1 database with messages in two inboxes and a group: `store
/// init` numbers each inbox in id order, starts its head there, gives the
/// group version 1, and a second init changes nothing.
#[test]
fn init_migrates_a_version_1_database_and_keeps_every_inbox_in_order() {
    let server = TestPostgres::start();
    let url = server.url(&server.create_database());
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin.batch_execute(SCHEMA_V1).unwrap();
    let mut ids = Snowflake::new(1);
    let ms: Vec<Message> = (0..5).map(|i| text(&mut ids, 1, 2, &format!("old-{i}"))).collect();
    let conv = ms[0].conversation.to_key();
    let conv = &conv.0[..conv.1];
    // Inserted newest first: the migration must order by id, not by row.
    for m in ms.iter().rev() {
        admin
            .execute(
                "INSERT INTO messages VALUES ($1, $2, 1, 0, $3, $4)",
                &[&conv, &(m.id.0 as i64), &m.client_id.as_bytes(), &m.body.as_bytes()],
            )
            .unwrap();
        for user in [1i64, 2] {
            admin.execute("INSERT INTO inbox VALUES ($1, $2, $3, NULL)", &[&user, &(m.id.0 as i64), &conv]).unwrap();
        }
    }
    // User 1 only has the first two: its inbox is numbered on its own.
    admin.execute("DELETE FROM inbox WHERE user_id = 1 AND event > $1", &[&(ms[1].id.0 as i64)]).unwrap();
    // A group record in the embedded layout: version byte, name, creator,
    // members (user, admin, joined).
    let mut record = vec![1u8, 1, b'g'];
    record.extend_from_slice(&1u64.to_be_bytes());
    record.extend_from_slice(&1u16.to_be_bytes());
    record.extend_from_slice(&1u64.to_be_bytes());
    record.push(1);
    record.extend_from_slice(&5u64.to_be_bytes());
    admin.execute("INSERT INTO groups VALUES (9, $1)", &[&record]).unwrap();
    match PostgresStore::open(&url, &PostgresOptions::default()) {
        Err(StoreError::SchemaVersion { found: 1, expected: POSTGRES_SCHEMA_VERSION }) => {}
        other => panic!("a version-1 database needs init: {other:?}"),
    }

    PostgresStore::init(&url).expect("migrate");
    PostgresStore::init(&url).expect("a second init changes nothing");
    let s = PostgresStore::open(&url, &PostgresOptions::default()).expect("opens after the migration");
    let read = |user: u64| s.inbox_after(UserId(user), InboxPos(0), 100).unwrap();
    let user2 = read(2);
    let got: Vec<(u64, MessageId)> = user2.iter().map(|e| (e.pos.0, e.event.id())).collect();
    let want: Vec<(u64, MessageId)> = ms.iter().enumerate().map(|(i, m)| (i as u64 + 1, m.id)).collect();
    assert_eq!(got, want, "positions 1.. in id order");
    assert_eq!(user2[4].event, chatgw_storage::InboxEvent::Message(ms[4].clone()), "whole messages read back");
    assert_eq!(read(1).iter().map(|e| e.pos.0).collect::<Vec<_>>(), vec![1, 2], "numbered per inbox");
    assert_eq!(s.inbox_position(UserId(2), ms[2].id).unwrap(), InboxPos(3));
    let (group, version) = s.versioned_group(chatgw_protocol::GroupId(9)).unwrap().expect("the group");
    assert_eq!((group.name.as_str(), group.members.len(), version.0), ("g", 1, 1));
    let list = |user: u64| -> Vec<(MessageId, u64)> {
        s.conversations(UserId(user), None, 10).unwrap().into_iter().map(|r| (r.last, r.unread)).collect()
    };
    assert_eq!(list(2), vec![(ms[4].id, 5)], "the migration lists what was stored, with unread counts");
    assert_eq!(list(1), vec![(ms[1].id, 0)], "own messages are not unread");

    // New events continue after the migrated ones.
    let next = text(&mut ids, 1, 2, "new");
    let done = s
        .commit(&[Write::Message { message: &next, inboxes: &[UserId(1), UserId(2)], membership: None }], next.id)
        .unwrap();
    assert_eq!(done.positions(0), &[InboxPos(3), InboxPos(6)]);
    assert_eq!(list(2), vec![(next.id, 6)], "the migrated rows are kept up to date");
    let version: i32 = admin.query_one("SELECT version FROM schema_version", &[]).unwrap().get(0);
    assert_eq!(version, POSTGRES_SCHEMA_VERSION);
}

/// Positions are decided under the inbox's head row, which stays locked
/// until COMMIT: while another writer's commit is in flight (it raised
/// user 2's head, its event not visible yet), a second writer to that
/// inbox waits, and then numbers above it. So no reader sees a position
/// before the one below it, and a gateway paging on from the last position
/// it delivered (a sync's later pages, a catch-up) never moves past an
/// event still being committed. A counter that commits out of order (a
/// sequence, a head raised in a transaction of its own) fails this.
#[test]
fn a_second_writer_waits_for_the_position_below_it_to_commit() {
    use std::{sync::mpsc, time::Duration};

    let server = TestPostgres::start();
    let url = server.url(&server.create_database());
    PostgresStore::init(&url).unwrap();
    let store = PostgresStore::open(&url, &PostgresOptions::default()).unwrap();
    let both = [UserId(1), UserId(2)];
    let mut ids = Snowflake::new(1);
    let first = text(&mut ids, 1, 2, "first");
    let done = store.commit(&[Write::Message { message: &first, inboxes: &both, membership: None }], first.id).unwrap();
    assert_eq!(done.positions(0), [InboxPos(1), InboxPos(1)]);

    // Another writer's commit, in flight: it holds user 2's position 2.
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut in_flight = db.transaction().unwrap();
    let head: i64 = in_flight
        .query_one("UPDATE inbox_heads SET head = head + 1 WHERE user_id = 2 RETURNING head", &[])
        .unwrap()
        .get(0);
    assert_eq!(head, 2);
    let held = ids.next_id();
    in_flight
        .execute(
            "INSERT INTO messages (conversation, id, sender, kind, client_id, body)
             SELECT conversation, $1, sender, kind, 'held'::bytea, body FROM messages WHERE id = $2",
            &[&(held.0 as i64), &(first.id.0 as i64)],
        )
        .unwrap();
    in_flight
        .execute(
            "INSERT INTO inbox (user_id, event, pos, conversation)
             SELECT 2, $1, 2, conversation FROM messages WHERE id = $1",
            &[&(held.0 as i64)],
        )
        .unwrap();

    let later = text(&mut ids, 1, 2, "later");
    std::thread::scope(|scope| {
        let (sent, committed) = mpsc::channel();
        let (store, later, both) = (&store, &later, &both);
        let writer = scope.spawn(move || {
            let w = [Write::Message { message: later, inboxes: both, membership: None }];
            let done = store.commit(&w, later.id).unwrap();
            let _ = sent.send(());
            done.positions(0).to_vec()
        });
        assert!(committed.recv_timeout(Duration::from_millis(500)).is_err(), "the second writer waits");
        assert!(store.inbox_after(UserId(2), InboxPos(1), 10).unwrap().is_empty(), "nothing past position 1 shows");
        in_flight.commit().unwrap();
        assert_eq!(writer.join().unwrap(), [InboxPos(2), InboxPos(3)], "numbered above the held position");
    });
    let read: Vec<(InboxPos, MessageId)> =
        store.inbox_after(UserId(2), InboxPos(1), 10).unwrap().iter().map(|e| (e.pos, e.event.id())).collect();
    assert_eq!(read, [(InboxPos(2), held), (InboxPos(3), later.id)]);
}
