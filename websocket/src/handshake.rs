//! The key exchange of the opening handshake (RFC 6455 section 4): the
//! client's `Sec-WebSocket-Key` and the `Sec-WebSocket-Accept` a server
//! answers it with. Both sides compute the accept value, so it lives here
//! once. The HTTP around it is each side's own business.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use sha1::{Digest, Sha1};

const WS_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(key);
    h.update(WS_GUID);
    STANDARD.encode(h.finalize())
}

/// A `Sec-WebSocket-Key` from 16 random bytes: their base64, 24 characters.
pub fn client_key(random: [u8; 16]) -> [u8; 24] {
    let mut key = [0u8; 24];
    // 16 bytes are always 24 base64 characters with padding, so this fits.
    let _ = STANDARD.encode_slice(random, &mut key);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6455_example_accept_key() {
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn client_key_is_the_base64_of_its_bytes() {
        let raw = *b"the sample nonce";
        assert_eq!(&client_key(raw), b"dGhlIHNhbXBsZSBub25jZQ==");
    }
}
