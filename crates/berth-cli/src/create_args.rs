//! `run` and `create`: their flags, and their translation into the engine's options
//! (with the image pulled first when it is missing, as Docker does).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_engine::ops::CreateOptions;
use clap::Args;

use crate::containers::usage;

/// The network flags of `run`, `create` and `pod create`.
#[derive(Debug, Args)]
pub struct NetArgs {
    /// Connect to a network (bridge, host, none, or a user network).
    #[arg(long, alias = "net", default_value = "bridge")]
    pub network: String,
    /// Publish a port to the host ([ip:][hostPort:]containerPort[/proto]).
    #[arg(short, long)]
    pub publish: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip).
    #[arg(long)]
    pub add_host: Vec<String>,
    /// Set custom DNS servers.
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains.
    #[arg(long)]
    pub dns_search: Vec<String>,
    /// Set DNS options.
    #[arg(long)]
    pub dns_option: Vec<String>,
    /// IPv4 address (on a user-defined network).
    #[arg(long)]
    pub ip: Option<String>,
}

impl NetArgs {
    /// These flags in the engine's options.
    pub(crate) fn apply(&self, o: &mut CreateOptions) -> anyhow::Result<()> {
        o.network = berth_engine::options::NetworkMode::parse(&self.network);
        o.publish = self
            .publish
            .iter()
            .map(|p| berth_engine::options::PortSpec::parse(p))
            .collect::<Result<_, _>>()
            .map_err(|e| usage(e.to_string()))?;
        o.add_hosts = self.add_host.clone();
        o.dns = self.dns.clone();
        o.dns_search = self.dns_search.clone();
        o.dns_options = self.dns_option.clone();
        o.ip = self.ip.clone();
        Ok(())
    }
}

/// `-m, --memory`'s value in bytes (0 when not given).
pub(crate) fn memory_flag(m: Option<&str>) -> anyhow::Result<i64> {
    m.map_or(Ok(0), |m| {
        berth_engine::spec::parse_size(m)
            .map_err(|e| usage(format!("invalid argument \"{m}\" for \"-m, --memory\" flag: {e}")))
    })
}

/// `--cpus`'s value in billionths of a CPU (0 when not given).
pub(crate) fn cpus_flag(c: Option<&str>) -> anyhow::Result<i64> {
    c.map_or(Ok(0), |c| {
        let n = berth_engine::spec::parse_cpus(c)
            .map_err(|e| usage(format!("invalid argument \"{c}\" for \"--cpus\" flag: {e}")))?;
        #[allow(clippy::cast_possible_truncation)]
        Ok((n * 1e9).round() as i64)
    })
}

/// `run` and `create` options.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Run in the background and print the container ID (run only).
    #[arg(short, long)]
    pub detach: bool,
    /// Keep STDIN open even if not attached.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short, long)]
    pub tty: bool,
    /// Run an init inside the container that forwards signals and reaps processes.
    #[arg(long)]
    pub init: bool,
    /// Runtime to use for this container (berth, or an OCI runtime: runc, crun, youki, a path).
    #[arg(long)]
    pub runtime: Option<String>,
    /// Log driver options (max-size, max-file).
    #[arg(long)]
    pub log_opt: Vec<String>,
    /// Proxy received signals to the process (run only, without -t).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container.
    #[arg(long, default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Read in a file of environment variables.
    #[arg(long)]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short, long)]
    pub user: Option<String>,
    /// Container host name.
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Set metadata on a container.
    #[arg(short, long)]
    pub label: Vec<String>,
    /// The network flags (shared with `pod create`).
    #[command(flatten)]
    pub net: NetArgs,
    /// Publish all exposed ports to random ports.
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Run in a pod (NAME or ID), or in a new one (`new:NAME`).
    #[arg(long)]
    pub pod: Option<String>,
    /// PID namespace to use (host, or container:NAME).
    #[arg(long)]
    pub pid: Option<String>,
    /// IPC namespace to use (private, shareable, host, or container:NAME).
    #[arg(long)]
    pub ipc: Option<String>,
    /// UTS namespace to use (host).
    #[arg(long)]
    pub uts: Option<String>,
    /// User namespace to use: host, auto[:size=N] (a free range of the "containers"
    /// subordinate ids; root), keep-id (the user's own uid inside; rootless).
    #[arg(long)]
    pub userns: Option<String>,
    /// Run the container in a user namespace with this uid map, CONTAINER_ID:HOST_ID:SIZE
    /// (repeatable).
    #[arg(long)]
    pub uidmap: Vec<String>,
    /// Its gid map (default: the uid map).
    #[arg(long)]
    pub gidmap: Vec<String>,
    /// Add a network-scoped alias for the container.
    #[arg(long, alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// Memory limit.
    #[arg(short, long)]
    pub memory: Option<String>,
    /// Memory soft limit.
    #[arg(long)]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap.
    #[arg(long)]
    pub memory_swap: Option<String>,
    /// Number of CPUs.
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long)]
    pub cpu_shares: Option<u64>,
    /// CPUs in which to allow execution (0-3, 0,1).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1).
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Logging driver for the container (json-file, none).
    #[arg(long, default_value = "json-file")]
    pub log_driver: String,
    /// Tune container pids limit (-1 for unlimited).
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// Add a host device to the container (HOST[:CONTAINER[:PERMS]]).
    #[arg(long)]
    pub device: Vec<String>,
    /// GPU devices to add to the container ('all' to pass all GPUs), through CDI.
    #[arg(long)]
    pub gpus: Vec<String>,
    /// Mount the container's root filesystem as read only.
    #[arg(long)]
    pub read_only: bool,
    /// Signal to stop the container.
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container.
    #[arg(long)]
    pub stop_timeout: Option<u64>,
    /// Bind mount a host path or mount a volume (SRC:DST[:ro], or DST for an anonymous one).
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount (type=bind|volume|tmpfs,source=..,target=..[,readonly]).
    #[arg(long)]
    pub mount: Vec<String>,
    /// Mount volumes from the specified container(s) (CONTAINER[:ro|rw]).
    #[arg(long)]
    pub volumes_from: Vec<String>,
    /// Mount a tmpfs directory (PATH[:OPTIONS]).
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Command to run to check health.
    #[arg(long)]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h).
    #[arg(long)]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h).
    #[arg(long)]
    pub health_timeout: Option<String>,
    /// Start period for the container to initialize before counting retries (ms|s|m|h).
    #[arg(long)]
    pub health_start_period: Option<String>,
    /// Consecutive failures needed to report unhealthy.
    #[arg(long)]
    pub health_retries: Option<u32>,
    /// Disable any container-specified HEALTHCHECK.
    #[arg(long)]
    pub no_healthcheck: bool,
    /// Add Linux capabilities.
    #[arg(long)]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities.
    #[arg(long)]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container.
    #[arg(long)]
    pub privileged: bool,
    /// Security options (seccomp=unconfined|PROFILE.json, no-new-privileges).
    #[arg(long)]
    pub security_opt: Vec<String>,
    /// Ulimit options (name=soft[:hard]).
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Sysctl options (name=value).
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// Tune the host's OOM preferences (-1000 to 1000).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub oom_score_adj: i32,
    /// Add additional groups to join.
    #[arg(long)]
    pub group_add: Vec<String>,
    /// Optional parent cgroup for the container.
    #[arg(long)]
    pub cgroup_parent: Option<String>,
    /// Restart policy: no, always, on-failure[:max-retries], unless-stopped.
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Pull image before running: always, missing, never.
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Print help (`-h` is --hostname, as in Docker).
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub image_and_args: Vec<String>,
}

pub(crate) fn create_options(a: &CreateArgs) -> anyhow::Result<CreateOptions> {
    let mut env = Vec::new();
    for f in &a.env_file {
        let text = std::fs::read_to_string(f).map_err(|e| usage(format!("open {}: {e}", f.display())))?;
        for l in text.lines() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            env.push(expand_env(l));
        }
    }
    env.extend(a.env.iter().map(|e| expand_env(e)));
    let mut labels = BTreeMap::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let memory = memory_flag(a.memory.as_deref())?;
    if !["always", "missing", "never"].contains(&a.pull.as_str()) {
        return Err(usage(format!(
            "invalid pull option: '{}': must be one of \"always\", \"missing\" or \"never\"",
            a.pull
        )));
    }
    let flag = |e: berth_engine::EngineError| usage(e.to_string());
    let duration = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| {
                berth_engine::health::parse_duration(s).ok_or_else(|| {
                    usage(format!(
                        "invalid argument \"{s}\" for \"--{name}\" flag: invalid duration"
                    ))
                })
            })
            .transpose()
            // 0 keeps the image's, as Docker's CLI sends it.
            .map(|d| d.filter(|d| !d.is_zero()))
    };
    let health = berth_engine::options::HealthOptions {
        test: match (&a.health_cmd, a.no_healthcheck) {
            (_, true) => Some(vec!["NONE".to_string()]),
            (Some(c), false) => Some(vec!["CMD-SHELL".to_string(), c.clone()]),
            (None, false) => None,
        },
        interval: duration("health-interval", &a.health_interval)?,
        timeout: duration("health-timeout", &a.health_timeout)?,
        start_period: duration("health-start-period", &a.health_start_period)?,
        retries: a.health_retries,
    };
    let mut mounts: Vec<_> = a
        .mount
        .iter()
        .map(|m| berth_engine::volumes::parse_mount(m))
        .collect::<Result<_, _>>()
        .map_err(flag)?;
    for t in &a.tmpfs {
        mounts.push(berth_engine::volumes::parse_tmpfs(t).map_err(flag)?);
    }
    let ns = |flag: &str, v: &Option<String>| {
        let v = v.as_deref().unwrap_or("");
        berth_engine::options::NamespaceMode::parse(v).ok_or_else(|| {
            usage(format!(
                "invalid argument \"{v}\" for \"--{flag}\" flag: invalid {flag} mode"
            ))
        })
    };
    let mut o = CreateOptions {
        infra: false,
        pod: a.pod.as_ref().map(|p| p.strip_prefix("new:").unwrap_or(p).to_string()),
        pid: ns("pid", &a.pid)?,
        ipc: ns("ipc", &a.ipc)?,
        uts: ns("uts", &a.uts)?,
        userns: a.userns.clone().unwrap_or_default(),
        uid_maps: a.uidmap.clone(),
        gid_maps: a.gidmap.clone(),
        image: a.image_and_args[0].clone(),
        name: a.name.clone(),
        cmd: a.image_and_args[1..].to_vec(),
        entrypoint: a
            .entrypoint
            .as_ref()
            .map(|e| if e.is_empty() { Vec::new() } else { vec![e.clone()] }),
        env,
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        hostname: a.hostname.clone(),
        labels,
        auto_remove: a.rm,
        memory,
        pids_limit: a.pids_limit.filter(|p| *p > 0).unwrap_or(0),
        devices: a
            .device
            .iter()
            .filter(|d| !berth_engine::cdi::is_name(d))
            .map(|d| berth_engine::spec::DeviceMapping::parse(d))
            .collect::<Result<_, _>>()
            .map_err(flag)?,
        cdi_devices: {
            // `--device vendor.com/class=name` is a CDI device; `--gpus` asks for them too.
            let mut cdi: Vec<String> = a
                .device
                .iter()
                .filter(|d| berth_engine::cdi::is_name(d))
                .cloned()
                .collect();
            let requests = a
                .gpus
                .iter()
                .map(|g| berth_engine::cdi::DeviceRequest::parse_gpus(g))
                .collect::<Result<Vec<_>, _>>()
                .map_err(flag)?;
            cdi.extend(berth_engine::cdi::devices_for(&requests).map_err(flag)?);
            cdi
        },
        read_only: a.read_only,
        stop_signal: a.stop_signal.clone(),
        stop_timeout: a.stop_timeout,
        restart: berth_engine::options::RestartPolicy::parse(&a.restart).map_err(flag)?,
        binds: a
            .volume
            .iter()
            .map(|v| berth_engine::volumes::parse_volume(v))
            .collect::<Result<_, _>>()
            .map_err(flag)?,
        mounts,
        health,
        cgroup_parent: a.cgroup_parent.clone(),
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        privileged: a.privileged,
        security_opt: a.security_opt.clone(),
        sysctls: a
            .sysctl
            .iter()
            .map(|s| {
                s.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| {
                        usage(format!(
                            "invalid argument \"{s}\" for \"--sysctl\" flag: not name=value"
                        ))
                    })
            })
            .collect::<Result<_, _>>()?,
        oom_score_adj: a.oom_score_adj,
        group_add: a.group_add.clone(),
        ulimits: a
            .ulimit
            .iter()
            .map(|u| berth_engine::options::Ulimit::parse(u))
            .collect::<Result<_, _>>()
            .map_err(flag)?,
        memory_reservation: match &a.memory_reservation {
            Some(m) => berth_engine::spec::parse_size(m).map_err(|e| {
                usage(format!(
                    "invalid argument \"{m}\" for \"--memory-reservation\" flag: {e}"
                ))
            })?,
            None => 0,
        },
        memory_swap: match a.memory_swap.as_deref() {
            Some("-1") => -1,
            Some(m) => berth_engine::spec::parse_size(m)
                .map_err(|e| usage(format!("invalid argument \"{m}\" for \"--memory-swap\" flag: {e}")))?,
            None => 0,
        },
        nano_cpus: cpus_flag(a.cpus.as_deref())?,
        cpu_shares: a.cpu_shares.unwrap_or(0),
        cpuset_cpus: a.cpuset_cpus.clone().unwrap_or_default(),
        cpuset_mems: a.cpuset_mems.clone().unwrap_or_default(),
        log: berth_engine::options::LogConfig {
            driver: a.log_driver.clone(),
            opts: berth_engine::options::LogConfig::parse_opts(&a.log_opt).map_err(flag)?,
        },
        volumes_from: a.volumes_from.clone(),
        tty: a.tty,
        console_size: if a.tty {
            crate::attach::terminal_size().unwrap_or((0, 0))
        } else {
            (0, 0)
        },
        open_stdin: a.interactive,
        stdin_once: a.interactive && !a.detach,
        init: a.init,
        runtime: a.runtime.clone().unwrap_or_default(),
        publish_all: a.publish_all,
        aliases: a.network_alias.clone(),
        ..Default::default()
    };
    a.net.apply(&mut o)?;
    Ok(o)
}

/// `-e NAME` takes NAME's value from the caller's environment, as Docker does.
pub(crate) fn expand_env(e: &str) -> String {
    if e.contains('=') {
        return e.to_string();
    }
    match std::env::var(e) {
        Ok(v) => format!("{e}={v}"),
        Err(_) => e.to_string(),
    }
}

pub(crate) fn ensure_image(root: &Path, image: &str, policy: &str) -> anyhow::Result<()> {
    let store = crate::images::open(root)?;
    let present = store.resolve(image).is_ok();
    drop(store);
    if present && policy != "always" {
        return Ok(());
    }
    if policy == "never" {
        return Err(usage(format!("No such image: {image}")));
    }
    if !present {
        eprintln!("Unable to find image '{image}' locally");
    }
    crate::images::pull_quietly_to_stderr(root, image).map_err(|e| usage(format!("{e:#}")))
}
