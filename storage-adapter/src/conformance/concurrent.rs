//! Two writers and a pager on the same inboxes.
//!
//! Two store handles commit interleaved batches (messages and receipts, to
//! random subsets of four shared inboxes) while two more handles page
//! through every inbox with small pages. One pages as a device's `sync`
//! starts: its cursor is the id of the last event it received, which the
//! store resolves to a position before each page. The other pages as a
//! gateway goes on with a sync and as it catches a connection up: from the
//! position of the last event it received, never resolving an id. At the
//! end each inbox must have been read by both as exactly the events
//! committed to it: none skipped, none seen twice, in position order. On a
//! backend with dense positions the position pager also never sees a
//! position before the one below it (a reader that did would move past an
//! event still being committed, and a catch-up would lose it for good).
//!
//! On a backend that takes several writers ([`Backend::several_writers`],
//! PostgreSQL) the writers have their own Snowflake generators and share no
//! lock, and each waits a random moment between taking its ids and
//! committing, so id order is often not commit order: only positions
//! assigned at commit time keep the pager from passing an event that
//! commits later. The schedule is a seeded random one, run for several
//! seeds (a plain loop; the suite has no property-testing dependency), so a
//! failure names its seed and replays. On a one-writer backend (the
//! embedded store: one handle, its directory locked) both writers are
//! threads on the same store taking ids under one lock, as one committer
//! does.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
};

use chatgw_protocol::{ConversationId, Message, MessageId, Receipt, Snowflake, UserId};

use super::{text, Backend};
use crate::{InboxEvent, InboxPos, MessageStore, Write, WriteOutcome};

const USERS: u64 = 4;
const BATCHES_PER_WRITER: usize = 60;

/// A small deterministic generator, so a failure replays.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Per inbox, `(position, event id)` of what the writers committed (the
/// positions their commits reported) or what the pager read.
type Committed = BTreeMap<u64, Vec<(InboxPos, MessageId)>>;
type Seen = Committed;

/// One write of a generated batch, owned, with the inboxes it goes to.
enum Item {
    Message(Message, Vec<UserId>),
    Receipt(Receipt, Vec<UserId>),
}

impl Item {
    fn id(&self) -> MessageId {
        match self {
            Item::Message(m, _) => m.id,
            Item::Receipt(r, _) => r.event(),
        }
    }

    fn inboxes(&self) -> &[UserId] {
        match self {
            Item::Message(_, to) | Item::Receipt(_, to) => to,
        }
    }

    fn write(&self) -> Write<'_> {
        match self {
            Item::Message(message, inboxes) => Write::Message { message, inboxes, membership: None },
            Item::Receipt(receipt, inboxes) => Write::Receipt { receipt, inboxes },
        }
    }
}

/// How the two writers share the store.
#[derive(Clone, Copy)]
enum Writers<'a> {
    /// One generator and one lock for both: commit order is id order.
    OneLock(&'a Mutex<Snowflake>),
    /// A generator each, no lock, a random pause between ids and commit.
    Independent,
}

fn write_batches(store: &dyn MessageStore, writer: u64, seed: u64, writers: Writers<'_>, committed: &Mutex<Committed>) {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(31) ^ writer);
    let mut own = Snowflake::new(writer as u16);
    for b in 0..BATCHES_PER_WRITER {
        let mut shared = match writers {
            Writers::OneLock(ids) => Some(ids.lock().unwrap_or_else(|e| e.into_inner())),
            Writers::Independent => None,
        };
        let ids = match shared.as_deref_mut() {
            Some(ids) => ids,
            None => &mut own,
        };
        let mut items = Vec::new();
        for i in 0..1 + rng.below(5) {
            let from = 1 + rng.below(USERS);
            let to = 1 + (from + rng.below(USERS - 1)) % USERS;
            if rng.below(4) == 0 {
                let conversation = ConversationId::direct(UserId(from), UserId(to));
                let event = ids.next_id();
                let r = Receipt::Delivered { event, conversation, by: UserId(to), ids: vec![MessageId(1)], at: 1 };
                items.push(Item::Receipt(r, vec![UserId(from)]));
            } else {
                let m = text(ids, from, to, &format!("s{seed}w{writer}b{b}i{i}"));
                items.push(Item::Message(m, vec![UserId(from), UserId(to)]));
            }
        }
        if shared.is_none() {
            // Ids taken, commit later: the other writer's later ids may
            // commit first.
            std::thread::sleep(std::time::Duration::from_micros(rng.below(1500)));
        }
        let writes: Vec<Write<'_>> = items.iter().map(Item::write).collect();
        let high = items.iter().map(Item::id).max().unwrap_or(MessageId(0));
        let done = store.commit(&writes, high).expect("commit");
        drop(shared);
        let mut committed = committed.lock().unwrap_or_else(|e| e.into_inner());
        for (i, item) in items.iter().enumerate() {
            assert_eq!(done.outcome(i), Some(WriteOutcome::Applied), "seed {seed}: every write is new");
            for (user, pos) in item.inboxes().iter().zip(done.positions(i)) {
                committed.entry(user.0).or_default().push((*pos, item.id()));
            }
        }
    }
}

/// Page every inbox once from its cursor; return whether anything was new.
fn page_once(store: &dyn MessageStore, cursors: &mut [MessageId], seen: &mut Seen) -> bool {
    let mut progressed = false;
    for user in 1..=USERS {
        let cursor = &mut cursors[user as usize];
        let from = store.inbox_position(UserId(user), *cursor).expect("resolve the cursor");
        let page = store.inbox_after(UserId(user), from, 3).expect("page");
        for entry in page {
            assert!(entry.pos > from, "an inbox page went backwards");
            *cursor = entry.event.id();
            if let InboxEvent::Message(m) = &entry.event {
                assert!(m.conversation.is_direct_participant(UserId(user)), "an event in the wrong inbox");
            }
            seen.entry(user).or_default().push((entry.pos, entry.event.id()));
            progressed = true;
        }
    }
    progressed
}

/// Page every inbox once from the position of the last event read from it,
/// as a gateway pages on; return whether anything was new. Where positions
/// are dense, each event read is at the position after the one before.
fn page_once_by_position(store: &dyn MessageStore, dense: bool, positions: &mut [InboxPos], seen: &mut Seen) -> bool {
    let mut progressed = false;
    for user in 1..=USERS {
        let last = &mut positions[user as usize];
        for entry in store.inbox_after(UserId(user), *last, 3).expect("page") {
            assert!(entry.pos > *last, "an inbox page went backwards");
            if dense {
                assert_eq!(entry.pos.0, last.0 + 1, "inbox {user}: a position seen before the one below it");
            }
            *last = entry.pos;
            seen.entry(user).or_default().push((entry.pos, entry.event.id()));
            progressed = true;
        }
    }
    progressed
}

/// The property: two writers, two pagers (by cursor, by position), every
/// event read exactly once by each, in position order.
pub fn two_writers_one_pager(backend: &dyn Backend) {
    let seeds = if backend.several_writers() { 6 } else { 1 };
    let out_of_id_order: usize = (0..seeds).map(|seed| one_schedule(backend, seed)).sum();
    if backend.several_writers() {
        // Otherwise the schedules tested nothing an id cursor would fail.
        assert!(out_of_id_order > 0, "the writers never committed a smaller id after a larger one");
    }
}

/// One seeded schedule; returns how often an inbox held a smaller id after
/// a larger one.
fn one_schedule(backend: &dyn Backend, seed: u64) -> usize {
    let place = backend.new_place();
    let first = backend.open(&place);
    let second = backend.second_handle(&place, &first);
    let pager = backend.second_handle(&place, &first);
    let position_pager = backend.second_handle(&place, &first);
    let dense = position_pager.dense_positions();
    let one_lock = Mutex::new(Snowflake::new(3));
    let writers = if backend.several_writers() { Writers::Independent } else { Writers::OneLock(&one_lock) };
    let committed = Mutex::new(Committed::new());
    let done = AtomicBool::new(false);
    let mut cursors = vec![MessageId(0); USERS as usize + 1];
    let mut seen = Seen::new();
    let mut positions = vec![InboxPos(0); USERS as usize + 1];
    let mut seen_by_position = Seen::new();
    let (seen_by_pager, seen_by_position) = std::thread::scope(|scope| {
        let handles = [(1, &first), (2, &second)].map(|(w, store)| {
            let committed = &committed;
            scope.spawn(move || write_batches(store.as_ref(), w, seed, writers, committed))
        });
        let pages = scope.spawn(|| {
            while !done.load(Ordering::Acquire) {
                page_once(pager.as_ref(), &mut cursors, &mut seen);
            }
            while page_once(pager.as_ref(), &mut cursors, &mut seen) {}
            seen
        });
        let by_position = scope.spawn(|| {
            let (store, seen) = (position_pager.as_ref(), &mut seen_by_position);
            while !done.load(Ordering::Acquire) {
                page_once_by_position(store, dense, &mut positions, seen);
            }
            while page_once_by_position(store, dense, &mut positions, seen) {}
            seen_by_position
        });
        for w in handles {
            w.join().expect("writer");
        }
        done.store(true, Ordering::Release);
        (pages.join().expect("pager"), by_position.join().expect("position pager"))
    });
    let mut committed = committed.into_inner().unwrap_or_else(|e| e.into_inner());
    for events in committed.values_mut() {
        events.sort();
    }
    assert!(committed.values().map(Vec::len).sum::<usize>() > 2 * BATCHES_PER_WRITER, "writers wrote");
    let mut out_of_id_order = 0;
    for user in 1..=USERS {
        let want = committed.get(&user).cloned().unwrap_or_default();
        let got = seen_by_pager.get(&user).cloned().unwrap_or_default();
        assert_eq!(got, want, "seed {seed}, inbox {user}: every committed event once, in position order");
        let by_position = seen_by_position.get(&user).cloned().unwrap_or_default();
        assert_eq!(by_position, want, "seed {seed}, inbox {user}: paged by position, every event once, in order");
        if backend.several_writers() {
            let dense: Vec<InboxPos> = (1..=want.len() as u64).map(InboxPos).collect();
            assert_eq!(want.iter().map(|e| e.0).collect::<Vec<_>>(), dense, "seed {seed}: dense positions");
        }
        out_of_id_order += got.windows(2).filter(|w| w[0].1 > w[1].1).count();
    }
    if !backend.several_writers() {
        assert_eq!(out_of_id_order, 0, "one writer: position order is id order");
    }
    out_of_id_order
}
