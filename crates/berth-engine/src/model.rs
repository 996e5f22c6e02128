//! The engine's data model: what a container's record and state hold, in one module that
//! depends on no other, so the modules that act on it (store, volumes, health, spec,
//! networks) do not depend on each other through it. Each type is re-exported where it was
//! first defined.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where a container's network comes from (`--network`, `HostConfig.NetworkMode`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NetworkMode {
    /// The default bridge (`bridge`, `default` or nothing).
    #[default]
    Bridge,
    /// A network namespace with loopback only.
    None,
    /// The host's namespace.
    Host,
    /// Another container's namespace (`container:NAME|ID`).
    Container(String),
    /// A user-defined network, by name or id.
    Named(String),
    /// A network namespace made by someone else, by its file (`ns:PATH`, Podman's syntax;
    /// a CRI sandbox's, wired by CNI plugins).
    Path(String),
    /// User-mode networking by `pasta` (the rootless default) with its extra arguments
    /// (`pasta:ARG,ARG`).
    Pasta(Vec<String>),
    /// User-mode networking by `slirp4netns` with its options (`slirp4netns:OPT=V,...`).
    Slirp4netns(Vec<String>),
}

impl NetworkMode {
    /// `--network`'s value, as Docker reads it.
    pub fn parse(s: &str) -> NetworkMode {
        match s {
            "" | "default" | "bridge" => NetworkMode::Bridge,
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            "pasta" => NetworkMode::Pasta(Vec::new()),
            "slirp4netns" => NetworkMode::Slirp4netns(Vec::new()),
            s if s.starts_with("pasta:") || s.starts_with("slirp4netns:") => {
                let (kind, opts) = s.split_once(':').unwrap_or((s, ""));
                let opts: Vec<String> = opts.split(',').filter(|o| !o.is_empty()).map(str::to_string).collect();
                if kind == "pasta" {
                    NetworkMode::Pasta(opts)
                } else {
                    NetworkMode::Slirp4netns(opts)
                }
            }
            s => match (s.strip_prefix("container:"), s.strip_prefix("ns:")) {
                (Some(c), _) => NetworkMode::Container(c.to_string()),
                (None, Some(p)) => NetworkMode::Path(p.to_string()),
                (None, None) => NetworkMode::Named(s.to_string()),
            },
        }
    }

    /// True for the modes in which a container has no endpoint of its own on a bridge
    /// (`none`, `host`, `container:`).
    pub fn is_private(&self) -> bool {
        !matches!(self, NetworkMode::Bridge | NetworkMode::Named(_))
    }

    /// pasta or slirp4netns: a namespace of its own, wired by a user-mode network stack.
    pub fn is_user_mode(&self) -> bool {
        matches!(self, NetworkMode::Pasta(_) | NetworkMode::Slirp4netns(_))
    }

    /// The record's form of a user-mode mode (`pasta:ARG,...`).
    pub fn user_mode_string(&self) -> Option<String> {
        let (kind, opts) = match self {
            NetworkMode::Pasta(o) => ("pasta", o),
            NetworkMode::Slirp4netns(o) => ("slirp4netns", o),
            _ => return None,
        };
        Some(if opts.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}:{}", opts.join(","))
        })
    }

    /// A user-defined network (where fixed addresses and aliases are allowed).
    pub fn is_user_defined(&self) -> bool {
        matches!(self, NetworkMode::Named(_))
    }
}

/// Whose PID, IPC or UTS namespace a container is in (`--pid`, `--ipc`, `--uts`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NamespaceMode {
    /// A namespace of its own (empty, `private`, `shareable`).
    #[default]
    Private,
    /// The host's.
    Host,
    /// Another container's (`container:NAME|ID`).
    Container(String),
}

impl NamespaceMode {
    /// A flag's or a record's value; `None` for one Docker does not know.
    pub fn parse(s: &str) -> Option<NamespaceMode> {
        match s {
            "" | "private" | "shareable" => Some(NamespaceMode::Private),
            "host" => Some(NamespaceMode::Host),
            s => s
                .strip_prefix("container:")
                .filter(|c| !c.is_empty())
                .map(|c| NamespaceMode::Container(c.to_string())),
        }
    }

    /// The form a record keeps.
    pub fn to_record(&self) -> String {
        match self {
            NamespaceMode::Private => String::new(),
            NamespaceMode::Host => "host".into(),
            NamespaceMode::Container(id) => format!("container:{id}"),
        }
    }
}

/// A mount of a container, as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountSpec {
    /// `bind`, `volume` or `tmpfs`.
    pub kind: String,
    /// Host path (bind) or volume name (volume); empty for tmpfs.
    pub source: String,
    /// Path in the container.
    pub destination: String,
    /// Read-only.
    pub read_only: bool,
    /// tmpfs options (`size=...`, `mode=...`); a bind's propagation (`rslave`, ...).
    #[serde(default)]
    pub options: Vec<String>,
}

/// One `--device`: a host device node, or a directory of them, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMapping {
    /// The host path.
    pub host: String,
    /// The path in the container.
    pub container: String,
    /// Cgroup permissions: some of `r`, `w`, `m`.
    pub perms: String,
}

/// A container's health check (Docker's `Healthcheck` config).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HealthConfig {
    /// `["CMD", args...]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// Between probes.
    pub interval: Duration,
    /// Per probe.
    pub timeout: Duration,
    /// Grace before failures count.
    pub start_period: Duration,
    /// Consecutive failures before unhealthy.
    pub retries: u32,
}

/// One probe's result (Docker's health log entry).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Probe {
    /// RFC 3339.
    pub start: String,
    /// RFC 3339.
    pub end: String,
    /// Exit code (-1: timed out or could not run).
    pub exit_code: i32,
    /// Output, at most 4 KiB.
    pub output: String,
}

/// A container's health (Docker's `State.Health`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Health {
    /// starting, healthy, unhealthy.
    pub status: String,
    /// Consecutive failures.
    pub failing_streak: u32,
    /// The last five probes.
    pub log: Vec<Probe>,
}

/// What a Kubernetes probe runs (its handler).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ProbeHandler {
    /// A command exec'd in the container: exit 0 is success.
    Exec {
        /// Its argv.
        command: Vec<String>,
    },
    /// An HTTP GET from the container's network namespace: 200 to 399 is success.
    HttpGet {
        /// The host to connect to (empty: the pod's address).
        host: String,
        /// The port.
        port: u16,
        /// The path, with its query.
        path: String,
        /// Headers sent beside berth's own.
        headers: Vec<(String, String)>,
    },
    /// A TCP connection: one made is success.
    TcpSocket {
        /// The host (empty: the pod's address).
        host: String,
        /// The port.
        port: u16,
    },
    /// The gRPC health-checking protocol: `SERVING` is success.
    Grpc {
        /// The port.
        port: u16,
        /// The service asked about (empty: the server as a whole).
        service: String,
    },
}

/// A Kubernetes probe: its handler and timing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KubeProbe {
    /// What it runs.
    pub handler: ProbeHandler,
    /// Seconds after the start before the first probe.
    pub initial_delay: u32,
    /// Seconds between probes (at least 1).
    pub period: u32,
    /// Seconds a probe may take (at least 1).
    pub timeout: u32,
    /// Consecutive successes that make it succeed (at least 1).
    pub success_threshold: u32,
    /// Consecutive failures that make it fail (at least 1).
    pub failure_threshold: u32,
    /// Seconds a container this probe kills gets before SIGKILL (none: the container's).
    #[serde(default)]
    pub termination_grace: Option<u64>,
}

/// A container run with the kubelet's semantics (`kube play`): its probes and hooks, and
/// the kubelet's restart back-off instead of Docker's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KubeConfig {
    /// Restarts the container when it fails.
    #[serde(default)]
    pub liveness: Option<KubeProbe>,
    /// Says whether the container is ready.
    #[serde(default)]
    pub readiness: Option<KubeProbe>,
    /// Holds the others back until it succeeds; restarts the container when it fails.
    #[serde(default)]
    pub startup: Option<KubeProbe>,
    /// `lifecycle.postStart.exec`: run once the container started.
    #[serde(default)]
    pub post_start: Option<Vec<String>>,
    /// `lifecycle.preStop.exec`: run before the container is stopped.
    #[serde(default)]
    pub pre_stop: Option<Vec<String>>,
}

/// How a container's last run ended (the kubelet's `lastState.terminated`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Terminated {
    /// Its exit code.
    pub exit_code: i32,
    /// `Completed` (exit 0), `OOMKilled` or `Error`.
    pub reason: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339.
    pub finished_at: String,
}

/// A probe's last result.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProbeResult {
    /// `Success` or `Failure`.
    pub result: String,
    /// Why it failed (output, status code, error).
    pub message: String,
    /// Since when (RFC 3339): the probe that turned the result to this one. Later probes
    /// with the same result are not written down (no state file write per probe).
    pub time: String,
}

/// What the kubelet would report of a container (`kube play`'s containers).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KubeState {
    /// Its readiness: the readiness probe's verdict, or running and started without one.
    pub ready: bool,
    /// Its startup probe succeeded (or it has none) in this run.
    pub started: bool,
    /// Why it waits to run again (`CrashLoopBackOff`), or empty.
    #[serde(default)]
    pub waiting: String,
    /// How its previous run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Terminated>,
    /// The probes' last results, by kind (`liveness`, `readiness`, `startup`).
    #[serde(default)]
    pub probes: BTreeMap<String, ProbeResult>,
}

/// A published port as it was made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Published {
    /// Host address (`0.0.0.0`: all).
    pub host_ip: String,
    /// Host port.
    pub host_port: u16,
    /// `tcp` or `udp`.
    pub proto: String,
    /// Container port.
    pub port: u16,
}

/// A container's place on a network while it runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Attachment {
    /// The network's name.
    pub network: String,
    /// The network's id.
    pub network_id: String,
    /// The container's address.
    pub ip: String,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// The gateway.
    pub gateway: String,
    /// The container's MAC address.
    pub mac: String,
    /// The host end of the veth pair.
    pub veth: String,
    /// Published ports.
    pub ports: Vec<Published>,
    /// On a user network: the resolvers the embedded DNS relays other names to.
    #[serde(default)]
    pub dns_upstream: Vec<String>,
    /// On an overlay network: the container's address on the default bridge, its way out
    /// to the world and where its published ports lead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<String>,
}

/// What a container runs and how (Docker's `Config` and the parts of `HostConfig` berth
/// supports).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// 64 hex digits.
    pub id: String,
    /// Unique name, without the leading `/`.
    pub name: String,
    /// The image's config digest.
    pub image_id: String,
    /// The image as the user named it.
    pub image_name: String,
    /// RFC 3339.
    pub created: String,
    /// The command: entrypoint + cmd, resolved.
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The image's and the user's entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// The image's and the user's cmd.
    pub cmd: Option<Vec<String>>,
    /// Environment, `K=V`.
    pub env: Vec<String>,
    /// Working directory.
    pub working_dir: String,
    /// `uid[:gid]` or `name[:group]`, as given.
    pub user: String,
    /// `--group-add`: more groups (names in the image's group file, or numbers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    /// The groups the image's group file gives the user are left out (the CRI's Strict
    /// supplemental groups policy).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub groups_strict: bool,
    /// Hostname.
    pub hostname: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Signal `stop` sends first.
    pub stop_signal: String,
    /// Seconds `stop` waits before SIGKILL.
    pub stop_timeout: u64,
    /// `--rm`.
    pub auto_remove: bool,
    /// `none` or `host`.
    pub network_mode: String,
    /// `--memory` in bytes (0: none).
    pub memory: i64,
    /// `--pids-limit` (0: none).
    pub pids_limit: i64,
    /// `--read-only`.
    pub read_only: bool,
    /// `--restart` policy: no, always, on-failure, unless-stopped.
    #[serde(default)]
    pub restart: String,
    /// The N of `on-failure:N` (0: no limit).
    #[serde(default)]
    pub restart_max: u32,
    /// Volumes, bind and tmpfs mounts.
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// Anonymous volumes this container made (removed with it by `rm -v` and `--rm`).
    #[serde(default)]
    pub anonymous_volumes: Vec<String>,
    /// The health check, from the image or the flags.
    #[serde(default)]
    pub health: Option<HealthConfig>,
    /// The cgroup the container's cgroup is made under.
    #[serde(default)]
    pub cgroup_parent: String,
    /// The pod it belongs to (its id), if any.
    #[serde(default)]
    pub pod: String,
    /// A pod's infra: its process is the runtime's pause, not a command.
    #[serde(default)]
    pub infra: bool,
    /// `--pid`: empty (its own namespace), `host`, or `container:ID`.
    #[serde(default)]
    pub pid_mode: String,
    /// `--ipc`: empty (its own namespace), `host`, or `container:ID`.
    #[serde(default)]
    pub ipc_mode: String,
    /// `--uts`: empty (its own namespace), `host`, or `container:ID`.
    #[serde(default)]
    pub uts_mode: String,
    /// `--userns` as inspect shows it (`UsernsMode`).
    #[serde(default)]
    pub userns_mode: String,
    /// The user namespace's uid map (empty: none of its own).
    #[serde(default)]
    pub uid_map: Vec<crate::userns::IdMap>,
    /// Its gid map.
    #[serde(default)]
    pub gid_map: Vec<crate::userns::IdMap>,
    /// Annotations (Docker's `HostConfig.Annotations`, a CRI container's): written into the
    /// OCI spec beside berth's own.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// `--cap-add` (`CAP_`-prefixed, or `ALL`).
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// `--cap-drop` (`CAP_`-prefixed, or `ALL`).
    #[serde(default)]
    pub cap_drop: Vec<String>,
    /// `--privileged`.
    #[serde(default)]
    pub privileged: bool,
    /// `--security-opt seccomp=`: `unconfined`, or a profile's JSON; empty for the default.
    #[serde(default)]
    pub seccomp: String,
    /// `--sysctl`: namespaced kernel parameters set in the container.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// `--oom-score-adj` (clamped at create to berth's own where lowering is not allowed).
    #[serde(default)]
    pub oom_score_adj: i32,
    /// The masked paths that replace the defaults (none: the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masked_paths: Option<Vec<String>>,
    /// The read-only paths that replace the defaults (none: the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly_paths: Option<Vec<String>>,
    /// `--security-opt no-new-privileges`.
    #[serde(default)]
    pub no_new_privileges: bool,
    /// `--ulimit name=soft[:hard]`.
    #[serde(default)]
    pub ulimits: Vec<(String, u64, u64)>,
    /// `--memory-reservation` in bytes (0: none).
    #[serde(default)]
    pub memory_reservation: i64,
    /// `--memory-swap` in bytes (0: default, -1: unlimited).
    #[serde(default)]
    pub memory_swap: i64,
    /// `--cpus` as CFS quota per 100 ms period, in µs (0: none).
    #[serde(default)]
    pub cpu_quota: i64,
    /// `--cpu-shares` (0: default).
    #[serde(default)]
    pub cpu_shares: u64,
    /// `--cpuset-cpus`.
    #[serde(default)]
    pub cpuset_cpus: String,
    /// `--cpuset-mems`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cpuset_mems: String,
    /// Hugepage limits: bytes per page size.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hugepage_limits: BTreeMap<String, u64>,
    /// cgroup v2 files to write (the OCI `unified` map).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unified: BTreeMap<String, String>,
    /// `--log-driver`: json-file or none.
    #[serde(default)]
    pub log_driver: String,
    /// `--log-opt max-size` in bytes (0: the default, [`crate::monitor::LOG_MAX_SIZE`]).
    #[serde(default)]
    pub log_max_size: u64,
    /// `--log-opt max-file` (0: the default, [`crate::monitor::LOG_MAX_FILES`]).
    #[serde(default)]
    pub log_max_file: u32,
    /// A second log in the CRI's format (`TIME STREAM P|F LINE`) that the kubelet reads
    /// and rotates, reopened when the monitor gets SIGHUP (empty: none).
    #[serde(default)]
    pub cri_log_path: String,
    /// `-t`: the container's stdio is a terminal.
    #[serde(default)]
    pub tty: bool,
    /// `--device HOST[:CONTAINER[:PERMS]]`: host devices (or directories of them) made in
    /// the container and allowed by its device cgroup.
    #[serde(default)]
    pub devices: Vec<DeviceMapping>,
    /// CDI devices (`vendor.com/class=name`), applied to the spec from the registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cdi_devices: Vec<String>,
    /// `-t`: the terminal's initial size (rows, columns; 0: unknown).
    #[serde(default)]
    pub console_size: (u16, u16),
    /// `-i`: the container's stdin stays open for attached clients.
    #[serde(default)]
    pub open_stdin: bool,
    /// Close the container's stdin when the first attached client's stdin ends.
    #[serde(default)]
    pub stdin_once: bool,
    /// `--init`: berth's minimal init runs as PID 1 and the command as its child.
    #[serde(default)]
    pub init: bool,
    /// `--runtime`: empty for the built-in runtime, else an OCI runtime's name or path.
    #[serde(default)]
    pub runtime: String,
    /// Ports the image exposes (`80/tcp`), as Docker's `Config.ExposedPorts`.
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    /// The image's VOLUME paths, as Docker's `Config.Volumes`.
    #[serde(default)]
    pub image_volumes: Vec<String>,
    /// `-p` specs as given.
    #[serde(default)]
    pub publish: Vec<String>,
    /// `-P`: publish every exposed port on a random host port.
    #[serde(default)]
    pub publish_all: bool,
    /// `--add-host NAME:IP` lines for `/etc/hosts`.
    #[serde(default)]
    pub extra_hosts: Vec<(String, String)>,
    /// `--ip`: the address wanted on a user network.
    #[serde(default)]
    pub ip: String,
    /// `--network-alias`: more names on a user network's DNS.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Run with the kubelet's semantics (`kube play`): probes, hooks, back-off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube: Option<KubeConfig>,
}

impl Record {
    /// The network mode as kept (`bridge` is the default bridge).
    pub fn network(&self) -> NetworkMode {
        NetworkMode::parse(&self.network_mode)
    }
}

/// A container's status, as Docker names them (`State.Status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made, never started (or its start failed).
    #[default]
    Created,
    /// Its init runs.
    Running,
    /// Frozen (read from its cgroup: never stored).
    Paused,
    /// Between two runs of a restart policy.
    Restarting,
    /// Being removed.
    Removing,
    /// Its last run ended.
    Exited,
    /// Could not be cleaned up.
    Dead,
}

impl Status {
    /// Docker's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// The status Docker names `s`.
    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Created,
            Status::Running,
            Status::Paused,
            Status::Restarting,
            Status::Removing,
            Status::Exited,
            Status::Dead,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a container is, as the monitor recorded it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    /// Its status.
    pub status: Status,
    /// Host pid of the init while running.
    pub pid: i32,
    /// The monitor's pid.
    pub monitor_pid: i32,
    /// Exit code once exited.
    pub exit_code: i32,
    /// Why it failed to start.
    pub error: String,
    /// RFC 3339, or Docker's zero time.
    pub started_at: String,
    /// RFC 3339, or Docker's zero time.
    pub finished_at: String,
    /// The kernel OOM-killed a process of it.
    pub oom_killed: bool,
    /// Restarts by the restart policy.
    #[serde(default)]
    pub restart_count: u32,
    /// Health, when the container has a health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Its place on a bridge network while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<Attachment>,
    /// What the kubelet would report (a `kube play` container's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube: Option<KubeState>,
}

/// Docker's zero time.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl State {
    pub(crate) fn new_created() -> State {
        State {
            status: Status::Created,
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            ..State::default()
        }
    }

    /// Whether the container is running (after reconciliation).
    pub fn running(&self) -> bool {
        self.status == Status::Running
    }
}
