//! Decoding event records (schema v1) into what the planner needs.
//!
//! Only the fields the worker decides on are read; unknown fields are
//! ignored, so publishers may add fields without a new version. A record of
//! another version is refused with [`DecodeError::UnknownVersion`]: the
//! worker counts it, logs it and skips it, because guessing at a schema it
//! does not know could send pushes nobody should get.

use chatgw_protocol::UserId;
use serde::Deserialize;

/// The one schema version this worker reads.
pub const SCHEMA_VERSION: u64 = 1;

/// What an event record means to the push worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A message that may notify its recipients.
    Message {
        /// The event's id (the message id), passed on to the device so it
        /// can fetch from there; empty when the record has none.
        event: String,
        /// The conversation (`d:<lo>:<hi>` or `g:<id>`), kept as the
        /// publisher wrote it: it is only ever compared and passed on.
        conversation: String,
        /// The sender, who is never notified of their own message.
        from: UserId,
        /// Users whose inbox got the message, other than the sender.
        recipients: Vec<UserId>,
        /// Commit time, unix milliseconds (`u64::MAX` when the record has
        /// none).
        at_ms: u64,
    },
    /// `by` read `conversation` (on some device), so a pending notification
    /// of theirs for it is no longer needed.
    Read {
        /// The conversation read.
        conversation: String,
        /// The reader.
        by: UserId,
    },
    /// Anything that never notifies: system messages, delivery receipts,
    /// edits and deletes, hidden marks, kinds this version does not know.
    Ignored,
}

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The record is not JSON of the expected shape (a required field is
    /// missing or has the wrong type).
    #[error("malformed event record: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The record names a schema version this worker does not read.
    #[error("event record of unknown schema version {0} (this worker reads v{SCHEMA_VERSION})")]
    UnknownVersion(u64),
}

/// The envelope: the version first, so an unknown version is reported as
/// such even when the rest of the record would not parse.
#[derive(Deserialize)]
struct Envelope {
    v: u64,
}

#[derive(Deserialize)]
struct V1 {
    #[serde(default)]
    event: String,
    kind: String,
    conversation: String,
    from: UserId,
    #[serde(default)]
    recipients: Vec<UserId>,
    at: Option<u64>,
    #[serde(default)]
    msg_kind: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// Decode one record.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let Envelope { v } = serde_json::from_slice(bytes)?;
    if v != SCHEMA_VERSION {
        return Err(DecodeError::UnknownVersion(v));
    }
    let r: V1 = serde_json::from_slice(bytes)?;
    Ok(match r.kind.as_str() {
        "message" if r.msg_kind.as_deref() != Some("system") => Event::Message {
            event: r.event,
            conversation: r.conversation,
            from: r.from,
            // A publisher never lists the sender, but a record that does
            // must not notify them of their own message.
            recipients: {
                let mut users: Vec<UserId> = r.recipients.into_iter().filter(|u| *u != r.from).collect();
                users.sort_unstable();
                users.dedup();
                users
            },
            // No commit time: a time in the future, which the planner
            // counts as the time the record was read.
            at_ms: r.at.unwrap_or(u64::MAX),
        },
        "receipt" if r.status.as_deref() == Some("read") => Event::Read { conversation: r.conversation, by: r.from },
        _ => Event::Ignored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_message_names_its_recipients_and_time() {
        let rec = br#"{"v":1,"event":"e1","kind":"message","conversation":"d:1:2","from":"1","recipients":["2"],"at":1700,"id":"9","msg_kind":"text","new_field":[1]}"#;
        assert_eq!(
            decode(rec).unwrap(),
            Event::Message {
                event: "e1".into(),
                conversation: "d:1:2".into(),
                from: UserId(1),
                recipients: vec![UserId(2)],
                at_ms: 1700
            }
        );
    }

    #[test]
    fn system_messages_delivery_receipts_and_amends_never_notify() {
        for rec in [
            r#"{"v":1,"event":"e","kind":"message","conversation":"g:5","from":"1","recipients":["2"],"at":1,"msg_kind":"system"}"#,
            r#"{"v":1,"event":"e","kind":"receipt","conversation":"g:5","from":"2","recipients":["1"],"at":1,"status":"delivered","ids":["3"]}"#,
            r#"{"v":1,"event":"e","kind":"amended","conversation":"g:5","from":"1","recipients":["2"],"at":1}"#,
            r#"{"v":1,"event":"e","kind":"hidden","conversation":"g:5","from":"1","recipients":[],"at":1}"#,
        ] {
            assert_eq!(decode(rec.as_bytes()).unwrap(), Event::Ignored, "{rec}");
        }
    }

    #[test]
    fn a_read_receipt_names_the_reader() {
        let rec = br#"{"v":1,"event":"e","kind":"receipt","conversation":"g:5","from":"2","recipients":["1"],"at":1,"status":"read","ids":["3"]}"#;
        assert_eq!(decode(rec).unwrap(), Event::Read { conversation: "g:5".into(), by: UserId(2) });
    }

    #[test]
    fn the_sender_is_never_a_recipient() {
        let rec = br#"{"v":1,"event":"e","kind":"message","conversation":"g:5","from":"1","recipients":["1","3"],"at":1,"msg_kind":"text"}"#;
        assert!(matches!(decode(rec).unwrap(), Event::Message { recipients, .. } if recipients == vec![UserId(3)]));
    }

    #[test]
    fn unknown_versions_and_garbage_are_errors_not_panics() {
        assert!(matches!(decode(br#"{"v":2,"kind":"whatever"}"#), Err(DecodeError::UnknownVersion(2))));
        assert!(matches!(decode(b"not json"), Err(DecodeError::Malformed(_))));
        assert!(matches!(decode(br#"{"v":1,"kind":"message"}"#), Err(DecodeError::Malformed(_))));
        assert!(decode(br#"{"v":1,"kind":"message","conversation":"g:1","from":"x"}"#).is_err());
    }
}
