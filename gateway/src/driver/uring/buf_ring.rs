//! A provided-buffer ring: the receive buffers one core shares among all
//! its connections.
//!
//! The epoll driver reads every socket into one 64 KiB buffer per core. A
//! completion-based receive needs its buffer while it waits, so a buffer per
//! connection would cost memory for every idle connection. Instead the core
//! registers a ring of buffers with the kernel; a multishot receive takes
//! one when data arrives and names it in the completion. The driver hands
//! those bytes to the engine and gives the buffer back at once, so a core
//! needs only enough buffers for what arrives in one loop turn.
//!
//! Layout (see `io_uring_register_buf_ring(3)`): a page-aligned array of
//! 16-byte entries (address, length, buffer id); the 16-bit tail shares the
//! first entry's last two bytes. Userspace writes entries and publishes them
//! by a release store of the tail; the kernel only reads.

use std::{
    alloc::{alloc_zeroed, dealloc, Layout},
    io,
    ptr::{addr_of_mut, NonNull},
    sync::atomic::{AtomicU16, Ordering},
};

use io_uring::Submitter;

/// Bytes of one receive buffer.
pub(crate) const BUFFER_BYTES: usize = 4096;

/// One ring entry, as the kernel's `struct io_uring_buf`.
#[repr(C)]
struct RawEntry {
    addr: u64,
    len: u32,
    bid: u16,
    /// In entry 0: the ring's tail. Elsewhere unused.
    tail: u16,
}

const _: () = assert!(std::mem::size_of::<RawEntry>() == 16);

/// The ring and its buffers. Memory is freed on drop only once the ring is
/// unregistered; a ring still registered is leaked rather than freed under
/// the kernel.
pub(crate) struct BufRing {
    entries: NonNull<RawEntry>,
    entries_layout: Layout,
    buffers: NonNull<u8>,
    buffers_layout: Layout,
    count: u16,
    tail: u16,
    group: u16,
    registered: bool,
}

// SAFETY: a `BufRing` exclusively owns both allocations (the raw pointers
// are never shared), and the kernel's use of them is tied to the ring, not
// to a thread; it moves to its core's thread once, before use.
unsafe impl Send for BufRing {}

impl BufRing {
    /// `count` buffers (a power of two, at most 32768) for buffer group
    /// `group`, all of them available to the kernel once registered.
    pub(crate) fn new(count: u16, group: u16) -> io::Result<Self> {
        if !count.is_power_of_two() || count > 32768 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "buffer count must be a power of two <= 32768"));
        }
        let n = usize::from(count);
        let invalid = |_| io::Error::from(io::ErrorKind::InvalidInput);
        let entries_layout =
            Layout::from_size_align(n * std::mem::size_of::<RawEntry>(), page_size()).map_err(invalid)?;
        let buffers_layout = Layout::from_size_align(n * BUFFER_BYTES, 64).map_err(invalid)?;
        // SAFETY: both layouts have a non-zero size (count >= 1).
        let entries = NonNull::new(unsafe { alloc_zeroed(entries_layout) }.cast::<RawEntry>());
        // SAFETY: as above.
        let buffers = NonNull::new(unsafe { alloc_zeroed(buffers_layout) });
        let (Some(entries), Some(buffers)) = (entries, buffers) else {
            // SAFETY: each pointer, if allocated, came from alloc_zeroed with its layout.
            unsafe {
                if let Some(e) = entries {
                    dealloc(e.as_ptr().cast(), entries_layout);
                }
                if let Some(b) = buffers {
                    dealloc(b.as_ptr(), buffers_layout);
                }
            }
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        };
        let mut ring =
            BufRing { entries, entries_layout, buffers, buffers_layout, count, tail: 0, group, registered: false };
        for bid in 0..count {
            ring.push_entry(bid);
        }
        ring.publish_tail();
        Ok(ring)
    }

    /// The buffer group receives name to take buffers from this ring.
    pub(crate) fn group(&self) -> u16 {
        self.group
    }

    /// Hand the ring to `submitter`'s io_uring.
    pub(crate) fn register(&mut self, submitter: &Submitter<'_>) -> io::Result<()> {
        // SAFETY: the entries stay allocated while registered: `Drop` frees
        // them only after a successful `unregister`, and leaks them otherwise.
        unsafe { submitter.register_buf_ring_with_flags(self.entries.as_ptr() as u64, self.count, self.group, 0)? };
        self.registered = true;
        Ok(())
    }

    /// Take the ring back from the kernel. Call only once no receive that
    /// selects from this group is in flight.
    pub(crate) fn unregister(&mut self, submitter: &Submitter<'_>) -> io::Result<()> {
        if self.registered {
            submitter.unregister_buf_ring(self.group)?;
            self.registered = false;
        }
        Ok(())
    }

    /// Lend buffer `bid`, which the kernel filled with `len` bytes and named
    /// in a completion, to `f`, then give it back to the kernel. `None` (and
    /// the buffer is not given back) if `bid` or `len` is out of range, which
    /// a correct kernel never reports.
    pub(crate) fn with_buffer<R>(&mut self, bid: u16, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        if bid >= self.count || len > BUFFER_BYTES {
            return None;
        }
        // SAFETY: buffer `bid` lies inside the allocation (bid < count) and
        // `len` within it. The kernel named it in a completion, so it wrote
        // the bytes and will not touch the buffer until `push_entry` below
        // hands it back; `&mut self` keeps any other borrow of it out for
        // the lifetime of the slice.
        let data =
            unsafe { std::slice::from_raw_parts_mut(self.buffers.as_ptr().add(usize::from(bid) * BUFFER_BYTES), len) };
        let r = f(data);
        self.push_entry(bid);
        self.publish_tail();
        Some(r)
    }

    /// Write buffer `bid` into the entry at the local tail and advance it.
    fn push_entry(&mut self, bid: u16) {
        let index = usize::from(self.tail & (self.count - 1));
        let entry = self.entries.as_ptr();
        // SAFETY: index < count, so the entry is inside the allocation. It is
        // past the published tail, so the kernel does not read it now; only
        // the fields other than `tail` are written, through raw pointers, so
        // no reference overlaps the tail the kernel may be reading.
        unsafe {
            let e = entry.add(index);
            addr_of_mut!((*e).addr).write(self.buffers.as_ptr().add(usize::from(bid) * BUFFER_BYTES) as u64);
            addr_of_mut!((*e).len).write(BUFFER_BYTES as u32);
            addr_of_mut!((*e).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Make every entry pushed so far visible to the kernel.
    fn publish_tail(&self) {
        // SAFETY: the tail is the `tail` field of entry 0, inside the
        // allocation and aligned for u16; the kernel reads it with acquire
        // ordering, and only this thread writes it, always atomically.
        let tail = unsafe { AtomicU16::from_ptr(addr_of_mut!((*self.entries.as_ptr()).tail)) };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.registered {
            // The kernel may still write into the buffers: never free them.
            tracing::warn!("buffer ring still registered at exit; leaking it");
            return;
        }
        // SAFETY: both pointers came from alloc_zeroed with these layouts, and
        // the kernel no longer knows them.
        unsafe {
            dealloc(self.entries.as_ptr().cast(), self.entries_layout);
            dealloc(self.buffers.as_ptr(), self.buffers_layout);
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|n| n.is_power_of_two()).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use std::{io::Write, os::fd::AsRawFd, os::unix::net::UnixStream};

    use io_uring::{
        cqueue, opcode,
        types::{CancelBuilder, Fd},
        IoUring,
    };

    use super::*;

    /// Receive with `ring` on `sock` until `want` bytes came, giving each
    /// buffer back after copying it. Re-arms after every completion without
    /// the MORE flag (ENOBUFS included); returns the bytes and how many
    /// times the ring ran dry.
    fn receive(uring: &mut IoUring, ring: &mut BufRing, sock: &UnixStream, want: usize) -> (Vec<u8>, usize) {
        let mut got = Vec::new();
        let mut dry = 0;
        let mut armed = false;
        while got.len() < want {
            if !armed {
                let e = opcode::RecvMulti::new(Fd(sock.as_raw_fd()), ring.group()).build().user_data(7);
                // SAFETY: the buffer ring outlives the receive (cancelled at the end of the test).
                unsafe { uring.submission().push(&e).unwrap() };
                armed = true;
            }
            uring.submit_and_wait(1).unwrap();
            let cqes: Vec<cqueue::Entry> = uring.completion().collect();
            for c in cqes {
                if !cqueue::more(c.flags()) {
                    armed = false;
                }
                if c.result() == -libc::ENOBUFS {
                    dry += 1;
                    continue;
                }
                assert!(c.result() > 0, "receive failed: {}", c.result());
                let bid = cqueue::buffer_select(c.flags()).expect("a buffer");
                ring.with_buffer(bid, c.result() as usize, |d| got.extend_from_slice(d)).unwrap();
            }
        }
        (got, dry)
    }

    #[test]
    fn every_byte_arrives_in_order_through_a_tiny_ring_that_runs_dry() {
        let mut uring = IoUring::new(8).unwrap();
        let mut ring = BufRing::new(2, 3).unwrap();
        ring.register(&uring.submitter()).unwrap();
        let (mut tx, rx) = UnixStream::pair().unwrap();
        // Five buffers' worth before the first receive: two fill the ring,
        // the rest waits in the socket until buffers come back.
        let data: Vec<u8> = (0..5 * BUFFER_BYTES + 123).map(|i| (i * 7 % 251) as u8).collect();
        tx.write_all(&data).unwrap();
        let (got, _) = receive(&mut uring, &mut ring, &rx, data.len());
        assert_eq!(got, data);

        // Without giving buffers back the ring runs dry (ENOBUFS ends the
        // multishot); after giving them back nothing is lost.
        tx.write_all(&data).unwrap();
        let e = opcode::RecvMulti::new(Fd(rx.as_raw_fd()), ring.group()).build().user_data(8);
        // SAFETY: as above.
        unsafe { uring.submission().push(&e).unwrap() };
        let mut held = Vec::new();
        let mut ended = false;
        while !ended {
            uring.submit_and_wait(1).unwrap();
            for c in uring.completion() {
                ended |= !cqueue::more(c.flags());
                if c.result() > 0 {
                    held.push((cqueue::buffer_select(c.flags()).unwrap(), c.result() as usize));
                } else {
                    assert_eq!(c.result(), -libc::ENOBUFS);
                }
            }
        }
        assert_eq!(held.len(), 2, "both buffers taken before the ring ran dry");
        let mut got = Vec::new();
        for (bid, len) in held {
            ring.with_buffer(bid, len, |d| got.extend_from_slice(d)).unwrap();
        }
        let (rest, _) = receive(&mut uring, &mut ring, &rx, data.len() - got.len());
        got.extend(rest);
        assert_eq!(got, data);

        assert!(ring.with_buffer(2, 1, |_| ()).is_none(), "no such buffer");
        assert!(ring.with_buffer(0, BUFFER_BYTES + 1, |_| ()).is_none(), "longer than a buffer");
        // Cancel whatever is still armed before the ring goes.
        let e = opcode::AsyncCancel2::new(CancelBuilder::any()).build().user_data(9);
        // SAFETY: a cancellation references no memory.
        unsafe { uring.submission().push(&e).unwrap() };
        while !uring.completion().any(|c| c.user_data() == 9) {
            uring.submit_and_wait(1).unwrap();
        }
        ring.unregister(&uring.submitter()).unwrap();
    }

    #[test]
    fn sizes_must_be_powers_of_two() {
        assert!(BufRing::new(3, 0).is_err());
        assert!(BufRing::new(0, 0).is_err());
        assert!(BufRing::new(4, 0).is_ok());
    }
}
