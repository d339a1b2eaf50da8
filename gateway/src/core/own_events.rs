//! Events a connection made itself, noted while it pages its inbox.
//!
//! A connection that sends a message or a receipt gets `sent`, and the event
//! lands in its own user's inbox too (for the user's other devices). Live,
//! the connection only moves its position past it (`CoreEvent::Seen`). But
//! when that notice arrives while the connection is reading pages (a
//! catch-up or a sync) or opens a gap, the position cannot move yet: the
//! event is read from the store with the pages around it, and without this
//! note it would be written back to the very device that made it, which
//! already has it. So the position is noted here, and the page that holds
//! it moves past it silently.
//!
//! Beside the slab rather than in each connection, which has no room to
//! spare (see `conn`'s size test): only connections paging have an entry.

use std::collections::HashMap;

use chatgw_storage::InboxPos;

/// At most this many own events are noted per connection; beyond it the
/// oldest is forgotten (and would be written back to the device, which
/// tells them apart by id).
const MAX_NOTED: usize = 1024;

/// Own events of paging connections, by slot.
#[derive(Default)]
pub(crate) struct OwnEvents {
    by_slot: HashMap<usize, (u32, Vec<InboxPos>)>,
}

impl OwnEvents {
    /// The connection in `slot` (of `generation`) made the event at `pos`.
    pub(crate) fn note(&mut self, slot: usize, generation: u32, pos: InboxPos) {
        let entry = self.by_slot.entry(slot).or_insert_with(|| (generation, Vec::new()));
        if entry.0 != generation {
            *entry = (generation, Vec::new());
        }
        if entry.1.len() == MAX_NOTED {
            entry.1.remove(0);
        }
        entry.1.push(pos);
    }

    /// Whether the event at `pos` was made by the connection in `slot`;
    /// the note is used up.
    pub(crate) fn take(&mut self, slot: usize, generation: u32, pos: InboxPos) -> bool {
        let Some((noted_for, positions)) = self.by_slot.get_mut(&slot) else { return false };
        if *noted_for != generation {
            return false;
        }
        let Some(i) = positions.iter().position(|p| *p == pos) else { return false };
        positions.swap_remove(i);
        if positions.is_empty() {
            self.by_slot.remove(&slot);
        }
        true
    }

    /// The connection in `slot` stopped paging or went away.
    pub(crate) fn forget(&mut self, slot: usize) {
        self.by_slot.remove(&slot);
    }

    /// Connections with notes.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_slot.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_taken_once_and_only_by_its_own_generation() {
        let mut own = OwnEvents::default();
        own.note(3, 7, InboxPos(10));
        assert!(!own.take(3, 8, InboxPos(10)), "another connection in the same slot");
        assert!(!own.take(3, 7, InboxPos(11)));
        assert!(own.take(3, 7, InboxPos(10)));
        assert!(!own.take(3, 7, InboxPos(10)), "used up");
        assert_eq!(own.len(), 0);
        own.note(3, 7, InboxPos(1));
        own.note(3, 9, InboxPos(2));
        assert!(!own.take(3, 7, InboxPos(1)), "a new connection in the slot drops the old notes");
        own.forget(3);
        assert!(!own.take(3, 9, InboxPos(2)));
    }

    #[test]
    fn notes_are_bounded_per_connection() {
        let mut own = OwnEvents::default();
        for p in 0..(MAX_NOTED as u64 + 1) {
            own.note(0, 1, InboxPos(p));
        }
        assert!(!own.take(0, 1, InboxPos(0)), "the oldest was forgotten");
        assert!(own.take(0, 1, InboxPos(MAX_NOTED as u64)));
    }
}
