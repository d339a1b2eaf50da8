//! Protocol frames of an open chat connection.
//!
//! Validation of shape happens in the protocol crate; permission checks
//! (membership, whose message) happen where the data is: in the committer
//! for writes and in the readers for reads. This file only routes.

use chatgw_protocol::{
    close, server, ClientFrame, ConversationId, ConversationRef, DeleteScope, ErrorCode, ProtocolError, PushTarget,
    UserId,
};
use chatgw_router::Endpoint;
use chatgw_storage::InboxPos;

use super::{
    conn::{PageRead, SyncCursor},
    Action, Engine,
};
use crate::{
    devices::keys::KeyOp,
    events::{AmendOp, BlockOp, CommitRequest, GroupOp, MembersFor, QueryRequest},
    media::requests::MediaOp,
    presence::PresenceRequest,
    ws::frame::Opcode,
};

/// Refused frames in a row (malformed, rate limited, ...) before the
/// connection is closed with 1008.
pub(crate) const MAX_STRIKES: u8 = 32;

fn conversation(me: UserId, r: ConversationRef) -> ConversationId {
    match r {
        ConversationRef::Peer(peer) => ConversationId::direct(me, peer),
        ConversationRef::Group(g) => ConversationId::Group(g),
    }
}

impl<S> Engine<S> {
    /// One complete text message from a chat connection.
    pub(super) fn on_text(&mut self, slot: usize, text: &str) {
        let (per_sec, burst) = (self.ctx.settings.rate_limit, self.ctx.settings.rate_burst);
        let now_ms = self.now_ms;
        let (now, Some(c)) = (self.now, self.conns.get_mut(slot)) else { return };
        if c.awaiting_auth() {
            return self.on_auth_frame(slot, text);
        }
        c.last_frame = now;
        if !c.rate.take(now_ms, per_sec, burst) {
            self.ctx.metrics.rate_limited.inc();
            return self.send_error(slot, &ProtocolError::new(ErrorCode::RateLimited, "too many frames; slow down"));
        }
        if self.draining {
            return self.send_error(slot, &ProtocolError::new(ErrorCode::ShuttingDown, "the server is shutting down"));
        }
        match ClientFrame::parse(text) {
            Ok(frame) => {
                if let Some(c) = self.conns.get_mut(slot) {
                    c.strikes = 0;
                }
                self.on_client_frame(slot, frame)
            }
            Err(e) => self.send_error(slot, &e),
        }
    }

    fn on_client_frame(&mut self, slot: usize, frame: ClientFrame<'_>) {
        if let ClientFrame::Send(s) = &frame {
            if s.envelope_device.is_some() && !self.envelope_from_this_device(slot, s) {
                return;
            }
        }
        let (Some(origin), Some(c)) = (self.endpoint(slot), self.conns.get_mut(slot)) else { return };
        let me = c.user;
        let request = match frame {
            ClientFrame::Send(s) if !self.ctx.limits.user_sends.take(me, self.now_ms) => {
                self.ctx.metrics.user_rate_limited.inc();
                let mut err = ProtocolError::new(ErrorCode::RateLimited, "too many messages from this user; slow down");
                err.reference = Some(s.client_id.to_owned());
                return self.send_error(slot, &err);
            }
            ClientFrame::Send(s) => CommitRequest::Send {
                origin,
                from: me,
                client_id: s.client_id.to_owned(),
                conversation: conversation(me, s.to),
                kind: s.kind,
                body: s.body.to_owned(),
            },
            ClientFrame::Delivered { conversation: r, ids } => {
                CommitRequest::Delivered { origin, by: me, conversation: conversation(me, r), ids }
            }
            ClientFrame::Read { conversation: r, up_to } => {
                CommitRequest::Read { origin, by: me, conversation: conversation(me, r), up_to }
            }
            ClientFrame::CreateGroup { request_id, name, members } => CommitRequest::Group {
                origin,
                by: me,
                op: GroupOp::Create { request_id: request_id.to_owned(), name, members },
            },
            ClientFrame::ChangeGroup { group, change } => {
                CommitRequest::Group { origin, by: me, op: GroupOp::Change { group, change } }
            }
            ClientFrame::GroupInfo { group } => CommitRequest::Group { origin, by: me, op: GroupOp::Info { group } },
            ClientFrame::Block { user } => {
                // Presence subscriptions between the two end at once; the
                // store's block list decides everything after (see `presence`).
                if user != me {
                    self.actions.push(Action::Presence(PresenceRequest::Blocked { by: me, target: user }));
                }
                CommitRequest::Block { origin, by: me, op: BlockOp::Block(user) }
            }
            ClientFrame::Unblock { user } => CommitRequest::Block { origin, by: me, op: BlockOp::Unblock(user) },
            ClientFrame::Blocks => CommitRequest::Block { origin, by: me, op: BlockOp::List },
            ClientFrame::SetDirectFrom { from } => CommitRequest::DirectFrom { origin, by: me, set: Some(from) },
            ClientFrame::DirectFrom => CommitRequest::DirectFrom { origin, by: me, set: None },
            ClientFrame::Auth { .. } => {
                let e = ProtocolError::new(ErrorCode::NotAllowed, "this connection is authenticated already");
                return self.send_error(slot, &e);
            }
            ClientFrame::Delete { conversation: r, msg, scope } => {
                let op = match scope {
                    DeleteScope::Everyone => AmendOp::Delete,
                    DeleteScope::Me => AmendOp::Hide,
                };
                CommitRequest::Amend { origin, by: me, conversation: conversation(me, r), msg, op }
            }
            ClientFrame::Edit { conversation: r, msg, body } => CommitRequest::Amend {
                origin,
                by: me,
                conversation: conversation(me, r),
                msg,
                op: AmendOp::Edit {
                    body: body.to_owned(),
                    device: self.devices.get(&slot).map(|d| Box::new(d.device)),
                },
            },
            ClientFrame::Sync { after, limit } => {
                c.subscribed = true;
                c.syncing = true;
                c.sync_missed = false;
                c.sync_paused = false;
                c.cursor = after;
                c.pos = InboxPos(0);
                c.sync_cursor = SyncCursor::Resolving;
                c.sync_limit = limit as u16;
                // The sync takes over a catch-up or sync in progress. A page
                // already asked for answers the old request: the new sync's
                // first page is asked for when it comes.
                self.leave_catch_up(slot);
                if let Some(c) = self.conns.get_mut(slot) {
                    if c.page != PageRead::Idle {
                        c.page = PageRead::Stale;
                        return;
                    }
                }
                return self.request_sync_page(slot);
            }
            ClientFrame::History { conversation: r, before, limit } => {
                let q = QueryRequest::History { origin, user: me, conversation: conversation(me, r), before, limit };
                return self.actions.push(Action::Query(q));
            }
            ClientFrame::Devices => {
                let own = self.device_of(slot);
                return self.actions.push(Action::Query(QueryRequest::Devices { origin, user: me, own }));
            }
            ClientFrame::LogoutDevice { device } => {
                return self.actions.push(Action::Query(QueryRequest::LogoutDevice { origin, user: me, device }));
            }
            ClientFrame::RegisterPush { provider, token } => {
                let target = PushTarget { provider, token: token.into_owned() };
                return self.push_request(slot, origin, me, Some(target));
            }
            ClientFrame::UnregisterPush => return self.push_request(slot, origin, me, None),
            ClientFrame::UploadKeys { keys, one_time_keys } => {
                return self.key_request(slot, origin, me, KeyOp::Upload { keys, one_time_keys });
            }
            ClientFrame::FetchKeys { user, device } => {
                return self.key_request(slot, origin, me, KeyOp::Fetch { user, device });
            }
            ClientFrame::KeyCount => return self.key_request(slot, origin, me, KeyOp::Count),
            ClientFrame::UploadMedia { request_id, conversation: r, kind, size, content_type } => {
                let request_id = request_id.to_owned();
                let op = MediaOp::Upload { request_id, conversation: conversation(me, r), kind, size, content_type };
                return self.actions.push(Action::Query(QueryRequest::Media { origin, user: me, op }));
            }
            ClientFrame::CompleteMedia { request_id, media, upload, tags } => {
                let op = MediaOp::Complete { request_id: request_id.to_owned(), media, upload, tags };
                return self.actions.push(Action::Query(QueryRequest::Media { origin, user: me, op }));
            }
            ClientFrame::DownloadMedia { request_id, media } => {
                let op = MediaOp::Download { request_id: request_id.to_owned(), media };
                return self.actions.push(Action::Query(QueryRequest::Media { origin, user: me, op }));
            }
            ClientFrame::Conversations { before, limit } => {
                let q = QueryRequest::Conversations { origin, user: me, before, limit };
                return self.actions.push(Action::Query(q));
            }
            ClientFrame::MessageInfo { group, msg } => {
                return self.actions.push(Action::Query(QueryRequest::MessageInfo { origin, user: me, group, msg }));
            }
            ClientFrame::SubscribePresence { conversation: r } => {
                return self.members_request(origin, me, conversation(me, r), MembersFor::Subscribe);
            }
            ClientFrame::Typing { conversation: r, state } => {
                return self.members_request(origin, me, conversation(me, r), MembersFor::Typing(state));
            }
            ClientFrame::UnsubscribePresence { conversation: r } => {
                let conversation = conversation(me, r);
                return self.presence_request(PresenceRequest::Unsubscribe { origin, conversation });
            }
            ClientFrame::SetPresence { visible } => {
                return self.presence_request(PresenceRequest::SetVisible { origin, user: me, visible });
            }
        };
        // A refusal (queue full or gone) comes back through `on_action_refused`.
        self.actions.push(Action::Commit(request));
    }

    /// `register_push` (`Some`) or `unregister_push`: for the readers if
    /// the connection's token names a device, refused if it does not.
    fn push_request(&mut self, slot: usize, origin: Endpoint, me: UserId, target: Option<PushTarget>) {
        let Some((device, token_iat)) = self.named(slot) else {
            let e = ProtocolError::new(
                ErrorCode::NotAllowed,
                "push targets belong to named devices: connect with a token whose `dev` claim names this device",
            );
            return self.send_error(slot, &e);
        };
        self.actions.push(Action::Query(QueryRequest::SetPush { origin, user: me, device, token_iat, target }));
    }

    /// A key directory request: for the readers if the connection's token
    /// names a device, refused if it does not.
    fn key_request(&mut self, slot: usize, origin: Endpoint, me: UserId, op: KeyOp) {
        let Some((device, token_iat)) = self.named(slot) else {
            let e = ProtocolError::new(
                ErrorCode::NotAllowed,
                "keys belong to named devices: connect with a token whose `dev` claim names this device",
            );
            return self.send_error(slot, &e);
        };
        self.actions.push(Action::Query(QueryRequest::Keys { origin, user: me, device, token_iat, op }));
    }

    /// Whether an `encrypted` send's envelope names the connection's own
    /// device (`d`); if not, the send is answered with an error here: an
    /// unnamed connection cannot send encrypted messages at all.
    fn envelope_from_this_device(&mut self, slot: usize, s: &chatgw_protocol::Send<'_>) -> bool {
        let e = match self.named(slot) {
            Some((device, _)) if s.envelope_device == Some(device) => return true,
            Some((device, _)) => ProtocolError::new(
                ErrorCode::BadField,
                format!("field `body`: encrypted envelope: `d` must be this connection's device `{device}`"),
            ),
            None => ProtocolError::new(
                ErrorCode::NotAllowed,
                "encrypted messages come from named devices: connect with a token whose `dev` claim names this device",
            ),
        };
        let mut e = e;
        e.reference = Some(s.client_id.to_owned());
        self.send_error(slot, &e);
        false
    }

    /// Answer a refused frame with an `error`; a connection that collects
    /// [`MAX_STRIKES`] refusals in a row is closed with 1008.
    pub(super) fn send_error(&mut self, slot: usize, e: &ProtocolError) {
        self.ctx.metrics.protocol_errors.inc();
        let mut p = Vec::with_capacity(96 + e.message.len());
        server::error(&mut p, e.code, &e.message, e.reference.as_deref());
        self.queue_frame(slot, Opcode::Text, &p);
        let Some(c) = self.conns.get_mut(slot) else { return };
        if !e.code.is_client_fault() {
            return;
        }
        c.strikes = c.strikes.saturating_add(1);
        if c.strikes >= MAX_STRIKES {
            self.ctx.metrics.policy_closes.inc();
            self.close_with(slot, close::POLICY, "too many refused frames in a row");
        }
    }
}
