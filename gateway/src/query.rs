//! Reader threads: `sync` pages and `history` pages.
//!
//! Range scans can touch disk; an event loop must not. Cores post read
//! requests here and get the encoded page back through their mailbox.

use std::sync::Arc;

use chatgw_protocol::{server, ConversationId, ErrorCode};
use chatgw_storage::{InboxEvent, MessageStore};
use crossbeam_channel::Receiver;

use crate::{
    events::{CoreEvent, QueryRequest},
    server::Shared,
};

/// A reader thread's body; returns on `Stop` or when the channel closes.
pub(crate) fn run(shared: Arc<Shared>, store: Arc<dyn MessageStore>, rx: Receiver<QueryRequest>) {
    while let Ok(req) = rx.recv() {
        let (to, event) = match req {
            QueryRequest::Stop => break,
            QueryRequest::Sync {
                origin,
                user,
                after,
                limit,
            } => {
                shared.metrics.syncs.inc();
                match store.inbox_after(user, after, limit) {
                    Ok(events) => {
                        let full = events.len() == limit;
                        let scanned_to = events.last().map(InboxEvent::id).unwrap_or(after);
                        let events = events
                            .iter()
                            .map(|e| {
                                let mut p = Vec::with_capacity(160);
                                match e {
                                    InboxEvent::Message(m) => server::message(&mut p, m),
                                    InboxEvent::Receipt(r) => server::receipt(&mut p, r),
                                }
                                (e.id(), p)
                            })
                            .collect();
                        (
                            origin,
                            CoreEvent::SyncPage {
                                to: origin,
                                events,
                                scanned_to,
                                full,
                            },
                        )
                    }
                    Err(e) => (
                        origin,
                        CoreEvent::SyncFailed {
                            to: origin,
                            payload: failure(&e),
                        },
                    ),
                }
            }
            QueryRequest::History {
                origin,
                user,
                peer,
                before,
                limit,
            } => match store.history(ConversationId::direct(user, peer), before, limit) {
                Ok(page) => {
                    let mut p = Vec::with_capacity(256 * page.len().max(1));
                    server::history(&mut p, peer, &page, page.len() == limit);
                    (
                        origin,
                        CoreEvent::Reply {
                            to: origin,
                            payload: p,
                        },
                    )
                }
                Err(e) => (
                    origin,
                    CoreEvent::Reply {
                        to: origin,
                        payload: failure(&e),
                    },
                ),
            },
        };
        shared.mailboxes.post(usize::from(to.core), vec![event]);
    }
}

fn failure(e: &chatgw_storage::StoreError) -> Vec<u8> {
    tracing::error!(error = %e, "store read failed");
    let mut p = Vec::new();
    server::error(
        &mut p,
        ErrorCode::Unavailable,
        "the store could not be read; retry",
        None,
    );
    p
}
