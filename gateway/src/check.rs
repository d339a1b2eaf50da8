//! `chatgw check`: the store integrity check, from the command line.
//!
//! The embedded store: run it on the data directory of a stopped gateway
//! (after a crash, before a restart, or at the end of
//! `scripts/crash-soak.sh`): it opens the store the way `serve` does, which
//! replays the journal, reads every table and prints what it counted and
//! every broken invariant. PostgreSQL (`--store postgres://...`): the same
//! invariants, checked by the server in one read-only snapshot, so the
//! gateways may keep running. Cassandra / ScyllaDB (`--store
//! cassandra://...`): the same invariants and those of its layout, every
//! table read into the process; there is no snapshot, so run it with the
//! gateways stopped. The checks themselves live with each store
//! (`check_integrity`), which knows its layout; all report the same way.
//! Idempotency keys expire (`--idempotency-retention`): a message older
//! than the retention without its key is no violation, so the check takes
//! the gateways' retention. Likewise inbox entries
//! (`--inbox-retention`): an inbox may start above position 1 and a
//! message older than that retention may be missing from inboxes; kept
//! entries must still be gap-free.

use std::path::PathBuf;

use anyhow::Context as _;
use chatgw_gateway::{
    config::{self, HumanDuration},
    store::StoreUrl,
};
use chatgw_protocol::{now_ms, MessageId};
use chatgw_storage::{
    retention_cutoff, CassandraStore, EmbeddedOptions, EmbeddedStore, IntegrityReport, PostgresOptions, PostgresStore,
};

/// `chatgw check`.
#[derive(clap::Args, Debug)]
pub(crate) struct CheckArgs {
    /// Data directory of a stopped gateway (the store is in its `store/`); for `--store embedded`.
    #[arg(long, env = "CHATGW_DATA", default_value = config::DEFAULT_DATA)]
    data: PathBuf,
    /// The store to check: `embedded` (under --data), `postgres://user[:password]@host[:port]/database`
    /// or `cassandra://host[:port][,...]/keyspace` (run that one with the gateways stopped).
    #[arg(long, env = "CHATGW_STORE", hide_env_values = true, default_value = "embedded")]
    store: StoreUrl,
    /// The gateways' --idempotency-retention: a message older than it may have lost its idempotency key, which is
    /// no violation; 0s = keys are kept forever.
    #[arg(long, env = "CHATGW_IDEMPOTENCY_RETENTION", default_value = "7d")]
    idempotency_retention: HumanDuration,
    /// The gateways' --inbox-retention: inboxes may start above position 1 and a message older than it may be
    /// missing from inboxes, which is no violation; 0s = inboxes are kept whole.
    #[arg(long, env = "CHATGW_INBOX_RETENTION", default_value = "30d")]
    inbox_retention: HumanDuration,
    /// Most violations to print (all are counted).
    #[arg(long, default_value_t = 50)]
    show: usize,
}

/// Check the store; returns whether it is clean.
pub(crate) fn run(args: &CheckArgs) -> anyhow::Result<bool> {
    // Keys of messages below this id may be gone by retention.
    let keys_from = retention_cutoff(Some(args.idempotency_retention.0), now_ms());
    // Inbox entries of events below this id may be gone by retention.
    let inbox_from = retention_cutoff(Some(args.inbox_retention.0), now_ms());
    let report = match args.store.scheme() {
        "postgres" => check_postgres(&args.store, keys_from, inbox_from)?,
        // Cassandra keeps inboxes whole (no inbox retention there yet).
        "cassandra" => check_cassandra(&args.store, keys_from)?,
        "embedded" => check_embedded(args, keys_from, inbox_from)?,
        other => anyhow::bail!("chatgw check has no check for `{other}` stores yet"),
    };
    print(&report, args.show);
    Ok(report.is_clean())
}

fn check_embedded(args: &CheckArgs, keys_from: MessageId, inbox_from: MessageId) -> anyhow::Result<IntegrityReport> {
    anyhow::ensure!(
        !args.store.as_str().contains("://"),
        "store `{}`: `embedded` takes no location: its store is under --data",
        args.store
    );
    let dir = chatgw_gateway::store::embedded_dir(&args.data);
    anyhow::ensure!(dir.is_dir(), "no store in {} (expected {})", args.data.display(), dir.display());
    let store = EmbeddedStore::open(&dir, &EmbeddedOptions::default())
        .with_context(|| format!("opening the store in {}", dir.display()))?;
    store
        .check_integrity_retained(keys_from, inbox_from)
        .with_context(|| format!("reading the store in {}", dir.display()))
}

fn check_postgres(url: &StoreUrl, keys_from: MessageId, inbox_from: MessageId) -> anyhow::Result<IntegrityReport> {
    let options = PostgresOptions { pool_size: 1, ..PostgresOptions::default() };
    let store = PostgresStore::open(url.as_str(), &options).with_context(|| format!("opening the store {url}"))?;
    store.check_integrity_retained(keys_from, inbox_from).with_context(|| format!("reading the store {url}"))
}

fn check_cassandra(url: &StoreUrl, keys_from: MessageId) -> anyhow::Result<IntegrityReport> {
    let store = CassandraStore::open(url.as_str()).with_context(|| format!("opening the store {url}"))?;
    store.check_integrity_keys_from(keys_from).with_context(|| format!("reading the store {url}"))
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
