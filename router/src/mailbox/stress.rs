//! Real threads against the wake protocol: items the core finds only
//! because its fallback timeout fired, never woken for, are late
//! (stranded wakes). With the swap in `WakeFlag::lower` there are none.

use std::{
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc, Condvar, Mutex,
    },
    time::{Duration, Instant},
};

use super::{Mail, Mailboxes, Wake};
use crate::Endpoint;

/// A core's poll, reduced to a condition variable.
#[derive(Default)]
struct Parker {
    woken: Mutex<bool>,
    cond: Condvar,
}

impl Wake for Parker {
    fn wake(&self) {
        *self.woken.lock().unwrap() = true;
        self.cond.notify_one();
    }
}

impl Parker {
    /// Wait for a wake or the timeout; whether a wake came.
    fn wait(&self, timeout: Duration) -> bool {
        let guard = self.woken.lock().unwrap();
        let (mut guard, _) = self.cond.wait_timeout_while(guard, timeout, |w| !*w).unwrap();
        std::mem::replace(&mut *guard, false)
    }
}

const PRODUCERS: usize = 3;
const ITEMS: u32 = 20_000;
/// The fallback, like a core's one-second tick, shortened.
const FALLBACK: Duration = Duration::from_millis(50);

#[test]
fn stranded_wake_no_item_waits_for_the_fallback_timeout() {
    let parker = Arc::new(Parker::default());
    let mb = Arc::new(Mailboxes::<Endpoint>::new(vec![parker.clone()], usize::MAX));
    let start = Instant::now();
    let nanos = move || start.elapsed().as_nanos() as u64;
    // Per producer: the last item the core took, and when the producer's
    // post of its current item returned (0 while posting).
    let acked: Arc<[AtomicU32; PRODUCERS]> = Arc::new(std::array::from_fn(|_| AtomicU32::new(0)));
    let posted_at: Arc<[AtomicU64; PRODUCERS]> = Arc::new(std::array::from_fn(|_| AtomicU64::new(0)));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (mb, acked, posted_at) = (mb.clone(), acked.clone(), posted_at.clone());
            std::thread::spawn(move || {
                for seq in 1..=ITEMS {
                    posted_at[p].store(0, Ordering::SeqCst);
                    mb.post(0, Endpoint { core: 0, slot: p as u32, generation: seq });
                    posted_at[p].store(nanos(), Ordering::SeqCst);
                    // One item in flight per producer, so a stranded one
                    // is not rescued by this producer's next post.
                    while acked[p].load(Ordering::Acquire) != seq {
                        std::hint::spin_loop();
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    let (mut taken, mut late, mut fallbacks) = (0u64, 0u64, 0u64);
    while taken < u64::from(ITEMS) * PRODUCERS as u64 {
        let waited_from = nanos();
        let woken = parker.wait(FALLBACK);
        fallbacks += u64::from(!woken);
        mb.drain(0, |m| {
            let Mail::Item(e) = m else { panic!("the mailbox is unbounded") };
            let p = e.slot as usize;
            // Its post returned before this wait began, yet no wake came:
            // the wake was lost and only the timeout found it.
            let returned = posted_at[p].load(Ordering::SeqCst);
            if !woken && returned != 0 && returned < waited_from {
                late += 1;
            }
            taken += 1;
            acked[p].store(e.generation, Ordering::Release);
        });
    }
    producers.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(late, 0, "{late} of {taken} items found only by the fallback timeout ({fallbacks} timeouts)");
}
