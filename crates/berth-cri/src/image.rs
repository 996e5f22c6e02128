//! The ImageService: the one image store `berth images` lists.

use berth_engine::images::{Credentials, Image, ImageStore, PullOptions};
use berth_engine::store::Engine;
use k8s_cri::v1 as cri;
use tonic::Status;

use crate::engine_status;

/// The image as the CRI describes it: its config digest as id, canonical tags and digests,
/// the user its config names (a uid, or a name).
fn describe(store: &ImageStore, img: &Image) -> cri::Image {
    let user = store
        .config_bytes(img)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|c| c["config"]["User"].as_str().map(str::to_string))
        .unwrap_or_default();
    // `user[:group]`: a number is the uid, anything else the name.
    let user = user.split(':').next().unwrap_or("").to_string();
    let (uid, username) = match user.parse::<i64>() {
        Ok(n) => (Some(cri::Int64Value { value: n }), String::new()),
        Err(_) if user.is_empty() => (None, String::new()),
        Err(_) => (None, user),
    };
    cri::Image {
        id: img.row.id.clone(),
        repo_tags: img.tags.iter().map(ToString::to_string).collect(),
        repo_digests: img.digests.iter().map(ToString::to_string).collect(),
        size: u64::try_from(img.row.size).unwrap_or(0),
        uid,
        username,
        spec: Some(cri::ImageSpec {
            image: img.row.id.clone(),
            ..Default::default()
        }),
        pinned: false,
    }
}

/// The image a spec names, if the store has it.
fn find(store: &ImageStore, spec: Option<&cri::ImageSpec>) -> Result<Option<Image>, Status> {
    let name = spec
        .map(|s| s.image.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Status::invalid_argument("no image named"))?;
    match store.resolve(name) {
        Ok(img) => Ok(Some(img)),
        Err(e) if e.kind() == berth_oci::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(engine_status(e.into())),
    }
}

/// `ListImages`.
pub fn list(store: &ImageStore, f: Option<&cri::ImageFilter>) -> Result<Vec<cri::Image>, Status> {
    if let Some(spec) = f.and_then(|f| f.image.as_ref()).filter(|s| !s.image.is_empty()) {
        return Ok(find(store, Some(spec))?
            .map(|i| describe(store, &i))
            .into_iter()
            .collect());
    }
    let all = store.list().map_err(|e| engine_status(e.into()))?;
    Ok(all.iter().map(|i| describe(store, i)).collect())
}

/// `ImageStatus`: the image, or none when the store does not have it.
pub fn status(store: &ImageStore, spec: Option<&cri::ImageSpec>) -> Result<Option<cri::Image>, Status> {
    Ok(find(store, spec)?.map(|i| describe(store, &i)))
}

/// `PullImage`: returns the image's id.
pub fn pull(
    store: &mut ImageStore,
    req: &cri::PullImageRequest,
    registry_config: &std::path::Path,
) -> Result<String, Status> {
    let name = req
        .image
        .as_ref()
        .map(|s| s.image.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Status::invalid_argument("PullImage names no image"))?;
    let r = berth_oci::Reference::parse(name)
        .map_err(|e| Status::invalid_argument(format!("image reference {name:?}: {e}")))?;
    let mut opts = PullOptions::default();
    opts.registry.hosts_dir = Some(registry_config.to_path_buf());
    if let Some(a) = &req.auth {
        if !a.username.is_empty() {
            opts.registry.credentials = Some(Credentials {
                username: a.username.clone(),
                password: a.password.clone(),
            });
        }
    }
    let pulled = berth_engine::images::pull(store, &r, &opts, &|_| {}).map_err(engine_status)?;
    Ok(pulled.image.row.id)
}

/// `RemoveImage`: every tag of the image and the image (one already gone is removed).
pub fn remove(engine: &Engine, store: &mut ImageStore, spec: Option<&cri::ImageSpec>) -> Result<(), Status> {
    let Some(img) = find(store, spec)? else { return Ok(()) };
    // Removed meanwhile by another call (the kubelet's image GC and a user's, say): gone is
    // what was asked.
    match berth_engine::images::remove(engine, store, &img.row.id, true) {
        Err(e) if e.kind() == berth_oci::ErrorKind::NotFound => Ok(()),
        r => r.map(|_| ()).map_err(engine_status),
    }
}

/// `ImageFsInfo`: the store's file system, with what the images take.
pub fn fs_info(store: &ImageStore) -> Result<cri::ImageFsInfoResponse, Status> {
    let used: i64 = store
        .list()
        .map_err(|e| engine_status(e.into()))?
        .iter()
        .map(|i| i.row.size.max(0))
        .sum();
    let usage = cri::FilesystemUsage {
        timestamp: crate::now_nanos(),
        fs_id: Some(cri::FilesystemIdentifier {
            mountpoint: store.root().display().to_string(),
        }),
        used_bytes: Some(cri::UInt64Value {
            value: u64::try_from(used).unwrap_or(0),
        }),
        inodes_used: Some(cri::UInt64Value { value: 0 }),
    };
    Ok(cri::ImageFsInfoResponse {
        image_filesystems: vec![usage.clone()],
        container_filesystems: vec![usage],
    })
}
