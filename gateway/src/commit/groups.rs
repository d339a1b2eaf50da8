//! Groups in the committer: membership and administration operations
//! (admins, name, description, the admins-only send mode), fan-out lists,
//! and the checks on group receipts.
//!
//! The committer is the only thread of its gateway that changes membership,
//! so it keeps groups in a plain map: a change made by one request is what
//! the very next request in the same batch (and every later one, even while
//! the writer is still storing the change) sees. A change is persisted as a
//! whole group record plus a system message in the group's conversation, one
//! write of the same atomic commit, so offline members learn of it through
//! `sync`.
//!
//! Another gateway on the same store may change the group too, so each
//! cached record keeps the version it was read at, and a change is written
//! as a compare-and-set on it: the next version is the cached one plus one,
//! known before the write is stored, so a second change prepared meanwhile
//! builds on the first. If the store holds another version, the write is
//! refused whole, the requester is told to retry, and the writer has the
//! committer forget the cached record (`Batch::forget_group`).
//!
//! The admins-only mode is part of the same record, so turning it on moves
//! the version a group message is checked against: a message another
//! gateway let through while it still saw the mode off is refused by the
//! store, exactly like one fanned out to a membership that changed.

use chatgw_protocol::{ConversationId, ErrorCode, Group, GroupChange, GroupId, Member, MessageId, MessageKind, UserId};
use chatgw_router::Endpoint;
use chatgw_storage::{GroupVersion, StoreError};

use super::batch::{no_such_messages, refused, Batch, Draft, Outcome};
use super::group_admin::{self, Applied};
use crate::events::GroupOp;

/// Most messages one group `read` walks (and turns into read receipts).
/// A read that would pass over more stops its mark at the last message
/// walked and tells every device of the reader how far it got; the client
/// sends `read` again to go further (docs/PROTOCOL.md). So the work of one
/// request is bounded, and every message behind a mark has its receipt.
pub(super) const READ_SCAN_LIMIT: usize = 1000;
/// Groups kept in the membership cache before it is emptied.
const MAX_CACHED_GROUPS: usize = 100_000;

fn not_member(origin: Endpoint, reference: Option<String>) -> Outcome {
    // The same answer whether the group exists or not: non-members learn nothing.
    refused(origin, ErrorCode::NotAllowed, "not a member of this group", reference)
}

/// The idempotency key of a group creation: carried as the client id of
/// its system message, behind a control character no client id can contain.
pub(super) fn create_key(request_id: &str) -> String {
    format!("\u{1}create:{request_id}")
}

pub(super) fn id_list(users: &[UserId]) -> String {
    let v: Vec<String> = users.iter().map(|u| format!("\"{u}\"")).collect();
    format!("[{}]", v.join(","))
}

/// `text` as a JSON string literal.
pub(super) fn json_text(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

/// A system message body: a JSON object, carried as a JSON string like any body.
pub(super) fn system_body(event: &str, by: UserId, extra: &str) -> String {
    let inner = format!(r#"{{"event":"{event}","by":"{by}"{extra}}}"#);
    serde_json::to_string(&inner).unwrap_or_else(|_| "\"\"".into())
}

/// Make the earliest member an admin if the group has members but no admin.
fn ensure_admin(g: &mut Group) -> Vec<UserId> {
    if g.members.iter().any(|m| m.admin) {
        return Vec::new();
    }
    match g.members.first_mut() {
        Some(m) => {
            m.admin = true;
            vec![m.user]
        }
        None => Vec::new(),
    }
}

impl Batch<'_> {
    /// The group, from the cache or else the store.
    pub(super) fn cached_group(&mut self, g: GroupId) -> Result<Option<&mut Group>, StoreError> {
        if !self.groups.contains_key(&g) {
            let Some(loaded) = self.store().versioned_group(g)? else { return Ok(None) };
            if self.groups.len() >= MAX_CACHED_GROUPS {
                let in_flight = &self.in_flight;
                self.groups.retain(|id, _| in_flight.is_touched(*id));
            }
            self.groups.insert(g, loaded);
        }
        Ok(self.groups.get_mut(&g).map(|(group, _)| group))
    }

    /// Keep `group` as the newest record (version `version`) and write it
    /// with the system message `draft`, based on `based_on`; `origin` gets
    /// the new record back.
    fn write_group(
        &mut self,
        origin: Endpoint,
        reference: Option<String>,
        group: Group,
        based_on: GroupVersion,
        draft: Draft,
        inboxes: Vec<UserId>,
    ) {
        self.groups.insert(group.id, (group.clone(), based_on.next()));
        self.in_flight.touch(group.id);
        let announce = self.message_of(draft);
        self.push(Outcome::GroupWrite { origin, reference, group, based_on, announce, inboxes });
    }

    /// The version of the cached record of `g` (absent if not cached).
    fn cached_version(&self, g: GroupId) -> GroupVersion {
        self.groups.get(&g).map_or(GroupVersion::ABSENT, |(_, v)| *v)
    }

    /// `user`'s membership record, if a member.
    fn membership(&mut self, g: GroupId, user: UserId) -> Result<Option<Member>, StoreError> {
        Ok(self.cached_group(g)?.and_then(|grp| grp.member(user).copied()))
    }

    pub(super) fn send_to_group(
        &mut self,
        origin: Endpoint,
        from: UserId,
        client_id: String,
        g: GroupId,
        kind: MessageKind,
        body: String,
    ) -> Result<(), StoreError> {
        let inboxes: Vec<UserId> = match self.cached_group(g)? {
            Some(grp) if grp.may_send(from) => grp.users().collect(),
            Some(grp) if grp.is_member(from) => {
                let why = "only group admins may send to this group while it is admins-only";
                self.push(refused(origin, ErrorCode::NotAllowed, why, Some(client_id)));
                return Ok(());
            }
            _ => {
                self.push(not_member(origin, Some(client_id)));
                return Ok(());
            }
        };
        let draft = Draft { from, client_id, conversation: ConversationId::Group(g), kind, body };
        // Fanned out to the members of this version: the store refuses the
        // message if another gateway changed the group meanwhile.
        let membership = Some(self.cached_version(g));
        self.new_message(Some(origin), draft, inboxes, membership)?;
        Ok(())
    }

    pub(super) fn group_delivered(
        &mut self,
        origin: Endpoint,
        by: UserId,
        g: GroupId,
        ids: Vec<MessageId>,
    ) -> Result<(), StoreError> {
        let Some(me) = self.membership(g, by)? else {
            self.push(not_member(origin, None));
            return Ok(());
        };
        let conversation = ConversationId::Group(g);
        let mut unknown = Vec::new();
        for id in ids {
            if id < me.joined {
                unknown.push(id);
                continue;
            }
            match self.sender_of(conversation, id)? {
                // System messages are nobody's to be acknowledged.
                Some((_, true)) => {}
                Some((from, false)) if from != by => {
                    if self.first_delivery(conversation, id, by)? {
                        let ids = self.group_receipts.entry((g, from, 0)).or_default().entry(by).or_default();
                        if !ids.contains(&id) {
                            ids.push(id);
                        }
                    }
                }
                Some(_) => {}
                None => unknown.push(id),
            }
        }
        if !unknown.is_empty() {
            self.push(no_such_messages(origin, &unknown));
        }
        Ok(())
    }

    pub(super) fn group_read(
        &mut self,
        origin: Endpoint,
        by: UserId,
        g: GroupId,
        up_to: MessageId,
    ) -> Result<(), StoreError> {
        let Some(me) = self.membership(g, by)? else {
            self.push(not_member(origin, None));
            return Ok(());
        };
        let conversation = ConversationId::Group(g);
        if up_to < me.joined || self.sender_of(conversation, up_to)?.is_none() {
            self.push(no_such_messages(origin, &[up_to]));
            return Ok(());
        }
        // A read at or behind the mark costs nothing more: no scan.
        let previous = self.read_mark(conversation, by)?.unwrap_or(MessageId(0));
        if previous >= up_to {
            return Ok(());
        }
        // Only the span the mark passes over, by headers (never bodies),
        // and at most READ_SCAN_LIMIT of them. Every message below `up_to`
        // is already stored: clients learn of a message only after its
        // commit, and ids are committed in order.
        let after = previous.max(MessageId(me.joined.0.saturating_sub(1)));
        let walked = self.store().message_headers_between(conversation, after, up_to, READ_SCAN_LIMIT)?;
        self.read_rows_scanned += walked.len() as u64;
        let reached = match walked.last() {
            Some(last) if walked.len() >= READ_SCAN_LIMIT => last.id,
            _ => up_to,
        };
        for m in &walked {
            // Read receipts go to the sender of each newly read message.
            if m.from != by && m.kind != MessageKind::System {
                self.group_receipts.entry((g, m.from, 1)).or_default().entry(by).or_default().push(m.id);
            }
        }
        self.in_flight.mark_read(conversation, by, reached);
        // The read mark itself, for the reader's other devices; and for the
        // requesting one too when the mark stopped short of `up_to`, so it
        // knows to read on.
        let event = self.next_id();
        let receipt = chatgw_protocol::Receipt::Read {
            event,
            conversation,
            by,
            up_to: reached,
            at: chatgw_protocol::Snowflake::unix_ms(event),
        };
        let origin = (reached == up_to).then_some(origin);
        self.push(Outcome::Receipt { origin, receipt, inboxes: vec![by] });
        Ok(())
    }

    pub(super) fn group_op(&mut self, origin: Endpoint, by: UserId, op: GroupOp) -> Result<(), StoreError> {
        match op {
            GroupOp::Create { request_id, name, members } => self.create_group(origin, by, request_id, name, members),
            GroupOp::Info { group } => {
                match self.cached_group(group)? {
                    Some(g) if g.is_member(by) => {
                        let group = g.clone();
                        self.push(Outcome::GroupReply { origin, group, reference: None });
                    }
                    _ => self.push(not_member(origin, None)),
                }
                Ok(())
            }
            GroupOp::Change { group, change } => self.change_group(origin, by, group, change),
        }
    }

    fn create_group(
        &mut self,
        origin: Endpoint,
        by: UserId,
        request_id: String,
        name: String,
        members: Vec<UserId>,
    ) -> Result<(), StoreError> {
        let key = create_key(&request_id);
        if let Some(existing) = self.created_before(by, &key)? {
            match self.cached_group(existing)? {
                Some(g) if g.is_member(by) => {
                    let group = g.clone();
                    self.push(Outcome::GroupReply { origin, group, reference: Some(request_id) });
                }
                _ => self.push(not_member(origin, Some(request_id))),
            }
            return Ok(());
        }
        let mut users = vec![by];
        for m in members {
            if !users.contains(&m) {
                users.push(m);
            }
        }
        if users.len() > self.max_group_members {
            let why = format!("a group holds at most {} members", self.max_group_members);
            self.push(refused(origin, ErrorCode::GroupFull, why, Some(request_id)));
            return Ok(());
        }
        let id = GroupId(self.next_id().0);
        let joined = MessageId(id.0);
        let group = Group {
            id,
            name: name.clone(),
            description: String::new(),
            admins_only: false,
            admins_can_delete: false,
            created_by: by,
            members: users.iter().map(|&user| Member { user, admin: user == by, joined }).collect(),
        };
        let body =
            system_body("created", by, &format!(r#","name":{},"members":{}"#, json_text(&name), id_list(&users)));
        let draft = Draft {
            from: by,
            client_id: key,
            conversation: ConversationId::Group(id),
            kind: MessageKind::System,
            body,
        };
        self.write_group(origin, Some(request_id), group, GroupVersion::ABSENT, draft, users);
        Ok(())
    }

    /// The group an earlier `create_group` with this key made, if any.
    fn created_before(&mut self, by: UserId, key: &str) -> Result<Option<GroupId>, StoreError> {
        Ok(match self.earlier_message(by, key)? {
            Some((ConversationId::Group(g), _)) => Some(g),
            _ => None,
        })
    }

    fn change_group(
        &mut self,
        origin: Endpoint,
        by: UserId,
        gid: GroupId,
        change: GroupChange,
    ) -> Result<(), StoreError> {
        let max = self.max_group_members;
        let Some(g) = self.cached_group(gid)? else {
            self.push(not_member(origin, None));
            return Ok(());
        };
        let Some(me) = g.member(by).copied() else {
            self.push(not_member(origin, None));
            return Ok(());
        };
        if !me.admin {
            let why = match change {
                GroupChange::Leave => None,
                GroupChange::Add(_) | GroupChange::Remove(_) | GroupChange::Promote(_) | GroupChange::Demote(_) => {
                    Some("only group admins may change members")
                }
                GroupChange::Rename(_)
                | GroupChange::Describe(_)
                | GroupChange::AdminsOnly(_)
                | GroupChange::AdminsCanDelete(_) => Some("only group admins may change the group"),
            };
            if let Some(why) = why {
                self.push(refused(origin, ErrorCode::NotAllowed, why, None));
                return Ok(());
            }
        }
        let mut g = g.clone();
        // Who hears of the change besides the members after it.
        let mut departed: Vec<UserId> = Vec::new();
        let body = match change {
            GroupChange::Add(users) => {
                let mut fresh: Vec<UserId> = Vec::new();
                for u in users {
                    if !g.is_member(u) && !fresh.contains(&u) {
                        fresh.push(u);
                    }
                }
                if g.members.len() + fresh.len() > max {
                    let why = format!("a group holds at most {max} members; it has {}", g.members.len());
                    self.push(refused(origin, ErrorCode::GroupFull, why, None));
                    return Ok(());
                }
                if fresh.is_empty() {
                    self.push(Outcome::GroupReply { origin, group: g, reference: None });
                    return Ok(());
                }
                let joined = self.next_id();
                g.members.extend(fresh.iter().map(|&user| Member { user, admin: false, joined }));
                system_body("added", by, &format!(r#","members":{}"#, id_list(&fresh)))
            }
            GroupChange::Remove(users) => {
                for u in users {
                    if g.is_member(u) && !departed.contains(&u) {
                        departed.push(u);
                    }
                }
                if departed.is_empty() {
                    self.push(Outcome::GroupReply { origin, group: g, reference: None });
                    return Ok(());
                }
                g.members.retain(|m| !departed.contains(&m.user));
                let promoted = ensure_admin(&mut g);
                system_body(
                    "removed",
                    by,
                    &format!(r#","members":{},"new_admins":{}"#, id_list(&departed), id_list(&promoted)),
                )
            }
            GroupChange::Promote(users) => {
                if let Some(stranger) = users.iter().find(|u| !g.is_member(**u)) {
                    let why = format!("field `members`: {stranger} is not a member of this group");
                    self.push(refused(origin, ErrorCode::BadField, why, None));
                    return Ok(());
                }
                let promoted: Vec<UserId> = g
                    .members
                    .iter_mut()
                    .filter(|m| users.contains(&m.user) && !m.admin)
                    .map(|m| {
                        m.admin = true;
                        m.user
                    })
                    .collect();
                if promoted.is_empty() {
                    self.push(Outcome::GroupReply { origin, group: g, reference: None });
                    return Ok(());
                }
                system_body("promoted", by, &format!(r#","members":{}"#, id_list(&promoted)))
            }
            GroupChange::Demote(_)
            | GroupChange::Rename(_)
            | GroupChange::Describe(_)
            | GroupChange::AdminsOnly(_)
            | GroupChange::AdminsCanDelete(_) => match group_admin::apply(&mut g, by, change) {
                Applied::Changed(body) => body,
                Applied::Unchanged => {
                    self.push(Outcome::GroupReply { origin, group: g, reference: None });
                    return Ok(());
                }
                Applied::Refused(code, why) => {
                    self.push(refused(origin, code, why, None));
                    return Ok(());
                }
            },
            GroupChange::Leave => {
                g.members.retain(|m| m.user != by);
                departed.push(by);
                let promoted = ensure_admin(&mut g);
                system_body("left", by, &format!(r#","new_admins":{}"#, id_list(&promoted)))
            }
        };
        let mut inboxes: Vec<UserId> = g.users().collect();
        inboxes.extend(departed);
        let draft = Draft {
            from: by,
            client_id: String::new(),
            conversation: ConversationId::Group(gid),
            kind: MessageKind::System,
            body,
        };
        let based_on = self.cached_version(gid);
        self.write_group(origin, None, g, based_on, draft, inboxes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::{Receipt, ReceiptStatus, Snowflake};
    use chatgw_storage::{EmbeddedOptions, EmbeddedStore, MessageStore};

    use super::*;
    use crate::events::CommitRequest;

    fn ep(slot: u32) -> Endpoint {
        Endpoint { core: 0, slot, generation: 1 }
    }

    fn commit(batch: &mut Batch<'_>) {
        batch.finish();
        let writes = batch.writes();
        batch.store().commit(&writes, batch.last_id()).unwrap();
    }

    #[test]
    fn acks_of_many_members_in_one_batch_make_one_receipt_event() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        let mut batch = Batch::new(&store, Snowflake::new(0), 256);
        let members: Vec<UserId> = (2..=200).map(UserId).collect();
        let create = GroupOp::Create { request_id: "r".into(), name: "n".into(), members: members.clone() };
        batch.add(CommitRequest::Group { origin: ep(1), by: UserId(1), op: create }).unwrap();
        let g = *batch.groups.keys().next().unwrap();
        let send = CommitRequest::Send {
            origin: ep(1),
            from: UserId(1),
            client_id: "m".into(),
            conversation: ConversationId::Group(g),
            kind: MessageKind::Text,
            body: "\"x\"".into(),
        };
        batch.add(send).unwrap();
        commit(&mut batch);
        let msg = store.messages_by_client_ids(&[(UserId(1), "m")]).unwrap()[0].unwrap().1;
        batch.begin(2, 1);

        for (i, u) in members.iter().enumerate() {
            let ack = CommitRequest::Delivered {
                origin: ep(i as u32 + 2),
                by: *u,
                conversation: ConversationId::Group(g),
                ids: vec![msg],
            };
            batch.add(ack).unwrap();
        }
        batch.finish();
        let receipts: Vec<&Receipt> = batch
            .outcomes()
            .iter()
            .filter_map(|o| if let Outcome::Receipt { receipt, .. } = o { Some(receipt) } else { None })
            .collect();
        assert_eq!(receipts.len(), 1, "one event for 199 acknowledgements");
        match receipts[0] {
            Receipt::Group { status, items, .. } => {
                assert_eq!(*status, ReceiptStatus::Delivered);
                assert_eq!(items.len(), 199);
                assert!(items.iter().all(|(_, ids)| ids == &vec![msg]));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn membership_change_is_seen_by_the_next_request_in_the_same_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        let mut batch = Batch::new(&store, Snowflake::new(0), 3);
        let create = GroupOp::Create { request_id: "r".into(), name: "n".into(), members: vec![UserId(2)] };
        batch.add(CommitRequest::Group { origin: ep(1), by: UserId(1), op: create }).unwrap();
        let g = *batch.groups.keys().next().unwrap();
        let remove = GroupOp::Change { group: g, change: GroupChange::Remove(vec![UserId(2)]) };
        batch.add(CommitRequest::Group { origin: ep(1), by: UserId(1), op: remove }).unwrap();
        let send = CommitRequest::Send {
            origin: ep(2),
            from: UserId(2),
            client_id: "late".into(),
            conversation: ConversationId::Group(g),
            kind: MessageKind::Text,
            body: "\"x\"".into(),
        };
        batch.add(send).unwrap();
        assert!(matches!(batch.outcomes().last(), Some(Outcome::Refused { code: ErrorCode::NotAllowed, .. })));
        // Limit of 3: adding two more to a group of one is fine, three is not.
        let add = GroupOp::Change { group: g, change: GroupChange::Add(vec![UserId(5), UserId(6), UserId(7)]) };
        batch.add(CommitRequest::Group { origin: ep(1), by: UserId(1), op: add }).unwrap();
        assert!(matches!(batch.outcomes().last(), Some(Outcome::Refused { code: ErrorCode::GroupFull, .. })));
        commit(&mut batch);
        assert_eq!(store.group(g).unwrap().unwrap().members.len(), 1);
    }
}
