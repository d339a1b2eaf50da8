//! Time buckets: which partition a message or an inbox event lives in.
//!
//! Why buckets: a partition keyed by conversation alone (or by user alone)
//! grows for as long as the conversation lives, and Cassandra reads,
//! compacts and repairs a partition as a unit. So the partition key adds a
//! bucket number derived from the Snowflake id's timestamp: the time since
//! the Snowflake epoch divided by a fixed width. A bucket holds what was
//! written in one window, so its size is bounded by the traffic of one
//! window, not by age (the lesson of Discord's message store).
//!
//! Inbox rows are the exception: they are clustered by their position in
//! the inbox, not by time, so their partition is `(user, pos / 65,536)`
//! ([`pos_bucket`]): a partition holds at most 65,536 events, and a walk by
//! position knows each next partition without an index. Time buckets of
//! one day remain for `inbox_ids`, the lookup from an event id to its
//! position.
//!
//! The widths are part of the schema: changing one moves every row to
//! another partition, so it needs a new schema version and a migration.
//! Messages use 10 days (a busy conversation writes far less than a busy
//! inbox receives); inboxes use 1 day, because an inbox gathers every
//! conversation of its owner.

use chatgw_protocol::MessageId;

/// Bits of a Snowflake id below its millisecond timestamp (generator and
/// sequence).
const TIMESTAMP_SHIFT: u32 = 22;

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Width of a message bucket (partition `(conversation, bucket)`).
pub(crate) const MESSAGE_BUCKET_MS: u64 = 10 * DAY_MS;

/// Width of an inbox bucket (partition `(user, bucket)`).
pub(crate) const INBOX_BUCKET_MS: u64 = DAY_MS;

/// The bucket of `id` for buckets `width_ms` wide: milliseconds since the
/// Snowflake epoch over the width. Any `u64` maps to a bucket (ids past the
/// 41-bit timestamp only appear as search bounds): the largest is
/// `2^42 / width`, far below `i32::MAX` for widths of a day or more.
pub(crate) fn bucket_of(id: MessageId, width_ms: u64) -> i32 {
    let bucket = (id.0 >> TIMESTAMP_SHIFT) / width_ms;
    // Invariant: u64::MAX >> 22 is below 2^42, and 2^42 / DAY_MS < 2^31.
    i32::try_from(bucket).unwrap_or(i32::MAX)
}

/// The message bucket of `id`.
pub(crate) fn message_bucket(id: MessageId) -> i32 {
    bucket_of(id, MESSAGE_BUCKET_MS)
}

/// The inbox bucket of `id`.
pub(crate) fn inbox_bucket(id: MessageId) -> i32 {
    bucket_of(id, INBOX_BUCKET_MS)
}

/// Positions per inbox partition (a power of two).
pub(crate) const POSITIONS_PER_BUCKET: u64 = 1 << 16;

/// The inbox partition of position `pos` (any `u64` maps to one: the
/// largest is `2^48 - 1`, which `i32` cannot hold, so positions past
/// `2^47` share the last; no inbox gets near that).
pub(crate) fn pos_bucket(pos: u64) -> i32 {
    i32::try_from(pos / POSITIONS_PER_BUCKET).unwrap_or(i32::MAX)
}

/// The first position of inbox partition `bucket`.
pub(crate) fn bucket_start(bucket: i32) -> u64 {
    u64::try_from(bucket).unwrap_or(0) * POSITIONS_PER_BUCKET
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::{Snowflake, EPOCH_MS};

    use super::*;

    /// An id minted at `ms` after the Snowflake epoch.
    fn at(ms: u64) -> MessageId {
        Snowflake::new(5).next_at(EPOCH_MS + ms)
    }

    #[test]
    fn a_bucket_is_the_snowflake_time_over_the_width() {
        assert_eq!(inbox_bucket(at(0)), 0);
        assert_eq!(inbox_bucket(at(DAY_MS - 1)), 0, "the last millisecond of the first day");
        assert_eq!(inbox_bucket(at(DAY_MS)), 1, "the first of the second");
        assert_eq!(message_bucket(at(10 * DAY_MS - 1)), 0);
        assert_eq!(message_bucket(at(10 * DAY_MS)), 1);
        assert_eq!(message_bucket(at(735 * DAY_MS + 5)), 73);
        assert_eq!(inbox_bucket(at(735 * DAY_MS + 5)), 735);
    }

    #[test]
    fn generator_and_sequence_bits_never_change_the_bucket() {
        let t = EPOCH_MS + 3 * DAY_MS - 1;
        let mut g = Snowflake::new(1023);
        let ids: Vec<MessageId> = (0..5000).map(|_| g.next_at(t)).collect();
        // Past 4096 ids in one millisecond the generator borrows the next.
        assert!(ids.iter().all(|id| [2, 3].contains(&inbox_bucket(*id))));
        assert_eq!(inbox_bucket(ids[0]), 2);
    }

    #[test]
    fn buckets_keep_id_order() {
        let mut ids: Vec<MessageId> = (0..200).map(|i| at(i * 7 * 60 * 60 * 1000)).collect();
        ids.extend([MessageId(0), MessageId(1), MessageId(i64::MAX as u64), MessageId(u64::MAX)]);
        ids.sort();
        for pair in ids.windows(2) {
            assert!(inbox_bucket(pair[0]) <= inbox_bucket(pair[1]));
            assert!(message_bucket(pair[0]) <= message_bucket(pair[1]));
        }
        assert_eq!(inbox_bucket(MessageId(u64::MAX)), ((u64::MAX >> 22) / DAY_MS) as i32, "no overflow");
    }

    #[test]
    fn positions_fill_partitions_of_65536() {
        assert_eq!(pos_bucket(0), 0);
        assert_eq!(pos_bucket(65_535), 0);
        assert_eq!(pos_bucket(65_536), 1);
        assert_eq!(bucket_start(pos_bucket(200_000)), 196_608);
        assert_eq!(pos_bucket(u64::MAX), i32::MAX, "no overflow");
        assert_eq!(bucket_start(-1), 0, "a negative bucket is read from the start");
    }
}
