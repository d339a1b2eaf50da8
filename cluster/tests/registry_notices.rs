//! The registry's notices on a real `redis-server`: the subscription says
//! when it is in place, hands over user and group notices, ignores garbage,
//! comes back after Redis restarts, and stops promptly.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use chatgw_cluster::{
    registry::{Notice, Presence, RedisTarget, Registry, RegistryConfig, Subscription},
    testing::TestRedis,
};
use crossbeam_channel::{Receiver, RecvTimeoutError};

const WAIT: Duration = Duration::from_secs(10);

fn subscribe(url: &str) -> (Subscription, Receiver<Notice>) {
    let target: RedisTarget = url.parse().unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let sub = Subscription::start(&target, move |n| {
        let _ = tx.send(n);
    })
    .unwrap();
    (sub, rx)
}

fn next(rx: &Receiver<Notice>) -> Notice {
    rx.recv_timeout(WAIT).expect("a notice")
}

#[test]
fn notices_arrive_after_resubscribed_and_again_after_a_restart() {
    let mut redis = TestRedis::start();
    let (sub, rx) = subscribe(&redis.url());
    assert_eq!(next(&rx), Notice::Resubscribed);

    let link = SocketAddr::from(([127, 0, 0, 1], 7001));
    let mut a = Registry::join(RegistryConfig::new(redis.url(), 1, link)).unwrap();
    a.apply(&[(5, Presence::Online), (6, Presence::Offline)]).unwrap();
    assert_eq!(next(&rx), Notice::Users(vec![5, 6]));
    a.publish_groups(&[9]).unwrap();
    assert_eq!(next(&rx), Notice::Groups(vec![9]));

    // Long lists come in chunks of at most 1000.
    let users: Vec<u64> = (0..2500).collect();
    a.republish(&users).unwrap();
    let mut heard = Vec::new();
    for _ in 0..3 {
        match next(&rx) {
            Notice::Users(ids) => {
                assert!(ids.len() <= 1000);
                heard.extend(ids);
            }
            other => panic!("expected users, got {other:?}"),
        }
    }
    assert_eq!(heard, users);

    // Garbage on the channel is ignored.
    let mut raw = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    for garbage in ["", "x 1", "u", "u nope", "\u{1F600}"] {
        let _: i64 = redis::cmd("PUBLISH").arg("cgw:notices").arg(garbage).query(&mut raw).unwrap();
    }
    a.publish_groups(&[10]).unwrap();
    assert_eq!(next(&rx), Notice::Groups(vec![10]));

    // Redis restarts: the subscription comes back and says so.
    redis.restart();
    assert_eq!(next(&rx), Notice::Resubscribed);
    let mut raw = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    let _: i64 = redis::cmd("PUBLISH").arg("cgw:notices").arg("u 77").query(&mut raw).unwrap();
    assert_eq!(next(&rx), Notice::Users(vec![77]));

    let started = Instant::now();
    sub.stop();
    assert!(started.elapsed() < Duration::from_secs(1), "stop took {:?}", started.elapsed());
}

#[test]
fn a_subscription_waits_for_redis_and_stops_promptly_meanwhile() {
    let mut redis = TestRedis::start();
    redis.kill();
    let (sub, rx) = subscribe(&redis.url());
    assert_eq!(rx.recv_timeout(Duration::from_millis(500)), Err(RecvTimeoutError::Timeout));
    redis.restart();
    assert_eq!(next(&rx), Notice::Resubscribed);

    // A frozen Redis: pings go unanswered, and stopping is still prompt.
    redis.pause();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    sub.stop();
    assert!(started.elapsed() < Duration::from_millis(1500), "stop took {:?}", started.elapsed());
    redis.resume();
}

#[test]
fn a_frozen_redis_is_noticed_and_the_subscription_resumes() {
    let redis = TestRedis::start();
    let (sub, rx) = subscribe(&redis.url());
    assert_eq!(next(&rx), Notice::Resubscribed);
    redis.pause();
    // The ping after a quiet second times out (about 2.2 s at worst, with
    // its poll and I/O timeout); the reconnects fail until it runs again.
    std::thread::sleep(Duration::from_secs(5));
    redis.resume();
    assert_eq!(next(&rx), Notice::Resubscribed);
    sub.stop();
}
