//! Variables: `${VAR}` interpolation in Compose files, and `.env`/`env_file` files.

use std::collections::BTreeMap;

/// Where variables come from: the process's environment over the project's `.env`.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    /// The values, by name.
    pub map: BTreeMap<String, String>,
}

impl Vars {
    /// The process's environment over `dotenv`'s values.
    pub fn with_process_env(dotenv: BTreeMap<String, String>) -> Vars {
        let mut map = dotenv;
        map.extend(std::env::vars());
        Vars { map }
    }

    /// A variable's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }
}

/// `s` with its variables replaced: `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty),
/// `${VAR-default}` (unset), `${VAR:?message}`/`${VAR?message}` (an error), `${VAR:+alt}`,
/// `${VAR+alt}`; `$$` is a literal `$`. Defaults may hold variables themselves.
pub fn interpolate(s: &str, vars: &Vars) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            let next = s[i..].find('$').map_or(s.len(), |n| i + n);
            out.push_str(&s[i..next]);
            i = next;
            continue;
        }
        match b.get(i + 1) {
            Some(b'$') => {
                out.push('$');
                i += 2;
            }
            Some(b'{') => {
                let end = closing_brace(s, i + 2)
                    .ok_or_else(|| format!("invalid interpolation format for {s:?}: no closing brace"))?;
                out.push_str(&expand(&s[i + 2..end], vars, s)?);
                i = end + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let len = s[i + 1..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(s.len() - i - 1);
                out.push_str(vars.get(&s[i + 1..i + 1 + len]).unwrap_or(""));
                i += 1 + len;
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The index of the `}` that closes a `${` whose body starts at `from` (nested `${}`
/// counted).
fn closing_brace(s: &str, from: usize) -> Option<usize> {
    let mut depth = 0;
    let b = s.as_bytes();
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// One `${...}` body.
fn expand(body: &str, vars: &Vars, whole: &str) -> Result<String, String> {
    let name_len = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let (name, rest) = body.split_at(name_len);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!(
            "invalid interpolation format for {whole:?}: {body:?} is not a variable name"
        ));
    }
    let value = vars.get(name);
    let (op, arg) = if let Some(a) = rest.strip_prefix(":-") {
        (":-", a)
    } else if let Some(a) = rest.strip_prefix(":?") {
        (":?", a)
    } else if let Some(a) = rest.strip_prefix(":+") {
        (":+", a)
    } else if rest.is_empty() {
        ("", "")
    } else {
        rest.split_at(1)
    };
    let set = value.is_some();
    let filled = value.is_some_and(|v| !v.is_empty());
    Ok(match op {
        "" => value.unwrap_or("").to_string(),
        ":-" if filled => value.unwrap_or("").to_string(),
        "-" if set => value.unwrap_or("").to_string(),
        ":-" | "-" => interpolate(arg, vars)?,
        ":?" | "?" if (op == ":?" && !filled) || (op == "?" && !set) => {
            let msg = interpolate(arg, vars)?;
            return Err(format!("required variable {name} is missing a value: {msg}"));
        }
        ":?" | "?" => value.unwrap_or("").to_string(),
        ":+" if filled => interpolate(arg, vars)?,
        "+" if set => interpolate(arg, vars)?,
        ":+" | "+" => String::new(),
        _ => {
            return Err(format!(
                "invalid interpolation format for {whole:?}: unknown operator in {body:?}"
            ))
        }
    })
}

/// Reads an env file: `KEY=VALUE` lines, `#` comments, `export KEY=VALUE`, values quoted
/// with `'...'` (literal) or `"..."` (with `\n` escapes and variables), unquoted values
/// cut at ` #` and interpolated; a bare `KEY` takes the value `vars` has, if any.
/// Errors name the line.
pub fn parse_env_file(text: &str, vars: &Vars) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let (key, raw) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (line, None),
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!("line {}: {line:?} is not KEY=VALUE", n + 1));
        }
        let Some(raw) = raw else {
            if let Some(v) = vars.get(key) {
                out.insert(key.to_string(), v.to_string());
            }
            continue;
        };
        // Earlier keys of the same file count as variables for the later ones.
        let mut scope = vars.clone();
        scope
            .map
            .extend(out.iter().map(|(k, v): (&String, &String)| (k.clone(), v.clone())));
        let value = if let Some(q) = raw.strip_prefix('\'') {
            q.strip_suffix('\'')
                .ok_or_else(|| format!("line {}: unterminated quote in {line:?}", n + 1))?
                .to_string()
        } else if let Some(q) = raw.strip_prefix('"') {
            let q = q
                .strip_suffix('"')
                .ok_or_else(|| format!("line {}: unterminated quote in {line:?}", n + 1))?;
            let q = q.replace("\\n", "\n").replace("\\\"", "\"").replace("\\\\", "\\");
            interpolate(&q, &scope).map_err(|e| format!("line {}: {e}", n + 1))?
        } else {
            let v = raw.split(" #").next().unwrap_or("").trim_end();
            interpolate(v, &scope).map_err(|e| format!("line {}: {e}", n + 1))?
        };
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars {
            map: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn interpolation_follows_the_specification() {
        let v = vars(&[("A", "a"), ("E", ""), ("PORT", "80")]);
        let i = |s: &str| interpolate(s, &v);
        assert_eq!(i("x$A-${A}y").unwrap(), "xa-ay");
        assert_eq!(i("${E:-d}|${E-d}|${U-d}|${U:-${A}b}").unwrap(), "d||d|ab");
        assert_eq!(i("${A:+yes}|${E:+yes}|${E+set}|${U+set}").unwrap(), "yes||set|");
        assert_eq!(i("$$A $${A} 5$").unwrap(), "$A ${A} 5$");
        assert_eq!(i("${PORT}:80").unwrap(), "80:80");
        let e = i("${U:?the port is needed}").unwrap_err();
        assert_eq!(e, "required variable U is missing a value: the port is needed");
        i("${E:?empty}").unwrap_err();
        assert_eq!(i("${E?empty}").unwrap(), "");
        i("${A").unwrap_err();
        i("${1A}").unwrap_err();
    }

    #[test]
    fn env_files_parse_with_quotes_comments_and_references() {
        let v = vars(&[("HOSTVAR", "h")]);
        let m = parse_env_file(
            "# c\nA=1\nexport B = two words # note\nC='$A lit'\nD=\"x\\ny $A\"\nE=${A}-${HOSTVAR}\nHOSTVAR\nMISSING\n",
            &v,
        )
        .unwrap();
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "two words");
        assert_eq!(m["C"], "$A lit");
        assert_eq!(m["D"], "x\ny 1");
        assert_eq!(m["E"], "1-h");
        assert_eq!(m["HOSTVAR"], "h");
        assert!(!m.contains_key("MISSING"));
        assert!(parse_env_file("A B=1\n", &v).unwrap_err().starts_with("line 1"));
    }
}
