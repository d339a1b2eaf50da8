//! A drain's waves on one core: close a growing share of the connections
//! this core held when the waves began, each with 1012 and a reconnect
//! delay hint (`close::restart_reason`) drawn at random from `0..=spread`.
//!
//! Why waves and a hint: closing every connection at once would send all
//! of this node's users to the survivors in the same second, a storm of
//! handshakes, token checks and syncs. The server raises the share once a
//! wave interval over `--drain-period`, and the hint spreads each wave's
//! reconnects over the interval, so the survivors see a steady trickle.
//!
//! A closed connection's requests already taken still commit; their
//! acknowledgements are not sent (the connection is closing), and the
//! client's `sync` on its new connection shows what was stored.

use chatgw_protocol::close;

use super::{conn::Phase, Engine};

/// What this core's drain has done so far.
#[derive(Debug, Default)]
pub(crate) struct DrainProgress {
    /// Open connections when the first wave came.
    base: Option<usize>,
    /// Connections closed by waves.
    closed: usize,
    /// The share the last wave asked for, per mille.
    share: u32,
}

impl<S> Engine<S> {
    /// Close connections with 1012 until `share_per_mille` of those open at
    /// the first wave are closed. Cheap when the share did not change.
    pub(crate) fn close_wave(&mut self, share_per_mille: u32, spread_ms: u32) {
        if share_per_mille == 0 || share_per_mille == self.drain.share {
            return;
        }
        self.drain.share = share_per_mille;
        let open: Vec<usize> = self.conns.iter().filter(|(_, c)| c.phase == Phase::Open).map(|(s, _)| s).collect();
        let base = *self.drain.base.get_or_insert(open.len());
        let goal = (base * share_per_mille.min(1000) as usize).div_ceil(1000);
        let now_ms = self.now_ms;
        for slot in open.into_iter().take(goal.saturating_sub(self.drain.closed)) {
            let hint = spread(now_ms ^ ((slot as u64) << 20) ^ u64::from(self.core), spread_ms);
            self.close_with(slot, close::SERVICE_RESTART, &close::restart_reason(hint));
            self.drain.closed += 1;
            self.ctx.metrics.drain.closed.inc();
        }
    }
}

/// A number in `0..=max` from `seed` (splitmix64): enough to spread
/// reconnects, nothing secret.
fn spread(seed: u64, max: u32) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % (u64::from(max) + 1)
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn hints_stay_within_the_spread_and_differ() {
        let hints: Vec<u64> = (0..1000).map(|i| spread(i, 999)).collect();
        assert!(hints.iter().all(|&h| h <= 999));
        let distinct: std::collections::HashSet<_> = hints.iter().collect();
        assert!(distinct.len() > 500, "{}", distinct.len());
        assert_eq!(spread(7, 0), 0);
    }
}
