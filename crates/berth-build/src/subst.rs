//! Variable substitution in Dockerfile arguments, as Docker does it for the instructions
//! that take it (ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR,
//! ONBUILD, and ARG's default): `$NAME`, `${NAME}`, `${NAME:-default}` (default when unset
//! or empty), `${NAME:+alternative}` (alternative when set and not empty), the escape
//! character before `$` for a literal `$`. Single quotes keep their text as is.

use std::collections::BTreeMap;

/// What went wrong, with the byte offset in the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at offset {offset}: {message}")]
pub struct SubstError {
    /// Byte offset of the problem.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// Expands `s` with `vars`; `escape` is the Dockerfile's escape character.
pub fn expand(s: &str, vars: &BTreeMap<String, String>, escape: char) -> Result<String, SubstError> {
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut in_single = false;
    let mut in_double = false;
    while i < chars.len() {
        let (off, c) = chars[i];
        if c == escape && i + 1 < chars.len() && !in_single {
            let next = chars[i + 1].1;
            if next == '$' {
                out.push('$');
            } else {
                // Other escapes pass through for the shell (or the word splitter) to see.
                out.push(c);
                out.push(next);
            }
            i += 2;
            continue;
        }
        if c == '\'' && !in_double {
            in_single = !in_single;
            out.push(c);
            i += 1;
            continue;
        }
        if c == '"' && !in_single {
            in_double = !in_double;
            out.push(c);
            i += 1;
            continue;
        }
        if c != '$' || in_single || i + 1 >= chars.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let next = chars[i + 1].1;
        if next == '{' {
            let close = chars[i + 2..]
                .iter()
                .position(|&(_, ch)| ch == '}')
                .map(|p| p + i + 2)
                .ok_or_else(|| SubstError {
                    offset: off,
                    message: "missing '}' in variable".into(),
                })?;
            let body: String = chars[i + 2..close].iter().map(|&(_, ch)| ch).collect();
            out.push_str(&braced(&body, vars, escape, off)?);
            i = close + 1;
        } else if next.is_ascii_alphabetic() || next == '_' {
            let mut j = i + 1;
            while j < chars.len() && (chars[j].1.is_ascii_alphanumeric() || chars[j].1 == '_') {
                j += 1;
            }
            let name: String = chars[i + 1..j].iter().map(|&(_, ch)| ch).collect();
            out.push_str(vars.get(&name).map(String::as_str).unwrap_or(""));
            i = j;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Ok(out)
}

fn braced(body: &str, vars: &BTreeMap<String, String>, escape: char, off: usize) -> Result<String, SubstError> {
    let name_end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let (name, rest) = body.split_at(name_end);
    if name.is_empty() {
        return Err(SubstError {
            offset: off,
            message: format!("bad substitution: ${{{body}}}"),
        });
    }
    let value = vars.get(name).map(String::as_str).unwrap_or("");
    let set = !value.is_empty();
    if rest.is_empty() {
        return Ok(value.to_string());
    }
    match rest.split_at(rest.len().min(2)) {
        (":-", word) => Ok(if set {
            value.to_string()
        } else {
            expand(word, vars, escape)?
        }),
        (":+", word) => Ok(if set {
            expand(word, vars, escape)?
        } else {
            String::new()
        }),
        _ => Err(SubstError {
            offset: off,
            message: format!("unsupported modifier ({rest}) in substitution: ${{{body}}}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_like_docker() {
        let vars: BTreeMap<String, String> = [("A", "1"), ("B", ""), ("NAME", "web")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let x = |s: &str| expand(s, &vars, '\\').unwrap();
        assert_eq!(x("$A ${A} ${NAME}-x $NAME_x"), "1 1 web-x ");
        assert_eq!(x("${B:-dflt} ${A:-dflt} ${UNSET:-d$A}"), "dflt 1 d1");
        assert_eq!(x("${A:+alt} ${B:+alt} ${UNSET:+alt}"), "alt  ");
        assert_eq!(x(r#"\$A '$A' \"$A\" $"#), r#"$A '$A' \"1\" $"#);
        assert_eq!(x("a$1b $$"), "a$1b $$");
        assert_eq!(expand("`$A $A", &vars, '`').unwrap(), "$A 1");
        expand("${A", &vars, '\\').unwrap_err();
        expand("${}", &vars, '\\').unwrap_err();
        expand("${A:?x}", &vars, '\\').unwrap_err();
    }
}
