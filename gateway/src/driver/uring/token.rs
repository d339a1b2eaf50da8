//! What each submission's `user_data` says: which operation, and for a
//! connection, which slot and generation.
//!
//! Slots are reused as soon as the engine removes a connection, while the
//! kernel may still complete operations submitted for the old one. The
//! generation (unique per accepted connection on a core, see
//! `Engine::accept`) tells those stale completions apart from the new
//! connection's.

/// The kind of an operation in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// The multishot accept on the listener.
    Accept,
    /// A one-shot poll on the listener, armed after accept failed (for
    /// example out of descriptors) so accepting resumes on the next
    /// connection rather than in a busy loop.
    ListenerPoll,
    /// The read of the waker's eventfd.
    Wake,
    /// A cancellation request (its own completion carries nothing).
    Cancel,
    /// A connection's multishot receive.
    Recv,
    /// A connection's send.
    Send,
}

impl Op {
    const ALL: [Op; 6] = [Op::Accept, Op::ListenerPoll, Op::Wake, Op::Cancel, Op::Recv, Op::Send];

    fn code(self) -> u64 {
        self as u64 + 1
    }
}

/// One connection as the driver names it: its engine slot and generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ConnId {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

/// Hashes a [`ConnId`] for the driver's tables with one wide multiply
/// instead of SipHash: a send is looked up twice per frame written, and
/// slots and generations are the core's own numbers, not a client's.
#[derive(Clone, Copy, Default)]
pub(crate) struct ConnIdHash;

/// The state of one [`ConnIdHash`]ing: the id's two numbers, packed.
#[derive(Default)]
pub(crate) struct ConnIdHasher(u64);

impl std::hash::Hasher for ConnIdHasher {
    fn finish(&self) -> u64 {
        // An odd constant (2^64 / golden ratio); folding the product's
        // halves makes every bit depend on both numbers.
        let product = u128::from(self.0) * 0x9e37_79b9_7f4a_7c15;
        (product as u64) ^ ((product >> 64) as u64)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = self.0 << 32 | u64::from(n);
    }
}

impl std::hash::BuildHasher for ConnIdHash {
    type Hasher = ConnIdHasher;

    fn build_hasher(&self) -> ConnIdHasher {
        ConnIdHasher::default()
    }
}

/// Slots must fit in the 24 bits a token has for them.
pub(crate) const MAX_SLOTS: usize = 1 << 24;

const OP_SHIFT: u32 = 56;
const SLOT_SHIFT: u32 = 32;
const SLOT_MASK: u64 = (1 << 24) - 1;

/// `user_data` for an operation that belongs to no connection.
pub(crate) fn token(op: Op) -> u64 {
    op.code() << OP_SHIFT
}

/// `user_data` for an operation on connection `id` (its slot below [`MAX_SLOTS`]).
pub(crate) fn conn_token(op: Op, id: ConnId) -> u64 {
    debug_assert!((id.slot as usize) < MAX_SLOTS);
    op.code() << OP_SHIFT | (u64::from(id.slot) & SLOT_MASK) << SLOT_SHIFT | u64::from(id.generation)
}

/// The operation and connection a completion belongs to; `None` for a
/// value no submission of this driver carries.
pub(crate) fn decode(user_data: u64) -> Option<(Op, ConnId)> {
    let code = user_data >> OP_SHIFT;
    let op = Op::ALL.into_iter().find(|op| op.code() == code)?;
    let id = ConnId { slot: ((user_data >> SLOT_SHIFT) & SLOT_MASK) as u32, generation: user_data as u32 };
    Some((op, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_differ_by_generation() {
        let a = ConnId { slot: (MAX_SLOTS - 1) as u32, generation: u32::MAX };
        let b = ConnId { slot: (MAX_SLOTS - 1) as u32, generation: u32::MAX - 1 };
        for op in Op::ALL {
            assert_eq!(decode(conn_token(op, a)), Some((op, a)));
            assert_eq!(decode(token(op)).map(|(o, _)| o), Some(op));
        }
        assert_ne!(conn_token(Op::Recv, a), conn_token(Op::Recv, b));
        assert_ne!(conn_token(Op::Recv, a), conn_token(Op::Send, a));
        assert_eq!(decode(0), None);
        assert_eq!(decode(u64::MAX), None);
    }
}
