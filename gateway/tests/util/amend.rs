//! What the delete, edit and delete-for-me tests read off a connection:
//! `amended` frames (the requester's answer or another device's event),
//! the error a refused amendment gets, and the amendments among replayed
//! events.

use chatgw_client::{Client, Event, MessageEvent, MessageId};

use super::WAIT;

/// The next `amended` frame on `c`, checking whether it is the answer to
/// this connection's own request (`reply`): (event id, the message as shown
/// to `c`'s user).
pub fn amended_frame(c: &mut Client, want_reply: bool) -> (MessageId, MessageEvent) {
    c.wait_for(WAIT, "amended", |e| match e {
        Event::Amended { event, message, reply } => {
            assert_eq!(*reply, want_reply, "a reply to the requester only: {e:?}");
            Some((*event, message.clone()))
        }
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

/// The next error where an amendment must be refused: (code, message).
pub fn amend_error(c: &mut Client) -> (String, String) {
    c.wait_for(WAIT, "error", |e| match e {
        Event::Error { code, message, .. } => Some((code.clone(), message.clone())),
        Event::Amended { event, .. } => panic!("an amendment ({event}) where an error was due"),
        _ => None,
    })
    .unwrap()
}

/// The `amended` events among `events`, in order: (event id, message).
pub fn amendments(events: &[Event]) -> Vec<(MessageId, MessageEvent)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Amended { event, message, .. } => Some((*event, message.clone())),
            _ => None,
        })
        .collect()
}
