//! The check against a clean store and against stores damaged on purpose,
//! each damage written straight into the engine's tables.

use chatgw_protocol::{Group, Member, Message, Receipt, Snowflake, UserId};

use super::*;
use crate::{EmbeddedOptions, GroupVersion, MessageStore, Write};

const U1: UserId = UserId(1);
const U2: UserId = UserId(2);
const U3: UserId = UserId(3);

struct Fixture {
    _dir: tempfile::TempDir,
    store: EmbeddedStore,
    direct: Message,
    group: Group,
}

fn message(
    g: &mut Snowflake,
    conversation: ConversationId,
    from: UserId,
    kind: MessageKind,
    cid: &str,
    body: &str,
) -> Message {
    let id = g.next_id();
    Message { id, conversation, from, kind, client_id: cid.into(), ts: Snowflake::unix_ms(id), body: body.into() }
}

/// Users 1 and 2 talk directly (2 acknowledges delivery); user 1 creates
/// a group with 2 and 3, sends to it, then removes 3; every write goes
/// through the store's own commit.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
    let mut ids = Snowflake::new(0);
    let direct = message(&mut ids, ConversationId::direct(U1, U2), U1, MessageKind::Text, "c1", "\"hi\"");
    let receipt = Receipt::Delivered {
        event: ids.next_id(),
        conversation: direct.conversation,
        by: U2,
        ids: vec![direct.id],
        at: 1,
    };
    let gid = GroupId(ids.next_id().0);
    let gc = ConversationId::Group(gid);
    let created = serde_json::to_string(r#"{"event":"created","by":"1","name":"T","members":["1","2","3"]}"#).unwrap();
    let created = message(&mut ids, gc, U1, MessageKind::System, "g:g1", &created);
    let text = message(&mut ids, gc, U2, MessageKind::Text, "c2", "\"to all\"");
    let removed = serde_json::to_string(r#"{"event":"removed","by":"1","members":["3"],"new_admins":[]}"#).unwrap();
    let removed = message(&mut ids, gc, U1, MessageKind::System, "", &removed);
    let member = |user, admin| Member { user, admin, joined: MessageId(gid.0) };
    let before = Group {
        id: gid,
        name: "T".into(),
        created_by: U1,
        members: vec![member(U1, true), member(U2, false), member(U3, false)],
    };
    let mut group = before.clone();
    group.members.retain(|m| m.user != U3);
    let (all, two) = ([U1, U2, U3], [U1, U2]);
    let writes = [
        Write::Message { message: &direct, inboxes: &two },
        Write::Receipt { receipt: &receipt, inboxes: &[U1] },
        Write::Group { group: &before, based_on: GroupVersion::ABSENT, announce: Some(&created), inboxes: &all },
        Write::Message { message: &text, inboxes: &all },
    ];
    store.commit(&writes, text.id).unwrap();
    let writes = [Write::Group { group: &group, based_on: GroupVersion(1), announce: Some(&removed), inboxes: &all }];
    store.commit(&writes, removed.id).unwrap();
    Fixture { _dir: dir, store, direct, group }
}

fn problems(r: &IntegrityReport) -> String {
    r.violations.iter().map(|v| format!("{}: {}\n", v.table, v.problem)).collect()
}

#[test]
fn a_store_written_by_commits_is_clean() {
    let f = fixture();
    let r = f.store.check_integrity().unwrap();
    assert!(r.is_clean(), "{}", problems(&r));
    let c = &r.counts;
    assert_eq!((c.messages, c.inbox_messages, c.inbox_receipts, c.idempotency_keys), (4, 11, 1, 3));
    assert_eq!((c.delivery_marks, c.groups), (1, 1));
}

#[test]
fn a_lost_message_leaves_dangling_references() {
    let f = fixture();
    let key = codec::message_key(&f.direct.conversation, f.direct.id);
    f.store.with_tables(|t| t.messages.remove(key)).unwrap();
    let r = f.store.check_integrity().unwrap();
    let text = problems(&r);
    assert!(text.contains(&format!("user 1: reference to missing message {}", f.direct.id.0)), "{text}");
    assert!(text.contains(&format!("user 2: reference to missing message {}", f.direct.id.0)), "{text}");
    assert!(text.contains(&format!("(1, \"c1\") points to missing message {}", f.direct.id.0)), "{text}");
    assert!(text.contains("delivered: mark of user 2 for missing message"), "{text}");
    assert!(text.contains("receipt") && text.contains("names missing message"), "{text}");
    assert_eq!(r.violation_count, 5);
}

#[test]
fn an_idempotency_key_pointing_elsewhere_is_reported() {
    let f = fixture();
    let gc = ConversationId::Group(f.group.id);
    let other = f.store.history(gc, None, 10).unwrap().into_iter().find(|m| m.client_id == "c2").unwrap();
    f.store
        .with_tables(|t| {
            t.idempotency.insert(codec::idempotency_key(U1, "c1"), codec::encode_idempotency(&gc, other.id))
        })
        .unwrap();
    let r = f.store.check_integrity().unwrap();
    let text = problems(&r);
    assert!(text.contains("(1, \"c1\") points to message") && text.contains("from 2 with client id \"c2\""), "{text}");
    assert!(text.contains(&format!("message {} has a client id but no idempotency key", f.direct.id.0)), "{text}");
    assert_eq!(r.violation_count, 2);
}

#[test]
fn a_group_record_its_system_messages_disagree_with_is_reported() {
    let f = fixture();
    let mut g = f.group.clone();
    g.members.push(Member { user: UserId(9), admin: true, joined: MessageId(g.id.0) });
    f.store.with_tables(|t| t.groups.insert(g.id.0.to_be_bytes(), codec::encode_group(&g))).unwrap();
    let r = f.store.check_integrity().unwrap();
    let text = problems(&r);
    assert!(text.contains(&format!("group {}: the record has members", g.id.0)), "{text}");
    assert_eq!(r.violation_count, 1);
}

#[test]
fn ids_above_the_high_water_and_strangers_in_an_inbox_are_reported() {
    let f = fixture();
    let hw = f.store.high_water(0).unwrap().0;
    f.store.with_tables(|t| t.meta.insert(super::super::tables::HIGH_WATER_KEY, (hw - 1).to_be_bytes())).unwrap();
    let gc = ConversationId::Group(f.group.id);
    let text_id = f.store.history(gc, None, 10).unwrap().into_iter().find(|m| m.client_id == "c2").unwrap().id;
    f.store
        .with_tables(|t| t.inbox.insert(codec::inbox_key(UserId(7), text_id), codec::encode_inbox_message(&gc)))
        .unwrap();
    let r = f.store.check_integrity().unwrap();
    let text = problems(&r);
    assert!(text.contains(&format!("message {hw} is above the high water")), "{text}");
    assert!(text.contains(&format!("user 7 holds message {} of", text_id.0)), "{text}");
}
