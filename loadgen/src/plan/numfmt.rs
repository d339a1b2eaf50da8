//! Numbers as the report prints them: whole numbers with thousands
//! separators, others with enough digits to redo the arithmetic by hand.

/// `1234567` -> `1,234,567`; `804.38436` -> `804.3844`; `0.0123456` -> `0.01235`.
pub(crate) fn n(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let abs = x.abs();
    if abs >= 1000.0 || x.fract() == 0.0 {
        return grouped(x.round());
    }
    let digits = if abs >= 1.0 {
        4
    } else if abs == 0.0 {
        0
    } else {
        // Four significant digits below 1.
        (3 - abs.log10().floor() as i32).max(0) as usize
    };
    let s = format!("{x:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

fn grouped(x: f64) -> String {
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::n;

    #[test]
    fn numbers_are_grouped_and_trimmed() {
        assert_eq!(n(1_234_567.0), "1,234,567");
        assert_eq!(n(1_157_407.407), "1,157,407");
        assert_eq!(n(805.0), "805");
        assert_eq!(n(804.38436), "804.3844");
        assert_eq!(n(0.62), "0.62");
        assert_eq!(n(0.0123456), "0.01235");
        assert_eq!(n(1.0368), "1.0368");
        assert_eq!(n(62.0), "62");
        assert_eq!(n(0.0), "0");
        assert_eq!(n(-2500.0), "-2,500");
    }
}
