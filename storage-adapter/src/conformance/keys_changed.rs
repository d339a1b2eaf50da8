//! `keys_changed` events (docs/E2EE.md): one write puts an event naming the
//! user whose keys changed in each inbox it lists, and nowhere else; the
//! events keep their place among the inbox's other events, survive a
//! reopen and resolve as a sync cursor like any event.

use chatgw_protocol::{Snowflake, UserId};

use super::{inbox, text, Backend};
use crate::{InboxEvent, Write, WriteOutcome};

/// User 1's keys changed: users 2 and 3 are told, user 4 is not.
pub fn keys_changed_reaches_each_listed_inbox(backend: &dyn Backend) {
    let place = backend.new_place();
    let mut ids = Snowflake::new(6);
    let before = text(&mut ids, 1, 2, "k1");
    let event = ids.next_id();
    let contacts = [UserId(2), UserId(3)];
    {
        let s = backend.open(&place);
        let send = Write::Message { message: &before, inboxes: &[UserId(1), UserId(2)], membership: None };
        s.commit(&[send], before.id).unwrap();
        let changed = Write::KeysChanged { user: &UserId(1), event, inboxes: &contacts };
        let done = s.commit(&[changed], event).unwrap();
        assert_eq!(done.outcome(0), Some(WriteOutcome::Applied));
        assert_eq!(done.positions(0).len(), 2, "one event per inbox listed");
    }
    let s = backend.open(&place);
    let two = inbox(s.as_ref(), 2, 10);
    assert_eq!(two.len(), 2, "the message, then the event: {two:?}");
    assert_eq!(two[1], InboxEvent::KeysChanged { event, user: UserId(1) });
    assert_eq!(two[1].id(), event);
    assert_eq!(inbox(s.as_ref(), 3, 10), vec![InboxEvent::KeysChanged { event, user: UserId(1) }]);
    assert!(inbox(s.as_ref(), 4, 10).is_empty(), "not a contact: nothing");
    assert_eq!(inbox(s.as_ref(), 1, 10).len(), 1, "not listed: only the message");
    // The event is a cursor: a sync after it starts after it.
    let pos = s.inbox_position(UserId(2), event).unwrap();
    assert!(s.inbox_after(UserId(2), pos, 10).unwrap().is_empty(), "nothing after the event");
}
