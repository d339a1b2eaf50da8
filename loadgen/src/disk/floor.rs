//! The floor the disk puts under acknowledgement latency, from the sync
//! latencies alone (no I/O here): for writes arriving at random moments,
//! the share of the wall time in which a sync still had more than `x` to
//! run, and the smallest `x` that share stays within.

use hdrhistogram::Histogram;

/// Σ max(0, d − x) over the syncs, in µs: the time in which a sync still
/// had more than `x` to run. Each sync counts at the low end of its
/// histogram bucket (within 0.1%), so this never overstates.
pub(super) fn excess(h: &Histogram<u64>, x: u64) -> u64 {
    h.iter_recorded().map(|v| h.lowest_equivalent(v.value_iterated_to()).saturating_sub(x) * v.count_at_value()).sum()
}

/// The smallest latency `x` (µs) such that at most `share` of the wall time
/// has a sync with more than `x` still to run: writes arriving at random
/// moments miss `x` at least that often because of the disk alone.
pub(super) fn floor_us(h: &Histogram<u64>, wall_us: u64, share: f64) -> u64 {
    let allowed = (share * wall_us as f64) as u64;
    let (mut lo, mut hi) = (0u64, if h.is_empty() { 0 } else { h.max() });
    // `excess` falls as `x` rises; find the first `x` within the allowance.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if excess(h, mid) <= allowed {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::stats::Latency;

    fn hist(micros: &[u64]) -> Latency {
        let mut l = Latency::new();
        for &us in micros {
            l.record_ns(us * 1000);
        }
        l
    }

    #[test]
    fn excess_counts_only_the_part_over_the_target() {
        // 25 ms counts as the low end of its bucket, within 0.1% of it.
        let e = excess(hist(&[100, 5_000, 25_000]).histogram(), 5_000);
        assert!((19_975..=20_000).contains(&e), "{e}");
        assert_eq!(excess(hist(&[100, 200]).histogram(), 5_000), 0);
    }

    #[test]
    fn floor_is_the_latency_one_percent_of_the_time_cannot_beat() {
        // One second of 100 µs syncs and one 100 ms stall: 10% of the wall
        // time is inside the stall. 1% of arrivals land in its first 10 ms
        // (90 ms or more before its end), 0.1% in its first 1 ms.
        let mut micros = vec![100u64; 9_000];
        micros.push(100_000);
        let wall = 1_000_000;
        let l = hist(&micros);
        let near = |got: u64, want: u64| got.abs_diff(want) <= want / 500;
        let (p99, p999) = (floor_us(l.histogram(), wall, 0.01), floor_us(l.histogram(), wall, 0.001));
        assert!(near(p99, 90_000), "{p99}");
        assert!(near(p999, 99_000), "{p999}");
        // Without the stall the disk is still busy 90% of the time with
        // 100 µs syncs, so the floor is just under one of them.
        assert_eq!(floor_us(hist(&[100u64; 9_000]).histogram(), wall, 0.01), 99);
        assert_eq!(floor_us(Latency::new().histogram(), wall, 0.01), 0);
    }
}
