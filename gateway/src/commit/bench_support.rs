//! The commit path without the network, for the `commit_path` benchmark:
//! real pipelines on a real store, fed by producer threads the way cores
//! feed them, their answers drained from real mailboxes.
//!
//! Each producer sends direct messages over its own conversations (sender
//! and recipient registered on two cores, so every message is an ack to
//! one core and an event to the other); the run ends when every `sent`
//! ack has been drained.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use chatgw_protocol::{ConversationId, MessageKind, UserId};
use chatgw_router::{Directory, Endpoint, Mail, Mailboxes, Wake};
use chatgw_storage::MessageStore;
use crossbeam_channel::TrySendError;

use super::{start, AmendWindows, CommitContext};
use crate::{
    events::{CommitRequest, CoreEvent},
    metrics::Metrics,
};

/// What one run is made of.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Commit pipelines.
    pub pipelines: usize,
    /// Threads submitting requests.
    pub producers: usize,
    /// Distinct conversations, spread over the producers.
    pub conversations: u64,
    /// Messages in all.
    pub messages: usize,
    /// Largest batch a committer takes (`--commit-batch`).
    pub commit_batch: usize,
}

/// Runs so far: client ids differ from run to run on one store.
static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Wakes the thread draining a core's mailbox.
struct Unpark(thread::Thread);

impl Wake for Unpark {
    fn wake(&self) {
        self.0.unpark();
    }
}

const CORES: usize = 2;

/// Send `load.messages` direct messages through `load.pipelines` pipelines
/// into `store`; how long until every ack was drained.
pub fn run(store: Arc<dyn MessageStore>, load: Load) -> Duration {
    let done = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));
    let (drain_tx, drain_rx) = std::sync::mpsc::channel::<Arc<Mailboxes<crate::events::CoreBatch>>>();
    // One drainer per core, parked until woken by a post.
    let drainers: Vec<_> = (0..CORES)
        .map(|core| {
            let (done, acks) = (done.clone(), acks.clone());
            let (tx, rx) = std::sync::mpsc::channel::<Arc<Mailboxes<crate::events::CoreBatch>>>();
            let handle = thread::spawn(move || {
                let Ok(mailboxes) = rx.recv() else { return };
                loop {
                    let mut n = 0;
                    mailboxes.drain(core, |mail| {
                        if let Mail::Item(events) = mail {
                            for ev in events {
                                if matches!(ev, CoreEvent::Reply { .. }) {
                                    n += 1;
                                }
                            }
                        }
                    });
                    acks.fetch_add(n, Ordering::AcqRel);
                    if done.load(Ordering::Acquire) {
                        return;
                    }
                    if n == 0 {
                        thread::park_timeout(Duration::from_millis(5));
                    }
                }
            });
            (handle, tx)
        })
        .collect();
    drop(drain_rx);
    drop(drain_tx);
    let wakers: Vec<Arc<dyn Wake>> =
        drainers.iter().map(|(h, _)| Arc::new(Unpark(h.thread().clone())) as Arc<dyn Wake>).collect();
    let mailboxes = Arc::new(Mailboxes::new(wakers, 1 << 20));
    for (_, tx) in &drainers {
        let _ = tx.send(mailboxes.clone());
    }
    let directory = Arc::new(Directory::new());
    let user = |c: u64, side: u64| 2 * c + side + 1;
    for c in 0..load.conversations {
        for side in 0..2 {
            let u = user(c, side);
            directory.register(u, Endpoint { core: side as u16, slot: u as u32, generation: 1 });
        }
    }
    let ctx = CommitContext {
        directory,
        mailboxes: mailboxes.clone(),
        metrics: Arc::new(Metrics::new()),
        node_id: 0,
        max_group_members: 256,
        amend_windows: AmendWindows { delete: Duration::from_secs(3600), edit: Duration::from_secs(600) },
        commit_batch: load.commit_batch.max(1),
        commit_window: std::time::Duration::ZERO,
        stale_groups: crossbeam_channel::never(),
        remote: None,
        events_wake: Default::default(),
    };
    let started = start::start(ctx, store, load.pipelines, 65_536).expect("pipelines start");
    // Requests are built before the clock starts: the cores' work is not measured.
    let producers = load.producers.max(1);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let mut batches: Vec<Vec<CommitRequest>> = (0..producers).map(|_| Vec::new()).collect();
    for i in 0..load.messages {
        let p = i % producers;
        let c = (i as u64 / producers as u64 * producers as u64 + p as u64) % load.conversations.max(1);
        let (from, to) = (user(c, 0), user(c, 1));
        batches[p].push(CommitRequest::Send {
            origin: Endpoint { core: 0, slot: from as u32, generation: 1 },
            from: UserId(from),
            client_id: format!("r{run}-{i}"),
            conversation: ConversationId::direct(UserId(from), UserId(to)),
            kind: MessageKind::Text,
            body: "\"a benchmark message of a typical length, some sixty bytes\"".into(),
        });
    }
    let cpu0 = process_cpu();
    let clock = Instant::now();
    let feeders: Vec<_> = batches
        .into_iter()
        .map(|requests| {
            let queues = started.queues.clone();
            thread::spawn(move || {
                for mut r in requests {
                    loop {
                        match queues.try_send(r) {
                            Ok(()) => break,
                            Err(TrySendError::Full(back)) => {
                                r = back;
                                thread::yield_now();
                            }
                            Err(TrySendError::Disconnected(_)) => return,
                        }
                    }
                }
            })
        })
        .collect();
    for f in feeders {
        let _ = f.join();
    }
    while acks.load(Ordering::Acquire) < load.messages {
        thread::sleep(Duration::from_micros(200));
    }
    let took = clock.elapsed();
    if std::env::var_os("CHATGW_BENCH_CPU").is_some() {
        let cpu = process_cpu() - cpu0;
        eprintln!("pipelines {} wall {:?} cpu {:.2} cores", load.pipelines, took, cpu / took.as_secs_f64());
    }
    started.queues.stop();
    for t in started.threads {
        let _ = t.join();
    }
    done.store(true, Ordering::Release);
    for (h, _) in drainers {
        h.thread().unpark();
        let _ = h.join();
    }
    took
}

/// CPU seconds this process has used (user and system), from /proc.
fn process_cpu() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name (which may hold spaces): utime, stime are 14th and 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
