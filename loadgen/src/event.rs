//! Server frames as the load generator reads them.
//!
//! One flat struct with every field the scenarios look at, borrowed from
//! the frame's text: parsing a `sent` or `message` frame allocates nothing
//! but the `ids` list of a receipt (fields serde skips, such as the body,
//! are never copied). Strings are [`Str`], a `Cow` that serde borrows even
//! inside an `Option` (serde's own `Option<Cow<str>>` always copies); a
//! string with escapes cannot be borrowed and is decoded into an owned one.

use std::{borrow::Cow, fmt, ops::Deref};

use serde::{de, Deserialize, Deserializer};

/// A JSON string, borrowed from the frame when it has no escapes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<&str> for Str<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl fmt::Display for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// One entry of a batched group receipt: who acknowledged which messages.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReceiptItem<'a> {
    /// The member who acknowledged.
    #[serde(borrow)]
    pub(crate) by: Str<'a>,
    /// The message ids.
    #[serde(borrow, default)]
    pub(crate) ids: Vec<Str<'a>>,
}

/// The fields of a server frame the scenarios use; the rest are skipped.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ServerFrame<'a> {
    /// `welcome`, `sent`, `message`, `receipt`, `synced`, `error`, ...
    #[serde(rename = "type", borrow)]
    pub(crate) ty: Str<'a>,
    /// `sent`: the client id of the send.
    #[serde(borrow)]
    pub(crate) id: Option<Str<'a>>,
    /// `sent`, `message`: the server message id.
    #[serde(borrow)]
    pub(crate) msg: Option<Str<'a>>,
    /// `message`: the sender's client id.
    #[serde(borrow)]
    pub(crate) cid: Option<Str<'a>>,
    /// `message`: the sender.
    #[serde(borrow)]
    pub(crate) from: Option<Str<'a>>,
    /// `message`, `receipt`: the inbox event id.
    #[serde(borrow)]
    pub(crate) event: Option<Str<'a>>,
    /// `message`: `text`, ..., or `system` for membership changes.
    #[serde(borrow)]
    pub(crate) kind: Option<Str<'a>>,
    /// Group frames: the group id.
    #[serde(borrow)]
    pub(crate) group: Option<Str<'a>>,
    /// `synced`: the connection's cursor.
    #[serde(borrow)]
    pub(crate) cursor: Option<Str<'a>>,
    /// Batched group `receipt`: who acknowledged what.
    #[serde(borrow)]
    pub(crate) items: Option<Vec<ReceiptItem<'a>>>,
    /// `receipt`: `delivered` or `read`.
    #[serde(borrow)]
    pub(crate) status: Option<Str<'a>>,
    /// `receipt` (delivered): the message ids.
    #[serde(borrow)]
    pub(crate) ids: Option<Vec<Str<'a>>>,
    /// `sent`: the client id had been used before.
    pub(crate) duplicate: Option<bool>,
    /// `error`: the stable code.
    #[serde(borrow)]
    pub(crate) code: Option<Str<'a>>,
    /// `error`: the client id of the refused send, if any.
    #[serde(rename = "ref", borrow)]
    pub(crate) reference: Option<Str<'a>>,
}

impl<'a> ServerFrame<'a> {
    /// Parse one text frame; `None` when it is not a JSON object with a type.
    pub(crate) fn parse(text: &'a str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// A decimal id as the protocol writes it (a JSON string).
pub(crate) fn parse_id(s: Option<&Str<'_>>) -> Option<u64> {
    s.and_then(|s| s.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_frames_borrow_and_skip_the_body() {
        let text = r#"{"type":"message","event":"42","msg":"42","from":"2","to":"1","kind":"text","ts":1000,"cid":"lg.1.2","body":"hi \"there\""}"#;
        let f = ServerFrame::parse(text).unwrap();
        assert_eq!(f.ty, "message");
        assert!(matches!(f.cid, Some(Str(Cow::Borrowed("lg.1.2")))));
        assert_eq!(parse_id(f.msg.as_ref()), Some(42));
        assert_eq!(parse_id(f.from.as_ref()), Some(2));
    }

    #[test]
    fn receipts_errors_and_junk() {
        let f = ServerFrame::parse(
            r#"{"type":"receipt","event":"9","status":"delivered","by":"2","ids":["7","8"],"at":5}"#,
        )
        .unwrap();
        let ids: Vec<u64> = f.ids.unwrap().iter().filter_map(|s| s.parse().ok()).collect();
        assert_eq!(ids, [7, 8]);
        let e = ServerFrame::parse(r#"{"type":"error","code":"rate_limited","message":"slow \"down\"","ref":"c1"}"#)
            .unwrap();
        assert_eq!(e.code.as_deref(), Some("rate_limited"));
        let escaped = ServerFrame::parse(r#"{"type":"sent","id":"a\"b"}"#).unwrap();
        assert_eq!(escaped.id.as_deref(), Some("a\"b"));
        assert_eq!(e.reference.as_deref(), Some("c1"));
        assert!(ServerFrame::parse("[1]").is_none());
        let g = ServerFrame::parse(
            r#"{"type":"receipt","event":"11","status":"delivered","group":"5","items":[{"by":"3","ids":["7"]},{"by":"4","ids":["7","8"]}],"at":5}"#,
        )
        .unwrap();
        let items = g.items.unwrap();
        assert_eq!((items.len(), &*items[1].by, items[1].ids.len()), (2, "4", 2));
        assert_eq!(parse_id(g.group.as_ref()), Some(5));
        assert_eq!(parse_id(g.event.as_ref()), Some(11));
        let synced = ServerFrame::parse(r#"{"type":"synced","cursor":"99"}"#).unwrap();
        assert_eq!(parse_id(synced.cursor.as_ref()), Some(99));
        assert!(ServerFrame::parse(r#"{"no":"type"}"#).is_none());
    }
}
