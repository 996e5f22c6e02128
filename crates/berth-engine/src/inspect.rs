//! Docker's `inspect` JSON of a container, shared by the CLI and the API.

use berth_image::store::{Image, ImageStore};
use serde_json::{json, Value};

use crate::store::{Engine, Record, State, Status};

/// The `docker inspect` JSON of a container.
pub fn inspect_json(e: &Engine, r: &Record) -> Value {
    let st = e.state(&r.id);
    let paused = st.running() && crate::ops::is_paused(e, &r.id);
    let healthcheck = r.health.as_ref().map(|h| {
        json!({
            "Test": h.test,
            "Interval": u64::try_from(h.interval.as_nanos()).unwrap_or(u64::MAX),
            "Timeout": u64::try_from(h.timeout.as_nanos()).unwrap_or(u64::MAX),
            "StartPeriod": u64::try_from(h.start_period.as_nanos()).unwrap_or(u64::MAX),
            "Retries": h.retries,
        })
    });
    let dir = e.dir(&r.id);
    let binds: Vec<String> = r
        .mounts
        .iter()
        .filter(|m| m.kind == "bind")
        .map(|m| format!("{}:{}{}", m.source, m.destination, if m.read_only { ":ro" } else { "" }))
        .collect();
    let binds = if binds.is_empty() { Value::Null } else { json!(binds) };
    let tmpfs: serde_json::Map<String, Value> = r
        .mounts
        .iter()
        .filter(|m| m.kind == "tmpfs")
        .map(|m| (m.destination.clone(), json!(m.options.join(","))))
        .collect();
    let tmpfs = if tmpfs.is_empty() { Value::Null } else { json!(tmpfs) };
    let mut log_config = serde_json::Map::new();
    if r.log_driver != "none" {
        let size = if r.log_max_size > 0 {
            r.log_max_size
        } else {
            crate::monitor::LOG_MAX_SIZE
        };
        let files = if r.log_max_file > 0 {
            r.log_max_file
        } else {
            crate::monitor::LOG_MAX_FILES
        };
        let human = match size {
            s if s % (1 << 30) == 0 => format!("{}g", s >> 30),
            s if s % (1 << 20) == 0 => format!("{}m", s >> 20),
            s if s % (1 << 10) == 0 => format!("{}k", s >> 10),
            s => s.to_string(),
        };
        log_config.insert("max-size".into(), json!(human));
        log_config.insert("max-file".into(), json!(files.to_string()));
    }
    let mut security_opt: Vec<String> = Vec::new();
    if r.no_new_privileges {
        security_opt.push("no-new-privileges".into());
    }
    if r.seccomp == "unconfined" {
        security_opt.push("seccomp=unconfined".into());
    } else if !r.seccomp.is_empty() {
        security_opt.push("seccomp=<profile>".into());
    }
    let security_opt = if security_opt.is_empty() {
        Value::Null
    } else {
        json!(security_opt)
    };
    let spec: Value = std::fs::read(dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let masked = spec["linux"]["maskedPaths"].clone();
    let readonly = spec["linux"]["readonlyPaths"].clone();
    let mut volumes: serde_json::Map<String, Value> = r.image_volumes.iter().map(|v| (v.clone(), json!({}))).collect();
    for m in r.mounts.iter().filter(|m| r.anonymous_volumes.contains(&m.source)) {
        volumes.insert(m.destination.clone(), json!({}));
    }
    let mut v = json!({
        "Id": r.id,
        "Created": r.created,
        "Path": r.path,
        "Args": r.args,
        "State": {
            "Status": if paused { "paused" } else { st.status.as_str() },
            "Running": st.running(),
            "Paused": paused,
            "Restarting": st.status == Status::Restarting,
            "OOMKilled": st.oom_killed,
            "Dead": st.status == Status::Dead,
            "Pid": if st.running() { st.pid } else { 0 },
            "ExitCode": st.exit_code,
            "Error": st.error,
            "StartedAt": st.started_at,
            "FinishedAt": st.finished_at,
        },
        "Image": r.image_id,
        "ResolvConfPath": dir.join("resolv.conf"),
        "HostnamePath": dir.join("hostname"),
        "HostsPath": dir.join("hosts"),
        "LogPath": dir.join("json.log"),
        "Name": format!("/{}", r.name),
        "RestartCount": st.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": {
            "Binds": binds,
            "ContainerIDFile": "",
            "LogConfig": {"Type": r.log_driver, "Config": log_config},
            "NetworkMode": r.network_mode,
            "PortBindings": port_bindings(r),
            "RestartPolicy": {"Name": if r.restart.is_empty() { "no" } else { r.restart.as_str() }, "MaximumRetryCount": r.restart_max},
            "AutoRemove": r.auto_remove,
            "VolumeDriver": "",
            "VolumesFrom": null,
            "ConsoleSize": [0, 0],
            "CapAdd": if r.cap_add.is_empty() { Value::Null } else { json!(r.cap_add) },
            "CapDrop": if r.cap_drop.is_empty() { Value::Null } else { json!(r.cap_drop) },
            "CgroupnsMode": "host",
            "Dns": [],
            "DnsOptions": [],
            "DnsSearch": [],
            "ExtraHosts": null,
            "GroupAdd": null,
            "IpcMode": if r.ipc_mode.is_empty() { "private" } else { r.ipc_mode.as_str() },
            "Cgroup": "",
            "Links": null,
            "PidMode": r.pid_mode,
            "Privileged": r.privileged,
            "PublishAllPorts": false,
            "ReadonlyRootfs": r.read_only,
            "SecurityOpt": security_opt,
            "Tmpfs": tmpfs,
            "UTSMode": r.uts_mode,
            "UsernsMode": r.userns_mode,
            "ShmSize": 67_108_864,
            "Runtime": if r.runtime.is_empty() { "berth" } else { r.runtime.as_str() },
            "Isolation": "",
            "CpuShares": r.cpu_shares,
            "Memory": r.memory,
            "NanoCpus": r.cpu_quota * 10_000,
            "CgroupParent": if r.cgroup_parent == "/berth" { "" } else { r.cgroup_parent.as_str() },
            "BlkioWeight": 0,
            "BlkioWeightDevice": [],
            "BlkioDeviceReadBps": [],
            "BlkioDeviceWriteBps": [],
            "BlkioDeviceReadIOps": [],
            "BlkioDeviceWriteIOps": [],
            "CpuPeriod": 0,
            "CpuQuota": 0,
            "CpuRealtimePeriod": 0,
            "CpuRealtimeRuntime": 0,
            "CpusetCpus": r.cpuset_cpus,
            "CpusetMems": r.cpuset_mems,
            "Devices": r.devices.iter().map(|d| json!({"PathOnHost": d.host, "PathInContainer": d.container, "CgroupPermissions": d.perms})).collect::<Vec<_>>(),
            "DeviceCgroupRules": null,
            "DeviceRequests": null,
            "MemoryReservation": r.memory_reservation,
            "MemorySwap": r.memory_swap,
            "MemorySwappiness": null,
            "OomKillDisable": false,
            "PidsLimit": if r.pids_limit > 0 { json!(r.pids_limit) } else { Value::Null },
            "Ulimits": r.ulimits.iter().map(|(n, s, h)| json!({"Name": n, "Soft": s, "Hard": h})).collect::<Vec<_>>(),
            "CpuCount": 0,
            "CpuPercent": 0,
            "IOMaximumIOps": 0,
            "IOMaximumBandwidth": 0,
            "Init": if r.init { json!(true) } else { Value::Null },
            "MaskedPaths": masked,
            "ReadonlyPaths": readonly,
        },
        "GraphDriver": {
            "Data": {
                "MergedDir": dir.join("rootfs"),
                "UpperDir": dir.join("fs/upper"),
                "WorkDir": dir.join("fs/work"),
            },
            "Name": "overlay2"
        },
        "Mounts": r.mounts.iter().map(|m| json!({
            "Type": m.kind,
            "Name": if m.kind == "volume" { json!(m.source) } else { Value::Null },
            "Source": if m.kind == "volume" { crate::volumes::data_dir(e, &m.source).display().to_string() } else { m.source.clone() },
            "Destination": m.destination,
            "Driver": if m.kind == "volume" { "local" } else { "" },
            "Mode": if m.read_only { "ro" } else { "" },
            "RW": !m.read_only,
            "Propagation": if m.kind == "bind" { crate::volumes::propagation(m) } else { "" },
        })).collect::<Vec<_>>(),
        "Config": {
            "Hostname": r.hostname,
            "Domainname": "",
            "User": r.user,
            "AttachStdin": r.stdin_once,
            "AttachStdout": true,
            "AttachStderr": true,
            "ExposedPorts": if r.exposed_ports.is_empty() { Value::Null } else {
                json!(r.exposed_ports.iter().map(|p| (p.clone(), json!({}))).collect::<serde_json::Map<_, _>>())
            },
            "Tty": r.tty,
            "OpenStdin": r.open_stdin,
            "StdinOnce": r.stdin_once,
            "Env": r.env,
            "Cmd": r.cmd,
            "Image": r.image_name,
            "Volumes": if volumes.is_empty() { Value::Null } else { json!(volumes) },
            "WorkingDir": r.working_dir,
            "Entrypoint": r.entrypoint,
            "OnBuild": null,
            "Labels": r.labels,
            "StopSignal": r.stop_signal,
            "StopTimeout": r.stop_timeout,
            "Healthcheck": healthcheck,
        },
        "NetworkSettings": network_settings(e, r, &st),
    });
    if !r.annotations.is_empty() {
        v["HostConfig"]["Annotations"] = json!(r.annotations);
    }
    v["HostConfig"]["OomScoreAdj"] = json!(r.oom_score_adj);
    v["HostConfig"]["GroupAdd"] = if r.group_add.is_empty() {
        Value::Null
    } else {
        json!(r.group_add)
    };
    v["HostConfig"]["MaskedPaths"] = json!(crate::spec::masked_paths(r));
    v["HostConfig"]["ReadonlyPaths"] = json!(crate::spec::readonly_paths(r));
    if !r.sysctls.is_empty() {
        v["HostConfig"]["Sysctls"] = json!(r.sysctls);
    }
    // Docker's State.Health: present (from the start, as `starting`) only for a container
    // with a health check.
    if r.health.is_some() {
        v["State"]["Health"] = match st.health.as_ref() {
            Some(h) => json!({
                "Status": h.status,
                "FailingStreak": h.failing_streak,
                "Log": h.log.iter().map(|p| json!({"Start": p.start, "End": p.end, "ExitCode": p.exit_code, "Output": p.output})).collect::<Vec<_>>(),
            }),
            None => json!({"Status": "starting", "FailingStreak": 0, "Log": []}),
        };
    }
    v
}

/// Docker's `NetworkSettings`: the attachment while running, empty fields otherwise.
/// One entry of `NetworkSettings.Networks`.
fn endpoint_json(a: &crate::networks::Attachment, network_id: &str, ipam: Value, aliases: Value) -> Value {
    json!({
        "IPAMConfig": ipam,
        "Links": null,
        "Aliases": aliases,
        "MacAddress": a.mac,
        "DriverOpts": null,
        "NetworkID": network_id,
        "EndpointID": if a.ip.is_empty() { String::new() } else { a.veth.clone() },
        "Gateway": a.gateway,
        "IPAddress": a.ip,
        "IPPrefixLen": a.prefix,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": null
    })
}

fn network_settings(e: &Engine, r: &Record, st: &State) -> Value {
    let a = st.net.clone().unwrap_or_default();
    let mut ports = serde_json::Map::new();
    for p in &r.exposed_ports {
        ports.insert(p.clone(), Value::Null);
    }
    for p in &a.ports {
        let key = format!("{}/{}", p.port, p.proto);
        let entry = ports.entry(key).or_insert_with(|| json!([]));
        if !entry.is_array() {
            *entry = json!([]);
        }
        if let Some(v) = entry.as_array_mut() {
            v.push(json!({"HostIp": p.host_ip, "HostPort": p.host_port.to_string()}));
        }
    }
    let endpoint = endpoint_json(&a, &a.network_id, Value::Null, Value::Null);
    let mut networks = serde_json::Map::new();
    networks.insert(r.network_mode.clone(), endpoint.clone());
    for c in crate::networks::connections(e, &r.id) {
        let name = crate::networks::get(e, &c.network_id)
            .map(|n| n.name)
            .unwrap_or(c.network_id.clone());
        let a = c.attachment.unwrap_or_default();
        let ipam = if c.ip.is_empty() {
            Value::Null
        } else {
            json!({"IPv4Address": c.ip})
        };
        let aliases = if c.aliases.is_empty() {
            Value::Null
        } else {
            json!(c.aliases)
        };
        networks.insert(name, endpoint_json(&a, &c.network_id, ipam, aliases));
    }
    let is_default = r.network_mode == crate::networks::DEFAULT;
    json!({
        "Bridge": "",
        "SandboxID": if a.ip.is_empty() { String::new() } else { r.id.clone() },
        "SandboxKey": if a.ip.is_empty() { String::new() } else { a.veth.clone() },
        "Ports": ports,
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": if is_default { endpoint["EndpointID"].clone() } else { json!("") },
        "Gateway": if is_default { json!(a.gateway) } else { json!("") },
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": if is_default { json!(a.ip) } else { json!("") },
        "IPPrefixLen": if is_default { json!(a.prefix) } else { json!(0) },
        "IPv6Gateway": "",
        "MacAddress": if is_default { json!(a.mac) } else { json!("") },
        "Networks": networks
    })
}

/// Docker's status text: `Up 3 seconds`, `Exited (0) 2 minutes ago`, `Created`.
pub fn status_text(st: &State) -> String {
    match st.status.as_str() {
        "running" => {
            let up = format!(
                "Up {}",
                berth_oci::time::human_duration(berth_oci::time::since(&st.started_at))
            );
            match st.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => format!("{up} (health: starting)"),
                Some(h) => format!("{up} ({h})"),
                None => up,
            }
        }
        "paused" => format!(
            "Up {} (Paused)",
            berth_oci::time::human_duration(berth_oci::time::since(&st.started_at))
        ),
        "restarting" => format!(
            "Restarting ({}) {} ago",
            st.exit_code,
            berth_oci::time::human_duration(berth_oci::time::since(&st.finished_at))
        ),
        "exited" => format!(
            "Exited ({}) {} ago",
            st.exit_code,
            berth_oci::time::human_duration(berth_oci::time::since(&st.finished_at))
        ),
        "created" => "Created".into(),
        other => other.to_string(),
    }
}

/// The host's memory in bytes.
pub fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Docker's `/info` JSON (what `docker info` and `berth info` show), with every field
/// dockerd sends.
pub fn info_json(e: &Engine, images: &ImageStore, root: &std::path::Path) -> crate::Result<Value> {
    let recs = e.all()?;
    let (mut running, mut paused) = (0usize, 0usize);
    for r in &recs {
        if e.state(&r.id).running() {
            if crate::ops::is_paused(e, &r.id) {
                paused += 1;
            } else {
                running += 1;
            }
        }
    }
    let uname = nix::sys::utsname::uname().ok();
    let kernel = uname
        .as_ref()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let hostname = uname
        .as_ref()
        .map(|u| u.nodename().to_string_lossy().into_owned())
        .unwrap_or_default();
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |k: &str| {
        os_release
            .lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim_matches('"').to_string()))
    };
    let os = field("PRETTY_NAME=").unwrap_or_else(|| "Linux".into());
    let cgv = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    };
    let now = berth_image::store::now();
    Ok(json!({
        "ID": hostname.clone(),
        "Containers": recs.len(),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": recs.len() - running - paused,
        "Images": images.list()?.len(),
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"], ["Using metacopy", "false"], ["Native Overlay Diff", "true"], ["userxattr", "false"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none", "null"], "Authorization": null, "Log": ["json-file", "none"]},
        "MemoryLimit": true,
        "SwapLimit": true,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": true,
        "IPv4Forwarding": std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").map(|v| v.trim() == "1").unwrap_or(false),
        "BridgeNfIptables": false,
        "BridgeNfIp6tables": false,
        "Debug": false,
        "NFd": std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0),
        "OomKillDisable": false,
        "NGoroutines": 0,
        "SystemTime": now,
        "LoggingDriver": "json-file",
        "CgroupDriver": if crate::rootless::why_no_limits().is_some() { "none" } else { "cgroupfs" },
        "CgroupVersion": cgv,
        "NEventsListener": 0,
        "KernelVersion": kernel,
        "OperatingSystem": os,
        "OSVersion": field("VERSION_ID=").unwrap_or_default(),
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": null, "AllowNondistributableArtifactsHostnames": null,
            "InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {"docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": true, "Official": true}}, "Mirrors": null},
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": host_memory(),
        "GenericResources": null,
        "DockerRootDir": root,
        "HttpProxy": std::env::var("HTTP_PROXY").unwrap_or_default(),
        "HttpsProxy": std::env::var("HTTPS_PROXY").unwrap_or_default(),
        "NoProxy": std::env::var("NO_PROXY").unwrap_or_default(),
        "Name": hostname,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": {"berth-runtime": {"path": "berth-runtime"}, "runc": {"path": "runc"}, "crun": {"path": "crun"}, "youki": {"path": "youki"}},
        "DefaultRuntime": "berth-runtime",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "berth-init",
        "ContainerdCommit": {"ID": ""},
        "RuncCommit": {"ID": ""},
        "InitCommit": {"ID": ""},
        "SecurityOptions": security_options(),
        "Rootless": crate::rootless::is_rootless(),
        "IDMappings": id_mappings(),
        "NetworkBackend": if crate::rootless::is_rootless() { "pasta" } else { "bridge" },
        "CgroupManager": cgroup_manager(),
        "CDISpecDirs": [],
        "Warnings": []
    }))
}

/// Docker's security options: seccomp, and `rootless` or `userns` as dockerd says them.
fn security_options() -> Vec<String> {
    let mut v = vec!["name=seccomp,profile=builtin".to_string()];
    if crate::rootless::is_rootless() {
        v.push("name=rootless".into());
    } else if std::env::var(crate::userns::REMAP_ENV).is_ok_and(|u| !u.is_empty()) {
        v.push("name=userns".into());
    }
    v
}

/// The engine's own user namespace maps (Podman's `idMappings`): identity for root.
fn id_mappings() -> Value {
    let (u, g) = crate::rootless::id_mappings();
    let list = |m: Vec<berth_safepath::userns::IdRange>| -> Vec<Value> {
        m.iter()
            .map(|r| json!({"container_id": r.inside, "host_id": r.outside, "size": r.count}))
            .collect()
    };
    json!({"UIDMap": list(u), "GIDMap": list(g)})
}

/// Who manages the containers' cgroups: berth itself (`cgroupfs`), or nobody for a
/// rootless engine the host delegates none to.
fn cgroup_manager() -> String {
    match crate::rootless::why_no_limits() {
        None => "cgroupfs".into(),
        Some(why) => format!("none ({why})"),
    }
}

/// The `docker image inspect` JSON of an image.
pub fn image_json(store: &ImageStore, img: &Image) -> crate::Result<Value> {
    let cfg: Value = serde_json::from_slice(&store.config_bytes(img)?)
        .map_err(|e| crate::EngineError::Invalid(format!("image config: {e}")))?;
    let mut c = cfg.get("config").cloned().unwrap_or_else(|| json!({}));
    if let Some(o) = c.as_object_mut() {
        for (k, v) in [
            ("Hostname", json!("")),
            ("Domainname", json!("")),
            ("User", json!("")),
            ("AttachStdin", json!(false)),
            ("AttachStdout", json!(false)),
            ("AttachStderr", json!(false)),
            ("Tty", json!(false)),
            ("OpenStdin", json!(false)),
            ("StdinOnce", json!(false)),
            ("Env", Value::Null),
            ("Cmd", Value::Null),
            ("Image", json!("")),
            ("Volumes", Value::Null),
            ("WorkingDir", json!("")),
            ("Entrypoint", Value::Null),
            ("OnBuild", Value::Null),
            ("Labels", Value::Null),
        ] {
            o.entry(k).or_insert(v);
        }
    }
    let lowers = store.lowers(img)?;
    let layers: Vec<Value> = cfg
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut v = json!({
        "Id": img.row.id,
        "RepoTags": img.tags.iter().map(|t| t.familiar()).collect::<Vec<_>>(),
        "RepoDigests": img.digests.iter().map(|d| d.familiar()).collect::<Vec<_>>(),
        "Parent": "",
        "Comment": cfg.pointer("/history/0/comment").and_then(Value::as_str).unwrap_or(""),
        "Created": img.row.created.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        "DockerVersion": cfg.get("docker_version").and_then(Value::as_str).unwrap_or(""),
        "Author": cfg.get("author").and_then(Value::as_str).unwrap_or(""),
        "Config": c,
        "Architecture": cfg.get("architecture").and_then(Value::as_str).unwrap_or(""),
        "Os": cfg.get("os").and_then(Value::as_str).unwrap_or(""),
        "Size": img.row.size,
        "GraphDriver": {
            "Data": {
                "LowerDir": lowers.iter().skip(1).map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"),
                "UpperDir": lowers.first().map(|p| p.display().to_string()).unwrap_or_default(),
            },
            "Name": "overlay2"
        },
        "RootFS": {"Type": "layers", "Layers": layers},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"}
    });
    if let Some(var) = cfg.get("variant") {
        v["Variant"] = var.clone();
    }
    Ok(v)
}

/// Docker's JSON for a network.
pub fn network_json(e: &Engine, n: &crate::networks::Network) -> Value {
    let mut containers = serde_json::Map::new();
    for r in e.all().unwrap_or_default() {
        let st = e.state(&r.id);
        let extra = crate::networks::connections(e, &r.id)
            .into_iter()
            .filter_map(|c| c.attachment)
            .find(|a| a.network_id == n.id);
        if let Some(a) = st.net.as_ref().filter(|a| a.network_id == n.id).or(extra.as_ref()) {
            containers.insert(
                r.id.clone(),
                json!({
                    "Name": r.name,
                    "EndpointID": a.veth,
                    "MacAddress": a.mac,
                    "IPv4Address": format!("{}/{}", a.ip, a.prefix),
                    "IPv6Address": ""
                }),
            );
        }
    }
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": n.scope(),
        "Driver": n.driver,
        "EnableIPv4": true,
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": null,
            "Config": [{"Subnet": n.subnet, "Gateway": n.gateway}]
        },
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        // As dockerd: the default bridge lists its settings; a user network only the
        // options it was created with (none), which docker-compose compares with its own.
        "Options": if n.name == crate::networks::DEFAULT {
            json!({
                "com.docker.network.bridge.default_bridge": "true",
                "com.docker.network.bridge.enable_icc": "true",
                "com.docker.network.bridge.enable_ip_masquerade": "true",
                "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                "com.docker.network.bridge.name": n.bridge,
                "com.docker.network.driver.mtu": "1500",
            })
        } else if n.driver == crate::networks::overlay::DRIVER {
            crate::networks::overlay::options_json(n)
        } else {
            json!({})
        },
        "Labels": n.labels,
    })
}

/// Docker's JSON for a volume.
pub fn volume_json(e: &Engine, name: &str) -> Value {
    let created = std::fs::metadata(e.root.join("volumes").join(name))
        .and_then(|m| m.modified())
        .map(berth_image::store::rfc3339)
        .unwrap_or_default();
    let m = crate::volumes::meta(e, name);
    let map_or_null =
        |m: &std::collections::BTreeMap<String, String>| if m.is_empty() { Value::Null } else { json!(m) };
    json!({
        "CreatedAt": created,
        "Driver": "local",
        "Labels": map_or_null(&m.labels),
        "Mountpoint": crate::volumes::data_dir(e, name),
        "Name": name,
        "Options": map_or_null(&m.options),
        "Scope": "local",
    })
}

/// A running container's cgroup figures, in runc's `events --stats` shape (`data`).
pub fn cgroup_stats(e: &Engine, id: &str) -> Option<serde_json::Value> {
    let r = e.resolve(id).ok()?;
    let mut v = e.rt(&r).ok()?.stats(&r.id, &e.dir(&r.id)).ok()?;
    Some(v["data"].take())
}

/// One sample of a container's usage: (cpu ns, memory bytes, memory limit, pids).
pub fn sample(e: &Engine, id: &str) -> Option<(u64, u64, u64, u64)> {
    let v = cgroup_stats(e, id)?;
    let d = &v;
    let limit = d["memory"]["usage"]["limit"].as_u64().unwrap_or(0);
    let host = host_memory();
    let limit = if limit == 0 || limit > host { host } else { limit };
    let cache = d["memory"]["raw"]["total_inactive_file"].as_u64().unwrap_or(0);
    Some((
        d["cpu"]["usage"]["total"].as_u64().unwrap_or(0),
        d["memory"]["usage"]["usage"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(cache),
        limit,
        d["pids"]["current"].as_u64().unwrap_or(0),
    ))
}

/// `top`: the container's processes as the host's `ps` shows them with `ps_args` (`-ef`
/// when empty), Docker's way: `ps ARGS -q PIDS`, or, where ps lacks `-q`, the whole list
/// filtered on its PID column.
pub fn top(e: &Engine, id: &str, ps_args: &str) -> crate::Result<(Vec<String>, Vec<Vec<String>>)> {
    let pids = crate::ops::pids(e, id)?;
    let args: Vec<&str> = if ps_args.trim().is_empty() {
        vec!["-ef"]
    } else {
        ps_args.split_whitespace().collect()
    };
    let list = pids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    let run = |extra: &[&str]| {
        std::process::Command::new("ps")
            .args(&args)
            .args(extra)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(crate::io_err("running", "ps"))
    };
    let mut o = run(&["-q", &list])?;
    if !o.status.success() {
        o = run(&[])?;
    }
    if !o.status.success() {
        return Err(crate::EngineError::Invalid(format!(
            "ps: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    parse_ps(&String::from_utf8_lossy(&o.stdout), &pids)
}

/// `ps` output as titles and rows (the last column keeps its spaces), only the rows of `pids`.
fn parse_ps(text: &str, pids: &[i32]) -> crate::Result<(Vec<String>, Vec<Vec<String>>)> {
    let mut lines = text.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let Some(pid_col) = titles.iter().position(|t| t == "PID") else {
        return Err(crate::EngineError::Invalid(
            "Couldn't find PID field in ps output".into(),
        ));
    };
    let mut rows = Vec::new();
    for l in lines.filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = l.split_whitespace().collect();
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        let n = titles.len().max(1);
        let mut row: Vec<String> = fields.iter().take(n - 1).map(|f| (*f).to_string()).collect();
        row.push(fields.iter().skip(n - 1).copied().collect::<Vec<_>>().join(" "));
        rows.push(row);
    }
    Ok((titles, rows))
}

/// Bytes in regular files under `dir` (a container's writable layer).
pub fn dir_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for en in rd.flatten() {
            let Ok(md) = en.metadata() else { continue };
            if md.is_dir() {
                stack.push(en.path());
            } else if md.is_file() {
                total += md.len();
            }
        }
    }
    total
}

/// A container's sizes as Docker reports them: its writable layer (`SizeRw`) and that
/// plus its image (`SizeRootFs`).
pub fn container_sizes(e: &Engine, images: &ImageStore, r: &Record) -> (u64, u64) {
    let rw = dir_size(&e.dir(&r.id).join("fs/upper"));
    let image = images
        .image(&r.image_id)
        .ok()
        .map_or(0, |i| u64::try_from(i.row.size).unwrap_or(0));
    (rw, rw + image)
}

/// `HostConfig.PortBindings`: what `-p` asked for, one entry per container port (host port
/// empty where any free one does).
pub(crate) fn port_bindings(r: &Record) -> Value {
    let mut out = serde_json::Map::new();
    for (ip, host, port, proto) in r
        .publish
        .iter()
        .filter_map(|p| crate::networks::parse_publish(p).ok())
        .flatten()
    {
        let key = format!("{port}/{}", proto.as_str());
        let binding = json!({
            "HostIp": ip.map(|i| i.to_string()).unwrap_or_default(),
            "HostPort": host.map(|h| h.to_string()).unwrap_or_default(),
        });
        if let Value::Array(list) = out.entry(key).or_insert_with(|| json!([])) {
            list.push(binding);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ps_output_is_filtered_and_the_last_column_kept_whole() {
        let text = "UID PID PPID C STIME TTY TIME CMD\nroot 10 1 0 08:00 ? 00:00:00 sleep 100\nroot 11 1 0 08:00 ? 00:00:00 sh -c x y\n";
        let (t, rows) = super::parse_ps(text, &[11]).unwrap();
        assert_eq!(t.len(), 8);
        assert_eq!(
            rows,
            vec![vec!["root", "11", "1", "0", "08:00", "?", "00:00:00", "sh -c x y"]]
        );
        super::parse_ps("USER COMMAND\nroot sh\n", &[1]).unwrap_err();
    }
}
