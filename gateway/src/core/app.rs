//! Protocol frames of an open chat connection.

use chatgw_protocol::{
    server, ClientFrame, ConversationId, ConversationRef, ErrorCode, ProtocolError,
};
use crossbeam_channel::TrySendError;

use super::Engine;
use crate::{
    events::{CommitRequest, QueryRequest},
    ws::frame::Opcode,
};

impl<S> Engine<S> {
    /// One complete text message from a chat connection.
    pub(super) fn on_text(&mut self, slot: usize, text: &str) {
        let (per_sec, burst) = (self.shared.config.rate_limit, self.shared.config.rate_burst);
        let now_ms = self.now_ms;
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        if !c.take_rate_token(now_ms, per_sec, burst) {
            self.shared.metrics.rate_limited.inc();
            return self.send_error(
                slot,
                &ProtocolError::new(ErrorCode::RateLimited, "too many frames; slow down"),
            );
        }
        if self.draining {
            return self.send_error(
                slot,
                &ProtocolError::new(ErrorCode::ShuttingDown, "the server is shutting down"),
            );
        }
        match ClientFrame::parse(text) {
            Ok(frame) => self.on_client_frame(slot, frame),
            Err(e) => self.send_error(slot, &e),
        }
    }

    fn on_client_frame(&mut self, slot: usize, frame: ClientFrame<'_>) {
        let (Some(origin), Some(c)) = (self.endpoint(slot), self.conns.get_mut(slot)) else {
            return;
        };
        let me = c.user;
        let request = match frame {
            ClientFrame::Send(s) => {
                let ConversationRef::Peer(peer) = s.to;
                Some((
                    CommitRequest::Send {
                        origin,
                        from: me,
                        client_id: s.client_id.to_owned(),
                        conversation: ConversationId::direct(me, peer),
                        kind: s.kind,
                        body: s.body.to_owned(),
                    },
                    Some(s.client_id),
                ))
            }
            ClientFrame::Delivered {
                conversation: ConversationRef::Peer(peer),
                ids,
            } => Some((
                CommitRequest::Delivered {
                    origin,
                    by: me,
                    conversation: ConversationId::direct(me, peer),
                    ids,
                },
                None,
            )),
            ClientFrame::Read {
                conversation: ConversationRef::Peer(peer),
                up_to,
            } => Some((
                CommitRequest::Read {
                    origin,
                    by: me,
                    conversation: ConversationId::direct(me, peer),
                    up_to,
                },
                None,
            )),
            ClientFrame::Sync { after, limit } => {
                c.subscribed = true;
                c.syncing = true;
                c.sync_missed = false;
                c.sync_paused = false;
                c.cursor = after;
                c.sync_limit = limit as u16;
                self.request_sync_page(slot);
                None
            }
            ClientFrame::History {
                conversation: ConversationRef::Peer(peer),
                before,
                limit,
            } => {
                if self
                    .shared
                    .query_tx
                    .send(QueryRequest::History {
                        origin,
                        user: me,
                        peer,
                        before,
                        limit,
                    })
                    .is_err()
                {
                    self.send_error(
                        slot,
                        &ProtocolError::new(ErrorCode::ShuttingDown, "the server is shutting down"),
                    );
                }
                None
            }
        };
        if let Some((req, reference)) = request {
            if let Err(e) = self.shared.commit_tx.try_send(req) {
                let (code, why) = match e {
                    TrySendError::Full(_) => (
                        ErrorCode::Unavailable,
                        "the write queue is full; retry with the same id",
                    ),
                    TrySendError::Disconnected(_) => {
                        (ErrorCode::ShuttingDown, "the server is shutting down")
                    }
                };
                let mut err = ProtocolError::new(code, why);
                err.reference = reference.map(str::to_owned);
                self.send_error(slot, &err);
            }
        }
    }

    pub(super) fn send_error(&mut self, slot: usize, e: &ProtocolError) {
        self.shared.metrics.protocol_errors.inc();
        let mut p = Vec::with_capacity(96 + e.message.len());
        server::error(&mut p, e.code, &e.message, e.reference.as_deref());
        self.queue_frame(slot, Opcode::Text, &p);
    }
}
