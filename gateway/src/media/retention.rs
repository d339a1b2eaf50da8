//! Media retention (`--media-retention`): a thread that deletes objects
//! and unfinished uploads older than the retention, through
//! [`MediaBackend::delete_created_before`], every tenth of the retention
//! (at least every second, at most every ten minutes).
//!
//! Messages that reference a deleted object stay; a download of it is
//! refused with `not_allowed` ("no such media object"). Unfinished
//! uploads go the same way, so an abandoned upload's parts are reclaimed.

use std::{
    io,
    sync::Arc,
    thread::JoinHandle,
    time::{Duration, SystemTime},
};

use chatgw_media::MediaBackend;
use crossbeam_channel::{RecvTimeoutError, Sender};

use super::metrics::MediaMetrics;

/// The running retention thread.
pub(crate) struct MediaSweeper {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl MediaSweeper {
    /// Delete what is older than `retention` from `backend`, the first pass
    /// at once.
    pub(crate) fn start(
        backend: Arc<dyn MediaBackend>,
        metrics: Arc<MediaMetrics>,
        retention: Duration,
    ) -> io::Result<MediaSweeper> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let every = (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(600));
        let thread = std::thread::Builder::new().name("chatgw-media-retention".into()).spawn(move || loop {
            let cutoff = SystemTime::now() - retention;
            match backend.delete_created_before(cutoff) {
                Ok(n) => {
                    metrics.objects_expired.inc_by(n);
                }
                Err(e) => {
                    metrics.retention_errors.inc();
                    tracing::warn!(error = %e, "media retention pass failed; retrying at the next");
                }
            }
            if !matches!(stopped.recv_timeout(every), Err(RecvTimeoutError::Timeout)) {
                return;
            }
        })?;
        Ok(MediaSweeper { stop, thread })
    }

    /// Stop and wait for the thread (at most one pass in flight).
    pub(crate) fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}
