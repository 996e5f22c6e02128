//! create, start, run, state, kill, delete, list.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use berth_runtime::{parse_signal, CreateOpts, Runtime, Status};
use clap::Args;

/// A lone container id.
#[derive(Debug, Args)]
pub struct IdArg {
    /// The container id.
    pub id: String,
}

/// `create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The container id.
    id: String,
    #[command(flatten)]
    opts: CommonCreate,
}

#[derive(Debug, Args)]
struct CommonCreate {
    /// Bundle directory (holding config.json).
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket that receives the pty master when the process has a terminal.
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// File to write the container process's pid to.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Do not use pivot_root (for a rootfs on ramfs).
    #[arg(long)]
    no_pivot: bool,
    /// Accepted for runc compatibility; no session keyring is created.
    #[arg(long)]
    no_new_keyring: bool,
    /// Pass descriptors 3..3+N to the container.
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
}

impl CommonCreate {
    fn opts(&self, subreaper: bool) -> CreateOpts {
        CreateOpts {
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            no_pivot: self.no_pivot,
            preserve_fds: self.preserve_fds,
            subreaper,
        }
    }
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The container id.
    id: String,
    #[command(flatten)]
    opts: CommonCreate,
    /// Start and return at once.
    #[arg(short, long)]
    detach: bool,
    /// Keep the container's state after it exits.
    #[arg(long)]
    keep: bool,
}

/// `kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal every process of the container.
    #[arg(short, long)]
    all: bool,
    /// The container id.
    id: String,
    /// Signal name or number.
    #[arg(default_value = "SIGTERM")]
    signal: String,
}

/// `delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kill the container first if it runs.
    #[arg(short, long)]
    force: bool,
    /// The container id.
    id: String,
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// table or json.
    #[arg(short, long, default_value = "table")]
    format: String,
    /// Print ids only.
    #[arg(short, long)]
    quiet: bool,
}

pub fn create(rt: &Runtime, a: CreateArgs) -> anyhow::Result<ExitCode> {
    rt.create(&a.id, &a.opts.opts(false))?;
    Ok(ExitCode::SUCCESS)
}

pub fn run(rt: &Runtime, a: RunArgs) -> anyhow::Result<ExitCode> {
    if a.detach {
        rt.create(&a.id, &a.opts.opts(false))?;
        if let Err(e) = rt.start(&a.id) {
            let _ = rt.delete(&a.id, true);
            return Err(e.into());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let signals = berth_runtime::supervise::block_signals().context("blocking signals")?;
    let created = rt.create(&a.id, &a.opts.opts(true))?;
    if let Err(e) = rt.start(&a.id) {
        let _ = rt.delete(&a.id, true);
        return Err(e.into());
    }
    let code = berth_runtime::supervise::supervise(created.pid, signals, created.console)
        .context("waiting for the container")?;
    if !a.keep {
        rt.delete(&a.id, true)?;
    }
    Ok(crate::exit::from_status(code))
}

pub fn state(rt: &Runtime, id: &str) -> anyhow::Result<ExitCode> {
    let s = rt.state(id)?;
    println!("{}", serde_json::to_string_pretty(&s)?);
    Ok(ExitCode::SUCCESS)
}

pub fn kill(rt: &Runtime, a: KillArgs) -> anyhow::Result<ExitCode> {
    let sig = parse_signal(&a.signal)?;
    rt.kill(&a.id, sig, a.all)?;
    Ok(ExitCode::SUCCESS)
}

pub fn delete(rt: &Runtime, a: DeleteArgs) -> anyhow::Result<ExitCode> {
    rt.delete(&a.id, a.force)?;
    Ok(ExitCode::SUCCESS)
}

pub fn list(rt: &Runtime, a: ListArgs) -> anyhow::Result<ExitCode> {
    let all = rt.list()?;
    if a.quiet {
        for (st, _) in &all {
            println!("{}", st.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    match a.format.as_str() {
        "json" => {
            let v: Vec<serde_json::Value> = all
                .iter()
                .map(|(st, status)| {
                    let mut j = berth_runtime::state::oci_state_json(st, *status);
                    j["pid"] = serde_json::json!(if *status == Status::Stopped { 0 } else { st.pid });
                    j
                })
                .collect();
            println!("{}", serde_json::to_string(&v)?);
        }
        "table" => {
            println!(
                "{:<12} {:<8} {:<10} {:<40} {:<31} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            );
            for (st, status) in &all {
                let pid = if *status == Status::Stopped { 0 } else { st.pid };
                println!(
                    "{:<12} {:<8} {:<10} {:<40} {:<31} {}",
                    st.id,
                    pid,
                    status.as_str(),
                    st.bundle.display(),
                    st.created,
                    st.owner
                );
            }
        }
        f => anyhow::bail!("invalid format {f:?}: use table or json"),
    }
    Ok(ExitCode::SUCCESS)
}
