//! The registry on a Redis Cluster of three masters: the same operations,
//! with users spread over every slot range, pipelines that span nodes, and
//! notices heard through one seed.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use chatgw_cluster::{
    registry::{LiveNode, Notice, Placement, Presence, RedisTarget, Registry, RegistryConfig, Renewal, Subscription},
    testing::TestRedisCluster,
};

fn link(node: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + node))
}

#[test]
fn the_registry_works_on_a_redis_cluster() {
    let cluster = TestRedisCluster::start(3);
    let url = cluster.url();
    assert!(url.starts_with("redis+cluster://127.0.0.1:"));
    assert_eq!(cluster.node_urls().len(), 3);
    let target: RedisTarget = url.parse().unwrap();
    assert_eq!(target.seeds().len(), 3);

    let (tx, rx) = crossbeam_channel::unbounded();
    let sub = Subscription::start(&target, move |n| {
        let _ = tx.send(n);
    })
    .unwrap();
    let next = || rx.recv_timeout(Duration::from_secs(10)).expect("a notice");
    assert_eq!(next(), Notice::Resubscribed);

    let mut a = Registry::join(RegistryConfig::new(url.clone(), 1, link(1))).unwrap();
    let mut b = Registry::join(RegistryConfig::new(url.clone(), 2, link(2))).unwrap();
    assert_eq!(a.renew().unwrap(), Renewal::Held);
    assert_eq!(
        a.live_nodes().unwrap(),
        [LiveNode { node: 1, epoch: a.epoch(), link: link(1) }, LiveNode { node: 2, epoch: b.epoch(), link: link(2) }]
    );

    // Enough users to land on every master.
    let users: Vec<u64> = (1..=300).collect();
    let online: Vec<(u64, Presence)> = users.iter().map(|u| (*u, Presence::Online)).collect();
    a.apply(&online).unwrap();
    b.apply(&online[..10]).unwrap();
    assert_eq!(next(), Notice::Users(users.clone()));
    assert_eq!(next(), Notice::Users(users[..10].to_vec()));
    let mut slots = std::collections::HashSet::new();
    let mut raw = redis::Client::open(cluster.node_urls()[0].as_str()).unwrap().get_connection().unwrap();
    for u in &users {
        let slot: u16 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(format!("cgw:u:{{{u}}}")).query(&mut raw).unwrap();
        slots.insert(slot / (16384 / 3 + 1));
    }
    assert_eq!(slots.len(), 3, "users spread over the three masters");

    let mut reader = a.reader().unwrap();
    let pa = Placement { node: 1, epoch: a.epoch() };
    let pb = Placement { node: 2, epoch: b.epoch() };
    let found = reader.lookup(&users).unwrap();
    assert_eq!(found.len(), users.len());
    for (i, placements) in found.iter().enumerate() {
        let expected = if i < 10 { vec![pa, pb] } else { vec![pa] };
        assert_eq!(placements, &expected, "user {}", users[i]);
    }

    b.apply(&[(1, Presence::Offline)]).unwrap();
    assert_eq!(next(), Notice::Users(vec![1]));
    assert_eq!(reader.lookup(&[1, 2]).unwrap(), vec![vec![pa], vec![pa, pb]]);

    let stale = Placement { node: 2, epoch: b.epoch() - 1 };
    assert_eq!(reader.remove_ghosts(&[(2, stale), (3, stale)]).unwrap(), 0);
    assert_eq!(reader.remove_ghosts(&[(2, pb), (3, pb), (4, pb)]).unwrap(), 3);
    assert_eq!(reader.lookup(&[2, 3]).unwrap(), vec![vec![pa], vec![pa]]);

    a.republish(&users).unwrap();
    assert_eq!(next(), Notice::Users(users.clone()));
    a.publish_groups(&[5]).unwrap();
    assert_eq!(next(), Notice::Groups(vec![5]));
    // Each notice was published once, on one node, and heard once.
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "a notice heard twice");

    b.leave(&users[..10]).unwrap();
    assert_eq!(a.live_nodes().unwrap().iter().map(|n| n.node).collect::<Vec<_>>(), [1]);
    assert_eq!(reader.lookup(&[5]).unwrap(), vec![vec![pa]]);

    // A second run of node 1 waits, then gives up while node 1 renews.
    let mut config = RegistryConfig::new(url, 1, link(9));
    config.lease = Duration::from_millis(300);
    let started = Instant::now();
    assert!(Registry::join(config).is_err());
    assert!(started.elapsed() < Duration::from_secs(2));

    let started = Instant::now();
    sub.stop();
    assert!(started.elapsed() < Duration::from_secs(1));
}
