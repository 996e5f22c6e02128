//! The container commands that read: `ps`, `logs`, `inspect`, `top`, `diff`, `stats`,
//! `port`.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use berth_engine::store::{Record, State};
use clap::Args;
use serde_json::json;

use crate::containers::{emit, engine, engine_exit, follow, usage, ContainersArgs, Exit, LogsArgs, PsArgs};
use crate::format::{human_duration, since, table, Template};

/// `ps`.
pub fn ps(root: &Path, a: &PsArgs) -> anyhow::Result<()> {
    let e = engine(root)?;
    let filters = berth_engine::list::Filters::from_args(&a.filter).map_err(|e| usage(e.to_string()))?;
    let opts = berth_engine::list::ListOptions {
        all: a.all,
        limit: a.latest.then_some(1),
        filters,
    };
    let rows = berth_engine::list::containers(&e, &opts).map_err(engine_exit)?;
    let id = |r: &Record| {
        if a.no_trunc {
            r.id.clone()
        } else {
            r.id[..12].to_string()
        }
    };
    if a.quiet {
        for (r, _) in &rows {
            println!("{}", id(r));
        }
        return Ok(());
    }
    let command = |r: &Record| {
        let mut c = std::iter::once(r.path.clone())
            .chain(r.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        if !a.no_trunc && c.chars().count() > 20 {
            c = c.chars().take(19).collect::<String>() + "…";
        }
        format!("\"{c}\"")
    };
    let images = if a.size { crate::images::open(root).ok() } else { None };
    let size = |r: &Record| {
        let (rw, virt) = images
            .as_ref()
            .map_or((0, 0), |i| berth_engine::inspect::container_sizes(&e, i, r));
        format!(
            "{} (virtual {})",
            crate::format::human_size(rw),
            crate::format::human_size(virt)
        )
    };
    let as_json = |r: &Record, st: &State| {
        json!({
            "ID": id(r), "Image": r.image_name, "Command": command(r), "CreatedAt": r.created,
            "RunningFor": format!("{} ago", human_duration(since(&r.created))), "Status": berth_engine::inspect::status_text(st),
            "State": st.status, "Names": r.name, "Ports": ports_text(st), "Labels": r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
            "Mounts": r.mounts.iter().map(|m| if m.kind == "volume" { m.source.clone() } else { m.destination.clone() }).collect::<Vec<_>>().join(","),
            "Networks": r.network_mode, "Size": if a.size { size(r) } else { String::new() },
        })
    };
    if let Some(f) = &a.format {
        if f == "json" {
            for (r, st) in &rows {
                println!("{}", as_json(r, st));
            }
            return Ok(());
        }
        let t = Template::parse(f)?;
        for (r, st) in &rows {
            println!("{}", t.render(&as_json(r, st))?);
        }
        return Ok(());
    }
    let mut lines = vec![[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]
    .map(str::to_string)
    .to_vec()];
    if a.size {
        lines[0].push("SIZE".into());
    }
    for (r, st) in &rows {
        let mut line = vec![
            id(r),
            r.image_name.clone(),
            command(r),
            format!("{} ago", human_duration(since(&r.created))),
            berth_engine::inspect::status_text(st),
            ports_text(st),
            r.name.clone(),
        ];
        if a.size {
            line.push(size(r));
        }
        lines.push(line);
    }
    print!("{}", table(&lines));
    Ok(())
}

/// Bytes in the regular files under `dir` (symlinks not followed).
/// `logs`.
pub fn logs(root: &Path, a: &LogsArgs) -> anyhow::Result<()> {
    let e = engine(root)?;
    let r = e.resolve(&a.container).map_err(engine_exit)?;
    let tail = if a.tail == "all" {
        None
    } else {
        Some(
            a.tail
                .parse::<usize>()
                .map_err(|_| usage(format!("invalid value for --tail: {}", a.tail)))?,
        )
    };
    // Times as Docker takes them: RFC 3339 (fractions kept), unix seconds (`1700000000.5`),
    // or a duration ago (`42m`); compared in nanoseconds.
    let now = berth_oci::time::now_nanos();
    let bound = |s: &Option<String>| -> anyhow::Result<Option<i128>> {
        s.as_deref()
            .map(|s| berth_oci::time::parse_point(s, now).ok_or_else(|| usage(format!("invalid time: {s}"))))
            .transpose()
    };
    let opts = berth_engine::logs::LogOptions {
        since: bound(&a.since)?,
        until: bound(&a.until)?,
        tail,
        ..Default::default()
    };
    let mut reader = berth_engine::logs::Reader::new(&e.dir(&r.id).join("json.log"), opts);
    for en in reader.backlog() {
        emit(&en, a.timestamps);
    }
    if a.follow {
        follow(&e, &r, &mut reader, a.timestamps);
    }
    Ok(())
}

/// `inspect` of containers, falling back to images.
pub fn inspect(root: &Path, a: &crate::images::InspectArgs) -> anyhow::Result<()> {
    let e = engine(root)?;
    let mut out = Vec::new();
    let mut image_names = Vec::new();
    for n in &a.names {
        match e.resolve(n) {
            Ok(r) => out.push(berth_engine::inspect::inspect_json(&e, &r)),
            Err(_) => image_names.push(n.clone()),
        }
    }
    if !image_names.is_empty() {
        let store = crate::images::open(root)?;
        for n in &image_names {
            match store.resolve(n) {
                Ok(img) => out.push(berth_engine::inspect::image_json(&store, &img)?),
                Err(_) => return Err(Exit(1, format!("Error: No such object: {n}")).into()),
            }
        }
    }
    crate::views::print_inspected(&out, a.format.as_deref())?;
    Ok(())
}

/// `top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// CONTAINER
    pub container: String,
    /// [ps OPTIONS] (default `-ef`)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// `top`: the container's processes as the host's `ps` shows them.
pub fn top(root: &Path, a: &TopArgs) -> anyhow::Result<()> {
    let e = engine(root)?;
    let (titles, rows) = berth_engine::inspect::top(&e, &a.container, &a.ps_args.join(" "))
        .map_err(|err| Exit(1, format!("Error response from daemon: {err}")))?;
    let mut lines = vec![titles];
    lines.extend(rows);
    print!("{}", table(&lines));
    Ok(())
}

/// `diff`.
pub fn diff(root: &Path, a: &ContainersArgs) -> anyhow::Result<()> {
    let e = engine(root)?;
    let images = crate::images::open(root)?;
    for (kind, path) in berth_engine::commit::changes(&e, &images, &a.containers[0]).map_err(engine_exit)? {
        println!("{kind} {path}");
    }
    Ok(())
}

/// `stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// CONTAINER... (default: all running)
    pub containers: Vec<String>,
    /// Disable streaming stats and only pull the first result.
    #[arg(long)]
    pub no_stream: bool,
    /// Format output using a Go template, or `json`.
    #[arg(long)]
    pub format: Option<String>,
}

/// `stats`: CPU, memory and pids of running containers (`--no-stream`: one reading).
pub fn stats(root: &Path, a: &StatsArgs) -> anyhow::Result<()> {
    let e = engine(root)?;
    let recs: Vec<Record> = if a.containers.is_empty() {
        e.all()?.into_iter().filter(|r| e.state(&r.id).running()).collect()
    } else {
        a.containers
            .iter()
            .map(|c| e.resolve(c).map_err(engine_exit))
            .collect::<anyhow::Result<_>>()?
    };
    loop {
        let first: Vec<_> = recs.iter().map(|r| berth_engine::inspect::sample(&e, &r.id)).collect();
        let t0 = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(500));
        let elapsed = t0.elapsed().as_nanos() as f64;
        let mut rows = Vec::new();
        for (r, s1) in recs.iter().zip(first) {
            let s2 = berth_engine::inspect::sample(&e, &r.id);
            let (cpu, mem, limit, pids) = match (s1, s2) {
                (Some(a1), Some(a2)) => {
                    #[allow(clippy::cast_precision_loss)]
                    let cpu = a2.0.saturating_sub(a1.0) as f64 / elapsed * 100.0;
                    (cpu, a2.1, a2.2, a2.3)
                }
                _ => (0.0, 0, 0, 0),
            };
            #[allow(clippy::cast_precision_loss)]
            let mem_pct = if limit > 0 {
                mem as f64 / limit as f64 * 100.0
            } else {
                0.0
            };
            rows.push(json!({
                "ID": r.id[..12],
                "Container": r.id[..12],
                "Name": r.name,
                "CPUPerc": format!("{cpu:.2}%"),
                "MemUsage": format!("{} / {}", iec(mem), iec(limit)),
                "MemPerc": format!("{mem_pct:.2}%"),
                "NetIO": "0B / 0B",
                "BlockIO": "0B / 0B",
                "PIDs": pids.to_string(),
            }));
        }
        match &a.format {
            Some(f) if f == "json" => {
                for r in &rows {
                    println!("{r}");
                }
            }
            Some(f) => {
                let t = Template::parse(f)?;
                for r in &rows {
                    println!("{}", t.render(r)?);
                }
            }
            None => {
                let mut lines = vec![[
                    "CONTAINER ID",
                    "NAME",
                    "CPU %",
                    "MEM USAGE / LIMIT",
                    "MEM %",
                    "NET I/O",
                    "BLOCK I/O",
                    "PIDS",
                ]
                .map(str::to_string)
                .to_vec()];
                for r in &rows {
                    lines.push(
                        [
                            "ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs",
                        ]
                        .iter()
                        .map(|k| r[*k].as_str().unwrap_or("").to_string())
                        .collect(),
                    );
                }
                if !a.no_stream {
                    print!("\x1b[2J\x1b[H");
                }
                print!("{}", table(&lines));
            }
        }
        std::io::stdout().flush()?;
        if a.no_stream {
            return Ok(());
        }
    }
}

/// Binary units as `docker stats` shows them (`1.5MiB`).
pub(crate) fn iec(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    #[allow(clippy::cast_precision_loss)]
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b}B")
    } else {
        format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + U[i]
    }
}

/// `port`.
#[derive(Debug, Args)]
pub struct PortArgs {
    /// CONTAINER
    pub container: String,
    /// PRIVATE_PORT[/PROTO]
    pub port: Option<String>,
}

/// `port`: published ports (none until bridge networking lands: `none` and `host` publish
/// nothing).
pub fn port(root: &Path, a: &PortArgs) -> anyhow::Result<()> {
    let e = engine(root)?;
    let r = e.resolve(&a.container).map_err(engine_exit)?;
    let st = e.state(&r.id);
    let ports = st.net.as_ref().map(|n| n.ports.clone()).unwrap_or_default();
    let want = a
        .port
        .as_ref()
        .map(|p| if p.contains('/') { p.clone() } else { format!("{p}/tcp") });
    let mut shown = 0;
    for p in &ports {
        let key = format!("{}/{}", p.port, p.proto);
        match &want {
            Some(w) if *w != key => continue,
            Some(_) => println!("{}:{}", p.host_ip, p.host_port),
            None => println!("{key} -> {}:{}", p.host_ip, p.host_port),
        }
        shown += 1;
    }
    if let (Some(w), 0) = (&want, shown) {
        return Err(Exit(1, format!("Error: No public port '{w}' published for {}", r.name)).into());
    }
    Ok(())
}

/// Docker's `PORTS` column: `0.0.0.0:8080->80/tcp, 127.0.0.1:32768->81/tcp`.
pub(crate) fn ports_text(st: &State) -> String {
    st.net
        .as_ref()
        .map(|n| {
            n.ports
                .iter()
                .map(|p| format!("{}:{}->{}/{}", p.host_ip, p.host_port, p.port, p.proto))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// A prune's `Deleted KIND:` paragraph (nothing when nothing went).
pub(crate) fn print_deleted(kind: &str, gone: &[String]) {
    if gone.is_empty() {
        return;
    }
    println!("Deleted {kind}:");
    for g in gone {
        println!("{g}");
    }
    println!();
}

/// `inspect`'s answer: each object through `--format`, or all of them as a JSON array.
pub(crate) fn print_inspected(out: &[serde_json::Value], format: Option<&str>) -> anyhow::Result<()> {
    match format {
        Some(f) if f != "json" => {
            let t = Template::parse(f)?;
            for v in out {
                println!("{}", t.render(v)?);
            }
        }
        _ => println!("{}", serde_json::to_string_pretty(out)?),
    }
    Ok(())
}
