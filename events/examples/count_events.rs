//! Counts what a topic of events holds, for scripts that check nothing was
//! lost (scripts/events-outage.sh): reads every partition from the start
//! until no record has arrived for a while, and prints one line of
//! `key=value` figures: records read, distinct event ids, records seen
//! twice (a batch sent again: at least once), and distinct ids per kind.
//!
//! usage: count_events BOOTSTRAP TOPIC PARTITIONS [IDLE_SECS]

use std::{collections::HashSet, time::Duration};

use chatgw_events::testing::TestConsumer;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(bootstrap), Some(topic), Some(partitions)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: count_events BOOTSTRAP TOPIC PARTITIONS [IDLE_SECS]");
        std::process::exit(2);
    };
    let Ok(partitions) = partitions.parse::<i32>() else {
        eprintln!("PARTITIONS must be a number");
        std::process::exit(2);
    };
    let idle = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(5);
    let consumer = TestConsumer::new(bootstrap, topic, partitions);
    let records = consumer.poll_until_idle(Duration::from_secs(idle), Duration::from_secs(600));
    let mut ids = HashSet::new();
    let (mut messages, mut receipts, mut other, mut unreadable) = (0u64, 0u64, 0u64, 0u64);
    for r in &records {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.value) else {
            unreadable += 1;
            continue;
        };
        let Some(id) = v["event"].as_str() else {
            unreadable += 1;
            continue;
        };
        if ids.insert(id.to_owned()) {
            match v["kind"].as_str() {
                Some("message") => messages += 1,
                Some("receipt") => receipts += 1,
                _ => other += 1,
            }
        }
    }
    println!(
        "records={} distinct={} repeated={} messages={messages} receipts={receipts} other={other} unreadable={unreadable}",
        records.len(),
        ids.len(),
        records.len() - ids.len() - unreadable as usize,
    );
}
