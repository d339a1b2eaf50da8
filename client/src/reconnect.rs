//! Reconnecting after the server closed or the network failed: wait what
//! the close asked for (a 1012's `retry_after_ms` hint), then try the
//! known gateway addresses in turn, starting after the one that was lost,
//! with exponential backoff and full jitter between rounds, and `sync`
//! from the cursor on the new connection (docs/PROTOCOL.md, 1.7 and 6.3).
//!
//! Full jitter (a delay drawn from zero to the exponential bound) rather
//! than a fixed exponential delay: the clients of a drained node all fail
//! and retry together, and only randomness keeps them from arriving at the
//! survivors in lockstep.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use crate::{Client, ClientError, MessageId};

/// Exponential backoff with full jitter: the `n`th delay is drawn from
/// `0..=min(cap, base * 2^n)`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    seed: u64,
}

impl Backoff {
    /// Delays bounded by `base`, doubling per attempt up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        // Two clients in one process started in the same nanosecond still
        // differ by where their seed lives.
        let seed = now_nanos() ^ u64::from(std::process::id()) << 40;
        let here = &seed as *const u64 as u64;
        Backoff { base, cap, attempt: 0, seed: seed ^ here.rotate_left(32) }
    }

    /// The next delay, and the bound doubles.
    pub fn next_delay(&mut self) -> Duration {
        let bound = self.base.saturating_mul(1 << self.attempt.min(20)).min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let millis = bound.as_millis() as u64;
        Duration::from_millis(self.random() % (millis + 1))
    }

    /// Start over (after a connection that worked).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// splitmix64: enough to spread retries, nothing secret.
    fn random(&mut self) -> u64 {
        self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Where and how a device reconnects.
#[derive(Debug)]
pub struct Reconnect {
    addrs: Vec<SocketAddr>,
    /// The address of the current (or last) connection.
    current: usize,
    backoff: Backoff,
}

impl Reconnect {
    /// Reconnect to any of `addrs` (at least one), with a backoff from
    /// 100 ms doubling to 10 s.
    pub fn new(addrs: Vec<SocketAddr>) -> Self {
        assert!(!addrs.is_empty(), "Reconnect needs at least one address");
        Reconnect { addrs, current: 0, backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(10)) }
    }

    /// With another backoff.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The first connection: the addresses in turn from the first, as
    /// [`Reconnect::reconnect`] does, without a hint or a `sync`.
    pub fn connect(&mut self, token: &str, give_up_after: Duration) -> Result<Client, ClientError> {
        self.current = self.addrs.len() - 1;
        self.try_addresses(token, give_up_after)
    }

    /// The address the current connection went to.
    pub fn current(&self) -> SocketAddr {
        self.addrs[self.current]
    }

    /// After a close with `reason` (empty for a lost connection): wait the
    /// close's `retry_after_ms` hint, connect to the next address that
    /// takes the connection (the lost one last), backing off between
    /// rounds, for at most `give_up_after`; then `sync` from `cursor`. The
    /// replay arrives as events, ending with `synced`.
    pub fn reconnect(
        &mut self,
        token: &str,
        cursor: MessageId,
        reason: &str,
        give_up_after: Duration,
    ) -> Result<Client, ClientError> {
        if let Some(ms) = chatgw_protocol::close::retry_after_ms(reason) {
            std::thread::sleep(Duration::from_millis(ms.min(60_000)));
        }
        let mut client = self.try_addresses(token, give_up_after)?;
        client.set_cursor(cursor);
        client.sync()?;
        Ok(client)
    }

    fn try_addresses(&mut self, token: &str, give_up_after: Duration) -> Result<Client, ClientError> {
        let deadline = Instant::now() + give_up_after;
        loop {
            let mut last = None;
            for step in 1..=self.addrs.len() {
                let i = (self.current + step) % self.addrs.len();
                match Client::connect(self.addrs[i], token) {
                    Ok(client) => {
                        self.current = i;
                        self.backoff.reset();
                        return Ok(client);
                    }
                    Err(e) => last = Some(e),
                }
            }
            let delay = self.backoff.next_delay();
            if Instant::now() + delay > deadline {
                return Err(last.unwrap_or(ClientError::Timeout("a gateway to reconnect to")));
            }
            std::thread::sleep(delay);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_jittered_under_a_doubling_bound_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        for (n, d) in delays.iter().enumerate() {
            let bound = Duration::from_millis(100 << n.min(3));
            assert!(*d <= bound, "{n}: {d:?} over {bound:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
        let spread: std::collections::HashSet<_> = (0..50).map(|_| b.next_delay()).collect();
        assert!(spread.len() > 10, "full jitter draws different delays: {spread:?}");
    }
}
