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

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{
    cli::ConnectArgs,
    conn::ConnStats,
    driver::{Driver, DriverConfig, Ignore},
    limits,
    net::{self, Target},
    probe,
    progress::Progress,
    ramp::Ramp,
    report::{self, Table},
    run::{watch_until, Workers},
    schedule::owner_of,
    shared::{ns, Clock, Coord, Live},
    stats::{Reasons, Summary},
    token::Minter,
};

/// Time allowed for close handshakes at the end.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Longest a worker sleeps in its poller before looking at the phase flags.
const IDLE_POLL: Duration = Duration::from_millis(50);

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
    loadgen_rss_bytes: Option<u64>,
    source_addresses: usize,
}

/// Run the scenario; `Ok(false)` when connections failed or the run timed out.
pub(crate) fn run(args: ConnectArgs) -> anyhow::Result<bool> {
    let c = &args.common;
    anyhow::ensure!(args.conns > 0, "--conns must be at least 1");
    anyhow::ensure!(args.rate > 0, "--rate must be at least 1");
    anyhow::ensure!(c.threads >= 1, "--threads must be at least 1");
    limits::ensure_fds(args.conns)?;
    let target = Target::parse(&c.url)?;
    let sources = net::source_addrs(c.sources, &target.addr);
    let ramp_estimate = Duration::from_secs_f64(args.conns as f64 / args.rate as f64);
    let timeout = c
        .timeout
        .map(|t| t.0)
        .unwrap_or(ramp_estimate + c.handshake_timeout.0 + args.hold.0 + CLOSE_GRACE + Duration::from_secs(60));
    let started = Instant::now();
    let deadline = started + timeout;

    let rss_before = args.gateway_pid.map(probe::rss_bytes).transpose()?;
    let clock = Clock::start();
    let live = Arc::new(Live::default());
    let coord = Arc::new(Coord::default());
    let start_ns = clock.now_ns() + 10_000_000;
    let workers = {
        let config =
            DriverConfig { target: target.clone(), sources: sources.clone(), handshake_timeout: c.handshake_timeout.0 };
        let minter = Minter::new(&c.secret);
        let (live, coord) = (Arc::clone(&live), Arc::clone(&coord));
        let (conns, rate, threads, first_user) = (args.conns, args.rate, c.threads, c.first_user);
        Workers::spawn(threads, move |t| {
            let mut driver = Driver::new(config.clone(), minter.clone(), clock, Arc::clone(&live), 0x5EED ^ t as u64)?;
            let mut ramp = Ramp::new(rate, conns, start_ns);
            hold_connections(t, threads, first_user, &mut driver, &mut ramp, &clock, &coord)?;
            driver.close_all(CLOSE_GRACE, &mut Ignore);
            Ok(driver.stats)
        })?
    };

    let mut progress = Progress::new(c.quiet, false);
    let threads = c.threads;
    let all_up = watch_until(&mut progress, &live, "connect", deadline, || {
        coord.ready_count() == threads || workers.any_finished()
    });
    let ramp_secs = started.elapsed().as_secs_f64();
    if all_up {
        let hold_end = deadline.min(Instant::now() + args.hold.0);
        watch_until(&mut progress, &live, "hold", hold_end, || workers.any_finished());
    }
    let timed_out = Instant::now() >= deadline;
    let (open_now, metrics_error) = match probe::fetch_metrics(target.addr, &target.host) {
        Ok(body) => (probe::metric_value(&body, "chatgw_connections_open"), None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    let rss_after = args.gateway_pid.map(probe::rss_bytes).transpose()?;
    let own_rss = probe::own_rss_bytes();
    if timed_out {
        coord.abort();
    }
    coord.set_go(clock.now_ns());
    watch_until(&mut progress, &live, "close", Instant::now() + 2 * CLOSE_GRACE, || workers.all_finished());
    let mut stats = ConnStats::default();
    for s in workers.join()? {
        stats.merge(&s);
    }

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
        loadgen_rss_bytes: own_rss,
        source_addresses: sources.len(),
    };
    print_summary(&report);
    if let Some(path) = &c.json {
        report::write_json(path, &report)?;
    }
    Ok(!timed_out && report.established == args.conns && report.dropped_during_hold == 0)
}

/// A worker's life until the main thread says the hold is over: open its
/// share of the connections on schedule, say when all are up or failed,
/// keep answering pings.
fn hold_connections(
    t: usize,
    threads: usize,
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
        while let Some(k) = ramp.next_due(now, |k| owner_of(k, threads) == t) {
            driver.open(first_user + k);
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
            "{} connections at {}/s, hold {:.0}s, {} thread(s), {} source address(es)",
            r.config.conns,
            r.config.rate,
            r.config.hold.0.as_secs_f64(),
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
    match (r.gateway_rss_before_bytes, r.gateway_rss_after_bytes) {
        (Some(b), Some(a)) => {
            t.row("RSS before ramp", report::mib(b));
            t.row("RSS after hold", report::mib(a));
            if let Some(g) = r.gateway_rss_growth_bytes {
                t.row("RSS growth", format!("{:.2} MiB", g as f64 / 1048576.0));
            }
            if let Some(p) = r.gateway_bytes_per_connection {
                t.row("RSS per connection", format!("{p:.0} bytes"));
            }
        }
        _ => t.row("RSS", "pass --gateway-pid to measure"),
    }
    if let Some(own) = r.loadgen_rss_bytes {
        t.section("loadgen");
        t.row("own RSS while holding", report::mib(own));
    }
    t.print();
}
