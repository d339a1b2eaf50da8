//! Schema v1 of an event record: what a Kafka record's key and value hold
//! (docs/EVENTS.md, "Record schema v1").
//!
//! The value is one JSON object. Its common fields (`v`, `event`, `kind`,
//! `conversation`, `from`, `recipients`, `at`) are the same for every
//! kind; the rest depend on the kind. Ids travel as decimal strings, as on
//! the WebSocket protocol (JSON numbers lose precision above 2^53).

use chatgw_protocol::{AmendKind, ConversationId, ReceiptStatus};
use chatgw_storage::{OutboxDetail, OutboxRecord};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The schema version every record of this release carries as `v`.
pub const SCHEMA_VERSION: u32 = 1;

/// The record key: the conversation, `d:<lo>:<hi>` for a direct one (the
/// smaller user id first) or `g:<group id>`. Every event of a conversation
/// has the same key, so they share a partition and stay in order.
pub fn conversation_key(c: &ConversationId) -> String {
    match c {
        ConversationId::Direct { lo, hi } => format!("d:{lo}:{hi}"),
        ConversationId::Group(g) => format!("g:{g}"),
    }
}

/// The `kind` field of a record.
pub fn kind_of(detail: &OutboxDetail) -> &'static str {
    match detail {
        OutboxDetail::Message { .. } => "message",
        OutboxDetail::Receipt { .. } => "receipt",
        OutboxDetail::Amended { op: AmendKind::Hidden, .. } => "hidden",
        OutboxDetail::Amended { .. } => "amended",
    }
}

/// A stored body (a JSON string literal) as a JSON value; a body that is
/// not valid JSON travels as a plain string rather than breaking the record.
fn body_value(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()))
}

/// The record's value: schema v1 JSON. Bodies appear only if the outbox
/// kept them (`--events-bodies`).
pub fn encode_value(r: &OutboxRecord) -> Vec<u8> {
    let mut o = Map::new();
    o.insert("v".into(), json!(SCHEMA_VERSION));
    o.insert("event".into(), json!(r.event.to_string()));
    o.insert("kind".into(), json!(kind_of(&r.detail)));
    o.insert("conversation".into(), json!(conversation_key(&r.conversation)));
    o.insert("from".into(), json!(r.from.to_string()));
    o.insert("recipients".into(), Value::from(r.recipients.iter().map(|u| u.to_string()).collect::<Vec<_>>()));
    o.insert("at".into(), json!(r.at));
    match &r.detail {
        OutboxDetail::Message { id, kind, size, body } => {
            o.insert("id".into(), json!(id.to_string()));
            o.insert("msg_kind".into(), json!(kind.as_str()));
            o.insert("size".into(), json!(size));
            if let Some(b) = body {
                o.insert("body".into(), body_value(b));
            }
        }
        OutboxDetail::Receipt { status, ids, by } => {
            let status = match status {
                ReceiptStatus::Delivered => "delivered",
                ReceiptStatus::Read => "read",
            };
            o.insert("status".into(), json!(status));
            o.insert("ids".into(), Value::from(ids.iter().map(|i| i.to_string()).collect::<Vec<_>>()));
            if !by.is_empty() {
                let by: Vec<Value> = by
                    .iter()
                    .map(|(u, ids)| json!({"user": u.to_string(), "ids": ids.iter().map(|i| i.to_string()).collect::<Vec<_>>()}))
                    .collect();
                o.insert("by".into(), Value::from(by));
            }
        }
        OutboxDetail::Amended { id, op, size, body } => {
            o.insert("id".into(), json!(id.to_string()));
            if *op != AmendKind::Hidden {
                o.insert("op".into(), json!(if *op == AmendKind::Edited { "edit" } else { "delete" }));
                o.insert("size".into(), json!(size));
            }
            if let Some(b) = body {
                o.insert("body".into(), body_value(b));
            }
        }
    }
    // Serialising a map of JSON values cannot fail.
    serde_json::to_vec(&Value::Object(o)).unwrap_or_default()
}

/// A record value as a consumer reads it: the common fields and the
/// fields of a message (other fields are ignored, so a consumer of v1
/// keeps working when a later version adds some).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Event {
    /// Schema version.
    pub v: u32,
    /// Unique event id: deduplicate by it.
    pub event: String,
    /// `message`, `receipt`, `amended` or `hidden`.
    pub kind: String,
    /// The conversation (also the record key).
    pub conversation: String,
    /// Sender or acting user.
    pub from: String,
    /// Users whose inbox got the event, other than `from`.
    pub recipients: Vec<String>,
    /// Commit time, Unix milliseconds.
    pub at: u64,
    /// The message (message, amended, hidden).
    #[serde(default)]
    pub id: Option<String>,
    /// The message kind (message).
    #[serde(default)]
    pub msg_kind: Option<String>,
}

/// Why a record value is not a v1 event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or a field is missing or of the wrong type.
    #[error("not an event record: {0}")]
    Json(#[from] serde_json::Error),
    /// A version this release does not read.
    #[error("event schema version {0} is not {SCHEMA_VERSION}")]
    Version(u32),
}

/// Decode a record value.
pub fn decode_value(bytes: &[u8]) -> Result<Event, DecodeError> {
    let e: Event = serde_json::from_slice(bytes)?;
    if e.v != SCHEMA_VERSION {
        return Err(DecodeError::Version(e.v));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::{GroupId, MessageId, MessageKind, UserId};
    use chatgw_storage::OutboxPos;

    use super::*;

    fn message(body: Option<&str>) -> OutboxRecord {
        OutboxRecord {
            pos: OutboxPos(1),
            event: MessageId(123456789012345678),
            conversation: ConversationId::direct(UserId(9), UserId(3)),
            from: UserId(9),
            recipients: vec![UserId(3)],
            at: 1_700_000_000_123,
            detail: OutboxDetail::Message {
                id: MessageId(123456789012345678),
                kind: MessageKind::Text,
                size: 4,
                body: body.map(str::to_owned),
            },
        }
    }

    #[test]
    fn message_record_v1() {
        let v: Value = serde_json::from_slice(&encode_value(&message(None))).unwrap();
        assert_eq!(
            v,
            json!({"v":1,"event":"123456789012345678","kind":"message","conversation":"d:3:9","from":"9",
                   "recipients":["3"],"at":1_700_000_000_123u64,"id":"123456789012345678","msg_kind":"text","size":4})
        );
        let with_body: Value = serde_json::from_slice(&encode_value(&message(Some("\"hi\"")))).unwrap();
        assert_eq!(with_body["body"], json!("hi"));
        let e = decode_value(&encode_value(&message(None))).unwrap();
        assert_eq!(
            (e.kind.as_str(), e.id.as_deref(), e.msg_kind.as_deref()),
            ("message", Some("123456789012345678"), Some("text"))
        );
    }

    #[test]
    fn receipt_and_amendments() {
        let receipt = OutboxRecord {
            conversation: ConversationId::Group(GroupId(77)),
            detail: OutboxDetail::Receipt {
                status: ReceiptStatus::Read,
                ids: vec![MessageId(5)],
                by: vec![(UserId(9), vec![MessageId(5)])],
            },
            ..message(None)
        };
        let v: Value = serde_json::from_slice(&encode_value(&receipt)).unwrap();
        assert_eq!(
            (v["kind"].clone(), v["conversation"].clone(), v["status"].clone()),
            (json!("receipt"), json!("g:77"), json!("read"))
        );
        assert_eq!(v["ids"], json!(["5"]));
        assert_eq!(v["by"], json!([{"user":"9","ids":["5"]}]));
        let delete = OutboxRecord {
            detail: OutboxDetail::Amended { id: MessageId(5), op: AmendKind::Deleted, size: 0, body: None },
            ..message(None)
        };
        let v: Value = serde_json::from_slice(&encode_value(&delete)).unwrap();
        assert_eq!(
            (v["kind"].clone(), v["op"].clone(), v["id"].clone()),
            (json!("amended"), json!("delete"), json!("5"))
        );
        let hide = OutboxRecord {
            detail: OutboxDetail::Amended { id: MessageId(5), op: AmendKind::Hidden, size: 0, body: None },
            ..message(None)
        };
        assert_eq!(decode_value(&encode_value(&hide)).unwrap().kind, "hidden");
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        assert!(decode_value(b"").is_err());
        assert!(decode_value(b"{\"v\":2}").is_err());
        assert!(matches!(
            decode_value(
                br#"{"v":2,"event":"1","kind":"message","conversation":"g:1","from":"1","recipients":[],"at":1}"#
            ),
            Err(DecodeError::Version(2))
        ));
    }
}
