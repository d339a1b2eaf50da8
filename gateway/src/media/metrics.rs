//! Media counters (`chatgw_media_*`).

use prometheus_client::{
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

/// What media requests and transfers did.
#[derive(Debug, Default)]
pub struct MediaMetrics {
    /// Upload slots given.
    pub uploads_started: Counter,
    /// Uploads completed.
    pub uploads_completed: Counter,
    /// Download URLs given.
    pub download_urls: Counter,
    /// Bytes received by the embedded listener (parts kept).
    pub bytes_in: Counter,
    /// Bytes sent by the embedded listener.
    pub bytes_out: Counter,
    /// Part `PUT`s and object `GET`s the embedded listener served.
    pub transfers: Family<[(&'static str, &'static str); 1], Counter>,
    /// Refused frames and HTTP requests, by reason.
    pub refusals: Family<[(&'static str, &'static str); 1], Counter>,
    /// Objects and unfinished uploads deleted by the media retention.
    pub objects_expired: Counter,
    /// Media retention passes that failed.
    pub retention_errors: Counter,
}

impl MediaMetrics {
    /// Create and register under `r` (prefix `chatgw`).
    pub(crate) fn new(r: &mut Registry) -> Self {
        let m = MediaMetrics::default();
        macro_rules! add {
            ($field:ident, $help:literal) => {
                r.register(concat!("media_", stringify!($field)), $help, m.$field.clone())
            };
        }
        add!(uploads_started, "Media upload slots given (upload_media)");
        add!(uploads_completed, "Media uploads completed (complete_media)");
        add!(download_urls, "Media download URLs given (download_media)");
        add!(bytes_in, "Media bytes received by the embedded media listener");
        add!(bytes_out, "Media bytes sent by the embedded media listener");
        add!(transfers, "Part PUTs and object GETs served by the embedded media listener, by method");
        add!(refusals, "Media frames and HTTP requests refused, by reason");
        add!(objects_expired, "Media objects and unfinished uploads deleted by --media-retention");
        add!(retention_errors, "Media retention passes that failed");
        m
    }

    /// Count one refusal.
    pub(crate) fn refused(&self, reason: &'static str) {
        self.refusals.get_or_create(&[("reason", reason)]).inc();
    }
}
