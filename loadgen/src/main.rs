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
//! coordinated-omission-free latencies (`one-to-one`).
//!
//! Every run is bounded: it stops by itself after its ramp, hold or
//! duration and drain, closes its connections, and a `--timeout` safety net
//! ends it regardless. It only ever connects to the address it is given.

mod cli;
mod conn;
mod connect;
mod driver;
mod event;
mod limits;
mod net;
mod one_to_one;
mod probe;
mod progress;
mod ramp;
mod report;
mod run;
mod schedule;
mod shared;
mod stats;
mod token;
mod traffic;
mod upgrade;
mod ws;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let outcome = match cli.command {
        cli::Command::Connect(args) => connect::run(args),
        cli::Command::OneToOne(args) => one_to_one::run(args),
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
