//! Image archives: `save` (a Docker archive that `docker load` reads, which is also an OCI
//! image layout, as Docker 25+ writes them; or a pure OCI layout), `load` (both, plus the
//! legacy `<id>/layer.tar` Docker layout) and `import` (a rootfs tar made into a one-layer
//! image).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};

use berth_oci::{Digest, Platform, Reference};
use serde_json::{json, Value};

use sha2::{Digest as _, Sha256};

use crate::error::{io_err, ImageError, Result};
use crate::model::{self, Descriptor, ImageConfig, Index, Manifest};
use crate::store::{now, Image, ImageStore, NewImage};

/// Archive flavours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `manifest.json` + OCI layout (what `docker save` writes since 25.0).
    Docker,
    /// OCI image layout only.
    Oci,
}

fn append(b: &mut tar::Builder<&mut dyn Write>, path: &str, data: &mut dyn Read, size: u64) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, data)
        .map_err(|e| ImageError::Invalid(format!("writing archive entry {path}: {e}")))
}

fn append_dir(b: &mut tar::Builder<&mut dyn Write>, path: &str) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Directory);
    b.append_data(&mut h, path, std::io::empty())
        .map_err(|e| ImageError::Invalid(format!("writing archive entry {path}: {e}")))
}

/// Writes the images `names` (references or ids) to `out`.
pub fn save(store: &ImageStore, names: &[String], format: Format, out: &mut dyn Write) -> Result<()> {
    let mut images: Vec<(Image, Vec<Reference>)> = Vec::new();
    for n in names {
        let img = store.resolve(n)?;
        // Saving by tag names that tag; by id, every tag of the image.
        let refs = match Reference::parse(n) {
            Ok(r) if img.tags.contains(&r) => vec![r],
            _ => img.tags.clone(),
        };
        match images.iter_mut().find(|(i, _)| i.row.id == img.row.id) {
            Some((_, rs)) => rs.extend(refs),
            None => images.push((img, refs)),
        }
    }
    let mut b = tar::Builder::new(out);
    append_dir(&mut b, "blobs/")?;
    append_dir(&mut b, "blobs/sha256/")?;
    let mut written: std::collections::HashSet<Digest> = Default::default();
    let mut index = Vec::new();
    let mut docker_manifest = Vec::new();
    for (img, refs) in &images {
        let md: Digest = crate::store::parse_digest(&img.row.manifest)?;
        let mbytes = store.content.read(&md)?;
        let m: Manifest = model::parse("manifest", &mbytes)?;
        let mut blobs = vec![md.clone(), m.config.digest.clone()];
        blobs.extend(m.layers.iter().map(|l| l.digest.clone()));
        for d in blobs {
            if !written.insert(d.clone()) {
                continue;
            }
            let f = store.content.open_blob(&d)?;
            let size = f.metadata().map_err(io_err("reading", store.content.path(&d)))?.len();
            // Hashed as it is written: a blob that no longer matches its digest (a corrupted
            // store) fails the save, naming it, rather than reaching the archive as good.
            let mut v = crate::unpack::Hashing {
                inner: std::io::Read::take(f, size),
                hasher: Sha256::new(),
            };
            append(&mut b, &format!("blobs/sha256/{}", d.hex()), &mut v, size)?;
            let got = Digest::sha256_from_bytes(&v.hasher.finalize().into());
            if got != d {
                return Err(ImageError::Invalid(format!(
                    "blob {d} in the content store is corrupt (its content hashes to {got}): not saving it; pull or load the image again"
                )));
            }
        }
        let mtype = m.media_type.clone().unwrap_or_else(|| img.row.media_type.clone());
        if refs.is_empty() {
            index.push(Descriptor::new(&mtype, md.clone(), mbytes.len() as u64));
        }
        for r in refs {
            let mut d = Descriptor::new(&mtype, md.clone(), mbytes.len() as u64);
            let mut ann = BTreeMap::new();
            ann.insert("io.containerd.image.name".to_string(), r.to_string());
            ann.insert(
                "org.opencontainers.image.ref.name".to_string(),
                r.tag().unwrap_or("latest").to_string(),
            );
            d.annotations = Some(ann);
            index.push(d);
        }
        docker_manifest.push(json!({
            "Config": format!("blobs/sha256/{}", m.config.digest.hex()),
            "RepoTags": refs.iter().map(|r| r.familiar()).collect::<Vec<_>>(),
            "Layers": m.layers.iter().map(|l| format!("blobs/sha256/{}", l.digest.hex())).collect::<Vec<_>>(),
        }));
    }
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    append(&mut b, "oci-layout", &mut &layout[..], layout.len() as u64)?;
    let idx = serde_json::to_vec(&Index {
        schema_version: 2,
        media_type: Some(model::OCI_INDEX.to_string()),
        manifests: index,
        annotations: None,
    })
    .map_err(|e| ImageError::Invalid(e.to_string()))?;
    append(&mut b, "index.json", &mut &idx[..], idx.len() as u64)?;
    if format == Format::Docker {
        let dm = serde_json::to_vec(&docker_manifest).map_err(|e| ImageError::Invalid(e.to_string()))?;
        append(&mut b, "manifest.json", &mut &dm[..], dm.len() as u64)?;
    }
    b.into_inner()
        .map_err(|e| ImageError::Invalid(format!("finishing archive: {e}")))?
        .flush()
        .map_err(|e| ImageError::Invalid(format!("writing archive: {e}")))
}

/// What `load` found in an archive.
#[derive(Debug, Default)]
struct Archive {
    /// Small files kept in memory (json, layout, repositories).
    small: HashMap<String, Vec<u8>>,
    /// Path -> digest of every file moved into the content store.
    stored: HashMap<String, Digest>,
    /// Symlinks (legacy layouts share layers through them).
    links: HashMap<String, String>,
}

impl Archive {
    fn digest_of(&self, path: &str) -> Option<Digest> {
        let mut p = clean(path);
        for _ in 0..8 {
            if let Some(d) = self.stored.get(&p) {
                return Some(d.clone());
            }
            let target = self.links.get(&p)?;
            let base = p.rsplit_once('/').map(|(b, _)| b).unwrap_or("");
            p = clean(&if target.starts_with('/') {
                target.clone()
            } else {
                format!("{base}/{target}")
            });
        }
        None
    }
}

use berth_safepath::clean;

/// Loads every image of an archive read from `input`; returns the lines Docker prints
/// (`Loaded image: busybox:latest`, or `Loaded image ID: sha256:...`).
pub fn load(store: &mut ImageStore, input: &mut dyn Read) -> Result<Vec<String>> {
    let stream = crate::unpack::decompress(input).map_err(|e| ImageError::Invalid(format!("reading archive: {e}")))?;
    let mut ar = tar::Archive::new(stream);
    let mut found = Archive::default();
    let entries = ar
        .entries()
        .map_err(|e| ImageError::Invalid(format!("not a tar archive: {e}")))?;
    for e in entries {
        let mut e = e.map_err(|e| ImageError::Invalid(format!("reading archive: {e}")))?;
        let path = clean(&String::from_utf8_lossy(&e.path_bytes()));
        match e.header().entry_type() {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                if let Some(t) = e.link_name_bytes() {
                    found.links.insert(path, String::from_utf8_lossy(&t).into_owned());
                }
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            _ => continue,
        }
        if let Some(hex) = path.strip_prefix("blobs/sha256/") {
            let d: Digest = format!("sha256:{hex}")
                .parse()
                .map_err(|e: berth_oci::DigestError| ImageError::Invalid(format!("archive entry {path}: {e}")))?;
            if !store.content.has(&d) {
                let mut w = store.content.writer(&d, Some(e.size()))?;
                w.reset()?;
                std::io::copy(&mut e, &mut w)
                    .map_err(|err| ImageError::Invalid(format!("archive entry {path}: {err}")))?;
                w.commit()?;
            }
            found.stored.insert(path, d);
        } else if e.size() <= 8 << 20 && !path.ends_with(".tar") {
            let mut v = Vec::new();
            e.read_to_end(&mut v)
                .map_err(|err| ImageError::Invalid(format!("archive entry {path}: {err}")))?;
            found.small.insert(path, v);
        } else {
            let (d, _) = store.content.put_stream(&mut e)?;
            found.stored.insert(path, d);
        }
    }
    let mut out = Vec::new();
    if let Some(idx) = found.small.get("index.json").cloned() {
        let index: Index = model::parse("index.json", &idx)?;
        for desc in &index.manifests {
            out.push(load_oci(store, desc)?);
        }
    } else if let Some(mj) = found.small.get("manifest.json").cloned() {
        let entries: Vec<Value> =
            serde_json::from_slice(&mj).map_err(|e| ImageError::Invalid(format!("malformed manifest.json: {e}")))?;
        for m in entries {
            out.extend(load_docker(store, &found, &m)?);
        }
    } else {
        return Err(ImageError::Invalid(
            "not an image archive: neither index.json nor manifest.json found".into(),
        ));
    }
    Ok(out)
}

fn load_oci(store: &mut ImageStore, desc: &Descriptor) -> Result<String> {
    let mut desc = desc.clone();
    let annotations = desc.annotations.clone().unwrap_or_default();
    let mut bytes = store.content.read(&desc.digest)?;
    if model::is_index(&desc.media_type) {
        let nested: Index = model::parse("nested index", &bytes)?;
        desc = crate::pull::select(&nested, &Platform::host())?;
        bytes = store.content.read(&desc.digest)?;
    }
    let manifest: Manifest = model::parse("manifest", &bytes)?;
    let config: ImageConfig = model::parse("image config", &store.content.read(&manifest.config.digest)?)?;
    store.unpack_layers(&manifest, &config)?;
    let name = annotations
        .get("io.containerd.image.name")
        .or_else(|| annotations.get("org.opencontainers.image.ref.name"))
        .and_then(|n| {
            Reference::parse(n)
                .ok()
                .filter(|r| r.tag().is_some() && (n.contains('/') || n.contains(':')))
        });
    let img = store.add_image(&NewImage {
        manifest: bytes,
        media_type: desc.media_type.clone(),
        tags: name.iter().cloned().collect(),
        digests: vec![],
    })?;
    Ok(match name {
        Some(r) => format!("Loaded image: {}", r.familiar()),
        None => format!("Loaded image ID: {}", img.row.id),
    })
}

fn load_docker(store: &mut ImageStore, found: &Archive, m: &Value) -> Result<Vec<String>> {
    let cfg_path = m
        .get("Config")
        .and_then(Value::as_str)
        .ok_or_else(|| ImageError::Invalid("manifest.json entry without Config".into()))?;
    let cfg_bytes = match found.small.get(&clean(cfg_path)) {
        Some(b) => b.clone(),
        None => {
            let d = found
                .digest_of(cfg_path)
                .ok_or_else(|| ImageError::Invalid(format!("archive lacks config {cfg_path}")))?;
            store.content.read(&d)?
        }
    };
    let cfg_digest = store.content.put(&cfg_bytes)?;
    let config: ImageConfig = model::parse("image config", &cfg_bytes)?;
    let mut layers = Vec::new();
    for l in m.get("Layers").and_then(Value::as_array).into_iter().flatten() {
        let p = l
            .as_str()
            .ok_or_else(|| ImageError::Invalid("manifest.json layer is not a string".into()))?;
        let d = found
            .digest_of(p)
            .ok_or_else(|| ImageError::Invalid(format!("archive lacks layer {p}")))?;
        let size = store.content.size(&d).unwrap_or(0);
        let mtype = layer_media_type(store, &d, false)?;
        layers.push(Descriptor::new(mtype, d, size));
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": model::DOCKER_MANIFEST,
        "config": {"mediaType": model::DOCKER_CONFIG, "size": cfg_bytes.len(), "digest": cfg_digest.to_string()},
        "layers": layers,
    });
    let mbytes = serde_json::to_vec(&manifest).map_err(|e| ImageError::Invalid(e.to_string()))?;
    let parsed: Manifest = model::parse("manifest", &mbytes)?;
    store.unpack_layers(&parsed, &config)?;
    let tags: Vec<Reference> = m
        .get("RepoTags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str())
        .map(|t| Reference::parse(t).map_err(|e| ImageError::Invalid(format!("manifest.json: {e}"))))
        .collect::<Result<_>>()?;
    let img = store.add_image(&NewImage {
        manifest: mbytes,
        media_type: model::DOCKER_MANIFEST.to_string(),
        tags: tags.clone(),
        digests: vec![],
    })?;
    Ok(if tags.is_empty() {
        vec![format!("Loaded image ID: {}", img.row.id)]
    } else {
        tags.iter().map(|t| format!("Loaded image: {}", t.familiar())).collect()
    })
}

/// The media type of a stored layer blob from its compression, in Docker's or OCI's words.
fn layer_media_type(store: &ImageStore, d: &Digest, oci: bool) -> Result<&'static str> {
    use crate::unpack::Compression as C;
    let mut f = store.content.open_blob(d)?;
    let c = crate::unpack::detect_file(&mut f).map_err(io_err("reading", store.content.path(d)))?;
    Ok(match (c, oci) {
        (C::Gzip, true) => model::OCI_LAYER_GZIP,
        (C::Gzip, false) => model::DOCKER_LAYER_GZIP,
        (C::Zstd, _) => model::OCI_LAYER_ZSTD,
        (C::None, true) => model::OCI_LAYER,
        (C::None, false) => model::DOCKER_LAYER,
    })
}

/// Applies Dockerfile-style `--change` instructions to a config's `config` object.
pub fn apply_changes(cfg: &mut serde_json::Map<String, Value>, changes: &[String]) -> Result<()> {
    for c in changes {
        let c = c.trim();
        let (instr, rest) = c.split_once(char::is_whitespace).unwrap_or((c, ""));
        let rest = rest.trim();
        let words = || -> Value {
            match serde_json::from_str::<Vec<String>>(rest) {
                Ok(v) => json!(v),
                Err(_) => json!(["/bin/sh", "-c", rest]),
            }
        };
        match instr.to_ascii_uppercase().as_str() {
            "CMD" => {
                cfg.insert("Cmd".into(), words());
            }
            "ENTRYPOINT" => {
                cfg.insert("Entrypoint".into(), words());
            }
            "WORKDIR" => {
                cfg.insert("WorkingDir".into(), json!(rest));
            }
            "USER" => {
                cfg.insert("User".into(), json!(rest));
            }
            "STOPSIGNAL" => {
                cfg.insert("StopSignal".into(), json!(rest));
            }
            "ENV" => {
                let env = cfg.entry("Env").or_insert_with(|| json!([]));
                let pairs: Vec<String> = match rest.split_once('=') {
                    Some(_) => rest.split_whitespace().map(str::to_string).collect(),
                    None => match rest.split_once(char::is_whitespace) {
                        Some((k, v)) => vec![format!("{k}={}", v.trim())],
                        None => return Err(ImageError::Invalid(format!("ENV needs a value: {c:?}"))),
                    },
                };
                if let Some(a) = env.as_array_mut() {
                    for p in pairs {
                        let key = p.split('=').next().unwrap_or("").to_string();
                        a.retain(|e| e.as_str().and_then(|s| s.split('=').next()) != Some(key.as_str()));
                        a.push(json!(p));
                    }
                }
            }
            "EXPOSE" => {
                let ports = cfg.entry("ExposedPorts").or_insert_with(|| json!({}));
                for p in rest.split_whitespace() {
                    let p = if p.contains('/') { p.to_string() } else { format!("{p}/tcp") };
                    if let Some(o) = ports.as_object_mut() {
                        o.insert(p, json!({}));
                    }
                }
            }
            "VOLUME" => {
                let vols = cfg.entry("Volumes").or_insert_with(|| json!({}));
                let list: Vec<String> = serde_json::from_str(rest)
                    .unwrap_or_else(|_| rest.split_whitespace().map(str::to_string).collect());
                for v in list {
                    if let Some(o) = vols.as_object_mut() {
                        o.insert(v, json!({}));
                    }
                }
            }
            "LABEL" => {
                let labels = cfg.entry("Labels").or_insert_with(|| json!({}));
                for kv in rest.split_whitespace() {
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| ImageError::Invalid(format!("LABEL needs key=value: {c:?}")))?;
                    if let Some(o) = labels.as_object_mut() {
                        o.insert(k.trim_matches('"').into(), json!(v.trim_matches('"')));
                    }
                }
            }
            other => {
                return Err(ImageError::Invalid(format!(
                    "{other} is not a valid change command (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR)"
                )))
            }
        }
    }
    Ok(())
}

/// `import`: a rootfs tar (plain or compressed) becomes a one-layer image.
pub fn import(
    store: &mut ImageStore,
    input: &mut dyn Read,
    changes: &[String],
    message: &str,
    tag: Option<&Reference>,
) -> Result<Image> {
    let (blob, size) = store.content.put_stream(input)?;
    let mtype = layer_media_type(store, &blob, true)?;
    // The diff id is the digest of the uncompressed stream.
    let diff_id = {
        let f = store.content.open_blob(&blob)?;
        let mut r = crate::unpack::decompress(f).map_err(|e| ImageError::Invalid(format!("reading import: {e}")))?;
        let mut h = <sha2::Sha256 as sha2::Digest>::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let k = r
                .read(&mut buf)
                .map_err(|e| ImageError::Invalid(format!("reading import: {e}")))?;
            if k == 0 {
                break;
            }
            sha2::Digest::update(&mut h, &buf[..k]);
        }
        Digest::sha256_from_bytes(&sha2::Digest::finalize(h).into())
    };
    let mut cc = serde_json::Map::new();
    apply_changes(&mut cc, changes)?;
    let p = Platform::host();
    let created = now();
    let mut cfg = json!({
        "architecture": p.architecture,
        "os": p.os,
        "created": created,
        "config": cc,
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{"created": created, "created_by": "berth import", "comment": message}],
    });
    if let Some(v) = &p.variant {
        cfg["variant"] = json!(v);
    }
    let cfg_bytes = serde_json::to_vec(&cfg).map_err(|e| ImageError::Invalid(e.to_string()))?;
    let cfg_digest = store.content.put(&cfg_bytes)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": model::OCI_MANIFEST,
        "config": {"mediaType": model::OCI_CONFIG, "size": cfg_bytes.len(), "digest": cfg_digest.to_string()},
        "layers": [{"mediaType": mtype, "size": size, "digest": blob.to_string()}],
    });
    let mbytes = serde_json::to_vec(&manifest).map_err(|e| ImageError::Invalid(e.to_string()))?;
    let parsed: Manifest = model::parse("manifest", &mbytes)?;
    let config: ImageConfig = model::parse("image config", &cfg_bytes)?;
    store.unpack_layers(&parsed, &config)?;
    store.add_image(&NewImage {
        manifest: mbytes,
        media_type: model::OCI_MANIFEST.to_string(),
        tags: tag.into_iter().cloned().collect(),
        digests: vec![],
    })
}
