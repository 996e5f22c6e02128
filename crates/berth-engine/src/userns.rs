//! Containers in user namespaces of their own: `--userns=auto` (a free range of the
//! `containers` user's subordinate ids for each container, as Podman's), `--uidmap` /
//! `--gidmap` (explicit `CONTAINER:HOST:SIZE` maps), `--userns-remap` (every container of
//! this engine in one user's range, Docker's daemon option) and, rootless, `--userns=keep-id`
//! (the user's own uid inside).
//!
//! The image's layers stay as unpacked (owned by the image's own ids); the container sees
//! them through its map without a copy: root mounts each layer idmapped
//! (`mount_setattr(MOUNT_ATTR_IDMAP)`) under the overlay, so a file of uid N on disk is the
//! container's N. The upper layer holds what the container writes with the host's ids.
//! A rootless engine may not idmap the host's filesystems: there fuse-overlayfs presents
//! the layers through the same map (`uidmapping=`).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::{Engine, Record};
use crate::{EngineError, Result};

/// One line of an id map: `size` ids from `container_id` inside, `host_id` outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    /// First id inside.
    pub container_id: u32,
    /// First id outside (the engine's namespace: the host's for root).
    pub host_id: u32,
    /// How many.
    pub size: u32,
}

/// The environment variable `--userns-remap` sets for this engine's processes.
pub const REMAP_ENV: &str = "BERTH_USERNS_REMAP";

/// The default size of an `auto` range.
const AUTO_SIZE: u32 = 65536;

/// Parses `CONTAINER:HOST:SIZE` (a `--uidmap`/`--gidmap` value).
pub fn parse_map(flag: &str, s: &str) -> Result<IdMap> {
    let bad = || EngineError::Invalid(format!("invalid {flag} {s:?}: want CONTAINER_ID:HOST_ID:SIZE"));
    let f: Vec<&str> = s.split(':').collect();
    let [c, h, n] = f.as_slice() else { return Err(bad()) };
    let m = IdMap {
        container_id: c.parse().map_err(|_| bad())?,
        host_id: h.parse().map_err(|_| bad())?,
        size: n.parse().map_err(|_| bad())?,
    };
    if m.size == 0 || m.container_id.checked_add(m.size).is_none() || m.host_id.checked_add(m.size).is_none() {
        return Err(bad());
    }
    Ok(m)
}

/// What a container's user namespace is to be.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `UsernsMode` as inspect shows it (`auto`, `keep-id`, `host`, or empty).
    pub mode: String,
    /// uid map (empty: no user namespace of its own).
    pub uid: Vec<IdMap>,
    /// gid map.
    pub gid: Vec<IdMap>,
    /// The user the process runs as when the container names none (`keep-id`).
    pub default_user: Option<String>,
}

/// Works out a new container's maps from `--userns`, `--uidmap`, `--gidmap` and the
/// engine's `--userns-remap`. `auto` takes a range no other container holds; the caller
/// holds [`lock`] until the container is recorded.
pub fn plan(engine: &Engine, mode: &str, uidmaps: &[String], gidmaps: &[String]) -> Result<Plan> {
    let rootless = crate::rootless::is_rootless();
    let uid: Vec<IdMap> = uidmaps
        .iter()
        .map(|m| parse_map("--uidmap", m))
        .collect::<Result<_>>()?;
    let mut gid: Vec<IdMap> = gidmaps
        .iter()
        .map(|m| parse_map("--gidmap", m))
        .collect::<Result<_>>()?;
    if !uid.is_empty() || !gid.is_empty() {
        if !mode.is_empty() && mode != "private" {
            return Err(EngineError::Invalid(format!(
                "--userns={mode} and --uidmap/--gidmap cannot be used together"
            )));
        }
        if gid.is_empty() {
            gid = uid.clone();
        }
        let uid = if uid.is_empty() { gid.clone() } else { uid };
        check_maps(&uid, rootless)?;
        check_maps(&gid, rootless)?;
        return Ok(Plan {
            mode: "private".into(),
            uid,
            gid,
            default_user: None,
        });
    }
    let (kind, opts) = mode.split_once(':').unwrap_or((mode, ""));
    match kind {
        "" | "private" => match std::env::var(REMAP_ENV).ok().filter(|u| !u.is_empty()) {
            Some(user) if !rootless => remap(&user),
            _ => Ok(Plan::default()),
        },
        "host" => Ok(Plan {
            mode: "host".into(),
            ..Plan::default()
        }),
        "keep-id" if rootless => keep_id(opts),
        "keep-id" => Err(EngineError::Invalid(
            "--userns=keep-id is for rootless users (it keeps the user's own uid inside); root may use --userns=auto or --uidmap"
                .into(),
        )),
        "auto" if rootless => Err(EngineError::Invalid(
            "--userns=auto needs root: a rootless container already runs in the user's subordinate ids (use --uidmap to split them)"
                .into(),
        )),
        "auto" => auto(engine, opts),
        other => Err(EngineError::Invalid(format!(
            "invalid --userns {other:?}: want host, auto[:size=N], keep-id (rootless) or private"
        ))),
    }
}

/// Rootless, a map may only use the ids of the user's namespace.
fn check_maps(maps: &[IdMap], rootless: bool) -> Result<()> {
    if !rootless {
        return Ok(());
    }
    let have: u64 = berth_safepath::userns::own_uid_map()
        .iter()
        .map(|r| u64::from(r.count))
        .sum();
    for m in maps {
        if u64::from(m.host_id) + u64::from(m.size) > have {
            return Err(EngineError::Invalid(format!(
                "--uidmap {}:{}:{} reaches past the {have} ids of the user's namespace (0-{})",
                m.container_id,
                m.host_id,
                m.size,
                have.saturating_sub(1)
            )));
        }
    }
    Ok(())
}

/// `keep-id[:uid=U,gid=G]`: the user's uid and gid inside (U and G of the namespace's 0),
/// the namespace's other ids around them.
fn keep_id(opts: &str) -> Result<Plan> {
    let own = |file: &str| berth_safepath::userns::parse_map(&std::fs::read_to_string(file).unwrap_or_default());
    let (umap, gmap) = (own("/proc/self/uid_map"), own("/proc/self/gid_map"));
    let outside = |m: &[berth_safepath::userns::IdRange]| berth_safepath::userns::to_outside(m, 0).unwrap_or(0);
    let (mut u, mut g) = (outside(&umap), outside(&gmap));
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o.split_once('=') {
            Some(("uid", v)) => {
                u = v
                    .parse()
                    .map_err(|_| EngineError::Invalid(format!("invalid keep-id option {o}")))?
            }
            Some(("gid", v)) => {
                g = v
                    .parse()
                    .map_err(|_| EngineError::Invalid(format!("invalid keep-id option {o}")))?
            }
            _ => {
                return Err(EngineError::Invalid(format!(
                    "invalid keep-id option {o:?}: known are uid=N, gid=N"
                )))
            }
        }
    }
    let total = |m: &[berth_safepath::userns::IdRange]| -> u32 { m.iter().map(|r| r.count).sum() };
    let around = |id: u32, n: u32| -> Result<Vec<IdMap>> {
        if n < 2 || id >= n {
            return Err(EngineError::Invalid(format!(
                "--userns=keep-id: id {id} does not fit the {n} ids of the user's namespace; add a larger range to /etc/subuid and /etc/subgid"
            )));
        }
        let mut v = Vec::new();
        if id > 0 {
            v.push(IdMap {
                container_id: 0,
                host_id: 1,
                size: id,
            });
        }
        v.push(IdMap {
            container_id: id,
            host_id: 0,
            size: 1,
        });
        if n - 1 > id {
            v.push(IdMap {
                container_id: id + 1,
                host_id: id + 1,
                size: n - 1 - id,
            });
        }
        Ok(v)
    };
    Ok(Plan {
        mode: "keep-id".into(),
        uid: around(u, total(&umap))?,
        gid: around(g, total(&gmap))?,
        default_user: Some(format!("{u}:{g}")),
    })
}

/// `--userns-remap=USER`: the user's first subordinate ranges, as the container's 0 on.
fn remap(user: &str) -> Result<Plan> {
    // Docker's `default` is a user it makes; berth's is the `containers` user `auto` uses.
    let user = if user == "default" { AUTO_USER } else { user };
    let (name, uid) = user_id(user)?;
    let first = |kind, file: &str| -> Result<IdMap> {
        let r = berth_runtime::idmap::ranges(kind, Path::new(file), &name, uid)
            .map_err(|e| EngineError::Invalid(format!("--userns-remap: {e}")))?;
        Ok(IdMap {
            container_id: 0,
            host_id: r[0].start,
            size: r[0].count,
        })
    };
    Ok(Plan {
        mode: String::new(),
        uid: vec![first("uid", "/etc/subuid")?],
        gid: vec![first("gid", "/etc/subgid")?],
        default_user: None,
    })
}

/// A user by name or uid: (name, uid).
fn user_id(user: &str) -> Result<(String, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let (n, id) = (*f.first()?, f.get(2)?.parse::<u32>().ok()?);
            (n == user || user.parse::<u32>().ok() == Some(id)).then(|| (n.to_string(), id))
        })
        .ok_or_else(|| EngineError::Invalid(format!("--userns-remap: no user {user:?} in /etc/passwd")))
}

/// Serializes `auto` allocations among berth processes until the container is recorded.
pub fn lock(engine: &Engine) -> Result<nix::fcntl::Flock<std::fs::File>> {
    crate::store::lock_file(&engine.root.join("userns.lock"))
}

/// The uid and gid maps a container holds.
type Held = (Vec<IdMap>, Vec<IdMap>);

/// The subordinate user whose ranges `auto` hands out (Podman's too).
const AUTO_USER: &str = "containers";

/// `auto[:size=N]`: the lowest free range of N ids (65536) within the `containers` user's
/// subordinate ranges, the same for gids.
fn auto(engine: &Engine, opts: &str) -> Result<Plan> {
    let mut size = AUTO_SIZE;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o.split_once('=') {
            Some(("size", v)) => {
                size = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| EngineError::Invalid(format!("invalid --userns=auto option {o}")))?
            }
            _ => {
                return Err(EngineError::Invalid(format!(
                    "invalid --userns=auto option {o:?}: known is size=N"
                )))
            }
        }
    }
    let held: Vec<Held> = engine.all()?.into_iter().map(|r| (r.uid_map, r.gid_map)).collect();
    let pick = |kind: &'static str, file: &str, maps: &dyn Fn(&Held) -> Vec<IdMap>| -> Result<u32> {
        let ranges = berth_runtime::idmap::ranges(kind, Path::new(file), AUTO_USER, u32::MAX).map_err(|e| {
            EngineError::Invalid(format!(
                "--userns=auto hands out the subordinate ids of user \"{AUTO_USER}\": {e}"
            ))
        })?;
        let used: Vec<(u64, u64)> = held
            .iter()
            .flat_map(maps)
            .map(|m| (u64::from(m.host_id), u64::from(m.host_id) + u64::from(m.size)))
            .collect();
        for r in &ranges {
            let end = u64::from(r.start) + u64::from(r.count);
            let mut at = u64::from(r.start);
            while at + u64::from(size) <= end {
                match used.iter().find(|(s, e)| *s < at + u64::from(size) && at < *e) {
                    Some((_, e)) => at = *e,
                    None => return u32::try_from(at).map_err(|_| EngineError::Invalid("id out of range".into())),
                }
            }
        }
        let total: u64 = ranges.iter().map(|r| u64::from(r.count)).sum();
        Err(EngineError::Invalid(format!(
            "--userns=auto: no free range of {size} {kind}s is left in {file}'s ranges for \"{AUTO_USER}\" \
             ({total} ids, held by {} containers): remove containers, or add a range (usermod --add-sub{kind}s START-END {AUTO_USER})",
            held.iter().filter(|h| !maps(h).is_empty()).count()
        )))
    };
    let u = pick("uid", "/etc/subuid", &|h| h.0.clone())?;
    let g = pick("gid", "/etc/subgid", &|h| h.1.clone())?;
    Ok(Plan {
        mode: if opts.is_empty() {
            "auto".into()
        } else {
            format!("auto:{opts}")
        },
        uid: vec![IdMap {
            container_id: 0,
            host_id: u,
            size,
        }],
        gid: vec![IdMap {
            container_id: 0,
            host_id: g,
            size,
        }],
        default_user: None,
    })
}

/// The spec's `linux.uidMappings`-shaped JSON of a map.
pub fn spec_json(maps: &[IdMap]) -> serde_json::Value {
    serde_json::Value::Array(
        maps.iter()
            .map(|m| serde_json::json!({"containerID": m.container_id, "hostID": m.host_id, "size": m.size}))
            .collect(),
    )
}

/// A user namespace with the given maps, held by a descriptor (the process that made it
/// is gone). For idmapped mounts.
pub fn make_userns(uid: &[IdMap], gid: &[IdMap]) -> Result<OwnedFd> {
    let text = |m: &[IdMap]| -> String {
        m.iter()
            .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
            .collect()
    };
    let (r, w) = nix::unistd::pipe().map_err(|e| crate::io_err("making", "a pipe")(e.into()))?;
    // SAFETY: the child makes only async-signal-safe calls (unshare, write, pause, _exit).
    match unsafe { nix::unistd::fork() }.map_err(|e| crate::io_err("forking", "a user namespace holder")(e.into()))? {
        nix::unistd::ForkResult::Child => {
            drop(r);
            // SAFETY: raw system calls only; the child never returns to Rust code.
            unsafe {
                if libc::unshare(libc::CLONE_NEWUSER) == 0 {
                    libc::write(std::os::fd::AsRawFd::as_raw_fd(&w), c"u".as_ptr().cast(), 1);
                    loop {
                        libc::pause();
                    }
                }
                libc::_exit(1)
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            let done = (|| -> Result<OwnedFd> {
                let mut b = [0u8; 1];
                let n = nix::unistd::read(&r, &mut b).unwrap_or(0);
                if n != 1 {
                    return Err(EngineError::Invalid("cannot create a user namespace".into()));
                }
                let pid = child.as_raw();
                std::fs::write(format!("/proc/{pid}/uid_map"), text(uid))
                    .map_err(crate::io_err("writing", format!("/proc/{pid}/uid_map")))?;
                std::fs::write(format!("/proc/{pid}/gid_map"), text(gid))
                    .map_err(crate::io_err("writing", format!("/proc/{pid}/gid_map")))?;
                let f = std::fs::File::open(format!("/proc/{pid}/ns/user"))
                    .map_err(crate::io_err("opening", format!("/proc/{pid}/ns/user")))?;
                Ok(f.into())
            })();
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(child, None);
            done
        }
    }
}

/// Mounts a container's rootfs through its id map: idmapped layers and upper directory
/// under the kernel's overlay (root), or fuse-overlayfs with the map (rootless).
pub fn mount_rootfs(r: &Record, dir: &Path, lowers: &[PathBuf]) -> Result<()> {
    let rootfs = dir.join("rootfs");
    if crate::rootless::is_rootless() {
        return berth_image::snapshot::mount_fuse_overlay(
            &rootfs,
            lowers,
            (&dir.join("fs/upper"), &dir.join("fs/work")),
            &fuse_map(&r.uid_map),
            &fuse_map(&r.gid_map),
        )
        .map_err(EngineError::from);
    }
    let ns = make_userns(&r.uid_map, &r.gid_map)?;
    let stage = dir.join("idmapped");
    let _ = std::fs::create_dir_all(&stage);
    let attached = std::cell::RefCell::new(Vec::new());
    let attach = |src: &Path, name: &str| -> Result<PathBuf> {
        use berth_safepath::mount;
        let at = stage.join(name);
        std::fs::create_dir_all(&at).map_err(crate::io_err("creating", &at))?;
        let m = mount::clone_tree(src, false).map_err(crate::io_err("cloning the mount of", src))?;
        mount::set_idmap(&m, &ns).map_err(|e| {
            EngineError::Invalid(format!(
                "idmapping {}: {e} (user namespaces with their own maps need idmapped mounts, Linux 5.12+ on a filesystem that supports them)",
                src.display()
            ))
        })?;
        mount::attach(&m, &at).map_err(crate::io_err("attaching an idmapped mount on", &at))?;
        attached.borrow_mut().push(at.clone());
        Ok(at)
    };
    let made = (|| -> Result<()> {
        let mut idl = Vec::new();
        for (i, l) in lowers.iter().enumerate() {
            idl.push(attach(l, &format!("l{i}"))?);
        }
        // The upper layer is not idmapped (overlayfs makes its work directory as the
        // mounter, whom the map does not hold): it keeps the container's ids as the host
        // sees them, its root directory the container's root's.
        let upper = dir.join("fs/upper");
        let host0 = |m: &[IdMap]| m.iter().find(|m| m.container_id == 0).map(|m| m.host_id);
        if let (Some(u), Some(g)) = (host0(&r.uid_map), host0(&r.gid_map)) {
            std::os::unix::fs::lchown(&upper, Some(u), Some(g)).map_err(crate::io_err("chown", &upper))?;
        }
        berth_image::snapshot::mount_overlay(&rootfs, &idl, Some((&upper, &dir.join("fs/work"))))?;
        Ok(())
    })();
    // The overlay holds its own references to its layers: the staging mounts go.
    for at in attached.borrow().iter() {
        let _ = nix::mount::umount2(at, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(at);
    }
    let _ = std::fs::remove_dir(&stage);
    made
}

/// fuse-overlayfs's `uidmapping=` of a map (`C:H:S` joined by `:`).
fn fuse_map(m: &[IdMap]) -> String {
    m.iter()
        .map(|m| format!("{}:{}:{}", m.container_id, m.host_id, m.size))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_parse() {
        assert_eq!(
            parse_map("--uidmap", "0:100000:65536").unwrap(),
            IdMap {
                container_id: 0,
                host_id: 100000,
                size: 65536
            }
        );
        for bad in ["0:1", "a:b:c", "0:0:0", "0:4294967295:2"] {
            parse_map("--uidmap", bad).unwrap_err();
        }
        assert_eq!(
            fuse_map(&[
                IdMap {
                    container_id: 0,
                    host_id: 1,
                    size: 5
                },
                IdMap {
                    container_id: 5,
                    host_id: 0,
                    size: 1
                }
            ]),
            "0:1:5:5:0:1"
        );
    }
}
