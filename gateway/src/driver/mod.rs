//! I/O drivers: what turns readiness or completions into calls on a core's
//! engine.
//!
//! A driver owns one core's poller or ring, listener, waker and receive
//! buffers. It calls the engine with bytes, hang-ups, mailbox batches and
//! ticks, hands the engine's actions to the committer and the readers
//! (`dispatch`), writes what the engine queued, and closes the sockets the
//! engine removed. It gets all of that as a `CoreWiring` from the server,
//! and follows the gateway's stage (`lifecycle`) at shutdown. Everything above it (HTTP upgrade, WebSocket frames, protocol,
//! routing, storage) is shared by every driver.
//!
//! - [`epoll`]: readiness-based, through mio; works everywhere.
//! - [`uring`]: completion-based, io_uring; used when the kernel allows it.
//!
//! `--io auto` (the default) picks io_uring when [`uring::check`] passes
//! and its rings can be set up, and epoll otherwise, logging why.

mod dispatch;
pub mod epoll;
mod intake;
mod lifecycle;
pub mod uring;

use std::{io, net::TcpListener, sync::Arc, time::Duration};

use chatgw_router::{Mailboxes, Wake};

pub(crate) use self::{
    dispatch::Dispatch,
    lifecycle::{Lifecycle, Stage, Wave},
};
use self::{epoll::EpollCore, uring::UringCore};
use crate::{
    config::IoDriver,
    core::{CoreContext, Engine},
    events::CoreBatch,
};

/// Size of each core's shared read buffer (epoll driver).
pub const READ_BUFFER_BYTES: usize = 64 * 1024;

/// How long shutdown waits for goodbyes to drain.
pub(crate) const CLOSE_DEADLINE: Duration = Duration::from_secs(3);

/// The driver the cores run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActiveDriver {
    /// epoll through mio.
    Epoll,
    /// io_uring.
    Uring,
}

impl ActiveDriver {
    /// The name `--io` and `/metrics` use.
    pub fn name(self) -> &'static str {
        match self {
            ActiveDriver::Epoll => "epoll",
            ActiveDriver::Uring => "uring",
        }
    }
}

/// What `--io` resolves to: the driver, and when `auto` fell back to epoll,
/// why.
#[derive(Debug)]
pub struct Selection {
    /// The driver to run.
    pub driver: ActiveDriver,
    /// Why io_uring is not used although `auto` would have preferred it.
    pub fallback: Option<uring::Unavailable>,
}

/// Decide from `--io` and whether io_uring is available. `--io uring`
/// without io_uring is an error; `auto` falls back to epoll with the reason.
pub fn decide(requested: IoDriver, uring: Result<(), uring::Unavailable>) -> Result<Selection, uring::Unavailable> {
    match (requested, uring) {
        (IoDriver::Epoll, _) => Ok(Selection { driver: ActiveDriver::Epoll, fallback: None }),
        (IoDriver::Uring | IoDriver::Auto, Ok(())) => Ok(Selection { driver: ActiveDriver::Uring, fallback: None }),
        (IoDriver::Uring, Err(why)) => Err(why),
        (IoDriver::Auto, Err(why)) => Ok(Selection { driver: ActiveDriver::Epoll, fallback: Some(why) }),
    }
}

/// Why the cores' drivers could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// `--io uring` was asked for and io_uring is unavailable (or a ring
    /// could not be set up).
    #[error("--io uring")]
    UringUnavailable(#[source] uring::Unavailable),
    /// An epoll poller or its waker could not be created.
    #[error("creating an epoll poller")]
    Epoll(#[source] io::Error),
    /// The thread that sets up the rings could not be started.
    #[error("starting the io_uring setup thread")]
    SetupThread(#[source] io::Error),
    /// Setting up the rings panicked.
    #[error("setting up io_uring panicked")]
    SetupPanicked,
}

/// What connects one core to the rest of the gateway, built by the server:
/// its engine's context, the mailboxes (it drains its own), the queues its
/// engine's actions go to, and the gateway's stage.
pub(crate) struct CoreWiring {
    pub(crate) engine: CoreContext,
    pub(crate) mailboxes: Arc<Mailboxes<CoreBatch>>,
    pub(crate) dispatch: Dispatch,
    pub(crate) lifecycle: Arc<Lifecycle>,
}

/// The end of a loop turn, for every driver: hand the engine's actions on,
/// then write with `flush`. Writing can ask for more (a paused sync whose
/// connection drained asks for its next page); those are handed on at
/// once rather than a turn later, which may be a tick away.
pub(crate) fn hand_off_and_flush<S>(
    engine: &mut Engine<S>,
    dispatch: &mut Dispatch,
    mut flush: impl FnMut(&mut Engine<S>),
) {
    dispatch.run(engine);
    flush(engine);
    if engine.has_actions() {
        dispatch.run(engine);
        flush(engine);
    }
}

/// One core's driver, built before its thread starts.
pub(crate) enum CoreDriver {
    Epoll(EpollCore),
    Uring(Box<UringCore>),
}

impl CoreDriver {
    /// The handle other threads use to wake this core.
    pub(crate) fn waker(&self) -> Arc<dyn Wake> {
        match self {
            CoreDriver::Epoll(d) => d.waker(),
            CoreDriver::Uring(d) => d.waker(),
        }
    }

    /// Run the core until shutdown completes.
    pub(crate) fn run(self, core: u16, wiring: CoreWiring, listener: TcpListener) -> io::Result<()> {
        match self {
            CoreDriver::Epoll(d) => d.run(core, wiring, listener),
            CoreDriver::Uring(d) => d.run(core, wiring, listener),
        }
    }
}

/// Build `workers` cores' drivers as `--io` asks: io_uring if chosen and
/// every ring can be set up (under `auto`, a failure falls back to epoll
/// with a warning), else epoll.
pub(crate) fn build_cores(
    requested: IoDriver,
    workers: usize,
    uring_buffers: u16,
) -> Result<(ActiveDriver, Vec<CoreDriver>), DriverError> {
    let selection = if requested == IoDriver::Epoll {
        Selection { driver: ActiveDriver::Epoll, fallback: None }
    } else {
        match on_setup_thread(|| uring::check().and_then(|()| try_uring_cores(workers, uring_buffers)))? {
            Ok(cores) => {
                tracing::info!(driver = "uring", "I/O driver: io_uring");
                return Ok((ActiveDriver::Uring, cores.into_iter().map(|c| CoreDriver::Uring(Box::new(c))).collect()));
            }
            Err(why) => decide(requested, Err(why)).map_err(DriverError::UringUnavailable)?,
        }
    };
    match &selection.fallback {
        Some(why) => {
            tracing::warn!(driver = "epoll", reason = %why, "I/O driver: epoll, because io_uring is unavailable")
        }
        None => tracing::info!(driver = "epoll", "I/O driver: epoll"),
    }
    let cores: Vec<EpollCore> =
        (0..workers).map(|_| EpollCore::new()).collect::<Result<_, _>>().map_err(DriverError::Epoll)?;
    Ok((ActiveDriver::Epoll, cores.into_iter().map(CoreDriver::Epoll).collect()))
}

fn try_uring_cores(workers: usize, buffers: u16) -> Result<Vec<UringCore>, uring::Unavailable> {
    (0..workers).map(|_| UringCore::new(buffers)).collect()
}

/// Run `f` on a thread of its own that ends right after. The kernel ties a
/// ring to each thread that created or used it and, when the ring is torn
/// down, interrupts that thread's blocking system call (EINTR); a ring made
/// on the caller's thread would later interrupt whatever the caller (a
/// program embedding the gateway, a test) is blocked in.
fn on_setup_thread<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, DriverError> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("chatgw-io-setup".into())
            .spawn_scoped(s, f)
            .map_err(DriverError::SetupThread)?
            .join()
            .map_err(|_| DriverError::SetupPanicked)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disabled() -> Result<(), uring::Unavailable> {
        uring::check_sysctl(Some("2\n"))
    }

    #[test]
    fn auto_falls_back_to_epoll_with_the_reason() {
        let s = decide(IoDriver::Auto, disabled()).unwrap();
        assert_eq!(s.driver, ActiveDriver::Epoll);
        let why = s.fallback.expect("a reason").to_string();
        assert!(why.contains("io_uring_disabled = 2"), "{why}");
    }

    #[test]
    fn uring_when_unavailable_is_an_error_and_epoll_never_asks() {
        assert!(decide(IoDriver::Uring, disabled()).is_err());
        let s = decide(IoDriver::Epoll, disabled()).unwrap();
        assert_eq!((s.driver, s.fallback.is_none()), (ActiveDriver::Epoll, true));
        assert_eq!(decide(IoDriver::Auto, Ok(())).unwrap().driver, ActiveDriver::Uring);
        assert_eq!(decide(IoDriver::Uring, Ok(())).unwrap().driver, ActiveDriver::Uring);
    }
}
