//! The presence thread: subscriptions, the coalescing of presence changes,
//! and live typing states.
//!
//! Coalescing: a change of a watched user is not sent when it happens but
//! scheduled, at the earliest one window after the last one sent for that
//! user (and at least one window after it happened when it is a going
//! offline, so a quick reconnect is never seen). When it is due, the user's
//! presence is read as it is then and sent only if it differs from what
//! was sent last. A user whose connections flap, or whose thousand
//! contacts' devices watch them, costs their watchers at most one
//! `presence` frame per window each.
//!
//! Nothing here waits: answers and events go to the cores' mailboxes as
//! one batch per core per turn, frames for other nodes to the links'
//! queues (`remote`).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    thread::JoinHandle,
};

use chatgw_cluster::link::Links;
use chatgw_protocol::{
    now_ms, server, ConversationId, ConversationRef, ErrorCode, PresenceState, TypingState, UserId,
    MAX_PRESENCE_SUBSCRIPTIONS,
};
use chatgw_router::{Directory, Endpoint, Fanout, Mailboxes};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::{remote::RemoteState, PresenceRequest, PresenceSettings, TICK};
use crate::{
    events::{CoreBatch, CoreEvent},
    metrics::Metrics,
};

/// How often subscriptions and typing states of connections that are gone
/// are dropped.
const SWEEP_EVERY_MS: u64 = 1000;

/// What the hub needs from the rest of the gateway.
pub(crate) struct Hub {
    pub(crate) directory: Arc<Directory>,
    pub(crate) mailboxes: Arc<Mailboxes<CoreBatch>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) settings: PresenceSettings,
    /// The links to the other nodes of a fleet.
    pub(crate) links: Option<Arc<Links>>,
}

/// The running hub: its queue and thread.
pub(crate) struct HubThread {
    tx: Sender<PresenceRequest>,
    thread: Option<JoinHandle<()>>,
}

impl HubThread {
    /// Stop the thread and wait for it.
    pub(crate) fn stop(mut self) {
        let _ = self.tx.send(PresenceRequest::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One subscribing connection: its user and the members it watches, per
/// conversation.
struct Subscriber {
    user: UserId,
    conversations: Vec<(ConversationId, Vec<UserId>)>,
}

/// A typing state that has not lapsed.
struct Typing {
    from: UserId,
    to: Vec<UserId>,
    expires_ms: u64,
}

#[derive(Default)]
struct State {
    subscribers: HashMap<Endpoint, Subscriber>,
    /// Watched user -> the connections watching them (with the number of
    /// their conversations that do).
    watchers: HashMap<UserId, HashMap<Endpoint, u16>>,
    /// Watched user -> what their watchers were last told, and when.
    told: HashMap<UserId, (PresenceState, u64)>,
    /// Watched user -> when their scheduled change is due.
    due: HashMap<UserId, u64>,
    /// Users who turned presence off.
    hidden: HashSet<UserId>,
    /// When each user's last connection closed, Unix milliseconds.
    last_seen: HashMap<UserId, u64>,
    typing: HashMap<(Endpoint, ConversationId), Typing>,
    remote: RemoteState,
    next_sweep_ms: u64,
}

impl Hub {
    /// Start the thread on `rx` (whose sender is `tx`).
    pub(crate) fn start(
        self,
        tx: Sender<PresenceRequest>,
        rx: Receiver<PresenceRequest>,
    ) -> std::io::Result<HubThread> {
        let thread = std::thread::Builder::new().name("chatgw-presence".into()).spawn(move || self.run(rx))?;
        Ok(HubThread { tx, thread: Some(thread) })
    }

    fn run(self, rx: Receiver<PresenceRequest>) {
        let mut st = State::default();
        loop {
            match rx.recv_timeout(TICK) {
                Ok(PresenceRequest::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(req) => {
                    let mut out = Out::new(self.mailboxes.cores());
                    self.handle(&mut st, req, &mut out, now_ms());
                    while let Ok(req) = rx.try_recv() {
                        if let PresenceRequest::Stop = req {
                            return out.flush(&self.mailboxes);
                        }
                        self.handle(&mut st, req, &mut out, now_ms());
                    }
                    out.flush(&self.mailboxes);
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            let mut out = Out::new(self.mailboxes.cores());
            self.tick(&mut st, &mut out, now_ms());
            out.flush(&self.mailboxes);
        }
    }

    fn handle(&self, st: &mut State, req: PresenceRequest, out: &mut Out, now: u64) {
        match req {
            PresenceRequest::Subscribe { origin, user, conversation, watch, hidden } => {
                self.subscribe(st, out, origin, user, conversation, watch, hidden)
            }
            PresenceRequest::Unsubscribe { origin, conversation } => unsubscribe(st, origin, conversation),
            PresenceRequest::SetVisible { origin, user, visible } => {
                let changed = if visible { st.hidden.remove(&user) } else { st.hidden.insert(user) };
                let mut p = Vec::with_capacity(40);
                server::presence_set(&mut p, visible);
                out.reply(origin, p);
                if changed {
                    self.schedule(st, user, now);
                    if let Some(links) = &self.links {
                        let online = self.directory.is_online(user.0);
                        st.remote.tell_peers(links, &[st.remote.entry(user, online, &st.hidden, &st.last_seen)]);
                    }
                }
            }
            PresenceRequest::Typing { origin, user, conversation, to, state } => {
                self.typing(st, out, origin, user, conversation, to, state, now)
            }
            PresenceRequest::Remote { node, entries } => {
                for user in st.remote.apply(node, entries, &mut st.hidden, &mut st.last_seen, now) {
                    self.schedule(st, user, now);
                }
            }
            PresenceRequest::Blocked { by, target } => {
                self.forget_pair(st, out, by, target);
                self.forget_pair(st, out, target, by);
            }
            PresenceRequest::Stop => {}
        }
    }

    /// `watcher`'s connections stop watching `watched`, and are told it is
    /// hidden now.
    fn forget_pair(&self, st: &mut State, out: &mut Out, watcher: UserId, watched: UserId) {
        let Some(eps) = st.watchers.get(&watched) else { return };
        let affected: Vec<Endpoint> =
            eps.keys().filter(|ep| st.subscribers.get(ep).is_some_and(|s| s.user == watcher)).copied().collect();
        if affected.is_empty() {
            return;
        }
        let mut p = Vec::with_capacity(64);
        server::presence(&mut p, watched, PresenceState::Hidden);
        let payload: Arc<[u8]> = p.into();
        for ep in affected {
            if let Some(sub) = st.subscribers.get_mut(&ep) {
                for (_, members) in &mut sub.conversations {
                    members.retain(|u| *u != watched);
                }
            }
            if let Some(eps) = st.watchers.get_mut(&watched) {
                eps.remove(&ep);
                if eps.is_empty() {
                    st.watchers.remove(&watched);
                    st.told.remove(&watched);
                    st.due.remove(&watched);
                }
            }
            out.event(ep, payload.clone());
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn subscribe(
        &self,
        st: &mut State,
        out: &mut Out,
        origin: Endpoint,
        user: UserId,
        conversation: ConversationId,
        watch: Vec<UserId>,
        hidden: Vec<UserId>,
    ) {
        let sub = st.subscribers.entry(origin).or_insert_with(|| Subscriber { user, conversations: Vec::new() });
        let known = sub.conversations.iter().any(|(c, _)| *c == conversation);
        if !known && sub.conversations.len() >= MAX_PRESENCE_SUBSCRIPTIONS {
            let mut p = Vec::new();
            let why = "at most 32 presence subscriptions per connection: unsubscribe_presence from one first";
            server::error(&mut p, ErrorCode::NotAllowed, why, None);
            return out.reply(origin, p);
        }
        unsubscribe(st, origin, conversation);
        for u in &watch {
            *st.watchers.entry(*u).or_default().entry(origin).or_default() += 1;
            let now_state = self.state(st, *u);
            st.told.entry(*u).or_insert((now_state, 0));
        }
        let mut users: Vec<(UserId, PresenceState)> = watch.iter().map(|u| (*u, self.state(st, *u))).collect();
        users.extend(hidden.iter().map(|u| (*u, PresenceState::Hidden)));
        users.sort_unstable_by_key(|(u, _)| *u);
        st.subscribers
            .entry(origin)
            .or_insert_with(|| Subscriber { user, conversations: Vec::new() })
            .conversations
            .push((conversation, watch));
        let mut p = Vec::with_capacity(64 + 48 * users.len());
        server::presence_list(&mut p, seen_by(conversation, user), &users);
        out.reply(origin, p);
    }

    #[allow(clippy::too_many_arguments)]
    fn typing(
        &self,
        st: &mut State,
        out: &mut Out,
        origin: Endpoint,
        user: UserId,
        conversation: ConversationId,
        to: Vec<UserId>,
        state: TypingState,
        now: u64,
    ) {
        let key = (origin, conversation);
        match state {
            TypingState::Typing => {
                let expires_ms = now + self.settings.typing_expiry.as_millis() as u64;
                st.typing.insert(key, Typing { from: user, to: to.clone(), expires_ms });
            }
            // A pause is news only after a typing state still running.
            TypingState::Paused if st.typing.remove(&key).is_none() => return,
            TypingState::Paused => {}
        }
        self.send_typing(st, out, user, conversation, &to, state);
    }

    /// Tell the devices of `to` (here and on other nodes) that `from` is
    /// typing or paused in `conversation`.
    fn send_typing(
        &self,
        st: &mut State,
        out: &mut Out,
        from: UserId,
        conversation: ConversationId,
        to: &[UserId],
        state: TypingState,
    ) {
        let mut p = Vec::with_capacity(128);
        let expires_in = self.settings.typing_expiry.as_secs() as u32;
        // Each receiver sees a direct conversation as the one with `from`.
        let seen = match conversation {
            ConversationId::Direct { .. } => ConversationRef::Peer(from),
            ConversationId::Group(g) => ConversationRef::Group(g),
        };
        server::typing(&mut p, from, seen, state, expires_in);
        let payload: Arc<[u8]> = p.into();
        for user in to {
            self.directory.for_each(user.0, |ep| out.event(ep, payload.clone()));
        }
        self.metrics.typing_forwarded.inc();
        if let Some(links) = &self.links {
            st.remote.forward(links, payload, to);
        }
    }

    fn tick(&self, st: &mut State, out: &mut Out, now: u64) {
        // Connections that came or went on this node.
        let mut changed = Vec::new();
        self.directory.take_presence_feed(|u| changed.push(UserId(u)));
        changed.sort_unstable();
        changed.dedup();
        let mut entries = Vec::new();
        for user in changed {
            let here = self.directory.is_online(user.0);
            if !here {
                st.last_seen.insert(user, now);
            }
            if self.links.is_some() {
                entries.push(st.remote.entry(user, here, &st.hidden, &st.last_seen));
            }
            self.schedule(st, user, now);
        }
        if let Some(links) = &self.links {
            if !entries.is_empty() {
                st.remote.tell_peers(links, &entries);
            }
            let stale = st.remote.refresh(links, &self.directory, &st.hidden, &mut st.last_seen, now);
            for user in stale {
                self.schedule(st, user, now);
            }
        }
        // Changes whose window has come.
        let ripe: Vec<UserId> = st.due.iter().filter(|(_, at)| **at <= now).map(|(u, _)| *u).collect();
        for user in ripe {
            st.due.remove(&user);
            self.publish(st, out, user, now);
        }
        // Typing states that lapsed.
        let lapsed: Vec<(Endpoint, ConversationId)> =
            st.typing.iter().filter(|(_, t)| t.expires_ms <= now).map(|(k, _)| *k).collect();
        for key in lapsed {
            if let Some(t) = st.typing.remove(&key) {
                self.send_typing(st, out, t.from, key.1, &t.to, TypingState::Paused);
            }
        }
        if now >= st.next_sweep_ms {
            st.next_sweep_ms = now + SWEEP_EVERY_MS;
            self.sweep(st, out);
        }
    }

    /// Drop what belongs to connections that are gone: their subscriptions,
    /// and their typing states (a `paused` goes out for each).
    fn sweep(&self, st: &mut State, out: &mut Out) {
        let gone: Vec<Endpoint> =
            st.subscribers.iter().filter(|(ep, s)| !self.is_connected(s.user, **ep)).map(|(ep, _)| *ep).collect();
        for ep in gone {
            let convs: Vec<ConversationId> =
                st.subscribers.get(&ep).map(|s| s.conversations.iter().map(|(c, _)| *c).collect()).unwrap_or_default();
            for c in convs {
                unsubscribe(st, ep, c);
            }
            st.subscribers.remove(&ep);
        }
        let left: Vec<(Endpoint, ConversationId)> =
            st.typing.iter().filter(|((ep, _), t)| !self.is_connected(t.from, *ep)).map(|(k, _)| *k).collect();
        for key in left {
            if let Some(t) = st.typing.remove(&key) {
                self.send_typing(st, out, t.from, key.1, &t.to, TypingState::Paused);
            }
        }
    }

    fn is_connected(&self, user: UserId, ep: Endpoint) -> bool {
        let mut found = false;
        self.directory.for_each(user.0, |e| found |= e == ep);
        found
    }

    /// What `user`'s watchers see now.
    fn state(&self, st: &State, user: UserId) -> PresenceState {
        if st.hidden.contains(&user) {
            PresenceState::Hidden
        } else if self.directory.is_online(user.0) || st.remote.is_online(user) {
            PresenceState::Online
        } else {
            PresenceState::Offline { last_seen: st.last_seen.get(&user).copied() }
        }
    }

    /// Schedule telling `user`'s watchers, if anyone watches and nothing is
    /// scheduled yet (see the module docs for when).
    fn schedule(&self, st: &mut State, user: UserId, now: u64) {
        if !st.watchers.contains_key(&user) || st.due.contains_key(&user) {
            return;
        }
        let window = self.settings.window.as_millis() as u64;
        let last = st.told.get(&user).map_or(0, |(_, at)| *at);
        let mut at = now.max(last.saturating_add(window));
        if matches!(self.state(st, user), PresenceState::Offline { .. }) {
            at = at.max(now + window);
        }
        st.due.insert(user, at);
    }

    fn publish(&self, st: &mut State, out: &mut Out, user: UserId, now: u64) {
        let state = self.state(st, user);
        if st.told.get(&user).is_some_and(|(told, _)| *told == state) {
            return;
        }
        let Some(watchers) = st.watchers.get(&user) else { return };
        st.told.insert(user, (state, now));
        let mut p = Vec::with_capacity(96);
        server::presence(&mut p, user, state);
        let payload: Arc<[u8]> = p.into();
        for ep in watchers.keys() {
            out.event(*ep, payload.clone());
        }
        self.metrics.presence_events.inc_by(watchers.len() as u64);
    }
}

/// Stop watching the members of `conversation` for `origin`.
fn unsubscribe(st: &mut State, origin: Endpoint, conversation: ConversationId) {
    let Some(sub) = st.subscribers.get_mut(&origin) else { return };
    let Some(i) = sub.conversations.iter().position(|(c, _)| *c == conversation) else { return };
    let (_, watched) = sub.conversations.swap_remove(i);
    if sub.conversations.is_empty() {
        st.subscribers.remove(&origin);
    }
    for u in watched {
        let Some(eps) = st.watchers.get_mut(&u) else { continue };
        if let Some(n) = eps.get_mut(&origin) {
            *n -= 1;
            if *n == 0 {
                eps.remove(&origin);
            }
        }
        if eps.is_empty() {
            st.watchers.remove(&u);
            st.told.remove(&u);
            st.due.remove(&u);
        }
    }
}

/// `conversation` as `user` names it.
fn seen_by(conversation: ConversationId, user: UserId) -> ConversationRef {
    match conversation {
        ConversationId::Group(g) => ConversationRef::Group(g),
        ConversationId::Direct { .. } => ConversationRef::Peer(conversation.peer_of(user).unwrap_or(user)),
    }
}

/// What one turn sends to the cores, one batch per core.
struct Out {
    fanout: Fanout<CoreEvent>,
}

impl Out {
    fn new(cores: usize) -> Self {
        Out { fanout: Fanout::new(cores) }
    }

    fn reply(&mut self, to: Endpoint, payload: Vec<u8>) {
        self.fanout.push(usize::from(to.core), CoreEvent::Reply { to, payload });
    }

    fn event(&mut self, to: Endpoint, payload: Arc<[u8]>) {
        self.fanout.push(usize::from(to.core), CoreEvent::Ephemeral { to, payload });
    }

    fn flush(mut self, mailboxes: &Mailboxes<CoreBatch>) {
        self.fanout.flush(mailboxes);
    }
}
