//! The fleet's link key and the two MACs of the link handshake
//! (`handshake`): pure functions, no I/O.
//!
//! Both MACs are HMAC-SHA256 over one transcript, each under its own label
//! so that neither can stand for the other (a Welcome echoed back as a
//! Hello fails): the protocol version, then the accepting side's node,
//! epoch and nonce (its Challenge), then the dialling side's (its Hello).
//! Every field has a fixed size, so the concatenation is unambiguous. The
//! acceptor's nonce is fresh per session, so a Hello is good for the one
//! session it answers and a captured one replays nowhere; the dialler's
//! nonce does the same for the Welcome.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of a handshake nonce.
pub const NONCE_BYTES: usize = 32;
/// Bytes of a handshake MAC (HMAC-SHA256).
pub const MAC_BYTES: usize = 32;

/// What the key is derived with, from whatever secret the fleet shares.
const DERIVE_LABEL: &[u8] = b"chatgw node-link key v1";
const HELLO_LABEL: &[u8] = b"chatgw node-link hello\0";
const WELCOME_LABEL: &[u8] = b"chatgw node-link welcome\0";

/// One end of a session as its handshake names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Side {
    /// The node id.
    pub node: u16,
    /// The node's epoch (its run).
    pub epoch: u64,
    /// The nonce this side chose for the session.
    pub nonce: [u8; NONCE_BYTES],
}

/// The key every node of a fleet shares, and only they: a link session
/// opens only between two holders of the same key.
#[derive(Clone)]
pub struct LinkKey([u8; MAC_BYTES]);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

/// Keys compare without an early exit (equal keys are one fleet).
impl PartialEq for LinkKey {
    fn eq(&self, other: &LinkKey) -> bool {
        self.0.iter().zip(other.0.iter()).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
    }
}

impl Eq for LinkKey {}

impl LinkKey {
    /// The link key of a fleet whose nodes share `secret` (any length):
    /// HMAC-SHA256 keyed with it over a fixed label, so the link key is
    /// never the secret itself, whatever else the secret keys.
    pub fn derive(secret: &[u8]) -> LinkKey {
        let mut mac = hmac(secret);
        mac.update(DERIVE_LABEL);
        LinkKey(mac.finalize().into_bytes().into())
    }

    /// The MAC a dialler's Hello carries.
    pub(crate) fn hello_mac(&self, version: u8, acceptor: &Side, dialler: &Side) -> [u8; MAC_BYTES] {
        self.transcript(HELLO_LABEL, version, acceptor, dialler).finalize().into_bytes().into()
    }

    /// Whether `mac` is the Hello MAC, compared in constant time.
    pub(crate) fn check_hello(&self, version: u8, acceptor: &Side, dialler: &Side, mac: &[u8]) -> bool {
        self.transcript(HELLO_LABEL, version, acceptor, dialler).verify_slice(mac).is_ok()
    }

    /// The MAC an acceptor's Welcome carries.
    pub(crate) fn welcome_mac(&self, version: u8, acceptor: &Side, dialler: &Side) -> [u8; MAC_BYTES] {
        self.transcript(WELCOME_LABEL, version, acceptor, dialler).finalize().into_bytes().into()
    }

    /// Whether `mac` is the Welcome MAC, compared in constant time.
    pub(crate) fn check_welcome(&self, version: u8, acceptor: &Side, dialler: &Side, mac: &[u8]) -> bool {
        self.transcript(WELCOME_LABEL, version, acceptor, dialler).verify_slice(mac).is_ok()
    }

    fn transcript(&self, label: &[u8], version: u8, acceptor: &Side, dialler: &Side) -> HmacSha256 {
        let mut mac = hmac(&self.0);
        mac.update(label);
        mac.update(&[version]);
        for side in [acceptor, dialler] {
            mac.update(&side.node.to_be_bytes());
            mac.update(&side.epoch.to_be_bytes());
            mac.update(&side.nonce);
        }
        mac
    }
}

fn hmac(key: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length (a long one is hashed first), so
    // this never fails.
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// A fresh nonce from the system's random source.
pub(crate) fn nonce() -> std::io::Result<[u8; NONCE_BYTES]> {
    let mut n = [0u8; NONCE_BYTES];
    getrandom::fill(&mut n).map_err(|e| std::io::Error::other(format!("the system's random source: {e}")))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(node: u16, nonce: u8) -> Side {
        Side { node, epoch: 7, nonce: [nonce; NONCE_BYTES] }
    }

    #[test]
    fn the_same_secret_gives_the_same_key_and_another_does_not() {
        let (a, b) = (side(1, 1), side(2, 2));
        let mac = LinkKey::derive(b"s").hello_mac(2, &a, &b);
        assert!(LinkKey::derive(b"s").check_hello(2, &a, &b, &mac));
        assert!(!LinkKey::derive(b"t").check_hello(2, &a, &b, &mac));
        assert_eq!(LinkKey::derive(b"s"), LinkKey::derive(b"s"));
        assert_ne!(LinkKey::derive(b"s"), LinkKey::derive(b"t"));
    }

    #[test]
    fn every_field_and_the_label_change_the_mac() {
        let key = LinkKey::derive(b"s");
        let (a, b) = (side(1, 1), side(2, 2));
        let mac = key.hello_mac(2, &a, &b);
        assert!(key.check_hello(2, &a, &b, &mac));
        assert!(!key.check_welcome(2, &a, &b, &mac), "a Hello MAC is no Welcome MAC");
        assert!(!key.check_hello(3, &a, &b, &mac));
        assert!(!key.check_hello(2, &b, &a, &mac), "the sides are not interchangeable");
        for other in [Side { node: 9, ..a }, Side { epoch: 8, ..a }, Side { nonce: [9; NONCE_BYTES], ..a }] {
            assert!(!key.check_hello(2, &other, &b, &mac), "{other:?}");
            assert!(!key.check_hello(2, &a, &other, &mac), "{other:?}");
        }
        assert!(!key.check_hello(2, &a, &b, &mac[..31]), "a short MAC");
        assert!(!key.check_hello(2, &a, &b, &[]), "no MAC");
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(nonce().unwrap(), nonce().unwrap());
    }
}
