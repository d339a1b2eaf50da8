//! `--hist`: a latency histogram as a percentile distribution in the
//! classic HdrHistogram text format (`.hgrm`).
//!
//! That format is what HdrHistogram's own `outputPercentileDistribution`
//! writes and what its plotter and most tooling read, so a run's whole
//! distribution (not just the handful of percentiles in the summary) can be
//! plotted or compared between runs. Values are in milliseconds (the
//! histograms hold microseconds; the output scaling ratio is 1000), with
//! five percentile ticks per half distance, as the Java default.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// Microseconds per output unit (milliseconds).
const SCALING_RATIO: f64 = 1000.0;
/// Percentile ticks per half distance to 100%.
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// The percentile distribution of `h` (values in microseconds), in ms.
pub(crate) fn render(h: &Histogram<u64>) -> String {
    let digits = usize::from(h.sigfig());
    let mut out = String::new();
    let _ = write!(out, "{:>12} {:>14} {:>10} {:>14}\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / SCALING_RATIO;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(out, "{value:>12.digits$} {q:>2.12} {total:>10} {:>14.2}", 1.0 / (1.0 - q));
            } else {
                let _ = writeln!(out, "{value:>12.digits$} {q:>2.12} {total:>10}");
            }
        }
    }
    let (mean, stdev) = if h.is_empty() { (0.0, 0.0) } else { (h.mean(), h.stdev()) };
    let max = if h.is_empty() { 0.0 } else { h.max() as f64 };
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.digits$}, StdDeviation   = {:>12.digits$}]",
        mean / SCALING_RATIO,
        stdev / SCALING_RATIO
    );
    let _ = writeln!(out, "#[Max     = {:>12.digits$}, Total count    = {:>12}]", max / SCALING_RATIO, h.len());
    let _ = writeln!(out, "#[Buckets = {:>12}, SubBuckets     = {:>12}]", h.buckets(), sub_buckets(h.sigfig()));
    out
}

/// HdrHistogram's sub-bucket count for `sigfig` significant digits: the
/// smallest power of two at or above 2 x 10^sigfig.
fn sub_buckets(sigfig: u8) -> u64 {
    (2 * 10u64.pow(u32::from(sigfig))).next_power_of_two()
}

/// Split a `--hist` argument into (latency name, file): `NAME=FILE` when
/// NAME is one of `is_name`'s, else the whole argument is the file.
/// `Err` for something that looks like a name but is not one.
pub(crate) fn parse_spec(arg: &str, is_name: impl Fn(&str) -> bool) -> Result<(Option<String>, String), String> {
    match arg.split_once('=') {
        Some((name, file)) if is_name(name) && !file.is_empty() => Ok((Some(name.to_owned()), file.to_owned())),
        Some((name, _)) if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            Err(format!("--hist `{arg}`: `{name}` is not a latency of this scenario"))
        }
        _ if arg.is_empty() => Err("--hist needs a file name".to_owned()),
        _ => Ok((None, arg.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::stats::Latency;

    #[test]
    fn the_classic_layout() {
        let mut l = Latency::new();
        for ms in 1..=100u64 {
            l.record_ns(ms * 1_000_000);
        }
        let text = render(l.histogram());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "       Value     Percentile TotalCount 1/(1-Percentile)");
        assert_eq!(lines[1], "");
        assert_eq!(lines[2], "       1.000 0.000000000000          1           1.00");
        let last = lines.iter().rev().find(|l| !l.starts_with('#')).unwrap();
        assert!(last.starts_with("     100.031 1.000000000000        100"), "{last}");
        assert_eq!(last.split_whitespace().count(), 3, "the 100% line has no 1/(1-p)");
        assert!(text.contains("#[Mean    =       50.50"), "{text}");
        assert!(text.contains("Total count    =          100]"));
        assert!(text.contains("SubBuckets     =         2048]"));
        // Counts only grow, percentiles only grow.
        let rows: Vec<(f64, u64)> = lines[2..]
            .iter()
            .take_while(|l| !l.starts_with('#'))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[1].parse().unwrap(), f[2].parse().unwrap())
            })
            .collect();
        assert!(rows.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
    }

    #[test]
    fn empty_histograms_still_have_a_header_and_footer() {
        let text = render(Latency::new().histogram());
        assert!(text.starts_with("       Value"));
        assert!(text.contains("Total count    =            0]"));
    }

    #[test]
    fn specs() {
        let known = |n: &str| n == "deliver" || n == "fanout";
        assert_eq!(parse_spec("out.hgrm", known), Ok((None, "out.hgrm".into())));
        assert_eq!(parse_spec("fanout=/tmp/f.hgrm", known), Ok((Some("fanout".into()), "/tmp/f.hgrm".into())));
        assert!(parse_spec("fanuot=/tmp/f.hgrm", known).is_err());
        assert_eq!(parse_spec("/tmp/a=b.hgrm", known), Ok((None, "/tmp/a=b.hgrm".into())));
        assert!(parse_spec("", known).is_err());
    }
}
