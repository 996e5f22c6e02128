//! The image store: content, metadata and snapshots under one data root, and the operations
//! on images that the CLI and the engine use.

use std::path::{Path, PathBuf};

use berth_oci::{Digest, Reference};
use rusqlite::params;

use crate::content::ContentStore;
use crate::db::{Db, ImageRow};
use crate::error::{io_err, ImageError, Result};
use crate::model::{self, chain_ids, Descriptor, ImageConfig, Manifest};
use crate::snapshot::Snapshots;
use crate::unpack;

/// Images under a data root (default `/var/lib/berth`).
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    /// Blobs.
    pub content: ContentStore,
    /// Metadata.
    pub db: Db,
    /// Unpacked layers.
    pub snapshots: Snapshots,
}

/// An image as the CLI shows it.
#[derive(Debug, Clone)]
pub struct Image {
    /// The metadata row.
    pub row: ImageRow,
    /// Full tag references (`docker.io/library/busybox:latest`).
    pub tags: Vec<Reference>,
    /// `repo@digest` references.
    pub digests: Vec<Reference>,
}

impl Image {
    /// The config digest.
    pub fn id(&self) -> Result<Digest> {
        parse_digest(&self.row.id)
    }
}

/// What `remove` did, in Docker's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// A tag went away.
    Untagged(String),
    /// The image (or a layer) was deleted.
    Deleted(String),
}

/// A layer whose blob is in the content store and whose snapshot is to be made.
#[derive(Debug, Clone)]
pub struct NewImage {
    /// The manifest bytes as stored (its digest is the image's manifest digest).
    pub manifest: Vec<u8>,
    /// Its media type.
    pub media_type: String,
    /// Tags to point at it.
    pub tags: Vec<Reference>,
    /// `repo@digest` pins to record.
    pub digests: Vec<Reference>,
}

pub(crate) fn parse_digest(s: &str) -> Result<Digest> {
    s.parse()
        .map_err(|e: berth_oci::DigestError| ImageError::Invalid(e.to_string()))
}

impl ImageStore {
    /// Opens (creating) the store under `root`.
    pub fn open(root: &Path) -> Result<ImageStore> {
        crate::perms::make_dir(root).map_err(io_err("creating", root))?;
        let content = ContentStore::open(&root.join("content"))?;
        let snapshots = Snapshots::open(&root.join("snapshots"))?;
        let db = Db::open(&root.join("berth.db"))?;
        crate::perms::secure(root).map_err(io_err("securing", root))?;
        Ok(ImageStore {
            root: root.to_path_buf(),
            content,
            db,
            snapshots,
        })
    }

    /// The data root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Finds an image by reference, full or short id (unique prefix), or `sha256:` id.
    pub fn resolve(&self, name: &str) -> Result<Image> {
        let not_found = || ImageError::NotFound(format!("No such image: {name}"));
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        let looks_like_id =
            !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if looks_like_id && (name.starts_with("sha256:") || hex.len() >= 4) {
            let ids = self.db.ids_with_prefix(hex)?;
            match ids.len() {
                1 => return self.image(&ids[0]),
                0 => {}
                _ => return Err(ImageError::Invalid(format!("ambiguous image id prefix {name:?}"))),
            }
            if name.starts_with("sha256:") {
                return Err(not_found());
            }
        }
        let r = Reference::parse(name).map_err(|e| ImageError::Invalid(e.to_string()))?;
        let id = match r.digest() {
            Some(d) => self.db.by_digest(&r.repository(), &d.to_string())?,
            None => self.db.tag(&r.to_string())?,
        };
        match id {
            Some(id) => self.image(&id),
            None => Err(not_found()),
        }
    }

    /// An image by full id.
    pub fn image(&self, id: &str) -> Result<Image> {
        let row = self
            .db
            .image(id)?
            .ok_or_else(|| ImageError::NotFound(format!("No such image: {id}")))?;
        let tags = self
            .db
            .tags_of(id)?
            .iter()
            .filter_map(|t| Reference::parse(t).ok())
            .collect();
        let digests = self
            .db
            .digests_of(id)?
            .iter()
            .filter_map(|(repo, d)| Reference::parse_bare(&format!("{repo}@{d}")).ok())
            .collect();
        Ok(Image { row, tags, digests })
    }

    /// Every image, newest first.
    pub fn list(&self) -> Result<Vec<Image>> {
        self.db.images()?.iter().map(|r| self.image(&r.id)).collect()
    }

    /// The parsed manifest of an image.
    pub fn manifest(&self, img: &Image) -> Result<Manifest> {
        let d = parse_digest(&img.row.manifest)?;
        model::parse("manifest", &self.content.read(&d)?)
    }

    /// The raw config blob of an image.
    pub fn config_bytes(&self, img: &Image) -> Result<Vec<u8>> {
        self.content.read(&img.id()?)
    }

    /// The parsed config of an image.
    pub fn config(&self, img: &Image) -> Result<ImageConfig> {
        model::parse("image config", &self.config_bytes(img)?)
    }

    /// The snapshot directories of an image, top layer first (overlay `lowerdir` order).
    pub fn lowers(&self, img: &Image) -> Result<Vec<PathBuf>> {
        let mut v = Vec::new();
        for c in self.db.chains_of(&img.row.id)?.iter().rev() {
            v.push(self.snapshots.path(&parse_digest(c)?));
        }
        Ok(v)
    }

    /// Unpacks the layers of a manifest whose blobs are all in the content store (what
    /// pull and load do after fetching), verifying each diff id against the config.
    pub fn unpack_layers(&mut self, manifest: &Manifest, config: &ImageConfig) -> Result<()> {
        if manifest.layers.len() != config.rootfs.diff_ids.len() {
            return Err(ImageError::Invalid(format!(
                "manifest has {} layers but the config lists {} diff ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let chains = chain_ids(&config.rootfs.diff_ids);
        for (i, layer) in manifest.layers.iter().enumerate() {
            self.unpack_layer(
                layer,
                &config.rootfs.diff_ids[i],
                &chains[i],
                i.checked_sub(1).map(|p| &chains[p]),
            )?;
        }
        Ok(())
    }

    /// Unpacks one layer blob into the snapshot `chain` (on top of `parent`'s chain).
    pub fn unpack_layer(
        &mut self,
        layer: &Descriptor,
        diff_id: &Digest,
        chain: &Digest,
        parent: Option<&Digest>,
    ) -> Result<()> {
        if self.snapshots.exists(chain) && self.db.has_snapshot(&chain.to_string())? {
            return Ok(());
        }
        let blob = self.content.open_blob(&layer.digest)?;
        let name = layer.digest.to_string();
        let made = self.snapshots.create(chain, |dir| {
            unpack::unpack(&name, blob, dir)?.expect_diff_id(&name, diff_id)
        })?;
        let size = made.map(|u| u.size).unwrap_or(0);
        self.record_snapshot(chain, parent, diff_id, size)
    }

    /// Records a snapshot made on disk (by [`ImageStore::unpack_layer`] or by a pull that
    /// unpacked while downloading).
    pub fn record_snapshot(
        &mut self,
        chain: &Digest,
        parent: Option<&Digest>,
        diff_id: &Digest,
        size: u64,
    ) -> Result<()> {
        let (chain_s, parent_s, diff_s) = (chain.to_string(), parent.map(|p| p.to_string()), diff_id.to_string());
        self.db.write(|tx| {
            tx.execute(
                "INSERT OR IGNORE INTO snapshots(chain, parent, diff, size, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    chain_s,
                    parent_s,
                    diff_s,
                    i64::try_from(size).unwrap_or(i64::MAX),
                    now()
                ],
            )?;
            Ok(())
        })
    }

    /// Records an image whose blobs and snapshots exist; moves its tags onto it.
    pub fn add_image(&mut self, new: &NewImage) -> Result<Image> {
        let manifest: Manifest = model::parse("manifest", &new.manifest)?;
        let manifest_digest = crate::content::sha256(&new.manifest);
        if !self.content.has(&manifest_digest) {
            self.content.put(&new.manifest)?;
        }
        let config: ImageConfig = model::parse("image config", &self.content.read(&manifest.config.digest)?)?;
        let chains = chain_ids(&config.rootfs.diff_ids);
        let id = manifest.config.digest.to_string();
        let mut size: i64 = 0;
        for (c, s) in self.db.snapshot_sizes()? {
            if chains.iter().any(|x| x.to_string() == c) {
                size += s;
            }
        }
        let created = config.created.clone();
        let mut blobs = vec![manifest_digest.to_string(), id.clone()];
        blobs.extend(manifest.layers.iter().map(|l| l.digest.to_string()));
        self.db.write(|tx| {
            tx.execute(
                "INSERT INTO images(id, manifest, media_type, size, created, added) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(id) DO UPDATE SET manifest = excluded.manifest, media_type = excluded.media_type",
                params![id, manifest_digest.to_string(), new.media_type, size, created, now()],
            )?;
            tx.execute("DELETE FROM image_layers WHERE image = ?1", [&id])?;
            for (i, c) in chains.iter().enumerate() {
                tx.execute(
                    "INSERT INTO image_layers(image, idx, chain) VALUES (?1, ?2, ?3)",
                    params![id, i as i64, c.to_string()],
                )?;
            }
            for b in &blobs {
                tx.execute("INSERT OR IGNORE INTO image_blobs(image, digest) VALUES (?1, ?2)", params![id, b])?;
            }
            for t in &new.tags {
                tx.execute(
                    "INSERT INTO tags(ref, image) VALUES (?1, ?2) ON CONFLICT(ref) DO UPDATE SET image = excluded.image",
                    params![t.to_string(), id],
                )?;
            }
            for d in &new.digests {
                if let Some(dg) = d.digest() {
                    tx.execute(
                        "INSERT INTO digests(repo, digest, image) VALUES (?1, ?2, ?3)
                         ON CONFLICT(repo, digest) DO UPDATE SET image = excluded.image",
                        params![d.repository(), dg.to_string(), id],
                    )?;
                }
            }
            Ok(())
        })?;
        // Images left without any tag by the move become dangling, as in Docker.
        self.image(&id)
    }

    /// Records an image made here (by commit or build): stores its config, writes a manifest
    /// over `layers` (Docker's media types when `docker`, else OCI's), makes any snapshot
    /// still missing and points `tags` at it.
    pub fn add_local_image(
        &mut self,
        config: &[u8],
        layers: &[Descriptor],
        docker: bool,
        tags: &[Reference],
    ) -> Result<Image> {
        let cfg_digest = self.content.put(config)?;
        let (manifest_type, config_type) = if docker {
            (model::DOCKER_MANIFEST, model::DOCKER_CONFIG)
        } else {
            (model::OCI_MANIFEST, model::OCI_CONFIG)
        };
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "size": config.len(), "digest": cfg_digest.to_string()},
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).map_err(|e| ImageError::Invalid(e.to_string()))?;
        let parsed: Manifest = model::parse("manifest", &bytes)?;
        let cfg: ImageConfig = model::parse("image config", config)?;
        self.unpack_layers(&parsed, &cfg)?;
        self.add_image(&NewImage {
            manifest: bytes,
            media_type: manifest_type.to_string(),
            tags: tags.to_vec(),
            digests: vec![],
        })
    }

    /// Records `repo@digest` for an image (after a push).
    pub fn add_repo_digest(&mut self, id: &str, r: &Reference) -> Result<()> {
        let Some(d) = r.digest() else {
            return Err(ImageError::Invalid(format!("{r} has no digest")));
        };
        let (repo, d, id) = (r.repository(), d.to_string(), id.to_string());
        self.db.write(|tx| {
            tx.execute(
                "INSERT INTO digests(repo, digest, image) VALUES (?1, ?2, ?3)
                 ON CONFLICT(repo, digest) DO UPDATE SET image = excluded.image",
                params![repo, d, id],
            )?;
            Ok(())
        })
    }

    /// `tag SOURCE TARGET`.
    pub fn tag(&mut self, source: &str, target: &str) -> Result<Reference> {
        let img = self.resolve(source)?;
        let t = Reference::parse(target).map_err(|e| ImageError::Invalid(e.to_string()))?;
        if t.digest().is_some() {
            return Err(ImageError::Invalid(format!(
                "refusing to create a tag with a digest reference: {target}"
            )));
        }
        let (r, id) = (t.to_string(), img.row.id.clone());
        self.db.write(|tx| {
            tx.execute(
                "INSERT INTO tags(ref, image) VALUES (?1, ?2) ON CONFLICT(ref) DO UPDATE SET image = excluded.image",
                params![r, id],
            )?;
            Ok(())
        })?;
        Ok(t)
    }

    /// `rmi NAME`: by tag, untags (and deletes the image when that was its last name); by
    /// id, deletes the image (refused when several repositories reference it, unless
    /// `force`). Refused while a container uses it unless `force`.
    pub fn remove(&mut self, name: &str, force: bool) -> Result<Vec<Removed>> {
        let img = self.resolve(name)?;
        let id = img.row.id.clone();
        let users = self.db.users_of(&id)?;
        let by_id = {
            let hex = name.strip_prefix("sha256:").unwrap_or(name);
            id.strip_prefix("sha256:").is_some_and(|h| h.starts_with(hex)) && !name.contains(':')
                || name.starts_with("sha256:")
        };
        let mut out = Vec::new();
        if !by_id && !name.contains('@') {
            let r = Reference::parse(name).map_err(|e| ImageError::Invalid(e.to_string()))?;
            let last = img.tags.len() <= 1;
            if !last || force || users.is_empty() {
                self.db.write(|tx| {
                    tx.execute("DELETE FROM tags WHERE ref = ?1", [r.to_string()])?;
                    Ok(())
                })?;
                out.push(Removed::Untagged(r.familiar()));
                if !last {
                    return Ok(out);
                }
            }
        } else if !force && img.tags.len() > 1 {
            let repos: std::collections::BTreeSet<String> = img.tags.iter().map(|t| t.repository()).collect();
            if repos.len() > 1 {
                return Err(ImageError::Conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    &id[7..19]
                )));
            }
        }
        if !users.is_empty() && !force {
            return Err(ImageError::Conflict(format!(
                "conflict: unable to delete {} (must be forced) - image is being used by container {}",
                if out.is_empty() {
                    name.to_string()
                } else {
                    id[7..19].to_string()
                },
                users.join(", ")
            )));
        }
        if !users.is_empty() {
            // Forced while in use: Docker untags and keeps the image for its containers.
            let tags: Vec<String> = img.tags.iter().map(|t| t.to_string()).collect();
            self.db.write(|tx| {
                tx.execute("DELETE FROM tags WHERE image = ?1", [&id])?;
                Ok(())
            })?;
            for t in tags {
                let f = Reference::parse(&t).map(|r| r.familiar()).unwrap_or(t);
                if !out.contains(&Removed::Untagged(f.clone())) {
                    out.push(Removed::Untagged(f));
                }
            }
            return Ok(out);
        }
        for t in &img.tags {
            let f = t.familiar();
            if !out.contains(&Removed::Untagged(f.clone())) {
                out.push(Removed::Untagged(f));
            }
        }
        for d in &img.digests {
            out.push(Removed::Untagged(d.familiar()));
        }
        self.db.write(|tx| {
            tx.execute("DELETE FROM images WHERE id = ?1", [&id])?;
            Ok(())
        })?;
        out.push(Removed::Deleted(id));
        for c in self.gc()? {
            out.push(Removed::Deleted(c));
        }
        Ok(out)
    }

    /// Removes snapshots and blobs no image references; returns the removed snapshots.
    pub fn gc(&mut self) -> Result<Vec<String>> {
        let unused = self.db.unused_snapshots()?;
        for c in &unused {
            if let Ok(d) = parse_digest(c) {
                self.snapshots.remove(&d)?;
            }
            self.db.write(|tx| {
                tx.execute("DELETE FROM snapshots WHERE chain = ?1", [c])?;
                Ok(())
            })?;
        }
        let used = self.db.used_blobs()?;
        for b in self.content.list()? {
            if !used.contains(&b.to_string()) {
                self.content.delete(&b)?;
            }
        }
        Ok(unused)
    }

    /// Records a build cache entry: `result` (the builder's JSON) under `key`, keeping the
    /// blobs and snapshots named in `refs` from garbage collection.
    pub fn cache_put(&mut self, key: &str, result: &str, refs: &[String]) -> Result<()> {
        self.db.write(|tx| {
            tx.execute(
                "INSERT INTO build_cache(key, result, created) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET result = excluded.result, created = excluded.created",
                params![key, result, now()],
            )?;
            tx.execute("DELETE FROM build_cache_refs WHERE key = ?1", [key])?;
            for r in refs {
                tx.execute(
                    "INSERT OR IGNORE INTO build_cache_refs(key, ref) VALUES (?1, ?2)",
                    params![key, r],
                )?;
            }
            Ok(())
        })
    }

    /// `builder prune`: forgets every build cache entry and removes the blobs and snapshots
    /// only the cache kept. Returns the number of entries and the bytes reclaimed.
    pub fn cache_prune(&mut self) -> Result<(u64, u64)> {
        let entries = self.db.cache_count()?;
        let before = self.disk_usage();
        self.db.write(|tx| {
            tx.execute("DELETE FROM build_cache_refs", [])?;
            tx.execute("DELETE FROM build_cache", [])?;
            Ok(())
        })?;
        self.gc()?;
        Ok((entries, before.saturating_sub(self.disk_usage())))
    }

    fn disk_usage(&self) -> u64 {
        let blobs: u64 = self
            .content
            .list()
            .unwrap_or_default()
            .iter()
            .filter_map(|d| self.content.size(d))
            .sum();
        let snaps: u64 = self
            .db
            .snapshot_sizes()
            .unwrap_or_default()
            .iter()
            .map(|(_, s)| u64::try_from(*s).unwrap_or(0))
            .sum();
        blobs + snaps
    }

    /// `image prune`: dangling images (no tag), or with `all` every image no container
    /// uses. Returns what went and the bytes reclaimed.
    pub fn prune(&mut self, all: bool) -> Result<(Vec<Removed>, u64)> {
        let mut out = Vec::new();
        let mut reclaimed = 0u64;
        for img in self.list()? {
            if (!all && !img.tags.is_empty()) || !self.db.users_of(&img.row.id)?.is_empty() {
                continue;
            }
            reclaimed += u64::try_from(img.row.size).unwrap_or(0);
            out.extend(self.remove(&img.row.id, true)?);
        }
        Ok((out, reclaimed))
    }

    /// Marks an image as used by `user` (a container id), or releases it.
    pub fn set_user(&mut self, image: &str, user: &str, using: bool) -> Result<()> {
        self.db.write(|tx| {
            if using {
                tx.execute(
                    "INSERT OR IGNORE INTO image_users(image, user) VALUES (?1, ?2)",
                    [image, user],
                )?;
            } else {
                tx.execute("DELETE FROM image_users WHERE image = ?1 AND user = ?2", [image, user])?;
            }
            Ok(())
        })
    }
}

pub use berth_oci::time::{now, rfc3339};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_in_use_are_kept_unless_forced() {
        berth_testutil::require_root!();
        use berth_testutil::tars::{build, Entry};
        let dir = berth_testutil::TempDir::new("inuse");
        let mut store = ImageStore::open(dir.path()).unwrap();
        let tar = build(&[Entry::File("f".into(), 0o644, b"x".to_vec())]);
        let tag = Reference::parse("inuse:1").unwrap();
        let img = crate::archive::import(&mut store, &mut &tar[..], &[], "", Some(&tag)).unwrap();
        let id = img.row.id.clone();
        store.set_user(&id, "container-1", true).unwrap();
        let e = store.remove("inuse:1", false).unwrap_err();
        assert!(e.to_string().contains("being used by container container-1"), "{e}");
        let e = store.remove(&id, false).unwrap_err();
        assert!(matches!(e, ImageError::Conflict(_)), "{e}");
        // Forced: untagged, but the image stays for its container.
        let done = store.remove("inuse:1", true).unwrap();
        assert_eq!(done, vec![Removed::Untagged("inuse:1".into())]);
        store.image(&id).unwrap();
        store.set_user(&id, "container-1", false).unwrap();
        let done = store.remove(&id, false).unwrap();
        assert!(done.contains(&Removed::Deleted(id.clone())), "{done:?}");
        store.image(&id).unwrap_err();
        assert!(store.content.list().unwrap().is_empty(), "blobs left");
    }

    #[test]
    fn times_format_as_rfc3339() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000000000Z");
    }
}
