//! Reader threads: `sync` pages, `history` pages, message info, the
//! conversation list, devices, and the membership checks of presence and
//! typing (`presence::answer_members`).
//!
//! Range scans can touch disk; an event loop must not. Cores post read
//! requests here and get the encoded answer back through their mailbox.
//! Group permissions are checked here against the stored membership: a
//! member sees history from when they joined, a non-member sees nothing.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use chatgw_protocol::{server, AmendKind, ConversationId, ErrorCode, GroupId, MessageId, UserId};
use chatgw_router::{Endpoint, Mailboxes};
use chatgw_storage::{InboxEvent, InboxPos, MessageStore, StoreError};
use crossbeam_channel::{Receiver, Sender};

use crate::{
    commit::Sequencer,
    devices,
    events::{CoreBatch, CoreEvent, QueryRequest, SyncFrom},
    metrics::Metrics,
    presence::{answer_members, PresenceRequest},
    revoke::Revoker,
};

/// What a reader uses besides the store, built by the server: the
/// mailboxes its answers go to, the counters, and how large a history page
/// may be.
#[derive(Clone)]
pub(crate) struct ReaderContext {
    pub(crate) mailboxes: Arc<Mailboxes<CoreBatch>>,
    pub(crate) metrics: Arc<Metrics>,
    /// Bytes of one history page at most (half the outbound bound, so a
    /// page never trips the slow-consumer limit).
    pub(crate) history_max_bytes: usize,
    /// For `logout_device`.
    pub(crate) revoker: Revoker,
    /// The presence thread, for checked `subscribe_presence` and `typing`.
    pub(crate) presence: Sender<PresenceRequest>,
    /// With several commit pipelines: below what position a sync reads
    /// (`commit::order`).
    pub(crate) horizon: Option<Arc<Sequencer>>,
    /// Media frames' backend and limits; `None`: media off.
    pub(crate) media: Option<Arc<crate::media::Media>>,
}

/// A reader thread's body; returns on `Stop` or when the channel closes.
pub(crate) fn run(ctx: ReaderContext, store: Arc<dyn MessageStore>, rx: Receiver<QueryRequest>) {
    while let Ok(req) = rx.recv() {
        let event = match req {
            QueryRequest::Stop => break,
            QueryRequest::Sync { origin, user, after, limit } => {
                ctx.metrics.syncs.inc();
                match sync_page(store.as_ref(), ctx.horizon.as_deref(), origin, user, after, limit) {
                    Ok(ev) => ev,
                    Err(e) => {
                        log_read_failure(&e);
                        let mut p = Vec::new();
                        server::error(
                            &mut p,
                            ErrorCode::SyncFailed,
                            "the store could not be read; send sync again from your last cursor",
                            None,
                        );
                        CoreEvent::SyncFailed { to: origin, payload: p }
                    }
                }
            }
            QueryRequest::History { origin, user, conversation, before, limit } => {
                let max_bytes = ctx.history_max_bytes;
                let payload = history(store.as_ref(), user, conversation, before, limit, max_bytes)
                    .unwrap_or_else(|e| failure(&e, "history"));
                CoreEvent::Reply { to: origin, payload }
            }
            QueryRequest::Devices { origin, user, own } => {
                let payload =
                    devices::requests::devices(store.as_ref(), user, own).unwrap_or_else(|e| failure(&e, "devices"));
                CoreEvent::Reply { to: origin, payload }
            }
            QueryRequest::LogoutDevice { origin, user, device } => {
                let post = |payload| {
                    ctx.mailboxes.post(usize::from(origin.core), vec![CoreEvent::Reply { to: origin, payload }]);
                };
                devices::requests::logout(&ctx.revoker, user, device, post);
                continue;
            }
            QueryRequest::SetPush { origin, user, device, token_iat, target } => {
                let asking = chatgw_auth::Claims { user, exp: 0, iat: token_iat, device: Some(device) };
                let revocations = &ctx.revoker.revocations;
                let payload = devices::push::answer(store.as_ref(), revocations, &asking, target);
                CoreEvent::Reply { to: origin, payload }
            }
            QueryRequest::Keys { origin, user, device, token_iat, op } => {
                let asking = chatgw_auth::Claims { user, exp: 0, iat: token_iat, device: Some(device) };
                let payload = devices::keys::answer(store.as_ref(), &ctx.revoker, &asking, op);
                CoreEvent::Reply { to: origin, payload }
            }
            QueryRequest::Media { origin, user, op } => {
                let payload = crate::media::requests::answer(ctx.media.as_deref(), store.as_ref(), user, op);
                CoreEvent::Reply { to: origin, payload }
            }
            QueryRequest::Conversations { origin, user, before, limit } => {
                let payload = crate::conversation_list::page(store.as_ref(), user, before, limit)
                    .unwrap_or_else(|e| failure(&e, "conversations"));
                CoreEvent::Reply { to: origin, payload }
            }
            QueryRequest::Members { origin, user, conversation, then } => {
                match answer_members(store.as_ref(), &ctx.presence, origin, user, conversation, then) {
                    Some(refusal) => refusal,
                    None => continue,
                }
            }
            QueryRequest::MessageInfo { origin, user, group, msg } => {
                let payload =
                    message_info(store.as_ref(), user, group, msg).unwrap_or_else(|e| failure(&e, "message_info"));
                CoreEvent::Reply { to: origin, payload }
            }
        };
        ctx.mailboxes.post(usize::from(event.endpoint().core), vec![event]);
    }
}

/// One page of `user`'s inbox. The first page of a sync starts after the
/// device's cursor, an event id, which the store resolves to a position;
/// later pages continue from the position the connection reached. The
/// first page also says whether the cursor stands below what the inbox
/// retention removed (`truncated` on `synced`).
fn sync_page(
    store: &dyn MessageStore,
    horizon: Option<&Sequencer>,
    origin: Endpoint,
    user: UserId,
    after: SyncFrom,
    limit: usize,
) -> Result<CoreEvent, StoreError> {
    let (after, truncated) = match after {
        SyncFrom::Cursor(cursor) => {
            let pos = store.inbox_position(user, cursor)?;
            // A new device (cursor 0) is never told: it reloads history anyway.
            (pos, cursor.0 != 0 && pos < store.inbox_floor(user)?)
        }
        SyncFrom::Position(pos) => (pos, false),
    };
    // Taken before the scan: everything below it was committed before.
    let horizon = horizon.map(|h| InboxPos(h.horizon().0));
    let mut entries = store.inbox_after(user, after, limit)?;
    let mut full = entries.len() == limit;
    // Events at or above it may have lower ones still uncommitted; they
    // (and all after them) are posted live after it was taken, so the
    // connection gets them live, or with one more page if they come while
    // it reads this one.
    if let Some(h) = horizon {
        let scanned = entries.len();
        entries.retain(|e| e.pos < h);
        full &= entries.len() == scanned;
    }
    // A replayed message the user hid shows hidden (see `hidden_reads`),
    // and so does a later edit's or delete's event of it; a hide's own
    // event shows it hidden already.
    let replayed = entries.iter_mut().filter_map(|e| match &mut e.event {
        InboxEvent::Message(m) => Some(m),
        InboxEvent::Amended { message, .. } if message.amended.is_none_or(|a| a.kind != AmendKind::Hidden) => {
            Some(message)
        }
        _ => None,
    });
    crate::hidden_reads::show_hidden(store, user, replayed)?;
    let events = entries
        .iter()
        .map(|e| {
            let mut p = Vec::with_capacity(160);
            match &e.event {
                InboxEvent::Message(m) => server::message(&mut p, m),
                InboxEvent::Receipt(r) => server::receipt(&mut p, r, user),
                InboxEvent::Amended { event, message } => server::amended(&mut p, *event, message, false),
                InboxEvent::KeysChanged { event, user } => server::keys_changed(&mut p, *event, *user),
            }
            (e.pos, e.event.id(), p)
        })
        .collect();
    Ok(CoreEvent::SyncPage { to: origin, after, events, full, truncated })
}

fn refusal() -> Vec<u8> {
    let mut p = Vec::new();
    server::error(&mut p, ErrorCode::NotAllowed, "not a member of this group", None);
    p
}

fn history(
    store: &dyn MessageStore,
    user: UserId,
    conversation: ConversationId,
    before: Option<MessageId>,
    limit: usize,
    max_bytes: usize,
) -> Result<Vec<u8>, StoreError> {
    // Members see the group from the message that added them on.
    let since = match conversation {
        ConversationId::Direct { .. } => MessageId(0),
        ConversationId::Group(g) => match store.group(g)?.and_then(|grp| grp.member(user).copied()) {
            Some(m) => m.joined,
            None => return Ok(refusal()),
        },
    };
    let mut page = store.history(conversation, before, limit)?;
    let complete = page.len() == limit;
    page.retain(|m| m.id >= since);
    let mut more = complete && page.len() == limit && page.last().is_some_and(|m| m.id > since);
    // A page never exceeds half the outbound bound, so it cannot trip the
    // slow-consumer limit; the client pages on from the last message.
    let mut bytes = 0;
    if let Some(cut) = page.iter().position(|m| {
        bytes += 160 + m.body.len() + m.client_id.len();
        bytes > max_bytes
    }) {
        page.truncate(cut.max(1));
        more = true;
    }
    // Messages the user hid are shown hidden, so pages keep their size.
    crate::hidden_reads::show_hidden(store, user, page.iter_mut())?;
    let mut p = Vec::with_capacity(256 * page.len().max(1));
    server::history(&mut p, &conversation, user, &page, more);
    Ok(p)
}

fn message_info(store: &dyn MessageStore, user: UserId, group: GroupId, msg: MessageId) -> Result<Vec<u8>, StoreError> {
    let Some(g) = store.group(group)?.filter(|g| g.is_member(user)) else { return Ok(refusal()) };
    let conversation = ConversationId::Group(group);
    let Some(m) = store.message(conversation, msg)?.filter(|m| m.from == user) else {
        let mut p = Vec::new();
        server::error(&mut p, ErrorCode::NotAllowed, "message info is for your own messages of this group", None);
        return Ok(p);
    };
    let receipts = store.receipts_of(conversation, m.id)?;
    // Recipients: members who were in the group when it was sent, besides
    // the sender. Current members who joined before it, and anyone who
    // acknowledged it (they may have left since).
    let mut who: Vec<UserId> =
        g.members.iter().filter(|x| x.user != user && x.joined <= m.id).map(|x| x.user).collect();
    who.extend(receipts.delivered.iter().chain(&receipts.read).map(|(u, _)| *u));
    who.sort_unstable();
    who.dedup();
    let recipients = who.len();
    let mut p = Vec::with_capacity(128 + 40 * (receipts.delivered.len() + receipts.read.len()));
    server::message_info(&mut p, group, m.id, &receipts.delivered, &receipts.read, recipients);
    Ok(p)
}

fn failure(e: &StoreError, what: &str) -> Vec<u8> {
    log_read_failure(e);
    let mut p = Vec::new();
    server::error(&mut p, ErrorCode::Unavailable, &format!("{what} failed: the store could not be read; retry"), None);
    p
}

/// Log a failed store read, at most once per [`READ_FAILURE_LOG_EVERY`]
/// over all reader threads, with the number of failures not logged since:
/// while a database is down every sync and query fails, and a line for
/// each would bury the log (the outage itself is on `/healthz` and in
/// `/metrics`).
fn log_read_failure(e: &StoreError) {
    static LAST_LOGGED_MS: AtomicU64 = AtomicU64::new(0);
    static NOT_LOGGED: AtomicU64 = AtomicU64::new(0);
    let now_ms = u64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis(),
    )
    .unwrap_or(u64::MAX);
    let last = LAST_LOGGED_MS.load(Ordering::Relaxed);
    let due = now_ms.saturating_sub(last) >= READ_FAILURE_LOG_EVERY.as_millis() as u64;
    if due && LAST_LOGGED_MS.compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        let not_logged = NOT_LOGGED.swap(0, Ordering::Relaxed);
        tracing::error!(error = %e, not_logged, "store read failed");
    } else {
        NOT_LOGGED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Shortest time between two logged read failures.
const READ_FAILURE_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
