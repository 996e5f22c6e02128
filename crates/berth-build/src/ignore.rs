//! `.dockerignore`: which context paths a build may see. Docker's rules: one pattern per
//! line, `#` comments, blank lines skipped, each pattern cleaned like a path with a leading
//! `/` dropped; `*` and `?` match within one path component, `[...]` a class, `\` escapes,
//! `**` any number of components; a pattern that matches a directory excludes everything
//! under it; `!` re-includes; the last pattern that matches a path decides.

/// One pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    negate: bool,
    segments: Vec<String>,
}

/// A parsed ignore file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

pub use berth_safepath::clean;

/// A malformed pattern (an unterminated `[`) in an ignore file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(".dockerignore line {line}: syntax error in pattern {pattern:?}")]
pub struct IgnoreError {
    /// Its line, from 1.
    pub line: usize,
    /// The pattern.
    pub pattern: String,
}

impl Ignore {
    /// Parses the text of an ignore file. A malformed pattern (an unterminated `[`) is an
    /// error naming its line.
    pub fn parse(text: &str) -> Result<Ignore, IgnoreError> {
        let mut patterns = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negate, p) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let p = clean(p);
            if p.is_empty() {
                continue;
            }
            let segments: Vec<String> = p.split('/').map(str::to_string).collect();
            for s in &segments {
                if !well_formed(s) {
                    return Err(IgnoreError {
                        line: n + 1,
                        pattern: line.to_string(),
                    });
                }
            }
            patterns.push(Pattern { negate, segments });
        }
        Ok(Ignore { patterns })
    }

    /// These patterns followed by `other`'s.
    pub fn merged(&self, other: &Ignore) -> Ignore {
        let mut patterns = self.patterns.clone();
        patterns.extend(other.patterns.iter().cloned());
        Ignore { patterns }
    }

    /// Whether nothing is ignored.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether some `!` pattern may re-include something.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.negate)
    }

    /// Whether the context path `rel` (slash-separated, relative) is excluded.
    pub fn excluded(&self, rel: &str) -> bool {
        let rel = clean(rel);
        if rel.is_empty() {
            return false;
        }
        let parts: Vec<&str> = rel.split('/').collect();
        let mut excluded = false;
        for p in &self.patterns {
            // The pattern matches the path itself or one of its parent directories.
            let hit = (1..=parts.len()).any(|n| match_segments(&p.segments, &parts[..n]));
            if hit {
                excluded = !p.negate;
            }
        }
        excluded
    }
}

fn well_formed(seg: &str) -> bool {
    let b = seg.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'[' => match b[i + 1..].iter().position(|&c| c == b']') {
                Some(p) => i += p + 2,
                None => return false,
            },
            _ => i += 1,
        }
    }
    true
}

/// Matches pattern segments (with `**`) against path segments.
fn match_segments(pat: &[String], path: &[&str]) -> bool {
    match pat.first() {
        None => path.is_empty(),
        Some(p) if p == "**" => (0..=path.len()).any(|skip| match_segments(&pat[1..], &path[skip..])),
        Some(p) => {
            !path.is_empty() && fnmatch(p.as_bytes(), path[0].as_bytes()) && match_segments(&pat[1..], &path[1..])
        }
    }
}

/// Shell-style matching of one component: `*`, `?`, `[a-z]`, `[^x]`/`[!x]`, `\` escapes.
pub fn fnmatch(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(&p[pi..], s[si]) {
                        if matched {
                            pi += next;
                            si += 1;
                            continue;
                        }
                    }
                }
                b'\\' if pi + 1 < p.len() && p[pi + 1] == s[si] => {
                    pi += 2;
                    si += 1;
                    continue;
                }
                b'\\' if pi + 1 < p.len() => {}
                c if c == s[si] => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// Matches `c` against the class at the start of `p` (`[...]`); returns whether it matched
/// and the class's length.
fn class(p: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(1), Some(b'^') | Some(b'!'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() && (p[i] != b']' || first) {
        first = false;
        let mut lo = p[i];
        if lo == b'\\' && i + 1 < p.len() {
            i += 1;
            lo = p[i];
        }
        let mut hi = lo;
        if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&x| x != b']') {
            hi = p[i + 2];
            i += 2;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
        i += 1;
    }
    if i >= p.len() {
        return None;
    }
    Some((matched != negate, i + 1))
}

/// Whether a source string has glob characters.
pub fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_follow_dockers_rules() {
        let ig =
            Ignore::parse("# comment\n\n*.log\n!keep.log\nbuild\n**/*.tmp\n/secret/\ndocs/**/draft*\nsub/*/x?.txt\n")
                .unwrap();
        assert!(ig.excluded("a.log"));
        assert!(!ig.excluded("keep.log"));
        assert!(!ig.excluded("dir/a.log"), "* does not cross /");
        assert!(ig.excluded("build"));
        assert!(
            ig.excluded("build/out/bin"),
            "a directory match excludes what is under it"
        );
        assert!(ig.excluded("x.tmp") && ig.excluded("a/b/c.tmp"));
        assert!(ig.excluded("secret/key"));
        assert!(ig.excluded("docs/draft1") && ig.excluded("docs/a/b/draft2"));
        assert!(!ig.excluded("docs/final"));
        assert!(ig.excluded("sub/q/x1.txt") && !ig.excluded("sub/q/x12.txt"));
        assert!(!ig.excluded("main.go"));
        assert!(ig.has_exceptions());
    }

    #[test]
    fn the_last_match_wins() {
        let ig = Ignore::parse("data\n!data/keep\ndata/keep/no\n").unwrap();
        assert!(ig.excluded("data/x"));
        assert!(!ig.excluded("data/keep/yes"));
        assert!(ig.excluded("data/keep/no"));
        let ig = Ignore::parse("!a\n*\n").unwrap();
        assert!(ig.excluded("a"), "a later * wins over an earlier exception");
    }

    #[test]
    fn classes_escapes_and_errors() {
        assert!(fnmatch(b"[a-c]x", b"bx"));
        assert!(!fnmatch(b"[^a-c]x", b"bx"));
        assert!(fnmatch(b"\\*", b"*") && !fnmatch(b"\\*", b"a"));
        assert!(fnmatch(b"a*b*c", b"aXXbYc"));
        assert!(!fnmatch(b"a*b", b"aXXbc"));
        let e = Ignore::parse("ok\n[abc\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert_eq!(clean("/a/./b/../c/"), "a/c");
        assert_eq!(clean("../../x"), "x");
    }
}
