//! Which refused handshakes to log: the first from an address, then at
//! most one a minute per address with the count left unlogged, so a
//! misconfigured node or a scanner cannot flood the log. Every refusal is
//! counted anyway (`ServerStats::auth_failures`).
//!
//! Pure: the caller passes the clock.

use std::{
    collections::HashMap,
    net::IpAddr,
    time::{Duration, Instant},
};

/// At most one line per address this often.
pub(super) const EVERY: Duration = Duration::from_secs(60);
/// Addresses remembered at once; past it, refusals from new addresses are
/// not logged until old entries expire (the counter still has them).
pub(super) const ADDRESSES: usize = 1024;

#[derive(Default)]
pub(super) struct RefusalLog {
    seen: HashMap<IpAddr, Entry>,
}

struct Entry {
    logged_at: Instant,
    unlogged: u64,
}

impl RefusalLog {
    /// A refusal from `ip` at `now`: `Some(n)` when it is to be logged,
    /// `n` the refusals from `ip` left unlogged since its last line.
    pub(super) fn note(&mut self, ip: IpAddr, now: Instant) -> Option<u64> {
        if let Some(e) = self.seen.get_mut(&ip) {
            if now.saturating_duration_since(e.logged_at) < EVERY {
                e.unlogged += 1;
                return None;
            }
            e.logged_at = now;
            return Some(std::mem::take(&mut e.unlogged));
        }
        if self.seen.len() >= ADDRESSES {
            self.seen.retain(|_, e| now.saturating_duration_since(e.logged_at) < EVERY);
            if self.seen.len() >= ADDRESSES {
                return None;
            }
        }
        self.seen.insert(ip, Entry { logged_at: now, unlogged: 0 });
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    #[test]
    fn one_line_per_address_a_minute_with_the_count_left_out() {
        let mut log = RefusalLog::default();
        let t = Instant::now();
        assert_eq!(log.note(ip(1), t), Some(0));
        assert_eq!(log.note(ip(1), t + Duration::from_secs(1)), None);
        assert_eq!(log.note(ip(1), t + Duration::from_secs(59)), None);
        assert_eq!(log.note(ip(2), t + Duration::from_secs(59)), Some(0), "another address is its own");
        assert_eq!(log.note(ip(1), t + EVERY), Some(2));
        assert_eq!(log.note(ip(1), t + EVERY), None);
    }

    #[test]
    fn the_addresses_remembered_are_bounded() {
        let mut log = RefusalLog::default();
        let t = Instant::now();
        for n in 0..ADDRESSES as u32 {
            assert_eq!(log.note(ip(n), t), Some(0));
        }
        assert_eq!(log.note(ip(u32::MAX), t), None, "full: a new address is not logged");
        assert_eq!(log.seen.len(), ADDRESSES);
        assert_eq!(log.note(ip(u32::MAX), t + EVERY), Some(0), "expired entries make room");
        assert_eq!(log.seen.len(), 1);
    }
}
