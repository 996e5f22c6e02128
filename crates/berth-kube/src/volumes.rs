//! A pod's volumes: emptyDirs and ConfigMap/Secret files are engine volumes named
//! `POD_VOLUME` and labelled with the pod (an emptyDir with medium Memory is a tmpfs through
//! the local driver's options, as `volume create --opt type=tmpfs` makes one); hostPaths are
//! checked against their type; a PVC is the named volume its claim names. The engine mounts
//! and removes them.

use berth_engine::store::Engine;
use berth_engine::EngineError;
use k8s_openapi::api::core::v1 as core;

use crate::env::Data;

/// The label that marks the volumes a pod's emptyDirs, ConfigMaps and Secrets made.
const POD_LABEL: &str = "io.berth.kube.pod";

/// The engine volume holding pod `pod`'s volume `vol`.
fn volume_name(pod: &str, vol: &str) -> String {
    format!("{pod}_{vol}")
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
        let named = |ro: bool| MountSpec {
            kind: "volume".into(),
            source: volume_name(pod, &v.name),
            destination: m.mount_path.clone(),
            read_only: ro,
            options: Vec::new(),
        };
        let spec = if v.empty_dir.is_some() {
            named(ro)
        } else if v.config_map.is_some() || v.secret.is_some() {
            named(true)
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
        let spec = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => {
                let what = format!("container {}: volumeMount {} subPath {sub:?}", c.name, m.name);
                let base = if spec.kind == "volume" {
                    berth_engine::volumes::ensure_mounted(engine, &spec.source)?;
                    berth_engine::volumes::data_dir(engine, &spec.source)
                } else {
                    std::path::PathBuf::from(&spec.source)
                };
                MountSpec {
                    kind: "bind".into(),
                    source: berth_engine::volumes::sub_path(&base, sub)
                        .map_err(|e| EngineError::Invalid(format!("{what}: {e}")))?,
                    ..spec
                }
            }
            None => spec,
        };
        out.push(spec);
    }
    Ok(out)
}

/// Makes what a pod's volumes need before its containers are made: its engine volumes
/// (ConfigMap and Secret files written into theirs), its hostPaths checked.
pub(crate) fn prepare_volumes(
    engine: &Engine,
    pod: &str,
    spec: &core::PodSpec,
    data: &Data,
) -> Result<(), EngineError> {
    for v in spec.volumes.iter().flatten() {
        let mut meta = berth_engine::volumes::VolumeMeta::default();
        meta.labels.insert(POD_LABEL.into(), pod.to_string());
        let name = volume_name(pod, &v.name);
        if let Some(e) = &v.empty_dir {
            if e.medium.as_deref() == Some("Memory") {
                // sizeLimit is a Kubernetes quantity (`64Mi`); tmpfs takes bytes.
                let mut o = "mode=1777".to_string();
                if let Some(q) = &e.size_limit {
                    let n = tmpfs_size(&q.0).ok_or_else(|| {
                        EngineError::Invalid(format!("volume {}: sizeLimit {:?} is not a size", v.name, q.0))
                    })?;
                    o.push_str(&format!(",size={n}"));
                }
                meta.options = [("type", "tmpfs"), ("device", "tmpfs"), ("o", o.as_str())]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
            }
            berth_engine::volumes::create_volume(engine, Some(&name), "local", &meta)?;
        } else if v.config_map.is_some() || v.secret.is_some() {
            let (secret, source, items, optional) = match (&v.config_map, &v.secret) {
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
            let kv = match all.get(&source) {
                Some(kv) => kv.clone(),
                None if optional => Default::default(),
                None => {
                    return Err(EngineError::Invalid(format!(
                        "volume {}: {} {source:?} is not in the file",
                        v.name,
                        if secret { "secret" } else { "configmap" }
                    )))
                }
            };
            let files: Vec<(String, String)> = match items {
                Some(items) => items.iter().map(|i| (i.key.clone(), i.path.clone())).collect(),
                None => kv.keys().map(|k| (k.clone(), k.clone())).collect(),
            };
            berth_engine::volumes::create_volume(engine, Some(&name), "local", &meta)?;
            let dir = berth_engine::volumes::data_dir(engine, &name);
            for (key, path) in files {
                let value = kv
                    .get(&key)
                    .ok_or_else(|| EngineError::Invalid(format!("volume {}: no key {key:?} in {source:?}", v.name)))?;
                if path.starts_with('/') || path.split('/').any(|c| c == ".." || c.is_empty()) {
                    return Err(EngineError::Invalid(format!(
                        "volume {}: item path {path:?} is not relative",
                        v.name
                    )));
                }
                let f = dir.join(&path);
                let io = |what: &str, p: &std::path::Path, e: std::io::Error| {
                    EngineError::Invalid(format!("volume {}: {what} {}: {e}", v.name, p.display()))
                };
                if let Some(parent) = f.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| io("creating", parent, e))?;
                }
                std::fs::write(&f, value).map_err(|e| io("writing", &f, e))?;
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

/// Removes the engine volumes a pod's emptyDirs, ConfigMaps and Secrets made (their
/// containers gone first: a volume in use stays).
pub(crate) fn remove_volumes(engine: &Engine, pod: &str) {
    for name in berth_engine::volumes::list(engine).unwrap_or_default() {
        if berth_engine::volumes::meta(engine, &name)
            .labels
            .get(POD_LABEL)
            .map(String::as_str)
            == Some(pod)
        {
            let _ = berth_engine::volumes::remove(engine, &name);
        }
    }
}

/// A Kubernetes quantity (`64Mi`, `1G`, `1000`) as bytes for tmpfs's `size=`.
pub(crate) fn tmpfs_size(q: &str) -> Option<u64> {
    crate::container::bytes(q)
}
