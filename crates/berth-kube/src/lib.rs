//! `berth kube play` and `kube down`: Kubernetes YAML run on this machine as berth pods,
//! without a cluster. Each Pod document becomes a berth pod (an infra holding the shared
//! namespaces) with one berth container per container of its spec, named as Podman names
//! them (`POD-CONTAINER`).
//!
//! This front end plans and calls the engine (`pods::create`, `create::create`,
//! `pods::start`), as the CLI and the APIs do. Kinds other than Pod are reported as not
//! served yet, never silently dropped.

mod env;
mod volumes;

use berth_engine::create::CreateOptions;
use berth_engine::images::ImageStore;
use berth_engine::model::NetworkMode;
use berth_engine::options::{PortSpec, RestartPolicy};
use berth_engine::pods::{self, PodOptions};
use berth_engine::store::Engine;
use berth_engine::EngineError;
use k8s_openapi::api::core::v1 as core;
use serde::Deserialize;

use crate::env::{environment, Data};
use crate::volumes::{container_mounts, prepare_volumes, remove_volumes};

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
    /// A kind not served yet: its name.
    Other(String),
}

/// Pods made from a template, as a controller would make them on one node.
#[derive(Debug, Clone)]
pub struct Workload {
    /// `Deployment`, `ReplicaSet` or `DaemonSet`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: Option<String>,
    /// How many pods (a DaemonSet's: one, this being one node).
    pub replicas: i32,
    /// The pods' template.
    pub template: core::PodTemplateSpec,
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
        match kind.as_str() {
            "Pod" => {
                let pod: core::Pod = serde_yaml::from_value(v).map_err(|e| invalid(yaml_error(&e)))?;
                docs.push(Doc::Pod(Box::new(pod)));
            }
            "ConfigMap" => {
                let m: core::ConfigMap = serde_yaml::from_value(v).map_err(|e| invalid(yaml_error(&e)))?;
                docs.push(Doc::ConfigMap(Box::new(m)));
            }
            "Secret" => {
                let m: core::Secret = serde_yaml::from_value(v).map_err(|e| invalid(yaml_error(&e)))?;
                docs.push(Doc::Secret(Box::new(m)));
            }
            "Deployment" | "ReplicaSet" | "DaemonSet" => {
                let w = workload(&kind, v).map_err(invalid)?;
                docs.push(Doc::Workload(Box::new(w)));
            }
            "" => return Err(invalid("a document needs a kind".into())),
            other => docs.push(Doc::Other(other.to_string())),
        }
    }
    Ok(docs)
}

/// A Deployment, ReplicaSet or DaemonSet document's name, replicas and template.
fn workload(kind: &str, v: serde_yaml::Value) -> Result<Workload, String> {
    use k8s_openapi::api::apps::v1 as apps;
    let (meta, replicas, template) = match kind {
        "Deployment" => {
            let d: apps::Deployment = serde_yaml::from_value(v).map_err(|e| yaml_error(&e))?;
            let s = d.spec.ok_or("no spec")?;
            (d.metadata, s.replicas.unwrap_or(1), s.template)
        }
        "ReplicaSet" => {
            let d: apps::ReplicaSet = serde_yaml::from_value(v).map_err(|e| yaml_error(&e))?;
            let s = d.spec.ok_or("no spec")?;
            (d.metadata, s.replicas.unwrap_or(1), s.template.ok_or("no template")?)
        }
        _ => {
            let d: apps::DaemonSet = serde_yaml::from_value(v).map_err(|e| yaml_error(&e))?;
            let s = d.spec.ok_or("no spec")?;
            (d.metadata, 1, s.template)
        }
    };
    if !(0..=100).contains(&replicas) {
        return Err(format!("replicas {replicas}: 0 to 100 on one machine"));
    }
    Ok(Workload {
        kind: kind.to_string(),
        name: meta.name.filter(|n| !n.is_empty()).ok_or("no metadata.name")?,
        namespace: meta.namespace,
        replicas,
        template,
    })
}

/// Characters of the names Kubernetes generates (no vowels, no look-alikes).
const NAME_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `n` characters of Kubernetes' generated-name alphabet from `seed`.
fn name_chars(mut seed: u64, n: usize) -> String {
    (0..n)
        .map(|_| {
            let c = NAME_CHARS[usize::try_from(seed % NAME_CHARS.len() as u64).unwrap_or(0)];
            seed /= NAME_CHARS.len() as u64;
            seed ^= seed.rotate_left(17).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            char::from(c)
        })
        .collect()
}

/// FNV-1a of `b`.
fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
        (h ^ u64::from(*x)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The pods a workload makes: named as its controller names them (a Deployment's
/// `NAME-HASH-SUFFIX`, the hash of its template; a ReplicaSet's and a DaemonSet's
/// `NAME-SUFFIX`), labelled with their owner.
fn workload_pods(w: &Workload) -> Vec<core::Pod> {
    let template = serde_json::to_vec(&w.template).unwrap_or_default();
    let hash = fnv(&template);
    let base = match w.kind.as_str() {
        "Deployment" => format!("{}-{}", w.name, name_chars(hash, 10)),
        _ => w.name.clone(),
    };
    let entropy = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()) ^ d.as_secs());
    (0..w.replicas)
        .map(|i| {
            let mut meta = w.template.metadata.clone().unwrap_or_default();
            let suffix = name_chars(
                fnv(&[&hash.to_le_bytes()[..], &entropy.to_le_bytes(), &i.to_le_bytes()].concat()),
                5,
            );
            meta.name = Some(format!("{base}-{suffix}"));
            meta.namespace = w.namespace.clone();
            let mut labels = meta.labels.unwrap_or_default();
            labels.insert(OWNER_LABEL.into(), format!("{}/{}", w.kind, w.name));
            meta.labels = Some(labels);
            core::Pod {
                metadata: meta,
                spec: w.template.spec.clone(),
                status: None,
            }
        })
        .collect()
}

/// A YAML error with its line and column, when it has them.
fn yaml_error(e: &serde_yaml::Error) -> String {
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

/// A container's options in `pod`.
fn container_options(
    pod: &pods::Pod,
    data: &Data,
    c: &core::Container,
    policy: RestartPolicy,
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
        ..CreateOptions::default()
    };
    // Kubernetes' rules: command replaces the entrypoint (and drops the image's cmd), args
    // replace the cmd.
    if let Some(cmd) = c.command.clone().filter(|c| !c.is_empty()) {
        o.entrypoint = Some(cmd);
    }
    o.cmd = c.args.clone().unwrap_or_default();
    Ok(o)
}

/// Pulls an image a container names if the store lacks it (the default policy for a
/// tagged image, IfNotPresent).
fn ensure_image(images: &mut ImageStore, image: &str) -> Result<(), EngineError> {
    if images.resolve(image).is_ok() {
        return Ok(());
    }
    let r = berth_oci::Reference::parse(image).map_err(|e| EngineError::Invalid(format!("image {image:?}: {e}")))?;
    berth_engine::images::pull(images, &r, &berth_engine::images::PullOptions::default(), &|_| {})?;
    Ok(())
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
            Doc::Workload(w) => {
                for p in workload_pods(w) {
                    let made = play_pod(engine, images, &p, &mut data, exe);
                    keep_or_undo(engine, &mut out, made)?;
                }
                continue;
            }
            Doc::Other(kind) => {
                out.warnings.push(format!("kind {kind} is not served yet: skipped"));
                continue;
            }
        };
        let made = play_pod(engine, images, p, &mut data, exe);
        keep_or_undo(engine, &mut out, made)?;
    }
    Ok(out)
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
fn play_pod(
    engine: &Engine,
    images: &mut ImageStore,
    p: &core::Pod,
    data: &mut Data,
    exe: &std::path::Path,
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
    for c in &spec.containers {
        if let Some(i) = &c.image {
            ensure_image(images, i)?;
        }
    }
    let pod = pods::create(engine, images, &opts)?;
    let made = (|| -> Result<Vec<String>, EngineError> {
        prepare_volumes(engine, &pod.name, spec, data)?;
        let mut ids = Vec::new();
        for c in &spec.containers {
            let mut o = container_options(&pod, data, c, opts.restart)?;
            o.mounts = container_mounts(&pod.name, spec, c)?;
            ids.push(berth_engine::create::create(engine, images, &o)?.record.id);
        }
        pods::start(engine, &pod.id, exe)?;
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

/// Removes the pods the documents name (a pod already gone is no error); their ids.
pub fn down(engine: &Engine, docs: &[Doc]) -> Result<Vec<String>, KubeError> {
    let mut gone = Vec::new();
    for d in docs {
        if let Doc::Workload(w) = d {
            let owner = format!("{}/{}", w.kind, w.name);
            for pod in pods::list(engine)? {
                if pod.labels.get(OWNER_LABEL) == Some(&owner) {
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
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: a\n    image: bb:1\n---\nkind: Job\n",
        )
        .unwrap();
        assert!(matches!(&docs[0], Doc::Pod(p) if p.metadata.name.as_deref() == Some("web")));
        assert!(matches!(&docs[1], Doc::Other(k) if k == "Job"));
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
