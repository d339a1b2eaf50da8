//! `encrypted` messages over real sockets (docs/PROTOCOL.md, "Encrypted
//! messages"): a well-formed envelope from the device it names is stored
//! and handed on byte for byte, live, by `sync` and by `history`, in direct
//! and group conversations; every malformed envelope is refused with
//! `bad_field` naming the problem (`not_allowed` from an unnamed
//! connection), and the connection carries on.

mod util;

use std::net::TcpStream;

use chatgw_client::{Client, DeviceName, Event, UserId};
use chatgw_gateway::auth::unix_now;
use util::*;

fn device_token(gw: &TestGateway, user: u64, device: &str) -> String {
    let now = unix_now();
    gw.key.mint_device(UserId(user), DeviceName::new(device).unwrap(), now - 60, now + 3600)
}

fn named(gw: &TestGateway, user: u64, device: &str) -> Client {
    let mut c = Client::connect(gw.addr, &device_token(gw, user, device)).unwrap();
    sync_all(&mut c);
    c
}

/// A raw socket of `user`'s device `device`, synced from the start; the
/// text frames of the replay.
fn raw_device(gw: &TestGateway, user: u64, device: &str) -> (TcpStream, Vec<String>) {
    let mut s = raw_ws(gw.addr, &device_token(gw, user, device));
    let replay = raw_request(&mut s, r#"{"type":"sync"}"#, r#""type":"synced""#);
    (s, replay)
}

/// Write `frame`, then read text frames until one contains `until`; all of
/// them.
fn raw_request(s: &mut TcpStream, frame: &str, until: &str) -> Vec<String> {
    use std::io::Write;
    s.write_all(&masked_frame(0x81, frame.as_bytes())).unwrap();
    raw_until(s, until)
}

fn raw_until(s: &mut TcpStream, until: &str) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let (_, payload) = read_server_frame(s);
        let text = String::from_utf8(payload).expect("a text frame");
        let done = text.contains(until);
        got.push(text);
        if done {
            return got;
        }
    }
}

/// `send` of kind `encrypted` with `body` as its raw literal.
fn send_encrypted(c: &mut Client, cid: &str, to: &str, body: &str) {
    c.send_raw(&format!(r#"{{"type":"send","id":"{cid}",{to},"kind":"encrypted","body":{body}}}"#)).unwrap();
}

fn refusal(c: &mut Client, cid: &str) -> (String, String) {
    c.wait_for(WAIT, "error", |e| match e {
        Event::Error { code, message, reference } => {
            assert_eq!(reference.as_deref(), Some(cid), "{message}");
            Some((code.clone(), message.clone()))
        }
        Event::Sent { client_id, .. } => panic!("{client_id} was accepted"),
        _ => None,
    })
    .unwrap()
}

/// A direct envelope from `phone` to user 8's `desk`, spelled with escapes
/// a plain encoder would not use (`\u0022`, `\/`): the stored body must be
/// this literal, not a re-encoding of it.
const DIRECT: &str = r#""{\"v\":1,\"d\":\"phone\",\"k\":[{\"u\":\"8\",\"d\":\"desk\",\"t\":0,\"c\":\"AA\/A\"},{\u0022u\":\"7\",\"d\":\"laptop\",\"t\":1,\"c\":\"AQID\"}]}""#;
/// A group envelope: a Megolm ciphertext only.
const GROUP: &str = r#""{\"v\":1,\"d\":\"phone\",\"k\":[],\"g\":{\"s\":\"c2Vzcw\",\"c\":\"+\/8\"}}""#;

each_driver!(well_formed_envelopes_are_stored_and_handed_on_byte_for_byte);
fn well_formed_envelopes_are_stored_and_handed_on_byte_for_byte(io: IoDriver) {
    let gw = TestGateway::start(io, 2);
    let mut phone = named(&gw, 7, "phone");
    let (mut desk, _) = raw_device(&gw, 8, "desk");

    send_encrypted(&mut phone, "e-1", r#""to":"8""#, DIRECT);
    sent_id(&mut phone, "e-1");
    let live = raw_until(&mut desk, r#""type":"message""#).pop().unwrap();
    assert!(live.contains(r#""kind":"encrypted","#), "{live}");
    assert!(live.contains(&format!(r#""body":{DIRECT}}}"#)), "live: {live}");

    phone.create_group("g-1", "Team", &[UserId(8)]).unwrap();
    let group = group_id(&mut phone);
    send_encrypted(&mut phone, "e-2", &format!(r#""group":"{group}""#), GROUP);
    sent_id(&mut phone, "e-2");
    let live = raw_until(&mut desk, r#""cid":"e-2""#).pop().unwrap();
    assert!(live.contains(&format!(r#""body":{GROUP}}}"#)), "live: {live}");

    // Another device of user 8 syncs from the start; then `history`.
    let (mut tablet, replay) = raw_device(&gw, 8, "tablet");
    let replay = replay.join("\n");
    assert!(replay.contains(&format!(r#""body":{DIRECT}}}"#)), "sync: {replay}");
    assert!(replay.contains(&format!(r#""body":{GROUP}}}"#)), "sync: {replay}");
    let direct = raw_request(&mut tablet, r#"{"type":"history","peer":"7"}"#, r#""type":"history""#);
    assert!(direct.last().unwrap().contains(&format!(r#""body":{DIRECT}}}"#)), "history: {direct:?}");
    let page = raw_request(&mut tablet, &format!(r#"{{"type":"history","group":"{group}"}}"#), r#""type":"history""#);
    assert!(page.last().unwrap().contains(&format!(r#""body":{GROUP}}}"#)), "history: {page:?}");
}

each_driver!(malformed_envelopes_are_refused_and_the_connection_carries_on);
fn malformed_envelopes_are_refused_and_the_connection_carries_on(io: IoDriver) {
    let gw = TestGateway::start(io, 1);
    let mut phone = named(&gw, 7, "phone");
    let mut desk = named(&gw, 8, "desk");
    let many = vec![r#"{\"u\":\"8\",\"d\":\"desk\",\"t\":0,\"c\":\"AAEC\"}"#; 257].join(",");
    let too_many = format!(r#""{{\"v\":1,\"d\":\"phone\",\"k\":[{many}]}}""#);
    let cases: &[(&str, &str)] = &[
        (r#""hello""#, "must start with {\"v\":"),
        (r#""{\"v\":2,\"d\":\"phone\",\"k\":[],\"g\":{\"s\":\"AAA\",\"c\":\"AQ\"}}""#, "`v` must be 1"),
        (r#""{\"v\":1,\"k\":[],\"d\":\"phone\"}""#, "`d` must follow `v`"),
        (r#""{\"v\":1,\"d\":\"ph one\",\"k\":[]}""#, "`d` must be 1 to 32 bytes"),
        (r#""{\"v\":1,\"d\":\"phone\",\"k\":[]}""#, "needs a non-empty `k` or a `g`"),
        (r#""{\"v\":1,\"d\":\"phone\",\"k\":[],\"x\":1}""#, "only `g`"),
        (r#""{\"v\":1,\"d\":\"phone\",\"k\":[{\"u\":\"x\",\"d\":\"desk\",\"t\":0,\"c\":\"AAEC\"}]}""#, "`k[0].u`"),
        (r#""{\"v\":1,\"d\":\"phone\",\"k\":[{\"u\":\"8\",\"d\":\"\",\"t\":0,\"c\":\"AAEC\"}]}""#, "`k[0].d`"),
        (r#""{\"v\":1,\"d\":\"phone\",\"k\":[{\"u\":\"8\",\"d\":\"desk\",\"t\":2,\"c\":\"AAEC\"}]}""#, "`k[0].t`"),
        (r#""{\"v\":1,\"d\":\"phone\",\"k\":[{\"u\":\"8\",\"d\":\"desk\",\"t\":0,\"c\":\"AA==\"}]}""#, "`k[0].c`"),
        (r#""{\"v\":1,\"d\":\"phone\",\"k\":[{\"u\":\"8\",\"d\":\"desk\",\"t\":0,\"c\":\"A-_A\"}]}""#, "`k[0].c`"),
        (r#""{\"v\":1,\"d\":\"phone\",\"k\":[],\"g\":{\"s\":\"AAA\",\"c\":\"\"}}""#, "`g.c`"),
        (r#""{\"v\":1,\"d\":\"phone\",\"k\":[],\"g\":{\"c\":\"AQ\",\"s\":\"AAA\"}}""#, "`s`"),
        (r#""{\"v\":1, \"d\":\"phone\",\"k\":[],\"g\":{\"s\":\"AAA\",\"c\":\"AQ\"}}""#, "`d` must follow `v`"),
        (&too_many, "at most 256 entries"),
    ];
    for (i, (body, why)) in cases.iter().enumerate() {
        let cid = format!("bad-{i}");
        send_encrypted(&mut phone, &cid, r#""to":"8""#, body);
        let (code, message) = refusal(&mut phone, &cid);
        assert_eq!(code, "bad_field", "{body}: {message}");
        assert!(message.starts_with("field `body`: encrypted envelope: "), "{message}");
        assert!(message.contains(why), "{body}: {message}");
    }

    // Another device's envelope, from this device.
    send_encrypted(&mut phone, "other", r#""to":"8""#, &DIRECT.replace("phone", "laptop"));
    assert_eq!(
        refusal(&mut phone, "other"),
        (
            "bad_field".to_owned(),
            "field `body`: encrypted envelope: `d` must be this connection's device `phone`".to_owned()
        )
    );
    // An unnamed connection has no device to speak for.
    let mut unnamed = gw.online(7);
    send_encrypted(&mut unnamed, "anon", r#""to":"8""#, DIRECT);
    assert_eq!(refusal(&mut unnamed, "anon").0, "not_allowed");

    // Nothing was stored or delivered, and both connections carry on.
    send_encrypted(&mut phone, "good", r#""to":"8""#, DIRECT);
    let (id, _) = sent_id(&mut phone, "good");
    unnamed.send_message(UserId(8), "plain", chatgw_protocol::MessageKind::Text, "hi").unwrap();
    sent_id(&mut unnamed, "plain");
    let got: Vec<_> = (0..2).map(|_| next_message(&mut desk)).collect();
    assert_eq!(got[0].id, id, "the first message desk sees is the good envelope: {got:?}");
    assert_eq!(got[1].client_id, "plain");
    let mut tablet = Client::connect(gw.addr, &device_token(&gw, 8, "tablet")).unwrap();
    let replay = sync_all(&mut tablet);
    assert_eq!(replay.iter().filter(|e| matches!(e, Event::Message(_))).count(), 2, "{replay:?}");
}

each_driver!(an_edit_of_an_encrypted_message_must_be_an_envelope_from_the_editing_device);
fn an_edit_of_an_encrypted_message_must_be_an_envelope_from_the_editing_device(io: IoDriver) {
    let gw = TestGateway::start(io, 1);
    let mut phone = named(&gw, 7, "phone");
    send_encrypted(&mut phone, "e-1", r#""to":"8""#, DIRECT);
    let (id, _) = sent_id(&mut phone, "e-1");
    let to = chatgw_protocol::ConversationRef::Peer(UserId(8));
    let refused = |c: &mut Client| {
        c.wait_for(WAIT, "error", |e| match e {
            Event::Error { code, message, .. } => Some((code.clone(), message.clone())),
            Event::Amended { .. } => panic!("edited: {e:?}"),
            _ => None,
        })
        .unwrap()
    };
    let envelope = |device: &str| format!(r#"{{"v":1,"d":"{device}","k":[],"g":{{"s":"c2Vzcw","c":"AQ"}}}}"#);
    phone.edit_message(to, id, "plain text").unwrap();
    let (code, message) = refused(&mut phone);
    assert_eq!(code, "bad_field");
    assert_eq!(message, "field `body`: encrypted envelope: must start with {\"v\":");
    phone.edit_message(to, id, &envelope("laptop")).unwrap();
    assert_eq!(refused(&mut phone).1, "field `body`: encrypted envelope: `d` must be this connection's device `phone`");
    let mut unnamed = gw.online(7);
    unnamed.edit_message(to, id, &envelope("phone")).unwrap();
    assert_eq!(refused(&mut unnamed).0, "not_allowed");

    phone.edit_message(to, id, &envelope("phone")).unwrap();
    let edited = phone
        .wait_for(WAIT, "amended", |e| match e {
            Event::Amended { message, reply: true, .. } => Some(message.clone()),
            Event::Error { code, message, .. } => panic!("error {code}: {message}"),
            _ => None,
        })
        .unwrap();
    assert_eq!((edited.kind, edited.body), (chatgw_protocol::MessageKind::Encrypted, envelope("phone")));
}
