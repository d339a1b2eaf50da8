//! `loadgen plan-input`: a planner input from one `scripts/bench.sh`
//! results directory.
//!
//! bench.sh measures the one-to-one sweep, idle connections at box level
//! and group fan-out; those figures replace the base file's. Everything it
//! does not measure (the fleet, store and events benches' figures, the
//! assumptions) is kept from the base file with its own source, so the
//! output says, figure by figure, where each came from.

use std::{fs, path::Path};

use anyhow::Context as _;
use serde_json::Value;

use super::inputs::{Figure, Kind, PlanInput, SweepRun};
use crate::cli::PlanInputArgs;

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&fs::read_to_string(path).ok()?).ok()
}

fn num(v: &Value, path: &str) -> Option<f64> {
    path.split('.').try_fold(v, |v, k| v.get(k))?.as_f64()
}

/// The same criterion as the report's: nothing lost, duplicated or
/// refused, deliveries kept up (97%), p99 under one second.
fn clean(rate: f64, v: &Value) -> bool {
    num(v, "lost") == Some(0.0)
        && num(v, "duplicated") == Some(0.0)
        && num(v, "refused_sends").unwrap_or(0.0) == 0.0
        && num(v, "achieved_delivery_rate").unwrap_or(0.0) >= 0.97 * rate
        && num(v, "delivery_ms.p99_ms").unwrap_or(f64::MAX) < 1000.0
}

/// The chatgw one-to-one runs of the sweep (`o2o-chatgw-RATE.json`), by
/// rate, and the cores they ran on.
fn sweep(dir: &Path) -> (Vec<SweepRun>, Option<f64>) {
    let mut runs = Vec::new();
    let mut cores = None;
    let Ok(entries) = fs::read_dir(dir) else { return (runs, cores) };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rate) =
            name.strip_prefix("o2o-chatgw-").and_then(|r| r.strip_suffix(".json")).and_then(|r| r.parse::<f64>().ok())
        else {
            continue;
        };
        let Some(v) = read_json(&e.path()) else { continue };
        let (Some(p99), Some(us)) = (num(&v, "delivery_ms.p99_ms"), num(&v, "cpu.gateway_us_per_msg")) else {
            continue;
        };
        cores = cores.or(num(&v, "cpu.box_cores"));
        runs.push(SweepRun { rate, p99_ms: p99, gateway_us_per_msg: us, clean: clean(rate, &v) });
    }
    runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    (runs, cores)
}

/// A line of `machine.txt` (`date:    ...`).
fn machine_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(|v| v.trim().to_owned()))
}

fn measured(value: f64, unit: &str, source: String) -> Figure {
    Figure { value, unit: unit.to_owned(), kind: Kind::Measured, source }
}

/// Build the input from a results directory and a base file.
pub(crate) fn collect(dir: &Path, base: PlanInput) -> anyhow::Result<PlanInput> {
    let mut input = base;
    let run = dir.display().to_string();
    let (runs, cores) = sweep(dir);
    anyhow::ensure!(!runs.is_empty(), "no o2o-chatgw-RATE.json with CPU figures in {run}");
    let cores = cores.unwrap_or(input.one_to_one.cores);
    input.one_to_one = super::inputs::OneToOne {
        cores,
        source: format!(
            "scripts/bench.sh run {run}: o2o-chatgw-RATE.json delivery_ms.p99_ms and cpu.gateway_us_per_msg (cores: cpu.box_cores)"
        ),
        runs,
    };
    let machine = fs::read_to_string(dir.join("machine.txt")).unwrap_or_default();
    input.provenance.date = machine_field(&machine, "date").unwrap_or_else(|| "unknown".into());
    input.provenance.commit = machine_field(&machine, "commit").unwrap_or_else(|| "unknown".into());
    input.provenance.machine = format!(
        "{}; {} memory",
        machine_field(&machine, "cpu").unwrap_or_else(|| "unknown cpu".into()),
        machine_field(&machine, "memory").unwrap_or_else(|| "unknown".into())
    );
    input.provenance.note = format!(
        "Written by `loadgen plan-input` from scripts/bench.sh run {run}; figures bench.sh does not measure are kept from the base file with their own sources."
    );
    let f = &mut input.figures;
    if let Some(v) = read_json(&dir.join("box-memory.json")) {
        if let (Some(est), Some(bytes)) = (num(&v, "established"), num(&v, "box_bytes_per_connection")) {
            f.box_bytes_per_connection = measured(
                bytes,
                "B",
                format!("scripts/bench.sh run {run}: box-memory.json box_bytes_per_connection (MemAvailable drop / {est} connections, both ends on one box)"),
            );
            f.connections_per_core = measured(
                est / cores,
                "conns/core",
                format!("scripts/bench.sh run {run}: box-memory.json established ({est}) / {cores} cores; held, not a ceiling"),
            );
        }
    }
    if let Some(v) = read_json(&dir.join("group-chatgw.json")) {
        if let (Some(us), Some(size)) = (num(&v, "cpu.gateway_us_per_msg"), num(&v, "config.size")) {
            f.group_cpu_us_per_message =
                measured(us, "µs", format!("scripts/bench.sh run {run}: group-chatgw.json cpu.gateway_us_per_msg"));
            f.group_size_measured =
                measured(size, "members", format!("scripts/bench.sh run {run}: group-chatgw.json config.size"));
        }
    }
    input.validate()?;
    Ok(input)
}

/// Run `loadgen plan-input`.
pub(crate) fn run(args: PlanInputArgs) -> anyhow::Result<bool> {
    let base = PlanInput::load(&args.base)?;
    let input = collect(&args.bench_dir, base)?;
    let text = serde_json::to_string_pretty(&input)? + "\n";
    fs::write(&args.out, text).with_context(|| format!("writing {}", args.out.display()))?;
    Ok(true)
}
