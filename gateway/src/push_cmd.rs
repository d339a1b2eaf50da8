//! `chatgw push`: the push worker as a member of a Kafka consumer group.
//!
//! It reads `<PREFIX>.events`, waits `--grace` for each (user,
//! conversation), asks the gateways (`--gateways`) which devices are live,
//! and hands one notification per device with a push target that is not
//! live to the provider. Offsets are committed only up to the first event
//! not yet decided (docs/PUSH-WORKER.md). Run as many as the topic has
//! partitions: the group shares the partitions among them.
//!
//! The worker itself is [`run_with`], generic over where push targets live
//! and who sends; `run` builds the Kafka source and the gateways' liveness
//! and refuses to start until a store of push targets and a provider are
//! built in (`--store`, `--push`).

use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener},
    sync::{atomic::AtomicBool, Arc},
    time::Duration,
};

use anyhow::{bail, Context as _};
use chatgw_push_worker::{
    gateways::Gateways,
    kafka::{KafkaEvents, KafkaSource, StartFrom},
    NotificationSender, PushMetrics, PushTargets, SystemClock, Worker, WorkerConfig,
};
use chatgw_units::HumanDuration;

#[derive(clap::Args, Debug)]
pub(crate) struct PushArgs {
    /// The event topics: `kafka://host:port[,host:port...]/PREFIX` (reads `<PREFIX>.events`).
    #[arg(long, env = "CHATGW_EVENTS")]
    events: String,
    /// The consumer group; every worker of the group shares the partitions.
    #[arg(long, default_value = "chatgw-push")]
    group: String,
    /// How long to wait for more messages to a conversation (and for the
    /// user to read it) before notifying.
    #[arg(long, default_value = "2s")]
    grace: HumanDuration,
    /// Where a group that has never committed starts: `latest` (from now
    /// on) or `earliest` (every retained event may notify).
    #[arg(long, default_value = "latest", value_parser = start_from)]
    from: StartFrom,
    /// The gateways' admin listeners, `http://host:port,...`: a device is
    /// live if any of them lists it; one that does not answer lists none.
    #[arg(long, env = "CHATGW_GATEWAYS", default_value = "")]
    gateways: String,
    /// How long a gateway may take to answer.
    #[arg(long, default_value = "1s")]
    gateway_timeout: HumanDuration,
    /// The store holding push targets (as `serve --store`).
    #[arg(long, env = "CHATGW_STORE", hide_env_values = true)]
    store: Option<String>,
    /// A push provider (`webhook=URL`, ...).
    #[arg(long)]
    push: Vec<String>,
    /// Serve `/metrics` here (`off` for none).
    #[arg(long, default_value = "127.0.0.1:9301")]
    admin_listen: String,
}

fn start_from(s: &str) -> Result<StartFrom, String> {
    match s {
        "earliest" => Ok(StartFrom::Earliest),
        "latest" => Ok(StartFrom::Latest),
        _ => Err("earliest or latest".into()),
    }
}

/// Check the arguments, then refuse to run without targets and a provider.
pub(crate) fn run(args: PushArgs) -> anyhow::Result<()> {
    let _events: KafkaEvents = args.events.parse()?;
    let _gateways = Gateways::parse(&args.gateways, args.gateway_timeout.0)?;
    let _admin = admin_addr(&args.admin_listen)?;
    bail!(
        "push targets (--store {}) and providers (--push {:?}) are not built into this chatgw yet",
        args.store.as_deref().unwrap_or("none"),
        args.push
    )
}

/// Run the worker until SIGTERM or SIGINT, with `targets` and `sender`.
#[allow(dead_code)] // Called by `run` once targets and providers are built in.
pub(crate) fn run_with<T, N>(args: PushArgs, targets: T, sender: N) -> anyhow::Result<()>
where
    T: PushTargets + Send + 'static,
    N: NotificationSender<T::Target> + Send + 'static,
{
    let events: KafkaEvents = args.events.parse()?;
    let gateways = Gateways::parse(&args.gateways, args.gateway_timeout.0)?;
    if gateways.is_empty() {
        tracing::warn!("no --gateways: every device counts as not live, so every message notifies");
    }
    let metrics = Arc::new(PushMetrics::new());
    if let Some(addr) = admin_addr(&args.admin_listen)? {
        serve_metrics(addr, metrics.clone())?;
    }
    let source = KafkaSource::join(&events, &args.group, args.from).context("joining the consumer group")?;
    tracing::info!(topic = %events.topic(), group = %args.group, grace = ?args.grace.0, "push worker reading");
    let config = WorkerConfig { grace: args.grace.0, ..WorkerConfig::default() };
    let mut worker = Worker::new(source, gateways, targets, sender, SystemClock, metrics, config);
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone()).context("installing signal handlers")?;
    }
    worker.run(&stop);
    tracing::info!(pending = worker.planner().pending(), "stopped; pending notifications go to the next reader");
    Ok(())
}

fn admin_addr(s: &str) -> anyhow::Result<Option<SocketAddr>> {
    match s {
        "off" => Ok(None),
        _ => Ok(Some(s.parse().with_context(|| format!("--admin-listen {s}"))?)),
    }
}

/// `GET /metrics` on a thread of its own; any other path is 404.
fn serve_metrics(addr: SocketAddr, metrics: Arc<PushMetrics>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| format!("binding --admin-listen {addr}"))?;
    std::thread::Builder::new().name("push-admin".into()).spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // The rest of the head, so closing does not reset the connection.
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            let (status, body) = match line.split(' ').nth(1) {
                Some("/metrics") => ("200 OK", metrics.render(false)),
                Some("/healthz") => ("200 OK", "ok\n".to_owned()),
                _ => ("404 Not Found", String::new()),
            };
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    })?;
    Ok(())
}
