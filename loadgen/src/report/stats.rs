//! Latency histograms and reason counters, mergeable across threads.
//!
//! Latencies are recorded in microseconds into HdrHistograms (3 significant
//! digits, up to an hour), so percentiles stay exact to 0.1% whatever the
//! spread and merging per-thread histograms is lossless. Reasons (failure
//! causes, error codes) are counted by their text in a sorted map so the
//! report and the JSON list them in a stable order.
//!
//! Both travel from worker processes to their parent (`--procs`): a
//! histogram as base64 of the hdrhistogram crate's V2 serialisation, which
//! keeps every bucket, so the parent's merge is as exact as a merge of
//! threads in one process.

use std::collections::BTreeMap;

use base64::{engine::general_purpose::STANDARD, Engine as _};
use hdrhistogram::{
    serialization::{Deserializer as HdrDeserializer, Serializer as _, V2Serializer},
    Histogram,
};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Highest latency recorded: one hour, in microseconds. Larger values are
/// clamped to it rather than dropped.
const MAX_MICROS: u64 = 3_600_000_000;

/// Figures that add up across threads and processes: every thread returns
/// its own, and the conductor merges them into one.
pub(crate) trait Merge: Default {
    /// Add another thread's figures.
    fn merge(&mut self, other: &Self);
}

/// A counter adds up.
impl Merge for u64 {
    fn merge(&mut self, other: &Self) {
        *self += other;
    }
}

/// `Merge` for a struct by merging each of its fields (counters add up,
/// histograms and reasons merge), and keeping the highest of the fields
/// listed after `max:`. Every field must be named: the struct pattern it
/// expands to does not compile if one is left out, so a new figure cannot
/// be forgotten in the merge.
macro_rules! merge_fields {
    ($ty:ty: $($field:ident),* $(; max: $($highest:ident),*)? $(,)?) => {
        impl $crate::report::stats::Merge for $ty {
            fn merge(&mut self, other: &Self) {
                let Self { $($field,)* $($($highest,)*)? } = other;
                $($crate::report::stats::Merge::merge(&mut self.$field, $field);)*
                $($(self.$highest = self.$highest.max(*$highest);)*)?
            }
        }
    };
}
pub(crate) use merge_fields;

/// A thread's connection figures and its scenario's, merged side by side.
impl<A: Merge, B: Merge> Merge for (A, B) {
    fn merge(&mut self, other: &Self) {
        self.0.merge(&other.0);
        self.1.merge(&other.1);
    }
}

/// Every thread's figures merged into one.
pub(crate) fn merge_all<M: Merge>(parts: impl IntoIterator<Item = M>) -> M {
    let mut all = M::default();
    for part in parts {
        all.merge(&part);
    }
    all
}

/// A latency distribution in microseconds.
#[derive(Clone, Debug)]
pub(crate) struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub(crate) fn new() -> Self {
        Latency(Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("constant histogram bounds are valid"))
    }

    /// Record a latency given in nanoseconds.
    pub(crate) fn record_ns(&mut self, ns: u64) {
        self.0.saturating_record((ns / 1000).clamp(1, MAX_MICROS));
    }

    /// Values recorded.
    pub(crate) fn count(&self) -> u64 {
        self.0.len()
    }

    /// The value at quantile `q` (0..=1), in milliseconds.
    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    /// Forget everything (for per-second windows).
    pub(crate) fn reset(&mut self) {
        self.0.reset();
    }

    /// The histogram itself, in microseconds.
    pub(crate) fn histogram(&self) -> &Histogram<u64> {
        &self.0
    }

    /// Base64 of the V2 serialisation.
    pub(crate) fn to_base64(&self) -> String {
        let mut buf = Vec::new();
        // Serialising into a Vec cannot fail for a histogram of u64 counts.
        let _ = V2Serializer::new().serialize(&self.0, &mut buf);
        STANDARD.encode(buf)
    }

    /// The inverse of [`Latency::to_base64`].
    pub(crate) fn from_base64(text: &str) -> Result<Self, String> {
        let raw = STANDARD.decode(text).map_err(|e| format!("histogram is not base64: {e}"))?;
        let h: Histogram<u64> = HdrDeserializer::new()
            .deserialize(&mut raw.as_slice())
            .map_err(|e| format!("histogram does not deserialise: {e:?}"))?;
        let mut l = Latency::new();
        l.0.add(&h).map_err(|e| format!("histogram out of range: {e:?}"))?;
        Ok(l)
    }

    /// The usual percentiles, in milliseconds.
    pub(crate) fn summary(&self) -> Summary {
        if self.0.is_empty() {
            return Summary::default();
        }
        Summary {
            count: self.0.len(),
            mean_ms: self.0.mean() / 1000.0,
            p50_ms: self.quantile_ms(0.5),
            p90_ms: self.quantile_ms(0.9),
            p99_ms: self.quantile_ms(0.99),
            p999_ms: self.quantile_ms(0.999),
            max_ms: self.0.max() as f64 / 1000.0,
        }
    }
}

/// Everything `other` recorded, added.
impl Merge for Latency {
    fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }
}

impl Serialize for Latency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Latency::from_base64(&text).map_err(de::Error::custom)
    }
}

/// Percentiles of one latency, in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub(crate) struct Summary {
    /// Samples.
    pub(crate) count: u64,
    /// Mean.
    pub(crate) mean_ms: f64,
    /// Median.
    pub(crate) p50_ms: f64,
    /// 90th percentile.
    pub(crate) p90_ms: f64,
    /// 99th percentile.
    pub(crate) p99_ms: f64,
    /// 99.9th percentile.
    pub(crate) p999_ms: f64,
    /// Largest.
    pub(crate) max_ms: f64,
}

/// Counts by reason.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Reasons(BTreeMap<String, u64>);

/// Everything `other` counted, added.
impl Merge for Reasons {
    fn merge(&mut self, other: &Reasons) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_insert(0) += v;
        }
    }
}

impl Reasons {
    /// Count one occurrence of `reason`.
    pub(crate) fn add(&mut self, reason: &str) {
        match self.0.get_mut(reason) {
            Some(n) => *n += 1,
            None => {
                self.0.insert(reason.to_owned(), 1);
            }
        }
    }

    /// Sum of all counts.
    pub(crate) fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Reasons, most frequent first.
    pub(crate) fn by_count(&self) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self.0.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Figures {
        count: u64,
        lat: Latency,
        why: Reasons,
        last: u64,
    }
    merge_fields!(Figures: count, lat, why; max: last);

    #[test]
    fn merge_fields_adds_counters_merges_the_rest_and_keeps_the_highest() {
        let mut a = Figures { count: 2, last: 50, ..Figures::default() };
        a.lat.record_ns(1_000_000);
        a.why.add("x");
        let mut b = Figures { count: 3, last: 40, ..Figures::default() };
        b.lat.record_ns(2_000_000);
        b.why.add("x");
        a.merge(&b);
        assert_eq!((a.count, a.lat.count(), a.why.total(), a.last), (5, 2, 2, 50));
    }

    #[test]
    fn percentiles_and_merge() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        for i in 1..=100u64 {
            a.record_ns(i * 1_000_000); // 1..=100 ms
        }
        b.record_ns(10_000_000_000); // 10 s
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 101);
        assert!((s.p50_ms - 51.0).abs() < 0.1, "{s:?}");
        assert!((s.max_ms - 10_000.0).abs() < 10.0, "{s:?}");
        assert_eq!(Latency::new().summary(), Summary::default());
    }

    #[test]
    fn histograms_survive_the_wire() {
        let mut a = Latency::new();
        for i in 1..=1000u64 {
            a.record_ns(i * 37_000);
        }
        let text = serde_json::to_string(&a).unwrap();
        let b: Latency = serde_json::from_str(&text).unwrap();
        assert_eq!(a.summary(), b.summary());
        assert!(Latency::from_base64("not base64!").is_err());
        assert!(Latency::from_base64("AAAA").is_err());
    }

    #[test]
    fn reasons_sort_by_count() {
        let mut r = Reasons::default();
        r.add("b");
        r.add("a");
        r.add("b");
        let mut o = Reasons::default();
        o.add("c");
        r.merge(&o);
        assert_eq!(r.by_count(), [("b", 2), ("a", 1), ("c", 1)]);
        assert_eq!(r.total(), 4);
    }
}
