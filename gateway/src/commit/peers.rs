//! What one commit pipeline tells the others: a group record it changed,
//! a user whose block list or direct message setting it changed.
//!
//! Every pipeline keeps its own caches, read from the store. Writes are
//! partitioned (`route`), so a pipeline only ever caches another's data
//! for checks: a send checks its recipient's block list and setting, the
//! contacts-only check reads group records. A change is written to the
//! store before it is acknowledged, and the other pipelines hear of it
//! before that acknowledgement goes out; each drains what it heard after
//! taking its next requests and before checking any, so a request sent
//! after the acknowledgement is checked on a list read again.

use chatgw_protocol::{GroupId, UserId};
use crossbeam_channel::{Receiver, Sender};

/// A cached record another pipeline changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Changed {
    Group(GroupId),
    User(UserId),
}

/// One pipeline's ends: where it hears of changes, and the other pipelines'.
pub(crate) struct Peers {
    others: Vec<Sender<Changed>>,
    heard: Receiver<Changed>,
}

impl Peers {
    /// The ends of `k` pipelines, each linked to every other.
    pub(crate) fn linked(k: usize) -> Vec<Peers> {
        let ends: Vec<_> = (0..k).map(|_| crossbeam_channel::unbounded::<Changed>()).collect();
        (0..k)
            .map(|i| Peers {
                others: ends.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, (tx, _))| tx.clone()).collect(),
                heard: ends[i].1.clone(),
            })
            .collect()
    }

    pub(super) fn tell(&self, change: Changed) {
        for other in &self.others {
            // A pipeline that stopped needs no news.
            let _ = other.send(change);
        }
    }

    /// What the other pipelines changed since the last call.
    pub(super) fn heard(&self) -> impl Iterator<Item = Changed> + '_ {
        self.heard.try_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_reaches_every_other_pipeline_once() {
        let p = Peers::linked(3);
        p[1].tell(Changed::User(UserId(4)));
        assert_eq!(p[0].heard().collect::<Vec<_>>(), vec![Changed::User(UserId(4))]);
        assert_eq!(p[2].heard().collect::<Vec<_>>(), vec![Changed::User(UserId(4))]);
        assert!(p[1].heard().next().is_none(), "not told of its own change");
        assert!(p[0].heard().next().is_none());
    }
}
