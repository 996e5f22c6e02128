//! Container lifecycle commands: `run`, `create`, `start`, `attach`, `restart`, `stop`,
//! `kill`, `rm`, `wait`, `rename`, `pause`, `commit`, `export`, `cp`, `update`, `prune`.
//! Their neighbours: `create_args.rs` (run/create flags), `exec.rs`, `views.rs` (ps, logs,
//! inspect, top, diff, stats, port), `volumes.rs`, `system.rs`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use berth_engine::ops::{self};
use berth_engine::store::{Engine, Record, Status};
use berth_engine::EngineError;
use clap::Args;

pub use crate::create_args::CreateArgs;
use crate::create_args::{create_options, ensure_image};
pub use crate::exec::{exec, ExecArgs};
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

pub(crate) fn engine(root: &Path) -> anyhow::Result<Engine> {
    Engine::open(root).with_context(|| format!("opening the engine at {}", root.display()))
}

pub(crate) fn usage(msg: String) -> anyhow::Error {
    Exit(125, msg).into()
}

fn do_create(root: &Path, a: &CreateArgs) -> anyhow::Result<(Engine, Record)> {
    let o = create_options(a)?;
    // Docker refuses these before it looks for the image (or pulls it).
    ops::check_limits(&o).map_err(|e| usage(e.to_string()))?;
    ensure_image(root, &o.image, &a.pull)?;
    // `--pod new:NAME`: the pod first, gone again if the container cannot be made.
    let new_pod = match a.pod.as_deref().and_then(|p| p.strip_prefix("new:")) {
        Some(name) => Some(crate::pods::create_pod(
            root,
            &berth_engine::pods::PodOptions {
                name: Some(name.to_string()),
                ..Default::default()
            },
        )?),
        None => None,
    };
    let e = engine(root)?;
    let mut images = crate::images::open(root)?;
    let made = ops::create(&e, &mut images, &o).map_err(|err| {
        if let Some(p) = &new_pod {
            let _ = berth_engine::pods::remove(&e, &p.id, true);
        }
        match engine_exit(err).downcast::<Exit>() {
            Ok(Exit(_, m)) => anyhow::Error::from(Exit(125, m)),
            Err(e) => e,
        }
    })?;
    for w in &made.warnings {
        eprintln!("WARNING: {w}");
    }
    Ok((e, made.record))
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
    run_record(root, &e, &r, a.detach, a.interactive, a.sig_proxy, &a.detach_keys)
}

/// Starts a container just made and, unless `detach`, stays attached and exits with its
/// code (`run`, `compose run`).
pub(crate) fn run_record(
    root: &Path,
    e: &Engine,
    r: &Record,
    detach: bool,
    interactive: bool,
    sig_proxy: bool,
    detach_keys: &str,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the berth binary")?;
    if detach {
        ops::start(e, &r.id, &exe).map_err(engine_exit)?;
        println!("{}", r.id);
        return Ok(());
    }
    let hello = crate::attach::hello(interactive, r.tty);
    let stream = match ops::start_attached(e, &r.id, &exe, Some(&hello)) {
        Ok(Some(s)) => s,
        Ok(None) => bail!("container {} was already running", r.id),
        Err(err) => return Err(engine_exit(err)),
    };
    let session = session(root, r, interactive, sig_proxy, detach_keys)?;
    finish_session(e, r, stream, &session)
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

/// `logs -f`: prints what the container writes until it stops (or is removed), then what
/// is left.
pub(crate) fn follow(e: &Engine, r: &Record, reader: &mut berth_engine::logs::Reader, timestamps: bool) {
    let dir = e.dir(&r.id);
    loop {
        let got = reader.more();
        for en in &got {
            emit(en, timestamps);
        }
        if !got.is_empty() {
            continue;
        }
        let st = e.state(&r.id);
        let gone = !dir.exists();
        if gone
            || !matches!(st.status, Status::Running | Status::Created)
            || (st.status == Status::Created && !st.error.is_empty())
        {
            for en in reader.more() {
                emit(&en, timestamps);
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
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
    if st.status == Status::Paused {
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
    crate::views::print_deleted("Containers", &gone);
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
    /// MEMs in which to allow execution (0-3, 0,1).
    #[arg(long)]
    pub cpuset_mems: Option<String>,
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
        .map(|r| berth_engine::options::RestartPolicy::parse(r).map_err(|err| usage(err.to_string())))
        .transpose()?;
    let u = berth_engine::ops::Update {
        memory: size(&a.memory)?,
        memory_reservation: size(&a.memory_reservation)?,
        memory_swap: size(&a.memory_swap)?,
        cpu_quota,
        cpu_shares: a.cpu_shares,
        cpuset_cpus: a.cpuset_cpus.clone(),
        cpuset_mems: a.cpuset_mems.clone(),
        hugepage_limits: None,
        unified: None,
        pids_limit: a.pids_limit,
        restart,
    };
    each(root, &a.containers, &|e, n| berth_engine::ops::update(e, n, &u))
}
