//! Error codes carried by `error` frames. The strings are part of the
//! protocol: clients match on them, so they never change meaning.

use std::fmt;

use serde::Serialize;

/// A stable, machine-readable reason for an `error` frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The text frame is not a JSON object.
    BadJson,
    /// The `type` field names no frame this server knows.
    UnknownType,
    /// A field is missing, has the wrong type, or is out of range.
    BadField,
    /// The user may not do this (for example acknowledge a message that was
    /// not addressed to them).
    NotAllowed,
    /// The per-connection send rate was exceeded; the frame was dropped.
    RateLimited,
    /// The store could not take the write; nothing was acknowledged. Retry
    /// with the same client id.
    Unavailable,
    /// The server is shutting down and takes no new work.
    ShuttingDown,
    /// The group would exceed its member limit; nothing was changed.
    GroupFull,
    /// A `sync` could not be served. No live events reach the connection
    /// until it sends `sync` again from its last cursor.
    SyncFailed,
    /// A `send` reused a client id the user already used for a different
    /// message (another conversation, kind or body); nothing was stored.
    ClientIdConflict,
    /// A `delete` for everyone or an `edit` came after the server's window
    /// for it (counted from the message's `ts`); nothing was changed.
    WindowClosed,
    /// An `edit` of a message deleted for everyone; nothing was changed.
    MessageDeleted,
}

impl ErrorCode {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::BadField => "bad_field",
            ErrorCode::NotAllowed => "not_allowed",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::GroupFull => "group_full",
            ErrorCode::SyncFailed => "sync_failed",
            ErrorCode::ClientIdConflict => "client_id_conflict",
            ErrorCode::WindowClosed => "window_closed",
            ErrorCode::MessageDeleted => "message_deleted",
        }
    }

    /// Parse the wire string.
    pub fn from_name(s: &str) -> Option<Self> {
        use ErrorCode::*;
        [
            BadJson,
            UnknownType,
            BadField,
            NotAllowed,
            RateLimited,
            Unavailable,
            ShuttingDown,
            GroupFull,
            SyncFailed,
            ClientIdConflict,
            WindowClosed,
            MessageDeleted,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// Whether the refusal is the client's doing (malformed or too fast)
    /// rather than the server's state (shutting down, overloaded, store
    /// failing): only the former count towards closing with 1008.
    pub fn is_client_fault(self) -> bool {
        matches!(self, ErrorCode::BadJson | ErrorCode::UnknownType | ErrorCode::BadField | ErrorCode::RateLimited)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A frame the server refuses, with the code and a human-readable reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    /// The stable code.
    pub code: ErrorCode,
    /// What was wrong, for people reading logs.
    pub message: String,
    /// The client id (`id`) of the refused request, when it had one.
    pub reference: Option<String>,
}

impl ProtocolError {
    /// A new error without a request reference.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProtocolError { code, message: message.into(), reference: None }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ProtocolError {}

#[cfg(test)]
mod tests {
    use super::ErrorCode::*;

    #[test]
    fn only_the_clients_own_refusals_are_faults() {
        for code in [BadJson, UnknownType, BadField, RateLimited] {
            assert!(code.is_client_fault(), "{}", code.as_str());
        }
        for code in [
            NotAllowed,
            Unavailable,
            ShuttingDown,
            GroupFull,
            SyncFailed,
            ClientIdConflict,
            WindowClosed,
            MessageDeleted,
        ] {
            assert!(!code.is_client_fault(), "{}", code.as_str());
        }
    }

    #[test]
    fn every_code_parses_from_its_wire_string() {
        for code in [
            BadJson,
            UnknownType,
            BadField,
            NotAllowed,
            RateLimited,
            Unavailable,
            ShuttingDown,
            GroupFull,
            SyncFailed,
            ClientIdConflict,
            WindowClosed,
            MessageDeleted,
        ] {
            assert_eq!(super::ErrorCode::from_name(code.as_str()), Some(code));
        }
        assert_eq!(super::ErrorCode::from_name("teapot"), None);
    }
}
