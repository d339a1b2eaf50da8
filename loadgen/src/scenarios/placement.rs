//! Which gateway node each user connects to, when `--url` lists several.
//!
//! A fleet of gateways behind an L4 load balancer delivers a message
//! between two users on one node inside that node, and between users on two
//! nodes over a node link. The two paths cost differently, so a fleet run
//! says which one it measures: `--same-node` puts both ends of every pair
//! (every member of a group) on one node, `--cross-node` puts the ends of a
//! pair on different nodes (a group's members on all of them), and the
//! default with several URLs deals users to the nodes round-robin, as a
//! balancer would, which mixes the two. With one URL everything is on it.
//!
//! Everything here is arithmetic on indexes, so every thread and worker
//! process places the same user on the same node without talking.

use serde::Serialize;

use crate::conn::net::Target;

/// Most gateway URLs one run may list.
pub(crate) const MAX_URLS: usize = 64;

/// How users are placed on the nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Placement {
    /// User `k` of the run on node `k % nodes`.
    RoundRobin,
    /// Both ends of a pair (all members of a group) on one node; pairs
    /// (groups) spread over the nodes round-robin.
    SameNode,
    /// The ends of a pair on two different nodes; a group's members spread
    /// over every node.
    CrossNode,
}

impl Placement {
    /// The placement `--same-node` and `--cross-node` ask for over `nodes`
    /// URLs: same-node by default with one URL, round-robin with several.
    pub(crate) fn choose(same_node: bool, cross_node: bool, nodes: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(!(same_node && cross_node), "--same-node and --cross-node exclude each other");
        if cross_node {
            anyhow::ensure!(nodes >= 2, "--cross-node needs at least two gateway URLs in --url");
            return Ok(Placement::CrossNode);
        }
        Ok(if same_node || nodes <= 1 { Placement::SameNode } else { Placement::RoundRobin })
    }

    /// The name on the command line and in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Placement::RoundRobin => "round-robin",
            Placement::SameNode => "same-node",
            Placement::CrossNode => "cross-node",
        }
    }

    /// The nodes of pair `pair`'s sender and recipient, of `pairs` pairs
    /// over `nodes` nodes (the sender is user `pair`, the recipient user
    /// `pairs + pair` of the run).
    pub(crate) fn pair_nodes(self, pair: u64, pairs: u64, nodes: usize) -> (usize, usize) {
        let n = nodes.max(1) as u64;
        let (s, r) = match self {
            Placement::RoundRobin => (pair % n, (pairs + pair) % n),
            Placement::SameNode => (pair % n, pair % n),
            Placement::CrossNode => (pair % n, (pair + 1) % n),
        };
        (s as usize, r as usize)
    }

    /// The node of member `member` of group `group` (groups of `size`
    /// members, user `group * size + member` of the run) over `nodes` nodes.
    pub(crate) fn member_node(self, group: u64, member: u64, size: u64, nodes: usize) -> usize {
        let n = nodes.max(1) as u64;
        let node = match self {
            Placement::RoundRobin => (group * size + member) % n,
            Placement::SameNode => group % n,
            // Shifted per group so the first members do not all land on node 0.
            Placement::CrossNode => (group + member) % n,
        };
        node as usize
    }
}

/// The node of user `k` of the run (round-robin), for scenarios without
/// pairs or groups of their own placement (connect, reconnect-storm, soak).
pub(crate) fn user_node(k: u64, nodes: usize) -> usize {
    (k % nodes.max(1) as u64) as usize
}

/// How many of `pairs` pairs have their ends on different nodes.
pub(crate) fn cross_pairs(p: Placement, pairs: u64, nodes: usize) -> u64 {
    (0..pairs).filter(|&i| p.pair_nodes(i, pairs, nodes).0 != p.pair_nodes(i, pairs, nodes).1).count() as u64
}

/// The `--url` list as targets: at least one, at most [`MAX_URLS`], no
/// address twice.
pub(crate) fn parse_urls(urls: &[String]) -> anyhow::Result<Vec<Target>> {
    anyhow::ensure!(!urls.is_empty(), "--url needs at least one gateway address");
    anyhow::ensure!(urls.len() <= MAX_URLS, "--url lists {} gateways, at most {MAX_URLS}", urls.len());
    let targets = urls.iter().map(|u| Target::parse(u.trim())).collect::<anyhow::Result<Vec<_>>>()?;
    for (i, t) in targets.iter().enumerate() {
        if let Some(first) = targets.iter().take(i).find(|o| o.addr == t.addr) {
            anyhow::bail!("--url lists {} twice (as `{}` and `{}`)", t.addr, first.host, t.host);
        }
    }
    Ok(targets)
}

/// What the report says of the placement, when the run has several nodes.
#[derive(Serialize, Debug, Clone)]
pub(crate) struct PlacementFigures {
    pub(crate) placement: Placement,
    pub(crate) nodes: usize,
    /// Pairs (one-to-one) or groups (group) whose users are on more than
    /// one node.
    pub(crate) cross_node: u64,
    /// Pairs or groups in all.
    pub(crate) of: u64,
}

impl PlacementFigures {
    /// The summary's line: e.g. `cross-node over 3 nodes (200 / 200 pairs cross nodes)`.
    pub(crate) fn describe(&self, what: &str) -> String {
        format!(
            "{} over {} nodes ({} / {} {what} cross nodes)",
            self.placement.name(),
            self.nodes,
            self.cross_node,
            self.of
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_node_is_the_default_for_one_url_round_robin_for_several() {
        assert_eq!(Placement::choose(false, false, 1).unwrap(), Placement::SameNode);
        assert_eq!(Placement::choose(false, false, 3).unwrap(), Placement::RoundRobin);
        assert_eq!(Placement::choose(true, false, 3).unwrap(), Placement::SameNode);
        assert_eq!(Placement::choose(false, true, 2).unwrap(), Placement::CrossNode);
        assert!(Placement::choose(false, true, 1).is_err(), "cross-node needs two nodes");
        assert!(Placement::choose(true, true, 2).is_err());
    }

    #[test]
    fn pairs_same_node_share_a_node_and_cross_node_never_do() {
        for nodes in 2..6 {
            for pair in 0..50 {
                let (s, r) = Placement::SameNode.pair_nodes(pair, 50, nodes);
                assert_eq!((s, r), ((pair % nodes as u64) as usize, (pair % nodes as u64) as usize));
                let (s, r) = Placement::CrossNode.pair_nodes(pair, 50, nodes);
                assert!(s != r && s < nodes && r < nodes, "pair {pair} on {nodes} nodes: {s} {r}");
            }
            assert_eq!(cross_pairs(Placement::CrossNode, 50, nodes), 50);
            assert_eq!(cross_pairs(Placement::SameNode, 50, nodes), 0);
        }
        // Every node carries senders and recipients alike.
        let senders: Vec<usize> = (0..6).map(|p| Placement::CrossNode.pair_nodes(p, 6, 3).0).collect();
        assert_eq!(senders, [0, 1, 2, 0, 1, 2]);
        // One node: everything on it, whatever was asked.
        assert_eq!(Placement::CrossNode.pair_nodes(7, 10, 1), (0, 0));
    }

    #[test]
    fn round_robin_deals_users_in_order() {
        // 4 pairs over 3 nodes: senders are users 0..4, recipients 4..8.
        let nodes: Vec<(usize, usize)> = (0..4).map(|p| Placement::RoundRobin.pair_nodes(p, 4, 3)).collect();
        assert_eq!(nodes, [(0, 1), (1, 2), (2, 0), (0, 1)]);
        assert_eq!(cross_pairs(Placement::RoundRobin, 4, 3), 4);
        // 3 pairs over 3 nodes: sender and recipient land on the same node.
        assert_eq!(cross_pairs(Placement::RoundRobin, 3, 3), 0);
        assert_eq!((0..5).map(|k| user_node(k, 2)).collect::<Vec<_>>(), [0, 1, 0, 1, 0]);
        assert_eq!(user_node(9, 1), 0);
    }

    #[test]
    fn group_members_spread_or_stay_together() {
        for g in 0..4 {
            let same: Vec<usize> = (0..5).map(|m| Placement::SameNode.member_node(g, m, 5, 3)).collect();
            assert!(same.iter().all(|&n| n == (g % 3) as usize));
            let cross: Vec<usize> = (0..5).map(|m| Placement::CrossNode.member_node(g, m, 5, 3)).collect();
            for node in 0..3 {
                assert!(cross.contains(&node), "group {g} has a member on node {node}: {cross:?}");
            }
        }
        let rr: Vec<usize> = (0..6).map(|m| Placement::RoundRobin.member_node(1, m, 6, 4)).collect();
        assert_eq!(rr, [2, 3, 0, 1, 2, 3], "users 6..12 dealt in order");
    }

    #[test]
    fn url_lists_parse_and_refuse_repeats() {
        let urls = |s: &[&str]| s.iter().map(|u| u.to_string()).collect::<Vec<_>>();
        let t = parse_urls(&urls(&["ws://127.0.0.1:1/ws", "127.0.0.1:2", " 127.0.0.1:3"])).unwrap();
        assert_eq!(t.iter().map(|t| t.addr.port()).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(parse_urls(&urls(&["127.0.0.1:1", "ws://127.0.0.1:1"])).is_err());
        assert!(parse_urls(&[]).is_err());
        assert!(parse_urls(&urls(&["127.0.0.1:1", "nohostport"])).is_err());
    }
}
