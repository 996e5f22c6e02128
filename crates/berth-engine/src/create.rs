//! Creating a container: Docker's options (`CreateOptions`), checked and merged with the
//! image's config into a record, its directory and its OCI bundle.

use std::collections::BTreeMap;
use std::path::Path;

use berth_image::store::ImageStore;

use crate::model::{DeviceMapping, MountSpec};
use crate::ops::{remove_files, write_mode, MIN_MEMORY};
use crate::options::{HealthOptions, LogConfig, NamespaceMode, NetworkMode, PortSpec, RestartPolicy, Ulimit};
use crate::spec;
use crate::store::{new_id, random_name, valid_name, Engine, Record, State, ZERO_TIME};
use crate::{io_err, EngineError, Result};

/// What `create`/`run` asks for, typed: each front end makes it from its own syntax, and
/// `create` checks it.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Image reference or id.
    pub image: String,
    /// `--name`.
    pub name: Option<String>,
    /// The command (empty: the image's, unless the entrypoint is replaced).
    pub cmd: Vec<String>,
    /// Replaces the image's entrypoint and drops its cmd; `Some([])` resets it.
    pub entrypoint: Option<Vec<String>>,
    /// `-e`, `--env-file` (K=V).
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `--hostname`.
    pub hostname: Option<String>,
    /// `--group-add`.
    pub group_add: Vec<String>,
    /// Leave out the groups the image's group file gives the user (the CRI's Strict policy).
    pub groups_strict: bool,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `--annotation` (Docker's `HostConfig.Annotations`).
    pub annotations: BTreeMap<String, String>,
    /// A log in the CRI's format beside the json-file one (a CRI container's log path).
    pub cri_log_path: Option<String>,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--network`.
    pub network: NetworkMode,
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
    /// `--restart`.
    pub restart: RestartPolicy,
    /// `-v` (Docker's `Binds`, and `Config.Volumes`): a missing host path is made, a
    /// volume without a source is a new anonymous one.
    pub binds: Vec<MountSpec>,
    /// `--mount`, `--tmpfs` (Docker's `Mounts`, `Tmpfs`): a bind's host path must exist.
    pub mounts: Vec<MountSpec>,
    /// `--health-*`, `--no-healthcheck`.
    pub health: HealthOptions,
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
    /// `--sysctl`.
    pub sysctls: BTreeMap<String, String>,
    /// `--oom-score-adj`.
    pub oom_score_adj: i32,
    /// Docker's `HostConfig.MaskedPaths`, the CRI's `masked_paths`: replace the default
    /// masked paths (none: the defaults).
    pub masked_paths: Option<Vec<String>>,
    /// Docker's `HostConfig.ReadonlyPaths`, the CRI's `readonly_paths`: replace the default
    /// read-only paths (none: the defaults).
    pub readonly_paths: Option<Vec<String>>,
    /// `--ulimit`.
    pub ulimits: Vec<Ulimit>,
    /// `--memory-reservation` bytes.
    pub memory_reservation: i64,
    /// `--memory-swap` bytes (-1 unlimited).
    pub memory_swap: i64,
    /// `--cpus`, in billionths of a CPU.
    pub nano_cpus: i64,
    /// `--cpu-shares`.
    pub cpu_shares: u64,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: String,
    /// `--cpuset-mems`.
    pub cpuset_mems: String,
    /// Hugepage limits: bytes per page size (`2MB`, `1GB`).
    pub hugepage_limits: BTreeMap<String, u64>,
    /// cgroup v2 files to write (the OCI `unified` map).
    pub unified: BTreeMap<String, String>,
    /// `--log-driver`, `--log-opt`.
    pub log: LogConfig,
    /// `--volumes-from CONTAINER[:ro|rw]`.
    pub volumes_from: Vec<String>,
    /// `-t`.
    pub tty: bool,
    /// `--device`.
    pub devices: Vec<DeviceMapping>,
    /// CDI devices (`--device vendor.com/class=name`, `--gpus`, Docker's DeviceRequests,
    /// the CRI's CDI devices).
    pub cdi_devices: Vec<String>,
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
    pub publish: Vec<PortSpec>,
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
    /// `--pid`.
    pub pid: NamespaceMode,
    /// `--ipc`.
    pub ipc: NamespaceMode,
    /// `--uts`.
    pub uts: NamespaceMode,
    /// `--userns`: empty, `host`, `auto[:size=N]`, `keep-id` (rootless).
    pub userns: String,
    /// `--uidmap` (`CONTAINER:HOST:SIZE`).
    pub uid_maps: Vec<String>,
    /// `--gidmap`.
    pub gid_maps: Vec<String>,
    /// `--pod`: the pod to join (name or id).
    pub pod: Option<String>,
    /// A pod's infra (made by `pods::create`): the process is the runtime's pause.
    pub infra: bool,
    /// The kubelet's semantics (`kube play`): probes, hooks, back-off.
    pub kube: Option<crate::model::KubeConfig>,
}

/// A namespace mode as a record keeps it: another container's by id (which must exist).
fn namespace_mode(engine: &Engine, m: &NamespaceMode) -> Result<String> {
    Ok(match m {
        NamespaceMode::Container(c) => format!("container:{}", engine.resolve(c)?.id),
        other => other.to_record(),
    })
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
fn parse_log_opts(log: &LogConfig) -> Result<(u64, u32)> {
    let (mut size, mut files) = (0u64, 0u32);
    for (k, v) in &log.opts {
        if log.driver == "none" {
            return Err(EngineError::Invalid(format!(
                "unknown log opt '{k}' for none log driver"
            )));
        }
        match k.as_str() {
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

/// The health check: the image's `Healthcheck`, overridden field by field by the flags.
fn health_config(image: Option<&serde_json::Value>, o: &CreateOptions) -> Result<Option<crate::health::HealthConfig>> {
    use crate::health::HealthConfig;
    use std::time::Duration;
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
    let h = &o.health;
    match h.test.as_deref() {
        Some([first, ..]) if first == "NONE" => return Ok(None),
        Some(t) if !t.is_empty() => cfg.test = t.to_vec(),
        _ => {}
    }
    // dockerd's floor, whichever front end asked.
    for (name, d) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
    ] {
        if d.is_some_and(|d| d < Duration::from_millis(1)) {
            return Err(EngineError::Invalid(format!(
                "{name} in Healthcheck cannot be less than 1ms"
            )));
        }
    }
    if let Some(d) = h.interval {
        cfg.interval = d;
    }
    if let Some(d) = h.timeout {
        cfg.timeout = d;
    }
    if let Some(d) = h.start_period {
        cfg.start_period = d;
    }
    if let Some(r) = h.retries.filter(|r| *r > 0) {
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

/// A container just made, and what Docker would warn about it (each without its
/// `WARNING: `: the API's `Warnings`, which the CLI prints with that prefix).
#[derive(Debug)]
pub struct Created {
    /// The container's record.
    pub record: Record,
    /// Warnings.
    pub warnings: Vec<String>,
}

/// Creates a container from an image in the store.
pub fn create(engine: &Engine, images: &mut ImageStore, o: &CreateOptions) -> Result<Created> {
    check_limits(o)?;
    let mut joined;
    let (o, pod) = match &o.pod {
        Some(key) => {
            joined = o.clone();
            let pod = crate::pods::join(engine, key, &mut joined)?;
            (&joined, Some(pod))
        }
        None => (o, None),
    };
    let mut warnings = Vec::new();
    let img = images.resolve(&o.image)?;
    let cfg = images.config(&img)?;
    let c = cfg.config.clone().unwrap_or_default();
    let (entrypoint, cmd, full) = spec::command(
        str_list(c.get("Entrypoint")),
        str_list(c.get("Cmd")),
        o.entrypoint.as_deref(),
        &o.cmd,
    )?;
    let network = match &o.network {
        // A rootless user's default (and `bridge`): the user-mode stack, as Podman's
        // (pasta); bridges are the user's own networks, made with `network create`.
        NetworkMode::Bridge if crate::rootless::is_rootless() => "pasta".to_string(),
        NetworkMode::Bridge => crate::networks::DEFAULT.to_string(),
        m @ (NetworkMode::Pasta(_) | NetworkMode::Slirp4netns(_)) => {
            crate::networks::usermode::check(m)?;
            m.user_mode_string().unwrap_or_default()
        }
        NetworkMode::None => "none".to_string(),
        NetworkMode::Host => "host".to_string(),
        NetworkMode::Container(c) => format!("container:{}", engine.resolve(c)?.id),
        NetworkMode::Named(n) => crate::networks::get(engine, n)?.name,
        NetworkMode::Path(p) => {
            // The file must be a namespace (nsfs) now (the runtime's setns checks its type);
            // whoever made it keeps it.
            let is_netns = std::fs::File::open(p).ok().is_some_and(|f| {
                nix::sys::statfs::fstatfs(&f).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
            });
            if !p.starts_with('/') || !is_netns {
                return Err(EngineError::Invalid(format!(
                    "invalid network mode ns:{p}: not a network namespace file"
                )));
            }
            format!("ns:{p}")
        }
    };
    let mode = NetworkMode::parse(&network);
    if let Some(ip) = &o.ip {
        if !mode.is_user_defined() {
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
    if !o.aliases.is_empty() && !mode.is_user_defined() {
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
    let publishes = !o.publish.is_empty() || o.publish_all;
    if matches!(mode, NetworkMode::Container(_) | NetworkMode::Path(_)) && publishes {
        return Err(EngineError::Invalid(
            "conflicting options: port publishing and the container type network mode".into(),
        ));
    }
    if matches!(mode, NetworkMode::None | NetworkMode::Host) && publishes {
        // Docker ignores published ports there (with a warning); so does berth.
        warnings.push(format!(
            "Published ports are discarded when using {network} network mode"
        ));
    }
    if o.restart != RestartPolicy::No && o.auto_remove {
        return Err(EngineError::Invalid("Conflicting options: --restart and --rm".into()));
    }
    let id = new_id()?;
    // Mounts: -v, --mount, --tmpfs, then the image's VOLUMEs not covered by them.
    let mut anonymous = Vec::new();
    let anon = || new_id().unwrap_or_else(|_| id.clone());
    let mut mounts = Vec::new();
    for (m, made_if_missing) in o
        .binds
        .iter()
        .map(|m| (m, true))
        .chain(o.mounts.iter().map(|m| (m, false)))
    {
        crate::volumes::check(m, made_if_missing)?;
        let mut m = m.clone();
        if m.kind == "volume" && m.source.is_empty() {
            m.source = anon();
        }
        if m.kind == "image" {
            // An image's layers, mounted read-only as an overlay with no upper layer.
            let vol = images.resolve(&m.source)?;
            let lowers: Vec<String> = images.lowers(&vol)?.iter().map(|l| l.display().to_string()).collect();
            m.options = vec![format!("lowerdir={}", lowers.join(":"))];
            m.source = vol.row.id.clone();
        }
        mounts.push(m);
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
    if o.uts == NamespaceMode::Host && o.hostname.as_deref().is_some_and(|h| !h.is_empty()) {
        return Err(EngineError::Invalid(
            "conflicting options: hostname and the UTS mode".into(),
        ));
    }
    // Docker: a container on the host's network is named as the host, unless told otherwise.
    let hostname = match o.hostname.clone().filter(|h| !h.is_empty()) {
        Some(h) => h,
        None if mode == NetworkMode::Host || o.uts == NamespaceMode::Host => nix::unistd::gethostname()
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
    // An `auto` range is free until the container holding it is recorded.
    let _userns_lock = if o.userns.starts_with("auto") {
        Some(crate::userns::lock(engine)?)
    } else {
        None
    };
    let userns = crate::userns::plan(engine, &o.userns, &o.uid_maps, &o.gid_maps)?;
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
            .or_else(|| {
                c.get("User")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
                    .filter(|u| !u.is_empty())
            })
            .or_else(|| userns.default_user.clone())
            .unwrap_or_default(),
        group_add: o.group_add.clone(),
        groups_strict: o.groups_strict,
        hostname,
        labels,
        annotations: o.annotations.clone(),
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
        restart: o.restart.name().to_string(),
        restart_max: o.restart.max_retries(),
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
        sysctls: crate::kernel::check_sysctls(o)?,
        oom_score_adj: crate::kernel::oom_score_adj(o.oom_score_adj, &mut warnings)?,
        masked_paths: crate::kernel::check_paths("masked", o.masked_paths.as_ref())?,
        readonly_paths: crate::kernel::check_paths("read-only", o.readonly_paths.as_ref())?,
        no_new_privileges: o
            .security_opt
            .iter()
            .any(|s| s == "no-new-privileges" || s == "no-new-privileges:true" || s == "no-new-privileges=true"),
        ulimits: o.ulimits.iter().map(Ulimit::checked).collect::<Result<_>>()?,
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
            #[allow(clippy::cast_precision_loss)]
            spec::check_cpus(o.nano_cpus as f64 / 1e9)?;
            o.nano_cpus / 10_000
        },
        cpu_shares: o.cpu_shares,
        cpuset_cpus: o.cpuset_cpus.clone(),
        cpuset_mems: o.cpuset_mems.clone(),
        hugepage_limits: o.hugepage_limits.clone(),
        unified: o.unified.clone(),
        log_driver: match o.log.driver.as_str() {
            "" | "json-file" | "local" => "json-file".into(),
            "none" => "none".into(),
            other => {
                return Err(EngineError::Invalid(format!(
                    "failed to create container: log driver {other:?} is not supported (json-file, none)"
                )))
            }
        },
        log_max_size: parse_log_opts(&o.log)?.0,
        log_max_file: parse_log_opts(&o.log)?.1,
        cri_log_path: match &o.cri_log_path {
            Some(p) if !p.starts_with('/') => {
                return Err(EngineError::Invalid(format!("log path {p:?} is not absolute")))
            }
            p => p.clone().unwrap_or_default(),
        },
        tty: o.tty,
        console_size: o.console_size,
        devices: o
            .devices
            .iter()
            .map(DeviceMapping::checked)
            .collect::<Result<Vec<_>>>()?,
        cdi_devices: crate::cdi::checked(&o.cdi_devices)?,
        open_stdin: o.open_stdin,
        stdin_once: o.open_stdin && o.stdin_once,
        init: o.init,
        runtime: crate::runtimes::check_name(&o.runtime)?,
        exposed_ports: c
            .get("ExposedPorts")
            .and_then(|v| v.as_object())
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
        publish: o.publish.iter().map(PortSpec::to_string).collect(),
        publish_all: o.publish_all,
        extra_hosts,
        ip: o.ip.clone().unwrap_or_default(),
        aliases: o.aliases.clone(),
        kube: o.kube.clone(),
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
        pod: pod.as_ref().map(|p| p.id.clone()).unwrap_or_default(),
        infra: o.infra,
        pid_mode: namespace_mode(engine, &o.pid)?,
        ipc_mode: namespace_mode(engine, &o.ipc)?,
        uts_mode: namespace_mode(engine, &o.uts)?,
        userns_mode: userns.mode.clone(),
        uid_map: userns.uid.clone(),
        gid_map: userns.gid.clone(),
    };
    berth_runtime::container::parse_signal(&r.stop_signal)
        .map_err(|e| EngineError::Invalid(format!("invalid stop signal: {e}")))?;
    crate::rootless::check_limits(&r)?;
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
        // A container in another's network uses its resolver, as Docker's does (a pod's
        // members: the DNS the sandbox was given).
        let resolv = match r.network() {
            NetworkMode::Container(other)
                if o.dns.is_empty() && o.dns_search.is_empty() && o.dns_options.is_empty() =>
            {
                std::fs::read_to_string(engine.dir(&other).join("resolv.conf")).ok()
            }
            _ => None,
        };
        let resolv = match resolv {
            Some(r) => r,
            None => resolv_conf(o, r.network() != NetworkMode::Host)?,
        };
        write("resolv.conf", resolv)?;
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
        // An image mounted as a volume is in use as long as the container is.
        for m in r.mounts.iter().filter(|m| m.kind == "image") {
            images.set_user(&m.source, &id, true)?;
        }
        engine.save_state(
            &id,
            &State {
                status: crate::store::Status::Created,
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
    if let Some(pod) = &pod {
        crate::pods::write_hosts(engine, pod)?;
    }
    crate::events::container(engine, &r, "create", &[]);
    Ok(Created { record: r, warnings })
}
