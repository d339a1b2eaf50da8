//! Identifiers. Every id is a 64-bit integer that travels as a decimal string
//! on the wire, because JSON numbers lose precision above 2^53 in many
//! clients.

use std::{fmt, str::FromStr};

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                // `u64::from_str` accepts a leading '+'; ids never carry one.
                if s.starts_with('+') {
                    return "x".parse::<u64>().map($name);
                }
                s.parse().map($name)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(|_| de::Error::custom(concat!(stringify!($name), " must be a decimal string")))
            }
        }
    };
}

string_id!(
    /// A user (an account). A user may have many devices, each one connection.
    UserId
);
string_id!(
    /// A message id, and more generally an event id in a user's inbox
    /// (receipts get ids from the same sequence). Snowflake layout: time
    /// ordered, so comparing ids compares commit order.
    MessageId
);
string_id!(
    /// A group conversation.
    GroupId
);

/// A conversation: either the direct conversation of two users (the order
/// of the two does not matter) or a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConversationId {
    /// Direct conversation; `lo <= hi` always holds.
    Direct {
        /// The smaller user id.
        lo: UserId,
        /// The larger user id.
        hi: UserId,
    },
    /// A group conversation.
    Group(GroupId),
}

impl ConversationId {
    /// Length of the longest key produced by [`ConversationId::to_key`].
    pub const MAX_KEY_LEN: usize = 17;

    /// The direct conversation between `a` and `b`.
    pub fn direct(a: UserId, b: UserId) -> Self {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        ConversationId::Direct { lo, hi }
    }

    /// For a direct conversation seen by `me`, the other participant.
    pub fn peer_of(&self, me: UserId) -> Option<UserId> {
        match *self {
            ConversationId::Direct { lo, hi } if lo == me => Some(hi),
            ConversationId::Direct { lo, hi } if hi == me => Some(lo),
            _ => None,
        }
    }

    /// Whether `user` takes part in this direct conversation. Group
    /// membership is not known here and answers `false`.
    pub fn is_direct_participant(&self, user: UserId) -> bool {
        self.peer_of(user).is_some()
    }

    /// A compact, order-preserving byte key: `d` + lo + hi, or `g` + group,
    /// integers big-endian. Stores use it as a partition key.
    pub fn to_key(&self) -> ([u8; Self::MAX_KEY_LEN], usize) {
        let mut k = [0u8; Self::MAX_KEY_LEN];
        match *self {
            ConversationId::Direct { lo, hi } => {
                k[0] = b'd';
                k[1..9].copy_from_slice(&lo.0.to_be_bytes());
                k[9..17].copy_from_slice(&hi.0.to_be_bytes());
                (k, 17)
            }
            ConversationId::Group(g) => {
                k[0] = b'g';
                k[1..9].copy_from_slice(&g.0.to_be_bytes());
                (k, 9)
            }
        }
    }

    /// Inverse of [`ConversationId::to_key`]; `None` for bytes it never produced.
    pub fn from_key(k: &[u8]) -> Option<Self> {
        let u = |b: &[u8]| -> Option<u64> { Some(u64::from_be_bytes(b.try_into().ok()?)) };
        match (k.first(), k.len()) {
            (Some(b'd'), 17) => {
                Some(ConversationId::Direct { lo: UserId(u(k.get(1..9)?)?), hi: UserId(u(k.get(9..17)?)?) })
            }
            (Some(b'g'), 9) => Some(ConversationId::Group(GroupId(u(k.get(1..9)?)?))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_travel_as_strings() {
        let id = MessageId(u64::MAX);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"18446744073709551615\"");
        assert_eq!(serde_json::from_str::<MessageId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<MessageId>("12").is_err(), "numbers are refused");
        assert!(serde_json::from_str::<MessageId>("\"+12\"").is_err());
        assert!(serde_json::from_str::<MessageId>("\"-1\"").is_err());
    }

    #[test]
    fn direct_conversation_is_symmetric_and_round_trips() {
        let c = ConversationId::direct(UserId(9), UserId(3));
        assert_eq!(c, ConversationId::direct(UserId(3), UserId(9)));
        assert_eq!(c.peer_of(UserId(3)), Some(UserId(9)));
        assert_eq!(c.peer_of(UserId(4)), None);
        let (k, n) = c.to_key();
        assert_eq!(ConversationId::from_key(&k[..n]), Some(c));
        let g = ConversationId::Group(GroupId(77));
        let (k, n) = g.to_key();
        assert_eq!(ConversationId::from_key(&k[..n]), Some(g));
        assert_eq!(ConversationId::from_key(b"x"), None);
    }
}
