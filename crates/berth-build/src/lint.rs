//! The Dockerfile linter (`berth lint`, `berth build --check`), in the spirit of hadolint and
//! BuildKit's checks. Every rule has a stable id, a severity and a one-line rationale; a
//! Dockerfile that does not parse is reported as rule `B000`.

use serde::Serialize;
use serde_json::{json, Value};

use crate::parse::{self, Args, Instruction};

/// How bad a finding is. Errors make `berth lint` exit non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Almost certainly a bug.
    Error,
    /// Likely a problem.
    Warning,
    /// A habit worth changing.
    Info,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

/// A rule: id, short name, severity, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Stable id.
    pub id: &'static str,
    /// Short name.
    pub name: &'static str,
    /// Severity.
    pub severity: Severity,
    /// One line on why it matters.
    pub rationale: &'static str,
}

const fn rule(id: &'static str, name: &'static str, severity: Severity, rationale: &'static str) -> Rule {
    Rule {
        id,
        name,
        severity,
        rationale,
    }
}

use Severity::{Error as E, Info as I, Warning as W};

/// Every rule.
pub const RULES: [Rule; 26] = [
    rule(
        "B000",
        "syntax",
        E,
        "the Dockerfile does not parse, so nothing can be built from it",
    ),
    rule(
        "B001",
        "untagged-base",
        W,
        "an untagged base image means :latest, which changes under you; pin a tag or digest",
    ),
    rule(
        "B002",
        "latest-base",
        W,
        ":latest is a moving target; builds stop being reproducible",
    ),
    rule(
        "B003",
        "apt-get-no-yes",
        W,
        "apt-get install without -y waits for an answer no build can give",
    ),
    rule(
        "B004",
        "apt-get-recommends",
        I,
        "--no-install-recommends keeps packages nobody asked for out of the image",
    ),
    rule(
        "B005",
        "apt-lists-left",
        I,
        "apt lists left in the layer add megabytes; remove /var/lib/apt/lists in the same RUN",
    ),
    rule(
        "B006",
        "cd-in-run",
        W,
        "cd lasts one RUN only; WORKDIR says where later instructions run",
    ),
    rule(
        "B007",
        "relative-workdir",
        W,
        "a relative WORKDIR depends on every earlier WORKDIR; use an absolute path",
    ),
    rule(
        "B008",
        "add-not-copy",
        W,
        "ADD also fetches URLs and unpacks archives; COPY says what it does for plain files",
    ),
    rule("B009", "several-cmd", W, "only the last CMD of a stage takes effect"),
    rule(
        "B010",
        "several-entrypoint",
        W,
        "only the last ENTRYPOINT of a stage takes effect",
    ),
    rule(
        "B011",
        "secret-in-arg-env",
        W,
        "ARG and ENV values stay in the image config and history; use RUN --mount=type=secret",
    ),
    rule(
        "B012",
        "sudo",
        W,
        "sudo has unpredictable TTY and signal behaviour; RUN is already root, or use USER",
    ),
    rule(
        "B013",
        "runs-as-root",
        I,
        "without a USER the container runs as root; drop privileges when you can",
    ),
    rule(
        "B014",
        "shell-entrypoint",
        W,
        "a shell-form ENTRYPOINT runs under sh -c: signals do not reach the process and CMD is ignored",
    ),
    rule(
        "B015",
        "json-single-quotes",
        E,
        "JSON needs double quotes; with single quotes the line silently becomes shell form",
    ),
    rule("B016", "expose-range", E, "a port outside 1-65535 cannot be exposed"),
    rule(
        "B017",
        "copy-from-unknown",
        E,
        "COPY --from names no earlier stage and is not an image reference",
    ),
    rule(
        "B018",
        "maintainer",
        W,
        "MAINTAINER is deprecated; use LABEL org.opencontainers.image.authors",
    ),
    rule(
        "B019",
        "duplicate-stage",
        E,
        "two stages with one name make --from and --target ambiguous",
    ),
    rule(
        "B020",
        "apk-no-cache",
        I,
        "apk add without --no-cache leaves the package index in the layer",
    ),
    rule(
        "B021",
        "pip-cache",
        I,
        "pip install without --no-cache-dir keeps its download cache in the layer",
    ),
    rule(
        "B022",
        "apt-upgrade",
        W,
        "upgrading every package belongs in the base image; it makes builds unreproducible",
    ),
    rule(
        "B023",
        "several-healthcheck",
        W,
        "only the last HEALTHCHECK of a stage takes effect",
    ),
    rule(
        "B024",
        "stage-name-case",
        W,
        "stage names are matched without case; write them in lower case",
    ),
    rule("B025", "copy-from-self", E, "a stage cannot COPY --from itself"),
];

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule's id.
    pub rule: &'static str,
    /// The rule's severity.
    pub severity: Severity,
    /// 1-based line.
    pub line: usize,
    /// What was found.
    pub message: String,
}

fn find(id: &str) -> Rule {
    RULES.iter().copied().find(|r| r.id == id).unwrap_or(RULES[0])
}

fn hit(out: &mut Vec<Finding>, id: &'static str, line: usize, message: String) {
    out.push(Finding {
        rule: id,
        severity: find(id).severity,
        line,
        message,
    });
}

/// The findings as JSON (`{"file", "findings": [{rule, name, severity, line, message, rationale}]}`).
pub fn to_json(file: &str, findings: &[Finding]) -> Value {
    json!({
        "file": file,
        "findings": findings.iter().map(|f| {
            let r = find(f.rule);
            json!({"rule": f.rule, "name": r.name, "severity": f.severity, "line": f.line,
                "message": f.message, "rationale": r.rationale})
        }).collect::<Vec<_>>(),
    })
}

fn run_text(ins: &Instruction) -> String {
    let mut t = ins.text();
    for h in &ins.heredocs {
        t.push('\n');
        t.push_str(&h.content);
    }
    t
}

/// The shell commands of a RUN, split on `&&`, `||`, `;`, `|` and newlines, as word lists.
fn commands(text: &str) -> Vec<Vec<String>> {
    text.split(['\n', ';', '|', '&'])
        .map(|c| c.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|c| !c.is_empty())
        .collect()
}

fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "ACCESS_KEY",
        "CREDENTIAL",
    ]
    .iter()
    .any(|s| n.contains(s))
        && !n.ends_with("_FILE")
        && !n.ends_with("_PATH")
}

/// Lints a Dockerfile.
pub fn lint(file: &str, text: &str) -> Result<Vec<Finding>, parse::ParseError> {
    let df = parse::parse(file, text)?;
    let mut out = Vec::new();
    let mut stage_names: Vec<String> = Vec::new();
    // Per stage: counts of CMD, ENTRYPOINT, HEALTHCHECK; whether a USER was set.
    let mut counts: [usize; 3] = [0; 3];
    let mut user_seen = false;
    let mut any_stage = false;
    let mut current: Option<String> = None;
    let mut last_from_line = 0;
    let end_stage = |counts: &mut [usize; 3], out: &mut Vec<Finding>, line: usize| {
        for (i, id, kw) in [
            (0, "B009", "CMD"),
            (1, "B010", "ENTRYPOINT"),
            (2, "B023", "HEALTHCHECK"),
        ] {
            if counts[i] > 1 {
                hit(out, id, line, format!("{} {kw} instructions in one stage", counts[i]));
            }
        }
        *counts = [0; 3];
    };
    // Raw lines, for checks of what the parser normalised (single-quoted JSON).
    for ins in &df.instructions {
        let line = ins.line;
        match ins.keyword.as_str() {
            "FROM" => {
                if any_stage {
                    end_stage(&mut counts, &mut out, last_from_line);
                }
                any_stage = true;
                last_from_line = line;
                let t = ins.text();
                let words: Vec<&str> = t.split_whitespace().collect();
                let image = words.first().copied().unwrap_or("");
                let is_stage = stage_names.iter().any(|s| s.eq_ignore_ascii_case(image));
                if !is_stage && !image.eq_ignore_ascii_case("scratch") && !image.contains('$') {
                    let last = image.rsplit('/').next().unwrap_or(image);
                    if image.contains('@') {
                    } else if !last.contains(':') {
                        hit(&mut out, "B001", line, format!("FROM {image} has no tag"));
                    } else if last.ends_with(":latest") {
                        hit(&mut out, "B002", line, format!("FROM {image} uses :latest"));
                    }
                }
                current = words.get(2).map(|n| n.to_string());
                if let Some(n) = &current {
                    if stage_names.iter().any(|s| s.eq_ignore_ascii_case(n)) {
                        hit(&mut out, "B019", line, format!("stage name {n:?} is used twice"));
                    }
                    if n.chars().any(|c| c.is_ascii_uppercase()) {
                        hit(&mut out, "B024", line, format!("stage name {n:?} is not lower case"));
                    }
                    stage_names.push(n.to_ascii_lowercase());
                }
            }
            "RUN" => {
                let t = run_text(ins);
                for c in commands(&t) {
                    let w: Vec<&str> = c.iter().map(String::as_str).collect();
                    let prog = w.first().copied().unwrap_or("");
                    if prog == "cd" {
                        hit(&mut out, "B006", line, "cd in RUN; use WORKDIR".into());
                    }
                    if prog == "sudo" {
                        hit(&mut out, "B012", line, "sudo in RUN".into());
                    }
                    let apt = prog == "apt-get" || prog == "apt";
                    if apt && w.contains(&"install") {
                        if !w.iter().any(|x| {
                            ["-y", "--yes", "-qy", "-yq", "--assume-yes"].contains(x)
                                || (x.starts_with('-') && !x.starts_with("--") && x.contains('y'))
                        }) {
                            hit(&mut out, "B003", line, "apt-get install without -y".into());
                        }
                        if !w.contains(&"--no-install-recommends") {
                            hit(
                                &mut out,
                                "B004",
                                line,
                                "apt-get install without --no-install-recommends".into(),
                            );
                        }
                        if !t.contains("/var/lib/apt/lists") {
                            hit(
                                &mut out,
                                "B005",
                                line,
                                "apt-get install without removing /var/lib/apt/lists in the same RUN".into(),
                            );
                        }
                    }
                    if apt && (w.contains(&"upgrade") || w.contains(&"dist-upgrade")) {
                        hit(
                            &mut out,
                            "B022",
                            line,
                            format!(
                                "{prog} {}",
                                if w.contains(&"upgrade") {
                                    "upgrade"
                                } else {
                                    "dist-upgrade"
                                }
                            ),
                        );
                    }
                    if prog == "apk" && w.contains(&"add") && !w.contains(&"--no-cache") {
                        hit(&mut out, "B020", line, "apk add without --no-cache".into());
                    }
                    if (prog.starts_with("pip") || (prog.starts_with("python") && w.contains(&"pip")))
                        && w.contains(&"install")
                        && !w.contains(&"--no-cache-dir")
                        && !ins.flags.iter().any(|(k, v)| k == "mount" && v.contains("type=cache"))
                    {
                        hit(&mut out, "B021", line, "pip install without --no-cache-dir".into());
                    }
                }
            }
            "WORKDIR" => {
                let t = ins.text();
                let t = t.trim_matches(['"', '\'']);
                if !(t.starts_with('/') || t.starts_with('$') || (t.len() > 1 && t.as_bytes()[1] == b':')) {
                    hit(&mut out, "B007", line, format!("WORKDIR {t} is relative"));
                }
            }
            "ADD" => {
                let srcs: Vec<String> = match &ins.args {
                    Args::Exec(v) => v[..v.len().saturating_sub(1)].to_vec(),
                    Args::Shell(s) => {
                        let w: Vec<String> = s.split_whitespace().map(str::to_string).collect();
                        w[..w.len().saturating_sub(1)].to_vec()
                    }
                };
                let special = |s: &str| {
                    s.contains("://")
                        || s.starts_with("git@")
                        || [
                            ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst", ".gz",
                            ".bz2", ".xz", ".zst",
                        ]
                        .iter()
                        .any(|e| s.ends_with(e))
                        || s.starts_with("<<")
                };
                if !srcs.is_empty() && !srcs.iter().any(|s| special(s)) {
                    hit(
                        &mut out,
                        "B008",
                        line,
                        format!("ADD {} copies plain files; use COPY", srcs.join(" ")),
                    );
                }
            }
            "CMD" => counts[0] += 1,
            "ENTRYPOINT" => {
                counts[1] += 1;
                if matches!(ins.args, Args::Shell(_)) {
                    hit(&mut out, "B014", line, "ENTRYPOINT in shell form".into());
                }
            }
            "HEALTHCHECK" => counts[2] += 1,
            "USER" => {
                let u = ins.text();
                user_seen = !(u == "root" || u == "0" || u.starts_with("root:") || u.starts_with("0:"));
            }
            "MAINTAINER" => hit(&mut out, "B018", line, "MAINTAINER is deprecated".into()),
            "ARG" | "ENV" => {
                let names: Vec<String> = if ins.keyword == "ARG" {
                    ins.text()
                        .split_whitespace()
                        .map(|w| w.split('=').next().unwrap_or("").to_string())
                        .collect()
                } else {
                    parse::key_values(&ins.text(), df.escape)
                        .map(|kv| kv.into_iter().map(|(k, _)| k).collect())
                        .unwrap_or_default()
                };
                for n in names {
                    if looks_secret(&n) {
                        hit(
                            &mut out,
                            "B011",
                            line,
                            format!("{} {n} looks like a secret", ins.keyword),
                        );
                    }
                }
            }
            "EXPOSE" => {
                for p in ins.text().split_whitespace() {
                    let num = p.split('/').next().unwrap_or("");
                    if num.contains('$') {
                        continue;
                    }
                    let ok = |x: &str| x.parse::<u32>().is_ok_and(|v| (1..=65535).contains(&v));
                    let valid = match num.split_once('-') {
                        Some((a, b)) => ok(a) && ok(b),
                        None => ok(num),
                    };
                    if !valid {
                        hit(&mut out, "B016", line, format!("EXPOSE {p} is not a port in 1-65535"));
                    }
                }
            }
            _ => {}
        }
        if let Some(f) = ins.flag("from").filter(|_| ins.keyword == "COPY") {
            let is_stage = stage_names.iter().any(|s| s.eq_ignore_ascii_case(f));
            let is_index = f.parse::<usize>().is_ok_and(|i| i + 1 < stage_names.len().max(1) + 1);
            if current.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(f)) {
                hit(
                    &mut out,
                    "B025",
                    line,
                    format!("COPY --from={f} names the stage it is in"),
                );
            } else if !is_stage && !is_index && !f.contains([':', '/', '.', '$', '@']) {
                hit(&mut out, "B017", line, format!("COPY --from={f}: no such stage"));
            }
        }
        // JSON written with single quotes became shell form.
        if ["CMD", "ENTRYPOINT", "RUN", "SHELL", "VOLUME", "COPY", "ADD"].contains(&ins.keyword.as_str()) {
            if let Args::Shell(s) = &ins.args {
                let t = s.trim();
                if t.starts_with('[') && t.ends_with(']') && t.contains('\'') {
                    hit(
                        &mut out,
                        "B015",
                        line,
                        format!("{} {t} uses single quotes: it is not JSON", ins.keyword),
                    );
                }
            }
        }
    }
    if any_stage {
        end_stage(&mut counts, &mut out, last_from_line);
        if !user_seen {
            hit(
                &mut out,
                "B013",
                last_from_line,
                "the final stage sets no non-root USER".into(),
            );
        }
    }
    out.sort_by_key(|f| f.line);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> Vec<&'static str> {
        lint("Dockerfile", text).unwrap().into_iter().map(|f| f.rule).collect()
    }

    #[test]
    fn rules_have_unique_ids_and_rationales() {
        let mut seen = std::collections::BTreeSet::new();
        for r in RULES {
            assert!(seen.insert(r.id), "duplicate {}", r.id);
            assert!(!r.rationale.is_empty() && !r.rationale.contains('\n'));
        }
        assert!(RULES.len() >= 21);
    }

    #[test]
    fn each_rule_fires_on_its_case() {
        let cases: &[(&str, &str)] = &[
            ("B001", "FROM debian\nUSER app\n"),
            ("B002", "FROM debian:latest\nUSER app\n"),
            (
                "B003",
                "FROM d:1\nRUN apt-get update && apt-get install curl && rm -rf /var/lib/apt/lists/*\n",
            ),
            ("B004", "FROM d:1\nRUN apt-get install -y curl\n"),
            (
                "B005",
                "FROM d:1\nRUN apt-get install -y --no-install-recommends curl\n",
            ),
            ("B006", "FROM d:1\nRUN cd /tmp && make\n"),
            ("B007", "FROM d:1\nWORKDIR app\n"),
            ("B008", "FROM d:1\nADD main.go /src/\n"),
            ("B009", "FROM d:1\nCMD a\nCMD b\n"),
            ("B010", "FROM d:1\nENTRYPOINT [\"a\"]\nENTRYPOINT [\"b\"]\n"),
            ("B011", "FROM d:1\nARG DB_PASSWORD=hunter2\n"),
            ("B012", "FROM d:1\nRUN sudo make install\n"),
            ("B013", "FROM d:1\nCMD [\"x\"]\n"),
            ("B014", "FROM d:1\nENTRYPOINT exec server\n"),
            ("B015", "FROM d:1\nCMD ['server']\n"),
            ("B016", "FROM d:1\nEXPOSE 70000\n"),
            ("B017", "FROM d:1 AS a\nCOPY --from=builder /x /x\n"),
            ("B018", "FROM d:1\nMAINTAINER me\n"),
            ("B019", "FROM d:1 AS a\nFROM d:1 AS a\n"),
            ("B020", "FROM alpine:3\nRUN apk add curl\n"),
            ("B021", "FROM python:3\nRUN pip install flask\n"),
            ("B022", "FROM d:1\nRUN apt-get upgrade -y\n"),
            ("B023", "FROM d:1\nHEALTHCHECK CMD a\nHEALTHCHECK CMD b\n"),
            ("B024", "FROM d:1 AS Build\n"),
            ("B025", "FROM d:1 AS a\nCOPY --from=a /x /y\n"),
        ];
        for (id, text) in cases {
            assert!(ids(text).contains(id), "{id} did not fire on {text:?}: {:?}", ids(text));
        }
        for r in RULES.iter().skip(1) {
            assert!(cases.iter().any(|(id, _)| *id == r.id), "{} has no case", r.id);
        }
    }

    #[test]
    fn a_clean_dockerfile_has_no_findings() {
        let text = "FROM debian:12 AS build\nWORKDIR /src\nCOPY . .\nRUN apt-get update && apt-get install -y --no-install-recommends make && rm -rf /var/lib/apt/lists/*\n\
FROM debian:12\nCOPY --from=build /src/out /usr/local/bin/app\nUSER 1000\nEXPOSE 8080\nENTRYPOINT [\"app\"]\n";
        assert_eq!(lint("Dockerfile", text).unwrap(), vec![]);
    }
}
