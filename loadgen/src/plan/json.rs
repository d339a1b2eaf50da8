//! The plan as JSON (`--json`): the fleet's headline figures by key, every
//! result with its formula, the target, the node type and the input
//! figures as they were used (overrides included).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{inputs::PlanInput, model::Plan, text::SUMMARY};

/// The JSON report's format version.
const FORMAT: &str = "chatgw-plan/1";

#[derive(Serialize)]
struct Report<'a> {
    format: &'static str,
    input_file: &'a str,
    /// The summary's results by key (every key is also in `plan`).
    fleet: BTreeMap<&'static str, f64>,
    plan: &'a Plan,
    input: &'a PlanInput,
}

/// Render the report.
pub(crate) fn render(plan: &Plan, input: &PlanInput, input_file: &str) -> anyhow::Result<String> {
    let fleet = SUMMARY.iter().filter_map(|(key, _)| Some((*key, plan.value(key)?))).collect();
    let report = Report { format: FORMAT, input_file, fleet, plan, input };
    Ok(serde_json::to_string_pretty(&report)? + "\n")
}
