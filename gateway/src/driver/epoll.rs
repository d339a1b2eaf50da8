//! The epoll driver (mio): edge-triggered readiness, one poller per core.

use std::{
    io::{self, Read, Write},
    sync::Arc,
    time::{Duration, Instant},
};

use chatgw_router::Wake;
use mio::{net::TcpListener, Events, Interest, Poll, Token, Waker};

use super::intake::{is_out_of_descriptors, SpareFd};
use super::{hand_off_and_flush, CoreWiring, Stage};
use crate::{core::Engine, limits::Refusal};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// Reads per readiness event before the connection yields to others.
const READS_PER_TURN: usize = 8;

/// A mio waker as a router [`Wake`].
pub struct MioWake(pub Waker);

impl Wake for MioWake {
    fn wake(&self) {
        if let Err(e) = self.0.wake() {
            tracing::error!(error = %e, "waking a core failed");
        }
    }
}

/// One core's poller and waker, made before the core's thread starts so the
/// waker can be handed to the router.
pub struct EpollCore {
    poll: Poll,
    waker: Arc<MioWake>,
}

impl EpollCore {
    /// A poller with its waker registered.
    pub fn new() -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(MioWake(Waker::new(poll.registry(), WAKER)?));
        Ok(EpollCore { poll, waker })
    }

    /// The handle other threads use to wake this core.
    pub fn waker(&self) -> Arc<dyn Wake> {
        self.waker.clone()
    }

    /// Run the core until shutdown completes.
    pub(crate) fn run(self, core: u16, wiring: CoreWiring, listener: std::net::TcpListener) -> io::Result<()> {
        let CoreWiring { engine: ctx, mailboxes, mut dispatch, lifecycle } = wiring;
        let EpollCore { mut poll, waker: _waker } = self;
        listener.set_nonblocking(true)?;
        let mut listener = Some(TcpListener::from_std(listener));
        if let Some(l) = listener.as_mut() {
            poll.registry().register(l, LISTENER, Interest::READABLE)?;
        }
        let mut engine: Engine<mio::net::TcpStream> = Engine::new(core, ctx);
        let mut events = Events::with_capacity(1024);
        let mut readbuf = vec![0u8; super::READ_BUFFER_BYTES];
        let mut again: Vec<usize> = Vec::new();
        let mut again_next: Vec<usize> = Vec::new();
        let mut next_tick = Instant::now() + Duration::from_secs(1);
        let mut closing_since: Option<Instant> = None;
        let mut spare = SpareFd::new();
        loop {
            // Removed connections close here: nothing of theirs is in flight.
            engine.closed_sockets().for_each(drop);
            let now = Instant::now();
            let timeout = if !again.is_empty() { Duration::ZERO } else { next_tick.saturating_duration_since(now) };
            if let Err(e) = poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            engine.update_clock();
            for slot in again.drain(..) {
                read_ready(&mut engine, slot, &mut readbuf, &mut again_next, false);
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => {
                        if let Some(l) = listener.as_mut() {
                            accept_all(&mut engine, l, &poll, &mut spare);
                        }
                    }
                    WAKER => {}
                    Token(slot) => {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            let until_eof = ev.is_read_closed() || ev.is_error();
                            read_ready(&mut engine, slot, &mut readbuf, &mut again_next, until_eof);
                        }
                        if ev.is_writable() {
                            engine.on_writable(slot);
                        }
                    }
                }
            }
            std::mem::swap(&mut again, &mut again_next);
            engine.drain_mailbox(&mailboxes);
            if Instant::now() >= next_tick {
                engine.on_tick();
                next_tick += Duration::from_secs(1);
            }
            hand_off_and_flush(&mut engine, &mut dispatch, |e| e.flush(|s, b| s.write(b)));

            let stage = lifecycle.stage();
            if stage >= Stage::Refusing {
                engine.refusing = true;
                if let Some(mut l) = listener.take() {
                    let _ = poll.registry().deregister(&mut l);
                }
                let wave = lifecycle.wave();
                engine.close_wave(wave.share_per_mille, wave.spread_ms);
            }
            if stage >= Stage::Draining && !engine.draining {
                engine.stop_intake();
                lifecycle.report_intake_stopped();
            }
            if stage >= Stage::Closing {
                let since = *closing_since.get_or_insert_with(|| {
                    engine.close_all();
                    Instant::now()
                });
                engine.flush(|s, b| s.write(b));
                if engine.len() == 0 || since.elapsed() >= super::CLOSE_DEADLINE {
                    return Ok(());
                }
                // Poll again soon to finish writing goodbyes.
                next_tick = next_tick.min(Instant::now() + Duration::from_millis(10));
            }
        }
    }
}

fn accept_all(engine: &mut Engine<mio::net::TcpStream>, listener: &mut TcpListener, poll: &Poll, spare: &mut SpareFd) {
    loop {
        match listener.accept() {
            Ok((mut stream, peer)) => {
                if let Err(refusal) = engine.admit(peer.ip()) {
                    let _ = stream.write(refusal.response());
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let slot = engine.conns.vacant_key();
                if let Err(e) =
                    poll.registry().register(&mut stream, Token(slot), Interest::READABLE | Interest::WRITABLE)
                {
                    engine.unadmit(peer.ip());
                    tracing::warn!(error = %e, "registering a connection failed");
                    continue;
                }
                let got = engine.accept(stream, peer.ip());
                debug_assert_eq!(got, slot);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_out_of_descriptors(&e) => {
                // Give the reserved descriptor back, take one connection off
                // the backlog, refuse it cleanly, and reserve again; otherwise
                // the client would wait in the backlog until it gives up.
                // (accept fails this way even with an empty backlog, so an
                // empty backlog ends the loop.)
                spare.release();
                let refused = match listener.accept() {
                    Ok((mut stream, _)) => {
                        engine.ctx.metrics.connections_refused.inc();
                        let _ = stream.write(Refusal::Full.response());
                        // The refused connection closes here, before the spare is taken back.
                        true
                    }
                    Err(_) => false,
                };
                spare.reserve();
                if !refused {
                    return;
                }
                spare.warn_out_of_descriptors();
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                return;
            }
        }
    }
}

/// Read what `slot` has, up to a fair share; a connection with more left is
/// queued in `again` for the next turn.
///
/// A read that fills less than the buffer took everything the socket held,
/// so reading stops there rather than asking again for an `EAGAIN` (one
/// system call fewer per readable socket): with edge-triggered readiness,
/// bytes or a hang-up that arrive later raise a new event. Only when the
/// event already said the peer closed (`until_eof`) does it read on, to
/// see the end of the stream now.
fn read_ready(
    engine: &mut Engine<mio::net::TcpStream>,
    slot: usize,
    buf: &mut [u8],
    again: &mut Vec<usize>,
    until_eof: bool,
) {
    for _ in 0..READS_PER_TURN {
        let Some(sock) = engine.sock_mut(slot) else {
            return;
        };
        match sock.read(buf) {
            Ok(0) => return engine.on_hangup(slot),
            Ok(n) if n < buf.len() && !until_eof => return engine.on_bytes(slot, &mut buf[..n]),
            Ok(n) => engine.on_bytes(slot, &mut buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return engine.on_hangup(slot),
        }
    }
    again.push(slot);
}
