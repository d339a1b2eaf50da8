//! The receiving half of [`SecureClient`]: raw events in, what the
//! application sees out.

use std::time::Duration;

use chatgw_client::{ClientError, Event, MessageEvent};
use chatgw_protocol::{MessageKind, UserId};

use super::{SecureClient, SecureError, SecureEvent};
use crate::{account::DeviceAccount, crypto::Opened, error::DecryptError};

impl SecureClient {
    /// The next event, or `None` if nothing arrived within `timeout`.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<SecureEvent>, SecureError> {
        loop {
            if let Some(ready) = self.ready.pop_front() {
                return Ok(Some(ready));
            }
            let event = match self.pending.pop_front() {
                Some(e) => e,
                None => match self.client.next_event(timeout)? {
                    Some(e) => e,
                    None => return Ok(None),
                },
            };
            // The cursor moves only past events handled, not past events
            // still queued.
            let cursor = event.cursor_id();
            let out = self.handle(event)?;
            if let Some(id) = cursor {
                self.crypto.set_cursor(id);
                self.save()?;
            }
            if let Some(out) = out {
                return Ok(Some(out));
            }
        }
    }

    /// Sync from the device's cursor: every event until `synced` (which is
    /// the last one returned).
    pub fn sync(&mut self) -> Result<Vec<SecureEvent>, SecureError> {
        self.client.sync()?;
        let mut out = Vec::new();
        loop {
            match self.next_event(self.config.reply_timeout)? {
                Some(SecureEvent::Other(Event::Synced { cursor })) => {
                    out.push(SecureEvent::Other(Event::Synced { cursor }));
                    // Fetches while this device was away used its keys.
                    self.check_keys()?;
                    return Ok(out);
                }
                Some(e) => out.push(e),
                None => return Err(ClientError::Timeout("synced").into()),
            }
        }
    }

    /// Turn one raw event into what the caller sees (`None`: consumed).
    fn handle(&mut self, event: Event) -> Result<Option<SecureEvent>, SecureError> {
        match event {
            Event::Message(m) if m.kind == MessageKind::Encrypted => self.open_message(m),
            Event::Message(m) if m.kind == MessageKind::System && m.group.is_some() => {
                self.crypto.group_system_message(&m);
                self.save()?;
                Ok(Some(SecureEvent::Other(Event::Message(m))))
            }
            Event::Group { id, ref members, .. } => {
                let users: Vec<UserId> = members.iter().map(|(u, _)| *u).collect();
                self.crypto.set_group_members(id, &users);
                self.save()?;
                Ok(Some(SecureEvent::Other(event)))
            }
            Event::KeyCount { device, one_time_keys } => {
                if DeviceAccount::needs_keys(one_time_keys) {
                    let upload = self.crypto.account_mut().upload(one_time_keys);
                    self.save()?;
                    self.client.upload_keys(&upload.keys, &upload.one_time_keys)?;
                }
                Ok(Some(SecureEvent::Other(Event::KeyCount { device, one_time_keys })))
            }
            Event::KeysChanged { event, user } => {
                // The user's devices or identity keys changed: their device
                // list is fetched again before the next message to them.
                self.crypto.devices_changed(user);
                self.save()?;
                Ok(Some(SecureEvent::Other(Event::KeysChanged { event, user })))
            }
            other => Ok(Some(SecureEvent::Other(other))),
        }
    }

    fn open_message(&mut self, message: MessageEvent) -> Result<Option<SecureEvent>, SecureError> {
        let mut result = self.crypto.decrypt(&message);
        if let Err(DecryptError::UnknownDevice { user, .. } | DecryptError::IdentityMismatch { user, .. }) = &result {
            // A device never seen, or seen with other keys (reinstalled, or
            // someone in the middle): its published keys decide, and a
            // change is reported.
            let user = *user;
            self.refresh_devices(user, false)?;
            result = self.crypto.decrypt(&message);
        }
        self.save()?;
        Ok(match result {
            Ok(Opened::Message(m)) => Some(SecureEvent::Message(m)),
            Ok(Opened::RoomKey { group, from, device, .. }) => Some(SecureEvent::RoomKey { group, from, device }),
            // Key shares for the group's other devices.
            Err(DecryptError::NotForThisDevice) if message.group.is_some() => None,
            // This device's own sends, which `sync` returns after a restart:
            // it keeps its own copy, and cannot encrypt to itself.
            Err(DecryptError::SentByThisDevice) => None,
            Err(error) => Some(SecureEvent::Undecryptable { message, error }),
        })
    }
}
