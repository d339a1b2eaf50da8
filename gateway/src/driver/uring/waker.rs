//! Cross-core wake-ups: an eventfd that other threads write and the core's
//! ring reads.
//!
//! The core keeps one read of the eventfd posted to its ring and posts the
//! next after each completion, so a wake-up ends the core's wait like any
//! other completion and costs the waker one `write(2)`.

use std::{
    fs::File,
    io::{self, Write},
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
};

use chatgw_router::Wake;
use io_uring::{opcode, squeue, types::Fd};

use super::token::{token, Op};

/// The handle other threads use to wake one io_uring core.
pub struct UringWake {
    eventfd: File,
}

impl UringWake {
    /// A new eventfd, blocking (so the ring polls it rather than failing
    /// the read with EAGAIN).
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: eventfd has no memory arguments; a negative result is an error.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just made `fd` and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(UringWake { eventfd: File::from(fd) })
    }

    fn raw_fd(&self) -> RawFd {
        self.eventfd.as_raw_fd()
    }
}

impl Wake for UringWake {
    fn wake(&self) {
        // Adds 1 to the counter; it only fails if the counter would overflow,
        // which a read in flight prevents.
        if let Err(e) = (&self.eventfd).write(&1u64.to_ne_bytes()) {
            tracing::error!(error = %e, "waking a core failed");
        }
    }
}

/// The core's side: the 8-byte buffer the read fills, and whether a read is
/// in flight.
pub(crate) struct WakeRead {
    buf: Box<[u8; 8]>,
    pub(crate) armed: bool,
}

impl WakeRead {
    pub(crate) fn new() -> Self {
        WakeRead { buf: Box::new([0; 8]), armed: false }
    }

    /// The read to post for `wake`, marking it in flight. The buffer is
    /// only released when no read is in flight (see `Drop`).
    pub(crate) fn arm(&mut self, wake: &UringWake) -> squeue::Entry {
        self.armed = true;
        opcode::Read::new(Fd(wake.raw_fd()), self.buf.as_mut_ptr(), 8).build().user_data(token(Op::Wake))
    }
}

impl Drop for WakeRead {
    fn drop(&mut self) {
        if self.armed {
            // The kernel may still write the counter into it.
            std::mem::forget(std::mem::replace(&mut self.buf, Box::new([0; 8])));
        }
    }
}
