//! One connection's state.
//!
//! Sized for hundreds of thousands of idle connections: the three byte
//! buffers are empty `Vec`s (no allocation) except while a frame is
//! incomplete, bytes wait for the socket, or a fragmented message is being
//! assembled. Times are whole seconds of the core's clock (`u32`).

use std::{net::IpAddr, num::NonZeroU32};

use chatgw_protocol::{MessageId, UserId};
use chatgw_storage::InboxPos;

use crate::{limits::TokenBucket, ws::frame::Opcode};

/// Whether a connection is catching up from the store (`catch_up`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CatchUp {
    /// No.
    Idle,
    /// Waiting for one of the core's catch-up reads; live events are held.
    Queued,
    /// Its pages are being read and written, as a sync's are.
    Reading,
}

/// The connection's sync page request to the readers (one at a time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PageRead {
    /// None asked.
    Idle,
    /// One asked; its page (or failure) is on its way.
    Asked,
    /// One asked for a sync or catch-up the device has since replaced
    /// with a new `sync`: its answer is dropped and the new sync's first
    /// page asked for then.
    Stale,
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for the balancer's PROXY header (`--proxy-protocol`); no
    /// source is charged yet (`proxy_intake`).
    ProxyHeader,
    /// Waiting for a complete HTTP request.
    Handshake,
    /// An HTTP response is queued; the connection closes once it is written.
    Responding,
    /// WebSocket open.
    Open,
    /// Close frame sent or received; waiting for the peer to go, briefly.
    Closing,
    /// Refused by the per-source limits after its PROXY header: like
    /// `Responding`, but no source was charged.
    Refused,
}

impl Phase {
    /// Whether a connection in this phase holds a charge on its `peer`'s
    /// per-source limits, to release when it goes.
    pub(crate) fn charged_its_source(self) -> bool {
        !matches!(self, Phase::ProxyHeader | Phase::Refused)
    }
}

/// Where the cursor of a connection's last `sync` stands. One byte for
/// both facts, so that the connection does not grow (`idle_connection_is_small`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SyncCursor {
    /// The first page of the sync is asked for: the cursor is still to be
    /// resolved to a position.
    Resolving,
    /// Resolved.
    Resolved,
    /// Resolved, and below entries the inbox retention removed: the
    /// sync's `synced` says `"truncated":true` (`inbox_retention`).
    Truncated,
}

pub(crate) struct Conn<S> {
    pub(crate) sock: S,
    /// Source address, charged against the per-source limits until dropped.
    pub(crate) peer: IpAddr,
    pub(crate) generation: u32,
    pub(crate) phase: Phase,
    /// Echo endpoint (conformance testing) rather than the chat protocol.
    pub(crate) echo: bool,
    /// Registered in the directory (and counted as open).
    pub(crate) registered: bool,
    pub(crate) user: UserId,
    /// The id of the last inbox event written to this connection (or the
    /// `after` of its last `sync`): what `synced` reports as the cursor.
    pub(crate) cursor: MessageId,
    /// The inbox position of that event; nothing at or below it is written
    /// again unless the device asks with `sync`. Unknown (and zero) from a
    /// `sync` until its first page resolves the cursor (`sync_cursor`).
    pub(crate) pos: InboxPos,
    /// The device has sent `sync` at least once; live events flow after that.
    pub(crate) subscribed: bool,
    /// A sync is being paged out; live events wait for it (`sync_missed`).
    pub(crate) syncing: bool,
    pub(crate) sync_missed: bool,
    /// The next sync page waits for the outbound queue to drain.
    pub(crate) sync_paused: bool,
    /// Whether the cursor of the last `sync` is resolved to a position yet,
    /// and whether it stood below what the inbox retention removed.
    pub(crate) sync_cursor: SyncCursor,
    /// Catching up from the store; `syncing` is set meanwhile.
    pub(crate) catch_up: CatchUp,
    /// Its page request in flight, if any.
    pub(crate) page: PageRead,
    pub(crate) sync_limit: u16,
    /// Bytes of an incomplete request or frame.
    pub(crate) inbuf: Vec<u8>,
    /// Bytes waiting for the socket; `out_pos` of them are already written.
    pub(crate) outbuf: Vec<u8>,
    pub(crate) out_pos: usize,
    /// A fragmented message being assembled, and its opcode.
    pub(crate) frag: Vec<u8>,
    pub(crate) frag_opcode: Option<Opcode>,
    pub(crate) queued_for_flush: bool,
    /// Refused frames in a row.
    pub(crate) strikes: u8,
    pub(crate) opened_at: u32,
    pub(crate) last_heard: u32,
    /// Last protocol (text) frame, for the idle timeout.
    pub(crate) last_frame: u32,
    /// The second a ping went out and no pong came back yet. Never zero: a
    /// ping waits `ping_every` (at least one second) after the core's clock
    /// starts at zero, and the niche keeps this field 4 bytes, not 8.
    pub(crate) ping_sent: Option<NonZeroU32>,
    /// Token bucket of the frame rate limit.
    pub(crate) rate: TokenBucket,
    /// When the connection's token expires, Unix seconds (0: no token).
    /// (The device a token names is not here but in the engine's
    /// `devices`: four more bytes on every connection would make this
    /// record larger than the size test allows, for a minority of them.)
    pub(crate) token_exp: u32,
    /// The second its current timer wheel entry fires (see `timers`).
    pub(crate) armed_at: u32,
}

impl<S> Conn<S> {
    pub(crate) fn new(sock: S, peer: IpAddr, generation: u32, now: u32, burst: u32, now_ms: u64) -> Self {
        Conn {
            sock,
            peer,
            generation,
            phase: Phase::Handshake,
            echo: false,
            registered: false,
            user: UserId(0),
            cursor: MessageId(0),
            pos: InboxPos(0),
            subscribed: false,
            syncing: false,
            sync_missed: false,
            sync_paused: false,
            sync_cursor: SyncCursor::Resolved,
            catch_up: CatchUp::Idle,
            page: PageRead::Idle,
            sync_limit: 0,
            inbuf: Vec::new(),
            outbuf: Vec::new(),
            out_pos: 0,
            frag: Vec::new(),
            frag_opcode: None,
            queued_for_flush: false,
            strikes: 0,
            opened_at: now,
            last_heard: now,
            last_frame: now,
            ping_sent: None,
            rate: TokenBucket::full(burst, now_ms),
            token_exp: 0,
            armed_at: u32::MAX,
        }
    }

    /// Open without a token, waiting for its `auth` frame: neither the
    /// echo endpoint nor registered as a user's device.
    pub(crate) fn awaiting_auth(&self) -> bool {
        self.phase == Phase::Open && !self.echo && !self.registered
    }

    /// Bytes queued and not yet written.
    pub(crate) fn pending_out(&self) -> usize {
        self.outbuf.len() - self.out_pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_connection_is_small() {
        // The whole per-connection state the engine keeps, socket excluded
        // (176 bytes: 72 of them the three empty buffers, 17 the source
        // address the per-source limits charge, 8 the inbox position beside
        // the cursor's event id, 4 the outstanding ping's second). With the
        // io_uring driver's 16-byte socket a slab slot is 192 bytes; one
        // byte more here makes it 200.
        assert!(std::mem::size_of::<Conn<()>>() <= 176, "{}", std::mem::size_of::<Conn<()>>());
    }
}
