//! Push targets: where a named device wants to be notified while it is not
//! connected (docs/PROTOCOL.md, "Push notifications"). The client frames
//! `register_push` and `unregister_push`, their answers `push_registered`
//! and `push_unregistered`, and the [`PushTarget`] the store keeps per
//! device.
//!
//! Why a device supplies only a token: the provider's endpoint (an APNs or
//! FCM project, a webhook URL) is the operator's configuration. A device
//! naming a URL would let any client make the server call any address.

use std::{borrow::Cow, fmt, io::Write as _};

use serde::Deserialize;

use crate::{
    frames::{bad, required, RawFrame},
    server_decode::DecodeError,
    ClientFrame, ProtocolError, ServerFrame,
};

/// Longest push token, in bytes. APNs tokens are 64 hex digits, FCM tokens
/// a few hundred characters; the bound leaves room for a webhook's opaque
/// token and keeps a stored target small.
pub const MAX_PUSH_TOKEN_BYTES: usize = 4096;

/// What every refusal of a token says, after the field's name.
pub const PUSH_TOKEN_RULE: &str = "must be 1 to 4096 bytes of printable ASCII without spaces";

/// What every refusal of a provider says, after the field's name.
pub const PUSH_PROVIDER_RULE: &str = "must be \"webhook\", \"apns\" or \"fcm\"";

/// Who delivers a device's notifications.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PushProvider {
    /// The operator's webhook (its URL is the operator's configuration).
    Webhook,
    /// Apple Push Notification service.
    Apns,
    /// Firebase Cloud Messaging.
    Fcm,
}

impl PushProvider {
    /// Every provider.
    pub const ALL: [PushProvider; 3] = [PushProvider::Webhook, PushProvider::Apns, PushProvider::Fcm];

    /// The wire and stored name (`webhook`, `apns`, `fcm`).
    pub fn as_str(self) -> &'static str {
        match self {
            PushProvider::Webhook => "webhook",
            PushProvider::Apns => "apns",
            PushProvider::Fcm => "fcm",
        }
    }

    /// The provider of a name.
    pub fn from_name(name: &str) -> Option<Self> {
        PushProvider::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for PushProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one device's notifications go: a provider and the device's token
/// with it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PushTarget {
    /// Who delivers.
    pub provider: PushProvider,
    /// The device's token with that provider (see [`valid_push_token`]).
    pub token: String,
}

/// Whether `token` may be registered: 1 to [`MAX_PUSH_TOKEN_BYTES`] bytes
/// of printable ASCII without spaces (`!` to `~`), so it goes into a log
/// line, a header or a JSON string as it is.
pub fn valid_push_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= MAX_PUSH_TOKEN_BYTES && token.bytes().all(|b| b.is_ascii_graphic())
}

/// Parse `register_push`.
pub(crate) fn parse_register<'a>(raw: &RawFrame<'a>) -> Result<ClientFrame<'a>, ProtocolError> {
    let name: Option<String> = serde_json::from_str(required(raw.provider, "provider")?.get()).ok();
    let provider =
        name.as_deref().and_then(PushProvider::from_name).ok_or_else(|| bad("provider", PUSH_PROVIDER_RULE))?;
    let token: Cow<'a, str> = match serde_json::from_str(required(raw.token, "token")?.get()) {
        Ok(t) => t,
        Err(_) => return Err(bad("token", PUSH_TOKEN_RULE)),
    };
    if !valid_push_token(&token) {
        return Err(bad("token", PUSH_TOKEN_RULE));
    }
    Ok(ClientFrame::RegisterPush { provider, token })
}

/// Client frame writers.
pub(crate) mod client_frames {
    use std::fmt::Write as _;

    use super::PushProvider;

    /// `{"type":"register_push","provider":"apns","token":...}`, the token
    /// as a JSON string (escaped where it needs to be, so any text makes a
    /// frame the server parses, and refuses if it is not a valid token).
    pub fn register_push(out: &mut String, provider: PushProvider, token: &str) {
        let _ = write!(out, r#"{{"type":"register_push","provider":"{provider}","token":"#);
        let _ = write!(out, "{}", serde_json::Value::from(token));
        out.push('}');
    }

    /// `{"type":"unregister_push"}`.
    pub fn unregister_push(out: &mut String) {
        out.push_str(r#"{"type":"unregister_push"}"#);
    }
}

/// `{"type":"push_registered","device":"phone","provider":"apns"}`: the
/// answer to `register_push` (the token is not echoed).
pub fn encode_push_registered(out: &mut Vec<u8>, device: &str, provider: PushProvider) {
    let _ = write!(out, r#"{{"type":"push_registered","device":"{device}","provider":"{provider}"}}"#);
}

/// `{"type":"push_unregistered","device":"phone"}`: the answer to
/// `unregister_push`, whether or not a target was registered.
pub fn encode_push_unregistered(out: &mut Vec<u8>, device: &str) {
    let _ = write!(out, r#"{{"type":"push_unregistered","device":"{device}"}}"#);
}

#[derive(Deserialize)]
struct Raw {
    device: Option<String>,
    provider: Option<String>,
}

/// Decode a `push_registered` or `push_unregistered` server frame.
pub(crate) fn decode(ty: &str, text: &str) -> Result<ServerFrame, DecodeError> {
    let raw: Raw = serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))?;
    let frame = if ty == "push_registered" { "push_registered" } else { "push_unregistered" };
    let device = raw.device.ok_or(DecodeError::Field { frame, field: "device", why: "missing" })?;
    if ty == "push_unregistered" {
        return Ok(ServerFrame::PushUnregistered { device });
    }
    let provider = raw.provider.as_deref().and_then(PushProvider::from_name).ok_or(DecodeError::Field {
        frame,
        field: "provider",
        why: PUSH_PROVIDER_RULE,
    })?;
    Ok(ServerFrame::PushRegistered { device, provider })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frames_round_trip() {
        for provider in PushProvider::ALL {
            assert_eq!(PushProvider::from_name(provider.as_str()), Some(provider));
            let mut out = String::new();
            client_frames::register_push(&mut out, provider, "ab\"c\\d");
            assert_eq!(
                ClientFrame::parse(&out).unwrap(),
                ClientFrame::RegisterPush { provider, token: "ab\"c\\d".into() }
            );
            let mut answer = Vec::new();
            encode_push_registered(&mut answer, "phone", provider);
            assert_eq!(
                ServerFrame::parse(std::str::from_utf8(&answer).unwrap()).unwrap(),
                ServerFrame::PushRegistered { device: "phone".into(), provider }
            );
        }
        let mut out = String::new();
        client_frames::unregister_push(&mut out);
        assert_eq!(ClientFrame::parse(&out).unwrap(), ClientFrame::UnregisterPush);
        let mut answer = Vec::new();
        encode_push_unregistered(&mut answer, "phone");
        assert_eq!(
            ServerFrame::parse(std::str::from_utf8(&answer).unwrap()).unwrap(),
            ServerFrame::PushUnregistered { device: "phone".into() }
        );
    }

    #[test]
    fn bad_providers_and_tokens_are_refused_with_the_rule() {
        let long = format!(r#"{{"type":"register_push","provider":"fcm","token":"{}"}}"#, "t".repeat(4097));
        let provider = format!("field `provider`: {PUSH_PROVIDER_RULE}");
        let token = format!("field `token`: {PUSH_TOKEN_RULE}");
        for (text, why) in [
            (r#"{"type":"register_push","token":"t"}"#, "field `provider`: missing"),
            (r#"{"type":"register_push","provider":"apns"}"#, "field `token`: missing"),
            (r#"{"type":"register_push","provider":"sms","token":"t"}"#, provider.as_str()),
            (r#"{"type":"register_push","provider":"APNS","token":"t"}"#, provider.as_str()),
            (r#"{"type":"register_push","provider":7,"token":"t"}"#, provider.as_str()),
            (r#"{"type":"register_push","provider":"apns","token":""}"#, token.as_str()),
            (r#"{"type":"register_push","provider":"apns","token":"a b"}"#, token.as_str()),
            (r#"{"type":"register_push","provider":"apns","token":"caf\u00e9"}"#, token.as_str()),
            (r#"{"type":"register_push","provider":"apns","token":"a\nb"}"#, token.as_str()),
            (r#"{"type":"register_push","provider":"apns","token":["t"]}"#, token.as_str()),
            (long.as_str(), token.as_str()),
        ] {
            let e = ClientFrame::parse(text).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::BadField, "{text}");
            assert_eq!(e.message, why, "{text}");
        }
        let fits = format!(r#"{{"type":"register_push","provider":"webhook","token":"{}"}}"#, "t".repeat(4096));
        assert!(ClientFrame::parse(&fits).is_ok());
        assert!(valid_push_token("~!0aZ"));
    }
}
