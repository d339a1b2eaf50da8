//! `loadgen`: a load generator for the chatgw gateway.
//!
//! Why a separate, hand-rolled client rather than `chatgw-client`: that
//! client is blocking and built on tungstenite, a thread (and tens of
//! kilobytes) per connection, fine for tests and a terminal chat but not for
//! holding ~19,000 connections from one process. Here each thread runs one
//! mio event loop over thousands of non-blocking sockets, speaking just
//! enough HTTP and WebSocket to be a well-behaved client (masked frames,
//! pongs, close handshakes), and measures from outside what the gateway
//! promises: connections held and what each costs it (`connect`), and
//! messages acked, delivered and receipted, none lost or duplicated, with
//! coordinated-omission-free latencies (`one-to-one`), group fan-out
//! (`group`), recovery from a mass disconnect (`reconnect-storm`), and
//! nothing acked lost or duplicated while the gateway itself is killed and
//! restarted again and again (`soak`, driven by `scripts/crash-soak.sh`),
//! and a fleet of gateways losing one node (`failover`). Every scenario
//! takes a list of gateway URLs (`--url a,b,c`), a fleet's nodes.
//! `disk` needs no gateway: it measures what the disk under the store
//! allows a durable acknowledgement, the floor under every latency above.
//! `plan` opens no connection either: it turns the benchmarks' figures
//! into the fleet a target load needs (docs/CAPACITY.md).
//! Connections can be spread over worker processes (`--procs`) when one
//! process's descriptor limit is not enough.
//!
//! Every run is bounded: it stops by itself after its ramp, hold or
//! duration and drain, closes its connections, and a `--timeout` safety net
//! ends it regardless. It only ever connects to the address it is given.
//!
//! The sources are grouped by job: `conn` (sockets, upgrade, framing, the
//! event loop), `scenarios` (what each subcommand does with its
//! connections), `report` (figures and outputs), `procs` (`--procs`),
//! `disk`, which opens no connection at all, and `plan`.

mod cli;
mod conn;
mod disk;
mod plan;
mod procs;
mod report;
mod scenarios;

use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};

fn main() -> ExitCode {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let outcome = match cli.command {
        cli::Command::Connect(args) => scenarios::connect::run(args),
        cli::Command::OneToOne(args) => scenarios::one_to_one::run(args),
        cli::Command::Group(args) => scenarios::group::run(args),
        cli::Command::ReconnectStorm(args) => scenarios::storm::run(args),
        cli::Command::Soak(args) => scenarios::soak::run(args),
        cli::Command::Failover(args) => scenarios::failover::run(args),
        cli::Command::Disk(args) => disk::run(args),
        cli::Command::Plan(args) => plan::run(args),
        cli::Command::PlanInput(args) => plan::collect::run(args),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Parse the command line, with each scenario's `--check` and `--hist`
/// names in its `--help` (taken from the same tables the checks use).
fn parse_cli() -> Result<cli::Cli, clap::Error> {
    let mut cmd = cli::Cli::command();
    for (name, figures) in [
        ("connect", &scenarios::connect::FIGURES),
        ("one-to-one", &scenarios::one_to_one::FIGURES),
        ("group", &scenarios::group::FIGURES),
        ("reconnect-storm", &scenarios::storm::FIGURES),
        ("soak", &scenarios::soak::FIGURES),
        ("failover", &scenarios::failover::FIGURES),
        ("disk", &disk::FIGURES),
    ] {
        let help = format!(
            "Names for --check: {}.\nLatencies for --hist NAME=FILE: {} (plain --hist FILE: {}).",
            figures.names(),
            figures.latencies.iter().map(|(l, _)| *l).collect::<Vec<_>>().join(", "),
            figures.main
        );
        cmd = cmd.mut_subcommand(name, |c| c.after_help(help));
    }
    let matches = cmd.try_get_matches()?;
    cli::Cli::from_arg_matches(&matches)
}
