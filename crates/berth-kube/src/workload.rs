//! Workloads: Deployments, ReplicaSets, DaemonSets and Jobs read from their documents, and
//! the pods they make, named as their controllers name them.

use k8s_openapi::api::core::v1 as core;
use serde::Deserialize;

use crate::{yaml_error, OWNER_LABEL};

/// Pods made from a template, as a controller would make them on one node.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct Workload {
    /// `Deployment`, `ReplicaSet`, `DaemonSet` or `Job`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: Option<String>,
    /// How many pods at first (a DaemonSet's: one, this being one node; a Job's: as many as run at once).
    pub replicas: i32,
    /// The pods' template.
    pub template: core::PodTemplateSpec,
    /// A Job's completions and limits.
    pub job: Option<JobSpec>,
}

/// What a Job asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct JobSpec {
    /// Pods that must succeed.
    pub completions: i32,
    /// Pods run at once.
    pub parallelism: i32,
    /// Failures (pod failures, container restarts) before the Job fails.
    pub backoff_limit: i32,
}

/// A Deployment, ReplicaSet, DaemonSet or Job document's name, replicas and template; and
/// the document as read back (for unknown fields).
pub(crate) fn workload(kind: &str, v: serde_yaml::Value) -> Result<(Workload, serde_json::Value), String> {
    use k8s_openapi::api::apps::v1 as apps;
    use k8s_openapi::api::batch::v1 as batch;
    let mut job = None;
    let (meta, replicas, template, back) = match kind {
        "Deployment" => {
            let d: apps::Deployment = serde_yaml::from_value(v).map_err(|e| yaml_error(&e))?;
            let back = serde_json::to_value(&d).unwrap_or_default();
            let s = d.spec.ok_or("no spec")?;
            (d.metadata, s.replicas.unwrap_or(1), s.template, back)
        }
        "ReplicaSet" => {
            let d: apps::ReplicaSet = serde_yaml::from_value(v).map_err(|e| yaml_error(&e))?;
            let back = serde_json::to_value(&d).unwrap_or_default();
            let s = d.spec.ok_or("no spec")?;
            (
                d.metadata,
                s.replicas.unwrap_or(1),
                s.template.ok_or("no template")?,
                back,
            )
        }
        "Job" => {
            let d: batch::Job = serde_yaml::from_value(v).map_err(|e| yaml_error(&e))?;
            let back = serde_json::to_value(&d).unwrap_or_default();
            let s = d.spec.ok_or("no spec")?;
            let completions = s.completions.unwrap_or(1);
            let parallelism = s.parallelism.unwrap_or(1);
            let backoff_limit = s.backoff_limit.unwrap_or(6);
            if completions < 1 || parallelism < 1 || backoff_limit < 0 {
                return Err(format!(
                    "completions {completions}, parallelism {parallelism}, backoffLimit {backoff_limit}: completions and parallelism at least 1, backoffLimit at least 0"
                ));
            }
            match s.template.spec.as_ref().and_then(|p| p.restart_policy.as_deref()) {
                Some("OnFailure" | "Never") => {}
                p => {
                    return Err(format!(
                        "template.spec.restartPolicy {:?}: a Job's pods take OnFailure or Never",
                        p.unwrap_or("")
                    ))
                }
            }
            job = Some(JobSpec {
                completions,
                parallelism,
                backoff_limit,
            });
            (d.metadata, completions.min(parallelism), s.template, back)
        }
        _ => {
            let d: apps::DaemonSet = serde_yaml::from_value(v).map_err(|e| yaml_error(&e))?;
            let back = serde_json::to_value(&d).unwrap_or_default();
            let s = d.spec.ok_or("no spec")?;
            (d.metadata, 1, s.template, back)
        }
    };
    if !(0..=100).contains(&replicas) {
        return Err(format!("replicas {replicas}: 0 to 100 on one machine"));
    }
    let w = Workload {
        kind: kind.to_string(),
        name: meta.name.filter(|n| !n.is_empty()).ok_or("no metadata.name")?,
        namespace: meta.namespace,
        replicas,
        template,
        job,
    };
    Ok((w, back))
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
pub(crate) fn workload_pods(w: &Workload) -> Vec<core::Pod> {
    (0..w.replicas).map(|i| workload_pod(w, i)).collect()
}

/// The `i`th pod of a workload (its suffix drawn from the clock as well, so that pods
/// made later have names of their own).
pub(crate) fn workload_pod(w: &Workload, i: i32) -> core::Pod {
    let template = serde_json::to_vec(&w.template).unwrap_or_default();
    let hash = fnv(&template);
    let base = match w.kind.as_str() {
        "Deployment" => format!("{}-{}", w.name, name_chars(hash, 10)),
        _ => w.name.clone(),
    };
    let entropy = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()) ^ d.as_secs());
    let mut meta = w.template.metadata.clone().unwrap_or_default();
    let suffix = name_chars(
        fnv(&[&hash.to_le_bytes()[..], &entropy.to_le_bytes(), &i.to_le_bytes()].concat()),
        5,
    );
    meta.name = Some(format!("{base}-{suffix}"));
    meta.namespace = w.namespace.clone();
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(OWNER_LABEL.into(), format!("{}/{}", w.kind, w.name));
    if w.kind == "Job" {
        labels.insert("job-name".into(), w.name.clone());
    }
    meta.labels = Some(labels);
    core::Pod {
        metadata: meta,
        spec: w.template.spec.clone(),
        status: None,
    }
}
