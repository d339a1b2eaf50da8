//! The daily upload quota: bytes each user was given upload slots for,
//! per UTC day, on this gateway.
//!
//! Counted when a slot is given (the announced size), not when bytes
//! arrive: the gateway never sees the bytes with S3, and a slot is the
//! right to upload that many. Kept in memory: a restart or another gateway
//! of a fleet starts from zero, so in a fleet the quota is per gateway (a
//! user behind a load balancer gets at most nodes x quota a day). The map
//! holds today's uploaders only; a new day clears it.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use chatgw_protocol::UserId;

/// Bytes per user today.
#[derive(Debug, Default)]
pub(crate) struct Quota {
    days: Mutex<(u64, HashMap<UserId, u64>)>,
}

impl Quota {
    /// Take `size` bytes of `user`'s `limit` for day `day` (Unix days);
    /// `Err(used)` with the bytes used today when it would go over.
    pub(crate) fn take(&self, user: UserId, size: u64, limit: u64, day: u64) -> Result<(), u64> {
        if limit == 0 {
            return Ok(());
        }
        let mut guard = self.days.lock().unwrap_or_else(PoisonError::into_inner);
        let (today, used) = &mut *guard;
        if *today != day {
            *today = day;
            used.clear();
        }
        let mine = used.entry(user).or_insert(0);
        match mine.checked_add(size).filter(|total| *total <= limit) {
            Some(total) => {
                *mine = total;
                Ok(())
            }
            None => Err(*mine),
        }
    }
}

impl Quota {
    /// Give back `size` bytes taken on day `day` for a slot that was not
    /// given after all (the backend failed).
    pub(crate) fn give_back(&self, user: UserId, size: u64, day: u64) {
        let mut guard = self.days.lock().unwrap_or_else(PoisonError::into_inner);
        let (today, used) = &mut *guard;
        if *today == day {
            if let Some(mine) = used.get_mut(&user) {
                *mine = mine.saturating_sub(size);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_the_limit_per_day() {
        let q = Quota::default();
        assert_eq!(q.take(UserId(1), 60, 100, 7), Ok(()));
        assert_eq!(q.take(UserId(1), 50, 100, 7), Err(60));
        assert_eq!(q.take(UserId(2), 100, 100, 7), Ok(()));
        assert_eq!(q.take(UserId(1), 40, 100, 7), Ok(()));
        q.give_back(UserId(1), 40, 7);
        assert_eq!(q.take(UserId(1), 40, 100, 7), Ok(()));
        assert_eq!(q.take(UserId(1), 100, 100, 8), Ok(()), "a new day");
        assert_eq!(q.take(UserId(1), u64::MAX, 0, 8), Ok(()), "0 is no limit");
    }
}
