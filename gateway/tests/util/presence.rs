//! What the presence and typing tests (one gateway and a fleet) read off a
//! connection: the answer to a subscription, the next presence change of
//! one user, and the next typing event.

use chatgw_client::{Client, ConversationRef, Event, PresenceState, TypingState, UserId};

use super::WAIT;

/// The answer to a `subscribe_presence`.
pub fn presence_list(c: &mut Client) -> Vec<(UserId, PresenceState)> {
    c.wait_for(WAIT, "presence_list", |e| match e {
        Event::PresenceList { users, .. } => Some(users.clone()),
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

/// The next `presence` event about `user`.
pub fn presence_of(c: &mut Client, user: u64) -> PresenceState {
    c.wait_for(WAIT, "presence", |e| match e {
        Event::Presence { user: u, state } if *u == UserId(user) => Some(*state),
        _ => None,
    })
    .unwrap()
}

/// The next `typing` event: (from, conversation, state, expires_in).
pub fn typing(c: &mut Client) -> (UserId, ConversationRef, TypingState, u32) {
    c.wait_for(WAIT, "typing", |e| match e {
        Event::Typing { from, conversation, state, expires_in } => Some((*from, *conversation, *state, *expires_in)),
        _ => None,
    })
    .unwrap()
}

/// [`typing`] without the expiry: (from, conversation, state).
pub fn typing_state(c: &mut Client) -> (UserId, ConversationRef, TypingState) {
    let (from, conversation, state, _) = typing(c);
    (from, conversation, state)
}
