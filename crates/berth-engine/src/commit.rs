//! What a container changed: `diff` (the list), `commit` (a new image whose top layer is the
//! container's upper directory) and `export` (the merged filesystem as a tar).

use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_image::model::{self, Descriptor, Manifest};
use berth_image::store::{Image, ImageStore};
use berth_oci::{Digest, Reference};
use serde_json::{json, Value};

use crate::store::Engine;
use crate::{io_err, ops, EngineError, Result};

/// One change: `A` added, `C` changed, `D` deleted, with its path in the container.
pub type Change = (char, String);

/// The changes in a container's upper directory, Docker's way (sorted by path).
pub fn changes(engine: &Engine, images: &ImageStore, id: &str) -> Result<Vec<Change>> {
    let r = engine.resolve(id)?;
    let img = images.image(&r.image_id)?;
    let lowers = images.lowers(&img)?;
    let upper = engine.dir(&r.id).join("fs/upper");
    let mut out = Vec::new();
    walk(&upper, Path::new("/"), &lowers, &mut out)?;
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

fn in_lowers(lowers: &[PathBuf], rel: &Path) -> bool {
    let rel = rel.strip_prefix("/").unwrap_or(rel);
    lowers.iter().any(|l| std::fs::symlink_metadata(l.join(rel)).is_ok())
}

fn walk(dir: &Path, rel: &Path, lowers: &[PathBuf], out: &mut Vec<Change>) -> Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("listing", dir)(e)),
    };
    for e in rd {
        let e = e.map_err(io_err("listing", dir))?;
        let path = e.path();
        let r = rel.join(e.file_name());
        let md = std::fs::symlink_metadata(&path).map_err(io_err("reading", &path))?;
        if md.file_type().is_char_device() && md.rdev() == 0 {
            out.push(('D', r.display().to_string()));
            continue;
        }
        let existed = in_lowers(lowers, &r);
        out.push((if existed { 'C' } else { 'A' }, r.display().to_string()));
        if md.is_dir() {
            walk(&path, &r, lowers, out)?;
        }
    }
    Ok(())
}

/// What `commit` records beside the changes.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The tag for the new image.
    pub tag: Option<Reference>,
    /// Dockerfile instructions (`--change`).
    pub changes: Vec<String>,
    /// Commit message (the history comment).
    pub message: String,
    /// Author.
    pub author: String,
    /// Freeze the container while its changes are read.
    pub pause: bool,
}

/// `commit`: the container's changes as a new layer on its image; the config takes the
/// container's command, environment, working dir, user and labels, then `--change`.
pub fn commit(engine: &Engine, images: &mut ImageStore, id: &str, o: &CommitOptions) -> Result<Image> {
    let (changes, message, author, pause, tag) = (&o.changes, &o.message, &o.author, o.pause, o.tag.as_ref());
    let r = engine.resolve(id)?;
    let base = images.image(&r.image_id)?;
    let paused = pause && engine.state(&r.id).running() && !ops::is_paused(engine, &r.id);
    if paused {
        ops::set_paused(engine, &r.id, true)?;
    }
    let layer = (|| -> Result<(Digest, u64)> {
        let tmp = images
            .root()
            .join("content/ingest")
            .join(format!("commit-{}.tar", r.id));
        let mut f = std::fs::File::create(&tmp).map_err(io_err("creating", &tmp))?;
        let res = berth_image::diff::diff(&engine.dir(&r.id).join("fs/upper"), &mut f);
        drop(f);
        let res = res.and_then(|_| {
            let mut f = std::fs::File::open(&tmp).map_err(|e| berth_image::ImageError::Io {
                op: "opening",
                path: tmp.clone(),
                source: e,
            })?;
            images.content.put_stream(&mut f)
        });
        let _ = std::fs::remove_file(&tmp);
        Ok(res?)
    })();
    if paused {
        let _ = ops::set_paused(engine, &r.id, false);
    }
    let (diff_id, size) = layer?;
    let mut cfg: Value = serde_json::from_slice(&images.config_bytes(&base)?)
        .map_err(|e| EngineError::Invalid(format!("image config: {e}")))?;
    let mut c = cfg.get("config").cloned().unwrap_or_else(|| json!({}));
    c["Cmd"] = json!(r.cmd);
    c["Entrypoint"] = json!(r.entrypoint);
    c["Env"] = json!(r.env.iter().filter(|e| !e.starts_with("HOSTNAME=")).collect::<Vec<_>>());
    c["WorkingDir"] = json!(r.working_dir);
    c["User"] = json!(r.user);
    c["Labels"] = json!(r.labels);
    if let Some(obj) = c.as_object_mut() {
        berth_image::archive::apply_changes(obj, changes)?;
    }
    let now = berth_image::store::now();
    cfg["config"] = c;
    cfg["created"] = json!(now);
    if !author.is_empty() {
        cfg["author"] = json!(author);
    }
    let mut diff_ids = cfg
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    diff_ids.push(json!(diff_id.to_string()));
    cfg["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
    let mut history = cfg
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let cmdline = std::iter::once(r.path.clone())
        .chain(r.args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    history.push(json!({"created": now, "created_by": cmdline, "comment": message}));
    cfg["history"] = json!(history);
    let cfg_bytes = serde_json::to_vec(&cfg).map_err(|e| EngineError::Invalid(e.to_string()))?;
    let base_manifest: Manifest = images.manifest(&base)?;
    let docker = base_manifest.media_type.as_deref() == Some(model::DOCKER_MANIFEST);
    let layer_type = if docker { model::DOCKER_LAYER } else { model::OCI_LAYER };
    let mut layers = base_manifest.layers.clone();
    layers.push(Descriptor::new(layer_type, diff_id.clone(), size));
    let tags: Vec<Reference> = tag.into_iter().cloned().collect();
    let img = images.add_local_image(&cfg_bytes, &layers, docker, &tags)?;
    let name = o.tag.as_ref().map(Reference::familiar).unwrap_or_default();
    crate::events::container(
        engine,
        &r,
        "commit",
        &[
            ("comment", o.message.clone()),
            ("imageID", img.row.id.clone()),
            ("imageRef", name),
        ],
    );
    Ok(img)
}

/// `export`: the container's merged filesystem as a tar, to `out`.
pub fn export(engine: &Engine, id: &str, out: &mut dyn Write) -> Result<()> {
    let r = engine.resolve(id)?;
    let running = engine.state(&r.id).running();
    let rootfs = engine.dir(&r.id).join("rootfs");
    if !running {
        ops::mount_rootfs(engine, &r)?;
    }
    // Walked from descriptors (`*at` calls), so paths longer than PATH_MAX export too.
    let res = (|| -> std::io::Result<()> {
        let root = berth_safepath::open_root(&rootfs)?;
        let mut b = tar::Builder::new(out);
        berth_image::tree::append(&mut b, std::os::fd::AsFd::as_fd(&root), Path::new(""))?;
        b.finish()
    })();
    if !running {
        ops::unmount_rootfs(engine, &r.id);
    }
    res.map_err(io_err("exporting", &rootfs))?;
    crate::events::container(engine, &r, "export", &[]);
    Ok(())
}
