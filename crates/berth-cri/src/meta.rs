//! What only the CRI knows of its objects, in `cri.json` beside the container's record:
//! for a sandbox (its infra container) the config the kubelet sent; for a container its
//! metadata, image as asked for, and log path.

use std::collections::{BTreeMap, HashMap};

use berth_engine::store::Engine;
use k8s_cri::v1 as cri;
use serde::{Deserialize, Serialize};
use tonic::Status;

/// The file's name in the container's directory.
const FILE: &str = "cri.json";

/// A sandbox's CRI side.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxMeta {
    /// The config `RunPodSandbox` was given.
    pub config: cri::PodSandboxConfig,
    /// The runtime handler asked for.
    #[serde(default)]
    pub runtime_handler: String,
    /// Its network from CNI plugins (none: berth's default bridge, or the node's).
    #[serde(default)]
    pub network: Option<berth_engine::cni::PodNetwork>,
    /// The CNI network was torn down (the sandbox stopped).
    #[serde(default)]
    pub torn_down: bool,
}

/// A container's CRI side.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerMeta {
    /// The sandbox it belongs to.
    pub sandbox_id: String,
    /// Its name and attempt.
    pub metadata: cri::ContainerMetadata,
    /// The image as the kubelet named it.
    pub image: cri::ImageSpec,
    /// Where its log goes: the sandbox's log directory joined with the config's path
    /// (empty: none).
    #[serde(default)]
    pub log_path: String,
    /// Its mounts as asked for (for `ContainerStatus`).
    #[serde(default)]
    pub mounts: Vec<cri::Mount>,
    /// Its labels as given (the record's also hold the image's).
    #[serde(default)]
    pub labels: HashMap<String, String>,
    /// Its annotations as given.
    #[serde(default)]
    pub annotations: HashMap<String, String>,
}

fn write<T: Serialize>(engine: &Engine, id: &str, v: &T) -> Result<(), Status> {
    let path = engine.dir(id).join(FILE);
    let bytes = serde_json::to_vec(v).map_err(|e| Status::internal(format!("encoding {}: {e}", path.display())))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| Status::internal(format!("writing {}: {e}", path.display())))
}

fn read<T: for<'de> Deserialize<'de>>(engine: &Engine, id: &str) -> Option<T> {
    let bytes = std::fs::read(engine.dir(id).join(FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Records a sandbox's CRI side on its infra container.
pub fn save_sandbox(engine: &Engine, infra_id: &str, m: &SandboxMeta) -> Result<(), Status> {
    write(engine, infra_id, m)
}

/// A sandbox's CRI side (none: a pod the CRI did not make).
pub fn sandbox(engine: &Engine, infra_id: &str) -> Option<SandboxMeta> {
    read(engine, infra_id)
}

/// Records a container's CRI side.
pub fn save_container(engine: &Engine, id: &str, m: &ContainerMeta) -> Result<(), Status> {
    write(engine, id, m)
}

/// A container's CRI side (none: a container the CRI did not make).
pub fn container(engine: &Engine, id: &str) -> Option<ContainerMeta> {
    read(engine, id)
}

/// The CRI's map as the engine's.
pub fn tree(m: &HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Whether `labels` has every pair of `selector`.
pub fn selected(labels: &HashMap<String, String>, selector: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}
