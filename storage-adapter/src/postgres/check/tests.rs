//! The check against a clean database and against databases damaged on
//! purpose, each damage written by plain SQL. One server, one database per
//! case.

use chatgw_protocol::{Group, Member, Message, UserId};

use super::*;
use crate::{check_history::CheckHistory, conformance::TestPostgres, MessageStore, PostgresOptions};

struct Fixture {
    url: String,
    store: PostgresStore,
    direct: Message,
    group: Group,
    text: Message,
}

/// Users 1 and 2 talk directly (2 acknowledges delivery); user 1 creates a
/// group with 2 and 3, 2 sends to it, then 1 removes 3: the embedded
/// check's fixture, through this store's commit.
fn fixture(server: &TestPostgres) -> Fixture {
    let url = server.url(&server.create_database());
    PostgresStore::init(&url).unwrap();
    let store = PostgresStore::open(&url, &PostgresOptions::default()).unwrap();
    let CheckHistory { direct, group, text, .. } = {
        let h = CheckHistory::new();
        h.commit_to(&store);
        h
    };
    Fixture { url, store, direct, group, text }
}

impl Fixture {
    fn sql(&self, statement: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) {
        let mut c = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
        c.execute(statement, params).unwrap();
    }

    fn problems(&self) -> (u64, String) {
        let r = self.store.check_integrity().unwrap();
        (r.violation_count, r.violations.iter().map(|v| format!("{}: {}\n", v.table, v.problem)).collect())
    }
}

#[test]
fn clean_and_damaged_databases() {
    let server = TestPostgres::start();

    // Clean: the same counts as the embedded store holding the same commits.
    let f = fixture(&server);
    let r = f.store.check_integrity().unwrap();
    assert!(r.is_clean(), "{:?}", r.violations);
    let c = &r.counts;
    assert_eq!((c.messages, c.inbox_messages, c.inbox_receipts, c.idempotency_keys), (4, 11, 1, 3));
    assert_eq!((c.delivery_marks, c.groups, c.high_water), (1, 1, f.store.high_water(0).unwrap().0));

    // A lost message leaves dangling references everywhere it was named.
    let d = f.direct.id.0 as i64;
    f.sql("DELETE FROM messages WHERE id = $1", &[&d]);
    let (n, text) = f.problems();
    let id = f.direct.id.0;
    for expected in [
        format!("inbox: user 1: reference to missing message {id}"),
        format!("inbox: user 2: reference to missing message {id}"),
        format!("idempotency: (1, \"c1\") points to missing message {id}"),
        format!("delivered: mark of user 2 for missing message {id}"),
        format!("names missing message {id}"),
    ] {
        assert!(text.contains(&expected), "{expected} in:\n{text}");
    }
    assert_eq!(n, 5, "{text}");

    // An idempotency key pointing at another message; the message it
    // belonged to is then unkeyed.
    let f = fixture(&server);
    let (key, other) = (codec::conv_key(&f.text.conversation), f.text.id.0 as i64);
    f.sql("UPDATE idempotency SET conversation = $1, id = $2 WHERE sender = 1 AND client_id = 'c1'", &[&key, &other]);
    let (n, text) = f.problems();
    assert!(text.contains("(1, \"c1\") points to message") && text.contains("from 2 with client id \"c2\""), "{text}");
    assert!(text.contains(&format!("message {} has a client id but no idempotency key", f.direct.id.0)), "{text}");
    assert_eq!(n, 2, "{text}");

    // A group record that its system messages disagree with.
    let f = fixture(&server);
    let mut g = f.group.clone();
    g.members.push(Member { user: UserId(9), admin: true, joined: MessageId(g.id.0) });
    f.sql("UPDATE groups SET record = $1 WHERE id = $2", &[&codec::encode_group(&g), &(g.id.0 as i64)]);
    let (n, text) = f.problems();
    assert!(text.contains(&format!("group {}: the record has members", g.id.0)), "{text}");
    assert_eq!(n, 1, "{text}");

    // An inbox position moved past a gap: the positions are no longer
    // dense and the head no longer names the last one.
    let f = fixture(&server);
    f.sql(
        "UPDATE inbox SET pos = pos + 5 WHERE user_id = 1 AND pos = (SELECT max(pos) FROM inbox WHERE user_id = 1)",
        &[],
    );
    let (n, text) = f.problems();
    assert!(text.contains("inbox: user 1: event") && text.contains("after a gap (positions are dense)"), "{text}");
    assert!(text.contains("inbox_heads: user 1: the inbox head says"), "{text}");
    assert_eq!(n, 2, "{text}");

    // The high water below stored ids; a stranger holding a group message
    // and a direct one; a message missing from its recipient's inbox.
    let f = fixture(&server);
    let hw = f.store.high_water(0).unwrap().0;
    f.sql("UPDATE high_water SET id = $1", &[&(hw as i64 - 1)]);
    let (gc, text_id) = (codec::conv_key(&f.text.conversation), f.text.id.0 as i64);
    f.sql("INSERT INTO inbox (user_id, pos, event, conversation) VALUES (7, 1, $1, $2)", &[&text_id, &gc]);
    let dc = codec::conv_key(&f.direct.conversation);
    f.sql("UPDATE inbox SET user_id = 8 WHERE user_id = 2 AND event = $1 AND conversation = $2", &[&d_of(&f), &dc]);
    let (_, text) = f.problems();
    for expected in [
        format!("messages: message {hw} is above the high water {}", hw - 1),
        format!("user 7 holds message {text_id} of group {}", f.group.id.0),
        format!("user 8 holds message {} of", f.direct.id.0),
        format!("message {} is missing from the recipient's inbox", f.direct.id.0),
    ] {
        assert!(text.contains(&expected), "{expected} in:\n{text}");
    }
}

fn d_of(f: &Fixture) -> i64 {
    f.direct.id.0 as i64
}
