//! The envelope: the body of an `encrypted` message, as the gateway and
//! every client agree on it (docs/PROTOCOL.md, "Encrypted messages").
//!
//! `{"v":1,"d":"<sender device>","k":[{"u":"<user>","d":"<device>","t":0,"c":"<base64>"}],"g":{"s":"<session id>","c":"<base64>"}}`
//!
//! Written with the fields in this order and parsed strictly (unknown
//! fields refused), so what one client writes every other client and the
//! gateway's shape check read the same way. The envelope carries only
//! ciphertexts and routing; what the message is lives in the encrypted
//! [payload](crate::payload).

use serde::{Deserialize, Serialize};

/// The envelope version this library writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;

/// Most Olm entries in one envelope.
pub const MAX_ENTRIES: usize = 256;

/// Largest body literal the gateway takes (`max_body`): the JSON string
/// literal of the envelope, quotes and escapes included.
pub const MAX_BODY_LITERAL: usize = 65_536;

/// Olm message type of a pre-key message (the first messages of a session).
pub const OLM_PRE_KEY: u8 = 0;
/// Olm message type of a normal message.
pub const OLM_NORMAL: u8 = 1;

/// One Olm ciphertext for one recipient device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OlmEntry {
    /// Recipient user id, decimal.
    pub u: String,
    /// Recipient device name.
    pub d: String,
    /// [`OLM_PRE_KEY`] or [`OLM_NORMAL`].
    pub t: u8,
    /// The Olm message body, unpadded standard base64.
    pub c: String,
}

/// A Megolm ciphertext for every member device holding the session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupCiphertext {
    /// Megolm session id, as vodozemac prints it.
    pub s: String,
    /// The Megolm message, unpadded standard base64.
    pub c: String,
}

/// The body of an `encrypted` message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// [`ENVELOPE_VERSION`].
    pub v: u8,
    /// The sending device's name.
    pub d: String,
    /// Olm ciphertexts, one per recipient device.
    #[serde(default)]
    pub k: Vec<OlmEntry>,
    /// The Megolm ciphertext, for group messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub g: Option<GroupCiphertext>,
}

/// Why a body is not an envelope this library reads.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON of the envelope's shape.
    #[error("not an envelope: {0}")]
    Shape(#[from] serde_json::Error),
    /// A version this library does not know.
    #[error("envelope version {0} is not supported")]
    Version(u8),
    /// Neither Olm entries nor a group ciphertext, or too many entries.
    #[error("envelope must have 1 to 256 `k` entries or a `g`")]
    Empty,
}

impl Envelope {
    /// Parse a message body.
    pub fn parse(body: &str) -> Result<Envelope, EnvelopeError> {
        let env: Envelope = serde_json::from_str(body)?;
        if env.v != ENVELOPE_VERSION {
            return Err(EnvelopeError::Version(env.v));
        }
        if (env.k.is_empty() && env.g.is_none()) || env.k.len() > MAX_ENTRIES {
            return Err(EnvelopeError::Empty);
        }
        Ok(env)
    }

    /// The body text.
    pub fn to_body(&self) -> String {
        // Serializing plain strings and integers cannot fail.
        serde_json::to_string(self).expect("an envelope serializes")
    }

    /// The length of the body's JSON string literal, which the gateway
    /// bounds by [`MAX_BODY_LITERAL`].
    pub fn body_literal_len(&self) -> usize {
        chatgw_protocol::client::body_literal(&self.to_body()).len()
    }

    /// The entry for `user`'s `device`, if this envelope has one.
    pub fn entry_for(&self, user: u64, device: &str) -> Option<&OlmEntry> {
        let user = user.to_string();
        self.k.iter().find(|e| e.u == user && e.d == device)
    }
}

/// Split Olm entries into envelopes whose bodies fit the gateway's limit.
pub(crate) fn split_entries(device: &str, entries: Vec<OlmEntry>) -> Vec<Envelope> {
    let mut out = Vec::new();
    let mut current = Envelope { v: ENVELOPE_VERSION, d: device.to_owned(), k: Vec::new(), g: None };
    for entry in entries {
        current.k.push(entry);
        let over = current.k.len() > MAX_ENTRIES || current.body_literal_len() > MAX_BODY_LITERAL;
        if over && current.k.len() > 1 {
            // The entry just pushed moves to a new envelope.
            let moved = current.k.pop().expect("just pushed");
            let full = std::mem::replace(
                &mut current,
                Envelope { v: ENVELOPE_VERSION, d: device.to_owned(), k: vec![moved], g: None },
            );
            out.push(full);
        }
    }
    if !current.k.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_written_in_the_agreed_order() {
        let env = Envelope {
            v: 1,
            d: "phone".into(),
            k: vec![OlmEntry { u: "2".into(), d: "desk".into(), t: 0, c: "AAAA".into() }],
            g: Some(GroupCiphertext { s: "sid".into(), c: "BBBB".into() }),
        };
        assert_eq!(
            env.to_body(),
            r#"{"v":1,"d":"phone","k":[{"u":"2","d":"desk","t":0,"c":"AAAA"}],"g":{"s":"sid","c":"BBBB"}}"#
        );
        assert_eq!(Envelope::parse(&env.to_body()).unwrap(), env);
        let group_only = r#"{"v":1,"d":"phone","k":[],"g":{"s":"sid","c":"BBBB"}}"#;
        assert_eq!(Envelope::parse(group_only).unwrap().to_body(), group_only);
    }

    #[test]
    fn bad_shapes_are_refused() {
        for bad in [
            r#"{"v":1,"d":"p","k":[]}"#,
            r#"{"v":2,"d":"p","g":{"s":"a","c":"b"}}"#,
            r#"{"v":1,"d":"p","g":{"s":"a","c":"b"},"x":1}"#,
            r#"{"v":1,"d":"p","k":[{"u":"1","d":"a","t":0,"c":"b","z":0}]}"#,
            "hello",
        ] {
            assert!(Envelope::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn entries_are_split_to_fit_the_body_limit() {
        let entry = |i: usize| OlmEntry { u: i.to_string(), d: "dev".into(), t: 0, c: "A".repeat(1000) };
        let envs = split_entries("phone", (0..200).map(entry).collect());
        assert!(envs.len() >= 3, "200 KB of entries need several bodies");
        assert!(envs.iter().all(|e| e.body_literal_len() <= MAX_BODY_LITERAL));
        assert_eq!(envs.iter().map(|e| e.k.len()).sum::<usize>(), 200);
        let small = split_entries("phone", (0..300).map(|i| OlmEntry { c: "A".into(), ..entry(i) }).collect());
        assert_eq!(small.iter().map(|e| e.k.len()).collect::<Vec<_>>(), [256, 44]);
    }
}
