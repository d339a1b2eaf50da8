//! The integrity check of a Cassandra / ScyllaDB keyspace: the embedded
//! check's invariants, plus what this layout adds (positions, the
//! `inbox_ids` index, the bucket index tables), in the same
//! [`IntegrityReport`].
//!
//! Why every table is read into the process: CQL has no joins, and the
//! invariants are references between tables ("this inbox row names a
//! message that exists"). So the check reads each table whole, once, with a
//! plain `SELECT ... FROM table` that the driver pages ([`PAGE_ROWS`] rows a
//! request), and checks as the rows arrive. No statement filters, so none
//! needs `ALLOW FILTERING` or an index. What it keeps between tables:
//!
//! - per message: its id, conversation, sender, client id and three flags
//!   (about 100 bytes plus the client id, in a hash map);
//! - per inbox row: its position and event id (24 bytes, in a vector per
//!   user, sorted once the inbox table is read);
//! - the bodies of group system messages and each group's replayed
//!   membership, and the `(conversation, bucket)` and `(user, day)` pairs
//!   the bucket index tables must list.
//!
//! So a keyspace of 10 million messages and 30 million inbox rows needs
//! 2 to 3 GB; the check is an offline tool for a machine that has it.
//!
//! Consistency: Cassandra has no snapshot. Each page is read at the store's
//! consistency level, tables one after the other, so a commit running
//! meanwhile is seen in part: an idempotency key without its message, a
//! message not yet in the inboxes, a claimed head above the last written
//! position. A commit that failed half way leaves exactly those too, until
//! a retry completes it (a reader closes unwritten positions as holes).
//! Run the check with the gateways stopped; a violation found while they
//! write is confirmed only by a second run that finds it again.
//!
//! The checks take rows from a [`Source`]: the keyspace here, tables in
//! memory in the tests (`check_tests.rs`).

use std::collections::{BTreeMap, HashMap, HashSet};

use chatgw_protocol::{ConversationId, GroupId, MessageId, MessageKind};
use futures::StreamExt;
use scylla::deserialize::row::DeserializeRow;

use super::{
    bucket::{inbox_bucket, message_bucket, pos_bucket},
    CassandraStore, Cql,
};
use crate::{
    codec::{self, InboxRecord},
    embedded::{hex, receipt_ids, Timeline},
    IntegrityReport, StoreError,
};

/// Rows a page of a full-table read asks for.
const PAGE_ROWS: i32 = 5_000;

/// A table the check reads whole, and the columns it reads.
pub(super) trait Table: 'static {
    /// The table's name, as reports and errors name it.
    const NAME: &'static str;
    /// The full-table read (`{ks}` is the keyspace).
    const SELECT: &'static str;
    /// A row, as the columns of [`Table::SELECT`].
    type Row: for<'f, 'm> DeserializeRow<'f, 'm> + Clone + Send + 'static;
}

macro_rules! table {
    ($name:ident, $table:literal, $columns:literal, $row:ty) => {
        pub(super) struct $name;
        impl Table for $name {
            const NAME: &'static str = $table;
            const SELECT: &'static str = concat!("SELECT ", $columns, " FROM {ks}.", $table);
            type Row = $row;
        }
    };
}

table!(HighWater, "high_water", "slot, id", (i32, i64));
table!(
    Messages,
    "messages",
    "conversation, bucket, id, sender, kind, client_id, body",
    (Vec<u8>, i32, i64, Option<i64>, Option<i32>, Option<String>, Option<String>)
);
table!(ConversationBuckets, "conversation_buckets", "conversation, bucket", (Vec<u8>, i32));
table!(Groups, "groups", "id, record, version", (i64, Option<Vec<u8>>, Option<i64>));
table!(
    Inbox,
    "inbox",
    "user_id, bucket, pos, event, conversation, receipt, hole",
    (i64, i32, i64, Option<i64>, Option<Vec<u8>>, Option<Vec<u8>>, Option<bool>)
);
table!(InboxHeads, "inbox_heads", "user_id, head", (i64, Option<i64>));
table!(InboxIds, "inbox_ids", "user_id, bucket, event, pos", (i64, i32, i64, Option<i64>));
table!(InboxBuckets, "inbox_buckets", "user_id, bucket", (i64, i32));
table!(Idempotency, "idempotency", "sender, client_id, conversation, id", (i64, String, Option<Vec<u8>>, Option<i64>));
table!(Delivered, "delivered", "conversation, id, user_id", (Vec<u8>, i64, i64));
table!(ReadBy, "read_by", "conversation, id, user_id", (Vec<u8>, i64, i64));
table!(ReadMarks, "read_marks", "conversation, reader, up_to", (Vec<u8>, i64, i64));

/// Where the rows come from: the keyspace, or tables in memory.
pub(super) trait Source {
    /// Hand every row of table `T` to `f`, without holding the table.
    async fn scan<T: Table>(&mut self, f: impl FnMut(T::Row)) -> Result<(), StoreError>;
}

impl CassandraStore {
    /// Read every table and verify the store's invariants (the embedded
    /// check's, see [`EmbeddedStore::check_integrity`](crate::EmbeddedStore::check_integrity),
    /// plus dense positions and the index tables). Fails only if the
    /// keyspace cannot be read; damage is reported in the returned
    /// [`IntegrityReport`]. Not a snapshot: run it with the gateways
    /// stopped (see the module documentation).
    pub fn check_integrity(&self) -> Result<IntegrityReport, StoreError> {
        self.check_integrity_keys_from(MessageId(0))
    }

    /// [`CassandraStore::check_integrity`] of a store whose idempotency keys
    /// expire (their TTL): a message with an id below `keys_from` (see
    /// [`retention_cutoff`](crate::retention_cutoff)) may have lost its key,
    /// which is no violation.
    pub fn check_integrity_keys_from(&self, keys_from: MessageId) -> Result<IntegrityReport, StoreError> {
        self.runtime.block_on(check(&mut Keyspace { cql: &self.cql }, keys_from))
    }
}

/// The keyspace as a [`Source`]: each table read whole, page by page.
struct Keyspace<'a> {
    cql: &'a Cql,
}

impl Source for Keyspace<'_> {
    async fn scan<T: Table>(&mut self, mut f: impl FnMut(T::Row)) -> Result<(), StoreError> {
        let mut statement = self.cql.prepared(T::SELECT).await.map_err(|e| StoreError::backend(T::NAME, e))?;
        statement.set_page_size(PAGE_ROWS);
        let pager = self.cql.session.execute_iter(statement, ()).await.map_err(|e| StoreError::backend(T::NAME, e))?;
        let mut rows = pager
            .rows_stream::<T::Row>()
            .map_err(|_| StoreError::Corrupt { table: T::NAME, what: "columns of another type" })?;
        while let Some(row) = rows.next().await {
            f(row.map_err(|e| StoreError::backend(T::NAME, e))?);
        }
        Ok(())
    }
}

/// What the later tables need to know of a message.
struct Msg {
    conversation: ConversationId,
    from: u64,
    client_id: String,
    /// Referenced from its sender's inbox.
    in_sender_inbox: bool,
    /// Referenced from another inbox (a direct message's recipient's).
    in_peer_inbox: bool,
    /// An idempotency key points at it.
    keyed: bool,
}

/// A position of an inbox.
#[derive(Clone, Copy)]
struct Slot {
    pos: u64,
    /// The event id; zero for a hole (or a row that is neither).
    event: u64,
    /// `inbox_ids` points at it.
    indexed: bool,
}

/// Everything the tables share, checked in [`check`]'s order.
#[derive(Default)]
struct Checker {
    report: IntegrityReport,
    messages: HashMap<u64, Msg>,
    /// Group id -> its system messages (id -> body).
    system: HashMap<u64, BTreeMap<u64, String>>,
    timelines: HashMap<u64, Timeline>,
    /// Message partitions `conversation_buckets` must list.
    message_buckets: HashSet<(Vec<u8>, i32)>,
    /// User -> its positions (sorted once the inbox is read).
    inboxes: HashMap<u64, Vec<Slot>>,
    /// `inbox_ids` partitions `inbox_buckets` must list.
    id_buckets: HashSet<(u64, i32)>,
}

/// Read every table from `source` and check it.
pub(super) async fn check<S: Source>(source: &mut S, keys_from: MessageId) -> Result<IntegrityReport, StoreError> {
    let mut c = Checker::default();
    source.scan::<HighWater>(|(_, id)| c.report.counts.high_water = c.report.counts.high_water.max(id as u64)).await?;
    source.scan::<Messages>(|row| c.message(row)).await?;
    source
        .scan::<ConversationBuckets>(|row| {
            c.message_buckets.remove(&row);
        })
        .await?;
    c.unlisted_message_buckets();
    let mut recorded = HashSet::new();
    source.scan::<Groups>(|row| c.group(row, &mut recorded)).await?;
    c.orphan_groups(&recorded);
    source.scan::<Inbox>(|row| c.inbox(row)).await?;
    c.positions();
    let mut headed = HashSet::new();
    source.scan::<InboxHeads>(|row| c.head(row, &mut headed)).await?;
    c.headless(&headed);
    source.scan::<InboxIds>(|row| c.inbox_id(row)).await?;
    c.unindexed();
    source
        .scan::<InboxBuckets>(|(user, bucket)| {
            c.id_buckets.remove(&(user as u64, bucket));
        })
        .await?;
    c.unlisted_id_buckets();
    c.unreferenced();
    source.scan::<Idempotency>(|row| c.key(row)).await?;
    c.unkeyed(keys_from);
    source.scan::<Delivered>(|row| c.mark(Delivered::NAME, row)).await?;
    source.scan::<ReadBy>(|row| c.mark(ReadBy::NAME, row)).await?;
    let mut last = None;
    source.scan::<ReadMarks>(|row| c.read_mark(row, &mut last)).await?;
    Ok(c.report)
}

impl Checker {
    fn flag(&mut self, table: &'static str, problem: String) {
        self.report.flag(table, problem);
    }

    fn message(&mut self, (key, bucket, id, sender, kind, client_id, body): <Messages as Table>::Row) {
        self.report.counts.messages += 1;
        let id = id as u64;
        let Some(conversation) = ConversationId::from_key(&key) else {
            return self.flag("messages", format!("message {id}: undecodable conversation {}", hex(&key)));
        };
        let kind = kind.and_then(|k| u8::try_from(k).ok()).and_then(MessageKind::from_u8);
        let (Some(from), Some(kind), Some(client_id), Some(body)) = (sender, kind, client_id, body) else {
            return self.flag("messages", format!("message {id} in {conversation:?}: a column is missing or bad"));
        };
        let high_water = self.report.counts.high_water;
        if id > high_water {
            self.flag("messages", format!("message {id} is above the high water {high_water}"));
        }
        if bucket != message_bucket(MessageId(id)) {
            let problem = format!("message {id} in {conversation:?} is in bucket {bucket}, not its id's bucket");
            self.flag("messages", problem);
        }
        if let Some(other) = self.messages.get(&id) {
            let problem = format!("message id {id} in {conversation:?} and in {:?}", other.conversation);
            return self.flag("messages", problem);
        }
        if let (ConversationId::Group(g), MessageKind::System) = (conversation, kind) {
            self.system.entry(g.0).or_default().insert(id, body);
        }
        self.message_buckets.insert((key, bucket));
        let from = from as u64;
        let m = Msg { conversation, from, client_id, in_sender_inbox: false, in_peer_inbox: false, keyed: false };
        self.messages.insert(id, m);
    }

    fn unlisted_message_buckets(&mut self) {
        let mut unlisted: Vec<(Vec<u8>, i32)> = self.message_buckets.drain().collect();
        unlisted.sort_unstable();
        for (key, bucket) in unlisted {
            let conversation = ConversationId::from_key(&key).map(|c| format!("{c:?}")).unwrap_or_else(|| hex(&key));
            let problem = format!("{conversation}: bucket {bucket} holds messages but is not listed, so reads skip it");
            self.flag("conversation_buckets", problem);
        }
    }

    fn group(&mut self, (id, record, version): <Groups as Table>::Row, recorded: &mut HashSet<u64>) {
        self.report.counts.groups += 1;
        let gid = id as u64;
        recorded.insert(gid);
        let Some(record) = record else { return self.flag("groups", format!("group {gid}: a row without a record")) };
        if version.is_none() {
            self.flag("groups", format!("group {gid}: a record without a version"));
        }
        let group = match codec::decode_group(GroupId(gid), &record) {
            Ok(g) => g,
            Err(e) => return self.flag("groups", format!("group {gid}: {e}")),
        };
        let Some(system) = self.system.get(&gid) else {
            return self.flag("groups", format!("group {gid} has no system messages"));
        };
        match Timeline::replay(system) {
            Ok(t) => {
                let stored: BTreeMap<u64, bool> = group.members.iter().map(|m| (m.user.0, m.admin)).collect();
                if stored != t.current() {
                    let problem = format!(
                        "group {gid}: the record has members {stored:?}, its system messages give {:?}",
                        t.current()
                    );
                    self.flag("groups", problem);
                }
                self.timelines.insert(gid, t);
            }
            Err(why) => self.flag("groups", format!("group {gid}: {why}")),
        }
    }

    fn orphan_groups(&mut self, recorded: &HashSet<u64>) {
        let mut orphans: Vec<u64> = self.system.keys().filter(|g| !recorded.contains(*g)).copied().collect();
        orphans.sort_unstable();
        for g in orphans {
            self.flag("groups", format!("group {g} has system messages but no record"));
        }
    }

    fn inbox(&mut self, (user, bucket, pos, event, conversation, receipt, hole): <Inbox as Table>::Row) {
        let (user, pos) = (user as u64, pos as u64);
        if bucket != pos_bucket(pos) {
            self.flag("inbox", format!("user {user}: position {pos} is in partition {bucket}, not its own"));
        }
        let event = match (hole, event) {
            (Some(true), None) if conversation.is_none() && receipt.is_none() => 0,
            (Some(true), _) => {
                self.flag("inbox", format!("user {user}: position {pos} is a hole that holds an event"));
                0
            }
            (_, None) => {
                self.flag("inbox", format!("user {user}: position {pos} is neither an event nor a hole"));
                0
            }
            (_, Some(event)) => {
                self.event(user, event as u64, conversation, receipt);
                event as u64
            }
        };
        self.inboxes.entry(user).or_default().push(Slot { pos, event, indexed: false });
    }

    /// An event in `user`'s inbox: a message reference or a receipt.
    fn event(&mut self, user: u64, event: u64, conversation: Option<Vec<u8>>, receipt: Option<Vec<u8>>) {
        let high_water = self.report.counts.high_water;
        if event > high_water {
            self.flag("inbox", format!("user {user}: event {event} is above the high water"));
        }
        match (conversation, receipt) {
            (Some(key), None) => {
                self.report.counts.inbox_messages += 1;
                match ConversationId::from_key(&key) {
                    Some(c) => self.reference(user, event, c),
                    None => self
                        .flag("inbox", format!("user {user}, event {event}: undecodable conversation {}", hex(&key))),
                }
            }
            (None, Some(receipt)) => {
                self.report.counts.inbox_receipts += 1;
                match codec::decode_inbox(MessageId(event), &receipt) {
                    Ok(InboxRecord::Receipt(r)) => {
                        for id in receipt_ids(&r) {
                            if !self.messages.contains_key(&id) {
                                self.flag("inbox", format!("user {user}: receipt {event} names missing message {id}"));
                            }
                        }
                    }
                    Ok(InboxRecord::Amended(_, id) | InboxRecord::Hidden(_, id)) => {
                        if !self.messages.contains_key(&id.0) {
                            self.flag("inbox", format!("user {user}: amendment {event} names missing message {id}"));
                        }
                    }
                    Ok(InboxRecord::KeysChanged(_)) => {}
                    Ok(InboxRecord::Message(_)) => self
                        .flag("inbox", format!("user {user}, event {event}: a message reference stored as a receipt")),
                    Err(e) => self.flag("inbox", format!("user {user}, event {event}: {e}")),
                }
            }
            _ => self.flag("inbox", format!("user {user}, event {event}: neither a message nor a receipt")),
        }
    }

    /// A message reference in `user`'s inbox at `event`, to conversation `c`.
    fn reference(&mut self, user: u64, event: u64, c: ConversationId) {
        let Some(m) = self.messages.get_mut(&event) else {
            return self.flag("inbox", format!("user {user}: reference to missing message {event} of {c:?}"));
        };
        if m.conversation != c {
            let problem = format!("user {user}: reference to message {event} as {c:?}, stored in {:?}", m.conversation);
            return self.flag("inbox", problem);
        }
        if user == m.from {
            m.in_sender_inbox = true;
        } else {
            m.in_peer_inbox = true;
        }
        let belongs = match c {
            ConversationId::Direct { lo, hi } => user == lo.0 || user == hi.0,
            // A group whose record is broken was flagged already; without
            // its replay, its messages are not judged.
            ConversationId::Group(g) => self.timelines.get(&g.0).is_none_or(|t| t.may_hold(event, user)),
        };
        if !belongs {
            self.flag("inbox", format!("user {user} holds message {event} of {c:?}, a conversation it is not in"));
        }
    }

    /// Positions are dense from 1 (holes fill theirs) and an event is at
    /// one position of an inbox.
    fn positions(&mut self) {
        let mut users: Vec<u64> = self.inboxes.keys().copied().collect();
        users.sort_unstable();
        let mut problems = Vec::new();
        for user in users {
            let Some(slots) = self.inboxes.get_mut(&user) else { continue };
            slots.sort_unstable_by_key(|s| s.pos);
            let mut next = 1;
            for s in slots.iter() {
                if s.pos < next {
                    problems.push(format!("user {user}: position {} is stored twice", s.pos));
                    continue;
                }
                if s.pos > next {
                    let what = match s.event {
                        0 => "a hole".to_owned(),
                        e => format!("event {e}"),
                    };
                    problems.push(format!(
                        "user {user}: {what} is at position {}, after a gap (positions are dense)",
                        s.pos
                    ));
                }
                next = s.pos + 1;
            }
            let mut events: Vec<u64> = slots.iter().map(|s| s.event).filter(|e| *e != 0).collect();
            events.sort_unstable();
            for pair in events.windows(2).filter(|p| p[0] == p[1]) {
                problems.push(format!("user {user}: event {} is at more than one position", pair[0]));
            }
        }
        for p in problems {
            self.flag("inbox", p);
        }
    }

    fn last_position(&self, user: u64) -> u64 {
        self.inboxes.get(&user).and_then(|s| s.last()).map_or(0, |s| s.pos)
    }

    fn head(&mut self, (user, head): <InboxHeads as Table>::Row, headed: &mut HashSet<u64>) {
        let user = user as u64;
        headed.insert(user);
        let (head, last) = (head.map_or(0, |h| h as u64), self.last_position(user));
        if head != last {
            self.flag(
                "inbox_heads",
                format!("user {user}: the inbox head says {head} but the last position is {last}"),
            );
        }
    }

    fn headless(&mut self, headed: &HashSet<u64>) {
        let mut users: Vec<u64> = self.inboxes.keys().filter(|u| !headed.contains(*u)).copied().collect();
        users.sort_unstable();
        for user in users {
            let last = self.last_position(user);
            self.flag("inbox_heads", format!("user {user}: the inbox head says 0 but the last position is {last}"));
        }
    }

    fn inbox_id(&mut self, (user, bucket, event, pos): <InboxIds as Table>::Row) {
        let (user, event) = (user as u64, event as u64);
        if bucket != inbox_bucket(MessageId(event)) {
            self.flag("inbox_ids", format!("user {user}: event {event} is in bucket {bucket}, not its id's bucket"));
        }
        self.id_buckets.insert((user, bucket));
        let Some(pos) = pos else {
            return self.flag("inbox_ids", format!("user {user}: event {event} has no position"));
        };
        let pos = pos as u64;
        let found = self.inboxes.get_mut(&user).and_then(|slots| {
            let i = slots.binary_search_by_key(&pos, |s| s.pos).ok()?;
            slots.get_mut(i)
        });
        let holds = match found {
            Some(s) if s.event == event => {
                s.indexed = true;
                return;
            }
            Some(s) if s.event == 0 => "a hole".to_owned(),
            Some(s) => format!("event {}", s.event),
            None => "nothing".to_owned(),
        };
        self.flag("inbox_ids", format!("user {user}: event {event} is indexed at position {pos}, which holds {holds}"));
    }

    fn unindexed(&mut self) {
        let mut missing: Vec<(u64, u64, u64)> = Vec::new();
        for (user, slots) in &self.inboxes {
            missing.extend(slots.iter().filter(|s| s.event != 0 && !s.indexed).map(|s| (*user, s.pos, s.event)));
        }
        missing.sort_unstable();
        for (user, pos, event) in missing {
            self.flag("inbox_ids", format!("user {user}: event {event} at position {pos} is not indexed"));
        }
    }

    fn unlisted_id_buckets(&mut self) {
        let mut unlisted: Vec<(u64, i32)> = self.id_buckets.drain().collect();
        unlisted.sort_unstable();
        for (user, bucket) in unlisted {
            let problem = format!("user {user}: bucket {bucket} holds inbox_ids but is not listed, so reads skip it");
            self.flag("inbox_buckets", problem);
        }
    }

    /// Every message is in its sender's inbox; a direct message to someone
    /// else is in the peer's too.
    fn unreferenced(&mut self) {
        let mut missing: Vec<(u64, &'static str)> = Vec::new();
        for (&id, m) in &self.messages {
            if !m.in_sender_inbox {
                missing.push((id, "its sender's"));
            }
            if let ConversationId::Direct { lo, hi } = m.conversation {
                if lo != hi && !m.in_peer_inbox {
                    missing.push((id, "the recipient's"));
                }
            }
        }
        missing.sort_unstable();
        for (id, whose) in missing {
            self.flag("inbox", format!("message {id} is missing from {whose} inbox"));
        }
    }

    fn key(&mut self, (sender, cid, conversation, id): <Idempotency as Table>::Row) {
        self.report.counts.idempotency_keys += 1;
        let from = sender as u64;
        let target = conversation.as_deref().and_then(ConversationId::from_key).zip(id);
        let Some((c, id)) = target else {
            return self.flag("idempotency", format!("({from}, {cid:?}): no conversation or id, or undecodable"));
        };
        let id = id as u64;
        match self.messages.get_mut(&id) {
            None => self.flag("idempotency", format!("({from}, {cid:?}) points to missing message {id}")),
            Some(m) if m.conversation != c || m.from != from || m.client_id != cid => {
                let problem = format!(
                    "({from}, {cid:?}) points to message {id} of {:?} from {} with client id {:?}",
                    m.conversation, m.from, m.client_id
                );
                self.flag("idempotency", problem);
            }
            Some(m) => m.keyed = true,
        }
    }

    /// Messages with a client id and no key, but for those below
    /// `keys_from`, whose key may have expired.
    fn unkeyed(&mut self, keys_from: MessageId) {
        let mut unkeyed: Vec<u64> = self
            .messages
            .iter()
            .filter(|(id, m)| !m.client_id.is_empty() && !m.keyed && **id >= keys_from.0)
            .map(|(id, _)| *id)
            .collect();
        unkeyed.sort_unstable();
        for id in unkeyed {
            self.flag("idempotency", format!("message {id} has a client id but no idempotency key"));
        }
    }

    /// A delivery or group read mark.
    fn mark(&mut self, table: &'static str, (key, id, user): (Vec<u8>, i64, i64)) {
        match table {
            "delivered" => self.report.counts.delivery_marks += 1,
            _ => self.report.counts.read_by_marks += 1,
        }
        let (id, user) = (id as u64, user as u64);
        let Some(c) = ConversationId::from_key(&key) else {
            return self
                .flag(table, format!("mark of user {user} for message {id}: undecodable conversation {}", hex(&key)));
        };
        if !self.messages.get(&id).is_some_and(|m| m.conversation == c) {
            self.flag(table, format!("mark of user {user} for missing message {id} of {c:?}"));
        }
    }

    /// A read mark row. A key holds its furthest mark, and smaller ones a
    /// racing writer left until compaction: a key is counted once (its
    /// rows come together, as one partition).
    fn read_mark(&mut self, (key, reader, up_to): <ReadMarks as Table>::Row, last: &mut Option<(Vec<u8>, i64)>) {
        if !matches!(last, Some((k, r)) if *k == key && *r == reader) {
            self.report.counts.read_marks += 1;
            *last = Some((key.clone(), reader));
        }
        let (up_to, high_water) = (up_to as u64, self.report.counts.high_water);
        let Some(c) = ConversationId::from_key(&key) else {
            return self.flag("reads", format!("read mark of user {reader}: undecodable conversation {}", hex(&key)));
        };
        if up_to > high_water {
            self.flag("reads", format!("read mark in {c:?} up to {up_to}, above the high water"));
        }
    }
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
