//! Committed events on Kafka (`--events`), against a real Kafka-protocol
//! broker (tansu, started per test): every `sent` a client got is in the
//! topic, keyed and partitioned by conversation, in order per
//! conversation; a gateway killed with SIGKILL publishes the rest after its
//! restart; a broker that is stopped, unreachable or restarted during
//! traffic delays nothing on the message path and misses nothing once it is
//! back. Without tansu installed each test says why it skipped.

mod util;

use std::{
    collections::{HashMap, HashSet},
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use chatgw_client::{Client, MessageKind, UserId};
use chatgw_events::{
    decode_value, partition_for,
    testing::{ConsumedRecord, TestBroker, TestConsumer},
    Event,
};
use util::*;

const TOPIC: &str = "chatgw.events";
const PARTITIONS: i32 = 3;

fn broker(test: &str) -> Option<TestBroker> {
    let mut b = TestBroker::start(test)?;
    b.create_topic(TOPIC, PARTITIONS);
    Some(b)
}

fn events_url(b: &TestBroker) -> String {
    format!("kafka://{}/chatgw", b.bootstrap())
}

/// Decoded records, after checking what every record must satisfy: a v1
/// value, the conversation as key, the partition murmur2 picks for it.
fn decoded(records: &[ConsumedRecord]) -> Vec<(i32, Event)> {
    records
        .iter()
        .map(|r| {
            let e =
                decode_value(&r.value).unwrap_or_else(|err| panic!("{err}: {:?}", String::from_utf8_lossy(&r.value)));
            assert_eq!(r.key, e.conversation.as_bytes(), "keyed by conversation");
            assert_eq!(r.partition, partition_for(&r.key, PARTITIONS), "partitioned by murmur2 of the key");
            (r.partition, e)
        })
        .collect()
}

/// Within each partition, in offset order, the events of each
/// conversation (first occurrence of each event id) come with increasing
/// event ids: the order they were committed in.
fn assert_per_conversation_order(events: &[(i32, Event)]) {
    let mut seen = HashSet::new();
    let mut last: HashMap<(i32, String), u64> = HashMap::new();
    for (p, e) in events {
        if !seen.insert(e.event.clone()) {
            continue; // a duplicate from a retried batch
        }
        let id: u64 = e.event.parse().unwrap();
        let prev = last.insert((*p, e.conversation.clone()), id);
        assert!(prev.is_none_or(|prev| prev < id), "{} out of order in {}: {prev:?} then {id}", e.conversation, p);
    }
}

/// Message ids of the `message` events.
fn message_ids(events: &[(i32, Event)]) -> HashSet<u64> {
    events.iter().filter(|(_, e)| e.kind == "message").map(|(_, e)| e.id.as_ref().unwrap().parse().unwrap()).collect()
}

/// Send `n` messages from `from` to `to`, pipelined, and return the ids
/// of the `sent` acknowledgements, checking each burst is acknowledged
/// within `WAIT` (Kafka never delays `sent`).
fn send_burst(c: &mut Client, to: u64, tag: &str, n: usize) -> Vec<u64> {
    for i in 0..n {
        c.send_message(UserId(to), &format!("{tag}-{i}"), MessageKind::Text, &format!("body {tag} {i}")).unwrap();
    }
    (0..n).map(|i| sent_id(c, &format!("{tag}-{i}")).0 .0).collect()
}

/// Consume until every id of `want` is there (or `most` passes); all
/// records read.
fn consume_until(consumer: &TestConsumer, got: &mut Vec<ConsumedRecord>, want: &HashSet<u64>, most: Duration) {
    let start = Instant::now();
    while start.elapsed() < most {
        got.extend(consumer.poll_until_idle(Duration::from_millis(500), Duration::from_secs(2)));
        if want.is_subset(&message_ids(&decoded(got))) {
            return;
        }
    }
}

fn missing(want: &HashSet<u64>, got: &[ConsumedRecord]) -> Vec<u64> {
    let have = message_ids(&decoded(got));
    let mut m: Vec<u64> = want.difference(&have).copied().collect();
    m.sort_unstable();
    m
}

each_store!(committed_events_reach_the_topic_in_order);
fn committed_events_reach_the_topic_in_order(on: Setup) {
    let Some(b) = broker("committed_events_reach_the_topic_in_order") else { return };
    let url = events_url(&b);
    let gw = TestGateway::start_with(on, 2, |c| {
        c.events = Some(url.parse().unwrap());
        c.commit_pipelines = 2;
    });
    let mut senders: Vec<Client> = (1..=3).map(|u| gw.online(u)).collect();
    let mut reader = gw.online(10);
    let mut want = HashSet::new();
    for round in 0..3 {
        for (i, s) in senders.iter_mut().enumerate() {
            want.extend(send_burst(s, 10 + (i as u64 % 2) * 10, &format!("r{round}u{i}"), 20));
        }
    }
    // A receipt: user 10 acknowledges what user 1 sent it.
    let first = next_message(&mut reader);
    reader.ack_delivered(first.from, &[first.id]).unwrap();
    let consumer = TestConsumer::new(&b.bootstrap(), TOPIC, PARTITIONS);
    let mut got = Vec::new();
    consume_until(&consumer, &mut got, &want, Duration::from_secs(30));
    assert_eq!(missing(&want, &got), Vec::<u64>::new(), "every sent message is in the topic");
    got.extend(consumer.poll_until_idle(Duration::from_secs(1), Duration::from_secs(5)));
    let events = decoded(&got);
    assert_per_conversation_order(&events);
    let m = events.iter().map(|(_, e)| e).find(|e| e.kind == "message").unwrap();
    assert_eq!((m.v, m.msg_kind.as_deref(), m.recipients.len()), (1, Some("text"), 1));
    let raw: serde_json::Value = serde_json::from_slice(&got[0].value).unwrap();
    assert!(raw.get("body").is_none(), "no bodies without --events-bodies: {raw}");
    let receipt = events.iter().map(|(_, e)| e).find(|e| e.kind == "receipt").expect("the receipt is published");
    assert_eq!((receipt.from.as_str(), receipt.recipients.clone()), ("10", vec![first.from.0.to_string()]));
    assert!(gw.metric("chatgw_events_published_total") >= want.len() as f64 + 1.0);
    let deadline = Instant::now() + WAIT;
    while gw.metric("chatgw_events_lag_records") != 0.0 {
        assert!(Instant::now() < deadline, "the lag gauge comes back to zero");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Each acknowledged record's time from commit to acknowledgement is in
    // the lag histogram, and none took anywhere near the test's duration.
    let published = gw.metric("chatgw_events_published_total");
    assert_eq!(gw.metric("chatgw_events_publish_lag_seconds_count"), published);
    let lag_sum = gw.metric("chatgw_events_publish_lag_seconds_sum");
    assert!(lag_sum > 0.0 && lag_sum / published < 30.0, "mean lag {} s", lag_sum / published);
}

each_driver!(bodies_only_with_events_bodies);
fn bodies_only_with_events_bodies(io: IoDriver) {
    let Some(b) = broker("bodies_only_with_events_bodies") else { return };
    let url = events_url(&b);
    let gw = TestGateway::start_with(io, 1, |c| {
        c.events = Some(url.parse().unwrap());
        c.events_bodies = true;
    });
    let mut a = gw.online(1);
    let want: HashSet<u64> = send_burst(&mut a, 2, "b", 3).into_iter().collect();
    let consumer = TestConsumer::new(&b.bootstrap(), TOPIC, PARTITIONS);
    let mut got = Vec::new();
    consume_until(&consumer, &mut got, &want, Duration::from_secs(30));
    let raw: serde_json::Value = serde_json::from_slice(&got[0].value).unwrap();
    assert_eq!(raw["body"], serde_json::json!("body b 0"), "{raw}");
    assert_eq!(raw["size"], serde_json::json!("\"body b 0\"".len()));
}

each_driver!(group_events_name_every_other_member);
/// A group: its creation announcement (`system`) and a group message,
/// each to every other member, keyed by the group.
fn group_events_name_every_other_member(io: IoDriver) {
    let Some(b) = broker("group_events_name_every_other_member") else { return };
    let url = events_url(&b);
    let gw = TestGateway::start_with(io, 1, |c| c.events = Some(url.parse().unwrap()));
    let mut a = gw.online(1);
    a.create_group("g1", "team", &[UserId(2), UserId(3)]).unwrap();
    let g = group_id(&mut a);
    a.send_group(g, "hello", MessageKind::Text, "hi all").unwrap();
    let sent = sent_id(&mut a, "hello").0 .0;
    let consumer = TestConsumer::new(&b.bootstrap(), TOPIC, PARTITIONS);
    let mut got = Vec::new();
    consume_until(&consumer, &mut got, &HashSet::from([sent]), Duration::from_secs(30));
    let events = decoded(&got);
    let key = format!("g:{}", g.0);
    let kinds: Vec<(&str, Option<&str>)> =
        events.iter().map(|(_, e)| (e.kind.as_str(), e.msg_kind.as_deref())).collect();
    assert_eq!(kinds, vec![("message", Some("system")), ("message", Some("text"))], "announcement, then message");
    for (_, e) in &events {
        assert_eq!((e.conversation.as_str(), e.from.as_str()), (key.as_str(), "1"));
        let mut r = e.recipients.clone();
        r.sort();
        assert_eq!(r, vec!["2".to_owned(), "3".to_owned()], "every member but the sender");
    }
}

each_store!(broker_stopped_or_restarted_during_traffic_delays_nothing_and_misses_nothing);
/// Kafka stopped (SIGSTOP: connections hang) and then killed and started
/// again empty, during traffic: `sent` keeps flowing, `/healthz` stays
/// ready, the backlog shows in the lag gauge and drains once the broker is
/// back.
fn broker_stopped_or_restarted_during_traffic_delays_nothing_and_misses_nothing(on: Setup) {
    let Some(mut b) = broker("broker_stopped_or_restarted_during_traffic_delays_nothing_and_misses_nothing") else {
        return;
    };
    let url = events_url(&b);
    let gw = TestGateway::start_with(on, 2, |c| c.events = Some(url.parse().unwrap()));
    let mut a = gw.online(1);
    let mut before = HashSet::new();
    before.extend(send_burst(&mut a, 2, "before", 50));
    let consumer = TestConsumer::new(&b.bootstrap(), TOPIC, PARTITIONS);
    let mut got = Vec::new();
    consume_until(&consumer, &mut got, &before, Duration::from_secs(30));
    assert_eq!(missing(&before, &got), Vec::<u64>::new());

    // Stopped: nothing on the message path waits for it (a send that
    // waited would take the producer's 10 s delivery timeout).
    b.pause(true);
    let mut during = HashSet::new();
    for round in 0..5 {
        let started = Instant::now();
        during.extend(send_burst(&mut a, 3 + round % 2, &format!("stopped{round}"), 40));
        assert!(started.elapsed() < Duration::from_secs(5), "sent is not delayed by Kafka: {:?}", started.elapsed());
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(gw.admin_get("/healthz").starts_with("HTTP/1.1 200"), "still ready");
    assert!(gw.metric("chatgw_events_lag_records") > 0.0, "the backlog shows");
    b.pause(false);
    consume_until(&consumer, &mut got, &during, Duration::from_secs(60));
    assert_eq!(missing(&during, &got), Vec::<u64>::new(), "published once the broker answers again");

    // Killed and started again, empty: what is committed from then on all
    // reaches the new broker (what the old one held died with its memory).
    b.kill();
    // Traffic goes on until a batch has failed for good (the producer's
    // delivery timeout) and the failure is counted.
    let mut after = HashSet::new();
    let down = Instant::now();
    let mut round = 0;
    while gw.metric("chatgw_events_publish_errors_total") == 0.0 {
        assert!(down.elapsed() < Duration::from_secs(40), "the failures are counted");
        let started = Instant::now();
        after.extend(send_burst(&mut a, 5, &format!("down{round}"), 20));
        assert!(started.elapsed() < Duration::from_secs(5), "sent is not delayed by Kafka: {:?}", started.elapsed());
        round += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(gw.admin_get("/healthz").starts_with("HTTP/1.1 200"), "still ready");
    b.restart();
    after.extend(send_burst(&mut a, 6, "restarted", 30));
    let consumer = TestConsumer::new(&b.bootstrap(), TOPIC, PARTITIONS);
    let mut again = Vec::new();
    consume_until(&consumer, &mut again, &after, Duration::from_secs(90));
    assert_eq!(missing(&after, &again), Vec::<u64>::new(), "the backlog drains into the restarted broker");
    assert_per_conversation_order(&decoded(&got));
    assert_per_conversation_order(&decoded(&again));
}

/// `chatgw serve --events ...` as a child process, its admin address.
struct Gateway {
    child: Child,
    addr: SocketAddr,
}

fn spawn(data: &Path, url: &str) -> Gateway {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatgw"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "off", "--secret", SECRET, "--workers", "2"])
        .args(["--events", url, "--data"])
        .arg(data)
        .env("CHATGW_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chatgw starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening: ws://").nth(1) {
                let _ = tx.send(rest.split('/').next().unwrap().to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(20)).expect("a listening line").parse().unwrap();
    Gateway { child, addr }
}

fn token(user: u64) -> String {
    chatgw_gateway::auth::TokenKey::new(SECRET.as_bytes()).mint(UserId(user), chatgw_gateway::auth::unix_now() + 600)
}

/// SIGKILL mid-stream, three times (the first while the broker is stopped,
/// so nothing of that life was published before the kill): every message
/// whose `sent` a client got is in the topic once the gateway is back, in
/// order per conversation.
#[test]
fn gateway_killed_mid_stream_misses_no_committed_event() {
    let Some(b) = broker("gateway_killed_mid_stream_misses_no_committed_event") else { return };
    let url = events_url(&b);
    let dir = tempfile::tempdir().unwrap();
    let mut want = HashSet::new();
    for life in 0..3 {
        // The first life publishes nothing (the broker is stopped): all of
        // it must come from the outbox after the restarts.
        b.pause(life == 0);
        let mut gw = spawn(dir.path(), &url);
        let mut a = Client::connect(gw.addr, &token(1)).unwrap();
        for burst in 0..3 {
            want.extend(send_burst(&mut a, 2 + burst % 2, &format!("life{life}b{burst}"), 100));
        }
        // Killed mid-stream: 100 more sent, half of them acknowledged, the
        // rest still in flight; what was acknowledged must be published.
        for i in 0..100 {
            a.send_message(UserId(4), &format!("life{life}tail{i}"), MessageKind::Text, "tail").unwrap();
        }
        for i in 0..50 {
            want.insert(sent_id(&mut a, &format!("life{life}tail{i}")).0 .0);
        }
        gw.child.kill().unwrap();
        gw.child.wait().unwrap();
    }
    b.pause(false);
    let _gw = spawn(dir.path(), &url);
    let consumer = TestConsumer::new(&b.bootstrap(), TOPIC, PARTITIONS);
    let mut got = Vec::new();
    consume_until(&consumer, &mut got, &want, Duration::from_secs(60));
    assert_eq!(missing(&want, &got), Vec::<u64>::new(), "every acknowledged message is published");
    assert_per_conversation_order(&decoded(&got));
}

/// The kassandra test server (`.ci/kassandra-server`, installed by
/// `.ci/run`), if it is there.
fn kassandra_bin() -> Option<std::path::PathBuf> {
    let cache = std::env::var_os("CHATGW_CACHE_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache/chatgw")))?;
    Some(cache.join("kassandra/bin/chatgw-kassandra-server")).filter(|p| p.is_file())
}

/// Every store has an outbox: a gateway on Cassandra starts with `--events`
/// and `--push` (enabling the outbox reads its node's head; the push worker
/// reads its cursor), and its publisher keeps trying an unreachable broker
/// rather than stopping the gateway. The
/// server kassandra cannot run a commit, so what is published from a
/// Cassandra outbox is checked by the store's own tests.
#[test]
fn events_and_push_on_cassandra_start_with_the_outbox_enabled() {
    let Some(bin) = kassandra_bin() else {
        eprintln!("events on cassandra: skipped: no kassandra server (run .ci/run)");
        return;
    };
    let mut server = Command::new(bin).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").unwrap().to_owned();
    let store = format!("cassandra://{addr}/chatgw_events?replication=simple:1&consistency=one");
    let out = Command::new(env!("CARGO_BIN_EXE_chatgw")).args(["store", "init", "--store", &store]).output().unwrap();
    assert!(out.status.success(), "init: {}", String::from_utf8_lossy(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("webhook-secret");
    std::fs::write(&secret, "s3cret").unwrap();
    let push = format!("webhook:url=http://127.0.0.1:9/push,secret-file={}", secret.display());
    let mut gw = Command::new(env!("CARGO_BIN_EXE_chatgw"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "off", "--secret", SECRET])
        .args(["--events", "kafka://127.0.0.1:9/x", "--push", &push, "--store", &store, "--data"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(gw.stderr.take().unwrap());
    let mut seen = String::new();
    let started = loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 {
            break false;
        }
        seen.push_str(&line);
        if line.contains("listening: ws://") {
            break true;
        }
    };
    let still_running = gw.try_wait().unwrap().is_none();
    let _ = gw.kill();
    let _ = gw.wait();
    let _ = server.kill();
    let _ = server.wait();
    assert!(started && still_running, "the gateway serves: {seen}");
}
