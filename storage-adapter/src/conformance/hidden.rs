//! Hidden marks (delete for me): a hide is stored per user and message,
//! read back by `hidden_marks` for that user only, survives a reopen, puts
//! one `amended` event in the hiding user's inbox only, showing the message
//! in its hidden form, and leaves the message itself and every other
//! user's view unchanged. A second hide of the same message keeps the
//! first event as the mark.

use chatgw_protocol::{hidden_view, Snowflake, UserId};

use super::{inbox, text, Backend};
use crate::{InboxEvent, Write, WriteOutcome};

/// Hide a message for one user, read it back every way, then hide it
/// again (another writer that had not seen the first hide).
pub fn hidden_marks_are_per_user(backend: &dyn Backend) {
    let place = backend.new_place();
    let mut ids = Snowflake::new(5);
    let (m, kept) = (text(&mut ids, 1, 2, "h1"), text(&mut ids, 1, 2, "h2"));
    let both = [UserId(1), UserId(2)];
    let (e1, e2) = (ids.next_id(), ids.next_id());
    let keys = [(m.conversation, m.id), (kept.conversation, kept.id)];
    {
        let s = backend.open(&place);
        let sends = [&m, &kept].map(|message| Write::Message { message, inboxes: &both, membership: None });
        s.commit(&sends, kept.id).unwrap();
        assert_eq!(s.hidden_marks(UserId(2), &keys).unwrap(), vec![None, None], "nothing hidden yet");
        let hide = Write::Hide { user: &UserId(2), conversation: m.conversation, msg: m.id, event: e1 };
        let done = s.commit(&[hide], e1).unwrap();
        assert_eq!(done.outcome(0), Some(WriteOutcome::Applied));
        assert_eq!(done.positions(0).len(), 1, "one event, in the hiding user's inbox only");
    }
    let s = backend.open(&place);
    assert_eq!(s.hidden_marks(UserId(2), &keys).unwrap(), vec![Some(e1), None], "survives a reopen");
    assert_eq!(s.hidden_marks(UserId(1), &keys).unwrap(), vec![None, None], "the other user hid nothing");
    assert!(s.hidden_marks(UserId(2), &[]).unwrap().is_empty());
    assert_eq!(s.message(m.conversation, m.id).unwrap(), Some(m.clone()), "the message itself is unchanged");
    assert_eq!(s.history(m.conversation, None, 10).unwrap(), vec![kept.clone(), m.clone()]);
    let mine = inbox(s.as_ref(), 2, 10);
    assert_eq!(mine.len(), 3, "two messages and the hide: {mine:?}");
    assert_eq!(mine[2], InboxEvent::Amended { event: e1, message: hidden_view(m.clone(), e1) });
    assert_eq!(mine[2].id(), e1);
    assert_eq!(inbox(s.as_ref(), 1, 10).len(), 2, "the sender's inbox has no event of it");

    // Hidden again by another writer: the event is written, the first
    // hide stays the mark.
    let again = Write::Hide { user: &UserId(2), conversation: m.conversation, msg: m.id, event: e2 };
    s.commit(&[again], e2).unwrap();
    assert_eq!(s.hidden_marks(UserId(2), &keys[..1]).unwrap(), vec![Some(e1)], "the first hide stands");
    assert_eq!(inbox(s.as_ref(), 2, 10).len(), 4);
}
