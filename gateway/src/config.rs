//! Gateway settings: defaults, a TOML file, environment variables, flags.
//!
//! Precedence, lowest first: built-in defaults, the `--config` TOML file,
//! `CHATGW_*` environment variables, command-line flags. Every setting has
//! all four forms; the TOML key is the flag name with `-` as `_`.
//!
//! Resolution and validation fail with a [`ConfigError`] that names the
//! file or the setting, so `chatgw serve` can print it as one line and an
//! embedder can tell a bad file from a bad value.

use std::{io, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use clap::Args;
use serde::Deserialize;

use crate::{
    proxy::{Cidr, TrustedProxies},
    store::{StoreUrl, UnknownStore},
};

/// Why settings could not be resolved, or cannot be run with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The `--config` file could not be read.
    #[error("reading config file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The `--config` file is not TOML, has an unknown key or a value of
    /// the wrong form.
    #[error("parsing config file {}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the TOML parser reported (with the line).
        #[source]
        source: toml::de::Error,
    },
    /// `--store` names no known backend.
    #[error(transparent)]
    Store(#[from] UnknownStore),
    /// A setting is outside what the gateway can run with; the message
    /// names the setting and its bounds (`workers must be 1..=256`).
    #[error("{0}")]
    Invalid(String),
    /// `<data>/secret` exists but holds nothing.
    #[error("{} is empty", .0.display())]
    EmptySecret(PathBuf),
    /// The secret could not be created: the data directory, the random
    /// bytes or the secret file.
    #[error("{what} {}", path.display())]
    Secret {
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

fn ensure(ok: bool, why: impl Into<String>) -> Result<(), ConfigError> {
    match ok {
        true => Ok(()),
        false => Err(ConfigError::Invalid(why.into())),
    }
}

pub use chatgw_units::HumanDuration;

/// Where the admin endpoints listen: an address, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminListen {
    /// No admin listener: `/metrics` is only in [`ServerHandle::metrics_text`](crate::ServerHandle::metrics_text).
    Off,
    /// Listen on this address.
    At(SocketAddr),
}

impl FromStr for AdminListen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "off" => Ok(AdminListen::Off),
            a => a.parse().map(AdminListen::At).map_err(|_| format!("`{a}`: expected an IP address and port, or off")),
        }
    }
}

impl<'de> Deserialize<'de> for AdminListen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl From<AdminListen> for Option<SocketAddr> {
    fn from(a: AdminListen) -> Self {
        match a {
            AdminListen::Off => None,
            AdminListen::At(addr) => Some(addr),
        }
    }
}

/// `--admin-listen` of `chatgw serve` when not set: loopback, so metrics
/// are not on the public network unless an operator puts them there.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 8081));

/// Which I/O driver the event loops use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum IoDriver {
    /// io_uring when the kernel allows it, epoll otherwise (the reason is logged).
    #[default]
    Auto,
    /// io_uring, or refuse to start when the kernel does not allow it.
    Uring,
    /// epoll (readiness through mio).
    Epoll,
}

impl IoDriver {
    /// The value `--io` takes.
    pub fn name(self) -> &'static str {
        match self {
            IoDriver::Auto => "auto",
            IoDriver::Uring => "uring",
            IoDriver::Epoll => "epoll",
        }
    }
}

/// Settings of `chatgw serve`, as flags, environment variables or TOML keys.
#[derive(Args, Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML file with any of these settings (keys as flag names with `_`).
    #[arg(long, env = "CHATGW_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "CHATGW_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address of the admin endpoints (GET /metrics, GET /healthz), or `off`; keep it private: /metrics has no authentication [default: 127.0.0.1:8081].
    #[arg(long, env = "CHATGW_ADMIN_LISTEN")]
    pub admin_listen: Option<AdminListen>,
    /// Data directory: the secret, and the embedded store [default: ./data].
    #[arg(long, env = "CHATGW_DATA")]
    pub data: Option<PathBuf>,
    /// Message store: `embedded` (under --data), `postgres://user@host:port/db` or `cassandra://host:port,.../keyspace[?consistency=local_quorum]` (after `chatgw store init`) [default: embedded].
    #[arg(long, env = "CHATGW_STORE")]
    pub store: Option<String>,
    /// Event-loop threads [default: one per core].
    #[arg(long, env = "CHATGW_WORKERS")]
    pub workers: Option<usize>,
    /// JWT signing secret [default: generated once and kept in <data>/secret].
    #[arg(long, env = "CHATGW_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Node id (0-1023) in message ids; unique per node of a cluster [default: 0].
    #[arg(long, env = "CHATGW_NODE_ID")]
    pub node_id: Option<u16>,
    /// Largest WebSocket frame or message accepted, in bytes [default: 131072].
    #[arg(long, env = "CHATGW_MAX_FRAME")]
    pub max_frame: Option<usize>,
    /// Outbound bytes queued for one connection before it is closed as a slow consumer (4000); at least max-frame [default: 1048576].
    #[arg(long, env = "CHATGW_MAX_OUTBOUND")]
    pub max_outbound: Option<usize>,
    /// Idle time after which the server pings a connection [default: 30s].
    #[arg(long, env = "CHATGW_PING_INTERVAL")]
    pub ping_interval: Option<HumanDuration>,
    /// Time to wait for a pong before closing with 4001 [default: 30s].
    #[arg(long, env = "CHATGW_PONG_TIMEOUT")]
    pub pong_timeout: Option<HumanDuration>,
    /// Time allowed from TCP accept to a complete HTTP request [default: 10s].
    #[arg(long, env = "CHATGW_HANDSHAKE_TIMEOUT")]
    pub handshake_timeout: Option<HumanDuration>,
    /// Frames per second one connection may send, sustained [default: 200].
    #[arg(long, env = "CHATGW_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// Frames one connection may send in a burst [default: 400].
    #[arg(long, env = "CHATGW_RATE_BURST")]
    pub rate_burst: Option<u32>,
    /// Most requests committed in one group commit (one fsync) [default: 2048].
    #[arg(long, env = "CHATGW_COMMIT_BATCH")]
    pub commit_batch: Option<usize>,
    /// Commit pipelines preparing, committing and dispatching writes in
    /// parallel, each for its share of the conversations; 1 is one
    /// committer and one writer thread. A PostgreSQL or Cassandra store
    /// always uses 1 [default: one per four cores, 1 to 8].
    #[arg(long, env = "CHATGW_COMMIT_PIPELINES")]
    pub commit_pipelines: Option<usize>,
    /// How long a committer that took only a few requests waits for more before it commits them with one fsync; 0ms commits at once (docs/ARCHITECTURE.md, "Commit window") [default: 1ms].
    #[arg(long, env = "CHATGW_COMMIT_WINDOW")]
    pub commit_window: Option<HumanDuration>,
    /// Threads serving sync and history reads [default: 2].
    #[arg(long, env = "CHATGW_READERS")]
    pub readers: Option<usize>,
    /// Niceness (0-19) of the store's background threads, which flush
    /// memtables and compact; 0 runs them at the gateway's own priority
    /// [default: 19].
    #[arg(long, env = "CHATGW_STORE_BACKGROUND_NICE")]
    pub store_background_nice: Option<i32>,
    /// Most connections this process holds; more are refused with HTTP 503
    /// [default: the open-files limit less 256 for files and the store].
    #[arg(long, env = "CHATGW_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most connections from one source address (IPv6: one /64); more are refused with HTTP 429; 0 = no limit [default: 1024].
    #[arg(long, env = "CHATGW_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// New connections per second from one source address, sustained; more are refused with HTTP 429; 0 = no limit [default: 200].
    #[arg(long, env = "CHATGW_IP_CONNECT_RATE")]
    pub ip_connect_rate: Option<u32>,
    /// New connections one source address may open in a burst [default: 1000].
    #[arg(long, env = "CHATGW_IP_CONNECT_BURST")]
    pub ip_connect_burst: Option<u32>,
    /// Messages per second one user may send over all their devices, sustained; more get `rate_limited`; 0 = no limit [default: 200].
    #[arg(long, env = "CHATGW_USER_SEND_RATE")]
    pub user_send_rate: Option<u32>,
    /// Messages one user may send in a burst [default: 400].
    #[arg(long, env = "CHATGW_USER_SEND_BURST")]
    pub user_send_burst: Option<u32>,
    /// Close connections that send no protocol frame for this long with 4003; 0s = never [default: 0s].
    #[arg(long, env = "CHATGW_IDLE_TIMEOUT")]
    pub idle_timeout: Option<HumanDuration>,
    /// Most members of one group [default: 256].
    #[arg(long, env = "CHATGW_MAX_GROUP_MEMBERS")]
    pub max_group_members: Option<usize>,
    /// Serve an unauthenticated echo endpoint at /echo (conformance testing only).
    #[arg(long, env = "CHATGW_ECHO_ENDPOINT", num_args = 0..=1, default_missing_value = "true")]
    pub echo_endpoint: Option<bool>,
    /// I/O driver of the event loops: io_uring when the kernel allows it, else epoll [default: auto].
    #[arg(long, env = "CHATGW_IO", value_enum)]
    pub io: Option<IoDriver>,
    /// Receive buffers of 4 KiB in each core's io_uring buffer ring, a power of two up to 32768 (tuning and testing) [default: 512].
    #[arg(long, env = "CHATGW_URING_BUFFERS")]
    pub uring_buffers: Option<u16>,
    /// Join a fleet: the connection registry, `redis://host:port[/db]` or `redis+cluster://h1:p1,h2:p2,...`; needs a shared store (postgres:// or cassandra://), a unique --node-id and --link-listen (docs/CLUSTER.md) [default: off, one node].
    #[arg(long, env = "CHATGW_CLUSTER")]
    pub cluster: Option<String>,
    /// Address other nodes of the fleet connect to for live events (node links); required with --cluster.
    #[arg(long, env = "CHATGW_LINK_LISTEN")]
    pub link_listen: Option<SocketAddr>,
    /// File holding the secret that node links are authenticated with (HMAC-SHA256 challenge-response), the same on every node of the fleet; links of nodes with different keys or link versions are refused (docs/CLUSTER.md, "Link authentication") [default: derived from --secret].
    #[arg(long, env = "CHATGW_LINK_SECRET_FILE")]
    pub link_secret_file: Option<PathBuf>,
    /// Link address other nodes are told to dial, when it differs from --link-listen (a wildcard or NATed listen address) [default: the bound --link-listen].
    #[arg(long, env = "CHATGW_ADVERTISE")]
    pub advertise: Option<SocketAddr>,
    /// How long this node's registry lease lives without renewal (renewed every third of it); a killed node's users stop being routed to within it [default: 10s].
    #[arg(long, env = "CHATGW_LEASE")]
    pub lease: Option<HumanDuration>,
    /// How long a message's idempotency key (sender, client id) is kept; a resend with the same client id after it is stored as a new message; 0s = forever (docs/STORAGE.md, "Retention") [default: 7d].
    #[arg(long, env = "CHATGW_IDEMPOTENCY_RETENTION")]
    pub idempotency_retention: Option<HumanDuration>,
    /// How long a `typing` state lasts unless repeated; receivers are told it, and the gateway sends `paused` when it lapses (docs/PROTOCOL.md, "Presence and typing") [default: 6s].
    #[arg(long, env = "CHATGW_TYPING_EXPIRY")]
    pub typing_expiry: Option<HumanDuration>,
    /// Presence changes of one user reach a watcher at most once per this window, and a reconnect within it is never seen (docs/PROTOCOL.md, "Presence and typing") [default: 1s].
    #[arg(long, env = "CHATGW_PRESENCE_WINDOW")]
    pub presence_window: Option<HumanDuration>,
    /// How long an inbox entry (a device's queued reference to an event) is kept; a device syncing from before it gets what is left with "truncated": messages stay in history; 0s = forever, else at least 1d; not on Cassandra yet (docs/STORAGE.md, "Inbox retention") [default: 30d].
    #[arg(long, env = "CHATGW_INBOX_RETENTION")]
    pub inbox_retention: Option<HumanDuration>,
    /// How long after sending its sender may delete a message for everyone, counted from the message's ts; 0s refuses every delete for everyone (docs/PROTOCOL.md, "Delete and edit") [default: 48h].
    #[arg(long, env = "CHATGW_DELETE_WINDOW")]
    pub delete_window: Option<HumanDuration>,
    /// How long after sending its sender may edit a message, counted from the message's ts; 0s refuses every edit [default: 15m].
    #[arg(long, env = "CHATGW_EDIT_WINDOW")]
    pub edit_window: Option<HumanDuration>,
    /// On SIGTERM or POST /admin/drain: how long /readyz answers 503 while new connections are still taken, for the load balancer to notice (docs/DRAIN.md) [default: 5s].
    #[arg(long, env = "CHATGW_DRAIN_DELAY")]
    pub drain_delay: Option<HumanDuration>,
    /// Then: the time over which open connections are closed with 1012 and a reconnect hint, in waves a second apart, before the process exits 0 (docs/DRAIN.md) [default: 30s].
    #[arg(long, env = "CHATGW_DRAIN_PERIOD")]
    pub drain_period: Option<HumanDuration>,
    /// Token verification keys by key id, besides the secret (TOML only: a `[token_keys]` table of `kid = "secret"`); a token whose header names a `kid` is checked with that key, one without `kid` with --secret; SIGHUP re-reads them (docs/DRAIN.md, "Reload").
    #[arg(skip)]
    pub token_keys: Option<std::collections::BTreeMap<String, String>>,
    /// The key id of [token_keys] that the gateway signs tokens with (`chatgw token --config`) [default: --secret, no kid].
    #[arg(long, env = "CHATGW_SIGNING_KEY")]
    pub signing_key: Option<String>,
    /// Publish every committed event to Kafka, `kafka://host:port[,host:port...][/PREFIX]`, topic `<PREFIX>.events` (created beforehand); any store (docs/EVENTS.md) [default: off; PREFIX chatgw].
    #[arg(long, env = "CHATGW_EVENTS")]
    pub events: Option<String>,
    /// With --events: put message bodies in the event records (otherwise only their sizes) [default: false].
    #[arg(long, env = "CHATGW_EVENTS_BODIES", num_args = 0..=1, default_missing_value = "true")]
    pub events_bodies: Option<bool>,
    /// Run the push worker in this gateway, fed by the store's outbox: a provider spec, repeatable
    /// (`webhook:url=URL,secret-file=PATH`, `apns:...`, `fcm:...`, `retry:...`, `tls:...`; docs/PUSH.md; the
    /// environment separates specs with `;`); one gateway only, any store (docs/EVENTS.md) [default: off].
    #[arg(long, value_name = "SPEC", env = "CHATGW_PUSH", value_delimiter = ';')]
    pub push: Vec<String>,
    /// Every public connection starts with a PROXY protocol header (v1 or v2) from a balancer of --proxy-from, whose client address then counts for the per-address limits and is the one logged; a connection from elsewhere is closed unread (docs/DEPLOY.md) [default: false].
    #[arg(long, env = "CHATGW_PROXY_PROTOCOL", num_args = 0..=1, default_missing_value = "true")]
    pub proxy_protocol: Option<bool>,
    /// With --proxy-protocol: the balancers' addresses or blocks, comma-separated (`10.0.0.5,10.1.0.0/24,2001:db8::/64`); required with it.
    #[arg(long, value_name = "CIDR,...", env = "CHATGW_PROXY_FROM", value_delimiter = ',')]
    pub proxy_from: Vec<Cidr>,
    /// With --push: how long a conversation collects messages before its devices that are not live are notified [default: 2s].
    #[arg(long, env = "CHATGW_PUSH_GRACE")]
    pub push_grace: Option<HumanDuration>,
    /// Where media objects live: `embedded` (files under <data>/media, served on --media-listen) or `s3://bucket?region=...&endpoint=...` (docs/MEDIA.md) [default: embedded].
    #[arg(long, env = "CHATGW_MEDIA")]
    pub media: Option<crate::media::settings::MediaStoreUrl>,
    /// Address of the embedded media backend's HTTP listener (signed PUT and GET), e.g. 127.0.0.1:8082; media frames are refused without it (with --media embedded) [default: off].
    #[arg(long, env = "CHATGW_MEDIA_LISTEN")]
    pub media_listen: Option<AdminListen>,
    /// Public base URL of --media-listen written into signed URLs, e.g. `https://media.example.com` behind a proxy [default: http://<bound --media-listen>].
    #[arg(long, env = "CHATGW_MEDIA_URL")]
    pub media_url: Option<String>,
    /// Secret of the embedded backend's URL signatures [default: generated once and kept in <data>/media/secret].
    #[arg(long, env = "CHATGW_MEDIA_SECRET", hide_env_values = true)]
    pub media_secret: Option<String>,
    /// How long signed media URLs work [default: 15m].
    #[arg(long, env = "CHATGW_MEDIA_URL_TTL")]
    pub media_url_ttl: Option<HumanDuration>,
    /// Part size of media uploads, 1M to 1G (raised for files that would need more than 1000 parts) [default: 8M].
    #[arg(long, env = "CHATGW_MEDIA_PART_SIZE")]
    pub media_part_size: Option<crate::media::settings::ByteSize>,
    /// Largest media object per kind, e.g. `image=16M,video=256M` (kinds not named keep theirs) [default: image=16M,audio=16M,video=256M,document=256M].
    #[arg(long, env = "CHATGW_MEDIA_MAX_SIZE")]
    pub media_max_size: Option<crate::media::settings::KindLimits>,
    /// Bytes one user may request upload slots for per UTC day on this gateway; 0 = no limit [default: 2G].
    #[arg(long, env = "CHATGW_MEDIA_QUOTA")]
    pub media_quota: Option<crate::media::settings::ByteSize>,
    /// Media objects (and unfinished uploads) older than this are deleted; 0s = kept forever [default: 30d].
    #[arg(long, env = "CHATGW_MEDIA_RETENTION")]
    pub media_retention: Option<HumanDuration>,
    /// Transfers the embedded media listener serves at once; more are answered 503 [default: 32].
    #[arg(long, env = "CHATGW_MEDIA_TRANSFERS")]
    pub media_transfers: Option<usize>,
}

/// Resolved settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Address of the admin endpoints (`/metrics`, `/healthz`); `None`:
    /// none. [`Config::new`] leaves it off, so an embedder binds no port it
    /// did not ask for; `chatgw serve` defaults to [`DEFAULT_ADMIN_LISTEN`].
    pub admin_listen: Option<SocketAddr>,
    /// Data directory.
    pub data: PathBuf,
    /// Which store to open ([`Server::start`](crate::Server::start)).
    pub store: StoreUrl,
    /// Event-loop threads.
    pub workers: usize,
    /// JWT secret.
    pub secret: String,
    /// Snowflake node id.
    pub node_id: u16,
    /// Frame and message size limit.
    pub max_frame: usize,
    /// Outbound queue bound per connection.
    pub max_outbound: usize,
    /// Keepalive ping after this much silence.
    pub ping_interval: Duration,
    /// Pong deadline.
    pub pong_timeout: Duration,
    /// Handshake deadline.
    pub handshake_timeout: Duration,
    /// Sustained frames per second per connection.
    pub rate_limit: u32,
    /// Burst of frames per connection.
    pub rate_burst: u32,
    /// Largest group commit.
    pub commit_batch: usize,
    /// Commit pipelines (see `commit::start`).
    pub commit_pipelines: usize,
    /// How long a small batch waits for more requests (see `commit`).
    pub commit_window: Duration,
    /// Reader threads.
    pub readers: usize,
    /// Niceness of the store's background threads (0: not lowered).
    pub store_background_nice: i32,
    /// Group size limit.
    pub max_group_members: usize,
    /// Connection limit of the process.
    pub max_connections: usize,
    /// Concurrent connections per source address (0: no limit).
    pub max_connections_per_ip: usize,
    /// New connections per second per source address (0: no limit).
    pub ip_connect_rate: u32,
    /// Burst of new connections per source address.
    pub ip_connect_burst: u32,
    /// Messages per second per user (0: no limit).
    pub user_send_rate: u32,
    /// Burst of messages per user.
    pub user_send_burst: u32,
    /// Close connections without a protocol frame for this long (zero: never).
    pub idle_timeout: Duration,
    /// Serve `/echo`.
    pub echo_endpoint: bool,
    /// I/O driver.
    pub io: IoDriver,
    /// Provided receive buffers per core (io_uring driver).
    pub uring_buffers: u16,
    /// The fleet's connection registry (`--cluster`), or one node alone.
    pub cluster: Option<String>,
    /// Where node links are accepted (`--link-listen`).
    pub link_listen: Option<SocketAddr>,
    /// The link address other nodes dial (`--advertise`).
    pub advertise: Option<SocketAddr>,
    /// Where the node links' secret is (`--link-secret-file`); `None`:
    /// derived from `secret`.
    pub link_secret_file: Option<PathBuf>,
    /// Registry lease (`--lease`).
    pub lease: Duration,
    /// How long idempotency keys are kept (zero: forever).
    pub idempotency_retention: Duration,
    /// How long a `typing` state lasts unless repeated.
    pub typing_expiry: Duration,
    /// The coalescing window of presence changes.
    pub presence_window: Duration,
    /// How long inbox entries are kept (zero: forever).
    pub inbox_retention: Duration,
    /// How long after sending a message may be deleted for everyone.
    pub delete_window: Duration,
    /// How long after sending a message may be edited.
    pub edit_window: Duration,
    /// `--drain-delay`: readiness off before the listeners close.
    pub drain_delay: Duration,
    /// `--drain-period`: over which a drain closes connections.
    pub drain_period: Duration,
    /// Verification keys by key id, besides `secret` (which checks
    /// tokens without `kid`).
    pub token_keys: std::collections::BTreeMap<String, String>,
    /// The key id in `token_keys` tokens are signed with; `None`: `secret`.
    pub signing_key: Option<String>,
    /// Where committed events are published (`--events`), if anywhere.
    pub events: Option<crate::publisher::EventsUrl>,
    /// Whether event records carry message bodies (`--events-bodies`).
    pub events_bodies: bool,
    /// The push worker in this gateway (`--push`, `--push-grace`).
    pub push: crate::push::PushSettings,
    /// Read a PROXY header first on every public connection (`--proxy-protocol`).
    pub proxy_protocol: bool,
    /// The balancers allowed (and required) to send it (`--proxy-from`).
    pub proxy_from: TrustedProxies,
    /// Media by signed URL (`--media*`); off in [`Config::new`].
    pub media: crate::media::settings::MediaSettings,
}

impl Config {
    /// Defaults for everything but the secret and data directory, which a
    /// test or embedder passes explicitly.
    pub fn new(listen: SocketAddr, data: PathBuf, secret: String) -> Self {
        Config {
            listen,
            admin_listen: None,
            data,
            store: StoreUrl::default(),
            workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            secret,
            node_id: 0,
            max_frame: 128 * 1024,
            max_outbound: 1024 * 1024,
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            rate_limit: 200,
            rate_burst: 400,
            commit_batch: 2048,
            // Two threads each, and on a small box one pipeline costs less
            // per message than two (docs/ARCHITECTURE.md, "Commit pipelines").
            commit_pipelines: (std::thread::available_parallelism().map_or(1, |n| n.get()) / 4)
                .clamp(1, crate::commit::DEFAULT_PIPELINES_MAX),
            commit_window: Duration::from_millis(1),
            readers: 2,
            store_background_nice: 19,
            max_group_members: 256,
            max_connections: crate::sys::default_max_connections(),
            max_connections_per_ip: 1024,
            ip_connect_rate: 200,
            ip_connect_burst: 1000,
            user_send_rate: 200,
            user_send_burst: 400,
            idle_timeout: Duration::ZERO,
            echo_endpoint: false,
            io: IoDriver::Auto,
            uring_buffers: 512,
            cluster: None,
            link_listen: None,
            advertise: None,
            link_secret_file: None,
            lease: Duration::from_secs(10),
            idempotency_retention: DEFAULT_IDEMPOTENCY_RETENTION,
            typing_expiry: Duration::from_secs(6),
            presence_window: Duration::from_secs(1),
            inbox_retention: DEFAULT_INBOX_RETENTION,
            delete_window: DEFAULT_DELETE_WINDOW,
            edit_window: DEFAULT_EDIT_WINDOW,
            drain_delay: Duration::from_secs(5),
            drain_period: Duration::from_secs(30),
            token_keys: Default::default(),
            signing_key: None,
            events: None,
            events_bodies: false,
            push: crate::push::PushSettings::default(),
            proxy_protocol: false,
            proxy_from: TrustedProxies::default(),
            media: crate::media::settings::MediaSettings::default(),
        }
    }
}

/// Upper bound of `--max-group-members`: a `group` reply lists every
/// member and must stay far below the outbound bound.
pub const MAX_GROUP_MEMBERS_LIMIT: usize = 5000;

/// How long idempotency keys are kept by default: far longer than any
/// client resends (minutes), short enough that the table stays a week of
/// traffic (docs/STORAGE.md, "Retention").
pub const DEFAULT_IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(7 * 86_400);

/// Shortest non-zero idempotency retention: below it a client's own
/// resends (its outbox retries for minutes) could be stored twice.
pub const MIN_IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(3600);

/// How long inbox entries are kept by default: as long as a
/// WhatsApp-class service keeps a message waiting for an offline device,
/// so only a device away for a month needs to reload history
/// (docs/STORAGE.md, "Inbox retention").
pub const DEFAULT_INBOX_RETENTION: Duration = Duration::from_secs(30 * 86_400);

/// Shortest non-zero inbox retention: below a day, a device back from a
/// short outage (a flight, a night with the phone off) would miss events.
pub const MIN_INBOX_RETENTION: Duration = Duration::from_secs(86_400);
/// How long a message may be deleted for everyone by default.
pub const DEFAULT_DELETE_WINDOW: Duration = Duration::from_secs(48 * 3600);

/// How long a message may be edited by default.
pub const DEFAULT_EDIT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The default data directory.
pub const DEFAULT_DATA: &str = "./data";

impl ServeArgs {
    /// Merge flags and environment (already in `self`) over the TOML file
    /// over the defaults.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
                toml::from_str::<ServeArgs>(&text)
                    .map_err(|source| ConfigError::Parse { path: path.clone(), source })?
            }
            None => ServeArgs::default(),
        };
        let data = self.data.or(file.data).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA));
        let secret = match self.secret.or(file.secret) {
            Some(s) => s,
            None => load_or_create_secret(&data)?,
        };
        let listen = self.listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let mut c = Config::new(listen, data, secret);
        c.admin_listen = Some(DEFAULT_ADMIN_LISTEN);
        macro_rules! take {
            ($($f:ident),*) => {$(
                if let Some(v) = self.$f.or(file.$f) { c.$f = v.into(); }
            )*};
        }
        take!(
            admin_listen,
            workers,
            node_id,
            max_frame,
            max_outbound,
            rate_limit,
            rate_burst,
            commit_batch,
            commit_pipelines,
            readers,
            store_background_nice,
            echo_endpoint,
            max_group_members,
            max_connections,
            max_connections_per_ip,
            ip_connect_rate,
            ip_connect_burst,
            user_send_rate,
            user_send_burst,
            io,
            uring_buffers
        );
        c.cluster = self.cluster.or(file.cluster);
        c.link_listen = self.link_listen.or(file.link_listen);
        c.advertise = self.advertise.or(file.advertise);
        c.link_secret_file = self.link_secret_file.or(file.link_secret_file);
        macro_rules! take_duration {
            ($($f:ident),*) => {$(
                if let Some(v) = self.$f.or(file.$f) { c.$f = v.0; }
            )*};
        }
        take_duration!(
            ping_interval,
            pong_timeout,
            handshake_timeout,
            idle_timeout,
            lease,
            idempotency_retention,
            typing_expiry,
            presence_window,
            commit_window,
            inbox_retention,
            delete_window,
            edit_window,
            drain_delay,
            drain_period
        );
        if let Some(url) = self.events.or(file.events) {
            c.events = Some(url.parse().map_err(ConfigError::Invalid)?);
        }
        c.events_bodies = self.events_bodies.or(file.events_bodies).unwrap_or(false);
        c.token_keys = self.token_keys.or(file.token_keys).unwrap_or_default();
        c.signing_key = self.signing_key.or(file.signing_key);
        c.push.specs = if self.push.is_empty() { file.push } else { self.push };
        if let Some(grace) = self.push_grace.or(file.push_grace) {
            c.push.grace = grace.0;
        }
        c.proxy_protocol = self.proxy_protocol.or(file.proxy_protocol).unwrap_or(false);
        c.proxy_from = TrustedProxies(if self.proxy_from.is_empty() { file.proxy_from } else { self.proxy_from });
        if let Some(url) = self.store.or(file.store) {
            c.store = url.parse()?;
        }
        let m = &mut c.media;
        m.listen = self.media_listen.or(file.media_listen).and_then(Into::into);
        m.store = self.media.or(file.media).unwrap_or_default();
        m.url = self.media_url.or(file.media_url).or(m.url.take());
        m.secret = self.media_secret.or(file.media_secret).or(m.secret.take());
        if let Some(v) = self.media_url_ttl.or(file.media_url_ttl) {
            m.url_ttl = v.0;
        }
        if let Some(v) = self.media_part_size.or(file.media_part_size) {
            m.part_size = v.0;
        }
        if let Some(v) = self.media_max_size.or(file.media_max_size) {
            m.max_size = v;
        }
        if let Some(v) = self.media_quota.or(file.media_quota) {
            m.quota = v.0;
        }
        if let Some(v) = self.media_retention.or(file.media_retention) {
            m.retention = v.0;
        }
        if let Some(v) = self.media_transfers.or(file.media_transfers) {
            m.transfers = v;
        }
        c.validate()?;
        Ok(c)
    }
}

impl Config {
    /// Refuse settings the gateway cannot run with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        ensure(self.workers >= 1 && self.workers <= 256, "workers must be 1..=256")?;
        ensure(self.node_id <= chatgw_protocol::Snowflake::MAX_NODE, "node-id must be 0..=1023")?;
        ensure(self.max_frame >= 1024, "max-frame must be at least 1024 bytes")?;
        ensure(self.max_outbound >= self.max_frame, "max-outbound must be at least max-frame")?;
        ensure(self.rate_limit >= 1 && self.rate_burst >= 1, "rate-limit and rate-burst must be positive")?;
        ensure(
            (1..=60).contains(&self.typing_expiry.as_secs()) && self.presence_window <= Duration::from_secs(60),
            "typing-expiry must be 1s..=60s and presence-window at most 60s",
        )?;
        ensure(
            self.ip_connect_rate == 0 || self.ip_connect_burst >= 1,
            "ip-connect-burst must be positive when ip-connect-rate is set",
        )?;
        ensure(
            self.user_send_rate == 0 || self.user_send_burst >= 1,
            "user-send-burst must be positive when user-send-rate is set",
        )?;
        ensure(self.commit_batch >= 1, "commit-batch must be positive")?;
        ensure(self.commit_pipelines >= 1 && self.commit_pipelines <= 64, "commit-pipelines must be 1..=64")?;
        ensure(self.commit_window <= Duration::from_millis(10), "commit-window must be at most 10ms")?;
        ensure(
            self.idempotency_retention.is_zero() || self.idempotency_retention >= MIN_IDEMPOTENCY_RETENTION,
            "idempotency-retention must be 0s (forever) or at least 1h",
        )?;
        ensure(
            self.inbox_retention.is_zero() || self.inbox_retention >= MIN_INBOX_RETENTION,
            "inbox-retention must be 0s (forever) or at least 1d",
        )?;
        ensure(self.readers >= 1, "readers must be positive")?;
        ensure((0..=19).contains(&self.store_background_nice), "store-background-nice must be 0..=19")?;
        ensure(self.max_connections >= 1, "max-connections must be positive")?;
        ensure(
            (1..=MAX_GROUP_MEMBERS_LIMIT).contains(&self.max_group_members),
            format!("max-group-members must be 1..={MAX_GROUP_MEMBERS_LIMIT}"),
        )?;
        ensure(!self.secret.is_empty(), "secret must not be empty")?;
        ensure(self.token_keys.values().all(|k| !k.is_empty()), "token_keys must not be empty")?;
        ensure(
            self.signing_key.as_ref().is_none_or(|kid| self.token_keys.contains_key(kid)),
            "signing_key must name a key of token_keys",
        )?;
        ensure(
            !self.push.enabled() || self.cluster.is_none(),
            "--push runs the push worker for one gateway; a fleet publishes --events and runs `chatgw push` (docs/EVENTS.md)",
        )?;
        ensure(
            self.uring_buffers.is_power_of_two() && self.uring_buffers <= 32768,
            "uring-buffers must be a power of two, 1..=32768",
        )?;
        ensure(
            self.admin_listen.is_none_or(|a| a.port() == 0 || a != self.listen),
            "admin-listen must differ from listen",
        )?;
        ensure(
            self.proxy_protocol != self.proxy_from.0.is_empty(),
            "--proxy-protocol and --proxy-from go together: the balancers allowed to send PROXY headers",
        )?;
        self.media.validate().map_err(ConfigError::Invalid)?;
        ensure(
            self.media.listen.is_none_or(|m| m.port() == 0 || (m != self.listen && Some(m) != self.admin_listen)),
            "media-listen must differ from listen and admin-listen",
        )?;
        if let Some(url) = &self.cluster {
            ensure(
                url.starts_with("redis://") || url.starts_with("redis+cluster://"),
                "cluster must be redis://host:port[/db] or redis+cluster://host:port,host:port,...",
            )?;
            ensure(
                self.link_listen.is_some(),
                "cluster mode needs --link-listen (the address other nodes connect to)",
            )?;
            ensure(
                self.lease >= Duration::from_secs(1) && self.lease <= Duration::from_secs(300),
                "lease must be 1s..=300s",
            )?;
        }
        Ok(())
    }
}

/// The secret kept in `<data>/secret`, created with random bytes on first use.
pub fn load_or_create_secret(data: &std::path::Path) -> Result<String, ConfigError> {
    let path = data.join("secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_owned();
        return match s.is_empty() {
            true => Err(ConfigError::EmptySecret(path)),
            false => Ok(s),
        };
    }
    let failed = |what: &'static str, path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source: io::Error| ConfigError::Secret { what, path, source }
    };
    std::fs::create_dir_all(data).map_err(failed("creating data directory", data))?;
    let mut bytes = [0u8; 32];
    let urandom = std::path::Path::new("/dev/urandom");
    std::fs::File::open(urandom)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(failed("reading a new secret from", urandom))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(failed("creating", &path))?;
        std::io::Write::write_all(&mut f, secret.as_bytes()).map_err(failed("writing", &path))?;
        f.sync_all().map_err(failed("syncing", &path))?;
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "workers = 3\nmax_frame = 4096\nping_interval = \"5s\"\nsecret = \"f\"\n").unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            workers: Some(1),
            data: Some(dir.path().into()),
            ..Default::default()
        };
        let c = args.resolve().unwrap();
        assert_eq!(
            (c.workers, c.max_frame, c.ping_interval, c.secret.as_str()),
            (1, 4096, Duration::from_secs(5), "f")
        );
        std::fs::write(&file, "wokers = 3\n").unwrap();
        let args = ServeArgs { config: Some(file), ..Default::default() };
        assert!(args.resolve().is_err(), "unknown keys are refused");
    }

    #[test]
    fn idempotency_retention_defaults_to_a_week_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "secret = \"f\"\n").unwrap();
        let resolve = |retention: Option<&str>| {
            let args = ServeArgs {
                config: Some(file.clone()),
                data: Some(dir.path().into()),
                idempotency_retention: retention.map(|r| r.parse().unwrap()),
                ..Default::default()
            };
            args.resolve().map(|c| c.idempotency_retention)
        };
        assert_eq!(resolve(None).unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(resolve(Some("30d")).unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(resolve(Some("0s")).unwrap(), Duration::ZERO, "0s keeps keys forever");
        assert!(resolve(Some("5m")).is_err(), "shorter than a client resends");
        std::fs::write(&file, "secret = \"f\"\nidempotency_retention = \"2d\"\n").unwrap();
        assert_eq!(resolve(None).unwrap(), Duration::from_secs(2 * 86_400), "from the file");
    }

    #[test]
    fn inbox_retention_defaults_to_thirty_days_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "secret = \"f\"\n").unwrap();
        let resolve = |retention: Option<&str>| {
            let args = ServeArgs {
                config: Some(file.clone()),
                data: Some(dir.path().into()),
                inbox_retention: retention.map(|r| r.parse().unwrap()),
                ..Default::default()
            };
            args.resolve().map(|c| c.inbox_retention)
        };
        assert_eq!(resolve(None).unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(resolve(Some("0s")).unwrap(), Duration::ZERO, "0s keeps inboxes forever");
        assert_eq!(resolve(Some("1d")).unwrap(), Duration::from_secs(86_400));
        let err = resolve(Some("12h")).unwrap_err();
        assert!(err.to_string().contains("inbox-retention must be 0s (forever) or at least 1d"), "{err}");
        std::fs::write(&file, "secret = \"f\"\ninbox_retention = \"90d\"\n").unwrap();
        assert_eq!(resolve(None).unwrap(), Duration::from_secs(90 * 86_400), "from the file");
    }

    #[test]
    fn store_background_nice_comes_from_the_file_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "store_background_nice = 0\nsecret = \"f\"\n").unwrap();
        let args = || ServeArgs { config: Some(file.clone()), data: Some(dir.path().into()), ..Default::default() };
        assert_eq!(
            Config::new("127.0.0.1:1".parse().unwrap(), dir.path().into(), "s".into()).store_background_nice,
            19
        );
        assert_eq!(args().resolve().unwrap().store_background_nice, 0);
        let err = ServeArgs { store_background_nice: Some(20), ..args() }.resolve().unwrap_err();
        assert!(err.to_string().contains("store-background-nice must be 0..=19"), "{err}");
    }

    #[test]
    fn media_settings_come_from_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let args = || ServeArgs { data: Some(dir.path().into()), secret: Some("s".into()), ..Default::default() };
        let c = args().resolve().unwrap();
        assert_eq!(c.media.listen, None, "off unless asked for");
        assert_eq!((c.media.quota, c.media.part_size, c.media.url_ttl), (2 << 30, 8 << 20, Duration::from_secs(900)));
        assert!(Config::new("127.0.0.1:1".parse().unwrap(), dir.path().into(), "s".into()).media.listen.is_none());
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "media_listen = \"off\"\nmedia_quota = \"1G\"\nmedia_max_size = \"image=1M\"\nmedia_retention = \"7d\"\n",
        )
        .unwrap();
        let c = ServeArgs { config: Some(file.clone()), ..args() }.resolve().unwrap();
        assert_eq!((c.media.listen, c.media.quota, c.media.max_size.image), (None, 1 << 30, 1 << 20));
        assert_eq!(c.media.retention, Duration::from_secs(7 * 86_400));
        let flag = ServeArgs { config: Some(file), media_listen: Some("127.0.0.1:0".parse().unwrap()), ..args() };
        assert_eq!(flag.resolve().unwrap().media.listen, Some("127.0.0.1:0".parse().unwrap()), "flags win");
        let bad = ServeArgs { media_part_size: Some("1K".parse().unwrap()), ..args() }.resolve().unwrap_err();
        assert!(bad.to_string().contains("media-part-size must be 1M..=1G"), "{bad}");
        let clash = ServeArgs { media_listen: Some("127.0.0.1:8081".parse().unwrap()), ..args() };
        assert!(clash.resolve().is_err(), "the admin address");
    }

    #[test]
    fn admin_listen_defaults_to_loopback_8081_and_can_be_off() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let args = || ServeArgs { data: Some(dir.path().into()), secret: Some("s".into()), ..Default::default() };
        assert_eq!(args().resolve().unwrap().admin_listen, Some("127.0.0.1:8081".parse().unwrap()));
        assert_eq!(
            Config::new("127.0.0.1:1".parse().unwrap(), dir.path().into(), "s".into()).admin_listen,
            None,
            "an embedder binds no admin port it did not ask for"
        );
        std::fs::write(&file, "admin_listen = \"off\"\n").unwrap();
        let from_file = ServeArgs { config: Some(file.clone()), ..args() };
        assert_eq!(from_file.resolve().unwrap().admin_listen, None);
        let flag = ServeArgs { config: Some(file), admin_listen: Some("0.0.0.0:9100".parse().unwrap()), ..args() };
        assert_eq!(flag.resolve().unwrap().admin_listen, Some("0.0.0.0:9100".parse().unwrap()), "flags win");
        let err = "localhost".parse::<AdminListen>().unwrap_err();
        assert!(err.contains("or off"), "{err}");
        let same = ServeArgs { listen: Some("127.0.0.1:8081".parse().unwrap()), ..args() }.resolve().unwrap_err();
        assert_eq!(same.to_string(), "admin-listen must differ from listen");
    }

    #[test]
    fn store_defaults_to_embedded_and_an_unknown_scheme_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let args = || ServeArgs { data: Some(dir.path().into()), secret: Some("s".into()), ..Default::default() };
        assert_eq!(args().resolve().unwrap().store.to_string(), "embedded");
        let flag = ServeArgs { store: Some("mysql://db/chat".into()), ..args() }.resolve().unwrap_err();
        assert!(matches!(flag, ConfigError::Store(_)), "{flag:?}");
        assert_eq!(flag.to_string(), "unknown store `mysql://db/chat`: supported: embedded, postgres, cassandra");
        std::fs::write(&file, "store = \"scylla://h\"\n").unwrap();
        let from_file = ServeArgs { config: Some(file), ..args() }.resolve().unwrap_err();
        assert_eq!(from_file.to_string(), "unknown store `scylla://h`: supported: embedded, postgres, cassandra");
    }

    #[test]
    fn secret_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_secret(dir.path()).unwrap();
        let b = load_or_create_secret(dir.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn events_from_flags_or_file_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "secret = \"f\"\n").unwrap();
        let resolve = |events: Option<&str>, store: Option<&str>| {
            let args = ServeArgs {
                config: Some(file.clone()),
                data: Some(dir.path().into()),
                events: events.map(str::to_owned),
                store: store.map(str::to_owned),
                ..Default::default()
            };
            args.resolve()
        };
        let c = resolve(None, None).unwrap();
        assert_eq!((c.events, c.events_bodies), (None, false), "off by default");
        let c = resolve(Some("kafka://b1:9092,b2:9092/prod"), None).unwrap();
        assert_eq!(c.events.map(|e| (e.brokers, e.prefix)), Some(("b1:9092,b2:9092".into(), "prod".into())));
        assert!(resolve(Some("b1:9092"), None).is_err(), "not a kafka:// URL");
        let c = resolve(Some("kafka://b:9092"), Some("cassandra://127.0.0.1:9042/chatgw")).unwrap();
        assert!(c.events.is_some(), "every store has an outbox");
        std::fs::write(&file, "secret = \"f\"\nevents = \"kafka://k:9092\"\nevents_bodies = true\n").unwrap();
        let c = resolve(None, None).unwrap();
        assert_eq!(c.events.map(|e| e.prefix), Some("chatgw".into()), "from the file, default prefix");
        assert!(c.events_bodies);
    }

    #[test]
    fn push_from_flags_or_file_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "secret = \"f\"\npush = [\"webhook:url=http://h/p,secret-file=s\"]\npush_grace = \"500ms\"\n",
        )
        .unwrap();
        let resolve = |push: &[&str], store: Option<&str>, cluster: Option<&str>| {
            let args = ServeArgs {
                config: Some(file.clone()),
                data: Some(dir.path().into()),
                push: push.iter().map(|s| s.to_string()).collect(),
                store: store.map(str::to_owned),
                cluster: cluster.map(str::to_owned),
                ..Default::default()
            };
            args.resolve()
        };
        let c = resolve(&[], None, None).unwrap();
        assert_eq!(c.push.specs, vec!["webhook:url=http://h/p,secret-file=s".to_owned()]);
        assert_eq!(c.push.grace, Duration::from_millis(500));
        let c = resolve(&["fcm:service-account=a", "retry:attempts=1"], None, None).unwrap();
        assert_eq!(c.push.specs.len(), 2, "flags replace the file's list");
        let c = resolve(&["fcm:service-account=a"], Some("cassandra://127.0.0.1:9042/chatgw"), None).unwrap();
        assert!(c.push.enabled(), "every store has an outbox");
        let refused =
            resolve(&["fcm:service-account=a"], Some("postgres://db/chat"), Some("redis://r:6379")).unwrap_err();
        assert!(refused.to_string().contains("chatgw push"), "{refused}");
        std::fs::write(&file, "secret = \"f\"\n").unwrap();
        assert!(!resolve(&[], None, None).unwrap().push.enabled(), "off by default");
    }

    #[test]
    fn proxy_protocol_from_the_file_and_flags_needs_its_balancers() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let resolve = |toml: &str, flags: Vec<&str>| {
            std::fs::write(&file, format!("secret = \"f\"\n{toml}")).unwrap();
            let args = ServeArgs {
                config: Some(file.clone()),
                data: Some(dir.path().into()),
                proxy_from: flags.iter().map(|f| f.parse().unwrap()).collect(),
                ..Default::default()
            };
            args.resolve().map(|c| (c.proxy_protocol, c.proxy_from))
        };
        let (on, from) = resolve("proxy_protocol = true\nproxy_from = [\"10.0.0.0/8\", \"::1\"]\n", vec![]).unwrap();
        assert!(on && from.trusts("10.9.9.9".parse().unwrap()) && from.trusts("::1".parse().unwrap()));
        let (_, from) = resolve("proxy_protocol = true\nproxy_from = [\"10.0.0.0/8\"]\n", vec!["192.0.2.1"]).unwrap();
        assert!(from.trusts("192.0.2.1".parse().unwrap()) && !from.trusts("10.0.0.1".parse().unwrap()), "flags win");
        assert!(resolve("proxy_protocol = true\n", vec![]).is_err(), "no balancers");
        assert!(resolve("", vec!["10.0.0.1"]).is_err(), "balancers without the option");
        assert!(resolve("proxy_from = [\"10.0.0.0/33\"]\n", vec![]).is_err(), "bad block");
        assert_eq!(resolve("", vec![]).unwrap(), (false, TrustedProxies::default()));
    }
}
