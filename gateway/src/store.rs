//! Choosing the message store: `--store URL` to an open [`MessageStore`].
//!
//! Everything above the store (committer, readers) sees only the
//! [`MessageStore`] trait, so the choice of backend is made here and
//! nowhere else. A URL names its backend by its scheme: `embedded` (the
//! fjall store under `--data`, the default), and later `postgres://...` or
//! `cassandra://...`. [`BACKENDS`] is the one list of them: parsing a
//! [`StoreUrl`], opening it and the error that names the supported schemes
//! all read it, so a second backend is one new module plus one row there.
//!
//! A program that builds its own store (a test, an embedder) skips this
//! module and passes it to [`Server::start_with_store`](crate::Server::start_with_store).

use std::{fmt, path::PathBuf, str::FromStr, sync::Arc};

use chatgw_storage::{EmbeddedOptions, EmbeddedStore, MessageStore};

use crate::config::Config;

/// Opens the store a URL names, with the rest of the settings.
type Opener = fn(&StoreUrl, &Config) -> Result<Arc<dyn MessageStore>, OpenError>;

/// One kind of store `--store` can name.
struct Backend {
    /// The URL scheme: the whole value (`embedded`) or what precedes `://`.
    scheme: &'static str,
    /// Open the store.
    open: Opener,
}

/// Every backend, the default first.
const BACKENDS: &[Backend] = &[Backend { scheme: "embedded", open: open_embedded }];

/// A `--store` value whose scheme names a known backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreUrl(String);

impl StoreUrl {
    /// The backend part: the whole value, or what precedes `://`.
    pub fn scheme(&self) -> &str {
        scheme_of(&self.0)
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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn scheme_of(url: &str) -> &str {
    url.split_once("://").map_or(url, |(scheme, _)| scheme)
}

/// The schemes `--store` accepts, for messages: `embedded`.
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
}

/// Open the store `config.store` names.
pub fn open(config: &Config) -> Result<Arc<dyn MessageStore>, OpenError> {
    (config.store.backend().open)(&config.store, config)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_is_the_default_and_parses() {
        assert_eq!(StoreUrl::default().to_string(), "embedded");
        assert_eq!("embedded".parse::<StoreUrl>().unwrap(), StoreUrl::default());
        assert_eq!(supported_schemes(), "embedded");
    }

    #[test]
    fn unknown_scheme_is_one_line_naming_the_supported_ones() {
        for url in ["postgres://db/chat", "cassandra://h", "memory", ""] {
            let err = url.parse::<StoreUrl>().unwrap_err().to_string();
            assert_eq!(err, format!("unknown store `{url}`: supported: embedded"));
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
