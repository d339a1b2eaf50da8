//! A small blocking connection pool, and what a lost connection means.
//!
//! Why our own: the gateway calls the store from a few threads (the
//! committer, readers), each blocking on one statement at a time, so a
//! mutex-guarded stack of at most `size` connections is all the pooling
//! needed, with no runtime or extra threads. A connection is opened lazily
//! when none is idle, and forgotten as soon as the server closed it (a
//! restart, `pg_terminate_backend`, a network cut), so after an outage the
//! next user opens a fresh one instead of failing on a dead socket.

use std::{
    collections::HashMap,
    ops::{Deref, DerefMut},
    sync::{Condvar, Mutex, PoisonError},
};

use postgres::{Client, Config, NoTls, Statement};

use crate::StoreError;

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
}

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
                slots.open += 1;
                drop(slots);
                return match self.connect() {
                    Ok(connection) => Ok(Pooled { pool: self, connection: Some(connection) }),
                    Err(e) => {
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

    fn give_back(&self, connection: Connection) {
        if connection.client.is_closed() {
            return self.forget_one();
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
        self.connection = None;
        self.pool.forget_one();
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
