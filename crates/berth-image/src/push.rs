//! `push`: blobs the registry lacks (checked with HEAD, mounted across repositories of the
//! same registry where the image came from one, else uploaded), the manifest last. The
//! manifest is pushed byte for byte as stored, so its digest is the one every other tool
//! (skopeo, docker) computes for the image.

use berth_oci::{Digest, Reference};

use crate::error::{ImageError, Result};
use crate::model::Manifest;
use crate::registry::{Options, Registry};
use crate::store::{parse_digest, ImageStore};

/// Progress of a push.
#[derive(Debug, Clone)]
pub enum PushEvent {
    /// The registry has the blob already.
    Exists(Digest),
    /// The blob was mounted from another repository.
    Mounted(Digest, String),
    /// The blob was uploaded.
    Pushed(Digest),
}

/// Pushes the image `name` (a tag reference) to its registry; returns the manifest digest
/// and size.
pub fn push(store: &ImageStore, name: &str, opts: &Options, report: &dyn Fn(PushEvent)) -> Result<(Digest, usize)> {
    let target = Reference::parse(name).map_err(|e| ImageError::Invalid(e.to_string()))?;
    let img = store.resolve(name)?;
    let tag = target.tag().unwrap_or("latest").to_string();
    let manifest_digest = parse_digest(&img.row.manifest)?;
    let bytes = store.content.read(&manifest_digest)?;
    let manifest: Manifest = crate::model::parse("manifest", &bytes)?;
    let reg = Registry::new(target.domain(), opts)?;
    let repo = target.path();
    // Repositories of the same registry the image is known under: mount sources.
    let sources: Vec<String> = img
        .digests
        .iter()
        .chain(img.tags.iter())
        .filter(|r| r.domain() == target.domain() && r.path() != repo)
        .map(|r| r.path().to_string())
        .collect();
    let mut blobs: Vec<(Digest, u64)> = manifest.layers.iter().map(|l| (l.digest.clone(), l.size)).collect();
    blobs.push((manifest.config.digest.clone(), manifest.config.size));
    let config = manifest.config.digest.clone();
    // Docker reports layers only, not the config blob.
    let report = |e: PushEvent| match &e {
        PushEvent::Exists(d) | PushEvent::Mounted(d, _) | PushEvent::Pushed(d) if *d == config => {}
        _ => report(e),
    };
    for (d, size) in blobs {
        if reg.has_blob(repo, &d)? {
            report(PushEvent::Exists(d));
            continue;
        }
        let mut mounted = false;
        for from in &sources {
            if reg.mount_blob(repo, &d, from)? {
                report(PushEvent::Mounted(d.clone(), from.clone()));
                mounted = true;
                break;
            }
        }
        if mounted {
            continue;
        }
        if !store.content.has(&d) {
            return Err(ImageError::NotFound(format!(
                "blob {d} of {name} is not in the content store"
            )));
        }
        reg.upload_blob(repo, &d, &store.content.path(&d), size)?;
        report(PushEvent::Pushed(d));
    }
    let media_type = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| img.row.media_type.clone());
    reg.put_manifest(repo, &tag, &bytes, &media_type)?;
    Ok((manifest_digest, bytes.len()))
}
