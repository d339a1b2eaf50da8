//! Events other nodes send over their links, to this node's devices.
//!
//! A link's reader thread calls in here with what one read decoded. Each
//! delivery names its target users and their inbox positions; this node's
//! directory says which cores hold their connections, and the events go to
//! those cores' mailboxes as one batch per core, exactly like events this
//! node committed. Positions do the rest: a core drops an event at or below
//! a connection's position (a duplicate) and catches up from the store on
//! a jump (a gap).
//!
//! A session that ends without its peer's goodbye may have lost frames the
//! peer had written or queued, and this node cannot know which: every
//! connection here catches up (paced by the cores). A peer that dropped
//! events for lack of queue room says so with a catch-up notice.

use std::{net::SocketAddr, sync::Arc};

use chatgw_cluster::link::{Delivery, Inbound, PresenceEntry};
use chatgw_protocol::MessageId;
use chatgw_router::{Directory, Fanout, Mailboxes};
use chatgw_storage::InboxPos;

use super::{catch_up_users, metrics::FleetMetrics, whole_node::WholeNode};
use crate::{
    events::{CoreBatch, CoreEvent},
    presence::RemoteIn,
};

/// Hands what links bring to the cores.
pub(crate) struct ToCores {
    pub(crate) directory: Arc<Directory>,
    pub(crate) mailboxes: Arc<Mailboxes<CoreBatch>>,
    pub(crate) whole: Arc<WholeNode>,
    pub(crate) metrics: Arc<FleetMetrics>,
    /// Typing frames and presence entries (see `crate::presence`).
    pub(crate) presence: RemoteIn,
}

impl Inbound for ToCores {
    fn deliver(&self, _from: u16, deliveries: Vec<Delivery>) {
        let mut fanout = Fanout::new(self.mailboxes.cores());
        for d in deliveries {
            self.metrics.link_events_received.inc();
            let event = MessageId(d.event);
            for (user, pos) in d.targets {
                self.directory.for_each(user, |to| {
                    let ev = CoreEvent::Deliver { to, event, pos: InboxPos(pos), payload: d.payload.clone() };
                    fanout.push(usize::from(to.core), ev);
                });
            }
        }
        fanout.flush(&self.mailboxes);
    }

    fn catch_up(&self, from: u16, users: Option<Vec<u64>>) {
        match users {
            Some(users) => catch_up_users(&self.directory, &self.mailboxes, &users),
            None => {
                tracing::info!(peer = from, "a peer dropped events for this node: every device catches up");
                self.metrics.catch_up_all.inc();
                self.whole.catch_up();
            }
        }
    }

    fn ephemeral(&self, _from: u16, payload: Arc<[u8]>, users: Vec<u64>) {
        self.presence.ephemeral(payload, users);
    }

    fn presence(&self, from: u16, entries: Vec<PresenceEntry>) {
        self.presence.presence(from, entries);
    }

    fn refused(&self, _addr: SocketAddr) {
        self.metrics.link_auth_failures.inc();
    }

    fn shed(&self, _addr: SocketAddr) {
        self.metrics.link_handshakes_shed.inc();
    }

    fn session_ended(&self, from: u16, clean: bool) {
        if clean {
            return;
        }
        tracing::info!(peer = from, "a link from a peer ended without a goodbye: every device catches up");
        self.metrics.catch_up_all.inc();
        self.whole.catch_up();
    }
}
