//! Output helpers shared by the docker-style commands: Go-template `--format` (in
//! `template.rs`), how a value prints there, column tables, and Docker's human units for
//! sizes and durations.

use serde_json::Value;

pub use crate::template::Template;

/// The flags of a listing (`network ls`, `pod ps`).
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only display IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate the output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Format output using a Go template, or `json`.
    #[arg(long)]
    pub format: Option<String>,
    /// Provide filter values (KEY=VALUE).
    #[arg(short, long)]
    pub filter: Vec<String>,
}

/// A value as Go's template prints it: strings bare, lists as `[a b]`, maps as `map[k:v]`.
pub fn plain(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(plain).collect::<Vec<_>>().join(" ")),
        Value::Object(o) => format!(
            "map[{}]",
            o.iter()
                .map(|(k, v)| format!("{k}:{}", plain(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        other => other.to_string(),
    }
}

/// Prints rows as aligned columns (three spaces between, as Docker's tabwriter does).
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut width = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(width[i] - c.chars().count() + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Docker's size units: decimal, 3 significant digits (`4.26MB`, `890kB`, `0B`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    #[allow(clippy::cast_precision_loss)]
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", sig3(v), UNITS[i])
}

/// `%.3g` without trailing zeros.
fn sig3(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

pub use berth_oci::time::{human_duration, since};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_match_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(4_261_550), "4.26MB");
        assert_eq!(human_size(890_000), "890kB");
        assert_eq!(human_size(1_240_000_000), "1.24GB");
        assert_eq!(human_size(12_300), "12.3kB");
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(3 * 3600), "3 hours");
        assert_eq!(human_duration(70 * 24 * 3600), "2 months");
        assert_eq!(berth_oci::time::parse_rfc3339("1970-01-02T00:00:00Z"), Some(86400));
        assert_eq!(
            berth_oci::time::parse_rfc3339("2023-11-14T22:13:20.5+01:00"),
            Some(1_700_000_000 - 3600)
        );
    }
}
