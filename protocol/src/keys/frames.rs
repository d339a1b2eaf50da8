//! The key directory's frames: `upload_keys`, `fetch_keys` and `key_count`
//! from a client; `key_count` and `keys` from the server.

use std::io::Write as _;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{valid_key_id, DeviceKeys, KeyBundle, PublicKey, Signature, SignedKey, KEY_ID_RULE, MAX_KEYS_PER_UPLOAD};
use crate::{
    frames::{bad, id_field, required, RawFrame},
    server_decode::DecodeError,
    ClientFrame, DeviceName, MessageId, ProtocolError, ServerFrame, UserId, DEVICE_NAME_RULE,
};

const KEY_RULE: &str = "must be a 32-byte key in unpadded standard base64 (43 characters)";
const SIGNATURE_RULE: &str = "must be a 64-byte signature in unpadded standard base64 (86 characters)";

#[derive(Deserialize)]
struct RawSignedKey<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    key: Option<&'a RawValue>,
    #[serde(borrow)]
    signature: Option<&'a RawValue>,
}

fn text_field(v: &RawValue) -> Option<String> {
    serde_json::from_str::<String>(v.get()).ok()
}

fn key_field(v: Option<&RawValue>, field: &str) -> Result<PublicKey, ProtocolError> {
    text_field(required(v, field)?).and_then(|t| PublicKey::from_base64(&t)).ok_or_else(|| bad(field, KEY_RULE))
}

fn signature_field(v: Option<&RawValue>, field: &str) -> Result<Signature, ProtocolError> {
    text_field(required(v, field)?).and_then(|t| Signature::from_base64(&t)).ok_or_else(|| bad(field, SIGNATURE_RULE))
}

fn signed_key(v: &RawValue, field: &str) -> Result<SignedKey, ProtocolError> {
    let raw: RawSignedKey<'_> =
        serde_json::from_str(v.get()).map_err(|_| bad(field, "must be an object with `id`, `key` and `signature`"))?;
    let id_name = format!("{field}.id");
    let id = text_field(required(raw.id, &id_name)?)
        .filter(|id| valid_key_id(id))
        .ok_or_else(|| bad(&id_name, KEY_ID_RULE))?;
    let key = key_field(raw.key, &format!("{field}.key"))?;
    let signature = signature_field(raw.signature, &format!("{field}.signature"))?;
    Ok(SignedKey { id, key, signature })
}

/// Parse `upload_keys`: the device's keys, and up to
/// [`MAX_KEYS_PER_UPLOAD`] one-time keys (none if `one_time_keys` is
/// absent). Formats only; the gateway checks the signatures.
pub(crate) fn parse_upload_keys(raw: &RawFrame<'_>) -> Result<ClientFrame<'static>, ProtocolError> {
    let keys = DeviceKeys {
        signing_key: key_field(raw.signing_key, "signing_key")?,
        identity_key: key_field(raw.identity_key, "identity_key")?,
        identity_signature: signature_field(raw.identity_signature, "identity_signature")?,
        fallback_key: signed_key(required(raw.fallback_key, "fallback_key")?, "fallback_key")?,
    };
    let mut one_time_keys = Vec::new();
    if let Some(list) = raw.one_time_keys {
        let items: Vec<&RawValue> =
            serde_json::from_str(list.get()).map_err(|_| bad("one_time_keys", "must be an array of keys"))?;
        if items.len() > MAX_KEYS_PER_UPLOAD {
            return Err(bad("one_time_keys", "at most 100 keys per upload"));
        }
        for (i, item) in items.into_iter().enumerate() {
            one_time_keys.push(signed_key(item, &format!("one_time_keys[{i}]"))?);
        }
        let mut ids: Vec<&str> = one_time_keys.iter().map(|k| k.id.as_str()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(bad("one_time_keys", "key ids must differ"));
        }
    }
    Ok(ClientFrame::UploadKeys { keys: Box::new(keys), one_time_keys })
}

/// Parse `fetch_keys`: a `user` and, optionally, one of their `device`s.
pub(crate) fn parse_fetch_keys(raw: &RawFrame<'_>) -> Result<ClientFrame<'static>, ProtocolError> {
    let user: UserId = id_field(required(raw.user, "user")?, "user")?;
    let device = match raw.device {
        None => None,
        Some(v) => {
            Some(text_field(v).and_then(|d| DeviceName::new(&d)).ok_or_else(|| bad("device", DEVICE_NAME_RULE))?)
        }
    };
    Ok(ClientFrame::FetchKeys { user, device })
}

/// Client frame writers.
pub(crate) mod client_frames {
    use std::fmt::Write as _;

    use super::super::{DeviceKeys, SignedKey};
    use crate::{DeviceName, UserId};

    pub(super) fn signed_key_json(out: &mut String, k: &SignedKey) {
        let _ = write!(
            out,
            r#"{{"id":{},"key":"{}","signature":"{}"}}"#,
            serde_json::Value::from(k.id.as_str()),
            k.key.to_base64(),
            k.signature.to_base64()
        );
    }

    /// `{"type":"upload_keys",...}`: publish the device's keys and add
    /// `one_time_keys`.
    pub fn upload_keys(out: &mut String, keys: &DeviceKeys, one_time_keys: &[SignedKey]) {
        let _ = write!(
            out,
            r#"{{"type":"upload_keys","signing_key":"{}","identity_key":"{}","identity_signature":"{}","fallback_key":"#,
            keys.signing_key.to_base64(),
            keys.identity_key.to_base64(),
            keys.identity_signature.to_base64()
        );
        signed_key_json(out, &keys.fallback_key);
        out.push_str(r#","one_time_keys":["#);
        for (i, k) in one_time_keys.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            signed_key_json(out, k);
        }
        out.push_str("]}");
    }

    /// `{"type":"fetch_keys","user":"42"}`, with `"device"` if one is named.
    pub fn fetch_keys(out: &mut String, user: UserId, device: Option<DeviceName>) {
        let _ = write!(out, r#"{{"type":"fetch_keys","user":"{}""#, user.0);
        if let Some(d) = device {
            let _ = write!(out, r#","device":"{}""#, d.as_str());
        }
        out.push('}');
    }

    /// `{"type":"key_count"}`.
    pub fn key_count(out: &mut String) {
        out.push_str(r#"{"type":"key_count"}"#);
    }
}

/// `{"type":"key_count","device":"phone","one_time_keys":37}`: the answer to
/// `upload_keys` and `key_count`.
pub fn encode_key_count(out: &mut Vec<u8>, device: &str, one_time_keys: u64) {
    let _ = write!(out, r#"{{"type":"key_count","device":"{device}","one_time_keys":{one_time_keys}}}"#);
}

/// `{"type":"keys","user":"42","devices":[...]}`: the answer to
/// `fetch_keys`, a bundle per device (`one_time_key` null when none was
/// left).
pub fn encode_keys(out: &mut Vec<u8>, user: UserId, bundles: &[KeyBundle]) {
    let mut text = format!(r#"{{"type":"keys","user":"{}","devices":["#, user.0);
    for (i, b) in bundles.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        let k = &b.keys;
        text.push_str(&format!(
            r#"{{"device":"{}","signing_key":"{}","identity_key":"{}","identity_signature":"{}","fallback_key":"#,
            b.device.as_str(),
            k.signing_key.to_base64(),
            k.identity_key.to_base64(),
            k.identity_signature.to_base64()
        ));
        client_frames::signed_key_json(&mut text, &k.fallback_key);
        text.push_str(r#","one_time_key":"#);
        match &b.one_time_key {
            Some(otk) => client_frames::signed_key_json(&mut text, otk),
            None => text.push_str("null"),
        }
        text.push('}');
    }
    text.push_str("]}");
    out.extend_from_slice(text.as_bytes());
}

/// `{"type":"keys_changed","event":"9","user":"42"}`: an inbox event telling
/// a contact of `user` that the user's devices with keys, or a device's
/// identity, changed (docs/PROTOCOL.md, "keys_changed").
pub fn encode_keys_changed(out: &mut Vec<u8>, event: MessageId, user: UserId) {
    let _ = write!(out, r#"{{"type":"keys_changed","event":"{event}","user":"{user}"}}"#);
}

#[derive(Deserialize)]
struct RawSigned {
    id: String,
    key: String,
    signature: String,
}

#[derive(Deserialize)]
struct RawBundle {
    device: String,
    signing_key: String,
    identity_key: String,
    identity_signature: String,
    fallback_key: RawSigned,
    one_time_key: Option<RawSigned>,
}

#[derive(Deserialize)]
struct RawAnswer {
    event: Option<MessageId>,
    device: Option<String>,
    one_time_keys: Option<u64>,
    user: Option<UserId>,
    devices: Option<Vec<RawBundle>>,
}

fn field(frame: &'static str, field: &'static str, why: &'static str) -> DecodeError {
    DecodeError::Field { frame, field, why }
}

fn decoded_key(text: &str, frame: &'static str) -> Result<PublicKey, DecodeError> {
    PublicKey::from_base64(text).ok_or(field(frame, "devices", KEY_RULE))
}

fn decoded_signed(raw: RawSigned, frame: &'static str) -> Result<SignedKey, DecodeError> {
    let signature = Signature::from_base64(&raw.signature).ok_or(field(frame, "devices", SIGNATURE_RULE))?;
    Ok(SignedKey { id: raw.id, key: decoded_key(&raw.key, frame)?, signature })
}

/// Decode `key_count`, `keys` or `keys_changed`.
pub(crate) fn decode(ty: &str, text: &str) -> Result<ServerFrame, DecodeError> {
    let raw: RawAnswer = serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))?;
    match ty {
        "keys_changed" => Ok(ServerFrame::KeysChanged {
            event: raw.event.ok_or(field("keys_changed", "event", "missing"))?,
            user: raw.user.ok_or(field("keys_changed", "user", "missing"))?,
        }),
        "key_count" => Ok(ServerFrame::KeyCount {
            device: raw.device.ok_or(field("key_count", "device", "missing"))?,
            one_time_keys: raw.one_time_keys.ok_or(field("key_count", "one_time_keys", "missing"))?,
        }),
        _ => {
            let user = raw.user.ok_or(field("keys", "user", "missing"))?;
            let mut devices = Vec::new();
            for b in raw.devices.ok_or(field("keys", "devices", "missing"))? {
                let device = DeviceName::new(&b.device).ok_or(field("keys", "devices", DEVICE_NAME_RULE))?;
                let keys = DeviceKeys {
                    signing_key: decoded_key(&b.signing_key, "keys")?,
                    identity_key: decoded_key(&b.identity_key, "keys")?,
                    identity_signature: Signature::from_base64(&b.identity_signature).ok_or(field(
                        "keys",
                        "devices",
                        SIGNATURE_RULE,
                    ))?,
                    fallback_key: decoded_signed(b.fallback_key, "keys")?,
                };
                let one_time_key = b.one_time_key.map(|k| decoded_signed(k, "keys")).transpose()?;
                devices.push(KeyBundle { device, keys, one_time_key });
            }
            Ok(ServerFrame::Keys { user, devices })
        }
    }
}
