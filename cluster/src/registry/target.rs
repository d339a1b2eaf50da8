//! Where the registry lives: one Redis server, or a Redis Cluster given by
//! a few seed nodes.
//!
//! Parsed here, once, with errors that say what is wrong with the URL, so a
//! node with a mistyped `--cluster` refuses to start with one clear line
//! instead of a driver error at the first command.

use std::{fmt, str::FromStr};

use super::RegistryError;

/// The Redis the registry uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server: `redis://host:port[/db]` (port 6379 when left out).
    Single {
        /// `host:port` (an IPv6 host in brackets).
        addr: String,
        /// The logical database.
        db: i64,
    },
    /// A Redis Cluster: `redis+cluster://host:port,host:port,...`, any
    /// reachable seed is enough to find the others.
    Cluster {
        /// The seeds, each `host:port`.
        seeds: Vec<String>,
    },
}

const SINGLE: &str = "redis://";
const CLUSTER: &str = "redis+cluster://";
const DEFAULT_PORT: u16 = 6379;

impl RedisTarget {
    /// The addresses to connect to, each `host:port`: the server, or the
    /// cluster's seeds.
    pub fn seeds(&self) -> &[String] {
        match self {
            RedisTarget::Single { addr, .. } => std::slice::from_ref(addr),
            RedisTarget::Cluster { seeds } => seeds,
        }
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisTarget::Cluster { .. })
    }

    /// The driver's URL for one of the seeds.
    pub(crate) fn node_url(&self, seed: &str) -> String {
        match self {
            RedisTarget::Single { db, .. } => format!("redis://{seed}/{db}"),
            RedisTarget::Cluster { .. } => format!("redis://{seed}"),
        }
    }
}

impl fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisTarget::Single { addr, db: 0 } => write!(f, "{SINGLE}{addr}"),
            RedisTarget::Single { addr, db } => write!(f, "{SINGLE}{addr}/{db}"),
            RedisTarget::Cluster { seeds } => write!(f, "{CLUSTER}{}", seeds.join(",")),
        }
    }
}

impl FromStr for RedisTarget {
    type Err = RegistryError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| RegistryError::BadUrl { url: url.to_owned(), reason: reason.to_owned() };
        let trimmed = url.trim();
        if let Some(rest) = trimmed.strip_prefix(CLUSTER) {
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            if rest.contains('/') {
                return Err(bad("a Redis Cluster has no database number: use redis+cluster://host:port,host:port"));
            }
            let seeds = rest
                .split(',')
                .map(|seed| host_port(seed.trim()).map_err(|reason| bad(&reason)))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(RedisTarget::Cluster { seeds });
        }
        let Some(rest) = trimmed.strip_prefix(SINGLE) else {
            return Err(bad("expected redis://host:port[/db] or redis+cluster://host:port,host:port,..."));
        };
        let (authority, db) = match rest.split_once('/') {
            None => (rest, 0),
            Some((authority, "")) => (authority, 0),
            Some((authority, db)) => match db.parse::<i64>() {
                Ok(db) if db >= 0 => (authority, db),
                _ => return Err(bad("the database after the '/' must be a number, e.g. redis://host:6379/0")),
            },
        };
        if authority.contains(',') {
            return Err(bad("several addresses are for a Redis Cluster: use redis+cluster://host:port,host:port"));
        }
        let addr = host_port(authority).map_err(|reason| bad(&reason))?;
        Ok(RedisTarget::Single { addr, db })
    }
}

/// `host[:port]` checked and normalised to `host:port`.
fn host_port(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("an address is empty (expected host:port)".into());
    }
    if s.contains('@') {
        return Err("credentials in the url are not supported".into());
    }
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else {
            return Err(format!("{s:?}: an IPv6 host needs a closing ']'"));
        };
        match after {
            "" => (format!("[{host}]"), None),
            _ => match after.strip_prefix(':') {
                Some(port) => (format!("[{host}]"), Some(port)),
                None => return Err(format!("{s:?}: expected ':port' after ']'")),
            },
        }
    } else {
        match s.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err(format!("{s:?}: write an IPv6 host in brackets, e.g. [::1]:6379"));
            }
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (s.to_owned(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("{s:?}: the host is empty"));
    }
    if host.chars().any(|c| c.is_whitespace() || c == '/' || c == '?' || c == '#') {
        return Err(format!("{s:?}: not a host name"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => return Err(format!("{s:?}: the port must be a number from 1 to 65535")),
        },
    };
    Ok(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<RedisTarget, String> {
        s.parse::<RedisTarget>().map_err(|e| e.to_string())
    }

    #[test]
    fn single_server_urls() {
        assert_eq!(parse("redis://127.0.0.1:7000"), Ok(RedisTarget::Single { addr: "127.0.0.1:7000".into(), db: 0 }));
        assert_eq!(parse("redis://redis"), Ok(RedisTarget::Single { addr: "redis:6379".into(), db: 0 }));
        assert_eq!(parse("redis://h:1/3"), Ok(RedisTarget::Single { addr: "h:1".into(), db: 3 }));
        assert_eq!(parse("redis://[::1]:7/"), Ok(RedisTarget::Single { addr: "[::1]:7".into(), db: 0 }));
        assert_eq!(parse("redis://h:1/3").map(|t| t.to_string()), Ok("redis://h:1/3".into()));
        assert_eq!(parse("redis://h").map(|t| t.seeds().to_vec()), Ok(vec!["h:6379".to_string()]));
    }

    #[test]
    fn cluster_urls() {
        let t = parse("redis+cluster://a:1, b:2,[::1]:3").unwrap();
        assert_eq!(t.seeds(), ["a:1", "b:2", "[::1]:3"]);
        assert!(t.is_cluster());
        assert_eq!(t.to_string(), "redis+cluster://a:1,b:2,[::1]:3");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, says) in [
            ("http://h:1", "expected redis://"),
            ("redis://", "empty"),
            ("redis://h:x", "port"),
            ("redis://h:70000", "port"),
            ("redis://h:1/x", "database"),
            ("redis://a:1,b:2", "redis+cluster://"),
            ("redis+cluster://a:1,,b:2", "empty"),
            ("redis+cluster://a:1/2", "no database"),
            ("redis://::1:6379", "brackets"),
            ("redis://user:pw@h:1", "credentials"),
        ] {
            let err = parse(url).unwrap_err();
            assert!(err.contains(says), "{url}: {err}");
            assert!(err.contains("bad connection registry url"), "{url}: {err}");
        }
    }
}
