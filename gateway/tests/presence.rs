//! Presence and typing over real sockets on both I/O drivers: presence is
//! seen only by users who share a conversation (and not at all when turned
//! off), changes are coalesced; typing reaches the other members' devices
//! and not the typer's, is rate-limited and lapses by itself; blocks hide
//! both ways; bad input gets the documented errors.

mod util;

use std::time::{Duration, Instant};

use chatgw_client::{Client, ConversationRef, Event, GroupId, MessageKind, PresenceState, TypingState, UserId};
use chatgw_gateway::config::IoDriver;
use util::{presence::*, *};

/// Window and typing expiry short enough for a test to wait them out.
fn gateway(io: IoDriver) -> TestGateway {
    TestGateway::start_with(io, 2, |c| {
        c.presence_window = Duration::from_millis(300);
        c.typing_expiry = Duration::from_secs(1);
    })
}

fn peer(u: u64) -> ConversationRef {
    ConversationRef::Peer(UserId(u))
}

/// The next error: (code, message).
fn error(c: &mut Client) -> (String, String) {
    c.wait_for(WAIT, "error", |e| match e {
        Event::Error { code, message, .. } => Some((code.clone(), message.clone())),
        Event::PresenceList { users, .. } => panic!("a presence list where an error was due: {users:?}"),
        _ => None,
    })
    .unwrap()
}

fn typings(events: &[Event]) -> Vec<TypingState> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Typing { state, .. } => Some(*state),
            _ => None,
        })
        .collect()
}

fn presences(events: &[Event]) -> Vec<(UserId, PresenceState)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Presence { user, state } => Some((*user, *state)),
            _ => None,
        })
        .collect()
}

/// `from` sends `to` one direct message (which is what makes a direct
/// conversation shared), and `to` receives it.
fn talk(from: &mut Client, to: &mut Client, id: &str) {
    let target = to.user();
    from.send_message(target, id, MessageKind::Text, "hello").unwrap();
    sent_id(from, id);
    next_chat(to);
}

fn group_of(owner: &mut Client, id: &str, others: &[u64]) -> GroupId {
    let members: Vec<UserId> = others.iter().map(|u| UserId(*u)).collect();
    owner.create_group(id, "team", &members).unwrap();
    group_id(owner)
}

each_driver!(presence_is_seen_by_those_who_share_a_conversation_and_hidden_when_off);
fn presence_is_seen_by_those_who_share_a_conversation_and_hidden_when_off(io: IoDriver) {
    let gw = gateway(io);
    let mut a = gw.online(1);
    let mut b = gw.online(2);
    let mut stranger = gw.online(3);
    talk(&mut a, &mut b, "a-1");

    a.subscribe_presence(peer(2)).unwrap();
    assert_eq!(presence_list(&mut a), vec![(UserId(2), PresenceState::Online)]);
    // No message between 3 and 2: no presence.
    stranger.subscribe_presence(peer(2)).unwrap();
    assert_eq!(
        error(&mut stranger),
        (
            "not_allowed".into(),
            "no conversation with this user yet: presence and typing need a message between you".into()
        )
    );

    // Offline with the time the last connection closed.
    let before = chatgw_protocol::now_ms();
    b.close();
    let PresenceState::Offline { last_seen: Some(seen) } = presence_of(&mut a, 2) else { panic!("not offline") };
    assert!(seen >= before && seen <= chatgw_protocol::now_ms(), "last seen {seen} after {before}");
    let b = gw.connect(2);
    assert_eq!(presence_of(&mut a, 2), PresenceState::Online);

    // A reconnect within the window is never seen. A reconnect slowed past
    // half the window (a loaded machine) may show as a flap, which must
    // end online.
    b.close();
    let closed = Instant::now();
    let b = gw.connect(2);
    let reconnected_in = closed.elapsed();
    let quiet = presences(&a.drain(Duration::from_millis(900)).unwrap());
    if reconnected_in < Duration::from_millis(150) {
        assert_eq!(quiet, vec![], "a quick reconnect is coalesced away");
    } else {
        assert!(
            quiet.is_empty() || quiet.last() == Some(&(UserId(2), PresenceState::Online)),
            "a reconnect in {reconnected_in:?} ends online: {quiet:?}"
        );
    }

    // A storm of reconnects that ends offline: at most one event per
    // window while it lasts (one in all when it fits in a window), and the
    // last is the state it ended in.
    b.close();
    let started = Instant::now();
    for _ in 0..10 {
        gw.connect(2).close();
    }
    let windows = started.elapsed().as_millis() / 300;
    let storm = presences(&a.drain(Duration::from_millis(1200)).unwrap());
    assert!(storm.len() as u128 <= windows + 1, "{} flaps over {windows} windows: {storm:?}", 10);
    assert!(matches!(storm.last(), Some((UserId(2), PresenceState::Offline { last_seen: Some(_) }))), "{storm:?}");
    let mut b = gw.connect(2);
    assert_eq!(presence_of(&mut a, 2), PresenceState::Online);

    // Turned off: hidden, to current and new watchers, whatever happens.
    b.set_presence(false).unwrap();
    b.wait_for(WAIT, "presence_set", |e| matches!(e, Event::PresenceSet { visible: false }).then_some(())).unwrap();
    assert_eq!(presence_of(&mut a, 2), PresenceState::Hidden);
    let mut a2 = gw.online(1);
    a2.subscribe_presence(peer(2)).unwrap();
    assert_eq!(presence_list(&mut a2), vec![(UserId(2), PresenceState::Hidden)]);
    b.close();
    let quiet = a.drain(Duration::from_millis(900)).unwrap();
    assert_eq!(presences(&quiet), vec![], "nothing leaks while hidden");
    let mut b = gw.connect(2);
    b.set_presence(true).unwrap();
    assert_eq!(presence_of(&mut a, 2), PresenceState::Online);

    // A group: its other members, with no last seen for one never seen.
    let g = group_of(&mut stranger, "g-1", &[1, 4]);
    stranger.subscribe_presence(ConversationRef::Group(g)).unwrap();
    assert_eq!(
        presence_list(&mut stranger),
        vec![(UserId(1), PresenceState::Online), (UserId(4), PresenceState::Offline { last_seen: None })]
    );
    // After unsubscribing, nothing more.
    a.unsubscribe_presence(peer(2)).unwrap();
    a2.unsubscribe_presence(peer(2)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    b.close();
    let quiet = a.drain(Duration::from_millis(900)).unwrap();
    assert_eq!(presences(&quiet), vec![], "unsubscribed");
    assert!(gw.metric("chatgw_presence_events_total") >= 4.0);
}

each_driver!(typing_reaches_the_other_members_devices_is_limited_and_lapses);
fn typing_reaches_the_other_members_devices_is_limited_and_lapses(io: IoDriver) {
    let gw = gateway(io);
    let mut a = gw.online(1);
    let mut a_other = gw.online(1);
    let mut b = gw.online(2);
    let mut c = gw.online(3);
    let g = group_of(&mut a, "g-1", &[2, 3]);
    talk(&mut a, &mut b, "a-1");
    a_other.drain(Duration::from_millis(200)).unwrap();

    // A group: every other member's devices, not the typer's.
    let typed = Instant::now();
    a.typing(ConversationRef::Group(g), TypingState::Typing).unwrap();
    for dev in [&mut b, &mut c] {
        assert_eq!(typing(dev), (UserId(1), ConversationRef::Group(g), TypingState::Typing, 1));
    }
    // A direct conversation names the typer as the peer.
    a.typing(peer(2), TypingState::Typing).unwrap();
    assert_eq!(typing(&mut b), (UserId(1), peer(1), TypingState::Typing, 1));
    a.typing(peer(2), TypingState::Paused).unwrap();
    assert_eq!(typing(&mut b), (UserId(1), peer(1), TypingState::Paused, 1));
    // The group's typing state lapses by itself after the expiry (1 s from
    // when the gateway took the `typing`, which is after `typed`).
    for dev in [&mut b, &mut c] {
        assert_eq!(typing(dev), (UserId(1), ConversationRef::Group(g), TypingState::Paused, 1));
    }
    assert!(typed.elapsed() >= Duration::from_millis(900), "lapsed after about a second: {:?}", typed.elapsed());
    let own = a.drain(Duration::from_millis(200)).unwrap();
    let other = a_other.drain(Duration::from_millis(200)).unwrap();
    assert!(typings(&own).is_empty() && typings(&other).is_empty(), "the typer's devices hear nothing");

    // A device that leaves while typing: `paused` goes out for it.
    let mut a3 = gw.online(1);
    a3.typing(peer(2), TypingState::Typing).unwrap();
    assert_eq!(typing(&mut b).2, TypingState::Typing);
    a3.close();
    assert_eq!(typing(&mut b).2, TypingState::Paused);

    // Rate-limited: a burst of 3, the rest dropped without an answer.
    let mut a4 = gw.online(1);
    for _ in 0..10 {
        a4.typing(ConversationRef::Group(g), TypingState::Typing).unwrap();
    }
    let got = c.drain(Duration::from_millis(600)).unwrap();
    let typed = typings(&got).iter().filter(|s| **s == TypingState::Typing).count();
    assert_eq!(typed, 3, "{got:?}");
    let answered = a4.drain(Duration::from_millis(100)).unwrap();
    assert!(answered.iter().all(|e| !matches!(e, Event::Error { .. })), "{answered:?}");
    assert_eq!(gw.metric("chatgw_typing_rate_limited_total"), 7.0);

    // Never stored: a sync brings none of it.
    let mut fresh = gw.connect(2);
    let synced = sync_all(&mut fresh);
    assert!(typings(&synced).is_empty(), "{synced:?}");
}

each_driver!(blocked_users_see_neither_presence_nor_typing);
fn blocked_users_see_neither_presence_nor_typing(io: IoDriver) {
    let gw = gateway(io);
    let mut a = gw.online(1);
    let mut b = gw.online(2);
    let mut c = gw.online(3);
    talk(&mut a, &mut b, "a-1");
    let g = group_of(&mut c, "g-1", &[1, 2]);
    // Watching each other before the block: hidden both ways once it is made.
    a.subscribe_presence(peer(2)).unwrap();
    assert_eq!(presence_list(&mut a), vec![(UserId(2), PresenceState::Online)]);
    b.subscribe_presence(peer(1)).unwrap();
    assert_eq!(presence_list(&mut b), vec![(UserId(1), PresenceState::Online)]);
    b.block(UserId(1)).unwrap();
    // The `presence` may come before or after the `blocks` answer.
    let mut told = Vec::new();
    b.wait_for(WAIT, "blocks", |e| {
        told.extend(presences(std::slice::from_ref(e)));
        matches!(e, Event::Blocks { .. }).then_some(())
    })
    .unwrap();
    if told.is_empty() {
        told.push((UserId(1), presence_of(&mut b, 1)));
    }
    assert_eq!(told, vec![(UserId(1), PresenceState::Hidden)]);
    assert_eq!(presence_of(&mut a, 2), PresenceState::Hidden);

    // Both ways, direct and in a group.
    a.subscribe_presence(peer(2)).unwrap();
    assert_eq!(presence_list(&mut a), vec![(UserId(2), PresenceState::Hidden)]);
    b.subscribe_presence(peer(1)).unwrap();
    assert_eq!(presence_list(&mut b), vec![(UserId(1), PresenceState::Hidden)]);
    a.subscribe_presence(ConversationRef::Group(g)).unwrap();
    assert_eq!(presence_list(&mut a), vec![(UserId(2), PresenceState::Hidden), (UserId(3), PresenceState::Online)]);
    a.typing(peer(2), TypingState::Typing).unwrap();
    b.typing(peer(1), TypingState::Typing).unwrap();
    a.typing(ConversationRef::Group(g), TypingState::Typing).unwrap();
    assert_eq!(typing(&mut c).0, UserId(1), "the third member still hears the typer");
    b.typing(ConversationRef::Group(g), TypingState::Typing).unwrap();
    assert_eq!(typing(&mut c).0, UserId(2));
    let to_a = a.drain(Duration::from_millis(500)).unwrap();
    let to_b = b.drain(Duration::from_millis(100)).unwrap();
    assert!(typings(&to_a).is_empty() && typings(&to_b).is_empty(), "{to_a:?} {to_b:?}");
    // b going away is no news to a.
    b.close();
    let quiet = a.drain(Duration::from_millis(900)).unwrap();
    assert_eq!(presences(&quiet), vec![]);
}

each_driver!(bad_input_for_presence_and_typing_frames);
fn bad_input_for_presence_and_typing_frames(io: IoDriver) {
    let gw = gateway(io);
    let mut a = gw.online(1);
    for (frame, code, message) in [
        (r#"{"type":"subscribe_presence"}"#, "bad_field", "field `peer`: missing (or give `group`)"),
        (r#"{"type":"subscribe_presence","peer":2}"#, "bad_field", "field `peer`: must be an id as a decimal string"),
        (
            r#"{"type":"unsubscribe_presence","peer":"2","group":"3"}"#,
            "bad_field",
            "field `group`: give either `peer` or `group`, not both",
        ),
        (r#"{"type":"set_presence"}"#, "bad_field", "field `visible`: missing"),
        (r#"{"type":"set_presence","visible":0}"#, "bad_field", "field `visible`: must be true or false"),
        (r#"{"type":"typing","group":"3"}"#, "bad_field", "field `state`: missing"),
        (
            r#"{"type":"typing","peer":"2","state":"busy"}"#,
            "bad_field",
            r#"field `state`: must be "typing" or "paused""#,
        ),
        (r#"{"type":"subscribe_presence","group":"99"}"#, "not_allowed", "not a member of this group"),
        (r#"{"type":"typing","group":"99","state":"typing"}"#, "not_allowed", "not a member of this group"),
        (
            r#"{"type":"subscribe_presence","peer":"1"}"#,
            "not_allowed",
            "presence and typing are for conversations with others",
        ),
        (
            r#"{"type":"typing","peer":"5","state":"typing"}"#,
            "not_allowed",
            "no conversation with this user yet: presence and typing need a message between you",
        ),
    ] {
        a.send_raw(frame).unwrap();
        assert_eq!(error(&mut a), (code.to_owned(), message.to_owned()), "{frame}");
    }
    // At most 32 conversations watched per connection.
    let mut others = Vec::new();
    for u in 100..133u64 {
        let mut other = gw.online(u);
        talk(&mut a, &mut other, &format!("m-{u}"));
        others.push(other);
    }
    for u in 100..132u64 {
        a.subscribe_presence(peer(u)).unwrap();
        assert_eq!(presence_list(&mut a), vec![(UserId(u), PresenceState::Online)]);
    }
    a.subscribe_presence(peer(132)).unwrap();
    assert_eq!(
        error(&mut a),
        (
            "not_allowed".into(),
            "at most 32 presence subscriptions per connection: unsubscribe_presence from one first".into()
        )
    );
    // Subscribing again to one already watched is a refresh, not a 33rd.
    a.subscribe_presence(peer(100)).unwrap();
    assert_eq!(presence_list(&mut a), vec![(UserId(100), PresenceState::Online)]);
    a.unsubscribe_presence(peer(100)).unwrap();
    a.subscribe_presence(peer(132)).unwrap();
    assert_eq!(presence_list(&mut a), vec![(UserId(132), PresenceState::Online)]);
}
