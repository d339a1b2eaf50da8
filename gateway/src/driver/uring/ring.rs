//! The ring itself: its size, and a queue of submissions that never fails
//! for lack of room.
//!
//! Sizing: 256 submission entries (64 B each) and 4096 completion entries
//! (16 B each) are about 80 KiB per core, far inside an 8 MiB locked-memory
//! limit on kernels that still charge rings to it. Multishot receives can
//! produce more completions than the queue holds between two waits; the
//! kernel then keeps the extra ones aside (IORING_FEAT_NODROP, required by
//! `support`) rather than dropping them.

use std::{collections::VecDeque, io, time::Duration};

use io_uring::{squeue, types::SubmitArgs, IoUring};

const SUBMISSION_ENTRIES: u32 = 256;
const COMPLETION_ENTRIES: u32 = 4096;

/// A ring sized as above.
pub(crate) fn build() -> io::Result<IoUring> {
    IoUring::builder().setup_cqsize(COMPLETION_ENTRIES).setup_clamp().build(SUBMISSION_ENTRIES)
}

/// Submissions made during a loop turn, handed to the kernel together at the
/// turn's end (one `io_uring_enter` when they fit the queue).
#[derive(Default)]
pub(crate) struct Submissions {
    queued: VecDeque<squeue::Entry>,
}

impl Submissions {
    /// Queue `entry`.
    ///
    /// # Safety
    ///
    /// Any memory `entry` points to (send data, read buffer) must stay valid
    /// and unmoved until its completion arrives.
    pub(crate) unsafe fn push(&mut self, entry: squeue::Entry) {
        self.queued.push_back(entry);
    }

    /// Submit everything queued, then wait up to `timeout` for at least one
    /// completion (not at all for a zero timeout).
    pub(crate) fn submit_and_wait(&mut self, ring: &mut IoUring, timeout: Duration) -> io::Result<()> {
        while !self.queued.is_empty() {
            {
                let mut sq = ring.submission();
                while let Some(e) = self.queued.front() {
                    // SAFETY: the contract of `push` covers every queued entry.
                    if unsafe { sq.push(e) }.is_err() {
                        break;
                    }
                    self.queued.pop_front();
                }
            }
            if !self.queued.is_empty() {
                match ring.submit() {
                    Ok(_) => {}
                    // The completion queue is full: reap first, submit the rest next turn.
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let result = if timeout.is_zero() {
            ring.submit().map(drop)
        } else {
            let ts = timeout.into();
            ring.submitter().submit_with_args(1, &SubmitArgs::new().timespec(&ts)).map(drop)
        };
        match result {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)) => Ok(()),
            other => other,
        }
    }
}
