//! `chatgw push`: the push worker as a member of a Kafka consumer group.
//!
//! It reads `<PREFIX>.events`, waits `--grace` for each (user,
//! conversation), asks the gateways (`--gateways`) which devices are live,
//! and hands one notification per device with a push target that is not
//! live to the provider. Offsets are committed only up to the first event
//! not yet decided (docs/EVENTS.md, "Push notifications"). Run as many as
//! the topic has partitions: the group shares the partitions among them.
//!
//! Push targets are read from the gateways' store (`--store`, PostgreSQL or
//! Cassandra: the embedded store belongs to one running gateway, which runs
//! the same worker itself with `serve --push`); providers are `--push`
//! specs (docs/PUSH.md). The worker itself is [`run_with`], generic over
//! where push targets live and who sends.

use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener},
    sync::{atomic::AtomicBool, Arc},
    time::Duration,
};

use anyhow::{bail, Context as _};
use chatgw_gateway::{
    push::{render_provider_stats, ProviderSender, StoreTargets},
    store::{self, StoreUrl},
    Config,
};
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
    /// The gateways' store, holding push targets: `postgres://...` or `cassandra://...` (as `serve --store`).
    #[arg(long, env = "CHATGW_STORE", hide_env_values = true)]
    store: Option<StoreUrl>,
    /// A push provider, repeatable: `webhook:url=URL,secret-file=PATH`, `apns:key-file=PATH,key-id=ID,team-id=ID,topic=BUNDLE`,
    /// `fcm:service-account=PATH`, and optionally `retry:...`, `tls:ca-file=PATH` (docs/PUSH.md).
    #[arg(long, value_name = "SPEC")]
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

/// Check the arguments, open the store and the providers, and run the
/// worker until SIGTERM or SIGINT.
pub(crate) fn run(args: PushArgs) -> anyhow::Result<()> {
    let _events: KafkaEvents = args.events.parse()?;
    let _gateways = Gateways::parse(&args.gateways, args.gateway_timeout.0)?;
    let _admin = admin_addr(&args.admin_listen)?;
    let sender = ProviderSender::from_specs(&args.push).context("--push")?;
    let store = open_store(args.store.as_ref())?;
    let stats = sender.stats();
    let provider_metrics = Box::new(move || render_provider_stats(&stats));
    run_with(args, StoreTargets::new(store), sender, provider_metrics)
}

/// The store of push targets, which the gateways share.
fn open_store(url: Option<&StoreUrl>) -> anyhow::Result<Arc<dyn chatgw_storage::MessageStore>> {
    let Some(url) = url else {
        bail!(
            "--store is needed: the gateways' store, which holds the push targets (postgres://... or cassandra://...)"
        )
    };
    if url.scheme() == "embedded" {
        bail!(
            "--store embedded cannot be shared with a running gateway: run the push worker inside it \
             (`chatgw serve --push SPEC`), or give the gateways' postgres:// or cassandra:// store"
        );
    }
    // `serve`'s opener, with a small pool: the worker asks from one thread.
    let mut config = Config::new(SocketAddr::from(([127, 0, 0, 1], 0)), Default::default(), String::new());
    config.store = url.clone();
    config.readers = 1;
    Ok(store::open(&config)?)
}

/// Text appended to `/metrics` after the worker's own (the providers'
/// counters).
pub(crate) type ExtraMetrics = Box<dyn Fn() -> String + Send>;

/// Run the worker until SIGTERM or SIGINT, with `targets` and `sender`.
pub(crate) fn run_with<T, N>(args: PushArgs, targets: T, sender: N, extra_metrics: ExtraMetrics) -> anyhow::Result<()>
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
        serve_metrics(addr, metrics.clone(), extra_metrics)?;
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
fn serve_metrics(addr: SocketAddr, metrics: Arc<PushMetrics>, extra: ExtraMetrics) -> anyhow::Result<()> {
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
                Some("/metrics") => ("200 OK", format!("{}{}# EOF\n", metrics.render(true), extra())),
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
