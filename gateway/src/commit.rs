//! The group committer: the one thread that writes.
//!
//! Cores hand it requests through a channel and go back to their sockets.
//! It takes everything queued (up to `commit_batch`), assigns Snowflake ids
//! in arrival order, resolves idempotency and receipt checks, writes the
//! whole batch with one fsync, and only then answers: `sent` acks to the
//! origin connections and live events to every device of every user
//! concerned, posted to each core's mailbox as one batch per core.
//!
//! Why one thread: ids handed out here increase in commit order, and events
//! reach each core's mailbox in that same order, so a device that has seen
//! event N has seen every earlier event of its inbox that was delivered live.
//! `sync` relies on this: a cursor is a complete description of what a
//! device has. The store does the heavy lifting; this thread is the order.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Instant,
};

use chatgw_protocol::{
    server, ConversationId, ErrorCode, Message, MessageId, Receipt, Snowflake, UserId,
};
use chatgw_router::{Endpoint, Fanout};
use chatgw_storage::{MessageStore, StoreError, Write};
use crossbeam_channel::Receiver;

use crate::{
    events::{CommitRequest, CoreEvent},
    server::Shared,
};

/// What a request turned into once ids and checks were done.
enum Outcome {
    Stored {
        origin: Endpoint,
        client_id: String,
        message: Message,
        inboxes: Vec<UserId>,
    },
    Duplicate {
        origin: Endpoint,
        client_id: String,
        id: MessageId,
    },
    Receipt {
        origin: Endpoint,
        receipt: Receipt,
        inboxes: Vec<UserId>,
    },
    Refused {
        origin: Endpoint,
        code: ErrorCode,
        why: String,
        reference: Option<String>,
    },
    /// Nothing to store or say (an acknowledgement already recorded).
    Nothing,
}

/// Checks that see both the store and this batch's earlier requests.
struct Batch<'s> {
    store: &'s dyn MessageStore,
    ids: Snowflake,
    outcomes: Vec<Outcome>,
    by_client_id: HashMap<(UserId, String), MessageId>,
    new_messages: HashMap<(ConversationId, MessageId), UserId>,
    delivered: HashSet<(MessageId, UserId)>,
    reads: HashMap<(ConversationId, UserId), MessageId>,
}

impl Batch<'_> {
    fn clear(&mut self) {
        self.outcomes.clear();
        self.by_client_id.clear();
        self.new_messages.clear();
        self.delivered.clear();
        self.reads.clear();
    }

    fn sender_of(&self, c: ConversationId, id: MessageId) -> Result<Option<UserId>, StoreError> {
        if let Some(from) = self.new_messages.get(&(c, id)) {
            return Ok(Some(*from));
        }
        Ok(self.store.message(c, id)?.map(|m| m.from))
    }

    fn add(&mut self, req: CommitRequest) -> Result<(), StoreError> {
        let outcome = match req {
            CommitRequest::Send {
                origin,
                from,
                client_id,
                conversation,
                kind,
                body,
            } => {
                let key = (from, client_id);
                let earlier = match self.by_client_id.get(&key) {
                    Some(id) => Some(*id),
                    None => self
                        .store
                        .message_by_client_id(from, &key.1)?
                        .map(|(_, id)| id),
                };
                match earlier {
                    Some(id) => Outcome::Duplicate {
                        origin,
                        client_id: key.1,
                        id,
                    },
                    None => {
                        let id = self.ids.next_id();
                        self.by_client_id.insert(key.clone(), id);
                        self.new_messages.insert((conversation, id), from);
                        let message = Message {
                            id,
                            conversation,
                            from,
                            kind,
                            client_id: key.1.clone(),
                            ts: Snowflake::unix_ms(id),
                            body,
                        };
                        let to = conversation.peer_of(from).unwrap_or(from);
                        let inboxes = if to == from {
                            vec![from]
                        } else {
                            vec![from, to]
                        };
                        Outcome::Stored {
                            origin,
                            client_id: key.1,
                            message,
                            inboxes,
                        }
                    }
                }
            }
            CommitRequest::Delivered {
                origin,
                by,
                conversation,
                ids,
            } => {
                let mut fresh = Vec::with_capacity(ids.len());
                let mut unknown = Vec::new();
                for id in ids {
                    match self.sender_of(conversation, id)? {
                        // Only the other side of the conversation acknowledges delivery.
                        Some(from) if from != by => {
                            if !self.delivered.contains(&(id, by))
                                && !self.store.is_delivered(conversation, id, by)?
                            {
                                self.delivered.insert((id, by));
                                if !fresh.contains(&id) {
                                    fresh.push(id);
                                }
                            }
                        }
                        Some(_) => {}
                        None => unknown.push(id),
                    }
                }
                if !unknown.is_empty() {
                    let list: Vec<String> = unknown.iter().map(|i| i.to_string()).collect();
                    self.outcomes.push(Outcome::Refused {
                        origin,
                        code: ErrorCode::NotAllowed,
                        why: format!("no such message in this conversation: {}", list.join(", ")),
                        reference: None,
                    });
                }
                if fresh.is_empty() {
                    Outcome::Nothing
                } else {
                    let sender = conversation.peer_of(by).unwrap_or(by);
                    let event = self.ids.next_id();
                    let receipt = Receipt::Delivered {
                        event,
                        conversation,
                        by,
                        ids: fresh,
                        at: Snowflake::unix_ms(event),
                    };
                    Outcome::Receipt {
                        origin,
                        receipt,
                        inboxes: vec![sender],
                    }
                }
            }
            CommitRequest::Read {
                origin,
                by,
                conversation,
                up_to,
            } => {
                if self.sender_of(conversation, up_to)?.is_none() {
                    Outcome::Refused {
                        origin,
                        code: ErrorCode::NotAllowed,
                        why: format!("no such message in this conversation: {up_to}"),
                        reference: None,
                    }
                } else {
                    let current = match self.reads.get(&(conversation, by)) {
                        Some(m) => Some(*m),
                        None => self.store.read_mark(conversation, by)?,
                    };
                    if current.is_some_and(|c| c >= up_to) {
                        Outcome::Nothing
                    } else {
                        self.reads.insert((conversation, by), up_to);
                        let peer = conversation.peer_of(by).unwrap_or(by);
                        let event = self.ids.next_id();
                        let receipt = Receipt::Read {
                            event,
                            conversation,
                            by,
                            up_to,
                            at: Snowflake::unix_ms(event),
                        };
                        let inboxes = if peer == by { vec![by] } else { vec![peer, by] };
                        Outcome::Receipt {
                            origin,
                            receipt,
                            inboxes,
                        }
                    }
                }
            }
            CommitRequest::Stop => Outcome::Nothing,
        };
        self.outcomes.push(outcome);
        Ok(())
    }
}

/// The committer thread's body. Returns when it receives `Stop` (after
/// committing everything before it) or when every sender is gone.
pub(crate) fn run(shared: Arc<Shared>, store: Arc<dyn MessageStore>, rx: Receiver<CommitRequest>) {
    let high_water = match store.high_water() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the id high-water mark; ids restart from the clock");
            MessageId(0)
        }
    };
    let mut batch = Batch {
        store: store.as_ref(),
        ids: Snowflake::new(shared.config.node_id).resume_after(high_water),
        outcomes: Vec::new(),
        by_client_id: HashMap::new(),
        new_messages: HashMap::new(),
        delivered: HashSet::new(),
        reads: HashMap::new(),
    };
    let mut fanout = Fanout::new(shared.mailboxes.cores());
    let mut requests = Vec::with_capacity(shared.config.commit_batch);
    let mut stop = false;
    while !stop {
        let Ok(first) = rx.recv() else { break };
        requests.push(first);
        while requests.len() < shared.config.commit_batch {
            match rx.try_recv() {
                Ok(r) => requests.push(r),
                Err(_) => break,
            }
        }
        stop = requests.iter().any(|r| matches!(r, CommitRequest::Stop));
        let n = requests.len();
        let started = Instant::now();
        let result = prepare_and_commit(&mut batch, &mut requests, &shared);
        shared
            .metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        shared.metrics.commit_batch_size.observe(n as f64);
        match result {
            Ok(()) => dispatch(&shared, &batch.outcomes, &mut fanout),
            Err((e, origins)) => {
                shared.metrics.commit_errors.inc();
                tracing::error!(error = %e, requests = n, "group commit failed; nothing in it was acknowledged");
                for origin in origins {
                    let mut p = Vec::new();
                    server::error(
                        &mut p,
                        ErrorCode::Unavailable,
                        "the store could not take the write; retry with the same id",
                        None,
                    );
                    fanout.push(
                        usize::from(origin.0.core),
                        CoreEvent::Reply {
                            to: origin.0,
                            payload: p,
                        },
                    );
                }
            }
        }
        fanout.flush(&shared.mailboxes);
        batch.clear();
    }
    tracing::info!("committer stopped");
}

struct Origin(Endpoint);

fn origin_of(r: &CommitRequest) -> Option<Origin> {
    match r {
        CommitRequest::Send { origin, .. }
        | CommitRequest::Delivered { origin, .. }
        | CommitRequest::Read { origin, .. } => Some(Origin(*origin)),
        CommitRequest::Stop => None,
    }
}

fn prepare_and_commit(
    batch: &mut Batch<'_>,
    requests: &mut Vec<CommitRequest>,
    shared: &Shared,
) -> Result<(), (StoreError, Vec<Origin>)> {
    let origins: Vec<Origin> = requests.iter().filter_map(origin_of).collect();
    for r in requests.drain(..) {
        if let Err(e) = batch.add(r) {
            return Err((e, origins));
        }
    }
    let writes: Vec<Write<'_>> = batch
        .outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Stored {
                message, inboxes, ..
            } => Some(Write::Message { message, inboxes }),
            Outcome::Receipt {
                receipt, inboxes, ..
            } => Some(Write::Receipt { receipt, inboxes }),
            _ => None,
        })
        .collect();
    if writes.is_empty() {
        return Ok(());
    }
    let stats = batch
        .store
        .commit(&writes, batch.ids.last())
        .map_err(|e| (e, origins))?;
    shared.metrics.commit_bytes.inc_by(stats.bytes as u64);
    Ok(())
}

/// After the commit: acks to origins, live events to devices.
fn dispatch(shared: &Shared, outcomes: &[Outcome], fanout: &mut Fanout<CoreEvent>) {
    let reply = |fanout: &mut Fanout<CoreEvent>, to: Endpoint, payload: Vec<u8>| {
        fanout.push(usize::from(to.core), CoreEvent::Reply { to, payload });
    };
    let deliver = |fanout: &mut Fanout<CoreEvent>,
                   user: UserId,
                   skip: Endpoint,
                   event: MessageId,
                   payload: &Arc<[u8]>| {
        shared.directory.for_each(user.0, |ep| {
            if ep != skip {
                fanout.push(
                    usize::from(ep.core),
                    CoreEvent::Deliver {
                        to: ep,
                        event,
                        payload: payload.clone(),
                    },
                );
            }
        });
    };
    for o in outcomes {
        match o {
            Outcome::Stored {
                origin,
                client_id,
                message,
                inboxes,
            } => {
                shared.metrics.messages_stored.inc();
                let mut ack = Vec::with_capacity(96);
                server::sent(&mut ack, client_id, message.id, message.ts, false);
                reply(fanout, *origin, ack);
                let mut frame = Vec::with_capacity(128 + message.body.len());
                server::message(&mut frame, message);
                let payload: Arc<[u8]> = frame.into();
                for user in inboxes {
                    deliver(fanout, *user, *origin, message.id, &payload);
                }
            }
            Outcome::Duplicate {
                origin,
                client_id,
                id,
            } => {
                shared.metrics.messages_deduplicated.inc();
                let mut ack = Vec::with_capacity(96);
                server::sent(&mut ack, client_id, *id, Snowflake::unix_ms(*id), true);
                reply(fanout, *origin, ack);
            }
            Outcome::Receipt {
                origin,
                receipt,
                inboxes,
            } => {
                shared.metrics.receipts_stored.inc();
                let mut frame = Vec::with_capacity(128);
                server::receipt(&mut frame, receipt);
                let payload: Arc<[u8]> = frame.into();
                for user in inboxes {
                    deliver(fanout, *user, *origin, receipt.event(), &payload);
                }
            }
            Outcome::Refused {
                origin,
                code,
                why,
                reference,
            } => {
                shared.metrics.protocol_errors.inc();
                let mut p = Vec::new();
                server::error(&mut p, *code, why, reference.as_deref());
                reply(fanout, *origin, p);
            }
            Outcome::Nothing => {}
        }
    }
}
