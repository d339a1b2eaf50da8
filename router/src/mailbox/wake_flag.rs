//! The "a wake is pending" flag of one mailbox, and why clearing it is a
//! read-modify-write.
//!
//! A producer makes its item visible, then raises the flag and wakes the
//! core only if the flag was down. The core lowers the flag, then looks for
//! items. Each side writes one location and then reads the other: the
//! store-buffer pattern. If the core lowered the flag with a plain store,
//! its look at the queue could still miss the producer's item while the
//! producer's raise saw the flag up and skipped the wake (x86 reorders a
//! store before later loads too): the item would wait for the next post or
//! the next tick. Lowering with a swap puts both sides' writes to the flag
//! in one modification order, so either the producer's raise comes after
//! the lowering and wakes the core, or the lowering reads the raise
//! (acquire) and the core's look sees the item.
//!
//! The loom models (`loom_model.rs`) check this, and check that the plain
//! store loses an item; [`Lowering::PlainStore`] exists only in those builds.

use std::sync::atomic::Ordering;

use crate::sync::AtomicBool;

/// How [`WakeFlag::lower`] clears the flag. Only loom builds can choose the
/// broken way, to show the model catches it.
#[cfg(all(test, loom))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lowering {
    /// `swap(false, AcqRel)`: what the gateway does.
    Swap,
    /// `store(false, Release)`: the old ordering, which strands items.
    PlainStore,
}

pub(crate) struct WakeFlag {
    raised: AtomicBool,
    #[cfg(all(test, loom))]
    lowering: Lowering,
}

impl WakeFlag {
    pub(crate) fn new() -> Self {
        WakeFlag {
            raised: AtomicBool::new(false),
            #[cfg(all(test, loom))]
            lowering: Lowering::Swap,
        }
    }

    #[cfg(all(test, loom))]
    pub(crate) fn with_lowering(lowering: Lowering) -> Self {
        WakeFlag { raised: AtomicBool::new(false), lowering }
    }

    /// Producer side, after its item (or overflow record) is visible:
    /// whether the caller must wake the core.
    pub(crate) fn raise(&self) -> bool {
        // Release: the item is visible to whoever reads this raise.
        !self.raised.swap(true, Ordering::AcqRel)
    }

    /// Consumer side, before it looks for items.
    pub(crate) fn lower(&self) {
        #[cfg(all(test, loom))]
        if self.lowering == Lowering::PlainStore {
            self.raised.store(false, Ordering::Release);
            return;
        }
        // Acquire: if this reads a producer's raise, that producer's item is
        // visible to the look that follows.
        self.raised.swap(false, Ordering::AcqRel);
    }
}
