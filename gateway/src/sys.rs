//! The few system calls the gateway makes itself (everything else goes
//! through mio and std): the open-files limit.

/// Descriptors kept free for the store, logs and the reserve descriptor.
const RESERVED_FDS: u64 = 256;

/// Raise the soft open-files limit to the hard limit, and return the new
/// soft limit (or `None` if it cannot be read).
pub(crate) fn raise_nofile_limit() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one `rlimit` into the valid, exclusively borrowed `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: setrlimit reads one valid `rlimit`; raising the soft limit up to the hard limit is always permitted.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    Some(lim.rlim_cur)
}

/// The default `--max-connections`: what the open-files limit allows.
pub(crate) fn default_max_connections() -> usize {
    let limit = raise_nofile_limit().unwrap_or(1024);
    limit.saturating_sub(RESERVED_FDS).clamp(1, usize::MAX as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_readable_and_leaves_a_reserve() {
        let limit = raise_nofile_limit().expect("getrlimit works");
        assert!(limit >= 64);
        assert_eq!(default_max_connections() as u64, limit.saturating_sub(RESERVED_FDS).max(1));
    }
}
