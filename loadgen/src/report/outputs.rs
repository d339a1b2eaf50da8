//! What a run writes besides its summary: the `--json` report, the
//! `--hist` files and the `--check` verdicts, and the exit status they
//! decide.
//!
//! All three are parsed before the run starts ([`Outputs::parse`]), so an
//! unknown figure or latency name is a usage error (exit 2) and not a
//! surprise after a ten-minute run.

use std::path::PathBuf;

use anyhow::Context as _;
use serde::Serialize;

use crate::{
    cli::ReportArgs,
    report::{
        check::{self, Condition, Figures},
        hgrm,
        stats::Latency,
        summary,
    },
};

/// The parsed `--json`, `--hist` and `--check` of one run.
pub(crate) struct Outputs {
    figures: &'static Figures,
    json: Option<PathBuf>,
    hists: Vec<(String, PathBuf)>,
    checks: Vec<Condition>,
}

impl Outputs {
    /// Parse them for a scenario with these figures.
    pub(crate) fn parse(r: &ReportArgs, figures: &'static Figures) -> anyhow::Result<Self> {
        let checks = match r.check.as_deref() {
            Some(expr) => check::parse(expr, figures).map_err(anyhow::Error::msg)?,
            None => Vec::new(),
        };
        let hists = r
            .hist
            .iter()
            .map(|arg| {
                let (name, file) = hgrm::parse_spec(arg, |n| figures.is_latency(n)).map_err(anyhow::Error::msg)?;
                Ok((name.unwrap_or_else(|| figures.main.to_owned()), PathBuf::from(file)))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Outputs { figures, json: r.json.clone(), hists, checks })
    }

    /// Write the JSON and the histograms, print the verdicts; returns
    /// whether the run passes: `clean` (the scenario's own criteria) and
    /// every condition. `lats` names the run's latencies as the figures do.
    pub(crate) fn finish(
        &self,
        report: &impl Serialize,
        lats: &[(&str, &Latency)],
        clean: bool,
    ) -> anyhow::Result<bool> {
        if let Some(path) = &self.json {
            summary::write_json(path, report)?;
        }
        for (name, path) in &self.hists {
            let Some((_, lat)) = lats.iter().find(|(n, _)| n == name) else {
                anyhow::bail!("no `{name}` histogram in this run (known: {})", self.figures.names());
            };
            std::fs::write(path, hgrm::render(lat.histogram()))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if self.checks.is_empty() {
            return Ok(clean);
        }
        let value = serde_json::to_value(report).context("encoding the report for --check")?;
        let verdicts = check::evaluate(&self.checks, &value);
        println!("\n== checks ==");
        for v in &verdicts {
            println!("  {v}");
        }
        let failed = verdicts.iter().filter(|v| !v.pass).count();
        if failed > 0 {
            let names: Vec<&str> = verdicts.iter().filter(|v| !v.pass).map(|v| v.text.as_str()).collect();
            eprintln!("loadgen: {failed} check(s) failed: {}", names.join(", "));
        }
        Ok(clean && failed == 0)
    }
}
