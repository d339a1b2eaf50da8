//! The one place a drain is asked for: by the signal thread (SIGTERM) or
//! the admin listener (`POST /admin/drain`), waited for by whoever runs
//! the server (`chatgw serve`'s main thread). A second request hurries a
//! drain under way: its remaining waits are skipped (an operator pressing
//! Ctrl-C twice).

use std::{
    sync::{Arc, Condvar, Mutex, PoisonError},
    time::{Duration, Instant},
};

use crate::metrics::Metrics;

/// A drain request, shared: the number of requests so far.
#[derive(Clone, Debug)]
pub struct DrainSwitch {
    asked: Arc<(Mutex<u32>, Condvar)>,
    metrics: Arc<Metrics>,
}

impl DrainSwitch {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        DrainSwitch { asked: Arc::default(), metrics }
    }

    /// Ask for a drain: `/readyz` answers 503 from now on, and
    /// [`DrainSwitch::wait`] returns. Asked again, the drain hurries.
    pub fn request(&self) {
        self.metrics.drain.draining.set(1);
        let (asked, cv) = &*self.asked;
        *asked.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        cv.notify_all();
    }

    /// Whether a drain was asked for.
    pub fn requested(&self) -> bool {
        *self.asked.0.lock().unwrap_or_else(PoisonError::into_inner) > 0
    }

    /// Block until a drain is asked for.
    pub fn wait(&self) {
        let (asked, cv) = &*self.asked;
        let mut guard = asked.lock().unwrap_or_else(PoisonError::into_inner);
        while *guard == 0 {
            guard = cv.wait(guard).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Sleep `pause`, or less if the drain is (or gets) hurried: whether
    /// it is.
    pub(crate) fn pause_unless_hurried(&self, pause: Duration) -> bool {
        let deadline = Instant::now() + pause;
        let (asked, cv) = &*self.asked;
        let mut guard = asked.lock().unwrap_or_else(PoisonError::into_inner);
        while *guard < 2 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = cv.wait_timeout(guard, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_request_ends_the_pauses() {
        let switch = DrainSwitch::new(Arc::new(Metrics::new()));
        switch.request();
        switch.wait();
        assert!(!switch.pause_unless_hurried(Duration::from_millis(20)));
        let again = switch.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            again.request();
        });
        let started = Instant::now();
        assert!(switch.pause_unless_hurried(Duration::from_secs(30)));
        assert!(started.elapsed() < Duration::from_secs(10));
        t.join().unwrap();
    }
}
