//! `berth`: the container engine's command line: Docker's image and container commands
//! (daemonless, over berth-image and berth-engine), the hidden per-container monitor
//! (`_monitor`), and the OCI runtime front, `berth runtime ...`, which is also what the binary
//! does when invoked as `berth-runtime` (the name dockerd, containerd and podman are pointed
//! at).
// Docker-shaped JSON built with serde_json::json! nests deeper than the default limit.
#![recursion_limit = "256"]

mod attach;
mod build;
mod cdi;
mod compose;
mod compose_args;
mod compose_views;
mod containers;
mod create_args;
mod exec;
mod exit;
mod format;
mod images;
mod kube;
mod networks;
mod pods;
mod registry;
mod runtime;
mod system;
mod template;
mod views;
mod volumes;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// berth: a fast, secure, Docker-compatible container engine.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, propagate_version = true)]
struct Cli {
    /// Root of berth's persistent state (images, containers, volumes); rootless:
    /// $XDG_DATA_HOME/berth.
    #[arg(long, env = "BERTH_ROOT", default_value_os_t = berth_engine::rootless::default_root())]
    root: PathBuf,
    /// Run every container in a user namespace of USER's subordinate ids (/etc/subuid), as
    /// dockerd's --userns-remap (root).
    #[arg(long = "userns-remap", env = "BERTH_USERNS_REMAP", global = true)]
    userns_remap: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The OCI runtime, runc-compatible (also invoked as `berth-runtime`).
    Runtime(Box<runtime::RuntimeCli>),
    /// Download an image from a registry.
    Pull(images::PullArgs),
    /// Upload an image to a registry.
    Push(images::PushArgs),
    /// List images.
    Images(images::ImagesArgs),
    /// Manage images.
    Image {
        #[command(subcommand)]
        command: images::ImageCmd,
    },
    /// Remove one or more images.
    Rmi(images::RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(images::TagArgs),
    /// Show the history of an image.
    History(images::HistoryArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default).
    Save(images::SaveArgs),
    /// Load an image from a tar archive or STDIN.
    Load(images::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image.
    Import(images::ImportArgs),
    /// Return low-level information on containers and images.
    Inspect(images::InspectArgs),
    /// Create and run a new container from an image.
    #[command(disable_help_flag = true)]
    Run(containers::CreateArgs),
    /// Create a new container.
    #[command(disable_help_flag = true)]
    Create(containers::CreateArgs),
    /// Start one or more stopped containers.
    Start(containers::StartArgs),
    /// List containers.
    #[command(visible_alias = "list")]
    Ps(containers::PsArgs),
    /// Fetch the logs of a container.
    Logs(containers::LogsArgs),
    /// Stop one or more running containers.
    Stop(containers::StopArgs),
    /// Kill one or more running containers.
    Kill(containers::KillArgs),
    /// Remove one or more containers.
    Rm(containers::RmArgs),
    /// Block until one or more containers stop, then print their exit codes.
    Wait(containers::WaitArgs),
    /// Execute a command in a running container.
    Exec(containers::ExecArgs),
    /// Rename a container.
    Rename(containers::RenameArgs),
    /// Pause all processes within one or more containers.
    Pause(containers::ContainersArgs),
    /// Unpause all processes within one or more containers.
    Unpause(containers::ContainersArgs),
    /// Display the running processes of a container.
    Top(containers::TopArgs),
    /// Inspect changes to files or directories on a container's filesystem.
    Diff(containers::ContainersArgs),
    /// Create a new image from a container's changes.
    Commit(containers::CommitArgs),
    /// Export a container's filesystem as a tar archive.
    Export(containers::ExportArgs),
    /// Manage containers.
    Container {
        #[command(subcommand)]
        command: ContainerCmd,
    },
    /// Copy files/folders between a container and the local filesystem.
    Cp(containers::CpArgs),
    /// Display a live stream of container resource usage statistics.
    Stats(containers::StatsArgs),
    /// Update configuration of one or more containers.
    Update(containers::UpdateArgs),
    /// Show the berth version information.
    Version,
    /// Display system-wide information.
    Info {
        /// Format output using a Go template, or `json`.
        #[arg(short, long)]
        format: Option<String>,
    },
    /// List port mappings of a container.
    Port(containers::PortArgs),
    /// Manage volumes.
    Volume {
        #[command(subcommand)]
        command: containers::VolumeCmd,
    },
    /// Manage pods.
    Pod {
        #[command(subcommand)]
        command: pods::PodCmd,
    },
    /// Manage networks.
    Network {
        #[command(subcommand)]
        command: networks::NetworkCmd,
    },
    /// Build an image from a Dockerfile.
    Build(build::BuildArgs),
    /// Check a Dockerfile for common mistakes.
    Lint(build::LintArgs),
    /// Manage the build cache.
    Builder {
        #[command(subcommand)]
        command: build::BuilderCmd,
    },
    /// Serve the Docker Engine API (the docker CLI, docker-compose and the SDKs drive berth
    /// through it).
    Daemon {
        /// Where to listen (repeatable): unix:///path, or tcp://HOST:PORT with --tlsverify
        /// (default: /run/berth/berth.sock; rootless: $XDG_RUNTIME_DIR/berth.sock).
        #[arg(short = 'H', long = "host")]
        host: Vec<String>,
        /// Use TLS and verify clients' certificates (required for tcp://).
        #[arg(long)]
        tlsverify: bool,
        /// Trust client certificates signed only by this CA.
        #[arg(long)]
        tlscacert: Option<PathBuf>,
        /// Path to the daemon's TLS certificate file.
        #[arg(long)]
        tlscert: Option<PathBuf>,
        /// Path to the daemon's TLS key file.
        #[arg(long)]
        tlskey: Option<PathBuf>,
        /// Also serve the Kubernetes CRI on this socket (unix://PATH), as `berth cri` does.
        #[arg(long = "cri-listen")]
        cri_listen: Option<String>,
        /// The cluster store overlay networks are coordinated through
        /// (etcd://HOST:PORT[,HOST:PORT...]).
        #[arg(long = "cluster-store")]
        cluster_store: Option<String>,
        /// This host's address on the cluster's underlay (its VTEP): IP or IP:PORT.
        #[arg(long = "cluster-advertise")]
        cluster_advertise: Option<String>,
    },
    /// Container Device Interface devices: list them, generate a vendor's spec.
    Cdi {
        #[command(subcommand)]
        command: cdi::CdiCmd,
    },
    /// Define and run multi-container applications (the Compose Specification).
    Compose(compose::ComposeArgs),
    /// Play Kubernetes YAML as berth pods.
    Kube {
        #[command(subcommand)]
        command: kube::KubeCmd,
    },
    /// Serve the Kubernetes Container Runtime Interface (RuntimeService and ImageService)
    /// for a kubelet, crictl or critest.
    Cri {
        /// The socket to serve on.
        #[arg(long, default_value = "unix:///run/berth/cri.sock")]
        listen: String,
        /// Per-registry mirrors and TLS settings, in containerd's certs.d layout
        /// (HOST/hosts.toml).
        #[arg(long = "registry-config-path", default_value = "/etc/berth/certs.d")]
        registry_config: PathBuf,
        /// Where the CNI network configuration is (the first file by name is used; none:
        /// sandboxes are on berth's default bridge).
        #[arg(long = "cni-conf-dir", default_value = DEFAULT_CNI_CONF_DIR)]
        cni_conf_dir: PathBuf,
        /// Where CNI plugins are, comma separated, searched in order.
        #[arg(long = "cni-bin-dir", default_value = DEFAULT_CNI_BIN_DIRS)]
        cni_bin_dir: String,
        /// The address of the streaming server that exec, attach and port-forward URLs
        /// point to.
        #[arg(long = "stream-address", default_value = "127.0.0.1")]
        stream_address: std::net::IpAddr,
        /// The streaming server's port (0: any free one).
        #[arg(long = "stream-port", default_value_t = 0)]
        stream_port: u16,
    },
    /// The per-container monitor (internal).
    #[command(name = "_monitor", hide = true)]
    Monitor {
        /// Container id.
        id: String,
        /// Start the container once a client has attached.
        #[arg(long)]
        attach: bool,
        /// A pipe to report progress on (listening, started).
        #[arg(long)]
        ready_fd: Option<i32>,
    },
    /// Attach local standard input, output, and error streams to a running container.
    Attach(containers::AttachArgs),
    /// Restart one or more containers.
    Restart(containers::StopArgs),
    /// Log in to a registry.
    Login(images::LoginArgs),
    /// Log out from a registry.
    Logout(images::LogoutArgs),
    /// Run a command in the rootless user's namespace, as its root (e.g. to clean files
    /// the containers made in the store).
    Unshare {
        /// The command (default: $SHELL).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Manage berth.
    System {
        #[command(subcommand)]
        command: images::SystemCmd,
    },
}

#[derive(Debug, Subcommand)]
enum ContainerCmd {
    /// Remove all stopped containers.
    Prune(containers::ContainerPruneArgs),
    /// List containers.
    #[command(visible_alias = "list")]
    Ls(containers::PsArgs),
}

fn engine_main(root: &Path, command: Command) -> anyhow::Result<()> {
    use images::ImageCmd as I;
    match command {
        Command::Runtime(_) => anyhow::bail!("the runtime front is dispatched before the engine"),
        Command::Pull(a) | Command::Image { command: I::Pull(a) } => images::pull(root, &a),
        Command::Push(a) | Command::Image { command: I::Push(a) } => images::push(root, &a),
        Command::Images(a) | Command::Image { command: I::Ls(a) } => images::images(root, &a),
        Command::Rmi(a) | Command::Image { command: I::Rm(a) } => images::rmi(root, &a),
        Command::Tag(a) | Command::Image { command: I::Tag(a) } => images::tag(root, &a),
        Command::History(a) | Command::Image { command: I::History(a) } => images::history(root, &a),
        Command::Save(a) | Command::Image { command: I::Save(a) } => images::save(root, &a),
        Command::Load(a) | Command::Image { command: I::Load(a) } => images::load(root, &a),
        Command::Import(a) | Command::Image { command: I::Import(a) } => images::import(root, &a),
        Command::Image { command: I::Inspect(a) } => images::inspect(root, &a),
        Command::Inspect(a) => containers::inspect(root, &a),
        Command::Run(a) => containers::run(root, &a),
        Command::Create(a) => containers::create(root, &a),
        Command::Start(a) => containers::start(root, &a),
        Command::Attach(a) => containers::attach(root, &a),
        Command::Restart(a) => containers::restart(root, &a),
        Command::Ps(a) => containers::ps(root, &a),
        Command::Logs(a) => containers::logs(root, &a),
        Command::Stop(a) => containers::stop(root, &a),
        Command::Kill(a) => containers::kill(root, &a),
        Command::Rm(a) => containers::rm(root, &a),
        Command::Wait(a) => containers::wait(root, &a),
        Command::Exec(a) => containers::exec(root, &a),
        Command::Rename(a) => containers::rename(root, &a),
        Command::Pause(a) => containers::pause(root, &a, true),
        Command::Unpause(a) => containers::pause(root, &a, false),
        Command::Top(a) => containers::top(root, &a),
        Command::Diff(a) => containers::diff(root, &a),
        Command::Commit(a) => containers::commit(root, &a),
        Command::Export(a) => containers::export(root, &a),
        Command::Container {
            command: ContainerCmd::Prune(a),
        } => containers::prune(root, &a),
        Command::Container {
            command: ContainerCmd::Ls(a),
        } => containers::ps(root, &a),
        Command::Volume { command } => containers::volume(root, &command),
        Command::Network { command } => networks::network(root, &command),
        Command::Pod { command } => pods::pod(root, &command),
        Command::Cp(a) => containers::cp(root, &a),
        Command::Stats(a) => containers::stats(root, &a),
        Command::Update(a) => containers::update(root, &a),
        Command::Version => {
            println!("berth version {}", env!("CARGO_PKG_VERSION"));
            println!("OCI runtime: berth-runtime (built in), runtime-spec 1.2");
            Ok(())
        }
        Command::Monitor { .. } => anyhow::bail!("the monitor is dispatched before the engine"),
        Command::Image { command: I::Prune(a) } => images::prune(root, &a),
        Command::Login(a) => images::login(&a),
        Command::Logout(a) => images::logout(&a),
        Command::System {
            command: images::SystemCmd::Df(a),
        } => images::df(root, &a),
        Command::System {
            command: images::SystemCmd::Info { format },
        }
        | Command::Info { format } => containers::info(root, format.as_deref()),
        Command::System {
            command: images::SystemCmd::Prune { all, volumes, force },
        } => containers::system_prune(root, all, volumes, force),
        Command::Port(a) => containers::port(root, &a),
        Command::Build(a) | Command::Image { command: I::Build(a) } => build::build(root, &a),
        Command::Lint(a) => build::lint_cmd(&a),
        Command::Daemon {
            host,
            tlsverify,
            tlscacert,
            tlscert,
            tlskey,
            cri_listen,
            cluster_store,
            cluster_advertise,
        } => {
            berth_engine::cluster::join(cluster_store.as_deref(), cluster_advertise.as_deref())?;
            let tls = match (tlsverify, tlscacert, tlscert, tlskey) {
                (true, Some(ca), Some(cert), Some(key)) => Some(berth_api::TlsFiles { ca, cert, key }),
                (false, None, None, None) => None,
                _ => anyhow::bail!("TLS needs all of --tlsverify, --tlscacert, --tlscert and --tlskey"),
            };
            let host = if host.is_empty() {
                vec![format!("unix://{}", berth_engine::rootless::default_socket().display())]
            } else {
                host
            };
            let listen = host
                .iter()
                .map(|h| berth_api::parse_listen(h, tls.as_ref()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!(e))?;
            // The CRI server runs beside the API's, on its own thread and runtime; the API
            // server takes SIGTERM or SIGINT and the CRI's is stopped after it.
            let cri = match cri_listen {
                Some(l) => {
                    // The schema made once, before two servers open the database at once.
                    berth_engine::store::Engine::open(root)?;
                    let opts = cri_options(
                        root,
                        registry_config_dir(),
                        PathBuf::from(DEFAULT_CNI_CONF_DIR),
                        DEFAULT_CNI_BIN_DIRS,
                        (std::net::Ipv4Addr::LOCALHOST.into(), 0),
                    )?;
                    Some(berth_cri::Background::start(opts, &l).map_err(|e| anyhow::anyhow!(e))?)
                }
                None => None,
            };
            let served = berth_api::serve(root, &listen).map_err(|e| anyhow::anyhow!(e));
            if let Some(c) = cri {
                c.stop().map_err(|e| anyhow::anyhow!(e))?;
            }
            served
        }
        Command::Kube { command } => kube::kube(root, &command),
        Command::Compose(a) => compose::compose(root, &a),
        Command::Cdi { command } => cdi::cdi(&command),
        Command::Cri {
            listen,
            registry_config,
            cni_conf_dir,
            cni_bin_dir,
            stream_address,
            stream_port,
        } => berth_cri::run(
            cri_options(
                root,
                registry_config,
                cni_conf_dir,
                &cni_bin_dir,
                (stream_address, stream_port),
            )?,
            &listen,
        )
        .map_err(|e| anyhow::anyhow!(e)),
        Command::Builder { command } => build::builder(root, &command),
        Command::Unshare { command } => match berth_engine::rootless::unshare_exec(&command) {
            Ok(never) => match never {},
            Err(e) => Err(containers::Exit(125, e.to_string()).into()),
        },
    }
}

/// The CRI server's options: the data root, and this binary for monitors and execs.
fn cri_options(
    root: &std::path::Path,
    registry_config: PathBuf,
    cni_conf_dir: PathBuf,
    cni_bin_dirs: &str,
    (stream_address, stream_port): (std::net::IpAddr, u16),
) -> anyhow::Result<berth_cri::Options> {
    Ok(berth_cri::Options {
        root: root.to_path_buf(),
        exe: std::env::current_exe().map_err(|e| anyhow::anyhow!("finding the berth binary: {e}"))?,
        registry_config,
        cni: berth_engine::cni::CniOptions {
            conf_dir: cni_conf_dir,
            bin_dirs: cni_bin_dirs
                .split(',')
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .collect(),
        },
        stream_address,
        stream_port,
    })
}

/// The CNI configuration directory the kubelet's runtimes read.
const DEFAULT_CNI_CONF_DIR: &str = "/etc/cni/net.d";
/// Where CNI plugins are installed: the upstream place, then Debian's.
const DEFAULT_CNI_BIN_DIRS: &str = "/opt/cni/bin,/usr/lib/cni";

/// The certs.d directory `berth pull` reads (`BERTH_REGISTRY_CONFIG`, else the default).
fn registry_config_dir() -> PathBuf {
    std::env::var_os("BERTH_REGISTRY_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(berth_engine::images::DEFAULT_HOSTS_DIR))
}

/// The subcommand of a command line: its first word after the global options that take a
/// value (`--root`, `--userns-remap`).
fn subcommand(mut args: impl Iterator<Item = String>) -> Option<String> {
    while let Some(a) = args.next() {
        if a == "--root" || a == "--userns-remap" {
            args.next();
            continue;
        }
        if a.starts_with("--root=") || a.starts_with("--userns-remap=") {
            continue;
        }
        return Some(a);
    }
    None
}

/// Whether this is the container monitor (`berth [--root R] _monitor ID`) or `berth exec`:
/// both fork processes into containers, so they run sealed like the runtime.
fn is_monitor(args: impl Iterator<Item = String>) -> bool {
    subcommand(args).is_some_and(|a| a == "_monitor" || a == "exec")
}

/// Whether the command line is `berth [--root R] runtime ...`, or one that touches no
/// store (help, version, lint), which a user may run without a namespace.
fn is_runtime_command(args: impl Iterator<Item = String>) -> bool {
    subcommand(args).is_none_or(|a| {
        matches!(
            a.as_str(),
            "runtime" | "help" | "--help" | "-h" | "--version" | "-V" | "version" | "lint" | "cdi"
        )
    })
}

fn main() -> ExitCode {
    // A pod's infra, re-executed by the runtime's pause: nothing else.
    if std::env::args_os().next().is_some_and(|a| a == "berth-pause") {
        berth_runtime::minit::pause_loop();
    }
    // The container keeper (`berth _keep ROOT ID MONITOR`) runs before anything else, so the
    // process that only waits touches as little memory as possible.
    {
        let mut a = std::env::args_os().skip(1);
        if a.next().is_some_and(|s| s == "_keep") {
            if let (Some(root), Some(id), Some(pid)) = (a.next(), a.next(), a.next()) {
                let pid = pid.to_str().and_then(|p| p.parse().ok()).unwrap_or(0);
                berth_engine::keeper::keeper(Path::new(&root), &id.to_string_lossy(), pid);
            }
            return ExitCode::from(2);
        }
    }
    if std::env::args().nth(1).as_deref() == Some("_overlay") {
        let root = std::env::args_os().nth(2).unwrap_or_default();
        return ExitCode::from(u8::try_from(berth_engine::networks::agent::main(Path::new(&root))).unwrap_or(1));
    }
    if std::env::args().nth(1).as_deref() == Some("_forward") {
        let args: Vec<String> = std::env::args().skip(2).collect();
        return ExitCode::from(u8::try_from(berth_engine::forward::main(&args)).unwrap_or(1));
    }
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = Path::new(&argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("berth")
        .to_string();
    if name == "berth-init" {
        let args: Vec<String> = std::env::args().skip(1).collect();
        berth_runtime::minit::main(&args);
    }
    let as_runtime = name == "berth-runtime" || name == "runc";
    // Commands that enter a container re-execute from a sealed binary first (see
    // berth_runtime::seal); deciding that before clap saves parsing the arguments twice.
    if runtime::enters_container(std::env::args().skip(1), as_runtime) || is_monitor(std::env::args().skip(1)) {
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
    // A rootless user's commands run in the user's namespace (the runtime front excepted:
    // run as a user it is a rootless runtime of its own, as runc is). First, before any
    // thread exists.
    if !is_runtime_command(std::env::args().skip(1)) {
        if let Err(e) = berth_engine::rootless::enter() {
            eprintln!("Error: {e}");
            return ExitCode::from(125);
        }
    }
    let cli = Cli::parse();
    if let Some(u) = &cli.userns_remap {
        // The engine (and the monitors and daemon it starts) read it from there. Still
        // single-threaded here.
        std::env::set_var(berth_engine::userns::REMAP_ENV, u);
    }
    match cli.command {
        Command::Runtime(r) => runtime::main(*r),
        Command::Monitor { id, attach, ready_fd } => {
            let code = berth_engine::monitor::main(&cli.root, &id, attach, ready_fd);
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        command => match engine_main(&cli.root, command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => match e.downcast_ref::<containers::Exit>() {
                Some(containers::Exit(code, msg)) => {
                    if !msg.is_empty() {
                        eprintln!(
                            "{}",
                            if msg.starts_with("Error") {
                                msg.clone()
                            } else {
                                format!("Error: {msg}")
                            }
                        );
                    }
                    ExitCode::from(*code)
                }
                None => {
                    eprintln!("Error: {e:#}");
                    ExitCode::from(1)
                }
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        runtime::RuntimeCli::command().debug_assert();
    }
}
