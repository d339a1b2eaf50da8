//! Opening received messages: which session a ciphertext may be opened
//! with, and what its payload must say to be accepted.
//!
//! The checks are the receiving half of docs/E2EE.md, "Client payloads": an
//! Olm entry opens only with a session of the claimed sender device (a new
//! one only with the identity key that device published), a Megolm message
//! only with a session that device shared over Olm; the payload must name
//! the message's sender and conversation; a ciphertext opened before under
//! another message id is a replay.

use base64::{engine::general_purpose::STANDARD_NO_PAD, Engine as _};
use chatgw_client::MessageEvent;
use chatgw_protocol::{ConversationRef, MessageId, MessageKind, PublicKey, UserId};
use sha2::{Digest, Sha512};
use vodozemac::megolm::{MegolmMessage, SessionKey};

use super::{Decrypted, DeviceCrypto, Opened};
use crate::{
    bundle::curve,
    envelope::{Envelope, GroupCiphertext},
    error::DecryptError,
    olm::OlmFailure,
    payload::{inner_kind, Conversation, Payload},
};

impl DeviceCrypto {
    /// Open an `encrypted` message.
    pub fn decrypt(&mut self, message: &MessageEvent) -> Result<Opened, DecryptError> {
        if message.kind != MessageKind::Encrypted {
            return Err(DecryptError::NotEncrypted);
        }
        let envelope = Envelope::parse(&message.body)?;
        let (my_user, my_device) = self.me();
        if let Some(g) = &envelope.g {
            return self.decrypt_group(message, &envelope.d, g);
        }
        let Some(entry) = envelope.entry_for(my_user, &my_device) else {
            if message.from.0 == my_user && envelope.d == my_device {
                return Err(DecryptError::SentByThisDevice);
            }
            return Err(DecryptError::NotForThisDevice);
        };
        let seen_key = format!("o:{}", STANDARD_NO_PAD.encode(&Sha512::digest(entry.c.as_bytes())[..24]));
        match self.seen.get(&seen_key) {
            Some(first) if first == message.id.0 => return Err(DecryptError::AlreadyDecrypted(message.id)),
            Some(first) => return Err(DecryptError::Replayed { first: Some(MessageId(first)) }),
            None => {}
        }
        let (user, device) = (message.from, envelope.d.as_str());
        let known = self
            .contacts
            .device(user, device)
            .ok_or_else(|| DecryptError::UnknownDevice { user, device: device.to_owned() })?;
        let identity = PublicKey::from_base64(&known.identity_key)
            .ok_or_else(|| DecryptError::UnknownDevice { user, device: device.to_owned() })?;
        let plaintext =
            self.olm.decrypt(self.account.olm_mut(), user.0, device, curve(&identity), entry).map_err(|f| match f {
                OlmFailure::Tampered(why) => DecryptError::Tampered(why),
                OlmFailure::Used => DecryptError::Replayed { first: None },
                OlmFailure::NoSession => DecryptError::NoSession { user, device: device.to_owned() },
                OlmFailure::IdentityMismatch => DecryptError::IdentityMismatch { user, device: device.to_owned() },
            })?;
        self.seen.insert(seen_key, message.id.0);
        let payload = Payload::parse(&plaintext).ok_or(DecryptError::BadPayload)?;
        check_sender(&payload, user, device)?;
        match (payload, message.group) {
            (Payload::RoomKey { to, session_id, session_key, .. }, Some(group)) => {
                if to != Conversation::group(group.0) {
                    return Err(DecryptError::WrongConversation);
                }
                let key = SessionKey::from_base64(&session_key).map_err(|_| DecryptError::BadPayload)?;
                if !self.groups.install(user.0, device, group.0, &session_id, &key) {
                    return Err(DecryptError::BadPayload);
                }
                Ok(Opened::RoomKey { group, from: user, device: device.to_owned(), session_id })
            }
            (Payload::Message { to, kind, body, .. }, None) => {
                // The recipient user the message was sent to.
                let recipient = message.to.unwrap_or(UserId(my_user));
                if to != Conversation::direct(recipient.0) {
                    return Err(DecryptError::WrongConversation);
                }
                let peer = if user.0 == my_user { recipient } else { user };
                let kind = inner_kind(&kind).ok_or(DecryptError::BadPayload)?;
                Ok(Opened::Message(Decrypted {
                    id: message.id,
                    from: user,
                    device: device.to_owned(),
                    conversation: ConversationRef::Peer(peer),
                    kind,
                    body,
                    ts: message.ts,
                }))
            }
            _ => Err(DecryptError::WrongConversation),
        }
    }

    fn decrypt_group(
        &mut self,
        message: &MessageEvent,
        device: &str,
        g: &GroupCiphertext,
    ) -> Result<Opened, DecryptError> {
        let group = message.group.ok_or(DecryptError::WrongConversation)?;
        let key = (message.from.0, device.to_owned(), g.s.clone());
        let inbound =
            self.groups.inbound.get_mut(&key).ok_or_else(|| DecryptError::UnknownGroupSession(g.s.clone()))?;
        if inbound.group != group.0 {
            return Err(DecryptError::WrongConversation);
        }
        let sealed = MegolmMessage::from_base64(&g.c).map_err(|e| DecryptError::Tampered(e.to_string()))?;
        let opened = inbound.session.decrypt(&sealed).map_err(|e| match e {
            vodozemac::megolm::DecryptionError::UnknownMessageIndex(_, index) => DecryptError::GroupIndexUnknown(index),
            other => DecryptError::Tampered(other.to_string()),
        })?;
        // Megolm opens any index as often as asked: the session remembers
        // which message each index came in.
        match inbound.seen.get(&opened.message_index) {
            Some(&first) if first != message.id.0 => {
                return Err(DecryptError::Replayed { first: Some(MessageId(first)) })
            }
            _ => {
                inbound.seen.insert(opened.message_index, message.id.0);
            }
        }
        let payload = Payload::parse(&opened.plaintext).ok_or(DecryptError::BadPayload)?;
        check_sender(&payload, message.from, device)?;
        let Payload::Message { to, kind, body, .. } = payload else { return Err(DecryptError::BadPayload) };
        if to != Conversation::group(group.0) {
            return Err(DecryptError::WrongConversation);
        }
        Ok(Opened::Message(Decrypted {
            id: message.id,
            from: message.from,
            device: device.to_owned(),
            conversation: ConversationRef::Group(group),
            kind: inner_kind(&kind).ok_or(DecryptError::BadPayload)?,
            body,
            ts: message.ts,
        }))
    }
}

fn check_sender(payload: &Payload, user: UserId, device: &str) -> Result<(), DecryptError> {
    let from = payload.sender();
    if from.u != user.0.to_string() || from.d != device {
        return Err(DecryptError::WrongConversation);
    }
    Ok(())
}
