//! Two writers and a pager on the same inboxes.
//!
//! Two store handles commit interleaved batches (messages and receipts, to
//! random subsets of four shared inboxes) while a third handle pages through
//! every inbox with small pages, cursor = last event id, exactly as `sync`
//! does. At the end each inbox must have been read as exactly the events
//! committed to it: none skipped, none seen twice, in id order.
//!
//! What it proves: given ids handed out in commit order, a reader on another
//! handle sees each batch whole and at once (a batch that became visible
//! row by row would let the pager move its cursor past rows not yet
//! visible), sees it as soon as `commit` returns, and never twice. Ids are
//! taken and committed under one lock shared by both writers, which is what
//! one committer per store does today. It does NOT prove that writers with
//! their own id generators are safe: they are not, because a batch with
//! smaller ids can commit after a reader passed a larger one (the fleet's
//! open point in docs/STORAGE.md). For the embedded store both writer
//! handles are the same store used from two threads (its directory lock
//! allows one handle); for PostgreSQL they are separate pools.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
};

use chatgw_protocol::{ConversationId, Message, MessageId, Receipt, Snowflake, UserId};

use super::{text, Backend};
use crate::{InboxEvent, MessageStore, Write};

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

/// What a writer committed: per inbox, the event ids in commit order.
type Committed = BTreeMap<u64, Vec<MessageId>>;

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
            Item::Message(message, inboxes) => Write::Message { message, inboxes },
            Item::Receipt(receipt, inboxes) => Write::Receipt { receipt, inboxes },
        }
    }
}

fn write_batches(store: &dyn MessageStore, writer: u64, ids: &Mutex<Snowflake>, committed: &Mutex<Committed>) {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ writer);
    for b in 0..BATCHES_PER_WRITER {
        // Ids are taken and committed under one lock: commit order is id order.
        let mut ids = ids.lock().unwrap_or_else(|e| e.into_inner());
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
                let m = text(&mut ids, from, to, &format!("w{writer}b{b}i{i}"));
                items.push(Item::Message(m, vec![UserId(from), UserId(to)]));
            }
        }
        let writes: Vec<Write<'_>> = items.iter().map(Item::write).collect();
        let high = items.iter().map(Item::id).max().unwrap_or(MessageId(0));
        store.commit(&writes, high).expect("commit");
        drop(ids);
        let mut committed = committed.lock().unwrap_or_else(|e| e.into_inner());
        for item in &items {
            for user in item.inboxes() {
                committed.entry(user.0).or_default().push(item.id());
            }
        }
    }
}

/// Page every inbox once from its cursor; return whether anything was new.
fn page_once(store: &dyn MessageStore, cursors: &mut [MessageId], seen: &mut Committed) -> bool {
    let mut progressed = false;
    for user in 1..=USERS {
        let cursor = &mut cursors[user as usize];
        let page = store.inbox_after(UserId(user), *cursor, 3).expect("page");
        for event in page {
            assert!(event.id() > *cursor, "an inbox page went backwards");
            *cursor = event.id();
            if let InboxEvent::Message(m) = &event {
                assert!(m.conversation.is_direct_participant(UserId(user)), "an event in the wrong inbox");
            }
            seen.entry(user).or_default().push(event.id());
            progressed = true;
        }
    }
    progressed
}

/// The property: two writers, one pager, every event read exactly once.
pub fn two_writers_one_pager(backend: &dyn Backend) {
    let place = backend.new_place();
    let first = backend.open(&place);
    let second = backend.second_handle(&place, &first);
    let pager = backend.second_handle(&place, &first);
    let ids = Mutex::new(Snowflake::new(3));
    let committed = Mutex::new(Committed::new());
    let done = AtomicBool::new(false);
    let mut cursors = vec![MessageId(0); USERS as usize + 1];
    let mut seen = Committed::new();
    let seen_by_pager = std::thread::scope(|scope| {
        let writers = [(1, &first), (2, &second)].map(|(w, store)| {
            let (ids, committed) = (&ids, &committed);
            scope.spawn(move || write_batches(store.as_ref(), w, ids, committed))
        });
        let pages = scope.spawn(|| {
            while !done.load(Ordering::Acquire) {
                page_once(pager.as_ref(), &mut cursors, &mut seen);
            }
            while page_once(pager.as_ref(), &mut cursors, &mut seen) {}
            seen
        });
        for w in writers {
            w.join().expect("writer");
        }
        done.store(true, Ordering::Release);
        pages.join().expect("pager")
    });
    let mut committed = committed.into_inner().unwrap_or_else(|e| e.into_inner());
    for events in committed.values_mut() {
        events.sort();
    }
    assert!(committed.values().map(Vec::len).sum::<usize>() > 2 * BATCHES_PER_WRITER, "writers wrote");
    for user in 1..=USERS {
        let want = committed.get(&user).cloned().unwrap_or_default();
        let got = seen_by_pager.get(&user).cloned().unwrap_or_default();
        assert_eq!(got, want, "inbox {user}: the pager must read every committed event once, in id order");
    }
}
