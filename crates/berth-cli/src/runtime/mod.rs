//! `berth runtime`: a runc-compatible command line over `berth-runtime` (runc's flags, output
//! and exit codes, so containerd's shim, conmon and scripts written for runc work unchanged).

mod exec;
mod lifecycle;
mod manage;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use berth_runtime::{ContainerError, Runtime};
use clap::{Parser, Subcommand, ValueEnum};

/// Global runtime options, as runc's.
#[derive(Debug, Parser)]
#[command(name = "berth-runtime", version, about = "berth's OCI runtime (runc-compatible)")]
pub struct RuntimeCli {
    /// Root directory for container state.
    #[arg(long, global = true, default_value = berth_runtime::DEFAULT_ROOT)]
    root: PathBuf,
    /// Write errors to this file instead of only stderr.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Format of the log file.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log debug messages too.
    #[arg(long, global = true)]
    debug: bool,
    /// cgroupsPath is systemd's slice:prefix:name form.
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    /// Accepted for runc compatibility; rootless mode is detected.
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "auto")]
    rootless: Option<String>,
    /// Accepted for runc compatibility (checkpointing is not supported).
    #[arg(long, global = true, hide = true)]
    criu: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create a container; its process waits for `start`.
    Create(lifecycle::CreateArgs),
    /// Start a created container.
    Start(lifecycle::IdArg),
    /// Create and start a container (and wait for it, unless -d).
    Run(lifecycle::RunArgs),
    /// Print a container's state as JSON.
    State(lifecycle::IdArg),
    /// Send a signal to a container's init (or every process with --all).
    Kill(lifecycle::KillArgs),
    /// Delete a container.
    Delete(lifecycle::DeleteArgs),
    /// List containers.
    #[command(alias = "ls")]
    List(lifecycle::ListArgs),
    /// Run a process in a running container.
    Exec(exec::ExecArgs),
    /// List a container's processes.
    Ps(manage::PsArgs),
    /// Freeze every process of a container.
    Pause(lifecycle::IdArg),
    /// Thaw a paused container.
    Resume(lifecycle::IdArg),
    /// Change a running container's resource limits.
    Update(manage::UpdateArgs),
    /// Print container statistics and OOM events.
    Events(manage::EventsArgs),
    /// Print what this runtime supports (runtime-spec features.md).
    Features,
    /// Write a default config.json.
    Spec(manage::SpecArgs),
}

/// Global options that take a value, which the pre-parse scan must skip over.
const GLOBAL_WITH_VALUE: [&str; 4] = ["--root", "--log", "--log-format", "--criu"];

/// Whether the command line runs `create`, `run` or `exec` (the commands that enter a
/// container), found without clap: skip `runtime` (unless invoked as the runtime) and the
/// global options, then look at the first word.
pub fn enters_container(args: impl Iterator<Item = String>, as_runtime: bool) -> bool {
    let mut args = args.peekable();
    if !as_runtime && args.next_if(|a| a == "runtime").is_none() {
        return false;
    }
    while let Some(a) = args.next() {
        if GLOBAL_WITH_VALUE.contains(&a.as_str()) {
            args.next();
            continue;
        }
        if a.starts_with('-') {
            continue;
        }
        return matches!(a.as_str(), "create" | "run" | "exec");
    }
    false
}

/// The value of `--preserve-fds`, read before clap (see `berth_runtime::reserve_fds`).
pub fn preserve_fds_arg(args: impl Iterator<Item = String>) -> Option<u32> {
    let mut args = args;
    let mut found = None;
    while let Some(a) = args.next() {
        if a == "--" {
            break;
        }
        if a == "--preserve-fds" {
            found = args.next().and_then(|v| v.parse().ok());
        } else if let Some(v) = a.strip_prefix("--preserve-fds=") {
            found = v.parse().ok();
        }
    }
    found
}

/// Runs a runtime command; errors go to stderr and, with --log, to the log file.
pub fn main(cli: RuntimeCli) -> ExitCode {
    let rt = Runtime {
        root: cli.root.clone(),
        systemd_cgroup: cli.systemd_cgroup,
    };
    let r = match cli.command {
        Cmd::Create(a) => lifecycle::create(&rt, a),
        Cmd::Start(a) => rt.start(&a.id).map(|()| ExitCode::SUCCESS).map_err(Into::into),
        Cmd::Run(a) => lifecycle::run(&rt, a),
        Cmd::State(a) => lifecycle::state(&rt, &a.id),
        Cmd::Kill(a) => lifecycle::kill(&rt, a),
        Cmd::Delete(a) => lifecycle::delete(&rt, a),
        Cmd::List(a) => lifecycle::list(&rt, a),
        Cmd::Exec(a) => exec::exec(&rt, a),
        Cmd::Ps(a) => manage::ps(&rt, a),
        Cmd::Pause(a) => rt
            .set_paused(&a.id, true)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Cmd::Resume(a) => rt
            .set_paused(&a.id, false)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Cmd::Update(a) => manage::update(&rt, a),
        Cmd::Events(a) => manage::events(&rt, a),
        Cmd::Features => manage::features(),
        Cmd::Spec(a) => manage::spec(a, cli.rootless.as_deref().is_some_and(|v| v != "false")),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}");
            let _ = writeln!(std::io::stderr(), "berth-runtime: {msg}");
            if let Some(log) = &cli.log {
                write_log(log, cli.log_format, "error", &msg);
            }
            let kind = e
                .downcast_ref::<ContainerError>()
                .map(ContainerError::kind)
                .unwrap_or(berth_oci::ErrorKind::Internal);
            crate::exit::runtime_failure(kind)
        }
    }
}

/// Appends one record to the runtime log in runc's format (containerd's shim reads the last
/// error from it).
fn write_log(path: &std::path::Path, format: LogFormat, level: &str, msg: &str) {
    let time = berth_runtime::state::rfc3339(std::time::SystemTime::now());
    let line = match format {
        LogFormat::Json => serde_json::json!({"level": level, "msg": msg, "time": time}).to_string(),
        LogFormat::Text => format!("time=\"{time}\" level={level} msg={msg:?}"),
    };
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enters(args: &[&str], as_runtime: bool) -> bool {
        enters_container(args.iter().map(|s| s.to_string()), as_runtime)
    }

    #[test]
    fn preserve_fds_is_found_before_parsing() {
        let f = |a: &[&str]| preserve_fds_arg(a.iter().map(|s| s.to_string()));
        assert_eq!(f(&["run", "--preserve-fds", "3", "id"]), Some(3));
        assert_eq!(f(&["exec", "--preserve-fds=2", "id", "sh"]), Some(2));
        assert_eq!(f(&["run", "id"]), None);
        assert_eq!(f(&["exec", "id", "--", "x", "--preserve-fds", "9"]), None);
    }

    #[test]
    fn finds_the_subcommand_past_global_options() {
        assert!(enters(
            &[
                "--root",
                "/run/x",
                "--log",
                "l.json",
                "--log-format=json",
                "create",
                "--bundle",
                "b",
                "id"
            ],
            true
        ));
        assert!(enters(&["runtime", "--debug", "exec", "id", "sh"], false));
        assert!(enters(&["--systemd-cgroup", "run", "id"], true));
        assert!(
            !enters(&["--root", "run", "state", "id"], true),
            "the value of --root is not a command"
        );
        assert!(!enters(&["state", "create"], true));
        assert!(!enters(&["create"], false), "berth create is not the runtime");
        assert!(!enters(&["runtime", "delete", "run"], false));
    }
}
