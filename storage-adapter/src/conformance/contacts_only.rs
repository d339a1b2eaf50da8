//! Who may send a user direct messages: durable, idempotent, per user,
//! answered in input order, and seen by every handle on the same data.

use chatgw_protocol::UserId;

use super::Backend;

/// The setting defaults to everyone, survives a reopen, repeats and undoes
/// idempotently, belongs to its user only and is answered per key in input
/// order (duplicates included).
pub fn direct_message_settings(backend: &dyn Backend) {
    let place = backend.new_place();
    let (a, b, c) = (UserId(7), UserId(3), UserId(u64::MAX - 1));
    {
        let s = backend.open(&place);
        assert_eq!(s.contacts_only(&[]).unwrap(), Vec::<bool>::new(), "no keys, no answers");
        assert_eq!(s.contacts_only(&[a, b]).unwrap(), vec![false, false], "everyone by default");
        s.set_contacts_only(a, true).unwrap();
        s.set_contacts_only(a, true).expect("setting it twice is no error");
        s.set_contacts_only(c, true).unwrap();
        s.set_contacts_only(b, false).expect("turning off what is off is no error");
        assert_eq!(s.contacts_only(&[b, a, c, a]).unwrap(), vec![false, true, true, true], "in input order");
    }
    let s = backend.open(&place);
    assert_eq!(s.contacts_only(&[a, b, c]).unwrap(), vec![true, false, true], "survives a reopen");
    s.set_contacts_only(a, false).unwrap();
    assert_eq!(s.contacts_only(&[a, c]).unwrap(), vec![false, true], "turned off for its user only");
    if backend.several_writers() {
        let other = backend.second_handle(&place, &s);
        other.set_contacts_only(b, true).unwrap();
        assert_eq!(s.contacts_only(&[b]).unwrap(), vec![true], "a change by another writer is read at once");
    }
}
