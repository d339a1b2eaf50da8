//! Where the gateway is in its life, as every core's driver sees it: the
//! server moves it forward at shutdown and wakes the cores; each driver
//! reads it once per loop turn and reports when its intake has stopped.
//! A drain (`drain`) walks the same stages, slower: it stops accepting
//! first and closes connections in waves ([`Wave`]) before the intake
//! stops.

use std::sync::atomic::{AtomicU32, AtomicU8, AtomicUsize, Ordering};

/// The stages of a gateway, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    /// Taking connections and requests.
    Running,
    /// Not accepting (the listeners are closed), still taking requests on
    /// open connections, and closing a [`Wave`]'s share of them with 1012.
    Refusing,
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
    /// The current wave's share of connections to have closed, per mille.
    wave_share: AtomicU32,
    /// The largest reconnect delay hint of the current wave, milliseconds.
    wave_spread_ms: AtomicU32,
}

/// How far a drain has gone: each core closes connections with 1012 until
/// `share_per_mille` of those it held when the waves began are gone, and
/// hints each a reconnect delay drawn from `0..=spread_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Wave {
    pub(crate) share_per_mille: u32,
    pub(crate) spread_ms: u32,
}

impl Lifecycle {
    pub(crate) fn stage(&self) -> Stage {
        match self.stage.load(Ordering::Acquire) {
            0 => Stage::Running,
            1 => Stage::Refusing,
            2 => Stage::Draining,
            _ => Stage::Closing,
        }
    }

    /// Move on to `stage` (the server does, then wakes every core).
    pub(crate) fn enter(&self, stage: Stage) {
        self.stage.store(stage as u8, Ordering::Release);
    }

    /// Start the next wave of a drain (the server does, then wakes every
    /// core).
    pub(crate) fn set_wave(&self, wave: Wave) {
        self.wave_spread_ms.store(wave.spread_ms, Ordering::Release);
        self.wave_share.store(wave.share_per_mille.min(1000), Ordering::Release);
    }

    /// The current wave (share 0 before a drain's first).
    pub(crate) fn wave(&self) -> Wave {
        Wave {
            share_per_mille: self.wave_share.load(Ordering::Acquire),
            spread_ms: self.wave_spread_ms.load(Ordering::Acquire),
        }
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
        l.enter(Stage::Refusing);
        assert_eq!(l.stage(), Stage::Refusing);
        l.enter(Stage::Draining);
        assert!(l.stage() >= Stage::Draining && l.stage() < Stage::Closing);
        l.enter(Stage::Closing);
        assert_eq!(l.stage(), Stage::Closing);
    }
}
