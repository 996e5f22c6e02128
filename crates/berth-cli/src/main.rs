//! `berth`: the container engine's command line. Today it carries the OCI runtime front,
//! `berth runtime ...`, which is also what the binary does when invoked as `berth-runtime`
//! (the name dockerd, containerd and podman are pointed at).

mod exit;
mod runtime;

use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// berth: a fast, secure, Docker-compatible container engine.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The OCI runtime, runc-compatible (also invoked as `berth-runtime`).
    Runtime(runtime::RuntimeCli),
}

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = Path::new(&argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("berth")
        .to_string();
    let as_runtime = name == "berth-runtime" || name == "runc";
    // Commands that enter a container re-execute from a sealed binary first (see
    // berth_runtime::seal); deciding that before clap saves parsing the arguments twice.
    if runtime::enters_container(std::env::args().skip(1), as_runtime) {
        if let Some(n) = runtime::preserve_fds_arg(std::env::args().skip(1)) {
            if let Err(e) = berth_runtime::reserve_fds(n) {
                eprintln!("berth-runtime: reserving preserved descriptors: {e}");
                return ExitCode::from(1);
            }
        }
        if let Err(e) = berth_runtime::seal::ensure_sealed() {
            eprintln!("berth-runtime: sealing the runtime binary: {e}");
            return ExitCode::from(1);
        }
    }
    if as_runtime {
        let cli = runtime::RuntimeCli::parse();
        return runtime::main(cli);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Runtime(r) => runtime::main(r),
    }
}
