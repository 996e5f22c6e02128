//! `exec`: run a process in a running container, from `--process` JSON or from arguments
//! layered over the container's own process settings, as runc does.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use berth_oci::oci_spec::runtime::{Capability, Process};
use berth_runtime::{ExecOpts, Runtime};
use clap::Args;

/// `exec`.
#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub struct ExecArgs {
    /// Unix socket that receives the pty master.
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Extra environment, KEY=VALUE.
    #[arg(short, long)]
    env: Vec<String>,
    /// Allocate a pty.
    #[arg(short, long)]
    tty: bool,
    /// uid[:gid] to run as.
    #[arg(short, long)]
    user: Option<String>,
    /// Additional gids.
    #[arg(short = 'g', long)]
    additional_gids: Vec<u32>,
    /// A process.json to run (overrides arguments and the options above).
    #[arg(short, long)]
    process: Option<PathBuf>,
    /// Return once the process runs.
    #[arg(short, long)]
    detach: bool,
    /// File to write the process's pid to.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Accepted for runc compatibility (SELinux is not supported).
    #[arg(long)]
    process_label: Option<String>,
    /// Accepted for runc compatibility (AppArmor is not supported).
    #[arg(long)]
    apparmor: Option<String>,
    /// Set no_new_privs.
    #[arg(long)]
    no_new_privs: bool,
    /// Add a capability.
    #[arg(short, long)]
    cap: Vec<String>,
    /// Pass descriptors 3..3+N.
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    /// Exec even if the container is paused.
    #[arg(long)]
    ignore_paused: bool,
    /// Accepted for runc compatibility (sub-cgroups are not supported).
    #[arg(long)]
    cgroup: Option<String>,
    /// The container id.
    id: String,
    /// Command and arguments.
    command: Vec<String>,
}

fn build_process(rt: &Runtime, a: &ExecArgs) -> anyhow::Result<Process> {
    if let Some(p) = &a.process {
        let data = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        let proc: Process = serde_json::from_slice(&data).with_context(|| format!("parsing {}", p.display()))?;
        return Ok(proc);
    }
    if a.command.is_empty() {
        bail!("exec needs a command (or --process)");
    }
    let (_, st, _) = rt.load(&a.id)?;
    let mut p = st.config.process().clone().context("container config has no process")?;
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    let mut env = p.env().clone().unwrap_or_default();
    for e in &a.env {
        let key = e.split('=').next().unwrap_or("");
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u.parse::<u32>(), g.parse::<u32>().map(Some)),
            None => (u.parse::<u32>(), Ok(None)),
        };
        let (Ok(uid), Ok(gid)) = (uid, gid) else {
            bail!("invalid --user {u:?}: expected uid[:gid] as numbers");
        };
        p.user_mut().set_uid(uid);
        if let Some(g) = gid {
            p.user_mut().set_gid(g);
        }
    }
    if !a.additional_gids.is_empty() {
        p.user_mut().set_additional_gids(Some(a.additional_gids.clone()));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for c in &a.cap {
            let cap: Capability =
                serde_json::from_value(serde_json::json!(c)).with_context(|| format!("unknown capability {c:?}"))?;
            let add = |s: Option<std::collections::HashSet<Capability>>| {
                let mut s = s.unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            let b = add(caps.bounding().clone());
            let e = add(caps.effective().clone());
            let pm = add(caps.permitted().clone());
            caps.set_bounding(b);
            caps.set_effective(e);
            caps.set_permitted(pm);
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

pub fn exec(rt: &Runtime, a: ExecArgs) -> anyhow::Result<ExitCode> {
    let process = build_process(rt, &a)?;
    let mut opts = ExecOpts {
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        preserve_fds: a.preserve_fds,
        subreaper: !a.detach,
        ignore_paused: a.ignore_paused,
    };
    if a.detach {
        rt.exec(&a.id, &process, &opts)?;
        return Ok(ExitCode::SUCCESS);
    }
    let signals = berth_runtime::supervise::block_signals().context("blocking signals")?;
    opts.subreaper = true;
    let created = rt.exec(&a.id, &process, &opts)?;
    let code = berth_runtime::supervise::supervise(created.pid, signals, created.console)
        .context("waiting for the process")?;
    Ok(crate::exit::from_status(code))
}
