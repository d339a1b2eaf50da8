//! Asking every connection of this node to catch up from the store, and
//! making sure the request is not lost.
//!
//! A whole-node catch-up is one `CatchUpAll` event per core. It is posted
//! to the core's mailbox like any event, and a full mailbox refuses it; an
//! event addressed to one connection is then not lost (the core closes
//! that connection, and its device reconnects and syncs), but this one is
//! addressed to no connection. So a refused core is owed the catch-up, and
//! the registry thread posts it again on its next tick.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use chatgw_router::{Mailboxes, Posted};

use crate::events::{CoreBatch, CoreEvent};

/// Whole-node catch-ups, with the cores still owed one.
pub(crate) struct WholeNode {
    mailboxes: Arc<Mailboxes<CoreBatch>>,
    owed: Box<[AtomicBool]>,
}

impl WholeNode {
    pub(crate) fn new(mailboxes: Arc<Mailboxes<CoreBatch>>) -> Self {
        let owed = (0..mailboxes.cores()).map(|_| AtomicBool::new(false)).collect();
        WholeNode { mailboxes, owed }
    }

    /// Every subscribed connection of every core catches up.
    pub(crate) fn catch_up(&self) {
        (0..self.owed.len()).for_each(|core| self.post(core));
    }

    /// Post the catch-ups that full mailboxes refused, again.
    pub(crate) fn retry_owed(&self) {
        for core in 0..self.owed.len() {
            if self.owed[core].swap(false, Ordering::AcqRel) {
                self.post(core);
            }
        }
    }

    fn post(&self, core: usize) {
        let event = CoreEvent::CatchUpAll { core: core as u16 };
        if let Posted::Refused = self.mailboxes.post(core, vec![event]) {
            self.owed[core].store(true, Ordering::Release);
        }
    }
}
