//! What only the PostgreSQL backend promises: the versioned schema, the
//! store-enforced idempotency key across writers, and a server crash.

use chatgw_protocol::{ConversationId, Message, MessageId, MessageKind, Snowflake, UserId};
use chatgw_storage::{
    conformance::TestPostgres, InboxEvent, MessageStore, PostgresOptions, PostgresStore, StoreError, Write,
    POSTGRES_SCHEMA_VERSION,
};

fn message(ids: &mut Snowflake, client_id: &str) -> Message {
    let id = ids.next_id();
    Message {
        id,
        conversation: ConversationId::direct(UserId(1), UserId(2)),
        from: UserId(1),
        kind: MessageKind::Text,
        client_id: client_id.into(),
        ts: Snowflake::unix_ms(id),
        body: "\"x\"".into(),
    }
}

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
/// the key stays bound to the first, so a later resend gets the original.
#[test]
fn an_idempotency_key_keeps_the_first_message_bound_across_writers() {
    let server = TestPostgres::start();
    let url = server.url(&server.create_database());
    PostgresStore::init(&url).unwrap();
    let (a, b) = (
        PostgresStore::open(&url, &PostgresOptions::default()).unwrap(),
        PostgresStore::open(&url, &PostgresOptions::default()).unwrap(),
    );
    let (first, second) = (message(&mut Snowflake::new(1), "same"), message(&mut Snowflake::new(2), "same"));
    let both = [UserId(1), UserId(2)];
    a.commit(&[Write::Message { message: &first, inboxes: &both }], first.id).unwrap();
    b.commit(&[Write::Message { message: &second, inboxes: &both }], second.id).expect("no failure for a taken key");
    assert_eq!(b.messages_by_client_ids(&[(UserId(1), "same")]).unwrap(), vec![Some((first.conversation, first.id))]);
    assert_eq!(a.high_water().unwrap(), first.id.max(second.id), "one high water row per generator, max of all");
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
    let (m1, m2, m3) = (message(&mut ids, "1"), message(&mut ids, "2"), message(&mut ids, "3"));
    let both = [UserId(1), UserId(2)];
    s.commit(&[Write::Message { message: &m1, inboxes: &both }], m1.id).unwrap();
    if server.crash().is_none() {
        return; // an external server is not ours to stop
    }
    assert!(s.commit(&[Write::Message { message: &m2, inboxes: &both }], m2.id).is_err(), "no false success");
    assert!(s.recover().is_err(), "the server is down");
    assert!(s.inbox_after(UserId(2), MessageId(0), 10).is_err(), "nothing to read from");
    server.restart();
    s.recover().expect("the server is back");
    s.commit(&[Write::Message { message: &m3, inboxes: &both }], m3.id).unwrap();
    let inbox: Vec<MessageId> =
        s.inbox_after(UserId(2), MessageId(0), 10).unwrap().iter().map(InboxEvent::id).collect();
    assert_eq!(inbox, vec![m1.id, m3.id], "the commit that failed before reaching the server is absent");
}
