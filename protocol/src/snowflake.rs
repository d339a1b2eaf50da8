//! Snowflake ids: 64-bit, time ordered, unique across generators without
//! coordination.
//!
//! Layout, high to low: 1 bit zero, 41 bits milliseconds since
//! 2024-01-01T00:00:00Z (good for ~69 years), 10 bits generator id, 12 bits
//! sequence within the millisecond. The generator id names the node (and,
//! where a node runs several committers, the committer), so two nodes never
//! hand out the same id.
//!
//! A generator never goes backwards: if the wall clock steps back, or more
//! than 4096 ids are asked for within one millisecond, it keeps counting from
//! its last id (borrowing from the future) rather than repeating one. On
//! restart, [`Snowflake::resume_after`] takes the largest id already stored so
//! that ids stay increasing across a crash even if the clock moved back.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::MessageId;

/// 2024-01-01T00:00:00Z in Unix milliseconds.
pub const EPOCH_MS: u64 = 1_704_067_200_000;
const NODE_BITS: u32 = 10;
const SEQ_BITS: u32 = 12;

/// A Snowflake id generator. Not shared between threads: each committer
/// owns one.
#[derive(Debug)]
pub struct Snowflake {
    node: u64,
    last: u64,
}

impl Snowflake {
    /// Largest generator id.
    pub const MAX_NODE: u16 = (1 << NODE_BITS) - 1;

    /// A generator for `node` (0..=1023; higher bits are masked off).
    pub fn new(node: u16) -> Self {
        Snowflake { node: u64::from(node & Self::MAX_NODE), last: 0 }
    }

    /// Make every id handed out from now on larger than `floor`.
    pub fn resume_after(mut self, floor: MessageId) -> Self {
        self.last = self.last.max(floor.0);
        self
    }

    /// The next id, strictly larger than every id this generator gave before.
    pub fn next_id(&mut self) -> MessageId {
        self.next_at(now_ms())
    }

    /// The next id as if the wall clock read `unix_ms`.
    pub fn next_at(&mut self, unix_ms: u64) -> MessageId {
        let ms = unix_ms.saturating_sub(EPOCH_MS) & ((1 << 41) - 1);
        let candidate = (ms << (NODE_BITS + SEQ_BITS)) | (self.node << SEQ_BITS);
        let id = if candidate > self.last {
            candidate
        } else {
            // Same millisecond (or clock went back): count on from the last id,
            // keeping our node bits. Sequence overflow carries into the time bits.
            let seq_mask = (1u64 << SEQ_BITS) - 1;
            let last_seq = self.last & seq_mask;
            if last_seq < seq_mask && (self.last >> SEQ_BITS) & u64::from(Self::MAX_NODE) == self.node {
                self.last + 1
            } else {
                let next_ms = (self.last >> (NODE_BITS + SEQ_BITS)) + 1;
                (next_ms << (NODE_BITS + SEQ_BITS)) | (self.node << SEQ_BITS)
            }
        };
        self.last = id;
        MessageId(id)
    }

    /// The last id handed out (or the resume floor), zero if none.
    pub fn last(&self) -> MessageId {
        MessageId(self.last)
    }

    /// The Unix time in milliseconds encoded in `id`.
    pub fn unix_ms(id: MessageId) -> u64 {
        (id.0 >> (NODE_BITS + SEQ_BITS)) + EPOCH_MS
    }
}

/// Wall-clock Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictly_increasing_within_a_millisecond_and_across_overflow() {
        let mut g = Snowflake::new(5);
        let t = EPOCH_MS + 1000;
        let mut prev = MessageId(0);
        for _ in 0..10_000 {
            let id = g.next_at(t);
            assert!(id > prev);
            prev = id;
        }
        // 10,000 ids in one millisecond borrowed two milliseconds from the future.
        assert_eq!(Snowflake::unix_ms(prev), t + 2);
    }

    #[test]
    fn clock_going_back_never_repeats() {
        let mut g = Snowflake::new(1);
        let a = g.next_at(EPOCH_MS + 5000);
        let b = g.next_at(EPOCH_MS + 10);
        assert!(b > a);
    }

    #[test]
    fn generators_with_different_nodes_never_collide() {
        let mut a = Snowflake::new(1);
        let mut b = Snowflake::new(2);
        let t = EPOCH_MS + 42;
        let xs: Vec<_> = (0..5000).map(|_| a.next_at(t)).collect();
        let ys: std::collections::HashSet<_> = (0..5000).map(|_| b.next_at(t)).collect();
        assert!(xs.iter().all(|x| !ys.contains(x)));
    }

    #[test]
    fn resume_after_restart_stays_above_floor() {
        let floor = Snowflake::new(3).next_at(EPOCH_MS + 1_000_000);
        let mut g = Snowflake::new(3).resume_after(floor);
        assert!(g.next_at(EPOCH_MS + 1) > floor);
        assert_eq!(Snowflake::unix_ms(floor), EPOCH_MS + 1_000_000);
    }
}
