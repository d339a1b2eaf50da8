//! The open-file limit: every connection is a file descriptor.
//!
//! Shells usually start programs with a soft limit of 1024 descriptors and
//! a much higher hard limit. A process may raise its own soft limit up to
//! the hard one, so the load generator does that itself instead of asking
//! for `ulimit -n` every time, and refuses up front (rather than failing
//! half-way through a ramp with EMFILE) when even the hard limit is too low.

/// Descriptors kept for everything that is not a client connection (the
/// poller, stdio, the metrics request, the JSON file...).
const SPARE_FDS: u64 = 64;

/// The hard limit on open files: the most any one process can have.
pub(crate) fn hard_limit() -> anyhow::Result<u64> {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `rl` is a valid, writable rlimit for the call to fill in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        anyhow::bail!("getrlimit(RLIMIT_NOFILE): {}", std::io::Error::last_os_error());
    }
    Ok(rl.rlim_max)
}

/// Most connections one process can hold under a hard limit of `hard`.
pub(crate) fn conns_under(hard: u64) -> u64 {
    hard.saturating_sub(SPARE_FDS)
}

/// Make sure `conns` connections fit under the descriptor limit, raising
/// the soft limit if needed. Returns the soft limit now in force.
pub(crate) fn ensure_fds(conns: u64) -> anyhow::Result<u64> {
    let need = conns.saturating_add(SPARE_FDS);
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `rl` is a valid, writable rlimit for the call to fill in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        anyhow::bail!("getrlimit(RLIMIT_NOFILE): {}", std::io::Error::last_os_error());
    }
    let (soft, hard) = (rl.rlim_cur, rl.rlim_max);
    if soft >= need {
        return Ok(soft);
    }
    anyhow::ensure!(
        hard >= need,
        "{conns} connections need about {need} file descriptors but the hard limit is {hard}: \
         use fewer connections, or raise it (ulimit -Hn, or LimitNOFILE= for a service)"
    );
    rl.rlim_cur = hard;
    // SAFETY: `rl` is a valid rlimit with rlim_cur <= rlim_max.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) } != 0 {
        anyhow::bail!("setrlimit(RLIMIT_NOFILE, {hard}): {}", std::io::Error::last_os_error());
    }
    Ok(hard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_need_is_met_and_an_absurd_one_refused() {
        assert!(ensure_fds(10).unwrap() >= 10 + SPARE_FDS);
        assert!(ensure_fds(u64::MAX / 2).is_err());
        assert!(hard_limit().unwrap() >= 10 + SPARE_FDS);
        assert_eq!(conns_under(20_000), 19_936);
    }
}
