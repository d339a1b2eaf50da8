//! Named devices on a core: which device each connection's token names,
//! and whether that connection is live, that is, has completed a `sync`
//! and receives live events (docs/PROTOCOL.md, 1.6).
//!
//! The engine keeps both beside the connection slab (the record has no
//! room to spare, see `conn`'s size test), and reports each change of
//! liveness to the shared [`LiveDevices`](crate::devices::live::LiveDevices)
//! the push worker reads. Changes happen when a sync completes, a sync
//! fails and when a connection closes: never per message.

use chatgw_protocol::DeviceName;

use super::Engine;

/// The device a connection's token names, and whether it is counted live.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NamedConn {
    pub(crate) device: DeviceName,
    pub(crate) live: bool,
    /// The `iat` of the connection's token: a push registration checks it
    /// against the device's logout (`devices::push`).
    pub(crate) token_iat: Option<u64>,
}

impl<S> Engine<S> {
    /// The device hash of the connection at `slot`, 0 if it names none.
    pub(crate) fn device_of(&self, slot: usize) -> u32 {
        self.devices.get(&slot).map_or(0, |d| d.device.hash32())
    }

    /// The device the connection at `slot` names and its token's `iat`,
    /// if it names one.
    pub(crate) fn named(&self, slot: usize) -> Option<(DeviceName, Option<u64>)> {
        self.devices.get(&slot).map(|d| (d.device, d.token_iat))
    }

    /// The connection at `slot` completed a sync: its device is live.
    pub(super) fn now_live(&mut self, slot: usize) {
        let Some(user) = self.conns.get(slot).map(|c| c.user) else { return };
        if let Some(d) = self.devices.get_mut(&slot).filter(|d| !d.live) {
            d.live = true;
            self.ctx.live_devices.went_live(user, d.device);
        }
    }

    /// The connection at `slot` gets no live events until it syncs again.
    pub(super) fn not_live(&mut self, slot: usize) {
        let Some(user) = self.conns.get(slot).map(|c| c.user) else { return };
        if let Some(d) = self.devices.get_mut(&slot).filter(|d| d.live) {
            d.live = false;
            self.ctx.live_devices.went_away(user, d.device);
        }
    }
}
