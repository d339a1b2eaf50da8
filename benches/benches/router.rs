//! Router: directory lookups and cross-core hand-off through mailboxes.

use std::{
    hint::black_box,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Instant,
};

use chatgw_router::{Directory, Endpoint, Fanout, Mail, Mailboxes, Wake};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

struct NoopWake;
impl Wake for NoopWake {
    fn wake(&self) {}
}

fn directory(c: &mut Criterion) {
    let d = Directory::new();
    let users = 100_000u64;
    for u in 0..users {
        d.register(u, Endpoint { core: (u % 2) as u16, slot: u as u32, generation: 1 });
    }
    let mut g = c.benchmark_group("router_directory");
    g.throughput(Throughput::Elements(1));
    let mut u = 0u64;
    g.bench_function("lookup_100k_users", |b| {
        b.iter(|| {
            u = (u + 7919) % users;
            let mut n = 0;
            d.for_each(black_box(u), |ep| n += ep.slot);
            black_box(n)
        })
    });
    g.bench_function("register_unregister", |b| {
        let ep = Endpoint { core: 1, slot: 7, generation: 9 };
        b.iter(|| {
            d.register(black_box(5), ep);
            d.unregister(black_box(5), ep);
        })
    });
    g.finish();
}

/// Items per second moved from one producer thread to a consumer core in
/// batches of 64 (the committer posts one batch per core per commit).
fn handoff(c: &mut Criterion) {
    let mut g = c.benchmark_group("router_handoff");
    let batch = 64u64;
    g.throughput(Throughput::Elements(batch));
    g.bench_function("cross_thread_batch_of_64", |b| {
        b.iter_custom(|iters| {
            let mb = Arc::new(Mailboxes::<Vec<Endpoint>>::new(vec![Arc::new(NoopWake)], usize::MAX));
            let done = Arc::new(AtomicBool::new(false));
            let consumer = {
                let (mb, done) = (mb.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut got = 0u64;
                    while got < iters * batch {
                        mb.drain(0, |m| {
                            if let Mail::Item(v) = m {
                                got += v.len() as u64
                            }
                        });
                        if done.load(Ordering::Relaxed) && got >= iters * batch {
                            break;
                        }
                        std::hint::spin_loop();
                    }
                    got
                })
            };
            let start = Instant::now();
            let mut f = Fanout::new(1);
            for i in 0..iters {
                for j in 0..batch {
                    f.push(0, Endpoint { core: 0, slot: (i * batch + j) as u32, generation: 1 });
                }
                f.flush(&mb);
            }
            done.store(true, Ordering::Relaxed);
            let got = consumer.join().unwrap();
            assert_eq!(got, iters * batch);
            start.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, directory, handoff);
criterion_main!(benches);
