//! Command-line arguments.
//!
//! The settings are also what the `--json` report records as `config`, so
//! a result file says how it was produced; the secret is the one field
//! left out of it.

use std::path::PathBuf;

use chatgw_units::HumanDuration;
use clap::{Args, Parser, Subcommand};
use serde::{Serialize, Serializer};

/// The load generator.
#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    version,
    about = "Load generator for chatgw: many WebSocket connections from one process, and open-loop message load. Every run stops by itself."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// What to run.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Ramp to N authenticated, synced connections, hold them, report handshake latency and the gateway's memory per connection.
    Connect(ConnectArgs),
    /// P senders each messaging their own recipient at a fixed total rate; report ack, delivery and receipt latency.
    OneToOne(OneToOneArgs),
    /// G groups of S members, group messages at a fixed total rate; report ack, per-member delivery and fan-out completion latency.
    Group(GroupArgs),
    /// One-to-one traffic while X% of the connections are dropped at once and reconnect with `sync`; report reconnect and catch-up time, loss and duplicates.
    ReconnectStorm(StormArgs),
    /// Direct pairs and groups, users with one or two devices, that survive gateway restarts: reconnect with backoff, sync, resend with the same client id; verify every acked message reached every device once, in order.
    Soak(SoakArgs),
    /// One-to-one traffic over a fleet while one gateway is SIGKILLed: its users reconnect to the next URL, sync from their cursor and resend; report the reconnect+sync time, loss, duplicates and the ghost window.
    Failover(FailoverArgs),
    /// Append and fdatasync a scratch file back to back; report the sync latency and the floor the disk puts under durable acknowledgements (no gateway needed).
    Disk(DiskArgs),
    /// Plan a fleet from measured figures: gateway nodes (N+1, sized for a lost node's reconnect storm), Redis, Kafka and the store for a target load on a node type; every number with its figures and formula (docs/CAPACITY.md). No gateway needed.
    Plan(PlanArgs),
    /// Write a `plan` input file from a scripts/bench.sh results directory: the figures bench.sh measured, the rest kept from a base input file.
    PlanInput(PlanInputArgs),
}

fn secs<S: Serializer>(d: &HumanDuration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.0.as_secs_f64())
}

/// A list as one comma-separated string, so a run with one URL (or admin
/// address) records it exactly as before lists existed; an empty list is
/// null.
fn joined<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
    if v.is_empty() {
        s.serialize_none()
    } else {
        s.serialize_str(&v.join(","))
    }
}

fn opt_secs<S: Serializer>(d: &Option<HumanDuration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => secs(d, s),
        None => s.serialize_none(),
    }
}

/// What a run reports besides its summary, and whether it shows progress:
/// every scenario has these, `disk` included.
#[derive(Args, Debug, Clone, Serialize)]
pub(crate) struct ReportArgs {
    /// No progress display on stderr.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Also write every figure and the settings to this JSON file.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Conditions the run must meet, comma-separated, e.g. `p99_deliver<5ms,lost=0,conns>=19000`; operators < <= > >= =; durations take us, ms or s (bare numbers are ms). The names are listed at the end of this help. A failed condition exits 1.
    #[arg(long, value_name = "EXPR")]
    pub(crate) check: Option<String>,
    /// Write a latency histogram in the HdrHistogram percentile format (.hgrm, values in ms): `FILE` for the scenario's main latency, or `NAME=FILE` (repeatable) for any of its latencies.
    #[arg(long, value_name = "[NAME=]FILE")]
    pub(crate) hist: Vec<String>,
}

/// Settings every scenario has.
#[derive(Args, Debug, Clone, Serialize)]
pub(crate) struct CommonArgs {
    /// Gateway address, host:port (a ws:// or http:// prefix is accepted); for a fleet, every node's address, comma-separated or repeated: users are dealt to them round-robin unless a scenario's placement says otherwise.
    #[arg(long, default_value = "127.0.0.1:8080", value_delimiter = ',', num_args = 1)]
    #[serde(serialize_with = "joined")]
    pub(crate) url: Vec<String>,
    /// The gateway's JWT secret (its --secret), to mint tokens locally.
    #[arg(long, env = "CHATGW_SECRET", hide_env_values = true)]
    #[serde(skip)]
    pub(crate) secret: String,
    /// First user id; the run uses consecutive ids from here.
    #[arg(long, default_value_t = 1)]
    pub(crate) first_user: u64,
    /// Event-loop threads of the load generator.
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: usize,
    /// Source addresses (127.0.1.1, 127.0.1.2, ...) to spread connections over; 0 lets the kernel choose.
    #[arg(long, default_value_t = 64)]
    pub(crate) sources: usize,
    /// Time allowed from TCP connect to `synced`.
    #[arg(long, default_value = "30s")]
    #[serde(serialize_with = "secs")]
    pub(crate) handshake_timeout: HumanDuration,
    /// Hard stop for the whole run [default: the planned length + 60s].
    #[arg(long)]
    #[serde(serialize_with = "opt_secs")]
    pub(crate) timeout: Option<HumanDuration>,
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) report: ReportArgs,
    /// Worker processes to spread the connections over (each has its own descriptor limit); the parent merges their results.
    #[arg(long, default_value_t = 1)]
    pub(crate) procs: usize,
    /// Internal: this process is worker I of --worker-count (set by the parent).
    #[arg(long, hide = true, requires_all = ["worker_count", "clock_epoch", "start_at", "run_tag"])]
    #[serde(skip)]
    pub(crate) worker_index: Option<usize>,
    /// Internal: how many worker processes the run has.
    #[arg(long, hide = true)]
    #[serde(skip)]
    pub(crate) worker_count: Option<usize>,
    /// Internal: the parent's clock zero on CLOCK_MONOTONIC, in ns.
    #[arg(long, hide = true)]
    #[serde(skip)]
    pub(crate) clock_epoch: Option<u64>,
    /// Internal: when the connection ramp starts, in ns of the parent's clock.
    #[arg(long, hide = true)]
    #[serde(skip)]
    pub(crate) start_at: Option<u64>,
    /// Internal: the run tag for client ids, shared by every worker.
    #[arg(long, hide = true)]
    #[serde(skip)]
    pub(crate) run_tag: Option<String>,
}

/// `loadgen connect`.
#[derive(Args, Debug, Clone, Serialize)]
pub(crate) struct ConnectArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) common: CommonArgs,
    /// Connections to open.
    #[arg(long)]
    pub(crate) conns: u64,
    /// Connections opened per second.
    #[arg(long, default_value_t = 2000)]
    pub(crate) rate: u64,
    /// How long to hold the connections once all are up (e.g. 30, 30s, 2m).
    #[arg(long, default_value = "10s")]
    #[serde(serialize_with = "secs")]
    pub(crate) hold: HumanDuration,
    /// The gateway's process id, to measure its memory per connection; several (comma-separated or repeated) for several gateways: a fleet's nodes, or gateways sharing the port.
    #[arg(long, value_delimiter = ',')]
    pub(crate) gateway_pid: Vec<u32>,
    /// The gateway's admin address (its --admin-listen), where its /metrics is read; for a fleet, one per --url in the same order (comma-separated), and the counts are summed [default: each --url host, port 8081].
    #[arg(long, value_name = "HOST:PORT", value_delimiter = ',')]
    #[serde(serialize_with = "joined")]
    pub(crate) gateway_admin: Vec<String>,
}

/// `loadgen one-to-one`.
#[derive(Args, Debug, Clone, Serialize)]
pub(crate) struct OneToOneArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) common: CommonArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) pairs: PairsArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) placement: PlacementArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) load: LoadArgs,
    /// Survive connection ends as a client does: after a close (1012 with `retry_after_ms`: wait that long; any other close or reset: exponential backoff with full jitter, capped at 2 s) reconnect to the next `--url`, re-authenticate, `sync` from the cursor and resend what was not acknowledged; report the reconnects. Without it an ended connection stays down.
    #[arg(long)]
    pub(crate) reconnect: bool,
}

/// The pairs and their message rate, for `one-to-one` and `reconnect-storm`.
#[derive(Args, Debug, Clone, Serialize)]
pub(crate) struct PairsArgs {
    /// Sender/recipient pairs (2 x pairs connections, distinct users).
    #[arg(long)]
    pub(crate) pairs: u64,
    /// Messages per second, in total over all senders.
    #[arg(long, default_value_t = 1000)]
    pub(crate) rate: u64,
    /// How long to send.
    #[arg(long, default_value = "10s")]
    #[serde(serialize_with = "secs")]
    pub(crate) duration: HumanDuration,
}

/// Highest messages per second per pair this tool allows.
const MAX_RATE_PER_PAIR: f64 = 150.0;

impl PairsArgs {
    /// Refuse no pairs, no messages or (of `load`) no connections per second.
    pub(crate) fn ensure_some(&self, load: &LoadArgs) -> anyhow::Result<()> {
        anyhow::ensure!(self.pairs > 0, "--pairs must be at least 1");
        anyhow::ensure!(self.rate > 0, "--rate must be at least 1");
        anyhow::ensure!(load.conn_rate > 0, "--conn-rate must be at least 1");
        Ok(())
    }

    /// Refuse more messages per pair than the gateway's rate limit lets
    /// through: the run would measure the limiter rather than the gateway.
    pub(crate) fn ensure_rate_per_pair(&self) -> anyhow::Result<()> {
        let per_pair = self.rate as f64 / self.pairs as f64;
        anyhow::ensure!(
            per_pair <= MAX_RATE_PER_PAIR,
            "--rate {} over --pairs {} is {per_pair:.0} messages/s per pair, above {MAX_RATE_PER_PAIR}: \
             the gateway rate-limits each connection to 200 frames/s by default (burst 400), and each \
             recipient acknowledges at its sender's rate; use at least {} pairs",
            self.rate,
            self.pairs,
            (self.rate as f64 / MAX_RATE_PER_PAIR).ceil()
        );
        Ok(())
    }
}

/// Settings every scenario that sends messages has, after its own.
#[derive(Args, Debug, Clone, Serialize)]
pub(crate) struct LoadArgs {
    /// Bytes of each message body.
    #[arg(long, default_value_t = 100)]
    pub(crate) body_bytes: usize,
    /// After sending stops, how long to wait for outstanding acks, deliveries and receipts.
    #[arg(long, default_value = "5s")]
    #[serde(serialize_with = "secs")]
    pub(crate) drain: HumanDuration,
    /// Connections opened per second during setup.
    #[arg(long, default_value_t = 2000)]
    pub(crate) conn_rate: u64,
    /// The gateway's process id, to measure its CPU time per message over the load window; several (comma-separated or repeated) for a fleet: summed, and reported per process. The load generator's own CPU and the whole box's are measured either way.
    #[arg(long, value_delimiter = ',')]
    pub(crate) gateway_pid: Vec<u32>,
}

/// How a group message picks its sender.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Pick {
    /// Members take turns: every member sends at the same rate.
    RoundRobin,
    /// A member chosen at random for each message.
    Random,
}

impl Pick {
    /// The name on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Pick::RoundRobin => "round-robin",
            Pick::Random => "random",
        }
    }
}

/// `loadgen group`.
#[derive(Args, Debug, Clone, Serialize)]
pub(crate) struct GroupArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) common: CommonArgs,
    /// Groups (each with its own members; G x S connections, distinct users).
    #[arg(long)]
    pub(crate) groups: u64,
    /// Members per group, the creator included.
    #[arg(long)]
    pub(crate) size: u64,
    /// Group messages per second, in total over all groups.
    #[arg(long, default_value_t = 100)]
    pub(crate) rate: u64,
    /// How long to send.
    #[arg(long, default_value = "10s")]
    #[serde(serialize_with = "secs")]
    pub(crate) duration: HumanDuration,
    /// Members acknowledge every message with `delivered`; senders count the batched receipt items.
    #[arg(long)]
    pub(crate) ack: bool,
    /// Which member sends each message.
    #[arg(long, value_enum, default_value_t = Pick::RoundRobin)]
    pub(crate) pick: Pick,
    /// The gateway's admin address (its --admin-listen), where its /metrics is read; for a fleet, one per --url in the same order (comma-separated), and the store counters are summed [default: each --url host, port 8081].
    #[arg(long, value_name = "HOST:PORT", value_delimiter = ',')]
    #[serde(serialize_with = "joined")]
    pub(crate) gateway_admin: Vec<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) placement: PlacementArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) load: LoadArgs,
}

/// Where the ends of a pair or the members of a group connect, when
/// `--url` lists several gateways (the report states the placement).
#[derive(Args, Debug, Clone, Serialize)]
pub(crate) struct PlacementArgs {
    /// Both ends of each pair (all members of each group) on the same gateway URL; pairs and groups spread over the URLs round-robin [default with one URL].
    #[arg(long, conflicts_with = "cross_node")]
    #[serde(skip)]
    pub(crate) same_node: bool,
    /// The two ends of each pair on different gateway URLs; each group's members spread over all URLs round-robin. Needs two URLs or more.
    #[arg(long)]
    #[serde(skip)]
    pub(crate) cross_node: bool,
}

/// `loadgen reconnect-storm` (its `--help` words the shared `--pairs` and
/// `--drain` for devices).
#[derive(Args, Debug, Clone, Serialize)]
#[command(
    mut_arg("pairs", |a| a.help("Sender/recipient pairs (2 x pairs devices, distinct users)")),
    mut_arg("drain", |a| a.help("After sending stops, how long to wait for outstanding acks and deliveries"))
)]
pub(crate) struct StormArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) common: CommonArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) pairs: PairsArgs,
    /// Percentage of all connections (senders and recipients) dropped at once.
    #[arg(long, default_value_t = 50.0)]
    pub(crate) drop_percent: f64,
    /// When to drop them, after sending starts (e.g. 5, 5s, 1500ms).
    #[arg(long, default_value = "5s")]
    #[serde(serialize_with = "secs")]
    pub(crate) drop_at: HumanDuration,
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) load: LoadArgs,
}

/// `loadgen soak`.
#[derive(Args, Debug, Clone, Serialize)]
pub(crate) struct SoakArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) common: CommonArgs,
    /// Direct pairs (two users each; every third user has two devices).
    #[arg(long, default_value_t = 40)]
    pub(crate) pairs: u32,
    /// Groups, each with its own members.
    #[arg(long, default_value_t = 8)]
    pub(crate) groups: u32,
    /// Members per group, the creator included.
    #[arg(long, default_value_t = 8)]
    pub(crate) group_size: u32,
    /// Messages per second in total (one in four to a group).
    #[arg(long, default_value_t = 300)]
    pub(crate) rate: u64,
    /// How long to send (the gateway may be killed and restarted meanwhile).
    #[arg(long, default_value = "5m")]
    #[serde(serialize_with = "secs")]
    pub(crate) duration: HumanDuration,
    /// After sending stops, how long to wait for every device to be back and every message acked, before the final sync (the gateway should stay up).
    #[arg(long, default_value = "60s")]
    #[serde(serialize_with = "secs")]
    pub(crate) settle: HumanDuration,
    /// Bytes of each message body.
    #[arg(long, default_value_t = 100)]
    pub(crate) body_bytes: usize,
}

/// `loadgen failover`.
#[derive(Args, Debug, Clone, Serialize)]
pub(crate) struct FailoverArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) common: CommonArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) pairs: PairsArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) placement: PlacementArgs,
    /// When to kill the victim, after sending starts (e.g. 5s, 1500ms); before the end of --duration.
    #[arg(long, default_value = "5s")]
    #[serde(serialize_with = "secs")]
    pub(crate) kill_after: HumanDuration,
    /// The process id of the gateway behind --victim-url, SIGKILLed at --kill-after.
    #[arg(long)]
    pub(crate) victim_pid: u32,
    /// Which of the --url gateways is killed; its users reconnect to the next URL in the list.
    #[arg(long)]
    pub(crate) victim_url: String,
    /// Every gateway's admin address, one per --url in the same order (comma-separated): the survivors' /metrics are polled every 100 ms for chatgw_fleet_live_nodes to drop by one (the ghost window). Without it the ghost window is not measured.
    #[arg(long, value_name = "HOST:PORT", value_delimiter = ',')]
    #[serde(serialize_with = "joined")]
    pub(crate) gateway_admin: Vec<String>,
    /// After sending stops, how long to wait for every device to be back and every message acked, delivered and receipted.
    #[arg(long, default_value = "30s")]
    #[serde(serialize_with = "secs")]
    pub(crate) settle: HumanDuration,
    /// Bytes of each message body.
    #[arg(long, default_value_t = 100)]
    pub(crate) body_bytes: usize,
    /// Connections opened per second during setup.
    #[arg(long, default_value_t = 2000)]
    pub(crate) conn_rate: u64,
    /// Surviving gateways' process ids, to measure their CPU per message (comma-separated or repeated); not the victim, which does not last the window.
    #[arg(long, value_delimiter = ',')]
    pub(crate) gateway_pid: Vec<u32>,
}

impl FailoverArgs {
    /// The settings the shared pair runner takes: `--settle` is its drain.
    pub(crate) fn load(&self) -> LoadArgs {
        LoadArgs {
            body_bytes: self.body_bytes,
            drain: self.settle,
            conn_rate: self.conn_rate,
            gateway_pid: self.gateway_pid.clone(),
        }
    }
}

/// `loadgen disk`.
#[derive(Args, Debug, Clone, Serialize)]
pub(crate) struct DiskArgs {
    /// Directory to probe: the gateway's --data directory, or any directory on the same filesystem. A scratch file is created there and unlinked at once (nothing is left behind). The probe adds thousands of syncs a second: not next to a gateway serving users.
    #[arg(long)]
    pub(crate) dir: PathBuf,
    /// How long to keep appending and syncing (e.g. 20s, 1m).
    #[arg(long, default_value = "20s")]
    #[serde(serialize_with = "secs")]
    pub(crate) duration: HumanDuration,
    /// Bytes appended before each fdatasync, like one group commit's journal append.
    #[arg(long, default_value_t = 4096)]
    pub(crate) bytes: usize,
    /// The acknowledgement latency to hold the disk against (e.g. 5ms, 20ms): syncs longer than this are stalls, and the report says for what share of the time the disk alone kept a write from being acknowledged within it.
    #[arg(long, default_value = "5ms")]
    #[serde(serialize_with = "secs")]
    pub(crate) target: HumanDuration,
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) report: ReportArgs,
}

/// `loadgen plan`.
#[derive(Args, Debug, Clone)]
pub(crate) struct PlanArgs {
    /// The input figures (schema 1, docs/CAPACITY.md): `benchmarks/plan-input.json` is filled from BENCHMARKS.md; scripts/bench.sh writes one per run (`$OUT/plan-input.json`). A relative path is from the current directory: run from the repository's root for the default.
    #[arg(long, default_value = "benchmarks/plan-input.json")]
    pub(crate) input: PathBuf,
    /// Cores of a gateway node.
    #[arg(long, default_value_t = 32.0)]
    pub(crate) cores: f64,
    /// Memory of a gateway node, GiB.
    #[arg(long, default_value_t = 64.0)]
    pub(crate) memory_gib: f64,
    /// Registered users: printed with the target; nothing is sized by it (the gateways and the registry hold the concurrent connections) [default: 2,000,000,000].
    #[arg(long)]
    pub(crate) users: Option<f64>,
    /// Concurrent connections at peak, one per online device [default: 500,000,000].
    #[arg(long)]
    pub(crate) concurrent: Option<f64>,
    /// Messages per day [default: 100,000,000,000].
    #[arg(long)]
    pub(crate) messages_per_day: Option<f64>,
    /// Peak message rate over the day's mean [default: 1.0368, the design's 1.2 M/s over 100 G/day].
    #[arg(long)]
    pub(crate) peak_factor: Option<f64>,
    /// Members of every group message planned (the design's largest group) [default: 256].
    #[arg(long)]
    pub(crate) group_size: Option<f64>,
    /// p99 send -> deliver target in ms: the plan uses the CPU per message of the highest clean one-to-one run within it [default: 100].
    #[arg(long)]
    pub(crate) p99_ms: Option<f64>,
    /// Share of messages sent to groups (overrides the input's group_share).
    #[arg(long)]
    pub(crate) group_share: Option<f64>,
    /// Cost of one gateway node per month, for the cost line and the SVG (overrides the input's node_cost_per_month: 1000 in benchmarks/plan-input.json).
    #[arg(long)]
    pub(crate) node_cost: Option<f64>,
    /// Copies of every store write (overrides the input's store_replication: 3 in benchmarks/plan-input.json).
    #[arg(long)]
    pub(crate) store_replication: Option<f64>,
    /// Override any input figure, e.g. `--set session_secs=600` (repeatable); `loadgen plan` lists the names under "Figures used".
    #[arg(long, value_name = "NAME=VALUE")]
    pub(crate) set: Vec<String>,
    /// Also write the plan as JSON to this file (`-`: print the JSON instead of the text).
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,
    /// Write an SVG of gateway nodes and cost per month against concurrent users (the target scaled from 5% to 100%).
    #[arg(long, value_name = "FILE")]
    pub(crate) svg: Option<PathBuf>,
}

/// `loadgen plan-input`.
#[derive(Args, Debug, Clone)]
pub(crate) struct PlanInputArgs {
    /// A scripts/bench.sh results directory (its o2o-chatgw-RATE.json, box-memory.json, group-chatgw.json and machine.txt are read).
    #[arg(long)]
    pub(crate) bench_dir: PathBuf,
    /// The input file whose other figures (not measured by bench.sh) are kept.
    #[arg(long, default_value = "benchmarks/plan-input.json")]
    pub(crate) base: PathBuf,
    /// Where to write the new input file.
    #[arg(long)]
    pub(crate) out: PathBuf,
}
