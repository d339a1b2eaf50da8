//! Who may start a direct conversation with a user: the client frames
//! `set_direct_from` and `direct_from`, and the `direct_from` answer.
//!
//! Why two values and not a list: the setting answers one question, "may a
//! user I share no conversation with write to me?", and a list of allowed
//! users would duplicate what the conversation list already records (the
//! people one wrote with) and what group membership records (the people
//! one is in a group with). docs/PROTOCOL.md, "Direct messages from
//! strangers".

use std::io::Write as _;

use serde::Deserialize;

use crate::{
    frames::{bad, required, RawFrame},
    server_decode::DecodeError,
    ClientFrame, ProtocolError, ServerFrame,
};

/// Whom a user takes direct messages from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DirectFrom {
    /// Anyone (the default).
    #[default]
    Everyone,
    /// Only users they share a conversation with: a direct conversation
    /// that has a message, or a group both are members of.
    Contacts,
}

impl DirectFrom {
    /// The wire name (`everyone`, `contacts`).
    pub fn as_str(self) -> &'static str {
        match self {
            DirectFrom::Everyone => "everyone",
            DirectFrom::Contacts => "contacts",
        }
    }

    /// The value of a wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "everyone" => Some(DirectFrom::Everyone),
            "contacts" => Some(DirectFrom::Contacts),
            _ => None,
        }
    }
}

/// Parse `set_direct_from`: `from` must be `"everyone"` or `"contacts"`.
pub(crate) fn parse_set(raw: &RawFrame<'_>) -> Result<ClientFrame<'static>, ProtocolError> {
    let value = required(raw.from, "from")?;
    // Owned: a name written with escapes is still the name.
    let name: Option<String> = serde_json::from_str(value.get()).ok();
    let from = name
        .as_deref()
        .and_then(DirectFrom::from_name)
        .ok_or_else(|| bad("from", "must be \"everyone\" or \"contacts\""))?;
    Ok(ClientFrame::SetDirectFrom { from })
}

/// Client frame writers.
pub(crate) mod client_frames {
    use std::fmt::Write as _;

    use super::DirectFrom;

    /// `{"type":"set_direct_from","from":"contacts"}`.
    pub fn set_direct_from(out: &mut String, from: DirectFrom) {
        let _ = write!(out, r#"{{"type":"set_direct_from","from":"{}"}}"#, from.as_str());
    }

    /// `{"type":"direct_from"}`: ask for the setting.
    pub fn direct_from(out: &mut String) {
        out.push_str(r#"{"type":"direct_from"}"#);
    }
}

/// `{"type":"direct_from","from":"contacts"}`: the setting, the answer to
/// `set_direct_from` and `direct_from` alike.
pub fn encode_direct_from(out: &mut Vec<u8>, from: DirectFrom) {
    let _ = write!(out, r#"{{"type":"direct_from","from":"{}"}}"#, from.as_str());
}

#[derive(Deserialize)]
struct Raw {
    from: Option<String>,
}

/// Decode a `direct_from` server frame.
pub(crate) fn decode(text: &str) -> Result<ServerFrame, DecodeError> {
    let raw: Raw = serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))?;
    let from = raw.from.as_deref().and_then(DirectFrom::from_name).ok_or(DecodeError::Field {
        frame: "direct_from",
        field: "from",
        why: "must be \"everyone\" or \"contacts\"",
    })?;
    Ok(ServerFrame::DirectFrom { from })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frames_round_trip_and_bad_values_are_refused() {
        for from in [DirectFrom::Everyone, DirectFrom::Contacts] {
            let mut out = String::new();
            client_frames::set_direct_from(&mut out, from);
            assert_eq!(ClientFrame::parse(&out).unwrap(), ClientFrame::SetDirectFrom { from });
            let mut answer = Vec::new();
            encode_direct_from(&mut answer, from);
            assert_eq!(
                ServerFrame::parse(std::str::from_utf8(&answer).unwrap()).unwrap(),
                ServerFrame::DirectFrom { from }
            );
        }
        assert_eq!(ClientFrame::parse(r#"{"type":"direct_from"}"#).unwrap(), ClientFrame::DirectFrom);
        assert_eq!(
            ClientFrame::parse(r#"{"type":"set_direct_from","from":"cont\u0061cts"}"#).unwrap(),
            ClientFrame::SetDirectFrom { from: DirectFrom::Contacts }
        );
        for (text, why) in [
            (r#"{"type":"set_direct_from"}"#, "field `from`: missing"),
            (r#"{"type":"set_direct_from","from":"friends"}"#, "field `from`: must be \"everyone\" or \"contacts\""),
            (r#"{"type":"set_direct_from","from":true}"#, "field `from`: must be \"everyone\" or \"contacts\""),
        ] {
            let e = ClientFrame::parse(text).unwrap_err();
            assert_eq!(e.message, why, "{text}");
        }
    }
}
