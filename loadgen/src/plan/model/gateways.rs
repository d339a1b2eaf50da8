//! Gateway nodes: connections per node, CPU at the p99 target, and the
//! N+1 headroom sized for a lost node's reconnect storm.

use super::{Builder, Ctx, Section};
use crate::plan::numfmt::n;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The section, and the gateway nodes it plans (the other sections need
/// them).
pub(super) fn section(c: &Ctx<'_>) -> (Section, f64) {
    let Ctx { f, target, node, run, measured_cores, cross, g, direct_rate, group_rate, connect_rate, .. } = *c;
    let g_meas = f.group_size_measured.value;
    let mut b = Builder::new();
    let cpu_share = b.put(
        "cpu_share_at_p99",
        "gateway CPU share of the box at the p99 target",
        run.gateway_us_per_msg * run.rate / (measured_cores * 1e6),
        "",
        format!(
            "gateway_us_per_msg x rate / (cores_measured x 1e6) = {} x {} / ({} x 1e6)",
            n(run.gateway_us_per_msg),
            n(run.rate),
            n(measured_cores)
        ),
    );
    let mem_bound = b.put(
        "conns_memory_bound",
        "connections a node's memory holds",
        (node.memory_gib * GIB / f.box_bytes_per_connection.value).floor(),
        "conns",
        format!(
            "floor(memory_gib x 2^30 / box_bytes_per_connection) = floor({} x 2^30 / {})",
            n(node.memory_gib),
            n(f.box_bytes_per_connection.value)
        ),
    );
    let core_bound = b.put(
        "conns_core_bound",
        "connections a node's cores hold (as measured per core)",
        node.cores * f.connections_per_core.value,
        "conns",
        format!("cores x connections_per_core = {} x {}", n(node.cores), n(f.connections_per_core.value)),
    );
    let per_node = b.put(
        "conns_per_node",
        "connections per node",
        (f.safety_fraction.value * mem_bound.min(core_bound)).floor(),
        "conns",
        format!(
            "floor(safety_fraction x min(memory bound, core bound)) = floor({} x min({}, {}))",
            n(f.safety_fraction.value),
            n(mem_bound),
            n(core_bound)
        ),
    );
    b.put(
        "direct_msgs_per_node",
        "one-to-one messages/s a node carries at the p99 target (no groups, no connects)",
        node.cores * cpu_share * 1e6 / (run.gateway_us_per_msg * cross),
        "msg/s",
        format!(
            "cores x cpu_share x 1e6 / (gateway_us_per_msg x cross_node_cpu_factor) = {} x {} x 1e6 / ({} x {})",
            n(node.cores),
            n(cpu_share),
            n(run.gateway_us_per_msg),
            n(cross)
        ),
    );
    let direct_cpu = b.put(
        "direct_cpu_cores",
        "CPU for one-to-one messages (cores busy)",
        direct_rate * run.gateway_us_per_msg * cross / 1e6,
        "cores",
        format!(
            "direct msg/s x gateway_us_per_msg x cross_node_cpu_factor / 1e6 = {} x {} x {} / 1e6",
            n(direct_rate),
            n(run.gateway_us_per_msg),
            n(cross)
        ),
    );
    let group_cpu = b.put(
        "group_cpu_cores",
        "CPU for group fan-out (cores busy)",
        group_rate * f.group_cpu_us_per_message.value * (g / g_meas) * cross / 1e6,
        "cores",
        format!(
            "group msg/s x group_cpu_us_per_message x (group_size / group_size_measured) x cross_node_cpu_factor / 1e6 = {} x {} x ({} / {}) x {} / 1e6",
            n(group_rate),
            n(f.group_cpu_us_per_message.value),
            n(g),
            n(g_meas),
            n(cross)
        ),
    );
    let connect_cpu = b.put(
        "connect_cpu_cores",
        "CPU for connects (cores busy)",
        connect_rate * f.connect_cpu_us.value / 1e6,
        "cores",
        format!("connects/s x connect_cpu_us / 1e6 = {} x {} / 1e6", n(connect_rate), n(f.connect_cpu_us.value)),
    );
    let total_cpu = b.put(
        "total_cpu_cores",
        "gateway CPU in all (cores busy)",
        direct_cpu + group_cpu + connect_cpu,
        "cores",
        format!("{} + {} + {}", n(direct_cpu), n(group_cpu), n(connect_cpu)),
    );
    let by_conns = b.put(
        "nodes_by_connections",
        "nodes for the connections",
        (target.concurrent / per_node).ceil(),
        "nodes",
        format!("ceil(concurrent / conns_per_node) = ceil({} / {})", n(target.concurrent), n(per_node)),
    );
    let by_cpu = b.put(
        "nodes_by_cpu",
        "nodes for the CPU at the p99 target",
        (total_cpu / (node.cores * cpu_share)).ceil(),
        "nodes",
        format!(
            "ceil(total CPU / (cores x cpu_share)) = ceil({} / ({} x {}))",
            n(total_cpu),
            n(node.cores),
            n(cpu_share)
        ),
    );
    let base = b.put(
        "nodes_base",
        "nodes before headroom",
        by_conns.max(by_cpu),
        "nodes",
        format!("max(by connections, by CPU) = max({}, {})", n(by_conns), n(by_cpu)),
    );
    let storm = Storm {
        total_cpu,
        concurrent: target.concurrent,
        window: f.storm_window_secs.value,
        connect_us: f.connect_cpu_us.value,
        ceiling: node.cores * f.storm_cpu_ceiling.value,
    };
    let nodes = storm.nodes(base);
    let survivor = storm.survivor_cpu(nodes);
    b.put(
        "storm_reconnects_per_survivor_per_sec",
        "reconnects/s per survivor after losing a node",
        target.concurrent / nodes / (nodes - 1.0) / f.storm_window_secs.value,
        "/s",
        format!(
            "(concurrent / N) / (N - 1) / storm_window_secs = ({} / {}) / {} / {}",
            n(target.concurrent),
            n(nodes),
            n(nodes - 1.0),
            n(f.storm_window_secs.value)
        ),
    );
    let ceiling = b.put(
        "storm_cpu_ceiling_cores",
        "CPU a survivor may use during the storm (cores)",
        storm.ceiling,
        "cores",
        format!("cores x storm_cpu_ceiling = {} x {}", n(node.cores), n(f.storm_cpu_ceiling.value)),
    );
    b.put(
        "storm_survivor_cpu_cores",
        "a survivor's CPU during the storm (cores busy; at most the line above)",
        survivor,
        "cores",
        format!(
            "total CPU / (N - 1) + reconnects/s per survivor x connect_cpu_us / 1e6 = {} / {} + {} x {} / 1e6",
            n(total_cpu),
            n(nodes - 1.0),
            n(target.concurrent / nodes / (nodes - 1.0) / f.storm_window_secs.value),
            n(f.connect_cpu_us.value)
        ),
    );
    b.put(
        "conns_per_survivor",
        "connections per survivor after losing a node (at most conns_per_node)",
        target.concurrent / (nodes - 1.0),
        "conns",
        format!("concurrent / (N - 1) = {} / {}", n(target.concurrent), n(nodes - 1.0)),
    );
    let gateway_nodes = b.put(
        "gateway_nodes",
        "gateway nodes (N+1: survives losing one node and its reconnect storm)",
        nodes,
        "nodes",
        format!(
            "smallest N from nodes_base + 1 ({}) up whose survivors' storm CPU is at most {} cores",
            n(base + 1.0),
            n(ceiling)
        ),
    );
    b.put(
        "gateway_cost_per_month",
        "gateway fleet cost per month",
        gateway_nodes * f.node_cost_per_month.value,
        "$/month",
        format!("N x node_cost_per_month = {} x {}", n(gateway_nodes), n(f.node_cost_per_month.value)),
    );
    (b.done("Gateway nodes"), gateway_nodes)
}

/// The N+1 rule with the reconnect storm: after one of N nodes is lost,
/// its `concurrent / N` connections reconnect to the N - 1 survivors
/// within `window` seconds, while the survivors also carry the whole
/// steady load. A survivor's CPU is then
/// `total_cpu / (N - 1) + concurrent / (N (N - 1)) / window x connect_us / 1e6`,
/// which must stay under `ceiling` cores. Both terms fall as N grows, so
/// the smallest N from `base + 1` up that satisfies it is the answer.
/// (`base + 1` alone keeps the survivors' connections within a node's
/// capacity: `concurrent / (N - 1) <= concurrent / base`.)
struct Storm {
    total_cpu: f64,
    concurrent: f64,
    window: f64,
    connect_us: f64,
    ceiling: f64,
}

impl Storm {
    fn survivor_cpu(&self, nodes: f64) -> f64 {
        let survivors = nodes - 1.0;
        self.total_cpu / survivors + self.concurrent / nodes / survivors / self.window * self.connect_us / 1e6
    }

    fn nodes(&self, base: f64) -> f64 {
        let mut nodes = (base + 1.0).max(2.0);
        // Bounded: the storm term falls as 1/N^2 and the steady term as
        // 1/N, so a million steps past any sane fleet is a wrong input.
        for _ in 0..1_000_000 {
            if self.survivor_cpu(nodes) <= self.ceiling {
                return nodes;
            }
            nodes += 1.0;
        }
        nodes
    }
}
