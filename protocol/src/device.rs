//! Device names: what a token's `dev` claim, `logout_device` and the
//! `devices` answer call one of a user's devices (docs/PROTOCOL.md,
//! "Devices").
//!
//! A name is 1 to [`MAX_DEVICE_NAME_BYTES`] bytes of `A-Z a-z 0-9 . _ -`:
//! short enough to live inline in a `Copy` value (the gateway's verified
//! claims stay `Copy`, no allocation per handshake), plain enough to print
//! in a URL query, a log line or a JSON string without escaping.

use std::fmt;

/// Longest device name, in bytes.
pub const MAX_DEVICE_NAME_BYTES: usize = 32;

/// What every refusal of a device name says, after the field's name.
pub const DEVICE_NAME_RULE: &str = "must be 1 to 32 bytes of A-Z a-z 0-9 . _ -";

/// A valid device name, inline. Ordered by name.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceName {
    len: u8,
    bytes: [u8; MAX_DEVICE_NAME_BYTES],
}

impl DeviceName {
    /// `name` if it is a valid device name.
    pub fn new(name: &str) -> Option<DeviceName> {
        let b = name.as_bytes();
        if b.is_empty() || b.len() > MAX_DEVICE_NAME_BYTES {
            return None;
        }
        if !b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-')) {
            return None;
        }
        let mut bytes = [0; MAX_DEVICE_NAME_BYTES];
        bytes[..b.len()].copy_from_slice(b);
        Some(DeviceName { len: b.len() as u8, bytes })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored (checked in `new`), so this
        // never falls back.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    /// A 32-bit FNV-1a hash of the name, never zero: what a gateway keeps
    /// per connection to find a device's connections (zero is "unnamed").
    /// Two names of one user may share a hash; closing "a device" then
    /// closes both, and the other reconnects (its token names it exactly).
    pub fn hash32(&self) -> u32 {
        let mut h: u32 = 0x811c_9dc5;
        for &b in &self.bytes[..usize::from(self.len)] {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        h.max(1)
    }
}

impl Ord for DeviceName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for DeviceName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceName({:?})", self.as_str())
    }
}

/// One entry of a `devices` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The name.
    pub device: String,
    /// When a connection with this name was first seen, Unix seconds.
    pub first_seen: u64,
    /// When a connection with this name last opened, Unix seconds (to
    /// within a minute).
    pub last_active: u64,
    /// When the device was logged out or revoked, Unix seconds, if its
    /// latest token was issued before that.
    pub revoked_at: Option<u64>,
    /// Whether this is the asking connection's own device.
    pub current: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_plain_and_hash_to_nonzero() {
        for good in ["a", "phone", "Work-Laptop_2.0", &"x".repeat(32)] {
            let d = DeviceName::new(good).unwrap();
            assert_eq!(d.as_str(), good);
            assert_ne!(d.hash32(), 0);
        }
        for bad in ["", &"x".repeat(33), "a b", "é", "a/b", "a\"b", "a\\b", "\u{0}"] {
            assert_eq!(DeviceName::new(bad), None, "{bad:?}");
        }
        assert_ne!(DeviceName::new("phone").unwrap().hash32(), DeviceName::new("laptop").unwrap().hash32());
        assert!(DeviceName::new("phone").unwrap() > DeviceName::new("laptop").unwrap(), "by name, not length");
        // FNV-1a 32 of "a" (the published test vector).
        assert_eq!(DeviceName::new("a").unwrap().hash32(), 0xe40c_292c);
    }
}
