//! CPU time over a run's load window: the gateway's, the load generator's
//! own, and the whole box's.
//!
//! Divided by the messages scheduled in the window, a process's CPU time is what
//! one message costs it. That is the figure capacity planning multiplies by
//! a rate, and, when the gateway and the load generator share a box, it is
//! also what says where a saturation comes from: a box that is busy all the
//! time has run out of CPU, and the load generator's own share of it is
//! CPU the gateway could not have. Latency percentiles alone cannot tell a
//! slow gateway from a starved one.
//!
//! Several gateway processes (a fleet's nodes on one box) are summed, and
//! with more than one each is also reported on its own, since a fleet that
//! is slow because one node is saturated looks different from one whose
//! nodes share the load.
//!
//! Everything comes from `/proc`: `utime` and `stime` of `/proc/PID/stat`
//! for a process (all its threads, in clock ticks) and the first line of
//! `/proc/stat` for the box. Tick resolution (10 ms) is far below the
//! seconds a load window lasts. Context switches (see [`super::switches`])
//! are read in the same samples, so they divide the same window by the
//! same messages.

use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;

use crate::report::{
    summary::Table,
    switches::{self, Switches, ThreadSwitches},
};

/// User and system CPU time of some processes, in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Ticks {
    user: u64,
    system: u64,
}

impl Ticks {
    fn add(self, o: Ticks) -> Ticks {
        Ticks { user: self.user + o.user, system: self.system + o.system }
    }
    fn since(self, earlier: Ticks) -> Ticks {
        Ticks { user: self.user.saturating_sub(earlier.user), system: self.system.saturating_sub(earlier.system) }
    }
}

/// Box-wide CPU time from `/proc/stat`, in clock ticks summed over cores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct BoxTicks {
    busy: u64,
    total: u64,
    /// Cores online (the `cpuN` lines).
    cores: usize,
}

/// One reading of every counter.
#[derive(Clone, Debug)]
pub(crate) struct CpuSample {
    at: Instant,
    /// `None` when some gateway process could not be read (gone, or not
    /// on this host).
    gateway: Option<Ticks>,
    /// Each gateway process on its own (None: unreadable).
    gateway_each: Vec<(u32, Option<Ticks>)>,
    /// Each load-generator process that could be read.
    loadgen: Vec<(u32, Ticks)>,
    machine: Option<BoxTicks>,
    /// Each gateway process's threads' context switches.
    gateway_switches: Vec<(u32, ThreadSwitches)>,
    /// The box's context switches since boot (`ctxt` of `/proc/stat`).
    box_switches: Option<u64>,
}

/// The processes to watch.
#[derive(Clone, Debug, Default)]
pub(crate) struct CpuProbe {
    gateway: Vec<u32>,
    loadgen: Vec<u32>,
}

impl CpuProbe {
    /// Watch the gateway processes `gateway` (none: only the load generator
    /// and the box) and the load generator's processes `loadgen`.
    pub(crate) fn new(gateway: &[u32], loadgen: Vec<u32>) -> Self {
        CpuProbe { gateway: gateway.to_vec(), loadgen }
    }

    /// Read every counter now.
    pub(crate) fn sample(&self) -> CpuSample {
        let sum = |pids: &[u32]| -> anyhow::Result<Ticks> {
            pids.iter().try_fold(Ticks::default(), |acc, &pid| Ok(acc.add(process_ticks(pid)?)))
        };
        CpuSample {
            at: Instant::now(),
            gateway: if self.gateway.is_empty() { None } else { sum(&self.gateway).ok() },
            gateway_each: self.gateway.iter().map(|&pid| (pid, process_ticks(pid).ok())).collect(),
            loadgen: self.loadgen.iter().filter_map(|&pid| Some((pid, process_ticks(pid).ok()?))).collect(),
            machine: box_ticks().ok(),
            gateway_switches: self.gateway.iter().map(|&pid| (pid, switches::threads(&[pid]))).collect(),
            box_switches: switches::box_switches(),
        }
    }
}

/// The load generator's CPU between two samples: per process, for the
/// processes read both times (one that exited in between is left out
/// rather than counted against its own earlier reading).
fn loadgen_delta(before: &[(u32, Ticks)], after: &[(u32, Ticks)]) -> Ticks {
    after
        .iter()
        .filter_map(|(pid, a)| Some(a.since(before.iter().find(|(p, _)| p == pid)?.1)))
        .fold(Ticks::default(), Ticks::add)
}

/// What the window between two samples cost, in the units a report uses.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct CpuFigures {
    /// Length of the window, seconds.
    pub(crate) window_secs: f64,
    /// Messages scheduled in the window: what the per-message figures divide by.
    pub(crate) messages: u64,
    /// Gateway CPU as a share of one core (200 = two cores busy).
    pub(crate) gateway_cpu_pct: Option<f64>,
    /// Gateway user-mode CPU per message, microseconds.
    pub(crate) gateway_user_us_per_msg: Option<f64>,
    /// Gateway kernel-mode CPU per message (system calls, and the loopback
    /// network stack they run), microseconds.
    pub(crate) gateway_sys_us_per_msg: Option<f64>,
    /// Gateway user + kernel CPU per message, microseconds.
    pub(crate) gateway_us_per_msg: Option<f64>,
    /// The load generator's CPU (every process of it) as a share of one core.
    pub(crate) loadgen_cpu_pct: f64,
    /// The load generator's user + kernel CPU per message, microseconds.
    pub(crate) loadgen_us_per_msg: Option<f64>,
    /// How busy the whole box was, percent of all its cores.
    pub(crate) box_busy_pct: Option<f64>,
    /// The box's cores (online CPUs in `/proc/stat`).
    pub(crate) box_cores: Option<usize>,
    /// Context switches on the whole box (every process and kernel thread,
    /// the load generator's included) per message: `ctxt` of `/proc/stat`.
    pub(crate) box_ctxt_per_msg: Option<f64>,
    /// The same per second of the window.
    pub(crate) box_ctxt_per_sec: Option<f64>,
    /// The gateway's own context switches per message, voluntary and
    /// involuntary, summed over its threads (`/proc/PID/task/*/status`).
    pub(crate) gateway_ctxt_per_msg: Option<f64>,
    /// Of those, voluntary: a gateway thread blocked (I/O, futex, sleep).
    pub(crate) gateway_voluntary_ctxt_per_msg: Option<f64>,
    /// Of those, involuntary: a gateway thread was preempted.
    pub(crate) gateway_involuntary_ctxt_per_msg: Option<f64>,
    /// Each gateway process, when there are several (the gateway figures
    /// above are their sum).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) gateway_per_process: Vec<ProcessCpu>,
}

/// One gateway process's CPU over the window.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct ProcessCpu {
    pub(crate) pid: u32,
    /// Share of one core (None: the process could not be read both times).
    pub(crate) cpu_pct: Option<f64>,
    /// User + kernel CPU per message of the whole run, microseconds.
    pub(crate) us_per_msg: Option<f64>,
    /// Its context switches (voluntary + involuntary) per message of the
    /// whole run.
    pub(crate) ctxt_per_msg: Option<f64>,
}

/// One gateway process's switches between two samples.
fn process_switches(before: &CpuSample, after: &CpuSample, pid: u32) -> Option<Switches> {
    let find = |s: &CpuSample| s.gateway_switches.iter().find(|(p, _)| *p == pid)?.1.clone();
    Some(switches::threads_delta(&find(before)?, &find(after)?))
}

/// Every gateway process's switches between two samples (None: some
/// process could not be read both times, or there is no gateway).
fn gateway_switches(before: &CpuSample, after: &CpuSample) -> Option<Switches> {
    if after.gateway_switches.is_empty() {
        return None;
    }
    after.gateway_switches.iter().try_fold(Switches::default(), |acc, &(pid, _)| {
        let d = process_switches(before, after, pid)?;
        Some(Switches { voluntary: acc.voluntary + d.voluntary, involuntary: acc.involuntary + d.involuntary })
    })
}

impl CpuFigures {
    /// The cost of the window from `before` to `after`, in which `messages`
    /// were sent.
    pub(crate) fn between(before: &CpuSample, after: &CpuSample, messages: u64) -> Self {
        let secs = after.at.duration_since(before.at).as_secs_f64().max(1e-9);
        let tick = 1.0 / ticks_per_second();
        let pct = |t: u64| 100.0 * t as f64 * tick / secs;
        let per_msg = |t: u64| (messages > 0).then(|| 1e6 * t as f64 * tick / messages as f64);
        let gateway = before.gateway.zip(after.gateway).map(|(b, a)| a.since(b));
        let count_per_msg = |n: u64| (messages > 0).then(|| n as f64 / messages as f64);
        let box_ctxt = before.box_switches.zip(after.box_switches).map(|(b, a)| a.saturating_sub(b));
        let gateway_ctxt = gateway_switches(before, after);
        let loadgen = loadgen_delta(&before.loadgen, &after.loadgen);
        CpuFigures {
            window_secs: secs,
            messages,
            gateway_cpu_pct: gateway.map(|g| pct(g.user + g.system)),
            gateway_user_us_per_msg: gateway.and_then(|g| per_msg(g.user)),
            gateway_sys_us_per_msg: gateway.and_then(|g| per_msg(g.system)),
            gateway_us_per_msg: gateway.and_then(|g| per_msg(g.user + g.system)),
            loadgen_cpu_pct: pct(loadgen.user + loadgen.system),
            loadgen_us_per_msg: per_msg(loadgen.user + loadgen.system),
            box_busy_pct: before.machine.zip(after.machine).and_then(|(b, a)| {
                let total = a.total.checked_sub(b.total).filter(|&t| t > 0)?;
                Some(100.0 * a.busy.saturating_sub(b.busy) as f64 / total as f64)
            }),
            box_cores: after.machine.map(|m| m.cores),
            box_ctxt_per_msg: box_ctxt.and_then(count_per_msg),
            box_ctxt_per_sec: box_ctxt.map(|n| n as f64 / secs),
            gateway_ctxt_per_msg: gateway_ctxt.and_then(|s| count_per_msg(s.total())),
            gateway_voluntary_ctxt_per_msg: gateway_ctxt.and_then(|s| count_per_msg(s.voluntary)),
            gateway_involuntary_ctxt_per_msg: gateway_ctxt.and_then(|s| count_per_msg(s.involuntary)),
            gateway_per_process: if after.gateway_each.len() > 1 {
                after
                    .gateway_each
                    .iter()
                    .map(|&(pid, a)| {
                        let b = before.gateway_each.iter().find(|(p, _)| *p == pid).and_then(|(_, t)| *t);
                        let d = b.zip(a).map(|(b, a)| a.since(b));
                        ProcessCpu {
                            pid,
                            cpu_pct: d.map(|d| pct(d.user + d.system)),
                            us_per_msg: d.and_then(|d| per_msg(d.user + d.system)),
                            ctxt_per_msg: process_switches(before, after, pid).and_then(|s| count_per_msg(s.total())),
                        }
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// The summary table's section: gateway, load generator and box.
    pub(crate) fn print(&self, t: &mut Table) {
        let one = |x: Option<f64>| x.map_or_else(|| "n/a".to_owned(), |x| format!("{x:.1}"));
        let two = |x: Option<f64>| x.map_or_else(|| "n/a".to_owned(), |x| format!("{x:.2}"));
        t.section(&format!("cpu (the {:.1} s of load, {} messages)", self.window_secs, self.messages));
        match self.gateway_cpu_pct {
            Some(p) => t.row(
                "gateway",
                format!(
                    "{p:.0}% of a core; {} user + {} sys = {} µs/msg",
                    one(self.gateway_user_us_per_msg),
                    one(self.gateway_sys_us_per_msg),
                    one(self.gateway_us_per_msg)
                ),
            ),
            None => t.row("gateway", "not measured (pass --gateway-pid)"),
        }
        if !self.gateway_per_process.is_empty() {
            t.row("", format!("(summed over {} gateway processes)", self.gateway_per_process.len()));
        }
        for p in &self.gateway_per_process {
            t.row(
                &format!("  gateway pid {}", p.pid),
                match p.cpu_pct {
                    Some(c) => {
                        format!("{c:.0}% of a core; {} µs/msg; {} switches/msg", one(p.us_per_msg), two(p.ctxt_per_msg))
                    }
                    None => "not readable".to_owned(),
                },
            );
        }
        t.row("loadgen", format!("{:.0}% of a core; {} µs/msg", self.loadgen_cpu_pct, one(self.loadgen_us_per_msg)));
        t.row("box busy", self.box_busy_pct.map_or_else(|| "n/a".to_owned(), |b| format!("{b:.0}% of all cores")));
        if self.gateway_cpu_pct.is_some() {
            t.row(
                "gateway switches",
                format!(
                    "{} voluntary + {} involuntary = {} per msg",
                    two(self.gateway_voluntary_ctxt_per_msg),
                    two(self.gateway_involuntary_ctxt_per_msg),
                    two(self.gateway_ctxt_per_msg)
                ),
            );
        }
        t.row(
            "box switches",
            match (self.box_ctxt_per_msg, self.box_ctxt_per_sec) {
                (Some(m), Some(s)) => format!("{m:.2} per msg ({s:.0}/s)"),
                _ => "n/a".to_owned(),
            },
        );
    }
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value; it has no
    // preconditions and touches no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

fn process_ticks(pid: u32) -> anyhow::Result<Ticks> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_process_stat(&text).with_context(|| format!("unexpected format of {path}"))
}

/// `utime` and `stime` (fields 14 and 15) of a `/proc/PID/stat` line. The
/// command name (field 2) is in parentheses and may itself hold spaces and
/// parentheses, so fields are counted from the last `)`.
fn parse_process_stat(line: &str) -> Option<Ticks> {
    let rest = &line[line.rfind(')')? + 1..];
    // After the name: state is field 3, so utime (14) is the 12th here.
    let mut fields = rest.split_whitespace().skip(11);
    let user = fields.next()?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some(Ticks { user, system })
}

fn box_ticks() -> anyhow::Result<BoxTicks> {
    let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    parse_box_stat(&text).context("unexpected format of /proc/stat")
}

/// The aggregate `cpu` line of `/proc/stat`: user nice system idle iowait
/// irq softirq steal (guest time is already inside user). Busy is all of
/// them but idle and iowait.
fn parse_box_stat(text: &str) -> Option<BoxTicks> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).take(8).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    if v.len() < 5 {
        return None;
    }
    let total: u64 = v.iter().sum();
    let cores = text
        .lines()
        .filter(|l| l.strip_prefix("cpu").is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit())))
        .count();
    Some(BoxTicks { busy: total - v[3] - v[4], total, cores })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_stat_fields_are_counted_after_the_name() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1234 0 0 0 517 89 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_process_stat(line), Some(Ticks { user: 517, system: 89 }));
        assert_eq!(parse_process_stat("4242 (short) S 1 2"), None);
    }

    #[test]
    fn box_busy_leaves_out_idle_and_iowait() {
        let text = "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n";
        assert_eq!(parse_box_stat(text), Some(BoxTicks { busy: 160, total: 1000, cores: 1 }));
        assert_eq!(parse_box_stat("intr 1 2 3\n"), None);
    }

    #[test]
    fn this_process_burning_cpu_shows_in_the_window() {
        let probe = CpuProbe::new(&[std::process::id()], vec![std::process::id()]);
        let before = probe.sample();
        // Spin until this process has used a quarter of a second of CPU
        // (counted, not timed: on a loaded box that takes longer).
        let ticks = |t: Ticks| t.user + t.system;
        let start = ticks(process_ticks(std::process::id()).unwrap());
        let quarter = (ticks_per_second() / 4.0).ceil() as u64;
        let mut x = 0u64;
        while ticks(process_ticks(std::process::id()).unwrap()) < start + quarter {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        let f = CpuFigures::between(&before, &probe.sample(), 1000);
        let gateway = f.gateway_cpu_pct.expect("own process is readable");
        let cpu_secs = gateway / 100.0 * f.window_secs;
        assert!(cpu_secs >= 0.25 - 1e-6, "a quarter second of CPU in the window: {gateway}% of {} s", f.window_secs);
        // The same process read twice per sample, a moment apart: the two
        // readings may differ by a tick or two (other tests run meanwhile).
        let tick_pct = 100.0 / ticks_per_second() / f.window_secs;
        assert!((gateway - f.loadgen_cpu_pct).abs() <= 2.0 * tick_pct + 1e-9, "{gateway} vs {}", f.loadgen_cpu_pct);
        let us = f.gateway_us_per_msg.expect("messages > 0");
        assert!(us >= 250.0 - 1e-6, "a quarter second over 1000 messages is at least 250 µs each: {us}");
        assert!(f.box_busy_pct.is_some_and(|b| b > 0.0 && b <= 100.0));
        assert!(f.box_cores.is_some_and(|c| c >= 1));
        // Switches are read in the same samples: the box always switches
        // some, and this process's own count is a number (it may be 0 for
        // a thread that spun all along).
        assert!(f.box_ctxt_per_msg.is_some_and(|c| c > 0.0), "{f:?}");
        assert!(f.box_ctxt_per_sec.is_some_and(|c| c > 0.0), "{f:?}");
        let (v, i, all) = (
            f.gateway_voluntary_ctxt_per_msg.unwrap(),
            f.gateway_involuntary_ctxt_per_msg.unwrap(),
            f.gateway_ctxt_per_msg.unwrap(),
        );
        assert!((v + i - all).abs() < 1e-9, "{f:?}");
    }

    #[test]
    fn several_gateways_are_summed_and_reported_each() {
        let me = std::process::id();
        // The same process twice stands for two gateways: the sum is about twice each.
        let probe = CpuProbe::new(&[me, me], vec![]);
        let before = probe.sample();
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 200 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let f = CpuFigures::between(&before, &probe.sample(), 100);
        assert_eq!(f.gateway_per_process.len(), 2);
        let each: f64 = f.gateway_per_process.iter().map(|p| p.cpu_pct.unwrap()).sum();
        let tick_pct = 100.0 / ticks_per_second() / f.window_secs;
        let sum = f.gateway_cpu_pct.unwrap();
        assert!((sum - each).abs() <= 4.0 * tick_pct + 1e-9, "sum {sum} vs each {each}");
        let mut t = Table::default();
        f.print(&mut t);
        assert!(t.text().contains(&format!("gateway pid {me}")), "{}", t.text());
        // One gateway: no per-process rows, as before.
        let one = CpuProbe::new(&[me], vec![]);
        assert!(CpuFigures::between(&one.sample(), &one.sample(), 1).gateway_per_process.is_empty());
    }

    #[test]
    fn a_load_generator_process_that_exits_is_left_out_not_subtracted() {
        let t = |user, system| Ticks { user, system };
        let before = [(10, t(100, 50)), (11, t(500, 500))];
        let after = [(10, t(130, 60))];
        assert_eq!(loadgen_delta(&before, &after), t(30, 10));
    }

    #[test]
    fn an_unreadable_gateway_is_not_reported_as_idle() {
        // Pid 0 has no /proc entry.
        let probe = CpuProbe::new(&[0], vec![std::process::id()]);
        let f = CpuFigures::between(&probe.sample(), &probe.sample(), 10);
        assert_eq!(f.gateway_cpu_pct, None);
        assert_eq!(f.gateway_us_per_msg, None);
        assert_eq!(f.gateway_ctxt_per_msg, None, "no switches for a gateway that is not there");
        assert!(f.box_ctxt_per_msg.is_some());
        let mut t = Table::default();
        f.print(&mut t);
        assert!(t.text().contains("not measured (pass --gateway-pid)"), "{}", t.text());
    }
}
