//! What every driver does when it runs out of descriptors: the reserve
//! descriptor that lets such a process still accept a connection in order
//! to refuse it (with [`crate::limits::Refusal::Full`]'s 503).

use std::time::{Duration, Instant};

/// Whether `accept` failed because the process or the system is out of
/// descriptors.
pub(crate) fn is_out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// One descriptor held in reserve so that a gateway out of descriptors can
/// still accept a connection in order to refuse it.
pub(crate) struct SpareFd {
    file: Option<std::fs::File>,
    warned: Option<Instant>,
}

impl SpareFd {
    pub(crate) fn new() -> Self {
        let mut s = SpareFd { file: None, warned: None };
        s.reserve();
        s
    }

    pub(crate) fn reserve(&mut self) {
        if self.file.is_none() {
            self.file = std::fs::File::open("/dev/null").ok();
        }
    }

    /// Whether the reserve descriptor is held (taking it back can fail when
    /// another thread took the free descriptor first).
    pub(crate) fn is_held(&self) -> bool {
        self.file.is_some()
    }

    pub(crate) fn release(&mut self) {
        self.file = None;
    }

    /// Say so in the log, at most every ten seconds.
    pub(crate) fn warn_out_of_descriptors(&mut self) {
        if self.warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            self.warned = Some(Instant::now());
            tracing::warn!("out of file descriptors: refusing connections with 503 (raise the open-files limit or lower --max-connections)");
        }
    }
}
