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
    if name == "berth-runtime" || name == "runc" {
        let cli = runtime::RuntimeCli::parse();
        return runtime::main(cli);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Runtime(r) => runtime::main(r),
    }
}
