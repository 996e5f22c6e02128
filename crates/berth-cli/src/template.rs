//! Go's `text/template` as Docker's `--format` uses it, over JSON values: fields
//! (`{{.Field.Sub}}`, `{{.}}`), literals, pipelines with `|` and parenthesized calls; the
//! blocks `{{range}}`, `{{if}}`/`{{else if}}`/`{{else}}` and `{{with}}` closed by `{{end}}`;
//! `{{-`/`-}}` trimming; a `table` prefix. Functions: Go's `and`, `or`, `not`, `len`,
//! `index`, `slice`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `print`, `printf`, `println`, and
//! Docker's `json`, `join`, `split`, `upper`, `lower`, `title`, `truncate`, `pad`.

use serde_json::Value;

use crate::format::plain;

/// A parsed `--format` template.
#[derive(Debug, Clone)]
pub struct Template {
    table: bool,
    nodes: Vec<Node>,
}

/// One operand of a command.
#[derive(Debug, Clone)]
enum Arg {
    /// `.A.B` (or `.` itself).
    Field(String),
    /// A string, number, `true`, `false` or `nil`.
    Lit(Value),
    /// A function, by name.
    Func(String),
    /// `( pipeline )`, then a field of its value (`(index .X "k").Y`), if any.
    Sub(Pipeline, Option<String>),
}

/// Commands joined by `|`: each one's value is the next one's last argument.
type Pipeline = Vec<Vec<Arg>>;

/// A piece of a template: text, an action printing a pipeline, or a block (`if`, `range`,
/// `with`) with its `else` branch.
#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    /// `if`/`else if` conditions with their bodies, then the `else` body.
    If(Vec<(Pipeline, Vec<Node>)>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
}

/// A lexed piece before blocks are built: text, or an action's tokens.
enum Tok {
    Text(String),
    Action(Vec<String>),
}

const FUNCTIONS: [&str; 23] = [
    "and", "or", "not", "len", "index", "slice", "eq", "ne", "lt", "le", "gt", "ge", "print", "printf", "println",
    "json", "join", "split", "upper", "lower", "title", "truncate", "pad",
];

impl Template {
    /// Parses a template; errors name the position or the action.
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
            toks.push(Tok::Action(lex(inner)?));
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

    /// The header row of a table template: each action's first field, named by `names` or
    /// in upper case.
    pub fn header(&self, names: &dyn Fn(&str) -> Option<String>) -> String {
        fn first_field(p: &Pipeline) -> Option<&str> {
            p.iter().flatten().find_map(|a| match a {
                Arg::Field(f) => Some(f.as_str()),
                Arg::Sub(p, _) => first_field(p),
                _ => None,
            })
        }
        let mut s = String::new();
        for n in &self.nodes {
            match n {
                Node::Text(t) => s.push_str(t),
                Node::Action(p) => {
                    let key = first_field(p).unwrap_or_default().trim_start_matches('.');
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

/// An action's tokens: strings (`"..."` with escapes, or raw `` `...` ``) kept quoted,
/// `(`, `)` and `|` apart, other words split at white space.
fn lex(s: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        if !cur.is_empty() {
            out.push(std::mem::take(cur));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '"' | '`' => {
                flush(&mut cur, &mut out);
                let mut lit = String::from('"');
                let mut closed = false;
                while let Some(d) = chars.next() {
                    match d {
                        '\\' if c == '"' => match chars.next() {
                            Some('n') => lit.push('\n'),
                            Some('t') => lit.push('\t'),
                            Some(e) => lit.push(e),
                            None => break,
                        },
                        d if d == c => {
                            closed = true;
                            break;
                        }
                        d => lit.push(d),
                    }
                }
                if !closed {
                    anyhow::bail!("template: unterminated quoted string in {s:?}");
                }
                lit.push('"');
                out.push(lit);
            }
            '(' | ')' | '|' => {
                flush(&mut cur, &mut out);
                out.push(c.to_string());
                // `(...).Field`: the field is the parenthesized value's.
                if c == ')' && chars.clone().next() == Some('.') {
                    cur.push('@');
                }
            }
            c if c.is_whitespace() => flush(&mut cur, &mut out),
            c => cur.push(c),
        }
    }
    flush(&mut cur, &mut out);
    Ok(out)
}

/// Parses tokens into a pipeline.
fn pipeline(toks: &[String]) -> anyhow::Result<Pipeline> {
    let mut pos = 0;
    let p = parse_pipe(toks, &mut pos)?;
    if pos < toks.len() {
        anyhow::bail!("template: unexpected {:?} in {:?}", toks[pos], toks.join(" "));
    }
    Ok(p)
}

fn parse_pipe(toks: &[String], pos: &mut usize) -> anyhow::Result<Pipeline> {
    let mut cmds = vec![Vec::new()];
    while let Some(t) = toks.get(*pos) {
        *pos += 1;
        let arg = match t.as_str() {
            ")" => {
                *pos -= 1;
                break;
            }
            "|" => {
                cmds.push(Vec::new());
                continue;
            }
            "(" => {
                let sub = parse_pipe(toks, pos)?;
                if toks.get(*pos).map(String::as_str) != Some(")") {
                    anyhow::bail!("template: unclosed left paren in {:?}", toks.join(" "));
                }
                *pos += 1;
                let field = toks.get(*pos).and_then(|t| t.strip_prefix('@')).map(str::to_string);
                if field.is_some() {
                    *pos += 1;
                }
                Arg::Sub(sub, field)
            }
            w if w.starts_with('.') => Arg::Field(w.to_string()),
            w if w.starts_with('"') => Arg::Lit(Value::String(w[1..w.len() - 1].to_string())),
            "true" => Arg::Lit(Value::Bool(true)),
            "false" => Arg::Lit(Value::Bool(false)),
            "nil" => Arg::Lit(Value::Null),
            w if w.parse::<i64>().is_ok() => Arg::Lit(Value::from(w.parse::<i64>().unwrap_or_default())),
            w if w.parse::<f64>().is_ok() => Arg::Lit(Value::from(w.parse::<f64>().unwrap_or_default())),
            w if FUNCTIONS.contains(&w) => Arg::Func(w.to_string()),
            w => anyhow::bail!("template: function {w:?} not defined"),
        };
        if let Some(cmd) = cmds.last_mut() {
            cmd.push(arg);
        }
    }
    if cmds.iter().any(Vec::is_empty) {
        anyhow::bail!("template: missing value for command in {:?}", toks.join(" "));
    }
    Ok(cmds)
}

/// Builds nodes until `{{end}}` or `{{else ...}}` (returned as the terminator's tokens) or
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
                let mut cond = pipeline(&words[1..])?;
                let otherwise = loop {
                    let (body, end) = build(it)?;
                    branches.push((std::mem::take(&mut cond), body));
                    match end.as_deref() {
                        Some([e]) if e == "end" => break Vec::new(),
                        Some([e, i, rest @ ..]) if e == "else" && i == "if" => cond = pipeline(rest)?,
                        Some([e]) if e == "else" => break block_end(it, "if")?,
                        _ => anyhow::bail!("template: unterminated if"),
                    }
                };
                out.push(Node::If(branches, otherwise));
            }
            Some(kw @ ("range" | "with")) => {
                let pipe = pipeline(&words[1..])?;
                let (body, end) = build(it)?;
                let otherwise = match end.as_deref() {
                    Some([e]) if e == "end" => Vec::new(),
                    Some([e]) if e == "else" => block_end(it, kw)?,
                    _ => anyhow::bail!("template: unterminated {kw}"),
                };
                out.push(if kw == "range" {
                    Node::Range(pipe, body, otherwise)
                } else {
                    Node::With(pipe, body, otherwise)
                });
            }
            _ => out.push(Node::Action(pipeline(&words)?)),
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
            Node::Action(p) => out.push_str(&plain(&eval(p, v)?)),
            Node::If(branches, otherwise) => {
                let mut taken = false;
                for (cond, body) in branches {
                    if truthy(&eval(cond, v)?) {
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
                let items: Vec<Value> = match eval(pipe, v)? {
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
                let x = eval(pipe, v)?;
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

/// A pipeline's value.
fn eval(p: &Pipeline, dot: &Value) -> anyhow::Result<Value> {
    let mut piped: Option<Value> = None;
    for cmd in p {
        piped = Some(match cmd.as_slice() {
            [Arg::Func(f), args @ ..] => {
                let mut a: Vec<Value> = args.iter().map(|x| operand(x, dot)).collect::<anyhow::Result<_>>()?;
                a.extend(piped.take());
                call(f, a)?
            }
            [one] if piped.is_none() => operand(one, dot)?,
            _ => anyhow::bail!("template: can't give an argument to a non-function"),
        });
    }
    Ok(piped.unwrap_or(Value::Null))
}

fn operand(a: &Arg, dot: &Value) -> anyhow::Result<Value> {
    match a {
        Arg::Field(f) => Ok(lookup(dot, f)?.clone()),
        Arg::Lit(v) => Ok(v.clone()),
        Arg::Sub(p, None) => eval(p, dot),
        Arg::Sub(p, Some(field)) => Ok(lookup(&eval(p, dot)?, field)?.clone()),
        Arg::Func(f) => call(f, Vec::new()),
    }
}

fn lookup<'a>(v: &'a Value, path: &str) -> anyhow::Result<&'a Value> {
    if path == "." {
        return Ok(v);
    }
    let mut cur = v;
    for key in path.trim_start_matches('.').split('.') {
        cur = match cur.get(key) {
            Some(x) => x,
            None if cur.is_object() || cur.is_null() => &Value::Null,
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

fn text(v: Option<&Value>) -> String {
    v.map(plain).unwrap_or_default()
}

fn int(v: Option<&Value>, f: &str) -> anyhow::Result<i64> {
    v.and_then(Value::as_i64)
        .ok_or_else(|| anyhow::anyhow!("template: {f}: want an integer, got {}", text(v)))
}

/// Compares two values as Go's `lt` does: numbers with numbers, strings with strings.
fn order(a: &Value, b: &Value, f: &str) -> anyhow::Result<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .zip(y.as_f64())
            .and_then(|(x, y)| x.partial_cmp(&y))
            .ok_or_else(|| anyhow::anyhow!("template: {f}: incomparable numbers")),
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        _ => anyhow::bail!("template: {f}: incompatible types for comparison"),
    }
}

/// Equality as Go's `eq`: numbers by value, others as they are.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn call(f: &str, a: Vec<Value>) -> anyhow::Result<Value> {
    let need = |n: usize| {
        if a.len() < n {
            anyhow::bail!("template: wrong number of args for {f}: want {n} got {}", a.len());
        }
        Ok(())
    };
    Ok(match f {
        "and" => {
            need(1)?;
            a.iter().find(|x| !truthy(x)).unwrap_or(&a[a.len() - 1]).clone()
        }
        "or" => {
            need(1)?;
            a.iter().find(|x| truthy(x)).unwrap_or(&a[a.len() - 1]).clone()
        }
        "not" => {
            need(1)?;
            Value::Bool(!truthy(&a[0]))
        }
        "eq" => {
            need(2)?;
            Value::Bool(a[1..].iter().any(|b| same(&a[0], b)))
        }
        "ne" => {
            need(2)?;
            Value::Bool(!same(&a[0], &a[1]))
        }
        "lt" | "le" | "gt" | "ge" => {
            need(2)?;
            let o = order(&a[0], &a[1], f)?;
            Value::Bool(match f {
                "lt" => o.is_lt(),
                "le" => o.is_le(),
                "gt" => o.is_gt(),
                _ => o.is_ge(),
            })
        }
        "len" => {
            need(1)?;
            Value::from(match &a[0] {
                Value::Array(x) => x.len(),
                Value::Object(x) => x.len(),
                Value::String(x) => x.len(),
                Value::Null => 0,
                other => anyhow::bail!("template: len of {}", kind(other)),
            })
        }
        "index" => {
            need(1)?;
            index(&a[0], &a[1..])?
        }
        "slice" => {
            need(1)?;
            let from = usize::try_from(a.get(1).map_or(Ok(0), |v| int(Some(v), f))?).unwrap_or(0);
            match &a[0] {
                Value::String(s) => {
                    let to = a.get(2).map_or(Ok(s.len()), |v| {
                        int(Some(v), f).map(|n| usize::try_from(n).unwrap_or(0))
                    })?;
                    Value::String(
                        s.get(from..to)
                            .ok_or_else(|| anyhow::anyhow!("template: slice out of range"))?
                            .to_string(),
                    )
                }
                Value::Array(x) => {
                    let to = a.get(2).map_or(Ok(x.len()), |v| {
                        int(Some(v), f).map(|n| usize::try_from(n).unwrap_or(0))
                    })?;
                    Value::Array(
                        x.get(from..to)
                            .ok_or_else(|| anyhow::anyhow!("template: slice out of range"))?
                            .to_vec(),
                    )
                }
                other => anyhow::bail!("template: can't slice {}", kind(other)),
            }
        }
        "print" => Value::String(a.iter().map(plain).collect::<Vec<_>>().join(" ")),
        "println" => Value::String(format!("{}\n", a.iter().map(plain).collect::<Vec<_>>().join(" "))),
        "printf" => {
            need(1)?;
            Value::String(printf(&text(a.first()), &a[1..]))
        }
        "json" => Value::String(serde_json::to_string(a.first().unwrap_or(&Value::Null))?),
        "join" => {
            need(2)?;
            let items: Vec<String> = a[0]
                .as_array()
                .map(|x| x.iter().map(plain).collect())
                .unwrap_or_default();
            Value::String(items.join(&text(a.get(1))))
        }
        "split" => {
            need(2)?;
            let (s, sep) = (text(a.first()), text(a.get(1)));
            Value::Array(s.split(sep.as_str()).map(|x| Value::String(x.to_string())).collect())
        }
        "upper" => Value::String(text(a.first()).to_uppercase()),
        "lower" => Value::String(text(a.first()).to_lowercase()),
        "title" => Value::String(
            text(a.first())
                .split(' ')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_uppercase().chain(c).collect::<String>())
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "truncate" => {
            need(2)?;
            let n = usize::try_from(int(a.get(1), f)?).unwrap_or(0);
            Value::String(text(a.first()).chars().take(n).collect())
        }
        "pad" => {
            need(3)?;
            let (l, r) = (int(a.get(1), f)?, int(a.get(2), f)?);
            let sp = |n: i64| " ".repeat(usize::try_from(n).unwrap_or(0));
            Value::String(format!("{}{}{}", sp(l), text(a.first()), sp(r)))
        }
        other => anyhow::bail!("template: function {other:?} not defined"),
    })
}

/// `index X K...`: list positions and map keys (a missing key is an empty value).
fn index(x: &Value, keys: &[Value]) -> anyhow::Result<Value> {
    let mut cur = x.clone();
    for k in keys {
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

/// Go's `printf` for the verbs `--format` strings use: `%s`, `%v`, `%d`, `%q`, `%%`, with
/// a `-` flag and a width.
fn printf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let left = chars.next_if_eq(&'-').is_some();
        let mut width = 0usize;
        while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
            width = width * 10 + d as usize;
            chars.next();
        }
        let s = match chars.next() {
            Some('%') => "%".to_string(),
            Some('q') => args
                .next()
                .map_or_else(|| "%!q(MISSING)".into(), |v| format!("{:?}", plain(v))),
            Some(verb @ ('s' | 'v' | 'd')) => args.next().map_or_else(|| format!("%!{verb}(MISSING)"), plain),
            Some(other) => format!("%!{other}"),
            None => "%!(NOVERB)".into(),
        };
        let pad = " ".repeat(width.saturating_sub(s.chars().count()));
        if left {
            out.push_str(&s);
            out.push_str(&pad);
        } else {
            out.push_str(&pad);
            out.push_str(&s);
        }
    }
    out
}

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
        assert!(Template::parse("{{bogus .Id}}")
            .unwrap_err()
            .to_string()
            .contains("not defined"));
        let tt = Template::parse("table {{.ID}}\\t{{.Repository}}").unwrap();
        assert!(tt.is_table());
        assert_eq!(
            tt.header(&|k| (k == "ID").then(|| "IMAGE ID".to_string())),
            "IMAGE ID\tREPOSITORY"
        );
    }

    #[test]
    fn comparisons_pipelines_and_docker_functions() {
        let v = json!({"State": {"Status": "running", "Pid": 42}, "Name": "/web", "Tags": ["a", "b", "c"], "Nets": {"a": {"IP": "1.2.3.4", "Deep": {"X": "y"}}}});
        let t = |s: &str| Template::parse(s).unwrap().render(&v).unwrap();
        assert_eq!(t(r#"{{if eq .State.Status "running"}}up{{else}}down{{end}}"#), "up");
        assert_eq!(t(r#"{{if ne .State.Status "running"}}down{{end}}|"#), "|");
        assert_eq!(t(r#"{{eq .State.Status "exited" "running"}}"#), "true");
        assert_eq!(t("{{if gt .State.Pid 1}}big{{end}}"), "big");
        assert_eq!(t("{{lt 1 2}} {{ge 2 2}} {{le 3 2}}"), "true true false");
        assert_eq!(t("{{if and .Name (not .Missing)}}ok{{end}}"), "ok");
        assert_eq!(t("{{or .Missing .Name}}"), "/web");
        assert_eq!(t("{{.Name | upper}}"), "/WEB");
        assert_eq!(t("{{len (slice .Tags 1)}}"), "2");
        assert_eq!(t(r#"{{join (split "x,y" ",") "-"}}"#), "x-y");
        assert_eq!(
            t(r#"{{printf "%-6s|%3d|%q" .Name .State.Pid "a"}}"#),
            "/web  | 42|\"a\""
        );
        assert_eq!(
            t(r#"{{title "hello world"}} {{truncate .Name 2}} {{pad "x" 1 2}}."#),
            "Hello World /w  x  ."
        );
        assert_eq!(t("{{slice .Name 1 3}}"), "we");
        assert_eq!(
            t(r#"{{(index .Nets "a").IP}} {{(index .Nets "a").Deep.X}}"#),
            "1.2.3.4 y"
        );
        assert_eq!(t(r#"{{print "a" 1}}"#), "a 1");
        Template::parse("{{eq .Name}}").unwrap().render(&v).unwrap_err();
        Template::parse("{{lt .Name 1}}").unwrap().render(&v).unwrap_err();
        Template::parse("{{(eq .Name}}").unwrap_err();
        Template::parse(r#"{{"open}}"#).unwrap_err();
    }
}
