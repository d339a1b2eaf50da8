//! One core's io_uring loop: completions in, engine calls out.
//!
//! Each turn submits everything queued in one `io_uring_enter` and waits
//! for a completion or the next one-second tick, then:
//!
//! | completion                | engine call                              |
//! |---------------------------|------------------------------------------|
//! | accept (multishot)        | `accept` (or a 503 when full)            |
//! | receive with a buffer     | `on_bytes`, then the buffer goes back    |
//! | receive of 0 bytes, error | `on_hangup`                              |
//! | send, complete            | `on_writable` (flush what queued since)  |
//! | send, short               | the rest is sent from the same buffer    |
//! | eventfd read              | (mailboxes are drained every turn)       |
//!
//! then drains the mailboxes, ticks once a second, hands the engine's
//! actions on (`hand_off_and_flush`), and flushes: each
//! connection with bytes queued and no send in flight gets one send of all
//! of them; with a send in flight the engine keeps queuing (and applies
//! `--max-outbound`) until it completes.
//!
//! This file is the loop, flushing, closing and teardown; `accept` is the
//! listener's side and `recv_send` a connection's completions.

mod accept;
mod recv_send;

use std::{
    collections::HashMap,
    io, mem,
    net::TcpListener,
    os::fd::RawFd,
    sync::Arc,
    time::{Duration, Instant},
};

use io_uring::{
    cqueue, opcode,
    types::{CancelBuilder, Fd},
    IoUring,
};

use super::{
    buf_ring::BufRing,
    ring::Submissions,
    sock::{Closing, UringSock},
    token::{conn_token, decode, token, ConnId, ConnIdHash, Op},
    waker::{UringWake, WakeRead},
};
use crate::{
    core::{Engine, Wrote},
    driver::{hand_off_and_flush, intake::SpareFd, CoreWiring, Stage, CLOSE_DEADLINE},
};

/// How long a removed connection's last send may wait for a peer that does
/// not read before it is cancelled (as long as the engine's closing grace).
const SEND_GRACE: Duration = Duration::from_secs(2);
/// How long teardown waits for the kernel to finish cancelled operations.
const TEARDOWN_WAIT: Duration = Duration::from_secs(1);

/// Bytes of one send in flight: the connection's output queue itself,
/// taken from the engine (not copied), and given back to the engine for
/// reuse when the send completes. The kernel reads `buf[pos..]`; the vector
/// is never touched until the send's completion removes it from the table.
struct SendBuf {
    fd: RawFd,
    buf: Vec<u8>,
    pos: usize,
}

/// A core's ring and everything the kernel may be using on its behalf.
pub(super) struct CoreLoop {
    ring: IoUring,
    subs: Submissions,
    bufs: BufRing,
    wake: Arc<UringWake>,
    wake_read: WakeRead,
    listener: Option<TcpListener>,
    accept_armed: bool,
    poll_armed: bool,
    /// Accepting waits for the next tick (out of descriptors, no reserve).
    accept_paused: bool,
    spare: SpareFd,
    sends: HashMap<ConnId, SendBuf, ConnIdHash>,
    closing: Closing,
    rearm: Vec<ConnId>,
    recvs_in_flight: usize,
    cqes: Vec<cqueue::Entry>,
    /// Tearing down: nothing new is posted.
    exiting: bool,
}

impl CoreLoop {
    /// `listener` must be non-blocking.
    pub(super) fn new(ring: IoUring, bufs: BufRing, wake: Arc<UringWake>, listener: TcpListener) -> Self {
        CoreLoop {
            ring,
            subs: Submissions::default(),
            bufs,
            wake,
            wake_read: WakeRead::new(),
            listener: Some(listener),
            accept_armed: false,
            poll_armed: false,
            accept_paused: false,
            spare: SpareFd::new(),
            sends: HashMap::with_hasher(ConnIdHash),
            closing: Closing::default(),
            rearm: Vec::new(),
            recvs_in_flight: 0,
            cqes: Vec::with_capacity(1024),
            exiting: false,
        }
    }

    /// Run the core until shutdown completes.
    pub(super) fn run(mut self, core: u16, wiring: CoreWiring) -> io::Result<()> {
        let CoreWiring { engine: ctx, mailboxes, mut dispatch, lifecycle } = wiring;
        let mut engine: Engine<UringSock> = Engine::new(core, ctx);
        self.arm_accept();
        self.arm_wake();
        let mut next_tick = Instant::now() + Duration::from_secs(1);
        let mut closing_since: Option<Instant> = None;
        let result = loop {
            let timeout = next_tick.saturating_duration_since(Instant::now());
            if let Err(e) = self.subs.submit_and_wait(&mut self.ring, timeout) {
                break Err(e);
            }
            engine.update_clock();
            self.complete(&mut engine);
            engine.drain_mailbox(&mailboxes);
            if Instant::now() >= next_tick {
                engine.on_tick();
                self.cancel_stuck_sends();
                if !engine.refusing {
                    self.resume_accepting();
                }
                next_tick += Duration::from_secs(1);
            }
            hand_off_and_flush(&mut engine, &mut dispatch, |e| self.flush(e));

            let stage = lifecycle.stage();
            if stage >= Stage::Refusing {
                if !engine.refusing {
                    engine.refusing = true;
                    self.stop_accepting();
                }
                let wave = lifecycle.wave();
                engine.close_wave(wave.share_per_mille, wave.spread_ms);
            }
            if stage >= Stage::Draining && !engine.draining {
                engine.stop_intake();
                lifecycle.report_intake_stopped();
            }
            if engine.refusing && !self.accept_armed && !self.poll_armed {
                // The kernel holds no accept on it: closing it leaves the
                // SO_REUSEPORT group, so new connections go elsewhere.
                self.listener = None;
            }
            if stage >= Stage::Closing {
                let since = *closing_since.get_or_insert_with(|| {
                    engine.close_all();
                    Instant::now()
                });
                self.flush(&mut engine);
                if (engine.len() == 0 && self.closing.is_empty()) || since.elapsed() >= CLOSE_DEADLINE {
                    break Ok(());
                }
                // Wake again soon to finish writing goodbyes.
                next_tick = next_tick.min(Instant::now() + Duration::from_millis(10));
            }
            self.rearm_receives(&mut engine);
        };
        self.teardown(&mut engine);
        result
    }

    /// Handle every completion that is ready.
    fn complete(&mut self, engine: &mut Engine<UringSock>) {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.extend(self.ring.completion());
        for cqe in &cqes {
            self.reap(engine);
            let (res, flags) = (cqe.result(), cqe.flags());
            match decode(cqe.user_data()) {
                Some((Op::Accept, _)) => self.on_accept(engine, res, flags),
                Some((Op::ListenerPoll, _)) => {
                    self.poll_armed = false;
                    if !engine.refusing {
                        self.arm_accept();
                    }
                }
                Some((Op::Wake, _)) => {
                    self.wake_read.armed = false;
                    if res < 0 && res != -libc::ECANCELED {
                        tracing::warn!(error = %io::Error::from_raw_os_error(-res), "reading the waker failed");
                    }
                    self.arm_wake();
                }
                Some((Op::Cancel, _)) => {}
                Some((Op::Recv, id)) => self.on_recv(engine, id, res, flags),
                Some((Op::Send, id)) => self.on_send(engine, id, res),
                None => tracing::warn!(user_data = cqe.user_data(), "completion of an unknown operation"),
            }
        }
        self.reap(engine);
        cqes.clear();
        self.cqes = cqes;
    }

    /// Write what the engine queued: one send per connection without one in flight.
    fn flush(&mut self, engine: &mut Engine<UringSock>) {
        let (subs, sends) = (&mut self.subs, &mut self.sends);
        engine.flush_with(|sock, queue, pos| {
            if sock.sending {
                return Wrote::Blocked;
            }
            let send = SendBuf { fd: sock.raw_fd(), buf: mem::take(queue), pos: mem::replace(pos, 0) };
            submit_send(subs, sock.id, &send);
            sends.insert(sock.id, send);
            sock.sending = true;
            Wrote::Progress
        });
        self.reap(engine);
    }

    /// Take the sockets the engine removed: cancel their receives and keep
    /// each until nothing of it is in flight.
    fn reap(&mut self, engine: &mut Engine<UringSock>) {
        let now = Instant::now();
        for sock in engine.closed_sockets() {
            if sock.recv_armed {
                cancel(&mut self.subs, conn_token(Op::Recv, sock.id));
            }
            self.closing.hold(sock, now);
        }
    }

    /// Removed connections whose peer stopped reading: cancel their sends.
    fn cancel_stuck_sends(&mut self) {
        let Some(deadline) = Instant::now().checked_sub(SEND_GRACE) else { return };
        let stuck: Vec<ConnId> = self.closing.stuck_sends(deadline).collect();
        for id in stuck {
            cancel(&mut self.subs, conn_token(Op::Send, id));
        }
    }

    /// Post receives that ended (buffers ran out, or the kernel ended them).
    fn rearm_receives(&mut self, engine: &mut Engine<UringSock>) {
        for id in std::mem::take(&mut self.rearm) {
            if !is_live(engine, id) || self.exiting {
                continue;
            }
            if let Some(sock) = engine.sock_mut(id.slot as usize) {
                if !sock.recv_armed {
                    arm_recv(&mut self.subs, &mut self.recvs_in_flight, self.bufs.group(), sock);
                }
            }
        }
    }

    fn sock_mut<'a>(
        &'a mut self,
        engine: &'a mut Engine<UringSock>,
        id: ConnId,
        live: bool,
    ) -> Option<&'a mut UringSock> {
        if live {
            engine.sock_mut(id.slot as usize)
        } else {
            self.closing.get_mut(id)
        }
    }

    fn arm_wake(&mut self) {
        if self.wake_read.armed || self.exiting {
            return;
        }
        let e = self.wake_read.arm(&self.wake);
        // SAFETY: the 8-byte buffer belongs to `wake_read`, which never frees
        // it while the read is in flight.
        unsafe { self.subs.push(e) };
    }

    /// Anything the kernel may still write to or read from our memory.
    fn memory_in_flight(&self) -> bool {
        self.recvs_in_flight > 0 || !self.sends.is_empty() || self.wake_read.armed
    }

    /// Cancel everything and wait for the kernel to let go of our memory;
    /// what it still holds after [`TEARDOWN_WAIT`] is leaked, never freed.
    fn teardown(&mut self, engine: &mut Engine<UringSock>) {
        self.exiting = true;
        let e = opcode::AsyncCancel2::new(CancelBuilder::any()).build().user_data(token(Op::Cancel));
        // SAFETY: a cancellation references no memory.
        unsafe { self.subs.push(e) };
        let deadline = Instant::now() + TEARDOWN_WAIT;
        while (self.memory_in_flight() || self.accept_armed || self.poll_armed) && Instant::now() < deadline {
            if let Err(e) = self.subs.submit_and_wait(&mut self.ring, Duration::from_millis(10)) {
                tracing::warn!(error = %e, "waiting for cancellations failed");
                break;
            }
            self.complete(engine);
        }
        if self.memory_in_flight() {
            tracing::warn!(
                receives = self.recvs_in_flight,
                sends = self.sends.len(),
                "operations still in flight at exit; leaking their buffers"
            );
            mem::forget(mem::take(&mut self.sends));
        } else if let Err(e) = self.bufs.unregister(&self.ring.submitter()) {
            tracing::warn!(error = %e, "unregistering the buffer ring failed");
        }
    }
}

/// Whether `id` is the connection in its slot now (not a removed one
/// whose slot was reused).
fn is_live(engine: &Engine<UringSock>, id: ConnId) -> bool {
    engine.endpoint(id.slot as usize).is_some_and(|ep| ep.generation == id.generation)
}

fn arm_recv(subs: &mut Submissions, in_flight: &mut usize, group: u16, sock: &mut UringSock) {
    let e = opcode::RecvMulti::new(Fd(sock.raw_fd()), group).build().user_data(conn_token(Op::Recv, sock.id));
    // SAFETY: the receive writes only into the buffer ring, which stays
    // registered until every receive has completed (see `teardown`).
    unsafe { subs.push(e) };
    sock.recv_armed = true;
    *in_flight += 1;
}

fn submit_send(subs: &mut Submissions, id: ConnId, send: &SendBuf) {
    let rest = &send.buf[send.pos..];
    let len = rest.len().min(u32::MAX as usize) as u32;
    let e = opcode::Send::new(Fd(send.fd), rest.as_ptr(), len)
        .flags(libc::MSG_NOSIGNAL)
        .build()
        .user_data(conn_token(Op::Send, id));
    // SAFETY: the bytes are the heap buffer of a `SendBuf` that stays in the
    // send table, unmodified, until this send's completion (moving the
    // `Vec` within the table does not move its heap buffer).
    unsafe { subs.push(e) };
}

fn cancel(subs: &mut Submissions, target: u64) {
    let e = opcode::AsyncCancel::new(target).build().user_data(token(Op::Cancel));
    // SAFETY: a cancellation references no memory.
    unsafe { subs.push(e) };
}
