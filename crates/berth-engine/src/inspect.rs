//! Docker's `inspect` JSON of a container, shared by the CLI and the API.

use serde_json::{json, Value};

use crate::store::{Engine, Record, State};

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
    json!({
        "Id": r.id,
        "Created": r.created,
        "Path": r.path,
        "Args": r.args,
        "State": {
            "Status": if paused { "paused" } else { st.status.as_str() },
            "Running": st.running(),
            "Paused": paused,
            "Restarting": st.status == "restarting",
            "OOMKilled": st.oom_killed,
            "Dead": st.status == "dead",
            "Pid": if st.running() { st.pid } else { 0 },
            "ExitCode": st.exit_code,
            "Error": st.error,
            "StartedAt": st.started_at,
            "FinishedAt": st.finished_at,
            "Health": st.health.as_ref().map(|h| json!({
                "Status": h.status,
                "FailingStreak": h.failing_streak,
                "Log": h.log.iter().map(|p| json!({"Start": p.start, "End": p.end, "ExitCode": p.exit_code, "Output": p.output})).collect::<Vec<_>>(),
            })),
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
            "PortBindings": {},
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
            "IpcMode": "private",
            "Cgroup": "",
            "Links": null,
            "OomScoreAdj": 0,
            "PidMode": "",
            "Privileged": r.privileged,
            "PublishAllPorts": false,
            "ReadonlyRootfs": r.read_only,
            "SecurityOpt": security_opt,
            "Tmpfs": tmpfs,
            "UTSMode": "",
            "UsernsMode": "",
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
            "CpusetMems": "",
            "Devices": [],
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
            "Propagation": if m.kind == "bind" { "rprivate" } else { "" },
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
    })
}

/// Docker's `NetworkSettings`: the attachment while running, empty fields otherwise.
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
    let endpoint = json!({
        "IPAMConfig": null,
        "Links": null,
        "Aliases": null,
        "MacAddress": a.mac,
        "DriverOpts": null,
        "NetworkID": a.network_id,
        "EndpointID": if a.ip.is_empty() { String::new() } else { a.veth.clone() },
        "Gateway": a.gateway,
        "IPAddress": a.ip,
        "IPPrefixLen": a.prefix,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": null
    });
    let mut networks = serde_json::Map::new();
    networks.insert(r.network_mode.clone(), endpoint.clone());
    for c in crate::networks::connections(e, &r.id) {
        let name = crate::networks::get(e, &c.network_id)
            .map(|n| n.name)
            .unwrap_or(c.network_id.clone());
        let a = c.attachment.unwrap_or_default();
        networks.insert(
            name,
            json!({
                "IPAMConfig": if c.ip.is_empty() { Value::Null } else { json!({"IPv4Address": c.ip}) },
                "Links": null,
                "Aliases": if c.aliases.is_empty() { Value::Null } else { json!(c.aliases) },
                "MacAddress": a.mac,
                "DriverOpts": null,
                "NetworkID": c.network_id,
                "EndpointID": if a.ip.is_empty() { String::new() } else { a.veth.clone() },
                "Gateway": a.gateway,
                "IPAddress": a.ip,
                "IPPrefixLen": a.prefix,
                "IPv6Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "DNSNames": null
            }),
        );
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
            let up = format!("Up {}", berth_oci::time::human_duration(berth_oci::time::since(&st.started_at)));
            match st.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => format!("{up} (health: starting)"),
                Some(h) => format!("{up} ({h})"),
                None => up,
            }
        }
        "paused" => format!("Up {} (Paused)", berth_oci::time::human_duration(berth_oci::time::since(&st.started_at))),
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
