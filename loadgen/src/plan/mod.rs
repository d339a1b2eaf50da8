//! `loadgen plan`: the fleet a target load needs, from measured figures.
//!
//! The benchmarks measure one gateway on a small box; a deployment is
//! hundreds of nodes plus a registry, an event stream and a store. This
//! turns the one into the other with arithmetic a reader can check: every
//! result is printed with its formula and the figures put into it, and
//! every figure with whether it was measured (and by which run) or
//! assumed. No I/O besides reading the input and writing the outputs; the
//! formulas are in `model`.
//!
//! Files: `inputs` (the input file's schema), `target` (the load and the
//! node type), `model` (the formulas), `text`, `json` and `svg` (the
//! outputs), `collect` (`loadgen plan-input`: an input from a bench run).

pub(crate) mod collect;
mod inputs;
mod json;
mod model;
mod numfmt;
mod svg;
mod target;
mod text;

use std::fs;

use anyhow::Context as _;

use crate::cli::PlanArgs;
use inputs::PlanInput;
use target::{Node, Target};

/// Run `loadgen plan`.
pub(crate) fn run(args: PlanArgs) -> anyhow::Result<bool> {
    let mut input = PlanInput::load(&args.input)?;
    for spec in &args.set {
        let (name, value) = spec.split_once('=').with_context(|| format!("--set {spec}: expected NAME=VALUE"))?;
        let value: f64 = value.trim().parse().with_context(|| format!("--set {spec}: not a number"))?;
        input.set(name.trim(), value, &format!("--set {spec}"))?;
    }
    for (name, flag, value) in [
        ("group_share", "--group-share", args.group_share),
        ("node_cost_per_month", "--node-cost", args.node_cost),
        ("store_replication", "--store-replication", args.store_replication),
    ] {
        if let Some(v) = value {
            input.set(name, v, &format!("{flag} {v}"))?;
        }
    }
    let defaults = Target::default();
    let target = Target {
        users: args.users.unwrap_or(defaults.users),
        concurrent: args.concurrent.unwrap_or(defaults.concurrent),
        messages_per_day: args.messages_per_day.unwrap_or(defaults.messages_per_day),
        peak_factor: args.peak_factor.unwrap_or(defaults.peak_factor),
        group_size: args.group_size.unwrap_or(defaults.group_size),
        p99_ms: args.p99_ms.unwrap_or(defaults.p99_ms),
    };
    let node = Node { cores: args.cores, memory_gib: args.memory_gib };
    let plan = model::plan(&input, &target, &node)?;
    let input_name = args.input.display().to_string();
    match args.json.as_deref() {
        Some(p) if p.as_os_str() == "-" => print!("{}", json::render(&plan, &input, &input_name)?),
        Some(p) => {
            fs::write(p, json::render(&plan, &input, &input_name)?)
                .with_context(|| format!("writing {}", p.display()))?;
            print!("{}", text::render(&plan, &input, &input_name));
        }
        None => print!("{}", text::render(&plan, &input, &input_name)),
    }
    if let Some(p) = &args.svg {
        fs::write(p, svg::render(&input, &target, &node)?).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests;
