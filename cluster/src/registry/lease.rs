//! Joining the fleet, holding the lease, and reading who else holds one.
//!
//! A run's lease is `<epoch> <link>` with a TTL. It is taken only when
//! nobody holds it (`SET NX`), so two live processes can never both be node
//! N: a second one waits about one lease for a killed predecessor's lease to
//! lapse, and gives up when the holder keeps renewing it. Renewal checks
//! the epoch in the same script that extends the TTL.

use std::{
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use super::{
    conn::Conn,
    keys::{self, ALL_NODES},
    reply,
    scripts::{self, eval},
    LiveNode, RedisTarget, Registry, RegistryConfig, RegistryError, Renewal,
};

/// Beyond one lease, how long a join waits at least for a held lease.
const MIN_MARGIN: Duration = Duration::from_millis(500);
/// How often a join asks again for a held lease.
const POLL: Duration = Duration::from_millis(100);

impl Registry {
    /// Join the registry as `config.node` under a new epoch and take its
    /// lease. An unreachable Redis is an error at once; a lease held by
    /// another run is waited for (about one lease) and then
    /// [`RegistryError::NodeIdTaken`].
    pub fn join(config: RegistryConfig) -> Result<Registry, RegistryError> {
        let target: RedisTarget = config.url.parse()?;
        let mut conn = Conn::connect(&target)?;
        let node = config.node;
        let epoch = next_epoch(&mut conn, node)?;
        let lease_value = keys::lease_value(epoch, config.link);
        let lease_key = keys::lease(node);
        let lease_ms = millis(config.lease).to_string();
        let margin = (config.lease / 4).max(MIN_MARGIN);
        let deadline = Instant::now() + config.lease + margin;
        let mut logged = false;
        loop {
            let take = eval(scripts::TAKE_LEASE, &[&lease_key], &[&lease_value, &lease_ms]);
            let reply = conn.command("taking the lease", &take)?;
            let (taken, holder) =
                status(&reply).ok_or_else(|| conn.bad_reply("taking the lease", format!("{reply:?}")))?;
            if taken == 1 {
                break;
            }
            let held = keys::parse_lease(holder);
            if Instant::now() >= deadline {
                return Err(match held {
                    Some((epoch, link)) => RegistryError::NodeIdTaken { node, epoch, link },
                    None => conn.bad_reply(
                        "taking the lease",
                        format!("node {node}'s lease holds {:?}", String::from_utf8_lossy(holder)),
                    ),
                });
            }
            if !logged {
                logged = true;
                tracing::info!(
                    node,
                    holder = %String::from_utf8_lossy(holder),
                    wait = ?deadline.saturating_duration_since(Instant::now()),
                    "this node id's lease is held (a previous run?): waiting for it to lapse"
                );
            }
            thread::sleep(POLL.min(config.lease / 5).max(Duration::from_millis(10)));
        }
        Ok(Registry { conn, target, config, epoch, lease_value, owner: true })
    }

    /// Extend the lease if it holds this run's epoch; take it again if it
    /// lapsed ([`Renewal::Regained`]); [`RegistryError::LeaseTaken`] if
    /// another run holds it.
    pub fn renew(&mut self) -> Result<Renewal, RegistryError> {
        const OP: &str = "renewing the lease";
        if !self.owner {
            return Err(RegistryError::Reader { op: OP });
        }
        let node = self.config.node;
        let (lease, epoch_key) = (keys::lease(node), keys::epoch(node));
        let cmd = eval(
            scripts::RENEW_LEASE,
            &[&lease, ALL_NODES, &epoch_key],
            &[&self.lease_value, &millis(self.config.lease).to_string(), &node.to_string(), &self.epoch.to_string()],
        );
        let reply = self.conn.command(OP, &cmd)?;
        match status(&reply) {
            Some((0, _)) => Ok(Renewal::Held),
            Some((1, _)) => Ok(Renewal::Regained),
            Some((2, holder)) => {
                let epoch = keys::parse_lease(holder).map_or(0, |(epoch, _)| epoch);
                Err(RegistryError::LeaseTaken { node, epoch })
            }
            _ => Err(self.conn.bad_reply(OP, format!("{reply:?}"))),
        }
    }

    /// The nodes whose lease is held now, by node id. A malformed lease is
    /// skipped with a warning.
    pub fn live_nodes(&mut self) -> Result<Vec<LiveNode>, RegistryError> {
        const OP: &str = "reading the live nodes";
        let members = self.conn.command(OP, redis::cmd("SMEMBERS").arg(ALL_NODES))?;
        let members = reply::items(&members).ok_or_else(|| self.conn.bad_reply(OP, format!("{members:?}")))?;
        let mut nodes: Vec<u16> = Vec::with_capacity(members.len());
        for member in members {
            match reply::parse::<u16>(member) {
                Some(node) => nodes.push(node),
                None => tracing::warn!(?member, "skipping a malformed node id in {ALL_NODES}"),
            }
        }
        nodes.sort_unstable();
        nodes.dedup();
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let mut mget = redis::cmd("MGET");
        nodes.iter().for_each(|n| {
            mget.arg(keys::lease(*n));
        });
        let leases = self.conn.command(OP, &mget)?;
        let leases = match reply::items(&leases) {
            Some(values) if values.len() == nodes.len() => values,
            _ => return Err(self.conn.bad_reply(OP, format!("{leases:?} for {} leases", nodes.len()))),
        };
        let mut live = Vec::with_capacity(nodes.len());
        for (node, value) in nodes.iter().zip(leases) {
            let Some(bytes) = reply::bytes(value) else { continue };
            match keys::parse_lease(bytes) {
                Some((epoch, link)) => live.push(LiveNode { node: *node, epoch, link }),
                None => tracing::warn!(
                    node,
                    lease = %String::from_utf8_lossy(bytes),
                    "skipping a malformed lease (expected '<epoch> <link address>')"
                ),
            }
        }
        Ok(live)
    }

    /// Give up the lease if it still holds this run's epoch.
    pub(super) fn drop_lease(&mut self) -> Result<(), RegistryError> {
        let cmd = eval(scripts::DROP_LEASE, &[&keys::lease(self.config.node)], &[&self.epoch.to_string()]);
        self.conn.command("giving up the lease", &cmd).map(drop)
    }
}

/// A new epoch for `node` (which joins the set of nodes).
fn next_epoch(conn: &mut Conn, node: u16) -> Result<u64, RegistryError> {
    const OP: &str = "choosing an epoch";
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, millis);
    let cmd = eval(scripts::NEXT_EPOCH, &[&keys::epoch(node), ALL_NODES], &[&now.to_string(), &node.to_string()]);
    let reply = conn.command(OP, &cmd)?;
    reply::int(&reply)
        .and_then(|e| u64::try_from(e).ok())
        .filter(|e| *e > 0)
        .ok_or_else(|| conn.bad_reply(OP, format!("{reply:?}")))
}

/// A script's `{code, text}` answer.
fn status(reply: &redis::Value) -> Option<(i64, &[u8])> {
    match reply::items(reply)? {
        [code, text] => Some((reply::int(code)?, reply::bytes(text).unwrap_or(b""))),
        _ => None,
    }
}

/// Whole milliseconds, at least 1 (a zero TTL is an error in Redis).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
