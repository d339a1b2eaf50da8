//! Human-readable quantities shared by the gateway's configuration and the
//! load generator's command line: durations written `500ms`, `30s`, `5m`,
//! `24h`, `7d`.
//!
//! A crate of its own so the load generator parses its flags exactly as the
//! gateway parses its own, without depending on the gateway.

#![warn(missing_docs)]

use std::{str::FromStr, time::Duration};

use serde::Deserialize;

/// A duration written as a number and a unit: `500ms`, `30s`, `5m`, `24h`, `7d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (n, unit) = s.split_at(split);
        let n: u64 = n.parse().map_err(|_| format!("`{s}`: expected a number and a unit, like 30s"))?;
        let secs = |k: u64| Duration::from_secs(n.saturating_mul(k));
        Ok(HumanDuration(match unit {
            "us" | "µs" => Duration::from_micros(n),
            "ms" => Duration::from_millis(n),
            "s" | "" => secs(1),
            "m" => secs(60),
            "h" => secs(3600),
            "d" => secs(86400),
            _ => return Err(format!("`{s}`: unknown unit `{unit}` (us, ms, s, m, h, d)")),
        }))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_every_unit_and_refuse_others() {
        assert_eq!("30s".parse::<HumanDuration>().unwrap().0, Duration::from_secs(30));
        assert_eq!("500us".parse::<HumanDuration>().unwrap().0, Duration::from_micros(500));
        assert_eq!("2ms".parse::<HumanDuration>().unwrap().0, Duration::from_millis(2));
        assert_eq!("30".parse::<HumanDuration>().unwrap().0, Duration::from_secs(30));
        assert_eq!("5m".parse::<HumanDuration>().unwrap().0, Duration::from_secs(300));
        assert_eq!("24h".parse::<HumanDuration>().unwrap().0, Duration::from_secs(86400));
        assert_eq!("7d".parse::<HumanDuration>().unwrap().0, Duration::from_secs(7 * 86400));
        assert_eq!("250ms".parse::<HumanDuration>().unwrap().0, Duration::from_millis(250));
        assert!("x".parse::<HumanDuration>().is_err());
        assert!("5y".parse::<HumanDuration>().is_err());
        assert!("-5s".parse::<HumanDuration>().is_err());
    }

    #[test]
    fn durations_deserialize_from_strings() {
        let d: HumanDuration = serde_json::from_str("\"2s\"").unwrap();
        assert_eq!(d.0, Duration::from_secs(2));
        assert!(serde_json::from_str::<HumanDuration>("2").is_err());
    }
}
