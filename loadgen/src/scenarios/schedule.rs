//! Open-loop schedules: when the n-th connection or message is due.
//!
//! A closed-loop generator (send, wait for the answer, send again) slows
//! down exactly when the server does, and so never measures the queueing it
//! caused: coordinated omission. Here every item has an intended time fixed
//! before the run, `n / rate` seconds after the start, whatever the server
//! does; an item sent late is still measured from its intended time, so a
//! stall shows up in the latencies of everything that should have been sent
//! during it.
//!
//! Messages of a one-to-one run are numbered globally and item `n` goes to
//! sender `n % pairs`, so each sender sends every `pairs / rate` seconds and
//! consecutive senders are staggered by `1 / rate`: the load is smooth, not
//! a burst from every sender at once.

const NS_PER_SEC: u128 = 1_000_000_000;

/// `rate` items per second, starting at offset 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Schedule {
    rate: u64,
}

impl Schedule {
    /// A schedule of `rate` (at least 1) items per second.
    pub(crate) fn new(rate: u64) -> Self {
        Schedule { rate: rate.max(1) }
    }

    /// When item `n` is due, in nanoseconds after the start.
    pub(crate) fn offset_ns(&self, n: u64) -> u64 {
        let ns = u128::from(n) * NS_PER_SEC / u128::from(self.rate);
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// How many items are due strictly before `span_ns` after the start.
    pub(crate) fn count_before(&self, span_ns: u64) -> u64 {
        let scaled = u128::from(span_ns) * u128::from(self.rate);
        u64::try_from(scaled.div_ceil(NS_PER_SEC)).unwrap_or(u64::MAX)
    }
}

/// Which of `pairs` senders sends message `n`.
pub(crate) fn sender_of(n: u64, pairs: u64) -> u64 {
    n % pairs.max(1)
}

/// A well-mixed hash of `n` (splitmix64's finaliser): the same "random"
/// choice in every process (a group message's sender, the devices a storm
/// cuts off).
pub(crate) fn splitmix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Which of `threads` threads owns item (pair or connection) `i`.
pub(crate) fn owner_of(i: u64, threads: usize) -> usize {
    (i % threads.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_n_over_rate() {
        let s = Schedule::new(5000);
        assert_eq!(s.offset_ns(0), 0);
        assert_eq!(s.offset_ns(1), 200_000);
        assert_eq!(s.offset_ns(5000), 1_000_000_000);
        assert_eq!(Schedule::new(3).offset_ns(1), 333_333_333);
    }

    #[test]
    fn count_before_agrees_with_offsets() {
        for rate in [1u64, 3, 7, 2000, 5000, 123_457] {
            let s = Schedule::new(rate);
            for span in [0u64, 1, 199_999, 200_000, 200_001, 999_999_999, 1_000_000_000, 10_000_000_123] {
                let n = s.count_before(span);
                assert!(n == 0 || s.offset_ns(n - 1) < span, "rate {rate} span {span}");
                assert!(s.offset_ns(n) >= span, "rate {rate} span {span}");
            }
        }
        // Ten seconds at 5000/s is exactly 50,000 messages.
        assert_eq!(Schedule::new(5000).count_before(10_000_000_000), 50_000);
    }

    #[test]
    fn each_sender_gets_rate_over_pairs_evenly_staggered() {
        let (rate, pairs) = (5000u64, 200u64);
        let s = Schedule::new(rate);
        let mine: Vec<u64> = (0..1000).filter(|n| sender_of(*n, pairs) == 3).collect();
        assert_eq!(mine.len(), 5);
        // Every 40 ms (pairs / rate), offset by 3 / rate = 0.6 ms.
        assert_eq!(s.offset_ns(mine[0]), 600_000);
        assert_eq!(s.offset_ns(mine[1]) - s.offset_ns(mine[0]), 40_000_000);
        assert_eq!(owner_of(7, 3), 1);
        assert_eq!(owner_of(7, 0), 0);
    }
}
