//! The store's outbox as the push worker's [`EventSource`], for the worker
//! that runs inside `serve --push`.
//!
//! The outbox is one ordered log (one per node on a shared store), so it
//! is partition 0 and a record's offset is its outbox position. The worker
//! commits "every event below this offset is decided"; the source moves the
//! durable cursor [`CONSUMER`] to the position just below it. After a
//! crash the worker starts again from that cursor: the records it had read
//! but not decided are read again (at least once), none is skipped.
//! Records are handed on in schema v1 (`chatgw_events::encode_value`), the
//! bytes `chatgw push` reads from Kafka, so both run the same decoder.

use std::{sync::Arc, time::Duration};

use chatgw_push_worker::{watermark::Position, EventSource, SourceItem};
use chatgw_storage::{MessageStore, OutboxPos, StoreError};

/// The outbox cursor of the push worker.
pub const CONSUMER: &str = "push";

/// Records read per poll.
const BATCH: usize = 500;

/// Reads the outbox after the cursor [`CONSUMER`].
pub struct OutboxSource {
    store: Arc<dyn MessageStore>,
    /// The last position handed on (`None` until the cursor was read).
    read_to: Option<OutboxPos>,
    paused: bool,
}

impl std::fmt::Debug for OutboxSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxSource").field("read_to", &self.read_to).field("paused", &self.paused).finish()
    }
}

impl OutboxSource {
    /// A source over `store`'s outbox (which must be enabled), starting at
    /// the cursor on the first poll.
    pub fn new(store: Arc<dyn MessageStore>) -> Self {
        OutboxSource { store, read_to: None, paused: false }
    }

    /// Hand on what follows `read_to`; whether anything did.
    fn read(&mut self, out: &mut Vec<SourceItem>) -> Result<bool, StoreError> {
        let after = match self.read_to {
            Some(pos) => pos,
            None => *self.read_to.insert(self.store.outbox_cursor(CONSUMER)?),
        };
        let records = self.store.outbox_after(after, BATCH)?;
        let Some(last) = records.last().map(|r| r.pos) else { return Ok(false) };
        for r in &records {
            let offset = i64::try_from(r.pos.0).unwrap_or(i64::MAX);
            out.push(SourceItem::Record {
                pos: Position { partition: 0, offset },
                payload: chatgw_events::encode_value(r),
            });
        }
        self.read_to = Some(last);
        Ok(true)
    }
}

impl EventSource for OutboxSource {
    type Error = StoreError;

    /// Read at once; when nothing is there, wait out `timeout` (at most the
    /// worker's 200 ms) and look again.
    fn poll(&mut self, timeout: Duration, out: &mut Vec<SourceItem>) -> Result<(), StoreError> {
        if !self.paused && self.read(out)? {
            return Ok(());
        }
        std::thread::sleep(timeout);
        if !self.paused {
            self.read(out)?;
        }
        Ok(())
    }

    fn commit(&mut self, offsets: &[(i32, i64)]) -> Result<(), StoreError> {
        for &(_, next) in offsets.iter().filter(|(partition, _)| *partition == 0) {
            // Every record below `next` is decided.
            let done = u64::try_from(next.saturating_sub(1)).unwrap_or(0);
            self.store.set_outbox_cursor(CONSUMER, OutboxPos(done))?;
        }
        Ok(())
    }

    fn set_paused(&mut self, paused: bool) -> Result<(), StoreError> {
        self.paused = paused;
        Ok(())
    }
}
