//! Wire types of the chatgw protocol, version 1.
//!
//! This crate is the one place where the shape of a frame is decided. The
//! gateway, the client library, the load generator and the store all speak
//! through these types, so a change here is a protocol change and belongs in
//! `docs/PROTOCOL.md` too.
//!
//! What it holds:
//! - ids ([`UserId`], [`MessageId`], [`GroupId`], [`ConversationId`]) and the
//!   Snowflake generator that makes message and event ids without coordination;
//! - both directions of every frame:
//!   - client frames: [`ClientFrame`], parsed from a text frame with
//!     [`ClientFrame::parse`] (the server's side), which turns every
//!     malformed input into a [`ProtocolError`] with a stable [`ErrorCode`]
//!     instead of a panic, and written with [`ClientFrame::encode`] or the
//!     per-type functions of [`client`] (a client's side);
//!   - server frames: the [`server`] encoders that write them as JSON bytes,
//!     so a frame fanned out to many connections is serialised once (the
//!     server's side), and [`ServerFrame::parse`], which reads them back into
//!     types (a client's side), with [`view::FrameView`] as its fast,
//!     borrowed, unvalidated cousin for a client's hot path;
//! - [`close`] codes used when the WebSocket itself is closed.
//!
//! Every frame type round-trips in both directions (`tests/round_trip.rs`).
//!
//! What it does not hold: any I/O. Nothing here reads a socket or a disk.

#![warn(missing_docs)]

mod amend;
pub mod client;
pub mod close;
mod codes;
mod device;
mod direct_from;
mod envelope;
mod frames;
#[doc(hidden)]
pub mod fuzzing;
mod group;
mod ids;
mod keys;
mod media;
mod presence;
mod push;
pub mod server;
pub use server::{Message, Receipt, ReceiptStatus};
mod server_decode;
mod snowflake;
pub mod view;

pub use amend::{hidden_view, AmendKind, Amendment, DeleteScope};
pub use codes::{ErrorCode, ProtocolError};
pub use device::{DeviceInfo, DeviceName, DEVICE_NAME_RULE, MAX_DEVICE_NAME_BYTES};
pub use direct_from::DirectFrom;
pub use envelope::{check_envelope, EnvelopeSummary, ENVELOPE_VERSION, MAX_ENVELOPE_ENTRIES};
pub use frames::{
    max_body_for_frame, ClientFrame, ConversationRef, GroupChange, MessageKind, Send, DEFAULT_CONVERSATIONS_PAGE,
    MAX_ACK_IDS, MAX_BODY_BYTES, MAX_CLIENT_ID_BYTES, MAX_CONVERSATIONS_PAGE, MAX_GROUP_DESCRIPTION_BYTES,
    MAX_GROUP_NAME_BYTES, MAX_LISTED_MEMBERS, MAX_PAGE, MAX_TOKEN_BYTES, SEND_ENVELOPE_BYTES,
};
pub use group::{Group, Member};
pub use ids::{ConversationId, GroupId, MessageId, UserId};
pub use keys::{
    canonical_text, valid_key_id, DeviceKeys, KeyBundle, KeyRole, PublicKey, Signature, SignatureError, SignedKey,
    KEY_ID_RULE, MAX_KEYS_PER_UPLOAD, MAX_KEY_ID_BYTES, MAX_STORED_ONE_TIME_KEYS,
};
pub use media::{
    valid_media_id, MediaKind, UploadSlotFrame, MAX_CONTENT_TYPE_BYTES, MAX_MEDIA_ID_BYTES, MAX_MEDIA_PARTS,
    MAX_MEDIA_SIZE, MAX_PART_TAG_BYTES, MAX_UPLOAD_ID_BYTES,
};
pub use presence::{PresenceState, TypingState, MAX_PRESENCE_SUBSCRIPTIONS};
pub use push::{valid_push_token, PushProvider, PushTarget, MAX_PUSH_TOKEN_BYTES, PUSH_PROVIDER_RULE, PUSH_TOKEN_RULE};
pub use server_decode::{
    ConversationItem, ConversationsPage, DecodeError, ErrorFrame, HistoryPage, MessageInfo, ReceiptFrame, Sent,
    ServerFrame, Welcome,
};
pub use snowflake::{now_ms, Snowflake, EPOCH_MS};

/// The protocol version this crate speaks, announced in the `welcome` frame.
pub const PROTOCOL_VERSION: u32 = 1;
