//! The push worker as a real consumer-group member of a real broker:
//! records produced as the events publisher writes them, decisions
//! recorded by the in-memory sender, a worker dropped without committing
//! and another member of the group taking over.

mod util;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chatgw_protocol::UserId;
use chatgw_push_worker::{
    kafka::{KafkaEvents, KafkaSource, StartFrom},
    testing::{device, message, receipt, LiveTable, ManualClock, RecordingSender, TargetTable},
    Clock, Outcome, PushMetrics, Worker, WorkerConfig,
};
use util::TestBroker;

type KafkaWorker = Worker<KafkaSource, LiveTable, TargetTable, RecordingSender, ManualClock>;

const GRACE: Duration = Duration::from_millis(2_000);
/// Joining a group and being assigned partitions takes a few seconds.
const PATIENCE: Duration = Duration::from_secs(60);

/// A topic, a group, the tables the workers ask and the clock they read:
/// time moves only when the test says, so a window falls due exactly when
/// the test wants it to, however slowly the broker answers.
struct Deployment {
    events: KafkaEvents,
    group: String,
    live: LiveTable,
    targets: TargetTable,
    sender: RecordingSender,
    clock: ManualClock,
}

impl Deployment {
    fn new(broker: &TestBroker, prefix: &str) -> Self {
        let events: KafkaEvents = format!("kafka://{}/{prefix}", broker.bootstrap()).parse().unwrap();
        broker.create_topic(&events.topic(), 3);
        let d = Deployment {
            events,
            group: format!("{prefix}-push"),
            live: LiveTable::default(),
            targets: TargetTable::default(),
            sender: RecordingSender::default(),
            clock: ManualClock::at(T0),
        };
        for user in 2..=9 {
            d.targets.register(UserId(user), device("phone"), &format!("u{user}-phone"));
        }
        d.targets.register(UserId(7), device("tablet"), "u7-tablet");
        d
    }

    /// A new member of the group, counting into `metrics`.
    fn worker(&self, metrics: &Arc<PushMetrics>) -> KafkaWorker {
        self.worker_with(metrics, WorkerConfig::default().max_pending)
    }

    /// A new member that stops reading at `max_pending` pending windows.
    fn worker_with(&self, metrics: &Arc<PushMetrics>, max_pending: usize) -> KafkaWorker {
        let source = KafkaSource::join(&self.events, &self.group, StartFrom::Earliest).expect("joining the group");
        let config =
            WorkerConfig { grace: GRACE, commit_interval: Duration::ZERO, max_pending, ..WorkerConfig::default() };
        Worker::new(
            source,
            self.live.clone(),
            self.targets.clone(),
            self.sender.clone(),
            self.clock.clone(),
            metrics.clone(),
            config,
        )
    }

    fn sent_to(&self, target: &str) -> Vec<u32> {
        self.sender.sent().into_iter().filter(|n| n.target == target).map(|n| n.count).collect()
    }
}

const T0: u64 = 1_700_000_000_000;

/// Step `workers` in turn until `done` holds.
fn step_until(workers: &mut [&mut KafkaWorker], what: &str, mut done: impl FnMut(&[&mut KafkaWorker]) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done(workers) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        for w in workers.iter_mut() {
            if let Err(e) = w.step() {
                eprintln!("step: {e}");
            }
        }
    }
}

#[test]
fn a_consumer_group_member_notifies_once_per_burst_and_a_successor_loses_nothing() {
    let broker = TestBroker::start();
    let d = Deployment::new(&broker, "restart");
    let topic = d.events.topic();
    let producer = broker.producer();
    let seen = Arc::new(PushMetrics::new());

    // Before the crash: a burst to offline user 2, a message to user 3 who
    // is live, one to user 4 who reads it on another device, and one to
    // user 7 whose tablet's provider fails once.
    d.live.set(UserId(3), device("phone"), true);
    d.sender.script("u7-tablet", &[Outcome::Failed]);
    for i in 0..4 {
        producer.send(&topic, "d:1:2", &message(&format!("a{i}"), "d:1:2", 1, &[2], T0 + i));
    }
    producer.send(&topic, "d:1:3", &message("b", "d:1:3", 1, &[3], T0));
    producer.send(&topic, "d:1:4", &message("c", "d:1:4", 1, &[4], T0));
    producer.send(&topic, "d:1:4", &receipt("c-read", "d:1:4", 4, &[1], T0 + 100, "read"));
    producer.send(&topic, "d:1:7", &message("d", "d:1:7", 1, &[7], T0));

    let mut first = d.worker(&seen);
    step_until(&mut [&mut first], "the first burst read", |_| seen.events_seen.get() == 8);
    d.clock.advance(GRACE.as_millis() as u64);
    step_until(&mut [&mut first], "the first burst handed off and committed", |w| {
        w[0].planner().pending() == 1 && w[0].planner().to_commit().is_empty()
    });
    assert_eq!(d.sent_to("u2-phone"), vec![4], "one notification for the burst of four");
    assert!(d.sent_to("u3-phone").is_empty(), "user 3 was live");
    assert!(d.sent_to("u4-phone").is_empty(), "user 4 read it");
    assert_eq!((d.sent_to("u7-phone").len(), d.sent_to("u7-tablet").len()), (1, 1));

    // In flight at the crash: user 7's window (waiting for its retry) and
    // messages read but not yet due.
    let later = d.clock.now_ms();
    producer.send(&topic, "d:1:5", &message("e", "d:1:5", 1, &[5], later));
    producer.send(&topic, "g:9", &message("f", "g:9", 1, &[6, 8], later));
    step_until(&mut [&mut first], "the second burst read", |w| w[0].planner().pending() == 4);
    drop(first); // Killed: nothing more committed.

    let mut second = d.worker(&seen);
    // Repeated: user 7's message and the second burst; nothing before them.
    step_until(&mut [&mut second], "the in-flight window read again", |_| seen.events_seen.get() == 13);
    d.clock.advance(GRACE.as_millis() as u64);
    step_until(&mut [&mut second], "the in-flight window handed off", |w| {
        w[0].planner().pending() == 0 && w[0].planner().to_commit().is_empty()
    });

    // Nothing lost; the settled windows not repeated.
    assert_eq!(d.sent_to("u2-phone"), vec![4]);
    assert!(d.sent_to("u3-phone").is_empty() && d.sent_to("u4-phone").is_empty());
    for t in ["u5-phone", "u6-phone", "u8-phone"] {
        assert_eq!(d.sent_to(t), vec![1], "{t} exactly once");
    }
    // User 7's window was in flight: both of its devices are handed it
    // again, the phone's being the one duplicate.
    assert_eq!(d.sent_to("u7-phone"), vec![1, 1]);
    assert_eq!(d.sent_to("u7-tablet"), vec![1, 1]);
    assert_eq!(d.sender.sent().len(), 1 + 2 + 2 + 3);
    assert_eq!(seen.events_seen.get(), 13, "the successor read only the in-flight window");
}

#[test]
fn members_of_one_group_share_the_partitions_and_notify_once() {
    let broker = TestBroker::start();
    let d = Deployment::new(&broker, "share");
    let topic = d.events.topic();
    let producer = broker.producer();
    for user in 2..=9u64 {
        let conversation = format!("d:1:{user}");
        producer.send(&topic, &conversation, &message(&format!("m{user}"), &conversation, 1, &[user], T0));
    }
    let (seen_a, seen_b) = (Arc::new(PushMetrics::new()), Arc::new(PushMetrics::new()));
    let mut a = d.worker(&seen_a);
    step_until(&mut [&mut a], "the first member holding every window", |w| w[0].planner().pending() == 8);
    // A second member joins while the first holds pending windows: the
    // rebalance takes partitions from the first, which drops their windows
    // uncommitted, and the second reads them again.
    let mut b = d.worker(&seen_b);
    step_until(&mut [&mut a, &mut b], "both members reading", |w| {
        seen_b.events_seen.get() > 0 && w.iter().map(|w| w.planner().pending()).sum::<usize>() == 8
    });
    assert!(a.planner().pending() < 8, "the first member dropped the windows of the partitions it gave up");
    d.clock.advance(GRACE.as_millis() as u64);
    step_until(&mut [&mut a, &mut b], "every message handed off", |w| {
        w.iter().all(|w| w.planner().pending() == 0 && w.planner().to_commit().is_empty())
    });
    for u in 2..=9 {
        assert_eq!(d.sent_to(&format!("u{u}-phone")), vec![1], "user {u} exactly once");
    }
}

#[test]
fn a_member_with_too_many_pending_windows_pauses_its_partitions_and_resumes() {
    let broker = TestBroker::start();
    let d = Deployment::new(&broker, "pause");
    let topic = d.events.topic();
    let producer = broker.producer();
    let seen = Arc::new(PushMetrics::new());
    let send = |user: u64| {
        let conversation = format!("d:1:{user}");
        producer.send(&topic, &conversation, &message(&format!("m{user}"), &conversation, 1, &[user], T0));
    };
    send(2);
    send(3);
    let mut worker = d.worker_with(&seen, 2);
    step_until(&mut [&mut worker], "two windows pending", |w| w[0].planner().pending() == 2);
    send(4);
    send(5);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let _ = worker.step();
    }
    assert_eq!(seen.events_seen.get(), 2, "paused: the later records wait in the topic");
    d.clock.advance(GRACE.as_millis() as u64);
    step_until(&mut [&mut worker], "the later records read after the first windows were handed off", |_| {
        seen.events_seen.get() == 4
    });
    d.clock.advance(GRACE.as_millis() as u64);
    step_until(&mut [&mut worker], "every window handed off", |w| w[0].planner().pending() == 0);
    for u in 2..=5 {
        assert_eq!(d.sent_to(&format!("u{u}-phone")), vec![1], "user {u} exactly once");
    }
}
