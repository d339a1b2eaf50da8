//! `loadgen reconnect-storm`: one-to-one traffic while a share of all
//! connections is cut off at once, and what it takes the gateway to get
//! them back and caught up without losing or duplicating a message.
//!
//! The run is a one-to-one run (`--pairs` senders and recipients, `--rate`
//! messages/s in total, open loop) in which, `--drop-at` after sending
//! starts, `--drop-percent` of all connections (senders and recipients
//! alike, chosen by a fixed hash so every worker process agrees) are reset
//! at once, and each device reconnects at once and `sync`s from its cursor,
//! as a real client would after a network blip; the same happens to any
//! connection that drops by itself. The device logic is in
//! [`storm_traffic`](crate::storm_traffic). A thundering herd of
//! reconnections and syncs, while the live traffic continues, is the
//! moment a gateway is most likely to lose a message between a connection's
//! replay and its live stream, or to replay one twice.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{
    check::Figures,
    cli::StormArgs,
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
    storm_traffic::{drop_selection, StormStats, StormTraffic},
    token::Minter,
};

/// Highest messages per second per pair this tool allows.
const MAX_RATE_PER_PAIR: f64 = 150.0;
/// Time allowed for close handshakes at the end.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Longest a worker sleeps in its poller before looking at the phase flags.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// Delay between the go and the first message, so every worker sees it.
const GO_DELAY_NS: u64 = 100_000_000;

/// What `--check` and `--hist` can name.
pub(crate) static FIGURES: Figures = Figures {
    latencies: &[
        ("lag", "send_lag_ms"),
        ("ack", "ack_ms"),
        ("deliver", "delivery_ms"),
        ("receipt", "receipt_ms"),
        ("reconnect", "reconnect_ms"),
        ("catchup", "catch_up_ms"),
        ("handshake", "handshake_ms"),
    ],
    main: "catchup",
    numbers: &[
        ("conns", "/established_initially"),
        ("failed", "/failed"),
        ("killed", "/killed"),
        ("reconnected", "/reconnected"),
        ("reconnect_failures", "/reconnect_failures"),
        ("unplanned", "/unplanned_drops"),
        ("sent", "/sent"),
        ("acked", "/acked"),
        ("delivered", "/delivered"),
        ("lost", "/lost"),
        ("dup", "/duplicated"),
        ("dup_replay", "/duplicated_by_replay"),
        ("resent", "/resent"),
        ("resent_dup", "/resent_duplicate"),
        ("errors", "/errors_total"),
        ("missing_receipts", "/missing_receipts"),
        ("rate", "/achieved_delivery_rate"),
    ],
};

#[derive(Serialize)]
struct StormReport<'a> {
    scenario: &'static str,
    config: &'a StormArgs,
    timed_out: bool,
    setup_aborted: bool,
    connections: u64,
    established_initially: u64,
    failed: u64,
    failed_reasons: &'a Reasons,
    setup_secs: f64,
    handshake_ms: Summary,
    devices_cut_off: u64,
    killed: u64,
    reconnected: u64,
    reconnect_failures: u64,
    gave_up: u64,
    unplanned_drops: u64,
    unplanned_reasons: &'a Reasons,
    replayed_frames: u64,
    scheduled: u64,
    sent: u64,
    queued_while_down: u64,
    resent: u64,
    resent_duplicate: u64,
    resent_new: u64,
    own_in_replay: u64,
    unexpected_duplicate_acks: u64,
    acked: u64,
    delivered: u64,
    delivered_by_replay: u64,
    lost: u64,
    duplicated: u64,
    duplicated_by_replay: u64,
    delivered_unacked: u64,
    receipts: u64,
    missing_receipts: u64,
    refused_sends: u64,
    errors_total: u64,
    errors: &'a Reasons,
    foreign_frames: u64,
    achieved_send_rate: f64,
    achieved_delivery_rate: f64,
    send_lag_ms: Summary,
    ack_ms: Summary,
    delivery_ms: Summary,
    receipt_ms: Summary,
    reconnect_ms: Summary,
    catch_up_ms: Summary,
    processes: usize,
    source_addresses: usize,
}

/// Run the scenario; `Ok(false)` when anything was lost or duplicated, a
/// device did not come back, a check failed, or the run timed out.
pub(crate) fn run(args: StormArgs) -> anyhow::Result<bool> {
    let c = &args.common;
    anyhow::ensure!(args.pairs > 0, "--pairs must be at least 1");
    anyhow::ensure!(args.rate > 0, "--rate must be at least 1");
    anyhow::ensure!(args.conn_rate > 0, "--conn-rate must be at least 1");
    anyhow::ensure!((0.0..=100.0).contains(&args.drop_percent), "--drop-percent must be from 0 to 100");
    anyhow::ensure!(args.drop_at.0 < args.duration.0, "--drop-at must be before the end of --duration");
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
        setup_estimate
            + 2 * c.handshake_timeout.0
            + args.duration.0
            + args.drain.0
            + CLOSE_GRACE
            + Duration::from_secs(60),
    );
    let started = Instant::now();
    let deadline = started + timeout;
    let to_ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let (duration_ns, drain_ns, drop_at_ns) = (to_ns(args.duration.0), to_ns(args.drain.0), to_ns(args.drop_at.0));

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
            drop_at_ns,
            drop_percent: args.drop_percent,
            start_ns: ctx.start_ns,
        };
        let body_bytes = args.body_bytes;
        move |t: usize| {
            let seed = 0x5707 ^ plan.share.lane(t) as u64;
            let mut driver = Driver::new(config.clone(), minter.clone(), clock, Arc::clone(&live), seed)?;
            let mut traffic = StormTraffic::new(tag.clone(), body_bytes, Arc::clone(&live));
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
    let snap = fleet.snapshot();
    let established_initially = snap.up;
    let setup_aborted = !all_ready || snap.failed > 0 || fleet.any_finished();
    if setup_aborted {
        if snap.failed > 0 {
            progress.note(&format!("loadgen: {} connection(s) failed to come up; not sending", snap.failed));
        }
        fleet.abort();
    } else {
        fleet.go(ctx.clock.now_ns() + GO_DELAY_NS);
        let now = Instant::now();
        let drop_time = now + ns(GO_DELAY_NS + drop_at_ns);
        watch_until(&mut progress, &*fleet, "load", deadline.min(drop_time), true, || fleet.any_finished());
        let load_end = now + ns(GO_DELAY_NS + duration_ns);
        watch_until(&mut progress, &*fleet, "storm", deadline.min(load_end), true, || fleet.any_finished());
        watch_until(&mut progress, &*fleet, "drain", deadline, false, || fleet.all_finished());
    }
    let timed_out = Instant::now() >= deadline;
    if timed_out {
        fleet.abort();
    }
    watch_until(&mut progress, &*fleet, "close", Instant::now() + 2 * CLOSE_GRACE, false, || fleet.all_finished());
    progress.finish();
    let mut conn_stats = ConnStats::default();
    let mut t = StormStats::default();
    for (cs, ss) in fleet.join()? {
        conn_stats.merge(&cs);
        t.merge(&ss);
    }

    let secs = args.duration.0.as_secs_f64().max(1e-9);
    let cut_off = drop_selection(conns, args.drop_percent).iter().filter(|&&c| c).count() as u64;
    let report = StormReport {
        scenario: "reconnect-storm",
        config: &args,
        timed_out,
        setup_aborted,
        connections: conns,
        established_initially,
        failed: conn_stats.failed.total(),
        failed_reasons: &conn_stats.failed,
        setup_secs,
        handshake_ms: conn_stats.handshake.summary(),
        devices_cut_off: cut_off,
        killed: t.killed,
        reconnected: t.reconnected,
        reconnect_failures: t.reconnect_failures,
        gave_up: t.gave_up,
        unplanned_drops: t.unplanned_drops,
        unplanned_reasons: &conn_stats.dropped,
        replayed_frames: t.replayed_frames,
        scheduled: t.scheduled,
        sent: t.sent,
        queued_while_down: t.queued_while_down,
        resent: t.resent,
        resent_duplicate: t.resent_duplicate,
        resent_new: t.resent_new,
        own_in_replay: t.own_in_replay,
        unexpected_duplicate_acks: t.unexpected_duplicate_acks,
        acked: t.acked,
        delivered: t.delivered,
        delivered_by_replay: t.delivered_by_replay,
        lost: t.lost,
        duplicated: t.duplicated,
        duplicated_by_replay: t.duplicated_by_replay,
        delivered_unacked: t.delivered_unacked,
        receipts: t.receipts,
        missing_receipts: t.missing_receipts,
        refused_sends: t.refused_sends,
        errors_total: t.errors.total(),
        errors: &t.errors,
        foreign_frames: t.foreign,
        achieved_send_rate: t.sent as f64 / secs,
        achieved_delivery_rate: t.delivered as f64 / secs,
        send_lag_ms: t.send_lag.summary(),
        ack_ms: t.to_ack.summary(),
        delivery_ms: t.to_delivery.summary(),
        receipt_ms: t.to_receipt.summary(),
        reconnect_ms: t.to_reconnect.summary(),
        catch_up_ms: t.to_catch_up.summary(),
        processes: ctx.share.count,
        source_addresses: ctx.sources.len(),
    };
    print_summary(&report);
    let clean = !timed_out
        && !setup_aborted
        && report.lost == 0
        && report.duplicated == 0
        && report.unexpected_duplicate_acks == 0
        && report.gave_up == 0
        && report.reconnected >= report.killed
        && report.acked == report.scheduled;
    let lats = [
        ("lag", &t.send_lag),
        ("ack", &t.to_ack),
        ("deliver", &t.to_delivery),
        ("receipt", &t.to_receipt),
        ("reconnect", &t.to_reconnect),
        ("catchup", &t.to_catch_up),
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
    drop_at_ns: u64,
    drop_percent: f64,
    start_ns: u64,
}

impl Plan {
    /// A worker's run: set up its pairs, send on schedule, cut off its
    /// share of the devices at the drop time, drain.
    fn work(
        &self,
        t: usize,
        driver: &mut Driver,
        traffic: &mut StormTraffic,
        clock: &Clock,
        coord: &Coord,
    ) -> anyhow::Result<()> {
        let Some(go) = self.set_up(t, driver, traffic, clock, coord)? else {
            return Ok(());
        };
        let chosen = drop_selection(2 * self.pairs, self.drop_percent);
        let drop_time = go + self.drop_at_ns;
        let mut cut = false;
        let schedule = Schedule::new(self.rate);
        let total = schedule.count_before(self.duration_ns);
        let mut n = 0u64;
        while n < total {
            if coord.aborted() {
                return Ok(());
            }
            let now = clock.now_ns();
            if !cut && now >= drop_time {
                cut = true;
                traffic.cut_off(driver, &chosen);
            }
            while n < total && go + schedule.offset_ns(n) <= now {
                let pair = sender_of(n, self.pairs);
                if self.share.owns(t, pair) {
                    traffic.send(driver, self.share.local_index(pair), n, go + schedule.offset_ns(n), now);
                }
                n += 1;
            }
            let next = if n < total { go + schedule.offset_ns(n) } else { now };
            let next = if cut { next } else { next.min(drop_time) };
            driver.poll(ns(next.saturating_sub(clock.now_ns())).min(IDLE_POLL), traffic)?;
            let now = clock.now_ns();
            traffic.handle_ended(driver, now);
            traffic.flush(driver, now);
        }
        let end = go + self.duration_ns + self.drain_ns;
        loop {
            let now = clock.now_ns();
            if coord.aborted() || traffic.settled() || now >= end {
                return Ok(());
            }
            driver.poll(ns(end - now).min(IDLE_POLL), traffic)?;
            let now = clock.now_ns();
            traffic.handle_ended(driver, now);
            traffic.flush(driver, now);
        }
    }

    /// Open this thread's pairs and wait for the go; `None` if aborted.
    fn set_up(
        &self,
        t: usize,
        driver: &mut Driver,
        traffic: &mut StormTraffic,
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
                    let user = self.first_user + pair;
                    sender = Some((user, driver.open(user, 0)));
                } else {
                    let user = self.first_user + self.pairs + pair;
                    let recipient = (user, driver.open(user, 0));
                    if let Some(s) = sender.take() {
                        traffic.add_pair(pair, s, recipient);
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

fn print_summary(r: &StormReport<'_>) {
    let mut t = Table::default();
    let cfg = r.config;
    t.section("loadgen reconnect-storm");
    t.row("target", &cfg.common.url);
    t.row(
        "plan",
        format!(
            "{} pairs, {} msg/s for {:.0}s; {}% of connections cut off at {:.1}s; drain {:.0}s",
            cfg.pairs,
            cfg.rate,
            cfg.duration.0.as_secs_f64(),
            cfg.drop_percent,
            cfg.drop_at.0.as_secs_f64(),
            cfg.drain.0.as_secs_f64(),
        ),
    );
    t.row("workers", format!("{} process(es) x {} thread(s)", r.processes, cfg.common.threads));
    if r.timed_out {
        t.row("TIMED OUT", "the --timeout safety stopped the run");
    }
    t.row(
        "connections",
        format!(
            "{} / {} up in {:.2}s, handshake p99 {:.2} ms",
            r.established_initially, r.connections, r.setup_secs, r.handshake_ms.p99_ms
        ),
    );
    if r.failed > 0 {
        t.row("failed to connect", r.failed);
        t.reasons(r.failed_reasons);
    }
    if r.setup_aborted {
        t.row("SETUP ABORTED", "not every connection came up; nothing was sent");
    }
    t.section("storm");
    t.row("cut off", format!("{} / {} planned", r.killed, r.devices_cut_off));
    t.row("reconnected (synced)", r.reconnected);
    t.row("reconnect attempts failed", r.reconnect_failures);
    if r.gave_up > 0 {
        t.row("GAVE UP reconnecting", r.gave_up);
    }
    t.row("dropped by themselves", r.unplanned_drops);
    t.reasons(r.unplanned_reasons);
    t.row("frames replayed", r.replayed_frames);
    t.section("messages");
    t.row("scheduled", r.scheduled);
    t.row("sent", format!("{} ({:.0}/s)", r.sent, r.achieved_send_rate));
    t.row("  due while sender down", r.queued_while_down);
    t.row("resent after reconnect", r.resent);
    t.row("  answered duplicate:true", r.resent_duplicate);
    t.row("  answered duplicate:false", r.resent_new);
    t.row("  seen in own replay first", r.own_in_replay);
    if r.unexpected_duplicate_acks > 0 {
        t.row("UNEXPECTED duplicate acks", r.unexpected_duplicate_acks);
    }
    t.row("acked", r.acked);
    t.row(
        "delivered",
        format!("{} ({:.0}/s), {} by replay", r.delivered, r.achieved_delivery_rate, r.delivered_by_replay),
    );
    t.row("lost (acked, not delivered)", r.lost);
    t.row("duplicated deliveries", r.duplicated);
    t.row("  of which by replay", r.duplicated_by_replay);
    if r.delivered_unacked > 0 {
        t.row("delivered but never acked", r.delivered_unacked);
    }
    t.row("receipts", r.receipts);
    t.row("missing receipts", r.missing_receipts);
    t.row("errors", r.errors_total);
    t.reasons(r.errors);
    if r.foreign_frames > 0 {
        t.row("foreign frames (ignored)", r.foreign_frames);
    }
    t.latency_header();
    t.latency("send lag (actual-intended)", &r.send_lag_ms);
    t.latency("intended send -> sent", &r.ack_ms);
    t.latency("intended send -> delivered", &r.delivery_ms);
    t.latency("intended send -> receipt", &r.receipt_ms);
    t.latency("cut off -> welcome", &r.reconnect_ms);
    t.latency("cut off -> synced", &r.catch_up_ms);
    t.print();
}
