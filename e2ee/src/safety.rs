//! Safety numbers: what two users compare (read aloud, or side by side) to
//! know that no one sits between their devices.
//!
//! Each user's half is 30 digits derived from their user id and the sorted
//! Ed25519 signing keys of all their devices, by SHA-512 iterated 5200
//! times (so finding other keys with the same digits costs 2^112 hashes
//! times 5200, as in Signal's numeric fingerprints). The number is the
//! lower user id's half then the other's: 12 groups of 5 digits, the same
//! on both sides. It changes whenever either user's set of devices or any
//! device's key changes.

use chatgw_protocol::{PublicKey, UserId};
use sha2::{Digest, Sha512};

const VERSION: [u8; 2] = [0, 1];
const ITERATIONS: usize = 5200;

/// One user's 30 digits, as 6 groups of 5.
pub fn fingerprint(user: UserId, signing_keys: &[PublicKey]) -> [u32; 6] {
    let mut keys: Vec<[u8; 32]> = signing_keys.iter().map(|k| k.0).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut input = Vec::with_capacity(keys.len() * 32 + 24);
    input.extend_from_slice(user.0.to_string().as_bytes());
    input.push(b'|');
    for k in &keys {
        input.extend_from_slice(k);
    }
    let mut hash = Sha512::new().chain_update(VERSION).chain_update(&input).finalize();
    for _ in 1..ITERATIONS {
        hash = Sha512::new().chain_update(hash).chain_update(&input).finalize();
    }
    let mut groups = [0u32; 6];
    for (i, group) in groups.iter_mut().enumerate() {
        let chunk = &hash[i * 5..i * 5 + 5];
        let n = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        // Below 100000, so it fits.
        *group = (n % 100_000) as u32;
    }
    groups
}

/// The safety number of users `a` and `b` with their devices' signing keys:
/// 12 groups of 5 digits separated by spaces, the same whichever side
/// computes it.
pub fn safety_number(a: UserId, a_keys: &[PublicKey], b: UserId, b_keys: &[PublicKey]) -> String {
    let (first, second) = if a.0 <= b.0 { ((a, a_keys), (b, b_keys)) } else { ((b, b_keys), (a, a_keys)) };
    let groups = fingerprint(first.0, first.1).into_iter().chain(fingerprint(second.0, second.1));
    groups.map(|g| format!("{g:05}")).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_compute_the_same_number_and_any_key_changes_it() {
        let alice = [PublicKey([1; 32]), PublicKey([2; 32])];
        let bob = [PublicKey([3; 32])];
        let from_alice = safety_number(UserId(1), &alice, UserId(2), &bob);
        let reversed = [alice[1], alice[0]];
        assert_eq!(from_alice, safety_number(UserId(2), &bob, UserId(1), &reversed), "order does not matter");
        assert_eq!(from_alice.split(' ').count(), 12);
        assert!(from_alice.split(' ').all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit())));
        assert_ne!(from_alice, safety_number(UserId(1), &alice[..1], UserId(2), &bob), "a device less");
        assert_ne!(from_alice, safety_number(UserId(1), &alice, UserId(2), &[PublicKey([4; 32])]));
        assert_ne!(from_alice, safety_number(UserId(1), &alice, UserId(3), &bob), "another user");
    }
}
