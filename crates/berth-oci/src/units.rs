//! Docker's size notation: `512`, `64k`, `100m`, `1g`, `2t` (binary units, a trailing `b`
//! optional, fractions allowed).

/// The number of bytes `s` names, or None when it is not a size.
pub fn parse_size(s: &str) -> Option<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    // Digits and a point only: Rust's float syntax also takes `NaN`, `inf` and exponents.
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let v: f64 = num.parse().ok()?;
    #[allow(clippy::cast_precision_loss)]
    let bytes = v * mul as f64;
    // Past i64 the cast would saturate, and a limit too large to write would read as none.
    #[allow(clippy::cast_precision_loss)]
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return None;
    }
    #[allow(clippy::cast_possible_truncation)]
    Some(bytes as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("10KB"), Some(10 << 10));
        assert_eq!(parse_size("1.5k"), Some(1536));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("-1m"), None);
        assert_eq!(parse_size("99999999999999999999g"), None);
        assert_eq!(parse_size("nan"), None);
        assert_eq!(parse_size("infm"), None);
        assert_eq!(parse_size("1e3"), None);
        assert_eq!(parse_size("m"), None);
    }
}
