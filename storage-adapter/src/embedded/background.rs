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
//! The cost: a flush at nice 19 gets only a small share of a CPU that
//! other processes keep busy at normal priority, so it can take many times
//! longer. If flushing falls far enough behind, fjall holds writes back,
//! and the gateway sees slower commits. On a box shared with such
//! processes, a milder setting (10, say) is the safer choice.
//!
//! How: fjall starts its workers itself while it opens the database and
//! offers no hook. So the workers are found right after the open by name
//! (`fjall:worker`) among this process's threads, and reniced one by one
//! (on Linux, niceness is per thread). A new thread takes that name only
//! once it runs, so the search goes on until every worker of the new engine
//! has been seen, within a bound. The open itself, including the replay of
//! the journal after a crash, runs at the caller's priority: a reopen after
//! a disk failure holds up reads while it runs, and must not be slowed.

use std::{
    collections::HashSet,
    fs,
    time::{Duration, Instant},
};

/// What fjall names its worker threads.
const WORKER_NAME: &str = "fjall:worker";

/// How long to wait for a new engine's workers to name themselves.
const WORKER_WAIT: Duration = Duration::from_secs(2);

/// Run `open`, then lower the priority of the `workers` worker threads it
/// started to niceness `nice` (1 to 19; 0 or below: leave them alone). A
/// thread already at that niceness or above is left as it is: this only
/// ever lowers priority, which needs no privilege. Failures are logged, not
/// returned: a slower tail is better than a store that will not open.
pub(super) fn open_with_low_priority_workers<D, E>(
    nice: i32,
    workers: usize,
    open: impl FnOnce() -> Result<D, E>,
) -> Result<D, E> {
    if nice <= 0 {
        return open();
    }
    let nice = nice.min(19);
    let before = worker_threads();
    let engine = open()?;
    let deadline = Instant::now() + WORKER_WAIT;
    let mut seen = HashSet::new();
    loop {
        for tid in worker_threads() {
            if !before.contains(&tid) && seen.insert(tid) {
                lower_priority(tid, nice);
            }
        }
        if seen.len() >= workers || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    if seen.len() < workers {
        tracing::warn!(
            found = seen.len(),
            workers,
            "not every store background thread was found to lower its priority"
        );
    }
    Ok(engine)
}

/// This process's threads named like fjall's workers.
fn worker_threads() -> HashSet<libc::id_t> {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else { return HashSet::new() };
    tasks
        .flatten()
        .filter(|t| fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == WORKER_NAME))
        .filter_map(|t| t.file_name().to_str()?.parse().ok())
        .collect()
}

/// Give thread `tid` niceness `nice` unless it already has as much.
fn lower_priority(tid: libc::id_t, nice: i32) {
    if thread_nice(tid).is_some_and(|current| current >= nice) {
        return;
    }
    // SAFETY: setpriority takes plain integers and touches no memory of
    // ours. With PRIO_PROCESS and a thread id, Linux changes that one
    // thread; an id that has exited meanwhile gives ESRCH, logged below.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) } != 0 {
        let err = std::io::Error::last_os_error();
        tracing::warn!(tid, %err, "cannot lower the priority of a store background thread");
    }
}

/// The niceness of thread `tid` of this process (field 19 of its `stat`).
fn thread_nice(tid: libc::id_t) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // Fields after the parenthesised name: state is field 3, nice field 19.
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(16)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's id.
    fn gettid() -> libc::id_t {
        // SAFETY: gettid has no preconditions and cannot fail.
        let tid = unsafe { libc::gettid() };
        tid as libc::id_t
    }

    #[test]
    fn this_threads_niceness_is_read_from_proc() {
        let tid = gettid();
        // SAFETY: getpriority takes plain integers; -1 is also a valid
        // niceness, so errno is not consulted and the value is only compared.
        let expected = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
        assert_eq!(thread_nice(tid), Some(expected));
    }

    #[test]
    fn priority_is_only_ever_lowered_and_only_for_the_thread_named() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            tx.send(gettid()).unwrap();
            done_rx.recv().unwrap();
        });
        let tid = rx.recv().unwrap();
        let mine = thread_nice(gettid());
        let start = thread_nice(tid).unwrap();
        lower_priority(tid, start + 3);
        assert_eq!(thread_nice(tid), Some(start + 3));
        lower_priority(tid, start + 1);
        assert_eq!(thread_nice(tid), Some(start + 3), "a lower niceness is not restored");
        assert_eq!(thread_nice(gettid()), mine, "the caller is untouched");
        done_tx.send(()).unwrap();
        other.join().unwrap();
    }

    #[test]
    fn zero_runs_the_open_and_touches_nothing() {
        let r: Result<u8, ()> = open_with_low_priority_workers(0, 4, || Ok(7));
        assert_eq!(r, Ok(7));
        let e: Result<u8, &str> = open_with_low_priority_workers(19, 4, || Err("no"));
        assert_eq!(e, Err("no"), "a failed open is returned at once");
    }
}
