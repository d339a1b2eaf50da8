//! The idempotency-key retention sweep: what it removes, what it leaves,
//! and what a resend sees afterwards (docs/STORAGE.md, "Retention").

use std::time::Duration;

use chatgw_protocol::{now_ms, Message, Snowflake, UserId};

use super::{inbox, text, Backend};
use crate::{retention_cutoff, MessageStore, Write, WriteOutcome};

const DAY_MS: u64 = 86_400_000;
const BOTH: [UserId; 2] = [UserId(1), UserId(2)];

/// `text` with an id made at `unix_ms` rather than now.
fn text_at(g: &mut Snowflake, unix_ms: u64, from: u64, to: u64, client_id: &str) -> Message {
    let mut m = text(&mut Snowflake::new(1), from, to, client_id);
    m.id = g.next_at(unix_ms);
    m.ts = Snowflake::unix_ms(m.id);
    m
}

fn commit_all(s: &dyn MessageStore, ms: &[Message]) {
    for m in ms {
        let w = [Write::Message { message: m, inboxes: &BOTH, membership: None }];
        assert_eq!(s.commit(&w, m.id).expect("commit").outcome(0), Some(WriteOutcome::Applied));
    }
}

fn key_of(m: &Message) -> (UserId, &str) {
    (m.from, m.client_id.as_str())
}

/// Walk the whole table in steps of `limit`; keys removed and steps taken.
fn sweep(s: &dyn MessageStore, cutoff: chatgw_protocol::MessageId, limit: usize) -> (u64, usize) {
    let (mut removed, mut steps, mut after) = (0, 0, None::<(UserId, String)>);
    loop {
        let step = s.sweep_idempotency_keys(after.as_ref().map(|(u, c)| (*u, c.as_str())), cutoff, limit).unwrap();
        assert!(step.examined <= limit, "a step looks at no more than its limit");
        removed += step.removed;
        steps += 1;
        assert!(steps < 1000, "the walk ends");
        match step.next {
            Some(next) => after = Some(next),
            None => return (removed, steps),
        }
    }
}

/// A sweep with a one-day retention, in steps of 2 keys, removes exactly the
/// keys of messages older than a day (from two senders, interleaved in key
/// order with fresh ones) and leaves fresh keys, every message and every
/// inbox event; a second pass removes nothing. A resend with an expired
/// client id is then stored as a new message. A backend whose keys expire
/// by TTL (Cassandra) has nothing to sweep and is not checked here.
pub fn sweep_removes_expired_idempotency_keys(backend: &dyn Backend) {
    if backend.keys_expire_by_ttl() {
        return;
    }
    let s = backend.open(&backend.new_place());
    let now = now_ms();
    let mut g = Snowflake::new(1);
    let mut old = Vec::new();
    let mut fresh = Vec::new();
    for i in 0..5u64 {
        old.push(text_at(&mut g, now - 3 * DAY_MS + i, 1 + i % 2, 2, &format!("a{i}")));
    }
    for i in 0..4u64 {
        fresh.push(text_at(&mut g, now - 1000 + i, 1 + i % 2, 2, &format!("b{i}")));
    }
    commit_all(&*s, &old);
    commit_all(&*s, &fresh);
    let cutoff = retention_cutoff(Some(Duration::from_millis(DAY_MS)), now);
    let (removed, steps) = sweep(&*s, cutoff, 2);
    assert_eq!(removed, 5, "the keys of the five old messages");
    assert!(steps >= 5, "nine keys in steps of two: {steps} steps");
    let old_keys: Vec<_> = old.iter().map(key_of).collect();
    assert_eq!(s.messages_by_client_ids(&old_keys).unwrap(), vec![None; 5], "expired keys are gone");
    let fresh_keys: Vec<_> = fresh.iter().map(key_of).collect();
    let bound: Vec<_> = fresh.iter().map(|m| Some((m.conversation, m.id))).collect();
    assert_eq!(s.messages_by_client_ids(&fresh_keys).unwrap(), bound, "fresh keys are kept");
    for m in old.iter().chain(&fresh) {
        assert_eq!(s.message(m.conversation, m.id).unwrap().as_ref(), Some(m), "messages are never swept");
    }
    assert_eq!(inbox(&*s, 2, 100).len(), 9, "inbox events are never swept");
    assert_eq!(sweep(&*s, cutoff, 2).0, 0, "a second pass finds nothing");
    assert_eq!(sweep(&*s, cutoff, 0).0, 0, "a zero limit does nothing");

    // A resend after the retention is a new message; a fresh one is not.
    let resend = text(&mut g, 1, 2, "a0");
    let again = text(&mut g, fresh[0].from.0, 2, &fresh[0].client_id);
    let w = [
        Write::Message { message: &resend, inboxes: &BOTH, membership: None },
        Write::Message { message: &again, inboxes: &BOTH, membership: None },
    ];
    let done = s.commit(&w, again.id).unwrap();
    assert_eq!(done.outcome(0), Some(WriteOutcome::Applied), "an expired client id binds anew");
    assert_eq!(done.outcome(1), Some(WriteOutcome::Duplicate { conversation: fresh[0].conversation, id: fresh[0].id }));
    assert_eq!(s.messages_by_client_ids(&[(UserId(1), "a0")]).unwrap(), vec![Some((resend.conversation, resend.id))]);
}
