//! WebSocket framing from the client's side (RFC 6455 section 5).
//!
//! The load path does not use tungstenite: a tungstenite `WebSocket` carries
//! buffers of several kilobytes per connection and wants a thread or an
//! async runtime, and the point of this program is to hold ~19,000
//! connections from one thread. Here a connection's framing state is a few
//! bytes: frames are encoded straight into the connection's output buffer
//! and decoded in place from whatever the socket returned, by the codec the
//! gateway itself uses (`chatgw-websocket`, re-exported here).
//!
//! Client frames must be masked (the gateway closes with 1002 otherwise);
//! the mask only has to be unpredictable to a proxy, not secret, so a
//! per-connection xorshift ([`Xorshift`]) is plenty.

pub(crate) use chatgw_websocket::{
    client::{decode_server_header, put_client_frame, ServerHeader},
    frame::Opcode,
};

/// A tiny PRNG for masks and handshake keys (xorshift32).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Xorshift(u32);

impl Xorshift {
    /// A generator from any seed (zero is mapped to a non-zero state).
    pub(crate) fn new(seed: u64) -> Self {
        let folded = (seed ^ (seed >> 32)) as u32;
        Xorshift(if folded == 0 { 0x9E37_79B9 } else { folded })
    }

    /// The next 32 random bits.
    pub(crate) fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorshift_never_sticks_at_zero() {
        let mut r = Xorshift::new(0);
        let a = r.next_u32();
        let b = r.next_u32();
        assert!(a != 0 && b != 0 && a != b);
    }
}
