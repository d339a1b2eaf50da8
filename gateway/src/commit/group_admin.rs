//! Group administration in the committer: demoting admins, renaming,
//! describing, and the admins-only send mode.
//!
//! Kept apart from the membership operations because these never change
//! who is a member, so they need neither fan-out lists nor member limits:
//! each is a pure edit of the cached record plus the body of the system
//! message that announces it. [`apply`] decides all of it without the
//! store, and `Batch::change_group` writes the result like any other
//! change (a compare-and-set on the record's version, which is also what
//! makes the admins-only mode hold across gateways sharing a store).

use chatgw_protocol::{ErrorCode, Group, GroupChange, UserId};

use super::groups::{id_list, json_text, system_body};

/// What an administration change does to a group.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Applied {
    /// The record was edited; the system message body announcing it.
    Changed(String),
    /// The group is already as asked: nothing to write, the requester gets
    /// the `group` reply.
    Unchanged,
    /// Refused with this code and message; the record is as it was.
    Refused(ErrorCode, String),
}

/// Apply `change`, requested by `by` (an admin: the caller checked), to `g`.
/// Membership changes are not this function's: they are `Unchanged`.
pub(super) fn apply(g: &mut Group, by: UserId, change: GroupChange) -> Applied {
    match change {
        GroupChange::Demote(users) => demote(g, by, &users),
        GroupChange::Rename(name) => {
            if g.name == name {
                return Applied::Unchanged;
            }
            g.name = name;
            Applied::Changed(system_body("renamed", by, &format!(r#","name":{}"#, json_text(&g.name))))
        }
        GroupChange::Describe(text) => {
            if g.description == text {
                return Applied::Unchanged;
            }
            g.description = text;
            Applied::Changed(system_body("described", by, &format!(r#","description":{}"#, json_text(&g.description))))
        }
        GroupChange::AdminsOnly(on) => {
            if g.admins_only == on {
                return Applied::Unchanged;
            }
            g.admins_only = on;
            Applied::Changed(system_body("admins_only", by, &format!(r#","on":{on}"#)))
        }
        GroupChange::AdminsCanDelete(on) => {
            if g.admins_can_delete == on {
                return Applied::Unchanged;
            }
            g.admins_can_delete = on;
            Applied::Changed(system_body("admins_can_delete", by, &format!(r#","on":{on}"#)))
        }
        GroupChange::Add(_) | GroupChange::Remove(_) | GroupChange::Promote(_) | GroupChange::Leave => {
            Applied::Unchanged
        }
    }
}

/// Make the listed admins plain members, unless that leaves no admin.
fn demote(g: &mut Group, by: UserId, users: &[UserId]) -> Applied {
    if let Some(stranger) = users.iter().find(|u| !g.is_member(**u)) {
        let why = format!("field `members`: {stranger} is not a member of this group");
        return Applied::Refused(ErrorCode::BadField, why);
    }
    if g.members.iter().all(|m| !m.admin || users.contains(&m.user)) {
        let why = "a group keeps at least one admin: promote another member first";
        return Applied::Refused(ErrorCode::NotAllowed, why.into());
    }
    let demoted: Vec<UserId> = g
        .members
        .iter_mut()
        .filter(|m| users.contains(&m.user) && m.admin)
        .map(|m| {
            m.admin = false;
            m.user
        })
        .collect();
    if demoted.is_empty() {
        return Applied::Unchanged;
    }
    Applied::Changed(system_body("demoted", by, &format!(r#","members":{}"#, id_list(&demoted))))
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::{GroupId, Member, MessageId};

    use super::*;

    fn group(admins: &[u64], plain: &[u64]) -> Group {
        let member = |user: u64, admin| Member { user: UserId(user), admin, joined: MessageId(1) };
        Group {
            id: GroupId(1),
            name: "Team".into(),
            description: String::new(),
            admins_only: false,
            admins_can_delete: false,
            created_by: UserId(1),
            members: admins.iter().map(|u| member(*u, true)).chain(plain.iter().map(|u| member(*u, false))).collect(),
        }
    }

    fn event(applied: &Applied) -> serde_json::Value {
        let Applied::Changed(body) = applied else { panic!("{applied:?}") };
        let inner: String = serde_json::from_str(body).unwrap();
        serde_json::from_str(&inner).unwrap()
    }

    #[test]
    fn demote_keeps_an_admin_and_lists_only_admins_it_demoted() {
        let mut g = group(&[1, 2], &[3]);
        let before = g.clone();
        for users in [vec![UserId(1), UserId(2)], vec![UserId(1), UserId(2), UserId(3)]] {
            let refused = apply(&mut g, UserId(1), GroupChange::Demote(users));
            assert!(matches!(refused, Applied::Refused(ErrorCode::NotAllowed, _)), "{refused:?}");
            assert_eq!(g, before, "nothing changed");
        }
        let stranger = apply(&mut g, UserId(1), GroupChange::Demote(vec![UserId(2), UserId(9)]));
        assert_eq!(
            stranger,
            Applied::Refused(ErrorCode::BadField, "field `members`: 9 is not a member of this group".into())
        );
        assert_eq!(g, before);
        let done = apply(&mut g, UserId(2), GroupChange::Demote(vec![UserId(1), UserId(3)]));
        assert_eq!(event(&done), serde_json::json!({"event":"demoted","by":"2","members":["1"]}));
        assert!(!g.is_admin(UserId(1)) && g.is_admin(UserId(2)));
        assert_eq!(apply(&mut g, UserId(2), GroupChange::Demote(vec![UserId(3)])), Applied::Unchanged);
    }

    #[test]
    fn settings_change_once_and_escape_their_text() {
        let mut g = group(&[1], &[2]);
        let renamed = apply(&mut g, UserId(1), GroupChange::Rename("A \"B\"\n☕".into()));
        assert_eq!(event(&renamed), serde_json::json!({"event":"renamed","by":"1","name":"A \"B\"\n☕"}));
        assert_eq!(apply(&mut g, UserId(1), GroupChange::Rename("A \"B\"\n☕".into())), Applied::Unchanged);
        let described = apply(&mut g, UserId(1), GroupChange::Describe("x\\y".into()));
        assert_eq!(event(&described)["description"], "x\\y");
        assert_eq!(apply(&mut g, UserId(1), GroupChange::Describe("x\\y".into())), Applied::Unchanged);
        assert!(g.may_send(UserId(2)));
        let on = apply(&mut g, UserId(1), GroupChange::AdminsOnly(true));
        assert_eq!(event(&on), serde_json::json!({"event":"admins_only","by":"1","on":true}));
        assert!(!g.may_send(UserId(2)) && g.may_send(UserId(1)) && !g.may_send(UserId(7)));
        assert_eq!(apply(&mut g, UserId(1), GroupChange::AdminsOnly(true)), Applied::Unchanged);
        assert_eq!((g.name.as_str(), g.description.as_str(), g.admins_only), ("A \"B\"\n☕", "x\\y", true));
    }

    #[test]
    fn admins_only_holds_for_the_next_send_of_the_same_batch() {
        use chatgw_protocol::{ConversationId, MessageKind, Snowflake};
        use chatgw_router::Endpoint;
        use chatgw_storage::{EmbeddedOptions, EmbeddedStore, MessageStore};

        use crate::commit::batch::{Batch, Outcome};
        use crate::events::{CommitRequest, GroupOp};

        let ep = |slot| Endpoint { core: 0, slot, generation: 1 };
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        let mut batch = Batch::new(&store, Snowflake::new(0), 8);
        let create = GroupOp::Create { request_id: "r".into(), name: "n".into(), members: vec![UserId(2)] };
        batch.add(CommitRequest::Group { origin: ep(1), by: UserId(1), op: create }).unwrap();
        let g = *batch.groups.keys().next().unwrap();
        let send = |from: u64, cid: &str| CommitRequest::Send {
            origin: ep(from as u32),
            from: UserId(from),
            client_id: cid.into(),
            conversation: ConversationId::Group(g),
            kind: MessageKind::Text,
            body: "\"x\"".into(),
        };
        // A plain member may not turn it on; an admin may.
        let on = || GroupOp::Change { group: g, change: GroupChange::AdminsOnly(true) };
        batch.add(CommitRequest::Group { origin: ep(2), by: UserId(2), op: on() }).unwrap();
        assert!(matches!(batch.outcomes().last(), Some(Outcome::Refused { code: ErrorCode::NotAllowed, .. })));
        batch.add(CommitRequest::Group { origin: ep(1), by: UserId(1), op: on() }).unwrap();
        batch.add(send(2, "plain")).unwrap();
        assert!(matches!(batch.outcomes().last(), Some(Outcome::Refused { code: ErrorCode::NotAllowed, .. })));
        let before = batch.outcomes().len();
        batch.add(send(1, "admin")).unwrap();
        assert!(
            !batch.outcomes()[before..].iter().any(|o| matches!(o, Outcome::Refused { .. })),
            "an admin still sends"
        );
        batch.finish();
        let writes = batch.writes();
        batch.store().commit(&writes, batch.last_id()).unwrap();
        assert!(store.group(g).unwrap().unwrap().admins_only);
        let keys = store.messages_by_client_ids(&[(UserId(2), "plain"), (UserId(1), "admin")]).unwrap();
        assert!(keys[0].is_none() && keys[1].is_some(), "{keys:?}");
    }
}
