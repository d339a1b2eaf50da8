//! The Cassandra store against kassandra, an in-memory CQL server, for what
//! that server can check: it speaks the CQL protocol but keeps no
//! clustering order, ignores LIMIT and conditions, and refuses range
//! restrictions, so the conformance suite cannot run on it (that needs a
//! real node: tests/conformance_cassandra.rs). docs/STORAGE.md lists what
//! each server verified.
//!
//! The server is `.ci/kassandra-server`, installed by `.ci/run` into
//! `$CHATGW_CACHE_DIR/kassandra/bin` (or named by `CHATGW_KASSANDRA_BIN`).
//! Without it each test prints why it skipped. Every test starts its own
//! server on a free port, reached through a small TCP relay that the
//! outage test cuts.

use std::{
    io::{BufRead, BufReader},
    net::{Shutdown, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread,
};

use chatgw_protocol::{
    ConversationId, DeviceName, Group, GroupId, Member, Message, MessageId, MessageKind, Snowflake, UserId,
};
use chatgw_storage::{
    CassandraStore, DeviceNote, DeviceRecord, GroupVersion, InboxPos, MessageStore, PushProvider, PushTarget,
    StoreError, Write, WriteFailure, CASSANDRA_SCHEMA_VERSION,
};

/// A kassandra process; killed when dropped (it also exits when its
/// standard input closes, so a crashed test leaves nothing behind).
struct Kassandra {
    child: Child,
    addr: String,
}

fn binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("CHATGW_KASSANDRA_BIN") {
        return Some(PathBuf::from(bin));
    }
    let cache = std::env::var_os("CHATGW_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/chatgw")))?;
    Some(cache.join("kassandra/bin/chatgw-kassandra-server")).filter(|p| p.is_file())
}

impl Kassandra {
    fn start(test: &str) -> Option<Self> {
        let Some(bin) = binary() else {
            eprintln!("{test}: skipped: no kassandra server (run .ci/run, or set CHATGW_KASSANDRA_BIN)");
            return None;
        };
        let mut child = Command::new(&bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).expect("kassandra's address");
        let addr = line.trim().strip_prefix("listening on ").expect("`listening on ADDR`").to_owned();
        Some(Kassandra { child, addr })
    }
}

impl Drop for Kassandra {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP relay from a free port to `target` that can be cut (every
/// connection closed, new ones refused at once) and mended.
struct Relay {
    addr: String,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn new(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let addr = listener.local_addr().expect("relay address").to_string();
        let (cut, open) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
        let (target, c, o) = (target.to_owned(), cut.clone(), open.clone());
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if c.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else { continue };
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    })
                };
                let clones = (client.try_clone(), server.try_clone());
                let (Ok(client2), Ok(server2)) = clones else { continue };
                o.lock().unwrap().extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                pipe(client, server);
                pipe(server2, client2);
            }
        });
        Relay { addr, cut, open }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn mend(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn url(addr: &str) -> String {
    format!("cassandra://{addr}/chatgw_test?replication=simple:1&consistency=one&connect_timeout=2s")
}

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
        amended: None,
    }
}

#[test]
fn init_creates_a_versioned_schema_idempotently_and_open_checks_it() {
    let Some(k) = Kassandra::start("init") else { return };
    let url = url(&k.addr);
    match CassandraStore::open(&url) {
        Err(e @ StoreError::SchemaMissing) => assert!(e.to_string().contains("store init"), "says what to run: {e}"),
        other => panic!("no schema yet: {other:?}"),
    }
    CassandraStore::init(&url).expect("init");
    CassandraStore::init(&url).expect("a second init changes nothing");
    CassandraStore::open(&url).expect("opens after init");

    // Another release's version record: refused by open and by init.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let session = scylla::client::session_builder::SessionBuilder::new()
            .known_node(&k.addr)
            .fetch_schema_metadata(false)
            .build()
            .await
            .unwrap();
        let update = session.prepare("INSERT INTO chatgw_test.schema_version (component, version) VALUES (?, ?)");
        session.execute_unpaged(&update.await.unwrap(), ("chatgw", CASSANDRA_SCHEMA_VERSION + 1)).await.unwrap();
    });
    match CassandraStore::open(&url) {
        Err(StoreError::SchemaVersion { found, expected }) => {
            assert_eq!((found, expected), (CASSANDRA_SCHEMA_VERSION + 1, CASSANDRA_SCHEMA_VERSION))
        }
        other => panic!("another version: {other:?}"),
    }
    assert!(matches!(CassandraStore::init(&url), Err(StoreError::SchemaVersion { .. })), "init never downgrades");
}

#[test]
fn point_reads_of_an_empty_store_answer_nothing() {
    let Some(k) = Kassandra::start("point reads") else { return };
    let url = url(&k.addr);
    CassandraStore::init(&url).unwrap();
    let s = CassandraStore::open(&url).unwrap();
    let c = ConversationId::direct(UserId(1), UserId(2));
    assert_eq!(s.high_water(1).unwrap(), MessageId(0));
    assert_eq!(s.message(c, MessageId(5)).unwrap(), None);
    assert_eq!(s.messages_by_client_ids(&[(UserId(1), "a"), (UserId(1), "")]).unwrap(), vec![None, None]);
    assert_eq!(s.message_headers(&[(c, MessageId(5))]).unwrap(), vec![None]);
    assert_eq!(s.messages(&[(c, MessageId(5)), (c, MessageId(6))]).unwrap(), vec![None, None]);
    assert_eq!(s.delivery_marks(&[(c, MessageId(5), UserId(2))]).unwrap(), vec![false]);
    assert_eq!(s.read_marks(&[(c, UserId(2))]).unwrap(), vec![None]);
    assert_eq!(s.receipts_of(c, MessageId(5)).unwrap(), Default::default());
    assert_eq!(s.group(GroupId(7)).unwrap(), None);
    assert_eq!(s.versioned_group(GroupId(7)).unwrap(), None);
    // Not `inbox_after`: kassandra cannot parse `WRITETIME(...)`, which its
    // read of the inbox head selects.
    assert_eq!(s.inbox_position(UserId(2), MessageId(0)).unwrap(), InboxPos(0), "cursor zero, without a query");
}

/// kassandra cannot run a commit (it neither honours nor answers the
/// conditions of lightweight transactions, which decide keys, group
/// versions and inbox positions, and it misreads the range delete that
/// prunes smaller high waters): the commit fails with a one-line error
/// naming the cause, and from then on the store refuses writes until it
/// recovers.
/// Revocations need no condition, range or order from the server: rows
/// are written plainly and the largest per user is taken by the store.
#[test]
fn revocations_are_recorded_and_read_back_as_the_latest_per_user() {
    let Some(k) = Kassandra::start("revocations") else { return };
    let url = url(&k.addr);
    CassandraStore::init(&url).unwrap();
    let s = CassandraStore::open(&url).unwrap();
    assert!(s.revocations().unwrap().is_empty());
    s.revoke_sessions(UserId(7), 1_000).unwrap();
    s.revoke_sessions(UserId(7), 900).unwrap();
    s.revoke_sessions(UserId(9), 500).unwrap();
    let mut all = CassandraStore::open(&url).unwrap().revocations().unwrap();
    all.sort();
    assert_eq!(all, vec![(UserId(7), 1_000), (UserId(9), 500)]);
}

/// Devices need no order or condition either: the store merges a device's
/// times itself and takes the largest revocation time per device. The
/// conformance case, run on a real node, checks the rest.
#[test]
fn devices_are_noted_merged_and_revoked() {
    let Some(k) = Kassandra::start("devices") else { return };
    let url = url(&k.addr);
    CassandraStore::init(&url).unwrap();
    let s = CassandraStore::open(&url).unwrap();
    let dev = |n| DeviceName::new(n).unwrap();
    let note = |device, at, token_iat| DeviceNote { user: UserId(7), device: dev(device), at, token_iat };
    assert!(s.devices(UserId(7)).unwrap().is_empty());
    s.note_devices(&[note("phone", 100, 90), note("laptop", 110, 0)]).unwrap();
    s.note_devices(&[note("phone", 300, 250), note("phone", 50, 40)]).unwrap();
    s.revoke_device(UserId(7), dev("phone"), 400).unwrap();
    s.revoke_device(UserId(7), dev("phone"), 350).unwrap();
    let other = CassandraStore::open(&url).unwrap();
    assert_eq!(other.device_revocations().unwrap(), vec![(UserId(7), dev("phone"), 400)]);
    let record = |device, first_seen, last_active, token_iat, revoked_at| DeviceRecord {
        device: dev(device),
        first_seen,
        last_active,
        token_iat,
        revoked_at,
    };
    assert_eq!(
        other.devices(UserId(7)).unwrap(),
        vec![record("laptop", 110, 110, 0, None), record("phone", 50, 300, 250, Some(400))]
    );
    assert!(other.devices(UserId(8)).unwrap().is_empty());
}

#[test]
fn a_commit_the_server_cannot_run_fails_in_one_line_and_writes_are_refused() {
    let Some(k) = Kassandra::start("commit") else { return };
    let url = url(&k.addr);
    CassandraStore::init(&url).unwrap();
    let s = CassandraStore::open(&url).unwrap();
    let m = message(&mut Snowflake::new(1), "once");
    let group = Group {
        id: GroupId(7),
        name: "g".into(),
        description: String::new(),
        admins_only: false,
        admins_can_delete: false,
        created_by: UserId(1),
        members: vec![Member { user: UserId(1), admin: true, joined: MessageId(1) }],
    };
    let both = [UserId(1), UserId(2)];
    let err = s
        .commit(
            &[
                Write::Message { message: &m, inboxes: &both, membership: None },
                Write::Group { group: &group, based_on: GroupVersion::ABSENT, announce: None, inboxes: &[] },
            ],
            m.id,
        )
        .expect_err("refused");
    let text = err.to_string();
    assert!(text.starts_with("storage engine failed during commit: ") && !text.contains('\n'), "{text}");
    match s.commit(&[], m.id) {
        Err(StoreError::Unwritable { cause }) => assert_eq!(cause, err.failure()),
        other => panic!("until recover, writes are refused: {other:?}"),
    }
}

/// The relay is cut: reads fail with an error (no panic, no hang), a
/// commit fails and the store refuses writes, `recover` fails until the
/// server is reachable again and then succeeds (its probe is a write).
#[test]
fn an_outage_fails_commits_until_recover_proves_a_write() {
    let Some(k) = Kassandra::start("outage") else { return };
    let relay = Relay::new(&k.addr);
    let url = url(&relay.addr);
    CassandraStore::init(&url).unwrap();
    let s = CassandraStore::open(&url).unwrap();
    let g = Group {
        id: GroupId(7),
        name: "g".into(),
        description: String::new(),
        admins_only: false,
        admins_can_delete: false,
        created_by: UserId(1),
        members: vec![],
    };
    assert_eq!(s.group(GroupId(7)).unwrap(), None);
    s.recover().expect("nothing failed: nothing to do");
    relay.cut();
    let create = Write::Group { group: &g, based_on: GroupVersion::ABSENT, announce: None, inboxes: &[] };
    let err = s.commit(&[create], MessageId(9)).expect_err("a commit during an outage fails");
    assert_eq!(err.failure(), WriteFailure::Io, "an unreachable cluster is an I/O failure: {err}");
    assert!(matches!(s.commit(&[], MessageId(9)), Err(StoreError::Unwritable { cause: WriteFailure::Io })));
    assert!(s.group(GroupId(7)).is_err(), "nothing to read from");
    assert!(s.recover().is_err(), "the server is unreachable");
    relay.mend();
    let mut tries = 0;
    while let Err(e) = s.recover() {
        tries += 1;
        assert!(tries < 100, "recover keeps failing after the relay is mended: {e}");
        thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(s.group(GroupId(7)).unwrap(), None, "reads work again");
}

#[test]
fn an_unreachable_cluster_is_a_one_line_error() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = CassandraStore::open(&url(&format!("127.0.0.1:{port}"))).expect_err("nobody listens");
    assert!(matches!(err, StoreError::Backend { op: "connect", .. }), "{err:?}");
    assert!(!err.to_string().contains('\n'), "{err}");
    let err = CassandraStore::open("cassandra://h/k?consistency=any").expect_err("bad URL");
    assert!(err.to_string().contains("bad consistency `any`"), "{err}");
}

/// The integrity check's whole-table reads on a CQL server. kassandra
/// cannot run a commit, so the rows one commit writes (a direct message
/// from 1 to 2 with a client id) are written with plain inserts; then
/// damage: marks of messages that do not exist, more than a report lists.
/// kassandra answers a read of a whole table with at most 4,999 rows and
/// no paging state, so reads of several pages are not tried here.
#[test]
fn the_integrity_check_reads_every_table() {
    let Some(k) = Kassandra::start("check") else { return };
    let url = url(&k.addr);
    CassandraStore::init(&url).unwrap();
    let s = CassandraStore::open(&url).unwrap();
    let empty = s.check_integrity().expect("an empty keyspace is read");
    assert!(empty.is_clean() && empty.counts == Default::default(), "{empty:?}");

    let m = message(&mut Snowflake::new(1), "once");
    let (key, n) = m.conversation.to_key();
    let conv = key[..n].to_vec();
    let id = m.id.0 as i64;
    // The buckets of the schema: 10 days of Snowflake time for messages,
    // 1 day for `inbox_ids`.
    let day = ((m.id.0 >> 22) / 86_400_000) as i32;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let session = scylla::client::session_builder::SessionBuilder::new()
            .known_node(&k.addr)
            .fetch_schema_metadata(false)
            .build()
            .await
            .unwrap();
        let run = |cql: &'static str, values: Vec<scylla::value::CqlValue>| {
            let session = &session;
            async move {
                let statement = session.prepare(cql).await.unwrap_or_else(|e| panic!("{cql}: {e}"));
                session.execute_unpaged(&statement, values).await.unwrap_or_else(|e| panic!("{cql}: {e}"));
            }
        };
        use scylla::value::CqlValue::{BigInt, Blob, Int, Text};
        run(
            "INSERT INTO chatgw_test.messages (conversation, bucket, id, sender, kind, client_id, body) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
            vec![
                Blob(conv.clone()),
                Int(day / 10),
                BigInt(id),
                BigInt(1),
                Int(m.kind as i32),
                Text("once".into()),
                Text(m.body),
            ],
        )
        .await;
        run(
            "INSERT INTO chatgw_test.conversation_buckets (conversation, bucket) VALUES (?, ?)",
            vec![Blob(conv.clone()), Int(day / 10)],
        )
        .await;
        run(
            "INSERT INTO chatgw_test.idempotency (sender, client_id, conversation, id) VALUES (?, ?, ?, ?)",
            vec![BigInt(1), Text("once".into()), Blob(conv.clone()), BigInt(id)],
        )
        .await;
        run("INSERT INTO chatgw_test.high_water (slot, id) VALUES (?, ?)", vec![Int(1), BigInt(id)]).await;
        for user in [1, 2] {
            run(
                "INSERT INTO chatgw_test.inbox (user_id, bucket, pos, event, conversation) VALUES (?, ?, ?, ?, ?)",
                vec![BigInt(user), Int(0), BigInt(1), BigInt(id), Blob(conv.clone())],
            )
            .await;
            run("INSERT INTO chatgw_test.inbox_heads (user_id, head) VALUES (?, ?)", vec![BigInt(user), BigInt(1)])
                .await;
            run(
                "INSERT INTO chatgw_test.inbox_ids (user_id, bucket, event, pos) VALUES (?, ?, ?, ?)",
                vec![BigInt(user), Int(day), BigInt(id), BigInt(1)],
            )
            .await;
            run("INSERT INTO chatgw_test.inbox_buckets (user_id, bucket) VALUES (?, ?)", vec![BigInt(user), Int(day)])
                .await;
        }
    });
    let r = s.check_integrity().unwrap();
    assert!(r.is_clean(), "{:?}", r.violations);
    let c = &r.counts;
    assert_eq!((c.high_water, c.messages, c.inbox_messages, c.idempotency_keys), (m.id.0, 1, 2, 1));

    // Marks of 1,500 messages that do not exist.
    runtime.block_on(async {
        let session = scylla::client::session_builder::SessionBuilder::new()
            .known_node(&k.addr)
            .fetch_schema_metadata(false)
            .build()
            .await
            .unwrap();
        let insert = session
            .prepare("INSERT INTO chatgw_test.delivered (conversation, id, user_id, at) VALUES (?, ?, ?, ?)")
            .await
            .unwrap();
        for missing in 0..1_500i64 {
            session.execute_unpaged(&insert, (&conv, id + 1 + missing, 2i64, 0i64)).await.unwrap();
        }
    });
    let r = s.check_integrity().unwrap();
    assert_eq!((r.counts.delivery_marks, r.violation_count), (1_500, 1_500));
    assert_eq!(r.violations.len(), 1000, "the first 1,000 are listed");
    let first = &r.violations[0];
    assert_eq!(first.table, "delivered");
    assert!(first.problem.starts_with("mark of user 2 for missing message "), "{}", first.problem);
}

/// The conversation list needs no condition, range or order from the
/// server to be read: a user's rows are one partition read, the largest
/// `last` per conversation is taken and ordered by the store, and unread
/// rows at or below the read mark are left out by the store (a commit's
/// range delete removes them on a real node). Rows are written plainly
/// here, as a commit would leave them before its prune lands.
#[test]
fn the_conversation_list_is_read_from_plain_rows() {
    let Some(k) = Kassandra::start("conversation list") else { return };
    let url = url(&k.addr);
    CassandraStore::init(&url).unwrap();
    let s = CassandraStore::open(&url).unwrap();
    assert!(s.conversations(UserId(1), None, 10).unwrap().is_empty(), "an empty keyspace lists nothing");
    let (d12, d13) = (ConversationId::direct(UserId(1), UserId(2)), ConversationId::direct(UserId(1), UserId(3)));
    let key = |c: &ConversationId| {
        let (k, n) = c.to_key();
        k[..n].to_vec()
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let session = scylla::client::session_builder::SessionBuilder::new()
            .known_node(&k.addr)
            .fetch_schema_metadata(false)
            .build()
            .await
            .unwrap();
        let last = session
            .prepare("INSERT INTO chatgw_test.conversation_last (user_id, conversation, last) VALUES (?, ?, ?)")
            .await
            .unwrap();
        let unread = session
            .prepare("INSERT INTO chatgw_test.unread (user_id, conversation, id) VALUES (?, ?, ?)")
            .await
            .unwrap();
        for (c, id) in [(&d12, 10i64), (&d12, 30), (&d13, 20)] {
            session.execute_unpaged(&last, (1i64, key(c), id)).await.unwrap();
            session.execute_unpaged(&unread, (1i64, key(c), id)).await.unwrap();
        }
        let mark = session
            .prepare("INSERT INTO chatgw_test.read_marks (conversation, reader, up_to, at) VALUES (?, ?, ?, ?)")
            .await
            .unwrap();
        session.execute_unpaged(&mark, (key(&d12), 1i64, 10i64, 0i64)).await.unwrap();
    });
    let list = |before, limit| {
        s.conversations(UserId(1), before, limit)
            .unwrap()
            .into_iter()
            .map(|r| (r.conversation, r.last.0, r.unread))
            .collect::<Vec<_>>()
    };
    assert_eq!(list(None, 10), vec![(d12, 30, 1), (d13, 20, 1)], "newest first; only what is after the mark");
    assert_eq!(list(None, 1), vec![(d12, 30, 1)]);
    assert_eq!(list(Some(MessageId(30)), 10), vec![(d13, 20, 1)], "below the cursor");
    assert!(s.conversations(UserId(2), None, 10).unwrap().is_empty(), "another user's list");
}

/// Amended messages on a CQL server: the rows an edit and a delete leave
/// (written with plain inserts, since kassandra cannot run a commit) read
/// back through point and batched reads with their marks, and the
/// integrity check accepts `amended` inbox events that name a stored
/// message and flags one that names none.
#[test]
fn amended_rows_read_back_with_their_marks_and_pass_the_check() {
    let Some(k) = Kassandra::start("amended") else { return };
    let url = url(&k.addr);
    CassandraStore::init(&url).unwrap();
    let s = CassandraStore::open(&url).unwrap();
    let mut ids = Snowflake::new(1);
    let (edited, deleted) = (message(&mut ids, "e"), message(&mut ids, "d"));
    let (e1, e2, missing) = (ids.next_id(), ids.next_id(), ids.next_id());
    let (key, n) = edited.conversation.to_key();
    let conv = key[..n].to_vec();
    let day = ((edited.id.0 >> 22) / 86_400_000) as i32;
    // The inbox value of an `amended` event: tag, conversation, message id.
    let amended_event = |id: MessageId| {
        let mut v = vec![b'A', conv.len() as u8];
        v.extend_from_slice(&conv);
        v.extend_from_slice(&id.0.to_be_bytes());
        v
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let session = scylla::client::session_builder::SessionBuilder::new()
            .known_node(&k.addr)
            .fetch_schema_metadata(false)
            .build()
            .await
            .unwrap();
        let run = |cql: &'static str, values: Vec<scylla::value::CqlValue>| {
            let session = &session;
            async move {
                let statement = session.prepare(cql).await.unwrap_or_else(|e| panic!("{cql}: {e}"));
                session.execute_unpaged(&statement, values).await.unwrap_or_else(|e| panic!("{cql}: {e}"));
            }
        };
        use scylla::value::CqlValue::{BigInt, Blob, Int, Text};
        for (m, body) in [(&edited, format!("~e{e1}:\"new\"")), (&deleted, format!("~d{e2}"))] {
            run(
                "INSERT INTO chatgw_test.messages (conversation, bucket, id, sender, kind, client_id, body) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                vec![
                    Blob(conv.clone()),
                    Int(day / 10),
                    BigInt(m.id.0 as i64),
                    BigInt(1),
                    Int(0),
                    Text(m.client_id.clone()),
                    Text(body),
                ],
            )
            .await;
        }
        run("INSERT INTO chatgw_test.high_water (slot, id) VALUES (?, ?)", vec![Int(1), BigInt(missing.0 as i64)])
            .await;
        for (pos, (event, names)) in
            [(e1, edited.id), (e2, deleted.id), (missing, MessageId(7))].into_iter().enumerate()
        {
            run(
                "INSERT INTO chatgw_test.inbox (user_id, bucket, pos, event, receipt) VALUES (?, ?, ?, ?, ?)",
                vec![BigInt(2), Int(0), BigInt(pos as i64 + 1), BigInt(event.0 as i64), Blob(amended_event(names))],
            )
            .await;
        }
    });
    let with = |m: &Message, kind, event, body: &str| Message {
        body: body.into(),
        amended: Some(chatgw_protocol::Amendment { kind, event }),
        ..m.clone()
    };
    let edited_now = with(&edited, chatgw_protocol::AmendKind::Edited, e1, "\"new\"");
    let deleted_now = with(&deleted, chatgw_protocol::AmendKind::Deleted, e2, "");
    assert_eq!(s.message(edited.conversation, edited.id).unwrap(), Some(edited_now.clone()));
    assert_eq!(
        s.messages(&[(deleted.conversation, deleted.id), (edited.conversation, edited.id)]).unwrap(),
        vec![Some(deleted_now), Some(edited_now)]
    );
    // Only the amendments are written here (not the messages' inbox
    // entries, keys or indexes the check also asks for): look at what it
    // says of them.
    let r = s.check_integrity().unwrap();
    let about: Vec<&str> =
        r.violations.iter().map(|v| v.problem.as_str()).filter(|p| p.contains("amendment")).collect();
    assert_eq!(about, [format!("user 2: amendment {missing} names missing message 7")], "{:?}", r.violations);
    assert!(r.violations.iter().all(|v| !v.problem.contains("bad amended body")), "{:?}", r.violations);
}

/// Hidden marks (delete for me) on a CQL server: `init` creates the
/// `hidden` table, marks read back per user with the smallest event of a
/// message standing (written with plain inserts, since kassandra cannot
/// run a commit), and the integrity check finds nothing to say of them.
#[test]
fn hidden_marks_read_back_per_user_and_pass_the_check() {
    let Some(k) = Kassandra::start("hidden") else { return };
    let url = url(&k.addr);
    CassandraStore::init(&url).unwrap();
    let s = CassandraStore::open(&url).unwrap();
    let mut ids = Snowflake::new(1);
    let (m, other) = (message(&mut ids, "h"), message(&mut ids, "o"));
    let (first, second) = (ids.next_id(), ids.next_id());
    let (key, n) = m.conversation.to_key();
    let conv = key[..n].to_vec();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let session = scylla::client::session_builder::SessionBuilder::new()
            .known_node(&k.addr)
            .fetch_schema_metadata(false)
            .build()
            .await
            .unwrap();
        use scylla::value::CqlValue::{BigInt, Blob};
        let insert = "INSERT INTO chatgw_test.hidden (user_id, conversation, msg, event) VALUES (?, ?, ?, ?)";
        let statement = session.prepare(insert).await.unwrap();
        // The second hide first: the smaller event still stands.
        for event in [second, first] {
            let values = vec![BigInt(2), Blob(conv.clone()), BigInt(m.id.0 as i64), BigInt(event.0 as i64)];
            session.execute_unpaged(&statement, values).await.unwrap();
        }
    });
    let keys = [(m.conversation, m.id), (other.conversation, other.id)];
    assert_eq!(s.hidden_marks(UserId(2), &keys).unwrap(), vec![Some(first), None]);
    assert_eq!(s.hidden_marks(UserId(1), &keys).unwrap(), vec![None, None], "another user's marks are their own");
    let r = s.check_integrity().unwrap();
    assert!(r.violations.iter().all(|v| !v.problem.contains("hidden")), "{:?}", r.violations);
}

/// Push targets on a real CQL server: plain writes, per-user partition
/// reads, and the conditional removal (its condition is evaluated by the
/// store's read on this server, by the server itself on Cassandra; the
/// conformance case checks that on a live node).
#[test]
fn push_targets_are_written_replaced_read_in_a_batch_and_removed() {
    let Some(k) = Kassandra::start("push_targets") else { return };
    let url = url(&k.addr);
    CassandraStore::init(&url).unwrap();
    let s = CassandraStore::open(&url).unwrap();
    let dev = |n| DeviceName::new(n).unwrap();
    let target = |provider, token: &str| PushTarget { provider, token: token.to_owned() };
    assert!(s.push_targets(&[UserId(7)]).unwrap().is_empty());
    s.set_push_target(UserId(7), dev("phone"), Some(&target(PushProvider::Apns, "a1"))).unwrap();
    s.set_push_target(UserId(7), dev("laptop"), Some(&target(PushProvider::Webhook, "w1"))).unwrap();
    s.set_push_target(UserId(8), dev("phone"), Some(&target(PushProvider::Fcm, "f1"))).unwrap();
    s.set_push_target(UserId(7), dev("phone"), Some(&target(PushProvider::Fcm, "a2"))).unwrap();
    let other = CassandraStore::open(&url).unwrap();
    let mut all = other.push_targets(&[UserId(8), UserId(7), UserId(9), UserId(7)]).unwrap();
    all.sort_by_key(|t| (t.0, t.1));
    assert_eq!(
        all,
        vec![
            (UserId(7), dev("laptop"), target(PushProvider::Webhook, "w1")),
            (UserId(7), dev("phone"), target(PushProvider::Fcm, "a2")),
            (UserId(8), dev("phone"), target(PushProvider::Fcm, "f1")),
        ]
    );
    s.set_push_target(UserId(7), dev("laptop"), None).unwrap();
    s.set_push_target(UserId(7), dev("tablet"), None).unwrap();
    assert_eq!(
        other.push_targets(&[UserId(7)]).unwrap(),
        vec![(UserId(7), dev("phone"), target(PushProvider::Fcm, "a2"))]
    );
    assert!(!s.remove_push_target_if(UserId(7), dev("phone"), "a1").unwrap(), "an old token removes nothing");
    assert!(!s.remove_push_target_if(UserId(7), dev("phone"), "a2' OR 'x").unwrap(), "a quote stays in the literal");
    assert_eq!(other.push_targets(&[UserId(7)]).unwrap().len(), 1, "still there");
    assert!(s.remove_push_target_if(UserId(7), dev("phone"), "a2").unwrap());
    assert!(s.push_targets(&[UserId(7)]).unwrap().is_empty());
    assert!(!s.remove_push_target_if(UserId(7), dev("phone"), "a2").unwrap(), "nothing left to remove");
}

/// The key directory on a real CQL server: publish, add, count, claim
/// (sequentially: this server runs a conditional delete as a plain one, so
/// concurrent claims are kept apart only on Cassandra or ScyllaDB, where
/// the conformance case checks them), list and remove.
#[test]
fn key_directory_is_written_claimed_and_removed() {
    use chatgw_protocol::{DeviceKeys, PublicKey, Signature, SignedKey};
    let Some(k) = Kassandra::start("key_directory") else { return };
    let url = url(&k.addr);
    CassandraStore::init(&url).unwrap();
    let s = CassandraStore::open(&url).unwrap();
    let (user, phone) = (UserId(7), DeviceName::new("phone").unwrap());
    let otk = |i: u8| SignedKey { id: format!("k{i}"), key: PublicKey([i; 32]), signature: Signature([i; 64]) };
    let keys = |b: u8| DeviceKeys {
        signing_key: PublicKey([b; 32]),
        identity_key: PublicKey([b + 1; 32]),
        identity_signature: Signature([b; 64]),
        fallback_key: otk(b + 2),
    };
    assert!(s.device_keys(user).unwrap().is_empty());
    assert!(s.put_device_keys(user, phone, &keys(10)).unwrap());
    assert_eq!(s.add_one_time_keys(user, phone, &[otk(1), otk(2), otk(3)]).unwrap(), 3);
    assert!(!s.put_device_keys(user, phone, &keys(10)).unwrap(), "the same identity again is no change");
    let other = CassandraStore::open(&url).unwrap();
    assert_eq!(other.device_keys(user).unwrap(), vec![(phone, keys(10))]);
    let mut claimed = Vec::new();
    while let Some(k) = other.claim_one_time_key(user, phone).unwrap() {
        claimed.push(k);
    }
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(claimed, vec![otk(1), otk(2), otk(3)], "each key once, as uploaded");
    assert_eq!(s.one_time_key_count(user, phone).unwrap(), 0);
    s.add_one_time_keys(user, phone, &[otk(4)]).unwrap();
    assert!(s.put_device_keys(user, phone, &keys(20)).unwrap(), "a new identity is a change");
    assert_eq!(s.one_time_key_count(user, phone).unwrap(), 0, "and drops the old keys");
    s.add_one_time_keys(user, phone, &[otk(5)]).unwrap();
    assert!(s.remove_device_keys(user, phone).unwrap());
    assert!(s.device_keys(user).unwrap().is_empty());
    assert_eq!(s.one_time_key_count(user, phone).unwrap(), 0);
}
