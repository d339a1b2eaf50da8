//! `--events kafka://host:port[,host:port...][/PREFIX]`: where committed
//! events go.

use std::fmt;

/// The topic prefix when the URL names none.
pub const DEFAULT_PREFIX: &str = "chatgw";

/// A parsed `--events` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventsUrl {
    /// Bootstrap brokers, `host:port` comma separated.
    pub brokers: String,
    /// Topic prefix: events go to `<prefix>.events`.
    pub prefix: String,
}

impl std::str::FromStr for EventsUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let rest = s
            .strip_prefix("kafka://")
            .ok_or_else(|| format!("events must be kafka://host:port[,host:port...][/PREFIX], not {s:?}"))?;
        let (brokers, prefix) = match rest.split_once('/') {
            Some((b, p)) => (b, p),
            None => (rest, ""),
        };
        if brokers.is_empty() || brokers.split(',').any(|b| !b.contains(':') || b.starts_with(':') || b.ends_with(':'))
        {
            return Err(format!("events brokers must be host:port, comma separated: {s:?}"));
        }
        let prefix = if prefix.is_empty() { DEFAULT_PREFIX } else { prefix };
        // Kafka topic names: ASCII letters, digits, '.', '_' and '-'.
        if !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) || prefix.len() > 200 {
            return Err(format!("events topic prefix may hold only letters, digits, '.', '_' and '-': {prefix:?}"));
        }
        Ok(EventsUrl { brokers: brokers.to_owned(), prefix: prefix.to_owned() })
    }
}

impl fmt::Display for EventsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kafka://{}/{}", self.brokers, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_brokers_and_prefix() {
        let u: EventsUrl = "kafka://b1:9092,b2:9092/prod".parse().unwrap();
        assert_eq!((u.brokers.as_str(), u.prefix.as_str()), ("b1:9092,b2:9092", "prod"));
        let u: EventsUrl = "kafka://b1:9092".parse().unwrap();
        assert_eq!(u.prefix, "chatgw");
        for bad in ["b1:9092", "kafka://", "kafka://b1", "kafka://b1:9092/a b", "kafka://:9092", "redis://x:1"] {
            assert!(bad.parse::<EventsUrl>().is_err(), "{bad} was accepted");
        }
    }
}
