//! One blocking connection to the registry, to one server or to a Redis
//! Cluster, that reconnects by itself.
//!
//! Every read and write has a timeout ([`IO_TIMEOUT`]), so a dead or frozen
//! Redis is an error, never a hang. After any failure the connection is
//! dropped (a timed-out reply may still arrive and would answer the next
//! command) and the next operation connects again. Pipelines go to one
//! server in one write; on a Redis Cluster the driver's cluster pipeline
//! splits them per node and puts the answers back in order. `PUBLISH`, which
//! the cluster pipeline refuses, is sent on its own after the rest (any node
//! relays a classic `PUBLISH` to the whole cluster).

use std::time::Duration;

use redis::{
    cluster::{ClusterClientBuilder, ClusterConnection},
    Cmd, ConnectionLike, Value,
};

use super::{RedisTarget, RegistryError};

/// Connect, read and write timeout of every registry connection.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(1);

enum Live {
    Single(redis::Connection),
    Cluster(Box<ClusterConnection>),
}

/// A registry connection (connected now, or again at the next operation).
pub(crate) struct Conn {
    target: RedisTarget,
    /// `target` as text, for error messages.
    name: String,
    live: Option<Live>,
    /// Commands sent so far (each of a pipeline counts).
    sent: u64,
}

impl Conn {
    /// Connect now: an unreachable registry is an error here.
    pub(crate) fn connect(target: &RedisTarget) -> Result<Conn, RegistryError> {
        let mut conn = Conn { target: target.clone(), name: target.to_string(), live: None, sent: 0 };
        conn.ensure()?;
        Ok(conn)
    }

    /// Commands sent so far.
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    /// An error of `op` against this registry.
    pub(crate) fn error(&self, op: &'static str, source: redis::RedisError) -> RegistryError {
        RegistryError::Redis { target: self.name.clone(), op, source }
    }

    /// An unexpected reply to `op`.
    pub(crate) fn bad_reply(&self, op: &'static str, detail: impl Into<String>) -> RegistryError {
        RegistryError::Reply { target: self.name.clone(), op, detail: detail.into() }
    }

    /// Connect if not connected.
    fn ensure(&mut self) -> Result<(), RegistryError> {
        if self.live.is_none() {
            self.live = Some(open(&self.target).map_err(|e| self.error("connecting", e))?);
        }
        Ok(())
    }

    /// One command.
    pub(crate) fn command(&mut self, op: &'static str, cmd: &Cmd) -> Result<Value, RegistryError> {
        self.ensure()?;
        self.sent += 1;
        let result = match &mut self.live {
            Some(Live::Single(c)) => c.req_command(cmd),
            Some(Live::Cluster(c)) => c.req_command(cmd),
            None => return Err(self.bad_reply(op, "not connected")),
        };
        let result = result.and_then(|v| v.extract_error());
        result.map_err(|e| self.failed(op, e))
    }

    /// Several commands in one round trip (per server); their replies in
    /// order. Nothing is sent for no commands.
    pub(crate) fn pipeline(&mut self, op: &'static str, cmds: Vec<Cmd>) -> Result<Vec<Value>, RegistryError> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        let n = cmds.len();
        self.ensure()?;
        self.sent += n as u64;
        let result = match &mut self.live {
            None => return Err(self.bad_reply(op, "not connected")),
            Some(Live::Single(c)) => {
                let mut pipe = redis::pipe();
                cmds.into_iter().for_each(|cmd| {
                    pipe.add_command(cmd);
                });
                pipe.query::<Vec<Value>>(c)
            }
            Some(Live::Cluster(c)) => cluster_pipeline(c, cmds),
        };
        match result {
            Ok(values) if values.len() == n => Ok(values),
            Ok(values) => {
                self.live = None;
                Err(self.bad_reply(op, format!("{} replies to {n} commands", values.len())))
            }
            Err(e) => Err(self.failed(op, e)),
        }
    }

    fn failed(&mut self, op: &'static str, e: redis::RedisError) -> RegistryError {
        // After a timeout the late reply would answer the next command, and
        // after a broken connection nothing answers: start afresh.
        self.live = None;
        self.error(op, e)
    }
}

/// The cluster pipeline for everything but `PUBLISH`, then each `PUBLISH`.
fn cluster_pipeline(c: &mut ClusterConnection, cmds: Vec<Cmd>) -> redis::RedisResult<Vec<Value>> {
    let is_publish = |cmd: &Cmd| matches!(cmd.args_iter().next(), Some(redis::Arg::Simple(name)) if name.eq_ignore_ascii_case(b"PUBLISH"));
    let mut pipe = redis::cluster::cluster_pipe();
    let mut publishes = Vec::new();
    let mut order = Vec::with_capacity(cmds.len());
    for cmd in cmds {
        if is_publish(&cmd) {
            order.push(false);
            publishes.push(cmd);
        } else {
            order.push(true);
            pipe.add_command(cmd);
        }
    }
    let mut piped = if order.iter().any(|p| *p) { pipe.query::<Vec<Value>>(c)? } else { Vec::new() }.into_iter();
    let mut published = Vec::with_capacity(publishes.len());
    for cmd in &publishes {
        published.push(c.req_command(cmd).and_then(|v| v.extract_error())?);
    }
    let mut published = published.into_iter();
    Ok(order.into_iter().filter_map(|p| if p { piped.next() } else { published.next() }).collect())
}

/// A new connection with every timeout set.
fn open(target: &RedisTarget) -> redis::RedisResult<Live> {
    match target {
        RedisTarget::Single { addr, .. } => {
            let client = redis::Client::open(target.node_url(addr))?;
            let conn = client.get_connection_with_timeout(IO_TIMEOUT)?;
            conn.set_read_timeout(Some(IO_TIMEOUT))?;
            conn.set_write_timeout(Some(IO_TIMEOUT))?;
            Ok(Live::Single(conn))
        }
        RedisTarget::Cluster { seeds } => {
            let client = ClusterClientBuilder::new(seeds.iter().map(|s| target.node_url(s)))
                .connection_timeout(IO_TIMEOUT)
                .response_timeout(IO_TIMEOUT)
                .retries(2)
                .min_retry_wait(10)
                .max_retry_wait(200)
                .build()?;
            let conn = client.get_connection()?;
            conn.set_write_timeout(Some(IO_TIMEOUT))?;
            conn.set_auto_reconnect(false);
            Ok(Live::Cluster(Box::new(conn)))
        }
    }
}
