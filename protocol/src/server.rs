//! Server frames, written straight to JSON bytes.
//!
//! Encoders append to a caller's `Vec<u8>` so that a frame fanned out to many
//! connections is built once and shared, and so that no intermediate
//! `serde_json::Value` is ever allocated. Bodies are spliced in as the raw
//! JSON string literal the sender wrote.

use std::io::Write as _;

use crate::{ConversationId, ErrorCode, MessageId, MessageKind, UserId, PROTOCOL_VERSION};

/// A stored message, as the server sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Server id (also the event id in each participant's inbox).
    pub id: MessageId,
    /// Where it was sent.
    pub conversation: ConversationId,
    /// Who sent it.
    pub from: UserId,
    /// What the body is.
    pub kind: MessageKind,
    /// The sender's client id.
    pub client_id: String,
    /// Server time of the commit, Unix milliseconds.
    pub ts: u64,
    /// The body as its raw JSON string literal, quotes included.
    pub body: String,
}

/// A receipt event, as the server sends it to the message's sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Receipt {
    /// Messages reached a device of `by`.
    Delivered {
        /// Event id in the receiver's inbox.
        event: MessageId,
        /// The conversation.
        conversation: ConversationId,
        /// Who received them.
        by: UserId,
        /// The messages.
        ids: Vec<MessageId>,
        /// When, Unix milliseconds.
        at: u64,
    },
    /// `by` read the conversation up to `up_to`.
    Read {
        /// Event id in the receiver's inbox.
        event: MessageId,
        /// The conversation.
        conversation: ConversationId,
        /// Who read.
        by: UserId,
        /// Last message read.
        up_to: MessageId,
        /// When, Unix milliseconds.
        at: u64,
    },
}

impl Receipt {
    /// The event id.
    pub fn event(&self) -> MessageId {
        match self {
            Receipt::Delivered { event, .. } | Receipt::Read { event, .. } => *event,
        }
    }
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn conversation_fields(out: &mut Vec<u8>, conversation: &ConversationId, from: UserId) {
    match *conversation {
        ConversationId::Direct { .. } => {
            let to = conversation.peer_of(from).unwrap_or(from);
            let _ = write!(out, r#","from":"{from}","to":"{to}""#);
        }
        ConversationId::Group(g) => {
            let _ = write!(out, r#","from":"{from}","group":"{g}""#);
        }
    }
}

fn message_fields(out: &mut Vec<u8>, m: &Message) {
    let _ = write!(out, r#""msg":"{}""#, m.id);
    conversation_fields(out, &m.conversation, m.from);
    let _ = write!(out, r#","kind":"{}","ts":{},"cid":"#, m.kind.as_str(), m.ts);
    json_str(out, &m.client_id);
    out.extend_from_slice(br#","body":"#);
    out.extend_from_slice(m.body.as_bytes());
}

/// `{"type":"welcome",...}`: first frame on a new connection.
pub fn welcome(out: &mut Vec<u8>, user: UserId, max_body: usize, max_frame: usize) {
    let _ = write!(
        out,
        r#"{{"type":"welcome","protocol":{PROTOCOL_VERSION},"user":"{user}","max_body":{max_body},"max_frame":{max_frame}}}"#
    );
}

/// `{"type":"sent",...}`: the message is durable.
pub fn sent(out: &mut Vec<u8>, client_id: &str, id: MessageId, ts: u64, duplicate: bool) {
    out.extend_from_slice(br#"{"type":"sent","id":"#);
    json_str(out, client_id);
    let _ = write!(out, r#","msg":"{id}","ts":{ts},"duplicate":{duplicate}}}"#);
}

/// `{"type":"message",...}`: a message for one of the user's devices.
pub fn message(out: &mut Vec<u8>, m: &Message) {
    out.extend_from_slice(br#"{"type":"message","event":""#);
    let _ = write!(out, "{}\",", m.id);
    message_fields(out, m);
    out.push(b'}');
}

/// `{"type":"receipt",...}`.
pub fn receipt(out: &mut Vec<u8>, r: &Receipt) {
    let (event, conversation, by, at, status) = match r {
        Receipt::Delivered {
            event,
            conversation,
            by,
            at,
            ..
        } => (event, conversation, by, at, "delivered"),
        Receipt::Read {
            event,
            conversation,
            by,
            at,
            ..
        } => (event, conversation, by, at, "read"),
    };
    let _ = write!(
        out,
        r#"{{"type":"receipt","event":"{event}","status":"{status}","by":"{by}""#
    );
    if let ConversationId::Group(g) = conversation {
        let _ = write!(out, r#","group":"{g}""#);
    }
    match r {
        Receipt::Delivered { ids, .. } => {
            out.extend_from_slice(br#","ids":["#);
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = write!(out, "\"{id}\"");
            }
            out.push(b']');
        }
        Receipt::Read { up_to, .. } => {
            let _ = write!(out, r#","up_to":"{up_to}""#);
        }
    }
    let _ = write!(out, r#","at":{at}}}"#);
}

/// `{"type":"synced","cursor":...}`: the device has every event up to `cursor`.
pub fn synced(out: &mut Vec<u8>, cursor: MessageId) {
    let _ = write!(out, r#"{{"type":"synced","cursor":"{cursor}"}}"#);
}

/// `{"type":"history",...}`: one page of a direct conversation, newest first.
pub fn history(out: &mut Vec<u8>, peer: UserId, messages: &[Message], more: bool) {
    let _ = write!(out, r#"{{"type":"history","peer":"{peer}","messages":["#);
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        message_fields(out, m);
        out.push(b'}');
    }
    let _ = write!(out, r#"],"more":{more}}}"#);
}

/// `{"type":"error",...}`.
pub fn error(out: &mut Vec<u8>, code: ErrorCode, message: &str, reference: Option<&str>) {
    let _ = write!(out, r#"{{"type":"error","code":"{code}","message":"#);
    json_str(out, message);
    if let Some(r) = reference {
        out.extend_from_slice(br#","ref":"#);
        json_str(out, r);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn parse(b: &[u8]) -> Value {
        serde_json::from_slice(b).expect("encoder wrote valid JSON")
    }

    fn sample() -> Message {
        Message {
            id: MessageId(42),
            conversation: ConversationId::direct(UserId(1), UserId(2)),
            from: UserId(2),
            kind: MessageKind::Text,
            client_id: "c\"1".into(),
            ts: 1000,
            body: r#""hi \"there\"""#.into(),
        }
    }

    #[test]
    fn message_frame_is_valid_json_with_ids_as_strings() {
        let mut out = Vec::new();
        message(&mut out, &sample());
        assert_eq!(
            parse(&out),
            json!({"type":"message","event":"42","msg":"42","from":"2","to":"1","kind":"text","ts":1000,"cid":"c\"1","body":"hi \"there\""})
        );
    }

    #[test]
    fn receipts_and_control_frames() {
        let mut out = Vec::new();
        let c = ConversationId::direct(UserId(1), UserId(2));
        receipt(
            &mut out,
            &Receipt::Delivered {
                event: MessageId(9),
                conversation: c,
                by: UserId(2),
                ids: vec![MessageId(7), MessageId(8)],
                at: 5,
            },
        );
        assert_eq!(
            parse(&out),
            json!({"type":"receipt","event":"9","status":"delivered","by":"2","ids":["7","8"],"at":5})
        );
        out.clear();
        receipt(
            &mut out,
            &Receipt::Read {
                event: MessageId(10),
                conversation: c,
                by: UserId(2),
                up_to: MessageId(8),
                at: 6,
            },
        );
        assert_eq!(
            parse(&out),
            json!({"type":"receipt","event":"10","status":"read","by":"2","up_to":"8","at":6})
        );
        out.clear();
        sent(&mut out, "a", MessageId(3), 4, true);
        assert_eq!(
            parse(&out),
            json!({"type":"sent","id":"a","msg":"3","ts":4,"duplicate":true})
        );
        out.clear();
        error(&mut out, ErrorCode::BadField, "x \"y\"", Some("r"));
        assert_eq!(
            parse(&out),
            json!({"type":"error","code":"bad_field","message":"x \"y\"","ref":"r"})
        );
        out.clear();
        synced(&mut out, MessageId(77));
        assert_eq!(parse(&out), json!({"type":"synced","cursor":"77"}));
        out.clear();
        history(&mut out, UserId(1), &[sample()], false);
        assert_eq!(parse(&out)["messages"][0]["msg"], "42");
        out.clear();
        welcome(&mut out, UserId(5), 10, 20);
        assert_eq!(parse(&out)["user"], "5");
    }
}
