//! `cassandra://` URLs: which nodes, which keyspace, and the settings that
//! decide durability (consistency level) and placement (replication).
//!
//! Why in the URL: `--store` is the one place an operator names a store,
//! and a URL is already how PostgreSQL is named, so one string says all
//! that differs between deployments. Parsing is pure and strict: an
//! unknown parameter or a bad value is an error naming what is accepted,
//! never a silent default.

use std::{fmt, time::Duration};

use scylla::statement::{Consistency, SerialConsistency};

/// Why a `cassandra://` URL was refused. Each message says what to write
/// instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not `cassandra://...`.
    #[error("a Cassandra store URL starts with `cassandra://`")]
    Scheme,
    /// No `host:port` before the keyspace.
    #[error("no hosts: write `cassandra://host1:9042,host2:9042/keyspace`")]
    NoHosts,
    /// A host entry that is empty or has a port that is not a number.
    #[error("bad host `{0}`: write `host` or `host:port` (port 1-65535)")]
    BadHost(String),
    /// No keyspace, or one CQL would not take unquoted.
    #[error("bad keyspace `{0}`: name one of 1-48 lowercase letters, digits or `_` after the hosts (`/chatgw`)")]
    BadKeyspace(String),
    /// `consistency=` names no level a store can read and write at.
    #[error("bad consistency `{0}`: use one of one, two, three, quorum, all, local_one, local_quorum")]
    BadConsistency(String),
    /// `replication=` is neither `simple:N` nor `network:dc:N,...`.
    #[error("bad replication `{0}`: use `simple:N` or `network:dc1:N,dc2:M` (N from 1 to 99)")]
    BadReplication(String),
    /// `connect_timeout=` is not a whole number of seconds from 1 to 600.
    #[error("bad connect_timeout `{0}`: a whole number of seconds from 1 to 600 (`10s`)")]
    BadTimeout(String),
    /// A query parameter this store does not know.
    #[error("unknown parameter `{0}`: known are consistency, replication, datacenter, connect_timeout")]
    UnknownParameter(String),
}

/// How the keyspace is replicated when `store init` creates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    /// `SimpleStrategy` with this replication factor (one datacenter).
    Simple(u8),
    /// `NetworkTopologyStrategy`: replication factor per datacenter.
    Network(Vec<(String, u8)>),
}

impl Replication {
    /// The map of a `CREATE KEYSPACE ... WITH replication = ` clause. Names
    /// were checked to be plain identifiers, so nothing needs escaping.
    pub(crate) fn cql(&self) -> String {
        match self {
            Replication::Simple(rf) => format!("{{'class': 'SimpleStrategy', 'replication_factor': {rf}}}"),
            Replication::Network(dcs) => {
                let dcs: Vec<String> = dcs.iter().map(|(dc, rf)| format!("'{dc}': {rf}")).collect();
                format!("{{'class': 'NetworkTopologyStrategy', {}}}", dcs.join(", "))
            }
        }
    }

    fn parse(v: &str) -> Result<Self, UrlError> {
        let bad = || UrlError::BadReplication(v.to_owned());
        let rf = |n: &str| n.parse::<u8>().ok().filter(|n| (1..=99).contains(n)).ok_or_else(bad);
        if let Some(n) = v.strip_prefix("simple:") {
            return Ok(Replication::Simple(rf(n)?));
        }
        let dcs = v.strip_prefix("network:").ok_or_else(bad)?;
        let dcs = dcs
            .split(',')
            .map(|entry| {
                let (dc, n) = entry.rsplit_once(':').ok_or_else(bad)?;
                let plain = !dc.is_empty() && dc.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !plain {
                    return Err(bad());
                }
                Ok((dc.to_owned(), rf(n)?))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Replication::Network(dcs))
    }
}

impl fmt::Display for Replication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Replication::Simple(rf) => write!(f, "simple:{rf}"),
            Replication::Network(dcs) => {
                let dcs: Vec<String> = dcs.iter().map(|(dc, rf)| format!("{dc}:{rf}")).collect();
                write!(f, "network:{}", dcs.join(","))
            }
        }
    }
}

/// Everything a `cassandra://` URL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CassandraOptions {
    /// Contact points, `host:port` (the driver finds the other nodes).
    pub hosts: Vec<String>,
    /// The keyspace holding chatgw's tables.
    pub keyspace: String,
    /// User and password, if the cluster requires authentication.
    pub credentials: Option<(String, String)>,
    /// Level of every read and write (default `LOCAL_QUORUM`): a commit
    /// returns once this many replicas acknowledged each write.
    pub consistency: Consistency,
    /// Keyspace replication for `store init` (default `simple:3`).
    pub replication: Replication,
    /// The datacenter whose nodes coordinate requests (needed for the
    /// `LOCAL_*` levels to mean "this datacenter" on a multi-DC cluster).
    pub datacenter: Option<String>,
    /// How long to wait for a connection to a node.
    pub connect_timeout: Duration,
}

/// The default port of the CQL native protocol.
const DEFAULT_PORT: u16 = 9042;

impl CassandraOptions {
    /// Parse `cassandra://[user:password@]host[:port][,host[:port]...]/keyspace[?param=value&...]`.
    pub fn from_url(url: &str) -> Result<Self, UrlError> {
        let rest = url.trim().strip_prefix("cassandra://").ok_or(UrlError::Scheme)?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, keyspace) = rest.split_once('/').unwrap_or((rest, ""));
        let (credentials, hosts) = match authority.rsplit_once('@') {
            Some((user, hosts)) => {
                let (user, password) = user.split_once(':').unwrap_or((user, ""));
                (Some((user.to_owned(), password.to_owned())), hosts)
            }
            None => (None, authority),
        };
        let mut options = CassandraOptions {
            hosts: parse_hosts(hosts)?,
            keyspace: parse_keyspace(keyspace)?,
            credentials,
            consistency: Consistency::LocalQuorum,
            replication: Replication::Simple(3),
            datacenter: None,
            connect_timeout: Duration::from_secs(5),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "consistency" => options.consistency = parse_consistency(value)?,
                "replication" => options.replication = Replication::parse(value)?,
                "datacenter" if !value.is_empty() => options.datacenter = Some(value.to_owned()),
                "connect_timeout" => options.connect_timeout = parse_timeout(value)?,
                _ => return Err(UrlError::UnknownParameter(key.to_owned())),
            }
        }
        Ok(options)
    }

    /// The serial level of the lightweight transactions: within the local
    /// datacenter when the consistency level is local.
    pub(crate) fn serial_consistency(&self) -> SerialConsistency {
        match self.consistency {
            Consistency::LocalOne | Consistency::LocalQuorum => SerialConsistency::LocalSerial,
            _ => SerialConsistency::Serial,
        }
    }
}

fn parse_hosts(hosts: &str) -> Result<Vec<String>, UrlError> {
    if hosts.is_empty() {
        return Err(UrlError::NoHosts);
    }
    hosts
        .split(',')
        .map(|h| {
            let bad = || UrlError::BadHost(h.to_owned());
            // `[::1]:9042` or `host:9042` or a bare host.
            let (host, port) = match h.rsplit_once(':') {
                Some((host, port)) if !host.ends_with(':') && (!host.contains(':') || host.ends_with(']')) => {
                    (host, port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?)
                }
                _ => (h, DEFAULT_PORT),
            };
            if host.is_empty() || host.contains(['/', '@', '?', ' ']) {
                return Err(bad());
            }
            Ok(format!("{host}:{port}"))
        })
        .collect()
}

fn parse_keyspace(keyspace: &str) -> Result<String, UrlError> {
    let ok = (1..=48).contains(&keyspace.len())
        && keyspace.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    match ok {
        true => Ok(keyspace.to_owned()),
        false => Err(UrlError::BadKeyspace(keyspace.to_owned())),
    }
}

fn parse_consistency(v: &str) -> Result<Consistency, UrlError> {
    // ANY and EACH_QUORUM cannot serve reads, SERIAL levels are for
    // lightweight transactions only (derived, see `serial_consistency`).
    Ok(match v.to_ascii_lowercase().as_str() {
        "one" => Consistency::One,
        "two" => Consistency::Two,
        "three" => Consistency::Three,
        "quorum" => Consistency::Quorum,
        "all" => Consistency::All,
        "local_one" => Consistency::LocalOne,
        "local_quorum" => Consistency::LocalQuorum,
        _ => return Err(UrlError::BadConsistency(v.to_owned())),
    })
}

fn parse_timeout(v: &str) -> Result<Duration, UrlError> {
    v.strip_suffix('s')
        .unwrap_or(v)
        .parse::<u64>()
        .ok()
        .filter(|s| (1..=600).contains(s))
        .map(Duration::from_secs)
        .ok_or_else(|| UrlError::BadTimeout(v.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<CassandraOptions, UrlError> {
        CassandraOptions::from_url(url)
    }

    #[test]
    fn the_documented_form_parses_with_defaults() {
        let o = parse("cassandra://db1:9042,db2/chatgw").unwrap();
        assert_eq!(o.hosts, vec!["db1:9042", "db2:9042"], "a bare host gets the default port");
        assert_eq!(o.keyspace, "chatgw");
        assert_eq!(o.consistency, Consistency::LocalQuorum);
        assert_eq!(o.serial_consistency(), SerialConsistency::LocalSerial);
        assert_eq!(o.replication, Replication::Simple(3));
        assert_eq!((o.credentials, o.datacenter), (None, None));
    }

    #[test]
    fn parameters_set_consistency_replication_datacenter_and_timeout() {
        let o = parse(
            "cassandra://u:p%w@[::1]:19042/ks_1?consistency=QUORUM&replication=network:dc1:3,eu-west_2:2\
             &datacenter=dc1&connect_timeout=10s",
        )
        .unwrap();
        assert_eq!(o.hosts, vec!["[::1]:19042"]);
        assert_eq!(o.credentials, Some(("u".into(), "p%w".into())));
        assert_eq!(o.consistency, Consistency::Quorum);
        assert_eq!(o.serial_consistency(), SerialConsistency::Serial);
        assert_eq!(o.replication, Replication::Network(vec![("dc1".into(), 3), ("eu-west_2".into(), 2)]));
        assert_eq!(
            o.replication.cql(),
            "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'eu-west_2': 2}",
            "the CREATE KEYSPACE map"
        );
        assert_eq!(o.datacenter.as_deref(), Some("dc1"));
        assert_eq!(o.connect_timeout, Duration::from_secs(10));
        let simple = parse("cassandra://h/k?replication=simple:1").unwrap().replication;
        assert_eq!(
            (simple.cql().as_str(), simple.to_string().as_str()),
            ("{'class': 'SimpleStrategy', 'replication_factor': 1}", "simple:1")
        );
    }

    #[test]
    fn bad_urls_are_refused_naming_what_to_write() {
        let cases = [
            ("postgres://h/k", UrlError::Scheme),
            ("cassandra:///k", UrlError::NoHosts),
            ("cassandra://h:0/k", UrlError::BadHost("h:0".into())),
            ("cassandra://h:x/k", UrlError::BadHost("h:x".into())),
            ("cassandra://a,,b/k", UrlError::BadHost("".into())),
            ("cassandra://h", UrlError::BadKeyspace("".into())),
            ("cassandra://h/", UrlError::BadKeyspace("".into())),
            ("cassandra://h/Chat", UrlError::BadKeyspace("Chat".into())),
            ("cassandra://h/a-b", UrlError::BadKeyspace("a-b".into())),
            ("cassandra://h/k?consistency=any", UrlError::BadConsistency("any".into())),
            ("cassandra://h/k?consistency=serial", UrlError::BadConsistency("serial".into())),
            ("cassandra://h/k?consistency=", UrlError::BadConsistency("".into())),
            ("cassandra://h/k?replication=simple:0", UrlError::BadReplication("simple:0".into())),
            ("cassandra://h/k?replication=simple", UrlError::BadReplication("simple".into())),
            ("cassandra://h/k?replication=3", UrlError::BadReplication("3".into())),
            ("cassandra://h/k?replication=network:", UrlError::BadReplication("network:".into())),
            ("cassandra://h/k?replication=network:dc1", UrlError::BadReplication("network:dc1".into())),
            ("cassandra://h/k?replication=network:d'c:3", UrlError::BadReplication("network:d'c:3".into())),
            ("cassandra://h/k?replication=network:dc:300", UrlError::BadReplication("network:dc:300".into())),
            ("cassandra://h/k?connect_timeout=0", UrlError::BadTimeout("0".into())),
            ("cassandra://h/k?consistncy=one", UrlError::UnknownParameter("consistncy".into())),
        ];
        for (url, want) in cases {
            let got = parse(url).expect_err(url);
            assert_eq!(got, want, "{url}");
            assert!(!got.to_string().contains('\n'), "one line: {got}");
        }
    }
}
