//! The plaintexts inside the ciphertexts (docs/E2EE.md, "Client payloads").
//!
//! The gateway sees only envelopes; what a message is (its kind and body)
//! and, for key shares, the Megolm session key travel encrypted. Every
//! payload names its sender (user and device) and its conversation (the
//! recipient user of a direct message, or the group), and the receiver
//! checks both against the message that carried it. A ciphertext the
//! server copies into another conversation, or passes off as another
//! sender's, is then refused although it decrypts.

use chatgw_protocol::MessageKind;
use serde::{Deserialize, Serialize};

/// Who wrote a payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sender {
    /// User id, decimal.
    pub u: String,
    /// Device name.
    pub d: String,
}

/// The conversation a payload belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conversation {
    /// The recipient user of a direct message, decimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u: Option<String>,
    /// The group, decimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub g: Option<String>,
}

impl Conversation {
    /// The direct conversation whose recipient is `user`.
    pub fn direct(user: u64) -> Self {
        Conversation { u: Some(user.to_string()), g: None }
    }

    /// The group `group`.
    pub fn group(group: u64) -> Self {
        Conversation { u: None, g: Some(group.to_string()) }
    }
}

/// A decrypted payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", deny_unknown_fields)]
pub enum Payload {
    /// A message: what the user sent.
    #[serde(rename = "msg")]
    Message {
        /// Sender.
        from: Sender,
        /// Conversation.
        to: Conversation,
        /// The message's real kind (`text`, `image`, ...), never
        /// `encrypted` or `system`.
        kind: String,
        /// The message's real body.
        body: String,
    },
    /// A Megolm session key for a group, shared over Olm.
    #[serde(rename = "room_key")]
    RoomKey {
        /// Sender (the owner of the Megolm session).
        from: Sender,
        /// The group.
        to: Conversation,
        /// Megolm session id.
        session_id: String,
        /// Megolm session key (vodozemac `SessionKey::to_base64`).
        session_key: String,
    },
}

impl Payload {
    /// A message payload.
    pub fn message(from: Sender, to: Conversation, kind: MessageKind, body: &str) -> Payload {
        Payload::Message { from, to, kind: kind.as_str().to_owned(), body: body.to_owned() }
    }

    /// The JSON text that is encrypted.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a payload serializes")
    }

    /// Parse decrypted bytes.
    pub fn parse(bytes: &[u8]) -> Option<Payload> {
        serde_json::from_slice(bytes).ok()
    }

    /// Who wrote it.
    pub fn sender(&self) -> &Sender {
        match self {
            Payload::Message { from, .. } | Payload::RoomKey { from, .. } => from,
        }
    }

    /// Its conversation.
    pub fn conversation(&self) -> &Conversation {
        match self {
            Payload::Message { to, .. } | Payload::RoomKey { to, .. } => to,
        }
    }
}

/// A kind a payload may carry: what clients send in the clear, not the
/// server's `system` nor `encrypted` itself.
pub(crate) fn inner_kind(name: &str) -> Option<MessageKind> {
    MessageKind::from_name(name).filter(|k| !matches!(k, MessageKind::System | MessageKind::Encrypted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_a_stable_json_form() {
        let from = Sender { u: "1".into(), d: "phone".into() };
        let msg = Payload::message(from.clone(), Conversation::direct(2), MessageKind::Text, "hi");
        assert_eq!(
            msg.to_json(),
            r#"{"t":"msg","from":{"u":"1","d":"phone"},"to":{"u":"2"},"kind":"text","body":"hi"}"#
        );
        let key =
            Payload::RoomKey { from, to: Conversation::group(9), session_id: "s".into(), session_key: "k".into() };
        assert_eq!(
            key.to_json(),
            r#"{"t":"room_key","from":{"u":"1","d":"phone"},"to":{"g":"9"},"session_id":"s","session_key":"k"}"#
        );
        assert_eq!(Payload::parse(key.to_json().as_bytes()), Some(key));
        assert_eq!(Payload::parse(br#"{"t":"msg"}"#), None);
    }

    #[test]
    fn only_plain_kinds_travel_inside() {
        assert_eq!(inner_kind("image"), Some(MessageKind::Image));
        assert_eq!(inner_kind("encrypted"), None);
        assert_eq!(inner_kind("system"), None);
        assert_eq!(inner_kind("nope"), None);
    }
}
