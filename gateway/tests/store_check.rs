//! `chatgw check` on stores a real gateway wrote, embedded and PostgreSQL:
//! direct messages with receipts and read marks, a group through its whole
//! life (create, add, remove, promote, leave) with group receipts; edited
//! and deleted messages, and a message hidden for one user; a
//! PostgreSQL row broken on purpose; and its refusal of a directory without
//! a store.

mod util;

use std::{path::Path, process::Command};

use chatgw_client::{ConversationRef, DeleteScope, Event, MessageKind, UserId};
use chatgw_gateway::store::StoreUrl;
use util::*;

fn check(data: &Path) -> (bool, String) {
    check_store(data, &StoreUrl::default())
}

/// `chatgw check --data <data> --store <store>`: whether it passed, and
/// everything it printed.
fn check_store(data: &Path, store: &StoreUrl) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chatgw"))
        .arg("check")
        .arg("--data")
        .arg(data)
        .args(["--store", store.as_str()])
        .env_remove("CHATGW_STORE")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Wait for the `amended` answer to an edit or delete.
fn amended_reply(c: &mut chatgw_client::Client) {
    c.wait_for(WAIT, "amended", |e| match e {
        Event::Amended { .. } => Some(()),
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

fn count(text: &str, label: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(label).map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no `{label}` in:\n{text}"))
}

/// Everything the check counts, written through a real gateway; stops it.
fn write_a_bit_of_everything(gw: &mut TestGateway) {
    let (mut a, mut b) = (gw.online(1), gw.online(2));
    a.send_message(UserId(2), "d1", MessageKind::Text, "hello").unwrap();
    let (d1, _) = sent_id(&mut a, "d1");
    assert_eq!(next_message(&mut b).id, d1);
    b.ack_delivered(UserId(1), &[d1]).unwrap();
    b.mark_read(UserId(1), d1).unwrap();
    // A resend with the same client id stores nothing new.
    a.send_message(UserId(2), "d1", MessageKind::Text, "hello").unwrap();
    assert_eq!(sent_id(&mut a, "d1"), (d1, true));
    // Amended messages: an edit, then a delete for everyone.
    a.edit_message(ConversationRef::Peer(UserId(2)), d1, "hello!").unwrap();
    amended_reply(&mut a);
    a.delete_message(ConversationRef::Peer(UserId(2)), d1, DeleteScope::Everyone).unwrap();
    amended_reply(&mut a);
    // A hidden mark: the receiver deletes it for themselves too.
    b.delete_message(ConversationRef::Peer(UserId(1)), d1, DeleteScope::Me).unwrap();
    amended_reply(&mut b);

    a.create_group("g-1", "Team", &[UserId(2), UserId(3), UserId(4)]).unwrap();
    let g = group_id(&mut a);
    a.send_group(g, "g1", MessageKind::Text, "to the team").unwrap();
    let (g1, _) = sent_id(&mut a, "g1");
    b.ack_group_delivered(g, &[g1]).unwrap();
    b.mark_group_read(g, g1).unwrap();
    for (op, members) in
        [("add_members", vec![UserId(5)]), ("remove_members", vec![UserId(3)]), ("promote", vec![UserId(2)])]
    {
        a.change_members(op, g, &members).unwrap();
        group_id(&mut a);
    }
    a.leave_group(g).unwrap();
    group_id(&mut a);
    b.send_group(g, "g2", MessageKind::Text, "after the changes").unwrap();
    let (g2, _) = sent_id(&mut b, "g2");
    b.edit_message(ConversationRef::Group(g), g2, "after all the changes").unwrap();
    amended_reply(&mut b);
    drop((a, b));
    if let Some(h) = gw.handle.take() {
        h.shutdown();
    }
}

each_store!(a_store_written_by_the_gateway_passes_the_check);
fn a_store_written_by_the_gateway_passes_the_check(on: Setup) {
    let mut gw = TestGateway::start(on, 2);
    write_a_bit_of_everything(&mut gw);
    let (ok, text) = check_store(gw.dir.path(), &gw.store);
    assert!(ok, "{text}");
    assert!(text.contains("integrity: ok"), "{text}");
    // d1, g1, g2 and the five system messages (created, added, removed, promoted, left).
    assert_eq!(count(&text, "messages"), 8, "{text}");
    assert_eq!(count(&text, "groups"), 1, "{text}");
    assert_eq!(count(&text, "idempotency keys"), 4, "{text}");
    assert_eq!(count(&text, "delivery marks"), 2, "{text}");
    assert_eq!(count(&text, "group read marks"), 1, "{text}");
    assert!(count(&text, "read marks") >= 1, "{text}");
    assert_eq!(count(&text, "violations"), 0, "{text}");
}

#[test]
fn a_directory_without_a_store_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = check(dir.path());
    assert!(!ok);
    assert!(text.contains("no store in"), "{text}");
}

/// A row broken by hand: an inbox reference to a message that does not
/// exist, and a delivery mark for it. The check names both and exits 1.
#[test]
fn a_broken_postgres_row_is_reported_and_fails_the_check() {
    let mut gw = TestGateway::start(Setup { io: IoDriver::Epoll, store: TestStore::Postgres }, 1);
    write_a_bit_of_everything(&mut gw);
    assert!(check_store(gw.dir.path(), &gw.store).0, "clean before the damage");

    let mut db = postgres::Client::connect(gw.store.as_str(), postgres::NoTls).unwrap();
    let ghost: i64 = db.query_one("SELECT max(id) + 1 FROM messages", &[]).unwrap().get(0);
    let direct = db.query_one("SELECT conversation FROM messages WHERE client_id = 'd1'", &[]).unwrap();
    let conversation: Vec<u8> = direct.get(0);
    // At the inbox's next position, with its head raised, so the only
    // damage is the missing message.
    db.execute(
        "WITH h AS (UPDATE inbox_heads SET head = head + 1 WHERE user_id = 2 RETURNING head)
         INSERT INTO inbox (user_id, pos, event, conversation) SELECT 2, head, $1, $2 FROM h",
        &[&ghost, &conversation],
    )
    .unwrap();
    db.execute("INSERT INTO delivered (conversation, id, user_id, at) VALUES ($1, $2, 2, 0)", &[&conversation, &ghost])
        .unwrap();

    let (ok, text) = check_store(gw.dir.path(), &gw.store);
    assert!(!ok, "a violation fails the check:\n{text}");
    assert!(text.contains(&format!("inbox: user 2: reference to missing message {ghost}")), "{text}");
    assert!(text.contains(&format!("delivered: mark of user 2 for missing message {ghost}")), "{text}");
    assert!(text.contains("integrity: VIOLATED"), "{text}");
}

#[test]
fn an_unreachable_postgres_store_is_a_one_line_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url: StoreUrl = format!("postgres://chat:s3cret@127.0.0.1:{port}/chatgw").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = check_store(dir.path(), &url);
    assert!(!ok);
    assert!(
        text.starts_with(&format!("chatgw: opening the store postgres://chat:***@127.0.0.1:{port}/chatgw: ")),
        "{text}"
    );
    assert!(!text.contains("s3cret") && text.lines().count() == 1, "{text}");
}

/// A store whose old idempotency keys were swept passes the check with the
/// gateways' retention (the default 7d), and fails it with `0s` (keys kept
/// forever), where a message without its key is a violation.
#[test]
fn swept_idempotency_keys_are_no_violation_within_the_retention() {
    use chatgw_protocol::{now_ms, ConversationId, Message, MessageKind as Kind, Snowflake, UserId as User};
    use chatgw_storage::{retention_cutoff, EmbeddedOptions, EmbeddedStore, MessageStore, Write};

    let data = tempfile::tempdir().unwrap();
    let dir = chatgw_gateway::store::embedded_dir(data.path());
    std::fs::create_dir_all(&dir).unwrap();
    let store = EmbeddedStore::open(&dir, &EmbeddedOptions::default()).unwrap();
    let mut g = Snowflake::new(0);
    let ten_days_ago = now_ms() - 10 * 86_400_000;
    let id = g.next_at(ten_days_ago);
    let old = Message {
        id,
        conversation: ConversationId::direct(User(1), User(2)),
        from: User(1),
        kind: Kind::Text,
        client_id: "old".into(),
        ts: Snowflake::unix_ms(id),
        body: "\"hi\"".into(),
        amended: None,
    };
    let both = [User(1), User(2)];
    store.commit(&[Write::Message { message: &old, inboxes: &both, membership: None }], id).unwrap();
    let cutoff = retention_cutoff(Some(std::time::Duration::from_secs(7 * 86_400)), now_ms());
    assert_eq!(store.sweep_idempotency_keys(None, cutoff, 100).unwrap().removed, 1);
    drop(store);

    let embedded = |retention: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_chatgw"))
            .args(["check", "--store", "embedded", "--idempotency-retention", retention, "--data"])
            .arg(data.path())
            .env_remove("CHATGW_STORE")
            .env_remove("CHATGW_IDEMPOTENCY_RETENTION")
            .output()
            .unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let (clean, text) = embedded("7d");
    assert!(clean, "{text}");
    let (clean, text) = embedded("0s");
    assert!(!clean, "{text}");
    assert!(text.contains(&format!("message {} has a client id but no idempotency key", id.0)), "{text}");
}
