//! The formulas: from the input figures, a target and a node type to the
//! fleet, each result with the formula it came from written out with the
//! numbers put in, so a reader can redo it by hand.
//!
//! The load at peak is worked out here; `gateways` sizes the gateway
//! fleet and `services` the registry, the event stream and the store.
//! Arithmetic only, no I/O: the text, JSON and SVG outputs all render what
//! [`plan`] returns, and the unit tests check it against hand-worked
//! examples.

mod gateways;
mod services;

use serde::Serialize;

use super::{
    inputs::{Figures, PlanInput, SweepRun},
    numfmt::n,
    target::{Node, Target},
};

/// One result of the plan.
#[derive(Serialize, Clone, Debug)]
pub(crate) struct Quantity {
    /// Stable name, for `--json` readers and tests.
    pub(crate) key: &'static str,
    pub(crate) label: &'static str,
    pub(crate) value: f64,
    pub(crate) unit: &'static str,
    /// The formula, then the same with the figures put in, then the result.
    pub(crate) formula: String,
}

/// Results about one part of the fleet.
#[derive(Serialize, Clone, Debug)]
pub(crate) struct Section {
    pub(crate) title: &'static str,
    pub(crate) quantities: Vec<Quantity>,
}

/// The fleet for one target on one node type.
#[derive(Serialize, Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) target: Target,
    pub(crate) node: Node,
    /// The one-to-one run whose CPU per message the plan uses: the highest
    /// clean rate whose p99 met the target.
    pub(crate) p99_run: SweepRun,
    pub(crate) sections: Vec<Section>,
}

impl Plan {
    /// A result by its key.
    pub(crate) fn value(&self, key: &str) -> Option<f64> {
        self.sections.iter().flat_map(|s| &s.quantities).find(|q| q.key == key).map(|q| q.value)
    }
}

/// What every section's formulas read: the figures, the target, the node
/// type, the sweep run at the p99 target and the load at peak.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    f: &'a Figures,
    target: &'a Target,
    node: &'a Node,
    run: &'a SweepRun,
    /// Cores of the machine the sweep ran on.
    measured_cores: f64,
    cross: f64,
    /// Members of a group message.
    g: f64,
    direct_rate: f64,
    group_rate: f64,
    connect_rate: f64,
}

/// Collects a section's quantities; `put` returns the value so formulas
/// can chain.
struct Builder {
    quantities: Vec<Quantity>,
}

impl Builder {
    fn new() -> Self {
        Builder { quantities: Vec::new() }
    }

    fn put(&mut self, key: &'static str, label: &'static str, value: f64, unit: &'static str, formula: String) -> f64 {
        self.quantities.push(Quantity { key, label, value, unit, formula: format!("{formula} = {}", n(value)) });
        value
    }

    fn done(self, title: &'static str) -> Section {
        Section { title, quantities: self.quantities }
    }
}

/// The highest-rate clean run of the sweep whose p99 is within the target.
pub(crate) fn p99_run(input: &PlanInput, p99_ms: f64) -> anyhow::Result<SweepRun> {
    input
        .one_to_one
        .runs
        .iter()
        .filter(|r| r.clean && r.p99_ms <= p99_ms)
        .max_by(|a, b| a.rate.total_cmp(&b.rate))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no clean one-to-one run of the input has p99 within {} ms", n(p99_ms)))
}

/// Plan the fleet.
pub(crate) fn plan(input: &PlanInput, target: &Target, node: &Node) -> anyhow::Result<Plan> {
    anyhow::ensure!(node.cores > 0.0 && node.memory_gib > 0.0, "--cores and --memory-gib must be positive");
    anyhow::ensure!(
        target.concurrent > 0.0 && target.messages_per_day > 0.0 && target.peak_factor > 0.0,
        "the target's connections, messages per day and peak factor must be positive"
    );
    anyhow::ensure!(target.group_size >= 2.0, "--group-size must be at least 2");
    let f = &input.figures;
    let run = p99_run(input, target.p99_ms)?;
    let cross = f.cross_node_cpu_factor.value;
    let g = target.group_size;

    // Load.
    let mut b = Builder::new();
    let peak = b.put(
        "peak_msgs_per_sec",
        "messages/s at peak",
        target.peak_rate(),
        "msg/s",
        format!(
            "messages_per_day / 86,400 x peak_factor = {} / 86,400 x {}",
            n(target.messages_per_day),
            n(target.peak_factor)
        ),
    );
    let group_rate = b.put(
        "group_msgs_per_sec",
        "group messages/s at peak",
        peak * f.group_share.value,
        "msg/s",
        format!("peak x group_share = {} x {}", n(peak), n(f.group_share.value)),
    );
    let direct_rate = b.put(
        "direct_msgs_per_sec",
        "one-to-one messages/s at peak",
        peak - group_rate,
        "msg/s",
        format!("peak - group messages/s = {} - {}", n(peak), n(group_rate)),
    );
    let connect_rate = b.put(
        "connects_per_sec",
        "connects/s (and as many disconnects)",
        target.concurrent / f.session_secs.value,
        "/s",
        format!("concurrent / session_secs = {} / {}", n(target.concurrent), n(f.session_secs.value)),
    );
    let load = b.done("Load");

    let ctx = Ctx {
        f,
        target,
        node,
        run: &run,
        measured_cores: input.one_to_one.cores,
        cross,
        g,
        direct_rate,
        group_rate,
        connect_rate,
    };
    let (gateways, gateway_nodes) = gateways::section(&ctx);
    let redis = services::redis(&ctx, gateway_nodes);
    let kafka = services::kafka(&ctx);
    let store = services::store(&ctx);

    Ok(Plan {
        target: target.clone(),
        node: node.clone(),
        p99_run: run,
        sections: vec![load, gateways, redis, kafka, store],
    })
}
