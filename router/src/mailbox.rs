//! Cross-core mailboxes with coalesced wake-ups.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use crossbeam_queue::SegQueue;

/// How a core is woken from its poll: an eventfd, a mio `Waker`, a message
/// posted to an io_uring. Supplied by the I/O driver.
pub trait Wake: Send + Sync {
    /// Make the core's next (or current) poll return.
    fn wake(&self);
}

struct Mailbox<T> {
    queue: SegQueue<T>,
    woken: AtomicBool,
    waker: Arc<dyn Wake>,
}

/// One mailbox per core.
pub struct Mailboxes<T> {
    boxes: Vec<Mailbox<T>>,
}

impl<T> std::fmt::Debug for Mailboxes<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailboxes").field("cores", &self.boxes.len()).finish()
    }
}

impl<T> Mailboxes<T> {
    /// Mailboxes for cores `0..wakers.len()`, each woken through its waker.
    pub fn new(wakers: Vec<Arc<dyn Wake>>) -> Self {
        let boxes = wakers
            .into_iter()
            .map(|waker| Mailbox { queue: SegQueue::new(), woken: AtomicBool::new(false), waker })
            .collect();
        Mailboxes { boxes }
    }

    /// Number of cores.
    pub fn cores(&self) -> usize {
        self.boxes.len()
    }

    /// Queue `item` for `core` and wake it unless a wake is already pending.
    /// Items posted to a core that does not exist are dropped (and counted
    /// by the caller as a routing bug; it cannot happen with endpoints from
    /// the directory).
    pub fn post(&self, core: usize, item: T) {
        let Some(mb) = self.boxes.get(core) else {
            return;
        };
        mb.queue.push(item);
        // Release pairs with the consumer's swap: the push is visible before
        // the flag says "woken".
        if !mb.woken.swap(true, Ordering::AcqRel) {
            mb.waker.wake();
        }
    }

    /// Wake `core` without posting (for shutdown and similar signals).
    pub fn wake(&self, core: usize) {
        if let Some(mb) = self.boxes.get(core) {
            mb.woken.store(true, Ordering::Release);
            mb.waker.wake();
        }
    }

    /// Take everything queued for `core`, in order. Called by the core
    /// itself after its poll returns. The woken flag is cleared first, so an
    /// item posted while draining triggers a fresh wake rather than being
    /// stranded.
    pub fn drain(&self, core: usize, mut f: impl FnMut(T)) -> usize {
        let Some(mb) = self.boxes.get(core) else {
            return 0;
        };
        mb.woken.store(false, Ordering::Release);
        let mut n = 0;
        while let Some(item) = mb.queue.pop() {
            f(item);
            n += 1;
        }
        n
    }
}

/// Per-core batches being built by one producer during one turn.
#[derive(Debug)]
pub struct Fanout<T> {
    per_core: Vec<Vec<T>>,
}

impl<T> Fanout<T> {
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn posts_coalesce_wakes_until_drained() {
        let w = Arc::new(CountingWaker::default());
        let mb: Mailboxes<u32> = Mailboxes::new(vec![w.clone()]);
        mb.post(0, 1);
        mb.post(0, 2);
        assert_eq!(w.0.load(Ordering::SeqCst), 1);
        let mut got = Vec::new();
        assert_eq!(mb.drain(0, |x| got.push(x)), 2);
        assert_eq!(got, vec![1, 2]);
        mb.post(0, 3);
        assert_eq!(w.0.load(Ordering::SeqCst), 2);
        mb.post(7, 9); // no such core: dropped, no panic
    }

    #[test]
    fn fanout_posts_one_batch_per_core() {
        let ws: Vec<Arc<dyn Wake>> = vec![Arc::new(CountingWaker::default()), Arc::new(CountingWaker::default())];
        let mb: Mailboxes<Vec<u32>> = Mailboxes::new(ws);
        let mut f = Fanout::new(2);
        f.push(0, 1);
        f.push(1, 2);
        f.push(0, 3);
        f.flush(&mb);
        f.flush(&mb);
        let mut batches = Vec::new();
        mb.drain(0, |b| batches.push(b));
        assert_eq!(batches, vec![vec![1, 3]]);
        batches.clear();
        mb.drain(1, |b| batches.push(b));
        assert_eq!(batches, vec![vec![2]]);
    }

    #[test]
    fn no_item_is_lost_across_threads() {
        let w = Arc::new(CountingWaker::default());
        let mb = Arc::new(Mailboxes::<u64>::new(vec![w]));
        let producers: Vec<_> = (0..4u64)
            .map(|p| {
                let mb = mb.clone();
                std::thread::spawn(move || (0..10_000u64).for_each(|i| mb.post(0, p * 1_000_000 + i)))
            })
            .collect();
        let mut seen = 0usize;
        let mut last = [None::<u64>; 4];
        while seen < 40_000 {
            mb.drain(0, |x| {
                let p = (x / 1_000_000) as usize;
                // Per-producer FIFO order holds.
                assert!(last[p].is_none_or(|l| l < x));
                last[p] = Some(x);
                seen += 1;
            });
        }
        producers.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(seen, 40_000);
    }
}
