//! `e2ee-sizes`: bytes on the wire per end-to-end encrypted message against
//! plaintext. For bodies of 20, 200 and 2000 bytes it prints the body
//! literal a `send` carries (the JSON string, quotes and escapes included;
//! the rest of the frame is the same either way): plaintext, a direct
//! envelope with 1, 2 and 4 Olm ciphertexts (first message of a session,
//! a pre-key message, and later ones after a reply), and a group (Megolm)
//! envelope.

use chatgw_benches::e2ee_devices::{body, delivered, learn, Device};
use chatgw_client::{GroupId, MessageKind, UserId};
use chatgw_e2ee::Envelope;

/// The body literal's length for `body`.
fn literal_len(body: &str) -> usize {
    serde_json::to_string(body).expect("a string serializes").len()
}

/// Direct envelopes to `devices` recipient devices: the first (pre-key)
/// and one after every recipient device replied (normal Olm messages).
fn direct(devices: usize, text: &str) -> (Envelope, Envelope) {
    let mut sender = Device::new(1, "a");
    let mut recipients: Vec<Device> = (0..devices).map(|i| Device::new(2, &format!("b{i}"))).collect();
    let mut refs: Vec<&mut Device> = recipients.iter_mut().collect();
    learn(&mut sender.crypto, &mut refs, true);
    let first = sender.crypto.encrypt_direct(UserId(2), MessageKind::Text, text).expect("encrypts");
    for (i, r) in recipients.iter_mut().enumerate() {
        learn(&mut r.crypto, &mut [&mut sender], false);
        r.crypto.decrypt(&delivered(10 + i as u64, UserId(1), Some(UserId(2)), None, &first)).expect("opens");
        let reply = r.crypto.encrypt_direct(UserId(1), MessageKind::Text, "ok").expect("encrypts");
        sender.crypto.decrypt(&delivered(100 + i as u64, UserId(2), Some(UserId(1)), None, &reply)).expect("opens");
    }
    let later = sender.crypto.encrypt_direct(UserId(2), MessageKind::Text, text).expect("encrypts");
    assert!(later.k.iter().all(|e| e.t == chatgw_e2ee::OLM_NORMAL), "normal messages after the replies");
    (first, later)
}

fn group(text: &str) -> Envelope {
    let mut sender = Device::new(1, "a");
    let mut member = Device::new(2, "b");
    learn(&mut sender.crypto, &mut [&mut member], true);
    sender.crypto.set_group_members(GroupId(1), &[UserId(2)]);
    sender.crypto.encrypt_group(GroupId(1), MessageKind::Text, text, 0).expect("encrypts").message
}

fn main() {
    println!("| body bytes | plaintext | direct, 1 device (first / later) | direct, 2 devices | direct, 4 devices | group (Megolm) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for len in [20, 200, 2000] {
        let text = body(len);
        let plain = literal_len(&text);
        let mut row = format!("| {len} | {plain} |");
        for devices in [1, 2, 4] {
            let (first, later) = direct(devices, &text);
            let (f, l) = (literal_len(&first.to_body()), literal_len(&later.to_body()));
            row.push_str(&format!(" {f} / {l} (x{:.1}) |", l as f64 / plain as f64));
        }
        let g = literal_len(&group(&text).to_body());
        row.push_str(&format!(" {g} (x{:.1}) |", g as f64 / plain as f64));
        println!("{row}");
    }
}
