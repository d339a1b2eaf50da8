//! WebSocket frame decode/encode and protocol JSON parse/serialise.

use std::hint::black_box;

use chatgw_protocol::{server, ClientFrame, ConversationId, Message, MessageId, MessageKind, UserId};
use chatgw_websocket::frame::{client_frame, decode_header, put_frame, unmask, Decoded, Opcode};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn masked_frame(payload: &[u8]) -> Vec<u8> {
    client_frame(0x81, payload, [0x37, 0xfa, 0x21, 0x3d])
}

fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("ws_frame");
    for size in [100usize, 1024, 16 * 1024] {
        let frame = masked_frame(&vec![b'a'; size]);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("decode_unmask", size), &frame, |b, frame| {
            let mut buf = frame.clone();
            b.iter(|| {
                buf.copy_from_slice(frame);
                let Ok(Decoded::Header(h)) = decode_header(&buf, 1 << 20) else { panic!("bad frame") };
                let payload = &mut buf[h.header_len..h.header_len + h.payload_len];
                unmask(payload, h.mask, 0);
                black_box(payload.len())
            })
        });
        let payload = vec![b'z'; size];
        g.bench_with_input(BenchmarkId::new("encode", size), &payload, |b, payload| {
            let mut out = Vec::with_capacity(size + 16);
            b.iter(|| {
                out.clear();
                put_frame(&mut out, Opcode::Text, black_box(payload));
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn json(c: &mut Criterion) {
    let mut g = c.benchmark_group("protocol_json");
    let send = r#"{"type":"send","id":"c-1234567","to":"98765","kind":"text","body":"hello there, this is a typical short chat message of about a hundred bytes...."}"#;
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_send", |b| b.iter(|| black_box(ClientFrame::parse(black_box(send)).is_ok())));
    let ack = r#"{"type":"delivered","peer":"12345","ids":["384907957843787776","384907957843787777"]}"#;
    g.bench_function("parse_delivered", |b| b.iter(|| black_box(ClientFrame::parse(black_box(ack)).is_ok())));
    let m = Message {
        id: MessageId(384907957843787776),
        conversation: ConversationId::direct(UserId(12345), UserId(98765)),
        from: UserId(12345),
        kind: MessageKind::Text,
        client_id: "c-1234567".into(),
        ts: 1_764_300_000_000,
        body: "\"hello there, this is a typical short chat message of about a hundred bytes....\"".into(),
        amended: None,
    };
    g.bench_function("serialise_message", |b| {
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            server::message(&mut out, black_box(&m));
            black_box(out.len())
        })
    });
    g.bench_function("serialise_sent", |b| {
        let mut out = Vec::with_capacity(128);
        b.iter(|| {
            out.clear();
            server::sent(&mut out, "c-1234567", MessageId(384907957843787776), 1_764_300_000_000, false);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, frames, json);
criterion_main!(benches);
