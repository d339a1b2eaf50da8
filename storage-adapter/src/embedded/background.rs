//! The engine's background threads run at a lower CPU priority than the
//! gateway's own.
//!
//! Why: fjall flushes a full memtable to a table file, and compacts tables,
//! on its own worker threads. A flush of a 64 MiB memtable keeps one core
//! busy for about a second, and on a small box that core is one the event
//! loops, the committer and the writer need: every message in flight waits
//! behind it. A flush shows up as a second in which p99 send -> deliver
//! jumps from tens to hundreds of milliseconds.
//!
//! What it buys, measured on a 2-core VM at 12,000 msg/s with the load
//! generator on the same cores (14 pairs of 20 s runs, 19 against 0): mean
//! p99 send -> deliver 121 ms against 160 ms, and mean p50 16.8 ms against
//! 11.9 ms. So it trades some median for a shorter tail. The noise is
//! large: at one setting, p99 ranged from 31 to 229 ms between runs.
//! `--store-background-nice 0` turns it off.
//!
//! The flush is the same work either way; at a low priority it fills the
//! gaps the request path leaves instead of preempting it. It is not starved
//! for long: nice 19 still gets a small share of a busy CPU, and if
//! flushing falls behind, the engine holds the writer back, which frees CPU
//! for the workers.
//!
//! fjall starts its workers itself, from the thread that opens the
//! database, and offers no hook. A new thread inherits its creator's
//! niceness (on Linux, niceness is per thread), so the engine is opened on
//! a short-lived thread that has lowered its own priority first: every
//! worker is born at that priority, with no window in which it runs at the
//! gateway's. This is the same idea as a database's low-priority compaction
//! pool.

/// Run `open` on a new thread whose niceness is `nice` (1 to 19), so that
/// the threads it starts inherit it; 0 or below runs `open` right here. A
/// failure to lower the priority is logged, not returned: a slower tail is
/// better than a store that will not open.
pub(super) fn with_low_priority_threads<T: Send>(nice: i32, open: impl FnOnce() -> T + Send) -> T {
    if nice <= 0 {
        return open();
    }
    let nice = nice.min(19);
    std::thread::scope(|s| {
        let opener = s.spawn(|| {
            // SAFETY: setpriority takes plain integers and touches no memory
            // of ours; with PRIO_PROCESS and who = 0 it changes the calling
            // thread only. Raising niceness needs no privilege.
            if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
                let err = std::io::Error::last_os_error();
                tracing::warn!(%err, "cannot lower the priority of the store's background threads");
            }
            open()
        });
        opener.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::embedded::{EmbeddedOptions, EmbeddedStore};

    /// What fjall names its worker threads.
    const WORKER_NAME: &str = "fjall:worker";

    /// The calling thread's id.
    fn gettid() -> libc::id_t {
        // SAFETY: gettid has no preconditions and cannot fail.
        let tid = unsafe { libc::gettid() };
        tid as libc::id_t
    }

    /// The niceness of thread `tid` of this process (field 19 of its `stat`).
    fn thread_nice(tid: libc::id_t) -> Option<i32> {
        let stat = fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
        // Fields after the parenthesised name: state is field 3, nice field 19.
        stat[stat.rfind(')')? + 1..].split_whitespace().nth(16)?.parse().ok()
    }

    fn worker_nices() -> Vec<i32> {
        fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter(|t| fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == WORKER_NAME))
            .filter_map(|t| thread_nice(t.file_name().to_str()?.parse().ok()?))
            .collect()
    }

    #[test]
    fn an_open_store_has_its_workers_at_the_configured_niceness() {
        let me = gettid();
        let mine = thread_nice(me);
        let dir = tempfile::tempdir().unwrap();
        let _store = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        let nices = worker_nices();
        // Other tests in this binary open stores too, so there may be more
        // workers than one store's; every one of them is lowered.
        assert!(!nices.is_empty(), "an open store has fjall workers");
        assert!(nices.iter().all(|&n| n == EmbeddedOptions::default().background_nice), "{nices:?}");
        // The thread that asked for the store keeps its own priority.
        assert_eq!(thread_nice(me), mine);
    }

    #[test]
    fn zero_leaves_priority_alone_and_a_panic_reaches_the_caller() {
        let me = gettid();
        let tid = with_low_priority_threads(0, gettid);
        assert_eq!(tid, me, "0 runs on the calling thread");
        let nice = with_low_priority_threads(7, || thread_nice(gettid()));
        assert_eq!(nice, Some(7));
        let panicked = std::panic::catch_unwind(|| with_low_priority_threads(7, || panic!("open failed")));
        assert!(panicked.is_err());
    }

    #[test]
    fn this_threads_niceness_is_read_from_proc() {
        let tid = gettid();
        // Test threads start at the process's niceness, which is 0 under
        // cargo test unless the whole run was started with `nice`.
        // SAFETY: getpriority takes plain integers; -1 is also a valid
        // niceness, so errno is not consulted and the value is only compared.
        let expected = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
        assert_eq!(thread_nice(tid), Some(expected));
    }
}
