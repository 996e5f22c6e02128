//! `pull`: manifest (choosing from an index by platform), config, then the layers fetched in
//! parallel (3 at a time by default) with resume and retry, each verified, and unpacked in
//! order as soon as the ones below it are in. Layers whose blobs are present are not fetched.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use berth_oci::{Digest, Platform, Reference};

use crate::error::{ImageError, Result};
use crate::model::{self, chain_ids, ImageConfig, Index, Manifest};
use crate::registry::{Options, Registry};
use crate::store::{Image, ImageStore, NewImage};

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The platform to pick from an index.
    pub platform: Platform,
    /// Layers fetched at once.
    pub parallel: usize,
    /// Registry access.
    pub registry: Options,
}

impl Default for PullOptions {
    fn default() -> PullOptions {
        PullOptions {
            platform: Platform::host(),
            parallel: 3,
            registry: Options::from_env(),
        }
    }
}

/// Progress of a pull, for the CLI to draw.
#[derive(Debug, Clone)]
pub enum Event {
    /// The layer list is known.
    Layers(Vec<(Digest, u64)>),
    /// A layer is present already.
    Exists(Digest),
    /// Bytes of a layer fetched so far.
    Progress(Digest, u64, u64),
    /// A layer is downloaded and verified.
    Downloaded(Digest),
    /// A layer is unpacked.
    Extracted(Digest),
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image.
    pub image: Image,
    /// The digest pulled by (the index's when there was one).
    pub digest: Digest,
    /// Whether any layer or the config was new.
    pub fetched: bool,
}

/// Picks the manifest for `platform` from an index.
pub fn select(index: &Index, platform: &Platform) -> Result<model::Descriptor> {
    let mut candidates = index.manifests.iter().filter(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| platform.matches(&p.os, &p.architecture, p.variant.as_deref()))
    });
    let exact = index.manifests.iter().find(|d| {
        d.platform.as_ref().is_some_and(|p| {
            p.os == platform.os && p.architecture == platform.architecture && p.variant == platform.variant
        })
    });
    exact.or_else(|| candidates.next()).cloned().ok_or_else(|| {
        ImageError::NotFound(format!(
            "no matching manifest for {platform} in the manifest list entries"
        ))
    })
}

/// Pulls `reference` into the store.
pub fn pull(
    store: &mut ImageStore,
    reference: &Reference,
    opts: &PullOptions,
    report: &(dyn Fn(Event) + Sync),
) -> Result<Pulled> {
    let repo = reference.path();
    let wanted = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".to_string(),
    };
    // The configured mirrors in order, then the registry: the first that has the manifest
    // serves the whole pull; the last one's error is the pull's.
    let mut candidates = Registry::for_pull(reference.domain(), &opts.registry)?
        .into_iter()
        .peekable();
    let (reg, top) = loop {
        let Some(reg) = candidates.next() else {
            return Err(ImageError::Invalid(format!("no registry endpoint for {reference}")));
        };
        match reg.manifest(repo, &wanted) {
            Ok(top) => break (reg, top),
            Err(e) if candidates.peek().is_none() => return Err(e),
            Err(_) => {}
        }
    };
    let (manifest_bytes, media_type) = if model::is_index(&top.media_type) {
        let index: Index = model::parse("image index", &top.bytes)?;
        let desc = select(&index, &opts.platform)?;
        let m = reg.manifest(repo, &desc.digest.to_string())?;
        store.content.put(&top.bytes)?;
        (m.bytes, m.media_type)
    } else {
        (top.bytes.clone(), top.media_type.clone())
    };
    let manifest: Manifest = model::parse("image manifest", &manifest_bytes)?;
    let cfg_type = manifest.config.media_type.as_str();
    if cfg_type != model::OCI_CONFIG && cfg_type != model::DOCKER_CONFIG {
        return Err(ImageError::Invalid(format!(
            "{reference} is not a container image (config media type {cfg_type})"
        )));
    }
    let mut fetched = false;
    if !store.content.has(&manifest.config.digest) {
        let bytes = reg.blob_bytes(repo, &manifest.config.digest)?;
        store.content.put(&bytes)?;
        fetched = true;
    }
    let config: ImageConfig = model::parse("image config", &store.content.read(&manifest.config.digest)?)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(ImageError::Invalid(format!(
            "{reference}: manifest has {} layers, config {}",
            manifest.layers.len(),
            config.rootfs.diff_ids.len()
        )));
    }
    report(Event::Layers(
        manifest.layers.iter().map(|l| (l.digest.clone(), l.size)).collect(),
    ));
    let chains = chain_ids(&config.rootfs.diff_ids);
    let before = match reference.digest() {
        Some(_) => None,
        None => store.db.tag(&reference.to_string())?,
    };
    let mut todo = VecDeque::new();
    for (i, l) in manifest.layers.iter().enumerate() {
        if store.content.has(&l.digest) {
            report(Event::Exists(l.digest.clone()));
        } else {
            todo.push_back(i);
        }
    }
    fetched |= !todo.is_empty();
    let queue = Mutex::new(todo);
    let (tx, rx) = mpsc::channel::<(usize, Result<Option<u64>>)>();
    let content = store.content.clone();
    let snapshots = store.snapshots.clone();
    let layers = &manifest.layers;
    let (diff_ids, chains_ref) = (&config.rootfs.diff_ids, &chains);
    let reg = &reg;
    std::thread::scope(|s| {
        for _ in 0..opts.parallel.max(1) {
            let tx = tx.clone();
            let (queue, content, snapshots) = (&queue, &content, &snapshots);
            s.spawn(move || loop {
                let Some(i) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                    return;
                };
                let l = &layers[i];
                let r = fetch_and_unpack(reg, content, snapshots, repo, l, &diff_ids[i], &chains_ref[i], report);
                let failed = r.is_err();
                if tx.send((i, r)).is_err() || failed {
                    // A failed pull takes no more work.
                    if let Ok(mut q) = queue.lock() {
                        q.clear();
                    }
                    return;
                }
            });
        }
    });
    drop(tx);
    let mut made: HashMap<usize, u64> = HashMap::new();
    let mut later: Vec<usize> = Vec::new();
    let mut first_err: Option<ImageError> = None;
    for (i, r) in rx {
        match r {
            Ok(Some(size)) => {
                made.insert(i, size);
            }
            Ok(None) => later.push(i),
            Err(e) => {
                // The first layer's error is the one to show.
                first_err.get_or_insert(e);
            }
        }
    }
    for i in 0..layers.len() {
        if let Some(size) = made.get(&i) {
            store.record_snapshot(
                &chains[i],
                i.checked_sub(1).map(|p| &chains[p]),
                &config.rootfs.diff_ids[i],
                *size,
            )?;
        }
    }
    // (Snapshots made are recorded even when another layer failed: the next pull uses them.)
    if let Some(e) = first_err {
        return Err(e);
    }
    // Layers whose blobs were here but not their snapshots (or a download that had to
    // resume) are unpacked from the store.
    store.unpack_layers(&manifest, &config)?;
    later.sort_unstable();
    for i in later {
        report(Event::Extracted(layers[i].digest.clone()));
    }
    let mut tags = Vec::new();
    if reference.digest().is_none() {
        tags.push(reference.clone());
    }
    let image = store.add_image(&NewImage {
        manifest: manifest_bytes,
        media_type,
        tags,
        digests: vec![reference.with_digest(top.digest.clone())],
    })?;
    let fetched = fetched || before.as_deref() != Some(image.row.id.as_str());
    Ok(Pulled {
        image,
        digest: top.digest,
        fetched,
    })
}

/// A writer that feeds two: the blob file and the unpacker's pipe. Once the unpacker has
/// gone (it failed, or hit the end of the tar), bytes still go to the blob.
struct Tee<'a> {
    blob: &'a mut crate::content::BlobWriter,
    pipe: Option<std::io::PipeWriter>,
}

impl std::io::Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.blob.write_all(buf)?;
        if let Some(p) = &mut self.pipe {
            if p.write_all(buf).is_err() {
                self.pipe = None;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.blob.flush()
    }
}

/// Downloads a layer and, in the same pass, unpacks it into its snapshot (a second thread
/// reads the bytes through a pipe): no second read of the blob, and layers unpack in
/// parallel. Returns the unpacked size when this call made the snapshot. When streaming is
/// not possible (a partial download to resume, a retry) the layer is only fetched and the
/// caller unpacks it from the store.
#[allow(clippy::too_many_arguments)]
fn fetch_and_unpack(
    reg: &Registry,
    content: &crate::content::ContentStore,
    snapshots: &crate::snapshot::Snapshots,
    repo: &str,
    l: &model::Descriptor,
    diff_id: &Digest,
    chain: &Digest,
    report: &(dyn Fn(Event) + Sync),
) -> Result<Option<u64>> {
    let mut w = content.writer(&l.digest, Some(l.size))?;
    if w.offset() == 0 && !snapshots.exists(chain) {
        let name = l.digest.to_string();
        let streamed = snapshots.create(chain, |dir| {
            let (reader, writer) = std::io::pipe().map_err(|e| ImageError::Invalid(format!("creating a pipe: {e}")))?;
            std::thread::scope(|s| {
                let unpacker = s.spawn(|| crate::unpack::unpack(&name, reader, dir));
                let mut tee = Tee {
                    blob: &mut w,
                    pipe: Some(writer),
                };
                let fetched = reg.fetch_stream(repo, &l.digest, &mut tee, &|n| {
                    report(Event::Progress(l.digest.clone(), n, l.size));
                });
                drop(tee);
                let unpacked = unpacker
                    .join()
                    .unwrap_or_else(|_| Err(ImageError::Invalid(format!("layer {name}: unpacker panicked"))));
                fetched?;
                unpacked?.expect_diff_id(&name, diff_id)
            })
        });
        match streamed {
            Ok(made) => {
                w.commit()?;
                report(Event::Downloaded(l.digest.clone()));
                report(Event::Extracted(l.digest.clone()));
                return Ok(made.map(|u| u.size));
            }
            // A hostile or corrupt layer: no point in fetching it again.
            Err(e @ (ImageError::BadLayer { .. } | ImageError::DigestMismatch { .. })) => return Err(e),
            // Anything else (the connection broke): resume the blob below.
            Err(_) => {}
        }
    } else {
        drop(w);
    }
    fetch_with_retry(reg, content, repo, l, report)?;
    report(Event::Downloaded(l.digest.clone()));
    Ok(None)
}

fn fetch_with_retry(
    reg: &Registry,
    content: &crate::content::ContentStore,
    repo: &str,
    l: &model::Descriptor,
    report: &(dyn Fn(Event) + Sync),
) -> Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let r = (|| -> Result<()> {
            let mut w = content.writer(&l.digest, Some(l.size))?;
            reg.fetch_blob(repo, &l.digest, &mut w, &|n| {
                report(Event::Progress(l.digest.clone(), n, l.size))
            })?;
            w.commit()?;
            Ok(())
        })();
        match r {
            Ok(()) => return Ok(()),
            Err(e @ (ImageError::NotFound(_) | ImageError::Registry { unauthorized: true, .. })) => return Err(e),
            Err(e) if attempt >= 5 => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200 * (1 << attempt))),
        }
    }
}
