//! The kill in a `loadgen failover` run, as the traffic of each thread sees
//! it: when it is due, who sends the SIGKILL (the first thread to get
//! there, once), where the victim's devices reconnect, and how long each
//! took from the kill to its first `synced` on a surviving node.
//!
//! The kill is made from a worker thread's loop, at `--kill-after` past the
//! go, like the reconnect storm's cut, so it lands at a known point of the
//! open-loop schedule; its actual time is published in a [`KillMark`] that
//! every thread (and the ghost-window watch on the main thread) reads.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Mutex,
    },
    time::Instant,
};

use crate::conn::driver::Driver;

/// When the victim was killed, shared by every thread of the run.
#[derive(Debug, Default)]
pub(crate) struct KillMark {
    fired: AtomicBool,
    /// The kill's time on the run's clock (0: not yet).
    at_ns: AtomicU64,
    /// The same moment as an `Instant`, for the main thread's watch.
    at: Mutex<Option<Instant>>,
    /// Why the kill failed, if it did.
    error: Mutex<Option<String>>,
}

impl KillMark {
    /// SIGKILL `pid` unless a thread already did; `now_ns` is the clock's
    /// time. Returns whether this call sent it.
    pub(crate) fn kill_once(&self, pid: u32, now_ns: u64) -> bool {
        if self.fired.swap(true, Ordering::AcqRel) {
            return false;
        }
        let result = match libc::pid_t::try_from(pid) {
            // SAFETY: kill(2) takes plain integers and touches no memory of
            // ours; a wrong pid is an error return, not undefined behaviour.
            Ok(p) if p > 0 => unsafe { libc::kill(p, libc::SIGKILL) },
            _ => -1,
        };
        if result != 0 {
            let why = std::io::Error::last_os_error();
            *self.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("kill -9 {pid}: {why}"));
        }
        *self.at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        self.at_ns.store(now_ns.max(1), Ordering::Release);
        true
    }

    /// The kill's time on the run's clock, once it happened.
    pub(crate) fn at_ns(&self) -> Option<u64> {
        Some(self.at_ns.load(Ordering::Acquire)).filter(|&t| t > 0)
    }

    /// The kill's moment, once it happened.
    pub(crate) fn at(&self) -> Option<Instant> {
        *self.at.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why the kill failed (the process was gone, or not ours to kill).
    pub(crate) fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The planned kill.
#[derive(Clone, Debug)]
pub(crate) struct FailoverPlan {
    /// How long after the go.
    pub(crate) after_ns: u64,
    /// The gateway process to kill.
    pub(crate) victim_pid: u32,
    /// Its node (index in the `--url` list).
    pub(crate) victim_node: usize,
    /// Where its devices reconnect: the next URL in the list.
    pub(crate) to_node: usize,
    pub(crate) mark: std::sync::Arc<KillMark>,
}

/// One thread's view of the kill.
#[derive(Debug)]
pub(crate) struct Failover {
    plan: FailoverPlan,
    due_ns: Option<u64>,
    redirected: bool,
}

impl Failover {
    /// The kill `plan` is to come.
    pub(crate) fn new(plan: FailoverPlan) -> Self {
        Failover { plan, due_ns: None, redirected: false }
    }

    /// The load started at `go_ns`: the kill is due `after_ns` later.
    pub(crate) fn start(&mut self, go_ns: u64) {
        self.due_ns = Some(go_ns.saturating_add(self.plan.after_ns));
    }

    /// At the top of each turn of the sending loop: point reconnections
    /// from the victim's node at the next one (once), and kill the victim
    /// when due. Returns when to wake for the kill, while it is to come.
    pub(crate) fn tick(&mut self, driver: &mut Driver, now_ns: u64) -> Option<u64> {
        if !self.redirected {
            driver.redirect(self.plan.victim_node, self.plan.to_node);
            self.redirected = true;
        }
        let due = self.due_ns?;
        if self.plan.mark.at_ns().is_some() {
            self.due_ns = None;
            return None;
        }
        if now_ns >= due {
            self.plan.mark.kill_once(self.plan.victim_pid, driver.now_ns());
            self.due_ns = None;
            return None;
        }
        Some(due)
    }

    /// A device that went down at `down_since` is synced again at `now_ns`:
    /// the time since the kill, if it went down because of it (at or after
    /// the kill).
    pub(crate) fn since_kill(&self, down_since: u64, now_ns: u64) -> Option<u64> {
        let kill = self.plan.mark.at_ns()?;
        (down_since >= kill).then(|| now_ns.saturating_sub(kill))
    }
}

#[cfg(test)]
mod tests {
    use std::{process::Command, sync::Arc};

    use super::*;

    #[test]
    fn the_kill_is_sent_once_and_timed() {
        let mut child = Command::new("sleep").arg("30").spawn().expect("sleep runs");
        let mark = KillMark::default();
        assert_eq!(mark.at_ns(), None);
        assert!(mark.kill_once(child.id(), 500));
        assert!(!mark.kill_once(child.id(), 900), "a second thread finds it done");
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert_eq!((mark.at_ns(), mark.error()), (Some(500), None));
        assert!(mark.at().is_some());
    }

    #[test]
    fn a_kill_that_fails_says_why() {
        let mark = KillMark::default();
        mark.kill_once(0, 7);
        assert!(mark.error().is_some_and(|e| e.contains("kill -9 0")));
    }

    #[test]
    fn only_outages_that_began_at_the_kill_count() {
        let mark = Arc::new(KillMark::default());
        let f = Failover::new(FailoverPlan {
            after_ns: 10,
            victim_pid: 0,
            victim_node: 1,
            to_node: 2,
            mark: Arc::clone(&mark),
        });
        assert_eq!(f.since_kill(100, 200), None, "no kill yet");
        mark.at_ns.store(150, Ordering::Release);
        assert_eq!(f.since_kill(100, 400), None, "down before the kill");
        assert_eq!(f.since_kill(160, 400), Some(250));
    }
}
