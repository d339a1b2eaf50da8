//! The `chatgw` command: run a gateway, mint a token, revoke a user's
//! sessions, chat from a terminal, check a stopped gateway's store, or
//! prepare a remote store.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use chatgw_gateway::{
    auth::{unix_now, TokenKey},
    config::{self, HumanDuration, ServeArgs},
    drain::DrainPlan,
    store, Server,
};
use chatgw_protocol::{DeviceName, UserId};
use clap::{Parser, Subcommand};

mod chat;
mod chat_media;
mod check;
mod push_cmd;
mod revoke_cmd;
mod route_cmd;

#[derive(Parser, Debug)]
#[command(
    name = "chatgw",
    version,
    about = "A thread-per-core WebSocket chat gateway with durable messaging, receipts and offline sync."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway (embedded store under --data by default, or --store postgres://... or cassandra://...; metrics on --admin-listen).
    Serve(Box<ServeArgs>),
    /// Print a token (HS256 JWT) for a user, signed with the gateway's secret.
    Token(TokenArgs),
    /// Revoke a user's sessions, or one device's (--device): a running gateway (its --admin listener) closes those connections with 4004 and refuses their tokens issued before now; exit 1 unless it answers 200.
    Revoke(revoke_cmd::RevokeArgs),
    /// Chat from a terminal: type a line to send it; incoming messages and receipts are printed.
    Chat(chat::ChatArgs),
    /// Verify a store (references, ids, idempotency keys, marks, groups): a stopped gateway's --data, or --store postgres://...; exit 1 on any violation.
    Check(check::CheckArgs),
    /// Notify devices of messages they did not get live: a member of a Kafka consumer group reading --events.
    Push(Box<push_cmd::PushArgs>),
    /// Print the node of --nodes a user's connections go to when the balancer routes by user (jump consistent hash of the user id; docs/DEPLOY.md).
    Route(route_cmd::RouteArgs),
    /// Manage the message store.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Subcommand, Debug)]
enum StoreCommand {
    /// Create, complete or migrate the schema of the store --store names (a PostgreSQL database); safe to run again.
    Init(StoreInitArgs),
}

#[derive(clap::Args, Debug)]
struct StoreInitArgs {
    /// The store: `postgres://user[:password]@host[:port]/database` or `cassandra://host[:port],.../keyspace[?replication=simple:N|network:dc:N,...]` (`embedded` needs no init).
    #[arg(long, env = "CHATGW_STORE", hide_env_values = true)]
    store: String,
}

#[derive(clap::Args, Debug)]
struct TokenArgs {
    /// Numeric user id.
    #[arg(long)]
    user: u64,
    /// Lifetime of the token.
    #[arg(long, default_value = "24h")]
    ttl: HumanDuration,
    /// Name the device the token is for (claim `dev`: 1 to 32 bytes of
    /// A-Z a-z 0-9 . _ -), so it can be listed and logged out on its own.
    #[arg(long, value_parser = device_name)]
    device: Option<DeviceName>,
    /// Signing secret [default: the one in <data>/secret].
    #[arg(long, env = "CHATGW_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Data directory holding the generated secret.
    #[arg(long, env = "CHATGW_DATA", default_value = config::DEFAULT_DATA)]
    data: PathBuf,
    /// The gateway's TOML file: sign with its `signing_key` of `[token_keys]` (the token carries that `kid`), else its secret.
    #[arg(long, env = "CHATGW_CONFIG")]
    config: Option<PathBuf>,
}

/// A `--device` argument.
pub(crate) fn device_name(s: &str) -> Result<DeviceName, String> {
    DeviceName::new(s).ok_or_else(|| format!("device {}", chatgw_protocol::DEVICE_NAME_RULE))
}

/// The secret `serve` would use, for commands that sign tokens.
pub(crate) fn resolve_secret(secret: Option<String>, data: &std::path::Path) -> anyhow::Result<String> {
    match secret {
        Some(s) => Ok(s),
        None => Ok(config::load_or_create_secret(data)?),
    }
}

/// Errors are printed on one line, causes joined by `: `, and exit 1.
fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatgw: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, joined by `: `. Many errors
/// (database drivers' above all) already print their source inside their
/// own message; a cause whose text is already on the line is left out, so
/// the line says each thing once.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Token(t) => {
            let key = match t.config {
                Some(file) => {
                    let args =
                        ServeArgs { config: Some(file), secret: t.secret, data: Some(t.data), ..Default::default() };
                    chatgw_gateway::reload::token_keys(&args.resolve()?).signer().clone()
                }
                None => TokenKey::new(resolve_secret(t.secret, &t.data)?.as_bytes()),
            };
            let (now, exp) = (unix_now(), unix_now() + t.ttl.0.as_secs());
            match t.device {
                Some(device) => println!("{}", key.mint_device(UserId(t.user), device, now, exp)),
                None => println!("{}", key.mint(UserId(t.user), exp)),
            }
            Ok(())
        }
        Command::Revoke(args) => revoke_cmd::run(&args),
        Command::Chat(args) => chat::run(args),
        Command::Route(args) => route_cmd::run(&args),
        Command::Check(args) => {
            if !check::run(&args)? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Push(args) => {
            init_logs();
            push_cmd::run(*args)
        }
        Command::Store(StoreCommand::Init(args)) => {
            println!("{}", store::init(&args.store.parse()?)?);
            Ok(())
        }
    }
}

/// Log to stderr, filtered by `CHATGW_LOG`.
fn init_logs() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CHATGW_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,fjall=warn,lsm_tree=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logs();
    let config = args.clone().resolve()?;
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]).context("installing signal handlers")?;
    let plan = DrainPlan { delay: config.drain_delay, period: config.drain_period };
    let data = config.data.clone();
    let workers = config.workers;
    let store_url = config.store.clone();
    let proxy_from =
        config.proxy_protocol.then(|| config.proxy_from.0.iter().map(|c| c.to_string()).collect::<Vec<_>>());
    let handle = Server::start(config)?;
    let addr = handle.addr();
    let io = handle.io_driver().name();
    tracing::info!(%addr, workers, io, "listening: ws://{addr}/ws  (health: http://{addr}/healthz)");
    match handle.admin_addr() {
        Some(admin) => tracing::info!(%admin, "admin: http://{admin}/metrics, /healthz, /readyz, POST /admin/drain"),
        None => tracing::info!("admin listener off (--admin-listen off): no /metrics endpoint"),
    }
    if let Some(media) = handle.media_addr() {
        tracing::info!(%media, "media: http://{media}/media/ (signed URLs only)");
    }
    match store_url.scheme() {
        "embedded" => {
            tracing::info!(data = %data.display(), "embedded store in {}", store::embedded_dir(&data).display())
        }
        _ => tracing::info!(store = %store_url, "store"),
    }
    if let Some(from) = proxy_from {
        tracing::info!(from = %from.join(","), "PROXY protocol: every connection starts with a header from these balancers; others are closed");
    }
    if let Some((link, epoch)) = handle.fleet_node() {
        tracing::info!(%link, epoch, "node of a fleet: links on {link}");
    }
    tracing::info!("mint a token: chatgw token --user 1 --data {}", data.display());
    let switch = handle.drain_switch();
    let on_signal = switch.clone();
    let reloader = handle.reloader();
    std::thread::Builder::new()
        .name("chatgw-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal != SIGHUP {
                    tracing::info!(signal, "signal: draining");
                    on_signal.request();
                    continue;
                }
                // The flags and environment stay as they were; the file is read again.
                match args.clone().resolve() {
                    Ok(config) => {
                        reloader.reload(&config);
                        tracing::info!(keys = config.token_keys.len(), signing = ?config.signing_key, "SIGHUP: limits and token keys reloaded");
                    }
                    Err(e) => tracing::error!(error = %e, "SIGHUP: configuration refused; keeping the current one"),
                }
            }
        })
        .context("starting the signal thread")?;
    switch.wait();
    tracing::info!(
        delay = ?plan.delay,
        period = ?plan.period,
        "draining: /readyz 503; no new connections after the delay; closing connections with 1012 in waves over the period"
    );
    let started = std::time::Instant::now();
    handle.drain(plan);
    tracing::info!(took = ?started.elapsed().max(Duration::ZERO), "stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[derive(Debug, thiserror::Error)]
    #[error("connect failed: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn a_cause_already_in_its_parents_message_is_printed_once() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = anyhow::Error::new(Repeats(refused)).context("opening the store x");
        assert_eq!(one_line(&e), "opening the store x: connect failed: connection refused");
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(one_line(&plain), "outer: inner");
    }
}
