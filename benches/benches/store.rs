//! Store append throughput with group commit: one fsync per batch, for
//! batch sizes from 1 (one fsync per message) to 1024.

use chatgw_protocol::{ConversationId, Message, MessageKind, Snowflake, UserId};
use chatgw_storage::{EmbeddedOptions, EmbeddedStore, MessageStore, Write};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn messages(ids: &mut Snowflake, n: usize, seq: &mut u64) -> Vec<Message> {
    (0..n)
        .map(|_| {
            *seq += 1;
            let id = ids.next_id();
            let (a, b) = (UserId(*seq % 1000), UserId(*seq % 1000 + 1000));
            Message {
                id,
                conversation: ConversationId::direct(a, b),
                from: a,
                kind: MessageKind::Text,
                client_id: format!("c{seq}"),
                ts: Snowflake::unix_ms(id),
                body: format!("\"{}\"", "x".repeat(100)),
                amended: None,
            }
        })
        .collect()
}

fn group_commit(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
    let mut ids = Snowflake::new(1);
    let mut seq = 0;
    let mut g = c.benchmark_group("store_group_commit");
    g.sample_size(20);
    for batch in [1usize, 16, 128, 1024] {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_with_input(BenchmarkId::new("messages_per_fsync", batch), &batch, |b, &batch| {
            b.iter_batched(
                || messages(&mut ids, batch, &mut seq),
                |msgs| {
                    let inboxes: Vec<[UserId; 2]> =
                        msgs.iter().map(|m| [m.from, m.conversation.peer_of(m.from).unwrap_or(m.from)]).collect();
                    let writes: Vec<Write<'_>> = msgs
                        .iter()
                        .zip(&inboxes)
                        .map(|(m, i)| Write::Message { message: m, inboxes: i, membership: None })
                        .collect();
                    let last = msgs.last().map(|m| m.id).unwrap_or_default();
                    store.commit(&writes, last).unwrap()
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, group_commit);
criterion_main!(benches);
