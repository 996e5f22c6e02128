//! A pod's volumes on the host: emptyDirs (tmpfs with medium Memory) and ConfigMap and
//! Secret files under `ROOT/kube/POD/`, hostPaths checked against their type, PVCs as named
//! volumes; and each container's mounts of them.

use berth_engine::store::Engine;
use berth_engine::EngineError;
use k8s_openapi::api::core::v1 as core;

use crate::env::Data;

/// Where a pod's emptyDirs and ConfigMap/Secret files live: `ROOT/kube/POD`.
fn pod_dir(engine: &Engine, pod: &str) -> std::path::PathBuf {
    engine.root.join("kube").join(pod)
}

/// The mounts of a container: its volumeMounts, each resolved against the pod's volumes.
/// emptyDirs are directories of the pod's (tmpfs with medium Memory), shared by its
/// containers; ConfigMaps and Secrets are files written there; a PVC is the named volume its
/// claim names; a hostPath is bound after its type is checked.
pub(crate) fn container_mounts(
    engine: &Engine,
    pod: &str,
    spec: &core::PodSpec,
    c: &core::Container,
) -> Result<Vec<berth_engine::model::MountSpec>, EngineError> {
    use berth_engine::model::MountSpec;
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        if m.sub_path.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(EngineError::Invalid(format!(
                "container {}: volumeMount {}: subPath is not served yet",
                c.name, m.name
            )));
        }
        let v = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == m.name)
            .ok_or_else(|| EngineError::Invalid(format!("container {}: no volume named {:?}", c.name, m.name)))?;
        let ro = m.read_only == Some(true);
        let bind = |source: String, ro: bool| MountSpec {
            kind: "bind".into(),
            source,
            destination: m.mount_path.clone(),
            read_only: ro,
            options: Vec::new(),
        };
        let dir = pod_dir(engine, pod).join(&v.name);
        let spec = if v.empty_dir.is_some() {
            bind(dir.display().to_string(), ro)
        } else if v.config_map.is_some() || v.secret.is_some() {
            bind(dir.display().to_string(), true)
        } else if let Some(h) = &v.host_path {
            bind(h.path.clone(), ro)
        } else if let Some(p) = &v.persistent_volume_claim {
            MountSpec {
                kind: "volume".into(),
                source: p.claim_name.clone(),
                destination: m.mount_path.clone(),
                read_only: ro || p.read_only == Some(true),
                options: Vec::new(),
            }
        } else {
            return Err(EngineError::Invalid(format!(
                "volume {}: only emptyDir, hostPath, configMap, secret and persistentVolumeClaim are served",
                v.name
            )));
        };
        out.push(spec);
    }
    Ok(out)
}

/// Makes what a pod's volumes need on the host before its containers are made.
pub(crate) fn prepare_volumes(
    engine: &Engine,
    pod: &str,
    spec: &core::PodSpec,
    data: &Data,
) -> Result<(), EngineError> {
    let io = |what: &str, p: &std::path::Path| {
        let p = p.display().to_string();
        let what = what.to_string();
        move |e: std::io::Error| EngineError::Invalid(format!("{what} {p}: {e}"))
    };
    for v in spec.volumes.iter().flatten() {
        let dir = pod_dir(engine, pod).join(&v.name);
        if let Some(e) = &v.empty_dir {
            std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
            if e.medium.as_deref() == Some("Memory") {
                // sizeLimit is a Kubernetes quantity (`64Mi`); tmpfs takes k, m and g.
                let size = match e.size_limit.as_ref() {
                    Some(q) => format!(
                        ",size={}",
                        tmpfs_size(&q.0).ok_or_else(|| {
                            EngineError::Invalid(format!("volume {}: sizeLimit {:?} is not a size", v.name, q.0))
                        })?
                    ),
                    None => String::new(),
                };
                nix::mount::mount(
                    Some("tmpfs"),
                    &dir,
                    Some("tmpfs"),
                    nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
                    Some(format!("mode=0777{size}").as_str()),
                )
                .map_err(|e| {
                    EngineError::Invalid(format!("volume {}: mounting a tmpfs on {}: {e}", v.name, dir.display()))
                })?;
            }
        } else if v.config_map.is_some() || v.secret.is_some() {
            let (secret, name, items, optional) = match (&v.config_map, &v.secret) {
                (Some(c), _) => (false, c.name.clone(), c.items.clone(), c.optional == Some(true)),
                (None, Some(s)) => (
                    true,
                    s.secret_name.clone().unwrap_or_default(),
                    s.items.clone(),
                    s.optional == Some(true),
                ),
                (None, None) => continue,
            };
            let all = if secret { &data.secrets } else { &data.config_maps };
            let Some(kv) = all.get(&name) else {
                if optional {
                    std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
                    continue;
                }
                return Err(EngineError::Invalid(format!(
                    "volume {}: {} {name:?} is not in the file",
                    v.name,
                    if secret { "secret" } else { "configmap" }
                )));
            };
            std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
            let files: Vec<(String, String)> = match items {
                Some(items) => items.iter().map(|i| (i.key.clone(), i.path.clone())).collect(),
                None => kv.keys().map(|k| (k.clone(), k.clone())).collect(),
            };
            for (key, path) in files {
                let value = kv
                    .get(&key)
                    .ok_or_else(|| EngineError::Invalid(format!("volume {}: no key {key:?} in {name:?}", v.name)))?;
                if path.starts_with('/') || path.split('/').any(|c| c == ".." || c.is_empty()) {
                    return Err(EngineError::Invalid(format!(
                        "volume {}: item path {path:?} is not relative",
                        v.name
                    )));
                }
                let f = dir.join(&path);
                if let Some(parent) = f.parent() {
                    std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
                }
                std::fs::write(&f, value).map_err(io("writing", &f))?;
            }
        } else if let Some(h) = &v.host_path {
            host_path(&v.name, h)?;
        }
    }
    Ok(())
}

/// A hostPath checked against its type (made where the type says to).
pub(crate) fn host_path(name: &str, h: &core::HostPathVolumeSource) -> Result<(), EngineError> {
    use std::os::unix::fs::FileTypeExt;
    let p = std::path::Path::new(&h.path);
    if !p.is_absolute() {
        return Err(EngineError::Invalid(format!(
            "volume {name}: hostPath {:?} is not absolute",
            h.path
        )));
    }
    let meta = std::fs::metadata(p);
    let is = |f: fn(&std::fs::FileType) -> bool| meta.as_ref().is_ok_and(|m| f(&m.file_type()));
    let ok = match h.type_.as_deref().unwrap_or("") {
        "" => true,
        "DirectoryOrCreate" => is(std::fs::FileType::is_dir) || std::fs::create_dir_all(p).is_ok(),
        "Directory" => is(std::fs::FileType::is_dir),
        "FileOrCreate" => is(std::fs::FileType::is_file) || std::fs::write(p, b"").is_ok(),
        "File" => is(std::fs::FileType::is_file),
        "Socket" => is(std::fs::FileType::is_socket),
        "CharDevice" => is(std::fs::FileType::is_char_device),
        "BlockDevice" => is(std::fs::FileType::is_block_device),
        t => {
            return Err(EngineError::Invalid(format!(
                "volume {name}: hostPath type {t:?} is not known"
            )))
        }
    };
    if !ok {
        return Err(EngineError::Invalid(format!(
            "volume {name}: hostPath {} is not a {}",
            h.path,
            h.type_.as_deref().unwrap_or("")
        )));
    }
    Ok(())
}

/// Removes what a pod's volumes made on the host (unmounting a Memory emptyDir).
pub(crate) fn remove_volumes(engine: &Engine, pod: &str) {
    let dir = pod_dir(engine, pod);
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            // A Memory emptyDir's tmpfs (an error where nothing is mounted: ignored).
            let _ = nix::mount::umount2(&e.path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Kubernetes quantity (`64Mi`, `1G`, `1000`) as bytes for tmpfs's `size=`.
pub(crate) fn tmpfs_size(q: &str) -> Option<u64> {
    let digits = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let n: u64 = q[..digits].parse().ok()?;
    let mult: u64 = match &q[digits..] {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "k" => 1000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}
