//! Media by signed URL (docs/MEDIA.md): the gateway signs, the storage
//! moves the bytes.
//!
//! - `settings`: `--media` and its limits;
//! - `requests`: the three media frames, answered by the reader threads
//!   (membership in the store, then the backend);
//! - `quota`: bytes per user per UTC day;
//! - `listener`: with the embedded backend, the HTTP listener that takes
//!   part `PUT`s and serves `GET`s, a bounded pool of transfer threads;
//! - `retention`: deletes objects older than `--media-retention`;
//! - `metrics`: `chatgw_media_*`.
//!
//! The backend is a [`MediaBackend`]; this module builds the one `--media`
//! names and never looks past the trait, except to hand the embedded one
//! to its listener.

pub(crate) mod listener;
pub(crate) mod metrics;
mod quota;
pub(crate) mod requests;
mod retention;
pub mod settings;

use std::{net::SocketAddr, path::Path, sync::Arc};

use chatgw_media::{embedded::EmbeddedBackend, MediaBackend, S3Backend};

use self::{listener::MediaListener, metrics::MediaMetrics, quota::Quota, retention::MediaSweeper};
use crate::media::settings::{MediaSettings, MediaStoreUrl};

/// What the reader threads answer media frames with.
pub(crate) struct Media {
    pub(crate) backend: Arc<dyn MediaBackend>,
    pub(crate) settings: MediaSettings,
    pub(crate) quota: Quota,
    pub(crate) metrics: Arc<MediaMetrics>,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Media").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// The media threads of a running gateway.
pub(crate) struct Running {
    pub(crate) media: Arc<Media>,
    listener: Option<MediaListener>,
    sweeper: Option<MediaSweeper>,
}

/// Why media could not start.
#[derive(Debug, thiserror::Error)]
pub enum MediaStartError {
    /// The media listener's address could not be bound.
    #[error("binding the media address {addr} (set --media-listen to another address or off)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
    /// The backend could not be opened.
    #[error("media backend: {0}")]
    Backend(String),
    /// A thread could not be started.
    #[error("starting the media threads")]
    Thread(#[source] std::io::Error),
}

impl Running {
    /// The embedded backend's listener address.
    pub(crate) fn listen_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().map(MediaListener::addr)
    }

    /// Stop the listener and the retention thread.
    pub(crate) fn stop(self) {
        if let Some(l) = self.listener {
            l.stop();
        }
        if let Some(s) = self.sweeper {
            s.stop();
        }
    }
}

/// The embedded backend under `<data>/media`, its secret and its URL.
fn embedded(settings: &MediaSettings, data: &Path, addr: SocketAddr) -> Result<EmbeddedBackend, MediaStartError> {
    let root = data.join("media");
    let secret = match &settings.secret {
        Some(s) => s.clone(),
        None => crate::config::load_or_create_secret(&root).map_err(|e| MediaStartError::Backend(e.to_string()))?,
    };
    let base = settings.url.clone().unwrap_or_else(|| format!("http://{addr}"));
    EmbeddedBackend::open(&root, secret.as_bytes(), &base)
        .map_err(|e| MediaStartError::Backend(format!("opening {}: {e}", root.display())))
}

/// The S3 backend of `url` (`s3://bucket?region=...&endpoint=...`), with
/// the credentials of `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
/// `AWS_SESSION_TOKEN`; clients reach the bucket, so no listener here.
fn s3(url: &str) -> Result<Arc<dyn MediaBackend>, MediaStartError> {
    let backend = S3Backend::from_url(url).map_err(|e| MediaStartError::Backend(format!("{url}: {e}")))?;
    Ok(Arc::new(backend))
}

/// Start media as `settings` say, or nothing when media are off.
pub(crate) fn start(
    settings: &MediaSettings,
    data: &Path,
    metrics: Arc<MediaMetrics>,
) -> Result<Option<Running>, MediaStartError> {
    if !settings.enabled() {
        return Ok(None);
    }
    let (backend, listener): (Arc<dyn MediaBackend>, _) = match &settings.store {
        MediaStoreUrl::Embedded => {
            let Some(addr) = settings.listen else { return Ok(None) };
            let socket = listener::bind(addr).map_err(|source| MediaStartError::Bind { addr, source })?;
            let bound = socket.local_addr().map_err(|source| MediaStartError::Bind { addr, source })?;
            let backend = Arc::new(embedded(settings, data, bound)?);
            let listener = MediaListener::start(socket, backend.clone(), metrics.clone(), settings.transfers)
                .map_err(MediaStartError::Thread)?;
            (backend, Some(listener))
        }
        MediaStoreUrl::S3(url) => (s3(url)?, None),
    };
    let sweeper = match settings.retention.is_zero() {
        true => None,
        false => Some(
            MediaSweeper::start(backend.clone(), metrics.clone(), settings.retention)
                .map_err(MediaStartError::Thread)?,
        ),
    };
    let media = Arc::new(Media { backend, settings: settings.clone(), quota: Quota::default(), metrics });
    Ok(Some(Running { media, listener, sweeper }))
}
