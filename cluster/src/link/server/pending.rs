//! The bound on link connections still in their handshake.
//!
//! Each accepted connection has a thread until it is through the handshake
//! or has failed it (`LinkSettings::handshake_within`). Without a bound,
//! anyone who can reach the link port could hold thousands of threads with
//! silent connections. A fleet has few nodes and each dials once per
//! session, so a small bound per source address, and one in all, never
//! turns away a node of the fleet while one source cannot take the slots of
//! the others. A connection over either bound is closed at once, before its
//! thread starts, and counted (`ServerStats::handshakes_shed`); its dialler,
//! if it is a node, redials with its usual backoff.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
};

/// Handshakes under way, per source address and in all, with their bounds.
#[derive(Debug)]
pub(super) struct Pending {
    by_address: HashMap<IpAddr, usize>,
    total: usize,
    per_address: usize,
    in_all: usize,
}

impl Pending {
    /// None under way yet; at most `per_address` from one address and
    /// `in_all` in all.
    pub(super) fn new(per_address: usize, in_all: usize) -> Self {
        Pending { by_address: HashMap::new(), total: 0, per_address, in_all }
    }

    /// Count one more handshake from `ip` if both bounds allow it.
    fn admit(&mut self, ip: IpAddr) -> bool {
        let from_ip = self.by_address.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.per_address || self.total >= self.in_all {
            return false;
        }
        self.by_address.insert(ip, from_ip + 1);
        self.total += 1;
        true
    }

    fn release(&mut self, ip: IpAddr) {
        match self.by_address.get_mut(&ip) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                self.by_address.remove(&ip);
            }
            None => return,
        }
        self.total -= 1;
    }
}

/// One admitted handshake; its slot is given back when this is dropped
/// (the handshake ended either way, or its thread never started).
pub(super) struct PendingSlot {
    pending: Arc<Mutex<Pending>>,
    ip: IpAddr,
}

impl PendingSlot {
    /// A slot for a handshake from `ip`, or `None` over a bound.
    pub(super) fn take(pending: &Arc<Mutex<Pending>>, ip: IpAddr) -> Option<Self> {
        let admitted = lock(pending).admit(ip);
        admitted.then(|| PendingSlot { pending: pending.clone(), ip })
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        lock(&self.pending).release(self.ip);
    }
}

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    // Plain counters, consistent even after a panic elsewhere.
    pending.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn bounds_per_address_and_in_all_and_slots_come_back() {
        let pending = Arc::new(Mutex::new(Pending::new(2, 3)));
        let a: Vec<PendingSlot> = (0..2).filter_map(|_| PendingSlot::take(&pending, ip(1))).collect();
        assert_eq!(a.len(), 2);
        assert!(PendingSlot::take(&pending, ip(1)).is_none(), "per address");
        let b = PendingSlot::take(&pending, ip(2)).expect("another address");
        assert!(PendingSlot::take(&pending, ip(3)).is_none(), "in all");
        drop(b);
        let c = PendingSlot::take(&pending, ip(3)).expect("a slot came back");
        drop(a);
        drop(c);
        let state = lock(&pending);
        assert_eq!((state.total, state.by_address.len()), (0, 0), "nothing left counted");
    }
}
