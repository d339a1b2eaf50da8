//! Abuse limits whose state outlives one connection: connections per source
//! address (concurrent, and new ones per second) and messages per user per
//! second across all of the user's devices.
//!
//! The per-connection limits (frame size, outbound queue, frame rate,
//! handshake and idle deadlines) live on the connection. These two cannot:
//! SO_REUSEPORT spreads one address's connections over every core, and a
//! user's devices may sit on different cores. So they live here, in a map
//! split into shards behind short mutexes: one lock per accepted connection
//! or per sent message, held only for a hash-map update. A limit set to 0
//! is off and costs nothing.
//!
//! The per-user map is on every `send`, so it hashes a user id once, with a
//! multiply by a per-process random odd number rather than SipHash (which
//! was two full hashes per send: one to pick the shard, one inside the
//! shard's map). User ids come from tokens the issuer signed, so a client
//! cannot choose ids that collide; source addresses can be chosen (an IPv6
//! /64 is cheap), so the per-source map keeps SipHash, and it is only
//! consulted once per connection. Per-core maps without locks would need no
//! sharing at all, but a user's devices on N cores would then get N times
//! the allowance.
//!
//! IPv6 sources are counted per /64, the block one subscriber usually gets:
//! counting single addresses would let one host rotate through 2^64 of them.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hash, Hasher, RandomState},
    net::IpAddr,
    sync::{
        atomic::{AtomicU32, Ordering},
        Mutex,
    },
};

use chatgw_protocol::UserId;

use crate::config::Config;

const SHARDS: usize = 32;

/// A token bucket in thousandths of a token, refilled lazily on use. Also
/// each connection's frame-rate bucket, so it stays 12 bytes of state: a
/// burst above about four million tokens is capped there.
// Aligned to 4, not 8: 12 bytes in the connection record instead of 16.
// Fields are only read and written by value, never borrowed.
#[derive(Clone, Copy, Debug)]
#[repr(C, packed(4))]
pub(crate) struct TokenBucket {
    milli: u32,
    stamp_ms: u64,
}

impl TokenBucket {
    pub(crate) fn full(burst: u32, now_ms: u64) -> Self {
        TokenBucket { milli: burst.saturating_mul(1000), stamp_ms: now_ms }
    }

    fn refill(&mut self, now_ms: u64, per_sec: u32, burst: u32) {
        let elapsed = now_ms.saturating_sub(self.stamp_ms);
        if elapsed > 0 {
            let cap = u64::from(burst.saturating_mul(1000));
            let refilled = u64::from(self.milli).saturating_add(elapsed.saturating_mul(u64::from(per_sec)));
            // At most `cap`, which came from a u32.
            self.milli = refilled.min(cap) as u32;
            self.stamp_ms = now_ms;
        }
    }

    /// Take one token; `false` when the bucket is empty.
    pub(crate) fn take(&mut self, now_ms: u64, per_sec: u32, burst: u32) -> bool {
        self.refill(now_ms, per_sec, burst);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }

    /// Whether the bucket would be full at `now_ms` (nothing to remember).
    fn is_full(mut self, now_ms: u64, per_sec: u32, burst: u32) -> bool {
        self.refill(now_ms, per_sec, burst);
        self.milli >= burst.saturating_mul(1000)
    }
}

/// Hashes one `u64` key (a user id): the key, xored with a per-process
/// random seed, goes through the SplitMix64 finaliser (two multiplies by
/// fixed constants with xor-shifts between). The finaliser is a bijection
/// whose every output bit depends on every input bit whatever the seed, so
/// ids that differ only in low or only in high bits still spread over the
/// shards (picked from the top bits) and the buckets inside (low bits). A
/// single multiply by the random seed was cheaper but its quality depended
/// on the seed: some seeds put three times as many ids in half the shards.
/// A cheap hash for keys an attacker cannot choose (see the module docs).
#[derive(Clone, Copy)]
struct IdHash {
    seed: u64,
}

impl IdHash {
    fn new() -> Self {
        // Random per process, through the standard library's seeded hasher.
        IdHash::with_seed(RandomState::new().hash_one(0x9e37_79b9_7f4a_7c15_u64))
    }

    fn with_seed(seed: u64) -> Self {
        IdHash { seed }
    }
}

/// The state of one [`IdHash`]ing.
struct IdHasher {
    seed: u64,
    hash: u64,
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.hash
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; anything else still hashes, slowly.
        for &b in bytes {
            self.write_u64(u64::from(b) ^ self.hash.rotate_left(8));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let mut z = n ^ self.hash ^ self.seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.hash = z ^ (z >> 31);
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher { seed: self.seed, hash: 0 }
    }
}

/// A hash map split into independently locked shards.
struct Sharded<K, V, H = RandomState> {
    hasher: H,
    shards: Box<[Mutex<HashMap<K, V, H>>]>,
}

impl<K: Hash + Eq, V> Sharded<K, V> {
    fn new() -> Self {
        Sharded::with_hasher(RandomState::new())
    }
}

impl<K: Hash + Eq, V, H: BuildHasher + Clone> Sharded<K, V, H> {
    fn with_hasher(hasher: H) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(HashMap::with_hasher(hasher.clone()))).collect();
        Sharded { hasher, shards }
    }

    fn with<R>(&self, key: &K, f: impl FnOnce(&mut HashMap<K, V, H>) -> R) -> R {
        // The shard from the top bits, so that the map inside (which uses
        // the low bits) sees keys that still differ there.
        let shard = (self.hasher.hash_one(key) >> 58) as usize % SHARDS;
        // A panic while holding the lock can only come from a bug in the few
        // lines run under it; the map stays usable, so take it back.
        let mut map = self.shards[shard].lock().unwrap_or_else(|p| p.into_inner());
        f(&mut map)
    }

    fn retain(&self, mut keep: impl FnMut(&V) -> bool) {
        for shard in self.shards.iter() {
            shard.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, v| keep(v));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len()).sum()
    }
}

/// Why a new TCP connection was turned away before its HTTP request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The process holds `--max-connections` already.
    Full,
    /// The source holds `--max-connections-per-ip` already.
    IpConnections,
    /// The source opened more than `--ip-connect-rate` per second.
    IpRate,
    /// `--proxy-protocol` is on and the source is none of `--proxy-from`:
    /// closed without a byte.
    Untrusted,
}

impl Refusal {
    /// The HTTP response written before the socket is closed.
    pub(crate) fn response(self) -> &'static [u8] {
        match self {
            Refusal::Full => b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nRetry-After: 1\r\nConnection: close\r\n\r\nserver full\n",
            Refusal::IpConnections => b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: 35\r\nRetry-After: 5\r\nConnection: close\r\n\r\ntoo many connections from address\n",
            Refusal::Untrusted => b"",
            Refusal::IpRate => b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: 33\r\nRetry-After: 1\r\nConnection: close\r\n\r\nconnecting too fast from address\n",
        }
    }
}

/// The key a source address is counted under: IPv4 as is, IPv6 by its /64.
fn source_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_bits()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(v4.to_bits()),
            None => v6.to_bits() & !u128::from(u64::MAX),
        },
    }
}

struct SourceEntry {
    open: u32,
    bucket: TokenBucket,
}

/// Per-source connection limits.
pub(crate) struct SourceLimits {
    max_open: AtomicU32,
    rate: AtomicU32,
    burst: AtomicU32,
    map: Sharded<u128, SourceEntry>,
}

impl SourceLimits {
    fn new(max_open: usize, rate: u32, burst: u32) -> Self {
        let s = SourceLimits {
            max_open: AtomicU32::new(0),
            rate: AtomicU32::new(0),
            burst: AtomicU32::new(0),
            map: Sharded::new(),
        };
        s.set(max_open, rate, burst);
        s
    }

    /// New limits (SIGHUP): they apply to the next connection; open ones
    /// still count.
    fn set(&self, max_open: usize, rate: u32, burst: u32) {
        self.max_open.store(max_open.min(u32::MAX as usize) as u32, Ordering::Relaxed);
        self.rate.store(rate, Ordering::Relaxed);
        self.burst.store(burst, Ordering::Relaxed);
    }

    fn limits(&self) -> (u32, u32, u32) {
        (self.max_open.load(Ordering::Relaxed), self.rate.load(Ordering::Relaxed), self.burst.load(Ordering::Relaxed))
    }

    fn enabled(&self) -> bool {
        let (max_open, rate, _) = self.limits();
        max_open > 0 || rate > 0
    }

    /// Count a new connection from `ip`, or say why it is refused.
    pub(crate) fn admit(&self, ip: IpAddr, now_ms: u64) -> Result<(), Refusal> {
        if !self.enabled() {
            return Ok(());
        }
        let (max_open, rate, burst) = self.limits();
        self.map.with(&source_key(ip), |map| {
            let e = map
                .entry(source_key(ip))
                .or_insert_with(|| SourceEntry { open: 0, bucket: TokenBucket::full(burst, now_ms) });
            if max_open > 0 && e.open >= max_open {
                return Err(Refusal::IpConnections);
            }
            if rate > 0 && !e.bucket.take(now_ms, rate, burst) {
                return Err(Refusal::IpRate);
            }
            e.open += 1;
            Ok(())
        })
    }

    /// A connection admitted from `ip` has gone.
    pub(crate) fn release(&self, ip: IpAddr) {
        if !self.enabled() {
            return;
        }
        self.map.with(&source_key(ip), |map| {
            if let Some(e) = map.get_mut(&source_key(ip)) {
                e.open = e.open.saturating_sub(1);
            }
        });
    }

    /// Forget sources with no connection and nothing left to remember.
    fn sweep(&self, now_ms: u64) {
        let (_, rate, burst) = self.limits();
        self.map.retain(|e| e.open > 0 || (rate > 0 && !e.bucket.is_full(now_ms, rate, burst)));
    }
}

/// Messages per second per user, whatever device they come from.
pub(crate) struct UserSendLimits {
    rate: AtomicU32,
    burst: AtomicU32,
    map: Sharded<u64, TokenBucket, IdHash>,
}

impl UserSendLimits {
    fn new(rate: u32, burst: u32) -> Self {
        Self::with_hash(rate, burst, IdHash::new())
    }

    fn with_hash(rate: u32, burst: u32, hash: IdHash) -> Self {
        UserSendLimits { rate: AtomicU32::new(rate), burst: AtomicU32::new(burst), map: Sharded::with_hasher(hash) }
    }

    fn set(&self, rate: u32, burst: u32) {
        self.rate.store(rate, Ordering::Relaxed);
        self.burst.store(burst, Ordering::Relaxed);
    }

    fn limits(&self) -> (u32, u32) {
        (self.rate.load(Ordering::Relaxed), self.burst.load(Ordering::Relaxed))
    }

    /// Take one message from `user`'s allowance; `false` when spent.
    pub(crate) fn take(&self, user: UserId, now_ms: u64) -> bool {
        let (rate, burst) = self.limits();
        if rate == 0 {
            return true;
        }
        self.map.with(&user.0, |map| {
            map.entry(user.0).or_insert_with(|| TokenBucket::full(burst, now_ms)).take(now_ms, rate, burst)
        })
    }

    fn sweep(&self, now_ms: u64) {
        let (rate, burst) = self.limits();
        self.map.retain(|b| !b.is_full(now_ms, rate, burst));
    }
}

/// Every process-wide abuse limit.
pub(crate) struct Limits {
    pub(crate) sources: SourceLimits,
    pub(crate) user_sends: UserSendLimits,
}

impl Limits {
    pub(crate) fn new(c: &Config) -> Self {
        Limits {
            sources: SourceLimits::new(c.max_connections_per_ip, c.ip_connect_rate, c.ip_connect_burst),
            user_sends: UserSendLimits::new(c.user_send_rate, c.user_send_burst),
        }
    }

    /// Take the limits of `c` (SIGHUP): from the next connection or message
    /// on; what is open and counted stays counted.
    pub(crate) fn reload(&self, c: &Config) {
        self.sources.set(c.max_connections_per_ip, c.ip_connect_rate, c.ip_connect_burst);
        self.user_sends.set(c.user_send_rate, c.user_send_burst);
    }

    /// Drop state that no longer limits anything; one core calls this now
    /// and then so the maps track active sources and users, not history.
    pub(crate) fn sweep(&self, now_ms: u64) {
        self.sources.sweep(now_ms);
        self.user_sends.sweep(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn bucket_allows_burst_then_rate() {
        let mut b = TokenBucket::full(3, 0);
        assert!((0..3).all(|_| b.take(0, 10, 3)));
        assert!(!b.take(0, 10, 3));
        assert!(b.take(100, 10, 3), "10 per second: one more after 100 ms");
        assert!(!b.take(100, 10, 3));
        assert!((0..3).all(|_| b.take(100_000, 10, 3)), "refill is capped at the burst");
        assert!(!b.take(100_000, 10, 3));
    }

    #[test]
    fn concurrent_cap_is_per_source_and_released() {
        let s = SourceLimits::new(2, 0, 0);
        assert_eq!(s.admit(v4(1), 0), Ok(()));
        assert_eq!(s.admit(v4(1), 0), Ok(()));
        assert_eq!(s.admit(v4(1), 0), Err(Refusal::IpConnections));
        assert_eq!(s.admit(v4(2), 0), Ok(()), "another source is not affected");
        s.release(v4(1));
        assert_eq!(s.admit(v4(1), 0), Ok(()));
    }

    #[test]
    fn connect_rate_is_per_source() {
        let s = SourceLimits::new(0, 10, 2);
        assert_eq!(s.admit(v4(1), 0), Ok(()));
        assert_eq!(s.admit(v4(1), 0), Ok(()));
        assert_eq!(s.admit(v4(1), 0), Err(Refusal::IpRate));
        assert_eq!(s.admit(v4(2), 0), Ok(()));
        assert_eq!(s.admit(v4(1), 100), Ok(()));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let s = SourceLimits::new(1, 0, 0);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(s.admit(a, 0), Ok(()));
        assert_eq!(s.admit(b, 0), Err(Refusal::IpConnections), "same /64");
        assert_eq!(s.admit(c, 0), Ok(()), "another /64");
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 7).to_ipv6_mapped());
        assert_eq!(s.admit(v4(7), 0), Ok(()));
        assert_eq!(s.admit(mapped, 0), Err(Refusal::IpConnections));
    }

    #[test]
    fn user_send_rate_spans_devices_and_users_are_apart() {
        let u = UserSendLimits::new(5, 2);
        assert!(u.take(UserId(1), 0) && u.take(UserId(1), 0));
        assert!(!u.take(UserId(1), 0));
        assert!(u.take(UserId(2), 0));
        assert!(u.take(UserId(1), 200));
    }

    #[test]
    fn user_ids_spread_over_every_shard_whatever_the_seed() {
        // Random seeds as a process gets them, and seeds with few or all
        // bits set (the old single-multiply hash was uneven for some seeds).
        let seeds = (0..40).map(|_| IdHash::new()).chain([0, 1, 2, u64::MAX, 1 << 63].map(IdHash::with_seed));
        for hash in seeds {
            let seed = hash.seed;
            let u = UserSendLimits::with_hash(5, 2, hash);
            // Sequential ids, and ids that differ only in their high bits.
            for id in (0..3200u64).chain((0..3200u64).map(|i| i << 40)) {
                assert!(u.take(UserId(id), 0));
            }
            let sizes: Vec<usize> =
                u.map.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len()).collect();
            assert_eq!(sizes.iter().sum::<usize>(), 6399, "id 0 is in both series");
            // 200 expected per shard, standard deviation about 14.
            assert!(sizes.iter().all(|&n| n > 130 && n < 270), "uneven shards with seed {seed:#x}: {sizes:?}");
        }
    }

    #[test]
    fn disabled_limits_remember_nothing() {
        let s = SourceLimits::new(0, 0, 0);
        let u = UserSendLimits::new(0, 0);
        assert!((0..1000).all(|_| s.admit(v4(1), 0).is_ok()));
        assert!((0..1000).all(|_| u.take(UserId(1), 0)));
        assert_eq!(s.map.len() + u.map.len(), 0);
    }

    #[test]
    fn sweep_forgets_idle_sources_and_users_only() {
        let s = SourceLimits::new(4, 10, 2);
        let u = UserSendLimits::new(10, 2);
        s.admit(v4(1), 0).unwrap();
        s.admit(v4(2), 0).unwrap();
        s.release(v4(2));
        assert!(u.take(UserId(1), 0));
        s.sweep(0);
        u.sweep(0);
        assert_eq!(s.map.len(), 2, "v4(2) still has a spent token to refill");
        assert_eq!(u.map.len(), 1);
        s.sweep(10_000);
        u.sweep(10_000);
        assert_eq!(s.map.len(), 1, "only the source with an open connection is left");
        assert_eq!(u.map.len(), 0);
    }
}
