//! Cross-core mailboxes with coalesced wake-ups and a bound.
//!
//! Files: `one` is one core's mailbox (post, drain, the bound);
//! `wake_flag` the flag that coalesces wake-ups and why it is cleared with a
//! swap; `overflow` what a full mailbox remembers; `queue` the queue
//! underneath; `loom_model` the loom models of the protocol.

mod one;
mod overflow;
mod queue;
mod wake_flag;

#[cfg(all(test, loom))]
mod loom_model;
#[cfg(all(test, not(loom)))]
mod stress;

use std::sync::Arc;

use crossbeam_queue::SegQueue;

use self::{one::Mailbox, wake_flag::WakeFlag};
use crate::Endpoint;

/// How a core is woken from its poll: an eventfd, a mio `Waker`, a message
/// posted to an io_uring. Supplied by the I/O driver.
pub trait Wake: Send + Sync {
    /// Make the core's next (or current) poll return.
    fn wake(&self);
}

/// Mail that names the connections it is for, so a full mailbox can tell
/// the core which connections missed something.
pub trait Addressed: Send {
    /// How much of the mailbox bound this takes (events, not bytes).
    fn weight(&self) -> usize;
    /// Call `f` with every endpoint this is addressed to.
    fn for_each_endpoint(&self, f: &mut dyn FnMut(Endpoint));
}

/// An item for one connection.
impl Addressed for Endpoint {
    fn weight(&self) -> usize {
        1
    }

    fn for_each_endpoint(&self, f: &mut dyn FnMut(Endpoint)) {
        f(*self)
    }
}

/// A batch: each element counts.
impl<T: Addressed> Addressed for Vec<T> {
    fn weight(&self) -> usize {
        self.iter().map(Addressed::weight).sum()
    }

    fn for_each_endpoint(&self, f: &mut dyn FnMut(Endpoint)) {
        self.iter().for_each(|t| t.for_each_endpoint(f))
    }
}

/// What a drain hands the core.
#[derive(Debug, PartialEq, Eq)]
pub enum Mail<T> {
    /// Something posted to this core.
    Item(T),
    /// Mail for this endpoint was refused because the mailbox was full. The
    /// connection has missed something: close it (the device reconnects and
    /// syncs from its cursor). Always handed before any item posted after
    /// the refusal, so nothing later reaches the connection first.
    Overflowed(Endpoint),
}

/// What became of a post.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Posted {
    /// Queued for the core.
    Queued,
    /// The mailbox was full: not queued; the core will close the
    /// connections it addressed.
    Refused,
}

/// One mailbox per core.
pub struct Mailboxes<T> {
    boxes: Vec<Mailbox<T, SegQueue<T>>>,
}

impl<T> std::fmt::Debug for Mailboxes<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailboxes").field("cores", &self.boxes.len()).finish()
    }
}

impl<T: Addressed> Mailboxes<T> {
    /// Mailboxes for cores `0..wakers.len()`, each woken through its waker
    /// and holding at most `cap` weight (see [`Addressed::weight`]); a
    /// batch that would pass it is refused, unless the mailbox is empty.
    pub fn new(wakers: Vec<Arc<dyn Wake>>, cap: usize) -> Self {
        let boxes =
            wakers.into_iter().map(|waker| Mailbox::new(SegQueue::new(), cap, WakeFlag::new(), waker)).collect();
        Mailboxes { boxes }
    }

    /// Number of cores.
    pub fn cores(&self) -> usize {
        self.boxes.len()
    }

    /// Queue `item` for `core` and wake it unless a wake is already pending.
    /// A full mailbox refuses the item and records the endpoints it
    /// addressed for the core (see [`Mail::Overflowed`]). Items posted to a
    /// core that does not exist are dropped (it cannot happen with endpoints
    /// from the directory).
    pub fn post(&self, core: usize, item: T) -> Posted {
        match self.boxes.get(core) {
            Some(mb) => mb.post(item),
            None => Posted::Refused,
        }
    }

    /// Wake `core` without posting (for shutdown and similar signals).
    pub fn wake(&self, core: usize) {
        if let Some(mb) = self.boxes.get(core) {
            mb.wake();
        }
    }

    /// Hand `f` everything queued for `core`, in order, with the endpoints
    /// a full mailbox refused (see [`Mail::Overflowed`]). Called by the core
    /// itself after its poll returns. The wake flag is cleared first, so an
    /// item posted while draining triggers a fresh wake rather than being
    /// stranded. Returns the number of items.
    pub fn drain(&self, core: usize, f: impl FnMut(Mail<T>)) -> usize {
        self.boxes.get(core).map_or(0, |mb| mb.drain(f))
    }

    /// Weight queued for `core` now.
    pub fn depth(&self, core: usize) -> usize {
        self.boxes.get(core).map_or(0, Mailbox::depth)
    }

    /// Weight `core`'s mailbox refused since the last call.
    pub fn take_refused(&self, core: usize) -> usize {
        self.boxes.get(core).map_or(0, Mailbox::take_refused)
    }
}

/// Per-core batches being built by one producer during one turn.
#[derive(Debug)]
pub struct Fanout<T> {
    per_core: Vec<Vec<T>>,
}

impl<T: Addressed> Fanout<T> {
    /// Empty batches for `cores` cores.
    pub fn new(cores: usize) -> Self {
        Fanout { per_core: (0..cores).map(|_| Vec::new()).collect() }
    }

    /// Add `item` to `core`'s batch.
    pub fn push(&mut self, core: usize, item: T) {
        if let Some(b) = self.per_core.get_mut(core) {
            b.push(item);
        }
    }

    /// Post every non-empty batch as one mailbox item and start over.
    pub fn flush(&mut self, mailboxes: &Mailboxes<Vec<T>>) {
        for (core, batch) in self.per_core.iter_mut().enumerate() {
            if !batch.is_empty() {
                mailboxes.post(core, std::mem::take(batch));
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Default)]
    pub(super) struct CountingWaker(pub(super) AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn ep(slot: u32) -> Endpoint {
        Endpoint { core: 0, slot, generation: 0 }
    }

    fn items<T>(mail: Vec<Mail<T>>) -> Vec<T> {
        mail.into_iter().filter_map(|m| if let Mail::Item(t) = m { Some(t) } else { None }).collect()
    }

    #[test]
    fn posts_coalesce_wakes_until_drained() {
        let w = Arc::new(CountingWaker::default());
        let mb: Mailboxes<Endpoint> = Mailboxes::new(vec![w.clone()], 100);
        mb.post(0, ep(1));
        mb.post(0, ep(2));
        assert_eq!(w.0.load(Ordering::SeqCst), 1);
        let mut got = Vec::new();
        assert_eq!(mb.drain(0, |x| got.push(x)), 2);
        assert_eq!(items(got), vec![ep(1), ep(2)]);
        mb.post(0, ep(3));
        assert_eq!(w.0.load(Ordering::SeqCst), 2);
        assert_eq!(mb.post(7, ep(9)), Posted::Refused); // no such core: dropped, no panic
    }

    #[test]
    fn fanout_posts_one_batch_per_core() {
        let ws: Vec<Arc<dyn Wake>> = vec![Arc::new(CountingWaker::default()), Arc::new(CountingWaker::default())];
        let mb: Mailboxes<Vec<Endpoint>> = Mailboxes::new(ws, 100);
        let mut f = Fanout::new(2);
        f.push(0, ep(1));
        f.push(1, ep(2));
        f.push(0, ep(3));
        f.flush(&mb);
        f.flush(&mb);
        let mut batches = Vec::new();
        mb.drain(0, |b| batches.push(b));
        assert_eq!(items(std::mem::take(&mut batches)), vec![vec![ep(1), ep(3)]]);
        mb.drain(1, |b| batches.push(b));
        assert_eq!(items(batches), vec![vec![ep(2)]]);
    }

    #[test]
    fn full_mailbox_refuses_and_reports_endpoints_before_later_items() {
        let w = Arc::new(CountingWaker::default());
        let mb: Mailboxes<Vec<Endpoint>> = Mailboxes::new(vec![w.clone()], 3);
        assert_eq!(mb.post(0, vec![ep(1), ep(2)]), Posted::Queued);
        assert_eq!(mb.post(0, vec![ep(3), ep(1), ep(3)]), Posted::Refused);
        assert_eq!(mb.post(0, vec![ep(4)]), Posted::Queued);
        assert_eq!(mb.post(0, vec![ep(5)]), Posted::Refused);
        assert_eq!(mb.depth(0), 3);
        assert_eq!(w.0.load(Ordering::SeqCst), 1, "refusals wake like posts: once until drained");
        let mut got = Vec::new();
        assert_eq!(mb.drain(0, |m| got.push(m)), 2);
        // The refused endpoints, each once, come before the batch posted
        // after the refusal.
        let overflowed: Vec<u32> = got
            .iter()
            .take_while(|m| matches!(m, Mail::Overflowed(_)))
            .map(|m| if let Mail::Overflowed(e) = m { e.slot } else { unreachable!() })
            .collect();
        let mut sorted = overflowed.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![1, 3, 5]);
        assert_eq!(items(got), vec![vec![ep(1), ep(2)], vec![ep(4)]]);
        assert_eq!((mb.depth(0), mb.take_refused(0), mb.take_refused(0)), (0, 4, 0));
    }

    #[test]
    fn a_batch_larger_than_the_cap_passes_an_empty_mailbox() {
        let mb: Mailboxes<Vec<Endpoint>> = Mailboxes::new(vec![Arc::new(CountingWaker::default())], 2);
        let big: Vec<Endpoint> = (0..10).map(ep).collect();
        assert_eq!(mb.post(0, big.clone()), Posted::Queued);
        assert_eq!(mb.post(0, vec![ep(11)]), Posted::Refused);
        let mut got = Vec::new();
        mb.drain(0, |m| got.push(m));
        assert_eq!(got, vec![Mail::Overflowed(ep(11)), Mail::Item(big)]);
        assert_eq!(mb.post(0, vec![ep(12)]), Posted::Queued);
    }

    #[test]
    fn no_item_is_lost_across_threads() {
        let w = Arc::new(CountingWaker::default());
        let mb = Arc::new(Mailboxes::<Endpoint>::new(vec![w], usize::MAX));
        let producers: Vec<_> = (0..4u32)
            .map(|p| {
                let mb = mb.clone();
                std::thread::spawn(move || {
                    (0..10_000u32).for_each(|i| assert_eq!(mb.post(0, ep(p * 1_000_000 + i)), Posted::Queued))
                })
            })
            .collect();
        let mut seen = 0usize;
        let mut last = [None::<u32>; 4];
        while seen < 40_000 {
            mb.drain(0, |m| {
                let Mail::Item(x) = m else { panic!("nothing was refused") };
                let p = (x.slot / 1_000_000) as usize;
                // Per-producer FIFO order holds.
                assert!(last[p].is_none_or(|l| l < x.slot));
                last[p] = Some(x.slot);
                seen += 1;
            });
        }
        producers.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(seen, 40_000);
    }
}
