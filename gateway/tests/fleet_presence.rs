//! Presence and typing across two gateway processes (one PostgreSQL
//! database, a `redis-server` the test starts): a watcher on one node sees
//! a user on the other come and go, wherever they reconnect, and hidden
//! once they turn presence off; typing crosses nodes both ways. Both I/O
//! drivers (every node of a run on one).

mod util;

use chatgw_client::{ConversationRef, Event, MessageKind, PresenceState, TypingState, UserId};
use util::{fleet::TestFleet, presence::*, *};

#[test]
fn presence_and_typing_cross_nodes_epoll() {
    presence_and_typing_cross_nodes("epoll");
}

#[test]
fn presence_and_typing_cross_nodes_uring() {
    presence_and_typing_cross_nodes("uring");
}

fn presence_and_typing_cross_nodes(io: &str) {
    let fleet = TestFleet::start_with_flags(2, &["--io", io]);
    let mut alice = fleet.online(0, 1);
    let mut bob = fleet.online(1, 2);
    fleet.settle();
    alice.send_message(UserId(2), "m-1", MessageKind::Text, "hi").unwrap();
    sent_id(&mut alice, "m-1");
    next_chat(&mut bob);

    // Node 1 told node 0 that bob is online there.
    alice.subscribe_presence(ConversationRef::Peer(UserId(2))).unwrap();
    assert_eq!(presence_list(&mut alice), vec![(UserId(2), PresenceState::Online)]);
    bob.subscribe_presence(ConversationRef::Peer(UserId(1))).unwrap();
    assert_eq!(presence_list(&mut bob), vec![(UserId(1), PresenceState::Online)]);

    // Typing, both ways.
    bob.typing(ConversationRef::Peer(UserId(1)), TypingState::Typing).unwrap();
    assert_eq!(typing_state(&mut alice), (UserId(2), ConversationRef::Peer(UserId(2)), TypingState::Typing));
    alice.typing(ConversationRef::Peer(UserId(2)), TypingState::Typing).unwrap();
    assert_eq!(typing_state(&mut bob), (UserId(1), ConversationRef::Peer(UserId(1)), TypingState::Typing));
    // Leaving while typing: the other node's device hears `paused`.
    bob.close();
    assert_eq!(typing_state(&mut alice), (UserId(2), ConversationRef::Peer(UserId(2)), TypingState::Paused));

    // Offline with a last seen time, then online again from the other node.
    let PresenceState::Offline { last_seen: Some(_) } = presence_of(&mut alice, 2) else { panic!("not offline") };
    let mut bob = fleet.connect(0, 2);
    assert_eq!(presence_of(&mut alice, 2), PresenceState::Online);

    // Hidden on node 0: a watcher on node 1 sees it hidden.
    bob.set_presence(false).unwrap();
    bob.wait_for(WAIT, "presence_set", |e| matches!(e, Event::PresenceSet { visible: false }).then_some(())).unwrap();
    assert_eq!(presence_of(&mut alice, 2), PresenceState::Hidden);
    fleet.settle();
    let mut alice_elsewhere = fleet.online(1, 1);
    alice_elsewhere.subscribe_presence(ConversationRef::Peer(UserId(2))).unwrap();
    assert_eq!(presence_list(&mut alice_elsewhere), vec![(UserId(2), PresenceState::Hidden)]);
    assert!(fleet.metric(0, "chatgw_presence_events_total") >= 3.0);
}
