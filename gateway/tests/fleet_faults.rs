//! Faults under traffic, across a fleet of three gateway processes: a node
//! SIGKILLed, a node SIGSTOPped and resumed, a link cut and restored, the
//! registry (Redis) killed and restarted. Each test runs pairs of users on
//! different nodes through the fault and asserts that every acknowledged
//! message reached its recipient exactly once, in order, without the
//! recipient asking for a `sync` beyond the one every reconnection makes.

mod util;

use std::time::{Duration, Instant};

use util::{fleet::TestFleet, ledger::PairTraffic};

const PAIRS: u64 = 6;
const ROUNDS: usize = 30;

#[test]
fn a_node_killed_during_traffic_loses_nothing_and_its_ghosts_go_within_the_lease() {
    let mut fleet = TestFleet::start(3);
    let mut alive = vec![true; 3];
    let mut traffic = PairTraffic::start(&fleet, PAIRS);
    for round in 0..ROUNDS {
        if round == 10 {
            fleet.kill(0);
            alive[0] = false;
        }
        traffic.round(&fleet, &alive, round);
    }
    traffic.verify(&fleet, &alive, Duration::from_secs(15));
    // The killed node's lease lapsed: the others no longer count it.
    let deadline = Instant::now() + fleet.lease() + Duration::from_secs(3);
    while fleet.metric(1, "chatgw_fleet_live_nodes") as usize != 2 {
        assert!(Instant::now() < deadline, "node 1 still counts the killed node after the lease");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_node_frozen_and_resumed_during_traffic_loses_nothing() {
    let fleet = TestFleet::start(3);
    let mut alive = vec![true; 3];
    let mut traffic = PairTraffic::start(&fleet, PAIRS);
    for round in 0..ROUNDS {
        if round == 8 {
            fleet.freeze(0, true);
            alive[0] = false;
        }
        if round == 22 {
            fleet.freeze(0, false);
            alive[0] = true;
        }
        traffic.round(&fleet, &alive, round);
    }
    traffic.verify(&fleet, &alive, Duration::from_secs(20));
}

#[test]
fn a_link_cut_and_restored_during_traffic_loses_nothing() {
    let fleet = TestFleet::start_with_proxies(3);
    let alive = vec![true; 3];
    let mut traffic = PairTraffic::start(&fleet, PAIRS);
    for round in 0..ROUNDS {
        if round == 8 {
            fleet.nodes[1].proxy.as_ref().expect("a proxy").cut();
        }
        if round == 20 {
            fleet.nodes[1].proxy.as_ref().expect("a proxy").restore();
        }
        traffic.round(&fleet, &alive, round);
    }
    traffic.verify(&fleet, &alive, Duration::from_secs(15));
    let reconnects: usize = traffic.receivers.iter().map(|d| d.reconnects).sum();
    assert_eq!(reconnects, 0, "no device had to reconnect: the fleet caught them up");
}

#[test]
fn redis_killed_and_restarted_during_traffic_loses_nothing_and_health_says_degraded() {
    let mut fleet = TestFleet::start(3);
    let alive = vec![true; 3];
    let mut traffic = PairTraffic::start(&fleet, PAIRS);
    for round in 0..ROUNDS {
        if round == 8 {
            match &mut fleet.registry {
                util::fleet::TestRegistry::Single(r) => r.kill(),
                util::fleet::TestRegistry::Cluster(_) => unreachable!("one redis-server"),
            }
        }
        if round == 14 {
            // Degraded, still serving (200).
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let health = fleet.admin_get(0, "/healthz");
                if health.contains("degraded") {
                    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
                    break;
                }
                assert!(Instant::now() < deadline, "never degraded: {health}");
                std::thread::sleep(Duration::from_millis(100));
            }
            assert_eq!(fleet.metric(0, "chatgw_fleet_registry_up"), 0.0);
        }
        if round == 18 {
            match &mut fleet.registry {
                util::fleet::TestRegistry::Single(r) => r.restart(),
                util::fleet::TestRegistry::Cluster(_) => unreachable!("one redis-server"),
            }
        }
        traffic.round(&fleet, &alive, round);
    }
    traffic.verify(&fleet, &alive, Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fleet.admin_get(0, "/healthz").contains("\r\n\r\nok") {
        assert!(Instant::now() < deadline, "health never came back");
        std::thread::sleep(Duration::from_millis(100));
    }
}
