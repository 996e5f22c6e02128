//! What `berth compose` shows: `ps`, `ls`, `images`, and logs prefixed per container
//! (`web-1  | ...`), followed while `up` stays attached.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use berth_compose::up::containers_of;
use berth_compose::{plan, Project};
use berth_engine::logs::{Entry, LogOptions, Reader};
use berth_engine::store::{Engine, Record, Status};

use crate::compose::{created, ps_json, status_summary};
use crate::containers::{engine, engine_exit, Exit};
use crate::format::table;

/// `ps`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn ps(
    root: &Path,
    p: &Project,
    all: bool,
    quiet: bool,
    services: bool,
    format: Option<&str>,
    status: &[String],
    only: &[String],
) -> anyhow::Result<()> {
    let e = engine(root)?;
    let ctrs: Vec<Record> = containers_of(&e, &p.name, None, true)
        .map_err(|err| Exit(1, err.to_string()))?
        .into_iter()
        .filter(|r| only.is_empty() || only.contains(r.labels.get(plan::SERVICE).unwrap_or(&String::new())))
        .filter(|r| {
            let st = e.state(&r.id).status;
            (all || st == Status::Running || !status.is_empty())
                && (status.is_empty() || status.contains(&st.to_string()))
        })
        .collect();
    if services {
        let mut names: Vec<&String> = ctrs.iter().filter_map(|r| r.labels.get(plan::SERVICE)).collect();
        names.dedup();
        for n in names {
            println!("{n}");
        }
        return Ok(());
    }
    if quiet {
        for r in &ctrs {
            println!("{}", r.id);
        }
        return Ok(());
    }
    if format == Some("json") {
        for r in &ctrs {
            println!("{}", ps_json(&e, r));
        }
        return Ok(());
    }
    let mut lines = vec![["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"]
        .map(str::to_string)
        .to_vec()];
    for r in &ctrs {
        let j = ps_json(&e, r);
        let mut command = j["Command"].as_str().unwrap_or_default().to_string();
        if command.chars().count() > 22 {
            command = command.chars().take(20).collect::<String>() + "…\"";
        }
        lines.push(vec![
            r.name.clone(),
            r.image_name.clone(),
            command,
            r.labels.get(plan::SERVICE).cloned().unwrap_or_default(),
            created(r),
            j["Status"].as_str().unwrap_or_default().to_string(),
            j["Publishers"].as_str().unwrap_or_default().to_string(),
        ]);
    }
    print!("{}", table(&lines));
    Ok(())
}

/// `ls`: the projects that have containers here.
pub(crate) fn ls(root: &Path, all: bool, quiet: bool, format: &str) -> anyhow::Result<()> {
    let e = engine(root)?;
    let mut projects: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    for r in e.all().map_err(engine_exit)? {
        if let Some(p) = r.labels.get(plan::PROJECT) {
            projects.entry(p.clone()).or_default().push(r);
        }
    }
    let rows: Vec<(String, String, String)> = projects
        .iter()
        .filter(|(_, ctrs)| all || ctrs.iter().any(|r| e.state(&r.id).running()))
        .map(|(name, ctrs)| {
            let files = ctrs
                .iter()
                .find_map(|r| r.labels.get(plan::CONFIG_FILES).cloned())
                .unwrap_or_default();
            (name.clone(), status_summary(&e, ctrs), files)
        })
        .collect();
    if quiet {
        for (n, _, _) in &rows {
            println!("{n}");
        }
        return Ok(());
    }
    if format == "json" {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(n, s, f)| serde_json::json!({"Name": n, "Status": s, "ConfigFiles": f}))
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    let mut lines = vec![vec!["NAME".to_string(), "STATUS".into(), "CONFIG FILES".into()]];
    lines.extend(rows.into_iter().map(|(n, s, f)| vec![n, s, f]));
    print!("{}", table(&lines));
    Ok(())
}

/// `images`: the images the project's containers use.
pub(crate) fn images(root: &Path, p: &Project, services: &[String], quiet: bool) -> anyhow::Result<()> {
    let e = engine(root)?;
    let store = crate::images::open(root)?;
    let mut lines = vec![["CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"]
        .map(str::to_string)
        .to_vec()];
    for r in containers_of(&e, &p.name, None, false).map_err(|err| Exit(1, err.to_string()))? {
        if !services.is_empty() && !services.contains(r.labels.get(plan::SERVICE).unwrap_or(&String::new())) {
            continue;
        }
        let id = r.image_id.trim_start_matches("sha256:").to_string();
        if quiet {
            println!("{id}");
            continue;
        }
        let (repo, tag) = match r
            .image_name
            .rsplit_once(':')
            .filter(|(a, _)| !a.is_empty() && !r.image_name.contains('@'))
        {
            Some((a, t)) if !t.contains('/') => (a.to_string(), t.to_string()),
            _ => (r.image_name.clone(), "latest".into()),
        };
        let size = store
            .resolve(&r.image_id)
            .ok()
            .map(|i| crate::format::human_size(i.row.size.try_into().unwrap_or(0)))
            .unwrap_or_default();
        lines.push(vec![r.name.clone(), repo, tag, id.chars().take(12).collect(), size]);
    }
    if !quiet {
        print!("{}", table(&lines));
    }
    Ok(())
}

/// A container's log prefix: its name less the project's (`web-1`).
fn prefix_name(r: &Record) -> String {
    let project = r.labels.get(plan::PROJECT).cloned().unwrap_or_default();
    r.name
        .strip_prefix(&format!("{project}-"))
        .unwrap_or(&r.name)
        .to_string()
}

const COLORS: [&str; 6] = ["36", "33", "32", "35", "34", "96"];

/// One container's log, being read.
struct Source {
    record: Record,
    reader: Reader,
    prefix: String,
    /// Its exit was reported.
    exited: bool,
}

fn sources(e: &Engine, ctrs: &[Record], tail: Option<usize>, prefix: bool, color: bool) -> Vec<Source> {
    let width = ctrs.iter().map(|r| prefix_name(r).len()).max().unwrap_or(0);
    ctrs.iter()
        .enumerate()
        .map(|(i, r)| {
            let name = format!("{:<width$}  | ", prefix_name(r));
            let prefix = match (prefix, color) {
                (false, _) => String::new(),
                (true, true) => format!("\x1b[{}m{name}\x1b[0m", COLORS[i % COLORS.len()]),
                (true, false) => name,
            };
            Source {
                record: r.clone(),
                reader: Reader::new(
                    &e.dir(&r.id).join("json.log"),
                    LogOptions {
                        tail,
                        ..Default::default()
                    },
                ),
                prefix,
                exited: false,
            }
        })
        .collect()
}

fn print_entries(s: &Source, entries: &[Entry], timestamps: bool) {
    let mut out = std::io::stdout().lock();
    for en in entries {
        let line = en.log.strip_suffix('\n').unwrap_or(&en.log);
        let _ = if timestamps {
            writeln!(out, "{}{} {line}", s.prefix, en.time)
        } else {
            writeln!(out, "{}{line}", s.prefix)
        };
    }
    let _ = out.flush();
}

/// `logs`: each container's log, prefixed; with `follow`, until they all stop.
pub(crate) fn logs(
    e: &Engine,
    ctrs: &[Record],
    follow: bool,
    timestamps: bool,
    tail: &str,
    prefix: bool,
    color: bool,
) -> anyhow::Result<()> {
    let tail = if tail == "all" {
        None
    } else {
        Some(
            tail.parse::<usize>()
                .map_err(|_| Exit(1, format!("invalid --tail {tail:?}")))?,
        )
    };
    let mut srcs = sources(e, ctrs, tail, prefix, color);
    for s in &mut srcs {
        let got = s.reader.backlog();
        print_entries(s, &got, timestamps);
    }
    if follow {
        // `logs` reports no exits (`up` does).
        for s in &mut srcs {
            s.exited = true;
        }
        pump(e, &mut srcs, timestamps, &|| false, false);
    }
    Ok(())
}

/// Prints what the containers write until none runs (or `stop()` says so, or with
/// `abort_on_exit` one has stopped). Whether it ended because of `stop()` or an exit.
fn pump(e: &Engine, srcs: &mut [Source], timestamps: bool, stop: &dyn Fn() -> bool, abort_on_exit: bool) -> bool {
    loop {
        let mut any = false;
        let mut running = 0;
        for s in srcs.iter_mut() {
            let got = s.reader.more();
            if !got.is_empty() {
                any = true;
                print_entries(s, &got, timestamps);
            }
            let st = e.state(&s.record.id);
            let alive = matches!(st.status, Status::Running | Status::Restarting) && e.dir(&s.record.id).exists();
            if alive {
                running += 1;
            } else if !s.exited {
                s.exited = true;
                let more = s.reader.more();
                print_entries(s, &more, timestamps);
                println!("{} exited with code {}", prefix_name(&s.record), st.exit_code);
            }
            if !alive && abort_on_exit {
                for s in srcs.iter_mut() {
                    let got = s.reader.more();
                    print_entries(s, &got, timestamps);
                }
                return true;
            }
        }
        if stop() {
            return true;
        }
        if running == 0 && !any {
            for s in srcs.iter_mut() {
                let got = s.reader.more();
                print_entries(s, &got, timestamps);
            }
            return false;
        }
        if !any {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// `up` attached: the containers' output until they all stop; Ctrl-C (or, with
/// `--abort-on-container-exit`, one container stopping) stops them all.
pub(crate) fn attach(
    e: &Engine,
    ctrs: &[Record],
    color: bool,
    abort_on_exit: bool,
    timeout: Option<u64>,
) -> anyhow::Result<()> {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_interrupt as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_interrupt as *const () as libc::sighandler_t);
    }
    let mut srcs = sources(e, ctrs, None, true, color);
    let stop_all = pump(
        e,
        &mut srcs,
        false,
        &|| INTERRUPTED.load(Ordering::SeqCst),
        abort_on_exit,
    );
    if stop_all {
        eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
        for r in ctrs {
            if e.state(&r.id).running() {
                eprintln!(" Container {}  Stopping", r.name);
                let _ = berth_engine::ops::kill(e, &r.id, &r.stop_signal);
            }
        }
        for r in ctrs {
            berth_engine::ops::stop(e, &r.id, timeout, None).map_err(engine_exit)?;
            eprintln!(" Container {}  Stopped", r.name);
        }
    }
    Ok(())
}
