//! A fast, borrowed, unvalidated view of a server frame, for clients on a
//! hot path (the load generator reads tens of thousands of frames a second
//! on two cores).
//!
//! One flat struct with the fields such a client looks at, borrowed from
//! the frame's text: parsing a `sent` or `message` frame allocates nothing
//! but the `ids` list of a receipt (fields serde skips, such as the body,
//! are never copied). Strings are [`Str`], a `Cow` that serde borrows even
//! inside an `Option` (serde's own `Option<Cow<str>>` always copies); a
//! string with escapes cannot be borrowed and is decoded into an owned one.
//!
//! It does not check that a frame has the fields its type needs; the typed
//! [`ServerFrame`](crate::ServerFrame) decoder does, and the tests hold the
//! two to the same reading of every frame the server encodes.

use std::{borrow::Cow, fmt, ops::Deref};

use serde::{de, Deserialize, Deserializer};

/// A JSON string, borrowed from the frame when it has no escapes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Str<'a>(pub Cow<'a, str>);

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
pub struct ReceiptItem<'a> {
    /// The member who acknowledged.
    #[serde(borrow)]
    pub by: Str<'a>,
    /// The message ids.
    #[serde(borrow, default)]
    pub ids: Vec<Str<'a>>,
}

/// The fields of a server frame a load client uses; the rest are skipped.
/// Unvalidated: a field is whatever the frame had under that name.
#[derive(Debug, Default, Deserialize)]
pub struct FrameView<'a> {
    /// `welcome`, `sent`, `message`, `receipt`, `synced`, `error`, ...
    #[serde(rename = "type", borrow)]
    pub ty: Str<'a>,
    /// `sent`: the client id of the send.
    #[serde(borrow)]
    pub id: Option<Str<'a>>,
    /// `sent`, `message`: the server message id.
    #[serde(borrow)]
    pub msg: Option<Str<'a>>,
    /// `message`: the sender's client id.
    #[serde(borrow)]
    pub cid: Option<Str<'a>>,
    /// `message`: the sender.
    #[serde(borrow)]
    pub from: Option<Str<'a>>,
    /// `message`, `receipt`: the inbox event id.
    #[serde(borrow)]
    pub event: Option<Str<'a>>,
    /// `message`: `text`, ..., or `system` for membership changes.
    #[serde(borrow)]
    pub kind: Option<Str<'a>>,
    /// Group frames: the group id.
    #[serde(borrow)]
    pub group: Option<Str<'a>>,
    /// `synced`: the connection's cursor.
    #[serde(borrow)]
    pub cursor: Option<Str<'a>>,
    /// Batched group `receipt`: who acknowledged what.
    #[serde(borrow)]
    pub items: Option<Vec<ReceiptItem<'a>>>,
    /// `receipt`: `delivered` or `read`.
    #[serde(borrow)]
    pub status: Option<Str<'a>>,
    /// `receipt` (delivered): the message ids.
    #[serde(borrow)]
    pub ids: Option<Vec<Str<'a>>>,
    /// `sent`: the client id had been used before.
    pub duplicate: Option<bool>,
    /// `error`: the stable code.
    #[serde(borrow)]
    pub code: Option<Str<'a>>,
    /// `error`: the client id of the refused send, if any.
    #[serde(rename = "ref", borrow)]
    pub reference: Option<Str<'a>>,
}

impl<'a> FrameView<'a> {
    /// Parse one text frame; `None` when it is not a JSON object with a type.
    pub fn parse(text: &'a str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// A decimal id as the protocol writes it (a JSON string).
pub fn parse_id(s: Option<&Str<'_>>) -> Option<u64> {
    s.and_then(|s| s.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_frames_borrow_and_skip_the_body() {
        let text = r#"{"type":"message","event":"42","msg":"42","from":"2","to":"1","kind":"text","ts":1000,"cid":"lg.1.2","body":"hi \"there\""}"#;
        let f = FrameView::parse(text).unwrap();
        assert_eq!(f.ty, "message");
        assert!(matches!(f.cid, Some(Str(Cow::Borrowed("lg.1.2")))));
        assert_eq!(parse_id(f.msg.as_ref()), Some(42));
        assert_eq!(parse_id(f.from.as_ref()), Some(2));
    }

    #[test]
    fn receipts_errors_and_junk() {
        let f =
            FrameView::parse(r#"{"type":"receipt","event":"9","status":"delivered","by":"2","ids":["7","8"],"at":5}"#)
                .unwrap();
        let ids: Vec<u64> = f.ids.unwrap().iter().filter_map(|s| s.parse().ok()).collect();
        assert_eq!(ids, [7, 8]);
        let e =
            FrameView::parse(r#"{"type":"error","code":"rate_limited","message":"slow \"down\"","ref":"c1"}"#).unwrap();
        assert_eq!(e.code.as_deref(), Some("rate_limited"));
        let escaped = FrameView::parse(r#"{"type":"sent","id":"a\"b"}"#).unwrap();
        assert_eq!(escaped.id.as_deref(), Some("a\"b"));
        assert_eq!(e.reference.as_deref(), Some("c1"));
        assert!(FrameView::parse("[1]").is_none());
        let g = FrameView::parse(
            r#"{"type":"receipt","event":"11","status":"delivered","group":"5","items":[{"by":"3","ids":["7"]},{"by":"4","ids":["7","8"]}],"at":5}"#,
        )
        .unwrap();
        let items = g.items.unwrap();
        assert_eq!((items.len(), &*items[1].by, items[1].ids.len()), (2, "4", 2));
        assert_eq!(parse_id(g.group.as_ref()), Some(5));
        assert_eq!(parse_id(g.event.as_ref()), Some(11));
        let synced = FrameView::parse(r#"{"type":"synced","cursor":"99"}"#).unwrap();
        assert_eq!(parse_id(synced.cursor.as_ref()), Some(99));
        assert!(FrameView::parse(r#"{"no":"type"}"#).is_none());
    }
}
