//! Revocation on a core: the check after a chat connection registers, the
//! note that a named device connected, and the 4004 closes.
//!
//! Apart from `http` (the upgrade) so that the request path stays about
//! HTTP: what a revocation means for a registered connection lives here.

use chatgw_protocol::close;
use chatgw_storage::DeviceNote;

use super::Engine;
use crate::auth::{AuthError, Claims};

impl<S> Engine<S> {
    /// The chat connection at `slot` just registered with `claims`: keep
    /// its device's hash, then close it at once if it is revoked, else
    /// note its device for the recorder.
    ///
    /// A revocation recorded between the check in `route_upgrade` and the
    /// registration found no connection to close in the directory; it is
    /// in the cache now, so it is seen here.
    pub(super) fn registered(&mut self, slot: usize, claims: &Claims) {
        if let Some(device) = claims.device {
            self.devices.insert(slot, super::named::NamedConn { device, live: false, token_iat: claims.iat });
        }
        match self.ctx.revocations.refusal(claims) {
            Some(AuthError::DeviceRevoked) => self.device_revoked(slot),
            Some(_) => self.revoked(slot),
            None => self.note_device(claims),
        }
    }

    /// A named device connected: note it for the recorder (never blocks).
    fn note_device(&self, claims: &Claims) {
        if let Some(device) = claims.device {
            let at = self.now_ms / 1000;
            let token_iat = claims.iat.unwrap_or(0);
            self.ctx.device_notes.note(DeviceNote { user: claims.user, device, at, token_iat });
        }
    }

    /// The user's sessions were revoked: close `slot` with 4004.
    pub(super) fn revoked(&mut self, slot: usize) {
        self.ctx.metrics.sessions_revoked.inc();
        self.close_with(slot, close::REVOKED, "session revoked; get a new token");
    }

    /// The connection's device was logged out: close `slot` with 4004.
    pub(super) fn device_revoked(&mut self, slot: usize) {
        self.ctx.metrics.sessions_revoked.inc();
        self.close_with(slot, close::REVOKED, "device logged out; get a new token");
    }
}
