//! Gateway nodes and their monthly cost against concurrent users, as a
//! hand-written SVG: the target scaled from 5% to 100% (users, connections
//! and messages in proportion), planned at each step.
//!
//! Three lines: the gateway nodes planned (N+1 included), and the two
//! bounds they come from (connections, CPU at the p99 target), so the plot
//! shows which one decides at each size. The right axis reads the nodes
//! as cost: nodes x `node_cost_per_month`.

use std::fmt::Write as _;

use super::{
    inputs::PlanInput,
    model,
    numfmt::n,
    target::{Node, Target},
};

const STEPS: u32 = 20;
const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 100.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;

/// One planned size.
struct Point {
    concurrent: f64,
    nodes: f64,
    by_conns: f64,
    by_cpu: f64,
}

/// One line of the plot: its legend, colour, dash pattern and value.
type Series = (&'static str, &'static str, &'static str, fn(&Point) -> f64);

/// Plan the target at each step and draw the SVG.
pub(crate) fn render(input: &PlanInput, target: &Target, node: &Node) -> anyhow::Result<String> {
    let mut points = Vec::new();
    for step in 1..=STEPS {
        let scaled = target.scaled(f64::from(step) / f64::from(STEPS));
        let plan = model::plan(input, &scaled, node)?;
        let get = |key: &str| plan.value(key).ok_or_else(|| anyhow::anyhow!("the plan has no {key}"));
        points.push(Point {
            concurrent: scaled.concurrent,
            nodes: get("gateway_nodes")?,
            by_conns: get("nodes_by_connections")?,
            by_cpu: get("nodes_by_cpu")?,
        });
    }
    let cost = input.figures.node_cost_per_month.value;
    let max_x = target.concurrent;
    let highest = points.iter().map(|p| p.nodes.max(p.by_conns).max(p.by_cpu)).fold(1.0, f64::max);
    let y_step = tick_step(highest * 1.05 / 5.0);
    let max_y = y_step * 5.0;
    let x = |v: f64| LEFT + v / max_x * (WIDTH - LEFT - RIGHT);
    let y = |v: f64| HEIGHT - BOTTOM - v / max_y * (HEIGHT - TOP - BOTTOM);

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="25" text-anchor="middle" font-size="16">gateway nodes and cost per month vs concurrent users ({} cores, {} GiB nodes)</text>"#,
        WIDTH / 2.0,
        n(node.cores),
        n(node.memory_gib)
    );
    // Axes and ticks.
    let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP);
    let _ = writeln!(s, r#"<path d="M{x0},{y1} V{y0} H{x1} V{y1}" fill="none" stroke="black"/>"#);
    for i in 0..=5 {
        let v = max_x * f64::from(i) / 5.0;
        let _ = writeln!(
            s,
            r#"<line x1="{0:.1}" y1="{y0}" x2="{0:.1}" y2="{1}" stroke="black"/><text x="{0:.1}" y="{2}" text-anchor="middle">{3}</text>"#,
            x(v),
            y0 + 5.0,
            y0 + 20.0,
            n(v / 1e6)
        );
        let nodes = y_step * f64::from(i);
        let _ = writeln!(
            s,
            r#"<line x1="{0}" y1="{1:.1}" x2="{x0}" y2="{1:.1}" stroke="black"/><text x="{2}" y="{3:.1}" text-anchor="end">{4}</text><line x1="{x1}" y1="{1:.1}" x2="{5}" y2="{1:.1}" stroke="black"/><text x="{6}" y="{3:.1}">${7}k</text>"#,
            x0 - 5.0,
            y(nodes),
            x0 - 8.0,
            y(nodes) + 4.0,
            n(nodes.round()),
            x1 + 5.0,
            x1 + 8.0,
            n((nodes * cost / 1e3).round())
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">concurrent users (millions)</text>"#,
        (x0 + x1) / 2.0,
        HEIGHT - 15.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(20,{0}) rotate(-90)" text-anchor="middle">gateway nodes</text><text transform="translate({1},{0}) rotate(90)" text-anchor="middle">cost per month (nodes x ${2})</text>"#,
        (y0 + y1) / 2.0,
        WIDTH - 25.0,
        n(cost)
    );
    // Lines: the plan, then its two bounds.
    let series: [Series; 3] = [
        ("gateway nodes (N+1)", "#1f77b4", "", |p| p.nodes),
        ("bound: connections", "#2ca02c", r#" stroke-dasharray="6,4""#, |p| p.by_conns),
        ("bound: CPU at the p99 target", "#d62728", r#" stroke-dasharray="2,3""#, |p| p.by_cpu),
    ];
    for (i, (label, color, dash, value)) in series.iter().enumerate() {
        let path: Vec<String> = points.iter().map(|p| format!("{:.1},{:.1}", x(p.concurrent), y(value(p)))).collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
            path.join(" ")
        );
        let ly = y1 + 15.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{0}" y1="{ly}" x2="{1}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/><text x="{2}" y="{3}">{label}</text>"#,
            x0 + 15.0,
            x0 + 45.0,
            x0 + 52.0,
            ly + 4.0
        );
    }
    let _ = writeln!(s, "</svg>");
    Ok(s)
}

/// The smallest 1, 2 or 5 x 10^k at least `raw`: round axis ticks.
fn tick_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.max(1.0).log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude)
}

#[cfg(test)]
mod tests {
    use super::tick_step;

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(177.0), 200.0);
        assert_eq!(tick_step(101.0), 200.0);
        assert_eq!(tick_step(100.0), 100.0);
        assert_eq!(tick_step(3.2), 5.0);
        assert_eq!(tick_step(0.3), 1.0);
    }
}
