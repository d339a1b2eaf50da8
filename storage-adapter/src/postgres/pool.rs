//! A small blocking connection pool, and what a lost connection means.
//!
//! Why our own: the gateway calls the store from a few threads (the
//! committer, readers), each blocking on one statement at a time, so a
//! mutex-guarded stack of at most `size` connections is all the pooling
//! needed, with no runtime or extra threads. A connection is opened lazily
//! when none is idle, and forgotten as soon as the server closed it (a
//! restart, `pg_terminate_backend`, a network cut), so after an outage the
//! next user opens a fresh one instead of failing on a dead socket. One
//! connection found closed means the others opened before it are most
//! likely dead too (a restarted server closes them all), so every idle
//! connection is dropped with it rather than failing one caller after
//! another.
//!
//! Reconnecting backs off: after a failed connect, further connects within
//! a pause (50 ms, doubling to 500 ms) fail at once with the same cause
//! instead of each waiting up to `connect_timeout` on an unreachable host,
//! so an outage costs callers no time and the server no connection storm
//! when it comes back. The first connect after the pause tries for real.
//!
//! [`cause_of`] is where a PostgreSQL error becomes an [`ErrorCause`]:
//! what an operator reads on `/healthz` and in the metrics.

use std::{
    collections::HashMap,
    error::Error,
    fmt,
    ops::{Deref, DerefMut},
    sync::{Condvar, Mutex, PoisonError},
    time::{Duration, Instant},
};

use postgres::{Client, Config, NoTls, Statement};

use crate::{ErrorCause, StoreError, WriteFailure};

/// Pause after the first failed connect.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// Longest pause between connects while the server stays unreachable: the
/// most a recovery waits for the pool once the server is back.
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// Settings every connection gets: durable commits whatever the server's
/// default, and UTC so that `timestamptz` values never depend on it.
const SESSION: &str = "SET synchronous_commit TO on; SET TIME ZONE 'UTC'";

/// One connection and its prepared statements.
pub(super) struct Connection {
    client: Client,
    prepared: HashMap<&'static str, Statement>,
}

impl Connection {
    /// The statement for `sql`, prepared once per connection: afterwards
    /// each use is one round trip instead of two.
    pub(super) fn prepared(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.prepared.insert(sql, s.clone());
        Ok(s)
    }

    pub(super) fn client(&mut self) -> &mut Client {
        &mut self.client
    }
}

#[derive(Default)]
struct Slots {
    idle: Vec<Connection>,
    /// Connections handed out or idle.
    open: usize,
    /// Set while connecting fails.
    backoff: Option<Backoff>,
}

/// Connecting failed: no new attempt before `until`.
struct Backoff {
    until: Instant,
    pause: Duration,
    cause: ErrorCause,
    /// The last connect error, as text.
    last: String,
}

/// The error a caller gets while reconnecting backs off.
#[derive(Debug)]
struct BackingOff {
    cause: ErrorCause,
    last: String,
    left: Duration,
}

impl fmt::Display for BackingOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (next connect attempt in {} ms)", self.last, self.left.as_millis())
    }
}

impl Error for BackingOff {}

/// At most `size` connections to one database.
pub(super) struct Pool {
    config: Config,
    size: usize,
    slots: Mutex<Slots>,
    freed: Condvar,
}

impl Pool {
    pub(super) fn new(config: Config, size: usize) -> Self {
        Pool { config, size: size.max(1), slots: Mutex::new(Slots::default()), freed: Condvar::new() }
    }

    /// An idle connection, a new one if fewer than `size` are open, or the
    /// next one given back.
    pub(super) fn get(&self) -> Result<Pooled<'_>, StoreError> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(connection) = slots.idle.pop() {
                return Ok(Pooled { pool: self, connection: Some(connection) });
            }
            if slots.open < self.size {
                if let Some(b) = slots.backoff.as_ref().filter(|b| Instant::now() < b.until) {
                    let left = b.until.saturating_duration_since(Instant::now());
                    return Err(StoreError::backend(
                        "connect",
                        BackingOff { cause: b.cause, last: b.last.clone(), left },
                    ));
                }
                slots.open += 1;
                drop(slots);
                return match self.connect() {
                    Ok(connection) => {
                        self.slots.lock().unwrap_or_else(PoisonError::into_inner).backoff = None;
                        Ok(Pooled { pool: self, connection: Some(connection) })
                    }
                    Err(e) => {
                        self.connect_failed(&e);
                        self.forget_one();
                        Err(e)
                    }
                };
            }
            slots = self.freed.wait(slots).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Close every idle connection (after an outage they may all be dead).
    pub(super) fn clear_idle(&self) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let n = slots.idle.len();
        slots.idle.clear();
        slots.open -= n;
        self.freed.notify_all();
    }

    /// Start or lengthen the pause before the next connect.
    fn connect_failed(&self, e: &StoreError) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let pause = slots.backoff.as_ref().map_or(FIRST_PAUSE, |b| (b.pause * 2).min(MAX_PAUSE));
        let last = std::iter::successors(Some(e as &(dyn Error + 'static)), |e| (*e).source())
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(": ");
        slots.backoff = Some(Backoff { until: Instant::now() + pause, pause, cause: e.cause(), last });
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        let mut client = self.config.connect(NoTls).map_err(|e| StoreError::backend("connect", e))?;
        client.batch_execute(SESSION).map_err(|e| StoreError::backend("set up session", e))?;
        Ok(Connection { client, prepared: HashMap::new() })
    }

    fn forget_one(&self) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.open -= 1;
        self.freed.notify_one();
    }

    /// `connection` was closed by the server: forget it and every idle one.
    fn lost(&self) {
        self.forget_one();
        self.clear_idle();
    }

    fn give_back(&self, connection: Connection) {
        if connection.client.is_closed() {
            return self.lost();
        }
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.idle.push(connection);
        self.freed.notify_one();
    }
}

/// A connection on loan; goes back to the pool (or is forgotten, if the
/// server closed it) when dropped.
pub(super) struct Pooled<'a> {
    pool: &'a Pool,
    /// `Some` until dropped.
    connection: Option<Connection>,
}

impl Pooled<'_> {
    /// Drop the connection instead of giving it back: after an error whose
    /// outcome is unknown (a commit cut off mid-flight) it is not reused.
    pub(super) fn discard(mut self) {
        match self.connection.take() {
            Some(c) if c.client.is_closed() => self.pool.lost(),
            _ => self.pool.forget_one(),
        }
    }
}

impl Deref for Pooled<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // Invariant: `connection` is `Some` until `drop` or `discard`, which consume self.
        self.connection.as_ref().unwrap_or_else(|| unreachable!("a pooled connection is present until dropped"))
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        // Invariant: as in `deref`.
        self.connection.as_mut().unwrap_or_else(|| unreachable!("a pooled connection is present until dropped"))
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            self.pool.give_back(connection);
        }
    }
}

/// The cause of a store error that involves PostgreSQL: found along the
/// error's source chain (`None` when nothing there comes from this
/// backend). `op` is what the store was doing: an I/O error while
/// connecting means the server is unreachable, on an open connection that
/// it was lost.
pub(crate) fn cause_of(op: &str, error: &(dyn Error + 'static)) -> Option<ErrorCause> {
    let connecting = op == "connect";
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(b) = e.downcast_ref::<BackingOff>() {
            return Some(b.cause);
        }
        if let Some(pg) = e.downcast_ref::<postgres::Error>() {
            if let Some(code) = pg.code() {
                return Some(cause_of_sqlstate(code.code(), connecting));
            }
            if pg.is_closed() {
                return Some(ErrorCause::ConnectionLost);
            }
            let io =
                std::iter::successors(pg.source(), |e| (*e).source()).find_map(|e| e.downcast_ref::<std::io::Error>());
            return Some(match io.map(std::io::Error::kind) {
                Some(std::io::ErrorKind::TimedOut) => ErrorCause::Timeout,
                _ if connecting => ErrorCause::Unreachable,
                Some(_) => ErrorCause::ConnectionLost,
                None => return None,
            });
        }
        next = e.source();
    }
    None
}

/// The cause an SQLSTATE code stands for.
fn cause_of_sqlstate(code: &str, connecting: bool) -> ErrorCause {
    match code {
        "53100" => ErrorCause::Write(WriteFailure::NoSpace),
        "25006" => ErrorCause::Write(WriteFailure::ReadOnly),
        // admin_shutdown, crash_shutdown: the server closed the session.
        "57P01" | "57P02" => ErrorCause::ConnectionLost,
        // cannot_connect_now: starting up or shutting down.
        "57P03" => ErrorCause::Unreachable,
        // query_canceled: statement_timeout, or cancelled by an operator.
        "57014" => ErrorCause::Timeout,
        // undefined table, column, function; no such schema.
        "42P01" | "42703" | "42883" | "3F000" => ErrorCause::Schema,
        c if c.starts_with("08") && connecting => ErrorCause::Unreachable,
        c if c.starts_with("08") => ErrorCause::ConnectionLost,
        c => match c.as_bytes() {
            [a, b, ..] if a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric() => {
                ErrorCause::Server { class: [*a, *b] }
            }
            _ => ErrorCause::Server { class: *b"XX" },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_what_an_operator_fixes() {
        assert_eq!(cause_of_sqlstate("57P01", false), ErrorCause::ConnectionLost);
        assert_eq!(cause_of_sqlstate("57P03", true), ErrorCause::Unreachable);
        assert_eq!(cause_of_sqlstate("08006", true), ErrorCause::Unreachable);
        assert_eq!(cause_of_sqlstate("08006", false), ErrorCause::ConnectionLost);
        assert_eq!(cause_of_sqlstate("57014", false), ErrorCause::Timeout);
        assert_eq!(cause_of_sqlstate("42P01", false), ErrorCause::Schema);
        assert_eq!(cause_of_sqlstate("53100", false), ErrorCause::Write(WriteFailure::NoSpace));
        assert_eq!(cause_of_sqlstate("25006", false), ErrorCause::Write(WriteFailure::ReadOnly));
        let refused = cause_of_sqlstate("23505", false);
        assert_eq!((refused.as_str(), refused.sqlstate_class()), ("server", Some("23")));
        assert_eq!(refused.to_string(), "server (SQLSTATE class 23)");
    }

    #[test]
    fn an_unreachable_server_backs_off_and_says_so() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config: Config = format!("postgres://nobody@127.0.0.1:{port}/none").parse().unwrap();
        let pool = Pool::new(config, 2);
        let first = pool.get().err().expect("nothing listens");
        assert_eq!(first.cause(), ErrorCause::Unreachable, "{first}");
        let backoff = |pool: &Pool| {
            let slots = pool.slots.lock().unwrap();
            slots.backoff.as_ref().map(|b| (b.pause, b.until)).expect("backing off")
        };
        assert_eq!(backoff(&pool).0, FIRST_PAUSE);
        // Within the pause, without a connect. The pause is stretched here
        // so that a test thread descheduled for 50 ms still sees it.
        pool.slots.lock().unwrap().backoff.as_mut().unwrap().until = Instant::now() + Duration::from_secs(60);
        let second = pool.get().err().expect("still backing off");
        assert_eq!(second.cause(), ErrorCause::Unreachable);
        assert!(second.to_string().contains("next connect attempt in"), "{second}");
        assert_eq!(backoff(&pool).0, FIRST_PAUSE, "a refusal within the pause is not a connect");
        // Once the pause is over the next get connects for real, fails, and
        // doubles the pause.
        pool.slots.lock().unwrap().backoff.as_mut().unwrap().until = Instant::now();
        let third = pool.get().err().expect("still nothing");
        assert_eq!(third.cause(), ErrorCause::Unreachable);
        assert!(!third.to_string().contains("next connect attempt in"), "a real connect: {third}");
        assert_eq!(backoff(&pool).0, FIRST_PAUSE * 2);
        for _ in 0..5 {
            pool.slots.lock().unwrap().backoff.as_mut().unwrap().until = Instant::now();
            assert_eq!(pool.get().err().expect("still nothing").cause(), ErrorCause::Unreachable);
        }
        assert_eq!(backoff(&pool).0, MAX_PAUSE, "the pause stops growing");
        assert_eq!(pool.slots.lock().unwrap().open, 0, "failed connects hold no slot");
    }
}
