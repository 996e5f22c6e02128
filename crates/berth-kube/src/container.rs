//! A container of a Pod spec as the engine's create options: the command rules, the
//! environment, resources, the security context, probes and lifecycle hooks, as the kubelet
//! applies them.

use berth_engine::create::CreateOptions;
use berth_engine::model::{KubeConfig, KubeProbe, ProbeHandler};
use berth_engine::options::RestartPolicy;
use berth_engine::pods;
use berth_engine::EngineError;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::env::{environment, Data};

/// A container's options in `pod` (`spec` its pod's spec; `image_user` the user its image
/// names).
pub(crate) fn container_options(
    pod: &pods::Pod,
    spec: &core::PodSpec,
    data: &Data,
    c: &core::Container,
    policy: RestartPolicy,
    image_user: &str,
) -> Result<CreateOptions, EngineError> {
    let image = c
        .image
        .clone()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| EngineError::Invalid(format!("container {}: no image", c.name)))?;
    let env = environment(c, pod, data)?;
    let mut o = CreateOptions {
        image,
        name: Some(format!("{}-{}", pod.name, c.name)),
        pod: Some(pod.id.clone()),
        env,
        workdir: c.working_dir.clone().filter(|w| !w.is_empty()),
        tty: c.tty == Some(true),
        open_stdin: c.stdin == Some(true),
        restart: policy,
        // The kubelet's default grace: 30 s.
        stop_timeout: Some(
            spec.termination_grace_period_seconds
                .map_or(30, |s| u64::try_from(s).unwrap_or(0)),
        ),
        kube: Some(kube_config(c)?),
        ..CreateOptions::default()
    };
    // Kubernetes' rules: command replaces the entrypoint (and drops the image's cmd), args
    // replace the cmd.
    if let Some(cmd) = c.command.clone().filter(|c| !c.is_empty()) {
        o.entrypoint = Some(cmd);
    }
    o.cmd = c.args.clone().unwrap_or_default();
    resources(&mut o, c)?;
    security(&mut o, spec.security_context.as_ref(), c, image_user)?;
    // The host's PID and IPC namespaces, where the pod asks for them.
    if spec.host_pid == Some(true) {
        if spec.share_process_namespace == Some(true) {
            return Err(EngineError::Invalid(
                "hostPID and shareProcessNamespace cannot both be set".into(),
            ));
        }
        o.pid = berth_engine::model::NamespaceMode::Host;
    }
    if spec.host_ipc == Some(true) {
        o.ipc = berth_engine::model::NamespaceMode::Host;
    }
    Ok(o)
}

/// `resources`: cpu requests as shares, cpu limits as a CFS quota, memory limits.
fn resources(o: &mut CreateOptions, c: &core::Container) -> Result<(), EngineError> {
    let Some(r) = &c.resources else { return Ok(()) };
    let bad =
        |what: &str, q: &str| EngineError::Invalid(format!("container {}: {what} {q:?} is not a quantity", c.name));
    if let Some(q) = r.requests.as_ref().and_then(|m| m.get("cpu")) {
        let milli = millicpu(&q.0).ok_or_else(|| bad("cpu request", &q.0))?;
        // The kubelet's conversion: 1024 shares per CPU, at least 2.
        o.cpu_shares = (milli * 1024 / 1000).max(2);
    }
    if let Some(q) = r.limits.as_ref().and_then(|m| m.get("cpu")) {
        let milli = millicpu(&q.0).ok_or_else(|| bad("cpu limit", &q.0))?;
        o.nano_cpus = i64::try_from(milli * 1_000_000).map_err(|_| bad("cpu limit", &q.0))?;
    }
    if let Some(q) = r.limits.as_ref().and_then(|m| m.get("memory")) {
        let bytes = bytes(&q.0).ok_or_else(|| bad("memory limit", &q.0))?;
        o.memory = i64::try_from(bytes).map_err(|_| bad("memory limit", &q.0))?;
    }
    Ok(())
}

/// A CPU quantity (`500m`, `1`, `0.25`) in thousandths of a CPU.
pub(crate) fn millicpu(q: &str) -> Option<u64> {
    if let Some(m) = q.strip_suffix('m') {
        return m.parse().ok();
    }
    let (whole, frac) = q.split_once('.').unwrap_or((q, ""));
    if frac.len() > 3 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let frac: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}").parse().ok()?
    };
    whole.checked_mul(1000)?.checked_add(frac)
}

/// A byte quantity (`64Mi`, `1G`, `1000`, `1e3`).
pub(crate) fn bytes(q: &str) -> Option<u64> {
    if let Some((m, e)) = q.split_once(['e', 'E']) {
        return m.parse::<u64>().ok()?.checked_mul(10u64.checked_pow(e.parse().ok()?)?);
    }
    let digits = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let n: u64 = q[..digits].parse().ok()?;
    let mult: u64 = match &q[digits..] {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" => 1000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// The security context: the container's over the pod's.
fn security(
    o: &mut CreateOptions,
    pod: Option<&core::PodSecurityContext>,
    c: &core::Container,
    image_user: &str,
) -> Result<(), EngineError> {
    let sc = c.security_context.as_ref();
    let uid = sc.and_then(|s| s.run_as_user).or(pod.and_then(|p| p.run_as_user));
    let gid = sc.and_then(|s| s.run_as_group).or(pod.and_then(|p| p.run_as_group));
    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or(pod.and_then(|p| p.run_as_non_root));
    if let Some(u) = uid {
        if u < 0 {
            return Err(EngineError::Invalid(format!(
                "container {}: runAsUser {u} is negative",
                c.name
            )));
        }
        o.user = Some(match gid {
            Some(g) => format!("{u}:{g}"),
            None => u.to_string(),
        });
    } else if let Some(g) = gid {
        // A group without a user: the image's user, this group.
        let user = image_user.split(':').next().filter(|u| !u.is_empty()).unwrap_or("0");
        o.user = Some(format!("{user}:{g}"));
    }
    // The kubelet refuses a container that would run as root: by runAsUser, or by the
    // image's user when that is root (by name or number) or not a number it can check.
    if non_root == Some(true) {
        let image_uid = image_user.split(':').next().unwrap_or("");
        let root = match uid {
            Some(u) => u == 0,
            None => matches!(image_uid, "" | "0" | "root"),
        };
        if root {
            return Err(EngineError::Invalid(format!(
                "container {}: CreateContainerConfigError: container has runAsNonRoot and image will run as root",
                c.name
            )));
        }
        if uid.is_none() && image_uid.parse::<u32>().is_err() {
            return Err(EngineError::Invalid(format!(
                "container {}: CreateContainerConfigError: container has runAsNonRoot and image has non-numeric user ({image_uid}), cannot verify user is non-root",
                c.name
            )));
        }
    }
    for g in pod.and_then(|p| p.supplemental_groups.as_ref()).into_iter().flatten() {
        o.group_add.push(g.to_string());
    }
    let Some(sc) = sc else { return Ok(()) };
    o.read_only = sc.read_only_root_filesystem == Some(true);
    o.privileged = sc.privileged == Some(true);
    if let Some(caps) = &sc.capabilities {
        let cap = |n: &String| {
            let n = n.to_ascii_uppercase();
            if n == "ALL" || n.starts_with("CAP_") {
                n
            } else {
                format!("CAP_{n}")
            }
        };
        o.cap_add = caps.add.iter().flatten().map(cap).collect();
        o.cap_drop = caps.drop.iter().flatten().map(cap).collect();
    }
    if sc.allow_privilege_escalation == Some(false) {
        o.security_opt.push("no-new-privileges".into());
    }
    Ok(())
}

/// The probes and hooks of a container, in the engine's terms.
fn kube_config(c: &core::Container) -> Result<KubeConfig, EngineError> {
    let hook = |h: Option<&core::LifecycleHandler>, which: &str| -> Result<Option<Vec<String>>, EngineError> {
        let Some(h) = h else { return Ok(None) };
        match &h.exec {
            Some(e) => Ok(Some(e.command.clone().unwrap_or_default())),
            None => Err(EngineError::Invalid(format!(
                "container {}: lifecycle.{which}: only exec hooks are served",
                c.name
            ))),
        }
    };
    let lc = c.lifecycle.as_ref();
    Ok(KubeConfig {
        liveness: probe(c, c.liveness_probe.as_ref(), "livenessProbe")?,
        readiness: probe(c, c.readiness_probe.as_ref(), "readinessProbe")?,
        startup: probe(c, c.startup_probe.as_ref(), "startupProbe")?,
        post_start: hook(lc.and_then(|l| l.post_start.as_ref()), "postStart")?,
        pre_stop: hook(lc.and_then(|l| l.pre_stop.as_ref()), "preStop")?,
    })
}

/// A port by number, or by the name one of the container's ports has.
fn port(c: &core::Container, p: &IntOrString, what: &str) -> Result<u16, EngineError> {
    let n = match p {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(s) => match s.parse::<i32>() {
            Ok(n) => Some(n),
            Err(_) => c
                .ports
                .iter()
                .flatten()
                .find(|cp| cp.name.as_deref() == Some(s.as_str()))
                .map(|cp| cp.container_port),
        },
    };
    n.and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| EngineError::Invalid(format!("container {}: {what}: port {p:?} is not a port of it", c.name)))
}

/// One probe, checked: one handler, thresholds as the API server allows them.
fn probe(c: &core::Container, p: Option<&core::Probe>, what: &str) -> Result<Option<KubeProbe>, EngineError> {
    let Some(p) = p else { return Ok(None) };
    let invalid = |m: String| EngineError::Invalid(format!("container {}: {what}: {m}", c.name));
    let mut handlers = Vec::new();
    if let Some(e) = &p.exec {
        let command = e.command.clone().unwrap_or_default();
        if command.is_empty() {
            return Err(invalid("exec needs a command".into()));
        }
        handlers.push(ProbeHandler::Exec { command });
    }
    if let Some(h) = &p.http_get {
        if h.scheme.as_deref().is_some_and(|s| !s.eq_ignore_ascii_case("HTTP")) {
            return Err(invalid(format!(
                "httpGet scheme {:?}: only HTTP is served",
                h.scheme.as_deref().unwrap_or("")
            )));
        }
        handlers.push(ProbeHandler::HttpGet {
            host: h.host.clone().unwrap_or_default(),
            port: port(c, &h.port, what)?,
            path: h.path.clone().unwrap_or_else(|| "/".into()),
            headers: h
                .http_headers
                .iter()
                .flatten()
                .map(|x| (x.name.clone(), x.value.clone()))
                .collect(),
        });
    }
    if let Some(t) = &p.tcp_socket {
        handlers.push(ProbeHandler::TcpSocket {
            host: t.host.clone().unwrap_or_default(),
            port: port(c, &t.port, what)?,
        });
    }
    if let Some(g) = &p.grpc {
        handlers.push(ProbeHandler::Grpc {
            port: port(c, &IntOrString::Int(g.port), what)?,
            service: g.service.clone().unwrap_or_default(),
        });
    }
    if handlers.len() != 1 {
        return Err(invalid(
            "a probe needs exactly one handler (exec, httpGet, tcpSocket or grpc)".into(),
        ));
    }
    let secs = |v: Option<i32>, default: u32, min: u32, field: &str| -> Result<u32, EngineError> {
        match v {
            None => Ok(default),
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|n| *n >= min)
                .ok_or_else(|| invalid(format!("{field} {n}: at least {min}"))),
        }
    };
    let success_threshold = secs(p.success_threshold, 1, 1, "successThreshold")?;
    if what != "readinessProbe" && success_threshold != 1 {
        return Err(invalid(format!("successThreshold {success_threshold}: must be 1")));
    }
    Ok(Some(KubeProbe {
        handler: handlers.remove(0),
        initial_delay: secs(p.initial_delay_seconds, 0, 0, "initialDelaySeconds")?,
        period: secs(p.period_seconds, 10, 1, "periodSeconds")?,
        timeout: secs(p.timeout_seconds, 1, 1, "timeoutSeconds")?,
        success_threshold,
        failure_threshold: secs(p.failure_threshold, 3, 1, "failureThreshold")?,
        termination_grace: p
            .termination_grace_period_seconds
            .map(|s| u64::try_from(s).unwrap_or(0)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_as_kubernetes_writes_them() {
        assert_eq!(millicpu("500m"), Some(500));
        assert_eq!(millicpu("1"), Some(1000));
        assert_eq!(millicpu("0.25"), Some(250));
        assert_eq!(millicpu("1.5"), Some(1500));
        assert_eq!(millicpu("x"), None);
        assert_eq!(bytes("64Mi"), Some(64 << 20));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("1e3"), Some(1000));
        assert_eq!(bytes("12Q"), None);
    }

    fn container(yaml: &str) -> core::Container {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn probes_take_the_api_servers_defaults_and_checks() {
        let c = container(
            "name: a\nimage: x\nports: [{name: web, containerPort: 8080}]\nlivenessProbe:\n  httpGet: {path: /h, port: web, httpHeaders: [{name: X, value: y}]}\nreadinessProbe:\n  tcpSocket: {port: 81}\n  successThreshold: 2\n",
        );
        let k = kube_config(&c).unwrap();
        let l = k.liveness.unwrap();
        assert_eq!(
            (l.period, l.timeout, l.failure_threshold, l.success_threshold),
            (10, 1, 3, 1)
        );
        assert_eq!(
            l.handler,
            ProbeHandler::HttpGet {
                host: String::new(),
                port: 8080,
                path: "/h".into(),
                headers: vec![("X".into(), "y".into())]
            }
        );
        assert_eq!(k.readiness.unwrap().success_threshold, 2);
        for bad in [
            "name: a\nlivenessProbe: {periodSeconds: 1}\n",
            "name: a\nlivenessProbe: {tcpSocket: {port: 1}, successThreshold: 2}\n",
            "name: a\nlivenessProbe: {tcpSocket: {port: nope}}\n",
            "name: a\nlivenessProbe: {tcpSocket: {port: 1}, periodSeconds: 0}\n",
            "name: a\nlivenessProbe: {httpGet: {port: 1, scheme: HTTPS}}\n",
        ] {
            assert!(kube_config(&container(bad)).is_err(), "{bad}");
        }
    }
}
