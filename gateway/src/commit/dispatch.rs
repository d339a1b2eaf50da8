//! After a commit: `sent` acks and other replies to the requesters, live
//! events to every device concerned, each write's fate taken from the
//! store's per-write outcome.
//!
//! The store decides what another gateway sharing it raced for: a message
//! whose idempotency key another gateway bound first was not stored (its
//! sender gets `sent` with the original id, or `client_id_conflict` if the
//! original is another message, and nobody a live copy: the gateway that
//! stored it delivered it), and a group write on a record
//! another gateway changed was not applied (its requester is told to retry,
//! and the committer forgets the cached record), and so was a group message
//! fanned out to a membership another gateway has changed since (the same
//! answer: the resend goes to the members as they are now). Every live
//! event carries
//! the position the store gave it in the recipient's inbox.

use std::{collections::HashMap, sync::Arc};

use chatgw_protocol::{server, ConversationId, ErrorCode, GroupId, Message, MessageId, Snowflake, UserId};
use chatgw_router::{Endpoint, Fanout};
use chatgw_storage::{Committed, InboxPos, MessageStore, StoreError, WriteOutcome};
use crossbeam_channel::Sender;

use super::peers::{Changed, Peers};
use super::{batch::Outcome, client_ids::CLIENT_ID_CONFLICT, CommitContext};
use crate::{events::CoreEvent, fleet::RouteJob};

/// Messages this gateway prepared under one id that the store refused
/// because another writer had bound their idempotency key first, mapped to
/// the original id. A resend of the same client id prepared before the
/// refusal was known was answered from the committer's in-flight decisions
/// with the refused id; it is corrected here. Bounded: such resends are
/// prepared within a few batches of the refusal, so the map is emptied
/// once it holds [`Replaced::MAX`] entries. `None`: the key was bound to a
/// different message (`client_id_conflict`).
#[derive(Default)]
pub(super) struct Replaced(HashMap<MessageId, Option<MessageId>>);

impl Replaced {
    const MAX: usize = 4096;

    fn insert(&mut self, refused: MessageId, original: Option<MessageId>) {
        if self.0.len() >= Self::MAX {
            self.0.clear();
        }
        self.0.insert(refused, original);
    }

    /// The id to answer a resend of `id` with; `None` for a conflict.
    fn resolve(&self, id: MessageId) -> Option<MessageId> {
        self.0.get(&id).copied().unwrap_or(Some(id))
    }
}

/// Whether the message another writer bound the key to is `message`
/// itself (a resend that raced): same conversation, and the stored one has
/// the same kind and body. Read only on this rare path.
fn same_message(
    store: &dyn MessageStore,
    message: &Message,
    conversation: ConversationId,
    id: MessageId,
) -> Result<bool, StoreError> {
    if conversation != message.conversation {
        return Ok(false);
    }
    Ok(match store.message(conversation, id)? {
        // An amended original no longer holds the body it was sent with.
        Some(original) => {
            original.kind == message.kind && (original.amended.is_some() || original.body == message.body)
        }
        None => true,
    })
}

/// After the commit: acks to origins, live events to devices, each write's
/// outcome taken from the commit in order.
pub(super) struct Dispatch<'d, 'a> {
    pub(super) ctx: &'a CommitContext,
    pub(super) committed: &'d Committed,
    /// The index in the commit of the next outcome that was a write.
    pub(super) next_write: &'d mut usize,
    pub(super) fanout: &'d mut Fanout<CoreEvent>,
    pub(super) conflicts: &'a Sender<GroupId>,
    pub(super) replaced: &'d mut Replaced,
    /// For the rare read of an original that another writer stored.
    pub(super) store: &'a dyn MessageStore,
    /// The other commit pipelines, told of every group change.
    pub(super) peers: &'a Peers,
}

impl<'d> Dispatch<'d, '_> {
    fn reply(&mut self, to: Endpoint, payload: Vec<u8>) {
        self.fanout.push(usize::from(to.core), CoreEvent::Reply { to, payload });
    }

    /// The outcome and positions of the next write.
    fn next(&mut self) -> (WriteOutcome, &'d [InboxPos]) {
        let i = *self.next_write;
        *self.next_write += 1;
        let committed: &'d Committed = self.committed;
        // A commit reports every write; a missing report is a refusal.
        (committed.outcome(i).unwrap_or(WriteOutcome::Conflict), committed.positions(i))
    }

    /// `payload` to every device of `users` but `skip` (which only learns
    /// the position: it made the event), each with the event's position in
    /// that user's inbox.
    fn deliver(
        &mut self,
        users: &[UserId],
        positions: &[InboxPos],
        skip: Option<Endpoint>,
        event: MessageId,
        payload: Vec<u8>,
    ) {
        let payload: Arc<[u8]> = payload.into();
        for (user, pos) in users.iter().zip(positions) {
            let fanout = &mut *self.fanout;
            self.ctx.directory.for_each(user.0, |ep| {
                let ev = if Some(ep) == skip {
                    CoreEvent::Seen { to: ep, event, pos: *pos }
                } else {
                    CoreEvent::Deliver { to: ep, event, pos: *pos, payload: payload.clone() }
                };
                fanout.push(usize::from(ep.core), ev);
            });
        }
        // Devices on other nodes: the routing thread finds them.
        if let Some(remote) = &self.ctx.remote {
            let targets = users.iter().zip(positions).map(|(u, p)| (u.0, p.0)).collect();
            remote.route(RouteJob { event: event.0, payload, targets });
        }
    }

    fn retry_later(&mut self, to: Endpoint, why: &str, reference: Option<&str>) {
        let mut p = Vec::new();
        server::error(&mut p, ErrorCode::Unavailable, why, reference);
        self.reply(to, p);
    }

    fn conflict(&mut self, to: Endpoint, client_id: &str) {
        self.ctx.metrics.protocol_errors.inc();
        let mut p = Vec::new();
        server::error(&mut p, ErrorCode::ClientIdConflict, CLIENT_ID_CONFLICT, Some(client_id));
        self.reply(to, p);
    }

    pub(super) fn outcomes(&mut self, outcomes: &[Outcome]) {
        for o in outcomes {
            match o {
                Outcome::Stored { origin, client_id, message, inboxes, membership } => {
                    let (outcome, positions) = self.next();
                    match outcome {
                        WriteOutcome::Applied => {
                            self.ctx.metrics.messages_stored.inc();
                            if let Some(origin) = origin {
                                let mut ack = Vec::with_capacity(96);
                                server::sent(&mut ack, client_id, message.id, message.ts, false);
                                self.reply(*origin, ack);
                            }
                            let mut frame = Vec::with_capacity(128 + message.body.len());
                            server::message(&mut frame, message);
                            self.deliver(inboxes, positions, *origin, message.id, frame);
                        }
                        // Another gateway stored this key first; it told the
                        // devices. This one answers with the original.
                        WriteOutcome::Duplicate { conversation, id } => {
                            match same_message(self.store, message, conversation, id) {
                                Ok(true) => {
                                    self.ctx.metrics.messages_deduplicated.inc();
                                    self.replaced.insert(message.id, Some(id));
                                    if let Some(origin) = origin {
                                        let mut ack = Vec::with_capacity(96);
                                        server::sent(&mut ack, client_id, id, Snowflake::unix_ms(id), true);
                                        self.reply(*origin, ack);
                                    }
                                }
                                Ok(false) => {
                                    self.replaced.insert(message.id, None);
                                    if let Some(origin) = origin {
                                        self.conflict(*origin, client_id);
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "cannot read the message a client id is bound to");
                                    if let Some(origin) = origin {
                                        let why = "the store could not be read; retry with the same id";
                                        self.retry_later(*origin, why, Some(client_id));
                                    }
                                }
                            }
                        }
                        WriteOutcome::Conflict => {
                            // A group message fanned out to a membership
                            // another gateway changed: nothing was stored;
                            // the committer reads the group again and the
                            // resend reaches the members as they are now.
                            let stale = match (membership, message.conversation) {
                                (Some(_), ConversationId::Group(g)) => Some(g),
                                _ => None,
                            };
                            if let Some(g) = stale {
                                self.ctx.metrics.stale_group_sends.inc();
                                let _ = self.conflicts.send(g);
                            }
                            if let Some(origin) = origin {
                                let why = match stale {
                                    Some(_) => "the group changed meanwhile; nothing was sent, retry with the same id",
                                    None => "the store could not take the write; retry with the same id",
                                };
                                self.retry_later(*origin, why, Some(client_id));
                            }
                        }
                    }
                }
                Outcome::Duplicate { origin, client_id, id } => match self.replaced.resolve(*id) {
                    Some(id) => {
                        self.ctx.metrics.messages_deduplicated.inc();
                        let mut ack = Vec::with_capacity(96);
                        server::sent(&mut ack, client_id, id, Snowflake::unix_ms(id), true);
                        self.reply(*origin, ack);
                    }
                    None => self.conflict(*origin, client_id),
                },
                Outcome::Receipt { origin, receipt, inboxes } => {
                    let (_, positions) = self.next();
                    self.ctx.metrics.receipts_stored.inc();
                    // Encoded per inbox: a direct conversation is named by the other user.
                    for (user, pos) in inboxes.iter().zip(positions) {
                        let mut frame = Vec::with_capacity(128);
                        server::receipt(&mut frame, receipt, *user);
                        self.deliver(std::slice::from_ref(user), &[*pos], *origin, receipt.event(), frame);
                    }
                }
                Outcome::GroupWrite { origin, reference, group, announce, inboxes, .. } => {
                    let (outcome, positions) = self.next();
                    if outcome != WriteOutcome::Applied {
                        // Another gateway changed (or created) the group
                        // first: nothing was written; the requester retries
                        // on the record as it is now.
                        let _ = self.conflicts.send(group.id);
                        let why = match outcome {
                            // A create whose request id another gateway took
                            // at the same moment: the retry finds that group.
                            WriteOutcome::Duplicate { .. } => {
                                "another gateway took this request id meanwhile; retry with the same id"
                            }
                            _ => "the group changed meanwhile; nothing was changed, retry",
                        };
                        self.retry_later(*origin, why, reference.as_deref());
                        continue;
                    }
                    self.ctx.metrics.messages_stored.inc();
                    // Stored: the other pipelines read it again from now on.
                    self.peers.tell(Changed::Group(group.id));
                    if let Some(remote) = &self.ctx.remote {
                        remote.group_changed(group.id);
                    }
                    let mut frame = Vec::with_capacity(128 + announce.body.len());
                    server::message(&mut frame, announce);
                    self.deliver(inboxes, positions, None, announce.id, frame);
                    let mut p = Vec::with_capacity(64 + 48 * group.members.len());
                    server::group(&mut p, group, reference.as_deref());
                    self.reply(*origin, p);
                }
                Outcome::Amend { origin, message, inboxes } => {
                    let (_, positions) = self.next();
                    self.ctx.metrics.messages_amended.inc();
                    let event = message.amended.map_or(MessageId(0), |a| a.event);
                    let mut frame = Vec::with_capacity(160 + message.body.len());
                    server::amended(&mut frame, event, message, false);
                    // The requester's connection gets the frame as its
                    // answer (marked a reply), whether it is subscribed or
                    // not; its other devices and everyone else's get the
                    // event.
                    self.deliver(inboxes, positions, Some(*origin), event, frame);
                    let mut answer = Vec::with_capacity(160 + message.body.len());
                    server::amended(&mut answer, event, message, true);
                    self.reply(*origin, answer);
                }
                Outcome::Hide { origin, user, message } => {
                    let (_, positions) = self.next();
                    self.ctx.metrics.messages_hidden.inc();
                    let event = message.amended.map_or(MessageId(0), |a| a.event);
                    let mut frame = Vec::with_capacity(160);
                    server::amended(&mut frame, event, message, false);
                    // Only the user's own devices are told; the requesting
                    // connection gets the frame as its answer.
                    self.deliver(std::slice::from_ref(user), positions, Some(*origin), event, frame);
                    let mut answer = Vec::with_capacity(160);
                    server::amended(&mut answer, event, message, true);
                    self.reply(*origin, answer);
                }
                Outcome::KeysChanged { user, event, inboxes } => {
                    let (_, positions) = self.next();
                    self.ctx.metrics.keys_changed_events.inc_by(positions.len() as u64);
                    let mut frame = Vec::with_capacity(64);
                    server::keys_changed(&mut frame, *event, *user);
                    self.deliver(inboxes, positions, None, *event, frame);
                }
                Outcome::AmendRepeat { origin, message } => {
                    let event = message.amended.map_or(MessageId(0), |a| a.event);
                    let mut frame = Vec::with_capacity(160 + message.body.len());
                    server::amended(&mut frame, event, message, true);
                    self.reply(*origin, frame);
                }
                Outcome::DirectFrom { origin, from } => {
                    let mut p = Vec::with_capacity(48);
                    server::direct_from(&mut p, *from);
                    self.reply(*origin, p);
                }
                Outcome::Blocks { origin, users } => {
                    let mut p = Vec::with_capacity(32 + 24 * users.len());
                    server::blocks(&mut p, users);
                    self.reply(*origin, p);
                }
                Outcome::GroupReply { origin, group, reference } => {
                    let mut p = Vec::with_capacity(64 + 48 * group.members.len());
                    server::group(&mut p, group, reference.as_deref());
                    self.reply(*origin, p);
                }
                Outcome::Refused { origin, code, why, reference } => {
                    self.ctx.metrics.protocol_errors.inc();
                    let mut p = Vec::new();
                    server::error(&mut p, *code, why, reference.as_deref());
                    self.reply(*origin, p);
                }
            }
        }
    }
}
