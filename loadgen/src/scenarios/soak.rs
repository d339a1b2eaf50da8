//! `loadgen soak`: messaging that must survive the gateway being killed
//! and restarted under it, and the proof that it did.
//!
//! Direct pairs and small groups, users with one or two devices, send open
//! loop at a modest rate for `--duration` while something else (normally
//! `scripts/crash-soak.sh`) SIGKILLs and restarts the gateway on the same
//! port and data directory. The devices behave as the protocol tells a
//! client to ([`soak_traffic`](crate::scenarios::soak_traffic)): reconnect with
//! backoff, `sync` from the cursor, resend unanswered messages with the
//! same client id. After `--duration` nothing new is sent; during
//! `--settle` (the gateway is left up) every device comes back and every
//! outbox empties; then every device reconnects and `sync`s to the present,
//! and the
//! [`SoakLedger`](crate::scenarios::soak_ledger) judges: each acknowledged message
//! reached every device it was owed to exactly once, and each device saw
//! each conversation in strictly increasing id order.
//!
//! One thread and one process: a soak is about correctness, not load, and
//! a single event loop keeps every device's history in one place.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{
    cli::SoakArgs,
    conn::driver::Driver,
    report::{
        check::Figures,
        outputs::Outputs,
        stats::{Reasons, Summary},
        summary::Table,
    },
    scenarios::{
        ctx::RunCtx,
        scenario::{nanos, Worker, CLOSE_GRACE, GO_DELAY_NS, IDLE_POLL},
        schedule::Schedule,
        soak_ledger::{SoakLedger, Verdict},
        soak_plan::Topology,
        soak_traffic::{SoakStats, SoakTraffic},
    },
};

/// What `--check` and `--hist` can name.
pub(crate) static FIGURES: Figures = Figures {
    latencies: &[("ack", "ack_ms")],
    main: "ack",
    numbers: &[
        ("devices", "/devices"),
        ("synced", "/devices_final_synced"),
        ("acked", "/verdict/acked"),
        ("unacked", "/unacknowledged"),
        ("owed", "/verdict/owed"),
        ("delivered", "/verdict/delivered"),
        ("lost", "/verdict/lost"),
        ("dup", "/verdict/duplicated"),
        ("dup_replay", "/verdict/duplicated_by_replay"),
        ("order", "/verdict/out_of_order"),
        ("idem", "/stats/idempotency_mismatches"),
        ("misrouted", "/stats/misrouted"),
        ("resent", "/stats/resent"),
        ("unacked_at_drop", "/stats/unacked_at_drop"),
        ("reconnects", "/stats/reconnects"),
        ("ends", "/stats/connection_ends"),
    ],
};

/// Longest wait for the first connections and the groups.
const SETUP_LIMIT: Duration = Duration::from_secs(60);
/// Longest wait for the final syncs.
const FINAL_SYNC_LIMIT: Duration = Duration::from_secs(30);
/// Between progress lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

#[derive(Serialize)]
struct SoakReport<'a> {
    scenario: &'static str,
    config: &'a SoakArgs,
    timed_out: bool,
    users: usize,
    devices: usize,
    setup_secs: f64,
    /// Messages never acknowledged by the end (not owed to anyone).
    unacknowledged: u64,
    devices_final_synced: usize,
    stats: &'a SoakStats,
    verdict: &'a Verdict,
    errors_total: u64,
    ack_ms: Summary,
}

/// Where the run is, for the progress lines.
struct Progress {
    quiet: bool,
    started: Instant,
    next: Instant,
}

impl Progress {
    fn show(&mut self, phase: &str, t: &SoakTraffic, driver: &Driver) {
        if self.quiet || Instant::now() < self.next {
            return;
        }
        self.next = Instant::now() + PROGRESS_EVERY;
        eprintln!(
            "soak {:>5.0}s {phase:<8} up {}/{}  written {}  acked {}  outbox {}  reconnects {}",
            self.started.elapsed().as_secs_f64(),
            t.devices_up(driver),
            t.topology().device_count(),
            t.stats.written,
            t.stats.written.saturating_sub(t.outbox_len() as u64),
            t.outbox_len(),
            t.stats.reconnects,
        );
    }
}

/// Run the soak; `Ok(false)` when anything acked was lost, duplicated or
/// out of order, a device did not come back, or a check failed.
pub(crate) fn run(args: SoakArgs) -> anyhow::Result<bool> {
    let c = &args.common;
    anyhow::ensure!(c.procs == 1 && c.threads == 1, "soak runs in one thread of one process (--procs 1 --threads 1)");
    anyhow::ensure!(args.pairs > 0 || args.groups > 0, "--pairs or --groups must be at least 1");
    anyhow::ensure!(args.groups == 0 || args.group_size >= 2, "--group-size must be at least 2");
    anyhow::ensure!(args.rate > 0, "--rate must be at least 1");
    let outputs = Outputs::parse(&c.report, &FIGURES)?;
    let topo = Topology::new(c.first_user, args.pairs, args.groups, args.group_size);
    let ctx = RunCtx::new(c, topo.device_count() as u64, 1)?;
    let planned = SETUP_LIMIT + args.duration.0 + args.settle.0 + FINAL_SYNC_LIMIT + CLOSE_GRACE;
    let deadline = Instant::now() + c.timeout.map_or(planned + Duration::from_secs(60), |t| t.0);
    let mut driver = Worker::new(&ctx, c).driver(0, 0x50a4)?;
    let mut t = SoakTraffic::new(ctx.tag.clone(), args.body_bytes, topo);
    if c.url.len() > 1 {
        // A fleet: an inbox is in commit order, not id order.
        t.ledger = SoakLedger::per_sender();
    }
    let mut progress = Progress { quiet: c.report.quiet, started: Instant::now(), next: Instant::now() };
    let clock = ctx.clock;

    // Setup: every device up, every group created.
    t.open_all(&mut driver);
    let setup_end = Instant::now() + SETUP_LIMIT;
    let devices = t.topology().device_count();
    while Instant::now() < setup_end && !(t.devices_up(&driver) == devices && t.groups_created()) {
        turn(&mut driver, &mut t, clock.now_ns(), IDLE_POLL)?;
        progress.show("setup", &t, &driver);
    }
    let setup_secs = progress.started.elapsed().as_secs_f64();

    // Load: the open-loop schedule, whatever happens to the gateway.
    let schedule = Schedule::new(args.rate);
    let total = schedule.count_before(nanos(args.duration.0));
    let go = clock.now_ns() + GO_DELAY_NS;
    let mut n = 0;
    while n < total && Instant::now() < deadline {
        let now = clock.now_ns();
        while n < total && go + schedule.offset_ns(n) <= now {
            t.due(&mut driver, n, go + schedule.offset_ns(n), now);
            n += 1;
        }
        let next = go + schedule.offset_ns(n);
        turn(
            &mut driver,
            &mut t,
            clock.now_ns(),
            crate::report::shared::ns(next.saturating_sub(clock.now_ns())).min(IDLE_POLL),
        )?;
        progress.show("load", &t, &driver);
    }

    // Settle: every device back, every outbox empty.
    let settle_end = Instant::now() + args.settle.0;
    while Instant::now() < settle_end.min(deadline) && !(t.outbox_len() == 0 && t.devices_up(&driver) == devices) {
        turn(&mut driver, &mut t, clock.now_ns(), IDLE_POLL)?;
        progress.show("settle", &t, &driver);
    }

    // Every device syncs to the present.
    t.start_final_sync(&mut driver);
    let final_end = Instant::now() + FINAL_SYNC_LIMIT;
    while Instant::now() < final_end.min(deadline) && t.final_synced() < devices {
        turn(&mut driver, &mut t, clock.now_ns(), IDLE_POLL)?;
        progress.show("sync", &t, &driver);
    }
    let timed_out = Instant::now() >= deadline;
    let verdict = {
        let topo = t.topology();
        t.ledger.verdict(|conv| topo.devices_in(conv))
    };
    let devices_final_synced = t.final_synced();
    let unacknowledged = t.outbox_len() as u64;
    driver.close_all(CLOSE_GRACE, &mut t);

    let report = SoakReport {
        scenario: "soak",
        config: &args,
        timed_out,
        users: t.topology().user_count(),
        devices,
        setup_secs,
        unacknowledged,
        devices_final_synced,
        stats: &t.stats,
        verdict: &verdict,
        errors_total: t.stats.errors.total(),
        ack_ms: t.stats.to_ack.summary(),
    };
    print_summary(&report, (&driver.stats.dropped, &driver.stats.failed));
    let clean = !timed_out
        && verdict.acked > 0
        && verdict.lost == 0
        && verdict.duplicated == 0
        && verdict.out_of_order == 0
        && t.stats.idempotency_mismatches == 0
        && t.stats.misrouted == 0
        && devices_final_synced == devices
        && t.groups_created();
    outputs.finish(&report, &[("ack", &t.stats.to_ack)], clean)
}

/// One turn of the loop: time-driven work, then socket events for up to `wait`.
fn turn(driver: &mut Driver, t: &mut SoakTraffic, now: u64, wait: Duration) -> anyhow::Result<()> {
    t.tick(driver, now);
    driver.poll(wait, t)?;
    Ok(())
}

fn print_summary(r: &SoakReport<'_>, (dropped, failed): (&Reasons, &Reasons)) {
    let (cfg, s, v) = (r.config, r.stats, r.verdict);
    let mut t = Table::default();
    t.section("loadgen soak");
    t.row("target", cfg.common.url.join(", "));
    t.row(
        "plan",
        format!(
            "{} pairs + {} groups of {}; {} users, {} devices; {} msg/s for {:.0}s; settle up to {:.0}s",
            cfg.pairs,
            cfg.groups,
            cfg.group_size,
            r.users,
            r.devices,
            cfg.rate,
            cfg.duration.0.as_secs_f64(),
            cfg.settle.0.as_secs_f64()
        ),
    );
    t.timed_out(r.timed_out);
    t.row("setup", format!("{:.1}s, {} / {} groups created", r.setup_secs, s.groups_created, cfg.groups));
    t.section("survival");
    t.row("connections ended", s.connection_ends);
    t.row("  while up", dropped.total());
    t.reasons(dropped);
    t.row("  before coming up", failed.total());
    t.reasons(failed);
    t.row("reconnects", s.reconnects);
    t.row("devices synced at the end", format!("{} / {}", r.devices_final_synced, r.devices));
    t.section("messages");
    t.row("scheduled", s.scheduled);
    t.row("written", s.written);
    t.row("unanswered when cut off", s.unacked_at_drop);
    t.row("resent (same client id)", s.resent);
    t.row("  answered duplicate:true", s.acked_as_duplicate);
    t.row("acked", v.acked);
    t.row("unacknowledged (given up)", r.unacknowledged);
    t.row("received, never acked", v.received_unacked);
    t.row("delivered acks written", s.delivered_acks);
    t.section("verdict");
    t.row("deliveries owed", v.owed);
    t.row("delivered", v.delivered);
    t.row("lost", v.lost);
    t.row("duplicated", v.duplicated);
    t.row("  of which by replay", v.duplicated_by_replay);
    t.row("out of order", v.out_of_order);
    t.row("own copy replayed to sender", v.own_replayed);
    t.row("idempotency mismatches", s.idempotency_mismatches);
    t.row("misrouted", s.misrouted);
    t.row("errors", r.errors_total);
    t.reasons(&s.errors);
    if s.foreign > 0 {
        t.row("foreign frames (ignored)", s.foreign);
    }
    t.latency_header();
    t.latency("intended send -> sent", &r.ack_ms);
    t.print();
}
