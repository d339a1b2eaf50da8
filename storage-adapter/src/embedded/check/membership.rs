//! Group membership as the group's system messages tell it.
//!
//! Every membership change is committed as a new group record together with
//! a system message saying what changed (`created`, `added`, `removed`,
//! `promoted`, `demoted`, `left`; `renamed`, `described` and `admins_only`
//! change no membership). Replaying those messages in id order must therefore
//! give exactly the stored record, and tells who was a member when each
//! message of the group was committed: that is what an inbox reference to a
//! group message is checked against.

use std::collections::BTreeMap;

use serde_json::Value;

/// Members of a group: user id -> admin flag.
type Members = BTreeMap<u64, bool>;

/// Members (user -> admin) after each system message, in id order.
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    /// System message id -> the members before it and after it.
    changes: BTreeMap<u64, (Members, Members)>,
}

impl Timeline {
    /// Replay `system` (message id -> body as stored), oldest first; an
    /// error names the first message that cannot be applied.
    pub(crate) fn replay(system: &BTreeMap<u64, String>) -> Result<Self, String> {
        let mut t = Timeline::default();
        let mut members = Members::new();
        for (i, (&id, body)) in system.iter().enumerate() {
            let change = Change::parse(body).ok_or_else(|| format!("system message {id} cannot be read"))?;
            let before = members.clone();
            match (i, change.event.as_str()) {
                (0, "created") => {
                    members.insert(change.by, true);
                    for u in change.members {
                        members.entry(u).or_insert(false);
                    }
                }
                (0, other) => return Err(format!("first system message {id} is `{other}`, not `created`")),
                (_, "created") => return Err(format!("system message {id} creates the group again")),
                (_, "added") => {
                    for u in change.members {
                        members.entry(u).or_insert(false);
                    }
                }
                (_, "removed") => {
                    for u in change.members {
                        members.remove(&u);
                    }
                }
                (_, "promoted") => {
                    for u in change.members {
                        members.insert(u, true);
                    }
                }
                (_, "demoted") => {
                    for u in change.members {
                        if let Some(admin) = members.get_mut(&u) {
                            *admin = false;
                        }
                    }
                }
                (_, "renamed" | "described" | "admins_only" | "admins_can_delete") => {}
                (_, "left") => {
                    members.remove(&change.by);
                }
                (_, other) => return Err(format!("system message {id} has unknown event `{other}`")),
            }
            for u in change.new_admins {
                members.insert(u, true);
            }
            t.changes.insert(id, (before, members.clone()));
        }
        Ok(t)
    }

    /// The members (user -> admin) after the last change.
    pub(crate) fn current(&self) -> Members {
        self.changes.values().next_back().map(|(_, after)| after.clone()).unwrap_or_default()
    }

    /// Whether `user`'s inbox may hold message `id` of this group: a
    /// member when it was committed, or, for a system message, a member
    /// before or after it (the users a change removes hear of it too).
    pub(crate) fn may_hold(&self, id: u64, user: u64) -> bool {
        if let Some((before, after)) = self.changes.get(&id) {
            return before.contains_key(&user) || after.contains_key(&user);
        }
        self.changes.range(..id).next_back().is_some_and(|(_, (_, after))| after.contains_key(&user))
    }
}

/// One system message, decoded.
struct Change {
    event: String,
    by: u64,
    members: Vec<u64>,
    new_admins: Vec<u64>,
}

impl Change {
    /// A stored body is a JSON string whose content is the JSON object.
    fn parse(body: &str) -> Option<Change> {
        let inner: String = serde_json::from_str(body).ok()?;
        let v: Value = serde_json::from_str(&inner).ok()?;
        let id = |v: &Value| v.as_str().and_then(|s| s.parse::<u64>().ok());
        let ids = |key: &str| -> Option<Vec<u64>> {
            match v.get(key) {
                None => Some(Vec::new()),
                Some(Value::Array(a)) => a.iter().map(id).collect(),
                Some(_) => None,
            }
        };
        Some(Change {
            event: v.get("event")?.as_str()?.to_owned(),
            by: id(v.get("by")?)?,
            members: ids("members")?,
            new_admins: ids("new_admins")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(inner: &str) -> String {
        serde_json::to_string(inner).unwrap()
    }

    #[test]
    fn a_group_life_replays_to_its_members() {
        let mut system = BTreeMap::new();
        system.insert(10, body(r#"{"event":"created","by":"1","name":"T","members":["1","2","3"]}"#));
        system.insert(20, body(r#"{"event":"added","by":"1","members":["4"]}"#));
        system.insert(30, body(r#"{"event":"removed","by":"1","members":["2"],"new_admins":[]}"#));
        system.insert(40, body(r#"{"event":"left","by":"1","new_admins":["3"]}"#));
        let t = Timeline::replay(&system).unwrap();
        assert_eq!(t.current(), BTreeMap::from([(3, true), (4, false)]));
        assert!(t.may_hold(15, 2) && !t.may_hold(15, 4));
        assert!(t.may_hold(30, 2), "a removed member hears of its removal");
        assert!(!t.may_hold(35, 2));
        assert!(t.may_hold(40, 1) && !t.may_hold(45, 1));
        assert!(!t.may_hold(5, 1), "nothing before the group was created");
    }

    #[test]
    fn administration_events_replay() {
        let mut system = BTreeMap::new();
        system.insert(10, body(r#"{"event":"created","by":"1","name":"T","members":["1","2"]}"#));
        system.insert(20, body(r#"{"event":"promoted","by":"1","members":["2"]}"#));
        system.insert(30, body(r#"{"event":"renamed","by":"2","name":"U"}"#));
        system.insert(40, body(r#"{"event":"described","by":"2","description":"d"}"#));
        system.insert(50, body(r#"{"event":"admins_only","by":"2","on":true}"#));
        system.insert(60, body(r#"{"event":"demoted","by":"2","members":["1"]}"#));
        let t = Timeline::replay(&system).unwrap();
        assert_eq!(t.current(), BTreeMap::from([(1, false), (2, true)]));
        assert!(t.may_hold(55, 1) && t.may_hold(65, 1), "settings change nobody's membership");
    }

    #[test]
    fn a_history_that_does_not_start_with_created_is_refused() {
        let mut system = BTreeMap::new();
        system.insert(10, body(r#"{"event":"added","by":"1","members":["4"]}"#));
        assert!(Timeline::replay(&system).is_err());
        system.insert(5, "not json".into());
        assert!(Timeline::replay(&system).is_err());
    }
}
