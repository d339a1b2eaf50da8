//! Media ids: `<conversation>.<random>`.
//!
//! The conversation part is `d<low user>-<high user>` for a direct
//! conversation or `g<group id>`; the random part is 22 characters of
//! unpadded base64url (128 bits), so ids cannot be guessed. The id is the
//! object's name in every backend, which is what makes an object
//! reachable only through the conversation it was uploaded to.

use std::fmt;

use chatgw_protocol::{GroupId, UserId};

/// The conversation a media object belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaConversation {
    /// Direct conversation between two users (stored low, high).
    Direct(UserId, UserId),
    /// A group.
    Group(GroupId),
}

/// A media object's id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MediaKey {
    conversation: MediaConversation,
    random: String,
}

/// A media id that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a media id: {0}")]
pub struct MediaKeyError(pub &'static str);

const RANDOM_LEN: usize = 22;

impl MediaKey {
    /// A new id for `conversation` from 16 random bytes (the caller's
    /// CSPRNG).
    pub fn new(conversation: MediaConversation, random: [u8; 16]) -> Self {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bits = u128::from_be_bytes(random);
        // 22 six-bit digits cover 132 bits; the top 4 are always zero.
        let random = (0..RANDOM_LEN).rev().map(|i| ALPHABET[((bits >> (6 * i)) & 63) as usize] as char).collect();
        let conversation = match conversation {
            MediaConversation::Direct(a, b) if a.0 > b.0 => MediaConversation::Direct(b, a),
            c => c,
        };
        MediaKey { conversation, random }
    }

    /// The conversation the object was uploaded to.
    pub fn conversation(&self) -> MediaConversation {
        self.conversation
    }

    /// Parse an id as [`fmt::Display`] writes it.
    pub fn parse(s: &str) -> Result<Self, MediaKeyError> {
        let (conv, random) = s.split_once('.').ok_or(MediaKeyError("no `.`"))?;
        if random.len() != RANDOM_LEN || !random.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(MediaKeyError("random part is not 22 base64url characters"));
        }
        let number = |t: &str| -> Result<u64, MediaKeyError> {
            if t.is_empty()
                || t.len() > 20
                || !t.bytes().all(|b| b.is_ascii_digit())
                || (t.len() > 1 && t.starts_with('0'))
            {
                return Err(MediaKeyError("bad number"));
            }
            t.parse().map_err(|_| MediaKeyError("bad number"))
        };
        let conversation = if let Some(g) = conv.strip_prefix('g') {
            MediaConversation::Group(GroupId(number(g)?))
        } else if let Some(d) = conv.strip_prefix('d') {
            let (lo, hi) = d.split_once('-').ok_or(MediaKeyError("direct conversation without `-`"))?;
            let (lo, hi) = (number(lo)?, number(hi)?);
            if lo > hi {
                return Err(MediaKeyError("direct conversation users out of order"));
            }
            MediaConversation::Direct(UserId(lo), UserId(hi))
        } else {
            return Err(MediaKeyError("conversation is neither `d` nor `g`"));
        };
        Ok(MediaKey { conversation, random: random.to_owned() })
    }
}

impl fmt::Display for MediaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.conversation {
            MediaConversation::Direct(lo, hi) => write!(f, "d{}-{}.{}", lo.0, hi.0, self.random),
            MediaConversation::Group(g) => write!(f, "g{}.{}", g.0, self.random),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_order_direct_users() {
        let k = MediaKey::new(MediaConversation::Direct(UserId(9), UserId(2)), [0xab; 16]);
        assert_eq!(k.conversation(), MediaConversation::Direct(UserId(2), UserId(9)));
        let text = k.to_string();
        assert!(text.starts_with("d2-9."), "{text}");
        assert_eq!(MediaKey::parse(&text), Ok(k));
        let g = MediaKey::new(MediaConversation::Group(GroupId(77)), [1; 16]);
        assert_eq!(MediaKey::parse(&g.to_string()).unwrap().conversation(), MediaConversation::Group(GroupId(77)));
        assert_ne!(
            MediaKey::new(MediaConversation::Group(GroupId(1)), [1; 16]),
            MediaKey::new(MediaConversation::Group(GroupId(1)), [2; 16])
        );
    }

    #[test]
    fn malformed_ids_are_refused() {
        let ok = "AAAAAAAAAAAAAAAAAAAAAA";
        for bad in [
            String::new(),
            format!("g1{ok}"),
            format!("x1.{ok}"),
            format!("g.{ok}"),
            format!("g01.{ok}"),
            format!("d9-2.{ok}"),
            format!("d2.{ok}"),
            "g1.short".to_owned(),
            format!("g1.{}", "A/AAAAAAAAAAAAAAAAAAAA"),
            format!("g1.{ok}A"),
            format!("g99999999999999999999.{ok}"),
            format!("../etc.{ok}"),
        ] {
            assert!(MediaKey::parse(&bad).is_err(), "{bad:?} parsed");
        }
    }
}
