//! Context switches over a run's load window: the whole box's, and the
//! gateway processes' own.
//!
//! Why: a gateway that hands each message from thread to thread (or wakes
//! a task per connection) pays for it in switches, and the kernel pays for
//! a switch whichever process caused it. CPU time per message shows the
//! sum; switches per message show one of its causes, and let two designs
//! be compared at the same rate on the same box.
//!
//! Both come from `/proc`, read at the same moments as the CPU counters
//! (see [`super::cpu`]) so that every per-message figure divides the same
//! window by the same messages:
//!
//! - the box: the `ctxt` line of `/proc/stat`, switches on every core
//!   since boot (load generator, kernel threads and everything else
//!   included);
//! - a gateway process: `voluntary_ctxt_switches` (it blocked: waited for
//!   I/O, a lock, a futex) and `nonvoluntary_ctxt_switches` (it was
//!   preempted) of `/proc/PID/task/TID/status`, summed over its threads.
//!   `/proc/PID/status` alone counts only the main thread. A thread that
//!   starts in the window counts from zero; one that ends in it is left
//!   out (its last counts are gone with it), so the figure may undercount
//!   a gateway that spawns short-lived threads, never overcount.

use std::collections::BTreeMap;

/// Voluntary and involuntary switches of one thread or a sum of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Switches {
    pub(crate) voluntary: u64,
    pub(crate) involuntary: u64,
}

impl Switches {
    fn add(self, o: Switches) -> Switches {
        Switches { voluntary: self.voluntary + o.voluntary, involuntary: self.involuntary + o.involuntary }
    }

    fn since(self, earlier: Switches) -> Switches {
        Switches {
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            involuntary: self.involuntary.saturating_sub(earlier.involuntary),
        }
    }

    /// Both kinds.
    pub(crate) fn total(self) -> u64 {
        self.voluntary + self.involuntary
    }
}

/// Each thread of some processes, by thread id. `None`: some process could
/// not be read (gone, or not on this host).
pub(crate) type ThreadSwitches = Option<BTreeMap<u32, Switches>>;

/// The threads of every process in `pids`, read now.
pub(crate) fn threads(pids: &[u32]) -> ThreadSwitches {
    let mut all = BTreeMap::new();
    for &pid in pids {
        for entry in std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
            let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else { continue };
            // A thread that ended between the listing and the read: it has
            // nothing more to count in this window.
            let Ok(text) = std::fs::read_to_string(entry.path().join("status")) else { continue };
            if let Some(s) = parse_status(&text) {
                all.insert(tid, s);
            }
        }
    }
    Some(all)
}

/// The switches between two readings: per thread, a thread missing from
/// `before` counting from zero and one missing from `after` left out.
pub(crate) fn threads_delta(before: &BTreeMap<u32, Switches>, after: &BTreeMap<u32, Switches>) -> Switches {
    after
        .iter()
        .map(|(tid, a)| a.since(before.get(tid).copied().unwrap_or_default()))
        .fold(Switches::default(), Switches::add)
}

/// The two counters of a `/proc/PID[/task/TID]/status` file.
fn parse_status(text: &str) -> Option<Switches> {
    let field = |name: &str| -> Option<u64> {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
    };
    Some(Switches { voluntary: field("voluntary_ctxt_switches")?, involuntary: field("nonvoluntary_ctxt_switches")? })
}

/// Switches on every core since boot, from `/proc/stat`.
pub(crate) fn box_switches() -> Option<u64> {
    parse_box_ctxt(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// The `ctxt N` line of `/proc/stat`.
pub(crate) fn parse_box_ctxt(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next()? == "ctxt").then_some(())?;
        f.next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_ctxt_is_the_ctxt_line_of_proc_stat() {
        let text = "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\nintr 12345 1 2 3\n\
                    ctxt 987654321\nbtime 1700000000\nprocesses 4242\nctxt_other 5\n";
        assert_eq!(parse_box_ctxt(text), Some(987_654_321));
        // A line that merely starts with the word is not it.
        assert_eq!(parse_box_ctxt("ctxtx 5\nintr 1\n"), None);
        assert_eq!(parse_box_ctxt("ctxt\n"), None);
        assert_eq!(parse_box_ctxt("ctxt many\n"), None);
        assert_eq!(parse_box_ctxt(""), None);
    }

    #[test]
    fn the_real_box_counter_moves_when_threads_switch() {
        let before = box_switches().expect("/proc/stat has a ctxt line");
        // Each sleep blocks this thread: at least one switch each.
        for _ in 0..20 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let after = box_switches().unwrap();
        assert!(after >= before + 20, "{before} -> {after}");
    }

    #[test]
    fn status_counters_are_read_by_name() {
        let text = "Name:\tchatgw\nState:\tS (sleeping)\nThreads:\t3\nvoluntary_ctxt_switches:\t1500\n\
                    nonvoluntary_ctxt_switches:\t27\n";
        assert_eq!(parse_status(text), Some(Switches { voluntary: 1500, involuntary: 27 }));
        assert_eq!(parse_status("voluntary_ctxt_switches:\t3\n"), None, "both counters or none");
    }

    #[test]
    fn threads_are_summed_new_ones_count_from_zero_and_ended_ones_are_left_out() {
        let s = |voluntary, involuntary| Switches { voluntary, involuntary };
        let before = BTreeMap::from([(10, s(100, 5)), (11, s(1000, 50))]);
        // 10 went on, 11 ended, 12 started in the window.
        let after = BTreeMap::from([(10, s(130, 6)), (12, s(7, 1))]);
        assert_eq!(threads_delta(&before, &after), s(37, 2));
    }

    #[test]
    fn a_sleeping_thread_of_this_process_is_counted() {
        let me = [std::process::id()];
        let before = threads(&me).expect("own process is readable");
        let worker = std::thread::spawn(|| {
            for _ in 0..30 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        worker.join().unwrap();
        // The worker ended: read a thread that is still there, this one,
        // after it blocked on join and on the sleeps' wake-ups.
        for _ in 0..10 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let after = threads(&me).unwrap();
        let d = threads_delta(&before, &after);
        assert!(d.voluntary >= 10, "ten sleeps of the main thread at least: {d:?}");
        assert_eq!(threads(&[0]), None, "pid 0 has no /proc entry");
    }
}
