//! Where the gateway is in its life, as every core's driver sees it: the
//! server moves it forward at shutdown and wakes the cores; each driver
//! reads it once per loop turn and reports when its intake has stopped.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// The stages of a gateway, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    /// Taking connections and requests.
    Running,
    /// Not accepting, refusing new requests (`shutting_down`) while the
    /// committer finishes what it took.
    Draining,
    /// Closing every connection with 1001, then exiting.
    Closing,
}

/// Shared by the server and every core's driver.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    stage: AtomicU8,
    /// Cores whose intake has stopped.
    intake_stopped: AtomicUsize,
}

impl Lifecycle {
    pub(crate) fn stage(&self) -> Stage {
        match self.stage.load(Ordering::Acquire) {
            0 => Stage::Running,
            1 => Stage::Draining,
            _ => Stage::Closing,
        }
    }

    /// Move on to `stage` (the server does, then wakes every core).
    pub(crate) fn enter(&self, stage: Stage) {
        self.stage.store(stage as u8, Ordering::Release);
    }

    /// A core has stopped accepting and taking requests.
    pub(crate) fn report_intake_stopped(&self) {
        self.intake_stopped.fetch_add(1, Ordering::AcqRel);
    }

    /// Cores whose intake has stopped so far.
    pub(crate) fn intake_stopped(&self) -> usize {
        self.intake_stopped.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_only_move_forward_in_declared_order() {
        let l = Lifecycle::default();
        assert_eq!(l.stage(), Stage::Running);
        l.enter(Stage::Draining);
        assert!(l.stage() >= Stage::Draining && l.stage() < Stage::Closing);
        l.enter(Stage::Closing);
        assert_eq!(l.stage(), Stage::Closing);
    }
}
