//! Deleting and editing a message after it was sent: the two client frames
//! (`delete`, `edit`), the mark a stored message carries once amended, and
//! the `amended` event every device of the conversation gets.
//!
//! Why an amendment names an event id rather than a time: the server makes
//! one inbox event per amendment, and a repeated request is answered with
//! the event it already made (no second one). The time of the change is
//! that id's Snowflake time, so it costs nothing to keep.

use std::io::Write as _;

use crate::{
    frames::{bad, conversation_field, id_field, required, text_body_field, RawFrame},
    server::{message_fields, Message},
    ClientFrame, ConversationRef, MessageId, ProtocolError, Snowflake,
};

/// What was done to a stored message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmendKind {
    /// Its body was replaced by the sender.
    Edited,
    /// It was deleted for everyone: its body is gone (a tombstone).
    Deleted,
    /// The reader deleted it for themselves only: shown to that user (and
    /// only to them) as a tombstone. Never stored in the message; kept as a
    /// per-user mark (see [`hidden_view`]).
    Hidden,
}

impl AmendKind {
    /// The wire name of the mark (`edited`, `deleted`).
    pub fn as_str(self) -> &'static str {
        match self {
            AmendKind::Edited => "edited",
            AmendKind::Deleted => "deleted",
            AmendKind::Hidden => "hidden",
        }
    }
}

/// The latest change to a stored message: what, and the inbox event that
/// announced it (its id carries the time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amendment {
    /// Edited or deleted.
    pub kind: AmendKind,
    /// The `amended` event's id.
    pub event: MessageId,
}

impl Amendment {
    /// When it was made, Unix milliseconds.
    pub fn at(&self) -> u64 {
        Snowflake::unix_ms(self.event)
    }
}

/// Whom a `delete` is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteScope {
    /// Every participant: the body is replaced by a tombstone.
    Everyone,
    /// Only the requester's own devices: the message is hidden from them
    /// and nobody else is affected (see docs/PROTOCOL.md, "Delete for me").
    Me,
}

impl DeleteScope {
    /// The wire name (`everyone`, `me`).
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteScope::Everyone => "everyone",
            DeleteScope::Me => "me",
        }
    }
}

pub(crate) fn parse_delete<'a>(raw: &RawFrame<'a>) -> Result<ClientFrame<'a>, ProtocolError> {
    let conversation = conversation_field(raw, "peer", raw.peer)?;
    let msg = id_field(required(raw.msg, "msg")?, "msg")?;
    let scope = match raw.scope {
        None => DeleteScope::Everyone,
        Some(v) => match serde_json::from_str::<&str>(v.get()) {
            Ok("everyone") => DeleteScope::Everyone,
            Ok("me") => DeleteScope::Me,
            _ => return Err(bad("for", "must be \"everyone\" or \"me\"")),
        },
    };
    Ok(ClientFrame::Delete { conversation, msg, scope })
}

pub(crate) fn parse_edit<'a>(raw: &RawFrame<'a>) -> Result<ClientFrame<'a>, ProtocolError> {
    let conversation = conversation_field(raw, "peer", raw.peer)?;
    let msg = id_field(required(raw.msg, "msg")?, "msg")?;
    let body = text_body_field(raw)?;
    Ok(ClientFrame::Edit { conversation, msg, body })
}

/// `{"type":"delete",...}`; `for` is written only for [`DeleteScope::Me`].
pub(crate) fn encode_delete(out: &mut String, conversation: ConversationRef, msg: MessageId, scope: DeleteScope) {
    use std::fmt::Write as _;
    out.push_str(r#"{"type":"delete""#);
    crate::client::push_conversation(out, conversation, "peer");
    let _ = write!(out, r#","msg":"{msg}""#);
    if scope == DeleteScope::Me {
        out.push_str(r#","for":"me""#);
    }
    out.push('}');
}

/// `{"type":"edit",...}`; `body` is the raw JSON string literal.
pub(crate) fn encode_edit(out: &mut String, conversation: ConversationRef, msg: MessageId, body: &str) {
    use std::fmt::Write as _;
    out.push_str(r#"{"type":"edit""#);
    crate::client::push_conversation(out, conversation, "peer");
    let _ = write!(out, r#","msg":"{msg}","body":"#);
    out.push_str(body);
    out.push('}');
}

/// `{"type":"amended","event":...,<the message as it is now>}`: a message
/// was edited or deleted for everyone. The message fields are those of a
/// `message` frame, with the `edited` or `deleted` mark; a deleted message
/// has no `body`. `reply` marks the answer to the connection's own `delete`
/// or `edit` (`"reply":true`): a reply, not an inbox event, so a client
/// does not move its cursor to it (it may come before events a `sync` is
/// still replaying).
pub fn amended(out: &mut Vec<u8>, event: MessageId, m: &Message, reply: bool) {
    let _ = write!(out, r#"{{"type":"amended","event":"{event}","#);
    message_fields(out, m);
    if reply {
        out.extend_from_slice(br#","reply":true"#);
    }
    out.push(b'}');
}

/// `m` as the user who hid it sees it: no body, and the `hidden` mark with
/// the event that hid it. Every frame that shows that user the message
/// (`amended`, `history`, a replayed `message`, a `conversations` entry)
/// shows this form instead.
pub fn hidden_view(m: Message, event: MessageId) -> Message {
    Message { body: String::new(), amended: Some(Amendment { kind: AmendKind::Hidden, event }), ..m }
}

/// The mark a stored message carries after the change, as `message`,
/// `amended` and `history` frames write it: `,"edited":{...}` or
/// `,"deleted":{...}`, or for the user who hid it `,"hidden":{...}`.
pub(crate) fn write_mark(out: &mut Vec<u8>, a: &Amendment) {
    let _ = write!(out, r#","{}":{{"event":"{}","at":{}}}"#, a.kind.as_str(), a.event, a.at());
}
