//! Block lists: durable, idempotent, per blocker, and seen by every handle
//! on the same data.

use chatgw_protocol::UserId;

use super::Backend;

/// Blocks survive a reopen, come back in ascending order, repeat and undo
/// idempotently, and belong to the blocker only.
pub fn block_lists(backend: &dyn Backend) {
    let place = backend.new_place();
    let (a, b, c) = (UserId(7), UserId(3), UserId(9));
    {
        let s = backend.open(&place);
        assert_eq!(s.blocked_by(&[a]).unwrap().concat(), Vec::<UserId>::new(), "nobody blocked yet");
        s.set_block(a, c, true).unwrap();
        s.set_block(a, b, true).unwrap();
        s.set_block(a, b, true).expect("blocking twice is no error");
        s.set_block(b, a, true).unwrap();
        s.set_block(a, UserId(1), false).expect("unblocking a user not blocked is no error");
        assert_eq!(s.blocked_by(&[a]).unwrap().concat(), vec![b, c], "ascending, each once");
    }
    let s = backend.open(&place);
    assert_eq!(s.blocked_by(&[a]).unwrap().concat(), vec![b, c], "blocks survive a reopen");
    assert_eq!(s.blocked_by(&[b]).unwrap().concat(), vec![a], "a list is its blocker's own");
    assert_eq!(s.blocked_by(&[c]).unwrap().concat(), Vec::<UserId>::new());
    assert_eq!(
        s.blocked_by(&[b, c, a, b]).unwrap(),
        vec![vec![a], vec![], vec![b, c], vec![a]],
        "one list per asked user, in input order, duplicates included"
    );
    assert_eq!(s.blocked_by(&[]).unwrap(), Vec::<Vec<UserId>>::new());
    s.set_block(a, b, false).unwrap();
    assert_eq!(s.blocked_by(&[a]).unwrap().concat(), vec![c], "unblocked");
    if backend.several_writers() {
        let other = backend.second_handle(&place, &s);
        other.set_block(a, UserId(1), true).unwrap();
        assert_eq!(
            s.blocked_by(&[a]).unwrap().concat(),
            vec![UserId(1), c],
            "a block by another writer is read at once"
        );
    }
}
