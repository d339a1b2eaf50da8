//! Direct messages from strangers over real sockets with the real store: a
//! user who takes direct messages from contacts only refuses a stranger's
//! with `not_allowed` and stores nothing, takes them from a user they share
//! a group with and from one they wrote to first, and takes everyone's
//! again once set back; bad input for `set_direct_from` gets the documented
//! errors.

mod util;

use std::time::Duration;

use chatgw_client::{Client, DirectFrom, Event, MessageKind, UserId};
use util::*;

const REFUSED: &str = "this user takes direct messages only from people they share a conversation with";

/// The next `direct_from` answer.
fn setting(c: &mut Client) -> DirectFrom {
    c.wait_for(WAIT, "direct_from", |e| match e {
        Event::DirectFrom { from } => Some(*from),
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

/// The next error: (code, message, ref).
fn error(c: &mut Client) -> (String, String, Option<String>) {
    c.wait_for(WAIT, "error", |e| match e {
        Event::Error { code, message, reference } => Some((code.clone(), message.clone(), reference.clone())),
        Event::Sent { client_id, .. } => panic!("`sent` for {client_id} where an error was due"),
        Event::DirectFrom { from } => panic!("a setting where an error was due: {from:?}"),
        _ => None,
    })
    .unwrap()
}

each_store!(strangers_are_refused_contacts_are_not);
fn strangers_are_refused_contacts_are_not(on: Setup) {
    let gw = TestGateway::start(on, 4);
    let mut a = gw.online(1);
    let mut stranger = gw.online(2);
    let mut mate = gw.online(3);
    let mut friend = gw.online(4);

    a.direct_from().unwrap();
    assert_eq!(setting(&mut a), DirectFrom::Everyone, "everyone by default");
    a.set_direct_from(DirectFrom::Contacts).unwrap();
    assert_eq!(setting(&mut a), DirectFrom::Contacts);
    a.direct_from().unwrap();
    assert_eq!(setting(&mut a), DirectFrom::Contacts, "the setting reads back");

    // A stranger is refused, and nothing is stored: not for the recipient,
    // not in the stranger's own sync.
    stranger.send_message(UserId(1), "s-1", MessageKind::Text, "hi, we never met").unwrap();
    assert_eq!(error(&mut stranger), ("not_allowed".to_owned(), REFUSED.to_owned(), Some("s-1".to_owned())));
    let live = a.drain(Duration::from_millis(300)).unwrap();
    assert!(bodies_from(&live, 2).is_empty(), "nothing reached the recipient: {live:?}");
    let mut fresh = gw.connect(2);
    let synced = sync_all(&mut fresh);
    assert!(bodies_from(&synced, 2).is_empty(), "nothing stored for the stranger either: {synced:?}");

    // A user the recipient shares a group with is accepted (the group was
    // made after the recipient's list was read for the refusal above).
    a.create_group("g-1", "Both", &[UserId(3)]).unwrap();
    group_id(&mut a);
    mate.send_message(UserId(1), "m-1", MessageKind::Text, "from the group").unwrap();
    sent_id(&mut mate, "m-1");
    assert_eq!(next_chat(&mut a).body, "from the group");

    // A user the recipient wrote to first may answer.
    a.send_message(UserId(4), "a-1", MessageKind::Text, "hello friend").unwrap();
    sent_id(&mut a, "a-1");
    assert_eq!(next_chat(&mut friend).body, "hello friend");
    friend.send_message(UserId(1), "f-1", MessageKind::Text, "hello back").unwrap();
    sent_id(&mut friend, "f-1");
    assert_eq!(next_chat(&mut a).body, "hello back");

    // Still refused after all that; then everyone may write again.
    stranger.send_message(UserId(1), "s-2", MessageKind::Text, "again").unwrap();
    assert_eq!(error(&mut stranger).0, "not_allowed");
    a.set_direct_from(DirectFrom::Everyone).unwrap();
    assert_eq!(setting(&mut a), DirectFrom::Everyone);
    stranger.send_message(UserId(1), "s-3", MessageKind::Text, "now?").unwrap();
    sent_id(&mut stranger, "s-3");
    assert_eq!(next_chat(&mut a).body, "now?");

    // On again: the stranger now shares a conversation (the message
    // accepted above), a newcomer does not.
    a.set_direct_from(DirectFrom::Contacts).unwrap();
    assert_eq!(setting(&mut a), DirectFrom::Contacts);
    let mut other_device = gw.online(1);
    other_device.direct_from().unwrap();
    assert_eq!(setting(&mut other_device), DirectFrom::Contacts, "the same setting on every device");
    stranger.send_message(UserId(1), "s-4", MessageKind::Text, "we talked").unwrap();
    sent_id(&mut stranger, "s-4");
    let mut newcomer = gw.online(5);
    newcomer.send_message(UserId(1), "n-1", MessageKind::Text, "hello?").unwrap();
    assert_eq!(error(&mut newcomer).1, REFUSED);
}

each_store!(bad_input_for_direct_from_frames);
fn bad_input_for_direct_from_frames(on: Setup) {
    let gw = TestGateway::start(on, 1);
    let mut a = gw.online(1);
    for (frame, message) in [
        (r#"{"type":"set_direct_from"}"#, "field `from`: missing"),
        (r#"{"type":"set_direct_from","from":"friends"}"#, "field `from`: must be \"everyone\" or \"contacts\""),
        (r#"{"type":"set_direct_from","from":true}"#, "field `from`: must be \"everyone\" or \"contacts\""),
        (r#"{"type":"set_direct_from","from":"Contacts"}"#, "field `from`: must be \"everyone\" or \"contacts\""),
    ] {
        a.send_raw(frame).unwrap();
        let (code, why, _) = error(&mut a);
        assert_eq!((code.as_str(), why.as_str()), ("bad_field", message), "{frame}");
    }
    // Nothing was changed by them; writing to oneself is never refused.
    a.direct_from().unwrap();
    assert_eq!(setting(&mut a), DirectFrom::Everyone);
    a.set_direct_from(DirectFrom::Contacts).unwrap();
    assert_eq!(setting(&mut a), DirectFrom::Contacts);
    a.send_message(UserId(1), "self-1", MessageKind::Text, "note to self").unwrap();
    sent_id(&mut a, "self-1");
}
