//! `loadgen one-to-one`: direct messages at a fixed rate between distinct
//! sender/recipient pairs, with their ack, delivery and receipt latency.
//!
//! The run: open `2 x --pairs` connections (senders are users
//! `first-user..first-user+pairs`, recipients the next `pairs` users) and
//! wait until every one is synced; then send `--rate` messages per second in
//! total for `--duration` on an open-loop schedule; recipients acknowledge
//! each message with `delivered` as soon as it arrives; then wait up to
//! `--drain` for the last acks, deliveries and receipts; close everything.
//!
//! The gateway limits each connection to 200 frames/s (burst 400) by
//! default, and a recipient acknowledges at the same rate its sender sends,
//! so the rate per pair is refused above 150/s: beyond that the run would
//! measure the rate limiter rather than the gateway.
//!
//! With `--procs`, pairs are dealt to the worker processes whole (see
//! [`share`](crate::share)), so each pair's loss and duplicate checks stay
//! local; the schedule is global, so the processes together send `--rate`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{
    check::Figures,
    cli::OneToOneArgs,
    conn::ConnStats,
    ctx::RunCtx,
    driver::{Driver, DriverConfig},
    fleet::{self, Started},
    outputs::Outputs,
    progress::Progress,
    ramp::Ramp,
    report::Table,
    run::watch_until,
    schedule::{sender_of, Schedule},
    share::Share,
    shared::{ns, Clock, Coord},
    stats::{Reasons, Summary},
    token::Minter,
    traffic::{Traffic, TrafficStats},
};

/// What `--check` and `--hist` can name.
pub(crate) static FIGURES: Figures = Figures {
    latencies: &[
        ("lag", "send_lag_ms"),
        ("ack", "ack_ms"),
        ("deliver", "delivery_ms"),
        ("receipt", "receipt_ms"),
        ("handshake", "handshake_ms"),
    ],
    main: "deliver",
    numbers: &[
        ("conns", "/established"),
        ("failed", "/failed"),
        ("dropped", "/dropped"),
        ("sent", "/sent"),
        ("acked", "/acked"),
        ("delivered", "/delivered"),
        ("lost", "/lost"),
        ("dup", "/duplicated"),
        ("errors", "/errors_total"),
        ("missing_receipts", "/missing_receipts"),
        ("skipped", "/skipped_sender_down"),
        ("rate", "/achieved_delivery_rate"),
        ("send_rate", "/achieved_send_rate"),
    ],
};

/// Highest messages per second per pair this tool allows.
const MAX_RATE_PER_PAIR: f64 = 150.0;
/// Time allowed for close handshakes at the end.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Longest a worker sleeps in its poller before looking at the phase flags.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// Delay between the go and the first message, so every thread sees it.
const GO_DELAY_NS: u64 = 100_000_000;

#[derive(Serialize)]
struct OneToOneReport<'a> {
    scenario: &'static str,
    config: &'a OneToOneArgs,
    timed_out: bool,
    setup_aborted: bool,
    connections: u64,
    established: u64,
    failed: u64,
    failed_reasons: &'a Reasons,
    dropped: u64,
    dropped_reasons: &'a Reasons,
    setup_secs: f64,
    handshake_ms: Summary,
    sync_replayed_frames: u64,
    scheduled: u64,
    sent: u64,
    skipped_sender_down: u64,
    acked: u64,
    delivered: u64,
    receipts: u64,
    lost: u64,
    duplicated: u64,
    delivered_unacked: u64,
    missing_receipts: u64,
    duplicate_acks: u64,
    refused_sends: u64,
    errors_total: u64,
    errors: &'a Reasons,
    foreign_frames: u64,
    achieved_send_rate: f64,
    achieved_ack_rate: f64,
    achieved_delivery_rate: f64,
    last_delivery_after_end_ms: f64,
    send_lag_ms: Summary,
    ack_ms: Summary,
    delivery_ms: Summary,
    receipt_ms: Summary,
    processes: usize,
    source_addresses: usize,
}

/// Run the scenario; `Ok(false)` when anything was lost, duplicated,
/// refused or late beyond the drain, a check failed, or the run timed out.
pub(crate) fn run(args: OneToOneArgs) -> anyhow::Result<bool> {
    let c = &args.common;
    anyhow::ensure!(args.pairs > 0, "--pairs must be at least 1");
    anyhow::ensure!(args.rate > 0, "--rate must be at least 1");
    anyhow::ensure!(args.conn_rate > 0, "--conn-rate must be at least 1");
    let per_pair = args.rate as f64 / args.pairs as f64;
    anyhow::ensure!(
        per_pair <= MAX_RATE_PER_PAIR,
        "--rate {} over --pairs {} is {per_pair:.0} messages/s per pair, above {MAX_RATE_PER_PAIR}: \
         the gateway rate-limits each connection to 200 frames/s by default (burst 400), and each \
         recipient acknowledges at its sender's rate; use at least {} pairs",
        args.rate,
        args.pairs,
        (args.rate as f64 / MAX_RATE_PER_PAIR).ceil()
    );
    let outputs = Outputs::parse(c, &FIGURES)?;
    let conns = 2 * args.pairs;
    let ctx = RunCtx::new(c, args.pairs, 2)?;
    let setup_estimate = Duration::from_secs_f64(conns as f64 / args.conn_rate as f64);
    let timeout = c.timeout.map(|t| t.0).unwrap_or(
        setup_estimate + c.handshake_timeout.0 + args.duration.0 + args.drain.0 + CLOSE_GRACE + Duration::from_secs(60),
    );
    let started = Instant::now();
    let deadline = started + timeout;

    let duration_ns = u64::try_from(args.duration.0.as_nanos()).unwrap_or(u64::MAX);
    let drain_ns = u64::try_from(args.drain.0.as_nanos()).unwrap_or(u64::MAX);
    let work = {
        let config = DriverConfig {
            target: ctx.target.clone(),
            sources: ctx.sources.clone(),
            handshake_timeout: c.handshake_timeout.0,
        };
        let minter = Minter::new(&c.secret);
        let (clock, live, coord, tag) = (ctx.clock, Arc::clone(&ctx.live), Arc::clone(&ctx.coord), ctx.tag.clone());
        let plan = Plan {
            share: ctx.share,
            pairs: args.pairs,
            first_user: c.first_user,
            rate: args.rate,
            conn_rate: args.conn_rate,
            duration_ns,
            drain_ns,
            start_ns: ctx.start_ns,
        };
        let body_bytes = args.body_bytes;
        move |t: usize| {
            let seed = 0xFACE ^ plan.share.lane(t) as u64;
            let mut driver = Driver::new(config.clone(), minter.clone(), clock, Arc::clone(&live), seed)?;
            let mut traffic = Traffic::new(tag.clone(), body_bytes, Arc::clone(&live));
            plan.work(t, &mut driver, &mut traffic, &clock, &coord)?;
            driver.close_all(CLOSE_GRACE, &mut traffic);
            traffic.finish();
            Ok((driver.stats, traffic.stats))
        }
    };
    let fleet = match fleet::start(&ctx, timeout, work)? {
        Started::WorkerDone => return Ok(true),
        Started::Conduct(f) => f,
    };

    let mut progress = Progress::new(c.quiet, true, conns);
    let all_ready =
        watch_until(&mut progress, &*fleet, "setup", deadline, false, || fleet.ready() || fleet.any_finished());
    let setup_secs = started.elapsed().as_secs_f64();
    let failed_now = fleet.snapshot().failed;
    let setup_aborted = !all_ready || failed_now > 0 || fleet.any_finished();
    let mut go_ns = None;
    if setup_aborted {
        if failed_now > 0 {
            progress.note(&format!("loadgen: {failed_now} connection(s) failed to come up; not sending"));
        }
        fleet.abort();
    } else {
        let go = ctx.clock.now_ns() + GO_DELAY_NS;
        go_ns = Some(go);
        fleet.go(go);
        let load_end = Instant::now() + ns(GO_DELAY_NS + duration_ns);
        watch_until(&mut progress, &*fleet, "load", deadline.min(load_end), true, || fleet.any_finished());
        watch_until(&mut progress, &*fleet, "drain", deadline, false, || fleet.all_finished());
    }
    let timed_out = Instant::now() >= deadline;
    if timed_out {
        fleet.abort();
    }
    watch_until(&mut progress, &*fleet, "close", Instant::now() + 2 * CLOSE_GRACE, false, || fleet.all_finished());
    progress.finish();
    let mut conn_stats = ConnStats::default();
    let mut t = TrafficStats::default();
    for (cs, ts) in fleet.join()? {
        conn_stats.merge(&cs);
        t.merge(&ts);
    }

    let secs = args.duration.0.as_secs_f64().max(1e-9);
    let end_ns = go_ns.map_or(0, |go| go + duration_ns);
    let report = OneToOneReport {
        scenario: "one-to-one",
        config: &args,
        timed_out,
        setup_aborted,
        connections: conns,
        established: conn_stats.established,
        failed: conn_stats.failed.total(),
        failed_reasons: &conn_stats.failed,
        dropped: conn_stats.dropped.total(),
        dropped_reasons: &conn_stats.dropped,
        setup_secs,
        handshake_ms: conn_stats.handshake.summary(),
        sync_replayed_frames: conn_stats.replayed,
        scheduled: t.scheduled,
        sent: t.sent,
        skipped_sender_down: t.skipped,
        acked: t.acked,
        delivered: t.delivered,
        receipts: t.receipts,
        lost: t.lost,
        duplicated: t.duplicates,
        delivered_unacked: t.delivered_unacked,
        missing_receipts: t.missing_receipts,
        duplicate_acks: t.duplicate_acks,
        refused_sends: t.refused_sends,
        errors_total: t.errors.total(),
        errors: &t.errors,
        foreign_frames: t.foreign,
        achieved_send_rate: t.sent as f64 / secs,
        achieved_ack_rate: t.acked as f64 / secs,
        achieved_delivery_rate: t.delivered as f64 / secs,
        last_delivery_after_end_ms: if t.last_delivery_ns > end_ns && end_ns > 0 {
            (t.last_delivery_ns - end_ns) as f64 / 1e6
        } else {
            0.0
        },
        send_lag_ms: t.send_lag.summary(),
        ack_ms: t.to_ack.summary(),
        delivery_ms: t.to_delivery.summary(),
        receipt_ms: t.to_receipt.summary(),
        processes: ctx.share.count,
        source_addresses: ctx.sources.len(),
    };
    print_summary(&report);
    let clean = !timed_out
        && !setup_aborted
        && report.lost == 0
        && report.duplicated == 0
        && report.errors.total() == 0
        && report.skipped_sender_down == 0
        && report.sent == report.acked
        && report.missing_receipts == 0;
    let lats = [
        ("lag", &t.send_lag),
        ("ack", &t.to_ack),
        ("deliver", &t.to_delivery),
        ("receipt", &t.to_receipt),
        ("handshake", &conn_stats.handshake),
    ];
    outputs.finish(&report, &lats, clean)
}

/// What every worker needs to know about the run.
#[derive(Clone, Copy, Debug)]
struct Plan {
    share: Share,
    pairs: u64,
    first_user: u64,
    rate: u64,
    conn_rate: u64,
    duration_ns: u64,
    drain_ns: u64,
    start_ns: u64,
}

impl Plan {
    /// A worker's run: set up its pairs, send on schedule, drain.
    fn work(
        &self,
        t: usize,
        driver: &mut Driver,
        traffic: &mut Traffic,
        clock: &Clock,
        coord: &Coord,
    ) -> anyhow::Result<()> {
        let Some(go) = self.set_up(t, driver, traffic, clock, coord)? else {
            return Ok(());
        };
        let schedule = Schedule::new(self.rate);
        let total = schedule.count_before(self.duration_ns);
        let mut n = 0u64;
        while n < total {
            if coord.aborted() {
                return Ok(());
            }
            let now = clock.now_ns();
            while n < total && go + schedule.offset_ns(n) <= now {
                let pair = sender_of(n, self.pairs);
                if self.share.owns(t, pair) {
                    let local = self.share.local_index(pair);
                    traffic.send(driver, local, n, go + schedule.offset_ns(n), now);
                }
                n += 1;
            }
            let wait = if n < total {
                ns((go + schedule.offset_ns(n)).saturating_sub(clock.now_ns())).min(IDLE_POLL)
            } else {
                Duration::ZERO
            };
            driver.poll(wait, traffic)?;
        }
        let end = go + self.duration_ns + self.drain_ns;
        loop {
            let now = clock.now_ns();
            if coord.aborted() || traffic.settled() || now >= end {
                return Ok(());
            }
            driver.poll(ns(end - now).min(IDLE_POLL), traffic)?;
        }
    }

    /// Open this thread's pairs and wait for the go; `None` if aborted.
    fn set_up(
        &self,
        t: usize,
        driver: &mut Driver,
        traffic: &mut Traffic,
        clock: &Clock,
        coord: &Coord,
    ) -> anyhow::Result<Option<u64>> {
        // Connection k: pair k / 2; even k is its sender, odd k its recipient.
        let mut ramp = Ramp::new(self.conn_rate, 2 * self.pairs, self.start_ns);
        let mut sender = None;
        let mut ready = false;
        loop {
            if coord.aborted() {
                return Ok(None);
            }
            if ready {
                if let Some(go) = coord.go() {
                    return Ok(Some(go));
                }
            }
            let now = clock.now_ns();
            while let Some(k) = ramp.next_due(now, |k| self.share.owns(t, k / 2)) {
                let pair = k / 2;
                if k % 2 == 0 {
                    sender = Some(driver.open(self.first_user + pair, 0));
                } else {
                    let recipient_user = self.first_user + self.pairs + pair;
                    let recipient = driver.open(recipient_user, 0);
                    if let Some(s) = sender.take() {
                        traffic.add_pair(s, recipient, recipient_user);
                    }
                }
            }
            if !ready && ramp.done() && driver.unresolved() == 0 {
                ready = true;
                coord.mark_ready();
            }
            let wait = ramp.next_at().map_or(IDLE_POLL, |at| ns(at.saturating_sub(now)).min(IDLE_POLL));
            driver.poll(wait, traffic)?;
        }
    }
}

fn print_summary(r: &OneToOneReport<'_>) {
    let mut t = Table::default();
    let cfg = r.config;
    t.section("loadgen one-to-one");
    t.row("target", &cfg.common.url);
    t.row(
        "plan",
        format!(
            "{} pairs, {} msg/s for {:.0}s ({:.1}/s per pair), {} B bodies, drain {:.0}s, {} process(es) x {} thread(s)",
            cfg.pairs,
            cfg.rate,
            cfg.duration.0.as_secs_f64(),
            cfg.rate as f64 / cfg.pairs as f64,
            cfg.body_bytes,
            cfg.drain.0.as_secs_f64(),
            r.processes,
            cfg.common.threads
        ),
    );
    if r.timed_out {
        t.row("TIMED OUT", "the --timeout safety stopped the run");
    }
    t.row(
        "connections",
        format!(
            "{} / {} up in {:.2}s, handshake p99 {:.2} ms",
            r.established, r.connections, r.setup_secs, r.handshake_ms.p99_ms
        ),
    );
    if r.failed > 0 {
        t.row("failed to connect", r.failed);
        t.reasons(r.failed_reasons);
    }
    if r.sync_replayed_frames > 0 {
        t.row("frames replayed by sync", format!("{} (earlier runs; ignored)", r.sync_replayed_frames));
    }
    if r.setup_aborted {
        t.row("SETUP ABORTED", "not every connection came up; nothing was sent");
    }
    t.row("dropped", r.dropped);
    t.reasons(r.dropped_reasons);
    t.section("messages");
    t.row("scheduled", r.scheduled);
    t.row("sent", format!("{} ({:.0}/s)", r.sent, r.achieved_send_rate));
    if r.skipped_sender_down > 0 {
        t.row("skipped (sender down)", r.skipped_sender_down);
    }
    t.row("acked (sent)", format!("{} ({:.0}/s)", r.acked, r.achieved_ack_rate));
    t.row("delivered", format!("{} ({:.0}/s)", r.delivered, r.achieved_delivery_rate));
    t.row("receipts (delivered)", r.receipts);
    t.row("lost (acked, not delivered)", r.lost);
    t.row("duplicated deliveries", r.duplicated);
    t.row("delivered but never acked", r.delivered_unacked);
    t.row("missing receipts", r.missing_receipts);
    if r.duplicate_acks > 0 {
        t.row("acks flagged duplicate", r.duplicate_acks);
    }
    t.row("errors", r.errors.total());
    t.reasons(r.errors);
    if r.refused_sends > 0 {
        t.row("sends refused", r.refused_sends);
    }
    if r.foreign_frames > 0 {
        t.row("foreign frames (ignored)", r.foreign_frames);
    }
    t.row("last delivery after end", format!("{:.1} ms", r.last_delivery_after_end_ms));
    t.latency_header();
    t.latency("send lag (actual-intended)", &r.send_lag_ms);
    t.latency("intended send -> sent", &r.ack_ms);
    t.latency("intended send -> delivered", &r.delivery_ms);
    t.latency("intended send -> receipt", &r.receipt_ms);
    t.print();
}
