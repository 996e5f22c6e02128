//! Decoding `POST /containers/create`: Docker's JSON (`Config`, `HostConfig`,
//! `NetworkingConfig`) deserialized into the engine's typed options. A field of the wrong
//! type is a 400 naming it in the words of dockerd's decoder, never silently a default.

use std::collections::BTreeMap;
use std::time::Duration;

use berth_engine::model::{DeviceMapping, MountSpec};
use berth_engine::ops::CreateOptions;
use berth_engine::options::{HealthOptions, LogConfig, NamespaceMode, NetworkMode, PortSpec, RestartPolicy, Ulimit};
use berth_engine::EngineError;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::ApiError;

/// Docker's `StrSlice` (`Cmd`, `Entrypoint`): a list of strings, or one string.
#[derive(Debug, Default)]
struct StrSlice(Vec<String>);

impl<'de> Deserialize<'de> for StrSlice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StrSlice, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrSlice;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<StrSlice, E> {
                Ok(StrSlice(vec![s.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrSlice, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    v.push(s);
                }
                Ok(StrSlice(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// The create body: Docker's `Config` with `HostConfig` and `NetworkingConfig` beside it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Body {
    image: Option<String>,
    hostname: Option<String>,
    #[allow(dead_code)] // decoded for its type check only
    domainname: Option<String>,
    user: Option<String>,
    working_dir: Option<String>,
    stop_signal: Option<String>,
    stop_timeout: Option<u64>,
    env: Option<Vec<String>>,
    cmd: Option<StrSlice>,
    entrypoint: Option<StrSlice>,
    tty: Option<bool>,
    open_stdin: Option<bool>,
    stdin_once: Option<bool>,
    #[allow(dead_code)] // decoded for its type check only
    attach_stdin: Option<bool>,
    #[allow(dead_code)] // decoded for its type check only
    attach_stdout: Option<bool>,
    #[allow(dead_code)] // decoded for its type check only
    attach_stderr: Option<bool>,
    labels: Option<BTreeMap<String, String>>,
    #[allow(dead_code)] // decoded for its type check only
    exposed_ports: Option<BTreeMap<String, IgnoredAny>>,
    volumes: Option<BTreeMap<String, IgnoredAny>>,
    healthcheck: Option<Healthcheck>,
    host_config: Option<HostConfig>,
    networking_config: Option<NetworkingConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Healthcheck {
    test: Option<Vec<String>>,
    interval: Option<i64>,
    timeout: Option<i64>,
    start_period: Option<i64>,
    retries: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct HostConfig {
    annotations: Option<std::collections::BTreeMap<String, String>>,
    sysctls: Option<std::collections::BTreeMap<String, String>>,
    oom_score_adj: Option<i32>,
    group_add: Option<Vec<String>>,
    masked_paths: Option<Vec<String>>,
    readonly_paths: Option<Vec<String>>,
    memory: Option<i64>,
    memory_swap: Option<i64>,
    memory_reservation: Option<i64>,
    nano_cpus: Option<i64>,
    cpu_shares: Option<i64>,
    cpu_quota: Option<i64>,
    cpu_period: Option<i64>,
    pids_limit: Option<i64>,
    #[allow(dead_code)] // decoded for its type check only
    shm_size: Option<i64>,
    privileged: Option<bool>,
    readonly_rootfs: Option<bool>,
    auto_remove: Option<bool>,
    init: Option<bool>,
    publish_all_ports: Option<bool>,
    network_mode: Option<String>,
    pid_mode: Option<String>,
    ipc_mode: Option<String>,
    #[serde(rename = "UTSMode")]
    uts_mode: Option<String>,
    userns_mode: Option<String>,
    cpuset_cpus: Option<String>,
    cpuset_mems: Option<String>,
    runtime: Option<String>,
    cgroup_parent: Option<String>,
    console_size: Option<[u64; 2]>,
    binds: Option<Vec<String>>,
    cap_add: Option<Vec<String>>,
    cap_drop: Option<Vec<String>>,
    dns: Option<Vec<String>>,
    dns_search: Option<Vec<String>>,
    dns_options: Option<Vec<String>>,
    extra_hosts: Option<Vec<String>>,
    security_opt: Option<Vec<String>>,
    volumes_from: Option<Vec<String>>,
    port_bindings: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
    restart_policy: Option<RestartPolicyBody>,
    log_config: Option<LogConfigBody>,
    tmpfs: Option<BTreeMap<String, String>>,
    mounts: Option<Vec<Mount>>,
    ulimits: Option<Vec<Ulimit>>,
    devices: Option<Vec<Device>>,
    device_requests: Option<Vec<DeviceRequestBody>>,
}

/// One of `HostConfig.DeviceRequests` (`docker run --gpus`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DeviceRequestBody {
    driver: Option<String>,
    count: Option<i64>,
    #[serde(rename = "DeviceIDs")]
    device_ids: Option<Vec<String>>,
    capabilities: Option<Vec<Vec<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PortBinding {
    host_ip: Option<String>,
    host_port: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct RestartPolicyBody {
    name: Option<String>,
    maximum_retry_count: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct LogConfigBody {
    r#type: Option<String>,
    config: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Mount {
    r#type: Option<String>,
    source: Option<String>,
    target: Option<String>,
    read_only: Option<bool>,
    tmpfs_options: Option<TmpfsOptions>,
    bind_options: Option<BindOptions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct BindOptions {
    propagation: Option<String>,
    read_only_force_recursive: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct TmpfsOptions {
    size_bytes: Option<i64>,
    mode: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Device {
    path_on_host: Option<String>,
    path_in_container: Option<String>,
    cgroup_permissions: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct NetworkingConfig {
    endpoints_config: Option<BTreeMap<String, Option<Endpoint>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Endpoint {
    #[serde(rename = "IPAMConfig")]
    ipam_config: Option<Ipam>,
    aliases: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Ipam {
    #[serde(rename = "IPv4Address")]
    ipv4_address: Option<String>,
}

/// Fields whose values are maps: their keys are data, not fields, in a decoding error.
const MAPS: [&str; 6] = [
    "Labels",
    "ExposedPorts",
    "Volumes",
    "PortBindings",
    "Tmpfs",
    "EndpointsConfig",
];

/// A decoding error as Go's `encoding/json` words it: `json: cannot unmarshal string into
/// Go struct field HostConfig.Memory of type int64`.
fn go_error(e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let mut fields: Vec<String> = Vec::new();
    for seg in e.path().iter() {
        if let serde_path_to_error::Segment::Map { key } = seg {
            if fields
                .last()
                .is_some_and(|f| MAPS.contains(&f.as_str()) || f == "Config" && fields.len() > 1)
            {
                break;
            }
            fields.push(key.clone());
        }
    }
    if fields
        .first()
        .is_some_and(|f| f != "HostConfig" && f != "NetworkingConfig")
    {
        fields.insert(0, "Config".into());
    }
    let msg = e.inner().to_string();
    let kind = |m: &str| -> Option<&'static str> {
        let got = m
            .strip_prefix("invalid type: ")
            .or_else(|| m.strip_prefix("invalid value: "))?;
        Some(match got.split([' ', ',']).next()? {
            "string" => "string",
            "integer" | "floating" => "number",
            "boolean" => "bool",
            "sequence" => "array",
            "map" => "object",
            _ => "value",
        })
    };
    let go_type = |m: &str| -> String {
        let want = m.rsplit_once(", expected ").map_or("", |(_, w)| w);
        match want.split(" at ").next().unwrap_or(want) {
            "i64" => "int64".into(),
            "u64" => "uint64".into(),
            "u32" => "uint32".into(),
            "a boolean" => "bool".into(),
            "a string" => "string".into(),
            "a string or a list of strings" | "a sequence" => "[]string".into(),
            "a map" => "map[string]string".into(),
            w => w.strip_prefix("struct ").unwrap_or(w).to_string(),
        }
    };
    match kind(&msg) {
        Some(k) => ApiError::bad(format!(
            "json: cannot unmarshal {k} into Go struct field {} of type {}",
            fields.join("."),
            go_type(&msg)
        )),
        None => ApiError::bad(format!("invalid create request at {}: {msg}", fields.join("."))),
    }
}

fn invalid(e: EngineError) -> ApiError {
    ApiError::bad(e.to_string())
}

/// A health check duration in nanoseconds: 0 inherits, others at least 1 ms.
fn health_duration(field: &str, ns: Option<i64>) -> Result<Option<Duration>, ApiError> {
    match ns.unwrap_or(0) {
        0 => Ok(None),
        n if n < 1_000_000 => Err(ApiError::bad(format!("{field} in Healthcheck cannot be less than 1ms"))),
        n => Ok(Some(Duration::from_nanos(n.unsigned_abs()))),
    }
}

/// CPUs in billionths from Docker's `NanoCpus`, or from `CpuQuota` per `CpuPeriod`
/// (100 ms when not given); not both.
pub fn nano_cpus(nano: Option<i64>, quota: Option<i64>, period: Option<i64>) -> Result<Option<i64>, ApiError> {
    match (nano, quota) {
        (Some(_), Some(_)) => Err(ApiError::bad(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        )),
        (Some(n), None) => Ok(Some(n)),
        (None, Some(q)) => Ok(Some(
            q.saturating_mul(1_000_000_000) / period.filter(|p| *p > 0).unwrap_or(100_000),
        )),
        (None, None) => Ok(None),
    }
}

/// Docker's create body (Config, HostConfig, NetworkingConfig) as engine options.
pub fn options_from(body: &Value, name: Option<String>) -> Result<CreateOptions, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad("config cannot be empty in order to create a container"));
    }
    let b: Body = serde_path_to_error::deserialize(body).map_err(|e| go_error(&e))?;
    let image = b.image.unwrap_or_default();
    if image.is_empty() {
        return Err(ApiError::bad("No command specified"));
    }
    let hc = b.host_config.unwrap_or_default();
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let network = NetworkMode::parse(hc.network_mode.as_deref().unwrap_or(""));
    let nano_cpus = nano_cpus(
        hc.nano_cpus.filter(|n| *n != 0),
        hc.cpu_quota.filter(|q| *q != 0),
        hc.cpu_period,
    )?
    .unwrap_or(0);
    // `-v /path` reaches the API as `Config.Volumes` (an anonymous volume there), the rest
    // as `HostConfig.Binds`.
    let mut binds: Vec<MountSpec> = hc
        .binds
        .unwrap_or_default()
        .iter()
        .map(|s| berth_engine::volumes::parse_volume(s))
        .collect::<Result<_, _>>()
        .map_err(invalid)?;
    let mut mounts = Vec::new();
    for m in hc.mounts.unwrap_or_default() {
        let kind = m.r#type.unwrap_or_default();
        let mut options = Vec::new();
        if let Some(t) = m.tmpfs_options.filter(|_| kind == "tmpfs") {
            if let Some(size) = t.size_bytes.filter(|s| *s > 0) {
                options.push(format!("size={size}"));
            }
            if let Some(mode) = t.mode.filter(|m| *m > 0) {
                options.push(format!("mode={mode:o}"));
            }
        }
        let bind = m.bind_options.unwrap_or_default();
        if bind.read_only_force_recursive == Some(true) {
            if m.read_only != Some(true) {
                return Err(invalid(berth_engine::EngineError::Invalid(
                    "ReadOnlyForceRecursive needs ReadOnly".into(),
                )));
            }
            options.push("rro".to_string());
        }
        if let Some(p) = bind.propagation.filter(|p| !p.is_empty()) {
            if !berth_engine::volumes::PROPAGATIONS.contains(&p.as_str()) {
                return Err(invalid(berth_engine::EngineError::Invalid(format!(
                    "invalid propagation mode: {p}"
                ))));
            }
            options.push(p);
        }
        mounts.push(MountSpec {
            source: if kind == "tmpfs" {
                String::new()
            } else {
                m.source.unwrap_or_default()
            },
            kind,
            destination: m.target.unwrap_or_default(),
            read_only: m.read_only.unwrap_or(false),
            options,
        });
    }
    for (path, opts) in hc.tmpfs.unwrap_or_default() {
        let spec = if opts.is_empty() {
            path
        } else {
            format!("{path}:{opts}")
        };
        mounts.push(berth_engine::volumes::parse_tmpfs(&spec).map_err(invalid)?);
    }
    for path in b.volumes.unwrap_or_default().into_keys() {
        let taken = binds.iter().chain(&mounts).any(|m| m.destination == path);
        if !taken {
            binds.push(MountSpec {
                kind: "volume".into(),
                source: String::new(),
                destination: path,
                read_only: false,
                options: Vec::new(),
            });
        }
    }
    let mut publish = Vec::new();
    for (port, list) in hc.port_bindings.unwrap_or_default() {
        let list = list.unwrap_or_default();
        if list.is_empty() {
            publish.push(PortSpec::from_binding(&port, "", "").map_err(invalid)?);
        }
        for pb in list {
            publish.push(
                PortSpec::from_binding(
                    &port,
                    pb.host_ip.as_deref().unwrap_or(""),
                    pb.host_port.as_deref().unwrap_or(""),
                )
                .map_err(invalid)?,
            );
        }
    }
    let health = match b.healthcheck {
        Some(h) => HealthOptions {
            test: h.test.filter(|t| !t.is_empty()),
            interval: health_duration("Interval", h.interval)?,
            timeout: health_duration("Timeout", h.timeout)?,
            start_period: health_duration("StartPeriod", h.start_period)?,
            retries: match h.retries.unwrap_or(0) {
                r if r < 0 => return Err(ApiError::bad("Retries in Healthcheck cannot be negative")),
                0 => None,
                r => Some(u32::try_from(r).unwrap_or(u32::MAX)),
            },
        },
        None => HealthOptions::default(),
    };
    let restart = match hc.restart_policy {
        Some(p) => RestartPolicy::from_docker(p.name.as_deref().unwrap_or(""), p.maximum_retry_count.unwrap_or(0))
            .map_err(invalid)?,
        None => RestartPolicy::No,
    };
    let log = match hc.log_config {
        Some(l) => LogConfig {
            driver: l.r#type.unwrap_or_default(),
            opts: l.config.unwrap_or_default(),
        },
        None => LogConfig::default(),
    };
    // A device named the CDI way (`vendor.com/class=name`) is a CDI device, as dockerd
    // 25 reads it.
    let (cdi_named, devices): (Vec<Device>, Vec<Device>) = hc
        .devices
        .unwrap_or_default()
        .into_iter()
        .partition(|d| berth_engine::cdi::is_name(d.path_on_host.as_deref().unwrap_or_default()));
    let devices = devices
        .into_iter()
        .map(|d| DeviceMapping {
            host: d.path_on_host.unwrap_or_default(),
            container: d.path_in_container.unwrap_or_default(),
            perms: d.cgroup_permissions.unwrap_or_default(),
        })
        .collect();
    let requests: Vec<berth_engine::cdi::DeviceRequest> = hc
        .device_requests
        .unwrap_or_default()
        .into_iter()
        .map(|r| berth_engine::cdi::DeviceRequest {
            driver: r.driver.unwrap_or_default(),
            count: r.count.unwrap_or(0),
            device_ids: r.device_ids.unwrap_or_default(),
            capabilities: r.capabilities.unwrap_or_default(),
        })
        .collect();
    let mut cdi_devices: Vec<String> = cdi_named.into_iter().filter_map(|d| d.path_on_host).collect();
    cdi_devices.extend(berth_engine::cdi::devices_for(&requests)?);
    let (ip, aliases) = {
        let eps = b.networking_config.and_then(|n| n.endpoints_config).unwrap_or_default();
        let wanted = match &network {
            NetworkMode::Named(n) => n.as_str(),
            _ => hc.network_mode.as_deref().unwrap_or(""),
        };
        let ep = eps
            .iter()
            .find(|(n, _)| n.as_str() == wanted)
            .or_else(|| eps.iter().next())
            .and_then(|(_, e)| e.as_ref());
        (
            ep.and_then(|e| e.ipam_config.as_ref())
                .and_then(|i| i.ipv4_address.clone())
                .filter(|s| !s.is_empty()),
            ep.and_then(|e| e.aliases.clone()).unwrap_or_default(),
        )
    };
    let ns = |field: &str, v: Option<String>| {
        let v = v.unwrap_or_default();
        NamespaceMode::parse(&v).ok_or_else(|| ApiError::bad(format!("invalid {field}: {v:?}")))
    };
    Ok(CreateOptions {
        pod: None,
        infra: false,
        kube: None,
        pid: ns("PidMode", hc.pid_mode)?,
        ipc: ns("IpcMode", hc.ipc_mode)?,
        uts: ns("UTSMode", hc.uts_mode)?,
        userns: hc.userns_mode.unwrap_or_default(),
        uid_maps: Vec::new(),
        gid_maps: Vec::new(),
        image,
        name: name.filter(|n| !n.is_empty()),
        cmd: b.cmd.unwrap_or_default().0,
        entrypoint: b.entrypoint.map(|e| e.0),
        env: b.env.unwrap_or_default(),
        workdir: nonempty(b.working_dir),
        user: nonempty(b.user),
        hostname: nonempty(b.hostname),
        labels: b.labels.unwrap_or_default(),
        annotations: hc.annotations.unwrap_or_default(),
        cri_log_path: None,
        auto_remove: hc.auto_remove.unwrap_or(false),
        network,
        memory: hc.memory.unwrap_or(0),
        pids_limit: hc.pids_limit.unwrap_or(0).max(0),
        read_only: hc.readonly_rootfs.unwrap_or(false),
        stop_signal: nonempty(b.stop_signal),
        stop_timeout: b.stop_timeout,
        restart,
        binds,
        mounts,
        health,
        cgroup_parent: nonempty(hc.cgroup_parent),
        cap_add: hc.cap_add.unwrap_or_default(),
        cap_drop: hc.cap_drop.unwrap_or_default(),
        privileged: hc.privileged.unwrap_or(false),
        security_opt: hc.security_opt.unwrap_or_default(),
        sysctls: hc.sysctls.unwrap_or_default(),
        oom_score_adj: hc.oom_score_adj.unwrap_or(0),
        group_add: hc.group_add.clone().unwrap_or_default(),
        groups_strict: false,
        masked_paths: hc.masked_paths.clone(),
        readonly_paths: hc.readonly_paths.clone(),
        ulimits: hc.ulimits.unwrap_or_default(),
        memory_reservation: hc.memory_reservation.unwrap_or(0),
        memory_swap: hc.memory_swap.unwrap_or(0),
        nano_cpus,
        cpu_shares: u64::try_from(hc.cpu_shares.unwrap_or(0)).unwrap_or(0),
        cpuset_cpus: hc.cpuset_cpus.unwrap_or_default(),
        cpuset_mems: hc.cpuset_mems.unwrap_or_default(),
        // Docker's API has neither.
        hugepage_limits: Default::default(),
        unified: Default::default(),
        log,
        volumes_from: hc.volumes_from.unwrap_or_default(),
        tty: b.tty.unwrap_or(false),
        devices,
        cdi_devices,
        console_size: hc.console_size.map_or((0, 0), |[h, w]| {
            (u16::try_from(h).unwrap_or(0), u16::try_from(w).unwrap_or(0))
        }),
        open_stdin: b.open_stdin.unwrap_or(false),
        stdin_once: b.stdin_once.unwrap_or(false),
        init: hc.init.unwrap_or(false),
        runtime: hc.runtime.unwrap_or_default(),
        publish,
        publish_all: hc.publish_all_ports.unwrap_or(false),
        add_hosts: hc.extra_hosts.unwrap_or_default(),
        dns: hc.dns.unwrap_or_default(),
        dns_search: hc.dns_search.unwrap_or_default(),
        dns_options: hc.dns_options.unwrap_or_default(),
        ip,
        aliases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(body: Value) -> String {
        options_from(&body, None).unwrap_err().to_string()
    }

    #[test]
    fn field_types_are_checked_in_dockerds_words() {
        assert!(err(json!({"Image": "x", "HostConfig": {"Memory": "1g"}}))
            .contains("cannot unmarshal string into Go struct field HostConfig.Memory of type int64"));
        assert!(err(json!({"Image": 5}))
            .contains("cannot unmarshal number into Go struct field Config.Image of type string"));
        assert!(err(json!({"Image": "x", "Env": "A=1"})).contains("Go struct field Config.Env of type []string"));
        assert!(err(json!({"Image": "x", "Labels": {"a": 1}})).contains("Go struct field Config.Labels of type string"));
        assert!(
            err(json!({"Image": "x", "HostConfig": {"Privileged": 1}})).contains("HostConfig.Privileged of type bool")
        );
        assert!(err(json!({"Image": "x", "HostConfig": {"NanoCpus": 1.5}})).contains("cannot unmarshal number"));
    }

    #[test]
    fn nulls_are_defaults_and_unknown_fields_are_ignored() {
        let o = options_from(
            &json!({"Image": "x", "Cmd": null, "HostConfig": {"Binds": null, "Whatever": 1}, "Future": true}),
            None,
        )
        .unwrap();
        assert!(o.cmd.is_empty() && o.binds.is_empty());
        assert_eq!(o.network, NetworkMode::Bridge);
    }

    #[test]
    fn docker_json_becomes_typed_options() {
        let o = options_from(
            &json!({
                "Image": "busybox",
                "Cmd": "sleep 1",
                "Entrypoint": ["/bin/sh", "-c"],
                "Volumes": {"/data": {}, "/bound": {}},
                "Healthcheck": {"Test": ["CMD", "true"], "Interval": 2_000_000_000i64, "Retries": 2},
                "HostConfig": {
                    "Binds": ["/tmp:/bound:ro"],
                    "NetworkMode": "back",
                    "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "53/udp": null},
                    "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                    "Mounts": [{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1024, "Mode": 0o1777}}],
                    "Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 20}],
                    "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "", "CgroupPermissions": ""}],
                    "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
                    "CpuQuota": 50000
                },
                "NetworkingConfig": {"EndpointsConfig": {"back": {"IPAMConfig": {"IPv4Address": "10.9.0.5"}, "Aliases": ["db"]}}}
            }),
            Some("n".into()),
        )
        .unwrap();
        assert_eq!(o.cmd, ["sleep 1"]);
        assert_eq!(
            o.entrypoint.as_deref(),
            Some(&["/bin/sh".to_string(), "-c".to_string()][..])
        );
        assert_eq!(o.binds.len(), 2);
        assert_eq!(o.binds[1].destination, "/data");
        assert!(o.binds[1].source.is_empty());
        assert_eq!(o.network, NetworkMode::Named("back".into()));
        let ports: Vec<String> = o.publish.iter().map(ToString::to_string).collect();
        assert_eq!(ports, ["53/udp", "127.0.0.1:8080:80/tcp"]);
        assert_eq!(o.restart, RestartPolicy::OnFailure(3));
        assert_eq!(o.mounts[0].options, ["size=1024", "mode=1777"]);
        assert_eq!(o.ulimits[0].hard, 20);
        assert_eq!(o.health.test.as_deref().map(<[String]>::len), Some(2));
        assert_eq!(o.health.interval, Some(Duration::from_secs(2)));
        assert_eq!(o.log.opts["max-size"], "1m");
        assert_eq!(o.nano_cpus, 500_000_000);
        assert_eq!(o.ip.as_deref(), Some("10.9.0.5"));
        assert_eq!(o.aliases, ["db"]);
        assert_eq!(o.devices[0].host, "/dev/null");
    }

    #[test]
    fn bad_values_are_refused_before_the_engine() {
        assert!(err(
            json!({"Image": "x", "HostConfig": {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}}})
        )
        .contains("only be used with 'on-failure'"));
        assert!(
            err(json!({"Image": "x", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "x"}]}}}))
                .contains("invalid port binding")
        );
        assert!(err(json!({"Image": "x", "Healthcheck": {"Interval": 5}})).contains("cannot be less than 1ms"));
        assert!(
            err(json!({"Image": "x", "HostConfig": {"NanoCpus": 1, "CpuQuota": 1}})).contains("Conflicting options")
        );
    }
}
