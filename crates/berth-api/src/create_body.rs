//! Decoding `POST /containers/create`: Docker's JSON (`Config` and `HostConfig`), its
//! field types checked as dockerd's decoder checks them, into the engine's options.

use berth_engine::ops::CreateOptions;
use serde_json::Value;

use crate::ApiError;

/// A list of strings; a lone string is a list of one (Docker's `StrSlice`, for `Cmd` and
/// `Entrypoint`).
fn strs(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        _ => v
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
    }
}

/// The JSON type of a value, in Go's words (for decoding errors).
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks the types of the create body's fields as dockerd's decoder would: a field of the
/// wrong type is a 400 naming it, never silently a default.
fn check_types(body: &Value) -> Result<(), ApiError> {
    #[derive(Clone, Copy)]
    enum Ty {
        Int,
        Bool,
        Str,
        Strs,
        StrOrStrs,
        Obj,
    }
    let check = |section: &str, v: &Value, fields: &[(&str, Ty)]| -> Result<(), ApiError> {
        for (name, ty) in fields {
            let Some(x) = v.get(*name) else { continue };
            let ok = x.is_null()
                || match ty {
                    Ty::Int => x.is_i64() || x.is_u64(),
                    Ty::Bool => x.is_boolean(),
                    Ty::Str => x.is_string(),
                    Ty::Strs => x.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
                    Ty::StrOrStrs => x.is_string() || x.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
                    Ty::Obj => x.is_object(),
                };
            if !ok {
                let go = match ty {
                    Ty::Int => "int64",
                    Ty::Bool => "bool",
                    Ty::Str => "string",
                    Ty::Strs | Ty::StrOrStrs => "[]string",
                    Ty::Obj => "map",
                };
                return Err(ApiError::bad(format!(
                    "json: cannot unmarshal {} into Go struct field {section}.{name} of type {go}",
                    json_kind(x)
                )));
            }
        }
        Ok(())
    };
    use Ty::{Bool, Int, Obj, Str, StrOrStrs, Strs};
    check(
        "Config",
        body,
        &[
            ("Image", Str),
            ("Hostname", Str),
            ("Domainname", Str),
            ("User", Str),
            ("WorkingDir", Str),
            ("StopSignal", Str),
            ("StopTimeout", Int),
            ("Env", Strs),
            ("Cmd", StrOrStrs),
            ("Entrypoint", StrOrStrs),
            ("Tty", Bool),
            ("OpenStdin", Bool),
            ("StdinOnce", Bool),
            ("AttachStdin", Bool),
            ("AttachStdout", Bool),
            ("AttachStderr", Bool),
            ("Labels", Obj),
            ("ExposedPorts", Obj),
            ("Volumes", Obj),
            ("Healthcheck", Obj),
            ("HostConfig", Obj),
            ("NetworkingConfig", Obj),
        ],
    )?;
    check(
        "HostConfig",
        &body["HostConfig"],
        &[
            ("Memory", Int),
            ("MemorySwap", Int),
            ("MemoryReservation", Int),
            ("NanoCpus", Int),
            ("CpuShares", Int),
            ("CpuQuota", Int),
            ("CpuPeriod", Int),
            ("PidsLimit", Int),
            ("ShmSize", Int),
            ("Privileged", Bool),
            ("ReadonlyRootfs", Bool),
            ("AutoRemove", Bool),
            ("Init", Bool),
            ("PublishAllPorts", Bool),
            ("NetworkMode", Str),
            ("CpusetCpus", Str),
            ("Runtime", Str),
            ("Binds", Strs),
            ("CapAdd", Strs),
            ("CapDrop", Strs),
            ("Dns", Strs),
            ("DnsSearch", Strs),
            ("DnsOptions", Strs),
            ("ExtraHosts", Strs),
            ("SecurityOpt", Strs),
            ("VolumesFrom", Strs),
            ("PortBindings", Obj),
            ("RestartPolicy", Obj),
            ("LogConfig", Obj),
            ("Tmpfs", Obj),
        ],
    )
}

fn num(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Docker's create body (Config, HostConfig, NetworkingConfig) as engine options.
pub fn options_from(body: &Value, name: Option<String>) -> Result<CreateOptions, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad("config cannot be empty in order to create a container"));
    }
    check_types(body)?;
    let image = body["Image"].as_str().unwrap_or("").to_string();
    if image.is_empty() {
        return Err(ApiError::bad("No command specified"));
    }
    let hc = &body["HostConfig"];
    let mut o = CreateOptions {
        image,
        name: name.filter(|n| !n.is_empty()),
        env: strs(&body["Env"]),
        workdir: body["WorkingDir"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        user: body["User"].as_str().filter(|s| !s.is_empty()).map(str::to_string),
        hostname: body["Hostname"].as_str().filter(|s| !s.is_empty()).map(str::to_string),
        tty: body["Tty"].as_bool().unwrap_or(false),
        console_size: {
            let dim = |i: usize| u16::try_from(hc["ConsoleSize"][i].as_u64().unwrap_or(0)).unwrap_or(0);
            (dim(0), dim(1))
        },
        open_stdin: body["OpenStdin"].as_bool().unwrap_or(false),
        stdin_once: body["StdinOnce"].as_bool().unwrap_or(false),
        stop_signal: body["StopSignal"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        stop_timeout: body["StopTimeout"].as_u64(),
        auto_remove: hc["AutoRemove"].as_bool().unwrap_or(false),
        network: hc["NetworkMode"]
            .as_str()
            .filter(|s| !s.is_empty() && *s != "default")
            .unwrap_or("bridge")
            .to_string(),
        memory: num(&hc["Memory"]),
        memory_reservation: num(&hc["MemoryReservation"]),
        memory_swap: num(&hc["MemorySwap"]),
        pids_limit: num(&hc["PidsLimit"]).max(0),
        devices: hc["Devices"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|d| {
                        let host = d["PathOnHost"].as_str().unwrap_or("");
                        let inside = d["PathInContainer"].as_str().filter(|s| !s.is_empty()).unwrap_or(host);
                        let perms = d["CgroupPermissions"]
                            .as_str()
                            .filter(|s| !s.is_empty())
                            .unwrap_or("rwm");
                        format!("{host}:{inside}:{perms}")
                    })
                    .collect()
            })
            .unwrap_or_default(),
        read_only: hc["ReadonlyRootfs"].as_bool().unwrap_or(false),
        cpus: num(&hc["NanoCpus"]) as f64 / 1e9,
        cpu_shares: u64::try_from(num(&hc["CpuShares"])).unwrap_or(0),
        cpuset_cpus: hc["CpusetCpus"].as_str().unwrap_or("").to_string(),
        cap_add: strs(&hc["CapAdd"]),
        cap_drop: strs(&hc["CapDrop"]),
        privileged: hc["Privileged"].as_bool().unwrap_or(false),
        security_opt: strs(&hc["SecurityOpt"]),
        // `-v /path` reaches the API as `Config.Volumes` (an anonymous volume there), the
        // rest as `HostConfig.Binds`.
        volumes: {
            let mut v = strs(&hc["Binds"]);
            let mounted: Vec<&str> = hc["Mounts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["Target"].as_str())
                .collect();
            for path in body["Volumes"].as_object().into_iter().flat_map(|m| m.keys()) {
                let taken = v.iter().any(|b| b.split(':').nth(1) == Some(path.as_str()))
                    || mounted.contains(&path.as_str())
                    || hc["Tmpfs"].get(path).is_some();
                if !taken {
                    v.push(path.clone());
                }
            }
            v
        },
        volumes_from: strs(&hc["VolumesFrom"]),
        add_hosts: strs(&hc["ExtraHosts"]),
        dns: strs(&hc["Dns"]),
        dns_search: strs(&hc["DnsSearch"]),
        dns_options: strs(&hc["DnsOptions"]),
        init: hc["Init"].as_bool().unwrap_or(false),
        runtime: hc["Runtime"].as_str().unwrap_or("").to_string(),
        publish_all: hc["PublishAllPorts"].as_bool().unwrap_or(false),
        cgroup_parent: hc["CgroupParent"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        ..CreateOptions::default()
    };
    if let Some(l) = body["Labels"].as_object() {
        for (k, v) in l {
            o.labels.insert(k.clone(), v.as_str().unwrap_or("").to_string());
        }
    }
    // Entrypoint replaces the image's and, unless given, its Cmd; [] resets it.
    let cmd = strs(&body["Cmd"]);
    match body["Entrypoint"].as_array() {
        Some(ep) => {
            let ep: Vec<String> = ep.iter().filter_map(|x| x.as_str().map(str::to_string)).collect();
            match ep.split_first() {
                Some((first, rest)) => {
                    o.entrypoint = Some(first.clone());
                    o.args = rest.to_vec();
                    o.args.extend(cmd);
                }
                None => {
                    o.entrypoint = Some(String::new());
                    o.args = cmd;
                }
            }
        }
        None => o.args = cmd,
    }
    if let Some(hcheck) = body["Healthcheck"].as_object() {
        let test = strs(&hcheck.get("Test").cloned().unwrap_or(Value::Null));
        match test.first().map(String::as_str) {
            Some("NONE") => o.no_healthcheck = true,
            Some("CMD-SHELL") => o.health_cmd = test.get(1).cloned(),
            Some("CMD") => o.health_cmd = Some(test[1..].join(" ")),
            _ => {}
        }
        let dur = |k: &str| {
            hcheck
                .get(k)
                .and_then(Value::as_i64)
                .filter(|n| *n > 0)
                .map(|n| format!("{n}ns"))
        };
        o.health_interval = dur("Interval");
        o.health_timeout = dur("Timeout");
        o.health_start_period = dur("StartPeriod");
        o.health_retries = hcheck
            .get("Retries")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0);
    }
    if let Some(rp) = hc["RestartPolicy"].as_object() {
        let name = rp.get("Name").and_then(Value::as_str).unwrap_or("");
        let max = rp.get("MaximumRetryCount").and_then(Value::as_i64).unwrap_or(0);
        o.restart = match name {
            "" | "no" => String::new(),
            "on-failure" if max > 0 => format!("on-failure:{max}"),
            n => n.to_string(),
        };
    }
    if let Some(t) = hc["Tmpfs"].as_object() {
        for (k, v) in t {
            let opts = v.as_str().unwrap_or("");
            o.tmpfs.push(if opts.is_empty() {
                k.clone()
            } else {
                format!("{k}:{opts}")
            });
        }
    }
    for m in hc["Mounts"].as_array().into_iter().flatten() {
        let mut spec = format!(
            "type={},target={}",
            m["Type"].as_str().unwrap_or("volume"),
            m["Target"].as_str().unwrap_or("")
        );
        if let Some(s) = m["Source"].as_str().filter(|s| !s.is_empty()) {
            spec.push_str(&format!(",source={s}"));
        }
        if m["ReadOnly"].as_bool().unwrap_or(false) {
            spec.push_str(",readonly");
        }
        o.mounts.push(spec);
    }
    for u in hc["Ulimits"].as_array().into_iter().flatten() {
        o.ulimits.push(format!(
            "{}={}:{}",
            u["Name"].as_str().unwrap_or(""),
            num(&u["Soft"]),
            num(&u["Hard"])
        ));
    }
    if let Some(lc) = hc["LogConfig"].as_object() {
        o.log_driver = lc.get("Type").and_then(Value::as_str).unwrap_or("").to_string();
        if let Some(c) = lc.get("Config").and_then(Value::as_object) {
            for (k, v) in c {
                o.log_opts.push(format!("{k}={}", v.as_str().unwrap_or("")));
            }
        }
    }
    if let Some(pb) = hc["PortBindings"].as_object() {
        for (port, binds) in pb {
            let list = binds.as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                o.publish.push(port.clone());
            }
            for b in list {
                let ip = b["HostIp"].as_str().unwrap_or("");
                let hp = b["HostPort"].as_str().unwrap_or("");
                o.publish.push(match (ip.is_empty(), hp.is_empty()) {
                    (true, true) => port.clone(),
                    (true, false) => format!("{hp}:{port}"),
                    (false, _) => format!("{ip}:{hp}:{port}"),
                });
            }
        }
    }
    if let Some(eps) = body["NetworkingConfig"]["EndpointsConfig"].as_object() {
        if let Some((_, ep)) = eps.iter().find(|(n, _)| **n == o.network).or_else(|| eps.iter().next()) {
            o.ip = ep["IPAMConfig"]["IPv4Address"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            o.aliases = strs(&ep["Aliases"]);
        }
    }
    Ok(o)
}
