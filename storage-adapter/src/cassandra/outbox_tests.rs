//! The outbox against kassandra, the in-memory CQL server of the tests.
//!
//! kassandra cannot run a commit (it ignores the conditions of lightweight
//! transactions), so these tests append through the very step a commit
//! ends with ([`Outbox::append`], given the writes and their outcomes) and
//! check everything else through the store's trait: records, positions
//! across reopens, cursors, trimming, and a reader paging while several
//! threads append. The conformance cases run the same through `commit` on
//! a live node (tests/conformance_cassandra.rs). Without the server binary
//! each test prints why it skipped.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use chatgw_protocol::{ConversationId, Message, MessageId, MessageKind, Snowflake, UserId};

use super::{outbox::SKIP, CassandraStore};
use crate::{Committed, MessageStore, OutboxDetail, OutboxOptions, OutboxPos, StoreError, Write, WriteOutcome};

struct Kassandra {
    child: Child,
    addr: String,
}

impl Kassandra {
    fn start(test: &str) -> Option<Self> {
        let bin = std::env::var_os("CHATGW_KASSANDRA_BIN").map(PathBuf::from).or_else(|| {
            let cache = std::env::var_os("CHATGW_CACHE_DIR")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/chatgw")))?;
            Some(cache.join("kassandra/bin/chatgw-kassandra-server")).filter(|p| p.is_file())
        });
        let Some(bin) = bin else {
            eprintln!("{test}: skipped: no kassandra server (run .ci/run, or set CHATGW_KASSANDRA_BIN)");
            return None;
        };
        let mut child = Command::new(&bin).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("start");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).expect("address");
        let addr = line.trim().strip_prefix("listening on ").expect("`listening on ADDR`").to_owned();
        Some(Kassandra { child, addr })
    }

    fn url(&self) -> String {
        format!("cassandra://{}/chatgw_test?replication=simple:1&consistency=one", self.addr)
    }
}

impl Drop for Kassandra {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn open(k: &Kassandra) -> CassandraStore {
    let s = CassandraStore::open(&k.url()).expect("open");
    s.enable_outbox(OutboxOptions { bodies: true, node: 7 }).expect("enable");
    s
}

fn text(ids: &mut Snowflake, from: u64, to: u64, body: &str) -> Message {
    let id = ids.next_id();
    Message {
        id,
        conversation: ConversationId::direct(UserId(from), UserId(to)),
        from: UserId(from),
        kind: MessageKind::Text,
        client_id: String::new(),
        ts: Snowflake::unix_ms(id),
        body: format!("\"{body}\""),
        amended: None,
    }
}

/// What `commit` does last, with every write applied but the ones named.
fn append(s: &CassandraStore, writes: &[Write<'_>], duplicates: &[usize]) {
    let mut committed = Committed::with_capacity(writes.len(), 0);
    for i in 0..writes.len() {
        let dup = WriteOutcome::Duplicate {
            conversation: ConversationId::Group(chatgw_protocol::GroupId(1)),
            id: MessageId(1),
        };
        committed.push(if duplicates.contains(&i) { dup } else { WriteOutcome::Applied }, []);
    }
    let outbox = s.outbox.get().expect("enabled");
    s.runtime.block_on(outbox.append(&s.cql, writes, &committed)).expect("append");
}

/// Where a handle's `i`th record goes on a node with no head yet.
fn at(i: u64) -> OutboxPos {
    OutboxPos(SKIP + i)
}

fn events(s: &CassandraStore, after: u64) -> Vec<MessageId> {
    s.outbox_after(OutboxPos(after), 10_000).expect("read").iter().map(|r| r.event).collect()
}

#[test]
fn records_positions_cursors_and_trimming_across_reopens() {
    let Some(k) = Kassandra::start("outbox") else { return };
    CassandraStore::init(&k.url()).expect("init");
    let plain = CassandraStore::open(&k.url()).unwrap();
    let refused = plain.set_outbox_cursor("kafka", OutboxPos(1));
    assert!(matches!(refused, Err(StoreError::Unsupported { .. })), "{refused:?}");

    let s = open(&k);
    assert_eq!(s.outbox_head().unwrap(), OutboxPos(0));
    let mut ids = Snowflake::new(7);
    let both = [UserId(1), UserId(2)];
    let m: Vec<Message> = (0..5).map(|i| text(&mut ids, 1, 2, &format!("m{i}"))).collect();
    let writes: Vec<Write<'_>> =
        m.iter().map(|message| Write::Message { message, inboxes: &both, membership: None }).collect();
    append(&s, &writes, &[1]);
    let want = vec![m[0].id, m[2].id, m[3].id, m[4].id];
    assert_eq!(events(&s, 0), want, "one per applied write, in batch order");
    let records = s.outbox_after(OutboxPos(0), 1000).unwrap();
    assert_eq!(records.iter().map(|r| r.pos.0).collect::<Vec<_>>(), vec![at(1).0, at(2).0, at(3).0, at(4).0]);
    assert_eq!(records[0].recipients, vec![UserId(2)]);
    assert!(matches!(&records[0].detail, OutboxDetail::Message { body: Some(b), .. } if *b == m[0].body));
    assert_eq!(s.outbox_head().unwrap(), at(4));
    assert_eq!(events(&s, at(2).0), want[2..].to_vec(), "pages after a position");
    assert_eq!(s.outbox_after(at(1), 2).unwrap(), records[1..3].to_vec(), "at most the limit");

    // Cursors: per consumer, never back; records go once all are past them.
    s.set_outbox_cursor("push", OutboxPos(0)).unwrap();
    s.set_outbox_cursor("kafka", at(4)).unwrap();
    assert_eq!(events(&s, 0).len(), 4, "the push cursor still needs every record");
    s.set_outbox_cursor("push", at(2)).unwrap();
    s.set_outbox_cursor("push", at(1)).unwrap();
    assert_eq!(s.outbox_cursor("push").unwrap(), at(2), "a cursor never moves back");
    assert_eq!(events(&s, 0), want[2..].to_vec(), "records both consumers are done with are gone");
    s.set_outbox_cursor("push", at(4)).unwrap();
    assert!(events(&s, 0).is_empty());
    drop(s);

    // Reopened: cursors and head kept, new positions above every old one.
    let s = open(&k);
    assert_eq!(s.outbox_cursor("kafka").unwrap(), at(4), "cursors are durable");
    assert_eq!(s.outbox_head().unwrap(), at(4), "the head survives removal and reopen");
    let later = text(&mut ids, 2, 1, "later");
    append(&s, &[Write::Message { message: &later, inboxes: &both, membership: None }], &[]);
    let after = s.outbox_after(OutboxPos(0), 10).unwrap();
    assert_eq!(
        (after.len(), after[0].pos, after[0].event),
        (1, OutboxPos(2 * SKIP + 5), later.id),
        "numbered above a skip"
    );
}

/// A large append, then trimming across buckets: whole partitions below the lowest cursor go,
/// the partial one row by row, and reads resume above the trimmed mark.
#[test]
fn trimming_drops_whole_buckets_and_the_rest_row_by_row() {
    let Some(k) = Kassandra::start("outbox trim") else { return };
    CassandraStore::init(&k.url()).expect("init");
    let s = open(&k);
    let mut ids = Snowflake::new(7);
    let both = [UserId(1), UserId(2)];
    // More than one append sends at a time, across several buckets.
    let n = SKIP as usize + 10;
    let m: Vec<Message> = (0..n).map(|i| text(&mut ids, 1, 2, &format!("m{i}"))).collect();
    let writes: Vec<Write<'_>> =
        m.iter().map(|message| Write::Message { message, inboxes: &both, membership: None }).collect();
    append(&s, &writes, &[]);
    assert_eq!(s.outbox_head().unwrap(), at(n as u64));
    let done = super::outbox::BUCKET as usize + 3;
    s.set_outbox_cursor("kafka", at(done as u64)).unwrap();
    assert_eq!(events(&s, 0), m[done..].iter().map(|m| m.id).collect::<Vec<_>>());
    assert_eq!(events(&s, 5), events(&s, 0), "a reader behind the trimmed mark resumes above it");
    let runtime = &s.runtime;
    let rows = |bucket: i64| -> usize {
        let cql = "SELECT pos FROM chatgw_test.outbox WHERE node = ? AND bucket = ?";
        runtime.block_on(async {
            let r = s.cql.session.query_unpaged(cql, (7i32, bucket)).await.unwrap();
            r.into_rows_result().unwrap().rows::<(i64,)>().unwrap().count()
        })
    };
    let first = (SKIP / super::outbox::BUCKET) as i64;
    assert_eq!(rows(first), 0, "the first bucket is dropped as a partition");
    let above = (first as u64 + 2) * super::outbox::BUCKET - 1 - at(done as u64).0;
    assert_eq!(rows(first + 1), above as usize, "the partial bucket keeps what a cursor still needs");
}

/// Several threads append while a reader pages from the last position it
/// saw: it ends with every record, none twice.
#[test]
fn pager_never_skips_concurrent_appends() {
    let Some(k) = Kassandra::start("outbox pager") else { return };
    CassandraStore::init(&k.url()).expect("init");
    let s = Arc::new(open(&k));
    let done = AtomicBool::new(false);
    let seen = std::thread::scope(|scope| {
        for t in 0..4u64 {
            let s = s.clone();
            scope.spawn(move || {
                let mut ids = Snowflake::new(10 + t as u16);
                for i in 0..30 {
                    let m = text(&mut ids, 100 + t, 200 + t, &format!("c{t}-{i}"));
                    let inboxes = [UserId(100 + t), UserId(200 + t)];
                    append(&s, &[Write::Message { message: &m, inboxes: &inboxes, membership: None }], &[]);
                }
            });
        }
        let reader = scope.spawn(|| {
            let (mut seen, mut after) = (Vec::new(), OutboxPos(0));
            loop {
                let finished = done.load(Ordering::Acquire);
                let page = s.outbox_after(after, 7).unwrap();
                if let Some(last) = page.last() {
                    after = last.pos;
                }
                let empty = page.is_empty();
                seen.extend(page.into_iter().map(|r| r.event));
                if finished && empty {
                    return seen;
                }
            }
        });
        while s.outbox_head().unwrap() < at(120) {
            std::thread::yield_now();
        }
        done.store(true, Ordering::Release);
        reader.join().unwrap()
    });
    assert_eq!(seen.len(), 120, "every record once");
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 120, "none twice");
}

/// A TCP relay to `target` whose connections can be cut (and new ones
/// refused) and then allowed again.
struct Relay {
    addr: String,
    cut: Arc<AtomicBool>,
    open: Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Relay {
    fn new(target: &str) -> Self {
        use std::net::{Shutdown, TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let addr = listener.local_addr().expect("relay address").to_string();
        let (cut, open) = (Arc::new(AtomicBool::new(false)), Arc::new(std::sync::Mutex::new(Vec::new())));
        let (target, c, o) = (target.to_owned(), cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let server = match TcpStream::connect(&target) {
                    Ok(server) if !c.load(Ordering::SeqCst) => server,
                    _ => {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                };
                let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) =
                    (client.try_clone(), server.try_clone(), client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                o.lock().unwrap().extend([c3, s3]);
                for (mut from, mut to) in [(client, s2), (server, c2)] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Relay { addr, cut, open }
    }

    fn cut(&self, on: bool) {
        self.cut.store(on, Ordering::SeqCst);
        if on {
            for s in self.open.lock().unwrap().drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// An append that fails (the server unreachable) keeps its positions: the
/// store refuses writes, readers see nothing of it, and `recover` sends it
/// again at the same positions before the store takes writes, so there is
/// neither a gap nor a position given twice.
#[test]
fn a_failed_append_is_sent_again_at_its_positions_by_recover() {
    let Some(k) = Kassandra::start("outbox resend") else { return };
    CassandraStore::init(&k.url()).expect("init");
    let relay = Relay::new(&k.addr);
    let url = format!("cassandra://{}/chatgw_test?replication=simple:1&consistency=one&connect_timeout=2s", relay.addr);
    let s = CassandraStore::open(&url).expect("open");
    s.enable_outbox(OutboxOptions { bodies: false, node: 3 }).expect("enable");
    let mut ids = Snowflake::new(3);
    let both = [UserId(1), UserId(2)];
    let m: Vec<Message> = (0..5).map(|i| text(&mut ids, 1, 2, &format!("m{i}"))).collect();
    let w = |i: usize| Write::Message { message: &m[i], inboxes: &both, membership: None };
    append(&s, &[w(0), w(1)], &[]);

    relay.cut(true);
    let mut committed = Committed::with_capacity(2, 0);
    committed.push(WriteOutcome::Applied, []);
    committed.push(WriteOutcome::Applied, []);
    let outbox = s.outbox.get().unwrap();
    let failed = s.runtime.block_on(outbox.append(&s.cql, &[w(2), w(3)], &committed));
    assert!(failed.is_err(), "nothing reachable");
    s.set_failure(Some(failed.unwrap_err().failure()));
    assert!(s.recover().is_err(), "still unreachable");
    relay.cut(false);
    let mut tries = 0;
    while let Err(e) = s.recover() {
        tries += 1;
        assert!(tries < 100, "recover keeps failing: {e}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let got = s.outbox_after(OutboxPos(0), 10).unwrap();
    let pairs: Vec<(u64, MessageId)> = got.iter().map(|r| (r.pos.0, r.event)).collect();
    assert_eq!(
        pairs,
        vec![(at(1).0, m[0].id), (at(2).0, m[1].id), (at(3).0, m[2].id), (at(4).0, m[3].id)],
        "sent again where they were"
    );
    assert!(matches!(got[2].detail, OutboxDetail::Message { body: None, .. }), "no bodies asked for");
    append(&s, &[w(4)], &[]);
    assert_eq!(s.outbox_after(at(4), 10).unwrap()[0].pos, at(5), "the next append follows");
}

/// A process that died after writing its records and before its head:
/// the next process numbers above them, so they are kept and read (they
/// describe applied writes) once its first head passes them.
#[test]
fn records_left_above_the_head_by_a_crash_are_kept_and_read() {
    let Some(k) = Kassandra::start("outbox crash") else { return };
    CassandraStore::init(&k.url()).expect("init");
    let s = open(&k);
    let mut ids = Snowflake::new(7);
    let both = [UserId(1), UserId(2)];
    let m: Vec<Message> = (0..4).map(|i| text(&mut ids, 1, 2, &format!("m{i}"))).collect();
    let w = |i: usize| Write::Message { message: &m[i], inboxes: &both, membership: None };
    append(&s, &[w(0)], &[]);
    // What the died append wrote: records at the next two positions (the
    // second arriving after the restart), no head.
    let orphan = |i: usize, pos: OutboxPos| {
        let mut committed = Committed::with_capacity(1, 0);
        committed.push(WriteOutcome::Applied, []);
        let options = OutboxOptions { bodies: true, node: 7 };
        let record = crate::outbox::encode(&crate::outbox::records_of(&[w(i)], &committed, options)[0]);
        let cql = "INSERT INTO chatgw_test.outbox (node, bucket, pos, record) VALUES (?, ?, ?, ?)";
        let values = (7i32, (pos.0 / super::outbox::BUCKET) as i64, pos.0 as i64, record);
        s.runtime.block_on(s.cql.session.query_unpaged(cql, values)).expect("write a record");
    };
    orphan(1, at(2));
    assert_eq!(events(&s, 0), vec![m[0].id], "above the head: not read");
    let restarted = open(&k);
    orphan(2, at(3));
    append(&restarted, &[w(3)], &[]);
    assert_eq!(events(&restarted, 0), vec![m[0].id, m[1].id, m[2].id, m[3].id], "kept, in position order");
    let last = restarted.outbox_after(at(3), 10).unwrap();
    assert_eq!(last.iter().map(|r| r.pos).collect::<Vec<_>>(), vec![OutboxPos(2 * SKIP + 2)]);
    assert_eq!(restarted.outbox_after(at(1), 1).unwrap()[0].event, m[1].id, "a page of one crosses nothing");
    let paged: Vec<MessageId> = restarted.outbox_after(at(3), 1).unwrap().iter().map(|r| r.event).collect();
    assert_eq!(paged, vec![m[3].id], "a page of one crosses the skipped positions");
}
