//! `loadgen group`: group messages at a fixed rate, and how long the
//! gateway takes to fan each one out to every member.
//!
//! The run: open `--groups x --size` connections (group `g`'s members are
//! users `first-user + g * size ..`), wait until every one is synced; each
//! group's first member creates the group listing the others and waits for
//! the `group` reply; then send `--rate` group messages per second in total
//! for `--duration` on an open-loop schedule, message `n` going to group
//! `n % groups` from a member taking turns (`--pick round-robin`) or chosen
//! at random; with `--ack` every member acknowledges every message with
//! `delivered` and the senders count the items of the batched receipts;
//! then wait up to `--drain` for the stragglers; close everything.
//!
//! Per message it measures send -> `sent`, send -> each member's copy, and
//! send -> the last member's copy (fan-out completion), all from the
//! intended send time. The gateway's `/metrics` is read after the groups
//! are created and again after the drain: the growth of
//! `chatgw_commit_bytes_total` over that of `chatgw_messages_stored_total`
//! is what the store writes per group message (receipts included with
//! `--ack`), which is where a fan-out-on-write design pays for its groups.
//!
//! The rate limit (200 frames/s per connection by default) bounds the
//! rates: a member sends `rate / groups / size` messages per second and,
//! with `--ack`, one `delivered` per message of its group; over 150 frames/s
//! per connection the run is refused rather than measuring the limiter.

use std::{net::SocketAddr, sync::Arc};

use serde::Serialize;

use crate::{
    cli::{GroupArgs, Pick},
    conn::{connection::ConnStats, driver::Driver, ramp::Ramp},
    report::{
        check::Figures,
        outputs::Outputs,
        probe,
        stats::{Reasons, Summary},
        summary::Table,
    },
    scenarios::{
        ctx::RunCtx,
        group_traffic::{GroupStats, GroupTraffic},
        messages::{self, MsgFigures},
        placement::{Placement, PlacementFigures},
        scenario::{safety_timeout, Conductor, ConnFigures, LoadPlan, Worker},
        schedule::splitmix,
    },
};

/// Highest frames per second per connection this tool allows.
const MAX_FRAMES_PER_CONN: f64 = 150.0;

/// What `--check` and `--hist` can name.
pub(crate) static FIGURES: Figures = Figures {
    latencies: &[
        ("lag", "send_lag_ms"),
        ("ack", "ack_ms"),
        ("deliver", "delivery_ms"),
        ("fanout", "fanout_ms"),
        ("receipt", "receipt_ms"),
        ("receipt_all", "receipt_all_ms"),
        ("handshake", "handshake_ms"),
    ],
    main: "fanout",
    numbers: &[
        ("conns", "/established"),
        ("failed", "/failed"),
        ("dropped", "/dropped"),
        ("groups", "/groups_created"),
        ("sent", "/sent"),
        ("acked", "/acked"),
        ("deliveries", "/delivered"),
        ("lost", "/lost"),
        ("dup", "/duplicated"),
        ("errors", "/errors_total"),
        ("skipped", "/skipped"),
        ("fanouts", "/fanouts_complete"),
        ("receipt_items", "/receipt_items"),
        ("missing_receipts", "/missing_receipts"),
        ("rate", "/deliveries_per_sec"),
        ("msg_rate", "/achieved_send_rate"),
        ("gateway_us", "/cpu/gateway_us_per_msg"),
        ("loadgen_us", "/cpu/loadgen_us_per_msg"),
        ("box_busy", "/cpu/box_busy_pct"),
        ("box_ctxt", "/cpu/box_ctxt_per_msg"),
        ("gateway_ctxt", "/cpu/gateway_ctxt_per_msg"),
        ("store_bytes_per_msg", "/store/bytes_per_message"),
        ("stored", "/store/messages_stored_delta"),
    ],
};

/// The gateway's store counters over the measured phase.
#[derive(Serialize, Default)]
struct StoreDelta {
    commit_bytes_delta: Option<f64>,
    messages_stored_delta: Option<f64>,
    receipts_stored_delta: Option<f64>,
    /// Commit bytes per stored message (receipt bytes included with --ack).
    bytes_per_message: Option<f64>,
    error: Option<String>,
}

/// The counters of one `/metrics` read.
struct StoreCounters {
    commit_bytes: Option<f64>,
    messages: Option<f64>,
    receipts: Option<f64>,
}

/// The store counters of every gateway, summed (a fleet shares one store,
/// and each node counts what it wrote).
fn read_store(admins: &[SocketAddr]) -> Result<StoreCounters, String> {
    let read = |name| probe::sum_metric(admins, name).map(|(total, _)| total).map_err(|e| format!("{e:#}"));
    Ok(StoreCounters {
        commit_bytes: read("chatgw_commit_bytes_total")?,
        messages: read("chatgw_messages_stored_total")?,
        receipts: read("chatgw_receipts_stored_total")?,
    })
}

fn store_delta(before: Result<StoreCounters, String>, after: Result<StoreCounters, String>) -> StoreDelta {
    match (before, after) {
        (Ok(b), Ok(a)) => {
            let d = |x: Option<f64>, y: Option<f64>| x.zip(y).map(|(x, y)| y - x);
            let bytes = d(b.commit_bytes, a.commit_bytes);
            let msgs = d(b.messages, a.messages);
            StoreDelta {
                commit_bytes_delta: bytes,
                messages_stored_delta: msgs,
                receipts_stored_delta: d(b.receipts, a.receipts),
                bytes_per_message: bytes.zip(msgs.filter(|m| *m > 0.0)).map(|(b, m)| b / m),
                error: None,
            }
        }
        (Err(e), _) | (_, Err(e)) => StoreDelta { error: Some(e), ..StoreDelta::default() },
    }
}

#[derive(Serialize)]
struct GroupReport<'a> {
    scenario: &'static str,
    config: &'a GroupArgs,
    #[serde(flatten)]
    conns: ConnFigures<'a>,
    groups_created: u64,
    group_errors: &'a Reasons,
    frames_per_conn_per_sec: f64,
    #[serde(flatten)]
    msgs: MsgFigures<'a>,
    skipped: u64,
    deliveries_expected: u64,
    fanouts_complete: u64,
    acks_sent: u64,
    receipt_frames: u64,
    receipt_items: u64,
    duplicate_receipt_items: u64,
    receipts_complete: u64,
    duplicate_acks: u64,
    deliveries_per_sec: f64,
    last_delivery_after_end_ms: f64,
    fanout_ms: Summary,
    receipt_all_ms: Summary,
    store: StoreDelta,
    /// Where the members connected, when there are several gateways.
    #[serde(skip_serializing_if = "Option::is_none")]
    placement: Option<PlacementFigures>,
}

/// Frames per second one member connection sends: its share of the
/// messages, plus one `delivered` per message of its group with `--ack`.
pub(crate) fn frames_per_conn(rate: u64, groups: u64, size: u64, ack: bool) -> f64 {
    let per_group = rate as f64 / groups.max(1) as f64;
    let sends = per_group / size.max(1) as f64;
    let acks = if ack { per_group * (size.saturating_sub(1)) as f64 / size.max(1) as f64 } else { 0.0 };
    sends + acks
}

/// The placement figures of `groups` groups of `size` members over `nodes`
/// nodes: a group crosses nodes when its members are not all on one.
fn group_placement(placement: Placement, groups: u64, size: u64, nodes: usize) -> PlacementFigures {
    let crosses =
        |g| (1..size).any(|m| placement.member_node(g, m, size, nodes) != placement.member_node(g, 0, size, nodes));
    PlacementFigures { placement, nodes, cross_node: (0..groups).filter(|&g| crosses(g)).count() as u64, of: groups }
}

/// Which member sends message `n` of a group.
pub(crate) fn sender_member(n: u64, groups: u64, size: u64, pick: Pick) -> u64 {
    match pick {
        Pick::RoundRobin => (n / groups.max(1)) % size.max(1),
        Pick::Random => splitmix(n) % size.max(1),
    }
}

/// Run the scenario; `Ok(false)` when a group could not be created, a
/// message was lost, duplicated or refused, a check failed, or the run
/// timed out.
pub(crate) fn run(args: GroupArgs) -> anyhow::Result<bool> {
    let c = &args.common;
    anyhow::ensure!(args.groups > 0, "--groups must be at least 1");
    anyhow::ensure!(args.size >= 2, "--size must be at least 2 (a sender and a recipient)");
    anyhow::ensure!(args.rate > 0, "--rate must be at least 1");
    anyhow::ensure!(args.load.conn_rate > 0, "--conn-rate must be at least 1");
    let per_conn = frames_per_conn(args.rate, args.groups, args.size, args.ack);
    anyhow::ensure!(
        per_conn <= MAX_FRAMES_PER_CONN,
        "--rate {} over --groups {} of --size {}{} is {per_conn:.0} frames/s per member connection, above \
         {MAX_FRAMES_PER_CONN}: the gateway rate-limits each connection to 200 frames/s by default (burst 400){}; \
         lower --rate or use more groups",
        args.rate,
        args.groups,
        args.size,
        if args.ack { " with --ack" } else { "" },
        if args.ack { ", and with --ack every member sends one `delivered` per message of its group" } else { "" },
    );
    let outputs = Outputs::parse(&c.report, &FIGURES)?;
    let conns = args.groups.saturating_mul(args.size);
    let ctx = RunCtx::new(c, args.groups, args.size)?;
    let placement = Placement::choose(args.placement.same_node, args.placement.cross_node, ctx.nodes())?;
    let gateways: Vec<_> = ctx.targets.iter().map(|t| t.addr).collect();
    let admins = probe::admin_addrs(&args.gateway_admin, &gateways)?;
    let timeout = safety_timeout(c, conns, args.load.conn_rate, 2, args.duration.0 + args.load.drain.0);

    let plan = Plan {
        groups: args.groups,
        size: args.size,
        first_user: c.first_user,
        pick: args.pick,
        placement,
        load: LoadPlan::new(args.rate, args.duration.0, &args.load),
    };
    let work = {
        let worker = Worker::new(&ctx, c);
        let (body_bytes, ack) = (args.load.body_bytes, args.ack);
        move |t: usize| {
            let (tag, live) = (worker.tag.clone(), Arc::clone(&worker.live));
            let traffic = GroupTraffic::new(tag, body_bytes, plan.size, plan.first_user, ack, live);
            worker.run(t, 0x6209, traffic, |driver, traffic| plan.work(t, &worker, driver, traffic))
        }
    };
    let Some(mut run) = Conductor::start(&ctx, c, timeout, (true, conns), work)? else {
        return Ok(true);
    };
    let setup = run.set_up(|s| {
        (s.failed > 0 || s.setup_errors > 0).then(|| {
            format!(
                "loadgen: {} connection(s) failed to come up, {} group(s) not created; not sending",
                s.failed, s.setup_errors
            )
        })
    });
    let mut loaded = None;
    let mut store_before = Err("not measured: the run did not start".to_owned());
    if !setup.aborted {
        store_before = read_store(&admins);
        loaded = Some(run.load(&ctx.clock, &[("load", plan.load.duration_ns)], &args.load.gateway_pid));
    }
    let timed_out = run.wind_down();
    let store_after = if loaded.is_some() { read_store(&admins) } else { Err("not measured".to_owned()) };
    let (conn_stats, t): (ConnStats, GroupStats) = run.join()?;

    let m = &t.common;
    let secs = args.duration.0.as_secs_f64().max(1e-9);
    let end_ns = loaded.as_ref().map_or(0, |l| l.go_ns + plan.load.duration_ns);
    let others = args.size - 1;
    let report = GroupReport {
        scenario: "group",
        config: &args,
        conns: ConnFigures::new(&conn_stats, conns, &setup, timed_out),
        groups_created: t.groups_created,
        group_errors: &t.group_errors,
        frames_per_conn_per_sec: per_conn,
        msgs: MsgFigures::new(m, secs, loaded.as_ref(), &ctx),
        skipped: m.skipped,
        deliveries_expected: m.acked * others,
        fanouts_complete: t.fanouts_complete,
        acks_sent: t.acks_sent,
        receipt_frames: t.receipt_frames,
        receipt_items: m.receipts,
        duplicate_receipt_items: t.duplicate_receipt_items,
        receipts_complete: t.receipts_complete,
        duplicate_acks: m.duplicate_acks,
        deliveries_per_sec: m.delivered as f64 / secs,
        last_delivery_after_end_ms: messages::ms_after_end(m.last_delivery_ns, end_ns),
        fanout_ms: t.to_fanout.summary(),
        receipt_all_ms: t.to_receipt_all.summary(),
        store: store_delta(store_before, store_after),
        placement: (ctx.nodes() > 1).then(|| group_placement(placement, args.groups, args.size, ctx.nodes())),
    };
    print_summary(&report);
    let clean = !timed_out && !setup.aborted && m.all_through() && t.duplicate_receipt_items == 0;
    let lats = [
        m.latencies().as_slice(),
        &[("fanout", &t.to_fanout), ("receipt_all", &t.to_receipt_all), ("handshake", &conn_stats.handshake)],
    ]
    .concat();
    outputs.finish(&report, &lats, clean)
}

/// What every worker needs to know about the run.
#[derive(Clone, Copy, Debug)]
struct Plan {
    groups: u64,
    size: u64,
    first_user: u64,
    pick: Pick,
    placement: Placement,
    load: LoadPlan,
}

impl Plan {
    /// A worker's run: connect its groups' members, create the groups
    /// once they are all up, send on schedule, drain.
    fn work(&self, t: usize, w: &Worker, driver: &mut Driver, traffic: &mut GroupTraffic) -> anyhow::Result<()> {
        // Connection k: member k % size of group k / size.
        let ramp = Ramp::new(self.load.conn_rate, self.groups * self.size, w.start_ns);
        let open = |driver: &mut Driver, traffic: &mut GroupTraffic, k: u64| {
            let (g, member) = (k / self.size, (k % self.size) as usize);
            let node = self.placement.member_node(g, member as u64, self.size, driver.nodes());
            let conn = driver.open(node, self.first_user + k, 0);
            traffic.add_member(w.share.local_index(g), g, member, conn);
        };
        let mut creating = false;
        let ready = |driver: &mut Driver, traffic: &mut GroupTraffic, resolved: bool| {
            if !creating && resolved {
                creating = true;
                traffic.create_groups(driver);
            }
            let ready = creating && traffic.groups_settled();
            traffic.flush(driver);
            ready
        };
        let owns = |k: u64| w.share.owns(t, k / self.size);
        let Some(go) = w.set_up(driver, traffic, ramp, owns, open, ready)? else {
            return Ok(());
        };
        w.load(driver, traffic, go, &self.load, |driver, traffic, n, intended, now| {
            let g = n % self.groups;
            if w.share.owns(t, g) {
                let member = sender_member(n, self.groups, self.size, self.pick) as usize;
                traffic.send(driver, w.share.local_index(g), member, n, intended, now);
            }
        })
    }
}

fn print_summary(r: &GroupReport<'_>) {
    let mut t = Table::default();
    let cfg = r.config;
    t.section("loadgen group");
    t.row("target", cfg.common.url.join(", "));
    if let Some(p) = &r.placement {
        t.row("placement", p.describe("groups"));
    }
    t.row(
        "plan",
        format!(
            "{} groups x {} members, {} msg/s for {:.0}s ({:.1}/s per group, {} sender), {} B bodies{}, drain {:.0}s",
            cfg.groups,
            cfg.size,
            cfg.rate,
            cfg.duration.0.as_secs_f64(),
            cfg.rate as f64 / cfg.groups as f64,
            cfg.pick.name(),
            cfg.load.body_bytes,
            if cfg.ack { ", members ack" } else { "" },
            cfg.load.drain.0.as_secs_f64(),
        ),
    );
    t.row(
        "workers",
        format!(
            "{} process(es) x {} thread(s); {:.1} frames/s per member connection",
            r.msgs.processes, cfg.common.threads, r.frames_per_conn_per_sec
        ),
    );
    r.conns.print_head(&mut t);
    t.row("groups created", format!("{} / {}", r.groups_created, cfg.groups));
    t.reasons(r.group_errors);
    r.conns.print_tail(&mut t, "not every connection came up or group was created; nothing was sent");
    t.section("group messages");
    t.row("scheduled", r.msgs.scheduled);
    t.row("sent", format!("{} ({:.0}/s)", r.msgs.sent, r.msgs.achieved_send_rate));
    if r.skipped > 0 {
        t.row("skipped (sender down)", r.skipped);
    }
    t.row("acked (sent)", r.msgs.acked);
    t.row("deliveries", format!("{} / {} ({:.0}/s)", r.msgs.delivered, r.deliveries_expected, r.deliveries_per_sec));
    t.row("fan-outs complete", format!("{} / {}", r.fanouts_complete, r.msgs.acked));
    t.row("lost (acked, not delivered)", r.msgs.lost);
    t.row("duplicated deliveries", r.msgs.duplicated);
    if r.msgs.delivered_unacked > 0 {
        t.row("delivered but never acked", r.msgs.delivered_unacked);
    }
    if cfg.ack {
        t.row("delivered acks sent", r.acks_sent);
        t.row("receipt items", format!("{} in {} receipt frames", r.receipt_items, r.receipt_frames));
        t.row("receipts complete", format!("{} / {}", r.receipts_complete, r.msgs.acked));
        t.row("missing receipt items", r.msgs.missing_receipts);
        if r.duplicate_receipt_items > 0 {
            t.row("duplicate receipt items", r.duplicate_receipt_items);
        }
    }
    t.message_errors(r.duplicate_acks, r.msgs.errors, r.msgs.refused_sends, r.msgs.foreign_frames);
    t.row("last delivery after end", format!("{:.1} ms", r.last_delivery_after_end_ms));
    t.latency_header();
    t.latency("send lag (actual-intended)", &r.msgs.send_lag_ms);
    t.latency("intended send -> sent", &r.msgs.ack_ms);
    t.latency("send -> each delivery", &r.msgs.delivery_ms);
    t.latency("send -> last delivery", &r.fanout_ms);
    if cfg.ack {
        t.latency("send -> each receipt item", &r.msgs.receipt_ms);
        t.latency("send -> last receipt item", &r.receipt_all_ms);
    }
    t.section("gateway store (from /metrics)");
    match &r.store.error {
        Some(e) => t.row("unavailable", e),
        None => {
            let f = |v: Option<f64>| v.map_or("not in /metrics".to_owned(), |v| format!("{v:.0}"));
            t.row("messages stored", f(r.store.messages_stored_delta));
            t.row("receipts stored", f(r.store.receipts_stored_delta));
            t.row("commit bytes", f(r.store.commit_bytes_delta));
            let per = r.store.bytes_per_message.map_or("-".to_owned(), |b| format!("{b:.0} bytes"));
            let note = if cfg.ack { " (receipts included)" } else { "" };
            t.row("bytes per group message", format!("{per}{note}"));
        }
    }
    if let Some(cpu) = &r.msgs.cpu {
        cpu.print(&mut t);
    }
    t.print();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_per_connection_count_sends_and_acks() {
        // 4 groups of 256 at 100 msg/s: 25/s per group, ~0.1/s sends per member.
        assert!((frames_per_conn(100, 4, 256, false) - 25.0 / 256.0).abs() < 1e-9);
        // With acks every member acknowledges 255/256 of its group's 25/s.
        assert!((frames_per_conn(100, 4, 256, true) - 25.0).abs() < 1e-9);
        assert!(frames_per_conn(1000, 4, 256, true) > MAX_FRAMES_PER_CONN);
    }

    #[test]
    fn round_robin_senders_take_turns_within_each_group() {
        let senders: Vec<u64> = (0..12).map(|n| sender_member(n, 4, 3, Pick::RoundRobin)).collect();
        // Messages 0..4 go to groups 0..4 from member 0, then member 1, ...
        assert_eq!(senders, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
        let random: Vec<u64> = (0..1000).map(|n| sender_member(n, 4, 8, Pick::Random)).collect();
        assert!(random.iter().all(|&m| m < 8));
        assert!((0..8).all(|m| random.contains(&m)));
        assert_eq!(sender_member(5, 4, 8, Pick::Random), sender_member(5, 4, 8, Pick::Random));
    }

    #[test]
    fn store_delta_divides_bytes_by_messages() {
        let c = |b, m| Ok(StoreCounters { commit_bytes: Some(b), messages: Some(m), receipts: None });
        let d = store_delta(c(1000.0, 10.0), c(5000.0, 20.0));
        assert_eq!(
            (d.commit_bytes_delta, d.messages_stored_delta, d.bytes_per_message),
            (Some(4000.0), Some(10.0), Some(400.0))
        );
        assert!(store_delta(Err("x".into()), c(1.0, 1.0)).error.is_some());
        assert_eq!(store_delta(c(1.0, 5.0), c(2.0, 5.0)).bytes_per_message, None);
    }
}
