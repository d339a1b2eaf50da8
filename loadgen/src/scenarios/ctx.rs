//! What every scenario sets up the same way before it starts: whether this
//! process runs the whole run, conducts worker processes, or is one of
//! them; its share of the items; the shared clock and start time; the run
//! tag; the target addresses (one per gateway node) and source addresses;
//! the descriptor limit.
//!
//! Worker processes get everything that must agree across processes on
//! their command line (`--worker-index`, `--worker-count`, `--clock-epoch`,
//! `--start-at`, `--run-tag`), so they need no handshake with the parent to
//! start: their ramps start at the same instant and add up to the rate
//! asked for.

use std::{net::IpAddr, sync::Arc, time::Duration};

use crate::{
    cli::CommonArgs,
    conn::{
        limits,
        net::{self, Target},
    },
    procs::share::Share,
    report::shared::{Clock, Coord, Live},
    scenarios::placement,
};

/// How long after its start the parent starts the workers' ramps: enough
/// for every worker to exec, parse its arguments and open its poller.
const WORKER_START_DELAY: Duration = Duration::from_millis(500);
/// How long after its start a single process starts its ramp.
const LOCAL_START_DELAY: Duration = Duration::from_millis(10);

/// What this process does in the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// The whole run, in this process's threads.
    Single,
    /// Start `--procs` worker processes, merge and report their results.
    Parent,
    /// One worker process: its share, results to stdout.
    Worker,
}

/// The settings of one process's part in a run.
pub(crate) struct RunCtx {
    pub(crate) role: Role,
    pub(crate) share: Share,
    pub(crate) clock: Clock,
    /// When the connection ramp starts, on `clock`.
    pub(crate) start_ns: u64,
    /// Marks this run's client ids (shared by every worker).
    pub(crate) tag: String,
    /// The gateways, by node index (the `--url` list in order).
    pub(crate) targets: Vec<Target>,
    /// Source addresses of this process's connections.
    pub(crate) sources: Vec<IpAddr>,
    pub(crate) live: Arc<Live>,
    pub(crate) coord: Arc<Coord>,
}

impl RunCtx {
    /// How many gateway nodes the run has.
    pub(crate) fn nodes(&self) -> usize {
        self.targets.len()
    }

    /// Set up a run of `items` items of `conns_per_item` connections each.
    pub(crate) fn new(c: &CommonArgs, items: u64, conns_per_item: u64) -> anyhow::Result<Self> {
        anyhow::ensure!(c.threads >= 1, "--threads must be at least 1");
        anyhow::ensure!((1..=net::MAX_WORKERS).contains(&c.procs), "--procs must be from 1 to {}", net::MAX_WORKERS);
        let targets = placement::parse_urls(&c.url)?;
        let (role, share) = match (c.worker_index, c.worker_count) {
            (Some(index), Some(count)) => {
                anyhow::ensure!(index < count && count <= net::MAX_WORKERS, "bad --worker-index/--worker-count");
                (Role::Worker, Share { index, count, threads: c.threads })
            }
            _ if c.procs > 1 => (Role::Parent, Share { index: 0, count: c.procs, threads: c.threads }),
            _ => (Role::Single, Share { index: 0, count: 1, threads: c.threads }),
        };
        let conns = |n: u64| n.saturating_mul(conns_per_item);
        match role {
            Role::Parent => {
                let most = conns(share.max_items(items));
                let per_proc = limits::conns_under(limits::hard_limit()?);
                anyhow::ensure!(most <= per_proc, "{}", too_many(items, conns_per_item, per_proc, c.threads));
            }
            Role::Single => {
                let per_proc = limits::conns_under(limits::hard_limit()?);
                anyhow::ensure!(conns(items) <= per_proc, "{}", too_many(items, conns_per_item, per_proc, c.threads));
                limits::ensure_fds(conns(items))?;
            }
            Role::Worker => {
                limits::ensure_fds(conns(share.items(items)))?;
            }
        }
        let (clock, start_ns) = match role {
            Role::Worker => {
                let (Some(epoch), Some(start)) = (c.clock_epoch, c.start_at) else {
                    anyhow::bail!("a worker needs --clock-epoch and --start-at");
                };
                (Clock::at(epoch), start)
            }
            Role::Parent => (Clock::start(), WORKER_START_DELAY.as_nanos() as u64),
            Role::Single => (Clock::start(), LOCAL_START_DELAY.as_nanos() as u64),
        };
        let tag = c.run_tag.clone().unwrap_or_else(|| format!("lg{:x}", chatgw_protocol::now_ms()));
        let worker = (role == Role::Worker).then_some(share.index);
        // Source addresses only when every gateway is on loopback, where
        // they are all local.
        let sources = if targets.iter().all(|t| t.addr.ip().is_loopback() && t.addr.is_ipv4()) {
            targets.first().map_or_else(Vec::new, |t| net::source_addrs(c.sources, &t.addr, worker))
        } else {
            Vec::new()
        };
        Ok(RunCtx {
            role,
            share,
            clock,
            start_ns,
            tag,
            targets,
            sources,
            live: Arc::new(Live::default()),
            coord: Arc::new(Coord::default()),
        })
    }

    /// The hidden flags that make a copy of this command worker `index`.
    pub(crate) fn worker_flags(&self, index: usize) -> Vec<String> {
        vec![
            "--worker-index".into(),
            index.to_string(),
            "--worker-count".into(),
            self.share.count.to_string(),
            "--clock-epoch".into(),
            self.clock.epoch().to_string(),
            "--start-at".into(),
            self.start_ns.to_string(),
            "--run-tag".into(),
            self.tag.clone(),
        ]
    }
}

/// The refusal for a run that does not fit in the processes asked for.
fn too_many(items: u64, conns_per_item: u64, per_proc: u64, threads: usize) -> String {
    let total = items.saturating_mul(conns_per_item);
    let need = (1..=net::MAX_WORKERS)
        .find(|&count| Share { index: 0, count, threads }.max_items(items).saturating_mul(conns_per_item) <= per_proc)
        .map_or_else(|| "more than the maximum".to_owned(), |n| n.to_string());
    format!(
        "{total} connections do not fit: one process can hold about {per_proc} under the descriptor hard limit; \
         use --procs {need} (or more) to spread them over worker processes"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_names_enough_processes() {
        let msg = too_many(40_000, 1, 19_936, 1);
        assert!(msg.contains("--procs 3"), "{msg}");
        assert!(too_many(20_000, 2, 19_936, 1).contains("--procs 3"));
    }
}
