//! Every frame type, both directions: a client frame encoded by
//! `ClientFrame::encode` parses (as the server parses it) to the same frame,
//! and a server frame encoded by `server::*` decodes (as a client decodes
//! it) to what was encoded, seen from the receiving user's side. The fast
//! borrowed view (`view::FrameView`) is held to the typed decoder on every
//! server frame.

use chatgw_protocol::{
    client::{self, body_literal},
    server::{self, Message, Receipt, ReceiptStatus},
    view::{parse_id, FrameView},
    AmendKind, Amendment, ClientFrame, ConversationId, ConversationRef, DeleteScope, DeviceInfo, DeviceName, ErrorCode,
    ErrorFrame, Group, GroupChange, GroupId, HistoryPage, Member, MessageId, MessageInfo, MessageKind, PresenceState,
    ReceiptFrame, Send, Sent, ServerFrame, TypingState, UserId, Welcome, MAX_PAGE,
};

/// Snowflake-sized ids, above 2^53, where a JSON number would lose digits.
const BIG: u64 = 384_912_410_550_468_608;

fn client_round_trip(frame: ClientFrame<'_>) {
    let text = frame.to_json();
    let parsed = ClientFrame::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(parsed, frame, "{text}");
}

#[test]
fn every_client_frame_round_trips() {
    let peer = ConversationRef::Peer(UserId(u64::MAX));
    let group = ConversationRef::Group(GroupId(BIG));
    let quoted = body_literal("say \"hi\"\\ \n\t\u{1} café ☕ 😀");
    // Every kind a client may send (`system` is written by the server only).
    for kind in MessageKind::ALL.into_iter().filter(|k| !matches!(k, MessageKind::System | MessageKind::Encrypted)) {
        for to in [peer, group] {
            for body in [r#""""#, r#""plain""#, quoted.as_str(), r#""caf\u00e9 \ud83d\ude00 \/""#] {
                client_round_trip(ClientFrame::Send(Send {
                    client_id: "dev-1.42",
                    to,
                    kind,
                    body,
                    envelope_device: None,
                }));
            }
        }
    }
    // `encrypted` bodies are envelopes (docs/PROTOCOL.md, "Encrypted messages").
    let olm = body_literal(r#"{"v":1,"d":"phone-1","k":[{"u":"2","d":"tab","t":0,"c":"AAEC"}]}"#);
    let megolm = body_literal(r#"{"v":1,"d":"phone-1","k":[],"g":{"s":"c2Vzcw","c":"AAEC+/8"}}"#);
    for to in [peer, group] {
        for body in [olm.as_str(), megolm.as_str()] {
            let kind = MessageKind::Encrypted;
            let envelope_device = DeviceName::new("phone-1");
            client_round_trip(ClientFrame::Send(Send { client_id: "dev-1.42", to, kind, body, envelope_device }));
        }
    }
    for conversation in [peer, group] {
        client_round_trip(ClientFrame::Delivered { conversation, ids: vec![MessageId(BIG)] });
        client_round_trip(ClientFrame::Delivered {
            conversation,
            ids: (0..256).map(|i| MessageId(u64::MAX - i)).collect(),
        });
        client_round_trip(ClientFrame::Read { conversation, up_to: MessageId(BIG) });
        for scope in [DeleteScope::Everyone, DeleteScope::Me] {
            client_round_trip(ClientFrame::Delete { conversation, msg: MessageId(BIG), scope });
        }
        for body in [r#""""#, quoted.as_str(), r#""caf\u00e9""#] {
            client_round_trip(ClientFrame::Edit { conversation, msg: MessageId(u64::MAX), body });
        }
        for before in [None, Some(MessageId(BIG))] {
            for limit in [1, 17, MAX_PAGE] {
                client_round_trip(ClientFrame::History { conversation, before, limit });
            }
        }
    }
    for after in [MessageId(0), MessageId(u64::MAX)] {
        for limit in [1, MAX_PAGE] {
            client_round_trip(ClientFrame::Sync { after, limit });
        }
    }
    for members in [vec![], vec![UserId(2), UserId(u64::MAX)]] {
        for name in ["Team", "T\"e\\am ☕", " x\n"] {
            client_round_trip(ClientFrame::CreateGroup {
                request_id: "g-1",
                name: name.into(),
                members: members.clone(),
            });
        }
    }
    let g = GroupId(BIG);
    let users = vec![UserId(5), UserId(BIG)];
    for change in [
        GroupChange::Add(users.clone()),
        GroupChange::Remove(users.clone()),
        GroupChange::Promote(users.clone()),
        GroupChange::Demote(users),
        GroupChange::Rename("T\"e\\am ☕".into()),
        GroupChange::Describe(String::new()),
        GroupChange::Describe("line one\nline \"two\"".into()),
        GroupChange::AdminsOnly(true),
        GroupChange::AdminsOnly(false),
        GroupChange::AdminsCanDelete(true),
        GroupChange::AdminsCanDelete(false),
        GroupChange::Leave,
    ] {
        client_round_trip(ClientFrame::ChangeGroup { group: g, change });
    }
    client_round_trip(ClientFrame::GroupInfo { group: g });
    client_round_trip(ClientFrame::MessageInfo { group: g, msg: MessageId(BIG) });
    client_round_trip(ClientFrame::Block { user: UserId(u64::MAX) });
    client_round_trip(ClientFrame::Unblock { user: UserId(BIG) });
    client_round_trip(ClientFrame::Blocks);
    client_round_trip(ClientFrame::SetDirectFrom { from: chatgw_protocol::DirectFrom::Contacts });
    client_round_trip(ClientFrame::SetDirectFrom { from: chatgw_protocol::DirectFrom::Everyone });
    client_round_trip(ClientFrame::DirectFrom);
    for provider in chatgw_protocol::PushProvider::ALL {
        client_round_trip(ClientFrame::RegisterPush { provider, token: "0f3a~!x/y".into() });
    }
    client_round_trip(ClientFrame::UnregisterPush);
    client_round_trip(ClientFrame::Auth { token: "eyJhbGciOiJIUzI1NiJ9.e30.sig".into() });
    client_round_trip(ClientFrame::Auth { token: "with \"quotes\" and \\".into() });
    client_round_trip(ClientFrame::Devices);
    client_round_trip(ClientFrame::LogoutDevice { device: DeviceName::new("Work-Laptop_2.0").unwrap() });
    client_round_trip(ClientFrame::Conversations { before: None, limit: chatgw_protocol::DEFAULT_CONVERSATIONS_PAGE });
    client_round_trip(ClientFrame::Conversations { before: Some(MessageId(BIG)), limit: 1 });
    client_round_trip(ClientFrame::Conversations { before: None, limit: chatgw_protocol::MAX_CONVERSATIONS_PAGE });
    for conversation in [peer, group] {
        client_round_trip(ClientFrame::SubscribePresence { conversation });
        client_round_trip(ClientFrame::UnsubscribePresence { conversation });
        for state in [TypingState::Typing, TypingState::Paused] {
            client_round_trip(ClientFrame::Typing { conversation, state });
        }
    }
    client_round_trip(ClientFrame::SetPresence { visible: true });
    client_round_trip(ClientFrame::SetPresence { visible: false });
}

#[test]
fn client_frames_are_spelled_as_the_protocol_document_shows_them() {
    let mut out = String::new();
    client::send(&mut out, "c-1", ConversationRef::Peer(UserId(2)), MessageKind::Text, &body_literal("hello, Bob"));
    assert_eq!(out, r#"{"type":"send","id":"c-1","to":"2","kind":"text","body":"hello, Bob"}"#);
    out.clear();
    client::delivered(&mut out, ConversationRef::Peer(UserId(1)), [MessageId(BIG)]);
    assert_eq!(out, r#"{"type":"delivered","peer":"1","ids":["384912410550468608"]}"#);
    out.clear();
    client::sync(&mut out, MessageId(0), MAX_PAGE);
    assert_eq!(out, r#"{"type":"sync","after":"0"}"#);
    out.clear();
    client::create_group(&mut out, "g-1", "Team", [UserId(2), UserId(3), UserId(4)]);
    assert_eq!(out, r#"{"type":"create_group","id":"g-1","name":"Team","members":["2","3","4"]}"#);
    out.clear();
    client::history(&mut out, ConversationRef::Peer(UserId(2)), Some(MessageId(BIG)), 1);
    assert_eq!(out, r#"{"type":"history","peer":"2","before":"384912410550468608","limit":1}"#);
}

#[test]
fn body_literals_decode_to_their_text() {
    for text in ["", "a", "\"", "\\", "\u{0}\u{1f}\u{7f}", "line\nbreak\r\ttab", "é☕😀", "</script>"] {
        let lit = body_literal(text);
        assert_eq!(serde_json::from_str::<String>(&lit).unwrap(), text, "{lit}");
    }
}

fn decode(bytes: &[u8]) -> ServerFrame {
    let text = std::str::from_utf8(bytes).expect("server frames are UTF-8");
    ServerFrame::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The typed decoder and the borrowed view read the same ids and strings.
fn view_agrees(bytes: &[u8], frame: &ServerFrame) {
    let text = std::str::from_utf8(bytes).unwrap();
    let v = FrameView::parse(text).unwrap_or_else(|| panic!("view refused {text}"));
    let id = |s: Option<&chatgw_protocol::view::Str<'_>>| parse_id(s);
    match frame {
        ServerFrame::Welcome(_) => assert_eq!(v.ty, "welcome"),
        ServerFrame::Sent(s) => {
            assert_eq!(v.ty, "sent");
            assert_eq!(v.id.as_deref(), Some(s.client_id.as_str()));
            assert_eq!(id(v.msg.as_ref()), Some(s.msg.0));
            assert_eq!(v.duplicate, Some(s.duplicate));
        }
        ServerFrame::Message(m) => {
            assert_eq!(v.ty, "message");
            assert_eq!(id(v.msg.as_ref()), Some(m.id.0));
            assert_eq!(id(v.event.as_ref()), Some(m.id.0));
            assert_eq!(id(v.from.as_ref()), Some(m.from.0));
            assert_eq!(v.kind.as_deref(), Some(m.kind.as_str()));
            let cid = if m.kind == MessageKind::System { "" } else { m.client_id.as_str() };
            assert_eq!(v.cid.as_deref(), Some(cid));
            let g = match m.conversation {
                ConversationId::Group(g) => Some(g.0),
                ConversationId::Direct { .. } => None,
            };
            assert_eq!(id(v.group.as_ref()), g);
        }
        ServerFrame::Receipt(r) => {
            assert_eq!(v.ty, "receipt");
            assert_eq!(id(v.event.as_ref()), Some(r.event().0));
            match r {
                ReceiptFrame::Delivered { ids, .. } => {
                    assert_eq!(v.status.as_deref(), Some("delivered"));
                    let got: Vec<u64> = v.ids.iter().flatten().filter_map(|s| s.parse().ok()).collect();
                    assert_eq!(got, ids.iter().map(|i| i.0).collect::<Vec<_>>());
                }
                ReceiptFrame::Read { .. } => assert_eq!(v.status.as_deref(), Some("read")),
                ReceiptFrame::Group { group, status, items, .. } => {
                    assert_eq!(v.status.as_deref(), Some(status.as_str()));
                    assert_eq!(id(v.group.as_ref()), Some(group.0));
                    let got: Vec<(u64, Vec<u64>)> = v
                        .items
                        .iter()
                        .flatten()
                        .map(|i| (i.by.parse().unwrap(), i.ids.iter().map(|s| s.parse().unwrap()).collect()))
                        .collect();
                    let want: Vec<(u64, Vec<u64>)> =
                        items.iter().map(|(u, ids)| (u.0, ids.iter().map(|i| i.0).collect())).collect();
                    assert_eq!(got, want);
                }
            }
        }
        ServerFrame::Amended { event, message, .. } => {
            assert_eq!(v.ty, "amended");
            assert_eq!(id(v.event.as_ref()), Some(event.0));
            assert_eq!(id(v.msg.as_ref()), Some(message.id.0));
        }
        ServerFrame::Synced { cursor } => {
            assert_eq!(v.ty, "synced");
            assert_eq!(id(v.cursor.as_ref()), Some(cursor.0));
        }
        ServerFrame::History(_) => assert_eq!(v.ty, "history"),
        ServerFrame::Group { group, .. } => {
            assert_eq!(v.ty, "group");
            assert_eq!(id(v.group.as_ref()), Some(group.id.0));
        }
        ServerFrame::MessageInfo(_) => assert_eq!(v.ty, "message_info"),
        ServerFrame::Blocks { .. } => assert_eq!(v.ty, "blocks"),
        ServerFrame::DirectFrom { .. } => assert_eq!(v.ty, "direct_from"),
        ServerFrame::PushRegistered { .. } => assert_eq!(v.ty, "push_registered"),
        ServerFrame::PushUnregistered { .. } => assert_eq!(v.ty, "push_unregistered"),
        ServerFrame::KeyCount { .. } => assert_eq!(v.ty, "key_count"),
        ServerFrame::Keys { .. } => assert_eq!(v.ty, "keys"),
        ServerFrame::KeysChanged { event, .. } => {
            assert_eq!(v.ty, "keys_changed");
            assert_eq!(id(v.event.as_ref()), Some(event.0));
        }
        ServerFrame::UploadSlot(_) => assert_eq!(v.ty, "upload_slot"),
        ServerFrame::MediaCompleted { .. } => assert_eq!(v.ty, "media_completed"),
        ServerFrame::DownloadUrl { .. } => assert_eq!(v.ty, "download_url"),
        ServerFrame::Devices { .. } => assert_eq!(v.ty, "devices"),
        ServerFrame::LoggedOut { .. } => assert_eq!(v.ty, "logged_out"),
        ServerFrame::Conversations(_) => assert_eq!(v.ty, "conversations"),
        ServerFrame::Presence { .. } => assert_eq!(v.ty, "presence"),
        ServerFrame::PresenceList { .. } => assert_eq!(v.ty, "presence_list"),
        ServerFrame::PresenceSet { .. } => assert_eq!(v.ty, "presence_set"),
        ServerFrame::Typing { from, .. } => {
            assert_eq!(v.ty, "typing");
            assert_eq!(id(v.from.as_ref()), Some(from.0));
        }
        ServerFrame::Error(e) => {
            assert_eq!(v.ty, "error");
            assert_eq!(v.code.as_deref(), Some(e.code.as_str()));
            assert_eq!(v.reference.as_deref(), e.reference.as_deref());
        }
    }
}

#[test]
fn keys_changed_round_trips_and_moves_the_cursor() {
    let mut out = Vec::new();
    server::keys_changed(&mut out, MessageId(BIG), UserId(u64::MAX));
    assert_eq!(out, br#"{"type":"keys_changed","event":"384912410550468608","user":"18446744073709551615"}"#);
    let want = ServerFrame::KeysChanged { event: MessageId(BIG), user: UserId(u64::MAX) };
    assert_eq!(want.event(), Some(MessageId(BIG)), "an inbox event");
    server_round_trip(&out, want);
}

fn server_round_trip(bytes: &[u8], want: ServerFrame) {
    let got = decode(bytes);
    assert_eq!(got, want, "{}", String::from_utf8_lossy(bytes));
    view_agrees(bytes, &got);
}

fn messages() -> Vec<Message> {
    let direct = ConversationId::direct(UserId(1), UserId(BIG));
    let group = ConversationId::Group(GroupId(BIG));
    let mut out = Vec::new();
    for (conversation, from) in [(direct, UserId(BIG)), (direct, UserId(1)), (group, UserId(3))] {
        for (kind, client_id, body) in [
            (MessageKind::Text, "c\"1\\", r#""hi \"there\"""#.to_owned()),
            (MessageKind::Image, "b-7", body_literal(r#"{"url":"https://cdn.example/x.jpg","w":640}"#)),
            (MessageKind::Text, "y-2", r#""caf\\u00e9 \u2615""#.to_owned()),
        ] {
            out.push(Message {
                id: MessageId(BIG + 1),
                conversation,
                from,
                kind,
                client_id: client_id.into(),
                ts: 1_795_837_470_002,
                body,
                amended: None,
            });
        }
    }
    // A system message's client id is written as "" whatever is stored.
    out.push(Message {
        id: MessageId(BIG + 2),
        conversation: group,
        from: UserId(1),
        kind: MessageKind::System,
        client_id: String::new(),
        ts: 5,
        body: body_literal(r#"{"event":"added","by":"1","members":["5"]}"#),
        amended: None,
    });
    // Notes to self.
    out.push(Message {
        id: MessageId(9),
        conversation: ConversationId::direct(UserId(4), UserId(4)),
        from: UserId(4),
        kind: MessageKind::Text,
        client_id: "n".into(),
        ts: 6,
        body: "\"\"".into(),
        amended: None,
    });
    out
}

#[test]
fn message_frames_round_trip_with_bodies_byte_for_byte() {
    for m in messages() {
        let mut out = Vec::new();
        server::message(&mut out, &m);
        server_round_trip(&out, ServerFrame::Message(m.clone()));
        let ServerFrame::Message(got) = decode(&out) else { unreachable!() };
        assert_eq!(got.body_text().unwrap(), serde_json::from_str::<String>(&m.body).unwrap());
    }
}

/// Edited, deleted and hidden messages, in `amended` events, `message`
/// replays and `history` pages: the mark round-trips, a deleted or hidden
/// message has no body.
#[test]
fn amended_messages_round_trip_with_their_mark() {
    let event = MessageId(BIG + 40);
    for m in messages() {
        let edited = Message {
            body: body_literal("new \"text\" ☕"),
            amended: Some(Amendment { kind: AmendKind::Edited, event }),
            ..m.clone()
        };
        let deleted =
            Message { body: String::new(), amended: Some(Amendment { kind: AmendKind::Deleted, event }), ..m.clone() };
        let hidden = chatgw_protocol::hidden_view(m.clone(), event);
        for (m, reply) in
            [(edited.clone(), false), (deleted, false), (edited, true), (hidden.clone(), false), (hidden, true)]
        {
            let mut out = Vec::new();
            server::amended(&mut out, event, &m, reply);
            let frame = ServerFrame::Amended { event, message: m.clone(), reply };
            assert_eq!(frame.event(), (!reply).then_some(event), "a reply moves no cursor");
            server_round_trip(&out, frame);
            out.clear();
            server::message(&mut out, &m);
            server_round_trip(&out, ServerFrame::Message(m.clone()));
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            match m.amended.map(|a| a.kind) {
                Some(AmendKind::Deleted) => {
                    assert!(v.get("body").is_none(), "a tombstone has no body: {v}");
                    assert_eq!(v["deleted"]["event"], event.to_string());
                    assert_eq!(v["deleted"]["at"], chatgw_protocol::Snowflake::unix_ms(event));
                }
                Some(AmendKind::Hidden) => {
                    assert!(v.get("body").is_none(), "a hidden message has no body: {v}");
                    assert_eq!(v["hidden"]["event"], event.to_string());
                    assert!(v.get("deleted").is_none());
                }
                Some(AmendKind::Edited) => assert_eq!(v["edited"]["event"], event.to_string()),
                None => assert!(v.get("edited").is_none() && v.get("deleted").is_none()),
            }
            out.clear();
            server::history(&mut out, &m.conversation, m.from, std::slice::from_ref(&m), false);
            let ServerFrame::History(page) = decode(&out) else { panic!("not a history page") };
            assert_eq!(page.messages, vec![m]);
        }
    }
    let both = r#"{"type":"message","event":"1","msg":"1","from":"1","to":"2","kind":"text","ts":1,"cid":"c","edited":{"event":"2"},"deleted":{"event":"3"}}"#;
    assert!(ServerFrame::parse(both).is_err(), "edited and deleted at once");
    let two = r#"{"type":"message","event":"1","msg":"1","from":"1","to":"2","kind":"text","ts":1,"cid":"c","hidden":{"event":"2"},"deleted":{"event":"3"}}"#;
    assert!(ServerFrame::parse(two).is_err(), "hidden and deleted at once");
    let no_body = r#"{"type":"message","event":"1","msg":"1","from":"1","to":"2","kind":"text","ts":1,"cid":"c","edited":{"event":"2"}}"#;
    assert!(ServerFrame::parse(no_body).is_err(), "an edited message keeps its body");
}

#[test]
fn welcome_sent_synced_and_error_round_trip() {
    let mut out = Vec::new();
    server::welcome(&mut out, UserId(u64::MAX), 65_536, 131_072);
    server_round_trip(
        &out,
        ServerFrame::Welcome(Welcome { protocol: 1, user: UserId(u64::MAX), max_body: 65_536, max_frame: 131_072 }),
    );
    for (cid, duplicate) in [("c-1", false), ("a\"b\\c", true)] {
        out.clear();
        server::sent(&mut out, cid, MessageId(BIG), 1_795_837_470_002, duplicate);
        server_round_trip(
            &out,
            ServerFrame::Sent(Sent { client_id: cid.into(), msg: MessageId(BIG), ts: 1_795_837_470_002, duplicate }),
        );
    }
    for cursor in [MessageId(0), MessageId(u64::MAX)] {
        out.clear();
        server::synced(&mut out, cursor);
        server_round_trip(&out, ServerFrame::Synced { cursor });
    }
    for code in [ErrorCode::BadField, ErrorCode::SyncFailed, ErrorCode::GroupFull, ErrorCode::ClientIdConflict] {
        for reference in [None, Some("c-\"2")] {
            out.clear();
            server::error(&mut out, code, "field `to`: must be \"an id\"\n", reference);
            server_round_trip(
                &out,
                ServerFrame::Error(ErrorFrame {
                    code,
                    message: "field `to`: must be \"an id\"\n".into(),
                    reference: reference.map(Into::into),
                }),
            );
        }
    }
}

#[test]
fn every_receipt_shape_round_trips_as_each_side_names_the_conversation() {
    let (alice, bob) = (UserId(1), UserId(BIG));
    let direct = ConversationId::direct(alice, bob);
    let delivered = Receipt::Delivered {
        event: MessageId(BIG + 9),
        conversation: direct,
        by: bob,
        ids: vec![MessageId(BIG), MessageId(7)],
        at: 5,
    };
    let read =
        Receipt::Read { event: MessageId(BIG + 10), conversation: direct, by: bob, up_to: MessageId(BIG), at: 6 };
    // The sender (alice) sees the conversation named by bob; bob's other
    // devices see it named by alice.
    for (viewer, peer) in [(alice, bob), (bob, alice)] {
        let mut out = Vec::new();
        server::receipt(&mut out, &delivered, viewer);
        server_round_trip(
            &out,
            ServerFrame::Receipt(ReceiptFrame::Delivered {
                event: MessageId(BIG + 9),
                by: bob,
                conversation: ConversationRef::Peer(peer),
                ids: vec![MessageId(BIG), MessageId(7)],
                at: 5,
            }),
        );
        out.clear();
        server::receipt(&mut out, &read, viewer);
        server_round_trip(
            &out,
            ServerFrame::Receipt(ReceiptFrame::Read {
                event: MessageId(BIG + 10),
                by: bob,
                conversation: ConversationRef::Peer(peer),
                up_to: MessageId(BIG),
                at: 6,
            }),
        );
    }
    // A group read, to the reader's other devices.
    let g = GroupId(BIG);
    let mut out = Vec::new();
    let group_read = Receipt::Read {
        event: MessageId(11),
        conversation: ConversationId::Group(g),
        by: alice,
        up_to: MessageId(3),
        at: 7,
    };
    server::receipt(&mut out, &group_read, alice);
    server_round_trip(
        &out,
        ServerFrame::Receipt(ReceiptFrame::Read {
            event: MessageId(11),
            by: alice,
            conversation: ConversationRef::Group(g),
            up_to: MessageId(3),
            at: 7,
        }),
    );
    // Batched group receipts, both statuses.
    for status in [ReceiptStatus::Delivered, ReceiptStatus::Read] {
        let items = vec![(UserId(4), vec![MessageId(1)]), (UserId(BIG), vec![MessageId(1), MessageId(BIG)])];
        out.clear();
        server::receipt(
            &mut out,
            &Receipt::Group { event: MessageId(12), group: g, status, items: items.clone(), at: 8 },
            alice,
        );
        server_round_trip(
            &out,
            ServerFrame::Receipt(ReceiptFrame::Group { event: MessageId(12), group: g, status, items, at: 8 }),
        );
    }
}

#[test]
fn history_pages_round_trip_for_peers_and_groups() {
    let viewer = UserId(1);
    let all = messages();
    for (conversation, name) in [
        (ConversationId::direct(viewer, UserId(BIG)), ConversationRef::Peer(UserId(BIG))),
        (ConversationId::Group(GroupId(BIG)), ConversationRef::Group(GroupId(BIG))),
    ] {
        let page: Vec<Message> = all.iter().filter(|m| m.conversation == conversation).cloned().collect();
        assert!(!page.is_empty());
        for (messages, more) in [(page.clone(), true), (Vec::new(), false)] {
            let mut out = Vec::new();
            server::history(&mut out, &conversation, viewer, &messages, more);
            server_round_trip(&out, ServerFrame::History(HistoryPage { conversation: name, messages, more }));
        }
    }
}

#[test]
fn group_and_message_info_round_trip() {
    let g = Group {
        id: GroupId(BIG),
        name: "T\"e\\am ☕".into(),
        description: "about \"us\"\n☕".into(),
        admins_only: true,
        admins_can_delete: false,
        created_by: UserId(1),
        members: vec![
            Member { user: UserId(1), admin: true, joined: MessageId(BIG) },
            Member { user: UserId(u64::MAX), admin: false, joined: MessageId(BIG + 5) },
        ],
    };
    for reference in [None, Some("g-1")] {
        let mut out = Vec::new();
        server::group(&mut out, &g, reference);
        server_round_trip(&out, ServerFrame::Group { group: g.clone(), reference: reference.map(Into::into) });
    }
    let delivered = [(UserId(3), 10), (UserId(BIG), 11)];
    let read = [(UserId(3), 12)];
    for (d, r) in [(&delivered[..], &read[..]), (&[][..], &[][..])] {
        let mut out = Vec::new();
        server::message_info(&mut out, GroupId(BIG), MessageId(BIG + 1), d, r, 3);
        server_round_trip(
            &out,
            ServerFrame::MessageInfo(MessageInfo {
                group: GroupId(BIG),
                msg: MessageId(BIG + 1),
                recipients: 3,
                delivered: d.to_vec(),
                read: r.to_vec(),
            }),
        );
    }
}

#[test]
fn block_lists_round_trip() {
    for users in [vec![], vec![UserId(2)], vec![UserId(2), UserId(BIG), UserId(u64::MAX)]] {
        let mut out = Vec::new();
        server::blocks(&mut out, &users);
        server_round_trip(&out, ServerFrame::Blocks { users });
    }
    let mut out = String::new();
    client::block(&mut out, UserId(2));
    assert_eq!(out, r#"{"type":"block","user":"2"}"#);
    for (text, why) in [
        (r#"{"type":"block"}"#, "field `user`: missing"),
        (r#"{"type":"unblock","user":2}"#, "field `user`: must be an id as a decimal string"),
        (r#"{"type":"block","user":"-1"}"#, "field `user`: must be an id as a decimal string"),
    ] {
        let e = ClientFrame::parse(text).expect_err(text);
        assert_eq!((e.code, e.message.as_str()), (chatgw_protocol::ErrorCode::BadField, why), "{text}");
    }
}

#[test]
fn conversation_lists_round_trip() {
    use chatgw_protocol::{ConversationId, ConversationItem, ConversationsPage, Group, GroupId, Member, MessageKind};
    let me = UserId(1);
    let direct = Message {
        id: MessageId(BIG),
        conversation: ConversationId::direct(me, UserId(2)),
        from: UserId(2),
        kind: MessageKind::Image,
        client_id: "c\"1".into(),
        ts: 1_795_837_475_629,
        body: r#""a \"quoted\" body""#.into(),
        amended: None,
    };
    let g = Group {
        id: GroupId(BIG - 5),
        name: "trip \"24\"".into(),
        description: String::new(),
        admins_only: false,
        admins_can_delete: false,
        created_by: UserId(2),
        members: [2, 3]
            .iter()
            .map(|&u| Member { user: UserId(u), admin: u == 2, joined: MessageId(BIG - 5) })
            .collect(),
    };
    let system = Message {
        id: MessageId(BIG - 4),
        conversation: ConversationId::Group(g.id),
        from: UserId(2),
        kind: MessageKind::System,
        client_id: String::new(),
        ts: 1_795_837_475_000,
        body: r#""{\"event\":\"removed\"}""#.into(),
        amended: None,
    };
    let entries = [
        server::ConversationEntry { conversation: direct.conversation, last: Some(&direct), unread: 3, group: None },
        server::ConversationEntry {
            conversation: system.conversation,
            last: Some(&system),
            unread: 0,
            group: Some(&g),
        },
        server::ConversationEntry {
            conversation: ConversationId::Group(GroupId(9)),
            last: None,
            unread: 0,
            group: None,
        },
    ];
    for next in [None, Some(MessageId(BIG - 4))] {
        let mut out = Vec::new();
        server::conversations(&mut out, me, &entries, next);
        let want = ConversationsPage {
            items: vec![
                ConversationItem {
                    conversation: ConversationRef::Peer(UserId(2)),
                    last: Some(direct.clone()),
                    unread: 3,
                    name: None,
                    members: None,
                    member: None,
                },
                ConversationItem {
                    conversation: ConversationRef::Group(g.id),
                    last: Some(system.clone()),
                    unread: 0,
                    name: Some(g.name.clone()),
                    members: Some(2),
                    member: Some(false),
                },
                ConversationItem {
                    conversation: ConversationRef::Group(GroupId(9)),
                    last: None,
                    unread: 0,
                    name: None,
                    members: None,
                    member: None,
                },
            ],
            next,
        };
        server_round_trip(&out, ServerFrame::Conversations(want));
    }
    // A last message with a mark (deleted for everyone, or hidden for the
    // reader) reads back with it and without a body.
    let event = MessageId(BIG - 3);
    let marked = [
        Message { body: String::new(), amended: Some(Amendment { kind: AmendKind::Deleted, event }), ..direct.clone() },
        chatgw_protocol::hidden_view(direct.clone(), event),
    ];
    for last in marked {
        let entry =
            server::ConversationEntry { conversation: direct.conversation, last: Some(&last), unread: 0, group: None };
        let mut out = Vec::new();
        server::conversations(&mut out, me, &[entry], None);
        let item = ConversationItem {
            conversation: ConversationRef::Peer(UserId(2)),
            last: Some(last.clone()),
            unread: 0,
            name: None,
            members: None,
            member: None,
        };
        server_round_trip(&out, ServerFrame::Conversations(ConversationsPage { items: vec![item], next: None }));
    }
    let mut empty = Vec::new();
    server::conversations(&mut empty, me, &[], None);
    assert_eq!(empty, br#"{"type":"conversations","conversations":[],"next":null}"#);
    let mut out = String::new();
    client::conversations(&mut out, Some(MessageId(7)), 20);
    assert_eq!(out, r#"{"type":"conversations","before":"7","limit":20}"#);
    for (text, why) in [
        (r#"{"type":"conversations","limit":0}"#, "field `limit`: must be an integer from 1 to 100"),
        (r#"{"type":"conversations","limit":101}"#, "field `limit`: must be an integer from 1 to 100"),
        (r#"{"type":"conversations","limit":"5"}"#, "field `limit`: must be an integer from 1 to 100"),
        (r#"{"type":"conversations","before":7}"#, "field `before`: must be an id as a decimal string"),
        (r#"{"type":"conversations","before":"x"}"#, "field `before`: must be an id as a decimal string"),
    ] {
        let e = ClientFrame::parse(text).expect_err(text);
        assert_eq!((e.code, e.message.as_str()), (chatgw_protocol::ErrorCode::BadField, why), "{text}");
    }
}

#[test]
fn frames_from_the_protocol_document_decode() {
    // Captured traffic from docs/PROTOCOL.md, with a field this decoder does
    // not know added: clients ignore unknown fields.
    let m = decode(br#"{"type":"message","event":"384912447611338752","msg":"384912447611338752","from":"2","to":"1","kind":"image","ts":1795837478838,"cid":"b-7","body":"{\"url\":\"https://cdn.example/x.jpg\",\"w\":640}","future":[1]}"#);
    let ServerFrame::Message(m) = m else { panic!("{m:?}") };
    assert_eq!(m.conversation, ConversationId::direct(UserId(1), UserId(2)));
    assert_eq!(m.body_text().unwrap(), r#"{"url":"https://cdn.example/x.jpg","w":640}"#);
    let r = decode(br#"{"type":"receipt","event":"384912635247722497","status":"read","group":"384912584714747904","items":[{"by":"1","ids":["384912615047954432"]}],"at":1795837523574}"#);
    assert_eq!(r.event(), Some(MessageId(384_912_635_247_722_497)));
}

#[test]
fn malformed_server_frames_are_errors_not_panics() {
    for text in [
        "",
        "[1]",
        "{",
        r#"{"no":"type"}"#,
        r#"{"type":"teapot"}"#,
        r#"{"type":1}"#,
        r#"{"type":"sent","id":"c","msg":12,"ts":1,"duplicate":false}"#,
        r#"{"type":"synced","cursor":"-1"}"#,
        r#"{"type":"message","event":"2","msg":"1","from":"1","to":"2","kind":"text","ts":1,"cid":"c","body":"x"}"#,
        r#"{"type":"message","event":"1","msg":"1","from":"1","to":"2","group":"3","kind":"text","ts":1,"cid":"c","body":"x"}"#,
        r#"{"type":"message","event":"1","msg":"1","from":"1","to":"2","kind":"gif","ts":1,"cid":"c","body":"x"}"#,
        r#"{"type":"message","event":"1","msg":"1","from":"1","to":"2","kind":"text","ts":1,"cid":"c","body":5}"#,
        r#"{"type":"receipt","event":"1","status":"seen","by":"1","peer":"2","up_to":"1","at":1}"#,
        r#"{"type":"error","code":"teapot","message":"x"}"#,
    ] {
        assert!(ServerFrame::parse(text).is_err(), "{text}");
    }
}

#[test]
fn push_answers_round_trip_through_the_decoder_and_the_view() {
    for provider in chatgw_protocol::PushProvider::ALL {
        let mut out = Vec::new();
        server::push_registered(&mut out, "phone", provider);
        server_round_trip(&out, ServerFrame::PushRegistered { device: "phone".into(), provider });
    }
    let mut out = Vec::new();
    server::push_unregistered(&mut out, "phone");
    assert_eq!(out, br#"{"type":"push_unregistered","device":"phone"}"#);
    server_round_trip(&out, ServerFrame::PushUnregistered { device: "phone".into() });
}

#[test]
fn device_frames_round_trip_and_refuse_bad_names() {
    let phone = DeviceInfo { device: "phone".into(), first_seen: 10, last_active: 70, revoked_at: None, current: true };
    let laptop =
        DeviceInfo { device: "laptop".into(), first_seen: 5, last_active: 6, revoked_at: Some(7), current: false };
    for devices in [vec![], vec![phone.clone()], vec![laptop, phone]] {
        let mut out = Vec::new();
        server::devices(&mut out, &devices);
        server_round_trip(&out, ServerFrame::Devices { devices });
    }
    let mut out = Vec::new();
    server::logged_out(&mut out, "phone");
    assert_eq!(out, br#"{"type":"logged_out","device":"phone"}"#);
    server_round_trip(&out, ServerFrame::LoggedOut { device: "phone".into() });
    let rule = "field `device`: must be 1 to 32 bytes of A-Z a-z 0-9 . _ -";
    let long = format!(r#"{{"type":"logout_device","device":"{}"}}"#, "x".repeat(33));
    for (text, why) in [
        (r#"{"type":"logout_device"}"#, "field `device`: missing"),
        (r#"{"type":"logout_device","device":""}"#, rule),
        (r#"{"type":"logout_device","device":7}"#, rule),
        (r#"{"type":"logout_device","device":"my phone"}"#, rule),
        (r#"{"type":"logout_device","device":"caf\u00e9"}"#, rule),
        (&long, rule),
    ] {
        let e = ClientFrame::parse(text).expect_err(text);
        assert_eq!((e.code, e.message.as_str()), (chatgw_protocol::ErrorCode::BadField, why), "{text}");
    }
    let fits = format!(r#"{{"type":"logout_device","device":"{}"}}"#, "x".repeat(32));
    assert!(ClientFrame::parse(&fits).is_ok());
}

#[test]
fn presence_and_typing_frames_round_trip() {
    let states = [
        PresenceState::Online,
        PresenceState::Offline { last_seen: Some(1_733_000_000_123) },
        PresenceState::Offline { last_seen: None },
        PresenceState::Hidden,
    ];
    for state in states {
        let mut out = Vec::new();
        server::presence(&mut out, UserId(BIG), state);
        server_round_trip(&out, ServerFrame::Presence { user: UserId(BIG), state });
    }
    for conversation in [ConversationRef::Peer(UserId(2)), ConversationRef::Group(GroupId(BIG))] {
        for users in [vec![], states.iter().enumerate().map(|(i, s)| (UserId(i as u64 + 1), *s)).collect()] {
            let mut out = Vec::new();
            server::presence_list(&mut out, conversation, &users);
            server_round_trip(&out, ServerFrame::PresenceList { conversation, users });
        }
        for state in [TypingState::Typing, TypingState::Paused] {
            let mut out = Vec::new();
            server::typing(&mut out, UserId(7), conversation, state, 6);
            server_round_trip(&out, ServerFrame::Typing { from: UserId(7), conversation, state, expires_in: 6 });
        }
    }
    for visible in [true, false] {
        let mut out = Vec::new();
        server::presence_set(&mut out, visible);
        server_round_trip(&out, ServerFrame::PresenceSet { visible });
    }
    let mut out = Vec::new();
    server::presence(&mut out, UserId(8), PresenceState::Offline { last_seen: Some(1_733_000_000_123) });
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"type":"presence","user":"8","state":"offline","last_seen":1733000000123}"#
    );
    let mut text = String::new();
    client::typing(&mut text, ConversationRef::Group(GroupId(5)), TypingState::Typing);
    assert_eq!(text, r#"{"type":"typing","group":"5","state":"typing"}"#);
}

#[test]
fn bad_presence_and_typing_frames_are_refused_with_their_field() {
    for (text, why) in [
        (r#"{"type":"subscribe_presence"}"#, "field `peer`: missing (or give `group`)"),
        (
            r#"{"type":"subscribe_presence","peer":"2","group":"3"}"#,
            "field `group`: give either `peer` or `group`, not both",
        ),
        (r#"{"type":"unsubscribe_presence","group":3}"#, "field `group`: must be an id as a decimal string"),
        (r#"{"type":"set_presence"}"#, "field `visible`: missing"),
        (r#"{"type":"set_presence","visible":"no"}"#, "field `visible`: must be true or false"),
        (r#"{"type":"typing","peer":"2"}"#, "field `state`: missing"),
        (r#"{"type":"typing","peer":"2","state":"composing"}"#, r#"field `state`: must be "typing" or "paused""#),
        (r#"{"type":"typing","peer":"2","state":1}"#, "field `state`: must be a string"),
        (r#"{"type":"typing","state":"typing"}"#, "field `peer`: missing (or give `group`)"),
    ] {
        let e = ClientFrame::parse(text).expect_err(text);
        assert_eq!((e.code, e.message.as_str()), (ErrorCode::BadField, why), "{text}");
    }
}
