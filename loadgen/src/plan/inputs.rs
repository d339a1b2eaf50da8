//! The planner's input file (`plan-input.json`, schema 1): what the
//! benchmarks measured and what they do not measure, each figure with its
//! unit, whether it is measured or assumed, and where it came from.
//!
//! The file is written by `scripts/bench.sh` (through `loadgen plan-input`)
//! from one session's results; `benchmarks/plan-input.json` is a committed
//! copy filled from BENCHMARKS.md, so the planner runs without a bench run.
//! Any figure can be overridden on the command line (`--set NAME=VALUE`),
//! which the report then shows as its source.

use std::{fs, path::Path};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// The schema version this build reads and writes.
pub(crate) const SCHEMA: u32 = 1;

/// Whether a figure was measured by a benchmark or is an assumption the
/// benchmarks do not measure.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    Measured,
    Assumption,
}

/// One input figure.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Figure {
    pub(crate) value: f64,
    pub(crate) unit: String,
    pub(crate) kind: Kind,
    /// Which run, file and field, or why the value was chosen.
    pub(crate) source: String,
}

/// One run of the durable one-to-one rate sweep.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct SweepRun {
    /// Offered messages per second.
    pub(crate) rate: f64,
    /// p99 send -> deliver, ms.
    pub(crate) p99_ms: f64,
    /// Gateway user + kernel CPU per message, µs.
    pub(crate) gateway_us_per_msg: f64,
    /// Nothing lost, duplicated or refused, and deliveries kept up.
    pub(crate) clean: bool,
}

/// The one-to-one sweep: CPU per message at each rate, and the cores of
/// the machine it ran on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct OneToOne {
    pub(crate) cores: f64,
    pub(crate) source: String,
    pub(crate) runs: Vec<SweepRun>,
}

/// Where the file's figures came from, as a whole.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Provenance {
    pub(crate) date: String,
    pub(crate) commit: String,
    pub(crate) machine: String,
    pub(crate) note: String,
}

/// Every figure the planner uses, by name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Figures {
    /// Memory of the box per held connection: gateway, kernel socket.
    pub(crate) box_bytes_per_connection: Figure,
    /// Connections held per core in the box-level run.
    pub(crate) connections_per_core: Figure,
    /// Gateway CPU of one connect (TCP, upgrade, token, registry).
    pub(crate) connect_cpu_us: Figure,
    /// Gateway CPU per message across nodes over the same on one node.
    pub(crate) cross_node_cpu_factor: Figure,
    /// Gateway CPU per group message of `group_size_measured` members.
    pub(crate) group_cpu_us_per_message: Figure,
    /// Members of the measured groups.
    pub(crate) group_size_measured: Figure,
    pub(crate) redis_bytes_per_online_user: Figure,
    pub(crate) redis_commands_per_connect: Figure,
    pub(crate) redis_commands_per_disconnect: Figure,
    pub(crate) events_per_message: Figure,
    pub(crate) store_records_per_message: Figure,
    pub(crate) store_bytes_per_message: Figure,
    pub(crate) store_records_per_group_message: Figure,
    pub(crate) store_bytes_per_group_message: Figure,
    /// Members of the groups the store figures were measured with.
    pub(crate) store_group_size_measured: Figure,
    // The assumptions.
    pub(crate) safety_fraction: Figure,
    pub(crate) session_secs: Figure,
    pub(crate) group_share: Figure,
    pub(crate) redis_lookups_per_delivery: Figure,
    pub(crate) redis_replicas: Figure,
    pub(crate) redis_shard_memory_gib: Figure,
    pub(crate) redis_shard_ops_per_sec: Figure,
    pub(crate) group_receipt_events_per_member: Figure,
    pub(crate) event_bytes: Figure,
    pub(crate) kafka_partition_mb_per_sec: Figure,
    pub(crate) kafka_replication: Figure,
    pub(crate) store_replication: Figure,
    pub(crate) storm_window_secs: Figure,
    pub(crate) storm_cpu_ceiling: Figure,
    pub(crate) node_cost_per_month: Figure,
}

/// A whole input file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanInput {
    pub(crate) schema: u32,
    pub(crate) about: String,
    pub(crate) provenance: Provenance,
    pub(crate) one_to_one: OneToOne,
    pub(crate) figures: Figures,
}

impl PlanInput {
    /// Read and check a file.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parse and check the text of a file.
    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        let input: PlanInput = serde_json::from_str(text).context("not a plan input file")?;
        anyhow::ensure!(
            input.schema == SCHEMA,
            "schema {} (this build reads schema {SCHEMA}: see docs/CAPACITY.md)",
            input.schema
        );
        input.validate()?;
        Ok(input)
    }

    /// Every figure finite and positive (a zero would divide), fractions
    /// at most 1.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        for (name, f) in self.figures.named() {
            anyhow::ensure!(f.value.is_finite() && f.value > 0.0, "figure {name} must be positive, not {}", f.value);
        }
        for (name, f) in [
            ("safety_fraction", &self.figures.safety_fraction),
            ("group_share", &self.figures.group_share),
            ("storm_cpu_ceiling", &self.figures.storm_cpu_ceiling),
        ] {
            anyhow::ensure!(f.value <= 1.0, "figure {name} is a fraction: at most 1, not {}", f.value);
        }
        anyhow::ensure!(self.one_to_one.cores > 0.0, "one_to_one.cores must be positive");
        for r in &self.one_to_one.runs {
            anyhow::ensure!(
                r.rate > 0.0 && r.gateway_us_per_msg > 0.0 && r.p99_ms >= 0.0,
                "one_to_one run at {} msg/s: rate and CPU must be positive",
                r.rate
            );
        }
        Ok(())
    }

    /// Replace a figure's value (`--set NAME=VALUE` and the named flags);
    /// its source then says so.
    pub(crate) fn set(&mut self, name: &str, value: f64, flag: &str) -> anyhow::Result<()> {
        let mut all = serde_json::to_value(&self.figures).context("encoding the figures")?;
        let Some(f) = all.get_mut(name) else {
            let names: Vec<&str> = self.figures.named().into_iter().map(|(n, _)| n).collect();
            anyhow::bail!("no figure named {name} (known: {})", names.join(", "));
        };
        f["value"] = serde_json::json!(value);
        f["source"] = serde_json::json!(format!("set on the command line ({flag})"));
        self.figures = serde_json::from_value(all).context("decoding the figures")?;
        self.validate()
    }
}

impl Figures {
    /// Every figure with its name, in the file's order.
    pub(crate) fn named(&self) -> Vec<(&'static str, &Figure)> {
        vec![
            ("box_bytes_per_connection", &self.box_bytes_per_connection),
            ("connections_per_core", &self.connections_per_core),
            ("connect_cpu_us", &self.connect_cpu_us),
            ("cross_node_cpu_factor", &self.cross_node_cpu_factor),
            ("group_cpu_us_per_message", &self.group_cpu_us_per_message),
            ("group_size_measured", &self.group_size_measured),
            ("redis_bytes_per_online_user", &self.redis_bytes_per_online_user),
            ("redis_commands_per_connect", &self.redis_commands_per_connect),
            ("redis_commands_per_disconnect", &self.redis_commands_per_disconnect),
            ("events_per_message", &self.events_per_message),
            ("store_records_per_message", &self.store_records_per_message),
            ("store_bytes_per_message", &self.store_bytes_per_message),
            ("store_records_per_group_message", &self.store_records_per_group_message),
            ("store_bytes_per_group_message", &self.store_bytes_per_group_message),
            ("store_group_size_measured", &self.store_group_size_measured),
            ("safety_fraction", &self.safety_fraction),
            ("session_secs", &self.session_secs),
            ("group_share", &self.group_share),
            ("redis_lookups_per_delivery", &self.redis_lookups_per_delivery),
            ("redis_replicas", &self.redis_replicas),
            ("redis_shard_memory_gib", &self.redis_shard_memory_gib),
            ("redis_shard_ops_per_sec", &self.redis_shard_ops_per_sec),
            ("group_receipt_events_per_member", &self.group_receipt_events_per_member),
            ("event_bytes", &self.event_bytes),
            ("kafka_partition_mb_per_sec", &self.kafka_partition_mb_per_sec),
            ("kafka_replication", &self.kafka_replication),
            ("store_replication", &self.store_replication),
            ("storm_window_secs", &self.storm_window_secs),
            ("storm_cpu_ceiling", &self.storm_cpu_ceiling),
            ("node_cost_per_month", &self.node_cost_per_month),
        ]
    }
}
