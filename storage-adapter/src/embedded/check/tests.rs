//! The check against a clean store and against stores damaged on purpose,
//! each damage written straight into the engine's tables.

use chatgw_protocol::{Group, Member, Message, UserId};

use super::*;
use crate::{
    check_history::{CheckHistory, U1},
    EmbeddedOptions, MessageStore,
};

struct Fixture {
    _dir: tempfile::TempDir,
    store: EmbeddedStore,
    direct: Message,
    group: Group,
}

/// Users 1 and 2 talk directly (2 acknowledges delivery); user 1 creates
/// a group with 2 and 3, sends to it, then removes 3; every write goes
/// through the store's own commit.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
    let CheckHistory { direct, group, .. } = {
        let h = CheckHistory::new();
        h.commit_to(&store);
        h
    };
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
