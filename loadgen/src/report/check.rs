//! `--check`: pass/fail conditions on a run's figures, for scripts and CI.
//!
//! A condition names a figure of the JSON report, so what is checked is
//! always something the report shows. Each scenario lists its figures
//! ([`Figures`]): plain numbers by name (`lost`, `conns`, `rate`, ...), and
//! for each latency `X` the names `p50_X`, `p90_X`, `p99_X`, `p999_X`,
//! `max_X` and `mean_X`. Names are checked before the run starts, so a typo
//! is a usage error rather than a wasted run; a figure the run could not
//! measure (null in the JSON) fails its condition.

use std::fmt;

use serde_json::Value;

/// Latency statistics every latency offers, as (name prefix, JSON field).
const STATS: [(&str, &str); 6] = [
    ("p50", "p50_ms"),
    ("p90", "p90_ms"),
    ("p99", "p99_ms"),
    ("p999", "p999_ms"),
    ("max", "max_ms"),
    ("mean", "mean_ms"),
];

/// The figures a scenario offers to `--check` and `--hist`.
#[derive(Debug)]
pub(crate) struct Figures {
    /// Latencies: (short name, JSON field holding its percentiles).
    pub(crate) latencies: &'static [(&'static str, &'static str)],
    /// The latency `--hist FILE` writes.
    pub(crate) main: &'static str,
    /// Numbers: (name, JSON pointer into the report).
    pub(crate) numbers: &'static [(&'static str, &'static str)],
}

/// What a figure measures, which decides how its value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Milliseconds in the report; written with a unit in a condition.
    Duration,
    /// A count, rate or size.
    Number,
}

impl Figures {
    /// The JSON pointer and kind of figure `name`.
    pub(crate) fn lookup(&self, name: &str) -> Option<(String, Kind)> {
        if let Some((_, ptr)) = self.numbers.iter().find(|(n, _)| *n == name) {
            return Some(((*ptr).to_owned(), Kind::Number));
        }
        let (stat, lat) = name.split_once('_')?;
        let (_, field) = STATS.iter().find(|(s, _)| *s == stat)?;
        let (_, summary) = self.latencies.iter().find(|(l, _)| *l == lat)?;
        Some((format!("/{summary}/{field}"), Kind::Duration))
    }

    /// Every name, for error messages and `--help`.
    pub(crate) fn names(&self) -> String {
        let numbers: Vec<&str> = self.numbers.iter().map(|(n, _)| *n).collect();
        let lats: Vec<&str> = self.latencies.iter().map(|(l, _)| *l).collect();
        format!("{}; p50_X, p90_X, p99_X, p999_X, max_X, mean_X for X in {}", numbers.join(", "), lats.join(", "))
    }

    /// Whether `name` is one of the latencies.
    pub(crate) fn is_latency(&self, name: &str) -> bool {
        self.latencies.iter().any(|(l, _)| *l == name)
    }
}

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

impl Op {
    fn holds(self, measured: f64, limit: f64) -> bool {
        match self {
            Op::Lt => measured < limit,
            Op::Le => measured <= limit,
            Op::Gt => measured > limit,
            Op::Ge => measured >= limit,
            Op::Eq => (measured - limit).abs() <= f64::EPSILON * limit.abs().max(1.0),
        }
    }
}

/// One condition of `--check`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Condition {
    /// As written.
    pub(crate) text: String,
    pointer: String,
    kind: Kind,
    op: Op,
    /// Milliseconds for durations.
    limit: f64,
}

/// The outcome of one condition.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Verdict {
    pub(crate) text: String,
    pub(crate) measured: Option<f64>,
    kind: Kind,
    pub(crate) pass: bool,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = if self.pass { "ok" } else { "FAILED" };
        match (self.measured, self.kind) {
            (None, _) => write!(f, "{status:<6} {}  (not measured)", self.text),
            (Some(v), Kind::Duration) => write!(f, "{status:<6} {}  (measured {v:.3} ms)", self.text),
            (Some(v), Kind::Number) => write!(f, "{status:<6} {}  (measured {})", self.text, number(v)),
        }
    }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

/// Parse `--check EXPR` against a scenario's figures.
pub(crate) fn parse(expr: &str, figures: &Figures) -> Result<Vec<Condition>, String> {
    expr.split(',').map(str::trim).filter(|c| !c.is_empty()).map(|c| parse_one(c, figures)).collect()
}

fn parse_one(text: &str, figures: &Figures) -> Result<Condition, String> {
    let at = text.find(['<', '>', '=']).ok_or_else(|| format!("`{text}`: no operator (< <= > >= =)"))?;
    let (name, rest) = text.split_at(at);
    let (op, value) = if let Some(v) = rest.strip_prefix("<=") {
        (Op::Le, v)
    } else if let Some(v) = rest.strip_prefix(">=") {
        (Op::Ge, v)
    } else if let Some(v) = rest.strip_prefix("==") {
        (Op::Eq, v)
    } else if let Some(v) = rest.strip_prefix('<') {
        (Op::Lt, v)
    } else if let Some(v) = rest.strip_prefix('>') {
        (Op::Gt, v)
    } else {
        (Op::Eq, rest.strip_prefix('=').unwrap_or(rest))
    };
    let name = name.trim();
    let (pointer, kind) = figures
        .lookup(name)
        .ok_or_else(|| format!("unknown figure `{name}` in --check; known: {}", figures.names()))?;
    let value = value.trim();
    let limit = match kind {
        Kind::Duration => parse_duration_ms(value).ok_or_else(|| {
            format!("`{text}`: `{value}` is not a duration (a number with us, ms or s; bare numbers are ms)")
        })?,
        Kind::Number => value.parse::<f64>().map_err(|_| format!("`{text}`: `{value}` is not a number"))?,
    };
    Ok(Condition { text: text.to_owned(), pointer, kind, op, limit })
}

/// `250us`, `5ms`, `1.5s`, `7` (ms) -> milliseconds.
pub(crate) fn parse_duration_ms(v: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e3)
    } else {
        (v, 1.0)
    };
    let n: f64 = num.trim().parse().ok()?;
    n.is_finite().then_some(n * scale)
}

/// Evaluate the conditions against the JSON report.
pub(crate) fn evaluate(conditions: &[Condition], report: &Value) -> Vec<Verdict> {
    conditions
        .iter()
        .map(|c| {
            let measured = report.pointer(&c.pointer).and_then(Value::as_f64);
            let pass = measured.is_some_and(|m| c.op.holds(m, c.limit));
            Verdict { text: c.text.clone(), measured, kind: c.kind, pass }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIGS: Figures = Figures {
        latencies: &[("deliver", "delivery_ms"), ("fanout", "fanout_ms")],
        main: "deliver",
        numbers: &[("lost", "/lost"), ("conns", "/established"), ("rate", "/achieved_delivery_rate"), ("rss", "/rss")],
    };

    #[test]
    fn conditions_parse_with_units_and_operators() {
        let c = parse(
            "p99_deliver<5ms, lost=0,conns>=19000 ,p999_fanout<=250us,rate>9000,max_deliver<1.5s,mean_deliver<3",
            &FIGS,
        )
        .unwrap();
        assert_eq!(c.len(), 7);
        assert_eq!((c[0].op, c[0].limit, c[0].kind), (Op::Lt, 5.0, Kind::Duration));
        assert_eq!(c[0].pointer, "/delivery_ms/p99_ms");
        assert_eq!((c[1].op, c[1].limit, c[1].kind), (Op::Eq, 0.0, Kind::Number));
        assert_eq!((c[2].op, c[2].limit), (Op::Ge, 19000.0));
        assert_eq!((c[3].op, c[3].limit), (Op::Le, 0.25));
        assert_eq!(c[3].pointer, "/fanout_ms/p999_ms");
        assert_eq!(c[4].op, Op::Gt);
        assert_eq!(c[5].limit, 1500.0);
        assert_eq!(c[6].limit, 3.0);
    }

    #[test]
    fn bad_conditions_are_refused_with_the_known_names() {
        let e = parse("p99_nothing<5ms", &FIGS).unwrap_err();
        assert!(e.contains("unknown figure `p99_nothing`") && e.contains("lost, conns"), "{e}");
        assert!(parse("lost", &FIGS).is_err());
        assert!(parse("lost=zero", &FIGS).is_err());
        assert!(parse("p99_deliver<5parsecs", &FIGS).is_err());
        assert!(parse("p42_deliver<5ms", &FIGS).is_err());
        assert!(parse("", &FIGS).unwrap().is_empty());
    }

    #[test]
    fn verdicts() {
        let report = serde_json::json!({
            "lost": 0, "established": 18999, "achieved_delivery_rate": 9500.5, "rss": null,
            "delivery_ms": {"p99_ms": 4.2, "max_ms": 9.0}, "fanout_ms": {"p999_ms": 0.3}
        });
        let c = parse("p99_deliver<5ms,lost=0,conns>=19000,rate>9000,rss<100,p999_fanout<=250us", &FIGS).unwrap();
        let v = evaluate(&c, &report);
        let pass: Vec<bool> = v.iter().map(|v| v.pass).collect();
        assert_eq!(pass, [true, true, false, true, false, false]);
        assert_eq!(v[2].to_string(), "FAILED conns>=19000  (measured 18999)");
        assert_eq!(v[0].to_string(), "ok     p99_deliver<5ms  (measured 4.200 ms)");
        assert_eq!(v[4].to_string(), "FAILED rss<100  (not measured)");
    }
}
