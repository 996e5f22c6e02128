//! RFC 3339 times as Docker and the OCI state document write them (UTC, nanoseconds), and
//! parsing them back; pure arithmetic (Howard Hinnant's civil-date algorithms).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A time as RFC 3339 in UTC (`2026-11-22T10:00:00.123456789Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// The current time, RFC 3339.
pub fn now() -> String {
    rfc3339(SystemTime::now())
}

/// Unix nanoseconds of an RFC 3339 time, keeping its fraction of a second.
pub fn parse_rfc3339_nanos(s: &str) -> Option<u128> {
    let secs = parse_rfc3339(s)?;
    let frac = s
        .get(19..)
        .and_then(|r| r.strip_prefix('.'))
        .map(|r| r.chars().take_while(char::is_ascii_digit).collect::<String>())
        .unwrap_or_default();
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    Some(u128::from(secs) * 1_000_000_000 + digits.parse::<u128>().unwrap_or(0))
}

/// Nanoseconds since the epoch, now.
pub fn now_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// A point in time as Docker's `--since`, `--until` and `until` filters take one, in
/// nanoseconds since the epoch: RFC 3339 (its fraction kept), unix seconds with an optional
/// fraction (`1700000000.5`), or a Go duration before `now` (`42m`, `1h30m`). The one
/// parser the CLI and the API share.
pub fn parse_point(s: &str, now: i128) -> Option<i128> {
    if let Some(n) = parse_rfc3339_nanos(s) {
        return i128::try_from(n).ok();
    }
    let (neg, digits) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (secs, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if !secs.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && frac.len() <= 9
    {
        let nanos: i128 = format!("{frac:0<9}").parse().ok()?;
        let v = secs
            .parse::<i128>()
            .ok()?
            .checked_mul(1_000_000_000)?
            .checked_add(nanos)?;
        return Some(if neg { -v } else { v });
    }
    let d = parse_go_duration(s)?;
    now.checked_sub(i128::try_from(d.as_nanos()).ok()?)
}

/// Unix seconds of an RFC 3339 time (`2024-01-02T03:04:05.123Z`, with or without offset).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    if s.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    let mut rest = s.get(19..)?;
    if let Some(r) = rest.strip_prefix('.') {
        rest = r.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" | "" => 0,
        r if r.len() == 6 => {
            let sign = if r.starts_with('-') { -1 } else { 1 };
            sign * (r.get(1..3)?.parse::<i64>().ok()? * 3600 + r.get(4..6)?.parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + se - offset).ok()
}

/// Parses Docker durations (`30s`, `1m30s`, `500ms`, `2h`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(n) = chars.peek() {
            if n.is_ascii_alphabetic() {
                unit.push(*n);
                chars.next();
            } else {
                break;
            }
        }
        let v: f64 = num.parse().ok()?;
        num.clear();
        let secs = match unit.as_str() {
            "ns" => v / 1e9,
            "us" | "µs" => v / 1e6,
            "ms" => v / 1e3,
            "s" => v,
            "m" => v * 60.0,
            "h" => v * 3600.0,
            _ => return None,
        };
        total += Duration::from_secs_f64(secs);
        any = true;
    }
    if !num.is_empty() || !any {
        return None;
    }
    Some(total)
}

/// Docker's human durations (`2 months`, `About an hour`, `Less than a second`).
pub fn human_duration(secs: u64) -> String {
    let minutes = secs / 60;
    let hours = (secs + 1800) / 3600;
    if secs < 1 {
        "Less than a second".into()
    } else if secs == 1 {
        "1 second".into()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", secs / 3600 / 24 / 365)
    }
}

/// Seconds since an RFC 3339 time (0 when unparsable or in the future).
pub fn since(rfc3339: &str) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    parse_rfc3339(rfc3339).map(|t| now.saturating_sub(t)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn points_in_time_as_docker_takes_them() {
        let now = 1_700_000_000_000_000_000;
        assert_eq!(super::parse_point("1700000000", now), Some(now));
        assert_eq!(super::parse_point("1700000000.5", now), Some(now + 500_000_000));
        assert_eq!(super::parse_point("10m", now), Some(now - 600_000_000_000));
        assert_eq!(super::parse_point("1h30m", now), Some(now - 5_400_000_000_000));
        assert_eq!(super::parse_point("2023-11-14T22:13:20Z", now), Some(now));
        assert_eq!(
            super::parse_point("2023-11-14T22:13:20.25Z", now),
            Some(now + 250_000_000)
        );
        for bad in ["", "5€", "abc", "1.2.3", "1700000000.1234567891"] {
            assert_eq!(super::parse_point(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn non_ascii_input_is_refused_not_a_panic() {
        for bad in [
            "5€",
            "€",
            "2026-12-06T10:00:00€",
            "2026-12-06T10:00:00.5€Z",
            "1h€",
            "€1s",
            "2026-€-06T10:00:00Z",
        ] {
            assert_eq!(super::parse_rfc3339_nanos(bad), None, "{bad}");
            assert_eq!(super::parse_rfc3339(bad), None, "{bad}");
            assert_eq!(super::parse_go_duration(bad), None, "{bad}");
        }
    }

    use super::*;

    #[test]
    fn round_trips() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000000000Z");
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(1_700_000_000));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.5+01:00"), Some(1_700_000_000 - 3600));
        assert_eq!(parse_rfc3339("garbage"), None);
        assert_eq!(
            parse_rfc3339_nanos("2023-11-14T22:13:20.5Z"),
            Some(1_700_000_000_500_000_000)
        );
        assert_eq!(
            parse_rfc3339_nanos("2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000_000_000)
        );
    }
}
