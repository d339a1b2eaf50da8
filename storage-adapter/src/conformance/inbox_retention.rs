//! The inbox retention sweep: it removes only the oldest entries of each
//! inbox, and every reader stays correct (docs/STORAGE.md, "Inbox
//! retention").

use std::time::Duration;

use chatgw_protocol::{now_ms, Message, MessageId, Snowflake, UserId};

use super::{text, Backend};
use crate::{retention_cutoff, InboxEntry, InboxPos, MessageStore, Write, WriteOutcome};

const DAY_MS: u64 = 86_400_000;

/// `text` with an id made at `unix_ms`.
fn text_at(g: &mut Snowflake, unix_ms: u64, from: u64, to: u64, client_id: &str) -> Message {
    let mut m = text(&mut Snowflake::new(1), from, to, client_id);
    m.id = g.next_at(unix_ms);
    m.ts = Snowflake::unix_ms(m.id);
    m
}

fn commit(s: &dyn MessageStore, m: &Message) {
    let inboxes = [m.from, m.conversation.peer_of(m.from).unwrap_or(m.from)];
    let inboxes: &[UserId] = if inboxes[0] == inboxes[1] { &inboxes[..1] } else { &inboxes };
    let w = [Write::Message { message: m, inboxes, membership: None }];
    assert_eq!(s.commit(&w, m.id).expect("commit").outcome(0), Some(WriteOutcome::Applied));
}

fn all(s: &dyn MessageStore, user: u64, after: InboxPos) -> Vec<InboxEntry> {
    s.inbox_after(UserId(user), after, 100).expect("read the inbox")
}

/// Walk every inbox in steps of `limit`; entries removed.
fn sweep(s: &dyn MessageStore, cutoff: MessageId, limit: usize) -> u64 {
    let (mut removed, mut steps, mut from) = (0, 0, None);
    loop {
        let step = s.sweep_inboxes(from, cutoff, limit).expect("sweep step");
        assert!(step.inboxes <= limit, "a step looks at no more inboxes than its limit");
        assert!(step.removed <= limit as u64, "a step removes no more entries than its limit");
        removed += step.removed;
        steps += 1;
        assert!(steps < 1000, "the walk ends");
        match step.next {
            Some(next) => from = Some(next),
            None => return removed,
        }
    }
}

/// With a one-day retention, swept in steps of 2: user 2's five old
/// entries go, its four fresh ones stay at the positions they had; a read
/// from position 0 or from a removed position starts at the oldest kept;
/// the floor is the last removed position; user 3, whose inbox was all
/// old, is emptied and its next event lands above its floor; messages stay
/// readable; user 4 (all fresh) is untouched; a second pass removes nothing.
pub fn inbox_sweep_removes_a_prefix_and_keeps_positions(backend: &dyn Backend) {
    if !backend.sweeps_inboxes() {
        return;
    }
    let s = backend.open(&backend.new_place());
    let now = now_ms();
    let mut g = Snowflake::new(1);
    let old: Vec<Message> = (0..5u64).map(|i| text_at(&mut g, now - 3 * DAY_MS + i, 1, 2, &format!("o{i}"))).collect();
    let lone: Vec<Message> = (0..3u64).map(|i| text_at(&mut g, now - 2 * DAY_MS + i, 3, 3, &format!("l{i}"))).collect();
    let fresh: Vec<Message> = (0..4u64).map(|i| text_at(&mut g, now - 1000 + i, 2, 1, &format!("f{i}"))).collect();
    let untouched = text_at(&mut g, now - 500, 4, 4, "u");
    for m in old.iter().chain(&lone).chain(&fresh).chain([&untouched]) {
        commit(&*s, m);
    }
    let before = all(&*s, 2, InboxPos(0));
    assert_eq!(before.len(), 9);
    let last_old = before[4].pos;
    let lone_last = all(&*s, 3, InboxPos(0))[2].pos;
    let user1_last_old = all(&*s, 1, InboxPos(0))[4].pos;
    assert_eq!(s.inbox_floor(UserId(2)).unwrap(), InboxPos(0), "nothing removed yet");

    let cutoff = retention_cutoff(Some(Duration::from_millis(DAY_MS)), now);
    assert_eq!(sweep(&*s, cutoff, 2), 5 + 5 + 3, "the old entries of users 1, 2 and 3");
    let after = all(&*s, 2, InboxPos(0));
    assert_eq!(after, before[5..].to_vec(), "kept entries keep their positions");
    assert_eq!(all(&*s, 2, before[1].pos), before[5..].to_vec(), "from a removed position: the oldest kept");
    assert_eq!(all(&*s, 2, before[6].pos), before[7..].to_vec(), "from a kept position: as before");
    assert_eq!(s.inbox_floor(UserId(2)).unwrap(), last_old, "the floor is the last removed position");
    assert_eq!(s.inbox_floor(UserId(1)).unwrap(), user1_last_old, "per inbox");
    assert_eq!(s.inbox_position(UserId(2), fresh[1].id).unwrap(), before[6].pos, "cursors of kept events resolve");
    assert!(all(&*s, 3, InboxPos(0)).is_empty(), "user 3 had only old entries");
    assert_eq!(s.inbox_floor(UserId(3)).unwrap(), lone_last, "an emptied inbox remembers where it ended");
    assert_eq!(all(&*s, 4, InboxPos(0)).len(), 1, "a fresh inbox is untouched");
    assert_eq!(s.inbox_floor(UserId(4)).unwrap(), InboxPos(0));
    for m in old.iter().chain(&lone) {
        assert_eq!(s.message(m.conversation, m.id).unwrap().as_ref(), Some(m), "messages are history: kept");
    }
    assert_eq!(sweep(&*s, cutoff, 2), 0, "a second pass removes nothing");
    assert_eq!(sweep(&*s, cutoff, 0), 0, "a zero limit does nothing");

    // New events go on above what was removed.
    let next = text(&mut g, 3, 3, "again");
    commit(&*s, &next);
    let now3 = all(&*s, 3, InboxPos(0));
    assert_eq!(now3.len(), 1);
    assert!(now3[0].pos > lone_last, "positions never go back");
    if backend.several_writers() {
        assert_eq!(now3[0].pos, InboxPos(lone_last.0 + 1), "and stay dense");
    }
}
