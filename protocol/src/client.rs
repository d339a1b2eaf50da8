//! Client frames, written as the JSON text a client sends: the inverse of
//! [`ClientFrame::parse`].
//!
//! Clients (the client library, the load generator, tests) build frames
//! here rather than with `format!`, so every frame a client of this
//! workspace sends is spelled as `docs/PROTOCOL.md` section 3 says, and the
//! round-trip tests hold the encoder and the server's parser to each other.
//!
//! Encoders append to a caller's `String` (a text frame's payload), so a
//! client that sends many frames reuses one buffer. The per-type functions
//! take slices and iterators, so a caller that already holds its ids needs
//! no `Vec` to send them; [`ClientFrame::encode`] writes a whole frame.
//! Encoders do not validate: a frame that breaks a rule of section 3 (an
//! empty client id, 300 ids) is written as given and refused by the server,
//! which is what tests of the server need.

use std::fmt::Write as _;

use crate::{ClientFrame, ConversationRef, DeviceName, GroupChange, GroupId, MessageId, MessageKind, UserId, MAX_PAGE};

/// Append `s` as a JSON string literal.
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1F => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// A body as the raw JSON string literal a `send` carries (quotes and
/// escapes included), from the text it should decode to.
pub fn body_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    push_json_str(&mut out, text);
    out
}

/// Append `ids` as a JSON array of decimal strings.
fn push_id_array<T: std::fmt::Display>(out: &mut String, ids: impl IntoIterator<Item = T>) {
    out.push('[');
    for (i, id) in ids.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{id}\"");
    }
    out.push(']');
}

/// `,"<peer_key>":"1"` or `,"group":"9"`.
pub(crate) fn push_conversation(out: &mut String, conversation: ConversationRef, peer_key: &str) {
    let _ = match conversation {
        ConversationRef::Peer(p) => write!(out, r#","{peer_key}":"{p}""#),
        ConversationRef::Group(g) => write!(out, r#","group":"{g}""#),
    };
}

/// `{"type":"send",...}`. `body` is the raw JSON string literal, quotes
/// included (see [`body_literal`]), and is written as is; the client id is
/// escaped as needed (the server refuses client ids with escapes).
pub fn send(out: &mut String, client_id: &str, to: ConversationRef, kind: MessageKind, body: &str) {
    out.push_str(r#"{"type":"send","id":"#);
    push_json_str(out, client_id);
    push_conversation(out, to, "to");
    let _ = write!(out, r#","kind":"{}","body":"#, kind.as_str());
    out.push_str(body);
    out.push('}');
}

/// `{"type":"delivered",...}`: this device received `ids` of the conversation.
pub fn delivered(out: &mut String, conversation: ConversationRef, ids: impl IntoIterator<Item = MessageId>) {
    out.push_str(r#"{"type":"delivered""#);
    push_conversation(out, conversation, "peer");
    out.push_str(r#","ids":"#);
    push_id_array(out, ids);
    out.push('}');
}

/// `{"type":"read",...}`: the user read the conversation up to `up_to`.
pub fn read(out: &mut String, conversation: ConversationRef, up_to: MessageId) {
    out.push_str(r#"{"type":"read""#);
    push_conversation(out, conversation, "peer");
    let _ = write!(out, r#","up_to":"{up_to}"}}"#);
}

/// `{"type":"sync",...}`; `limit` is written only when it is not the
/// default ([`MAX_PAGE`]).
pub fn sync(out: &mut String, after: MessageId, limit: usize) {
    let _ = write!(out, r#"{{"type":"sync","after":"{after}""#);
    if limit != MAX_PAGE {
        let _ = write!(out, r#","limit":{limit}"#);
    }
    out.push('}');
}

/// `{"type":"history",...}`; `before` only when given, `limit` only when it
/// is not the default.
pub fn history(out: &mut String, conversation: ConversationRef, before: Option<MessageId>, limit: usize) {
    out.push_str(r#"{"type":"history""#);
    push_conversation(out, conversation, "peer");
    if let Some(b) = before {
        let _ = write!(out, r#","before":"{b}""#);
    }
    if limit != MAX_PAGE {
        let _ = write!(out, r#","limit":{limit}"#);
    }
    out.push('}');
}

/// `{"type":"create_group",...}`.
pub fn create_group(out: &mut String, request_id: &str, name: &str, members: impl IntoIterator<Item = UserId>) {
    out.push_str(r#"{"type":"create_group","id":"#);
    push_json_str(out, request_id);
    out.push_str(r#","name":"#);
    push_json_str(out, name);
    out.push_str(r#","members":"#);
    push_id_array(out, members);
    out.push('}');
}

/// `{"type":"add_members" | "remove_members" | "promote" | "demote" |
/// "rename_group" | "set_description" | "set_admins_only" |
/// "set_admins_can_delete" | "leave",...}`.
pub fn change_group(out: &mut String, group: GroupId, change: &GroupChange) {
    let ty = match change {
        GroupChange::Add(_) => "add_members",
        GroupChange::Remove(_) => "remove_members",
        GroupChange::Promote(_) => "promote",
        GroupChange::Demote(_) => "demote",
        GroupChange::Rename(_) => "rename_group",
        GroupChange::Describe(_) => "set_description",
        GroupChange::AdminsOnly(_) => "set_admins_only",
        GroupChange::AdminsCanDelete(_) => "set_admins_can_delete",
        GroupChange::Leave => "leave",
    };
    let _ = write!(out, r#"{{"type":"{ty}","group":"{group}""#);
    match change {
        GroupChange::Add(m) | GroupChange::Remove(m) | GroupChange::Promote(m) | GroupChange::Demote(m) => {
            out.push_str(r#","members":"#);
            push_id_array(out, m);
        }
        GroupChange::Rename(name) => {
            out.push_str(r#","name":"#);
            push_json_str(out, name);
        }
        GroupChange::Describe(text) => {
            out.push_str(r#","description":"#);
            push_json_str(out, text);
        }
        GroupChange::AdminsOnly(on) => {
            let _ = write!(out, r#","admins_only":{on}"#);
        }
        GroupChange::AdminsCanDelete(on) => {
            let _ = write!(out, r#","admins_can_delete":{on}"#);
        }
        GroupChange::Leave => {}
    }
    out.push('}');
}

/// `{"type":"group_info",...}`.
pub fn group_info(out: &mut String, group: GroupId) {
    let _ = write!(out, r#"{{"type":"group_info","group":"{group}"}}"#);
}

/// `{"type":"message_info",...}`.
pub fn message_info(out: &mut String, group: GroupId, msg: MessageId) {
    let _ = write!(out, r#"{{"type":"message_info","group":"{group}","msg":"{msg}"}}"#);
}

/// `{"type":"block","user":...}`.
pub fn block(out: &mut String, user: UserId) {
    let _ = write!(out, r#"{{"type":"block","user":"{user}"}}"#);
}

/// `{"type":"unblock","user":...}`.
pub fn unblock(out: &mut String, user: UserId) {
    let _ = write!(out, r#"{{"type":"unblock","user":"{user}"}}"#);
}

/// `{"type":"blocks"}`: ask for the block list.
pub fn blocks(out: &mut String) {
    out.push_str(r#"{"type":"blocks"}"#);
}

/// `auth`: the first frame of a connection opened without a token.
pub fn auth(out: &mut String, token: &str) {
    out.push_str(r#"{"type":"auth","token":"#);
    push_json_str(out, token);
    out.push('}');
}

/// `{"type":"devices"}`: ask for the named devices.
pub fn devices(out: &mut String) {
    out.push_str(r#"{"type":"devices"}"#);
}

/// `{"type":"logout_device","device":...}`.
pub fn logout_device(out: &mut String, device: DeviceName) {
    let _ = write!(out, r#"{{"type":"logout_device","device":"{device}"}}"#);
}

/// `{"type":"conversations",...}`; `before` only when given, `limit` only
/// when it is not the default.
pub fn conversations(out: &mut String, before: Option<MessageId>, limit: usize) {
    out.push_str(r#"{"type":"conversations""#);
    if let Some(b) = before {
        let _ = write!(out, r#","before":"{b}""#);
    }
    if limit != crate::DEFAULT_CONVERSATIONS_PAGE {
        let _ = write!(out, r#","limit":{limit}"#);
    }
    out.push('}');
}

pub use crate::direct_from::client_frames::{direct_from, set_direct_from};
pub use crate::keys::client_frames::{fetch_keys, key_count, upload_keys};
pub use crate::media::client_frames::{complete_media, download_media, upload_media};
pub use crate::presence::client_frames::{set_presence, subscribe_presence, typing, unsubscribe_presence};
pub use crate::push::client_frames::{register_push, unregister_push};

/// `{"type":"delete",...}`: delete `msg` for everyone or for the sender only.
pub fn delete(out: &mut String, conversation: ConversationRef, msg: MessageId, scope: crate::DeleteScope) {
    crate::amend::encode_delete(out, conversation, msg, scope);
}

/// `{"type":"edit",...}`: replace the body of `msg`; `body` is the raw JSON
/// string literal (see [`body_literal`]).
pub fn edit(out: &mut String, conversation: ConversationRef, msg: MessageId, body: &str) {
    crate::amend::encode_edit(out, conversation, msg, body);
}

impl ClientFrame<'_> {
    /// Append this frame as the JSON text a client sends;
    /// [`ClientFrame::parse`] of it returns an equal frame.
    pub fn encode(&self, out: &mut String) {
        match self {
            ClientFrame::Send(s) => send(out, s.client_id, s.to, s.kind, s.body),
            ClientFrame::Delivered { conversation, ids } => delivered(out, *conversation, ids.iter().copied()),
            ClientFrame::Read { conversation, up_to } => read(out, *conversation, *up_to),
            ClientFrame::Sync { after, limit } => sync(out, *after, *limit),
            ClientFrame::History { conversation, before, limit } => history(out, *conversation, *before, *limit),
            ClientFrame::CreateGroup { request_id, name, members } => {
                create_group(out, request_id, name, members.iter().copied())
            }
            ClientFrame::ChangeGroup { group, change } => change_group(out, *group, change),
            ClientFrame::GroupInfo { group } => group_info(out, *group),
            ClientFrame::MessageInfo { group, msg } => message_info(out, *group, *msg),
            ClientFrame::Block { user } => block(out, *user),
            ClientFrame::Unblock { user } => unblock(out, *user),
            ClientFrame::Blocks => blocks(out),
            ClientFrame::Auth { token } => auth(out, token),
            ClientFrame::Devices => devices(out),
            ClientFrame::LogoutDevice { device } => logout_device(out, *device),
            ClientFrame::Conversations { before, limit } => conversations(out, *before, *limit),
            ClientFrame::SubscribePresence { conversation } => subscribe_presence(out, *conversation),
            ClientFrame::UnsubscribePresence { conversation } => unsubscribe_presence(out, *conversation),
            ClientFrame::SetPresence { visible } => set_presence(out, *visible),
            ClientFrame::SetDirectFrom { from } => set_direct_from(out, *from),
            ClientFrame::DirectFrom => direct_from(out),
            ClientFrame::RegisterPush { provider, token } => register_push(out, *provider, token),
            ClientFrame::UnregisterPush => unregister_push(out),
            ClientFrame::UploadKeys { keys, one_time_keys } => upload_keys(out, keys, one_time_keys),
            ClientFrame::FetchKeys { user, device } => fetch_keys(out, *user, *device),
            ClientFrame::KeyCount => key_count(out),
            ClientFrame::UploadMedia { request_id, conversation, kind, size, content_type } => {
                upload_media(out, request_id, *conversation, *kind, *size, content_type)
            }
            ClientFrame::CompleteMedia { request_id, media, upload, tags } => {
                complete_media(out, request_id, media, upload, tags)
            }
            ClientFrame::DownloadMedia { request_id, media } => download_media(out, request_id, media),
            ClientFrame::Typing { conversation, state } => typing(out, *conversation, *state),
            ClientFrame::Delete { conversation, msg, scope } => delete(out, *conversation, *msg, *scope),
            ClientFrame::Edit { conversation, msg, body } => edit(out, *conversation, *msg, body),
        }
    }

    /// This frame as a new `String`.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.encode(&mut out);
        out
    }
}
