//! Whether this kernel lets the gateway use io_uring, and if not, why.
//!
//! io_uring can be missing (kernels before 5.1, or built without it),
//! switched off (`/proc/sys/kernel/io_uring_disabled`, seccomp filters in
//! containers), short of locked memory (rings are accounted to
//! `RLIMIT_MEMLOCK` before 5.12), or too old for what this driver needs:
//! multishot receive into a provided-buffer ring (6.0) and timed waits
//! (`IORING_FEAT_EXT_ARG`, 5.11). `--io auto` falls back to epoll on any of
//! these and logs the reason; `--io uring` refuses to start with it.

use std::io;

use io_uring::{opcode, IoUring, Probe};

/// Why io_uring cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// The administrator switched io_uring off with this sysctl value.
    #[error("io_uring is disabled by /proc/sys/kernel/io_uring_disabled = {0}")]
    Disabled(u8),
    /// The kernel is older than the driver needs.
    #[error("kernel {0} is older than 6.0 (multishot receive into provided buffers)")]
    KernelTooOld(String),
    /// Creating a ring failed.
    #[error("io_uring_setup failed: {reason} ({source})")]
    Setup {
        /// What the error usually means here.
        reason: &'static str,
        /// The error from the kernel.
        source: io::Error,
    },
    /// The kernel lacks an operation the driver submits.
    #[error("the kernel's io_uring lacks the {0} operation")]
    MissingOpcode(&'static str),
    /// The kernel lacks a ring feature the driver relies on.
    #[error("the kernel's io_uring lacks {0}")]
    MissingFeature(&'static str),
}

impl Unavailable {
    /// A setup error, with what it usually means.
    pub(crate) fn setup(source: io::Error) -> Self {
        let reason = match source.raw_os_error() {
            Some(libc::ENOSYS) => "not built into this kernel",
            Some(libc::EPERM) | Some(libc::EACCES) => {
                "not permitted (seccomp, a container policy, or io_uring_disabled)"
            }
            Some(libc::ENOMEM) => "out of memory or the locked-memory limit (ulimit -l) is too small",
            _ => "unexpected error",
        };
        Unavailable::Setup { reason, source }
    }
}

/// Check everything the driver needs, without keeping anything.
pub fn check() -> Result<(), Unavailable> {
    check_sysctl(std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").ok().as_deref())?;
    check_kernel_release(&kernel_release())?;
    let ring = IoUring::new(8).map_err(Unavailable::setup)?;
    check_ring(&ring)
}

/// `io_uring_disabled`: 0 allows everyone, 1 only members of
/// `io_uring_group` (or CAP_SYS_ADMIN; setup then tells), 2 nobody. A
/// missing file (kernels before 6.6) allows everyone.
pub(crate) fn check_sysctl(contents: Option<&str>) -> Result<(), Unavailable> {
    match contents.map(str::trim) {
        Some("2") => Err(Unavailable::Disabled(2)),
        _ => Ok(()),
    }
}

/// The running kernel's release, like `6.8.0-45-generic`.
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).unwrap_or_default()
}

/// Multishot receive needs 6.0. A release that does not parse is let
/// through: the ring setup and probe below still guard.
pub(crate) fn check_kernel_release(release: &str) -> Result<(), Unavailable> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|s| s.parse::<u32>().ok());
    match major {
        Some(m) if m < 6 => Err(Unavailable::KernelTooOld(release.to_owned())),
        _ => Ok(()),
    }
}

/// The features and operations of a ring the driver uses.
pub(crate) fn check_ring(ring: &IoUring) -> Result<(), Unavailable> {
    let params = ring.params();
    if !params.is_feature_ext_arg() {
        return Err(Unavailable::MissingFeature("timed waits (IORING_FEAT_EXT_ARG)"));
    }
    if !params.is_feature_nodrop() {
        return Err(Unavailable::MissingFeature("completions that are never dropped (IORING_FEAT_NODROP)"));
    }
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| Unavailable::Setup { reason: "probe failed", source: e })?;
    let needed = [
        (opcode::AcceptMulti::CODE, "accept"),
        (opcode::RecvMulti::CODE, "recv"),
        (opcode::Send::CODE, "send"),
        (opcode::Read::CODE, "read"),
        (opcode::AsyncCancel::CODE, "async_cancel"),
        (opcode::PollAdd::CODE, "poll_add"),
    ];
    match needed.into_iter().find(|(code, _)| !probe.is_supported(*code)) {
        Some((_, name)) => Err(Unavailable::MissingOpcode(name)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sysctl_decides_only_when_it_says_nobody() {
        assert!(matches!(check_sysctl(Some("2\n")), Err(Unavailable::Disabled(2))));
        assert!(check_sysctl(Some("0\n")).is_ok());
        assert!(check_sysctl(Some("1\n")).is_ok(), "group members may; setup tells");
        assert!(check_sysctl(None).is_ok(), "kernels before 6.6 have no sysctl");
    }

    #[test]
    fn kernels_before_6_are_too_old() {
        assert!(matches!(check_kernel_release("5.15.0-91-generic"), Err(Unavailable::KernelTooOld(_))));
        assert!(check_kernel_release("6.0.0").is_ok());
        assert!(check_kernel_release("6.18.44-fc").is_ok());
        assert!(check_kernel_release("").is_ok());
    }

    #[test]
    fn setup_errors_say_what_they_mean() {
        let e = Unavailable::setup(io::Error::from_raw_os_error(libc::ENOMEM));
        assert!(e.to_string().contains("locked-memory limit"), "{e}");
        let e = Unavailable::setup(io::Error::from_raw_os_error(libc::EPERM));
        assert!(e.to_string().contains("seccomp"), "{e}");
    }
}
