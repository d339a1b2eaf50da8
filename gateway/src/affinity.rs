//! Which node of a fleet a user's connections go to, when the balancer
//! routes by user (docs/DEPLOY.md, "Routing by user"): jump consistent hash
//! (Lamping and Veach, "A Fast, Minimal Memory, Consistent Hash
//! Algorithm", 2014) of the user id over the nodes in their listed order.
//!
//! Jump hash because it is a few lines that any balancer script can repeat
//! exactly (the HAProxy Lua in docs/DEPLOY.md does), needs no table, and
//! moves only a 1/n share of users when an n-th node is appended. Its one
//! constraint: nodes are only appended or taken from the end of the list;
//! taking one from the middle renumbers those after it and moves their
//! users too.

/// The bucket, `0..nodes`, of `key` among `nodes` (at least 1), as the
/// paper's C++ listing computes it, double-precision step included.
pub fn jump_hash(mut key: u64, nodes: u32) -> u32 {
    let (mut b, mut j) = (-1i64, 0i64);
    while j < i64::from(nodes) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    // `b` is in `0..nodes` (or -1 for no nodes, which callers exclude).
    b.max(0) as u32
}

/// The node of `nodes` that `user`'s connections go to; `None` when
/// `nodes` is empty.
pub fn node_for<'a>(user: u64, nodes: &[&'a str]) -> Option<&'a str> {
    let n = u32::try_from(nodes.len()).ok().filter(|n| *n > 0)?;
    nodes.get(jump_hash(user, n) as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_papers_listing() {
        // (123456, 1000) -> 984 is the vector other implementations publish;
        // the rest are the paper's C++ function compiled and run.
        for (key, n, want) in [
            (123_456u64, 1000, 984),
            (1, 10, 6),
            (1, 1000, 549),
            (2, 1000, 338),
            (42, 2, 1),
            (42, 3, 2),
            (42, 1000, 571),
            (1_000_001, 1000, 995),
            (0xdead_beef, 10, 5),
            (0xdead_beef, 1000, 285),
            (u64::MAX, 10, 9),
            (u64::MAX, 1000, 313),
            (0, 1000, 0),
        ] {
            assert_eq!(jump_hash(key, n), want, "jump_hash({key}, {n})");
        }
    }

    #[test]
    fn appending_a_node_moves_only_users_to_it_and_load_is_even() {
        let mut counts = [0u32; 3];
        for user in 1..=30_000u64 {
            let (three, four) = (jump_hash(user, 3), jump_hash(user, 4));
            assert!(four == three || four == 3, "user {user} moved between old nodes");
            counts[three as usize] += 1;
        }
        assert!(counts.iter().all(|c| (9_700..=10_300).contains(c)), "{counts:?}");
        assert_eq!(node_for(123_456, &["a", "b", "c"]), Some("c"));
        assert_eq!(node_for(7, &[]), None);
    }
}
