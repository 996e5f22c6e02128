//! `berth compose`: Docker Compose's commands over `berth-compose`, daemonless. Progress
//! goes to standard error as ` Container NAME  Started`, as `docker compose` prints it
//! without a terminal.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use berth_compose::down::{self, DownOptions};
use berth_compose::up::{self, containers_of, Ctx, UpOptions};
use berth_compose::{plan, ComposeError, LoadOptions, Project, Selection};
use berth_engine::store::{Engine, Record};
use clap::{Args, Parser};

pub use crate::compose_args::*;
use serde_json::json;

use crate::containers::{engine, engine_exit, Exit};
use crate::format::{human_duration, since, table};

/// Parses another command's flags (to hand a step to the CLI's own commands).
fn parsed<T: Args>(args: &[String]) -> anyhow::Result<T> {
    #[derive(Parser)]
    struct W<T: Args> {
        #[command(flatten)]
        inner: T,
    }
    Ok(W::<T>::try_parse_from(std::iter::once("berth".to_string()).chain(args.iter().cloned()))?.inner)
}

fn compose_exit(e: ComposeError) -> anyhow::Error {
    match e {
        ComposeError::Engine(e) => engine_exit(e),
        other => Exit(1, other.to_string()).into(),
    }
}

/// Reports a step as `docker compose` does without a terminal.
fn progress(kind: &str, name: &str, status: &str) {
    eprintln!(" {kind} {name}  {status}");
}

fn project(a: &ComposeArgs, services: &[String]) -> anyhow::Result<Project> {
    let o = LoadOptions {
        files: a.files.clone(),
        project_name: a.project_name.clone(),
        project_dir: a.project_directory.clone(),
        env_files: a.env_file.clone(),
        selection: Selection {
            profiles: a.profile.clone(),
            services: services.to_vec(),
        },
    };
    let p = berth_compose::load(&o).map_err(compose_exit)?;
    for w in &p.warnings {
        eprintln!("WARNING: {w}");
    }
    Ok(p)
}

/// The project for commands that act on containers: the files when there are, else just
/// the name `-p` gives (`down -p NAME` works without the files).
fn project_or_name(a: &ComposeArgs, services: &[String]) -> anyhow::Result<Project> {
    match project(a, services) {
        Ok(p) => Ok(p),
        Err(e) => {
            let Some(name) = &a.project_name else { return Err(e) };
            let no_files = a.files.is_empty() && e.to_string().contains("no configuration file provided");
            if !no_files {
                return Err(e);
            }
            Ok(Project::named(&berth_compose::project_name(name)))
        }
    }
}

/// Runs `f` with the engine, the image store, progress on standard error and the CLI's
/// builder.
fn with_ctx<T>(root: &Path, e: &Engine, f: impl FnOnce(&mut Ctx<'_>) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let mut images = crate::images::open(root)?;
    let exe = std::env::current_exe().context("finding the berth binary")?;
    let build = builder(root);
    let mut ctx = Ctx {
        engine: e,
        images: &mut images,
        exe: &exe,
        progress: &progress,
        build: &build,
    };
    f(&mut ctx)
}

/// Builds a service's image with the CLI's `build`.
fn builder(root: &Path) -> impl Fn(&str, &[String]) -> Result<(), ComposeError> + '_ {
    move |service: &str, args: &[String]| {
        let a: crate::build::BuildArgs =
            parsed(args).map_err(|e| ComposeError::Project(format!("service {service}: build: {e}")))?;
        crate::build::build(root, &a)
            .map_err(|e| ComposeError::Project(format!("service {service}: build failed: {e}")))
    }
}

/// The containers of the services named (all when none), one-off ones left out.
fn selected(e: &Engine, p: &Project, services: &[String]) -> anyhow::Result<Vec<Record>> {
    Ok(containers_of(e, &p.name, None, false)
        .map_err(compose_exit)?
        .into_iter()
        .filter(|r| services.is_empty() || services.contains(r.labels.get(plan::SERVICE).unwrap_or(&String::new())))
        .collect())
}

/// `compose`.
pub fn compose(root: &Path, a: &ComposeArgs) -> anyhow::Result<()> {
    match &a.command {
        ComposeCmd::Up(u) => up_cmd(root, a, u, false),
        ComposeCmd::Create(u) => up_cmd(root, a, u, true),
        ComposeCmd::Down(d) => {
            let p = project_or_name(a, &[])?;
            if let Some(r) = d.rmi.as_deref().filter(|r| !["local", "all"].contains(r)) {
                return Err(Exit(1, format!("invalid --rmi {r:?}: local or all")).into());
            }
            let o = DownOptions {
                volumes: d.volumes,
                rmi: d.rmi.clone(),
                timeout: d.timeout,
                remove_orphans: d.remove_orphans,
            };
            let e = engine(root)?;
            with_ctx(root, &e, |ctx| down::down(ctx, &p, &o).map_err(compose_exit))
        }
        ComposeCmd::Config(c) => config(a, c),
        ComposeCmd::Version { short } => {
            let v = env!("CARGO_PKG_VERSION");
            if *short {
                println!("{v}");
            } else {
                println!(
                    "berth compose version {v} (the Compose Specification; labels as Docker Compose {})",
                    plan::COMPOSE_VERSION
                );
            }
            Ok(())
        }
        ComposeCmd::Ls(l) => crate::compose_views::ls(root, l.all, l.quiet, &l.format),
        ComposeCmd::Ps(ps) => {
            let p = project_or_name(a, &[])?;
            crate::compose_views::ps(
                root,
                &p,
                ps.all,
                ps.quiet,
                ps.services,
                ps.format.as_deref(),
                &ps.status,
                &ps.service,
            )
        }
        ComposeCmd::Logs(l) => {
            let p = project_or_name(a, &[])?;
            let e = engine(root)?;
            let ctrs = selected(&e, &p, &l.services)?;
            crate::compose_views::logs(
                &e,
                &ctrs,
                l.follow,
                l.timestamps,
                &l.tail,
                !l.no_log_prefix,
                color(l.no_color),
            )
        }
        ComposeCmd::Exec(x) => exec(root, a, x),
        ComposeCmd::Run(r) => run(root, a, r),
        ComposeCmd::Build(b) => {
            let p = project(a, &b.services)?;
            let build = builder(root);
            for (name, s) in services_of(&p, &b.services)? {
                if s.build.is_none() {
                    continue;
                }
                let mut args = up::build_args(&p, &name, s).map_err(compose_exit)?;
                if b.no_cache {
                    args.insert(0, "--no-cache".into());
                }
                if b.pull {
                    args.insert(0, "--pull".into());
                }
                build(&name, &args).map_err(compose_exit)?;
            }
            Ok(())
        }
        ComposeCmd::Pull(b) => {
            let p = project(a, &b.services)?;
            for (name, s) in services_of(&p, &b.services)? {
                let Some(image) = &s.image else { continue };
                progress("Image", image, "Pulling");
                let args = vec![image.clone(), "-q".into()];
                match crate::images::pull(root, &parsed(&args)?) {
                    Ok(()) => progress("Image", image, "Pulled"),
                    Err(err) if b.ignore_pull_failures => progress("Image", image, &format!("Warning: {err}")),
                    Err(err) => return Err(Exit(1, format!("service {name}: pulling {image}: {err}")).into()),
                }
            }
            Ok(())
        }
        ComposeCmd::Push(b) => {
            let p = project(a, &b.services)?;
            for (name, s) in services_of(&p, &b.services)? {
                if s.build.is_none() {
                    continue;
                }
                let Some(image) = &s.image else { continue };
                progress("Image", image, "Pushing");
                crate::images::push(root, &parsed(&[image.clone(), "-q".into()])?)
                    .map_err(|err| Exit(1, format!("service {name}: pushing {image}: {err}")))?;
                progress("Image", image, "Pushed");
            }
            Ok(())
        }
        ComposeCmd::Start(s) => each(root, a, &s.services, "Starting", "Started", |e, r, exe| {
            berth_engine::ops::start(e, &r.id, exe)
        }),
        ComposeCmd::Stop(s) => each(root, a, &s.services, "Stopping", "Stopped", |e, r, _| {
            berth_engine::ops::stop(e, &r.id, s.timeout, None)
        }),
        ComposeCmd::Restart(s) => each(root, a, &s.services, "Restarting", "Started", |e, r, exe| {
            berth_engine::ops::stop(e, &r.id, s.timeout, None)?;
            berth_engine::ops::start(e, &r.id, exe)
        }),
        ComposeCmd::Kill(k) => each(root, a, &k.services, "Killing", "Killed", |e, r, _| {
            if e.state(&r.id).running() {
                berth_engine::ops::kill(e, &r.id, &k.signal)?;
            }
            Ok(())
        }),
        ComposeCmd::Rm(rm) => {
            let p = project_or_name(a, &[])?;
            let e = engine(root)?;
            let mut gone = Vec::new();
            for r in selected(&e, &p, &rm.services)? {
                if e.state(&r.id).running() {
                    if !rm.stop {
                        continue;
                    }
                    progress("Container", &r.name, "Stopping");
                    berth_engine::ops::stop(&e, &r.id, None, None).map_err(engine_exit)?;
                    progress("Container", &r.name, "Stopped");
                }
                gone.push(r);
            }
            if gone.is_empty() {
                eprintln!("No stopped containers");
                return Ok(());
            }
            // Asked first, as docker compose asks, when someone is there to answer.
            // SAFETY: isatty only reads the descriptor's state.
            if !rm.force && unsafe { libc::isatty(0) } == 1 {
                let names: Vec<&str> = gone.iter().map(|r| r.name.as_str()).collect();
                eprint!("Going to remove {}\n? Are you sure? (y/N) ", names.join(", "));
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Ok(());
                }
            }
            for r in gone {
                progress("Container", &r.name, "Removing");
                berth_engine::ops::remove(&e, &r.id, true, rm.volumes).map_err(engine_exit)?;
                progress("Container", &r.name, "Removed");
            }
            Ok(())
        }
        ComposeCmd::Top(t) => {
            let p = project_or_name(a, &[])?;
            let e = engine(root)?;
            for r in selected(&e, &p, &t.services)? {
                if !e.state(&r.id).running() {
                    continue;
                }
                println!("{}", r.name);
                let (titles, rows) = berth_engine::inspect::top(&e, &r.id, "").map_err(engine_exit)?;
                let mut lines = vec![titles];
                lines.extend(rows);
                println!("{}", table(&lines));
            }
            Ok(())
        }
        ComposeCmd::Port(pa) => {
            let p = project_or_name(a, &[])?;
            let e = engine(root)?;
            let r = selected(&e, &p, std::slice::from_ref(&pa.service))?
                .into_iter()
                .find(|r| up::number(r) == pa.index)
                .ok_or_else(|| Exit(1, format!("service {:?} has no container {}", pa.service, pa.index)))?;
            let st = e.state(&r.id);
            let found = st.net.as_ref().and_then(|n| {
                n.ports
                    .iter()
                    .find(|x| x.port == pa.private_port && x.proto == pa.protocol)
                    .cloned()
            });
            match found {
                Some(x) => println!("{}:{}", x.host_ip, x.host_port),
                None => {
                    return Err(Exit(
                        1,
                        format!("no port {}/{} for container {}", pa.private_port, pa.protocol, r.name),
                    )
                    .into())
                }
            }
            Ok(())
        }
        ComposeCmd::Images(i) => {
            let p = project_or_name(a, &[])?;
            crate::compose_views::images(root, &p, &i.services, i.quiet)
        }
    }
}

/// Colours for the log prefixes: only on a terminal, unless asked not to.
fn color(no_color: bool) -> bool {
    // SAFETY: isatty only reads the descriptor's state.
    !no_color && unsafe { libc::isatty(1) } == 1 && std::env::var_os("NO_COLOR").is_none()
}

/// The services named (all when none), each with its model.
fn services_of<'p>(
    p: &'p Project,
    names: &[String],
) -> anyhow::Result<Vec<(String, &'p berth_compose::model::Service)>> {
    if names.is_empty() {
        return Ok(p.services.iter().map(|(n, s)| (n.clone(), s)).collect());
    }
    names
        .iter()
        .map(|n| {
            p.services
                .get(n)
                .map(|s| (n.clone(), s))
                .ok_or_else(|| Exit(1, format!("no such service: {n}")).into())
        })
        .collect()
}

/// Runs `f` on each container of the services named, reporting before and after.
fn each(
    root: &Path,
    a: &ComposeArgs,
    services: &[String],
    doing: &str,
    done: &str,
    f: impl Fn(&Engine, &Record, &Path) -> berth_engine::Result<()>,
) -> anyhow::Result<()> {
    let p = project_or_name(a, &[])?;
    let e = engine(root)?;
    let exe = std::env::current_exe()?;
    for r in selected(&e, &p, services)? {
        progress("Container", &r.name, doing);
        f(&e, &r, &exe).map_err(engine_exit)?;
        progress("Container", &r.name, done);
    }
    Ok(())
}

fn config(a: &ComposeArgs, c: &ConfigArgs) -> anyhow::Result<()> {
    let p = project(a, &[])?;
    if c.quiet {
        return Ok(());
    }
    if c.services {
        for s in p.services.keys() {
            println!("{s}");
        }
        return Ok(());
    }
    if c.volumes {
        for v in p.volumes.keys() {
            println!("{v}");
        }
        return Ok(());
    }
    if c.profiles {
        let mut all: Vec<&String> = p.services.values().flat_map(|s| s.profiles.iter()).collect();
        all.sort();
        all.dedup();
        for pr in all {
            println!("{pr}");
        }
        return Ok(());
    }
    if let Some(h) = &c.hash {
        for (n, s) in &p.services {
            if h == "*" || h.split(',').any(|x| x == n) {
                println!("{n} {}", plan::config_hash(s));
            }
        }
        return Ok(());
    }
    match c.format.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&p.normalized)?),
        "yaml" => print!("{}", berth_compose::config_yaml(&p).map_err(compose_exit)?),
        f => return Err(Exit(1, format!("unsupported format {f:?}: yaml or json")).into()),
    }
    Ok(())
}

fn up_cmd(root: &Path, a: &ComposeArgs, u: &UpArgs, create_only: bool) -> anyhow::Result<()> {
    let p = project(a, &u.services)?;
    let mut scale = BTreeMap::new();
    for s in &u.scale {
        let (name, n) = s
            .split_once('=')
            .and_then(|(a, b)| Some((a.to_string(), b.parse::<u32>().ok()?)))
            .ok_or_else(|| Exit(1, format!("invalid --scale {s:?}: SERVICE=NUM")))?;
        if !p.services.contains_key(&name) {
            return Err(Exit(1, format!("no such service: {name}")).into());
        }
        scale.insert(name, n);
    }
    if let Some(pl) = u
        .pull
        .as_deref()
        .filter(|x| !["always", "missing", "never"].contains(x))
    {
        return Err(Exit(1, format!("invalid --pull {pl:?}: always, missing or never")).into());
    }
    let o = UpOptions {
        services: u.services.clone(),
        scale,
        force_recreate: u.force_recreate,
        no_recreate: u.no_recreate,
        no_deps: u.no_deps,
        remove_orphans: u.remove_orphans,
        build: u.build,
        no_build: u.no_build,
        pull: u.pull.clone(),
        no_start: create_only || u.no_start,
        wait: u.wait,
        wait_timeout: u.wait_timeout.map(Duration::from_secs),
    };
    let e = engine(root)?;
    with_ctx(root, &e, |ctx| up::up(ctx, &p, &o).map_err(compose_exit))?;
    if u.detach || u.wait || o.no_start {
        return Ok(());
    }
    // Attached: every container's output, prefixed, until they all stop; Ctrl-C stops them.
    let names: Vec<String> = if u.services.is_empty() {
        Vec::new()
    } else {
        plan::with_dependencies(&p, &u.services).into_iter().collect()
    };
    let ctrs = selected(&e, &p, &names)?;
    crate::compose_views::attach(&e, &ctrs, color(u.no_color), u.abort_on_container_exit, u.timeout)
}

fn exec(root: &Path, a: &ComposeArgs, x: &ExecArgs) -> anyhow::Result<()> {
    let p = project_or_name(a, &[])?;
    let e = engine(root)?;
    let service = &x.service_and_command[0];
    let r = selected(&e, &p, std::slice::from_ref(service))?
        .into_iter()
        .find(|r| up::number(r) == x.index)
        .ok_or_else(|| Exit(1, format!("service {service:?} is not running")))?;
    let mut args = Vec::new();
    if x.detach {
        args.push("-d".to_string());
    } else {
        args.push("-i".into());
        // SAFETY: isatty only reads the descriptor's state.
        if !x.no_tty && unsafe { libc::isatty(0) } == 1 {
            args.push("-t".into());
        }
    }
    for env in &x.env {
        args.extend(["-e".into(), env.clone()]);
    }
    if let Some(u) = &x.user {
        args.extend(["-u".into(), u.clone()]);
    }
    if let Some(w) = &x.workdir {
        args.extend(["-w".into(), w.clone()]);
    }
    if x.privileged {
        return Err(Exit(
            1,
            "exec --privileged is not served: the process gets the container's own privileges".into(),
        )
        .into());
    }
    args.push(r.name.clone());
    args.extend(x.service_and_command[1..].iter().cloned());
    crate::exec::exec(root, &parsed(&args)?)
}

fn run(root: &Path, a: &ComposeArgs, x: &RunArgs) -> anyhow::Result<()> {
    let service = x.service_and_command[0].clone();
    let p = project(a, std::slice::from_ref(&service))?;
    let s = p
        .services
        .get(&service)
        .ok_or_else(|| Exit(1, format!("no such service: {service}")))?
        .clone();
    let e = engine(root)?;
    // Its dependencies come up first (not the service itself).
    let deps: Vec<String> = plan::dependencies(&p, &s).into_iter().map(|(d, _)| d).collect();
    with_ctx(root, &e, |ctx| {
        if !x.no_deps && !deps.is_empty() {
            let o = UpOptions {
                services: deps.clone(),
                ..UpOptions::default()
            };
            up::up(ctx, &p, &o).map_err(compose_exit)?;
        }
        up::ensure_image(ctx, &p, &service, &s, &UpOptions::default()).map_err(compose_exit)
    })?;
    let mut images = crate::images::open(root)?;
    let mut svc = s.clone();
    if x.service_and_command.len() > 1 {
        svc.command = Some(x.service_and_command[1..].to_vec());
    }
    if let Some(ep) = &x.entrypoint {
        svc.entrypoint = Some(berth_compose::shell_split(ep).map_err(|e| Exit(1, e))?);
    }
    if !x.service_ports {
        svc.ports.clear();
    }
    svc.restart = None;
    svc.deploy = svc.deploy.map(|mut d| {
        d.restart_policy = None;
        d
    });
    svc.container_name = None;
    let mut o = berth_compose::create_options(&e, &p, &service, &svc, 1, true).map_err(compose_exit)?;
    let suffix: String = berth_engine::store::new_id().map_err(engine_exit)?[..12].to_string();
    o.name = Some(
        x.name
            .clone()
            .unwrap_or_else(|| format!("{}-{service}-run-{suffix}", p.name)),
    );
    o.auto_remove = x.rm;
    // SAFETY: isatty only reads the descriptor's state.
    let stdin_tty = unsafe { libc::isatty(0) } == 1;
    o.tty = !x.no_tty && !x.detach && stdin_tty;
    o.open_stdin = x.interactive && !x.detach;
    o.stdin_once = o.open_stdin;
    for env in &x.env {
        o.env.push(crate::create_args::expand_env(env));
    }
    if let Some(u) = &x.user {
        o.user = Some(u.clone());
    }
    if let Some(w) = &x.workdir {
        o.workdir = Some(w.clone());
    }
    for pb in &x.publish {
        o.publish
            .push(berth_engine::options::PortSpec::parse(pb).map_err(|e| Exit(1, e.to_string()))?);
    }
    for v in &x.volume {
        o.binds
            .push(berth_engine::volumes::parse_volume(v).map_err(|e| Exit(1, e.to_string()))?);
    }
    for l in &x.label {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        o.labels.insert(k.to_string(), v.to_string());
    }
    let made = berth_engine::create::create(&e, &mut images, &o).map_err(engine_exit)?;
    for w in &made.warnings {
        eprintln!("WARNING: {w}");
    }
    crate::containers::run_record(root, &e, &made.record, x.detach, o.open_stdin, true, "ctrl-p,ctrl-q")
}

/// A project's status for `ls`: `running(2), exited(1)`.
pub(crate) fn status_summary(e: &Engine, ctrs: &[Record]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in ctrs {
        *counts.entry(e.state(&r.id).status.to_string()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(s, n)| format!("{s}({n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `CREATED` as `ps` prints it.
pub(crate) fn created(r: &Record) -> String {
    format!("{} ago", human_duration(since(&r.created)))
}

/// One container as `ps --format json` prints it.
pub(crate) fn ps_json(e: &Engine, r: &Record) -> serde_json::Value {
    let st = e.state(&r.id);
    let ports = crate::views::ports_text(&st);
    let command = std::iter::once(r.path.clone())
        .chain(r.args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    json!({
        "ID": r.id, "Name": r.name, "Image": r.image_name, "Command": format!("\"{command}\""),
        "Project": r.labels.get(plan::PROJECT), "Service": r.labels.get(plan::SERVICE),
        "Created": r.created, "State": st.status.to_string(),
        "Status": berth_engine::inspect::status_text(&st),
        "Health": st.health.as_ref().map(|h| h.status.clone()).unwrap_or_default(),
        "ExitCode": st.exit_code, "Publishers": ports, "Labels": r.labels,
    })
}
