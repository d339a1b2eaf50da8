//! Retention of idempotency keys: where "old enough to forget" starts.
//!
//! A key only protects against a resend, and a client resends for minutes,
//! not months, so keys older than the idempotency retention are removed
//! (docs/STORAGE.md, "Retention"). The age of a key is the age of its
//! message, read from the message id: a Snowflake id starts with the
//! millisecond it was made in, so "older than the retention" is "id below
//! the smallest id of that millisecond", one comparison and no column.

use std::time::Duration;

use chatgw_protocol::{MessageId, Snowflake, EPOCH_MS};

/// The smallest message id made at `now_ms - retention`: keys of messages
/// with smaller ids are past their retention. `MessageId(0)` (nothing is
/// past it) for no retention or a zero one, and when the cutoff falls
/// before the id epoch.
pub fn retention_cutoff(retention: Option<Duration>, now_ms: u64) -> MessageId {
    let Some(retention) = retention.filter(|r| !r.is_zero()) else {
        return MessageId(0);
    };
    let at = now_ms.saturating_sub(u64::try_from(retention.as_millis()).unwrap_or(u64::MAX));
    if at <= EPOCH_MS {
        return MessageId(0);
    }
    // A fresh generator of node 0 gives the first id of that millisecond.
    Snowflake::new(0).next_at(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_the_first_id_of_its_millisecond() {
        let now = EPOCH_MS + 10 * 86_400_000;
        let cut = retention_cutoff(Some(Duration::from_secs(86_400)), now);
        assert_eq!(Snowflake::unix_ms(cut), now - 86_400_000);
        let older = Snowflake::new(1023).next_at(now - 86_400_001);
        let newer = Snowflake::new(0).next_at(now - 86_400_000);
        assert!(older < cut && newer >= cut);
    }

    #[test]
    fn no_retention_keeps_everything() {
        let now = EPOCH_MS + 1000;
        assert_eq!(retention_cutoff(None, now), MessageId(0));
        assert_eq!(retention_cutoff(Some(Duration::ZERO), now), MessageId(0));
        assert_eq!(retention_cutoff(Some(Duration::from_secs(5)), now), MessageId(0));
    }
}
