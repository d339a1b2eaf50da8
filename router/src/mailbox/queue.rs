//! The queue under a mailbox, as a trait so the loom models can put a queue
//! made of loom atomics where the gateway uses crossbeam's `SegQueue`
//! (whose atomics loom cannot see).

use crossbeam_queue::SegQueue;

/// A multi-producer queue popped by one consumer, in FIFO order per
/// producer. A `push` that happens before a `pop` is seen by it.
pub(crate) trait Queue<T>: Send + Sync {
    fn push(&self, item: T);
    fn pop(&self) -> Option<T>;
}

impl<T: Send> Queue<T> for SegQueue<T> {
    fn push(&self, item: T) {
        SegQueue::push(self, item);
    }

    fn pop(&self) -> Option<T> {
        SegQueue::pop(self)
    }
}
