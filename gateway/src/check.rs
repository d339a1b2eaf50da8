//! `chatgw check`: the store integrity check, from the command line.
//!
//! Run it on the data directory of a stopped gateway (after a crash, before
//! a restart, or at the end of `scripts/crash-soak.sh`): it opens the store
//! the way `serve` does, which replays the journal, reads every table and
//! prints what it counted and every broken invariant. The checks themselves
//! live with the store (`EmbeddedStore::check_integrity`), which knows its
//! layout.

use std::path::PathBuf;

use anyhow::Context as _;
use chatgw_gateway::config;
use chatgw_storage::{EmbeddedOptions, EmbeddedStore, IntegrityReport};

/// `chatgw check`.
#[derive(clap::Args, Debug)]
pub(crate) struct CheckArgs {
    /// Data directory of a stopped gateway (the store is in its `store/`).
    #[arg(long, env = "CHATGW_DATA", default_value = config::DEFAULT_DATA)]
    data: PathBuf,
    /// Most violations to print (all are counted).
    #[arg(long, default_value_t = 50)]
    show: usize,
}

/// Check the store; returns whether it is clean.
pub(crate) fn run(args: &CheckArgs) -> anyhow::Result<bool> {
    let dir = args.data.join("store");
    anyhow::ensure!(dir.is_dir(), "no store in {} (expected {})", args.data.display(), dir.display());
    let store = EmbeddedStore::open(&dir, &EmbeddedOptions::default())
        .with_context(|| format!("opening the store in {}", dir.display()))?;
    let report = store.check_integrity().with_context(|| format!("reading the store in {}", dir.display()))?;
    print(&report, args.show);
    Ok(report.is_clean())
}

fn print(r: &IntegrityReport, show: usize) {
    let c = &r.counts;
    println!("high water          {}", c.high_water);
    println!("messages            {}", c.messages);
    println!("inbox references    {}", c.inbox_messages);
    println!("inbox receipts      {}", c.inbox_receipts);
    println!("idempotency keys    {}", c.idempotency_keys);
    println!("delivery marks      {}", c.delivery_marks);
    println!("group read marks    {}", c.read_by_marks);
    println!("read marks          {}", c.read_marks);
    println!("groups              {}", c.groups);
    println!("violations          {}", r.violation_count);
    for v in r.violations.iter().take(show) {
        println!("  {}: {}", v.table, v.problem);
    }
    if r.violation_count > show as u64 {
        println!("  ... {} more", r.violation_count - show as u64);
    }
    println!("{}", if r.is_clean() { "integrity: ok" } else { "integrity: VIOLATED" });
}
