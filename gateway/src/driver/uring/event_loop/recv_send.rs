//! A connection's receive and send completions: bytes to the engine,
//! buffers back to the ring, short sends continued, ended receives posted
//! again.

use std::time::Instant;

use io_uring::cqueue;

use super::{
    super::{sock::UringSock, token::ConnId},
    is_live, submit_send, CoreLoop, SEND_GRACE,
};
use crate::core::Engine;

impl CoreLoop {
    pub(super) fn on_recv(&mut self, engine: &mut Engine<UringSock>, id: ConnId, res: i32, flags: u32) {
        let slot = id.slot as usize;
        let live = is_live(engine, id);
        let more = cqueue::more(flags);
        if !more {
            self.recvs_in_flight = self.recvs_in_flight.saturating_sub(1);
            if let Some(sock) = self.sock_mut(engine, id, live) {
                sock.recv_armed = false;
            }
        }
        let len = usize::try_from(res).unwrap_or(0);
        let readable = match cqueue::buffer_select(flags) {
            // Bytes for a connection that is gone are dropped; the buffer goes back either way.
            Some(bid) => self
                .bufs
                .with_buffer(bid, len, |data| {
                    if live && !data.is_empty() {
                        engine.on_bytes(slot, data);
                    }
                })
                .is_some(),
            None => len == 0,
        };
        if !readable {
            // Bytes the driver cannot read: the stream has a hole, so the
            // connection cannot go on. A correct kernel never gets here.
            tracing::error!(?id, len, flags, "a receive completion without a usable buffer; dropping the connection");
            if live {
                engine.on_hangup(slot);
            } else {
                self.closing.release_if_idle(id);
            }
            return;
        }
        // Data, a lack of buffers (they are back by the end of this turn) or
        // an interruption: the receive goes on, or is posted again if it
        // ended; the rest of the data waits in the socket.
        if res == -libc::ENOBUFS {
            engine.ctx.metrics.recv_buffers_exhausted.inc();
        }
        let goes_on = res > 0 || res == -libc::ENOBUFS || res == -libc::EINTR || res == -libc::EAGAIN;
        if goes_on {
            if !more && live {
                self.rearm.push(id);
            }
        } else if live && res != -libc::ECANCELED {
            // End of stream (0) or a failed socket.
            engine.on_hangup(slot);
        }
        if !live {
            self.closing.release_if_idle(id);
        }
    }

    pub(super) fn on_send(&mut self, engine: &mut Engine<UringSock>, id: ConnId, res: i32) {
        let live = is_live(engine, id);
        let Some(send) = self.sends.get_mut(&id) else {
            tracing::warn!(?id, "completion of a send the driver does not know");
            return;
        };
        let retry = match res {
            n if n > 0 => {
                send.pos += n as usize;
                let overdue = !live
                    && Instant::now().checked_sub(SEND_GRACE).is_some_and(|d| self.closing.held_since_before(id, d));
                send.pos < send.buf.len() && !overdue
            }
            e => e == -libc::EINTR || e == -libc::EAGAIN,
        };
        if retry && !self.exiting {
            // A short write: the rest, from the same buffer.
            submit_send(&mut self.subs, id, send);
            return;
        }
        let complete = send.pos >= send.buf.len();
        if let Some(done) = self.sends.remove(&id) {
            engine.recycle_out(done.buf);
        }
        if let Some(sock) = self.sock_mut(engine, id, live) {
            sock.sending = false;
        }
        match (live, complete) {
            (true, true) => engine.on_writable(id.slot as usize),
            (true, false) => engine.on_hangup(id.slot as usize),
            (false, _) => self.closing.release_if_idle(id),
        }
    }
}
