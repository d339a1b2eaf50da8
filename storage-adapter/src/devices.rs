//! What the store keeps about named devices (docs/PROTOCOL.md, "Devices";
//! docs/STORAGE.md, "Devices"): when each `(user, device)` was first seen
//! and last active, the issue time of the newest token it connected with,
//! and when it was logged out.

use chatgw_protocol::{DeviceName, UserId};

/// A named device connected: what [`MessageStore::note_devices`] records.
///
/// [`MessageStore::note_devices`]: crate::MessageStore::note_devices
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceNote {
    /// The user.
    pub user: UserId,
    /// The device.
    pub device: DeviceName,
    /// When it connected, Unix seconds.
    pub at: u64,
    /// The `iat` of the token it connected with (0 if the token has none).
    pub token_iat: u64,
}

/// One device of a user, as [`MessageStore::devices`] reads it.
///
/// [`MessageStore::devices`]: crate::MessageStore::devices
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The device.
    pub device: DeviceName,
    /// The earliest connection noted, Unix seconds.
    pub first_seen: u64,
    /// The latest connection noted, Unix seconds.
    pub last_active: u64,
    /// The largest token `iat` noted.
    pub token_iat: u64,
    /// The device's latest revocation time, if it was ever revoked.
    pub revoked_at: Option<u64>,
}

/// Merge `note` into a stored `(first_seen, last_active, token_iat)`: the
/// first time never moves later, the others never move back.
pub(crate) fn merged(stored: Option<(u64, u64, u64)>, note: &DeviceNote) -> (u64, u64, u64) {
    match stored {
        None => (note.at, note.at, note.token_iat),
        Some((first, last, iat)) => (first.min(note.at), last.max(note.at), iat.max(note.token_iat)),
    }
}
