//! The check on tables in memory: the rows a clean history of commits
//! leaves (the embedded and PostgreSQL checks' fixture), then each damage
//! on its own, with the violations it must produce, worded and counted.

use std::{any::Any, collections::HashMap};

use chatgw_protocol::{Group, Member, Message, Snowflake, UserId};
use futures::executor::block_on;

use super::*;
use crate::check_history::{message, CheckHistory, U1, U2, U3};

/// Tables in memory, by name: rows of each [`Table::Row`] type.
#[derive(Default)]
struct Memory {
    tables: HashMap<&'static str, Box<dyn Any + Send>>,
}

impl Memory {
    /// Add `row` to table `T`.
    fn insert<T: Table>(&mut self, row: T::Row) {
        self.rows_mut::<T>().push(row);
    }

    /// The rows of table `T`, to damage them.
    fn rows_mut<T: Table>(&mut self) -> &mut Vec<T::Row> {
        let table = self.tables.entry(T::NAME).or_insert_with(|| Box::new(Vec::<T::Row>::new()) as Box<dyn Any + Send>);
        // Invariant: the entry of `T::NAME` is created just above with `T::Row`.
        (**table).downcast_mut::<Vec<T::Row>>().expect("one row type per table")
    }
}

impl Source for Memory {
    async fn scan<T: Table>(&mut self, f: impl FnMut(T::Row)) -> Result<(), StoreError> {
        self.rows_mut::<T>().iter().cloned().for_each(f);
        Ok(())
    }
}

fn big(v: u64) -> i64 {
    v as i64
}

/// A keyspace in memory, filled the way a commit fills one.
struct Fixture {
    tables: Memory,
    heads: HashMap<u64, u64>,
    direct: Message,
    receipt: u64,
    created: Message,
    text: Message,
    removed: Message,
    group: Group,
}

impl Fixture {
    /// An inbox entry at `user`'s next position, its `inbox_ids` row and
    /// the bucket index row of that.
    fn entry(&mut self, user: UserId, event: MessageId, conversation: Option<Vec<u8>>, receipt: Option<Vec<u8>>) {
        let head = self.heads.entry(user.0).or_insert(0);
        *head += 1;
        let pos = *head;
        let row = (big(user.0), pos_bucket(pos), big(pos), Some(big(event.0)), conversation, receipt, None);
        self.tables.insert::<Inbox>(row);
        self.tables.insert::<InboxIds>((big(user.0), inbox_bucket(event), big(event.0), Some(big(pos))));
        let listed = (big(user.0), inbox_bucket(event));
        if !self.tables.rows_mut::<InboxBuckets>().contains(&listed) {
            self.tables.insert::<InboxBuckets>(listed);
        }
    }

    fn message(&mut self, m: &Message, inboxes: &[UserId]) {
        let key = codec::conv_key(&m.conversation);
        let bucket = message_bucket(m.id);
        self.tables.insert::<Messages>((
            key.clone(),
            bucket,
            big(m.id.0),
            Some(big(m.from.0)),
            Some(i32::from(m.kind.to_u8())),
            Some(m.client_id.clone()),
            Some(m.body.clone()),
        ));
        if !self.tables.rows_mut::<ConversationBuckets>().contains(&(key.clone(), bucket)) {
            self.tables.insert::<ConversationBuckets>((key.clone(), bucket));
        }
        if !m.client_id.is_empty() {
            self.tables.insert::<Idempotency>((
                big(m.from.0),
                m.client_id.clone(),
                Some(key.clone()),
                Some(big(m.id.0)),
            ));
        }
        for user in inboxes {
            self.entry(*user, m.id, Some(key.clone()), None);
        }
    }

    fn heads(&mut self) {
        let mut heads: Vec<(u64, u64)> = self.heads.iter().map(|(u, h)| (*u, *h)).collect();
        heads.sort_unstable();
        for (user, head) in heads {
            self.tables.insert::<InboxHeads>((big(user), Some(big(head))));
        }
    }

    fn check(&mut self) -> IntegrityReport {
        block_on(check(&mut self.tables, MessageId(0))).expect("tables in memory are read")
    }

    /// How many violations, and each as `table: problem` on a line.
    fn problems(&mut self) -> (u64, String) {
        let r = self.check();
        (r.violation_count, r.violations.iter().map(|v| format!("{}: {}\n", v.table, v.problem)).collect())
    }

    fn group_key(&self) -> Vec<u8> {
        codec::conv_key(&ConversationId::Group(self.group.id))
    }
}

/// Users 1 and 2 talk directly (2 acknowledges delivery and reads); user 1
/// creates a group with 2 and 3, 2 sends to it, then 1 removes 3.
fn fixture() -> Fixture {
    let CheckHistory { direct, receipt, created, text, removed, group, .. } = CheckHistory::new();
    let (dc, gid) = (direct.conversation, group.id);
    let mut f = Fixture {
        tables: Memory::default(),
        heads: HashMap::new(),
        direct: direct.clone(),
        receipt: receipt.event().0,
        created: created.clone(),
        text: text.clone(),
        removed: removed.clone(),
        group: group.clone(),
    };
    let all = [U1, U2, U3];
    f.message(&direct, &[U1, U2]);
    f.tables.insert::<Delivered>((codec::conv_key(&dc), big(direct.id.0), big(U2.0)));
    f.entry(U1, receipt.event(), None, Some(codec::encode_receipt(&receipt)));
    f.message(&created, &all);
    f.message(&text, &all);
    f.message(&removed, &all);
    f.tables.insert::<Groups>((big(gid.0), Some(codec::encode_group(&group)), Some(2)));
    f.tables.insert::<ReadMarks>((codec::conv_key(&dc), big(U2.0), big(direct.id.0)));
    f.tables.insert::<HighWater>((0, big(removed.id.0)));
    f.heads();
    f
}

#[test]
fn a_clean_keyspace_is_clean_and_counted_like_the_other_stores() {
    let mut f = fixture();
    let r = f.check();
    assert!(r.is_clean(), "{:?}", r.violations);
    let c = &r.counts;
    assert_eq!((c.messages, c.inbox_messages, c.inbox_receipts, c.idempotency_keys), (4, 11, 1, 3));
    assert_eq!((c.delivery_marks, c.read_by_marks, c.read_marks, c.groups), (1, 0, 1, 1));
    assert_eq!(c.high_water, f.removed.id.0);

    // A smaller read mark a racing writer left is a row, not a mark.
    let dc = codec::conv_key(&f.direct.conversation);
    f.tables.insert::<ReadMarks>((dc, big(U2.0), big(f.direct.id.0) - 1));
    let r = f.check();
    assert!(r.is_clean(), "{:?}", r.violations);
    assert_eq!(r.counts.read_marks, 1);
}

#[test]
fn a_lost_message_is_named_wherever_it_is_referenced() {
    let mut f = fixture();
    let id = f.direct.id.0;
    f.tables.rows_mut::<Messages>().retain(|m| m.2 != big(id));
    let (n, text) = f.problems();
    for expected in [
        format!("inbox: user 1: reference to missing message {id}"),
        format!("inbox: user 2: reference to missing message {id}"),
        format!("idempotency: (1, \"c1\") points to missing message {id}"),
        format!("delivered: mark of user 2 for missing message {id}"),
        format!("inbox: user 1: receipt {} names missing message {id}", f.receipt),
    ] {
        assert!(text.contains(&expected), "{expected} in:\n{text}");
    }
    assert_eq!(n, 5, "{text}");
}

#[test]
fn a_missing_position_is_a_gap_and_a_hole_marker_fills_it() {
    let mut f = fixture();
    let created = big(f.created.id.0);
    f.tables.rows_mut::<Inbox>().retain(|r| !(r.0 == 2 && r.2 == 2));
    let (n, text) = f.problems();
    let (t, c) = (f.text.id.0, f.created.id.0);
    assert!(
        text.contains(&format!("inbox: user 2: event {t} is at position 3, after a gap (positions are dense)")),
        "{text}"
    );
    assert!(
        text.contains(&format!("inbox_ids: user 2: event {c} is indexed at position 2, which holds nothing")),
        "{text}"
    );
    assert_eq!(n, 2, "{text}");

    // Closed as a hole by a reader: dense again; only the index row of the
    // event that never landed is left (as a failed commit leaves it).
    f.tables.insert::<Inbox>((2, 0, 2, None, None, None, Some(true)));
    let (n, text) = f.problems();
    assert_eq!(text, format!("inbox_ids: user 2: event {c} is indexed at position 2, which holds a hole\n"));
    assert_eq!(n, 1);
    f.tables.rows_mut::<InboxIds>().retain(|r| !(r.0 == 2 && r.2 == created));
    assert!(f.check().is_clean());

    // A hole that holds an event, and a row that is neither.
    f.tables.insert::<Inbox>((3, 0, 4, Some(5), None, None, Some(true)));
    f.tables.insert::<Inbox>((3, 0, 5, None, None, None, None));
    f.tables.rows_mut::<InboxHeads>().retain(|h| h.0 != 3);
    f.tables.insert::<InboxHeads>((3, Some(5)));
    let (n, text) = f.problems();
    assert_eq!(
        text,
        "inbox: user 3: position 4 is a hole that holds an event\n\
         inbox: user 3: position 5 is neither an event nor a hole\n"
    );
    assert_eq!(n, 2);
}

#[test]
fn heads_name_the_last_position() {
    let mut f = fixture();
    f.tables.rows_mut::<InboxHeads>().retain(|h| h.0 != 3 && h.0 != 1);
    f.tables.insert::<InboxHeads>((3, Some(5)));
    f.tables.insert::<InboxHeads>((9, Some(2)));
    let (n, text) = f.problems();
    assert_eq!(
        text,
        "inbox_heads: user 3: the inbox head says 5 but the last position is 3\n\
         inbox_heads: user 9: the inbox head says 2 but the last position is 0\n\
         inbox_heads: user 1: the inbox head says 0 but the last position is 5\n"
    );
    assert_eq!(n, 3);
}

#[test]
fn the_event_index_agrees_with_the_inbox() {
    let mut f = fixture();
    let (t, r) = (f.text.id.0, f.receipt);
    f.tables.rows_mut::<InboxIds>().retain(|row| !(row.0 == 1 && row.2 == big(t)));
    // The receipt's index row names another position.
    for row in f.tables.rows_mut::<InboxIds>().iter_mut().filter(|row| row.2 == big(r)) {
        row.3 = Some(1);
    }
    let (n, text) = f.problems();
    let d = f.direct.id.0;
    assert!(text.contains(&format!("inbox_ids: user 1: event {t} at position 4 is not indexed")), "{text}");
    assert!(text.contains(&format!("inbox_ids: user 1: event {r} is indexed at position 1, which holds event {d}")));
    assert!(text.contains(&format!("inbox_ids: user 1: event {r} at position 2 is not indexed")), "{text}");
    assert_eq!(n, 3, "{text}");

    // An index partition the bucket index does not list.
    let mut f = fixture();
    f.tables.rows_mut::<InboxBuckets>().retain(|b| b.0 != 3);
    let (n, text) = f.problems();
    let day = inbox_bucket(f.created.id);
    assert_eq!(
        text,
        format!("inbox_buckets: user 3: bucket {day} holds inbox_ids but is not listed, so reads skip it\n")
    );
    assert_eq!(n, 1);
}

#[test]
fn idempotency_keys_point_at_their_messages_and_every_keyed_message_is_keyed() {
    let mut f = fixture();
    let (d, t) = (f.direct.id.0, f.text.id.0);
    f.tables.rows_mut::<Idempotency>().retain(|k| k.1 != "c2");
    for key in f.tables.rows_mut::<Idempotency>().iter_mut().filter(|k| k.1 == "c1") {
        key.3 = Some(big(t));
        key.2 = Some(codec::conv_key(&f.text.conversation));
    }
    let (n, text) = f.problems();
    let g = f.group.id.0;
    assert!(
        text.contains(&format!(
            "idempotency: (1, \"c1\") points to message {t} of Group(GroupId({g})) from 2 with client id \"c2\""
        )),
        "{text}"
    );
    assert!(text.contains(&format!("idempotency: message {d} has a client id but no idempotency key")), "{text}");
    assert!(text.contains(&format!("idempotency: message {t} has a client id but no idempotency key")), "{text}");
    assert_eq!(n, 3, "{text}");
}

#[test]
fn a_group_record_must_equal_the_replay_of_its_system_messages() {
    let mut f = fixture();
    let mut wrong = f.group.clone();
    wrong.members.push(Member { user: U3, admin: false, joined: MessageId(f.group.id.0) });
    let g = f.group.id.0;
    f.tables.rows_mut::<Groups>()[0].1 = Some(codec::encode_group(&wrong));
    let (n, text) = f.problems();
    assert_eq!(
        text,
        format!(
            "groups: group {g}: the record has members {{1: true, 2: false, 3: false}}, \
             its system messages give {{1: true, 2: false}}\n"
        )
    );
    assert_eq!(n, 1);

    // No record at all, and a record that does not decode.
    let mut f = fixture();
    f.tables.rows_mut::<Groups>()[0] = (big(77), Some(vec![0xff]), Some(1));
    let (n, text) = f.problems();
    assert!(text.contains("groups: group 77: "), "{text}");
    let g = f.group.id.0;
    assert!(text.contains(&format!("groups: group {g} has system messages but no record")), "{text}");
    // Without a replay, group messages in inboxes are not judged.
    assert_eq!(n, 2, "{text}");
}

#[test]
fn a_member_removed_holds_no_later_message() {
    let mut f = fixture();
    let mut ids = Snowflake::new(1);
    let gc = ConversationId::Group(f.group.id);
    let late = message(&mut ids, gc, U2, MessageKind::Text, "", "\"after\"");
    f.message(&late, &[U2, U3]);
    f.tables.rows_mut::<HighWater>()[0].1 = big(late.id.0);
    for h in f.tables.rows_mut::<InboxHeads>() {
        h.1 = h.1.map(|x| x + 1);
    }
    f.tables.rows_mut::<InboxHeads>().retain(|h| h.0 != 1);
    f.tables.insert::<InboxHeads>((1, Some(5)));
    let (n, text) = f.problems();
    let (l, g) = (late.id.0, f.group.id.0);
    assert_eq!(text, format!("inbox: user 3 holds message {l} of Group(GroupId({g})), a conversation it is not in\n"));
    assert_eq!(n, 1);
}

#[test]
fn ids_above_the_high_water_receipts_and_marks() {
    let mut f = fixture();
    let r = f.removed.id.0;
    f.tables.rows_mut::<HighWater>()[0].1 = big(r - 1);
    let (n, text) = f.problems();
    assert!(text.contains(&format!("messages: message {r} is above the high water {}", r - 1)), "{text}");
    for user in 1..=3 {
        assert!(text.contains(&format!("inbox: user {user}: event {r} is above the high water")), "{text}");
    }
    assert_eq!(n, 4, "{text}");

    let mut f = fixture();
    let event = MessageId(f.receipt);
    for row in f.tables.rows_mut::<Inbox>().iter_mut().filter(|row| row.3 == Some(big(event.0))) {
        row.5 = Some(vec![0xff]);
    }
    let gc = f.group_key();
    f.tables.insert::<ReadBy>((gc, 12345, 2));
    f.tables.insert::<ReadMarks>((codec::conv_key(&f.direct.conversation), 1, i64::MAX));
    let (n, text) = f.problems();
    let g = f.group.id.0;
    assert!(text.contains(&format!("inbox: user 1, event {}: ", event.0)), "{text}");
    assert!(text.contains(&format!("read_by: mark of user 2 for missing message 12345 of Group(GroupId({g}))")));
    assert!(text.contains(&format!(
        "reads: read mark in {:?} up to {}, above the high water",
        f.direct.conversation,
        i64::MAX
    )));
    assert_eq!(n, 3, "{text}");
}

#[test]
fn a_message_partition_the_bucket_index_does_not_list_is_skipped_by_reads() {
    let mut f = fixture();
    let gc = f.group_key();
    f.tables.rows_mut::<ConversationBuckets>().retain(|b| b.0 != gc);
    let (n, text) = f.problems();
    let (g, b) = (f.group.id.0, message_bucket(f.created.id));
    assert_eq!(
        text,
        format!("conversation_buckets: Group(GroupId({g})): bucket {b} holds messages but is not listed, so reads skip it\n")
    );
    assert_eq!(n, 1);

    // A message in another bucket than its id's, and one id twice.
    let mut f = fixture();
    let d = big(f.direct.id.0);
    let mut moved = f.tables.rows_mut::<Messages>().iter().find(|m| m.2 == d).cloned().unwrap();
    moved.1 += 1;
    moved.0 = f.group_key();
    f.tables.insert::<Messages>(moved);
    let (n, text) = f.problems();
    assert!(text.contains(&format!("message {d} in Group(GroupId({})) is in bucket", f.group.id.0)), "{text}");
    assert!(text.contains(&format!("messages: message id {d} in Group(")), "{text}");
    assert_eq!(n, 2, "{text}");
}
