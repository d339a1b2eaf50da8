//! The shared `MessageStore` conformance suite against a live Cassandra or
//! ScyllaDB node named by `CHATGW_TEST_CASSANDRA=host:port`, one fresh
//! keyspace per check (replication factor 1, so one node is enough).
//!
//! Without that variable every check prints why it skipped and passes: no
//! Cassandra or ScyllaDB can be installed on the machines these tests run
//! on (neither is packaged in the registries they reach), and the
//! in-memory server that is available cannot run a commit
//! (tests/cassandra_kassandra.rs checks what it can).

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use chatgw_storage::{
    conformance::{self, Backend},
    CassandraStore, MessageStore,
};

struct Cassandra {
    node: String,
}

static PLACES: AtomicUsize = AtomicUsize::new(0);

impl Cassandra {
    fn from_env(check: &str) -> Option<Self> {
        match std::env::var("CHATGW_TEST_CASSANDRA") {
            Ok(node) if !node.is_empty() => Some(Cassandra { node }),
            _ => {
                eprintln!("{check}: skipped: set CHATGW_TEST_CASSANDRA=host:port to run it against a live node");
                None
            }
        }
    }

    fn url(&self, keyspace: &str) -> String {
        format!("cassandra://{}/{keyspace}?replication=simple:1", self.node)
    }
}

impl Backend for Cassandra {
    fn new_place(&self) -> String {
        let n = PLACES.fetch_add(1, Ordering::Relaxed);
        let keyspace = format!("chatgw_test_{}_{n}_{}", std::process::id(), chatgw_protocol::now_ms());
        CassandraStore::init(&self.url(&keyspace)).expect("init keyspace");
        keyspace
    }

    fn open(&self, place: &str) -> Arc<dyn MessageStore> {
        Arc::new(CassandraStore::open(&self.url(place)).expect("open"))
    }

    fn second_handle(&self, place: &str, _first: &Arc<dyn MessageStore>) -> Arc<dyn MessageStore> {
        self.open(place)
    }

    /// Gateways share a keyspace with no lock between them: positions are
    /// claimed per inbox with lightweight transactions, dense.
    fn several_writers(&self) -> bool {
        true
    }

    /// Amendments are written without reading the row first.
    fn deletes_are_final(&self) -> bool {
        false
    }

    /// Keys are written with `USING TTL` and expire by themselves.
    fn keys_expire_by_ttl(&self) -> bool {
        true
    }

    /// Inbox retention is not done on Cassandra yet (docs/STORAGE.md).
    fn sweeps_inboxes(&self) -> bool {
        false
    }

    /// A live node is not ours to stop (tests/cassandra_kassandra.rs cuts
    /// the connection to an in-memory server instead).
    fn interrupt(&self, _place: &str, _store: &Arc<dyn MessageStore>) -> bool {
        false
    }
}

macro_rules! conformance_tests {
    ($($case:ident),* $(,)?) => {$(
        #[test]
        fn $case() {
            let Some(node) = Cassandra::from_env(stringify!($case)) else { return };
            conformance::$case(&node);
        }
    )*};
}

chatgw_storage::for_each_conformance_case!(conformance_tests);

/// `check_integrity` after real commits on a live node: the history the
/// embedded and PostgreSQL checks are tested on (a direct message and its
/// delivery receipt, a group created with three members, a message to it,
/// one member removed) is clean and counted alike; a message deleted
/// behind the store's back is then named wherever it is referenced.
#[test]
fn check_after_commits() {
    use chatgw_protocol::{
        ConversationId, Group, GroupId, Member, Message, MessageId, MessageKind, Receipt, Snowflake, UserId,
    };
    use chatgw_storage::{GroupVersion, Write};

    let Some(node) = Cassandra::from_env("check_after_commits") else { return };
    let keyspace = node.new_place();
    let store = CassandraStore::open(&node.url(&keyspace)).expect("open");
    let (u1, u2, u3) = (UserId(1), UserId(2), UserId(3));
    let mut ids = Snowflake::new(0);
    let mut message = |c, from, kind, cid: &str, body: &str| {
        let id = ids.next_id();
        Message {
            id,
            conversation: c,
            from,
            kind,
            client_id: cid.into(),
            ts: Snowflake::unix_ms(id),
            body: body.into(),
            amended: None,
        }
    };
    let dc = ConversationId::direct(u1, u2);
    let direct = message(dc, u1, MessageKind::Text, "c1", "\"hi\"");
    // The receipt's event id and the group id come from the same generator.
    let event = message(dc, u2, MessageKind::Text, "", "").id;
    let receipt = Receipt::Delivered { event, conversation: dc, by: u2, ids: vec![direct.id], at: 1 };
    let gid = GroupId(message(dc, u1, MessageKind::Text, "", "").id.0);
    let gc = ConversationId::Group(gid);
    let created = serde_json::to_string(r#"{"event":"created","by":"1","name":"T","members":["1","2","3"]}"#).unwrap();
    let created = message(gc, u1, MessageKind::System, "g:g1", &created);
    let text = message(gc, u2, MessageKind::Text, "c2", "\"to all\"");
    let removed = serde_json::to_string(r#"{"event":"removed","by":"1","members":["3"],"new_admins":[]}"#).unwrap();
    let removed = message(gc, u1, MessageKind::System, "", &removed);
    let member = |user, admin| Member { user, admin, joined: MessageId(gid.0) };
    let before = Group {
        id: gid,
        name: "T".into(),
        description: String::new(),
        admins_only: false,
        admins_can_delete: false,
        created_by: u1,
        members: vec![member(u1, true), member(u2, false), member(u3, false)],
    };
    let mut after = before.clone();
    after.members.retain(|m| m.user != u3);
    let (all, two) = ([u1, u2, u3], [u1, u2]);
    let writes = [
        Write::Message { message: &direct, inboxes: &two, membership: None },
        Write::Receipt { receipt: &receipt, inboxes: &[u1] },
        Write::Group { group: &before, based_on: GroupVersion::ABSENT, announce: Some(&created), inboxes: &all },
        Write::Message { message: &text, inboxes: &all, membership: None },
    ];
    store.commit(&writes, text.id).expect("commit");
    let writes = [Write::Group { group: &after, based_on: GroupVersion(1), announce: Some(&removed), inboxes: &all }];
    store.commit(&writes, removed.id).expect("commit");

    let r = store.check_integrity().expect("check");
    assert!(r.is_clean(), "{:?}", r.violations);
    let c = &r.counts;
    assert_eq!((c.messages, c.inbox_messages, c.inbox_receipts, c.idempotency_keys), (4, 11, 1, 3));
    assert_eq!((c.delivery_marks, c.groups, c.high_water), (1, 1, removed.id.0));

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let session =
            scylla::client::session_builder::SessionBuilder::new().known_node(&node.node).build().await.unwrap();
        let cql = format!("DELETE FROM {keyspace}.messages WHERE conversation = ? AND bucket = ? AND id = ?");
        let (key, n) = dc.to_key();
        let bucket = ((direct.id.0 >> 22) / (10 * 86_400_000)) as i32;
        session.query_unpaged(cql, (key[..n].to_vec(), bucket, direct.id.0 as i64)).await.unwrap();
    });
    let r = store.check_integrity().expect("check");
    let text: String = r.violations.iter().map(|v| format!("{}: {}\n", v.table, v.problem)).collect();
    let id = direct.id.0;
    for expected in [
        format!("inbox: user 1: reference to missing message {id}"),
        format!("inbox: user 2: reference to missing message {id}"),
        format!("idempotency: (1, \"c1\") points to missing message {id}"),
        format!("delivered: mark of user 2 for missing message {id}"),
        format!("names missing message {id}"),
    ] {
        assert!(text.contains(&expected), "{expected} in:\n{text}");
    }
    assert_eq!(r.violation_count, 5, "{text}");
}
