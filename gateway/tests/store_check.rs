//! `chatgw check` on stores a real gateway wrote: direct messages with
//! receipts and read marks, a group through its whole life (create, add,
//! remove, promote, leave) with group receipts; and its refusal of a
//! directory without a store.

mod util;

use std::{path::Path, process::Command};

use chatgw_client::{Client, Event, GroupId, MessageKind, UserId};
use util::*;

fn group_reply(c: &mut Client) -> GroupId {
    c.wait_for(WAIT, "group", |e| match e {
        Event::Group { id, .. } => Some(*id),
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

fn check(data: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chatgw")).arg("check").arg("--data").arg(data).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn count(text: &str, label: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(label).map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no `{label}` in:\n{text}"))
}

each_driver!(a_store_written_by_the_gateway_passes_the_check);
fn a_store_written_by_the_gateway_passes_the_check(io: IoDriver) {
    let mut gw = TestGateway::start(io, 2);
    let (mut a, mut b) = (gw.online(1), gw.online(2));
    a.send_message(UserId(2), "d1", MessageKind::Text, "hello").unwrap();
    let (d1, _) = sent_id(&mut a, "d1");
    assert_eq!(next_message(&mut b).id, d1);
    b.ack_delivered(UserId(1), &[d1]).unwrap();
    b.mark_read(UserId(1), d1).unwrap();
    // A resend with the same client id stores nothing new.
    a.send_message(UserId(2), "d1", MessageKind::Text, "hello").unwrap();
    assert_eq!(sent_id(&mut a, "d1"), (d1, true));

    a.create_group("g-1", "Team", &[UserId(2), UserId(3), UserId(4)]).unwrap();
    let g = group_reply(&mut a);
    a.send_group(g, "g1", MessageKind::Text, "to the team").unwrap();
    let (g1, _) = sent_id(&mut a, "g1");
    b.ack_group_delivered(g, &[g1]).unwrap();
    b.mark_group_read(g, g1).unwrap();
    for (op, members) in
        [("add_members", vec![UserId(5)]), ("remove_members", vec![UserId(3)]), ("promote", vec![UserId(2)])]
    {
        a.change_members(op, g, &members).unwrap();
        group_reply(&mut a);
    }
    a.leave_group(g).unwrap();
    group_reply(&mut a);
    b.send_group(g, "g2", MessageKind::Text, "after the changes").unwrap();
    sent_id(&mut b, "g2");
    drop((a, b));
    if let Some(h) = gw.handle.take() {
        h.shutdown();
    }

    let (ok, text) = check(gw.dir.path());
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
