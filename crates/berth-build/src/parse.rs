//! The Dockerfile parser. It does what Docker's does before any build starts: directives
//! at the top (`# escape=`, `# syntax=`), comments, continuation lines (the escape
//! character at the end of a line), `--flag=value` options, the JSON (exec) form where an
//! instruction allows it, heredocs (`RUN <<EOF`, `COPY <<EOF /dst`), and per-instruction
//! checks of the arguments. Variable substitution happens later, per stage, when values
//! are known.

use std::collections::BTreeMap;

use serde::Serialize;

/// A parse error, located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct ParseError {
    /// The Dockerfile's name as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

/// A heredoc attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The terminator word.
    pub name: String,
    /// The body (with a final newline).
    pub content: String,
    /// `<<-`: leading tabs were stripped.
    pub strip_tabs: bool,
    /// The terminator was quoted: no variable expansion in the body.
    pub quoted: bool,
}

/// The arguments of an instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "form", content = "value", rename_all = "lowercase")]
pub enum Args {
    /// JSON array form.
    Exec(Vec<String>),
    /// Everything after the keyword and flags, continuations joined.
    Shell(String),
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instruction {
    /// The keyword, upper case.
    pub keyword: String,
    /// `--name=value` flags, in order (`--flag` alone has an empty value).
    pub flags: Vec<(String, String)>,
    /// The arguments.
    pub args: Args,
    /// Heredocs it reads.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub heredocs: Vec<Heredoc>,
    /// For ONBUILD: the instruction it wraps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onbuild: Option<Box<Instruction>>,
    /// 1-based line where it starts.
    pub line: usize,
}

impl Instruction {
    /// The shell-form text, or the exec form joined by spaces.
    pub fn text(&self) -> String {
        match &self.args {
            Args::Shell(s) => s.clone(),
            Args::Exec(v) => v.join(" "),
        }
    }

    /// A flag's value.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dockerfile {
    /// Parser directives (`syntax`, `escape`, `check`), lower-case names.
    pub directives: BTreeMap<String, String>,
    /// The escape character.
    pub escape: char,
    /// The instructions, in order.
    pub instructions: Vec<Instruction>,
}

const KEYWORDS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Flags each instruction accepts.
fn allowed_flags(keyword: &str) -> &'static [&'static str] {
    match keyword {
        "FROM" => &["platform"],
        "RUN" => &["mount", "network", "security"],
        "COPY" => &["from", "chown", "chmod", "link", "parents", "exclude"],
        "ADD" => &["chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"],
        "HEALTHCHECK" => &["interval", "timeout", "start-period", "start-interval", "retries"],
        _ => &[],
    }
}

/// Parses `text`, a Dockerfile called `file` (for error messages).
pub fn parse(file: &str, text: &str) -> Result<Dockerfile, ParseError> {
    let err = |line: usize, col: usize, message: String| ParseError {
        file: file.to_string(),
        line,
        col,
        message,
    };
    let lines: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let mut directives = BTreeMap::new();
    let mut i = 0;
    // Directives: `# key=value` lines at the very top, before any other line.
    while i < lines.len() {
        let Some(rest) = lines[i].trim_start().strip_prefix('#') else {
            break;
        };
        let Some((k, v)) = rest.split_once('=') else { break };
        let k = k.trim().to_ascii_lowercase();
        if k.is_empty() || k.contains(char::is_whitespace) || !["syntax", "escape", "check"].contains(&k.as_str()) {
            break;
        }
        if directives.contains_key(&k) {
            return Err(err(i + 1, 1, format!("only one {k} parser directive can be used")));
        }
        directives.insert(k, v.trim().to_string());
        i += 1;
    }
    let escape = match directives.get("escape").map(String::as_str) {
        None | Some("\\") => '\\',
        Some("`") => '`',
        Some(e) => return Err(err(1, 1, format!("invalid escape token '{e}' does not match ` or \\"))),
    };
    let mut instructions = Vec::new();
    while i < lines.len() {
        let start = i;
        let first = lines[i];
        let trimmed = first.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        // Join continuation lines; comment lines inside a continuation are skipped.
        let mut logical = String::new();
        let mut cur = first.to_string();
        loop {
            let t = cur.trim_end();
            if let Some(body) = t.strip_suffix(escape) {
                logical.push_str(body);
                i += 1;
                loop {
                    if i >= lines.len() {
                        cur = String::new();
                        break;
                    }
                    let nt = lines[i].trim_start();
                    if nt.starts_with('#') || (nt.is_empty() && i + 1 < lines.len()) {
                        i += 1;
                        continue;
                    }
                    cur = lines[i].to_string();
                    break;
                }
                if i >= lines.len() {
                    break;
                }
            } else {
                logical.push_str(&cur);
                i += 1;
                break;
            }
        }
        let col = first.len() - trimmed.len() + 1;
        let mut ins = instruction(file, &logical, start + 1, col, escape)?;
        // Heredocs: bodies follow the instruction's line.
        for (name, strip, quoted) in heredoc_markers(&ins) {
            let mut body = String::new();
            loop {
                if i >= lines.len() {
                    return Err(err(start + 1, col, format!("unterminated heredoc {name}")));
                }
                let l = lines[i];
                i += 1;
                let check = if strip { l.trim_start_matches('\t') } else { l };
                if check == name {
                    break;
                }
                body.push_str(check);
                body.push('\n');
            }
            ins.heredocs.push(Heredoc {
                name,
                content: body,
                strip_tabs: strip,
                quoted,
            });
        }
        instructions.push(ins);
    }
    Ok(Dockerfile {
        directives,
        escape,
        instructions,
    })
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'` words in a RUN, COPY or ADD shell form.
fn heredoc_markers(ins: &Instruction) -> Vec<(String, bool, bool)> {
    if !["RUN", "COPY", "ADD"].contains(&ins.keyword.as_str()) {
        return Vec::new();
    }
    let Args::Shell(text) = &ins.args else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(p) = rest.find("<<") {
        let mut w = &rest[p + 2..];
        let strip = w.starts_with('-');
        if strip {
            w = &w[1..];
        }
        let quoted = w.starts_with('"') || w.starts_with('\'');
        let name: String = w
            .trim_start_matches(['"', '\''])
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push((name, strip, quoted));
        }
        rest = &rest[p + 2..];
    }
    out
}

fn instruction(file: &str, logical: &str, line: usize, col: usize, escape: char) -> Result<Instruction, ParseError> {
    let err = |c: usize, message: String| ParseError {
        file: file.to_string(),
        line,
        col: c,
        message,
    };
    let text = logical.trim_start();
    let (kw, mut rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let keyword = kw.to_ascii_uppercase();
    if !KEYWORDS.contains(&keyword.as_str()) {
        return Err(err(col, format!("unknown instruction: {kw}")));
    }
    let mut flags = Vec::new();
    rest = rest.trim_start();
    if keyword != "ONBUILD" {
        while let Some(f) = rest.strip_prefix("--") {
            let (word, after) = f.split_once(char::is_whitespace).unwrap_or((f, ""));
            let (name, value) = word.split_once('=').unwrap_or((word, ""));
            if !allowed_flags(&keyword).contains(&name) {
                let c = col + (logical.len() - logical.trim_start().len()) + (text.len() - rest.len());
                return Err(err(c, format!("unknown flag: --{name} for {keyword}")));
            }
            flags.push((name.to_string(), value.to_string()));
            rest = after.trim_start();
        }
    }
    let rest = rest.trim_end();
    let json_ok = [
        "RUN",
        "CMD",
        "ENTRYPOINT",
        "SHELL",
        "COPY",
        "ADD",
        "VOLUME",
        "HEALTHCHECK",
    ]
    .contains(&keyword.as_str());
    let args = match serde_json::from_str::<Vec<String>>(rest) {
        Ok(v) if json_ok && rest.starts_with('[') => Args::Exec(v),
        _ => Args::Shell(rest.to_string()),
    };
    let mut ins = Instruction {
        keyword: keyword.clone(),
        flags,
        args,
        heredocs: Vec::new(),
        onbuild: None,
        line,
    };
    let arg_col = col + kw.len() + 1;
    let need = |what: &str| -> Result<(), ParseError> {
        if rest.is_empty() {
            Err(err(col, format!("{keyword} requires {what}")))
        } else {
            Ok(())
        }
    };
    match keyword.as_str() {
        "FROM" => {
            need("at least one argument")?;
            let words: Vec<&str> = rest.split_whitespace().collect();
            match words.as_slice() {
                [_] => {}
                [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
                    if !name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                        || !name.starts_with(|c: char| c.is_ascii_alphabetic())
                    {
                        return Err(err(arg_col, format!("invalid name for build stage: {name:?}, name can't start with a number or contain symbols")));
                    }
                }
                _ => return Err(err(arg_col, "FROM requires either one or three arguments".into())),
            }
        }
        "SHELL" if !matches!(&ins.args, Args::Exec(v) if !v.is_empty()) => {
            return Err(err(arg_col, "SHELL requires the arguments to be in JSON form".into()));
        }
        // Malformed JSON (`CMD ['a']`) is shell form, as in Docker; the linter flags it.
        "RUN" => need("at least one argument")?,
        "COPY" | "ADD" => {
            need("at least two arguments")?;
            let n = match &ins.args {
                Args::Exec(v) => v.len(),
                Args::Shell(s) => s.split_whitespace().count(),
            };
            if n < 2 && heredoc_markers(&ins).is_empty() {
                return Err(err(arg_col, format!("{keyword} requires at least two arguments, but only one was provided. Destination could not be determined")));
            }
        }
        "ENV" | "LABEL" => {
            need("at least one argument")?;
            key_values(rest, escape).map_err(|(c, m)| err(arg_col + c, m))?;
        }
        "ARG" => {
            need("at least one argument")?;
            for w in rest.split_whitespace() {
                let name = w.split_once('=').map_or(w, |(n, _)| n);
                if name.is_empty() {
                    return Err(err(arg_col, format!("ARG names can not be blank: {w}")));
                }
            }
        }
        "EXPOSE" | "VOLUME" | "USER" | "WORKDIR" | "STOPSIGNAL" | "MAINTAINER" => {
            need("at least one argument")?;
        }
        "HEALTHCHECK" => {
            need("at least one argument")?;
            let first = rest.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
            if first == "NONE" {
                if rest.split_whitespace().count() > 1 || !ins.flags.is_empty() {
                    return Err(err(arg_col, "HEALTHCHECK NONE takes no arguments".into()));
                }
            } else if first != "CMD" {
                return Err(err(arg_col, format!("Unknown type {first:?} in HEALTHCHECK (try CMD)")));
            } else {
                let cmd = rest[3..].trim_start();
                ins.args = match serde_json::from_str::<Vec<String>>(cmd) {
                    Ok(v) if cmd.starts_with('[') => Args::Exec(v),
                    _ => Args::Shell(cmd.to_string()),
                };
            }
        }
        "ONBUILD" => {
            need("at least one argument")?;
            let inner_kw = rest.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
            if ["ONBUILD", "FROM", "MAINTAINER"].contains(&inner_kw.as_str()) {
                return Err(err(arg_col, format!("{inner_kw} isn't allowed as an ONBUILD trigger")));
            }
            ins.onbuild = Some(Box::new(instruction(file, rest, line, arg_col, escape)?));
            ins.args = Args::Shell(rest.to_string());
        }
        _ => {}
    }
    Ok(ins)
}

/// `k=v k2="v 2"` pairs (or the legacy `k v` form); on error, the column offset and message.
pub fn key_values(s: &str, escape: char) -> Result<Vec<(String, String)>, (usize, String)> {
    let s = s.trim();
    let first = s.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        // Legacy: `ENV key value with spaces`.
        let (k, v) = s.split_once(char::is_whitespace).unwrap_or((s, ""));
        if v.trim().is_empty() {
            return Err((0, format!("{k} must have two arguments")));
        }
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let start = i;
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i];
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) if c == escape && i + 1 < chars.len() => {
                    i += 1;
                    word.push(chars[i]);
                }
                Some(_) => word.push(c),
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c == escape && i + 1 < chars.len() => {
                    i += 1;
                    word.push(chars[i]);
                }
                None if c.is_whitespace() => break,
                None => word.push(c),
            }
            i += 1;
        }
        if quote.is_some() {
            return Err((start, "unterminated quote".into()));
        }
        let Some((k, v)) = word.split_once('=') else {
            return Err((
                start,
                format!("syntax error - can't find = in {word:?}. Must be of the form: name=value"),
            ));
        };
        if k.is_empty() {
            return Err((start, "key can not be blank".into()));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_parse_like_docker() {
        assert_eq!(
            key_values(r#"a=1 b="two words" c=x\ y"#, '\\').unwrap(),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "two words".into()),
                ("c".into(), "x y".into())
            ]
        );
        assert_eq!(
            key_values("PATH /usr/bin:/bin", '\\').unwrap(),
            vec![("PATH".into(), "/usr/bin:/bin".into())]
        );
        key_values("a=1 b", '\\').unwrap_err();
        key_values("a=\"open", '\\').unwrap_err();
        key_values("lonely", '\\').unwrap_err();
    }
}
