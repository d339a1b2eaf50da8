//! Who may send a user direct messages: `set_direct_from`, `direct_from`,
//! and the check a direct send makes when its recipient takes direct
//! messages from contacts only (docs/PROTOCOL.md, "Direct messages from
//! strangers").
//!
//! Why the common path costs nothing extra: the settings a batch needs are
//! read in one batched store call next to the recipients' block lists
//! (`lookups`), and kept for [`FRESH_FOR`] like them. Only a recipient with
//! the setting on costs more: one read of their newest [`MAX_SCANNED`]
//! conversation rows (kept for [`FRESH_FOR`] too), then at most
//! [`MAX_GROUPS_CHECKED`] group records through the committer's group
//! cache (membership as of commit order). A kept list only ever lets a
//! message through: a refusal is decided on a list read just now, so a
//! conversation begun a moment ago counts at once, and the direct
//! conversations this committer accepted a message in count even before
//! the writer has stored them.
//!
//! Why a refusal is an error and not a message kept with its sender (as
//! for a block): the setting is not secret (anyone may turn it on, and it
//! applies to everyone alike), so telling the sender costs the recipient
//! nothing, while a message that silently never arrives would leave a
//! stranger waiting for an answer that cannot come.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use chatgw_protocol::{ConversationId, DirectFrom, ErrorCode, GroupId, UserId};
use chatgw_router::Endpoint;
use chatgw_storage::{MessageStore, StoreError};

use super::{
    batch::{refused, Batch, Outcome},
    lookups::answered,
};

/// How long a setting or a conversation list is trusted before it is read
/// again: the same as a block list.
const FRESH_FOR: Duration = super::blocks::FRESH_FOR;

/// Conversation rows of the recipient looked at, newest first: a direct
/// conversation or a group further down their list does not count.
pub(crate) const MAX_SCANNED: usize = 500;

/// Group conversations of the recipient whose membership is checked for
/// the sender, newest first (each a group record read, cached).
pub(crate) const MAX_GROUPS_CHECKED: usize = 64;

/// Users whose settings or lists are kept at most; emptied when full.
const MAX_CACHED: usize = 100_000;

/// The message a refused sender gets.
pub(crate) const REFUSED: &str = "this user takes direct messages only from people they share a conversation with";

/// Settings and conversation lists, each with when it was read.
#[derive(Default)]
pub(super) struct DirectFromCache {
    contacts_only: HashMap<UserId, (Instant, bool)>,
    conversations: HashMap<UserId, (Instant, Vec<ConversationId>)>,
    /// Direct conversations this committer accepted a message in.
    written: HashSet<ConversationId>,
}

impl DirectFromCache {
    pub(super) fn clear(&mut self) {
        self.contacts_only.clear();
        self.conversations.clear();
        self.written.clear();
    }

    /// Read `user`'s setting again when next needed (another pipeline changed it).
    pub(super) fn forget(&mut self, user: UserId) {
        self.contacts_only.remove(&user);
    }

    /// Read the setting of every user of `users` that is absent or older
    /// than [`FRESH_FOR`], in one store call.
    pub(super) fn prefetch(&mut self, store: &dyn MessageStore, users: &[UserId]) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut wanted: Vec<UserId> = users
            .iter()
            .copied()
            .filter(|u| self.contacts_only.get(u).is_none_or(|(at, _)| now.duration_since(*at) >= FRESH_FOR))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(());
        }
        let answers = answered(wanted.len(), store.contacts_only(&wanted)?, "contacts_only")?;
        if self.contacts_only.len() + wanted.len() > MAX_CACHED {
            self.contacts_only.clear();
        }
        for (user, on) in wanted.into_iter().zip(answers) {
            self.contacts_only.insert(user, (now, on));
        }
        Ok(())
    }

    fn setting(&mut self, store: &dyn MessageStore, user: UserId) -> Result<bool, StoreError> {
        self.prefetch(store, &[user])?;
        Ok(self.contacts_only.get(&user).is_some_and(|(_, on)| *on))
    }

    /// Whether `to`'s newest conversations hold one with `from`, and the
    /// groups among them; read if absent, stale or `fresh` is asked for.
    /// Returns whether the answer was read just now.
    fn contacts_of(
        &mut self,
        store: &dyn MessageStore,
        to: UserId,
        from: UserId,
        fresh: bool,
    ) -> Result<(bool, Vec<GroupId>, bool), StoreError> {
        let now = Instant::now();
        let stale = self.conversations.get(&to).is_none_or(|(at, _)| now.duration_since(*at) >= FRESH_FOR);
        let read = stale || fresh;
        if read {
            let rows = store.conversations(to, None, MAX_SCANNED)?;
            if self.conversations.len() >= MAX_CACHED {
                self.conversations.clear();
            }
            self.conversations.insert(to, (now, rows.into_iter().map(|r| r.conversation).collect()));
        }
        let list = self.conversations.get(&to).map(|(_, l)| l.as_slice()).unwrap_or_default();
        let direct = ConversationId::direct(from, to);
        let wrote = self.written.contains(&direct) || list.contains(&direct);
        let groups = list
            .iter()
            .filter_map(|c| match c {
                ConversationId::Group(g) => Some(*g),
                ConversationId::Direct { .. } => None,
            })
            .take(MAX_GROUPS_CHECKED)
            .collect();
        Ok((wrote, groups, read))
    }

    /// A direct message between `a` and `b` was accepted: from now on they
    /// share a conversation, before any list read from the store shows it.
    pub(super) fn note_direct(&mut self, a: UserId, b: UserId) {
        if self.written.len() >= MAX_CACHED {
            self.written.clear();
        }
        self.written.insert(ConversationId::direct(a, b));
    }
}

impl Batch<'_> {
    /// Whether `to` refuses a direct message from `from`: `to` takes them
    /// from contacts only and the two share no conversation (no direct
    /// conversation in `to`'s list, no group of `to`'s list with `from` a
    /// member of it now).
    pub(super) fn refuses_stranger(&mut self, to: UserId, from: UserId) -> Result<bool, StoreError> {
        let store = self.store();
        if to == from || !self.direct_from.setting(store, to)? {
            return Ok(false);
        }
        // A refusal is decided on a list read just now: a cached one may
        // predate the conversation that makes them contacts.
        let mut fresh = false;
        loop {
            let (wrote, groups, read) = self.direct_from.contacts_of(store, to, from, fresh)?;
            if wrote {
                return Ok(false);
            }
            for g in groups {
                if self.cached_group(g)?.is_some_and(|grp| grp.is_member(from) && grp.is_member(to)) {
                    return Ok(false);
                }
            }
            if read {
                return Ok(true);
            }
            fresh = true;
        }
    }

    /// Refuse `client_id`'s send as from a stranger.
    pub(super) fn refuse_stranger(&mut self, origin: Endpoint, client_id: String) {
        self.push(refused(origin, ErrorCode::NotAllowed, REFUSED, Some(client_id)));
    }

    /// `set_direct_from` (with a value) or `direct_from` (without) from `by`:
    /// the setting as it is after it.
    pub(super) fn direct_from_op(
        &mut self,
        origin: Endpoint,
        by: UserId,
        set: Option<DirectFrom>,
    ) -> Result<(), StoreError> {
        let store = self.store();
        let on = match set {
            None => self.direct_from.setting(store, by)?,
            Some(from) => {
                let on = from == DirectFrom::Contacts;
                store.set_contacts_only(by, on)?;
                self.direct_from.contacts_only.insert(by, (Instant::now(), on));
                self.changed_users.push(by);
                on
            }
        };
        let from = if on { DirectFrom::Contacts } else { DirectFrom::Everyone };
        self.push(Outcome::DirectFrom { origin, from });
        Ok(())
    }
}
