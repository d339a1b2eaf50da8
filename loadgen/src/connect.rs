//! `loadgen connect`: how many connections the gateway holds, how fast it
//! takes them, and what each one costs it.
//!
//! The run: sample the gateway's RSS; open `--conns` connections at
//! `--rate` per second, each one authenticated and synced (a connection
//! counts only once `synced` arrived, because that is when the gateway has
//! registered it for live delivery); hold them all for `--hold`; ask the
//! gateway's `/metrics` how many it thinks are open and sample its RSS
//! again; close everything. RSS growth divided by established connections
//! is the gateway's memory per idle connection, kernel socket buffers not
//! included (those are not in the process's RSS).
//!
//! With `--procs` the workers only open and hold connections; the parent
//! samples the gateways, so the figures are the same whichever way the
//! connections were spread. Several gateways sharing the port (each
//! `--gateway-pid`) are measured one by one, each against the sockets it
//! gained, since SO_REUSEPORT splits the connections between them.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{
    check::Figures,
    cli::ConnectArgs,
    conn::ConnStats,
    ctx::RunCtx,
    driver::{Driver, DriverConfig, Ignore},
    fleet::{self, Started},
    outputs::Outputs,
    probe,
    progress::Progress,
    ramp::Ramp,
    report::{self, Table},
    run::watch_until,
    share::Share,
    shared::{ns, Clock, Coord},
    stats::{Reasons, Summary},
    token::Minter,
};

/// Time allowed for close handshakes at the end.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Longest a worker sleeps in its poller before looking at the phase flags.
const IDLE_POLL: Duration = Duration::from_millis(50);

/// What `--check` and `--hist` can name.
pub(crate) static FIGURES: Figures = Figures {
    latencies: &[("handshake", "handshake_ms"), ("synced", "to_synced_ms")],
    main: "handshake",
    numbers: &[
        ("conns", "/established"),
        ("failed", "/failed"),
        ("dropped", "/dropped_during_hold"),
        ("rate", "/achieved_conn_rate"),
        ("gateway_conns", "/gateway_connections_open"),
        ("rss_per_conn", "/gateway_bytes_per_connection"),
        ("loadgen_rss", "/loadgen_rss_bytes"),
    ],
};

/// One gateway's memory over the run.
#[derive(Serialize, Debug, Clone)]
struct GatewayMemory {
    pid: u32,
    rss_before_bytes: u64,
    rss_after_bytes: u64,
    rss_growth_bytes: i64,
    sockets_before: u64,
    sockets_after: u64,
    /// Sockets gained: the connections this gateway holds.
    connections: i64,
    bytes_per_connection: Option<f64>,
}

/// RSS and sockets of one gateway at one moment.
fn sample(pid: u32) -> anyhow::Result<(u64, u64)> {
    Ok((probe::rss_bytes(pid)?, probe::socket_count(pid)?))
}

#[derive(Serialize)]
struct ConnectReport<'a> {
    scenario: &'static str,
    config: &'a ConnectArgs,
    timed_out: bool,
    opened: u64,
    established: u64,
    failed: u64,
    failed_reasons: &'a Reasons,
    dropped_during_hold: u64,
    dropped_reasons: &'a Reasons,
    closed_clean: u64,
    ramp_secs: f64,
    achieved_conn_rate: f64,
    handshake_ms: Summary,
    to_synced_ms: Summary,
    sync_replayed_frames: u64,
    gateway_connections_open: Option<f64>,
    metrics_error: Option<String>,
    gateway_rss_before_bytes: Option<u64>,
    gateway_rss_after_bytes: Option<u64>,
    gateway_rss_growth_bytes: Option<i64>,
    gateway_bytes_per_connection: Option<f64>,
    gateways: Vec<GatewayMemory>,
    loadgen_rss_bytes: Option<u64>,
    processes: usize,
    source_addresses: usize,
}

/// Run the scenario; `Ok(false)` when connections failed, a check failed
/// or the run timed out.
pub(crate) fn run(args: ConnectArgs) -> anyhow::Result<bool> {
    let c = &args.common;
    anyhow::ensure!(args.conns > 0, "--conns must be at least 1");
    anyhow::ensure!(args.rate > 0, "--rate must be at least 1");
    let outputs = Outputs::parse(c, &FIGURES)?;
    let ctx = RunCtx::new(c, args.conns, 1)?;
    let ramp_estimate = Duration::from_secs_f64(args.conns as f64 / args.rate as f64);
    let timeout = c
        .timeout
        .map(|t| t.0)
        .unwrap_or(ramp_estimate + c.handshake_timeout.0 + args.hold.0 + CLOSE_GRACE + Duration::from_secs(60));
    let started = Instant::now();
    let deadline = started + timeout;

    let before = match ctx.role {
        crate::ctx::Role::Worker => Vec::new(),
        _ => args.gateway_pid.iter().map(|&pid| sample(pid)).collect::<anyhow::Result<Vec<_>>>()?,
    };
    let work = {
        let config = DriverConfig {
            target: ctx.target.clone(),
            sources: ctx.sources.clone(),
            handshake_timeout: c.handshake_timeout.0,
        };
        let minter = Minter::new(&c.secret);
        let (clock, live, coord, share, start_ns) =
            (ctx.clock, std::sync::Arc::clone(&ctx.live), std::sync::Arc::clone(&ctx.coord), ctx.share, ctx.start_ns);
        let (conns, rate, first_user) = (args.conns, args.rate, c.first_user);
        move |t: usize| {
            let seed = 0x5EED ^ share.lane(t) as u64;
            let mut driver = Driver::new(config.clone(), minter.clone(), clock, std::sync::Arc::clone(&live), seed)?;
            let mut ramp = Ramp::new(rate, conns, start_ns);
            hold_connections(t, share, first_user, &mut driver, &mut ramp, &clock, &coord)?;
            driver.close_all(CLOSE_GRACE, &mut Ignore);
            Ok(driver.stats)
        }
    };
    let fleet = match fleet::start(&ctx, timeout, work)? {
        Started::WorkerDone => return Ok(true),
        Started::Conduct(f) => f,
    };

    let mut progress = Progress::new(c.quiet, false, args.conns);
    let all_up =
        watch_until(&mut progress, &*fleet, "connect", deadline, false, || fleet.ready() || fleet.any_finished());
    let ramp_secs = ctx.clock.now_ns().saturating_sub(ctx.start_ns) as f64 / 1e9;
    if all_up {
        let hold_end = deadline.min(Instant::now() + args.hold.0);
        watch_until(&mut progress, &*fleet, "hold", hold_end, true, || fleet.any_finished());
    }
    let timed_out = Instant::now() >= deadline;
    let (open_now, metrics_error) = match probe::fetch_metrics(ctx.target.addr, &ctx.target.host) {
        Ok(body) => (probe::metric_value(&body, "chatgw_connections_open"), None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    let after = args.gateway_pid.iter().map(|&pid| sample(pid)).collect::<anyhow::Result<Vec<_>>>()?;
    let own_rss = probe::own_rss_bytes();
    if timed_out {
        fleet.abort();
    }
    fleet.go(ctx.clock.now_ns());
    watch_until(&mut progress, &*fleet, "close", Instant::now() + 2 * CLOSE_GRACE, false, || fleet.all_finished());
    progress.finish();
    let mut stats = ConnStats::default();
    for s in fleet.join()? {
        stats.merge(&s);
    }

    let gateways: Vec<GatewayMemory> = args
        .gateway_pid
        .iter()
        .zip(before.iter().zip(&after))
        .map(|(&pid, (&(rss_b, sock_b), &(rss_a, sock_a)))| {
            let growth = rss_a as i64 - rss_b as i64;
            let connections = sock_a as i64 - sock_b as i64;
            GatewayMemory {
                pid,
                rss_before_bytes: rss_b,
                rss_after_bytes: rss_a,
                rss_growth_bytes: growth,
                sockets_before: sock_b,
                sockets_after: sock_a,
                connections,
                bytes_per_connection: (connections > 0).then(|| growth as f64 / connections as f64),
            }
        })
        .collect();
    let measured = !gateways.is_empty();
    let rss_before = measured.then(|| gateways.iter().map(|g| g.rss_before_bytes).sum::<u64>());
    let rss_after = measured.then(|| gateways.iter().map(|g| g.rss_after_bytes).sum::<u64>());
    let growth = rss_before.zip(rss_after).map(|(b, a)| a as i64 - b as i64);
    let per_conn = growth.filter(|_| stats.established > 0).map(|g| g as f64 / stats.established as f64);
    let report = ConnectReport {
        scenario: "connect",
        config: &args,
        timed_out,
        opened: stats.opened,
        established: stats.established,
        failed: stats.failed.total(),
        failed_reasons: &stats.failed,
        dropped_during_hold: stats.dropped.total(),
        dropped_reasons: &stats.dropped,
        closed_clean: stats.closed_clean,
        ramp_secs,
        achieved_conn_rate: stats.established as f64 / ramp_secs.max(1e-9),
        handshake_ms: stats.handshake.summary(),
        to_synced_ms: stats.to_synced.summary(),
        sync_replayed_frames: stats.replayed,
        gateway_connections_open: open_now,
        metrics_error,
        gateway_rss_before_bytes: rss_before,
        gateway_rss_after_bytes: rss_after,
        gateway_rss_growth_bytes: growth,
        gateway_bytes_per_connection: per_conn,
        gateways,
        loadgen_rss_bytes: own_rss,
        processes: ctx.share.count,
        source_addresses: ctx.sources.len(),
    };
    print_summary(&report);
    let clean = !timed_out && report.established == args.conns && report.dropped_during_hold == 0;
    outputs.finish(&report, &[("handshake", &stats.handshake), ("synced", &stats.to_synced)], clean)
}

/// A worker's life until the main thread says the hold is over: open its
/// share of the connections on schedule, say when all are up or failed,
/// keep answering pings.
fn hold_connections(
    t: usize,
    share: Share,
    first_user: u64,
    driver: &mut Driver,
    ramp: &mut Ramp,
    clock: &Clock,
    coord: &Coord,
) -> anyhow::Result<()> {
    let mut ready = false;
    loop {
        if coord.aborted() || (ready && coord.go().is_some()) {
            return Ok(());
        }
        let now = clock.now_ns();
        while let Some(k) = ramp.next_due(now, |k| share.owns(t, k)) {
            driver.open(first_user + k, 0);
        }
        if !ready && ramp.done() && driver.unresolved() == 0 {
            ready = true;
            coord.mark_ready();
        }
        let wait = ramp.next_at().map_or(IDLE_POLL, |at| ns(at.saturating_sub(now)).min(IDLE_POLL));
        driver.poll(wait, &mut Ignore)?;
    }
}

fn print_summary(r: &ConnectReport<'_>) {
    let mut t = Table::default();
    t.section("loadgen connect");
    t.row("target", &r.config.common.url);
    t.row(
        "plan",
        format!(
            "{} connections at {}/s, hold {:.0}s, {} process(es) x {} thread(s), {} source address(es) each",
            r.config.conns,
            r.config.rate,
            r.config.hold.0.as_secs_f64(),
            r.processes,
            r.config.common.threads,
            r.source_addresses
        ),
    );
    if r.timed_out {
        t.row("TIMED OUT", "the --timeout safety stopped the run");
    }
    t.row("established", format!("{} / {}", r.established, r.config.conns));
    t.row("failed", r.failed);
    t.reasons(r.failed_reasons);
    t.row("dropped while held", r.dropped_during_hold);
    t.reasons(r.dropped_reasons);
    t.row("ramp", format!("{:.2}s ({:.0} conn/s achieved)", r.ramp_secs, r.achieved_conn_rate));
    if r.sync_replayed_frames > 0 {
        t.row("frames replayed by sync", r.sync_replayed_frames);
    }
    t.latency_header();
    t.latency("connect -> welcome", &r.handshake_ms);
    t.latency("connect -> synced", &r.to_synced_ms);
    t.section("gateway");
    match (r.gateway_connections_open, &r.metrics_error) {
        (Some(n), _) => t.row("chatgw_connections_open", n),
        (None, Some(e)) => t.row("chatgw_connections_open", format!("unavailable: {e}")),
        (None, None) => t.row("chatgw_connections_open", "not in /metrics"),
    }
    if r.gateways.len() > 1 {
        t.row("", "(from whichever gateway answered /metrics)");
    }
    match (r.gateway_rss_before_bytes, r.gateway_rss_after_bytes) {
        (Some(b), Some(a)) => {
            let all = if r.gateways.len() > 1 { " (all gateways)" } else { "" };
            t.row(&format!("RSS before ramp{all}"), report::mib(b));
            t.row(&format!("RSS after hold{all}"), report::mib(a));
            if let Some(g) = r.gateway_rss_growth_bytes {
                t.row("RSS growth", format!("{:.2} MiB", g as f64 / 1048576.0));
            }
            if let Some(p) = r.gateway_bytes_per_connection {
                t.row("RSS per connection", format!("{p:.0} bytes"));
            }
            if r.gateways.len() > 1 {
                for g in &r.gateways {
                    let per = g.bytes_per_connection.map_or("-".to_owned(), |p| format!("{p:.0} bytes/conn"));
                    t.row(
                        &format!("pid {}", g.pid),
                        format!(
                            "{} connections, RSS {} -> {}, {per}",
                            g.connections,
                            report::mib(g.rss_before_bytes),
                            report::mib(g.rss_after_bytes)
                        ),
                    );
                }
            }
        }
        _ => t.row("RSS", "pass --gateway-pid to measure"),
    }
    if let Some(own) = r.loadgen_rss_bytes {
        t.section("loadgen");
        let what = if r.processes > 1 { "parent RSS (workers not included)" } else { "own RSS while holding" };
        t.row(what, report::mib(own));
    }
    t.print();
}
