//! `berth kube play` and `kube down`: Kubernetes YAML run on this machine as berth pods,
//! without a cluster. Each Pod document becomes a berth pod (an infra holding the shared
//! namespaces) with one berth container per container of its spec, named as Podman names
//! them (`POD-CONTAINER`).
//!
//! This front end plans and calls the engine (`pods::create`, `create::create`,
//! `pods::start`), as the CLI and the APIs do. Kinds other than Pod are reported as not
//! served yet, never silently dropped.

mod container;
mod env;
pub mod generate;
pub mod job;
mod volumes;
mod workload;

use berth_engine::images::ImageStore;
use berth_engine::kstatus::INIT_LABEL;
use berth_engine::model::NetworkMode;
use berth_engine::options::{PortSpec, RestartPolicy};
use berth_engine::pods::{self, PodOptions};
use berth_engine::store::Engine;
use berth_engine::EngineError;
use k8s_openapi::api::core::v1 as core;
use serde::Deserialize;

use crate::container::container_options;
use crate::env::Data;
use crate::volumes::{container_mounts, prepare_volumes, remove_volumes};
pub(crate) use crate::workload::workload_pod;
use crate::workload::{workload, workload_pods};
pub use crate::workload::{JobSpec, Workload};

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The YAML could not be read.
    #[error("{file}: {message}")]
    Yaml {
        /// The file.
        file: String,
        /// What and where (line and column).
        message: String,
    },
    /// A document is not what its kind says.
    #[error("{file}: document {doc} ({kind}): {message}")]
    Invalid {
        /// The file.
        file: String,
        /// The document's number, from 1.
        doc: usize,
        /// Its kind.
        kind: String,
        /// What is wrong.
        message: String,
    },
    /// The engine refused.
    #[error("{0}")]
    Engine(#[from] EngineError),
}

/// One document of a file.
#[derive(Debug, Clone)]
pub enum Doc {
    /// A Pod.
    Pod(Box<core::Pod>),
    /// A ConfigMap, for the pods of the same file.
    ConfigMap(Box<core::ConfigMap>),
    /// A Secret, for the pods of the same file.
    Secret(Box<core::Secret>),
    /// A Deployment, ReplicaSet or DaemonSet: pods from a template.
    Workload(Box<Workload>),
    /// A PersistentVolumeClaim: a named volume (its name).
    Claim(String),
    /// A kind not served yet: its name.
    Other(String),
    /// Something read but not served (an unknown field, an ignored one): a warning.
    Note(String),
}

/// The label that marks the pods a workload made: `KIND/NAME`.
pub const OWNER_LABEL: &str = "io.berth.kube.owner";

/// The documents of `text` (multi-document YAML), with `file` naming it in errors.
pub fn parse(file: &str, text: &str) -> Result<Vec<Doc>, KubeError> {
    let mut docs = Vec::new();
    for (i, d) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v = serde_yaml::Value::deserialize(d).map_err(|e| KubeError::Yaml {
            file: file.to_string(),
            message: yaml_error(&e),
        })?;
        if v.is_null() {
            continue;
        }
        let kind = v.get("kind").and_then(|k| k.as_str()).unwrap_or("").to_string();
        let invalid = |message: String| KubeError::Invalid {
            file: file.to_string(),
            doc: i + 1,
            kind: if kind.is_empty() {
                "no kind".into()
            } else {
                kind.clone()
            },
            message,
        };
        let name = v
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or("")
            .to_string();
        let input = serde_json::to_value(&v).unwrap_or_default();
        fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(
            v: serde_yaml::Value,
        ) -> Result<(T, serde_json::Value), String> {
            let t: T = serde_yaml::from_value(v).map_err(|e| yaml_error(&e))?;
            let back = serde_json::to_value(&t).unwrap_or_default();
            Ok((t, back))
        }
        let (doc, back) = match kind.as_str() {
            "Pod" => typed::<core::Pod>(v).map(|(p, b)| (Doc::Pod(Box::new(p)), b)),
            "ConfigMap" => typed::<core::ConfigMap>(v).map(|(m, b)| (Doc::ConfigMap(Box::new(m)), b)),
            "Secret" => typed::<core::Secret>(v).map(|(m, b)| (Doc::Secret(Box::new(m)), b)),
            "PersistentVolumeClaim" => typed::<core::PersistentVolumeClaim>(v).and_then(|(c, b)| {
                let n = c.metadata.name.filter(|n| !n.is_empty()).ok_or("no metadata.name")?;
                Ok((Doc::Claim(n), b))
            }),
            "Deployment" | "ReplicaSet" | "DaemonSet" | "Job" => {
                workload(&kind, v).map(|(w, b)| (Doc::Workload(Box::new(w)), b))
            }
            "" => return Err(invalid("a document needs a kind".into())),
            other => Ok((Doc::Other(other.to_string()), input.clone())),
        }
        .map_err(invalid)?;
        let mut unknown = Vec::new();
        unknown_fields(&input, &back, "", &mut unknown);
        docs.push(doc);
        for f in unknown {
            docs.push(Doc::Note(format!("{kind} {name:?}: unknown field {f}: ignored")));
        }
        for f in ignored_fields(&input) {
            docs.push(Doc::Note(format!("{kind} {name:?}: field {f} is not served: ignored")));
        }
    }
    Ok(docs)
}

/// The fields of `input` that its typed reading `typed` dropped: ones the kind does not
/// have (a typo, a newer API), as dotted paths.
fn unknown_fields(input: &serde_json::Value, typed: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    use serde_json::Value;
    match (input, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(t) => unknown_fields(v, t, &p, out),
                    None if !v.is_null() => out.push(p),
                    None => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (v, t)) in a.iter().zip(b).enumerate() {
                unknown_fields(v, t, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Pod spec fields berth reads but does not serve: those that only mean something to a
/// cluster (scheduling, service accounts), and some it has no counterpart for yet.
const UNSERVED_POD_FIELDS: &[&str] = &[
    "affinity",
    "nodeSelector",
    "nodeName",
    "tolerations",
    "topologySpreadConstraints",
    "priorityClassName",
    "priority",
    "schedulerName",
    "schedulingGates",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "imagePullSecrets",
    "readinessGates",
    "runtimeClassName",
    "preemptionPolicy",
    "overhead",
    "resourceClaims",
    "activeDeadlineSeconds",
    "hostUsers",
    "subdomain",
    "setHostnameAsFQDN",
    "ephemeralContainers",
    "os",
    "securityContext.fsGroup",
    "securityContext.fsGroupChangePolicy",
    "securityContext.sysctls",
    "securityContext.seccompProfile",
    "securityContext.seLinuxOptions",
    "securityContext.appArmorProfile",
    "securityContext.windowsOptions",
];

/// A container's fields berth reads but does not serve.
const UNSERVED_CONTAINER_FIELDS: &[&str] = &[
    "volumeDevices",
    "resizePolicy",
    "restartPolicy",
    "stdinOnce",
    "resources.claims",
    "securityContext.seccompProfile",
    "securityContext.seLinuxOptions",
    "securityContext.procMount",
    "securityContext.appArmorProfile",
    "securityContext.windowsOptions",
];

/// A Job spec's fields berth reads but does not serve.
const UNSERVED_JOB_FIELDS: &[&str] = &[
    "activeDeadlineSeconds",
    "ttlSecondsAfterFinished",
    "completionMode",
    "suspend",
    "podFailurePolicy",
    "backoffLimitPerIndex",
    "maxFailedIndexes",
    "successPolicy",
    "podReplacementPolicy",
];

/// The fields of `v` (dotted paths) in `names` that are set (not null, not empty).
fn set_fields(v: &serde_json::Value, at: &str, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter(|f| {
            let got = f.split('.').try_fold(v, |v, k| v.get(k));
            got.is_some_and(|g| !g.is_null() && g.as_object().is_none_or(|o| !o.is_empty()))
        })
        .map(|f| format!("{at}.{f}"))
        .collect()
}

/// The fields a document sets that berth does not serve.
fn ignored_fields(doc: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let (spec, at) = match doc["spec"].get("template") {
        Some(t) => {
            if doc["kind"] == "Job" {
                out.extend(set_fields(&doc["spec"], "spec", UNSERVED_JOB_FIELDS));
            }
            (&t["spec"], "spec.template.spec")
        }
        None => (&doc["spec"], "spec"),
    };
    out.extend(set_fields(spec, at, UNSERVED_POD_FIELDS));
    for list in ["initContainers", "containers"] {
        for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
            out.extend(set_fields(c, &format!("{at}.{list}[{i}]"), UNSERVED_CONTAINER_FIELDS));
        }
    }
    out
}

/// Warnings about the documents: kinds not served, fields unknown or ignored.
pub fn warnings(docs: &[Doc]) -> Vec<String> {
    docs.iter()
        .filter_map(|d| match d {
            Doc::Other(kind) => Some(format!("kind {kind} is not served yet: skipped")),
            Doc::Note(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

/// A YAML error with its line and column, when it has them.
pub(crate) fn yaml_error(e: &serde_yaml::Error) -> String {
    match e.location() {
        Some(l) => format!("line {} column {}: {e}", l.line(), l.column()),
        None => e.to_string(),
    }
}

/// What `play` made.
#[derive(Debug, Clone, Default)]
pub struct Played {
    /// Per pod: its id, and its containers' ids.
    pub pods: Vec<(String, Vec<String>)>,
    /// Warnings: kinds and fields not served.
    pub warnings: Vec<String>,
    /// The Jobs started (their names).
    pub jobs: Vec<String>,
}

/// The pod's name (metadata.name), required.
fn pod_name(p: &core::Pod) -> Result<String, EngineError> {
    p.metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| EngineError::Invalid("a Pod needs metadata.name".into()))
}

/// The restart policy of a pod's containers.
fn restart(spec: &core::PodSpec) -> Result<RestartPolicy, EngineError> {
    match spec.restart_policy.as_deref().unwrap_or("Always") {
        "Always" => Ok(RestartPolicy::Always),
        "OnFailure" => Ok(RestartPolicy::OnFailure(0)),
        "Never" => Ok(RestartPolicy::No),
        p => Err(EngineError::Invalid(format!(
            "restartPolicy {p:?}: Always, OnFailure or Never"
        ))),
    }
}

/// The pod's options: name, hostname, labels, its containers' host ports, host network.
fn pod_options(p: &core::Pod, spec: &core::PodSpec) -> Result<PodOptions, EngineError> {
    let name = pod_name(p)?;
    let mut o = PodOptions {
        name: Some(name),
        hostname: spec.hostname.clone(),
        labels: p.metadata.labels.clone().unwrap_or_default(),
        restart: restart(spec)?,
        ..PodOptions::default()
    };
    if spec.host_network == Some(true) {
        o.infra.network = NetworkMode::Host;
    }
    for a in spec.host_aliases.iter().flatten() {
        for h in a.hostnames.iter().flatten() {
            o.infra.add_hosts.push(format!("{h}:{}", a.ip));
        }
    }
    // One PID namespace for the pod's containers, the infra's pause as its PID 1.
    if spec.share_process_namespace == Some(true) {
        o.share = Some(["ipc", "net", "uts", "pid"].map(String::from).to_vec());
    }
    // dnsConfig: there is no cluster DNS to put first, so its servers, searches and
    // options are the pod's (as --dns, --dns-search, --dns-option).
    if let Some(d) = &spec.dns_config {
        o.infra.dns = d.nameservers.clone().unwrap_or_default();
        o.infra.dns_search = d.searches.clone().unwrap_or_default();
        o.infra.dns_options = d
            .options
            .iter()
            .flatten()
            .filter_map(|opt| {
                let name = opt.name.as_deref()?;
                Some(match &opt.value {
                    Some(v) => format!("{name}:{v}"),
                    None => name.to_string(),
                })
            })
            .collect();
    }
    for c in &spec.containers {
        for port in c.ports.iter().flatten() {
            let Some(host) = port.host_port.filter(|h| *h > 0) else {
                continue;
            };
            let proto = port.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
            let ip = port
                .host_ip
                .as_deref()
                .filter(|i| !i.is_empty())
                .map(|i| format!("{i}:"))
                .unwrap_or_default();
            o.infra
                .publish
                .push(PortSpec::parse(&format!("{ip}{host}:{}/{proto}", port.container_port))?);
        }
    }
    Ok(o)
}

/// A container's `imagePullPolicy`, or the default: `Always` for `:latest` or no tag (and
/// no digest), else `IfNotPresent`.
fn pull_policy(c: &core::Container, image: &str) -> Result<&'static str, EngineError> {
    match c.image_pull_policy.as_deref() {
        Some("Always") => Ok("Always"),
        Some("IfNotPresent") => Ok("IfNotPresent"),
        Some("Never") => Ok("Never"),
        Some(p) => Err(EngineError::Invalid(format!(
            "container {}: imagePullPolicy {p:?}: Always, IfNotPresent or Never",
            c.name
        ))),
        None => {
            let r = berth_oci::Reference::parse(image)
                .map_err(|e| EngineError::Invalid(format!("container {}: image {image:?}: {e}", c.name)))?;
            let latest = r.digest().is_none() && r.tag().is_none_or(|t| t == "latest");
            Ok(if latest { "Always" } else { "IfNotPresent" })
        }
    }
}

/// Makes a container's image present as its pull policy says; returns the user its
/// config names. `Always` pulls; when that fails and a copy is here, the copy is used
/// with a warning (this machine may have no way to the registry).
fn ensure_image(
    images: &mut ImageStore,
    c: &core::Container,
    warnings: &mut Vec<String>,
) -> Result<String, EngineError> {
    let image = c.image.clone().unwrap_or_default();
    if image.is_empty() {
        return Err(EngineError::Invalid(format!("container {}: no image", c.name)));
    }
    let policy = pull_policy(c, &image)?;
    let here = images.resolve(&image).is_ok();
    let pull = |images: &mut ImageStore| -> Result<(), EngineError> {
        let r = berth_oci::Reference::parse(&image)
            .map_err(|e| EngineError::Invalid(format!("container {}: image {image:?}: {e}", c.name)))?;
        berth_engine::images::pull(images, &r, &berth_engine::images::PullOptions::default(), &|_| {})?;
        Ok(())
    };
    match (policy, here) {
        ("Never", false) => {
            return Err(EngineError::Invalid(format!(
                "container {}: ErrImageNeverPull: container image \"{image}\" is not present with pull policy of Never",
                c.name
            )))
        }
        ("Always", true) => {
            if let Err(e) = pull(images) {
                warnings.push(format!(
                    "container {}: pulling {image} (imagePullPolicy Always) failed, using the local image: {e}",
                    c.name
                ));
            }
        }
        ("Always", false) | ("IfNotPresent", false) => pull(images)
            .map_err(|e| EngineError::Invalid(format!("container {}: ErrImagePull: {image}: {e}", c.name)))?,
        _ => {}
    }
    let img = images.resolve(&image)?;
    let cfg = images.config(&img).ok().and_then(|cfg| cfg.config);
    Ok(cfg
        .as_ref()
        .and_then(|c| c.get("User"))
        .and_then(|u| u.as_str())
        .unwrap_or_default()
        .to_string())
}

/// Plays the documents: each Pod made and started; nothing is left of a pod that failed.
pub fn play(
    engine: &Engine,
    images: &mut ImageStore,
    docs: &[Doc],
    exe: &std::path::Path,
) -> Result<Played, KubeError> {
    let mut out = Played::default();
    let mut data = Data::of(docs);
    for d in docs {
        let p = match d {
            Doc::Pod(p) => p,
            Doc::ConfigMap(_) | Doc::Secret(_) => continue,
            Doc::Claim(name) => {
                claim(engine, name)?;
                continue;
            }
            Doc::Workload(w) if w.job.is_some() => {
                match job::start(engine, images, w, &mut data, exe, &mut out.warnings) {
                    Ok(made) => {
                        out.jobs.push(w.name.clone());
                        out.pods.extend(made);
                    }
                    Err(e) => {
                        keep_or_undo(engine, &mut out, Err(e))?;
                    }
                }
                continue;
            }
            Doc::Workload(w) => {
                for p in workload_pods(w) {
                    let made = play_pod(engine, images, &p, &mut data, exe, &mut out.warnings);
                    keep_or_undo(engine, &mut out, made)?;
                }
                continue;
            }
            Doc::Other(_) | Doc::Note(_) => continue,
        };
        let made = play_pod(engine, images, p, &mut data, exe, &mut out.warnings);
        keep_or_undo(engine, &mut out, made)?;
    }
    Ok(out)
}

/// The named volume a PersistentVolumeClaim stands for, made if missing (and kept by
/// `kube down`, as a claim's data outlives its pods).
fn claim(engine: &Engine, name: &str) -> Result<(), KubeError> {
    let mut meta = berth_engine::volumes::VolumeMeta::default();
    meta.labels.insert("io.berth.kube.claim".into(), name.to_string());
    berth_engine::volumes::create_with(engine, name, &meta)?;
    Ok(())
}

/// Keeps a pod just made, or, if it failed, removes every pod this play made before it:
/// a file plays whole or not at all.
fn keep_or_undo(
    engine: &Engine,
    out: &mut Played,
    made: Result<(String, Vec<String>), KubeError>,
) -> Result<(), KubeError> {
    match made {
        Ok(p) => {
            out.pods.push(p);
            Ok(())
        }
        Err(e) => {
            for name in out.jobs.drain(..) {
                job::remove(engine, &name);
            }
            for (id, _) in out.pods.drain(..) {
                if let Ok(p) = pods::remove(engine, &id, true) {
                    remove_volumes(engine, &p.name);
                }
            }
            Err(e)
        }
    }
}

/// Makes and starts one pod; nothing is left of it if that fails. Its id and its
/// containers'.
pub(crate) fn play_pod(
    engine: &Engine,
    images: &mut ImageStore,
    p: &core::Pod,
    data: &mut Data,
    exe: &std::path::Path,
    warnings: &mut Vec<String>,
) -> Result<(String, Vec<String>), KubeError> {
    let spec = p
        .spec
        .as_ref()
        .ok_or_else(|| EngineError::Invalid(format!("pod {}: no spec", p.metadata.name.as_deref().unwrap_or(""))))?;
    if spec.containers.is_empty() {
        return Err(EngineError::Invalid(format!("pod {}: no containers", pod_name(p)?)).into());
    }
    let opts = pod_options(p, spec)?;
    data.namespace = p.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let inits = spec.init_containers.clone().unwrap_or_default();
    let mut users = Vec::new();
    for c in inits.iter().chain(&spec.containers) {
        users.push(ensure_image(images, c, warnings)?);
    }
    let pod = pods::create(engine, images, &opts)?;
    let made = (|| -> Result<Vec<String>, EngineError> {
        // The infra first: its address is the pod's (`status.podIP`).
        pods::start_infra(engine, &pod.id, exe)?;
        data.host_ip = Data::host_ip();
        data.pod_ip = engine
            .state(&pod.infra_id)
            .net
            .map(|n| n.ip)
            .filter(|ip| !ip.is_empty())
            .unwrap_or_else(|| {
                if spec.host_network == Some(true) {
                    data.host_ip.clone()
                } else {
                    String::new()
                }
            });
        prepare_volumes(engine, &pod.name, spec, data)?;
        let mut ids = Vec::new();
        // Init containers are restarted on failure unless the pod's policy is Never.
        let init_policy = match opts.restart {
            RestartPolicy::No => RestartPolicy::No,
            _ => RestartPolicy::OnFailure(0),
        };
        for (i, (c, user)) in inits.iter().chain(&spec.containers).zip(&users).enumerate() {
            let init = i < inits.len();
            let policy = if init { init_policy } else { opts.restart };
            let mut o = container_options(&pod, spec, data, c, policy, user)?;
            if init {
                o.labels.insert(INIT_LABEL.into(), i.to_string());
            }
            o.mounts = container_mounts(engine, &pod.name, spec, c)?;
            ids.push(berth_engine::create::create(engine, images, &o)?.record.id);
        }
        if inits.is_empty() {
            pods::start(engine, &pod.id, exe)?;
        } else {
            // The init containers run in order, each to success, before the app
            // containers: that may take long (or, failing, forever), so a detached
            // `pod start` sees to it and this returns, as the kubelet's API does.
            spawn_detached(engine, exe, &["pod", "start", &pod.id])?;
        }
        Ok(ids)
    })();
    match made {
        Ok(ids) => Ok((pod.id.clone(), ids)),
        Err(e) => {
            let _ = pods::remove(engine, &pod.id, true);
            remove_volumes(engine, &pod.name);
            Err(e.into())
        }
    }
}

/// `berth ARGS...` over this engine's root, detached (its own session, no stdio), not
/// waited for.
pub(crate) fn spawn_detached(engine: &Engine, exe: &std::path::Path, args: &[&str]) -> Result<(), EngineError> {
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--root").arg(&engine.root).args(args);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: between fork and exec only setsid, which is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| EngineError::Invalid(format!("starting {}: {e}", exe.display())))?;
    // Reaped by a thread of its own so it leaves no zombie while this process lives.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    Ok(())
}

/// Removes the pods the documents name (a pod already gone is no error); their ids.
pub fn down(engine: &Engine, docs: &[Doc]) -> Result<Vec<String>, KubeError> {
    let mut gone = Vec::new();
    for d in docs {
        if let Doc::Workload(w) = d {
            if w.job.is_some() {
                job::remove(engine, &w.name);
            }
            let owner = format!("{}/{}", w.kind, w.name);
            for pod in pods::list(engine)? {
                if pod.labels.get(OWNER_LABEL) == Some(&owner) {
                    // Stopped first, as the kubelet deletes a pod: preStop hooks, the
                    // stop signal, SIGKILL after the grace period.
                    let _ = pods::stop(engine, &pod.id, None);
                    match pods::remove(engine, &pod.id, true) {
                        Ok(pod) => {
                            remove_volumes(engine, &pod.name);
                            gone.push(pod.id);
                        }
                        Err(e) if e.kind() == berth_oci::ErrorKind::NotFound => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            continue;
        }
        let Doc::Pod(p) = d else { continue };
        let name = pod_name(p)?;
        let _ = pods::stop(engine, &name, None);
        let removed = pods::remove(engine, &name, true);
        remove_volumes(engine, &name);
        match removed {
            Ok(pod) => gone.push(pod.id),
            Err(e) if e.kind() == berth_oci::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_parse_and_errors_say_where() {
        let docs = parse(
            "f.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: a\n    image: bb:1\n    imagePolicy: x\n    securityContext: {seccompProfile: {type: Localhost}}\n  nodeSelector: {a: b}\n  securityContext: {}\n---\nkind: Job\nmetadata: {name: j}\nspec:\n  ttlSecondsAfterFinished: 5\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: a, image: bb:1}]\n---\nkind: Service\n",
        )
        .unwrap();
        assert!(matches!(&docs[0], Doc::Pod(p) if p.metadata.name.as_deref() == Some("web")));
        let w = warnings(&docs);
        assert_eq!(
            w,
            [
                "Pod \"web\": unknown field spec.containers[0].imagePolicy: ignored",
                "Pod \"web\": field spec.nodeSelector is not served: ignored",
                "Pod \"web\": field spec.containers[0].securityContext.seccompProfile is not served: ignored",
                "Job \"j\": field spec.ttlSecondsAfterFinished is not served: ignored",
                "kind Service is not served yet: skipped"
            ]
        );
        let e = parse("f.yaml", "kind: Pod\nmetadata:\n  name: [\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("f.yaml: ") && e.contains("line "), "{e}");
        let e = parse("f.yaml", "kind: Pod\nspec:\n  containers: 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("document 1 (Pod)"), "{e}");
        parse("f.yaml", "metadata: {}\n").unwrap_err();
    }

    #[test]
    fn quantities_and_host_path_types() {
        assert_eq!(volumes::tmpfs_size("8Mi"), Some(8 << 20));
        assert_eq!(volumes::tmpfs_size("1000"), Some(1000));
        assert_eq!(volumes::tmpfs_size("2G"), Some(2_000_000_000));
        assert_eq!(volumes::tmpfs_size("lots"), None);
        assert_eq!(volumes::tmpfs_size("1Xi"), None);
        let hp = |path: &str, t: &str| core::HostPathVolumeSource {
            path: path.into(),
            type_: Some(t.into()),
        };
        volumes::host_path("v", &hp("/", "Directory")).unwrap();
        volumes::host_path("v", &hp("/", "File")).unwrap_err();
        volumes::host_path("v", &hp("/dev/null", "CharDevice")).unwrap();
        volumes::host_path("v", &hp("relative", "")).unwrap_err();
        volumes::host_path("v", &hp("/", "Sideways")).unwrap_err();
    }

    #[test]
    fn restart_policies_map_to_berths() {
        let spec = |p: &str| core::PodSpec {
            restart_policy: Some(p.into()),
            ..Default::default()
        };
        assert_eq!(restart(&spec("Never")).unwrap(), RestartPolicy::No);
        assert_eq!(restart(&spec("Always")).unwrap(), RestartPolicy::Always);
        restart(&spec("Sometimes")).unwrap_err();
    }
}
