//! What differs between the I/O drivers, checked on both: many connections
//! sending at once through a receive buffer ring far too small for them,
//! and which driver `--io auto` picks.

mod util;

use std::{
    sync::{Arc, Barrier},
    thread,
};

use chatgw_client::{MessageKind, UserId};
use chatgw_gateway::driver::{self, ActiveDriver};
use util::*;

const SENDERS: u64 = 24;
const PER_SENDER: usize = 40;

/// A body unique to (sender, k), of a length that varies around the size
/// of one receive buffer (4 KiB), so frames straddle buffers.
fn body(sender: u64, k: usize) -> String {
    let len = 1500 + (k * 389 + sender as usize * 97) % 5000;
    let fill: String = (0..len).map(|i| char::from(b'a' + ((i + k + sender as usize) % 26) as u8)).collect();
    format!("{sender}:{k}:{fill}")
}

each_driver!(many_connections_sending_at_once_through_four_receive_buffers_lose_nothing);
fn many_connections_sending_at_once_through_four_receive_buffers_lose_nothing(io: IoDriver) {
    let gw = TestGateway::start_with(io, 2, |c| {
        c.uring_buffers = 4;
        c.rate_limit = 100_000;
        c.rate_burst = 100_000;
    });
    let recipients: Vec<_> = (0..SENDERS).map(|i| gw.online(1000 + i)).collect();
    let senders: Vec<_> = (0..SENDERS).map(|i| gw.online(i + 1)).collect();
    let start = Arc::new(Barrier::new(SENDERS as usize));
    let threads: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let start = start.clone();
            thread::spawn(move || {
                let me = i as u64 + 1;
                start.wait();
                for k in 0..PER_SENDER {
                    c.send_message(UserId(1000 + i as u64), &format!("{me}-{k}"), MessageKind::Text, &body(me, k))
                        .unwrap();
                }
                for k in 0..PER_SENDER {
                    sent_id(&mut c, &format!("{me}-{k}"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for (i, mut r) in recipients.into_iter().enumerate() {
        let from = i as u64 + 1;
        for k in 0..PER_SENDER {
            let m = next_message(&mut r);
            assert_eq!((m.from, m.client_id.as_str()), (UserId(from), format!("{from}-{k}").as_str()), "in order");
            assert!(m.body == body(from, k), "message {from}-{k} arrived altered");
        }
    }
    assert_eq!(gw.metric("chatgw_messages_stored_total"), (SENDERS as usize * PER_SENDER) as f64);
    let exhausted = gw.metric("chatgw_recv_buffers_exhausted_total");
    match io {
        // The test is only worth its name if the ring really ran dry.
        IoDriver::Uring => assert!(exhausted > 0.0, "the buffer ring never ran dry"),
        _ => assert_eq!(exhausted, 0.0),
    }
}

/// Not per driver: this is the choice between them.
#[test]
fn auto_picks_a_driver_and_reports_it_on_metrics() {
    let gw = TestGateway::start(IoDriver::Auto, 1);
    let expected = if driver::uring::check().is_ok() { ActiveDriver::Uring } else { ActiveDriver::Epoll };
    assert_eq!(gw.handle().io_driver(), expected);
    let body = &gw.scrape();
    for d in [ActiveDriver::Epoll, ActiveDriver::Uring] {
        let line = format!("chatgw_io_driver{{driver=\"{}\"}}", d.name());
        if d == expected {
            assert_eq!(metric_value(body, &line), 1.0, "{body}");
        } else {
            assert!(!body.contains(&line), "only the driver in use is reported: {body}");
        }
    }
}
