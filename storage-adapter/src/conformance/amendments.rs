//! Amendments (edits and deletes for everyone): the stored message is
//! replaced for every read (point reads, batched reads, history, inbox
//! replays), each amendment is one inbox event that shows the message as it
//! is when read, the last amendment of a batch wins, and a delete is final.

use chatgw_protocol::{AmendKind, Amendment, Message, MessageId, Snowflake, UserId};

use super::{inbox, text, Backend};
use crate::{InboxEvent, Write, WriteOutcome};

fn amended(m: &Message, kind: AmendKind, event: MessageId, body: &str) -> Message {
    Message { body: body.into(), amended: Some(Amendment { kind, event }), ..m.clone() }
}

/// Edit then delete, read back through every read, before and after a
/// reopen; a later edit (another writer that had not seen the delete)
/// never brings the body back where the backend can tell.
pub fn amendments_replace_the_message_everywhere(backend: &dyn Backend) {
    let place = backend.new_place();
    let mut ids = Snowflake::new(3);
    let (m, other) = (text(&mut ids, 1, 2, "a1"), text(&mut ids, 1, 2, "a2"));
    let both = [UserId(1), UserId(2)];
    let (e1, e2, e3, e4) = (ids.next_id(), ids.next_id(), ids.next_id(), ids.next_id());
    let edit = amended(&m, AmendKind::Edited, e1, "\"edited once\"");
    let edit_again = amended(&m, AmendKind::Edited, e2, "\"edited twice\"");
    let delete = amended(&m, AmendKind::Deleted, e3, "");
    {
        let s = backend.open(&place);
        let sends = [&m, &other].map(|message| Write::Message { message, inboxes: &both, membership: None });
        s.commit(&sends, other.id).unwrap();
        // Two edits in one batch: the last one is the message's state.
        let done = s
            .commit(
                &[
                    Write::Amend { message: &edit, inboxes: &both },
                    Write::Amend { message: &edit_again, inboxes: &both },
                ],
                e2,
            )
            .unwrap();
        assert_eq!((done.outcome(0), done.outcome(1)), (Some(WriteOutcome::Applied), Some(WriteOutcome::Applied)));
        assert_eq!(done.positions(0).len(), 2, "an event in each inbox");
        assert_eq!(s.message(m.conversation, m.id).unwrap(), Some(edit_again.clone()), "the last edit of the batch");
        s.commit(&[Write::Amend { message: &delete, inboxes: &both }], e3).unwrap();
    }
    let s = backend.open(&place);
    assert_eq!(s.message(m.conversation, m.id).unwrap(), Some(delete.clone()), "survives a reopen");
    assert_eq!(
        s.messages(&[(m.conversation, m.id), (other.conversation, other.id)]).unwrap(),
        vec![Some(delete.clone()), Some(other.clone())],
        "batched reads by key see the tombstone, and nothing else changed"
    );
    assert_eq!(s.history(m.conversation, None, 10).unwrap(), vec![other.clone(), delete.clone()]);
    let header = s.message_headers(&[(m.conversation, m.id)]).unwrap();
    assert_eq!(header[0].map(|h| (h.from, h.kind)), Some((m.from, m.kind)), "headers are unchanged");
    for user in [1, 2] {
        let events = inbox(s.as_ref(), user, 10);
        assert_eq!(events.len(), 5, "two messages and three amendments: {events:?}");
        assert_eq!(events[0], InboxEvent::Message(delete.clone()), "a replay of the message shows the tombstone");
        for (event, id) in events[2..].iter().zip([e1, e2, e3]) {
            assert_eq!(
                event,
                &InboxEvent::Amended { event: id, message: delete.clone() },
                "every amended event shows the message as it is now, not the edit it announced"
            );
            assert_eq!(event.id(), id);
        }
    }
    // A delete is final: a later edit leaves the tombstone (embedded and
    // PostgreSQL check; Cassandra writes without reading, see STORAGE.md).
    if backend.deletes_are_final() {
        let late = amended(&m, AmendKind::Edited, e4, "\"back\"");
        s.commit(&[Write::Amend { message: &late, inboxes: &both }], e4).unwrap();
        assert_eq!(s.message(m.conversation, m.id).unwrap(), Some(delete), "the tombstone stays");
        assert_eq!(inbox(s.as_ref(), 2, 10).len(), 6, "the event is written, and shows the tombstone");
    }
}
