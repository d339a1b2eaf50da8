//! `chatgw route`: the node a user's connections go to when the balancer
//! routes by user, so operators and the balancer's script agree
//! (docs/DEPLOY.md, "Routing by user").

use anyhow::bail;
use chatgw_gateway::affinity;

#[derive(clap::Args, Debug)]
pub(crate) struct RouteArgs {
    /// Numeric user id.
    #[arg(long)]
    user: u64,
    /// The fleet's nodes, comma-separated, in the balancer's order (append new ones at the end).
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<String>,
}

pub(crate) fn run(args: &RouteArgs) -> anyhow::Result<()> {
    let nodes: Vec<&str> = args.nodes.iter().map(|n| n.trim()).filter(|n| !n.is_empty()).collect();
    match affinity::node_for(args.user, &nodes) {
        Some(node) => println!("{node}"),
        None => bail!("--nodes names no node"),
    }
    Ok(())
}
