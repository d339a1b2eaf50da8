//! The registry against a real `redis-server`: leases and epochs, node id
//! conflicts, renewals across a Redis restart, placements, ghosts, live
//! nodes, leaving, and the errors an operator sees.

use std::{
    net::SocketAddr,
    thread,
    time::{Duration, Instant},
};

use chatgw_cluster::{
    registry::{LiveNode, Placement, Presence, Registry, RegistryConfig, RegistryError, Renewal},
    testing::TestRedis,
};

fn link(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn config(redis: &TestRedis, node: u16, lease: Duration) -> RegistryConfig {
    let mut config = RegistryConfig::new(redis.url(), node, link(7000 + node));
    config.lease = lease;
    config
}

fn join(redis: &TestRedis, node: u16) -> Registry {
    Registry::join(config(redis, node, Duration::from_secs(10))).expect("joins")
}

fn redis_conn(redis: &TestRedis) -> redis::Connection {
    redis::Client::open(redis.url()).and_then(|c| c.get_connection()).expect("a plain redis connection")
}

#[test]
fn join_takes_the_lease_under_a_growing_epoch() {
    let redis = TestRedis::start();
    let mut a = join(&redis, 1);
    let first = a.epoch();
    let wall_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(first + 60_000 > wall_ms && first <= wall_ms + 1, "epoch {first} starts at the clock ({wall_ms})");
    assert_eq!(a.node(), 1);

    let mut raw = redis_conn(&redis);
    let lease: String = redis::cmd("GET").arg("cgw:{nodes}:lease:1").query(&mut raw).unwrap();
    assert_eq!(lease, format!("{first} 127.0.0.1:7001"));
    let ttl: i64 = redis::cmd("PTTL").arg("cgw:{nodes}:lease:1").query(&mut raw).unwrap();
    assert!(ttl > 9_000 && ttl <= 10_000, "lease ttl {ttl}");
    let all: Vec<String> = redis::cmd("SMEMBERS").arg("cgw:{nodes}:all").query(&mut raw).unwrap();
    assert_eq!(all, ["1"]);

    // A clean stop gives the lease up; the next run's epoch is higher.
    a.leave(&[]).unwrap();
    let lease: Option<String> = redis::cmd("GET").arg("cgw:{nodes}:lease:1").query(&mut raw).unwrap();
    assert_eq!(lease, None);
    let b = join(&redis, 1);
    assert!(b.epoch() > first);

    // Redis loses everything: epochs still grow (they never fall below the clock).
    let mut redis = redis;
    drop(b);
    redis.restart();
    let c = join(&redis, 1);
    assert!(c.epoch() > first, "epoch {} after data loss, before {first}", c.epoch());
}

#[test]
fn a_live_node_id_is_refused_and_a_dead_ones_lease_is_waited_for() {
    let redis = TestRedis::start();
    let lease = Duration::from_millis(500);
    let mut first = Registry::join(config(&redis, 3, lease)).unwrap();
    let epoch = first.epoch();

    // The first keeps renewing: the second gives up after about one lease.
    let started = Instant::now();
    let renewer = thread::spawn(move || {
        while started.elapsed() < Duration::from_millis(2500) {
            assert_eq!(first.renew().unwrap(), Renewal::Held);
            thread::sleep(Duration::from_millis(100));
        }
        first
    });
    let mut second = config(&redis, 3, lease);
    second.link = link(9999);
    let err = Registry::join(second.clone()).unwrap_err();
    let waited = started.elapsed();
    match &err {
        RegistryError::NodeIdTaken { node: 3, epoch: e, link: l } => {
            assert_eq!((*e, *l), (epoch, link(7003)));
        }
        other => panic!("expected NodeIdTaken, got {other:?}"),
    }
    assert!(err.to_string().contains("another live node holds"), "{err}");
    assert!(waited >= lease && waited < Duration::from_secs(2), "waited {waited:?}");
    let first = renewer.join().unwrap();

    // The first stops renewing (as if killed): the second gets in once it lapses.
    let stopped = Instant::now();
    let joined = Registry::join(second).expect("joins after the lease lapsed");
    assert!(joined.epoch() > epoch);
    assert!(stopped.elapsed() < Duration::from_secs(2));
    drop(first);
}

#[test]
fn renew_holds_regains_after_a_restart_and_sees_a_takeover() {
    let mut redis = TestRedis::start();
    let mut a = join(&redis, 2);
    assert_eq!(a.renew().unwrap(), Renewal::Held);

    // Redis loses its data: the lease is taken again under the same epoch.
    redis.restart();
    let err = a.renew();
    // The old connection is gone; the first try may fail, the next reconnects.
    let renewal = match err {
        Ok(r) => r,
        Err(e) => {
            assert!(matches!(e, RegistryError::Redis { .. }), "{e:?}");
            a.renew().unwrap()
        }
    };
    assert_eq!(renewal, Renewal::Regained);
    assert_eq!(a.renew().unwrap(), Renewal::Held);
    let live = a.live_nodes().unwrap();
    assert_eq!(live, [LiveNode { node: 2, epoch: a.epoch(), link: link(7002) }]);
    // The counter is back at least at this epoch: the next run is above it.
    let mut raw = redis_conn(&redis);
    let counter: u64 = redis::cmd("GET").arg("cgw:{nodes}:epoch:2").query(&mut raw).unwrap();
    assert!(counter >= a.epoch());

    // Another run took the node id (its lease lapsed while this one was frozen).
    let _: () = redis::cmd("SET").arg("cgw:{nodes}:lease:2").arg("99 10.0.0.9:1").query(&mut raw).unwrap();
    match a.renew() {
        Err(RegistryError::LeaseTaken { node: 2, epoch: 99 }) => {}
        other => panic!("expected LeaseTaken, got {other:?}"),
    }
    // And a reader never touches the lease.
    let mut reader = a.reader().unwrap();
    assert_eq!(reader.epoch(), a.epoch());
    assert!(matches!(reader.renew(), Err(RegistryError::Reader { .. })));
}

#[test]
fn placements_across_two_nodes() {
    let redis = TestRedis::start();
    let mut a = join(&redis, 1);
    let mut b = join(&redis, 2);
    let mut reader = a.reader().unwrap();

    a.apply(&[(10, Presence::Online), (11, Presence::Online)]).unwrap();
    b.apply(&[(11, Presence::Online), (12, Presence::Online)]).unwrap();
    let pa = Placement { node: 1, epoch: a.epoch() };
    let pb = Placement { node: 2, epoch: b.epoch() };
    let before = reader.commands_sent();
    let found = reader.lookup(&[12, 10, 11, 13]).unwrap();
    assert_eq!(found, vec![vec![pb], vec![pa], vec![pa, pb], vec![]]);
    assert_eq!(reader.commands_sent() - before, 4, "one HGETALL per user");

    // The placement lives for user_ttl.
    let mut raw = redis_conn(&redis);
    let ttl: i64 = redis::cmd("PTTL").arg("cgw:u:{11}").query(&mut raw).unwrap();
    assert!(ttl > 3_500_000 && ttl <= 3_600_000, "ttl {ttl}");

    b.apply(&[(11, Presence::Offline), (12, Presence::Offline)]).unwrap();
    assert_eq!(reader.lookup(&[11, 12]).unwrap(), vec![vec![pa], vec![]]);

    // A malformed field is skipped, not an error.
    let _: () = redis::cmd("HSET").arg("cgw:u:{10}").arg("x").arg("y").query(&mut raw).unwrap();
    let _: () = redis::cmd("HSET").arg("cgw:u:{10}").arg("5").arg("-1").query(&mut raw).unwrap();
    assert_eq!(reader.lookup(&[10]).unwrap(), vec![vec![pa]]);

    // republish writes them again (e.g. after Redis lost them).
    let _: () = redis::cmd("FLUSHALL").query(&mut raw).unwrap();
    a.republish(&[10, 11]).unwrap();
    assert_eq!(reader.lookup(&[10, 11]).unwrap(), vec![vec![pa], vec![pa]]);
    a.publish_groups(&[1, 2]).unwrap();
    a.publish_groups(&[]).unwrap();
}

#[test]
fn remove_ghosts_removes_only_the_matching_epoch() {
    let redis = TestRedis::start();
    let mut a = join(&redis, 1);
    let epoch = a.epoch();
    a.apply(&[(20, Presence::Online), (21, Presence::Online)]).unwrap();
    // Node 1 restarted meanwhile and wrote user 21 again under its new epoch.
    let mut raw = redis_conn(&redis);
    let _: () = redis::cmd("HSET").arg("cgw:u:{21}").arg("1").arg(epoch + 1).query(&mut raw).unwrap();

    let mut reader = a.reader().unwrap();
    let ghost = Placement { node: 1, epoch };
    let removed = reader.remove_ghosts(&[(20, ghost), (21, ghost), (22, ghost)]).unwrap();
    assert_eq!(removed, 1);
    assert_eq!(reader.lookup(&[20, 21]).unwrap(), vec![vec![], vec![Placement { node: 1, epoch: epoch + 1 }]]);
}

#[test]
fn live_nodes_lists_leases_and_drops_a_lapsed_one() {
    let redis = TestRedis::start();
    let mut a = Registry::join(config(&redis, 1, Duration::from_secs(10))).unwrap();
    let b = Registry::join(config(&redis, 2, Duration::from_millis(300))).unwrap();
    let both = a.live_nodes().unwrap();
    assert_eq!(
        both,
        [
            LiveNode { node: 1, epoch: a.epoch(), link: link(7001) },
            LiveNode { node: 2, epoch: b.epoch(), link: link(7002) }
        ]
    );
    // A malformed lease or member is skipped.
    let mut raw = redis_conn(&redis);
    let _: () = redis::cmd("SADD").arg("cgw:{nodes}:all").arg("7").arg("junk").query(&mut raw).unwrap();
    let _: () = redis::cmd("SET").arg("cgw:{nodes}:lease:7").arg("garbage").query(&mut raw).unwrap();
    assert_eq!(a.live_nodes().unwrap(), both);

    // Node 2 stops renewing.
    thread::sleep(Duration::from_millis(500));
    assert_eq!(a.live_nodes().unwrap(), [LiveNode { node: 1, epoch: a.epoch(), link: link(7001) }]);
}

#[test]
fn leave_removes_placements_and_the_lease() {
    let redis = TestRedis::start();
    let mut a = join(&redis, 1);
    let mut b = join(&redis, 2);
    a.apply(&[(30, Presence::Online), (31, Presence::Online)]).unwrap();
    b.apply(&[(31, Presence::Online)]).unwrap();
    a.leave(&[30, 31]).unwrap();
    let pb = Placement { node: 2, epoch: b.epoch() };
    assert_eq!(b.lookup(&[30, 31]).unwrap(), vec![vec![], vec![pb]]);
    assert_eq!(b.live_nodes().unwrap().iter().map(|n| n.node).collect::<Vec<_>>(), [2]);
    // A reader cannot leave for the node.
    assert!(matches!(b.reader().unwrap().leave(&[31]), Err(RegistryError::Reader { .. })));
}

#[test]
fn a_bad_url_and_an_unreachable_redis_fail_fast_and_clearly() {
    let err = Registry::join(RegistryConfig::new("redis//nope".into(), 1, link(1))).unwrap_err();
    assert!(matches!(err, RegistryError::BadUrl { .. }), "{err:?}");
    assert!(err.to_string().contains("redis://host:port"), "{err}");

    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let err = Registry::join(RegistryConfig::new(format!("redis://127.0.0.1:{port}"), 1, link(1))).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(matches!(err, RegistryError::Redis { op: "connecting", .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
    let started = Instant::now();
    let url = format!("redis+cluster://127.0.0.1:{port},127.0.0.1:{port}");
    let err = Registry::join(RegistryConfig::new(url, 1, link(1))).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(matches!(err, RegistryError::Redis { op: "connecting", .. }), "{err:?}");

    // A frozen Redis is a timeout, not a hang.
    let redis = TestRedis::start();
    let mut a = join(&redis, 1);
    redis.pause();
    let started = Instant::now();
    let err = a.renew().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(matches!(err, RegistryError::Redis { .. }), "{err:?}");
    redis.resume();
    assert_eq!(a.renew().unwrap(), Renewal::Held);
}

#[test]
fn commands_are_counted_and_a_user_costs_about_a_hundred_bytes() {
    let redis = TestRedis::start();
    let mut a = join(&redis, 1);
    let before = a.commands_sent();
    a.apply(&[(1_000_001, Presence::Online), (1_000_002, Presence::Offline)]).unwrap();
    // HSET + PEXPIRE, HDEL, PUBLISH.
    assert_eq!(a.commands_sent() - before, 4);

    let mut raw = redis_conn(&redis);
    let bytes: i64 =
        redis::cmd("MEMORY").arg("USAGE").arg("cgw:u:{1000001}").arg("SAMPLES").arg(0).query(&mut raw).unwrap();
    println!("MEMORY USAGE of one user key with one field: {bytes} bytes");
    assert!(bytes > 20 && bytes < 400, "{bytes} bytes");
}

#[test]
fn handles_move_to_other_threads() {
    fn send<T: Send + 'static>() {}
    fn send_sync<T: Send + Sync + 'static>() {}
    send::<Registry>();
    send_sync::<chatgw_cluster::registry::Subscription>();
    send_sync::<RegistryError>();
}
