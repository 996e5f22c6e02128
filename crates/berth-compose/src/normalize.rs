//! The merged tree normalized: short syntax rewritten into long syntax, defaults filled
//! in, env files read, profiles applied, references checked.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::{Mapping, Value};

use crate::interp::{parse_env_file, Vars};
use crate::load::{as_map, key};
use crate::model::{FileSource, Network, Project, Service, Volume};
use crate::ComposeError;

/// Keys the specification has that berth reads but does not act on.
const NOT_SERVED: &[&str] = &[
    "annotations",
    "attach",
    "blkio_config",
    "cgroup",
    "cgroup_parent",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpuset",
    "credential_spec",
    "develop",
    "device_cgroup_rules",
    "domainname",
    "external_links",
    "isolation",
    "label_file",
    "links",
    "mac_address",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "oom_kill_disable",
    "oom_score_adj",
    "post_start",
    "pre_stop",
    "storage_opt",
    "uts",
];

/// A scalar as a string (numbers and booleans as YAML writes them).
pub(crate) fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A string or a list of strings, as a list.
fn str_list(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items.iter().filter_map(scalar).collect(),
        other => scalar(other).into_iter().collect(),
    }
}

fn strings(v: Vec<String>) -> Value {
    Value::Sequence(v.into_iter().map(Value::String).collect())
}

/// A boolean written as YAML writes it, or as a string after interpolation.
fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "on" => Some(true),
            "false" | "no" | "n" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A whole number, or a string holding one.
fn number(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Splits a command line as a POSIX shell would split words (quotes and backslashes; no
/// expansion).
pub fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated quote in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(format!("unterminated quote in {s:?}")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated quote in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// A command: a string split into words, or a list.
fn command(v: &Value) -> Result<Option<Value>, String> {
    Ok(match v {
        Value::Null => None,
        Value::String(s) => Some(strings(shell_split(s)?)),
        Value::Sequence(_) => Some(strings(str_list(v))),
        _ => return Err("must be a string or a list".into()),
    })
}

/// `ports` entries in long syntax (a short range becomes one entry per port).
fn ports(v: &Value) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    let Value::Sequence(items) = v else {
        return Err("must be a list".into());
    };
    for it in items {
        if let Value::Mapping(m) = it {
            let target = m
                .get("target")
                .and_then(number)
                .ok_or_else(|| "a port without a target".to_string())?;
            let mut p = Mapping::new();
            p.insert(
                key("mode"),
                Value::String(m.get("mode").and_then(scalar).unwrap_or_else(|| "ingress".into())),
            );
            if let Some(ip) = m.get("host_ip").and_then(scalar) {
                p.insert(key("host_ip"), Value::String(ip));
            }
            p.insert(key("target"), Value::Number(target.into()));
            if let Some(pb) = m.get("published").and_then(scalar) {
                p.insert(key("published"), Value::String(pb));
            }
            p.insert(
                key("protocol"),
                Value::String(m.get("protocol").and_then(scalar).unwrap_or_else(|| "tcp".into())),
            );
            out.push(Value::Mapping(p));
            continue;
        }
        let spec = scalar(it).ok_or_else(|| "a port must be a string, a number or a mapping".to_string())?;
        let parsed = berth_engine::options::PortSpec::parse(&spec).map_err(|e| e.to_string())?;
        let proto = format!("{:?}", parsed.proto).to_ascii_lowercase();
        let ctr = parsed.container_ports;
        let count = ctr.1 - ctr.0 + 1;
        for i in 0..count {
            let mut p = Mapping::new();
            p.insert(key("mode"), Value::String("ingress".into()));
            if let Some(ip) = parsed.host_ip {
                p.insert(key("host_ip"), Value::String(ip.to_string()));
            }
            p.insert(key("target"), Value::Number((ctr.0 + i).into()));
            if let Some(h) = parsed.host_ports {
                let published = if h.1 - h.0 + 1 == count {
                    (h.0 + i).to_string()
                } else if h.0 == h.1 {
                    h.0.to_string()
                } else {
                    format!("{}-{}", h.0, h.1)
                };
                p.insert(key("published"), Value::String(published));
            }
            p.insert(key("protocol"), Value::String(proto.clone()));
            out.push(Value::Mapping(p));
        }
    }
    Ok(out)
}

/// `volumes` entries in long syntax.
fn mounts(v: &Value) -> Result<Vec<Value>, String> {
    let Value::Sequence(items) = v else {
        return Err("must be a list".into());
    };
    let mut out = Vec::new();
    for it in items {
        if let Value::Mapping(m) = it {
            let mut m = m.clone();
            if !m.contains_key("target") {
                return Err("a volume without a target".into());
            }
            if !m.contains_key("type") {
                m.insert(key("type"), Value::String("volume".into()));
            }
            out.push(Value::Mapping(m));
            continue;
        }
        let spec = scalar(it).ok_or_else(|| "a volume must be a string or a mapping".to_string())?;
        let parts: Vec<&str> = spec.split(':').collect();
        let mut m = Mapping::new();
        let (source, target, mode) = match parts.as_slice() {
            [t] => (None, *t, None),
            [s, t] => (Some(*s), *t, None),
            [s, t, o] => (Some(*s), *t, Some(*o)),
            _ => return Err(format!("invalid volume spec {spec:?}")),
        };
        let bind = source.is_some_and(|s| s.starts_with('/') || s.starts_with('.'));
        m.insert(key("type"), Value::String(if bind { "bind" } else { "volume" }.into()));
        if let Some(s) = source {
            m.insert(key("source"), Value::String(s.into()));
        }
        m.insert(key("target"), Value::String(target.into()));
        let opts: Vec<&str> = mode.map(|o| o.split(',').collect()).unwrap_or_default();
        if opts.contains(&"ro") {
            m.insert(key("read_only"), Value::Bool(true));
        }
        if bind {
            let mut b = Mapping::new();
            b.insert(key("create_host_path"), Value::Bool(true));
            if let Some(p) = opts
                .iter()
                .find(|o| o.contains("private") || o.contains("shared") || o.contains("slave"))
            {
                b.insert(key("propagation"), Value::String((*p).into()));
            }
            if let Some(z) = opts.iter().find(|o| **o == "z" || **o == "Z") {
                b.insert(key("selinux"), Value::String((*z).into()));
            }
            m.insert(key("bind"), Value::Mapping(b));
        } else if source.is_some() {
            let mut vm = Mapping::new();
            if opts.contains(&"nocopy") {
                vm.insert(key("nocopy"), Value::Bool(true));
            }
            m.insert(key("volume"), Value::Mapping(vm));
        }
        out.push(Value::Mapping(m));
    }
    Ok(out)
}

/// The project's variables, for env files' bare keys and `environment`'s.
fn environment(s: &Mapping, vars: &Vars) -> Result<Value, String> {
    let mut env = BTreeMap::new();
    let files: Vec<(String, bool)> = match s.get("env_file") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(|i| match i {
                Value::Mapping(m) => Some((
                    m.get("path").and_then(scalar)?,
                    m.get("required").and_then(boolean).unwrap_or(true),
                )),
                other => Some((scalar(other)?, true)),
            })
            .collect(),
        Some(other) => scalar(other).map(|f| vec![(f, true)]).unwrap_or_default(),
    };
    for (f, required) in files {
        match std::fs::read_to_string(&f) {
            Ok(text) => {
                let m = parse_env_file(&text, vars).map_err(|e| format!("env file {f}: {e}"))?;
                env.extend(m.into_iter().map(|(k, v)| (k, Value::String(v))));
            }
            Err(_) if !required => {}
            Err(e) => return Err(format!("env file {f} not found: {e}")),
        }
    }
    if let Some(v) = s.get("environment") {
        for (k, v) in as_map(v.clone(), '=') {
            let k = scalar(&k).unwrap_or_default();
            let v = match v {
                Value::Null => vars.get(&k).map_or(Value::Null, |x| Value::String(x.to_string())),
                other => scalar(&other).map_or(Value::Null, Value::String),
            };
            env.insert(k, v);
        }
    }
    Ok(Value::Mapping(env.into_iter().map(|(k, v)| (key(&k), v)).collect()))
}

/// One service normalized; `warnings` gets what is not served.
fn service(name: &str, s: &Mapping, vars: &Vars, warnings: &mut Vec<String>) -> Result<Mapping, String> {
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    for (k, v) in s {
        let k = k.as_str().unwrap_or_default();
        if k.starts_with("x-") || v.is_null() {
            continue;
        }
        let at = |e: String| format!("services.{name}.{k}: {e}");
        let value = match k {
            "build" => {
                let mut b = match v {
                    Value::Mapping(m) => m.clone(),
                    other => {
                        let mut m = Mapping::new();
                        m.insert(key("context"), Value::String(scalar(other).unwrap_or_default()));
                        m
                    }
                };
                if !b.contains_key("dockerfile") && !b.contains_key("dockerfile_inline") {
                    b.insert(key("dockerfile"), Value::String("Dockerfile".into()));
                }
                if let Some(a) = b.get("args").cloned() {
                    b.insert(key("args"), Value::Mapping(as_map(a, '=')));
                }
                Value::Mapping(b)
            }
            "command" | "entrypoint" => match command(v).map_err(at)? {
                Some(c) => c,
                None => continue,
            },
            "environment" | "env_file" => continue,
            "ports" => Value::Sequence(ports(v).map_err(at)?),
            "volumes" => Value::Sequence(mounts(v).map_err(at)?),
            "expose" | "tmpfs" | "cap_add" | "cap_drop" | "security_opt" | "dns" | "dns_search" | "dns_opt"
            | "group_add" | "profiles" | "volumes_from" | "devices" => strings(str_list(v)),
            "extra_hosts" => strings(match v {
                Value::Mapping(m) => m
                    .iter()
                    .map(|(h, ip)| format!("{}:{}", scalar(h).unwrap_or_default(), str_list(ip).join(",")))
                    .collect(),
                other => str_list(other).into_iter().map(|e| e.replacen('=', ":", 1)).collect(),
            }),
            "labels" | "sysctls" => Value::Mapping(
                as_map(v.clone(), '=')
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(scalar(&v).unwrap_or_default())))
                    .collect(),
            ),
            "networks" => {
                let m = match v {
                    Value::Sequence(items) => items.iter().map(|i| (i.clone(), Value::Null)).collect(),
                    Value::Mapping(m) => m.clone(),
                    _ => return Err(at("must be a list or a mapping".into())),
                };
                Value::Mapping(m)
            }
            "depends_on" => {
                let mut deps = Mapping::new();
                let entries: Vec<(Value, Value)> = match v {
                    Value::Sequence(items) => items.iter().map(|i| (i.clone(), Value::Null)).collect(),
                    Value::Mapping(m) => m.iter().map(|(a, b)| (a.clone(), b.clone())).collect(),
                    _ => return Err(at("must be a list or a mapping".into())),
                };
                for (dep, d) in entries {
                    let cond = d
                        .get("condition")
                        .and_then(scalar)
                        .unwrap_or_else(|| "service_started".into());
                    if !["service_started", "service_healthy", "service_completed_successfully"]
                        .contains(&cond.as_str())
                    {
                        return Err(at(format!(
                            "condition {cond:?}: service_started, service_healthy or service_completed_successfully"
                        )));
                    }
                    let mut m = Mapping::new();
                    m.insert(key("condition"), Value::String(cond));
                    m.insert(
                        key("required"),
                        Value::Bool(d.get("required").and_then(boolean).unwrap_or(true)),
                    );
                    m.insert(
                        key("restart"),
                        Value::Bool(d.get("restart").and_then(boolean).unwrap_or(false)),
                    );
                    deps.insert(dep, Value::Mapping(m));
                }
                Value::Mapping(deps)
            }
            "healthcheck" => {
                let mut h = v.as_mapping().cloned().ok_or_else(|| at("must be a mapping".into()))?;
                match h.get("test").cloned() {
                    Some(Value::String(t)) => {
                        h.insert(key("test"), strings(vec!["CMD-SHELL".into(), t]));
                    }
                    Some(t @ Value::Sequence(_)) => {
                        h.insert(key("test"), strings(str_list(&t)));
                    }
                    _ => {}
                }
                if h.get("disable").and_then(boolean) == Some(true) {
                    h.insert(key("test"), strings(vec!["NONE".into()]));
                }
                if let Some(r) = h.get("retries").and_then(number) {
                    h.insert(key("retries"), Value::Number(r.into()));
                }
                Value::Mapping(h)
            }
            "deploy" => {
                let mut d = v.as_mapping().cloned().ok_or_else(|| at("must be a mapping".into()))?;
                if let Some(r) = d
                    .get("replicas")
                    .map(|r| number(r).ok_or_else(|| at("replicas must be a number".into())))
                {
                    d.insert(key("replicas"), Value::Number(r?.into()));
                }
                if let Some(Value::Mapping(res)) = d.get_mut("resources") {
                    for (_, lim) in res.iter_mut() {
                        if let Some(Value::Mapping(lim)) = Some(lim) {
                            for f in ["cpus", "memory"] {
                                if let Some(x) = lim.get(f).and_then(scalar) {
                                    lim.insert(key(f), Value::String(x));
                                }
                            }
                            if let Some(p) = lim.get("pids").and_then(number) {
                                lim.insert(key("pids"), Value::Number(p.into()));
                            }
                        }
                    }
                }
                Value::Mapping(d)
            }
            "ulimits" => {
                let m = v.as_mapping().ok_or_else(|| at("must be a mapping".into()))?;
                let mut out = Mapping::new();
                for (n, l) in m {
                    let (soft, hard) = match l {
                        Value::Mapping(sh) => (
                            sh.get("soft")
                                .and_then(number)
                                .ok_or_else(|| at("soft must be a number".into()))?,
                            sh.get("hard")
                                .and_then(number)
                                .ok_or_else(|| at("hard must be a number".into()))?,
                        ),
                        other => {
                            let n = number(other).ok_or_else(|| at("a limit must be a number".into()))?;
                            (n, n)
                        }
                    };
                    let mut sh = Mapping::new();
                    sh.insert(key("soft"), Value::Number(soft.into()));
                    sh.insert(key("hard"), Value::Number(hard.into()));
                    out.insert(n.clone(), Value::Mapping(sh));
                }
                Value::Mapping(out)
            }
            "secrets" | "configs" => Value::Sequence(
                match v {
                    Value::Sequence(items) => items.clone(),
                    _ => return Err(at("must be a list".into())),
                }
                .into_iter()
                .map(|i| match i {
                    Value::Mapping(m) => Value::Mapping(m),
                    other => {
                        let mut m = Mapping::new();
                        m.insert(key("source"), other);
                        Value::Mapping(m)
                    }
                })
                .collect(),
            ),
            "init" | "privileged" | "read_only" | "tty" | "stdin_open" => {
                Value::Bool(boolean(v).ok_or_else(|| at("must be true or false".into()))?)
            }
            "scale" | "pids_limit" => Value::Number(number(v).ok_or_else(|| at("must be a number".into()))?.into()),
            "extends" => continue,
            k if NOT_SERVED.contains(&k) => {
                warnings.push(format!("service {name}: key {k} is not served: ignored"));
                continue;
            }
            _ => match v {
                Value::Mapping(_) | Value::Sequence(_) => v.clone(),
                other => Value::String(scalar(other).unwrap_or_default()),
            },
        };
        out.insert(k.to_string(), value);
    }
    let env = environment(s, vars).map_err(|e| format!("services.{name}: {e}"))?;
    if env.as_mapping().is_some_and(|m| !m.is_empty()) {
        out.insert("environment".into(), env);
    }
    if !out.contains_key("network_mode") && !out.contains_key("networks") {
        let mut m = Mapping::new();
        m.insert(key("default"), Value::Null);
        out.insert("networks".into(), Value::Mapping(m));
    }
    if !out.contains_key("image") && !out.contains_key("build") {
        return Err(format!(
            "service {name} has neither an image nor a build context specified"
        ));
    }
    Ok(out.into_iter().map(|(k, v)| (key(&k), v)).collect())
}

/// The project's name as the user gave it, made safe: lower case, `[a-z0-9_-]`, starting
/// with a letter or digit.
pub fn project_name(raw: &str) -> String {
    raw.to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect::<String>()
        .trim_start_matches(['_', '-'])
        .to_string()
}

/// Which services are on: those without profiles, those with an active profile (`*`: all)
/// and those named on the command line.
fn enabled(name: &str, s: &Mapping, profiles: &[String], named: &[String]) -> bool {
    let own = s.get("profiles").map(str_list).unwrap_or_default();
    own.is_empty() || named.iter().any(|n| n == name) || profiles.iter().any(|p| p == "*" || own.contains(p))
}

/// A top-level section's entries, normalized with `f`.
fn section<T: serde::Serialize + serde::de::DeserializeOwned>(
    raw: &Value,
    name: &str,
    f: &dyn Fn(&str, Mapping) -> Mapping,
) -> Result<(BTreeMap<String, T>, Mapping), String> {
    let mut typed = BTreeMap::new();
    let mut out = Mapping::new();
    if let Some(m) = raw.get(name).and_then(Value::as_mapping) {
        for (k, v) in m {
            let k = scalar(k).unwrap_or_default();
            let mut d = v.as_mapping().cloned().unwrap_or_default();
            if let Some(ext) = d.get("external").cloned() {
                // `external: {name: N}` is the old way to name it.
                if let Some(n) = ext.get("name").and_then(scalar) {
                    d.insert(key("name"), Value::String(n));
                }
                d.insert(
                    key("external"),
                    Value::Bool(ext.is_mapping() || boolean(&ext) == Some(true)),
                );
            }
            for field in ["labels", "driver_opts"] {
                if let Some(l) = d.get(field).cloned() {
                    d.insert(
                        key(field),
                        Value::Mapping(
                            as_map(l, '=')
                                .into_iter()
                                .map(|(a, b)| (a, Value::String(scalar(&b).unwrap_or_default())))
                                .collect(),
                        ),
                    );
                }
            }
            let d = f(&k, d);
            let t: T = serde_yaml::from_value(Value::Mapping(d.clone())).map_err(|e| format!("{name}.{k}: {e}"))?;
            typed.insert(k.clone(), t);
            out.insert(key(&k), Value::Mapping(d));
        }
    }
    Ok((typed, out))
}

/// What `load` was asked for beyond the files.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Active profiles.
    pub profiles: Vec<String>,
    /// Services named on the command line (their profiles count as active).
    pub services: Vec<String>,
}

/// The merged tree normalized into a project named `name`.
pub(crate) fn project(
    raw: &Value,
    name: &str,
    vars: &Vars,
    sel: &Selection,
    file: &str,
) -> Result<Project, ComposeError> {
    let bad = |e: String| ComposeError::at(file, e);
    let mut warnings = Vec::new();
    if raw.get("version").is_some() {
        warnings.push(format!(
            "{file}: the attribute `version` is obsolete, it will be ignored"
        ));
    }
    let mut services = BTreeMap::new();
    let mut normalized_services = Mapping::new();
    let raw_services = raw
        .get("services")
        .and_then(Value::as_mapping)
        .cloned()
        .unwrap_or_default();
    let all: Vec<String> = raw_services.keys().filter_map(scalar).collect();
    for n in &sel.services {
        if !all.contains(n) {
            return Err(ComposeError::Invalid {
                file: file.into(),
                message: format!("no such service: {n}"),
            });
        }
    }
    for (k, s) in &raw_services {
        let k = scalar(k).unwrap_or_default();
        let s = s.as_mapping().cloned().unwrap_or_default();
        if !enabled(&k, &s, &sel.profiles, &sel.services) {
            continue;
        }
        let m = service(&k, &s, vars, &mut warnings).map_err(bad)?;
        let typed: Service =
            serde_yaml::from_value(Value::Mapping(m.clone())).map_err(|e| bad(format!("services.{k}: {e}")))?;
        normalized_services.insert(key(&k), Value::Mapping(m));
        services.insert(k, typed);
    }
    // References: dependencies, networks and volumes must exist.
    let mut used_networks = BTreeSet::new();
    for (k, s) in &services {
        for (dep, d) in &s.depends_on {
            if services.contains_key(dep) {
                continue;
            }
            let why = if all.contains(dep) {
                "is not enabled by the active profiles"
            } else {
                "is not defined"
            };
            if d.required {
                return Err(bad(format!("service {k} depends on service {dep}, which {why}")));
            }
            warnings.push(format!("service {k}: optional dependency {dep} {why}: skipped"));
        }
        used_networks.extend(s.networks.keys().cloned());
    }
    let project = name.to_string();
    // A network's or volume's engine name: `PROJECT_KEY`, or the key for an external one.
    let named = |k: &str, mut d: Mapping| {
        let external = d.get("external").and_then(boolean) == Some(true);
        if !d.contains_key("name") {
            let n = if external {
                k.to_string()
            } else {
                format!("{project}_{k}")
            };
            d.insert(key("name"), Value::String(n));
        }
        d
    };
    let (networks, mut net_out) = section::<Network>(raw, "networks", &named).map_err(bad)?;
    let mut networks = networks;
    if used_networks.contains("default") && !networks.contains_key("default") {
        let mut d = Mapping::new();
        d.insert(key("name"), Value::String(format!("{project}_default")));
        net_out.insert(key("default"), Value::Mapping(d));
        networks.insert(
            "default".into(),
            Network {
                name: format!("{project}_default"),
                ..Network::default()
            },
        );
    }
    let (volumes, vol_out) = section::<Volume>(raw, "volumes", &named).map_err(bad)?;
    let (secrets, sec_out) = section::<FileSource>(raw, "secrets", &|k, mut d| {
        d.entry(key("name"))
            .or_insert_with(|| Value::String(format!("{project}_{k}")));
        d
    })
    .map_err(bad)?;
    let (configs, cfg_out) = section::<FileSource>(raw, "configs", &|k, mut d| {
        d.entry(key("name"))
            .or_insert_with(|| Value::String(format!("{project}_{k}")));
        d
    })
    .map_err(bad)?;
    for (k, s) in &services {
        for n in s.networks.keys() {
            if !networks.contains_key(n) {
                return Err(bad(format!(
                    "service {k} refers to undefined network {n}: invalid compose project"
                )));
            }
        }
        for m in &s.volumes {
            if m.kind == "volume" {
                if let Some(src) = &m.source {
                    if !volumes.contains_key(src) {
                        return Err(bad(format!(
                            "service {k} refers to undefined volume {src}: invalid compose project"
                        )));
                    }
                }
            }
        }
        for (what, refs, defs) in [("secret", &s.secrets, &secrets), ("config", &s.configs, &configs)] {
            for r in refs {
                if !defs.contains_key(&r.source) {
                    return Err(bad(format!(
                        "service {k} refers to undefined {what} {}: invalid compose project",
                        r.source
                    )));
                }
            }
        }
        if let Some(mode) = &s.network_mode {
            if let Some(other) = mode.strip_prefix("service:") {
                if !services.contains_key(other) {
                    return Err(bad(format!(
                        "service {k}: network_mode service:{other}: no such service"
                    )));
                }
            }
        }
    }
    for (k, n) in &networks {
        if !n.driver_opts.is_empty() {
            warnings.push(format!(
                "network {k}: driver_opts are not served (berth's bridge takes none): ignored"
            ));
        }
        if n.enable_ipv6 == Some(true) {
            warnings.push(format!("network {k}: enable_ipv6 is not served (IPv4 only): ignored"));
        }
    }
    for (k, src) in secrets.iter().chain(configs.iter()) {
        if src.external {
            warnings.push(format!(
                "secret or config {k}: external ones (a swarm's) are not served: skipped"
            ));
        }
    }
    let mut top = Mapping::new();
    top.insert(key("name"), Value::String(name.into()));
    top.insert(key("services"), Value::Mapping(normalized_services));
    for (k, v) in [
        ("networks", net_out),
        ("volumes", vol_out),
        ("secrets", sec_out),
        ("configs", cfg_out),
    ] {
        if !v.is_empty() {
            top.insert(key(k), Value::Mapping(v));
        }
    }
    Ok(Project {
        name: name.into(),
        working_dir: std::path::PathBuf::new(),
        config_files: Vec::new(),
        services,
        all_services: all,
        networks,
        volumes,
        secrets,
        configs,
        normalized: Value::Mapping(top),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_like_a_shell() {
        assert_eq!(
            shell_split("sh -c 'echo a b' \"x\\\"y\" z\\ w").unwrap(),
            ["sh", "-c", "echo a b", "x\"y", "z w"]
        );
        assert_eq!(shell_split("  ").unwrap(), Vec::<String>::new());
        shell_split("a 'b").unwrap_err();
    }

    #[test]
    fn short_syntax_becomes_long() {
        let v: Value = serde_yaml::from_str(
            "['8080:80', '127.0.0.1:53:53/udp', 9000, '7000-7001:7000-7001', {target: 5, published: '6'}]",
        )
        .unwrap();
        let p = ports(&v).unwrap();
        assert_eq!(p.len(), 6);
        assert_eq!(p[0]["published"], Value::String("8080".into()));
        assert_eq!(p[1]["protocol"], Value::String("udp".into()));
        assert_eq!(p[1]["host_ip"], Value::String("127.0.0.1".into()));
        assert!(p[2].get("published").is_none());
        assert_eq!(p[4]["published"], Value::String("7001".into()));
        let v: Value = serde_yaml::from_str("['/h:/c:ro', 'data:/d', '/anon']").unwrap();
        let m = mounts(&v).unwrap();
        assert_eq!(m[0]["type"], Value::String("bind".into()));
        assert_eq!(m[0]["read_only"], Value::Bool(true));
        assert_eq!(m[1]["type"], Value::String("volume".into()));
        assert!(m[2].get("source").is_none());
    }

    #[test]
    fn project_names_are_made_safe() {
        assert_eq!(project_name("My App.1"), "myapp1");
        assert_eq!(project_name("_x-y"), "x-y");
    }
}
