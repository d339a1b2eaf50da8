//! The listener's side of the loop: the multishot accept, admitting a
//! connection or refusing it with 503, and resuming after accept failed.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use io_uring::{cqueue, opcode, types::Fd};
use socket2::SockRef;

use super::{
    super::{
        sock::UringSock,
        token::{token, ConnId, Op, MAX_SLOTS},
    },
    arm_recv, cancel, CoreLoop,
};
use crate::{core::Engine, driver::intake::is_out_of_descriptors, limits::Refusal};

impl CoreLoop {
    pub(super) fn on_accept(&mut self, engine: &mut Engine<UringSock>, res: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.accept_armed = false;
        }
        if res >= 0 {
            // SAFETY: the kernel just made this descriptor for us and nothing else owns it.
            let fd = unsafe { OwnedFd::from_raw_fd(res) };
            if engine.refusing || self.exiting {
                return; // Shutting down: closed at once, like the epoll driver's backlog.
            }
            self.admit(engine, fd);
        } else {
            let e = io::Error::from_raw_os_error(-res);
            if is_out_of_descriptors(&e) {
                self.refuse_backlog(engine);
            } else if res != -libc::ECANCELED {
                tracing::warn!(error = %e, "accept failed");
            }
        }
        if !self.accept_armed && !engine.refusing {
            if res >= 0 {
                self.arm_accept();
            } else if self.spare.is_held() {
                // Resume on the next connection, not in a loop of failures.
                self.arm_listener_poll();
            } else {
                // Another core took the reserve descriptor's place: nothing
                // can be refused now, and a poll would fire at once for the
                // waiting backlog. Try again at the next tick.
                self.accept_paused = true;
            }
        }
    }

    /// Once a second: resume accepting if it was paused.
    pub(super) fn resume_accepting(&mut self) {
        if std::mem::take(&mut self.accept_paused) {
            self.arm_listener_poll();
        }
    }

    /// A new connection: to the engine, with its receive posted; or
    /// refused (503, 429) as the engine's limits say.
    fn admit(&mut self, engine: &mut Engine<UringSock>, fd: OwnedFd) {
        let sock = SockRef::from(&fd);
        // The multishot accept does not return the address; a connection
        // whose peer is already gone has none and is closed here.
        let Some(peer) = sock.peer_addr().ok().and_then(|a| a.as_socket()).map(|a| a.ip()) else { return };
        let admitted = if engine.conns.vacant_key() >= MAX_SLOTS {
            engine.ctx.metrics.connections_refused.inc();
            Err(Refusal::Full)
        } else {
            engine.admit(peer)
        };
        if let Err(refusal) = admitted {
            let _ = sock.send_with_flags(refusal.response(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
            return;
        }
        let _ = sock.set_nodelay(true);
        let slot = engine.accept(UringSock::new(fd), peer);
        let Some(generation) = engine.endpoint(slot).map(|ep| ep.generation) else {
            return;
        };
        if let Some(sock) = engine.sock_mut(slot) {
            sock.id = ConnId { slot: slot as u32, generation };
            arm_recv(&mut self.subs, &mut self.recvs_in_flight, self.bufs.group(), sock);
        }
    }

    /// Out of descriptors: give the reserve back, take connections off the
    /// backlog one at a time and answer each 503 (see the epoll driver).
    fn refuse_backlog(&mut self, engine: &Engine<UringSock>) {
        let Some(listener) = self.listener.as_ref() else { return };
        loop {
            self.spare.release();
            let refused = match listener.accept() {
                Ok((stream, _)) => {
                    engine.ctx.metrics.connections_refused.inc();
                    let _ = SockRef::from(&stream)
                        .send_with_flags(Refusal::Full.response(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
                    true
                }
                Err(_) => false,
            };
            self.spare.reserve();
            if !refused {
                return;
            }
            self.spare.warn_out_of_descriptors();
        }
    }

    pub(super) fn arm_accept(&mut self) {
        let Some(listener) = self.listener.as_ref() else { return };
        if self.accept_armed || self.exiting {
            return;
        }
        let e = opcode::AcceptMulti::new(Fd(listener.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(token(Op::Accept));
        // SAFETY: a multishot accept without an address references no memory.
        unsafe { self.subs.push(e) };
        self.accept_armed = true;
    }

    fn arm_listener_poll(&mut self) {
        let Some(listener) = self.listener.as_ref() else { return };
        if self.poll_armed || self.exiting {
            return;
        }
        let e = opcode::PollAdd::new(Fd(listener.as_raw_fd()), libc::POLLIN as u32)
            .build()
            .user_data(token(Op::ListenerPoll));
        // SAFETY: a poll references no memory.
        unsafe { self.subs.push(e) };
        self.poll_armed = true;
    }

    pub(super) fn stop_accepting(&mut self) {
        if self.accept_armed {
            cancel(&mut self.subs, token(Op::Accept));
        }
        if self.poll_armed {
            cancel(&mut self.subs, token(Op::ListenerPoll));
        }
    }
}
