//! The plan as text: the fleet first, then every result with its formula,
//! then every input figure with its source.

use std::fmt::Write as _;

use super::{
    inputs::{Kind, PlanInput},
    model::Plan,
    numfmt::n,
};

/// The results the fleet summary shows, in order, with their labels.
pub(crate) const SUMMARY: [(&str, &str); 12] = [
    ("gateway_nodes", "gateway nodes"),
    ("conns_per_node", "connections per node"),
    ("gateway_cost_per_month", "gateway cost per month"),
    ("redis_memory_total_gib", "Redis memory (with replicas)"),
    ("redis_ops_per_sec", "Redis ops/s"),
    ("redis_shards", "Redis primaries"),
    ("kafka_partitions", "Kafka partitions"),
    ("kafka_mb_per_sec", "Kafka MB/s"),
    ("kafka_tb_per_day", "Kafka TB/day (with replicas)"),
    ("store_writes_per_sec", "store writes/s"),
    ("store_tb_per_day", "store TB/day (one copy)"),
    ("store_tb_per_day_replicated", "store TB/day (with replicas)"),
];

/// Render the whole report.
pub(crate) fn render(plan: &Plan, input: &PlanInput, input_name: &str) -> String {
    let t = &plan.target;
    let mut out = String::new();
    let _ = writeln!(out, "chatgw capacity plan");
    let _ = writeln!(
        out,
        "target: {} users, {} concurrent connections, {} messages/day (peak factor {}), groups of {}, p99 under {} ms",
        n(t.users),
        n(t.concurrent),
        n(t.messages_per_day),
        n(t.peak_factor),
        n(t.group_size),
        n(t.p99_ms)
    );
    let _ = writeln!(out, "node:   {} cores, {} GiB", n(plan.node.cores), n(plan.node.memory_gib));
    let p = &input.provenance;
    let _ = writeln!(out, "input:  {input_name} ({}, commit {}; {})", p.date, p.commit, p.machine);
    let _ = writeln!(out, "\nFleet");
    for (key, label) in SUMMARY {
        if let Some(q) = plan.sections.iter().flat_map(|s| &s.quantities).find(|q| q.key == key) {
            let _ = writeln!(out, "  {label:<30} {:>16} {}", n(q.value), q.unit);
        }
    }
    for s in &plan.sections {
        let _ = writeln!(out, "\n== {} ==", s.title);
        for q in &s.quantities {
            let _ = writeln!(out, "{}", format!("  {}: {} {}", q.label, n(q.value), q.unit).trim_end());
            let _ = writeln!(out, "      {}", q.formula);
        }
    }
    let r = &plan.p99_run;
    let _ = writeln!(out, "\n== Figures used ==");
    let _ = writeln!(
        out,
        "  one-to-one CPU per message at the p99 target: the highest clean rate with p99 <= {} ms is {} msg/s (p99 {} ms), {} µs/msg on {} cores [measured] {}",
        n(t.p99_ms),
        n(r.rate),
        n(r.p99_ms),
        n(r.gateway_us_per_msg),
        n(input.one_to_one.cores),
        input.one_to_one.source
    );
    for (name, f) in input.figures.named() {
        let kind = match f.kind {
            Kind::Measured => "measured",
            Kind::Assumption => "assumption",
        };
        let value = format!("{} {}", n(f.value), f.unit);
        let _ = writeln!(out, "  {name} = {} [{kind}] {}", value.trim_end(), f.source);
    }
    out
}
