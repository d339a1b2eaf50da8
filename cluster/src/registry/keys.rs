//! The names of what the registry keeps in Redis, and the text of its
//! notices (docs/CLUSTER.md, "What Redis holds").
//!
//! The node keys share the hash tag `{nodes}`, so a Redis Cluster keeps
//! them in one slot and one command (a script, an `MGET`) may touch
//! several. Each user's key has its own tag, `{<user>}`, so users spread
//! over the slots and every command on a user stays in that user's slot.

use std::net::SocketAddr;

/// The set of node ids that ever joined.
pub(crate) const ALL_NODES: &str = "cgw:{nodes}:all";
/// The pub/sub channel of placement and membership notices.
pub(crate) const NOTICES: &str = "cgw:notices";
/// Most ids in one notice message.
pub(crate) const NOTICE_IDS: usize = 1000;

/// A node's lease: `<epoch> <link address>`, with the lease as its TTL.
pub(crate) fn lease(node: u16) -> String {
    format!("cgw:{{nodes}}:lease:{node}")
}

/// A node's epoch counter.
pub(crate) fn epoch(node: u16) -> String {
    format!("cgw:{{nodes}}:epoch:{node}")
}

/// A user's placements: a hash of `<node>` = `<epoch>`.
pub(crate) fn user(user: u64) -> String {
    format!("cgw:u:{{{user}}}")
}

/// A lease's value.
pub(crate) fn lease_value(epoch: u64, link: SocketAddr) -> String {
    format!("{epoch} {link}")
}

/// A lease's value read back: `(epoch, link)`, or `None` when malformed.
pub(crate) fn parse_lease(value: &[u8]) -> Option<(u64, SocketAddr)> {
    let text = std::str::from_utf8(value).ok()?;
    let (epoch, link) = text.split_once(' ')?;
    Some((epoch.parse().ok()?, link.parse().ok()?))
}

/// The notice messages for `ids`, `<kind> <id> <id> ...`, at most
/// [`NOTICE_IDS`] ids each.
pub(crate) fn notices(kind: char, ids: &[u64]) -> impl Iterator<Item = String> + '_ {
    ids.chunks(NOTICE_IDS).map(move |chunk| {
        let mut text = String::with_capacity(2 + chunk.len() * 8);
        text.push(kind);
        for id in chunk {
            text.push(' ');
            text.push_str(&id.to_string());
        }
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_names() {
        assert_eq!(lease(7), "cgw:{nodes}:lease:7");
        assert_eq!(epoch(7), "cgw:{nodes}:epoch:7");
        assert_eq!(user(42), "cgw:u:{42}");
    }

    #[test]
    fn lease_values_round_trip_and_garbage_is_none() {
        let link: SocketAddr = "[::1]:7070".parse().unwrap();
        assert_eq!(parse_lease(lease_value(9, link).as_bytes()), Some((9, link)));
        for bad in [&b""[..], b"9", b"x 1.2.3.4:5", b"9 nowhere", b"\xff 1.2.3.4:5"] {
            assert_eq!(parse_lease(bad), None);
        }
    }

    #[test]
    fn long_notices_are_chunked() {
        let ids: Vec<u64> = (0..2500).collect();
        let msgs: Vec<String> = notices('u', &ids).collect();
        assert_eq!(msgs.len(), 3);
        assert!(msgs[0].starts_with("u 0 1 2 "));
        assert_eq!(msgs[2].split(' ').count(), 501);
        assert_eq!(notices('g', &[5]).collect::<Vec<_>>(), ["g 5"]);
    }
}
