//! `bench-report`: turns the results of `scripts/bench.sh` into
//! `BENCHMARKS.md` and SVG plots.
//!
//! It reads what the load generator wrote (`--json`, `--hist` files) for
//! chatgw and the baseline relay, run on the same machine in the same
//! session, and puts both systems side by side with their ratio. It
//! computes nothing the load generator did not measure; where a run is
//! missing, the table says so instead of guessing.
//!
//! It is a binary of the load generator's crate, not of `benches/`,
//! because what it parses is the load generator's output: its `--json`
//! keys and `.hgrm` files change with the load generator, in one crate.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

mod disk;
mod targets;
#[cfg(test)]
mod test_runs;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use plotters::prelude::*;
use serde_json::Value;

#[derive(Parser)]
#[command(name = "bench-report", about = "Write BENCHMARKS.md and plots from scripts/bench.sh results.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the highest clean one-to-one rate of a system (messages/s).
    Saturation {
        /// Results directory.
        #[arg(long)]
        dir: PathBuf,
        /// `chatgw` or `baseline`.
        #[arg(long)]
        system: String,
    },
    /// Write the report and the plots.
    Write {
        /// Results directory.
        #[arg(long)]
        dir: PathBuf,
        /// The Markdown file to write.
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
        /// Where SVG plots go (linked relative to the report).
        #[arg(long, default_value = "docs/bench")]
        plots: PathBuf,
        /// Offered rates of the targets table (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = targets::DEFAULT_RATES)]
        target_rates: Vec<u64>,
    },
}

const SYSTEMS: [&str; 2] = ["chatgw", "baseline"];

/// Where the report's numbers come from, written above the commands.
const SOURCES: &str = "Every one-to-one figure comes from the `--json` report of one `loadgen one-to-one` run (`o2o-SYSTEM-RATE.json` in the results directory; SYSTEM is `chatgw` for the rate sweep on the disk, `chatgw-tmpfs` with `--data` on `$TMPFS`, `chatgw-disk` for the disk run right after the second disk probe, `chatgw-epoll`, or `baseline`), and its percentile curve from the matching `.hgrm`:\n\n\
- latency (p50, p99, p99.9 send -> deliver, p99 receipt): `delivery_ms`, `receipt_ms`, measured from each message's intended send time;\n\
- delivered msg/s, lost, dup, refused: `achieved_delivery_rate`, `lost`, `duplicated`, `refused_sends`;\n\
- CPU per message: `cpu.gateway_user_us_per_msg`, `cpu.gateway_sys_us_per_msg`, `cpu.gateway_us_per_msg` (`utime`/`stime` of `/proc/PID/stat` of the server process, `--gateway-pid`), `cpu.loadgen_us_per_msg`, `cpu.box_busy_pct` (first line of `/proc/stat`);\n\
- context switches per message: `cpu.box_ctxt_per_msg` (`ctxt` of `/proc/stat`), `cpu.gateway_ctxt_per_msg` and `cpu.gateway_involuntary_ctxt_per_msg` (`voluntary_ctxt_switches` + `nonvoluntary_ctxt_switches` of `/proc/PID/task/*/status`, summed over the server's threads).\n\n\
CPU and switch counters are read twice, when the first message is due and when the last one is, and every per-message figure divides that window's growth by the messages scheduled in it (`cpu.messages`). The targets table and every *chatgw / baseline* column divide chatgw's figure by the baseline's at the same offered rate. The disk probes are `loadgen disk` (`disk-start.json`, `disk-half.json`). The commands, in the order they ran (`$SECRET` is the shared token secret):";

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&fs::read_to_string(path).ok()?).ok()
}

fn num(v: &Value, path: &str) -> Option<f64> {
    path.split('.').try_fold(v, |v, k| v.get(k))?.as_f64()
}

/// One-to-one runs of a system, by offered rate.
fn one_to_one_runs(dir: &Path, system: &str) -> BTreeMap<u64, Value> {
    let prefix = format!("o2o-{system}-");
    let mut runs = BTreeMap::new();
    let Ok(entries) = fs::read_dir(dir) else { return runs };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rate) = name.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".json")).and_then(|r| r.parse().ok())
        else {
            continue;
        };
        if let Some(v) = read_json(&e.path()) {
            runs.insert(rate, v);
        }
    }
    runs
}

/// A run is clean when nothing was lost, duplicated or refused, the
/// delivered rate kept up with the offered rate, and latency did not grow
/// without bound (p99 under one second).
fn clean(rate: u64, v: &Value) -> bool {
    let zero = |k: &str| num(v, k).unwrap_or(1.0) == 0.0;
    zero("lost")
        && zero("duplicated")
        && num(v, "refused_sends").unwrap_or(0.0) == 0.0
        && num(v, "achieved_delivery_rate").unwrap_or(0.0) >= 0.97 * rate as f64
        && num(v, "delivery_ms.p99_ms").unwrap_or(f64::MAX) < 1000.0
}

/// The highest offered rate that ran clean, with its run.
fn saturation(runs: &BTreeMap<u64, Value>) -> Option<(u64, &Value)> {
    runs.iter().rev().find(|(r, v)| clean(**r, v)).map(|(r, v)| (*r, v))
}

fn fmt(x: Option<f64>, digits: usize) -> String {
    x.map(|x| format!("{x:.digits$}")).unwrap_or_else(|| "n/a".into())
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}x", a / b),
        _ => "n/a".into(),
    }
}

/// One table row: chatgw, baseline, and their ratio.
fn side_by_side(md: &mut String, label: &str, chatgw: Option<f64>, baseline: Option<f64>, digits: usize) {
    let _ =
        writeln!(md, "| {label} | {} | {} | {} |", fmt(chatgw, digits), fmt(baseline, digits), ratio(chatgw, baseline));
}

/// chatgw on io_uring (the `chatgw` runs) next to chatgw on epoll (the
/// `chatgw-epoll` runs), where the session ran both.
fn write_drivers(md: &mut String, dir: &Path, uring: &BTreeMap<u64, Value>) {
    let epoll = one_to_one_runs(dir, "chatgw-epoll");
    let idle = [read_json(&dir.join("connect-chatgw.json")), read_json(&dir.join("connect-chatgw-epoll.json"))];
    if epoll.is_empty() && idle[1].is_none() {
        return;
    }
    let _ = writeln!(md, "\n## I/O drivers: io_uring and epoll\n");
    let _ = writeln!(
        md,
        "The same gateway with `--io uring` (every `chatgw` figure above) and `--io epoll`, same scenarios, same session.\n"
    );
    let _ = writeln!(md, "| | io_uring | epoll | io_uring / epoll |\n|---|---|---|---|");
    let key = "gateway_bytes_per_connection";
    let (u, e) = (idle[0].as_ref().and_then(|v| num(v, key)), idle[1].as_ref().and_then(|v| num(v, key)));
    side_by_side(md, "idle: server RSS per connection (bytes)", u, e, 0);
    for (rate, ev) in &epoll {
        let Some(uv) = uring.get(rate) else { continue };
        for (label, key, digits) in [
            ("delivered msg/s", "achieved_delivery_rate", 0),
            ("p50 send -> deliver (ms)", "delivery_ms.p50_ms", 2),
            ("p99 send -> deliver (ms)", "delivery_ms.p99_ms", 2),
        ] {
            side_by_side(md, &format!("{rate} msg/s offered: {label}"), num(uv, key), num(ev, key), digits);
        }
    }
}

/// Every offered rate some system ran, in order.
fn all_rates(runs: &[BTreeMap<u64, Value>]) -> Vec<u64> {
    let mut rates: Vec<u64> = runs.iter().flat_map(|r| r.keys().copied()).collect();
    rates.sort_unstable();
    rates.dedup();
    rates
}

/// A column of a per-run table: its heading, the JSON field and the digits
/// shown.
type Column<'a> = (&'a str, &'a str, usize);

/// A last column computed from a whole run: its heading and its cell.
type Verdict<'a> = (&'a str, fn(u64, &Value) -> String);

/// A table of the one-to-one runs, a row per offered rate and system:
/// `columns` follow those two, then `verdict` (a heading and what to show
/// for a run), if any. With `ratios`, each rate both systems ran gets a
/// third row: chatgw's figure over the baseline's, column by column.
fn per_run_table(
    md: &mut String,
    runs: &[BTreeMap<u64, Value>],
    columns: &[Column<'_>],
    verdict: Option<Verdict<'_>>,
    ratios: bool,
) {
    let mut headings: Vec<&str> = columns.iter().map(|c| c.0).collect();
    headings.extend(verdict.map(|v| v.0));
    let _ = writeln!(
        md,
        "| offered msg/s | system | {} |\n|---|---|{}",
        headings.join(" | "),
        "---|".repeat(headings.len())
    );
    for rate in all_rates(runs) {
        for (i, s) in SYSTEMS.iter().enumerate() {
            let Some(v) = runs[i].get(&rate) else { continue };
            let mut cells: Vec<String> = columns.iter().map(|&(_, key, digits)| fmt(num(v, key), digits)).collect();
            cells.extend(verdict.map(|(_, show)| show(rate, v)));
            let _ = writeln!(md, "| {rate} | {s} | {} |", cells.join(" | "));
        }
        if let (true, Some(a), Some(b)) = (ratios, runs[0].get(&rate), runs[1].get(&rate)) {
            let mut cells: Vec<String> = columns.iter().map(|&(_, key, _)| ratio(num(a, key), num(b, key))).collect();
            cells.extend(verdict.map(|_| String::new()));
            let _ = writeln!(md, "| {rate} | *chatgw / baseline* | {} |", cells.join(" | "));
        }
    }
}

/// Where the CPU of each one-to-one run went, and what twice the
/// baseline's saturation would leave for a gateway.
///
/// The argument is plain arithmetic on measured figures: at twice the
/// baseline's saturation rate the box has `cores / (2 x rate)` of CPU per
/// message in all. The load generator spends part of that on every message
/// whichever server it talks to, and the kernel work of the server's
/// sockets (the baseline's `sys` time: the same frames over the same
/// loopback) is, roughly, what a server doing that socket work pays. Both
/// measured at one rate, so it is an estimate.
fn write_cpu(md: &mut String, runs: &[BTreeMap<u64, Value>], baseline_sat: Option<(u64, &Value)>) {
    let has_cpu = runs.iter().flat_map(|r| r.values()).any(|v| num(v, "cpu.gateway_us_per_msg").is_some());
    if !has_cpu {
        return;
    }
    let _ = writeln!(md, "\n### Where the CPU goes\n");
    let _ = writeln!(
        md,
        "CPU time over each run's load phase (not its setup or drain), from `/proc`, divided by the messages scheduled in it: the gateway's in user mode and in the kernel (system calls, and on loopback much of the network stack of both ends, which they run), the load generator's (user + kernel), and how busy the whole box was. Kernel work that runs outside both processes (softirq threads, the disk) shows only in the box's figure. A box near 100% busy has run out of CPU. In a run that fell behind (not clean) fewer messages than scheduled were handled in the window, so its figures understate the cost.\n"
    );
    let _ = writeln!(
        md,
        "Context switches over the same window, divided by the same messages: *box switches/msg* is the growth of `ctxt` in `/proc/stat` (every core, every process: the server's, the load generator's, kernel threads'), *server switches/msg* the server process's own, voluntary (a thread blocked) plus involuntary (preempted), summed over its threads from `/proc/PID/task/*/status`; *server involuntary/msg* is the preempted part. The load generator is the same program against both servers, so a difference in the box's figure is the server's doing, directly or by waking the load generator more often. The *chatgw / baseline* row divides each figure of chatgw's run by the baseline's at the same rate.\n"
    );
    let columns = [
        ("server user µs/msg", "cpu.gateway_user_us_per_msg", 1),
        ("server kernel µs/msg", "cpu.gateway_sys_us_per_msg", 1),
        ("server total µs/msg", "cpu.gateway_us_per_msg", 1),
        ("loadgen µs/msg", "cpu.loadgen_us_per_msg", 1),
        ("box busy %", "cpu.box_busy_pct", 0),
        ("box switches/msg", "cpu.box_ctxt_per_msg", 2),
        ("server switches/msg", "cpu.gateway_ctxt_per_msg", 2),
        ("server involuntary/msg", "cpu.gateway_involuntary_ctxt_per_msg", 2),
    ];
    per_run_table(md, runs, &columns, None, true);
    let Some((rate, v)) = baseline_sat else { return };
    // The cores of the machine that ran the benchmark, as the load
    // generator saw them; this machine's only for older results.
    let cores =
        num(v, "cpu.box_cores").unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()) as f64);
    let (Some(loadgen), Some(kernel)) = (num(v, "cpu.loadgen_us_per_msg"), num(v, "cpu.gateway_sys_us_per_msg")) else {
        return;
    };
    let budget = cores * 1e6 / (2.0 * rate as f64);
    let fixed = loadgen + kernel;
    let _ = writeln!(
        md,
        "\n**What 2x the baseline would take.** The baseline's highest clean rate is {rate} msg/s{}. At twice that, this box ({cores:.0} cores) has {budget:.1} µs of CPU per message in all. At {rate} msg/s the load generator spent {loadgen:.1} µs per message, and the baseline's kernel time alone was {kernel:.1} µs: that is, roughly, the cost of its sockets' work, which a server speaking this protocol over TCP pays too. Together {fixed:.1} µs, {:.2}x the budget. {}\n",
        if runs[1].keys().next_back() == Some(&rate) {
            ", the top of the sweep: its saturation is that or higher"
        } else {
            ": its saturation, to the sweep's resolution"
        },
        fixed / budget,
        if fixed >= budget {
            "If per-message costs stayed as they were at that rate, no server doing that socket work could reach twice the baseline on this box while sharing it with the load generator, however little CPU its own code took. Per-message costs have fallen as the rate rose in runs like these (the kernel batches more; compare the rows above), so this is an estimate of where the ceiling is, not a proof."
        } else {
            "That leaves the rest for a server's own code, if per-message costs stayed as they were at that rate (compare the rows above for how they change with the rate)."
        }
    );
}

/// Percentile curve of an `.hgrm` file: (percentile, value ms).
fn hgrm(path: &Path) -> Option<Vec<(f64, f64)>> {
    let text = fs::read_to_string(path).ok()?;
    let pts: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let value: f64 = it.next()?.parse().ok()?;
            let pct: f64 = it.next()?.parse().ok()?;
            Some((pct, value))
        })
        .filter(|(p, _)| *p < 1.0)
        .collect();
    (!pts.is_empty()).then_some(pts)
}

/// x axis: 1/(1-p) on a log scale, labelled as percentiles.
fn plot_latency(out: &Path, title: &str, curves: &[(&str, Vec<(f64, f64)>)]) -> anyhow::Result<()> {
    let root = SVGBackend::new(out, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_y = curves.iter().flat_map(|(_, c)| c.iter().map(|(_, v)| *v)).fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((1.0f64..10_000.0f64).log_scale(), 0.0f64..max_y * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| {
            format!("{:.3}%", 100.0 * (1.0 - 1.0 / x)).trim_end_matches('0').trim_end_matches('.').to_owned()
        })
        .draw()?;
    let colors = [RGBColor(0x1f, 0x77, 0xb4), RGBColor(0xd6, 0x27, 0x28)];
    for (i, (name, curve)) in curves.iter().enumerate() {
        let color = colors[i % colors.len()];
        let pts = curve.iter().map(|(p, v)| (1.0 / (1.0 - p), *v)).filter(|(x, _)| *x <= 10_000.0);
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

fn plot_throughput(out: &Path, runs: &[(&str, &BTreeMap<u64, Value>)]) -> anyhow::Result<()> {
    let root = SVGBackend::new(out, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_x = runs.iter().flat_map(|(_, r)| r.keys().copied()).max().unwrap_or(1) as f64;
    let max_p99 = runs
        .iter()
        .flat_map(|(_, r)| r.values().filter_map(|v| num(v, "delivery_ms.p99_ms")))
        .fold(1.0f64, f64::max)
        .min(2000.0);
    let mut chart = ChartBuilder::on(&root)
        .caption("one-to-one: p99 send -> deliver vs offered rate", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_x * 1.05, (0.1f64..max_p99 * 1.2).log_scale())?;
    chart.configure_mesh().x_desc("offered messages/s").y_desc("p99 latency (ms, log)").draw()?;
    let colors = [RGBColor(0x1f, 0x77, 0xb4), RGBColor(0xd6, 0x27, 0x28)];
    for (i, (name, r)) in runs.iter().enumerate() {
        let color = colors[i % colors.len()];
        let pts: Vec<(f64, f64)> = r
            .iter()
            .filter_map(|(rate, v)| Some((*rate as f64, num(v, "delivery_ms.p99_ms")?.clamp(0.1, max_p99))))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

fn write_report(dir: &Path, out: &Path, plots: &Path, target_rates: &[u64]) -> anyhow::Result<()> {
    fs::create_dir_all(plots).with_context(|| format!("creating {}", plots.display()))?;
    let plot_link = |name: &str| -> String {
        let base = out.parent().unwrap_or(Path::new("."));
        let p = plots.join(name);
        p.strip_prefix(base).unwrap_or(&p).display().to_string()
    };
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `scripts/bench.sh` (which runs every scenario below against chatgw and the baseline relay in one session on one machine) through `bench-report`. Do not edit by hand: run the script again.\n"
    );
    let _ = writeln!(
        md,
        "**The baseline** is `benches/src/bin/baseline_relay.rs`: the same protocol subset written the idiomatic way with tokio and tokio-tungstenite (a task per connection, channels, a 4 KiB read buffer), **in memory only and without durability** — it acknowledges `sent` on receipt and keeps nothing. chatgw fsyncs every message before acknowledging it.\n"
    );
    let _ = writeln!(md, "## Machine\n");
    let _ = writeln!(
        md,
        "```\n{}```\n",
        fs::read_to_string(dir.join("machine.txt")).unwrap_or_else(|_| "(not recorded)\n".into())
    );
    let _ = writeln!(
        md,
        "The load generator runs on the same 2 cores as the server it measures, so every figure includes the CPU the generator takes from the server; compare the two systems with each other, not with figures from larger machines. On this virtual machine tail latencies of both systems vary by up to 10x from one session to the next; compare figures within one run.\n"
    );

    // Idle connections.
    let _ = writeln!(md, "## Idle connections\n");
    let conn: Vec<Option<Value>> = SYSTEMS.iter().map(|s| read_json(&dir.join(format!("connect-{s}.json")))).collect();
    let _ = writeln!(md, "| | chatgw | baseline | chatgw / baseline |\n|---|---|---|---|");
    let rows: [(&str, &str, usize); 5] = [
        ("connections established", "established", 0),
        ("failed", "failed", 0),
        ("server RSS per connection (bytes)", "gateway_bytes_per_connection", 0),
        ("handshake p50 (ms)", "handshake_ms.p50_ms", 2),
        ("handshake p99 (ms)", "handshake_ms.p99_ms", 2),
    ];
    for (label, key, digits) in rows {
        let a = conn[0].as_ref().and_then(|v| num(v, key));
        let b = conn[1].as_ref().and_then(|v| num(v, key));
        side_by_side(&mut md, label, a, b, digits);
    }
    if let Some(v) = read_json(&dir.join("box-chatgw.json")) {
        let _ = writeln!(md, "\nBox level (several chatgw processes sharing the port with SO_REUSEPORT, several load-generator processes):\n");
        let _ = writeln!(md, "| established | failed | handshake p99 (ms) |\n|---|---|---|");
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            fmt(num(&v, "established"), 0),
            fmt(num(&v, "failed"), 0),
            fmt(num(&v, "handshake_ms.p99_ms"), 2)
        );
        if let Ok(extra) = fs::read_to_string(dir.join("box-memory.txt")) {
            let _ = writeln!(md, "\n```\n{extra}```");
        }
    }

    // One-to-one.
    let _ = writeln!(md, "\n## Durable one-to-one\n");
    let runs: Vec<BTreeMap<u64, Value>> = SYSTEMS.iter().map(|s| one_to_one_runs(dir, s)).collect();
    let sat: Vec<Option<(u64, &Value)>> = runs.iter().map(saturation).collect();
    let delivered = |i: usize| sat[i].and_then(|(_, v)| num(v, "achieved_delivery_rate"));
    let _ = writeln!(
        md,
        "Open loop, latency from each message's intended send time. A run is *clean* when nothing is lost, duplicated or refused, deliveries keep up with the offered rate (at least 97%) and p99 stays under 1 s; saturation is the highest clean offered rate.\n"
    );
    let tmpfs = one_to_one_runs(dir, disk::TMPFS);
    targets::write_targets(
        &mut md,
        &targets::Runs { chatgw: &runs[0], tmpfs: &tmpfs, baseline: &runs[1] },
        target_rates,
    );
    let _ = writeln!(md, "| | chatgw | baseline | chatgw / baseline |\n|---|---|---|---|");
    side_by_side(&mut md, "saturation: delivered messages/s", delivered(0), delivered(1), 0);
    for (label, key) in [
        ("p50 send -> deliver at saturation (ms)", "delivery_ms.p50_ms"),
        ("p99 send -> deliver at saturation (ms)", "delivery_ms.p99_ms"),
    ] {
        let a = sat[0].and_then(|(_, v)| num(v, key));
        let b = sat[1].and_then(|(_, v)| num(v, key));
        side_by_side(&mut md, label, a, b, 2);
    }
    for (i, s) in SYSTEMS.iter().enumerate() {
        if let (Some((rate, _)), Some(top)) = (sat[i], runs[i].keys().next_back()) {
            if rate == *top {
                let _ = writeln!(
                    md,
                    "\n{s} ran clean at the sweep's highest rate ({rate} msg/s): its saturation is that or higher, and its row above is a lower bound."
                );
            }
        }
    }
    let _ = writeln!(md, "\nEvery run, side by side (same offered rate, same pairs, same duration):\n");
    let columns = [
        ("delivered msg/s", "achieved_delivery_rate", 0),
        ("p50 deliver (ms)", "delivery_ms.p50_ms", 2),
        ("p99 deliver (ms)", "delivery_ms.p99_ms", 2),
        ("p99.9 deliver (ms)", "delivery_ms.p999_ms", 2),
        ("p99 receipt (ms)", "receipt_ms.p99_ms", 2),
        ("lost", "lost", 0),
        ("dup", "duplicated", 0),
        ("refused", "refused_sends", 0),
    ];
    let verdict = |rate: u64, v: &Value| (if clean(rate, v) { "yes" } else { "no" }).to_owned();
    per_run_table(&mut md, &runs, &columns, Some(("clean", verdict)), false);
    let rates = all_rates(&runs);
    plot_throughput(&plots.join("one-to-one-p99.svg"), &[("chatgw", &runs[0]), ("baseline", &runs[1])])?;
    let _ = writeln!(md, "\n![p99 vs offered rate]({})\n", plot_link("one-to-one-p99.svg"));
    // Percentile curves at each rate both systems ran.
    for rate in &rates {
        let curves: Vec<(&str, Vec<(f64, f64)>)> =
            SYSTEMS.iter().filter_map(|s| Some((*s, hgrm(&dir.join(format!("o2o-{s}-{rate}.hgrm")))?))).collect();
        if curves.len() == 2 {
            let name = format!("one-to-one-{rate}.svg");
            plot_latency(&plots.join(&name), &format!("send -> deliver at {rate} msg/s"), &curves)?;
            let _ = writeln!(md, "![latency percentiles at {rate} msg/s]({})\n", plot_link(&name));
        }
    }

    write_cpu(&mut md, &runs, sat[1]);
    disk::write_disk(&mut md, dir, &runs[0], &runs[1]);

    write_drivers(&mut md, dir, &runs[0]);

    // Groups.
    if let Some(v) = read_json(&dir.join("group-chatgw.json")) {
        let _ = writeln!(md, "## Groups (chatgw only: the baseline has no groups)\n");
        let size = num(&v, "config.size");
        let _ = writeln!(
            md,
            "{} groups of {} members, every member online on one gateway, {} group messages/s in total for {} s; fan-out completion is send -> the last member's delivery.\n",
            fmt(num(&v, "config.groups"), 0),
            fmt(size, 0),
            fmt(num(&v, "config.rate"), 0),
            fmt(num(&v, "config.duration"), 0)
        );
        let _ = writeln!(md, "| figure | value |\n|---|---|");
        let per_member = num(&v, "store.bytes_per_message").zip(size).map(|(b, s)| b / s);
        let rows: [(&str, Option<f64>, usize); 12] = [
            ("group messages sent and acknowledged", num(&v, "acked"), 0),
            ("fan-out completion p50 (ms)", num(&v, "fanout_ms.p50_ms"), 2),
            ("fan-out completion p99 (ms)", num(&v, "fanout_ms.p99_ms"), 2),
            ("fan-out completion p99.9 (ms)", num(&v, "fanout_ms.p999_ms"), 2),
            ("fan-out completion max (ms)", num(&v, "fanout_ms.max_ms"), 2),
            ("one member's delivery p50 (ms)", num(&v, "delivery_ms.p50_ms"), 2),
            ("one member's delivery p99 (ms)", num(&v, "delivery_ms.p99_ms"), 2),
            ("deliveries per second", num(&v, "deliveries_per_sec"), 0),
            ("store bytes written per group message", num(&v, "store.bytes_per_message"), 0),
            ("store bytes per message per member", per_member, 1),
            ("gateway CPU per group message (µs, user + kernel)", num(&v, "cpu.gateway_us_per_msg"), 0),
            ("box busy during the load (%)", num(&v, "cpu.box_busy_pct"), 0),
        ];
        for (label, value, digits) in rows {
            let _ = writeln!(md, "| {label} | {} |", fmt(value, digits));
        }
        let _ =
            writeln!(md, "| lost / duplicated | {} / {} |\n", fmt(num(&v, "lost"), 0), fmt(num(&v, "duplicated"), 0));
        if let Some(c) = hgrm(&dir.join("group-chatgw.hgrm")) {
            plot_latency(
                &plots.join("group-fanout.svg"),
                "group fan-out completion (send -> last member)",
                &[("chatgw", c)],
            )?;
            let _ = writeln!(md, "![fan-out completion]({})\n", plot_link("group-fanout.svg"));
        }
    }

    // Spot check.
    let spots: Vec<(String, String)> = SYSTEMS
        .iter()
        .filter_map(|s| Some((s.to_string(), fs::read_to_string(dir.join(format!("spot-{s}.txt"))).ok()?)))
        .collect();
    if !spots.is_empty() {
        let _ = writeln!(md, "## Independent spot-check\n");
        let _ = writeln!(
            md,
            "`scripts/spotcheck.py` (Python `websockets`, no code shared with the load generator) against the same servers, with the load generator running at the same offered rate at the same time on its own users (so both see the same disk and CPU), 2,000 msg/s in all:\n"
        );
        for (s, text) in spots {
            let _ = writeln!(md, "**{s}**\n\n```\n{text}```\n");
        }
    }

    if let Ok(abuse) = fs::read_to_string(dir.join("abuse.txt")) {
        let _ = writeln!(md, "## Abuse limits (chatgw)\n");
        let _ = writeln!(
            md,
            "`abuse-report` crosses each limit of [docs/LIMITS.md](docs/LIMITS.md) from one offender while a healthy pair on the same gateway exchanges one message every 5 ms; the healthy pair's send -> delivered latency is measured alone first (\"quiet\") and during each attack.\n"
        );
        for line in abuse.lines().filter(|l| l.starts_with('|')) {
            let _ = writeln!(md, "{line}");
        }
        let _ = writeln!(md);
    }
    if let Ok(micro) = fs::read_to_string(dir.join("micro.txt")) {
        let _ = writeln!(md, "## Micro-benchmarks (`cargo bench -p chatgw-benches`)\n\n```\n{micro}```\n");
    }
    let _ = writeln!(md, "## Commands\n\n{SOURCES}\n");
    let _ = writeln!(md, "```sh\n{}```", fs::read_to_string(dir.join("commands.txt")).unwrap_or_default());
    fs::write(out, md).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Saturation { dir, system } => {
            let runs = one_to_one_runs(&dir, &system);
            match saturation(&runs) {
                Some((rate, _)) => println!("{rate}"),
                None => anyhow::bail!("no clean one-to-one run of {system} in {}", dir.display()),
            }
            Ok(())
        }
        Command::Write { dir, out, plots, target_rates } => write_report(&dir, &out, &plots, &target_rates),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_ratio_row_divides_chatgw_by_the_baseline_only_where_both_ran() {
        let run = |us: f64, ctxt: f64| json!({ "cpu": { "gateway_us_per_msg": us, "box_ctxt_per_msg": ctxt } });
        let runs = [
            BTreeMap::from([(2000, run(90.0, 6.0)), (4000, run(50.0, 3.0))]),
            BTreeMap::from([(2000, run(30.0, 8.0))]),
        ];
        let columns = [("µs/msg", "cpu.gateway_us_per_msg", 1), ("switches/msg", "cpu.box_ctxt_per_msg", 2)];
        let mut md = String::new();
        per_run_table(&mut md, &runs, &columns, None, true);
        let lines: Vec<&str> = md.lines().skip(2).collect();
        assert_eq!(
            lines,
            [
                "| 2000 | chatgw | 90.0 | 6.00 |",
                "| 2000 | baseline | 30.0 | 8.00 |",
                "| 2000 | *chatgw / baseline* | 3.00x | 0.75x |",
                "| 4000 | chatgw | 50.0 | 3.00 |",
            ]
        );
    }
}
