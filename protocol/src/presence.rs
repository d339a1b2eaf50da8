//! Presence and typing: the frames of both directions (PROTOCOL.md,
//! "Presence and typing").
//!
//! Kept apart from the message frames because nothing here is stored: a
//! presence or typing frame is built, fanned out and forgotten, and never
//! comes back through `sync`. The client side's frames parse in
//! `frames.rs` with the others (one `type` switch); their encoders, the
//! server's encoders and the server frames' decoding live here and are
//! re-exported from [`crate::client`], [`crate::server`] and
//! [`crate::ServerFrame::parse`].

use std::{fmt::Write as _, io::Write as _};

use serde::Deserialize;

use crate::{ConversationRef, DecodeError, GroupId, ServerFrame, UserId};

/// Most conversations one connection may watch the presence of at once.
pub const MAX_PRESENCE_SUBSCRIPTIONS: usize = 32;

/// What a `typing` frame says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypingState {
    /// The user is composing a message.
    Typing,
    /// The user stopped (or the typing state expired, or the device left).
    Paused,
}

impl TypingState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TypingState::Typing => "typing",
            TypingState::Paused => "paused",
        }
    }

    /// Parse the wire name.
    pub fn from_name(s: &str) -> Option<Self> {
        [TypingState::Typing, TypingState::Paused].into_iter().find(|t| t.as_str() == s)
    }
}

/// What a user's presence looks like to someone allowed to see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresenceState {
    /// At least one device connected.
    Online,
    /// No device connected; `last_seen` is when the last one left (Unix
    /// milliseconds), when the gateway knows.
    Offline {
        /// Unix milliseconds.
        last_seen: Option<u64>,
    },
    /// The user turned presence off, or one of the two blocks the other.
    Hidden,
}

impl PresenceState {
    /// The wire name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceState::Online => "online",
            PresenceState::Offline { .. } => "offline",
            PresenceState::Hidden => "hidden",
        }
    }
}

/// Client frame encoders (re-exported from [`crate::client`]).
pub(crate) mod client_frames {
    use super::*;

    fn conversation(out: &mut String, c: ConversationRef) {
        let _ = match c {
            ConversationRef::Peer(p) => write!(out, r#","peer":"{p}""#),
            ConversationRef::Group(g) => write!(out, r#","group":"{g}""#),
        };
    }

    /// `{"type":"subscribe_presence","peer"|"group":...}`.
    pub fn subscribe_presence(out: &mut String, c: ConversationRef) {
        out.push_str(r#"{"type":"subscribe_presence""#);
        conversation(out, c);
        out.push('}');
    }

    /// `{"type":"unsubscribe_presence","peer"|"group":...}`.
    pub fn unsubscribe_presence(out: &mut String, c: ConversationRef) {
        out.push_str(r#"{"type":"unsubscribe_presence""#);
        conversation(out, c);
        out.push('}');
    }

    /// `{"type":"set_presence","visible":...}`.
    pub fn set_presence(out: &mut String, visible: bool) {
        let _ = write!(out, r#"{{"type":"set_presence","visible":{visible}}}"#);
    }

    /// `{"type":"typing","peer"|"group":...,"state":...}`.
    pub fn typing(out: &mut String, c: ConversationRef, state: TypingState) {
        out.push_str(r#"{"type":"typing""#);
        conversation(out, c);
        let _ = write!(out, r#","state":"{}"}}"#, state.as_str());
    }
}

/// Server frame encoders (re-exported from [`crate::server`]).
pub(crate) mod server_frames {
    use super::*;

    fn conversation(out: &mut Vec<u8>, c: ConversationRef) {
        let _ = match c {
            ConversationRef::Peer(p) => write!(out, r#","peer":"{p}""#),
            ConversationRef::Group(g) => write!(out, r#","group":"{g}""#),
        };
    }

    fn state(out: &mut Vec<u8>, s: PresenceState) {
        let _ = write!(out, r#","state":"{}""#, s.as_str());
        if let PresenceState::Offline { last_seen: Some(t) } = s {
            let _ = write!(out, r#","last_seen":{t}"#);
        }
    }

    /// `{"type":"presence","user":"8","state":"online"}`: a watched user's
    /// presence changed (`last_seen` follows `offline` when known).
    pub fn presence(out: &mut Vec<u8>, user: UserId, s: PresenceState) {
        let _ = write!(out, r#"{{"type":"presence","user":"{user}""#);
        state(out, s);
        out.push(b'}');
    }

    /// `{"type":"presence_list",...,"users":[{"user":..,"state":..},...]}`:
    /// the answer to `subscribe_presence`, every other member's state now.
    pub fn presence_list(out: &mut Vec<u8>, c: ConversationRef, users: &[(UserId, PresenceState)]) {
        out.extend_from_slice(br#"{"type":"presence_list""#);
        conversation(out, c);
        out.extend_from_slice(br#","users":["#);
        for (i, (u, s)) in users.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let _ = write!(out, r#"{{"user":"{u}""#);
            state(out, *s);
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
    }

    /// `{"type":"presence_set","visible":false}`: the answer to `set_presence`.
    pub fn presence_set(out: &mut Vec<u8>, visible: bool) {
        let _ = write!(out, r#"{{"type":"presence_set","visible":{visible}}}"#);
    }

    /// `{"type":"typing","from":"7","peer"|"group":..,"state":..,"expires_in":6}`:
    /// `from` is typing in the conversation (named from the receiver's side).
    pub fn typing(out: &mut Vec<u8>, from: UserId, c: ConversationRef, s: TypingState, expires_in: u32) {
        let _ = write!(out, r#"{{"type":"typing","from":"{from}""#);
        conversation(out, c);
        let _ = write!(out, r#","state":"{}","expires_in":{expires_in}}}"#, s.as_str());
    }
}

#[derive(Deserialize)]
struct RawState {
    user: Option<UserId>,
    state: String,
    last_seen: Option<u64>,
}

#[derive(Deserialize)]
struct Raw {
    user: Option<UserId>,
    state: Option<String>,
    last_seen: Option<u64>,
    peer: Option<UserId>,
    group: Option<GroupId>,
    users: Option<Vec<RawState>>,
    visible: Option<bool>,
    from: Option<UserId>,
    expires_in: Option<u32>,
}

fn missing(frame: &'static str, field: &'static str) -> DecodeError {
    DecodeError::Field { frame, field, why: "missing" }
}

fn presence_state(frame: &'static str, state: &str, last_seen: Option<u64>) -> Result<PresenceState, DecodeError> {
    Ok(match state {
        "online" => PresenceState::Online,
        "offline" => PresenceState::Offline { last_seen },
        "hidden" => PresenceState::Hidden,
        _ => return Err(DecodeError::Field { frame, field: "state", why: "unknown state" }),
    })
}

fn conversation(frame: &'static str, raw: &Raw) -> Result<ConversationRef, DecodeError> {
    match (raw.peer, raw.group) {
        (Some(p), None) => Ok(ConversationRef::Peer(p)),
        (None, Some(g)) => Ok(ConversationRef::Group(g)),
        _ => Err(DecodeError::Field { frame, field: "group", why: "exactly one of it and the peer is required" }),
    }
}

/// Decode a `presence`, `presence_list`, `presence_set` or `typing` frame.
pub(crate) fn decode(ty: &str, text: &str) -> Result<ServerFrame, DecodeError> {
    let raw: Raw = serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))?;
    Ok(match ty {
        "presence" => ServerFrame::Presence {
            user: raw.user.ok_or_else(|| missing("presence", "user"))?,
            state: presence_state("presence", raw.state.as_deref().unwrap_or_default(), raw.last_seen)?,
        },
        "presence_list" => {
            let conversation = conversation("presence_list", &raw)?;
            let users = raw.users.ok_or_else(|| missing("presence_list", "users"))?;
            let users = users
                .into_iter()
                .map(|u| {
                    let who = u.user.ok_or_else(|| missing("presence_list", "user"))?;
                    Ok((who, presence_state("presence_list", &u.state, u.last_seen)?))
                })
                .collect::<Result<_, DecodeError>>()?;
            ServerFrame::PresenceList { conversation, users }
        }
        "presence_set" => {
            ServerFrame::PresenceSet { visible: raw.visible.ok_or_else(|| missing("presence_set", "visible"))? }
        }
        _ => ServerFrame::Typing {
            from: raw.from.ok_or_else(|| missing("typing", "from"))?,
            conversation: conversation("typing", &raw)?,
            state: raw.state.as_deref().and_then(TypingState::from_name).ok_or_else(|| missing("typing", "state"))?,
            expires_in: raw.expires_in.ok_or_else(|| missing("typing", "expires_in"))?,
        },
    })
}
