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
//! [`storm_traffic`](crate::scenarios::storm_traffic). A thundering herd of
//! reconnections and syncs, while the live traffic continues, is the
//! moment a gateway is most likely to lose a message between a connection's
//! replay and its live stream, or to replay one twice.

use serde::Serialize;

use crate::{
    cli::StormArgs,
    report::{
        check::Figures,
        outputs::Outputs,
        stats::{Reasons, Summary},
        summary::Table,
    },
    scenarios::{
        messages::MsgFigures,
        one_to_one::{run_pairs, PairRun},
        placement::Placement,
        scenario::nanos,
        storm_traffic::{drop_selection, CutPlan, StormTraffic},
    },
};

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
        ("gateway_us", "/cpu/gateway_us_per_msg"),
        ("loadgen_us", "/cpu/loadgen_us_per_msg"),
        ("box_busy", "/cpu/box_busy_pct"),
        ("box_ctxt", "/cpu/box_ctxt_per_msg"),
        ("gateway_ctxt", "/cpu/gateway_ctxt_per_msg"),
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
    #[serde(flatten)]
    msgs: MsgFigures<'a>,
    queued_while_down: u64,
    resent: u64,
    resent_duplicate: u64,
    resent_new: u64,
    own_in_replay: u64,
    unexpected_duplicate_acks: u64,
    delivered_by_replay: u64,
    duplicated_by_replay: u64,
    receipts: u64,
    achieved_delivery_rate: f64,
    reconnect_ms: Summary,
    catch_up_ms: Summary,
}

/// Run the scenario; `Ok(false)` when anything was lost or duplicated, a
/// device did not come back, a check failed, or the run timed out.
pub(crate) fn run(args: StormArgs) -> anyhow::Result<bool> {
    let (c, p) = (&args.common, &args.pairs);
    p.ensure_some(&args.load)?;
    anyhow::ensure!((0.0..=100.0).contains(&args.drop_percent), "--drop-percent must be from 0 to 100");
    anyhow::ensure!(args.drop_at.0 < p.duration.0, "--drop-at must be before the end of --duration");
    p.ensure_rate_per_pair()?;
    let outputs = Outputs::parse(&c.report, &FIGURES)?;
    let conns = 2 * p.pairs;
    let cut = CutPlan { after_ns: nanos(args.drop_at.0), devices: conns, percent: args.drop_percent };
    let body_bytes = args.load.body_bytes;
    let phases = [("load", cut.after_ns), ("storm", nanos(p.duration.0))];
    let traffic = move |tag, live| {
        let mut traffic = StormTraffic::new(tag, body_bytes, live);
        traffic.plan_cut(cut);
        traffic
    };
    // Round-robin over several URLs, like a balancer.
    let placement = |nodes| Placement::choose(false, false, nodes);
    let Some(run) = run_pairs((c, p, &args.load), placement, (2, 0x5707), &phases, traffic)? else {
        return Ok(true);
    };
    let PairRun { ctx, setup, loaded, timed_out, conn_stats, stats: t, .. } = run;

    let m = &t.common;
    let secs = p.duration.0.as_secs_f64().max(1e-9);
    let cut_off = drop_selection(conns, args.drop_percent).iter().filter(|&&c| c).count() as u64;
    let report = StormReport {
        scenario: "reconnect-storm",
        config: &args,
        timed_out,
        setup_aborted: setup.aborted,
        connections: conns,
        established_initially: setup.snap.up,
        failed: conn_stats.failed.total(),
        failed_reasons: &conn_stats.failed,
        setup_secs: setup.secs,
        handshake_ms: conn_stats.handshake.summary(),
        devices_cut_off: cut_off,
        killed: t.killed,
        reconnected: t.reconnected,
        reconnect_failures: t.reconnect_failures,
        gave_up: t.gave_up,
        unplanned_drops: t.unplanned_drops,
        unplanned_reasons: &conn_stats.dropped,
        replayed_frames: t.replayed_frames,
        msgs: MsgFigures::new(m, secs, loaded.as_ref(), &ctx),
        queued_while_down: t.queued_while_down,
        resent: t.resent,
        resent_duplicate: t.resent_duplicate,
        resent_new: t.resent_new,
        own_in_replay: t.own_in_replay,
        unexpected_duplicate_acks: m.duplicate_acks,
        delivered_by_replay: t.delivered_by_replay,
        duplicated_by_replay: t.duplicated_by_replay,
        receipts: m.receipts,
        achieved_delivery_rate: m.delivered as f64 / secs,
        reconnect_ms: t.to_reconnect.summary(),
        catch_up_ms: t.to_catch_up.summary(),
    };
    print_summary(&report);
    let clean = !timed_out
        && !setup.aborted
        && report.msgs.lost == 0
        && report.msgs.duplicated == 0
        && report.unexpected_duplicate_acks == 0
        && report.gave_up == 0
        && report.reconnected >= report.killed
        && report.msgs.acked == report.msgs.scheduled;
    let lats = [
        m.latencies().as_slice(),
        &[("reconnect", &t.to_reconnect), ("catchup", &t.to_catch_up), ("handshake", &conn_stats.handshake)],
    ]
    .concat();
    outputs.finish(&report, &lats, clean)
}

fn print_summary(r: &StormReport<'_>) {
    let mut t = Table::default();
    let cfg = r.config;
    t.section("loadgen reconnect-storm");
    t.row("target", cfg.common.url.join(", "));
    t.row(
        "plan",
        format!(
            "{} pairs, {} msg/s for {:.0}s; {}% of connections cut off at {:.1}s; drain {:.0}s",
            cfg.pairs.pairs,
            cfg.pairs.rate,
            cfg.pairs.duration.0.as_secs_f64(),
            cfg.drop_percent,
            cfg.drop_at.0.as_secs_f64(),
            cfg.load.drain.0.as_secs_f64(),
        ),
    );
    t.row("workers", format!("{} process(es) x {} thread(s)", r.msgs.processes, cfg.common.threads));
    t.timed_out(r.timed_out);
    t.connections((r.established_initially, r.connections), r.setup_secs, &r.handshake_ms, r.failed_reasons);
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
    t.row("scheduled", r.msgs.scheduled);
    t.row("sent", format!("{} ({:.0}/s)", r.msgs.sent, r.msgs.achieved_send_rate));
    t.row("  due while sender down", r.queued_while_down);
    t.row("resent after reconnect", r.resent);
    t.row("  answered duplicate:true", r.resent_duplicate);
    t.row("  answered duplicate:false", r.resent_new);
    t.row("  seen in own replay first", r.own_in_replay);
    if r.unexpected_duplicate_acks > 0 {
        t.row("UNEXPECTED duplicate acks", r.unexpected_duplicate_acks);
    }
    t.row("acked", r.msgs.acked);
    t.row(
        "delivered",
        format!("{} ({:.0}/s), {} by replay", r.msgs.delivered, r.achieved_delivery_rate, r.delivered_by_replay),
    );
    t.row("lost (acked, not delivered)", r.msgs.lost);
    t.row("duplicated deliveries", r.msgs.duplicated);
    t.row("  of which by replay", r.duplicated_by_replay);
    if r.msgs.delivered_unacked > 0 {
        t.row("delivered but never acked", r.msgs.delivered_unacked);
    }
    t.row("receipts", r.receipts);
    t.row("missing receipts", r.msgs.missing_receipts);
    t.row("errors", r.msgs.errors_total);
    t.reasons(r.msgs.errors);
    if r.msgs.foreign_frames > 0 {
        t.row("foreign frames (ignored)", r.msgs.foreign_frames);
    }
    t.latency_header();
    t.latency("send lag (actual-intended)", &r.msgs.send_lag_ms);
    t.latency("intended send -> sent", &r.msgs.ack_ms);
    t.latency("intended send -> delivered", &r.msgs.delivery_ms);
    t.latency("intended send -> receipt", &r.msgs.receipt_ms);
    t.latency("cut off -> welcome", &r.reconnect_ms);
    t.latency("cut off -> synced", &r.catch_up_ms);
    if let Some(cpu) = &r.msgs.cpu {
        cpu.print(&mut t);
    }
    t.print();
}
