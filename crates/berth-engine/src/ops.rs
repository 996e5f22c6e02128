//! Container operations: create, start (through a monitor), stop, kill, remove, wait.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_image::store::ImageStore;

use crate::monitor::wait_exited;
use crate::spec;
use crate::store::{new_id, random_name, valid_name, Engine, Record, State, ZERO_TIME};
use crate::{io_err, EngineError, Result};

/// What `create`/`run` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Image reference or id.
    pub image: String,
    /// `--name`.
    pub name: Option<String>,
    /// Trailing arguments (replace the image's cmd).
    pub args: Vec<String>,
    /// `--entrypoint`.
    pub entrypoint: Option<String>,
    /// `-e`, `--env-file` (K=V).
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `--hostname`.
    pub hostname: Option<String>,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--network`: none or host.
    pub network: String,
    /// `--memory` bytes.
    pub memory: i64,
    /// `--pids-limit`.
    pub pids_limit: i64,
    /// `--read-only`.
    pub read_only: bool,
    /// `--stop-signal`.
    pub stop_signal: Option<String>,
    /// `--stop-timeout`.
    pub stop_timeout: Option<u64>,
    /// `--restart`: no, always, on-failure[:N], unless-stopped.
    pub restart: String,
    /// `-v` specs.
    pub volumes: Vec<String>,
    /// `--mount` specs.
    pub mounts: Vec<String>,
    /// `--tmpfs PATH[:OPTIONS]`.
    pub tmpfs: Vec<String>,
    /// `--health-cmd` (run with /bin/sh -c).
    pub health_cmd: Option<String>,
    /// `--health-interval`.
    pub health_interval: Option<String>,
    /// `--health-timeout`.
    pub health_timeout: Option<String>,
    /// `--health-start-period`.
    pub health_start_period: Option<String>,
    /// `--health-retries`.
    pub health_retries: Option<u32>,
    /// `--no-healthcheck`.
    pub no_healthcheck: bool,
    /// `--cgroup-parent` (default `/berth`).
    pub cgroup_parent: Option<String>,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--privileged`.
    pub privileged: bool,
    /// `--security-opt`.
    pub security_opt: Vec<String>,
    /// `--ulimit`.
    pub ulimits: Vec<String>,
    /// `--memory-reservation` bytes.
    pub memory_reservation: i64,
    /// `--memory-swap` bytes (-1 unlimited).
    pub memory_swap: i64,
    /// `--cpus`.
    pub cpus: f64,
    /// `--cpu-shares`.
    pub cpu_shares: u64,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: String,
    /// `--log-driver`.
    pub log_driver: String,
    /// `--volumes-from CONTAINER[:ro|rw]`.
    pub volumes_from: Vec<String>,
    /// `--log-opt KEY=VALUE` (max-size, max-file).
    pub log_opts: Vec<String>,
    /// `-t`.
    pub tty: bool,
    /// `--device HOST[:CONTAINER[:PERMS]]`.
    pub devices: Vec<String>,
    /// The terminal's initial size (rows, columns; 0: unknown), Docker's `ConsoleSize`.
    pub console_size: (u16, u16),
    /// `-i`.
    pub open_stdin: bool,
    /// Close stdin after the first attach ends (a foreground `run -i`).
    pub stdin_once: bool,
    /// `--init`.
    pub init: bool,
    /// `--runtime` (empty or `berth`: built in).
    pub runtime: String,
    /// `-p`.
    pub publish: Vec<String>,
    /// `-P`.
    pub publish_all: bool,
    /// `--add-host NAME:IP`.
    pub add_hosts: Vec<String>,
    /// `--dns`.
    pub dns: Vec<String>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    pub dns_options: Vec<String>,
    /// `--ip`.
    pub ip: Option<String>,
    /// `--network-alias`.
    pub aliases: Vec<String>,
}

/// `/etc/resolv.conf` for a container: the host's (less loopback resolvers, which mean
/// nothing inside a network namespace of its own) unless `--dns` and friends say otherwise.
pub(crate) fn resolv_conf(o: &CreateOptions, own_netns: bool) -> Result<String> {
    for d in &o.dns {
        d.parse::<std::net::IpAddr>()
            .map_err(|_| EngineError::Invalid(format!("{d} is not an ip address")))?;
    }
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut servers: Vec<String> = o.dns.clone();
    let mut search: Vec<String> = o.dns_search.clone();
    let mut options: Vec<String> = o.dns_options.clone();
    for l in host.lines() {
        let mut f = l.split_whitespace();
        match (f.next(), f.next()) {
            (Some("nameserver"), Some(ns))
                if o.dns.is_empty() && !(own_netns && (ns.starts_with("127.") || ns == "::1")) =>
            {
                servers.push(ns.to_string());
            }
            (Some("search"), Some(first)) if o.dns_search.is_empty() => {
                search.push(first.to_string());
                search.extend(f.map(str::to_string));
            }
            (Some("options"), Some(first)) if o.dns_options.is_empty() => {
                options.push(first.to_string());
                options.extend(f.map(str::to_string));
            }
            _ => {}
        }
    }
    let mut out = String::new();
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !search.is_empty() && search != ["."] {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    Ok(out)
}

/// `--log-opt` for json-file: max-size and max-file, checked as Docker does.
fn parse_log_opts(opts: &[String], driver: &str) -> Result<(u64, u32)> {
    let (mut size, mut files) = (0u64, 0u32);
    for o in opts {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| EngineError::Invalid(format!("invalid key value pair format in logging opts: {o}")))?;
        if driver == "none" {
            return Err(EngineError::Invalid(format!(
                "unknown log opt '{k}' for none log driver"
            )));
        }
        match k {
            "max-size" => {
                let n = spec::parse_size(v)
                    .map_err(|e| EngineError::Invalid(format!("invalid log opt max-size {v:?}: {e}")))?;
                size = u64::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
                    EngineError::Invalid(format!("invalid log opt max-size {v:?}: must be a positive size"))
                })?;
            }
            "max-file" => {
                files = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| EngineError::Invalid("max-file cannot be less than 1".to_string()))?;
            }
            "compress" if v == "false" => {}
            "labels" | "env" | "env-regex" | "tag" => {}
            _ => {
                return Err(EngineError::Invalid(format!(
                    "unknown log opt '{k}' for json-file log driver"
                )))
            }
        }
    }
    Ok((size, files))
}

/// `--ulimit name=soft[:hard]`.
fn parse_ulimit(s: &str) -> Result<(String, u64, u64)> {
    let bad = || EngineError::Invalid(format!("invalid ulimit argument: {s}"));
    let (name, v) = s.split_once('=').ok_or_else(bad)?;
    const KNOWN: [&str; 15] = [
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ];
    if !KNOWN.contains(&name) {
        return Err(EngineError::Invalid(format!("invalid ulimit type: {name}")));
    }
    let (soft, hard) = v.split_once(':').unwrap_or((v, v));
    let parse = |x: &str| -> Result<u64> {
        if x == "-1" || x == "unlimited" {
            Ok(u64::MAX)
        } else {
            x.parse().map_err(|_| bad())
        }
    };
    let (soft, hard) = (parse(soft)?, parse(hard)?);
    if soft > hard {
        return Err(EngineError::Invalid(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        )));
    }
    let name = if name == "nofile" {
        "nofile".to_string()
    } else {
        name.to_string()
    };
    Ok((name, soft, hard))
}

/// The health check: the image's `Healthcheck`, overridden field by field by the flags.
fn health_config(image: Option<&serde_json::Value>, o: &CreateOptions) -> Result<Option<crate::health::HealthConfig>> {
    use crate::health::{parse_duration, HealthConfig};
    use std::time::Duration;
    if o.no_healthcheck {
        return Ok(None);
    }
    let ns = |v: Option<&serde_json::Value>| v.and_then(|x| x.as_u64()).filter(|n| *n > 0).map(Duration::from_nanos);
    let mut cfg = HealthConfig {
        test: image.and_then(|h| str_list(h.get("Test"))).unwrap_or_default(),
        interval: ns(image.and_then(|h| h.get("Interval"))).unwrap_or(Duration::from_secs(30)),
        timeout: ns(image.and_then(|h| h.get("Timeout"))).unwrap_or(Duration::from_secs(30)),
        start_period: ns(image.and_then(|h| h.get("StartPeriod"))).unwrap_or(Duration::ZERO),
        retries: image
            .and_then(|h| h.get("Retries"))
            .and_then(|r| r.as_u64())
            .and_then(|r| u32::try_from(r).ok())
            .filter(|r| *r > 0)
            .unwrap_or(3),
    };
    if let Some(c) = &o.health_cmd {
        cfg.test = vec!["CMD-SHELL".into(), c.clone()];
    }
    let dur = |flag: &str, v: &Option<String>| -> Result<Option<Duration>> {
        v.as_deref()
            .map(|s| {
                parse_duration(s).ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "invalid argument \"{s}\" for \"--{flag}\" flag: invalid duration"
                    ))
                })
            })
            .transpose()
    };
    if let Some(d) = dur("health-interval", &o.health_interval)? {
        cfg.interval = d;
    }
    if let Some(d) = dur("health-timeout", &o.health_timeout)? {
        cfg.timeout = d;
    }
    if let Some(d) = dur("health-start-period", &o.health_start_period)? {
        cfg.start_period = d;
    }
    if let Some(r) = o.health_retries {
        cfg.retries = r;
    }
    Ok(cfg.argv().map(|_| cfg))
}

fn str_list(v: Option<&serde_json::Value>) -> Option<Vec<String>> {
    v.and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
}

/// The limits Docker refuses before it looks at anything else (so before the image).
pub fn check_limits(o: &CreateOptions) -> Result<()> {
    if o.memory > 0 && o.memory < MIN_MEMORY {
        return Err(EngineError::Invalid("Minimum memory limit allowed is 6MB".into()));
    }
    if o.memory_reservation > 0 && o.memory_reservation < MIN_MEMORY {
        return Err(EngineError::Invalid("Minimum memory reservation allowed is 6MB".into()));
    }
    Ok(())
}

/// Creates a container from an image in the store.
pub fn create(engine: &Engine, images: &mut ImageStore, o: &CreateOptions) -> Result<Record> {
    check_limits(o)?;
    let img = images.resolve(&o.image)?;
    let cfg = images.config(&img)?;
    let c = cfg.config.clone().unwrap_or_default();
    let (entrypoint, cmd, full) = spec::command(
        str_list(c.get("Entrypoint")),
        str_list(c.get("Cmd")),
        o.entrypoint.as_deref(),
        &o.args,
    )?;
    let network = match o.network.as_str() {
        "" | "default" | "bridge" => crate::networks::DEFAULT.to_string(),
        "none" | "host" => o.network.clone(),
        n if n.starts_with("container:") => {
            let other = engine.resolve(&n["container:".len()..])?;
            format!("container:{}", other.id)
        }
        n => crate::networks::get(engine, n)?.name,
    };
    if let Some(ip) = &o.ip {
        if network == crate::networks::DEFAULT
            || network == "none"
            || network == "host"
            || network.starts_with("container:")
        {
            return Err(EngineError::Invalid(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        let want: std::net::Ipv4Addr = ip
            .parse()
            .map_err(|_| EngineError::Invalid(format!("invalid IPv4 address: {ip}")))?;
        let n = crate::networks::get(engine, &network)?;
        if !berth_net::ipam::Subnet::parse(&n.subnet).is_ok_and(|s| s.contains(want)) {
            return Err(EngineError::Invalid(format!(
                "no configured subnet contains IP address {ip}"
            )));
        }
    }
    if !o.aliases.is_empty()
        && (network == crate::networks::DEFAULT
            || network == "none"
            || network == "host"
            || network.starts_with("container:"))
    {
        return Err(EngineError::Invalid(
            "network-scoped aliases are only supported for user-defined networks".into(),
        ));
    }
    let mut extra_hosts = Vec::new();
    for h in &o.add_hosts {
        let (name, ip) = h
            .split_once([':', '='])
            .filter(|(n, ip)| !n.is_empty() && (ip.parse::<std::net::IpAddr>().is_ok() || *ip == "host-gateway"))
            .ok_or_else(|| {
                EngineError::Invalid(format!(
                    "invalid argument \"{h}\" for \"--add-host\" flag: invalid IP address"
                ))
            })?;
        extra_hosts.push((name.to_string(), ip.to_string()));
    }
    if network.starts_with("container:") && (!o.publish.is_empty() || o.publish_all) {
        return Err(EngineError::Invalid(
            "conflicting options: port publishing and the container type network mode".into(),
        ));
    }
    if network == "none" || network == "host" {
        if !o.publish.is_empty() || o.publish_all {
            // Docker ignores published ports there (with a warning); so does berth.
            eprintln!("WARNING: Published ports are discarded when using {network} network mode");
        }
    } else {
        for p in &o.publish {
            crate::networks::parse_publish(p)?;
        }
    }
    let (restart, restart_max) = parse_restart(&o.restart)?;
    if restart != "no" && o.auto_remove {
        return Err(EngineError::Invalid("Conflicting options: --restart and --rm".into()));
    }
    let id = new_id()?;
    // Mounts: -v, --mount, --tmpfs, then the image's VOLUMEs not covered by them.
    let mut anonymous = Vec::new();
    let anon = || new_id().unwrap_or_else(|_| id.clone());
    let mut mounts = Vec::new();
    for v in &o.volumes {
        mounts.push(crate::volumes::parse_volume(v, &anon)?);
    }
    for m in &o.mounts {
        mounts.push(crate::volumes::parse_mount(m, &anon)?);
    }
    for t in &o.tmpfs {
        let (dst, opts) = t.split_once(':').unwrap_or((t.as_str(), ""));
        if !dst.starts_with('/') {
            return Err(EngineError::Invalid(format!(
                "invalid tmpfs mount path: '{dst}' must be absolute"
            )));
        }
        mounts.push(crate::volumes::MountSpec {
            kind: "tmpfs".into(),
            source: String::new(),
            destination: dst.to_string(),
            read_only: false,
            options: opts.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect(),
        });
    }
    for vf in &o.volumes_from {
        let (name, mode) = match vf.rsplit_once(':') {
            Some((n, m @ ("ro" | "rw"))) => (n, Some(m)),
            _ => (vf.as_str(), None),
        };
        let other = engine.resolve(name)?;
        for m in other.mounts.iter().filter(|m| m.kind != "tmpfs") {
            if mounts
                .iter()
                .any(|x: &crate::volumes::MountSpec| x.destination == m.destination)
            {
                continue;
            }
            let mut m = m.clone();
            if let Some(mode) = mode {
                m.read_only = mode == "ro";
            }
            mounts.push(m);
        }
    }
    if let Some(vols) = c.get("Volumes").and_then(|v| v.as_object()) {
        for path in vols.keys() {
            if !mounts.iter().any(|m| &m.destination == path) {
                mounts.push(crate::volumes::MountSpec {
                    kind: "volume".into(),
                    source: anon(),
                    destination: path.clone(),
                    read_only: false,
                    options: Vec::new(),
                });
            }
        }
    }
    let inherited: Vec<String> = o
        .volumes_from
        .iter()
        .filter_map(|vf| engine.resolve(vf.rsplit_once(':').map(|(n, _)| n).unwrap_or(vf)).ok())
        .flat_map(|r| r.mounts.into_iter().map(|m| m.source))
        .collect();
    for m in &mounts {
        if m.kind == "volume"
            && m.source.len() == 64
            && m.source.bytes().all(|b| b.is_ascii_hexdigit())
            && !inherited.contains(&m.source)
        {
            anonymous.push(m.source.clone());
        }
    }
    let generated = o.name.is_none();
    let name = match &o.name {
        Some(n) => {
            if !valid_name(n) {
                return Err(EngineError::Invalid(format!(
                    "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )));
            }
            n.trim_start_matches('/').to_string()
        }
        None => {
            let n = random_name(&id);
            if engine.name_taken(&n)? {
                format!("{n}_{}", &id[..6])
            } else {
                n
            }
        }
    };
    // Docker: a container on the host's network is named as the host, unless told otherwise.
    let hostname = match o.hostname.clone().filter(|h| !h.is_empty()) {
        Some(h) => h,
        None if network == "host" => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| id[..12].to_string()),
        None => id[..12].to_string(),
    };
    let mut env = spec::merge_env(&str_list(c.get("Env")).unwrap_or_default(), &o.env);
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, spec::DEFAULT_PATH.to_string());
    }
    env = spec::merge_env(&[format!("HOSTNAME={hostname}")], &env);
    if o.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let mut labels: BTreeMap<String, String> = c
        .get("Labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    labels.extend(o.labels.clone());
    let r = Record {
        id: id.clone(),
        name,
        image_id: img.row.id.clone(),
        image_name: o.image.clone(),
        created: berth_image::store::now(),
        path: full[0].clone(),
        args: full[1..].to_vec(),
        entrypoint,
        cmd,
        env,
        working_dir: o
            .workdir
            .clone()
            .or_else(|| c.get("WorkingDir").and_then(|v| v.as_str()).map(str::to_string))
            .unwrap_or_default(),
        user: o
            .user
            .clone()
            .or_else(|| c.get("User").and_then(|v| v.as_str()).map(str::to_string))
            .unwrap_or_default(),
        hostname,
        labels,
        stop_signal: o
            .stop_signal
            .clone()
            .or_else(|| c.get("StopSignal").and_then(|v| v.as_str()).map(str::to_string))
            .unwrap_or_else(|| "SIGTERM".into()),
        stop_timeout: o.stop_timeout.unwrap_or(10),
        auto_remove: o.auto_remove,
        network_mode: network,
        memory: o.memory,
        pids_limit: o.pids_limit,
        read_only: o.read_only,
        restart,
        restart_max,
        mounts,
        anonymous_volumes: anonymous,
        health: health_config(c.get("Healthcheck"), o)?,
        cap_add: o.cap_add.iter().map(|c| spec::cap_name(c)).collect::<Result<_>>()?,
        cap_drop: o.cap_drop.iter().map(|c| spec::cap_name(c)).collect::<Result<_>>()?,
        privileged: o.privileged,
        seccomp: {
            let mut p = String::new();
            for so in &o.security_opt {
                match so.split_once(['=', ':']) {
                    Some(("seccomp", "unconfined")) => p = "unconfined".into(),
                    Some(("seccomp", file)) => {
                        p = std::fs::read_to_string(file).map_err(|e| {
                            EngineError::Invalid(format!("opening seccomp profile ({file}) failed: {e}"))
                        })?;
                    }
                    Some(("no-new-privileges", _)) | None if so.starts_with("no-new-privileges") => {}
                    Some(("label" | "apparmor", _)) => {}
                    _ => return Err(EngineError::Invalid(format!("invalid --security-opt: {so:?}"))),
                }
            }
            p
        },
        no_new_privileges: o
            .security_opt
            .iter()
            .any(|s| s == "no-new-privileges" || s == "no-new-privileges:true" || s == "no-new-privileges=true"),
        ulimits: o.ulimits.iter().map(|u| parse_ulimit(u)).collect::<Result<_>>()?,
        memory_reservation: o.memory_reservation,
        memory_swap: {
            if o.memory_swap > 0 && o.memory > 0 && o.memory_swap < o.memory {
                return Err(EngineError::Invalid(
                    "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
                ));
            }
            if o.memory_swap > 0 && o.memory == 0 {
                return Err(EngineError::Invalid(
                    "You should always set the Memory limit when using Memoryswap limit, see usage".into(),
                ));
            }
            o.memory_swap
        },
        cpu_quota: {
            spec::check_cpus(o.cpus)?;
            #[allow(clippy::cast_possible_truncation)]
            let q = (o.cpus * 100_000.0) as i64;
            q
        },
        cpu_shares: o.cpu_shares,
        cpuset_cpus: o.cpuset_cpus.clone(),
        log_driver: match o.log_driver.as_str() {
            "" | "json-file" | "local" => "json-file".into(),
            "none" => "none".into(),
            other => {
                return Err(EngineError::Invalid(format!(
                    "failed to create container: log driver {other:?} is not supported (json-file, none)"
                )))
            }
        },
        log_max_size: parse_log_opts(&o.log_opts, &o.log_driver)?.0,
        log_max_file: parse_log_opts(&o.log_opts, &o.log_driver)?.1,
        tty: o.tty,
        console_size: o.console_size,
        devices: o
            .devices
            .iter()
            .map(|d| spec::DeviceMapping::parse(d))
            .collect::<Result<Vec<_>>>()?,
        open_stdin: o.open_stdin,
        stdin_once: o.open_stdin && o.stdin_once,
        init: o.init,
        runtime: crate::runtimes::check_name(&o.runtime)?,
        exposed_ports: c
            .get("ExposedPorts")
            .and_then(|v| v.as_object())
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
        publish: o.publish.clone(),
        publish_all: o.publish_all,
        extra_hosts,
        ip: o.ip.clone().unwrap_or_default(),
        aliases: o.aliases.clone(),
        image_volumes: c
            .get("Volumes")
            .and_then(|v| v.as_object())
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
        cgroup_parent: match &o.cgroup_parent {
            Some(p) if p.split('/').any(|c| c == ".." || c == ".") => {
                return Err(EngineError::Invalid(format!("invalid --cgroup-parent {p:?}")))
            }
            Some(p) => format!("/{}", p.trim_matches('/')),
            None => "/berth".to_string(),
        },
    };
    berth_runtime::container::parse_signal(&r.stop_signal)
        .map_err(|e| EngineError::Invalid(format!("invalid stop signal: {e}")))?;
    let mut r = r;
    match engine.insert(&r) {
        // A generated name taken between the check and the insert (a concurrent create):
        // the id's suffix makes it unique.
        Err(EngineError::Conflict(_)) if generated => {
            r.name = format!("{}_{}", random_name(&id), &id[..12]);
            engine.insert(&r)?;
        }
        other => other?,
    }
    let made = (|| -> Result<()> {
        let dir = engine.dir(&id);
        berth_image::perms::make_dir(&dir).map_err(io_err("creating", &dir))?;
        for d in ["fs/upper", "fs/work", "rootfs"] {
            std::fs::create_dir_all(dir.join(d)).map_err(io_err("creating", dir.join(d)))?;
        }
        let write =
            |name: &str, data: String| std::fs::write(dir.join(name), data).map_err(io_err("writing", dir.join(name)));
        // The log exists from the start, so a foreground `run` can hold it open before the
        // container (and, with --rm, its directory) is gone.
        write_mode(&dir.join("json.log"), b"", berth_image::perms::LOG)?;
        write("hostname", format!("{}\n", r.hostname))?;
        write("hosts", crate::networks::hosts_file(&r, None))?;
        write("resolv.conf", resolv_conf(o, r.network_mode != "host")?)?;
        let lowers = images.lowers(&img)?;
        for m in &r.mounts {
            match m.kind.as_str() {
                // A new volume gets the image's content at its mount point (copy-up).
                "volume" if crate::volumes::create(engine, &m.source)? => {
                    crate::volumes::copy_up(&lowers, &m.destination, &crate::volumes::data_dir(engine, &m.source))?;
                }
                "bind" if !Path::new(&m.source).exists() => {
                    std::fs::create_dir_all(&m.source).map_err(io_err("creating", &m.source))?;
                }
                _ => {}
            }
        }
        let spec = spec::oci_spec(&r, &dir.join("rootfs"), &dir, &lowers, &engine.root)?;
        // It holds the environment (`-e` secrets): root's alone.
        write_mode(
            &dir.join("config.json"),
            serde_json::to_string_pretty(&spec)
                .map_err(|e| EngineError::Invalid(e.to_string()))?
                .as_bytes(),
            berth_image::perms::PRIVATE,
        )?;
        images.set_user(&img.row.id, &id, true)?;
        engine.save_state(
            &id,
            &State {
                status: "created".into(),
                started_at: ZERO_TIME.into(),
                finished_at: ZERO_TIME.into(),
                ..State::default()
            },
        )
    })();
    if let Err(e) = made {
        let _ = remove_files(engine, &r);
        return Err(e);
    }
    crate::events::container(engine, &r, "create", &[]);
    Ok(r)
}

/// Mounts the image layers + the container's upper dir on `rootfs`.
pub fn mount_rootfs(engine: &Engine, r: &Record) -> Result<()> {
    // Volumes with driver options get their mount back (after a reboot) before the
    // container binds them.
    for m in r.mounts.iter().filter(|m| m.kind == "volume") {
        crate::volumes::ensure_mounted(engine, &m.source)?;
    }
    let images = ImageStore::open(&engine.root)?;
    let img = images.image(&r.image_id)?;
    let lowers = images.lowers(&img)?;
    let dir = engine.dir(&r.id);
    unmount_rootfs(engine, &r.id);
    berth_image::snapshot::mount_overlay(
        &dir.join("rootfs"),
        &lowers,
        Some((&dir.join("fs/upper"), &dir.join("fs/work"))),
    )?;
    Ok(())
}

/// Unmounts the rootfs (no error when it is not mounted).
pub fn unmount_rootfs(engine: &Engine, id: &str) {
    let p = engine.dir(id).join("rootfs");
    while nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH).is_ok() {}
}

/// Removes everything of a container: mount, runtime state, directory, row, image use, and
/// its anonymous volumes when asked (`rm -v`, `--rm`).
pub fn remove_files_and_volumes(engine: &Engine, r: &Record, volumes: bool) -> Result<()> {
    remove_files(engine, r)?;
    if volumes {
        for v in &r.anonymous_volumes {
            let _ = crate::volumes::remove(engine, v);
        }
    }
    Ok(())
}

/// Removes everything of a container: mount, runtime state, directory, row, image use.
pub fn remove_files(engine: &Engine, r: &Record) -> Result<()> {
    if let Ok(rt) = engine.rt(r) {
        let _ = rt.delete(&r.id, true);
    }
    crate::networks::detach(engine, r, engine.state(&r.id).net.as_ref());
    crate::networks::forget(engine, &r.id);
    unmount_rootfs(engine, &r.id);
    let dir = engine.dir(&r.id);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err("removing", &dir)(e)),
        _ => {}
    }
    engine.delete_row(&r.id)?;
    let mut images = ImageStore::open(&engine.root)?;
    images.set_user(&r.image_id, &r.id, false)?;
    Ok(())
}

/// Starts a created or exited container: spawns its monitor (`exe _monitor`) and waits
/// until the container runs, or reports why it could not start (with Docker's exit code).
pub fn start(engine: &Engine, id: &str, exe: &Path) -> Result<()> {
    start_attached(engine, id, exe, None).map(|_| ())
}

/// [`start`], attached: the monitor waits for this client before it starts the container,
/// and the connection carries the container's stdio (see [`crate::attach`]). `None` when
/// the container was already running.
pub fn start_attached(
    engine: &Engine,
    id: &str,
    exe: &Path,
    hello: Option<&crate::attach::Hello>,
) -> Result<Option<std::os::unix::net::UnixStream>> {
    let started = start_monitor(engine, id, exe, hello);
    // As Docker's daemon: a container made with `--rm` goes when its start fails (clients
    // waiting for its removal would otherwise wait forever).
    if started.is_err() {
        if let Ok(r) = engine.resolve(id) {
            if r.auto_remove {
                let _ = remove(engine, &r.id, true, true);
            }
        }
    }
    started
}

/// [`start_attached`] without the `--rm` cleanup.
fn start_monitor(
    engine: &Engine,
    id: &str,
    exe: &Path,
    hello: Option<&crate::attach::Hello>,
) -> Result<Option<std::os::unix::net::UnixStream>> {
    let r = engine.resolve(id)?;
    let st = engine.state(&r.id);
    if st.running() {
        return Ok(None);
    }
    let dir = engine.dir(&r.id);
    let _ = std::fs::remove_file(dir.join("stopped"));
    let _ = std::fs::remove_file(dir.join(crate::attach::SOCKET));
    // A new container's state already reads "created" without an error: rewriting it would
    // only cost a file (an inode) per start.
    if st.status != "created" || !st.error.is_empty() {
        let mut fresh = st.clone();
        fresh.status = "created".into();
        fresh.error.clear();
        engine.save_state(&r.id, &fresh)?;
    }
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--root").arg(&engine.root).arg("_monitor").arg(&r.id);
    if hello.is_some() {
        cmd.arg("--attach");
    }
    // The monitor reports on a pipe (its fd 3) when it listens and when the container
    // started, so this waits on the pipe instead of polling the state.
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| EngineError::Invalid(format!("pipe: {e}")))?;
    let w = std::os::fd::AsRawFd::as_raw_fd(&ready_w);
    // SAFETY: between fork and exec only dup2 and fcntl, which are async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            // dup2 onto itself would keep close-on-exec: clear it then.
            let ok = if w == 3 {
                libc::fcntl(3, libc::F_SETFD, 0) >= 0
            } else {
                libc::dup2(w, 3) >= 0
            };
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    cmd.arg("--ready-fd").arg("3");
    let status = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(io_err("starting the monitor", exe))?;
    drop(ready_w);
    if !status.success() {
        return Err(EngineError::Invalid(format!("monitor for {} failed to start", r.id)));
    }
    let mut ready = std::fs::File::from(ready_r);
    let mut listening = false;
    let mut pipe_open = true;
    // The monitor said the container runs: it may be gone again by now (`--rm` of a
    // command that ends at once), so the state file no longer has the last word.
    let mut started = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stream = None;
    loop {
        // Until the monitor says it started the container (or goes away), wait on its pipe;
        // a client to attach connects once it listens.
        while pipe_open && !(listening && hello.is_some() && stream.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut fds = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&ready),
                nix::poll::PollFlags::POLLIN,
            )];
            let timeout = nix::poll::PollTimeout::try_from(left).unwrap_or(nix::poll::PollTimeout::MAX);
            match nix::poll::poll(&mut fds, timeout) {
                Ok(0) => break,
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => pipe_open = false,
            }
            let mut b = [0u8; 1];
            match std::io::Read::read(&mut ready, &mut b) {
                Ok(1) if b[0] == crate::monitor::READY_LISTENING => listening = true,
                Ok(1) if b[0] == crate::monitor::READY_STARTED => {
                    started = true;
                    pipe_open = false;
                }
                Ok(1) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Ok(_) | Err(_) => pipe_open = false,
            }
        }
        if let (Some(h), None) = (hello, &stream) {
            if dir.join(crate::attach::SOCKET).exists() {
                stream = crate::attach::connect(&dir, h).ok();
            }
        }
        let st = engine.state(&r.id);
        if !started && !st.error.is_empty() {
            return Err(EngineError::Start {
                code: st.exit_code,
                message: st.error,
            });
        }
        if (started || st.status == "running" || st.status == "exited") && (hello.is_none() || stream.is_some()) {
            crate::events::container(engine, &r, "start", &[]);
            return Ok(stream);
        }
        let err_file = dir.join("monitor.err");
        if let Ok(m) = std::fs::read_to_string(&err_file) {
            return Err(EngineError::Start { code: 125, message: m });
        }
        if Instant::now() > deadline {
            return Err(EngineError::Invalid(format!(
                "container {} did not start in time",
                r.id
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Sends a signal to a running container.
pub fn kill(engine: &Engine, id: &str, signal: &str) -> Result<()> {
    let r = engine.resolve(id)?;
    let st = engine.state(&r.id);
    if !st.running() {
        return Err(EngineError::Conflict(format!(
            "cannot kill container: {}: container {} is not running",
            r.name, r.id
        )));
    }
    let sig = berth_runtime::container::parse_signal(signal)
        .map_err(|e| EngineError::Invalid(format!("invalid signal: {e}")))?;
    mark_stopped(engine, &r.id);
    engine.rt(&r)?.kill(&r.id, sig, false)?;
    crate::events::container(engine, &r, "kill", &[("signal", sig.to_string())]);
    Ok(())
}

/// Passes a signal on to a running container (a foreground client's `--sig-proxy`): unlike
/// [`kill`], the restart policy still applies afterwards.
pub fn signal(engine: &Engine, id: &str, signal: &str) -> Result<()> {
    let r = engine.resolve(id)?;
    let sig = berth_runtime::container::parse_signal(signal)
        .map_err(|e| EngineError::Invalid(format!("invalid signal: {e}")))?;
    if engine.state(&r.id).running() {
        engine.rt(&r)?.kill(&r.id, sig, false)?;
    }
    Ok(())
}

/// Tells the monitor the user stopped the container: no restart policy brings it back.
fn mark_stopped(engine: &Engine, id: &str) {
    let _ = std::fs::write(engine.dir(id).join("stopped"), b"");
}

/// Stops a container: its stop signal, then SIGKILL after `timeout`.
pub fn stop(engine: &Engine, id: &str, timeout: Option<u64>, signal: Option<&str>) -> Result<()> {
    let r = engine.resolve(id)?;
    let st = engine.state(&r.id);
    if st.status == "restarting" {
        mark_stopped(engine, &r.id);
        wait_exited(engine, &r.id, Duration::from_secs(5));
        return Ok(());
    }
    if !st.running() {
        return Ok(());
    }
    let t = timeout.unwrap_or(r.stop_timeout);
    let _ = kill(engine, &r.id, signal.unwrap_or(&r.stop_signal));
    let st = wait_exited(engine, &r.id, Duration::from_secs(t));
    if st.running() {
        let _ = kill(engine, &r.id, "SIGKILL");
        wait_exited(engine, &r.id, Duration::from_secs(30));
    }
    Ok(())
}

/// Removes a container; a running one only with `force` (killed first); with `volumes`
/// its anonymous volumes too.
pub fn remove(engine: &Engine, id: &str, force: bool, volumes: bool) -> Result<Record> {
    let r = engine.resolve(id)?;
    let st = engine.state(&r.id);
    if st.status == "restarting" {
        if !force {
            return Err(EngineError::Conflict(format!(
                "cannot remove container \"/{}\": container is restarting: stop the container before removing or force remove",
                r.name
            )));
        }
        mark_stopped(engine, &r.id);
        wait_exited(engine, &r.id, Duration::from_secs(5));
    }
    if engine.state(&r.id).running() {
        if !force {
            return Err(EngineError::Conflict(format!(
                "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                r.name
            )));
        }
        let _ = kill(engine, &r.id, "SIGKILL");
        wait_exited(engine, &r.id, Duration::from_secs(30));
    }
    remove_files_and_volumes(engine, &r, volumes)?;
    crate::events::container(engine, &r, "destroy", &[]);
    Ok(r)
}

/// Waits until the container is not running; returns its exit code.
pub fn wait(engine: &Engine, id: &str) -> Result<i32> {
    let r = engine.resolve(id)?;
    loop {
        let st = engine.state(&r.id);
        if !st.running() {
            return Ok(st.exit_code);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Renames a container (`rename OLD NEW`).
pub fn rename(engine: &Engine, id: &str, new: &str) -> Result<()> {
    let r = engine.resolve(id)?;
    let new = new.trim_start_matches('/');
    if !valid_name(new) {
        return Err(EngineError::Invalid(format!(
            "Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    if r.name == new {
        return Err(EngineError::Invalid(
            "Renaming a container with the same name as its current name".into(),
        ));
    }
    if engine.name_taken(new)? {
        return Err(EngineError::Conflict(format!(
            "Conflict. The container name \"/{new}\" is already in use. You have to remove (or rename) that container to be able to reuse that name."
        )));
    }
    engine.rename(&r.id, new)?;
    let mut renamed = r.clone();
    renamed.name = new.to_string();
    crate::events::container(engine, &renamed, "rename", &[("oldName", format!("/{}", r.name))]);
    Ok(())
}

/// Freezes or thaws a running container.
pub fn set_paused(engine: &Engine, id: &str, paused: bool) -> Result<()> {
    let r = engine.resolve(id)?;
    if !engine.state(&r.id).running() {
        return Err(EngineError::Conflict(format!("container {} is not running", r.id)));
    }
    let rt = engine.rt(&r)?;
    let frozen = is_paused(engine, &r.id);
    if paused && frozen {
        return Err(EngineError::Conflict(format!("container {} is already paused", r.id)));
    }
    if !paused && !frozen {
        return Err(EngineError::Conflict(format!("container {} is not paused", r.id)));
    }
    rt.set_paused(&r.id, paused)?;
    crate::events::container(engine, &r, if paused { "pause" } else { "unpause" }, &[]);
    Ok(())
}

/// Whether the runtime reports the container frozen.
pub fn is_paused(engine: &Engine, id: &str) -> bool {
    match engine.resolve(id) {
        Ok(r) => engine.rt(&r).is_ok_and(|rt| rt.is_paused(&r.id, &engine.dir(&r.id))),
        Err(_) => false,
    }
}

/// The host pids of a running container's processes.
pub fn pids(engine: &Engine, id: &str) -> Result<Vec<i32>> {
    let r = engine.resolve(id)?;
    if !engine.state(&r.id).running() {
        return Err(EngineError::Conflict(format!("container {} is not running", r.id)));
    }
    engine.rt(&r)?.pids(&r.id, &engine.dir(&r.id))
}

/// Removes every container that is not running; returns their ids.
pub fn prune(engine: &Engine) -> Result<Vec<String>> {
    prune_matching(engine, &|_| true)
}

/// Removes the stopped containers `selected` picks (`container prune --filter`).
pub fn prune_matching(engine: &Engine, selected: &dyn Fn(&Record) -> bool) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for r in engine.all()? {
        if !engine.state(&r.id).running() && selected(&r) {
            remove_files(engine, &r)?;
            out.push(r.id);
        }
    }
    Ok(out)
}

/// A `--restart` policy: its name and retry count.
pub fn parse_restart(p: &str) -> Result<(String, u32)> {
    match p {
        "" | "no" => Ok(("no".to_string(), 0)),
        "always" | "unless-stopped" | "on-failure" => Ok((p.to_string(), 0)),
        _ => match p.strip_prefix("on-failure:").map(str::parse::<u32>) {
            Some(Ok(n)) => Ok(("on-failure".to_string(), n)),
            _ => Err(EngineError::Invalid(format!("invalid restart policy {p:?}"))),
        },
    }
}

/// What `update` changes; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct Update {
    /// Memory limit in bytes (0: none).
    pub memory: Option<i64>,
    /// Memory soft limit in bytes.
    pub memory_reservation: Option<i64>,
    /// Memory plus swap in bytes (-1: unlimited).
    pub memory_swap: Option<i64>,
    /// CFS quota in µs per 100 ms period (`--cpus` × 100000; 0: none).
    pub cpu_quota: Option<i64>,
    /// CPU shares.
    pub cpu_shares: Option<u64>,
    /// CPUs the container may use (`0-1`).
    pub cpuset_cpus: Option<String>,
    /// Process limit (0 or less: none).
    pub pids_limit: Option<i64>,
    /// Restart policy and its retry count.
    pub restart: Option<(String, u32)>,
}

/// Docker's smallest memory limit.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// `update`: new limits (or restart policy) for a container. They are kept in its record
/// and bundle, so they last across restarts, and applied to its cgroup when it runs.
pub fn update(engine: &Engine, id: &str, u: &Update) -> Result<()> {
    let mut r = engine.resolve(id)?;
    if let Some(m) = u.memory {
        if m != 0 && m < MIN_MEMORY {
            return Err(EngineError::Invalid("Minimum memory limit allowed is 6MB".into()));
        }
        r.memory = m.max(0);
    }
    if let Some(m) = u.memory_reservation {
        if m != 0 && m < MIN_MEMORY {
            return Err(EngineError::Invalid("Minimum memory reservation allowed is 6MB".into()));
        }
        r.memory_reservation = m.max(0);
    }
    if let Some(s) = u.memory_swap {
        r.memory_swap = s;
    }
    if r.memory_swap > 0 && (r.memory == 0 || r.memory_swap < r.memory) {
        return Err(EngineError::Invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
        ));
    }
    if r.memory > 0 && r.memory_reservation > r.memory {
        return Err(EngineError::Invalid(
            "Minimum memory limit can not be less than memory reservation limit, see usage".into(),
        ));
    }
    if let Some(q) = u.cpu_quota {
        if q != 0 && q < 1000 {
            return Err(EngineError::Invalid(
                "CPU cfs quota can not be less than 1ms (i.e. 1000)".into(),
            ));
        }
        r.cpu_quota = q.max(0);
    }
    if let Some(s) = u.cpu_shares {
        r.cpu_shares = s;
    }
    if let Some(c) = &u.cpuset_cpus {
        r.cpuset_cpus = c.clone();
    }
    if let Some(p) = u.pids_limit {
        r.pids_limit = p.max(0);
    }
    if let Some((name, max)) = &u.restart {
        if r.auto_remove && name != "no" && !name.is_empty() {
            return Err(EngineError::Invalid(
                "Restart policy cannot be updated because AutoRemove is enabled for the container".into(),
            ));
        }
        if !matches!(name.as_str(), "" | "no" | "always" | "on-failure" | "unless-stopped") {
            return Err(EngineError::Invalid(format!("invalid restart policy '{name}'")));
        }
        r.restart = if name.is_empty() { "no".into() } else { name.clone() };
        r.restart_max = *max;
    }
    let resources = spec::resources(&r);
    let bundle = engine.dir(&r.id);
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value = std::fs::read(&cfg_path)
        .map_err(io_err("reading", &cfg_path))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| EngineError::Invalid(format!("config.json: {e}"))))?;
    cfg["linux"]["resources"] = resources.clone();
    if engine.state(&r.id).running() {
        let mut live = resources;
        if let Some(o) = live.as_object_mut() {
            o.remove("devices");
        }
        // Cleared limits are written as "unlimited", which the runtime applies as such.
        if r.memory == 0 {
            live["memory"]["limit"] = serde_json::json!(-1);
        }
        if r.pids_limit == 0 {
            live["pids"] = serde_json::json!({"limit": -1});
        }
        if r.cpu_quota == 0 {
            live["cpu"]["quota"] = serde_json::json!(-1);
        }
        let res: berth_oci::oci_spec::runtime::LinuxResources =
            serde_json::from_value(live).map_err(|e| EngineError::Invalid(format!("resources: {e}")))?;
        engine.rt(&r)?.update(&r.id, &bundle, &res)?;
    }
    let tmp = bundle.join("config.json.tmp");
    let _ = std::fs::remove_file(&tmp);
    write_mode(
        &tmp,
        serde_json::to_string_pretty(&cfg)
            .map_err(|e| EngineError::Invalid(e.to_string()))?
            .as_bytes(),
        berth_image::perms::PRIVATE,
    )?;
    std::fs::rename(&tmp, &cfg_path).map_err(io_err("writing", &cfg_path))?;
    engine.save_record(&r)?;
    crate::events::container(engine, &r, "update", &[]);
    Ok(())
}

/// Writes `data` to a new (or truncated) file created with `mode`, whatever the umask.
pub(crate) fn write_mode(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io_err("writing", path))?;
    berth_image::perms::set(path, mode).map_err(io_err("securing", path))?;
    f.write_all(data).map_err(io_err("writing", path))
}
