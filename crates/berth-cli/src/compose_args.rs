//! `berth compose`'s flags, as `docker compose` takes them.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `compose`'s global flags and its subcommand.
#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// Compose configuration files.
    #[arg(short = 'f', long = "file")]
    pub files: Vec<PathBuf>,
    /// Project name.
    #[arg(short = 'p', long = "project-name")]
    pub project_name: Option<String>,
    /// Specify a profile to enable.
    #[arg(long)]
    pub profile: Vec<String>,
    /// Specify an alternate environment file.
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Specify an alternate working directory (default: the first file's).
    #[arg(long = "project-directory")]
    pub project_directory: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: ComposeCmd,
}

/// `compose`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum ComposeCmd {
    /// Create and start containers.
    Up(UpArgs),
    /// Stop and remove containers, networks (and with -v volumes).
    Down(DownArgs),
    /// Create containers (not started).
    Create(UpArgs),
    /// List containers.
    Ps(PsArgs),
    /// View output from containers.
    Logs(LogsArgs),
    /// Execute a command in a running container.
    Exec(ExecArgs),
    /// Run a one-off command on a service.
    Run(RunArgs),
    /// Build or rebuild services.
    Build(ServicesArgs),
    /// Pull service images.
    Pull(ServicesArgs),
    /// Push service images.
    Push(ServicesArgs),
    /// Start services.
    Start(ServicesArgs),
    /// Stop services.
    Stop(StopArgs),
    /// Restart service containers.
    Restart(StopArgs),
    /// Force stop service containers.
    Kill(KillArgs),
    /// Remove stopped service containers.
    Rm(RmArgs),
    /// Parse, resolve and render the compose file in canonical format.
    Config(ConfigArgs),
    /// Display the running processes.
    Top(ServicesArgs),
    /// Print the public port for a port binding.
    Port(PortArgs),
    /// List images used by the created containers.
    Images(ServicesArgs),
    /// List running compose projects.
    Ls(LsArgs),
    /// Show the version information.
    Version {
        /// Shows only the version number.
        #[arg(long)]
        short: bool,
    },
}

/// `up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Detached mode: run containers in the background.
    #[arg(short, long)]
    pub(crate) detach: bool,
    /// Build images before starting containers.
    #[arg(long)]
    pub(crate) build: bool,
    /// Don't build an image, even if it's policy.
    #[arg(long)]
    pub(crate) no_build: bool,
    /// Wait for services to be running|healthy. Implies detached mode.
    #[arg(long)]
    pub(crate) wait: bool,
    /// Maximum duration to wait for the project to be running|healthy (seconds).
    #[arg(long)]
    pub(crate) wait_timeout: Option<u64>,
    /// Scale SERVICE to NUM instances.
    #[arg(long)]
    pub(crate) scale: Vec<String>,
    /// Recreate containers even if their configuration hasn't changed.
    #[arg(long)]
    pub(crate) force_recreate: bool,
    /// If containers already exist, don't recreate them.
    #[arg(long)]
    pub(crate) no_recreate: bool,
    /// Don't start linked services.
    #[arg(long)]
    pub(crate) no_deps: bool,
    /// Remove containers for services not defined in the Compose file.
    #[arg(long)]
    pub(crate) remove_orphans: bool,
    /// Pull image before running ("always"|"missing"|"never").
    #[arg(long)]
    pub(crate) pull: Option<String>,
    /// Don't start the services after creating them.
    #[arg(long)]
    pub(crate) no_start: bool,
    /// Stops all containers if any container was stopped (attached mode).
    #[arg(long)]
    pub(crate) abort_on_container_exit: bool,
    /// Use this timeout in seconds for container shutdown when attached.
    #[arg(short, long)]
    pub(crate) timeout: Option<u64>,
    /// Produce monochrome output.
    #[arg(long)]
    pub(crate) no_color: bool,
    /// Services.
    pub(crate) services: Vec<String>,
}

/// `down`.
#[derive(Debug, Args)]
pub struct DownArgs {
    /// Remove named volumes declared in the "volumes" section and anonymous volumes.
    #[arg(short, long)]
    pub(crate) volumes: bool,
    /// Remove images used by services ("local": those without a custom tag, or "all").
    #[arg(long)]
    pub(crate) rmi: Option<String>,
    /// Remove containers for services not defined in the Compose file.
    #[arg(long)]
    pub(crate) remove_orphans: bool,
    /// Specify a shutdown timeout in seconds.
    #[arg(short, long)]
    pub(crate) timeout: Option<u64>,
}

/// `ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all stopped containers.
    #[arg(short, long)]
    pub(crate) all: bool,
    /// Only display IDs.
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Display services.
    #[arg(long)]
    pub(crate) services: bool,
    /// Format the output: table or json.
    #[arg(long)]
    pub(crate) format: Option<String>,
    /// Filter services by status.
    #[arg(long)]
    pub(crate) status: Vec<String>,
    /// Services.
    pub(crate) service: Vec<String>,
}

/// `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short, long)]
    pub(crate) follow: bool,
    /// Show timestamps.
    #[arg(short, long)]
    pub(crate) timestamps: bool,
    /// Number of lines to show from the end of the logs for each container.
    #[arg(short = 'n', long, default_value = "all")]
    pub(crate) tail: String,
    /// Produce monochrome output.
    #[arg(long)]
    pub(crate) no_color: bool,
    /// Don't print prefix in logs.
    #[arg(long)]
    pub(crate) no_log_prefix: bool,
    /// Services.
    pub(crate) services: Vec<String>,
}

/// `exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Detached mode: run the command in the background.
    #[arg(short, long)]
    pub(crate) detach: bool,
    /// Disable pseudo-TTY allocation.
    #[arg(short = 'T', long = "no-TTY")]
    pub(crate) no_tty: bool,
    /// Run the command as this user.
    #[arg(short, long)]
    pub(crate) user: Option<String>,
    /// Path to workdir directory for this command.
    #[arg(short, long)]
    pub(crate) workdir: Option<String>,
    /// Set environment variables.
    #[arg(short, long)]
    pub(crate) env: Vec<String>,
    /// Index of the container if the service has multiple replicas.
    #[arg(long, default_value_t = 1)]
    pub(crate) index: u32,
    /// Give extended privileges to the process.
    #[arg(long)]
    pub(crate) privileged: bool,
    /// SERVICE COMMAND [ARGS...]
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) service_and_command: Vec<String>,
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run container in background and print container ID.
    #[arg(short, long)]
    pub(crate) detach: bool,
    /// Automatically remove the container when it exits.
    #[arg(long)]
    pub(crate) rm: bool,
    /// Disable pseudo-TTY allocation.
    #[arg(short = 'T', long = "no-TTY")]
    pub(crate) no_tty: bool,
    /// Keep STDIN open even if not attached.
    #[arg(short, long, default_value_t = true)]
    pub(crate) interactive: bool,
    /// Set environment variables.
    #[arg(short, long)]
    pub(crate) env: Vec<String>,
    /// Run as specified username or uid.
    #[arg(short, long)]
    pub(crate) user: Option<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub(crate) workdir: Option<String>,
    /// Override the entrypoint of the image.
    #[arg(long)]
    pub(crate) entrypoint: Option<String>,
    /// Assign a name to the container.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Don't start linked services.
    #[arg(long)]
    pub(crate) no_deps: bool,
    /// Publish a container's port(s) to the host.
    #[arg(short, long)]
    pub(crate) publish: Vec<String>,
    /// Run command with all service's ports enabled and mapped to the host.
    #[arg(long)]
    pub(crate) service_ports: bool,
    /// Bind mount a volume.
    #[arg(short, long)]
    pub(crate) volume: Vec<String>,
    /// Add or override a label.
    #[arg(short, long)]
    pub(crate) label: Vec<String>,
    /// SERVICE [COMMAND] [ARGS...]
    #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) service_and_command: Vec<String>,
}

/// Commands that take services.
#[derive(Debug, Args)]
pub struct ServicesArgs {
    /// Only display IDs (images) / suppress output (pull).
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Pull what it can and ignore images with pull failures.
    #[arg(long)]
    pub(crate) ignore_pull_failures: bool,
    /// Build options accepted for compatibility (`--no-cache`, `--pull`).
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// Always attempt to pull a newer version of the image (build).
    #[arg(long)]
    pub(crate) pull: bool,
    /// Services.
    pub(crate) services: Vec<String>,
}

/// `stop`, `restart`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Specify a shutdown timeout in seconds.
    #[arg(short, long)]
    pub(crate) timeout: Option<u64>,
    /// Services.
    pub(crate) services: Vec<String>,
}

/// `kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// SIGNAL to send to the container.
    #[arg(short, long, default_value = "SIGKILL")]
    pub(crate) signal: String,
    /// Services.
    pub(crate) services: Vec<String>,
}

/// `rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Don't ask to confirm removal.
    #[arg(short, long)]
    pub(crate) force: bool,
    /// Stop the containers, if required, before removing.
    #[arg(short, long)]
    pub(crate) stop: bool,
    /// Remove any anonymous volumes attached to containers.
    #[arg(short, long)]
    pub(crate) volumes: bool,
    /// Services.
    pub(crate) services: Vec<String>,
}

/// `config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print the service names, one per line.
    #[arg(long)]
    pub(crate) services: bool,
    /// Print the volume names, one per line.
    #[arg(long)]
    pub(crate) volumes: bool,
    /// Print the profile names, one per line.
    #[arg(long)]
    pub(crate) profiles: bool,
    /// Print the service config hash, one per line (`*` for all).
    #[arg(long)]
    pub(crate) hash: Option<String>,
    /// Only validate the configuration, don't print anything.
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Format the output: yaml or json.
    #[arg(long, default_value = "yaml")]
    pub(crate) format: String,
}

/// `port`.
#[derive(Debug, Args)]
pub struct PortArgs {
    /// tcp or udp.
    #[arg(long, default_value = "tcp")]
    pub(crate) protocol: String,
    /// Index of the container if the service has multiple replicas.
    #[arg(long, default_value_t = 1)]
    pub(crate) index: u32,
    /// SERVICE.
    pub(crate) service: String,
    /// PRIVATE_PORT.
    pub(crate) private_port: u16,
}

/// `ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Show all stopped Compose projects.
    #[arg(short, long)]
    pub(crate) all: bool,
    /// Only display project names.
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Format the output: table or json.
    #[arg(long, default_value = "table")]
    pub(crate) format: String,
}
