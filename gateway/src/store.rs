//! Choosing the message store: `--store URL` to an open [`MessageStore`].
//!
//! Everything above the store (committer, readers) sees only the
//! [`MessageStore`] trait, so the choice of backend is made here and
//! nowhere else. A URL names its backend by its scheme: `embedded` (the
//! fjall store under `--data`, the default), `postgres://user@host:port/db`
//! (a shared database) and `cassandra://host:port,.../keyspace?...` (a
//! Cassandra or ScyllaDB cluster); one gateway per remote store until the
//! committer is safe with several writers, see docs/STORAGE.md. [`BACKENDS`] is the one
//! list of them: parsing a [`StoreUrl`], opening it, preparing it (`chatgw store
//! init`) and the error that names the supported schemes all read it, so
//! another backend is one new module plus one row there.
//!
//! Opening never creates a remote schema: a gateway pointed at the wrong
//! database must refuse to start rather than quietly fill it, so creating
//! the tables is a separate, deliberate step ([`init`]).
//!
//! A program that builds its own store (a test, an embedder) skips this
//! module and passes it to [`Server::start_with_store`](crate::Server::start_with_store).

use std::{fmt, path::PathBuf, str::FromStr, sync::Arc};

use chatgw_storage::{CassandraStore, EmbeddedOptions, EmbeddedStore, MessageStore, PostgresOptions, PostgresStore};

use crate::config::Config;

/// Opens the store a URL names, with the rest of the settings.
type Opener = fn(&StoreUrl, &Config) -> Result<Arc<dyn MessageStore>, OpenError>;

/// Prepares the store a URL names for a first start (`chatgw store init`).
type Initer = fn(&StoreUrl) -> Result<Initialized, OpenError>;

/// One kind of store `--store` can name.
struct Backend {
    /// The URL scheme: the whole value (`embedded`) or what precedes `://`.
    scheme: &'static str,
    /// Open the store.
    open: Opener,
    /// Prepare the store, idempotently.
    init: Initer,
}

/// Every backend, the default first.
const BACKENDS: &[Backend] = &[
    Backend { scheme: "embedded", open: open_embedded, init: init_embedded },
    Backend { scheme: "postgres", open: open_postgres, init: init_postgres },
    Backend { scheme: "cassandra", open: open_cassandra, init: init_cassandra },
];

/// A `--store` value whose scheme names a known backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreUrl(String);

impl StoreUrl {
    /// The backend part: the whole value, or what precedes `://`.
    pub fn scheme(&self) -> &str {
        scheme_of(&self.0)
    }

    /// The URL as given, password included: for connecting, never for
    /// showing (that is [`Display`](fmt::Display)).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What follows `scheme://` (empty for a bare scheme).
    pub fn location(&self) -> &str {
        self.0.split_once("://").map_or("", |(_, rest)| rest)
    }

    fn backend(&self) -> &'static Backend {
        // Invariant: a StoreUrl is only built from a scheme in BACKENDS
        // (`from_str` and `default`), so the search cannot fail; the first
        // entry is a harmless answer if it ever did.
        BACKENDS.iter().find(|b| b.scheme == self.scheme()).unwrap_or(&BACKENDS[0])
    }
}

impl Default for StoreUrl {
    /// `embedded`.
    fn default() -> Self {
        StoreUrl(BACKENDS[0].scheme.to_owned())
    }
}

impl fmt::Display for StoreUrl {
    /// The URL with any password replaced by `***`, for logs and messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((scheme, rest)) = self.0.split_once("://") else { return f.write_str(&self.0) };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        match authority.rsplit_once('@').and_then(|(user, host)| Some((user.split_once(':')?.0, host))) {
            Some((user, host)) => write!(f, "{scheme}://{user}:***@{host}{path}"),
            None => f.write_str(&self.0),
        }
    }
}

fn scheme_of(url: &str) -> &str {
    url.split_once("://").map_or(url, |(scheme, _)| scheme)
}

/// The schemes `--store` accepts, for messages: `embedded, postgres`.
pub fn supported_schemes() -> String {
    BACKENDS.iter().map(|b| b.scheme).collect::<Vec<_>>().join(", ")
}

/// A `--store` value that names no known backend.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown store `{url}`: supported: {}", supported_schemes())]
pub struct UnknownStore {
    /// The value as given.
    pub url: String,
}

impl FromStr for StoreUrl {
    type Err = UnknownStore;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match BACKENDS.iter().any(|b| b.scheme == scheme_of(s)) {
            true => Ok(StoreUrl(s.to_owned())),
            false => Err(UnknownStore { url: s.to_owned() }),
        }
    }
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL has a location its backend does not take (`embedded` keeps
    /// its store under `--data`).
    #[error("store `{url}`: {why}")]
    Location {
        /// The URL as given.
        url: String,
        /// What the backend expects instead.
        why: &'static str,
    },
    /// The embedded store could not be opened or created in `dir`.
    #[error("opening the store in {}", dir.display())]
    Embedded {
        /// The store's directory (`<data>/store`).
        dir: PathBuf,
        /// What the store reported.
        #[source]
        source: chatgw_storage::StoreError,
    },
    /// The PostgreSQL database could not be reached, or holds no schema of
    /// this release (then the message says to run `chatgw store init`).
    #[error("opening the store {url}")]
    Postgres {
        /// The URL as given, password hidden.
        url: String,
        /// What the store reported.
        #[source]
        source: chatgw_storage::StoreError,
    },
    /// No node of the Cassandra cluster could be reached, the URL's options
    /// are wrong, or the keyspace holds no schema of this release.
    #[error("opening the store {url}")]
    Cassandra {
        /// The URL as given, password hidden.
        url: String,
        /// What the store reported.
        #[source]
        source: chatgw_storage::StoreError,
    },
    /// `chatgw store init` could not create or complete the schema.
    #[error("preparing the store {url}")]
    Init {
        /// The URL as given, password hidden.
        url: String,
        /// What the store reported.
        #[source]
        source: chatgw_storage::StoreError,
    },
}

/// What [`init`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Initialized {
    /// The backend needs no preparation (the embedded store is created under
    /// `--data` when the gateway starts).
    NothingToDo {
        /// The scheme of the store.
        scheme: &'static str,
    },
    /// The database holds the schema of this release: created, completed or
    /// already there.
    Schema {
        /// The URL, password hidden.
        url: String,
        /// The schema version now in place.
        version: i32,
    },
}

impl fmt::Display for Initialized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Initialized::NothingToDo { scheme } => {
                write!(f, "nothing to do: the {scheme} store is created under --data when the gateway starts")
            }
            Initialized::Schema { url, version } => {
                write!(f, "{url}: chatgw schema version {version} in place (created what was missing)")
            }
        }
    }
}

/// Open the store `config.store` names.
pub fn open(config: &Config) -> Result<Arc<dyn MessageStore>, OpenError> {
    (config.store.backend().open)(&config.store, config)
}

/// Prepare the store `url` names so that a gateway can open it: create or
/// complete a remote schema. Idempotent: running it again changes nothing.
pub fn init(url: &StoreUrl) -> Result<Initialized, OpenError> {
    (url.backend().init)(url)
}

/// The directory of the embedded store under a data directory.
pub fn embedded_dir(data: &std::path::Path) -> PathBuf {
    data.join("store")
}

fn open_embedded(url: &StoreUrl, config: &Config) -> Result<Arc<dyn MessageStore>, OpenError> {
    if url.0.contains("://") {
        return Err(OpenError::Location {
            url: url.0.clone(),
            why: "`embedded` takes no location: its store is under --data",
        });
    }
    let dir = embedded_dir(&config.data);
    let options = EmbeddedOptions { background_nice: config.store_background_nice, ..EmbeddedOptions::default() };
    match EmbeddedStore::open(&dir, &options) {
        Ok(store) => Ok(Arc::new(store)),
        Err(source) => Err(OpenError::Embedded { dir, source }),
    }
}

fn init_embedded(_url: &StoreUrl) -> Result<Initialized, OpenError> {
    Ok(Initialized::NothingToDo { scheme: "embedded" })
}

fn open_postgres(url: &StoreUrl, config: &Config) -> Result<Arc<dyn MessageStore>, OpenError> {
    // One connection for the committer, one per reader, and one spare for
    // the rare read done elsewhere (startup, health).
    let options = PostgresOptions { pool_size: config.readers + 2, ..PostgresOptions::default() };
    match PostgresStore::open(&url.0, &options) {
        Ok(store) => Ok(Arc::new(store)),
        Err(source) => Err(OpenError::Postgres { url: url.to_string(), source }),
    }
}

fn init_postgres(url: &StoreUrl) -> Result<Initialized, OpenError> {
    match PostgresStore::init(&url.0) {
        Ok(()) => Ok(Initialized::Schema { url: url.to_string(), version: chatgw_storage::POSTGRES_SCHEMA_VERSION }),
        Err(source) => Err(OpenError::Init { url: url.to_string(), source }),
    }
}

fn open_cassandra(url: &StoreUrl, config: &Config) -> Result<Arc<dyn MessageStore>, OpenError> {
    match CassandraStore::open(&url.0) {
        // Keys expire by their TTL there: the sweep finds nothing to do.
        Ok(store) => {
            if !config.inbox_retention.is_zero() {
                // docs/STORAGE.md, "Inbox retention": not done on Cassandra yet.
                tracing::warn!("--inbox-retention is not applied on Cassandra: its inboxes are kept whole");
            }
            Ok(Arc::new(store.with_idempotency_retention(Some(config.idempotency_retention))))
        }
        Err(source) => Err(OpenError::Cassandra { url: url.to_string(), source }),
    }
}

fn init_cassandra(url: &StoreUrl) -> Result<Initialized, OpenError> {
    match CassandraStore::init(&url.0) {
        Ok(()) => Ok(Initialized::Schema { url: url.to_string(), version: chatgw_storage::CASSANDRA_SCHEMA_VERSION }),
        Err(source) => Err(OpenError::Init { url: url.to_string(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_is_the_default_and_parses() {
        assert_eq!(StoreUrl::default().to_string(), "embedded");
        assert_eq!("embedded".parse::<StoreUrl>().unwrap(), StoreUrl::default());
        assert_eq!(supported_schemes(), "embedded, postgres, cassandra");
    }

    #[test]
    fn postgres_parses_with_its_location() {
        let url: StoreUrl = "postgres://chat@db.internal:5432/chatgw".parse().unwrap();
        assert_eq!((url.scheme(), url.location()), ("postgres", "chat@db.internal:5432/chatgw"));
        assert_eq!(url.to_string(), "postgres://chat@db.internal:5432/chatgw");
    }

    #[test]
    fn a_password_in_the_url_is_hidden_when_shown() {
        let url: StoreUrl = "postgres://chat:s3cret@db:5432/chatgw".parse().unwrap();
        assert_eq!(url.to_string(), "postgres://chat:***@db:5432/chatgw");
        assert_eq!(url.location(), "chat:s3cret@db:5432/chatgw", "the real one is kept for connecting");
    }

    #[test]
    fn unreachable_postgres_is_refused_in_one_line_without_the_password() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut config = Config::new("127.0.0.1:0".parse().unwrap(), "unused".into(), "s".into());
        config.store = format!("postgres://chat:s3cret@127.0.0.1:{port}/chatgw").parse().unwrap();
        let err = format!("{:#}", anyhow::Error::new(open(&config).err().expect("refused")));
        assert!(err.starts_with(&format!("opening the store postgres://chat:***@127.0.0.1:{port}/chatgw: ")), "{err}");
        assert!(!err.contains("s3cret") && !err.contains('\n'), "{err}");
    }

    #[test]
    fn cassandra_parses_and_its_errors_are_one_line_without_the_password() {
        let url: StoreUrl = "cassandra://chat:s3cret@db1:9042,db2:9042/chatgw?consistency=quorum".parse().unwrap();
        assert_eq!(url.scheme(), "cassandra");
        assert_eq!(url.to_string(), "cassandra://chat:***@db1:9042,db2:9042/chatgw?consistency=quorum");
        let mut config = Config::new("127.0.0.1:0".parse().unwrap(), "unused".into(), "s".into());
        config.store = "cassandra://chat:s3cret@db1/chatgw?consistency=any".parse().unwrap();
        let err = format!("{:#}", anyhow::Error::new(open(&config).err().expect("refused")));
        assert!(err.starts_with("opening the store cassandra://chat:***@db1/chatgw?consistency=any: "), "{err}");
        assert!(err.contains("bad consistency `any`") && !err.contains("s3cret") && !err.contains('\n'), "{err}");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url: StoreUrl = format!("cassandra://127.0.0.1:{port}/chatgw?connect_timeout=1s").parse().unwrap();
        let err = format!("{:#}", anyhow::Error::new(init(&url).expect_err("nobody listens")));
        assert!(err.starts_with(&format!("preparing the store {url}: ")) && !err.contains('\n'), "{err}");
    }

    #[test]
    fn embedded_needs_no_init() {
        let init = init(&StoreUrl::default()).unwrap();
        assert_eq!(init, Initialized::NothingToDo { scheme: "embedded" });
    }

    #[test]
    fn unknown_scheme_is_one_line_naming_the_supported_ones() {
        for url in ["postgresql://db/chat", "scylla://h/k", "memory", ""] {
            let err = url.parse::<StoreUrl>().unwrap_err().to_string();
            assert_eq!(err, format!("unknown store `{url}`: supported: embedded, postgres, cassandra"));
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn embedded_with_a_location_is_refused_before_touching_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().join("d"), "s".into());
        config.store = "embedded://elsewhere".parse().unwrap();
        let err = open(&config).err().expect("refused");
        assert!(err.to_string().contains("takes no location"), "{err}");
        assert!(!dir.path().join("d").exists(), "nothing created");
    }

    #[test]
    fn embedded_opens_under_data() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf(), "s".into());
        open(&config).unwrap();
        assert!(embedded_dir(dir.path()).is_dir());
    }
}
