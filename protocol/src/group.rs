//! A group: its name, description, send mode and members, as stored and as
//! described to members.

use crate::{GroupId, MessageId, UserId};

/// One member of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// The user.
    pub user: UserId,
    /// May change the members, the admins, the name, the description and
    /// the admins-only mode.
    pub admin: bool,
    /// Where their membership starts: an id taken just before the system
    /// message that added them (the group's own id for the initial members).
    /// They see messages from here on, never history from before.
    pub joined: MessageId,
}

/// A group conversation's membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Id (a Snowflake id, like messages).
    pub id: GroupId,
    /// Display name.
    pub name: String,
    /// Free text shown with the group (empty when unset).
    pub description: String,
    /// While on, only admins may send messages to the group.
    pub admins_only: bool,
    /// While on, admins may delete any member's message for everyone.
    pub admins_can_delete: bool,
    /// Who created it.
    pub created_by: UserId,
    /// Current members, in the order they joined.
    pub members: Vec<Member>,
}

impl Group {
    /// The member record of `user`, if a member.
    pub fn member(&self, user: UserId) -> Option<&Member> {
        self.members.iter().find(|m| m.user == user)
    }

    /// Whether `user` is a member.
    pub fn is_member(&self, user: UserId) -> bool {
        self.member(user).is_some()
    }

    /// Whether `user` is an admin.
    pub fn is_admin(&self, user: UserId) -> bool {
        self.member(user).is_some_and(|m| m.admin)
    }

    /// Whether `user` may send messages to the group now: a member, and
    /// an admin while the admins-only mode is on.
    pub fn may_send(&self, user: UserId) -> bool {
        self.member(user).is_some_and(|m| m.admin || !self.admins_only)
    }

    /// Member user ids.
    pub fn users(&self) -> impl Iterator<Item = UserId> + '_ {
        self.members.iter().map(|m| m.user)
    }
}
