//! A service's container, as the engine's `CreateOptions`.

use std::time::Duration;

use berth_engine::create::CreateOptions;
use berth_engine::model::{MountSpec, NamespaceMode, NetworkMode};
use berth_engine::options::{HealthOptions, LogConfig, PortSpec, RestartPolicy, Ulimit};
use berth_engine::store::Engine;

use crate::model::{Mount, Project, Service};
use crate::plan;
use crate::ComposeError;

fn invalid(service: &str, what: impl std::fmt::Display) -> ComposeError {
    ComposeError::Project(format!("service {service}: {what}"))
}

/// A Go-style duration (`1m30s`) of a service's key.
fn duration(service: &str, key: &str, s: Option<&String>) -> Result<Option<Duration>, ComposeError> {
    s.map(|s| {
        berth_engine::health::parse_duration(s)
            .ok_or_else(|| invalid(service, format!("{key}: invalid duration {s:?}")))
    })
    .transpose()
}

/// The restart policy: `restart`, else `deploy.restart_policy`.
fn restart(service: &str, s: &Service) -> Result<RestartPolicy, ComposeError> {
    if let Some(r) = &s.restart {
        return RestartPolicy::parse(r).map_err(|e| invalid(service, e));
    }
    let Some(rp) = s.deploy.as_ref().and_then(|d| d.restart_policy.as_ref()) else {
        return Ok(RestartPolicy::No);
    };
    Ok(match rp.condition.as_deref() {
        Some("none") => RestartPolicy::No,
        Some("on-failure") => RestartPolicy::OnFailure(rp.max_attempts.unwrap_or(0)),
        _ => RestartPolicy::Always,
    })
}

/// The network a service's containers are made on, with their aliases and address; the
/// others are connected after.
pub(crate) fn networks_in_order(s: &Service) -> Vec<(String, crate::model::Attachment)> {
    let mut nets: Vec<(String, crate::model::Attachment)> = s
        .networks
        .iter()
        .map(|(k, a)| (k.clone(), a.clone().unwrap_or_default()))
        .collect();
    // Highest priority first, then by name (as Docker Compose picks the primary one).
    nets.sort_by(|a, b| {
        b.1.priority
            .unwrap_or(0)
            .cmp(&a.1.priority.unwrap_or(0))
            .then(a.0.cmp(&b.0))
    });
    nets
}

/// The engine's mount for one `volumes` entry.
fn mount(p: &Project, service: &str, m: &Mount) -> Result<MountSpec, ComposeError> {
    let bad = |e: berth_engine::EngineError| invalid(service, e);
    match m.kind.as_str() {
        "tmpfs" => {
            let mut spec = m.target.clone();
            if let Some(size) = m
                .tmpfs
                .as_ref()
                .and_then(|t| t.size.as_ref())
                .and_then(crate::normalize::scalar)
            {
                spec.push_str(&format!(":size={size}"));
            }
            berth_engine::volumes::parse_tmpfs(&spec).map_err(bad)
        }
        "volume" => {
            let source = match &m.source {
                Some(k) => p
                    .volumes
                    .get(k)
                    .map(|v| v.name.clone())
                    .ok_or_else(|| invalid(service, format!("undefined volume {k}")))?,
                None => String::new(),
            };
            let spec = if source.is_empty() {
                m.target.clone()
            } else {
                format!("{source}:{}{}", m.target, if m.read_only { ":ro" } else { "" })
            };
            berth_engine::volumes::parse_volume(&spec).map_err(bad)
        }
        "bind" => {
            let source = m
                .source
                .clone()
                .ok_or_else(|| invalid(service, "a bind mount without a source"))?;
            let mut opts = Vec::new();
            if m.read_only {
                opts.push("ro".to_string());
            }
            if let Some(pr) = m.bind.as_ref().and_then(|b| b.propagation.clone()) {
                opts.push(pr);
            }
            let mut spec = format!("{source}:{}", m.target);
            if !opts.is_empty() {
                spec.push(':');
                spec.push_str(&opts.join(","));
            }
            berth_engine::volumes::parse_volume(&spec).map_err(bad)
        }
        other => Err(invalid(
            service,
            format!("volume type {other:?} is not served (volume, bind, tmpfs)"),
        )),
    }
}

/// A secret's or config's content as a file the container can mount: the host file named,
/// or one written under the engine's root from an environment variable or inline content.
fn file_source(engine: &Engine, p: &Project, service: &str, kind: &str, key: &str) -> Result<String, ComposeError> {
    let defs = if kind == "secret" { &p.secrets } else { &p.configs };
    let d = defs
        .get(key)
        .ok_or_else(|| invalid(service, format!("undefined {kind} {key}")))?;
    if let Some(f) = &d.file {
        if !std::path::Path::new(f).exists() {
            return Err(invalid(service, format!("{kind} {key}: file {f} not found")));
        }
        return Ok(f.clone());
    }
    let content = match (&d.environment, &d.content) {
        (Some(var), _) => std::env::var(var)
            .map_err(|_| invalid(service, format!("{kind} {key}: environment variable {var} is not set")))?,
        (None, Some(c)) => c.clone(),
        (None, None) => {
            return Err(invalid(
                service,
                format!("{kind} {key}: no file, environment or content (external ones are not served)"),
            ))
        }
    };
    let dir = engine.root.join("compose").join(&p.name).join(format!("{kind}s"));
    std::fs::create_dir_all(&dir).map_err(|e| invalid(service, format!("{}: {e}", dir.display())))?;
    let path = dir.join(key);
    std::fs::write(&path, content).map_err(|e| invalid(service, format!("{}: {e}", path.display())))?;
    Ok(path.display().to_string())
}

/// One device request of `gpus` or `deploy.resources.reservations.devices`.
fn device_request(service: &str, v: &serde_yaml::Value) -> Result<berth_engine::cdi::DeviceRequest, ComposeError> {
    let strings = |k: &str| -> Vec<String> {
        match v.get(k) {
            Some(serde_yaml::Value::Sequence(items)) => items.iter().filter_map(crate::normalize::scalar).collect(),
            Some(other) => crate::normalize::scalar(other).into_iter().collect(),
            None => Vec::new(),
        }
    };
    let count = match v.get("count") {
        None if strings("device_ids").is_empty() => -1,
        None => 0,
        Some(c) if crate::normalize::scalar(c).as_deref() == Some("all") => -1,
        Some(c) => crate::normalize::scalar(c)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| invalid(service, "a device request's count must be a number or all"))?,
    };
    let mut caps = strings("capabilities");
    if caps.is_empty() {
        caps.push("gpu".into());
    }
    Ok(berth_engine::cdi::DeviceRequest {
        driver: v.get("driver").and_then(crate::normalize::scalar).unwrap_or_default(),
        count,
        device_ids: strings("device_ids"),
        capabilities: vec![caps],
    })
}

/// The service's device requests: `gpus` and `deploy.resources.reservations.devices`.
fn device_requests(service: &str, s: &Service) -> Result<Vec<berth_engine::cdi::DeviceRequest>, ComposeError> {
    let mut out = Vec::new();
    match &s.gpus {
        None => {}
        Some(g) if crate::normalize::scalar(g).as_deref() == Some("all") => {
            out.push(berth_engine::cdi::DeviceRequest::parse_gpus("all").map_err(|e| invalid(service, e))?);
        }
        Some(serde_yaml::Value::Sequence(items)) => {
            for it in items {
                out.push(device_request(service, it)?);
            }
        }
        Some(_) => return Err(invalid(service, "gpus: all, or a list of device requests")),
    }
    let reserved = s
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.reservations.as_ref())
        .map(|r| r.devices.clone())
        .unwrap_or_default();
    for d in &reserved {
        out.push(device_request(service, d)?);
    }
    Ok(out)
}

/// The first container of a service (for `network_mode: service:X`, `volumes_from`).
fn first_container(engine: &Engine, p: &Project, service: &str) -> Result<String, ComposeError> {
    crate::up::containers_of(engine, &p.name, Some(service), false)?
        .into_iter()
        .next()
        .map(|r| r.name)
        .ok_or_else(|| ComposeError::Project(format!("service {service} has no container")))
}

/// The engine's options for container `n` of `service`.
pub fn create_options(
    engine: &Engine,
    p: &Project,
    service: &str,
    s: &Service,
    n: u32,
    oneoff: bool,
) -> Result<CreateOptions, ComposeError> {
    let bad = |e: berth_engine::EngineError| invalid(service, e);
    let mut o = CreateOptions {
        image: s.image_name(&p.name, service),
        name: Some(plan::container_name(&p.name, service, s, n)),
        cmd: s.command.clone().unwrap_or_default(),
        entrypoint: s.entrypoint.clone(),
        env: s
            .environment
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect(),
        workdir: s.working_dir.clone(),
        user: s.user.clone(),
        hostname: s.hostname.clone(),
        group_add: s.group_add.clone(),
        labels: plan::container_labels(p, service, s, n, oneoff),
        restart: restart(service, s)?,
        init: s.init.unwrap_or(false),
        cap_add: s.cap_add.clone(),
        cap_drop: s.cap_drop.clone(),
        security_opt: s.security_opt.clone(),
        privileged: s.privileged.unwrap_or(false),
        read_only: s.read_only.unwrap_or(false),
        tty: s.tty.unwrap_or(false),
        open_stdin: s.stdin_open.unwrap_or(false),
        sysctls: s.sysctls.clone(),
        add_hosts: s.extra_hosts.clone(),
        dns: s.dns.clone(),
        dns_search: s.dns_search.clone(),
        dns_options: s.dns_opt.clone(),
        stop_signal: s.stop_signal.clone(),
        runtime: s.runtime.clone().unwrap_or_default(),
        userns: s.userns_mode.clone().unwrap_or_default(),
        ..CreateOptions::default()
    };
    o.stop_timeout = duration(service, "stop_grace_period", s.stop_grace_period.as_ref())?.map(|d| d.as_secs());
    let limits = s
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.limits.clone())
        .unwrap_or_default();
    if let Some(m) = limits.memory.as_ref().or(s.mem_limit.as_ref()) {
        o.memory = berth_engine::spec::parse_size(m).map_err(bad)?;
    }
    if let Some(c) = limits.cpus.as_ref().or(s.cpus.as_ref()) {
        let cpus = berth_engine::spec::parse_cpus(c).map_err(bad)?;
        #[allow(clippy::cast_possible_truncation)]
        {
            o.nano_cpus = (cpus * 1e9) as i64;
        }
    }
    if let Some(pids) = limits.pids.or(s.pids_limit) {
        o.pids_limit = pids;
    }
    if let Some(h) = &s.healthcheck {
        o.health = HealthOptions {
            test: if h.test.is_empty() { None } else { Some(h.test.clone()) },
            interval: duration(service, "healthcheck.interval", h.interval.as_ref())?,
            timeout: duration(service, "healthcheck.timeout", h.timeout.as_ref())?,
            start_period: duration(service, "healthcheck.start_period", h.start_period.as_ref())?,
            retries: h.retries,
        };
    }
    for port in &s.ports {
        let mut spec = String::new();
        if let Some(ip) = &port.host_ip {
            spec.push_str(&format!("{ip}:"));
        }
        match &port.published {
            Some(pb) => spec.push_str(&format!("{pb}:")),
            None if port.host_ip.is_some() => spec.push(':'),
            None => {}
        }
        spec.push_str(&format!("{}/{}", port.target, port.protocol));
        o.publish.push(PortSpec::parse(&spec).map_err(bad)?);
    }
    for m in &s.volumes {
        let spec = mount(p, service, m)?;
        let must_exist = m.kind == "bind" && m.bind.as_ref().and_then(|b| b.create_host_path) == Some(false);
        if must_exist || m.kind == "tmpfs" {
            o.mounts.push(spec);
        } else {
            o.binds.push(spec);
        }
    }
    for t in &s.tmpfs {
        o.mounts.push(berth_engine::volumes::parse_tmpfs(t).map_err(bad)?);
    }
    for r in &s.secrets {
        let src = file_source(engine, p, service, "secret", &r.source)?;
        let target = match &r.target {
            Some(t) if t.starts_with('/') => t.clone(),
            Some(t) => format!("/run/secrets/{t}"),
            None => format!("/run/secrets/{}", r.source),
        };
        o.mounts
            .push(berth_engine::volumes::parse_volume(&format!("{src}:{target}:ro")).map_err(bad)?);
    }
    for r in &s.configs {
        let src = file_source(engine, p, service, "config", &r.source)?;
        let target = r.target.clone().unwrap_or_else(|| format!("/{}", r.source));
        o.mounts
            .push(berth_engine::volumes::parse_volume(&format!("{src}:{target}:ro")).map_err(bad)?);
    }
    for (name, l) in &s.ulimits {
        o.ulimits.push(Ulimit {
            name: name.clone(),
            soft: l.soft,
            hard: l.hard,
        });
    }
    for d in &s.devices {
        if berth_engine::cdi::is_name(d) {
            o.cdi_devices.push(d.clone());
        } else {
            o.devices
                .push(berth_engine::spec::DeviceMapping::parse(d).map_err(bad)?);
        }
    }
    let requests = device_requests(service, s)?;
    o.cdi_devices
        .extend(berth_engine::cdi::devices_for(&requests).map_err(bad)?);
    if let Some(l) = &s.logging {
        o.log = LogConfig {
            driver: l.driver.clone().unwrap_or_default(),
            opts: l.options.clone(),
        };
    }
    for (key, field) in [("ipc", &s.ipc), ("pid", &s.pid)] {
        if let Some(mode) = field {
            let mode = match mode.strip_prefix("service:") {
                Some(other) => format!("container:{}", first_container(engine, p, other)?),
                None => mode.clone(),
            };
            let m =
                NamespaceMode::parse(&mode).ok_or_else(|| invalid(service, format!("{key}: invalid mode {mode:?}")))?;
            if key == "ipc" {
                o.ipc = m;
            } else {
                o.pid = m;
            }
        }
    }
    for v in &s.volumes_from {
        let v = match v.strip_prefix("container:") {
            Some(c) => c.to_string(),
            None => {
                let (svc, mode) = v.split_once(':').unwrap_or((v.as_str(), ""));
                let c = first_container(engine, p, svc)?;
                if mode.is_empty() {
                    c
                } else {
                    format!("{c}:{mode}")
                }
            }
        };
        o.volumes_from.push(v);
    }
    match s.network_mode.as_deref() {
        Some(m) if m.starts_with("service:") => {
            let other = m.trim_start_matches("service:");
            o.network = NetworkMode::parse(&format!("container:{}", first_container(engine, p, other)?));
        }
        Some(m) => o.network = NetworkMode::parse(m),
        None => {
            if let Some((key, a)) = networks_in_order(s).into_iter().next() {
                let net = p
                    .networks
                    .get(&key)
                    .ok_or_else(|| invalid(service, format!("undefined network {key}")))?;
                o.network = NetworkMode::parse(&net.name);
                o.aliases = std::iter::once(service.to_string())
                    .chain(a.aliases.iter().cloned())
                    .collect();
                o.ip = a.ipv4_address.clone();
            }
        }
    }
    Ok(o)
}
