//! loom models of the post/drain/wake protocol, run over the real
//! [`Mailbox`] with a queue made of loom atomics.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p chatgw-router --release`
//! (`.ci/run` does). loom explores every interleaving, and every value a
//! load may return under the C++ memory model, of two threads: the core
//! draining and a producer posting.

use std::sync::{atomic::Ordering, Arc};

use loom::sync::atomic::AtomicUsize;

use super::{
    one::Mailbox,
    queue::Queue,
    wake_flag::{Lowering, WakeFlag},
    Addressed, Mail, Posted, Wake,
};
use crate::Endpoint;

const SLOTS: usize = 4;

/// A bounded multi-producer single-consumer queue of small events, made of
/// loom atomics: a slot is claimed with `fetch_add` and filled with a
/// release store; the consumer reads its next slot with an acquire load.
struct LoomQueue {
    slots: [AtomicUsize; SLOTS],
    tail: AtomicUsize,
    head: AtomicUsize,
}

impl LoomQueue {
    fn new() -> Self {
        LoomQueue {
            slots: std::array::from_fn(|_| AtomicUsize::new(0)),
            tail: AtomicUsize::new(0),
            head: AtomicUsize::new(0),
        }
    }
}

/// An event for connection `slot`, the `seq`th posted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Event {
    slot: u8,
    seq: u8,
}

impl Event {
    fn to(self) -> Endpoint {
        Endpoint { core: 0, slot: u32::from(self.slot), generation: 0 }
    }
}

impl Addressed for Event {
    fn weight(&self) -> usize {
        1
    }

    fn for_each_endpoint(&self, f: &mut dyn FnMut(Endpoint)) {
        f(self.to())
    }
}

impl Queue<Event> for LoomQueue {
    fn push(&self, e: Event) {
        let i = self.tail.fetch_add(1, Ordering::Relaxed);
        assert!(i < SLOTS, "the model posts at most {SLOTS} events");
        self.slots[i].store(1 + usize::from(e.slot) * 256 + usize::from(e.seq), Ordering::Release);
    }

    fn pop(&self) -> Option<Event> {
        let h = self.head.load(Ordering::Relaxed);
        let v = self.slots.get(h)?.load(Ordering::Acquire);
        if v == 0 {
            return None;
        }
        self.head.store(h + 1, Ordering::Relaxed);
        Some(Event { slot: ((v - 1) / 256) as u8, seq: ((v - 1) % 256) as u8 })
    }
}

#[derive(Default)]
struct CountWakes(AtomicUsize);

impl Wake for CountWakes {
    fn wake(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn mailbox(cap: usize, lowering: Lowering) -> (Arc<Mailbox<Event, LoomQueue>>, Arc<CountWakes>) {
    let wakes = Arc::new(CountWakes::default());
    let mb = Mailbox::new(LoomQueue::new(), cap, WakeFlag::with_lowering(lowering), wakes.clone());
    (Arc::new(mb), wakes)
}

/// The core was woken for the first event and drains while a producer
/// posts the second. Afterwards the second must have been drained, or the
/// producer must have woken the core again: otherwise it is stranded until
/// the next post.
fn post_during_drain(lowering: Lowering) {
    loom::model(move || {
        let (mb, wakes) = mailbox(8, lowering);
        mb.post(Event { slot: 0, seq: 0 });
        let producer = {
            let mb = mb.clone();
            loom::thread::spawn(move || mb.post(Event { slot: 1, seq: 1 }))
        };
        let mut drained = Vec::new();
        mb.drain(|m| drained.push(m));
        assert_eq!(producer.join().unwrap(), Posted::Queued);
        let got_it = drained.contains(&Mail::Item(Event { slot: 1, seq: 1 }));
        let woken_again = wakes.0.load(Ordering::Relaxed) == 2;
        assert!(got_it || woken_again, "event 1 stranded: not drained and no wake pending");
    });
}

#[test]
fn swap_lowering_never_strands_an_item() {
    post_during_drain(Lowering::Swap);
}

#[test]
#[should_panic(expected = "event 1 stranded")]
fn plain_store_lowering_strands_an_item() {
    post_during_drain(Lowering::PlainStore);
}

/// A mailbox that holds one event: the producer posts two events for
/// connection 1 while the core drains, so either may be refused. The core
/// must hear of every refusal, hear of it before a later event for the same
/// connection, and be woken for whatever its drain missed.
#[test]
fn a_refused_event_is_reported_before_any_later_one() {
    loom::model(|| {
        let (mb, wakes) = mailbox(1, Lowering::Swap);
        mb.post(Event { slot: 0, seq: 0 });
        let producer = {
            let mb = mb.clone();
            loom::thread::spawn(move || [1, 2].map(|seq| mb.post(Event { slot: 1, seq })))
        };
        let mut log = Vec::new();
        mb.drain(|m| log.push(m));
        let posted = producer.join().unwrap();
        let conn1 = Endpoint { core: 0, slot: 1, generation: 0 };
        let seen = |log: &[Mail<Event>], seq: u8| log.iter().position(|m| *m == Mail::Item(Event { slot: 1, seq }));
        let reported = |log: &[Mail<Event>]| log.iter().position(|m| *m == Mail::Overflowed(conn1));
        let complete = |log: &[Mail<Event>]| {
            [1u8, 2].into_iter().zip(posted).all(|(seq, p)| match p {
                Posted::Queued => seen(log, seq).is_some(),
                Posted::Refused => reported(log).is_some(),
            })
        };
        let woken_again = wakes.0.load(Ordering::Relaxed) == 2;
        assert!(complete(&log) || woken_again, "stranded: {posted:?} {log:?}");
        // The wake (if any) makes the core drain again.
        mb.drain(|m| log.push(m));
        assert!(complete(&log), "lost: {posted:?} {log:?}");
        if posted[0] == Posted::Refused {
            if let Some(later) = seen(&log, 2) {
                assert!(reported(&log) < Some(later), "event 2 reached connection 1 before the refusal: {log:?}");
            }
        }
        assert_eq!(mb.depth(), 0);
    });
}
