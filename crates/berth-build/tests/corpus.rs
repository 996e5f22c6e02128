//! The parser against a corpus: each `corpus/NAME.Dockerfile` parses to the instructions in
//! `NAME.expected` (one line each: line, keyword, flags, form and arguments, heredocs), or
//! fails with exactly the error in `NAME.error` (file, line, column, message).
#![allow(clippy::unwrap_used, clippy::tests_outside_test_module)]

use std::path::Path;

use berth_build::parse::{parse, Args, Instruction};

fn render(i: &Instruction) -> String {
    let flags: Vec<String> = i.flags.iter().map(|(k, v)| format!("--{k}={v}")).collect();
    let args = match &i.args {
        Args::Exec(v) => format!("exec {v:?}"),
        Args::Shell(s) => format!("shell {s:?}"),
    };
    let mut out = format!("{} {} [{}] {}", i.line, i.keyword, flags.join(" "), args);
    for h in &i.heredocs {
        out.push_str(&format!(
            " <<{}{}:{:?}",
            if h.strip_tabs { "-" } else { "" },
            h.name,
            h.content
        ));
    }
    if let Some(inner) = &i.onbuild {
        out.push_str(&format!(" => {}", render(inner)));
    }
    out
}

#[test]
fn corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut checked = 0;
    let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for p in names
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
    {
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(p).unwrap();
        let got = match parse(&format!("{name}.Dockerfile"), &text) {
            Ok(df) => {
                let mut s = String::new();
                for (k, v) in &df.directives {
                    s.push_str(&format!("# {k}={v}\n"));
                }
                for i in &df.instructions {
                    s.push_str(&render(i));
                    s.push('\n');
                }
                ("expected", s)
            }
            Err(e) => ("error", format!("{e}\n")),
        };
        let want_path = dir.join(format!("{name}.{}", got.0));
        if std::env::var_os("BERTH_BLESS").is_some() {
            std::fs::write(&want_path, &got.1).unwrap();
        }
        let want = std::fs::read_to_string(&want_path).unwrap_or_else(|_| {
            panic!(
                "{name}: parsed to {}, but {} is missing:\n{}",
                got.0,
                want_path.display(),
                got.1
            )
        });
        assert_eq!(got.1, want, "{name}");
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} corpus files");
}
