//! `loadgen failover`: what a fleet's users see when one of its gateways
//! dies.
//!
//! The run is a one-to-one run over several gateways (`--url a,b,c`;
//! `--same-node`, `--cross-node` or round-robin placement) whose devices
//! are those of the reconnect storm
//! ([`storm_traffic`](crate::scenarios::storm_traffic)): a cursor, an outbox
//! resent with the same client ids, reconnection at once. `--kill-after`
//! past the go, the gateway behind `--victim-url` is SIGKILLed
//! (`--victim-pid`, see [`failover_kill`](crate::scenarios::failover_kill));
//! its devices lose their connections, reconnect to the next URL in the
//! list, `sync` from their cursor and resend what had no `sent`, as the
//! client's normal resume does. The figures:
//!
//! - reconnect + sync: from the kill to each device's first `synced` on a
//!   survivor (p50, p99, max);
//! - messages lost (acknowledged `sent`, never received by the recipient)
//!   and duplicated (a recipient got an id twice): both must be 0;
//! - the ghost window: from the kill until every survivor's `/metrics`
//!   shows `chatgw_fleet_live_nodes` one lower (see
//!   [`ghost`](crate::scenarios::ghost)).
//!
//! The run is bounded by `--duration` and `--settle` (the wait for every
//! device to be back and every message through). It runs in one process
//! (no `--procs`): the kill and the ghost watch are one process's doing.

use std::{sync::Arc, time::Instant};

use serde::Serialize;

use crate::{
    cli::FailoverArgs,
    conn::net::Target,
    report::{
        check::Figures,
        outputs::Outputs,
        probe,
        stats::{Reasons, Summary},
        summary::Table,
    },
    scenarios::{
        failover_kill::{FailoverPlan, KillMark},
        ghost::{GhostFigures, GhostWatch},
        messages::MsgFigures,
        one_to_one::{run_pairs, PairRun},
        placement::{self, Placement, PlacementFigures},
        scenario::{nanos, safety_timeout},
        storm_traffic::StormTraffic,
    },
};

/// What `--check` and `--hist` can name.
pub(crate) static FIGURES: Figures = Figures {
    latencies: &[
        ("failover", "reconnect_sync_ms"),
        ("lag", "send_lag_ms"),
        ("ack", "ack_ms"),
        ("deliver", "delivery_ms"),
        ("receipt", "receipt_ms"),
        ("handshake", "handshake_ms"),
    ],
    main: "failover",
    numbers: &[
        ("conns", "/established_initially"),
        ("failed", "/failed"),
        ("victims", "/victim/users"),
        ("failed_over", "/failed_over"),
        ("reconnect_failures", "/reconnect_failures"),
        ("sent", "/sent"),
        ("acked", "/acked"),
        ("delivered", "/delivered"),
        ("lost", "/lost"),
        ("dup", "/duplicated"),
        ("resent", "/resent"),
        ("errors", "/errors_total"),
        ("missing_receipts", "/missing_receipts"),
        ("ghost_ms", "/ghost/window_ms"),
    ],
};

/// The gateway that was killed.
#[derive(Serialize)]
struct Victim {
    url: String,
    pid: u32,
    /// Its index in `--url`.
    node: usize,
    /// Where its users reconnected.
    reconnect_to: String,
    /// Users connected to it before the kill.
    users: u64,
    killed: bool,
    kill_error: Option<String>,
}

#[derive(Serialize)]
struct FailoverReport<'a> {
    scenario: &'static str,
    config: &'a FailoverArgs,
    timed_out: bool,
    setup_aborted: bool,
    connections: u64,
    established_initially: u64,
    failed: u64,
    failed_reasons: &'a Reasons,
    setup_secs: f64,
    handshake_ms: Summary,
    placement: PlacementFigures,
    victim: Victim,
    /// Devices synced again on a survivor after the kill.
    failed_over: u64,
    reconnect_failures: u64,
    gave_up: u64,
    unplanned_reasons: &'a Reasons,
    reconnect_sync_ms: Summary,
    #[serde(flatten)]
    msgs: MsgFigures<'a>,
    queued_while_down: u64,
    resent: u64,
    resent_duplicate: u64,
    delivered_by_replay: u64,
    ghost: GhostFigures,
}

/// The index of `victim` in `targets`.
pub(crate) fn victim_node(targets: &[Target], victim: &str) -> anyhow::Result<usize> {
    let v = Target::parse(victim)?;
    targets
        .iter()
        .position(|t| t.addr == v.addr)
        .ok_or_else(|| anyhow::anyhow!("--victim-url {victim} is not one of the --url gateways"))
}

/// Users of `pairs` pairs placed on node `node`.
pub(crate) fn users_on(placement: Placement, pairs: u64, nodes: usize, node: usize) -> u64 {
    (0..pairs)
        .map(|p| {
            let (s, r) = placement.pair_nodes(p, pairs, nodes);
            u64::from(s == node) + u64::from(r == node)
        })
        .sum()
}

/// Run the scenario; `Ok(false)` when the victim could not be killed, a
/// message was lost or duplicated, a victim's user did not come back, a
/// check failed, or the run timed out.
pub(crate) fn run(args: FailoverArgs) -> anyhow::Result<bool> {
    let (c, p) = (&args.common, &args.pairs);
    let load = args.load();
    p.ensure_some(&load)?;
    p.ensure_rate_per_pair()?;
    anyhow::ensure!(c.procs == 1, "failover runs in one process: leave out --procs");
    anyhow::ensure!(args.kill_after.0 < p.duration.0, "--kill-after must be before the end of --duration");
    let targets = placement::parse_urls(&c.url)?;
    anyhow::ensure!(targets.len() >= 2, "failover needs at least two gateways in --url");
    let victim = victim_node(&targets, &args.victim_url)?;
    let to_node = (victim + 1) % targets.len();
    let placement = Placement::choose(args.placement.same_node, args.placement.cross_node, targets.len())?;
    let survivors = if args.gateway_admin.is_empty() {
        Vec::new()
    } else {
        let gateways: Vec<_> = targets.iter().map(|t| t.addr).collect();
        let admins = probe::admin_addrs(&args.gateway_admin, &gateways)?;
        admins.into_iter().enumerate().filter(|&(i, _)| i != victim).map(|(_, a)| a).collect()
    };
    let outputs = Outputs::parse(&c.report, &FIGURES)?;
    let conns = 2 * p.pairs;

    let mark = Arc::new(KillMark::default());
    let plan = FailoverPlan {
        after_ns: nanos(args.kill_after.0),
        victim_pid: args.victim_pid,
        victim_node: victim,
        to_node,
        mark: Arc::clone(&mark),
    };
    let deadline = Instant::now() + safety_timeout(c, conns, load.conn_rate, 2, p.duration.0 + load.drain.0);
    let watch = GhostWatch::start(survivors, Arc::clone(&mark), deadline)?;
    let body_bytes = load.body_bytes;
    let traffic = move |tag, live| {
        let mut traffic = StormTraffic::new(tag, body_bytes, live);
        traffic.plan_failover(plan.clone());
        traffic
    };
    let phases = [("load", nanos(args.kill_after.0)), ("failover", nanos(p.duration.0))];
    let run = run_pairs((c, p, &load), move |_| Ok(placement), (2, 0xFA11), &phases, traffic);
    let nodes = watch.finish();
    let Some(PairRun { ctx, plan, setup, loaded, timed_out, conn_stats, stats: t }) = run? else {
        return Ok(true);
    };

    let m = &t.common;
    let secs = p.duration.0.as_secs_f64().max(1e-9);
    let killed = mark.at_ns().is_some() && mark.error().is_none();
    let report = FailoverReport {
        scenario: "failover",
        config: &args,
        timed_out,
        setup_aborted: setup.aborted,
        connections: conns,
        established_initially: setup.snap.up,
        failed: conn_stats.failed.total(),
        failed_reasons: &conn_stats.failed,
        setup_secs: setup.secs,
        handshake_ms: conn_stats.handshake.summary(),
        placement: PlacementFigures {
            placement,
            nodes: ctx.nodes(),
            cross_node: placement::cross_pairs(placement, p.pairs, ctx.nodes()),
            of: p.pairs,
        },
        victim: Victim {
            url: args.victim_url.clone(),
            pid: args.victim_pid,
            node: victim,
            reconnect_to: c.url.get(to_node).cloned().unwrap_or_default(),
            users: users_on(plan.placement, p.pairs, ctx.nodes(), victim),
            killed,
            kill_error: mark.error(),
        },
        failed_over: t.to_failover.count(),
        reconnect_failures: t.reconnect_failures,
        gave_up: t.gave_up,
        unplanned_reasons: &conn_stats.dropped,
        reconnect_sync_ms: t.to_failover.summary(),
        msgs: MsgFigures::new(m, secs, loaded.as_ref(), &ctx),
        queued_while_down: t.queued_while_down,
        resent: t.resent,
        resent_duplicate: t.resent_duplicate,
        delivered_by_replay: t.delivered_by_replay,
        ghost: GhostFigures::from_nodes(nodes, killed),
    };
    print_summary(&report);
    let clean = !timed_out
        && !setup.aborted
        && killed
        && report.msgs.lost == 0
        && report.msgs.duplicated == 0
        && report.gave_up == 0
        && report.failed_over >= report.victim.users
        && report.msgs.acked == report.msgs.scheduled;
    let lats =
        [m.latencies().as_slice(), &[("failover", &t.to_failover), ("handshake", &conn_stats.handshake)]].concat();
    outputs.finish(&report, &lats, clean)
}

fn print_summary(r: &FailoverReport<'_>) {
    let mut t = Table::default();
    let cfg = r.config;
    t.section("loadgen failover");
    t.row("target", cfg.common.url.join(", "));
    t.row("placement", r.placement.describe("pairs"));
    t.row(
        "plan",
        format!(
            "{} pairs, {} msg/s for {:.0}s; kill node {} (pid {}) at {:.1}s; settle {:.0}s",
            cfg.pairs.pairs,
            cfg.pairs.rate,
            cfg.pairs.duration.0.as_secs_f64(),
            r.victim.url,
            r.victim.pid,
            cfg.kill_after.0.as_secs_f64(),
            cfg.settle.0.as_secs_f64(),
        ),
    );
    t.timed_out(r.timed_out);
    t.connections((r.established_initially, r.connections), r.setup_secs, &r.handshake_ms, r.failed_reasons);
    if r.setup_aborted {
        t.row("SETUP ABORTED", "not every connection came up; nothing was sent, nothing killed");
    }
    t.section("failover");
    match (&r.victim.kill_error, r.victim.killed) {
        (Some(e), _) => t.row("KILL FAILED", e),
        (None, true) => t.row("killed", format!("pid {} ({})", r.victim.pid, r.victim.url)),
        (None, false) => t.row("killed", "no (the run did not get that far)"),
    }
    t.row("users on the victim", r.victim.users);
    t.row("synced again elsewhere", format!("{} (reconnected to {})", r.failed_over, r.victim.reconnect_to));
    t.row("reconnect attempts failed", r.reconnect_failures);
    if r.gave_up > 0 {
        t.row("GAVE UP reconnecting", r.gave_up);
    }
    t.reasons(r.unplanned_reasons);
    match (r.ghost.window_ms, &r.ghost.note) {
        (Some(ms), _) => t.row("ghost window", format!("{ms:.0} ms (polled every 100 ms)")),
        (None, Some(note)) => t.row("ghost window", format!("not measured: {note}")),
        (None, None) => t.row("ghost window", "not measured"),
    }
    for n in &r.ghost.nodes {
        let before = n.before.map_or("-".to_owned(), |b| b.to_string());
        let after = n.dropped_after_ms.map_or("no drop seen".to_owned(), |ms| format!("dropped after {ms:.0} ms"));
        t.row(&format!("  admin {}", n.admin), format!("live nodes {before}, {after}"));
    }
    t.section("messages");
    t.row("scheduled", r.msgs.scheduled);
    t.row("sent", format!("{} ({:.0}/s)", r.msgs.sent, r.msgs.achieved_send_rate));
    t.row("  due while sender down", r.queued_while_down);
    t.row("resent (same client id)", format!("{} ({} answered duplicate:true)", r.resent, r.resent_duplicate));
    t.row("acked", r.msgs.acked);
    t.row("delivered", format!("{} ({} by replay)", r.msgs.delivered, r.delivered_by_replay));
    t.row("lost (acked, not delivered)", r.msgs.lost);
    t.row("duplicated deliveries", r.msgs.duplicated);
    t.row("missing receipts", r.msgs.missing_receipts);
    t.row("errors", r.msgs.errors_total);
    t.reasons(r.msgs.errors);
    t.latency_header();
    t.latency("kill -> synced elsewhere", &r.reconnect_sync_ms);
    t.latency("intended send -> sent", &r.msgs.ack_ms);
    t.latency("intended send -> delivered", &r.msgs.delivery_ms);
    if let Some(cpu) = &r.msgs.cpu {
        cpu.print(&mut t);
    }
    t.print();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_victim_is_found_in_the_url_list() {
        let targets = placement::parse_urls(&["127.0.0.1:1".into(), "ws://127.0.0.1:2/ws".into()]).unwrap();
        assert_eq!(victim_node(&targets, "127.0.0.1:2").unwrap(), 1);
        assert!(victim_node(&targets, "127.0.0.1:3").is_err());
    }

    #[test]
    fn users_on_the_victim_follow_the_placement() {
        // 4 pairs on 2 nodes, same-node: pairs 1 and 3 are on node 1, both ends.
        assert_eq!(users_on(Placement::SameNode, 4, 2, 1), 4);
        // Cross-node: every pair has exactly one end on each of 2 nodes.
        assert_eq!(users_on(Placement::CrossNode, 4, 2, 1), 4);
        assert_eq!(users_on(Placement::CrossNode, 6, 3, 0), 4);
    }
}
