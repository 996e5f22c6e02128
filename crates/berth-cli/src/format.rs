//! Output helpers shared by the docker-style commands: Go-template `--format` (the subset
//! people use: `{{.Field.Sub}}`, `{{json .X}}`, `{{index .X 0}}`, `{{join .X ","}}`,
//! `{{len .X}}`, `{{upper .X}}`, `{{lower .X}}`, and a `table` prefix), column tables, and
//! Docker's human units for sizes and durations.

use serde_json::Value;

/// A parsed `--format` template.
#[derive(Debug, Clone)]
pub struct Template {
    table: bool,
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Action(Vec<String>),
}

impl Template {
    /// Parses a template; errors name the position.
    pub fn parse(src: &str) -> anyhow::Result<Template> {
        let (table, body) = match src.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => (true, rest.trim_start()),
            _ => (false, src),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let mut parts = Vec::new();
        let mut rest = body.as_str();
        while let Some(i) = rest.find("{{") {
            if i > 0 {
                parts.push(Part::Text(rest[..i].to_string()));
            }
            let after = &rest[i + 2..];
            let j = after
                .find("}}")
                .ok_or_else(|| anyhow::anyhow!("template: unclosed action at offset {}", src.len() - rest.len() + i))?;
            let inner = after[..j].trim().trim_start_matches('-').trim_end_matches('-').trim();
            parts.push(Part::Action(split_words(inner)));
            rest = &after[j + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { table, parts })
    }

    /// Whether the template asked for a table with headers.
    pub fn is_table(&self) -> bool {
        self.table
    }

    /// The header row of a table template: each field's name in upper case words.
    pub fn header(&self, names: &dyn Fn(&str) -> Option<String>) -> String {
        let mut s = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => s.push_str(t),
                Part::Action(words) => {
                    let f = words.iter().find(|w| w.starts_with('.')).cloned().unwrap_or_default();
                    let key = f.trim_start_matches('.');
                    s.push_str(&names(key).unwrap_or_else(|| key.to_ascii_uppercase()));
                }
            }
        }
        s
    }

    /// Renders the template against a JSON value.
    pub fn render(&self, v: &Value) -> anyhow::Result<String> {
        let mut s = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => s.push_str(t),
                Part::Action(words) => s.push_str(&eval(words, v)?),
            }
        }
        Ok(s)
    }
}

fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = false;
    for c in s.chars() {
        match c {
            '"' => {
                quote = !quote;
                cur.push(c);
            }
            c if c.is_whitespace() && !quote => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn lookup<'a>(v: &'a Value, path: &str) -> anyhow::Result<&'a Value> {
    if path == "." {
        return Ok(v);
    }
    let mut cur = v;
    for key in path.trim_start_matches('.').split('.') {
        cur = match cur.get(key) {
            Some(x) => x,
            None if cur.is_object() => &Value::Null,
            None => anyhow::bail!("template: can't evaluate field {key} in type {}", kind(cur)),
        };
    }
    Ok(cur)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

fn arg(word: &str, v: &Value) -> anyhow::Result<Value> {
    if word.starts_with('.') {
        return Ok(lookup(v, word)?.clone());
    }
    if let Some(s) = word.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
        return Ok(Value::String(s.to_string()));
    }
    if let Ok(n) = word.parse::<i64>() {
        return Ok(Value::from(n));
    }
    anyhow::bail!("template: unknown argument {word:?}")
}

fn eval(words: &[String], v: &Value) -> anyhow::Result<String> {
    let Some(first) = words.first() else {
        return Ok(String::new());
    };
    let args = || -> anyhow::Result<Vec<Value>> { words[1..].iter().map(|w| arg(w, v)).collect() };
    match first.as_str() {
        "json" => Ok(serde_json::to_string(args()?.first().unwrap_or(&Value::Null))?),
        "index" => {
            let a = args()?;
            let mut cur = a.first().cloned().unwrap_or(Value::Null);
            for k in &a[1..] {
                cur = match (&cur, k) {
                    (Value::Array(arr), Value::Number(n)) => n
                        .as_u64()
                        .and_then(|i| arr.get(usize::try_from(i).ok()?))
                        .cloned()
                        .ok_or_else(|| anyhow::anyhow!("template: index out of range: {n}"))?,
                    (Value::Object(o), Value::String(s)) => o.get(s).cloned().unwrap_or(Value::Null),
                    _ => anyhow::bail!("template: can't index {} with {}", kind(&cur), kind(k)),
                };
            }
            Ok(plain(&cur))
        }
        "join" => {
            let a = args()?;
            let sep = a.get(1).and_then(Value::as_str).unwrap_or("");
            let items: Vec<String> = a
                .first()
                .and_then(Value::as_array)
                .map(|x| x.iter().map(plain).collect())
                .unwrap_or_default();
            Ok(items.join(sep))
        }
        "len" => {
            let a = args()?;
            Ok(match a.first() {
                Some(Value::Array(x)) => x.len(),
                Some(Value::Object(x)) => x.len(),
                Some(Value::String(x)) => x.len(),
                _ => 0,
            }
            .to_string())
        }
        "upper" => Ok(args()?.first().map(plain).unwrap_or_default().to_uppercase()),
        "lower" => Ok(args()?.first().map(plain).unwrap_or_default().to_lowercase()),
        "println" => Ok(format!("{}\n", args()?.iter().map(plain).collect::<Vec<_>>().join(" "))),
        w if w.starts_with('.') => Ok(plain(lookup(v, w)?)),
        other => anyhow::bail!("template: function {other:?} not defined"),
    }
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
    use serde_json::json;

    #[test]
    fn templates_render_like_go() {
        let v = json!({"Id": "sha256:abc", "RepoTags": ["a:1", "b:2"], "Config": {"Cmd": ["sh", "-c"], "Env": null}});
        let t = |s: &str| Template::parse(s).unwrap().render(&v).unwrap();
        assert_eq!(t("{{.Id}}"), "sha256:abc");
        assert_eq!(t("{{json .Config.Cmd}}"), r#"["sh","-c"]"#);
        assert_eq!(t("{{.Config.Cmd}}"), "[sh -c]");
        assert_eq!(t("{{index .RepoTags 1}}"), "b:2");
        assert_eq!(t("{{join .RepoTags \",\"}}"), "a:1,b:2");
        assert_eq!(t("{{len .RepoTags}} x\\t{{.Id}}"), "2 x\tsha256:abc");
        assert_eq!(t("{{.Config.Env}}"), "<no value>");
        Template::parse("{{.Id").unwrap_err();
        Template::parse("{{bogus .Id}}").unwrap().render(&v).unwrap_err();
        let tt = Template::parse("table {{.ID}}\\t{{.Repository}}").unwrap();
        assert!(tt.is_table());
        assert_eq!(
            tt.header(&|k| (k == "ID").then(|| "IMAGE ID".to_string())),
            "IMAGE ID\tREPOSITORY"
        );
    }

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
