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
//!
//! With several `--url`s (a fleet's nodes) connection `k` goes to node
//! `k % nodes`; `/metrics` is read from every `--gateway-admin` and the open
//! connections are summed (and listed per node), as are the memory figures
//! of every `--gateway-pid`.

use std::time::Instant;

use serde::Serialize;

use crate::{
    cli::ConnectArgs,
    conn::{
        connection::ConnStats,
        driver::{Driver, Ignore},
        ramp::Ramp,
    },
    report::{
        check::Figures,
        outputs::Outputs,
        probe,
        stats::{Reasons, Summary},
        summary::{self, Table},
    },
    scenarios::{
        ctx::{Role, RunCtx},
        placement,
        scenario::{safety_timeout, Conductor, Worker, CLOSE_GRACE},
    },
};

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

/// One node's open connections, from its `/metrics`.
#[derive(Serialize, Debug, Clone)]
struct NodeConns {
    admin: String,
    connections_open: Option<f64>,
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
    /// Each node's count, in `--url` order, when there are several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    gateway_connections_open_per_node: Vec<NodeConns>,
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
    let outputs = Outputs::parse(&c.report, &FIGURES)?;
    let ctx = RunCtx::new(c, args.conns, 1)?;
    let gateways: Vec<_> = ctx.targets.iter().map(|t| t.addr).collect();
    let admins = probe::admin_addrs(&args.gateway_admin, &gateways)?;
    let timeout = safety_timeout(c, args.conns, args.rate, 1, args.hold.0);

    let before = match ctx.role {
        Role::Worker => Vec::new(),
        _ => args.gateway_pid.iter().map(|&pid| sample(pid)).collect::<anyhow::Result<Vec<_>>>()?,
    };
    let work = {
        let worker = Worker::new(&ctx, c);
        let (conns, rate, first_user) = (args.conns, args.rate, c.first_user);
        // A worker's life until the main thread says the hold is over: open
        // its share of the connections on schedule, say when all are up or
        // failed, keep answering pings.
        move |t: usize| {
            let mut driver = worker.driver(t, 0x5EED)?;
            let ramp = Ramp::new(rate, conns, worker.start_ns);
            let owns = |k: u64| worker.share.owns(t, k);
            let open = |driver: &mut Driver, _: &mut Ignore, k: u64| {
                let node = placement::user_node(k, driver.nodes());
                driver.open(node, first_user + k, 0);
            };
            worker.set_up(&mut driver, &mut Ignore, ramp, owns, open, |_, _, resolved| resolved)?;
            driver.close_all(CLOSE_GRACE, &mut Ignore);
            Ok(driver.stats)
        }
    };
    let Some(mut run) = Conductor::start(&ctx, c, timeout, (false, args.conns), work)? else {
        return Ok(true);
    };

    let all_up = run.wait_ready("connect");
    let ramp_secs = ctx.clock.now_ns().saturating_sub(ctx.start_ns) as f64 / 1e9;
    if all_up {
        run.hold("hold", Instant::now() + args.hold.0);
    }
    let timed_out = run.timed_out();
    let (open_now, per_node, metrics_error) = match probe::sum_metric(&admins, "chatgw_connections_open") {
        Ok((total, each)) if admins.len() > 1 => {
            let per_node =
                admins.iter().zip(each).map(|(a, v)| NodeConns { admin: a.to_string(), connections_open: v }).collect();
            (total, per_node, None)
        }
        Ok((total, _)) => (total, Vec::new(), None),
        Err(e) => (None, Vec::new(), Some(format!("{e:#}"))),
    };
    let after = args.gateway_pid.iter().map(|&pid| sample(pid)).collect::<anyhow::Result<Vec<_>>>()?;
    let own_rss = probe::own_rss_bytes();
    if timed_out {
        run.abort();
    }
    run.go(ctx.clock.now_ns());
    run.close();
    let stats: ConnStats = run.join()?;

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
        gateway_connections_open_per_node: per_node,
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

fn print_summary(r: &ConnectReport<'_>) {
    let mut t = Table::default();
    t.section("loadgen connect");
    t.row("target", r.config.common.url.join(", "));
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
    t.timed_out(r.timed_out);
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
    if r.gateway_connections_open_per_node.len() > 1 {
        t.row("", format!("(summed over {} gateways)", r.gateway_connections_open_per_node.len()));
        for n in &r.gateway_connections_open_per_node {
            let v = n.connections_open.map_or("not in /metrics".to_owned(), |v| v.to_string());
            t.row(&format!("  admin {}", n.admin), v);
        }
    } else if r.gateways.len() > 1 {
        t.row("", "(from the one gateway at --gateway-admin)");
    }
    match (r.gateway_rss_before_bytes, r.gateway_rss_after_bytes) {
        (Some(b), Some(a)) => {
            let all = if r.gateways.len() > 1 { " (all gateways)" } else { "" };
            t.row(&format!("RSS before ramp{all}"), summary::mib(b));
            t.row(&format!("RSS after hold{all}"), summary::mib(a));
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
                            summary::mib(g.rss_before_bytes),
                            summary::mib(g.rss_after_bytes)
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
        t.row(what, summary::mib(own));
    }
    t.print();
}
