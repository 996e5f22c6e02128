//! Running a project on the engine: networks and volumes made, images pulled or built,
//! containers converged to the model (made, kept, recreated when their config hash
//! changed, scaled), started in dependency order with their conditions (`down.rs` takes
//! them down in reverse).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use berth_engine::images::ImageStore;
use berth_engine::model::{Record, Status};
use berth_engine::store::Engine;

use crate::model::{Project, Service};
use crate::options::{create_options, networks_in_order};
use crate::plan::{self, dependencies, order, with_dependencies};
use crate::ComposeError;

/// Where `up` and `down` report their steps (` Container NAME  Started`).
pub type Progress<'a> = &'a (dyn Fn(&str, &str, &str) + Sync);

/// A service's image to build: `docker build` arguments.
pub type Builder<'a> = &'a dyn Fn(&str, &[String]) -> Result<(), ComposeError>;

/// The engine and what `up` reports and builds with.
#[allow(missing_debug_implementations)]
pub struct Ctx<'a> {
    /// The engine.
    pub engine: &'a Engine,
    /// The image store.
    pub images: &'a mut ImageStore,
    /// The berth binary (monitors are started from it).
    pub exe: &'a Path,
    /// Steps reported.
    pub progress: Progress<'a>,
    /// Builds an image.
    pub build: Builder<'a>,
}

/// `up`'s options.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Services named (none: all enabled).
    pub services: Vec<String>,
    /// `--scale SERVICE=N`.
    pub scale: BTreeMap<String, u32>,
    /// `--force-recreate`.
    pub force_recreate: bool,
    /// `--no-recreate`.
    pub no_recreate: bool,
    /// `--no-deps`.
    pub no_deps: bool,
    /// `--remove-orphans`.
    pub remove_orphans: bool,
    /// `--build`.
    pub build: bool,
    /// `--no-build`.
    pub no_build: bool,
    /// `--pull always|missing|never`.
    pub pull: Option<String>,
    /// `--no-start`: make, do not start.
    pub no_start: bool,
    /// `--wait`.
    pub wait: bool,
    /// `--wait-timeout`.
    pub wait_timeout: Option<Duration>,
}

/// A project's containers (of `service` if given); `oneoff` includes `run`'s. Sorted by
/// service and number.
pub fn containers_of(
    engine: &Engine,
    project: &str,
    service: Option<&str>,
    oneoff: bool,
) -> Result<Vec<Record>, ComposeError> {
    let mut out: Vec<Record> = engine
        .all()?
        .into_iter()
        .filter(|r| r.labels.get(plan::PROJECT).map(String::as_str) == Some(project))
        .filter(|r| service.is_none_or(|s| r.labels.get(plan::SERVICE).map(String::as_str) == Some(s)))
        .filter(|r| oneoff || r.labels.get(plan::ONEOFF).map(String::as_str) != Some("True"))
        .collect();
    out.sort_by_key(|r| (r.labels.get(plan::SERVICE).cloned().unwrap_or_default(), number(r)));
    Ok(out)
}

/// A container's number (`com.docker.compose.container-number`).
pub fn number(r: &Record) -> u32 {
    r.labels.get(plan::NUMBER).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Makes the networks the services use (external ones must exist).
fn ensure_networks(ctx: &Ctx<'_>, p: &Project, services: &BTreeSet<String>) -> Result<(), ComposeError> {
    let used: BTreeSet<&String> = services
        .iter()
        .filter_map(|s| p.services.get(s))
        .flat_map(|s| s.networks.keys())
        .collect();
    for key in used {
        let Some(n) = p.networks.get(key) else { continue };
        let exists = berth_engine::networks::get(ctx.engine, &n.name).is_ok();
        if n.external {
            if !exists {
                return Err(ComposeError::Project(format!(
                    "network {} declared as external, but could not be found",
                    n.name
                )));
            }
            continue;
        }
        if exists {
            continue;
        }
        if let Some(d) = n.driver.as_deref().filter(|d| !["bridge", "overlay"].contains(d)) {
            return Err(ComposeError::Project(format!(
                "network {key}: driver {d:?} is not served (bridge, overlay)"
            )));
        }
        let pool = n
            .ipam
            .as_ref()
            .and_then(|i| i.config.first())
            .cloned()
            .unwrap_or_default();
        (ctx.progress)("Network", &n.name, "Creating");
        berth_engine::networks::create(
            ctx.engine,
            &berth_engine::networks::CreateOptions {
                name: n.name.clone(),
                subnet: pool.subnet,
                gateway: pool.gateway,
                internal: n.internal,
                labels: plan::resource_labels(p, plan::NETWORK, key, &n.labels),
                driver: n.driver.clone().unwrap_or_default(),
                encrypted: n.driver_opts.contains_key("encrypted"),
            },
        )?;
        (ctx.progress)("Network", &n.name, "Created");
    }
    Ok(())
}

/// Makes the named volumes the services use (external ones must exist).
fn ensure_volumes(ctx: &Ctx<'_>, p: &Project, services: &BTreeSet<String>) -> Result<(), ComposeError> {
    let used: BTreeSet<&String> = services
        .iter()
        .filter_map(|s| p.services.get(s))
        .flat_map(|s| s.volumes.iter())
        .filter(|m| m.kind == "volume")
        .filter_map(|m| m.source.as_ref())
        .collect();
    let present = berth_engine::volumes::list(ctx.engine)?;
    for key in used {
        let Some(v) = p.volumes.get(key) else { continue };
        let exists = present.contains(&v.name);
        if v.external {
            if !exists {
                return Err(ComposeError::Project(format!(
                    "external volume \"{}\" not found",
                    v.name
                )));
            }
            continue;
        }
        if exists {
            continue;
        }
        if let Some(d) = v.driver.as_deref().filter(|d| *d != "local") {
            return Err(ComposeError::Project(format!(
                "volume {key}: driver {d:?} is not served (local)"
            )));
        }
        (ctx.progress)("Volume", &v.name, "Creating");
        let meta = berth_engine::volumes::VolumeMeta {
            labels: plan::resource_labels(p, plan::VOLUME, key, &v.labels),
            options: v.driver_opts.clone(),
        };
        berth_engine::volumes::create_volume(ctx.engine, Some(&v.name), "local", &meta)?;
        (ctx.progress)("Volume", &v.name, "Created");
    }
    Ok(())
}

/// `docker build` arguments for a service's image.
pub fn build_args(p: &Project, name: &str, s: &Service) -> Result<Vec<String>, ComposeError> {
    let Some(b) = &s.build else {
        return Err(ComposeError::Project(format!("service {name} has no build section")));
    };
    let mut args = vec!["-t".to_string(), s.image_name(&p.name, name)];
    for t in &b.tags {
        args.extend(["-t".into(), t.clone()]);
    }
    if let Some(inline) = &b.dockerfile_inline {
        let dir = std::env::temp_dir().join(format!("berth-compose-{}-{name}-{}", p.name, std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| ComposeError::Project(format!("{}: {e}", dir.display())))?;
        let f = dir.join("Dockerfile");
        std::fs::write(&f, inline).map_err(|e| ComposeError::Project(format!("{}: {e}", f.display())))?;
        args.extend(["-f".into(), f.display().to_string()]);
    } else if let Some(f) = &b.dockerfile {
        args.extend(["-f".into(), Path::new(&b.context).join(f).display().to_string()]);
    }
    for (k, v) in &b.args {
        args.push("--build-arg".into());
        args.push(match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        });
    }
    for (k, v) in &b.labels {
        args.extend(["--label".into(), format!("{k}={v}")]);
    }
    if let Some(t) = &b.target {
        args.extend(["--target".into(), t.clone()]);
    }
    if b.no_cache == Some(true) {
        args.push("--no-cache".into());
    }
    if b.pull == Some(true) {
        args.push("--pull".into());
    }
    if let Some(n) = &b.network {
        args.extend(["--network".into(), n.clone()]);
    }
    for sref in &b.secrets {
        let src = p.secrets.get(&sref.source).ok_or_else(|| {
            ComposeError::Project(format!("service {name}: build secret {} is not defined", sref.source))
        })?;
        let id = sref.target.clone().unwrap_or_else(|| sref.source.clone());
        match (&src.file, &src.environment) {
            (Some(f), _) => args.extend(["--secret".into(), format!("id={id},src={f}")]),
            (None, Some(env)) => args.extend(["--secret".into(), format!("id={id},env={env}")]),
            _ => {
                return Err(ComposeError::Project(format!(
                    "build secret {}: no file or environment",
                    sref.source
                )))
            }
        }
    }
    args.push(b.context.clone());
    Ok(args)
}

/// Makes a service's image present: built (`--build`, a build section without the image
/// here), or pulled as its pull policy says.
pub fn ensure_image(
    ctx: &mut Ctx<'_>,
    p: &Project,
    name: &str,
    s: &Service,
    o: &UpOptions,
) -> Result<(), ComposeError> {
    let image = s.image_name(&p.name, name);
    let here = ctx.images.resolve(&image).is_ok();
    let policy = o
        .pull
        .clone()
        .or_else(|| s.pull_policy.clone())
        .unwrap_or_else(|| "missing".into());
    if s.build.is_some() && !o.no_build && (o.build || policy == "build" || !here) {
        (ctx.progress)("Image", &image, "Building");
        (ctx.build)(name, &build_args(p, name, s)?)?;
        (ctx.progress)("Image", &image, "Built");
        return Ok(());
    }
    let pull = match policy.as_str() {
        "always" => true,
        "never" => false,
        "missing" | "if_not_present" | "build" => !here,
        other => {
            return Err(ComposeError::Project(format!(
                "service {name}: pull_policy {other:?}: always, never, missing or build"
            )))
        }
    };
    if !pull {
        if !here {
            return Err(ComposeError::Project(format!(
                "service {name}: image {image} is not here and its pull policy is never"
            )));
        }
        return Ok(());
    }
    let r = berth_oci::Reference::parse(&image)
        .map_err(|e| ComposeError::Project(format!("service {name}: image {image:?}: {e}")))?;
    (ctx.progress)("Image", &image, "Pulling");
    match berth_engine::images::pull(ctx.images, &r, &berth_engine::images::PullOptions::default(), &|_| {}) {
        Ok(_) => (ctx.progress)("Image", &image, "Pulled"),
        Err(e) if here => (ctx.progress)(
            "Image",
            &image,
            &format!("Warning: pull failed, using the local image: {e}"),
        ),
        Err(e) => return Err(ComposeError::Project(format!("service {name}: pulling {image}: {e}"))),
    }
    Ok(())
}

/// Stops and removes one container.
pub fn remove_container(ctx: &Ctx<'_>, r: &Record, timeout: Option<u64>, volumes: bool) -> Result<(), ComposeError> {
    stop_and_remove(ctx.engine, ctx.progress, r, timeout, volumes)
}

pub(crate) fn stop_and_remove(
    engine: &Engine,
    progress: Progress<'_>,
    r: &Record,
    timeout: Option<u64>,
    volumes: bool,
) -> Result<(), ComposeError> {
    if engine.state(&r.id).running() {
        progress("Container", &r.name, "Stopping");
        berth_engine::ops::stop(engine, &r.id, timeout, None)?;
        progress("Container", &r.name, "Stopped");
    }
    progress("Container", &r.name, "Removing");
    match berth_engine::ops::remove(engine, &r.id, true, volumes) {
        Ok(_) => {}
        Err(e) if e.kind() == berth_oci::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    progress("Container", &r.name, "Removed");
    Ok(())
}

/// Makes container `n` of a service (and connects its other networks).
pub fn create_container(
    ctx: &mut Ctx<'_>,
    p: &Project,
    name: &str,
    s: &Service,
    n: u32,
    oneoff: bool,
) -> Result<Record, ComposeError> {
    let mut o = create_options(ctx.engine, p, name, s, n, oneoff)?;
    if let Ok(img) = ctx.images.resolve(&o.image) {
        o.labels.insert(plan::IMAGE.into(), img.row.id.clone());
    }
    let cname = o.name.clone().unwrap_or_default();
    (ctx.progress)("Container", &cname, "Creating");
    let made = berth_engine::create::create(ctx.engine, ctx.images, &o)?;
    if s.network_mode.is_none() {
        for (key, a) in networks_in_order(s).into_iter().skip(1) {
            let Some(net) = p.networks.get(&key) else { continue };
            let aliases: Vec<String> = std::iter::once(name.to_string())
                .chain(a.aliases.iter().cloned())
                .collect();
            if let Err(e) = berth_engine::networks::connect(
                ctx.engine,
                &net.name,
                &made.record.id,
                &aliases,
                a.ipv4_address.as_deref(),
            ) {
                let _ = berth_engine::ops::remove(ctx.engine, &made.record.id, true, true);
                return Err(e.into());
            }
        }
    }
    (ctx.progress)("Container", &cname, "Created");
    Ok(made.record)
}

/// Brings a service's containers to the model: the right number, each made from the
/// current config (recreated when its hash or image changed), started unless `no_start`.
/// Whether any container was made or recreated: the dependents that asked for it
/// (`depends_on: {restart: true}`) restart.
fn converge(
    ctx: &mut Ctx<'_>,
    p: &Project,
    name: &str,
    o: &UpOptions,
    deps_changed: bool,
) -> Result<bool, ComposeError> {
    let s = p
        .services
        .get(name)
        .ok_or_else(|| ComposeError::Project(format!("no such service: {name}")))?;
    let want = o.scale.get(name).copied().unwrap_or_else(|| s.replicas());
    if want > 1 && s.container_name.is_some() {
        return Err(ComposeError::Project(format!(
            "service {name}: container_name is set, so it cannot have {want} containers"
        )));
    }
    let hash = plan::config_hash(s);
    let image_id = ctx.images.resolve(&s.image_name(&p.name, name)).ok().map(|i| i.row.id);
    let existing = containers_of(ctx.engine, &p.name, Some(name), false)?;
    let mut changed = false;
    let mut have = BTreeSet::new();
    let (keep, extra): (Vec<&Record>, Vec<&Record>) = existing.iter().partition(|r| {
        let n = number(r);
        n > 0 && n <= want && have.insert(n)
    });
    // Scaling down: the extra containers are all signalled first, so they stop together.
    for r in &extra {
        if ctx.engine.state(&r.id).running() {
            let _ = berth_engine::ops::kill(ctx.engine, &r.id, &r.stop_signal);
        }
    }
    let extra: Vec<Record> = extra.into_iter().cloned().collect();
    crate::down::remove_together(ctx, &extra, None, false)?;
    for r in keep {
        let n = number(r);
        let stale =
            r.labels.get(plan::CONFIG_HASH) != Some(&hash) || image_id.as_ref().is_some_and(|i| *i != r.image_id);
        let r = if o.force_recreate || (stale && !o.no_recreate) {
            changed = true;
            (ctx.progress)("Container", &r.name, "Recreate");
            remove_container(ctx, r, None, false)?;
            let made = create_container(ctx, p, name, s, n, false)?;
            (ctx.progress)("Container", &made.name, "Recreated");
            made
        } else {
            r.clone()
        };
        if o.no_start {
            continue;
        }
        let running = ctx.engine.state(&r.id).running();
        if running && deps_changed {
            (ctx.progress)("Container", &r.name, "Restarting");
            berth_engine::ops::stop(ctx.engine, &r.id, None, None)?;
            berth_engine::ops::start(ctx.engine, &r.id, ctx.exe)?;
            (ctx.progress)("Container", &r.name, "Started");
        } else if running {
            (ctx.progress)("Container", &r.name, "Running");
        } else {
            (ctx.progress)("Container", &r.name, "Starting");
            berth_engine::ops::start(ctx.engine, &r.id, ctx.exe)?;
            (ctx.progress)("Container", &r.name, "Started");
        }
    }
    for n in 1..=want {
        if have.contains(&n) {
            continue;
        }
        let r = create_container(ctx, p, name, s, n, false)?;
        changed = true;
        if !o.no_start {
            (ctx.progress)("Container", &r.name, "Starting");
            berth_engine::ops::start(ctx.engine, &r.id, ctx.exe)?;
            (ctx.progress)("Container", &r.name, "Started");
        }
    }
    Ok(changed)
}

/// Where a dependency stands for a condition: met, not yet, or never.
fn condition(ctx: &Ctx<'_>, p: &Project, dep: &str, cond: &str) -> Result<bool, ComposeError> {
    let ctrs = containers_of(ctx.engine, &p.name, Some(dep), false)?;
    for r in &ctrs {
        let st = ctx.engine.state(&r.id);
        match cond {
            "service_healthy" => {
                let Some(h) = &st.health else {
                    if r.health.is_none() {
                        return Err(ComposeError::Project(format!(
                            "dependency failed to start: container {} has no healthcheck configured",
                            r.name
                        )));
                    }
                    return Ok(false);
                };
                if h.status == "unhealthy" {
                    return Err(ComposeError::Project(format!(
                        "dependency failed to start: container {} is unhealthy",
                        r.name
                    )));
                }
                if !st.running() && st.status != Status::Restarting {
                    return Err(ComposeError::Project(format!(
                        "dependency failed to start: container {} exited ({})",
                        r.name, st.exit_code
                    )));
                }
                if h.status != "healthy" {
                    return Ok(false);
                }
            }
            "service_completed_successfully" => match st.status {
                Status::Exited | Status::Dead if st.exit_code == 0 => {}
                Status::Exited | Status::Dead => {
                    return Err(ComposeError::Project(format!(
                        "service {dep:?} didn't complete successfully: exit {}",
                        st.exit_code
                    )))
                }
                _ => return Ok(false),
            },
            _ => {}
        }
    }
    Ok(true)
}

/// `up`: networks, volumes, images, then each service converged once what it depends on
/// meets its condition (services whose dependencies are met start together, without
/// waiting on unrelated ones).
pub fn up(ctx: &mut Ctx<'_>, p: &Project, o: &UpOptions) -> Result<(), ComposeError> {
    let named: Vec<String> = if o.services.is_empty() {
        p.services.keys().cloned().collect()
    } else {
        o.services.clone()
    };
    for n in &named {
        if !p.services.contains_key(n) {
            return Err(ComposeError::Project(format!("no such service: {n}")));
        }
    }
    let selected: BTreeSet<String> = if o.no_deps {
        named.iter().cloned().collect()
    } else {
        with_dependencies(p, &named)
    };
    let list: Vec<String> = selected.iter().cloned().collect();
    let waves = order(p, &list)?;
    let orphans: Vec<Record> = containers_of(ctx.engine, &p.name, None, false)?
        .into_iter()
        .filter(|r| {
            let svc = r.labels.get(plan::SERVICE).cloned().unwrap_or_default();
            !p.all_services.contains(&svc)
        })
        .collect();
    for r in &orphans {
        if o.remove_orphans {
            remove_container(ctx, r, None, false)?;
        } else {
            (ctx.progress)(
                "Container",
                &r.name,
                "Warning: an orphan of this project (its service is gone); --remove-orphans removes it",
            );
        }
    }
    ensure_networks(ctx, p, &selected)?;
    ensure_volumes(ctx, p, &selected)?;
    for s in waves.iter().flatten() {
        if let Some(svc) = p.services.get(s) {
            ensure_image(ctx, p, s, svc, o)?;
        }
    }
    let mut pending: Vec<String> = waves.into_iter().flatten().collect();
    let mut started: BTreeSet<String> = BTreeSet::new();
    let mut changed: BTreeSet<String> = BTreeSet::new();
    let mut waiting: BTreeSet<(String, String)> = BTreeSet::new();
    while !pending.is_empty() {
        let mut progressed = false;
        let mut i = 0;
        while i < pending.len() {
            let name = pending[i].clone();
            let svc = &p.services[&name];
            let mut ready = true;
            for (dep, cond) in dependencies(p, svc) {
                if !selected.contains(&dep) {
                    continue;
                }
                if !started.contains(&dep) {
                    ready = false;
                    break;
                }
                if o.no_start || cond == "service_started" {
                    continue;
                }
                let met = condition(ctx, p, &dep, &cond)?;
                let first = waiting.insert((String::new(), dep.clone()));
                for r in containers_of(ctx.engine, &p.name, Some(&dep), false)? {
                    if first {
                        (ctx.progress)("Container", &r.name, "Waiting");
                    }
                    if met {
                        let word = if cond == "service_healthy" { "Healthy" } else { "Exited" };
                        if waiting.insert(("done".into(), dep.clone())) {
                            (ctx.progress)("Container", &r.name, word);
                        }
                    }
                }
                if !met {
                    ready = false;
                    break;
                }
            }
            if ready {
                let deps_changed = svc.depends_on.iter().any(|(d, c)| c.restart && changed.contains(d));
                if converge(ctx, p, &name, o, deps_changed)? {
                    changed.insert(name.clone());
                }
                started.insert(name);
                pending.remove(i);
                progressed = true;
            } else {
                i += 1;
            }
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    if o.wait && !o.no_start {
        wait_ready(ctx, p, &selected, o.wait_timeout)?;
    }
    Ok(())
}

/// `--wait`: every container running (healthy, when it has a health check), or exited 0
/// when another service waits for it to complete.
fn wait_ready(
    ctx: &Ctx<'_>,
    p: &Project,
    selected: &BTreeSet<String>,
    timeout: Option<Duration>,
) -> Result<(), ComposeError> {
    let one_shot: BTreeSet<&String> = p
        .services
        .values()
        .flat_map(|s| s.depends_on.iter())
        .filter(|(_, d)| d.condition == "service_completed_successfully")
        .map(|(n, _)| n)
        .collect();
    let began = Instant::now();
    let mut reported = BTreeSet::new();
    loop {
        let mut all = true;
        for name in selected {
            for r in containers_of(ctx.engine, &p.name, Some(name), false)? {
                let st = ctx.engine.state(&r.id);
                let ok = match (&st.health, st.status) {
                    (_, Status::Exited | Status::Dead) if st.exit_code == 0 && one_shot.contains(name) => true,
                    (_, Status::Exited | Status::Dead) => {
                        return Err(ComposeError::Project(format!(
                            "container {} exited ({})",
                            r.name, st.exit_code
                        )))
                    }
                    (Some(h), _) if h.status == "unhealthy" => {
                        return Err(ComposeError::Project(format!("container {} is unhealthy", r.name)))
                    }
                    (Some(h), _) => h.status == "healthy",
                    (None, s) => s == Status::Running,
                };
                if ok && reported.insert(r.name.clone()) {
                    (ctx.progress)(
                        "Container",
                        &r.name,
                        if st.health.is_some() { "Healthy" } else { "Running" },
                    );
                }
                all &= ok;
            }
        }
        if all {
            return Ok(());
        }
        if timeout.is_some_and(|t| began.elapsed() > t) {
            return Err(ComposeError::Project(
                "timeout waiting for the project's containers to be ready".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
