//! The normalized model: every service in long syntax, as `compose config` prints it. The
//! typed structs read that normalized tree, so their shapes are fixed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A loaded project.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project's name.
    pub name: String,
    /// Its directory (relative paths are against it).
    pub working_dir: std::path::PathBuf,
    /// The files it was read from.
    pub config_files: Vec<std::path::PathBuf>,
    /// The enabled services.
    pub services: BTreeMap<String, Service>,
    /// Every service the files define (disabled profiles included): what `down` removes.
    pub all_services: Vec<String>,
    /// Networks.
    pub networks: BTreeMap<String, Network>,
    /// Volumes.
    pub volumes: BTreeMap<String, Volume>,
    /// Secrets.
    pub secrets: BTreeMap<String, FileSource>,
    /// Configs.
    pub configs: BTreeMap<String, FileSource>,
    /// The normalized tree (`config` prints it).
    pub normalized: serde_yaml::Value,
    /// What was read but is not served.
    pub warnings: Vec<String>,
}

/// A service, normalized.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Service {
    /// The image.
    pub image: Option<String>,
    /// How to build it.
    pub build: Option<Build>,
    /// The command.
    pub command: Option<Vec<String>>,
    /// The entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Environment (a null value: unset).
    pub environment: BTreeMap<String, Option<String>>,
    /// Published ports.
    pub ports: Vec<Port>,
    /// Exposed ports.
    pub expose: Vec<String>,
    /// Mounts.
    pub volumes: Vec<Mount>,
    /// tmpfs mounts (`PATH[:OPTIONS]`).
    pub tmpfs: Vec<String>,
    /// Networks joined, with aliases and addresses.
    pub networks: BTreeMap<String, Option<Attachment>>,
    /// `network_mode`.
    pub network_mode: Option<String>,
    /// Dependencies.
    pub depends_on: BTreeMap<String, Dependency>,
    /// The health check.
    pub healthcheck: Option<Healthcheck>,
    /// The restart policy.
    pub restart: Option<String>,
    /// `deploy` (replicas, resource limits).
    pub deploy: Option<Deploy>,
    /// `user`.
    pub user: Option<String>,
    /// `working_dir`.
    pub working_dir: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `init`.
    pub init: Option<bool>,
    /// `cap_add`.
    pub cap_add: Vec<String>,
    /// `cap_drop`.
    pub cap_drop: Vec<String>,
    /// `security_opt`.
    pub security_opt: Vec<String>,
    /// ulimits by name.
    pub ulimits: BTreeMap<String, Ulimit>,
    /// Devices (`HOST:CONTAINER[:PERMS]`).
    pub devices: Vec<String>,
    /// `extra_hosts` (`NAME:IP`).
    pub extra_hosts: Vec<String>,
    /// `dns`.
    pub dns: Vec<String>,
    /// `dns_search`.
    pub dns_search: Vec<String>,
    /// `dns_opt`.
    pub dns_opt: Vec<String>,
    /// `hostname`.
    pub hostname: Option<String>,
    /// `stop_signal`.
    pub stop_signal: Option<String>,
    /// `stop_grace_period`.
    pub stop_grace_period: Option<String>,
    /// `profiles`.
    pub profiles: Vec<String>,
    /// Secrets mounted.
    pub secrets: Vec<FileRef>,
    /// Configs mounted.
    pub configs: Vec<FileRef>,
    /// `container_name`.
    pub container_name: Option<String>,
    /// `pull_policy`: always, never, missing, build.
    pub pull_policy: Option<String>,
    /// `privileged`.
    pub privileged: Option<bool>,
    /// `read_only`.
    pub read_only: Option<bool>,
    /// `tty`.
    pub tty: Option<bool>,
    /// `stdin_open`.
    pub stdin_open: Option<bool>,
    /// `sysctls`.
    pub sysctls: BTreeMap<String, String>,
    /// `group_add`.
    pub group_add: Vec<String>,
    /// `ipc`.
    pub ipc: Option<String>,
    /// `pid`.
    pub pid: Option<String>,
    /// `logging`.
    pub logging: Option<Logging>,
    /// `mem_limit`, normalized into deploy's limits; kept for the printout.
    pub mem_limit: Option<String>,
    /// `cpus`.
    pub cpus: Option<String>,
    /// `pids_limit`.
    pub pids_limit: Option<i64>,
    /// `shm_size`.
    pub shm_size: Option<String>,
    /// `runtime`.
    pub runtime: Option<String>,
    /// `userns_mode`.
    pub userns_mode: Option<String>,
    /// `volumes_from`.
    pub volumes_from: Vec<String>,
    /// `platform` (this machine's only).
    pub platform: Option<String>,
    /// `scale` (the old spelling of `deploy.replicas`).
    pub scale: Option<u32>,
    /// `gpus`: `all`, or device requests (`driver`, `count`, `device_ids`, `capabilities`).
    pub gpus: Option<serde_yaml::Value>,
}

/// `build`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Build {
    /// The context directory.
    pub context: String,
    /// The Dockerfile (relative to the context).
    pub dockerfile: Option<String>,
    /// An inline Dockerfile.
    pub dockerfile_inline: Option<String>,
    /// Build arguments.
    pub args: BTreeMap<String, Option<String>>,
    /// The target stage.
    pub target: Option<String>,
    /// Build secrets.
    pub secrets: Vec<FileRef>,
    /// Labels of the image.
    pub labels: BTreeMap<String, String>,
    /// `network`.
    pub network: Option<String>,
    /// `no_cache`.
    pub no_cache: Option<bool>,
    /// `pull`.
    pub pull: Option<bool>,
    /// More tags.
    pub tags: Vec<String>,
}

/// One published port.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Port {
    /// The container's port.
    pub target: u16,
    /// The host's port or range (none: any free one).
    pub published: Option<String>,
    /// The host address.
    pub host_ip: Option<String>,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// `ingress` or `host`.
    pub mode: String,
}

/// One mount.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Mount {
    /// `volume`, `bind` or `tmpfs`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The volume's key, or the host path (none: an anonymous volume).
    pub source: Option<String>,
    /// Where in the container.
    pub target: String,
    /// Read-only.
    pub read_only: bool,
    /// Bind options.
    pub bind: Option<BindOptions>,
    /// Volume options.
    pub volume: Option<VolumeOptions>,
    /// tmpfs options.
    pub tmpfs: Option<TmpfsOptions>,
}

/// A bind mount's options.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BindOptions {
    /// Propagation.
    pub propagation: Option<String>,
    /// Make the host path if missing.
    pub create_host_path: Option<bool>,
    /// SELinux relabelling.
    pub selinux: Option<String>,
}

/// A volume mount's options.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeOptions {
    /// Do not copy the image's files in.
    pub nocopy: Option<bool>,
    /// A path inside the volume.
    pub subpath: Option<String>,
}

/// A tmpfs mount's options.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TmpfsOptions {
    /// Bytes (or a size with a unit).
    pub size: Option<serde_yaml::Value>,
    /// Mode.
    pub mode: Option<serde_yaml::Value>,
}

/// How a service joins a network.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Attachment {
    /// More names on that network.
    pub aliases: Vec<String>,
    /// A fixed address.
    pub ipv4_address: Option<String>,
    /// A fixed IPv6 address.
    pub ipv6_address: Option<String>,
    /// Priority.
    pub priority: Option<i64>,
}

/// One `depends_on` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Dependency {
    /// `service_started`, `service_healthy` or `service_completed_successfully`.
    pub condition: String,
    /// Restart this service when the dependency is updated.
    pub restart: bool,
    /// An error when the dependency is missing (else a warning).
    pub required: bool,
}

/// `healthcheck`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Healthcheck {
    /// The test (`CMD ...`, `CMD-SHELL ...`, `NONE`).
    pub test: Vec<String>,
    /// Between checks.
    pub interval: Option<String>,
    /// A check's limit.
    pub timeout: Option<String>,
    /// Failures before unhealthy.
    pub retries: Option<u32>,
    /// Grace after start.
    pub start_period: Option<String>,
    /// Between checks in the grace period.
    pub start_interval: Option<String>,
    /// No check.
    pub disable: Option<bool>,
}

/// `deploy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Deploy {
    /// Containers to run.
    pub replicas: Option<u32>,
    /// Limits and reservations.
    pub resources: Option<Resources>,
    /// Restart policy (swarm's; its `condition` maps to `restart`).
    pub restart_policy: Option<RestartPolicy>,
    /// Labels (of the swarm service: ignored here).
    pub labels: BTreeMap<String, String>,
}

/// `deploy.resources`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// Limits.
    pub limits: Option<Limits>,
    /// Reservations.
    pub reservations: Option<Limits>,
}

/// Resource figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// CPUs (`0.5`).
    pub cpus: Option<String>,
    /// Memory (`512M`).
    pub memory: Option<String>,
    /// Processes.
    pub pids: Option<i64>,
    /// Device requests (reservations: `capabilities: [gpu]`, `count`, `device_ids`,
    /// `driver`).
    pub devices: Vec<serde_yaml::Value>,
}

/// `deploy.restart_policy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RestartPolicy {
    /// `none`, `on-failure`, `any`.
    pub condition: Option<String>,
    /// Attempts.
    pub max_attempts: Option<u32>,
}

/// One ulimit.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Ulimit {
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
}

/// `logging`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Logging {
    /// The driver.
    pub driver: Option<String>,
    /// Its options.
    pub options: BTreeMap<String, String>,
}

/// A secret or config a service mounts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FileRef {
    /// The top-level secret's or config's key.
    pub source: String,
    /// Where (a secret: under `/run/secrets/`; a config: `/SOURCE`).
    pub target: Option<String>,
    /// Mode.
    pub mode: Option<serde_yaml::Value>,
}

/// A top-level network.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Network {
    /// Its engine name (`PROJECT_KEY` unless set).
    pub name: String,
    /// The driver.
    pub driver: Option<String>,
    /// Driver options.
    pub driver_opts: BTreeMap<String, String>,
    /// Addresses.
    pub ipam: Option<Ipam>,
    /// Made elsewhere; must exist.
    pub external: bool,
    /// No way out.
    pub internal: bool,
    /// `attachable`.
    pub attachable: Option<bool>,
    /// `enable_ipv6`.
    pub enable_ipv6: Option<bool>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// `ipam`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Ipam {
    /// The driver.
    pub driver: Option<String>,
    /// Pools.
    pub config: Vec<IpamPool>,
}

/// One address pool.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IpamPool {
    /// The subnet.
    pub subnet: Option<String>,
    /// The gateway.
    pub gateway: Option<String>,
    /// A smaller range to allocate from.
    pub ip_range: Option<String>,
}

/// A top-level volume.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Volume {
    /// Its engine name (`PROJECT_KEY` unless set).
    pub name: String,
    /// The driver.
    pub driver: Option<String>,
    /// Driver options.
    pub driver_opts: BTreeMap<String, String>,
    /// Made elsewhere; must exist.
    pub external: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// A top-level secret or config.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FileSource {
    /// Its name.
    pub name: String,
    /// A host file.
    pub file: Option<String>,
    /// An environment variable holding it.
    pub environment: Option<String>,
    /// Inline content (configs).
    pub content: Option<String>,
    /// Made elsewhere (a swarm's): not served.
    pub external: bool,
}

impl Project {
    /// A project known only by its name (its containers, networks and volumes are found
    /// by their labels): what `down -p NAME` acts on without the files.
    pub fn named(name: &str) -> Project {
        Project {
            name: name.to_string(),
            working_dir: std::path::PathBuf::new(),
            config_files: Vec::new(),
            services: BTreeMap::new(),
            all_services: Vec::new(),
            networks: BTreeMap::new(),
            volumes: BTreeMap::new(),
            secrets: BTreeMap::new(),
            configs: BTreeMap::new(),
            normalized: serde_yaml::Value::Null,
            warnings: Vec::new(),
        }
    }
}

impl Service {
    /// How many containers: `--scale`, else `deploy.replicas`, else `scale`, else 1.
    pub fn replicas(&self) -> u32 {
        self.deploy
            .as_ref()
            .and_then(|d| d.replicas)
            .or(self.scale)
            .unwrap_or(1)
    }

    /// The image's name: `image`, or for a build without one `PROJECT-SERVICE`.
    pub fn image_name(&self, project: &str, service: &str) -> String {
        self.image.clone().unwrap_or_else(|| format!("{project}-{service}"))
    }
}
