//! Client CPU per end-to-end encrypted message (chatgw-e2ee on vodozemac):
//!
//! - direct: a sender with 2 devices to a recipient with 2 devices (3 Olm
//!   ciphertexts: both recipient devices and the sender's other device),
//!   encrypt, and decrypt at one recipient device;
//! - group of 256 members (one device each): Megolm encrypt, decrypt at
//!   one member, and a new session's first message, whose key share is an
//!   Olm ciphertext for each of the 256 devices.
//!
//! Bodies of 200 bytes. No I/O: the devices hand each other bundles and
//! envelopes directly (`chatgw_benches::e2ee_devices`).

use std::hint::black_box;

use chatgw_benches::e2ee_devices::{body, delivered, learn, Device};
use chatgw_client::{GroupId, MessageKind, UserId};
use chatgw_e2ee::{Opened, RotationPolicy};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

const MEMBERS: u64 = 256;

fn direct(c: &mut Criterion) {
    let (mut a1, mut a2) = (Device::new(1, "a1"), Device::new(1, "a2"));
    let (mut b1, mut b2) = (Device::new(2, "b1"), Device::new(2, "b2"));
    learn(&mut a1.crypto, &mut [&mut b1, &mut b2], true);
    learn(&mut a1.crypto, &mut [&mut a2], true);
    learn(&mut b1.crypto, &mut [&mut a1], false);
    let text = body(200);
    let mut id = 0;
    let mut g = c.benchmark_group("e2ee_direct_2x2");
    g.bench_function("encrypt", |b| {
        b.iter(|| black_box(a1.crypto.encrypt_direct(UserId(2), MessageKind::Text, &text).unwrap()))
    });
    g.bench_function("decrypt_at_one_device", |b| {
        b.iter_batched(
            || {
                id += 1;
                let e = a1.crypto.encrypt_direct(UserId(2), MessageKind::Text, &text).unwrap();
                delivered(id, UserId(1), Some(UserId(2)), None, &e)
            },
            |m| assert!(matches!(b1.crypto.decrypt(&m).unwrap(), Opened::Message(_))),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn group(c: &mut Criterion) {
    let mut sender = Device::new(1, "a");
    sender.crypto.set_rotation_policy(RotationPolicy { max_messages: u32::MAX, ..RotationPolicy::default() });
    let mut members: Vec<Device> = (0..MEMBERS).map(|i| Device::new(100 + i, "d")).collect();
    for m in members.iter_mut() {
        learn(&mut sender.crypto, &mut [m], true);
    }
    let ids: Vec<UserId> = members.iter().map(|m| m.user()).collect();
    let reader = &mut members[0];
    learn(&mut reader.crypto, &mut [&mut sender], false);
    let text = body(200);
    let group = GroupId(1);
    sender.crypto.set_group_members(group, &ids);
    let first = sender.crypto.encrypt_group(group, MessageKind::Text, &text, 0).unwrap();
    // The reader installs the room key from the share that has its entry.
    let mut id = 1_000;
    for share in &first.key_shares {
        id += 1;
        let _ = reader.crypto.decrypt(&delivered(id, UserId(1), None, Some(group), share));
    }
    let mut g = c.benchmark_group("e2ee_group_256");
    g.bench_function("megolm_encrypt", |b| {
        b.iter(|| black_box(sender.crypto.encrypt_group(group, MessageKind::Text, &text, 0).unwrap()))
    });
    g.bench_function("megolm_decrypt_at_one_member", |b| {
        b.iter_batched(
            || {
                id += 1;
                let send = sender.crypto.encrypt_group(group, MessageKind::Text, &text, 0).unwrap();
                delivered(id, UserId(1), None, Some(group), &send.message)
            },
            |m| assert!(matches!(reader.crypto.decrypt(&m).unwrap(), Opened::Message(_))),
            BatchSize::SmallInput,
        )
    });
    let mut next_group = 2;
    g.sample_size(20);
    g.bench_function("new_session_key_share_to_256_and_first_message", |b| {
        b.iter(|| {
            // A new group id: a new session, shared with every member device.
            next_group += 1;
            sender.crypto.set_group_members(GroupId(next_group), &ids);
            let send = sender.crypto.encrypt_group(GroupId(next_group), MessageKind::Text, &text, 0).unwrap();
            assert_eq!(send.key_shares.iter().map(|e| e.k.len()).sum::<usize>(), MEMBERS as usize);
            black_box(send)
        })
    });
    g.finish();
}

criterion_group!(benches, direct, group);
criterion_main!(benches);
