//! The worker's rules, driven by a clock moved by hand over an in-memory log.

use std::sync::Arc;

use chatgw_protocol::UserId;

use crate::{
    planner::{Planner, MAX_SEND_ATTEMPTS},
    record::Event,
    testing::{
        device, message, message_of_kind, receipt, LiveTable, ManualClock, MemoryLog, RecordingSender, TargetTable,
    },
    watermark::Position,
    Outcome, PushMetrics, Worker, WorkerConfig,
};

const T0: u64 = 1_700_000_000_000;
const ALICE: u64 = 1;
const BOB: u64 = 2;
const CAROL: u64 = 3;
const DM: &str = "d:1:2";

type TestWorker = Worker<crate::testing::MemoryReader, LiveTable, TargetTable, RecordingSender, ManualClock>;

struct World {
    log: MemoryLog,
    clock: ManualClock,
    live: LiveTable,
    targets: TargetTable,
    sender: RecordingSender,
    metrics: Arc<PushMetrics>,
}

impl World {
    fn new() -> Self {
        let w = World {
            log: MemoryLog::new(2),
            clock: ManualClock::at(T0),
            live: LiveTable::default(),
            targets: TargetTable::default(),
            sender: RecordingSender::default(),
            metrics: Arc::new(PushMetrics::new()),
        };
        w.targets.register(UserId(BOB), device("phone"), "bob-phone");
        w.targets.register(UserId(BOB), device("tablet"), "bob-tablet");
        w.targets.register(UserId(ALICE), device("phone"), "alice-phone");
        w.targets.register(UserId(CAROL), device("phone"), "carol-phone");
        w
    }

    /// A worker starting from the log's commits (a fresh group member).
    fn worker(&self) -> TestWorker {
        self.worker_with(WorkerConfig { commit_interval: std::time::Duration::ZERO, ..WorkerConfig::default() })
    }

    fn worker_with(&self, config: WorkerConfig) -> TestWorker {
        Worker::new(
            self.log.reader(),
            self.live.clone(),
            self.targets.clone(),
            self.sender.clone(),
            self.clock.clone(),
            self.metrics.clone(),
            config,
        )
    }

    /// (target, count) of every hand-off so far.
    fn sent(&self) -> Vec<(String, u32)> {
        let mut s: Vec<_> = self.sender.sent().into_iter().map(|n| (n.target, n.count)).collect();
        s.sort();
        s
    }
}

#[test]
fn a_burst_to_an_offline_user_collapses_into_one_notification_per_device() {
    let w = World::new();
    let mut worker = w.worker();
    for i in 0..5 {
        w.log.append(0, message(&format!("m{i}"), DM, ALICE, &[BOB], T0 + i * 100));
    }
    worker.step().unwrap();
    assert!(w.sent().is_empty(), "nothing before the grace period ends");
    w.clock.advance(1_999);
    worker.step().unwrap();
    assert!(w.sent().is_empty(), "nothing before the grace period ends");
    w.clock.advance(1);
    worker.step().unwrap();
    assert_eq!(w.sent(), vec![("bob-phone".into(), 5), ("bob-tablet".into(), 5)]);
    let n = &w.sender.sent()[0];
    assert_eq!((n.user, n.conversation.as_str(), n.latest_event.as_str()), (UserId(BOB), DM, "m4"));
    assert_eq!(w.metrics.messages_collapsed.get(), 4);
    // A message after the window opens the next one.
    w.log.append(0, message("m5", DM, ALICE, &[BOB], T0 + 2_500));
    w.clock.advance(2_500);
    worker.step().unwrap();
    assert_eq!(w.sender.sent().len(), 4);
    assert_eq!(w.log.committed(0), 6);
}

#[test]
fn a_live_device_gets_nothing_and_the_others_still_do() {
    let w = World::new();
    w.live.set(UserId(BOB), device("phone"), true);
    let mut worker = w.worker();
    w.log.append(0, message("m1", DM, ALICE, &[BOB], T0));
    worker.step().unwrap();
    w.clock.advance(2_000);
    worker.step().unwrap();
    assert_eq!(w.sent(), vec![("bob-tablet".into(), 1)]);
    assert_eq!(w.metrics.suppressed_live.get(), 1);

    w.live.set(UserId(BOB), device("tablet"), true);
    w.log.append(0, message("m2", DM, ALICE, &[BOB], T0 + 2_000));
    worker.step().unwrap();
    w.clock.advance(2_000);
    worker.step().unwrap();
    assert_eq!(w.sender.sent().len(), 1, "every device live: no notification");
    assert_eq!(w.log.committed(0), 2, "decided without a notification, and committed");
}

#[test]
fn reading_on_another_device_cancels_the_pending_notification() {
    let w = World::new();
    let mut worker = w.worker();
    w.log.append(0, message("m1", DM, ALICE, &[BOB], T0));
    w.log.append(0, receipt("r1", DM, BOB, &[ALICE], T0 + 500, "read"));
    worker.step().unwrap();
    w.clock.advance(10_000);
    worker.step().unwrap();
    assert!(w.sent().is_empty());
    assert_eq!(w.metrics.cancelled_by_read.get(), 1);
    assert_eq!(w.log.committed(0), 2);
}

#[test]
fn a_delivery_receipt_or_another_users_read_does_not_cancel() {
    let w = World::new();
    let mut worker = w.worker();
    w.log.append(0, message("m1", "g:7", ALICE, &[BOB, CAROL], T0));
    w.log.append(0, receipt("r1", "g:7", BOB, &[ALICE], T0 + 100, "delivered"));
    w.log.append(0, receipt("r2", "g:7", CAROL, &[ALICE], T0 + 200, "read"));
    worker.step().unwrap();
    w.clock.advance(2_000);
    worker.step().unwrap();
    assert_eq!(w.sent(), vec![("bob-phone".into(), 1), ("bob-tablet".into(), 1)]);
}

#[test]
fn the_sender_system_messages_and_amends_never_notify() {
    let w = World::new();
    let mut worker = w.worker();
    w.log.append(0, message("m1", DM, ALICE, &[ALICE], T0));
    w.log.append(0, message_of_kind("m2", "g:7", ALICE, &[BOB, CAROL], T0, "system"));
    w.log.append(
        0,
        serde_json::json!({"v":1,"event":"e3","kind":"amended","conversation":DM,"from":"1","recipients":["2"],"at":T0})
            .to_string(),
    );
    worker.step().unwrap();
    w.clock.advance(5_000);
    worker.step().unwrap();
    assert!(w.sent().is_empty());
    assert_eq!(w.log.committed(0), 3, "decided at once, so committed");
}

#[test]
fn unregistered_targets_are_removed_and_failed_ones_retried() {
    let w = World::new();
    w.sender.script("bob-phone", &[Outcome::Unregistered]);
    w.sender.script("bob-tablet", &[Outcome::Failed, Outcome::Failed]);
    let mut worker = w.worker();
    w.log.append(0, message("m1", DM, ALICE, &[BOB], T0));
    worker.step().unwrap();
    w.clock.advance(2_000);
    worker.step().unwrap();
    assert!(!w.targets.rows().iter().any(|(_, _, t)| t == "bob-phone"), "410 removes the target");
    assert_eq!(w.log.committed(0), 0, "a failed hand-off holds the commit");
    w.clock.advance(1_000);
    worker.step().unwrap();
    w.clock.advance(2_000);
    worker.step().unwrap();
    let tablet: Vec<_> = w.sender.sent().into_iter().filter(|n| n.target == "bob-tablet").collect();
    assert_eq!(tablet.len(), 3, "two failures, then taken");
    assert_eq!(w.sender.sent().iter().filter(|n| n.target == "bob-phone").count(), 1, "not retried");
    assert_eq!((w.metrics.unregistered.get(), w.metrics.send_failures.get()), (1, 2));
    assert_eq!(w.log.committed(0), 1);
}

#[test]
fn a_hand_off_failing_every_time_is_dropped_after_the_last_attempt_and_committed() {
    let w = World::new();
    w.sender.script("carol-phone", &[Outcome::Failed; MAX_SEND_ATTEMPTS as usize]);
    let mut worker = w.worker();
    w.log.append(0, message("m1", DM, ALICE, &[CAROL], T0));
    worker.step().unwrap();
    for _ in 0..20 {
        w.clock.advance(30_000);
        worker.step().unwrap();
    }
    assert_eq!(w.sender.sent().len(), MAX_SEND_ATTEMPTS as usize);
    assert_eq!(w.metrics.notifications_dropped.get(), 1);
    assert_eq!(w.log.committed(0), 1);
}

#[test]
fn a_hand_off_refused_for_good_is_dropped_at_once_and_committed() {
    let w = World::new();
    w.sender.script("carol-phone", &[Outcome::Rejected]);
    let mut worker = w.worker();
    w.log.append(0, message("m1", DM, ALICE, &[CAROL], T0));
    worker.step().unwrap();
    w.clock.advance(2_000);
    worker.step().unwrap();
    w.clock.advance(60_000);
    worker.step().unwrap();
    assert_eq!(w.sender.sent().len(), 1, "not tried again");
    assert_eq!((w.metrics.notifications_dropped.get(), w.metrics.send_failures.get()), (1, 0));
    assert_eq!(w.targets.rows().len(), 4, "the target is kept");
    assert_eq!(w.log.committed(0), 1);
}

#[test]
fn a_store_outage_holds_notifications_until_it_answers() {
    let w = World::new();
    w.targets.set_down(true);
    let mut worker = w.worker();
    w.log.append(0, message("m1", DM, ALICE, &[BOB], T0));
    worker.step().unwrap();
    for _ in 0..(MAX_SEND_ATTEMPTS * 3) {
        w.clock.advance(30_000);
        worker.step().unwrap();
    }
    assert!(w.sent().is_empty());
    assert_eq!(w.log.committed(0), 0);
    w.targets.set_down(false);
    w.clock.advance(30_000);
    worker.step().unwrap();
    assert_eq!(w.sent().len(), 2, "never given up for an outage");
    assert_eq!(w.log.committed(0), 1);
}

#[test]
fn unknown_versions_and_garbage_are_counted_skipped_and_committed() {
    let w = World::new();
    let mut worker = w.worker();
    w.log.append(0, r#"{"v":2,"kind":"message"}"#.into());
    w.log.append(0, "{not json".into());
    w.log.append(0, message("m1", DM, ALICE, &[BOB], T0));
    worker.step().unwrap();
    w.clock.advance(2_000);
    worker.step().unwrap();
    assert_eq!(w.sent().len(), 2);
    let text = w.metrics.render(false);
    assert!(text.contains(r#"chatgw_push_events_rejected_total{reason="unknown_version"} 1"#), "{text}");
    assert!(text.contains(r#"chatgw_push_events_rejected_total{reason="malformed"} 1"#), "{text}");
    assert_eq!(w.log.committed(0), 3);
}

#[test]
fn the_watermark_never_passes_an_undecided_event() {
    let w = World::new();
    let mut worker = w.worker();
    w.log.append(0, receipt("r0", DM, ALICE, &[BOB], T0, "delivered"));
    w.log.append(0, message("m1", DM, ALICE, &[BOB], T0));
    for i in 0..5 {
        w.log.append(0, receipt(&format!("r{i}"), "g:9", CAROL, &[ALICE], T0 + 10, "delivered"));
    }
    worker.step().unwrap();
    assert_eq!(w.log.committed(0), 1, "stops at the undecided message");
    assert_eq!(worker.planner().in_flight(), 6);
    w.clock.advance(2_000);
    worker.step().unwrap();
    assert_eq!(w.log.committed(0), 7);
}

#[test]
fn a_restarted_worker_loses_nothing_and_repeats_only_the_in_flight_window() {
    let w = World::new();
    let mut first = w.worker();
    // Decided and committed before the crash.
    w.log.append(0, message("m1", DM, ALICE, &[BOB], T0));
    first.step().unwrap();
    w.clock.advance(2_000);
    first.step().unwrap();
    assert_eq!(w.sent().len(), 2);
    // In flight at the crash: one window pending on each partition.
    w.log.append(0, message("m2", DM, ALICE, &[BOB], T0 + 2_000));
    w.log.append(1, message("m3", "g:7", BOB, &[CAROL], T0 + 2_000));
    first.step().unwrap();
    assert_eq!(first.planner().in_flight(), 2);
    drop(first); // killed: no final commit.

    let mut second = w.worker();
    second.step().unwrap();
    w.clock.advance(2_000);
    second.step().unwrap();
    let m1_to_phone = w.sender.sent().iter().filter(|n| n.target == "bob-phone").count();
    assert_eq!(m1_to_phone, 2, "m1 once, m2 once: the committed m1 is not repeated");
    assert_eq!(w.sent().iter().filter(|(t, _)| t == "carol-phone").count(), 1, "m3 not lost");
    assert_eq!((w.log.committed(0), w.log.committed(1)), (2, 1));
}

#[test]
fn a_restart_mid_hand_off_repeats_at_most_that_window() {
    let w = World::new();
    // The tablet fails: its window stays undecided after the phone got it.
    w.sender.script("bob-tablet", &[Outcome::Failed]);
    let mut first = w.worker();
    w.log.append(0, message("m1", DM, ALICE, &[BOB], T0));
    first.step().unwrap();
    w.clock.advance(2_000);
    first.step().unwrap();
    drop(first);
    let mut second = w.worker();
    second.step().unwrap();
    w.clock.advance(2_000);
    second.step().unwrap();
    // The phone's notification is repeated (a duplicate of the in-flight
    // window); the tablet's is not lost.
    assert_eq!(
        w.sent(),
        vec![("bob-phone".into(), 1), ("bob-phone".into(), 1), ("bob-tablet".into(), 1), ("bob-tablet".into(), 1)]
    );
    assert_eq!(w.log.committed(0), 1);
}

#[test]
fn a_revoked_partition_is_forgotten_without_a_commit() {
    let mut p = Planner::new(2_000);
    let pos = |partition, offset| Position { partition, offset };
    let msg = |to: u64| Event::Message {
        event: format!("m{to}"),
        conversation: DM.into(),
        from: UserId(ALICE),
        recipients: vec![UserId(to)],
        at_ms: T0,
    };
    p.on_event(pos(0, 0), Event::Ignored, T0);
    p.on_event(pos(0, 1), msg(BOB), T0);
    p.on_event(pos(1, 0), msg(CAROL), T0);
    assert_eq!(p.to_commit(), vec![(0, 1)]);
    p.revoke(0);
    assert_eq!(p.pending(), 1);
    assert!(p.to_commit().is_empty());
    let due = p.due(T0 + 2_000);
    assert_eq!(due.iter().map(|d| d.user).collect::<Vec<_>>(), vec![UserId(CAROL)]);
    p.resolve(due[0].ticket);
    assert_eq!(p.to_commit(), vec![(1, 1)]);
}

#[test]
fn a_commit_time_in_the_future_counts_as_now() {
    let mut p = Planner::new(2_000);
    let future = Event::Message {
        event: "m1".into(),
        conversation: DM.into(),
        from: UserId(ALICE),
        recipients: vec![UserId(BOB)],
        at_ms: T0 + 3_600_000,
    };
    p.on_event(Position { partition: 0, offset: 0 }, future, T0);
    assert_eq!(p.next_due_ms(), Some(T0 + 2_000));
}

#[test]
fn too_many_pending_windows_pause_reading_until_some_are_settled() {
    let w = World::new();
    let config = WorkerConfig { commit_interval: std::time::Duration::ZERO, max_pending: 2, ..WorkerConfig::default() };
    let mut worker = w.worker_with(config);
    w.log.append(0, message("m1", "d:1:2", ALICE, &[BOB], T0));
    w.log.append(0, message("m2", "g:7", ALICE, &[BOB, CAROL], T0));
    worker.step().unwrap();
    assert_eq!(worker.planner().pending(), 3);
    w.log.append(0, message("m3", "d:1:3", ALICE, &[CAROL], T0));
    worker.step().unwrap();
    assert_eq!(worker.planner().pending(), 3, "paused: m3 waits in the log");
    w.clock.advance(2_000);
    worker.step().unwrap();
    assert_eq!(worker.planner().pending(), 0);
    let m3_sent = |w: &World| w.sender.sent().iter().any(|n| n.conversation == "d:1:3");
    assert!(!m3_sent(&w));
    worker.step().unwrap();
    assert!(m3_sent(&w), "reading again");
    assert_eq!(w.log.committed(0), 3);
}

#[test]
fn a_record_without_a_commit_time_counts_as_read_now() {
    let w = World::new();
    let mut worker = w.worker();
    let undated = r#"{"v":1,"event":"m1","kind":"message","conversation":"d:1:2","from":"1","recipients":["2"],"msg_kind":"text"}"#;
    w.clock.advance(5_000);
    w.log.append(0, undated.into());
    worker.step().unwrap();
    w.clock.advance(1_999);
    worker.step().unwrap();
    assert!(w.sent().is_empty());
    w.clock.advance(1);
    worker.step().unwrap();
    assert_eq!(w.sent().len(), 2);
}
