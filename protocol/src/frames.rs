//! Frames a client sends, and their validation.
//!
//! Parsing is two steps: serde reads the text into a flat, borrowed
//! [`RawFrame`] (every field optional), then [`ClientFrame::parse`] checks the
//! fields the frame's `type` needs. The split gives each failure its own
//! stable code (`bad_json`, `unknown_type`, `bad_field`) and keeps the message
//! body as the raw JSON text it arrived as, so the server stores and forwards
//! it without unescaping or re-escaping a byte.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{
    presence::TypingState, DeleteScope, DeviceName, DirectFrom, ErrorCode, GroupId, MessageId, ProtocolError, UserId,
    DEVICE_NAME_RULE,
};

/// Largest message body, in bytes of its JSON string literal.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest client-chosen message id, in bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 64;
/// Largest token an `auth` frame carries, in bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Bytes of the longest `send` frame around its body, written compactly:
/// `{"type":"send","id":"<64 bytes>","group":"<20 digits>","kind":"document","body":` and `}`.
pub const SEND_ENVELOPE_BYTES: usize = 144;

/// The largest body a client can send when the server accepts frames of at
/// most `max_frame` bytes: the body limit, or less when a frame that small
/// could not carry a body that large inside the longest envelope. This is
/// what `welcome` announces as `max_body`, so a client that keeps to it
/// never has a `send` closed for its size, whatever its client id and
/// conversation.
pub fn max_body_for_frame(max_frame: usize) -> usize {
    MAX_BODY_BYTES.min(max_frame.saturating_sub(SEND_ENVELOPE_BYTES))
}
/// Largest page a `sync` or `history` request may ask for (and the default).
pub const MAX_PAGE: usize = 500;
/// Largest page of a `conversations` request (it reads one group record
/// and one message per conversation listed).
pub const MAX_CONVERSATIONS_PAGE: usize = 100;
/// The page of a `conversations` request that gives no `limit`.
pub const DEFAULT_CONVERSATIONS_PAGE: usize = 50;
/// Most message ids one `delivered` frame may acknowledge.
pub const MAX_ACK_IDS: usize = 256;
/// Most users one group request may name.
pub const MAX_LISTED_MEMBERS: usize = 256;
/// Longest group name, in bytes.
pub const MAX_GROUP_NAME_BYTES: usize = 100;
/// Longest group description, in bytes.
pub const MAX_GROUP_DESCRIPTION_BYTES: usize = 512;

/// What a message carries. The server does not look inside the body; the
/// kind tells the receiving client how to render it (media travel as a
/// reference to an uploaded object inside the body).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageKind {
    /// Plain text.
    Text = 0,
    /// An image reference.
    Image = 1,
    /// A video reference.
    Video = 2,
    /// An audio or voice note reference.
    Audio = 3,
    /// A document reference.
    Document = 4,
    /// A location.
    Location = 5,
    /// A contact card.
    Contact = 6,
    /// A sticker reference.
    Sticker = 7,
    /// A membership change written by the server into a group's
    /// conversation; clients cannot send it.
    System = 8,
    /// An end-to-end encrypted envelope (docs/PROTOCOL.md, "Encrypted
    /// messages"): the body holds per-device ciphertexts, and what the
    /// message really is (text, image, ...) is inside them, hidden from the
    /// server.
    Encrypted = 9,
}

impl MessageKind {
    /// Every kind, in wire-number order.
    pub const ALL: [MessageKind; 10] = [
        MessageKind::Text,
        MessageKind::Image,
        MessageKind::Video,
        MessageKind::Audio,
        MessageKind::Document,
        MessageKind::Location,
        MessageKind::Contact,
        MessageKind::Sticker,
        MessageKind::System,
        MessageKind::Encrypted,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Image => "image",
            MessageKind::Video => "video",
            MessageKind::Audio => "audio",
            MessageKind::Document => "document",
            MessageKind::Location => "location",
            MessageKind::Contact => "contact",
            MessageKind::Sticker => "sticker",
            MessageKind::System => "system",
            MessageKind::Encrypted => "encrypted",
        }
    }

    /// Parse the wire name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The compact form stores use.
    pub fn to_u8(self) -> u8 {
        self as u8
    }

    /// Inverse of [`MessageKind::to_u8`].
    pub fn from_u8(b: u8) -> Option<Self> {
        Self::ALL.get(usize::from(b)).copied()
    }
}

/// Which conversation a request is about, from the requester's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConversationRef {
    /// The direct conversation with this user.
    Peer(UserId),
    /// A group conversation.
    Group(GroupId),
}

/// A change to a group, requested by a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupChange {
    /// Add these users (admins only).
    Add(Vec<UserId>),
    /// Remove these users (admins only).
    Remove(Vec<UserId>),
    /// Make these members admins (admins only).
    Promote(Vec<UserId>),
    /// Make these admins plain members (admins only; never the last admin).
    Demote(Vec<UserId>),
    /// Rename the group (admins only).
    Rename(String),
    /// Set the group's description; empty clears it (admins only).
    Describe(String),
    /// Turn the admins-only send mode on or off (admins only).
    AdminsOnly(bool),
    /// Let admins delete members' messages for everyone, or stop (admins only).
    AdminsCanDelete(bool),
    /// The requester leaves.
    Leave,
}

/// A `send` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Send<'a> {
    /// Client-chosen id; resending it returns the original message id.
    pub client_id: &'a str,
    /// Recipient.
    pub to: ConversationRef,
    /// What the body is.
    pub kind: MessageKind,
    /// The body as its raw JSON string literal, quotes included.
    pub body: &'a str,
    /// For kind `encrypted`: the device the envelope says wrote it (`d`),
    /// read from `body` by the parser, which refuses a malformed envelope;
    /// `None` for every other kind. The encoder ignores it.
    pub envelope_device: Option<DeviceName>,
}

/// A validated frame from a client. Borrowed from the text it was parsed
/// from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientFrame<'a> {
    /// Send a message.
    Send(Send<'a>),
    /// This device received these messages of the conversation.
    Delivered {
        /// The conversation the messages belong to.
        conversation: ConversationRef,
        /// Message ids.
        ids: Vec<MessageId>,
    },
    /// The user read the conversation up to and including this message.
    Read {
        /// The conversation.
        conversation: ConversationRef,
        /// Last message read.
        up_to: MessageId,
    },
    /// Replay every inbox event after `after`, then `synced`.
    Sync {
        /// Last event id the device saw (`0` for everything).
        after: MessageId,
        /// Events per page.
        limit: usize,
    },
    /// One page of a conversation's messages, newest first, older than `before`.
    History {
        /// The conversation.
        conversation: ConversationRef,
        /// Exclusive upper bound; `None` for the newest.
        before: Option<MessageId>,
        /// Messages per page.
        limit: usize,
    },
    /// Create a group; the requester becomes its admin.
    CreateGroup {
        /// Client-chosen request id; resending it returns the same group.
        request_id: &'a str,
        /// Display name.
        name: String,
        /// Initial members besides the requester.
        members: Vec<UserId>,
    },
    /// Change a group's members, admins, name, description or send mode.
    ChangeGroup {
        /// The group.
        group: GroupId,
        /// What to change.
        change: GroupChange,
    },
    /// Name, members and admins of a group.
    GroupInfo {
        /// The group.
        group: GroupId,
    },
    /// Who a message of the requester was delivered to and read by.
    MessageInfo {
        /// The group.
        group: GroupId,
        /// The message.
        msg: MessageId,
    },
    /// Refuse direct messages and receipts from this user.
    Block {
        /// The user to block.
        user: UserId,
    },
    /// Take this user off the requester's block list.
    Unblock {
        /// The user to unblock.
        user: UserId,
    },
    /// The requester's block list.
    Blocks,
    /// Authenticate a connection opened without a token: its first frame.
    Auth {
        /// The token, as it would be passed in the query string.
        token: Cow<'a, str>,
    },
    /// The requester's named devices (docs/PROTOCOL.md, "Devices").
    Devices,
    /// Log out one of the requester's devices: its tokens issued until now
    /// are refused and its connections closed with 4004.
    LogoutDevice {
        /// The device.
        device: DeviceName,
    },
    /// One page of the requester's conversation list, most recent first.
    Conversations {
        /// Cursor from the previous page's `next` (the id of its last
        /// conversation's last message); `None` for the first page.
        before: Option<MessageId>,
        /// Conversations per page.
        limit: usize,
    },
    /// Watch the presence of the conversation's other members.
    SubscribePresence {
        /// The conversation.
        conversation: ConversationRef,
    },
    /// Stop watching them.
    UnsubscribePresence {
        /// The conversation.
        conversation: ConversationRef,
    },
    /// Show or hide the requester's presence to everyone.
    SetPresence {
        /// Whether others see it.
        visible: bool,
    },
    /// The requester is typing (or stopped) in the conversation.
    Typing {
        /// The conversation.
        conversation: ConversationRef,
        /// Typing or paused.
        state: TypingState,
    },
    /// Delete a message of the conversation, for everyone or for the
    /// requester only (see `amend`).
    Delete {
        /// The conversation.
        conversation: ConversationRef,
        /// The message.
        msg: MessageId,
        /// For whom.
        scope: DeleteScope,
    },
    /// Replace the body of the requester's own message.
    Edit {
        /// The conversation.
        conversation: ConversationRef,
        /// The message.
        msg: MessageId,
        /// The new body as its raw JSON string literal, quotes included.
        body: &'a str,
    },
    /// Set whom the requester takes direct messages from.
    SetDirectFrom {
        /// Everyone, or contacts only.
        from: DirectFrom,
    },
    /// The requester's direct message setting.
    DirectFrom,
    /// Register where the requester's device is notified while it is not
    /// connected (see `push`); replaces the device's earlier target.
    RegisterPush {
        /// Who delivers.
        provider: crate::PushProvider,
        /// The device's token with that provider.
        token: Cow<'a, str>,
    },
    /// Remove the requester's device's push target, if it has one.
    UnregisterPush,
    /// Publish the requester's device's keys and add one-time keys (see
    /// `keys`; signatures are checked by the gateway).
    UploadKeys {
        /// The device's signing, identity and fallback keys.
        keys: Box<crate::DeviceKeys>,
        /// One-time keys to add, each id once.
        one_time_keys: Vec<crate::SignedKey>,
    },
    /// A key bundle for every device of `user`, or for `device` only; each
    /// claims one of that device's one-time keys.
    FetchKeys {
        /// Whose keys.
        user: UserId,
        /// One device only.
        device: Option<crate::DeviceName>,
    },
    /// How many one-time keys the requester's device has left.
    KeyCount,
    /// Ask for an upload slot: pre-signed `PUT` URLs for a file of `size`
    /// bytes for the conversation (docs/MEDIA.md).
    UploadMedia {
        /// The client's request id, echoed in the answer.
        request_id: &'a str,
        /// The conversation the file is for.
        conversation: ConversationRef,
        /// What it is, for its size limit.
        kind: crate::MediaKind,
        /// Its exact size in bytes (encrypted, as uploaded).
        size: u64,
        /// Its MIME type, served back with it.
        content_type: String,
    },
    /// Every part of an upload is `PUT`: make the object downloadable.
    CompleteMedia {
        /// The client's request id, echoed in the answer.
        request_id: &'a str,
        /// The media id of the `upload_slot`.
        media: String,
        /// The upload id of the `upload_slot`.
        upload: String,
        /// The `ETag` each part's `PUT` answered, part 1 first.
        tags: Vec<String>,
    },
    /// Ask for a pre-signed `GET` URL of a media object.
    DownloadMedia {
        /// The client's request id, echoed in the answer.
        request_id: &'a str,
        /// The media id.
        media: String,
    },
}

#[derive(Deserialize)]
pub(crate) struct RawFrame<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) to: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) peer: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) kind: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) body: Option<&'a RawValue>,
    #[serde(borrow)]
    ids: Option<&'a RawValue>,
    #[serde(borrow)]
    up_to: Option<&'a RawValue>,
    #[serde(borrow)]
    after: Option<&'a RawValue>,
    #[serde(borrow)]
    before: Option<&'a RawValue>,
    #[serde(borrow)]
    limit: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) group: Option<&'a RawValue>,
    #[serde(borrow)]
    name: Option<&'a RawValue>,
    #[serde(borrow)]
    members: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) msg: Option<&'a RawValue>,
    #[serde(borrow)]
    description: Option<&'a RawValue>,
    #[serde(borrow)]
    admins_only: Option<&'a RawValue>,
    #[serde(borrow)]
    admins_can_delete: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) user: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) token: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) provider: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) device: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) signing_key: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) identity_key: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) identity_signature: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) fallback_key: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) one_time_keys: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) size: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) content_type: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) media: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) upload: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) tags: Option<&'a RawValue>,
    #[serde(borrow)]
    visible: Option<&'a RawValue>,
    #[serde(borrow)]
    state: Option<&'a RawValue>,
    #[serde(rename = "for", borrow)]
    pub(crate) scope: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) from: Option<&'a RawValue>,
}

pub(crate) fn bad(field: &str, why: &str) -> ProtocolError {
    ProtocolError::new(ErrorCode::BadField, format!("field `{field}`: {why}"))
}

pub(crate) fn required<'a>(v: Option<&'a RawValue>, field: &str) -> Result<&'a RawValue, ProtocolError> {
    v.ok_or_else(|| bad(field, "missing"))
}

pub(crate) fn id_field<T: for<'de> Deserialize<'de>>(v: &RawValue, field: &str) -> Result<T, ProtocolError> {
    serde_json::from_str(v.get()).map_err(|_| bad(field, "must be an id as a decimal string"))
}

fn limit_field(v: Option<&RawValue>) -> Result<usize, ProtocolError> {
    match v {
        None => Ok(MAX_PAGE),
        Some(v) => match serde_json::from_str::<u64>(v.get()) {
            Ok(n) if (1..=MAX_PAGE as u64).contains(&n) => Ok(n as usize),
            _ => Err(bad("limit", "must be an integer from 1 to 500")),
        },
    }
}

/// The conversation named by `peer_key` (`peer` or `to`) or by `group`:
/// exactly one of the two.
pub(crate) fn conversation_field(
    raw: &RawFrame<'_>,
    peer_key: &str,
    peer: Option<&RawValue>,
) -> Result<ConversationRef, ProtocolError> {
    match (peer, raw.group) {
        (Some(p), None) => Ok(ConversationRef::Peer(id_field(p, peer_key)?)),
        (None, Some(g)) => Ok(ConversationRef::Group(id_field(g, "group")?)),
        (None, None) => Err(bad(peer_key, "missing (or give `group`)")),
        (Some(_), Some(_)) => Err(bad("group", &format!("give either `{peer_key}` or `group`, not both"))),
    }
}

fn group_field(raw: &RawFrame<'_>) -> Result<GroupId, ProtocolError> {
    id_field(required(raw.group, "group")?, "group")
}

fn members_field(raw: &RawFrame<'_>, allow_empty: bool) -> Result<Vec<UserId>, ProtocolError> {
    let members: Vec<UserId> = match raw.members {
        None if allow_empty => Vec::new(),
        None => return Err(bad("members", "missing")),
        Some(v) => serde_json::from_str(v.get())
            .map_err(|_| bad("members", "must be an array of user ids as decimal strings"))?,
    };
    if !allow_empty && members.is_empty() {
        return Err(bad("members", "must list at least one user"));
    }
    if members.len() > MAX_LISTED_MEMBERS {
        return Err(bad("members", "must list at most 256 users"));
    }
    Ok(members)
}

/// A JSON string literal, borrowed when it has no escapes, else decoded.
pub(crate) fn str_field<'a>(v: &'a RawValue, field: &str) -> Result<Cow<'a, str>, ProtocolError> {
    if let Ok(s) = serde_json::from_str::<&'a str>(v.get()) {
        return Ok(Cow::Borrowed(s));
    }
    serde_json::from_str::<String>(v.get()).map(Cow::Owned).map_err(|_| bad(field, "must be a string"))
}

impl<'a> ClientFrame<'a> {
    /// Parse and validate one text frame.
    pub fn parse(text: &'a str) -> Result<Self, ProtocolError> {
        // serde would also read a struct from a JSON array; frames are objects.
        if !text.trim_start().starts_with('{') {
            return Err(ProtocolError::new(ErrorCode::BadJson, "a frame is a JSON object"));
        }
        let raw: RawFrame<'a> = serde_json::from_str(text)
            .map_err(|e| ProtocolError::new(ErrorCode::BadJson, format!("not a JSON object of the protocol: {e}")))?;
        let ty = raw.ty.as_deref().ok_or_else(|| bad("type", "missing"))?;
        match ty {
            "send" => parse_send(&raw),
            "delivered" => {
                let conversation = conversation_field(&raw, "peer", raw.peer)?;
                let ids: Vec<MessageId> = serde_json::from_str(required(raw.ids, "ids")?.get())
                    .map_err(|_| bad("ids", "must be an array of ids as decimal strings"))?;
                if ids.is_empty() || ids.len() > MAX_ACK_IDS {
                    return Err(bad("ids", "must hold 1 to 256 ids"));
                }
                Ok(ClientFrame::Delivered { conversation, ids })
            }
            "read" => Ok(ClientFrame::Read {
                conversation: conversation_field(&raw, "peer", raw.peer)?,
                up_to: id_field(required(raw.up_to, "up_to")?, "up_to")?,
            }),
            "sync" => Ok(ClientFrame::Sync {
                after: match raw.after {
                    Some(v) => id_field(v, "after")?,
                    None => MessageId(0),
                },
                limit: limit_field(raw.limit)?,
            }),
            "history" => Ok(ClientFrame::History {
                conversation: conversation_field(&raw, "peer", raw.peer)?,
                before: raw.before.map(|v| id_field(v, "before")).transpose()?,
                limit: limit_field(raw.limit)?,
            }),
            "create_group" => parse_create_group(&raw),
            "add_members" => Ok(ClientFrame::ChangeGroup {
                group: group_field(&raw)?,
                change: GroupChange::Add(members_field(&raw, false)?),
            }),
            "remove_members" => Ok(ClientFrame::ChangeGroup {
                group: group_field(&raw)?,
                change: GroupChange::Remove(members_field(&raw, false)?),
            }),
            "promote" => Ok(ClientFrame::ChangeGroup {
                group: group_field(&raw)?,
                change: GroupChange::Promote(members_field(&raw, false)?),
            }),
            "demote" => Ok(ClientFrame::ChangeGroup {
                group: group_field(&raw)?,
                change: GroupChange::Demote(members_field(&raw, false)?),
            }),
            "rename_group" => Ok(ClientFrame::ChangeGroup {
                group: group_field(&raw)?,
                change: GroupChange::Rename(name_field(&raw)?),
            }),
            "set_description" => {
                let description = str_field(required(raw.description, "description")?, "description")?.into_owned();
                if description.len() > MAX_GROUP_DESCRIPTION_BYTES {
                    return Err(bad("description", "must be at most 512 bytes"));
                }
                Ok(ClientFrame::ChangeGroup { group: group_field(&raw)?, change: GroupChange::Describe(description) })
            }
            "set_admins_only" => {
                let on: bool = serde_json::from_str(required(raw.admins_only, "admins_only")?.get())
                    .map_err(|_| bad("admins_only", "must be true or false"))?;
                Ok(ClientFrame::ChangeGroup { group: group_field(&raw)?, change: GroupChange::AdminsOnly(on) })
            }
            "set_admins_can_delete" => {
                let on: bool = serde_json::from_str(required(raw.admins_can_delete, "admins_can_delete")?.get())
                    .map_err(|_| bad("admins_can_delete", "must be true or false"))?;
                Ok(ClientFrame::ChangeGroup { group: group_field(&raw)?, change: GroupChange::AdminsCanDelete(on) })
            }
            "leave" => Ok(ClientFrame::ChangeGroup { group: group_field(&raw)?, change: GroupChange::Leave }),
            "group_info" => Ok(ClientFrame::GroupInfo { group: group_field(&raw)? }),
            "message_info" => Ok(ClientFrame::MessageInfo {
                group: group_field(&raw)?,
                msg: id_field(required(raw.msg, "msg")?, "msg")?,
            }),
            "block" => Ok(ClientFrame::Block { user: id_field(required(raw.user, "user")?, "user")? }),
            "unblock" => Ok(ClientFrame::Unblock { user: id_field(required(raw.user, "user")?, "user")? }),
            "blocks" => Ok(ClientFrame::Blocks),
            "auth" => {
                let token = str_field(required(raw.token, "token")?, "token")?;
                if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
                    return Err(bad("token", "must be 1 to 4096 bytes"));
                }
                Ok(ClientFrame::Auth { token })
            }
            "devices" => Ok(ClientFrame::Devices),
            "logout_device" => Ok(ClientFrame::LogoutDevice { device: device_field(&raw)? }),
            "conversations" => Ok(ClientFrame::Conversations {
                before: raw.before.map(|v| id_field(v, "before")).transpose()?,
                limit: match raw.limit {
                    None => DEFAULT_CONVERSATIONS_PAGE,
                    Some(v) => match serde_json::from_str::<u64>(v.get()) {
                        Ok(n) if (1..=MAX_CONVERSATIONS_PAGE as u64).contains(&n) => n as usize,
                        _ => return Err(bad("limit", "must be an integer from 1 to 100")),
                    },
                },
            }),
            "subscribe_presence" => {
                Ok(ClientFrame::SubscribePresence { conversation: conversation_field(&raw, "peer", raw.peer)? })
            }
            "unsubscribe_presence" => {
                Ok(ClientFrame::UnsubscribePresence { conversation: conversation_field(&raw, "peer", raw.peer)? })
            }
            "set_presence" => Ok(ClientFrame::SetPresence {
                visible: serde_json::from_str(required(raw.visible, "visible")?.get())
                    .map_err(|_| bad("visible", "must be true or false"))?,
            }),
            "typing" => {
                let conversation = conversation_field(&raw, "peer", raw.peer)?;
                let state = str_field(required(raw.state, "state")?, "state")?;
                let state =
                    TypingState::from_name(&state).ok_or_else(|| bad("state", "must be \"typing\" or \"paused\""))?;
                Ok(ClientFrame::Typing { conversation, state })
            }
            "delete" => crate::amend::parse_delete(&raw),
            "edit" => crate::amend::parse_edit(&raw),
            "set_direct_from" => crate::direct_from::parse_set(&raw),
            "direct_from" => Ok(ClientFrame::DirectFrom),
            "register_push" => crate::push::parse_register(&raw),
            "unregister_push" => Ok(ClientFrame::UnregisterPush),
            "upload_keys" => crate::keys::parse_upload_keys(&raw),
            "fetch_keys" => crate::keys::parse_fetch_keys(&raw),
            "key_count" => Ok(ClientFrame::KeyCount),
            "upload_media" => crate::media::parse_upload(&raw),
            "complete_media" => crate::media::parse_complete(&raw),
            "download_media" => crate::media::parse_download(&raw),
            other => {
                let shown: String = other.chars().take(32).collect();
                Err(ProtocolError::new(ErrorCode::UnknownType, format!("unknown frame type `{shown}`")))
            }
        }
    }
}

/// The client-chosen `id`: a plain string literal (escapes are refused so
/// it can be echoed back verbatim) of 1 to 64 bytes.
pub(crate) fn client_id_field<'a>(raw: &RawFrame<'a>) -> Result<&'a str, ProtocolError> {
    let id = match str_field(required(raw.id, "id")?, "id")? {
        Cow::Borrowed(s) => s,
        Cow::Owned(_) => return Err(bad("id", "must not contain escape sequences")),
    };
    if id.is_empty() || id.len() > MAX_CLIENT_ID_BYTES {
        let mut e = bad("id", "must be 1 to 64 bytes");
        e.reference = Some(id.to_owned());
        return Err(e);
    }
    Ok(id)
}

/// A group name: a visible character, at most 100 bytes (at creation and
/// on renaming alike).
fn name_field(raw: &RawFrame<'_>) -> Result<String, ProtocolError> {
    let name = str_field(required(raw.name, "name")?, "name")?.into_owned();
    if name.trim().is_empty() || name.len() > MAX_GROUP_NAME_BYTES {
        return Err(bad("name", "must have a visible character and be at most 100 bytes"));
    }
    Ok(name)
}

/// A device name (see [`DeviceName`]).
fn device_field(raw: &RawFrame<'_>) -> Result<DeviceName, ProtocolError> {
    let name = str_field(required(raw.device, "device")?, "device").map_err(|_| bad("device", DEVICE_NAME_RULE))?;
    DeviceName::new(&name).ok_or_else(|| bad("device", DEVICE_NAME_RULE))
}

fn parse_create_group<'a>(raw: &RawFrame<'a>) -> Result<ClientFrame<'a>, ProtocolError> {
    let request_id = client_id_field(raw)?;
    let with_ref = |mut e: ProtocolError| {
        e.reference = Some(request_id.to_owned());
        e
    };
    let name = name_field(raw).map_err(with_ref)?;
    let members = members_field(raw, true).map_err(with_ref)?;
    Ok(ClientFrame::CreateGroup { request_id, name, members })
}

fn parse_send<'a>(raw: &RawFrame<'a>) -> Result<ClientFrame<'a>, ProtocolError> {
    let client_id = client_id_field(raw)?;
    let with_ref = |mut e: ProtocolError| {
        e.reference = Some(client_id.to_owned());
        e
    };
    let to = conversation_field(raw, "to", raw.to).map_err(with_ref)?;
    let kind = match raw.kind {
        None => MessageKind::Text,
        Some(v) => {
            let name = str_field(v, "kind").map_err(with_ref)?;
            MessageKind::from_name(&name).filter(|k| *k != MessageKind::System).ok_or_else(|| {
                with_ref(bad(
                    "kind",
                    "must be one of text, image, video, audio, document, location, contact, sticker, encrypted",
                ))
            })?
        }
    };
    let (body, decoded) = decoded_body_field(raw).map_err(with_ref)?;
    let envelope_device = match kind {
        MessageKind::Encrypted => Some(
            crate::envelope::check_envelope(&decoded)
                .map_err(|why| with_ref(bad("body", &format!("encrypted envelope: {why}"))))?
                .device,
        ),
        _ => None,
    };
    Ok(ClientFrame::Send(Send { client_id, to, kind, body, envelope_device }))
}

/// The `body` of a `send` or `edit`: a JSON string literal of at most
/// [`MAX_BODY_BYTES`], kept raw.
pub(crate) fn text_body_field<'a>(raw: &RawFrame<'a>) -> Result<&'a str, ProtocolError> {
    decoded_body_field(raw).map(|(body, _)| body)
}

/// The body's raw literal and the text it decodes to (decoded once: the
/// envelope check of an encrypted `send` reads the text).
fn decoded_body_field<'a>(raw: &RawFrame<'a>) -> Result<(&'a str, Cow<'a, str>), ProtocolError> {
    let body_literal = required(raw.body, "body")?;
    let body = body_literal.get();
    // Decoding (not just scanning) the literal refuses escapes of lone UTF-16
    // surrogates (`"\ude00"`): the scan lets them through, but recipients
    // that decode the forwarded body would fail on every replay of it.
    let decoded = match body.starts_with('"').then(|| str_field(body_literal, "body")) {
        Some(Ok(text)) => text,
        _ => return Err(bad("body", "must be a string")),
    };
    if body.len() > MAX_BODY_BYTES {
        return Err(bad("body", "is larger than 65536 bytes"));
    }
    Ok((body, decoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        ClientFrame::parse(text).unwrap_err().code
    }

    #[test]
    fn parses_send_keeping_body_raw() {
        let f = ClientFrame::parse(r#"{"type":"send","id":"c1","to":"2","kind":"image","body":"a\"b"}"#).unwrap();
        assert_eq!(
            f,
            ClientFrame::Send(Send {
                client_id: "c1",
                to: ConversationRef::Peer(UserId(2)),
                kind: MessageKind::Image,
                body: r#""a\"b""#,
                envelope_device: None,
            })
        );
    }

    #[test]
    fn kind_defaults_to_text() {
        match ClientFrame::parse(r#"{"type":"send","id":"c","to":"2","body":""}"#).unwrap() {
            ClientFrame::Send(s) => assert_eq!(s.kind, MessageKind::Text),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_malformation_has_its_code() {
        assert_eq!(code("{"), ErrorCode::BadJson);
        assert_eq!(code("[1,2]"), ErrorCode::BadJson);
        assert_eq!(code(r#"["history",null,null,"61"]"#), ErrorCode::BadJson);
        assert_eq!(code(r#"{"type":"nope"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"kind":"text"}"#), ErrorCode::BadField);
        assert_eq!(code(r#"{"type":"send","id":"c","to":2,"body":""}"#), ErrorCode::BadField);
        assert_eq!(code(r#"{"type":"send","id":"c","to":"2","body":5}"#), ErrorCode::BadField);
        assert_eq!(code(r#"{"type":"send","id":"","to":"2","body":""}"#), ErrorCode::BadField);
        assert_eq!(code(r#"{"type":"send","id":"c","to":"2","kind":"gif","body":""}"#), ErrorCode::BadField);
        assert_eq!(code(r#"{"type":"delivered","peer":"1","ids":[]}"#), ErrorCode::BadField);
        assert_eq!(code(r#"{"type":"sync","limit":0}"#), ErrorCode::BadField);
        assert_eq!(code(r#"{"type":"sync","limit":501}"#), ErrorCode::BadField);
        assert_eq!(code(r#"{"type":"history"}"#), ErrorCode::BadField);
    }

    #[test]
    fn errors_on_send_carry_the_client_id() {
        let e = ClientFrame::parse(r#"{"type":"send","id":"abc","to":"x","body":""}"#).unwrap_err();
        assert_eq!(e.reference.as_deref(), Some("abc"));
    }

    #[test]
    fn body_with_a_lone_surrogate_escape_is_refused() {
        // Found by the client_frame fuzz target (fuzz/corpus/client_frame/lone-surrogate-body).
        let e = ClientFrame::parse(r#"{"type":"send","id":"c","group":"9","body":"\"\tsu26\ude006\\"}"#).unwrap_err();
        assert_eq!((e.code, e.reference.as_deref()), (ErrorCode::BadField, Some("c")));
        assert_eq!(code(r#"{"type":"send","id":"c","to":"2","body":"\ud83d"}"#), ErrorCode::BadField);
        // A surrogate pair is one character and stays as written.
        match ClientFrame::parse(r#"{"type":"send","id":"c","to":"2","body":"\ud83d\ude00"}"#).unwrap() {
            ClientFrame::Send(s) => assert_eq!(s.body, r#""\ud83d\ude00""#),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn encrypted_sends_carry_a_well_formed_envelope() {
        let good = r#"{"type":"send","id":"e1","group":"9","kind":"encrypted","body":"{\"v\":1,\"d\":\"phone\",\"k\":[],\"g\":{\"s\":\"AAA\",\"c\":\"AQ\"}}"}"#;
        match ClientFrame::parse(good).unwrap() {
            ClientFrame::Send(s) => assert_eq!(s.envelope_device, DeviceName::new("phone")),
            other => panic!("{other:?}"),
        }
        // Escapes that decode to the same envelope are the same envelope.
        let escaped = good.replace("\\\"v", "\\u0022v");
        assert!(ClientFrame::parse(&escaped).is_ok(), "{escaped}");
        let e =
            ClientFrame::parse(r#"{"type":"send","id":"e2","to":"2","kind":"encrypted","body":"hello"}"#).unwrap_err();
        assert_eq!((e.code, e.reference.as_deref()), (ErrorCode::BadField, Some("e2")));
        assert_eq!(e.message, "field `body`: encrypted envelope: must start with {\"v\":");
        match ClientFrame::parse(r#"{"type":"send","id":"t","to":"2","body":"{\"v\":2}"}"#).unwrap() {
            ClientFrame::Send(s) => assert_eq!(s.envelope_device, None, "only `encrypted` bodies are envelopes"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn body_limit_is_enforced() {
        let big = "x".repeat(MAX_BODY_BYTES);
        let text = format!(r#"{{"type":"send","id":"c","to":"2","body":"{big}"}}"#);
        assert_eq!(code(&text), ErrorCode::BadField);
        let ok = "x".repeat(MAX_BODY_BYTES - 2);
        let text = format!(r#"{{"type":"send","id":"c","to":"2","body":"{ok}"}}"#);
        assert!(ClientFrame::parse(&text).is_ok());
    }

    #[test]
    fn the_longest_envelope_with_the_announced_body_fills_the_frame_exactly() {
        let id = "i".repeat(MAX_CLIENT_ID_BYTES);
        for max_frame in [1024, 4096, 65_000] {
            let max_body = max_body_for_frame(max_frame);
            let body = "b".repeat(max_body - 2);
            let text =
                format!(r#"{{"type":"send","id":"{id}","group":"{}","kind":"document","body":"{body}"}}"#, u64::MAX);
            assert_eq!(text.len(), max_frame, "max_frame {max_frame}");
            assert!(ClientFrame::parse(&text).is_ok());
        }
        assert_eq!(max_body_for_frame(131_072), MAX_BODY_BYTES, "the default frame carries the whole body limit");
        assert_eq!(max_body_for_frame(MAX_BODY_BYTES + SEND_ENVELOPE_BYTES), MAX_BODY_BYTES);
        assert_eq!(max_body_for_frame(MAX_BODY_BYTES + SEND_ENVELOPE_BYTES - 1), MAX_BODY_BYTES - 1);
        assert_eq!(max_body_for_frame(10), 0);
    }

    #[test]
    fn group_frames() {
        assert_eq!(
            ClientFrame::parse(r#"{"type":"send","id":"g1","group":"9","body":"hi"}"#).unwrap(),
            ClientFrame::Send(Send {
                client_id: "g1",
                to: ConversationRef::Group(GroupId(9)),
                kind: MessageKind::Text,
                body: "\"hi\"",
                envelope_device: None,
            })
        );
        assert_eq!(
            ClientFrame::parse(r#"{"type":"create_group","id":"r","name":"Team","members":["2","3"]}"#).unwrap(),
            ClientFrame::CreateGroup { request_id: "r", name: "Team".into(), members: vec![UserId(2), UserId(3)] }
        );
        assert_eq!(
            ClientFrame::parse(r#"{"type":"remove_members","group":"9","members":["3"]}"#).unwrap(),
            ClientFrame::ChangeGroup { group: GroupId(9), change: GroupChange::Remove(vec![UserId(3)]) }
        );
        assert_eq!(
            ClientFrame::parse(r#"{"type":"read","group":"9","up_to":"5"}"#).unwrap(),
            ClientFrame::Read { conversation: ConversationRef::Group(GroupId(9)), up_to: MessageId(5) }
        );
        assert_eq!(code(r#"{"type":"read","group":"9","peer":"1","up_to":"5"}"#), ErrorCode::BadField);
        assert_eq!(code(r#"{"type":"add_members","group":"9","members":[]}"#), ErrorCode::BadField);
        assert_eq!(code(r#"{"type":"create_group","id":"r","name":"","members":[]}"#), ErrorCode::BadField);
        assert_eq!(code(r#"{"type":"send","id":"s","group":"9","kind":"system","body":""}"#), ErrorCode::BadField);
        assert_eq!(code(r#"{"type":"message_info","group":"9"}"#), ErrorCode::BadField);
    }

    #[test]
    fn sync_defaults() {
        assert_eq!(
            ClientFrame::parse(r#"{"type":"sync"}"#).unwrap(),
            ClientFrame::Sync { after: MessageId(0), limit: MAX_PAGE }
        );
    }

    #[test]
    fn kinds_round_trip() {
        for k in MessageKind::ALL {
            assert_eq!(MessageKind::from_u8(k.to_u8()), Some(k));
            assert_eq!(MessageKind::from_name(k.as_str()), Some(k));
        }
        assert_eq!(MessageKind::from_u8(200), None);
    }

    #[test]
    fn group_administration_frames_parse_and_refuse_bad_input() {
        let change = |text: &str| match ClientFrame::parse(text).unwrap() {
            ClientFrame::ChangeGroup { group: GroupId(9), change } => change,
            other => panic!("{other:?}"),
        };
        let message = |text: &str| ClientFrame::parse(text).unwrap_err().message;
        assert_eq!(change(r#"{"type":"demote","group":"9","members":["2"]}"#), GroupChange::Demote(vec![UserId(2)]));
        assert_eq!(
            change(r#"{"type":"rename_group","group":"9","name":"Caf\u00e9"}"#),
            GroupChange::Rename("Café".into())
        );
        assert_eq!(
            change(r#"{"type":"set_description","group":"9","description":""}"#),
            GroupChange::Describe("".into())
        );
        assert_eq!(
            change(r#"{"type":"set_admins_only","group":"9","admins_only":true}"#),
            GroupChange::AdminsOnly(true)
        );
        assert_eq!(
            change(r#"{"type":"set_admins_only","group":"9","admins_only":false}"#),
            GroupChange::AdminsOnly(false)
        );
        let long_name = format!(r#"{{"type":"rename_group","group":"9","name":"{}"}}"#, "n".repeat(101));
        let long_text = format!(r#"{{"type":"set_description","group":"9","description":"{}"}}"#, "d".repeat(513));
        let just_fits = format!(r#"{{"type":"set_description","group":"9","description":"{}"}}"#, "d".repeat(512));
        assert!(ClientFrame::parse(&just_fits).is_ok());
        for (text, why) in [
            (r#"{"type":"demote","group":"9","members":[]}"#, "field `members`: must list at least one user"),
            (r#"{"type":"demote","group":"9"}"#, "field `members`: missing"),
            (
                r#"{"type":"rename_group","group":"9","name":"  "}"#,
                "field `name`: must have a visible character and be at most 100 bytes",
            ),
            (r#"{"type":"rename_group","group":"9"}"#, "field `name`: missing"),
            (&long_name, "field `name`: must have a visible character and be at most 100 bytes"),
            (r#"{"type":"set_description","group":"9","description":7}"#, "field `description`: must be a string"),
            (r#"{"type":"set_description","group":"9"}"#, "field `description`: missing"),
            (&long_text, "field `description`: must be at most 512 bytes"),
            (
                r#"{"type":"set_admins_only","group":"9","admins_only":"yes"}"#,
                "field `admins_only`: must be true or false",
            ),
            (r#"{"type":"set_admins_only","group":"9"}"#, "field `admins_only`: missing"),
            (r#"{"type":"set_admins_only","admins_only":true}"#, "field `group`: missing"),
        ] {
            assert_eq!(code(text), ErrorCode::BadField, "{text}");
            assert_eq!(message(text), why, "{text}");
        }
    }
}
