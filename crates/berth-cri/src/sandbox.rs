//! Pod sandboxes: berth pods made from a `PodSandboxConfig`.

use berth_engine::images::ImageStore;
use berth_engine::model::{NamespaceMode as Ns, NetworkMode};
use berth_engine::options::PortSpec;
use berth_engine::pods::{self, Pod, PodOptions};
use berth_engine::store::Engine;
use berth_engine::EngineError;
use k8s_cri::v1 as cri;
use tonic::Status;

use crate::meta::{self, SandboxMeta};
use crate::{engine_status, nanos, Cri};

/// The infra's OOM score, as containerd gives sandboxes: the last process to kill.
const SANDBOX_OOM_SCORE_ADJ: i32 = -998;

/// The pod's name: the sandbox's metadata, as the kubelet's names are unique by it.
fn pod_name(m: &cri::PodSandboxMetadata) -> String {
    format!("k8s_{}_{}_{}_{}", m.name, m.namespace, m.uid, m.attempt)
}

/// This node's hostname.
fn node_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// Checks the metadata the kubelet must send.
pub(crate) fn check_metadata(m: Option<&cri::PodSandboxMetadata>) -> Result<&cri::PodSandboxMetadata, Status> {
    let m = m.ok_or_else(|| Status::invalid_argument("sandbox config has no metadata"))?;
    for (what, v) in [("name", &m.name), ("namespace", &m.namespace), ("uid", &m.uid)] {
        if v.is_empty() {
            return Err(Status::invalid_argument(format!("sandbox metadata has no {what}")));
        }
    }
    Ok(m)
}

fn ns_mode(v: i32) -> cri::NamespaceMode {
    cri::NamespaceMode::try_from(v).unwrap_or(cri::NamespaceMode::Pod)
}

/// The namespace options a sandbox config asks for.
pub(crate) fn namespace_options(c: &cri::PodSandboxConfig) -> cri::NamespaceOption {
    c.linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_default()
}

/// The pod options for a sandbox config.
fn pod_options(c: &cri::PodSandboxConfig, name: String) -> Result<PodOptions, Status> {
    let nso = namespace_options(c);
    let mut o = PodOptions {
        name: Some(name),
        // The kubelet names the sandbox's host; without one it is the node's, as with
        // containerd (a pod's name is no hostname: the kubelet's are longer than 64 bytes).
        hostname: Some(c.hostname.clone())
            .filter(|h| !h.is_empty())
            .or_else(node_hostname),
        labels: meta::tree(&c.labels),
        annotations: meta::tree(&c.annotations),
        ..PodOptions::default()
    };
    let mut share = vec!["ipc".to_string(), "net".to_string(), "uts".to_string()];
    if ns_mode(nso.pid) == cri::NamespaceMode::Pod {
        share.push("pid".into());
    }
    o.share = Some(share);
    if ns_mode(nso.network) == cri::NamespaceMode::Node {
        o.infra.network = NetworkMode::Host;
        o.infra.uts = Ns::Host;
    } else {
        for p in &c.port_mappings {
            o.infra.publish.push(port_spec(p)?);
        }
    }
    if ns_mode(nso.pid) == cri::NamespaceMode::Node {
        o.infra.pid = Ns::Host;
    }
    if ns_mode(nso.ipc) == cri::NamespaceMode::Node {
        o.infra.ipc = Ns::Host;
    }
    if let Some(d) = &c.dns_config {
        o.infra.dns = d.servers.clone();
        o.infra.dns_search = d.searches.clone();
        o.infra.dns_options = d.options.clone();
    }
    if let Some(parent) = c
        .linux
        .as_ref()
        .map(|l| l.cgroup_parent.as_str())
        .filter(|p| !p.is_empty())
    {
        o.cgroup_parent = Some(parent.to_string());
    }
    // The pod's sysctls are set where its namespaces are made: in the infra.
    if let Some(l) = &c.linux {
        o.infra.sysctls = meta::tree(&l.sysctls);
    }
    o.infra.oom_score_adj = SANDBOX_OOM_SCORE_ADJ;
    Ok(o)
}

/// A port mapping as `-p` would say it.
fn port_spec(p: &cri::PortMapping) -> Result<PortSpec, Status> {
    let proto = match cri::Protocol::try_from(p.protocol) {
        Ok(cri::Protocol::Tcp) => "tcp",
        Ok(cri::Protocol::Udp) => "udp",
        _ => {
            return Err(Status::invalid_argument(format!(
                "port mapping {p:?}: protocol not supported"
            )))
        }
    };
    if p.container_port <= 0 || p.container_port > 65535 || p.host_port < 0 || p.host_port > 65535 {
        return Err(Status::invalid_argument(format!(
            "port mapping {}:{}: ports are 1 to 65535",
            p.host_port, p.container_port
        )));
    }
    let spec = match (p.host_ip.as_str(), p.host_port) {
        (_, 0) => format!("{}/{proto}", p.container_port),
        ("" | "0.0.0.0", h) => format!("{h}:{}/{proto}", p.container_port),
        (ip, h) => format!("{ip}:{h}:{}/{proto}", p.container_port),
    };
    PortSpec::parse(&spec).map_err(engine_status)
}

/// The port mappings as the portmap plugin's `runtimeConfig` takes them.
fn port_mappings(c: &cri::PodSandboxConfig) -> serde_json::Value {
    serde_json::Value::Array(
        c.port_mappings
            .iter()
            .filter(|p| p.host_port > 0)
            .map(|p| {
                let proto = if p.protocol == cri::Protocol::Udp as i32 {
                    "udp"
                } else {
                    "tcp"
                };
                serde_json::json!({
                    "hostPort": p.host_port,
                    "containerPort": p.container_port,
                    "protocol": proto,
                    "hostIP": p.host_ip,
                })
            })
            .collect(),
    )
}

/// Stops the sandbox's containers and infra while its CNI network is torn down (once: its
/// DEL, its namespace), recording that.
fn stop_all(cri: &Cri, engine: &Engine, pod: &Pod, m: &mut SandboxMeta) -> Result<(), Status> {
    let root = &engine.root;
    let cni = &cri.opts.cni;
    let (stopped, deleted) = std::thread::scope(|s| {
        let del = match (&m.network, m.torn_down) {
            (Some(n), false) => Some(s.spawn(move || berth_engine::cni::teardown(root, cni, n))),
            _ => None,
        };
        let stopped = pods::stop(engine, &pod.id, Some(0)).map_err(engine_status);
        let deleted = del.map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(EngineError::Invalid("the CNI plugins' thread panicked".into())))
                .map_err(engine_status)
        });
        (stopped, deleted)
    });
    stopped?;
    if let Some(d) = deleted {
        d?;
        m.torn_down = true;
        meta::save_sandbox(engine, &pod.infra_id, m)?;
    }
    Ok(())
}

/// `RunPodSandbox`: the pod made and its infra started; nothing is left if either fails.
pub fn run(
    cri: &Cri,
    engine: &Engine,
    images: &mut ImageStore,
    req: cri::RunPodSandboxRequest,
) -> Result<String, Status> {
    let config = req
        .config
        .ok_or_else(|| Status::invalid_argument("RunPodSandbox without a config"))?;
    let md = check_metadata(config.metadata.as_ref())?;
    if !["", crate::RUNTIME_NAME].contains(&req.runtime_handler.as_str()) {
        return Err(Status::not_found(format!(
            "no runtime for handler {:?}: berth serves the default handler only",
            req.runtime_handler
        )));
    }
    let name = pod_name(md);
    if pods::get(engine, &name).is_ok() {
        return Err(Status::already_exists(format!(
            "a sandbox named {name} already exists (metadata {}/{} attempt {})",
            md.namespace, md.name, md.attempt
        )));
    }
    let mut opts = pod_options(&config, name.clone())?;
    // A network from the CNI plugins, in a namespace the infra joins; the port mappings go
    // to the plugins (portmap) instead of berth's own publishing.
    let prepared = if ns_mode(namespace_options(&config).network) == cri::NamespaceMode::Node {
        None
    } else {
        berth_engine::cni::prepare(&engine.root, &cri.opts.cni, &name).map_err(engine_status)?
    };
    if let Some(p) = &prepared {
        opts.infra.network = NetworkMode::Path(p.netns.display().to_string());
        opts.infra.publish.clear();
    }
    let args = [
        ("K8S_POD_NAMESPACE", md.namespace.as_str()),
        ("K8S_POD_NAME", md.name.as_str()),
        ("K8S_POD_INFRA_CONTAINER_ID", name.as_str()),
        ("K8S_POD_UID", md.uid.as_str()),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let (root, cni, mappings) = (&engine.root, &cri.opts.cni, port_mappings(&config));
    // The plugins wire the namespace while the pod is made and its infra started: the
    // infra only holds the namespace.
    let (pod, started, network) = std::thread::scope(|s| {
        let args = &args;
        let wiring = prepared.map(|p| s.spawn(move || p.wire(root, cni, args, mappings)));
        let pod = pods::create(engine, images, &opts).map_err(engine_status);
        let started = match &pod {
            Ok(p) => start_infra(cri, engine, &config, p),
            Err(_) => Ok(()),
        };
        let network = wiring
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(EngineError::Invalid("the CNI plugins' thread panicked".into())))
                    .map_err(engine_status)
            })
            .transpose();
        (pod, started, network)
    });
    let undo = |pod: Option<&Pod>, network: Option<&berth_engine::cni::PodNetwork>| {
        if let Some(p) = pod {
            let _ = pods::remove(engine, &p.id, true);
        }
        if let Some(n) = network {
            let _ = berth_engine::cni::teardown(root, cni, n);
        }
    };
    let (pod, network) = match (pod, started, network) {
        (Ok(pod), Ok(()), Ok(network)) => (pod, network),
        (pod, started, network) => {
            undo(pod.as_ref().ok(), network.as_ref().ok().and_then(Option::as_ref));
            return Err(pod
                .err()
                .or(started.err())
                .or(network.err())
                .unwrap_or_else(|| Status::internal("RunPodSandbox failed")));
        }
    };
    let saved = meta::save_sandbox(
        engine,
        &pod.infra_id,
        &SandboxMeta {
            config: config.clone(),
            runtime_handler: req.runtime_handler.clone(),
            network: network.clone(),
            torn_down: false,
        },
    );
    if let Err(e) = saved {
        undo(Some(&pod), network.as_ref());
        return Err(e);
    }
    Ok(pod.id)
}

/// Makes the sandbox's log directory and starts its infra (saying when its OOM score was
/// clamped).
fn start_infra(cri: &Cri, engine: &Engine, config: &cri::PodSandboxConfig, pod: &Pod) -> Result<(), Status> {
    if !config.log_directory.is_empty() {
        std::fs::create_dir_all(&config.log_directory)
            .map_err(|e| Status::internal(format!("making log directory {}: {e}", config.log_directory)))?;
    }
    if let Ok(infra) = engine.resolve(&pod.infra_id) {
        if infra.oom_score_adj != SANDBOX_OOM_SCORE_ADJ {
            eprintln!(
                "berth cri: sandbox {}: oom_score_adj {SANDBOX_OOM_SCORE_ADJ} needs CAP_SYS_RESOURCE: clamped to {}",
                pod.id, infra.oom_score_adj
            );
        }
    }
    pods::start(engine, &pod.id, &cri.opts.exe).map_err(engine_status)?;
    Ok(())
}

/// A sandbox by id or unique id prefix: one the CRI made.
pub fn get(engine: &Engine, id: &str) -> Result<(Pod, SandboxMeta), Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument("no sandbox id"));
    }
    let pod = pods::get(engine, id).map_err(|_| Status::not_found(format!("sandbox {id} not found")))?;
    let m = meta::sandbox(engine, &pod.infra_id).ok_or_else(|| Status::not_found(format!("sandbox {id} not found")))?;
    Ok((pod, m))
}

/// `StopPodSandbox`: its containers and infra stopped, its CNI network torn down (a
/// sandbox already gone is stopped).
pub fn stop(cri: &Cri, engine: &Engine, id: &str) -> Result<(), Status> {
    let (pod, mut m) = match get(engine, id) {
        Ok(p) => p,
        Err(e) if e.code() == tonic::Code::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    stop_all(cri, engine, &pod, &mut m)
}

/// `RemovePodSandbox`: the pod and its containers (a sandbox already gone is removed).
pub fn remove(cri: &Cri, engine: &Engine, id: &str) -> Result<(), Status> {
    let (pod, mut m) = match get(engine, id) {
        Ok(p) => p,
        Err(e) if e.code() == tonic::Code::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    stop_all(cri, engine, &pod, &mut m)?;
    pods::remove(engine, &pod.id, true).map_err(engine_status)?;
    Ok(())
}

fn state(engine: &Engine, pod: &Pod) -> cri::PodSandboxState {
    if engine.state(&pod.infra_id).running() {
        cri::PodSandboxState::SandboxReady
    } else {
        cri::PodSandboxState::SandboxNotready
    }
}

/// `PodSandboxStatus`.
pub fn status(engine: &Engine, id: &str) -> Result<cri::PodSandboxStatus, Status> {
    let (pod, m) = get(engine, id)?;
    let st = engine.state(&pod.infra_id);
    let nso = namespace_options(&m.config);
    let ips = match &m.network {
        Some(n) => n.ips.clone(),
        None => st.net.as_ref().map(|n| vec![n.ip.clone()]).unwrap_or_default(),
    };
    let ip = ips.first().cloned().unwrap_or_default();
    let additional_ips = ips.iter().skip(1).map(|ip| cri::PodIp { ip: ip.clone() }).collect();
    Ok(cri::PodSandboxStatus {
        id: pod.id.clone(),
        metadata: m.config.metadata.clone(),
        state: state(engine, &pod) as i32,
        created_at: nanos(&pod.created),
        network: Some(cri::PodSandboxNetworkStatus { ip, additional_ips }),
        linux: Some(cri::LinuxPodSandboxStatus {
            namespaces: Some(cri::Namespace { options: Some(nso) }),
        }),
        labels: m.config.labels.clone(),
        annotations: m.config.annotations.clone(),
        runtime_handler: m.runtime_handler.clone(),
    })
}

/// `ListPodSandbox`, filtered by id (or prefix), state and labels.
pub fn list(engine: &Engine, f: Option<&cri::PodSandboxFilter>) -> Result<Vec<cri::PodSandbox>, Status> {
    let mut out = Vec::new();
    for pod in pods::list(engine).map_err(engine_status)? {
        let Some(m) = meta::sandbox(engine, &pod.infra_id) else {
            continue;
        };
        let s = state(engine, &pod);
        if let Some(f) = f {
            if !f.id.is_empty() && !pod.id.starts_with(&f.id) {
                continue;
            }
            if f.state.as_ref().is_some_and(|v| v.state != s as i32) {
                continue;
            }
            if !meta::selected(&m.config.labels, &f.label_selector) {
                continue;
            }
        }
        out.push(cri::PodSandbox {
            id: pod.id.clone(),
            metadata: m.config.metadata.clone(),
            state: s as i32,
            created_at: nanos(&pod.created),
            labels: m.config.labels.clone(),
            annotations: m.config.annotations.clone(),
            runtime_handler: m.runtime_handler.clone(),
        });
    }
    Ok(out)
}
