//! Container commands: `run`, `create`, `start`, `ps`, `logs`, `stop`, `kill`, `rm`,
//! `wait`, and `inspect` of containers; the hidden `_monitor`.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use berth_engine::ops::{self, CreateOptions};
use berth_engine::store::{Engine, Record};
use berth_engine::EngineError;
use clap::Args;
use serde_json::{json, Value};

pub use crate::system::{info, system_prune};
pub use crate::views::{diff, inspect, logs, port, ps, stats, top, PortArgs, StatsArgs, TopArgs};
pub use crate::volumes::{volume, VolumeCmd};

/// An error that carries Docker's exit code for it.
#[derive(Debug)]
pub struct Exit(pub u8, pub String);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Exit {}

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
    /// Connect a container to a network (bridge, host, none, or a user network).
    #[arg(long, alias = "net", default_value = "bridge")]
    pub network: String,
    /// Publish a container's port(s) to the host ([ip:][hostPort:]containerPort[/proto]).
    #[arg(short, long)]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports.
    #[arg(short = 'P', long)]
    pub publish_all: bool,
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
    /// Logging driver for the container (json-file, none).
    #[arg(long, default_value = "json-file")]
    pub log_driver: String,
    /// Tune container pids limit (-1 for unlimited).
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// Add a host device to the container (HOST[:CONTAINER[:PERMS]]).
    #[arg(long)]
    pub device: Vec<String>,
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

/// `start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// CONTAINER...
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Attach STDOUT/STDERR and forward signals.
    #[arg(short, long)]
    pub attach: bool,
    /// Attach container's STDIN.
    #[arg(short, long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container.
    #[arg(long, default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
}

/// `ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running).
    #[arg(short, long)]
    pub all: bool,
    /// Only display container IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter output (status=, name=, id=, label=, exited=).
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output using a Go template, or `json`.
    #[arg(long)]
    pub format: Option<String>,
    /// Show the latest created container.
    #[arg(short, long)]
    pub latest: bool,
    /// Display total file sizes.
    #[arg(short, long)]
    pub size: bool,
}

/// `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// CONTAINER
    pub container: String,
    /// Follow log output.
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs ("all").
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show logs since timestamp (RFC 3339) or relative (e.g. 42m).
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp (RFC 3339) or relative (e.g. 42m).
    #[arg(long)]
    pub until: Option<String>,
}

pub(crate) fn each(
    root: &Path,
    names: &[String],
    f: &dyn Fn(&Engine, &str) -> Result<(), EngineError>,
) -> anyhow::Result<()> {
    let e = engine(root)?;
    let mut errors = Vec::new();
    for n in names {
        match f(&e, n) {
            Ok(()) => println!("{n}"),
            Err(err) => errors.push(format!("Error response from daemon: {err}")),
        }
    }
    if !errors.is_empty() {
        return Err(Exit(1, errors.join("\n")).into());
    }
    Ok(())
}

/// `stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// CONTAINER...
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Seconds to wait before killing the container.
    #[arg(short, long)]
    pub time: Option<u64>,
    /// Signal to send to the container.
    #[arg(short, long)]
    pub signal: Option<String>,
}

/// `kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// CONTAINER...
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Signal to send to the container.
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
}

/// `rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// CONTAINER...
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Force the removal of a running container (uses SIGKILL).
    #[arg(short, long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container.
    #[arg(short, long)]
    pub volumes: bool,
}

/// `wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// CONTAINER...
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Opens the engine over the data root.
pub fn open_engine(root: &Path) -> anyhow::Result<Engine> {
    engine(root)
}

pub(crate) fn engine(root: &Path) -> anyhow::Result<Engine> {
    Engine::open(root).with_context(|| format!("opening the engine at {}", root.display()))
}

pub(crate) fn usage(msg: String) -> anyhow::Error {
    Exit(125, msg).into()
}

fn create_options(a: &CreateArgs) -> anyhow::Result<CreateOptions> {
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
    let memory = match &a.memory {
        Some(m) => berth_engine::spec::parse_size(m)
            .map_err(|e| usage(format!("invalid argument \"{m}\" for \"-m, --memory\" flag: {e}")))?,
        None => 0,
    };
    if !["always", "missing", "never"].contains(&a.pull.as_str()) {
        return Err(usage(format!(
            "invalid pull option: '{}': must be one of \"always\", \"missing\" or \"never\"",
            a.pull
        )));
    }
    Ok(CreateOptions {
        image: a.image_and_args[0].clone(),
        name: a.name.clone(),
        args: a.image_and_args[1..].to_vec(),
        entrypoint: a.entrypoint.clone(),
        env,
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        hostname: a.hostname.clone(),
        labels,
        auto_remove: a.rm,
        network: a.network.clone(),
        memory,
        pids_limit: a.pids_limit.filter(|p| *p > 0).unwrap_or(0),
        devices: a.device.clone(),
        read_only: a.read_only,
        stop_signal: a.stop_signal.clone(),
        stop_timeout: a.stop_timeout,
        restart: a.restart.clone(),
        volumes: a.volume.clone(),
        mounts: a.mount.clone(),
        tmpfs: a.tmpfs.clone(),
        health_cmd: a.health_cmd.clone(),
        health_interval: a.health_interval.clone(),
        health_timeout: a.health_timeout.clone(),
        health_start_period: a.health_start_period.clone(),
        health_retries: a.health_retries,
        no_healthcheck: a.no_healthcheck,
        cgroup_parent: a.cgroup_parent.clone(),
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        privileged: a.privileged,
        security_opt: a.security_opt.clone(),
        ulimits: a.ulimit.clone(),
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
        cpus: match &a.cpus {
            Some(c) => berth_engine::spec::parse_cpus(c)
                .map_err(|e| usage(format!("invalid argument \"{c}\" for \"--cpus\" flag: {e}")))?,
            None => 0.0,
        },
        cpu_shares: a.cpu_shares.unwrap_or(0),
        cpuset_cpus: a.cpuset_cpus.clone().unwrap_or_default(),
        log_driver: a.log_driver.clone(),
        volumes_from: a.volumes_from.clone(),
        log_opts: a.log_opt.clone(),
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
        publish: a.publish.clone(),
        publish_all: a.publish_all,
        add_hosts: a.add_host.clone(),
        dns: a.dns.clone(),
        dns_search: a.dns_search.clone(),
        dns_options: a.dns_option.clone(),
        ip: a.ip.clone(),
        aliases: a.network_alias.clone(),
    })
}

/// `-e NAME` takes NAME's value from the caller's environment, as Docker does.
fn expand_env(e: &str) -> String {
    if e.contains('=') {
        return e.to_string();
    }
    match std::env::var(e) {
        Ok(v) => format!("{e}={v}"),
        Err(_) => e.to_string(),
    }
}

fn ensure_image(root: &Path, image: &str, policy: &str) -> anyhow::Result<()> {
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

fn do_create(root: &Path, a: &CreateArgs) -> anyhow::Result<(Engine, Record)> {
    let o = create_options(a)?;
    // Docker refuses these before it looks for the image (or pulls it).
    ops::check_limits(&o).map_err(|e| usage(e.to_string()))?;
    ensure_image(root, &o.image, &a.pull)?;
    let e = engine(root)?;
    let mut images = crate::images::open(root)?;
    let r = ops::create(&e, &mut images, &o).map_err(|err| match engine_exit(err).downcast::<Exit>() {
        Ok(Exit(_, m)) => anyhow::Error::from(Exit(125, m)),
        Err(e) => e,
    })?;
    Ok((e, r))
}

pub(crate) fn engine_exit(e: EngineError) -> anyhow::Error {
    match e {
        EngineError::Start { code, message } => Exit(u8::try_from(code).unwrap_or(125), message).into(),
        EngineError::NoSuchContainer(_) => Exit(1, e.to_string()).into(),
        other => Exit(125, other.to_string()).into(),
    }
}

/// `create`.
pub fn create(root: &Path, a: &CreateArgs) -> anyhow::Result<()> {
    let (_, r) = do_create(root, a)?;
    println!("{}", r.id);
    Ok(())
}

/// `run`: create, start, and unless `-d`, attach and exit with the container's code.
pub fn run(root: &Path, a: &CreateArgs) -> anyhow::Result<()> {
    if a.interactive && a.tty && !a.detach && !crate::attach::stdin_is_tty() {
        return Err(Exit(1, "the input device is not a TTY".into()).into());
    }
    crate::attach::parse_detach_keys(&a.detach_keys).map_err(|e| usage(e.to_string()))?;
    let (e, r) = do_create(root, a)?;
    let exe = std::env::current_exe().context("finding the berth binary")?;
    if a.detach {
        ops::start(&e, &r.id, &exe).map_err(engine_exit)?;
        println!("{}", r.id);
        return Ok(());
    }
    let hello = crate::attach::hello(a.interactive, a.tty);
    let stream = match ops::start_attached(&e, &r.id, &exe, Some(&hello)) {
        Ok(Some(s)) => s,
        Ok(None) => bail!("container {} was already running", r.id),
        Err(err) => return Err(engine_exit(err)),
    };
    let session = session(root, &r, a.interactive, a.sig_proxy, &a.detach_keys)?;
    finish_session(&e, &r, stream, &session)
}

/// The attach session for container `r`: detach keys apply only with a terminal, as in
/// Docker.
fn session(
    root: &Path,
    r: &Record,
    stdin: bool,
    sig_proxy: bool,
    detach_keys: &str,
) -> anyhow::Result<crate::attach::Session> {
    Ok(crate::attach::Session {
        tty: r.tty,
        stdin,
        sig_proxy,
        detach_keys: if r.tty {
            crate::attach::parse_detach_keys(detach_keys).map_err(|e| usage(e.to_string()))?
        } else {
            Vec::new()
        },
        root: root.to_path_buf(),
        id: r.id.clone(),
    })
}

/// Runs an attach session and turns its end into our exit: the container's code, or 0
/// when the user detached.
fn finish_session(
    e: &Engine,
    r: &Record,
    stream: std::os::unix::net::UnixStream,
    session: &crate::attach::Session,
) -> anyhow::Result<()> {
    let code = match crate::attach::run(stream, session)? {
        crate::attach::End::Exited(c) => c,
        crate::attach::End::Detached => return Ok(()),
        // The monitor went away without saying: what it recorded, if anything.
        crate::attach::End::Lost => berth_engine::monitor::wait_exited(e, &r.id, Duration::from_secs(5)).exit_code,
    };
    if code != 0 {
        return Err(Exit(u8::try_from(code.clamp(0, 255)).unwrap_or(255), String::new()).into());
    }
    Ok(())
}

/// Streams a container's log to stdout/stderr until it stops; returns its exit code.
pub(crate) fn follow(
    e: &Engine,
    r: &Record,
    from_start: bool,
    tail: Option<usize>,
    timestamps: bool,
    opened: Option<std::fs::File>,
) -> anyhow::Result<i32> {
    let dir = e.dir(&r.id);
    let path = dir.join("json.log");
    let mut printed = 0usize;
    if !from_start {
        let all = berth_engine::logs::read_all(&path);
        let skip = tail.map(|t| all.len().saturating_sub(t)).unwrap_or(0);
        for en in &all[skip..] {
            emit(en, timestamps);
        }
        printed = all.len();
    }
    let mut file: Option<(std::io::BufReader<std::fs::File>, u64)> = match opened {
        Some(f) => {
            let ino = std::os::unix::fs::MetadataExt::ino(&f.metadata()?);
            Some((std::io::BufReader::new(f), ino))
        }
        None => None,
    };
    let mut seen = 0usize;
    loop {
        if file.is_none() {
            if let Ok(f) = std::fs::File::open(&path) {
                let ino = std::os::unix::fs::MetadataExt::ino(&f.metadata()?);
                file = Some((std::io::BufReader::new(f), ino));
            }
        }
        let mut progressed = false;
        if let Some((rd, ino)) = &mut file {
            let mut line = String::new();
            while rd.read_line(&mut line)? > 0 {
                if !line.ends_with('\n') {
                    break;
                }
                seen += 1;
                if seen > printed {
                    if let Ok(en) = serde_json::from_str::<berth_engine::logs::Entry>(&line) {
                        emit(&en, timestamps);
                    }
                }
                line.clear();
                progressed = true;
            }
            // Rotated away: continue with the new file (a removed one is read to its end).
            let now = std::fs::metadata(&path)
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                .ok();
            if now.is_some_and(|n| n != *ino) {
                file = None;
                printed = usize::MAX;
                continue;
            }
        }
        if !progressed {
            let st = e.state(&r.id);
            let gone = !dir.exists();
            if gone
                || (st.status != "running" && st.status != "created")
                || (st.status == "created" && !st.error.is_empty())
            {
                // Read what is left, then report.
                if let Some((rd, _)) = &mut file {
                    let mut line = String::new();
                    while rd.read_line(&mut line)? > 0 {
                        if let Ok(en) = serde_json::from_str::<berth_engine::logs::Entry>(&line) {
                            emit(&en, timestamps);
                        }
                        line.clear();
                    }
                }
                return Ok(if gone { 0 } else { st.exit_code });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

pub(crate) fn emit(en: &berth_engine::logs::Entry, timestamps: bool) {
    let text = if timestamps {
        format!("{} {}", en.time, en.log)
    } else {
        en.log.clone()
    };
    if en.stream == "stderr" {
        let _ = std::io::stderr().write_all(text.as_bytes());
    } else {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(text.as_bytes());
        let _ = o.flush();
    }
}

/// `start`.
pub fn start(root: &Path, a: &StartArgs) -> anyhow::Result<()> {
    let e = engine(root)?;
    let exe = std::env::current_exe().context("finding the berth binary")?;
    if a.attach || a.interactive {
        if a.containers.len() > 1 {
            return Err(usage("you cannot start and attach multiple containers at once".into()));
        }
        let r = e.resolve(&a.containers[0]).map_err(engine_exit)?;
        let stdin = a.interactive && r.open_stdin;
        let hello = crate::attach::hello(stdin, r.tty);
        let stream = match ops::start_attached(&e, &r.id, &exe, Some(&hello)).map_err(engine_exit)? {
            Some(s) => s,
            // Already running: attach to it.
            None => berth_engine::attach::connect(&e.dir(&r.id), &hello)
                .with_context(|| format!("attaching to {}", r.name))?,
        };
        let session = session(root, &r, stdin, true, &a.detach_keys)?;
        return finish_session(&e, &r, stream, &session);
    }
    let mut failed = Vec::new();
    for c in &a.containers {
        match ops::start(&e, c, &exe) {
            Ok(()) => println!("{c}"),
            Err(err) => failed.push(err.to_string()),
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("\n"));
    }
    Ok(())
}

/// `attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// CONTAINER
    pub container: String,
    /// Do not attach STDIN.
    #[arg(long)]
    pub no_stdin: bool,
    /// Proxy all received signals to the process.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container.
    #[arg(long, default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
}

/// `attach`: the running container's stdio, here.
pub fn attach(root: &Path, a: &AttachArgs) -> anyhow::Result<()> {
    let e = engine(root)?;
    let r = e.resolve(&a.container).map_err(engine_exit)?;
    let st = e.state(&r.id);
    if st.status == "paused" {
        return Err(Exit(1, "You cannot attach to a paused container, unpause it first".into()).into());
    }
    if !st.running() {
        return Err(Exit(1, "You cannot attach to a stopped container, start it first".into()).into());
    }
    let stdin = r.open_stdin && !a.no_stdin;
    let hello = crate::attach::hello(stdin, r.tty);
    let stream =
        berth_engine::attach::connect(&e.dir(&r.id), &hello).with_context(|| format!("attaching to {}", r.name))?;
    let session = session(root, &r, stdin, a.sig_proxy, &a.detach_keys)?;
    finish_session(&e, &r, stream, &session)
}

/// `restart`: stop (signal, then SIGKILL after the timeout), then start.
pub fn restart(root: &Path, a: &StopArgs) -> anyhow::Result<()> {
    let e = engine(root)?;
    let exe = std::env::current_exe().context("finding the berth binary")?;
    let mut failed = Vec::new();
    for c in &a.containers {
        let done = ops::stop(&e, c, a.time, a.signal.as_deref()).and_then(|()| ops::start(&e, c, &exe));
        match done {
            Ok(()) => println!("{c}"),
            Err(err) => failed.push(err.to_string()),
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("\n"));
    }
    Ok(())
}

/// `stop`.
pub fn stop(root: &Path, a: &StopArgs) -> anyhow::Result<()> {
    each(root, &a.containers, &|e, n| {
        ops::stop(e, n, a.time, a.signal.as_deref())
    })
}

/// `kill`.
pub fn kill(root: &Path, a: &KillArgs) -> anyhow::Result<()> {
    each(root, &a.containers, &|e, n| ops::kill(e, n, &a.signal))
}

/// `rm`.
pub fn rm(root: &Path, a: &RmArgs) -> anyhow::Result<()> {
    each(root, &a.containers, &|e, n| {
        ops::remove(e, n, a.force, a.volumes).map(|_| ())
    })
}

/// `wait`.
pub fn wait(root: &Path, a: &WaitArgs) -> anyhow::Result<()> {
    let e = engine(root)?;
    for c in &a.containers {
        let code = ops::wait(&e, c).map_err(engine_exit)?;
        println!("{code}");
    }
    Ok(())
}

/// `exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Set environment variables.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short, long)]
    pub user: Option<String>,
    /// Keep STDIN open even if not attached.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short, long)]
    pub tty: bool,
    /// CONTAINER COMMAND [ARG...]
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub container_and_command: Vec<String>,
}

/// `exec`: a process in a running container, with its exit code passed on.
pub fn exec(root: &Path, a: &ExecArgs) -> anyhow::Result<()> {
    use berth_oci::oci_spec::runtime::Process;
    if a.interactive && a.tty && !a.detach && !crate::attach::stdin_is_tty() {
        return Err(Exit(1, "the input device is not a TTY".into()).into());
    }
    let e = engine(root)?;
    let r = e.resolve(&a.container_and_command[0]).map_err(engine_exit)?;
    if !e.state(&r.id).running() {
        return Err(Exit(
            1,
            format!("Error response from daemon: container {} is not running", r.id),
        )
        .into());
    }
    let spec: Value = serde_json::from_slice(&std::fs::read(e.dir(&r.id).join("config.json"))?)?;
    let mut p: Value = spec["process"].clone();
    p["args"] = json!(a.container_and_command[1..]);
    let env: Vec<String> = serde_json::from_value(p["env"].clone()).unwrap_or_default();
    p["env"] = json!(berth_engine::spec::merge_env(
        &env,
        &a.env.iter().map(|x| expand_env(x)).collect::<Vec<_>>()
    ));
    if let Some(w) = &a.workdir {
        p["cwd"] = json!(w);
    }
    if let Some(u) = &a.user {
        let rootfs = e.dir(&r.id).join("rootfs");
        let (uid, gid, extra) =
            berth_engine::spec::resolve_user(u, &[rootfs]).map_err(|err| Exit(126, err.to_string()))?;
        p["user"] = json!({"uid": uid, "gid": gid, "additionalGids": extra});
    }
    p["terminal"] = json!(a.tty);
    if a.tty {
        let mut env: Vec<String> = serde_json::from_value(p["env"].clone()).unwrap_or_default();
        if !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
            p["env"] = json!(env);
        }
        if let Some((rows, cols)) = crate::attach::terminal_size() {
            p["consoleSize"] = json!({"height": rows, "width": cols});
        }
    }
    let process: Process = serde_json::from_value(p).context("building the exec process")?;
    let ext = e.rt(&r).map_err(engine_exit)?;
    if let Some((mut cmd, file)) = ext
        .exec_command(&r.id, &process, &e.dir(&r.id), a.detach)
        .map_err(engine_exit)?
    {
        // An external runtime runs the process itself (and its terminal, with -t).
        if !a.interactive {
            cmd.stdin(std::process::Stdio::null());
        }
        let status = cmd.status().context("running the OCI runtime")?;
        let _ = std::fs::remove_file(file);
        let code = status.code().unwrap_or(255);
        if code != 0 {
            return Err(Exit(u8::try_from(code.clamp(0, 255)).unwrap_or(255), String::new()).into());
        }
        return Ok(());
    }
    let rt = e.runtime();
    let mut opts = berth_runtime::container::ExecOpts {
        subreaper: !a.detach,
        ..Default::default()
    };
    let failed = |err: berth_runtime::container::ContainerError| -> anyhow::Error {
        let m = err.to_string();
        let code = berth_engine::monitor::start_failure_code(&m);
        Exit(u8::try_from(if code == 125 { 126 } else { code }).unwrap_or(126), m).into()
    };
    if !a.interactive || a.detach {
        // Docker gives an exec stdin only with -i.
        let null = std::fs::File::open("/dev/null").context("opening /dev/null")?;
        nix::unistd::dup2_stdin(null).context("redirecting stdin")?;
    }
    if a.detach {
        rt.exec(&r.id, &process, &opts).map_err(failed)?;
        return Ok(());
    }
    let signals = berth_runtime::supervise::block_signals().context("blocking signals")?;
    opts.subreaper = true;
    let created = rt.exec(&r.id, &process, &opts).map_err(failed)?;
    let code = berth_runtime::supervise::supervise_stdin(created.pid, signals, created.console, a.interactive)
        .context("waiting for the process")?;
    if code != 0 {
        return Err(Exit(u8::try_from(code.clamp(0, 255)).unwrap_or(255), String::new()).into());
    }
    Ok(())
}

/// `rename`.
#[derive(Debug, Args)]
pub struct RenameArgs {
    /// CONTAINER
    pub container: String,
    /// NEW_NAME
    pub new_name: String,
}

/// `pause` / `unpause` / `top` / `diff`: one or more containers.
#[derive(Debug, Args)]
pub struct ContainersArgs {
    /// CONTAINER...
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `commit`.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// CONTAINER
    pub container: String,
    /// [REPOSITORY[:TAG]]
    pub reference: Option<String>,
    /// Author.
    #[arg(short, long, default_value = "")]
    pub author: String,
    /// Apply Dockerfile instruction to the created image.
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Commit message.
    #[arg(short, long, default_value = "")]
    pub message: String,
    /// Pause container during commit.
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub pause: bool,
}

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// CONTAINER
    pub container: String,
    /// Write to a file, instead of STDOUT.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// `container prune`.
#[derive(Debug, Args)]
pub struct ContainerPruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// `rename`.
pub fn rename(root: &Path, a: &RenameArgs) -> anyhow::Result<()> {
    let e = engine(root)?;
    ops::rename(&e, &a.container, &a.new_name)
        .map_err(|err| Exit(1, format!("Error response from daemon: {err}")).into())
}

/// `pause` and `unpause`.
pub fn pause(root: &Path, a: &ContainersArgs, paused: bool) -> anyhow::Result<()> {
    each(root, &a.containers, &|e, n| ops::set_paused(e, n, paused))
}

/// `commit`.
pub fn commit(root: &Path, a: &CommitArgs) -> anyhow::Result<()> {
    let e = engine(root)?;
    let mut images = crate::images::open(root)?;
    let tag = a
        .reference
        .as_deref()
        .map(|r| berth_oci::Reference::parse(r).map_err(|err| usage(err.to_string())))
        .transpose()?;
    let opts = berth_engine::commit::CommitOptions {
        tag,
        changes: a.change.clone(),
        message: a.message.clone(),
        author: a.author.clone(),
        pause: a.pause,
    };
    let img = berth_engine::commit::commit(&e, &mut images, &a.container, &opts).map_err(engine_exit)?;
    println!("{}", img.row.id);
    Ok(())
}

/// `export`.
pub fn export(root: &Path, a: &ExportArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let e = engine(root)?;
    match &a.output {
        Some(p) => {
            let tmp = p.with_extension("berth-tmp");
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
            );
            let r = berth_engine::commit::export(&e, &a.container, &mut f).map_err(engine_exit);
            drop(f);
            if r.is_err() {
                let _ = std::fs::remove_file(&tmp);
                return r;
            }
            std::fs::rename(&tmp, p).with_context(|| format!("writing {}", p.display()))?;
            Ok(())
        }
        None => {
            if std::io::stdout().is_terminal() {
                return Err(usage(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect".into(),
                ));
            }
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            berth_engine::commit::export(&e, &a.container, &mut out).map_err(engine_exit)?;
            out.flush()?;
            Ok(())
        }
    }
}

/// `container prune`.
pub fn prune(root: &Path, a: &ContainerPruneArgs) -> anyhow::Result<()> {
    if !a.force {
        return Err(usage(
            "container prune: refusing to prompt without a terminal; use --force".into(),
        ));
    }
    let e = engine(root)?;
    let gone = ops::prune(&e).map_err(engine_exit)?;
    if !gone.is_empty() {
        println!("Deleted Containers:");
        for id in &gone {
            println!("{id}");
        }
        println!();
    }
    println!("Total reclaimed space: 0B");
    Ok(())
}

/// `cp`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// CONTAINER:SRC_PATH or a host path.
    pub src: String,
    /// CONTAINER:DEST_PATH or a host path.
    pub dest: String,
}

/// `cp`: one side must be `CONTAINER:PATH`.
pub fn cp(root: &Path, a: &CpArgs) -> anyhow::Result<()> {
    use berth_engine::cp;
    let e = engine(root)?;
    match (cp::split(&a.src), cp::split(&a.dest)) {
        // `-`: a tar of SRC on stdout, never a host file named `-`.
        (Some((c, p)), None) if a.dest == "-" => {
            let mut out = std::io::stdout().lock();
            cp::archive(&e, c, p, &mut out).map_err(engine_exit)?;
            out.flush().context("writing to stdout")
        }
        (Some((c, p)), None) => cp::copy_out(&e, c, p, &cp::host(&a.dest)).map_err(engine_exit),
        // `-`: a tar on stdin, unpacked into the directory DEST.
        (None, Some((c, p))) if a.src == "-" => {
            cp::extract_in(&e, c, &mut std::io::stdin().lock(), p, false).map_err(engine_exit)
        }
        (None, Some((c, p))) => cp::copy_in(&e, c, &cp::host(&a.src), p).map_err(engine_exit),
        (Some(_), Some(_)) => Err(usage("copying between containers is not supported".into())),
        (None, None) => Err(usage("must specify at least one container source".into())),
    }
}

/// `update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// CONTAINER...
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Memory limit.
    #[arg(short, long)]
    pub memory: Option<String>,
    /// Memory soft limit.
    #[arg(long)]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap.
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Tune container pids limit (set -1 for unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long)]
    pub cpu_shares: Option<u64>,
    /// Number of CPUs.
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Restart policy to apply when a container exits.
    #[arg(long)]
    pub restart: Option<String>,
}

/// `update`: new limits or restart policy, kept across restarts and applied at once to
/// running containers.
pub fn update(root: &Path, a: &UpdateArgs) -> anyhow::Result<()> {
    let size = |s: &Option<String>| -> anyhow::Result<Option<i64>> {
        s.as_deref()
            .map(|m| {
                if m == "-1" {
                    Ok(-1)
                } else {
                    berth_engine::spec::parse_size(m).map_err(|err| usage(err.to_string()))
                }
            })
            .transpose()
    };
    let cpu_quota = match &a.cpus {
        Some(c) => {
            let n = berth_engine::spec::parse_cpus(c)
                .map_err(|e| usage(format!("invalid argument \"{c}\" for \"--cpus\" flag: {e}")))?;
            berth_engine::spec::check_cpus(n).map_err(|e| usage(e.to_string()))?;
            #[allow(clippy::cast_possible_truncation)]
            Some((n * 100_000.0) as i64)
        }
        None => None,
    };
    let restart = a
        .restart
        .as_deref()
        .map(|r| berth_engine::ops::parse_restart(r).map_err(|err| usage(err.to_string())))
        .transpose()?;
    let u = berth_engine::ops::Update {
        memory: size(&a.memory)?,
        memory_reservation: size(&a.memory_reservation)?,
        memory_swap: size(&a.memory_swap)?,
        cpu_quota,
        cpu_shares: a.cpu_shares,
        cpuset_cpus: a.cpuset_cpus.clone(),
        pids_limit: a.pids_limit,
        restart,
    };
    each(root, &a.containers, &|e, n| berth_engine::ops::update(e, n, &u))
}
