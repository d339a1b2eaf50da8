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
//! With several `--url`s the pairs' ends are placed as `--same-node`,
//! `--cross-node` or (by default) round-robin say (see
//! [`placement`](crate::scenarios::placement)), and the report says how many
//! pairs cross nodes.
//!
//! With `--procs`, pairs are dealt to the worker processes whole (see
//! [`share`](crate::procs::share)), so each pair's loss and duplicate checks stay
//! local; the schedule is global, so the processes together send `--rate`.

use std::sync::Arc;

use serde::{de::DeserializeOwned, Serialize};

use crate::{
    cli::{CommonArgs, LoadArgs, OneToOneArgs, PairsArgs},
    conn::{connection::ConnStats, driver::Driver, ramp::Ramp},
    report::{check::Figures, outputs::Outputs, shared::Live, stats::Merge, summary::Table},
    scenarios::{
        ctx::RunCtx,
        messages::{self, MsgFigures},
        one_to_one_reconnect::{self, ReconnectFigures},
        placement::{self, Placement, PlacementFigures},
        scenario::{nanos, safety_timeout, Conductor, ConnFigures, Load, LoadPlan, Loaded, Setup, Worker},
        schedule::sender_of,
        storm_traffic::StormTraffic,
        traffic::Traffic,
    },
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
        ("gateway_us", "/cpu/gateway_us_per_msg"),
        ("loadgen_us", "/cpu/loadgen_us_per_msg"),
        ("box_busy", "/cpu/box_busy_pct"),
        ("box_ctxt", "/cpu/box_ctxt_per_msg"),
        ("gateway_ctxt", "/cpu/gateway_ctxt_per_msg"),
        ("send_rate", "/achieved_send_rate"),
        ("reconnects", "/reconnects"),
        ("gave_up", "/gave_up"),
    ],
};

#[derive(Serialize)]
struct OneToOneReport<'a> {
    scenario: &'static str,
    config: &'a OneToOneArgs,
    #[serde(flatten)]
    conns: ConnFigures<'a>,
    #[serde(flatten)]
    msgs: MsgFigures<'a>,
    skipped_sender_down: u64,
    receipts: u64,
    duplicate_acks: u64,
    achieved_ack_rate: f64,
    achieved_delivery_rate: f64,
    last_delivery_after_end_ms: f64,
    /// Where the pairs' ends connected, when there are several gateways.
    #[serde(skip_serializing_if = "Option::is_none")]
    placement: Option<PlacementFigures>,
    /// With `--reconnect`: the reconnections.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    reconnect: Option<ReconnectFigures>,
}

/// Run the scenario; `Ok(false)` when anything was lost, duplicated,
/// refused or late beyond the drain, a check failed, or the run timed out.
pub(crate) fn run(args: OneToOneArgs) -> anyhow::Result<bool> {
    let (c, p) = (&args.common, &args.pairs);
    p.ensure_some(&args.load)?;
    p.ensure_rate_per_pair()?;
    let outputs = Outputs::parse(&c.report, &FIGURES)?;
    let conns = 2 * p.pairs;
    let body_bytes = args.load.body_bytes;
    let phases = [("load", nanos(p.duration.0))];
    let traffic = move |tag, live| Traffic::new(tag, body_bytes, live);
    let placement = |nodes| Placement::choose(args.placement.same_node, args.placement.cross_node, nodes);
    let (run, reconnect) = if args.reconnect {
        let traffic = move |tag, live| {
            let mut traffic = StormTraffic::new(tag, body_bytes, live);
            traffic.reconnect_patiently();
            traffic
        };
        let Some(run) = run_pairs((c, p, &args.load), placement, (2, 0xFACE), &phases, traffic)? else {
            return Ok(true);
        };
        let (run, figures) = one_to_one_reconnect::split(run);
        (run, Some(figures))
    } else {
        let Some(run) = run_pairs((c, p, &args.load), placement, (1, 0xFACE), &phases, traffic)? else {
            return Ok(true);
        };
        (run, None)
    };
    let PairRun { ctx, plan, setup, loaded, timed_out, conn_stats, stats: m } = run;

    let secs = p.duration.0.as_secs_f64().max(1e-9);
    let end_ns = loaded.as_ref().map_or(0, |l| l.go_ns + plan.load.duration_ns);
    let report = OneToOneReport {
        scenario: "one-to-one",
        config: &args,
        conns: ConnFigures::new(&conn_stats, conns, &setup, timed_out),
        msgs: MsgFigures::new(&m, secs, loaded.as_ref(), &ctx),
        skipped_sender_down: m.skipped,
        receipts: m.receipts,
        duplicate_acks: m.duplicate_acks,
        achieved_ack_rate: m.acked as f64 / secs,
        achieved_delivery_rate: m.delivered as f64 / secs,
        last_delivery_after_end_ms: messages::ms_after_end(m.last_delivery_ns, end_ns),
        placement: plan.placement_figures(ctx.nodes()),
        reconnect,
    };
    print_summary(&report);
    let clean = !timed_out && !setup.aborted && m.all_through() && report.reconnect.as_ref().is_none_or(|r| r.clean());
    let lats = [m.latencies().as_slice(), &[("handshake", &conn_stats.handshake)]].concat();
    outputs.finish(&report, &lats, clean)
}

/// The traffic of sender/recipient pairs, which the workers of
/// `one-to-one` and `reconnect-storm` (a one-to-one run with a storm in it)
/// open and feed alike.
pub(crate) trait PairLoad: Load {
    /// Add global pair `pair`: its sender and its recipient, each a (user,
    /// driver connection).
    fn add_pair(&mut self, pair: u64, sender: (u64, usize), recipient: (u64, usize));

    /// Message `n` of the schedule, intended at `intended_ns`, is due from
    /// local pair `local`.
    fn send(&mut self, driver: &mut Driver, local: usize, n: u64, intended_ns: u64, now_ns: u64);
}

/// A run of pairs up to its merged figures.
pub(crate) struct PairRun<S> {
    pub(crate) ctx: RunCtx,
    pub(crate) plan: PairPlan,
    pub(crate) setup: Setup,
    /// What the load saw (None: the setup failed and nothing was sent).
    pub(crate) loaded: Option<Loaded>,
    pub(crate) timed_out: bool,
    pub(crate) conn_stats: ConnStats,
    pub(crate) stats: S,
}

/// Run pairs as the command line asks, as `one-to-one` and
/// `reconnect-storm` both do: `traffic` makes each thread's load from the
/// run tag and the live counters, `handshakes` per connection bound the
/// safety timeout, `seed` the drivers' randomness, and `phases` name the
/// load windows; `placement` chooses the pairs' nodes given how many there
/// are. `None` in a worker process, whose part is then done.
pub(crate) fn run_pairs<L, F>(
    (c, p, load): (&CommonArgs, &PairsArgs, &LoadArgs),
    placement: impl FnOnce(usize) -> anyhow::Result<Placement>,
    (handshakes, seed): (u32, u64),
    phases: &[(&str, u64)],
    traffic: F,
) -> anyhow::Result<Option<PairRun<L::Stats>>>
where
    L: PairLoad,
    L::Stats: Merge + Serialize + DeserializeOwned + Send + 'static,
    F: Fn(String, Arc<Live>) -> L + Send + Sync + 'static,
{
    let conns = 2 * p.pairs;
    let ctx = RunCtx::new(c, p.pairs, 2)?;
    let timeout = safety_timeout(c, conns, load.conn_rate, handshakes, p.duration.0 + load.drain.0);
    let plan = PairPlan::new(p, c, load, placement(ctx.nodes())?);
    let work = {
        let worker = Worker::new(&ctx, c);
        move |t: usize| {
            let traffic = traffic(worker.tag.clone(), Arc::clone(&worker.live));
            worker.run(t, seed, traffic, |driver, traffic| plan.work(t, &worker, driver, traffic))
        }
    };
    let Some(mut run) = Conductor::start(&ctx, c, timeout, (true, conns), work)? else {
        return Ok(None);
    };
    let setup = run.set_up(|s| {
        (s.failed > 0).then(|| format!("loadgen: {} connection(s) failed to come up; not sending", s.failed))
    });
    let loaded = (!setup.aborted).then(|| run.load(&ctx.clock, phases, &load.gateway_pid));
    let timed_out = run.wind_down();
    let (conn_stats, stats) = run.join()?;
    Ok(Some(PairRun { ctx, plan, setup, loaded, timed_out, conn_stats, stats }))
}

/// What every worker of a run of pairs needs to know.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PairPlan {
    pairs: u64,
    first_user: u64,
    /// Which node each end of a pair connects to.
    pub(crate) placement: Placement,
    pub(crate) load: LoadPlan,
}

impl PairPlan {
    /// The plan the command line asks for.
    pub(crate) fn new(p: &PairsArgs, c: &CommonArgs, load: &LoadArgs, placement: Placement) -> Self {
        PairPlan {
            pairs: p.pairs,
            first_user: c.first_user,
            placement,
            load: LoadPlan::new(p.rate, p.duration.0, load),
        }
    }

    /// The nodes of pair `pair`'s sender and recipient over `nodes` nodes.
    pub(crate) fn pair_nodes(&self, pair: u64, nodes: usize) -> (usize, usize) {
        self.placement.pair_nodes(pair, self.pairs, nodes)
    }

    /// What the report says of the placement: nothing with one node.
    pub(crate) fn placement_figures(&self, nodes: usize) -> Option<PlacementFigures> {
        (nodes > 1).then(|| PlacementFigures {
            placement: self.placement,
            nodes,
            cross_node: placement::cross_pairs(self.placement, self.pairs, nodes),
            of: self.pairs,
        })
    }

    /// A worker's run: set up its pairs, send on schedule, drain.
    pub(crate) fn work<L: PairLoad>(
        &self,
        t: usize,
        w: &Worker,
        driver: &mut Driver,
        traffic: &mut L,
    ) -> anyhow::Result<()> {
        // Connection k: pair k / 2; even k is its sender, odd k its recipient.
        let ramp = Ramp::new(self.load.conn_rate, 2 * self.pairs, w.start_ns);
        let mut sender = None;
        let open = |driver: &mut Driver, traffic: &mut L, k: u64| {
            let pair = k / 2;
            let (sender_node, recipient_node) = self.pair_nodes(pair, driver.nodes());
            if k % 2 == 0 {
                let user = self.first_user + pair;
                sender = Some((user, driver.open(sender_node, user, 0)));
            } else {
                let user = self.first_user + self.pairs + pair;
                let recipient = (user, driver.open(recipient_node, user, 0));
                if let Some(s) = sender.take() {
                    traffic.add_pair(pair, s, recipient);
                }
            }
        };
        let owns = |k: u64| w.share.owns(t, k / 2);
        let Some(go) = w.set_up(driver, traffic, ramp, owns, open, |_, _, resolved| resolved)? else {
            return Ok(());
        };
        w.load(driver, traffic, go, &self.load, |driver, traffic, n, intended, now| {
            let pair = sender_of(n, self.pairs);
            if w.share.owns(t, pair) {
                traffic.send(driver, w.share.local_index(pair), n, intended, now);
            }
        })
    }
}

fn print_summary(r: &OneToOneReport<'_>) {
    let mut t = Table::default();
    let cfg = r.config;
    let (p, load) = (&cfg.pairs, &cfg.load);
    t.section("loadgen one-to-one");
    t.row("target", cfg.common.url.join(", "));
    if let Some(p) = &r.placement {
        t.row("placement", p.describe("pairs"));
    }
    t.row(
        "plan",
        format!(
            "{} pairs, {} msg/s for {:.0}s ({:.1}/s per pair), {} B bodies, drain {:.0}s, {} process(es) x {} thread(s)",
            p.pairs,
            p.rate,
            p.duration.0.as_secs_f64(),
            p.rate as f64 / p.pairs as f64,
            load.body_bytes,
            load.drain.0.as_secs_f64(),
            r.msgs.processes,
            cfg.common.threads
        ),
    );
    r.conns.print_head(&mut t);
    r.conns.print_tail(&mut t, "not every connection came up; nothing was sent");
    t.section("messages");
    t.row("scheduled", r.msgs.scheduled);
    t.row("sent", format!("{} ({:.0}/s)", r.msgs.sent, r.msgs.achieved_send_rate));
    if r.skipped_sender_down > 0 {
        t.row("skipped (sender down)", r.skipped_sender_down);
    }
    t.row("acked (sent)", format!("{} ({:.0}/s)", r.msgs.acked, r.achieved_ack_rate));
    t.row("delivered", format!("{} ({:.0}/s)", r.msgs.delivered, r.achieved_delivery_rate));
    t.row("receipts (delivered)", r.receipts);
    t.row("lost (acked, not delivered)", r.msgs.lost);
    t.row("duplicated deliveries", r.msgs.duplicated);
    t.row("delivered but never acked", r.msgs.delivered_unacked);
    t.row("missing receipts", r.msgs.missing_receipts);
    t.message_errors(r.duplicate_acks, r.msgs.errors, r.msgs.refused_sends, r.msgs.foreign_frames);
    if let Some(r) = &r.reconnect {
        t.row("reconnects (synced again)", r.reconnects);
        t.row("failed reconnect attempts", r.reconnect_failures);
        t.row("gave up reconnecting", r.gave_up);
        t.row("queued while down / resent", format!("{} / {}", r.queued_while_down, r.resent));
        t.row("first delivered by sync replay", r.delivered_by_replay);
        t.row(
            "end -> synced again",
            format!(
                "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                r.catch_up_ms.p50_ms, r.catch_up_ms.p99_ms, r.catch_up_ms.max_ms
            ),
        );
    }
    t.row("last delivery after end", format!("{:.1} ms", r.last_delivery_after_end_ms));
    t.latency_header();
    t.latency("send lag (actual-intended)", &r.msgs.send_lag_ms);
    t.latency("intended send -> sent", &r.msgs.ack_ms);
    t.latency("intended send -> delivered", &r.msgs.delivery_ms);
    t.latency("intended send -> receipt", &r.msgs.receipt_ms);
    if let Some(cpu) = &r.msgs.cpu {
        cpu.print(&mut t);
    }
    t.print();
}
