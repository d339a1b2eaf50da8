//! What the gateways lean on: the Redis registry, the Kafka event stream
//! and the store, each sized from the load and the gateway count.

use super::{Builder, Ctx, Section};
use crate::plan::numfmt::n;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The Redis registry on `gateway_nodes` nodes.
pub(super) fn redis(c: &Ctx<'_>, gateway_nodes: f64) -> Section {
    let Ctx { f, target, g, direct_rate, group_rate, connect_rate, .. } = *c;
    let mut b = Builder::new();
    let mem = b.put(
        "redis_memory_gib",
        "registry memory, primaries",
        target.concurrent * f.redis_bytes_per_online_user.value / GIB,
        "GiB",
        format!(
            "concurrent x redis_bytes_per_online_user / 2^30 = {} x {} / 2^30",
            n(target.concurrent),
            n(f.redis_bytes_per_online_user.value)
        ),
    );
    b.put(
        "redis_memory_total_gib",
        "registry memory with replicas",
        mem * (1.0 + f.redis_replicas.value),
        "GiB",
        format!("primaries x (1 + redis_replicas) = {} x (1 + {})", n(mem), n(f.redis_replicas.value)),
    );
    let cross_share = (gateway_nodes - 1.0) / gateway_nodes;
    let deliveries = direct_rate + group_rate * (g - 1.0);
    let session_ops = b.put(
        "redis_session_ops_per_sec",
        "registry commands/s for connects and disconnects",
        connect_rate * (f.redis_commands_per_connect.value + f.redis_commands_per_disconnect.value),
        "ops/s",
        format!(
            "connects/s x (redis_commands_per_connect + redis_commands_per_disconnect) = {} x ({} + {})",
            n(connect_rate),
            n(f.redis_commands_per_connect.value),
            n(f.redis_commands_per_disconnect.value)
        ),
    );
    let lookups = b.put(
        "redis_lookup_ops_per_sec",
        "registry lookups/s for deliveries to another node",
        deliveries * cross_share * f.redis_lookups_per_delivery.value,
        "ops/s",
        format!(
            "(direct msg/s + group msg/s x (group_size - 1)) x (N - 1) / N x redis_lookups_per_delivery = ({} + {} x {}) x {} / {} x {}",
            n(direct_rate),
            n(group_rate),
            n(g - 1.0),
            n(gateway_nodes - 1.0),
            n(gateway_nodes),
            n(f.redis_lookups_per_delivery.value)
        ),
    );
    let ops = b.put(
        "redis_ops_per_sec",
        "registry commands/s in all",
        session_ops + lookups,
        "ops/s",
        format!("{} + {}", n(session_ops), n(lookups)),
    );
    b.put(
        "redis_storm_ops_per_sec",
        "extra registry commands/s during a node's reconnect storm",
        target.concurrent / gateway_nodes / f.storm_window_secs.value * f.redis_commands_per_connect.value,
        "ops/s",
        format!(
            "concurrent / N / storm_window_secs x redis_commands_per_connect = {} / {} / {} x {}",
            n(target.concurrent),
            n(gateway_nodes),
            n(f.storm_window_secs.value),
            n(f.redis_commands_per_connect.value)
        ),
    );
    b.put(
        "redis_shards",
        "registry primaries (shards)",
        (mem / f.redis_shard_memory_gib.value).ceil().max((ops / f.redis_shard_ops_per_sec.value).ceil()),
        "shards",
        format!(
            "max(ceil(memory / redis_shard_memory_gib), ceil(ops / redis_shard_ops_per_sec)) = max(ceil({} / {}), ceil({} / {}))",
            n(mem),
            n(f.redis_shard_memory_gib.value),
            n(ops),
            n(f.redis_shard_ops_per_sec.value)
        ),
    );
    b.done("Redis registry")
}

/// The Kafka event stream.
pub(super) fn kafka(c: &Ctx<'_>) -> Section {
    let Ctx { f, target, g, direct_rate, group_rate, .. } = *c;
    let mut b = Builder::new();
    let group_events = 1.0 + (g - 1.0) * f.group_receipt_events_per_member.value;
    let events = b.put(
        "kafka_events_per_sec",
        "events/s at peak",
        direct_rate * f.events_per_message.value + group_rate * group_events,
        "events/s",
        format!(
            "direct msg/s x events_per_message + group msg/s x (1 + (group_size - 1) x group_receipt_events_per_member) = {} x {} + {} x (1 + {} x {})",
            n(direct_rate),
            n(f.events_per_message.value),
            n(group_rate),
            n(g - 1.0),
            n(f.group_receipt_events_per_member.value)
        ),
    );
    let mb = b.put(
        "kafka_mb_per_sec",
        "produced MB/s at peak",
        events * f.event_bytes.value / 1e6,
        "MB/s",
        format!("events/s x event_bytes / 1e6 = {} x {} / 1e6", n(events), n(f.event_bytes.value)),
    );
    b.put(
        "kafka_partitions",
        "partitions",
        (mb / f.kafka_partition_mb_per_sec.value).ceil(),
        "partitions",
        format!(
            "ceil(MB/s / kafka_partition_mb_per_sec) = ceil({} / {})",
            n(mb),
            n(f.kafka_partition_mb_per_sec.value)
        ),
    );
    let gs = f.group_share.value;
    let events_per_msg_mean = (1.0 - gs) * f.events_per_message.value + gs * group_events;
    b.put(
        "kafka_tb_per_day",
        "stored per day with replicas",
        target.messages_per_day * events_per_msg_mean * f.event_bytes.value * f.kafka_replication.value / 1e12,
        "TB/day",
        format!(
            "messages_per_day x ((1 - group_share) x events_per_message + group_share x group events) x event_bytes x kafka_replication / 1e12 = {} x ({} x {} + {} x {}) x {} x {} / 1e12",
            n(target.messages_per_day),
            n(1.0 - gs),
            n(f.events_per_message.value),
            n(gs),
            n(group_events),
            n(f.event_bytes.value),
            n(f.kafka_replication.value)
        ),
    );
    b.done("Kafka events")
}

/// The store.
pub(super) fn store(c: &Ctx<'_>) -> Section {
    let Ctx { f, target, g, direct_rate, group_rate, .. } = *c;
    let gs = f.group_share.value;
    let mut b = Builder::new();
    let g_store = f.store_group_size_measured.value;
    let group_records = f.store_records_per_group_message.value * g / g_store;
    let group_bytes = f.store_bytes_per_group_message.value * g / g_store;
    b.put(
        "store_writes_per_sec",
        "records written/s at peak",
        direct_rate * f.store_records_per_message.value + group_rate * group_records,
        "records/s",
        format!(
            "direct msg/s x store_records_per_message + group msg/s x store_records_per_group_message x group_size / store_group_size_measured = {} x {} + {} x {} x {} / {}",
            n(direct_rate),
            n(f.store_records_per_message.value),
            n(group_rate),
            n(f.store_records_per_group_message.value),
            n(g),
            n(g_store)
        ),
    );
    let per_day = b.put(
        "store_tb_per_day",
        "written per day, one copy",
        target.messages_per_day * ((1.0 - gs) * f.store_bytes_per_message.value + gs * group_bytes) / 1e12,
        "TB/day",
        format!(
            "messages_per_day x ((1 - group_share) x store_bytes_per_message + group_share x store_bytes_per_group_message x group_size / store_group_size_measured) / 1e12 = {} x ({} x {} + {} x {} x {} / {}) / 1e12",
            n(target.messages_per_day),
            n(1.0 - gs),
            n(f.store_bytes_per_message.value),
            n(gs),
            n(f.store_bytes_per_group_message.value),
            n(g),
            n(g_store)
        ),
    );
    b.put(
        "store_tb_per_day_replicated",
        "written per day with replicas",
        per_day * f.store_replication.value,
        "TB/day",
        format!("one copy x store_replication = {} x {}", n(per_day), n(f.store_replication.value)),
    );
    b.done("Store")
}
