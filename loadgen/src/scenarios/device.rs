//! A device: one user's client across its connections, as the protocol's
//! recommended client loop keeps it (docs/PROTOCOL.md 1.7). The reconnect
//! storm and the soak both judge the gateway by what such devices see, so
//! they share this one model.
//!
//! - A cursor: the highest event id seen in `message` and `receipt` frames
//!   and in `synced`, never a `sent` id. Every new connection `sync`s from
//!   it, and it never goes backwards.
//! - Reconnection: when a connection ends the device reopens one, at once
//!   (the storm, after a network blip) or after an exponential backoff
//!   with jitter (the soak, while the gateway restarts). An end while the
//!   device was already down (reconnected, not yet `synced`) is a failed
//!   attempt; the count of those in a row drives the backoff and resets at
//!   `synced`.
//! - Down time: from the end (or the cut) to the `synced` that follows, for
//!   the catch-up latency and to know when every device is back.
//!
//! What each scenario keeps besides (outboxes, pending acknowledgements,
//! its own counters) is in the device's `more`; what a device's
//! connections are is in [`Devices`], which maps the driver's connection
//! ids back to devices and ignores the ends of connections it has replaced.

use crate::{
    conn::driver::Driver,
    scenarios::{messages::Roles, schedule::splitmix},
};

/// First reconnection delay with backoff (ns); doubled per failed attempt.
const BACKOFF_BASE_NS: u64 = 50_000_000;
/// Longest reconnection delay with backoff (ns).
const BACKOFF_MAX_NS: u64 = 2_000_000_000;

/// How a device's current connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The connection was up (or the first one never came up): the device
    /// is down from now.
    Dropped,
    /// A reconnection ended before `synced`; the number of such failures in
    /// a row, this one included.
    Failed(u32),
}

/// One device; `X` is what the scenario keeps besides.
#[derive(Debug)]
pub(crate) struct Device<X> {
    /// Its user id.
    pub(crate) user: u64,
    /// The current connection (the driver's id).
    pub(crate) conn: usize,
    cursor: u64,
    /// The `after` of the current connection's `sync`.
    sync_after: u64,
    /// Connections so far (1 for the first).
    lifetime: u32,
    /// Since when it has been down: ended or cut off, not `synced` since.
    down_since: Option<u64>,
    /// Reconnections that failed in a row.
    failures: u32,
    /// When to reconnect, while waiting out a backoff.
    retry_at: Option<u64>,
    /// What the scenario keeps.
    pub(crate) more: X,
}

impl<X> Device<X> {
    fn new(user: u64, conn: usize, more: X) -> Self {
        Device {
            user,
            conn,
            cursor: 0,
            sync_after: 0,
            lifetime: 1,
            down_since: None,
            failures: 0,
            retry_at: None,
            more,
        }
    }

    /// The highest event id seen.
    #[cfg(test)]
    pub(crate) fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The `after` of the current connection's `sync`: replayed ids at or
    /// below it are repeats the replay should not have sent.
    pub(crate) fn sync_after(&self) -> u64 {
        self.sync_after
    }

    /// Connections so far (1 for the first).
    pub(crate) fn lifetime(&self) -> u32 {
        self.lifetime
    }

    /// Since when the device has been down, if it is.
    pub(crate) fn down_since(&self) -> Option<u64> {
        self.down_since
    }

    /// Waiting out a backoff before it reconnects.
    pub(crate) fn waiting(&self) -> bool {
        self.retry_at.is_some()
    }

    /// An event id was seen (`message`, `receipt`, or a `synced` cursor):
    /// the device's cursor is the last event received, since events arrive
    /// in inbox order and that is not id order when several gateways share
    /// a store (docs/PROTOCOL.md, section 1.7).
    pub(crate) fn saw_event(&mut self, id: u64) {
        self.cursor = id;
    }

    /// `synced` came back with `cursor`: the device is caught up. Returns
    /// since when it had been down, the first time after each outage.
    pub(crate) fn synced(&mut self, cursor: Option<u64>) -> Option<u64> {
        if let Some(c) = cursor {
            self.saw_event(c);
        }
        self.failures = 0;
        self.down_since.take()
    }

    /// As if its connection had ended at `since` and it had reopened on the
    /// same connection id: for tests of what a scenario does with the
    /// frames of a reconnected device, without a driver.
    #[cfg(test)]
    pub(crate) fn simulate_reconnect(&mut self, since: u64) {
        self.ended(since);
        self.reopened(self.conn);
    }

    /// Its current connection ended at `now`.
    fn ended(&mut self, now: u64) -> End {
        if self.down_since.is_some() {
            self.failures += 1;
            End::Failed(self.failures)
        } else {
            self.down_since = Some(now);
            End::Dropped
        }
    }

    /// It reopens on connection `conn`, syncing from its cursor.
    fn reopened(&mut self, conn: usize) {
        self.conn = conn;
        self.sync_after = self.cursor;
        self.lifetime += 1;
        self.retry_at = None;
    }
}

/// The delay before reconnection attempt `failures + 1`: the base doubled
/// per failure (up to 64 times) and capped, of which the second half is
/// jitter drawn from `salt` so devices cut off together spread out.
pub(crate) fn backoff_ns(salt: u64, failures: u32) -> u64 {
    let backoff = BACKOFF_BASE_NS.saturating_mul(1 << failures.min(6)).min(BACKOFF_MAX_NS);
    backoff / 2 + splitmix(salt) % (backoff / 2 + 1)
}

/// The delay before reconnection attempt `failures + 1` with *full*
/// jitter, as `chatgw_client::Reconnect` waits: anywhere from 0 to the base
/// doubled per failure and capped, so a node's clients closed in one wave
/// do not all come back in the same instant.
pub(crate) fn full_jitter_ns(salt: u64, failures: u32) -> u64 {
    let backoff = BACKOFF_BASE_NS.saturating_mul(1 << failures.min(6)).min(BACKOFF_MAX_NS);
    splitmix(salt) % (backoff + 1)
}

/// A thread's devices, and which connection is whose.
pub(crate) struct Devices<X> {
    list: Vec<Device<X>>,
    /// Driver connection -> device.
    roles: Roles<usize>,
    /// Reconnect to the next node rather than the same one.
    rotate: bool,
}

impl<X> Default for Devices<X> {
    fn default() -> Self {
        Devices { list: Vec::new(), roles: Roles::default(), rotate: false }
    }
}

impl<X> Devices<X> {
    /// From now on, each reconnection goes to the node after the one the
    /// device's last connection went to.
    pub(crate) fn rotate_nodes(&mut self) {
        self.rotate = true;
    }

    /// A device of `user` whose first connection is `conn`; its index.
    pub(crate) fn add(&mut self, user: u64, conn: usize, more: X) -> usize {
        let d = self.list.len();
        self.list.push(Device::new(user, conn, more));
        self.roles.set(conn, d);
        d
    }

    /// A device of `user` with a new first connection to node `node`; its index.
    pub(crate) fn open(&mut self, driver: &mut Driver, node: usize, user: u64, more: X) -> usize {
        let conn = driver.open(node, user, 0);
        self.add(user, conn, more)
    }

    /// The device whose current connection is `conn`.
    pub(crate) fn of_conn(&self, conn: usize) -> Option<usize> {
        self.roles.get(conn)
    }

    /// Devices in all.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Device `d` (an index this set gave out).
    pub(crate) fn get(&self, d: usize) -> &Device<X> {
        &self.list[d]
    }

    /// Device `d`, to change (an index this set gave out).
    pub(crate) fn get_mut(&mut self, d: usize) -> &mut Device<X> {
        &mut self.list[d]
    }

    /// Every device.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Device<X>> {
        self.list.iter()
    }

    /// Devices whose connection is up now.
    pub(crate) fn up(&self, driver: &Driver) -> usize {
        self.list.iter().filter(|d| driver.is_up(d.conn)).count()
    }

    /// Whether every device is caught up (none down).
    pub(crate) fn all_synced(&self) -> bool {
        self.list.iter().all(|d| d.down_since.is_none())
    }

    /// The devices whose current connection ended since the last call, and
    /// how; ends of connections already replaced are not theirs any more.
    pub(crate) fn take_ended(&mut self, driver: &mut Driver, now: u64) -> Vec<(usize, End)> {
        let mut ended = Vec::new();
        for conn in driver.take_ended() {
            let Some(d) = self.roles.get(conn) else { continue };
            self.roles.clear(conn);
            if self.list[d].conn == conn {
                ended.push((d, self.list[d].ended(now)));
            }
        }
        ended
    }

    /// Reconnect device `d` now, syncing from its cursor, to the node of
    /// its last connection (or where the driver redirects that node).
    pub(crate) fn reconnect(&mut self, driver: &mut Driver, d: usize) {
        self.roles.clear(self.list[d].conn);
        let dev = &mut self.list[d];
        let conn = if self.rotate {
            driver.reopen_next(dev.conn, dev.user, dev.cursor)
        } else {
            driver.reopen(dev.conn, dev.user, dev.cursor)
        };
        dev.reopened(conn);
        self.roles.set(conn, d);
    }

    /// Cut device `d`'s connection at `now` and reconnect at once: it is
    /// down from now whatever it was before.
    pub(crate) fn cut_and_reconnect(&mut self, driver: &mut Driver, d: usize, now: u64) {
        driver.kill(self.list[d].conn);
        self.list[d].down_since = Some(now);
        self.reconnect(driver, d);
    }

    /// Device `d` stops reconnecting (its last connection is forgotten).
    pub(crate) fn give_up(&mut self, d: usize) {
        self.roles.clear(self.list[d].conn);
    }

    /// Device `d` reconnects after a backoff from `now`.
    pub(crate) fn retry_later(&mut self, d: usize, now: u64) {
        let dev = &mut self.list[d];
        let salt = (d as u64) << 20 ^ u64::from(dev.failures) ^ now;
        dev.retry_at = Some(now + backoff_ns(salt, dev.failures));
    }

    /// Device `d` reconnects at `at` (a server's hint, or a backoff the
    /// scenario chose), or after a full-jitter backoff from `now` when
    /// `at` is None; returns when.
    pub(crate) fn retry_at(&mut self, d: usize, at: Option<u64>, now: u64) -> u64 {
        let dev = &mut self.list[d];
        let salt = (d as u64) << 20 ^ u64::from(dev.failures) ^ now;
        let at = at.unwrap_or_else(|| now + full_jitter_ns(salt, dev.failures));
        dev.retry_at = Some(at);
        at
    }

    /// The earliest pending reconnection, if any device waits for one.
    pub(crate) fn next_retry(&self) -> Option<u64> {
        self.list.iter().filter_map(|d| d.retry_at).min()
    }

    /// Reconnect the devices whose backoff is over; their indexes.
    pub(crate) fn reconnect_due(&mut self, driver: &mut Driver, now: u64) -> Vec<usize> {
        let due: Vec<usize> =
            (0..self.list.len()).filter(|&d| self.list[d].retry_at.is_some_and(|at| at <= now)).collect();
        for &d in &due {
            self.reconnect(driver, d);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_is_the_last_event_received() {
        let mut d = Device::new(1, 0, ());
        d.saw_event(500);
        d.saw_event(400);
        assert_eq!(d.cursor(), 400, "inbox order, not id order");
        d.synced(Some(400));
        assert_eq!(d.cursor(), 400);
        d.synced(Some(600));
        assert_eq!(d.cursor(), 600);
    }

    #[test]
    fn an_end_while_down_is_a_failed_attempt_until_synced() {
        let mut d = Device::new(1, 0, ());
        assert_eq!(d.synced(None), None, "the first connection was never down");
        assert_eq!(d.ended(100), End::Dropped);
        d.saw_event(70);
        d.reopened(1);
        assert_eq!((d.sync_after(), d.lifetime()), (70, 2));
        assert_eq!(d.ended(200), End::Failed(1));
        d.reopened(2);
        assert_eq!(d.ended(300), End::Failed(2));
        d.reopened(3);
        assert_eq!(d.synced(Some(80)), Some(100), "down since the first end");
        assert_eq!(d.synced(Some(80)), None, "once per outage");
        assert_eq!(d.ended(400), End::Dropped, "the failures reset at synced");
    }

    #[test]
    fn the_backoff_doubles_with_jitter_and_is_capped() {
        for salt in 0..200 {
            let first = backoff_ns(salt, 0);
            assert!((BACKOFF_BASE_NS / 2..=BACKOFF_BASE_NS).contains(&first), "{first}");
            let third = backoff_ns(salt, 2);
            assert!((2 * BACKOFF_BASE_NS..=4 * BACKOFF_BASE_NS).contains(&third), "{third}");
            assert!(backoff_ns(salt, 40) <= BACKOFF_MAX_NS);
            assert!(backoff_ns(salt, 40) >= BACKOFF_MAX_NS / 2);
        }
        let spread: std::collections::HashSet<u64> = (0..50).map(|s| backoff_ns(s, 0)).collect();
        assert!(spread.len() > 40, "jitter spreads devices cut off together");
    }

    #[test]
    fn full_jitter_spans_zero_to_the_capped_backoff() {
        let firsts: Vec<u64> = (0..400).map(|s| full_jitter_ns(s, 0)).collect();
        assert!(firsts.iter().all(|&t| t <= BACKOFF_BASE_NS));
        assert!(firsts.iter().any(|&t| t < BACKOFF_BASE_NS / 4), "down to 0, not half the backoff");
        assert!((0..400).map(|s| full_jitter_ns(s, 40)).all(|t| t <= BACKOFF_MAX_NS));
        assert!((0..400).any(|s| full_jitter_ns(s, 40) > BACKOFF_MAX_NS / 2), "the cap grows with failures");
    }
}
