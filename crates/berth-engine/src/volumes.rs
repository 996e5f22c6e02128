//! Volumes: named directories under `volumes/<name>/_data` that outlive containers, bind
//! mounts of host paths, and tmpfs mounts; `-v`/`--mount`/`--tmpfs` parsing.
//!
//! A new named volume mounted where the image has content gets a copy of it first (Docker's
//! copy-up), taken from a read-only overlay of the image.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::model::MountSpec;
use crate::store::Engine;
use crate::{io_err, EngineError, Result};

fn valid_volume_name(n: &str) -> bool {
    n.len() >= 2
        && n.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// A bind mount's propagation modes (`-v SRC:DST:rslave`, `bind-propagation=`).
pub const PROPAGATIONS: [&str; 6] = ["private", "rprivate", "shared", "rshared", "slave", "rslave"];

/// A mount's propagation: a bind's own (default `rprivate`), none for the others.
pub fn propagation(m: &MountSpec) -> &str {
    match m.kind.as_str() {
        "tmpfs" | "image" => "",
        _ => m
            .options
            .iter()
            .map(String::as_str)
            .find(|o| PROPAGATIONS.contains(o))
            .unwrap_or("rprivate"),
    }
}

/// Parses `-v SRC:DST[:ro|rw]` (SRC a host path or a volume name) or `-v DST` (an anonymous
/// volume: no source).
pub fn parse_volume(spec: &str) -> Result<MountSpec> {
    let parts: Vec<&str> = spec.split(':').collect();
    let bad = || EngineError::Invalid(format!("invalid volume specification: '{spec}'"));
    let (src, dst, mode) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(bad()),
    };
    if !dst.starts_with('/') || dst.split('/').any(|c| c == "..") {
        return Err(EngineError::Invalid(format!(
            "invalid mount path: '{dst}' mount path must be absolute"
        )));
    }
    let (mut read_only, mut options) = (false, Vec::new());
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "rw" | "z" | "Z" | "nocopy" => {}
            "ro" => read_only = true,
            p if PROPAGATIONS.contains(&p) && options.is_empty() => options.push(p.to_string()),
            _ => return Err(bad()),
        }
    }
    let kind = if src.starts_with('/') {
        "bind"
    } else if src.is_empty() || valid_volume_name(src) {
        "volume"
    } else {
        return Err(bad());
    };
    if !options.is_empty() && kind != "bind" {
        return Err(bad());
    }
    let m = MountSpec {
        kind: kind.into(),
        source: src.to_string(),
        destination: dst.to_string(),
        read_only,
        options,
    };
    check(&m, true).map_err(|e| EngineError::Invalid(format!("invalid volume specification: '{spec}': {e}")))?;
    Ok(m)
}

/// Parses `--mount type=bind|volume|tmpfs,source=...,target=...[,readonly]`.
pub fn parse_mount(spec: &str) -> Result<MountSpec> {
    let mut kind = "volume".to_string();
    let (mut src, mut dst, mut ro) = (String::new(), String::new(), false);
    let mut opts = Vec::new();
    for kv in spec.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "type" => kind = v.to_string(),
            "source" | "src" => src = v.to_string(),
            "target" | "destination" | "dst" => dst = v.to_string(),
            "readonly" | "ro" => ro = v.is_empty() || v == "true" || v == "1",
            "tmpfs-size" => opts.push(format!("size={v}")),
            "tmpfs-mode" => opts.push(format!("mode={v}")),
            "bind-propagation" if PROPAGATIONS.contains(&v) => opts.push(v.to_string()),
            "bind-recursive" if v == "readonly" => opts.push("rro".to_string()),
            "bind-recursive" if v == "enabled" => {}
            "bind-recursive" => {
                return Err(EngineError::Invalid(format!(
                    "bind-recursive={v} in '{spec}': berth takes enabled or readonly"
                )))
            }
            "bind-propagation" => {
                return Err(EngineError::Invalid(format!(
                    "invalid bind propagation '{v}' in '{spec}'"
                )))
            }
            _ => return Err(EngineError::Invalid(format!("unexpected key '{k}' in '{spec}'"))),
        }
    }
    if !dst.starts_with('/') {
        return Err(EngineError::Invalid(format!(
            "invalid mount config: target must be absolute: '{spec}'"
        )));
    }
    if kind == "tmpfs" {
        src.clear();
    }
    if opts.iter().any(|o| o == "rro") && !ro {
        return Err(EngineError::Invalid(format!(
            "option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction: '{spec}'"
        )));
    }
    let m = MountSpec {
        kind,
        source: src,
        destination: dst,
        read_only: ro,
        options: opts,
    };
    check(&m, false)?;
    Ok(m)
}

/// Parses `--tmpfs PATH[:OPTIONS]`.
pub fn parse_tmpfs(spec: &str) -> Result<MountSpec> {
    let (dst, opts) = spec.split_once(':').unwrap_or((spec, ""));
    if !dst.starts_with('/') {
        return Err(EngineError::Invalid(format!(
            "invalid tmpfs mount path: '{dst}' must be absolute"
        )));
    }
    let m = MountSpec {
        kind: "tmpfs".into(),
        source: String::new(),
        destination: dst.to_string(),
        read_only: false,
        options: opts.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect(),
    };
    check(&m, false)?;
    Ok(m)
}

/// What a mount may be, whichever front end made it: an absolute destination other than
/// `/`, a known type, a bind's host path absolute (and there, unless `made_if_missing`),
/// a valid volume name (none: a new anonymous volume), no source for a tmpfs.
pub fn check(m: &MountSpec, made_if_missing: bool) -> Result<()> {
    let kind = m.kind.as_str();
    let bad = |why: String| EngineError::Invalid(format!("invalid mount config for type \"{kind}\": {why}"));
    if !["bind", "volume", "tmpfs", "image"].contains(&kind) {
        return Err(EngineError::Invalid(format!("invalid mount type '{kind}'")));
    }
    let dst = &m.destination;
    if !dst.starts_with('/') || dst.split('/').any(|c| c == "..") {
        return Err(bad(format!("invalid mount path: '{dst}' mount path must be absolute")));
    }
    if berth_safepath::clean(dst).is_empty() {
        return Err(bad("invalid specification: destination can't be '/'".into()));
    }
    let src = &m.source;
    match kind {
        "bind" if !src.starts_with('/') => Err(bad(format!("invalid mount path: '{src}' mount path must be absolute"))),
        "bind" if !made_if_missing && !Path::new(src).exists() => {
            Err(bad(format!("bind source path does not exist: {src}")))
        }
        "volume" if !src.is_empty() && !valid_volume_name(src) => {
            Err(EngineError::Invalid(format!("invalid volume name '{src}'")))
        }
        "tmpfs" if !src.is_empty() => Err(bad("source must not be specified".into())),
        "image" if src.is_empty() => Err(bad("an image must be named".into())),
        "image" if !m.read_only => Err(bad("an image is mounted read-only".into())),
        "volume" | "tmpfs" | "image" if m.options.iter().any(|o| PROPAGATIONS.contains(&o.as_str())) => {
            Err(bad("bind propagation is only for bind mounts".into()))
        }
        _ => Ok(()),
    }
}

/// The host path of `sub` inside the volume at `base`: resolved inside it (a symlink there
/// is followed as if `base` were the root, so none leads out), made as a directory when
/// missing, as the kubelet makes it. The path is checked to be inside `base`.
pub fn sub_path(base: &std::path::Path, sub: &str) -> std::result::Result<String, String> {
    if sub.starts_with('/') || sub.split('/').any(|c| c == "..") {
        return Err("must be a relative path without '..'".into());
    }
    let root = berth_safepath::open_root(base).map_err(|e| format!("{}: {e}", base.display()))?;
    let fd = berth_safepath::create_all(
        std::os::fd::AsFd::as_fd(&root),
        std::path::Path::new(sub),
        berth_safepath::Leaf::Dir,
    )
    .map_err(|e| e.to_string())?;
    let real =
        std::fs::read_link(berth_safepath::proc_fd_path(std::os::fd::AsFd::as_fd(&fd))).map_err(|e| e.to_string())?;
    let base_real = std::fs::canonicalize(base).map_err(|e| e.to_string())?;
    if !real.starts_with(&base_real) {
        return Err("resolves outside its volume".into());
    }
    Ok(real.display().to_string())
}

/// A volume's directory.
pub fn data_dir(engine: &Engine, name: &str) -> PathBuf {
    engine.root.join("volumes").join(name).join("_data")
}

/// What `volume create` keeps beside a volume's data: its labels and the local driver's
/// options (`type`, `device`, `o`: what to mount at the volume's directory, as `mount -t
/// TYPE -o O DEVICE` would).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMeta {
    /// Labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Driver options.
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
}

fn meta_path(engine: &Engine, name: &str) -> PathBuf {
    engine.root.join("volumes").join(name).join("opts.json")
}

/// A volume's labels and options (none for a volume made without them).
pub fn meta(engine: &Engine, name: &str) -> VolumeMeta {
    std::fs::read(meta_path(engine, name))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Whether `dir` is a mount point (in this mount namespace).
fn is_mountpoint(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = dir.display().to_string().replace(' ', "\\040");
    text.lines().any(|l| l.split_whitespace().nth(4) == Some(want.as_str()))
}

/// Mounts what the volume's options name at its directory, unless it is mounted already
/// (after a reboot, at the next use). A volume without options is a plain directory.
pub fn ensure_mounted(engine: &Engine, name: &str) -> Result<()> {
    use nix::mount::MsFlags;
    let m = meta(engine, name);
    let (Some(fstype), Some(device)) = (m.options.get("type"), m.options.get("device")) else {
        return Ok(());
    };
    let d = data_dir(engine, name);
    if is_mountpoint(&d) {
        return Ok(());
    }
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in m
        .options
        .get("o")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .filter(|o| !o.is_empty())
    {
        match o {
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "ro" => flags |= MsFlags::MS_RDONLY,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            other => data.push(other),
        }
    }
    if flags.contains(MsFlags::MS_BIND) && !Path::new(device).is_absolute() {
        return Err(EngineError::Invalid(format!(
            "volume {name}: a bind device must be an absolute path, not {device:?}"
        )));
    }
    let data = data.join(",");
    nix::mount::mount(
        Some(device.as_str()),
        &d,
        Some(fstype.as_str()),
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .map_err(|e| EngineError::Invalid(format!("error while mounting volume '{}': {e}", d.display())))
}

/// `volume create`: a volume of the `local` driver (the only one), named `name` or, when
/// none is given, a new anonymous-looking id; returns the name.
pub fn create_volume(engine: &Engine, name: Option<&str>, driver: &str, meta: &VolumeMeta) -> Result<String> {
    if !driver.is_empty() && driver != "local" {
        return Err(EngineError::Invalid(format!(
            "volume driver {driver:?} is not supported (only local)"
        )));
    }
    let name = match name.filter(|n| !n.is_empty()) {
        Some(n) => n.to_string(),
        None => crate::store::new_id()?,
    };
    create_with(engine, &name, meta)?;
    Ok(name)
}

/// Creates a volume (no error if it exists); says whether it is new.
pub fn create(engine: &Engine, name: &str) -> Result<bool> {
    create_with(engine, name, &VolumeMeta::default())
}

/// Creates a volume with labels and driver options (no error if it exists: the existing
/// one stays as it is, as in Docker); says whether it is new.
pub fn create_with(engine: &Engine, name: &str, meta: &VolumeMeta) -> Result<bool> {
    for k in meta.options.keys() {
        if !["type", "device", "o"].contains(&k.as_str()) {
            return Err(EngineError::Invalid(format!("invalid option key: {k:?}")));
        }
    }
    if meta.options.contains_key("type") != meta.options.contains_key("device") {
        return Err(EngineError::Invalid(
            "the local driver needs both the \"type\" and \"device\" options".into(),
        ));
    }
    if !valid_volume_name(name) {
        return Err(EngineError::Invalid(format!(
            "\"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"
        )));
    }
    let d = data_dir(engine, name);
    if d.is_dir() {
        return Ok(false);
    }
    std::fs::create_dir_all(&d).map_err(io_err("creating", &d))?;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).map_err(io_err("chmod", &d))?;
    let made = (|| -> Result<()> {
        if *meta != VolumeMeta::default() {
            let p = meta_path(engine, name);
            let json = serde_json::to_vec(meta).map_err(|e| EngineError::Invalid(e.to_string()))?;
            std::fs::write(&p, json).map_err(io_err("writing", &p))?;
        }
        ensure_mounted(engine, name)
    })();
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(engine.root.join("volumes").join(name));
        return Err(e);
    }
    crate::events::record(engine, "volume", "create", name, serde_json::json!({"driver": "local"}));
    Ok(true)
}

/// The volumes that pass `volume ls` filters: `name` (a substring), `label` (`k` or
/// `k=v`, all must match), `dangling` (no container uses it), `driver`.
pub fn filtered(engine: &Engine, filters: &std::collections::HashMap<String, Vec<String>>) -> Result<Vec<String>> {
    for k in filters.keys() {
        if !["name", "label", "dangling", "driver"].contains(&k.as_str()) {
            return Err(EngineError::Invalid(format!("invalid filter '{k}'")));
        }
    }
    let mut out = Vec::new();
    for n in list(engine)? {
        let m = meta(engine, &n);
        let any = |k: &str, f: &dyn Fn(&str) -> bool| filters.get(k).is_none_or(|vs| vs.iter().any(|v| f(v)));
        let labels_ok = filters.get("label").is_none_or(|vs| {
            vs.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => m.labels.get(k).is_some_and(|x| x == v),
                None => m.labels.contains_key(l),
            })
        });
        let keep = labels_ok
            && any("name", &|v| n.contains(v))
            && any("driver", &|v| v == "local")
            && any("dangling", &|v| {
                let unused = users(engine, &n).map(|u| u.is_empty()).unwrap_or(false);
                unused == (v == "true" || v == "1")
            });
        if keep {
            out.push(n);
        }
    }
    Ok(out)
}

/// Whether a volume is anonymous (made for an image's VOLUME or `-v /path`: a random
/// 64-hex name); `volume prune` removes only these unless asked for all.
pub fn is_anonymous(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Every volume name.
pub fn list(engine: &Engine) -> Result<Vec<String>> {
    let dir = engine.root.join("volumes");
    let mut v: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    Ok(v)
}

/// Containers using a volume.
pub fn users(engine: &Engine, name: &str) -> Result<Vec<String>> {
    Ok(engine
        .all()?
        .into_iter()
        .filter(|r| r.mounts.iter().any(|m| m.kind == "volume" && m.source == name))
        .map(|r| r.id)
        .collect())
}

/// `volume prune`: removes the volumes no container uses that pass `filters` (`label`),
/// anonymous ones only unless `all`; returns their names. One taken between the check and
/// the removal is left.
pub fn prune(
    engine: &Engine,
    all: bool,
    filters: &std::collections::HashMap<String, Vec<String>>,
) -> Result<Vec<String>> {
    let mut gone = Vec::new();
    for n in filtered(engine, filters)? {
        if (all || is_anonymous(&n)) && users(engine, &n)?.is_empty() && remove(engine, &n).is_ok() {
            gone.push(n);
        }
    }
    Ok(gone)
}

/// Removes a volume unless a container uses it (`force` does not override that, as in Docker).
pub fn remove(engine: &Engine, name: &str) -> Result<()> {
    let d = engine.root.join("volumes").join(name);
    if !d.is_dir() || !valid_volume_name(name) {
        return Err(EngineError::NoSuchVolume(name.to_string()));
    }
    let u = users(engine, name)?;
    if !u.is_empty() {
        return Err(EngineError::Conflict(format!(
            "remove {name}: volume is in use - [{}]",
            u.join(", ")
        )));
    }
    // What the options mounted comes off first: removing through it would delete a bind
    // volume's host files.
    let data = data_dir(engine, name);
    if is_mountpoint(&data) {
        nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| EngineError::Invalid(format!("unmounting volume {name}: {e}")))?;
    }
    if is_mountpoint(&data) {
        return Err(EngineError::Invalid(format!("volume {name} is still mounted")));
    }
    std::fs::remove_dir_all(&d).map_err(io_err("removing", &d))?;
    crate::events::record(
        engine,
        "volume",
        "destroy",
        name,
        serde_json::json!({"driver": "local"}),
    );
    Ok(())
}

/// Copies the image's content at `path` into a fresh volume (Docker's copy-up).
pub fn copy_up(lowers: &[PathBuf], path: &str, dest: &Path) -> Result<()> {
    let tmp = dest.with_file_name(format!("copyup-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(io_err("creating", &tmp))?;
    let r = (|| -> Result<()> {
        berth_image::snapshot::mount_overlay(&tmp, lowers, None)?;
        let src = tmp.join(path.trim_start_matches('/'));
        let res = if src.is_dir() { copy_tree(&src, dest) } else { Ok(()) };
        let _ = nix::mount::umount2(&tmp, nix::mount::MntFlags::MNT_DETACH);
        res
    })();
    let _ = std::fs::remove_dir(&tmp);
    r
}

fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let md = std::fs::symlink_metadata(src).map_err(io_err("reading", src))?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(md.mode() & 0o7777)).map_err(io_err("chmod", dst))?;
    let _ = std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid()));
    for e in std::fs::read_dir(src).map_err(io_err("listing", src))? {
        let e = e.map_err(io_err("listing", src))?;
        let (s, d) = (e.path(), dst.join(e.file_name()));
        let m = std::fs::symlink_metadata(&s).map_err(io_err("reading", &s))?;
        if m.is_dir() {
            std::fs::create_dir(&d).map_err(io_err("creating", &d))?;
            copy_tree(&s, &d)?;
        } else if m.file_type().is_symlink() {
            let t = std::fs::read_link(&s).map_err(io_err("reading", &s))?;
            std::os::unix::fs::symlink(t, &d).map_err(io_err("creating", &d))?;
        } else if m.is_file() {
            std::fs::copy(&s, &d).map_err(io_err("copying", &s))?;
        }
        let _ = std::os::unix::fs::lchown(&d, Some(m.uid()), Some(m.gid()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_take_a_propagation_mode() {
        let m = parse_volume("/tmp:/x:ro,rslave").unwrap();
        assert!(m.read_only);
        assert_eq!(propagation(&m), "rslave");
        assert_eq!(propagation(&parse_volume("/tmp:/x").unwrap()), "rprivate");
        assert_eq!(propagation(&parse_volume("/tmp:/x:z").unwrap()), "rprivate");
        parse_volume("/tmp:/x:rslave,rshared").unwrap_err();
        parse_volume("vol:/x:rshared").unwrap_err();
        parse_volume("/tmp:/x:bogus").unwrap_err();
        let m = parse_mount("type=bind,source=/tmp,target=/x,bind-propagation=shared").unwrap();
        assert_eq!(propagation(&m), "shared");
        parse_mount("type=bind,source=/tmp,target=/x,bind-propagation=sideways").unwrap_err();
        parse_mount("type=volume,target=/x,bind-propagation=shared").unwrap_err();
        let m = parse_mount("type=bind,source=/tmp,target=/x,readonly,bind-recursive=readonly").unwrap();
        assert!(m.read_only && m.options.contains(&"rro".to_string()));
        parse_mount("type=bind,source=/tmp,target=/x,bind-recursive=readonly").unwrap_err();
        assert_eq!(propagation(&parse_tmpfs("/t").unwrap()), "");
    }
}
