//! The producer against a real Kafka-protocol broker (tansu): records are
//! acknowledged, land in the partition Kafka's default partitioner picks
//! for their conversation, in order, and a broker that is down is an
//! error, not a hang.

use std::time::Duration;

use chatgw_events::{
    decode_value, partition_for,
    testing::{TestBroker, TestConsumer},
    EventProducer, ProducerConfig, PublishError,
};
use chatgw_protocol::{ConversationId, GroupId, MessageId, MessageKind, UserId};
use chatgw_storage::{OutboxDetail, OutboxPos, OutboxRecord};

fn record(i: u64, conversation: ConversationId) -> OutboxRecord {
    OutboxRecord {
        pos: OutboxPos(i),
        event: MessageId(1000 + i),
        conversation,
        from: UserId(1),
        recipients: vec![UserId(2)],
        at: 1_700_000_000_000 + i,
        detail: OutboxDetail::Message { id: MessageId(1000 + i), kind: MessageKind::Text, size: 3, body: None },
    }
}

#[test]
fn published_records_land_in_their_partition_in_order() {
    let Some(mut broker) = TestBroker::start("published_records_land_in_their_partition_in_order") else { return };
    broker.create_topic("t.events", 4);
    let mut producer = EventProducer::new(&ProducerConfig {
        brokers: broker.bootstrap(),
        topic: "t.events".into(),
        delivery_timeout: Duration::from_secs(10),
    })
    .unwrap();
    let conversations = [
        ConversationId::direct(UserId(1), UserId(2)),
        ConversationId::Group(GroupId(7)),
        ConversationId::direct(UserId(5), UserId(1)),
    ];
    let records: Vec<OutboxRecord> = (0..60).map(|i| record(i, conversations[i as usize % 3])).collect();
    for batch in records.chunks(25) {
        producer.publish(batch).unwrap();
    }
    let got = TestConsumer::new(&broker.bootstrap(), "t.events", 4)
        .poll_until_idle(Duration::from_secs(3), Duration::from_secs(30));
    assert_eq!(got.len(), 60, "every record once");
    for c in conversations {
        let key = chatgw_events::conversation_key(&c);
        let mine: Vec<_> = got.iter().filter(|r| r.key == key.as_bytes()).collect();
        assert_eq!(mine.len(), 20);
        assert!(mine.iter().all(|r| r.partition == partition_for(key.as_bytes(), 4)), "murmur2 partition for {key}");
        let events: Vec<u64> = mine.iter().map(|r| decode_value(&r.value).unwrap().event.parse().unwrap()).collect();
        assert!(events.windows(2).all(|w| w[0] < w[1]), "in order: {events:?}");
    }
}

#[test]
fn a_broker_that_is_down_is_an_error() {
    let Some(mut broker) = TestBroker::start("a_broker_that_is_down_is_an_error") else { return };
    broker.create_topic("t.events", 1);
    let mut producer = EventProducer::new(&ProducerConfig {
        brokers: broker.bootstrap(),
        topic: "t.events".into(),
        delivery_timeout: Duration::from_secs(2),
    })
    .unwrap();
    producer.publish(&[record(1, ConversationId::Group(GroupId(1)))]).unwrap();
    broker.kill();
    let started = std::time::Instant::now();
    let err = producer.publish(&[record(2, ConversationId::Group(GroupId(1)))]);
    assert!(matches!(err, Err(PublishError::Delivery { .. } | PublishError::Fatal(_))), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(15), "bounded by the delivery timeout");
}

/// Regression: after the broker restarted (and lost the producer's
/// idempotence state), every record of the old librdkafka producer timed
/// out forever; the producer is now replaced after a failed batch.
#[test]
fn a_restarted_broker_gets_records_again() {
    let Some(mut broker) = TestBroker::start("a_restarted_broker_gets_records_again") else { return };
    broker.create_topic("t.events", 1);
    let mut producer = EventProducer::new(&ProducerConfig {
        brokers: broker.bootstrap(),
        topic: "t.events".into(),
        delivery_timeout: Duration::from_secs(3),
    })
    .unwrap();
    let g = ConversationId::Group(GroupId(1));
    producer.publish(&[record(1, g)]).unwrap();
    broker.kill();
    assert!(producer.publish(&[record(2, g)]).is_err(), "down");
    broker.restart();
    let mut published = false;
    for i in 0..3 {
        if producer.publish(&[record(3 + i, g)]).is_ok() {
            published = true;
            break;
        }
    }
    assert!(published, "the restarted broker acknowledges records again");
    let got = TestConsumer::new(&broker.bootstrap(), "t.events", 1)
        .poll_until_idle(Duration::from_secs(2), Duration::from_secs(20));
    assert!(!got.is_empty());
}
