//! `exec`: a process run in a running container.

use std::path::Path;

use anyhow::Context;
use clap::Args;

use crate::containers::{engine, engine_exit, Exit};
use crate::create_args::expand_env;

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
    if a.interactive && a.tty && !a.detach && !crate::attach::stdin_is_tty() {
        return Err(Exit(1, "the input device is not a TTY".into()).into());
    }
    let e = engine(root)?;
    let r = berth_engine::exec::running(&e, &a.container_and_command[0]).map_err(|err| match err {
        berth_engine::EngineError::Conflict(m) => Exit(1, format!("Error response from daemon: {m}")).into(),
        other => engine_exit(other),
    })?;
    let config = berth_engine::exec::ExecConfig {
        args: a.container_and_command[1..].to_vec(),
        env: a.env.iter().map(|x| expand_env(x)).collect(),
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        tty: a.tty,
        console_size: if a.tty { crate::attach::terminal_size() } else { None },
    };
    let process = berth_engine::exec::process(&e, &r, &config).map_err(engine_exit)?;
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
    // An exec that cannot start is 126 unless its program is missing (127), as in Docker.
    let failed = |err: berth_runtime::container::ContainerError| -> anyhow::Error {
        let code = match err.exit_code() {
            125 => 126,
            c => c,
        };
        Exit(code, err.to_string()).into()
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
