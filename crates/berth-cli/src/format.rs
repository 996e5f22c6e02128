//! Output helpers shared by the docker-style commands: Go-template `--format` (the subset
//! people use: `{{.Field.Sub}}`, `{{json .X}}`, `{{index .X 0}}`, `{{join .X ","}}`,
//! `{{len .X}}`, `{{upper .X}}`, `{{lower .X}}`, `{{println ...}}`, the blocks
//! `{{range}}`, `{{if}}`/`{{else if}}`/`{{else}}` and `{{with}}` closed by `{{end}}`,
//! `{{-`/`-}}` trimming, and a `table` prefix), column tables, and Docker's human units for
//! sizes and durations.

use serde_json::Value;

/// A parsed `--format` template.
#[derive(Debug, Clone)]
pub struct Template {
    table: bool,
    nodes: Vec<Node>,
}

/// A piece of a template: text, an action printing a pipeline, or a block (`if`, `range`,
/// `with`) with its `else` branch.
#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Vec<String>),
    /// `if`/`else if` conditions with their bodies, then the `else` body.
    If(Vec<(Vec<String>, Vec<Node>)>, Vec<Node>),
    Range(Vec<String>, Vec<Node>, Vec<Node>),
    With(Vec<String>, Vec<Node>, Vec<Node>),
}

/// A lexed piece before blocks are built.
enum Tok {
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
        let mut toks = Vec::new();
        let mut rest = body.as_str();
        let mut trim_next = false;
        while let Some(i) = rest.find("{{") {
            let after = &rest[i + 2..];
            let j = after
                .find("}}")
                .ok_or_else(|| anyhow::anyhow!("template: unclosed action at offset {}", src.len() - rest.len() + i))?;
            let raw = &after[..j];
            // `{{- ` trims the whitespace before the action, ` -}}` the whitespace after it.
            let mut text = &rest[..i];
            if trim_next {
                text = text.trim_start();
            }
            if raw.starts_with("- ") || raw == "-" {
                text = text.trim_end();
            }
            if !text.is_empty() {
                toks.push(Tok::Text(text.to_string()));
            }
            trim_next = raw.ends_with(" -") || raw == "-";
            let inner = raw.trim().trim_start_matches('-').trim_end_matches('-').trim();
            toks.push(Tok::Action(split_words(inner)));
            rest = &after[j + 2..];
        }
        let tail = if trim_next { rest.trim_start() } else { rest };
        if !tail.is_empty() {
            toks.push(Tok::Text(tail.to_string()));
        }
        let mut it = toks.into_iter();
        let (nodes, end) = build(&mut it)?;
        if let Some(end) = end {
            anyhow::bail!("template: unexpected {{{{{}}}}}", end.join(" "));
        }
        Ok(Template { table, nodes })
    }

    /// Whether the template asked for a table with headers.
    pub fn is_table(&self) -> bool {
        self.table
    }

    /// The header row of a table template: each field's name in upper case words.
    pub fn header(&self, names: &dyn Fn(&str) -> Option<String>) -> String {
        let mut s = String::new();
        for p in &self.nodes {
            match p {
                Node::Text(t) => s.push_str(t),
                Node::Action(words) => {
                    let f = words.iter().find(|w| w.starts_with('.')).cloned().unwrap_or_default();
                    let key = f.trim_start_matches('.');
                    s.push_str(&names(key).unwrap_or_else(|| key.to_ascii_uppercase()));
                }
                _ => {}
            }
        }
        s
    }

    /// Renders the template against a JSON value.
    pub fn render(&self, v: &Value) -> anyhow::Result<String> {
        let mut s = String::new();
        render(&self.nodes, v, &mut s)?;
        Ok(s)
    }
}

/// Builds nodes until `{{end}}` or `{{else ...}}` (returned as the terminator's words) or
/// the end of the tokens (`None`).
fn build(it: &mut dyn Iterator<Item = Tok>) -> anyhow::Result<(Vec<Node>, Option<Vec<String>>)> {
    let mut out = Vec::new();
    while let Some(t) = it.next() {
        let words = match t {
            Tok::Text(s) => {
                out.push(Node::Text(s));
                continue;
            }
            Tok::Action(w) => w,
        };
        match words.first().map(String::as_str) {
            Some("end" | "else") => return Ok((out, Some(words))),
            Some("if") => {
                let mut branches = Vec::new();
                let mut cond = words[1..].to_vec();
                let otherwise = loop {
                    let (body, end) = build(it)?;
                    branches.push((std::mem::take(&mut cond), body));
                    match end.as_deref() {
                        Some([e]) if e == "end" => break Vec::new(),
                        Some([e, i, rest @ ..]) if e == "else" && i == "if" => cond = rest.to_vec(),
                        Some([e]) if e == "else" => break block_end(it, "if")?,
                        _ => anyhow::bail!("template: unterminated if"),
                    }
                };
                out.push(Node::If(branches, otherwise));
            }
            Some(kw @ ("range" | "with")) => {
                let (body, end) = build(it)?;
                let otherwise = match end.as_deref() {
                    Some([e]) if e == "end" => Vec::new(),
                    Some([e]) if e == "else" => block_end(it, kw)?,
                    _ => anyhow::bail!("template: unterminated {kw}"),
                };
                let pipe = words[1..].to_vec();
                out.push(if kw == "range" {
                    Node::Range(pipe, body, otherwise)
                } else {
                    Node::With(pipe, body, otherwise)
                });
            }
            _ => out.push(Node::Action(words)),
        }
    }
    Ok((out, None))
}

/// The `else` body of a block, which must close with `{{end}}`.
fn block_end(it: &mut dyn Iterator<Item = Tok>, kw: &str) -> anyhow::Result<Vec<Node>> {
    match build(it)? {
        (body, Some(end)) if end == ["end"] => Ok(body),
        _ => anyhow::bail!("template: unterminated {kw}"),
    }
}

/// Go's truth: false, 0, nil and empty strings, lists and maps are false.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn render(nodes: &[Node], v: &Value, out: &mut String) -> anyhow::Result<()> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(words) => out.push_str(&eval(words, v)?),
            Node::If(branches, otherwise) => {
                let mut taken = false;
                for (cond, body) in branches {
                    if truthy(&value(cond, v)?) {
                        render(body, v, out)?;
                        taken = true;
                        break;
                    }
                }
                if !taken {
                    render(otherwise, v, out)?;
                }
            }
            Node::Range(pipe, body, otherwise) => {
                let items: Vec<Value> = match value(pipe, v)? {
                    Value::Array(a) => a,
                    Value::Object(o) => o.into_iter().map(|(_, x)| x).collect(),
                    Value::Null => Vec::new(),
                    other => anyhow::bail!("template: range can't iterate over {}", plain(&other)),
                };
                if items.is_empty() {
                    render(otherwise, v, out)?;
                }
                for item in &items {
                    render(body, item, out)?;
                }
            }
            Node::With(pipe, body, otherwise) => {
                let x = value(pipe, v)?;
                if truthy(&x) {
                    render(body, &x, out)?;
                } else {
                    render(otherwise, v, out)?;
                }
            }
        }
    }
    Ok(())
}

/// A pipeline's value (not printed): a field, a literal, or a function's result.
fn value(words: &[String], v: &Value) -> anyhow::Result<Value> {
    match words {
        [] => anyhow::bail!("template: missing value"),
        [one] if !is_function(one) => arg(one, v),
        [f, ..] if f == "index" => index(words, v),
        _ => Ok(Value::String(eval(words, v)?)),
    }
}

fn is_function(w: &str) -> bool {
    matches!(w, "json" | "index" | "join" | "len" | "upper" | "lower" | "println")
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
        "index" => Ok(plain(&index(words, v)?)),
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

/// `index X K...`: list positions and map keys (a missing key is an empty value).
fn index(words: &[String], v: &Value) -> anyhow::Result<Value> {
    let a: Vec<Value> = words[1..].iter().map(|w| arg(w, v)).collect::<anyhow::Result<_>>()?;
    let mut cur = a.first().cloned().unwrap_or(Value::Null);
    for k in a.iter().skip(1) {
        cur = match (&cur, k) {
            (Value::Array(arr), Value::Number(n)) => n
                .as_u64()
                .and_then(|i| arr.get(usize::try_from(i).ok()?))
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("template: index out of range: {n}"))?,
            (Value::Object(o), Value::String(s)) => o.get(s).cloned().unwrap_or(Value::String(String::new())),
            (Value::Null, _) => Value::Null,
            _ => anyhow::bail!("template: can't index {} with {}", kind(&cur), kind(k)),
        };
    }
    Ok(cur)
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
        assert_eq!(t("{{range .RepoTags}}[{{.}}]{{end}}"), "[a:1][b:2]");
        assert_eq!(t("{{range .Config.Env}}x{{else}}none{{end}}"), "none");
        assert_eq!(t("{{if .Config.Env}}set{{else if .Id}}id{{else}}no{{end}}"), "id");
        assert_eq!(t("{{if .RepoTags}}tags{{end}}"), "tags");
        assert_eq!(t("{{with .Config}}{{index .Cmd 0}}{{end}}"), "sh");
        assert_eq!(t("{{range .RepoTags -}}\n  {{.}} {{- end}}"), "a:1b:2");
        assert_eq!(t("{{range .RepoTags}}{{println .}}{{end}}"), "a:1\nb:2\n");
        assert_eq!(t("{{index .Config \"Missing\"}}|"), "|");
        Template::parse("{{range .RepoTags}}x").unwrap_err();
        Template::parse("{{end}}").unwrap_err();
        Template::parse("{{if .Id}}a{{else}}b").unwrap_err();
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
