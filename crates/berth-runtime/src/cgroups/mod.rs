//! Control groups, v1, hybrid and v2 (the kernel's cgroup-v1/ and cgroup-v2.rst).
//!
//! The host's layout is read from `/proc/self/mountinfo`: a cgroup2 mount at the cgroup root
//! means pure v2; v1 hierarchies (with or without a cgroup2 `unified` beside them) mean v1,
//! and the container is also placed in the unified hierarchy where there is one, as runc does
//! on hybrid hosts. Everything here takes the mount table and file paths as data, so the
//! parsing is unit-tested on a tempdir; behaviour is tested on the real kernel.

mod devices;
mod v1;
mod v2;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_oci::oci_spec::runtime::LinuxResources;
use berth_oci::ErrorKind;
use serde::{Deserialize, Serialize};

/// Cgroup failures.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A cgroup file or directory operation failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The host has no usable cgroup hierarchy.
    #[error("no cgroup hierarchy is mounted")]
    NoCgroups,
    /// A requested limit needs a controller or file the host does not have.
    #[error("{what} is not supported on this host ({path} is missing)")]
    Unsupported {
        /// The setting.
        what: String,
        /// The missing file.
        path: PathBuf,
    },
    /// A resource value or cgroup path is invalid.
    #[error("invalid cgroup setting {what}: {reason}")]
    Invalid {
        /// The setting.
        what: String,
        /// Why it is refused.
        reason: String,
    },
    /// The device filter program could not be loaded.
    #[error("loading the cgroup v2 device filter")]
    DeviceFilter(#[source] std::io::Error),
}

impl CgroupError {
    /// The error's category.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CgroupError::Invalid { .. } => ErrorKind::InvalidArgument,
            CgroupError::Unsupported { .. } | CgroupError::NoCgroups => ErrorKind::FailedPrecondition,
            CgroupError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                ErrorKind::PermissionDenied
            }
            _ => ErrorKind::Internal,
        }
    }
}

pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError {
    let path = path.to_path_buf();
    move |source| CgroupError::Io { op, path, source }
}

/// Where a container's cgroups are; recorded in the container state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "version", rename_all = "lowercase")]
pub enum CgroupConfig {
    /// One directory per mounted v1 hierarchy, keyed by controller (and `unified` on hybrid
    /// hosts). Co-mounted controllers share a directory.
    V1 {
        /// controller -> absolute cgroup directory.
        paths: BTreeMap<String, PathBuf>,
    },
    /// The one unified directory.
    V2 {
        /// Absolute cgroup directory.
        path: PathBuf,
    },
}

/// The host's cgroup mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// v1 hierarchies: controller -> mount point; `unified` for a hybrid host's cgroup2.
    V1(BTreeMap<String, PathBuf>),
    /// Pure v2 at this mount point.
    V2(PathBuf),
}

/// Reads the cgroup layout from a mountinfo text.
pub fn layout_from_mountinfo(mountinfo: &str) -> Result<Layout, CgroupError> {
    let mut v1 = BTreeMap::new();
    let mut v2: Option<PathBuf> = None;
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or("");
        let _source = post.next();
        let superopts = post.next().unwrap_or("");
        let Some(mountpoint) = pre.split(' ').nth(4) else {
            continue;
        };
        let mountpoint = PathBuf::from(unescape(mountpoint));
        match fstype {
            "cgroup2" if v2.is_none() => v2 = Some(mountpoint),
            "cgroup" => {
                for opt in superopts.split(',') {
                    let ctrl = match opt {
                        "rw" | "ro" | "relatime" | "noexec" | "nosuid" | "nodev" | "clone_children" | "xattr"
                        | "noprefix" => continue,
                        o if o.starts_with("release_agent=") => continue,
                        o => o,
                    };
                    v1.entry(ctrl.to_string()).or_insert_with(|| mountpoint.clone());
                }
            }
            _ => {}
        }
    }
    match (v1.is_empty(), v2) {
        (true, Some(p)) => Ok(Layout::V2(p)),
        (false, unified) => {
            if let Some(p) = unified {
                v1.insert("unified".to_string(), p);
            }
            Ok(Layout::V1(v1))
        }
        (true, None) => Err(CgroupError::NoCgroups),
    }
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(char::from(v));
                i += 4;
                continue;
            }
        }
        out.push(char::from(b[i]));
        i += 1;
    }
    out
}

/// The host's layout, read from `/proc/self/mountinfo`.
pub fn host_layout() -> Result<Layout, CgroupError> {
    let p = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(p).map_err(io_err("reading", p))?;
    layout_from_mountinfo(&text)
}

/// This process's cgroup per hierarchy from a `/proc/self/cgroup` text: controller (or
/// `unified` for the `0::` line) -> path.
pub fn own_cgroups(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if ctrls.is_empty() {
            out.insert("unified".to_string(), path.to_string());
        } else {
            for c in ctrls.split(',') {
                out.insert(c.to_string(), path.to_string());
            }
        }
    }
    out
}

/// Turns the spec's `cgroupsPath` into a path below a hierarchy root. With `systemd`, the
/// `slice:prefix:name` form is mapped to the path systemd would give the unit
/// (`/a.slice/a-b.slice/prefix-name.scope`), which is where containerd and podman expect it.
pub fn normalize(cgroups_path: Option<&Path>, id: &str, systemd: bool) -> Result<PathBuf, CgroupError> {
    let raw = match cgroups_path {
        Some(p) if !p.as_os_str().is_empty() => p.to_string_lossy().into_owned(),
        _ if systemd => format!("system.slice:berth:{id}"),
        _ => format!("/berth/{id}"),
    };
    let invalid = |reason: &str| CgroupError::Invalid {
        what: format!("cgroupsPath {raw:?}"),
        reason: reason.to_string(),
    };
    let path = if systemd && !raw.starts_with('/') {
        let parts: Vec<&str> = raw.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            return Err(invalid("systemd cgroup paths have the form slice:prefix:name"));
        };
        let slice = if slice.is_empty() { "system.slice" } else { slice };
        if !slice.ends_with(".slice") || slice.contains('/') {
            return Err(invalid("the slice must end in .slice"));
        }
        // a-b-c.slice lives at /a.slice/a-b.slice/a-b-c.slice
        let stem = slice.trim_end_matches(".slice");
        let mut p = PathBuf::from("/");
        let mut acc = String::new();
        for part in stem.split('-') {
            if part.is_empty() {
                return Err(invalid("bad slice name"));
            }
            if !acc.is_empty() {
                acc.push('-');
            }
            acc.push_str(part);
            p.push(format!("{acc}.slice"));
        }
        let unit = if name.ends_with(".slice") {
            name.to_string()
        } else if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        p.push(unit);
        p
    } else {
        PathBuf::from(&raw)
    };
    if path.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(invalid("must not contain '..'"));
    }
    Ok(path)
}

/// The first resource limit `res` sets (its spec name), if any: what only a cgroup applies.
/// Device rules are not limits: without a cgroup, a user namespace already keeps device
/// nodes out of reach.
pub fn limit_named(res: &LinuxResources) -> Option<String> {
    let mem = res.memory().as_ref();
    let cpu = res.cpu().as_ref();
    let checks: [(&str, bool); 9] = [
        (
            "memory",
            mem.is_some_and(|m| m.limit().is_some() || m.reservation().is_some() || m.swap().is_some()),
        ),
        ("cpu.shares", cpu.is_some_and(|c| c.shares().is_some())),
        ("cpu.quota", cpu.is_some_and(|c| c.quota().is_some())),
        (
            "cpu.cpus",
            cpu.is_some_and(|c| c.cpus().as_ref().is_some_and(|s| !s.is_empty())),
        ),
        (
            "cpu.mems",
            cpu.is_some_and(|c| c.mems().as_ref().is_some_and(|s| !s.is_empty())),
        ),
        ("pids.limit", res.pids().as_ref().is_some_and(|p| p.limit() > 0)),
        ("blockIO", res.block_io().is_some()),
        (
            "hugepageLimits",
            res.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()),
        ),
        ("unified", res.unified().as_ref().is_some_and(|u| !u.is_empty())),
    ];
    checks
        .iter()
        .find(|(_, set)| *set)
        .map(|(n, _)| format!("linux.resources.{n}"))
}

impl CgroupConfig {
    /// No cgroup at all: a rootless container on a host that delegates none.
    pub fn none() -> CgroupConfig {
        CgroupConfig::V1 { paths: BTreeMap::new() }
    }

    /// Whether this is [`CgroupConfig::none`].
    pub fn is_none(&self) -> bool {
        matches!(self, CgroupConfig::V1 { paths } if paths.is_empty())
    }

    /// Works out the directories for `path` (from [`normalize`]) on `layout`. A relative path
    /// is below the runtime's own cgroup, as runc does.
    pub fn resolve(layout: &Layout, path: &Path, own: &BTreeMap<String, String>) -> CgroupConfig {
        let join = |mount: &Path, key: &str| -> PathBuf {
            let rel = path.strip_prefix("/").unwrap_or(path);
            if path.is_absolute() {
                mount.join(rel)
            } else {
                let base = own.get(key).map(String::as_str).unwrap_or("/");
                mount.join(base.trim_start_matches('/')).join(rel)
            }
        };
        match layout {
            Layout::V2(mount) => CgroupConfig::V2 {
                path: join(mount, "unified"),
            },
            Layout::V1(mounts) => CgroupConfig::V1 {
                paths: mounts
                    .iter()
                    .map(|(ctrl, mount)| (ctrl.clone(), join(mount, ctrl)))
                    .collect(),
            },
        }
    }

    /// Creates the directories (and, on v2, enables controllers down to them).
    pub fn create(&self) -> Result<(), CgroupError> {
        match self {
            CgroupConfig::V1 { paths } => v1::create(paths),
            CgroupConfig::V2 { path } => v2::create(path),
        }
    }

    /// The cgroup v2 directory a process can be cloned straight into: the container's v2
    /// directory, or on a hybrid host its directory in the unified hierarchy.
    pub fn v2_dir(&self) -> Option<&Path> {
        match self {
            CgroupConfig::V1 { paths } => paths.get("unified").map(PathBuf::as_path),
            CgroupConfig::V2 { path } => Some(path),
        }
    }

    /// Opens the v1 `tasks` files the container's first process writes `0` to, moving
    /// itself in (see [`join_self`]). Opened by the runtime before it forks, so the writes
    /// carry the runtime's credentials whatever namespaces the child has joined since.
    pub fn open_v1_tasks(&self) -> Result<Vec<SelfJoin>, CgroupError> {
        let CgroupConfig::V1 { paths } = self else {
            return Ok(Vec::new());
        };
        let unified = paths.get("unified");
        let mut dirs: Vec<&PathBuf> = paths.values().filter(|d| Some(*d) != unified).collect();
        dirs.sort();
        dirs.dedup();
        dirs.into_iter()
            .map(|d| {
                let path = d.join("tasks");
                let fd = nix::fcntl::open(
                    &path,
                    nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .map_err(|e| io_err("opening", &path)(e.into()))?;
                Ok(SelfJoin { path, fd })
            })
            .collect()
    }

    /// Moves `pid` into the container's cgroup v2 directory (on a hybrid host, its unified
    /// directory) unless it was born there (`placed`). The v1 hierarchies are joined by the
    /// process itself through [`join_self`].
    pub fn add_v2(&self, pid: i32, placed: bool) -> Result<(), CgroupError> {
        if placed {
            return Ok(());
        }
        if let Some(dir) = self.v2_dir() {
            let f = dir.join("cgroup.procs");
            std::fs::write(&f, pid.to_string()).map_err(io_err("adding pid to", &f))?;
        }
        Ok(())
    }

    /// Applies resource limits.
    pub fn set(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        match self {
            CgroupConfig::V1 { paths } => v1::set(paths, res),
            CgroupConfig::V2 { path } => v2::set(path, res),
        }
    }

    /// Freezes or thaws every process of the container, waiting until done.
    pub fn freeze(&self, frozen: bool) -> Result<(), CgroupError> {
        match self {
            CgroupConfig::V1 { paths } => v1::freeze(paths, frozen),
            CgroupConfig::V2 { path } => v2::freeze(path, frozen),
        }
    }

    /// Whether the freezer holds the container.
    pub fn is_frozen(&self) -> bool {
        match self {
            CgroupConfig::V1 { paths } => v1::is_frozen(paths),
            CgroupConfig::V2 { path } => v2::is_frozen(path),
        }
    }

    /// The pids in the container's cgroup. cgroup v2 lists a process outside the reader's
    /// pid namespace (or one already past its pid's release) as 0: such entries are
    /// dropped, as is the caller itself.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let dir = match self {
            CgroupConfig::V1 { paths } => paths
                .get("pids")
                .or_else(|| paths.get("memory"))
                .or_else(|| paths.values().next())
                .ok_or(CgroupError::NoCgroups)?,
            CgroupConfig::V2 { path } => path,
        };
        let f = dir.join("cgroup.procs");
        let text = std::fs::read_to_string(&f).map_err(io_err("reading", &f))?;
        let me = i32::try_from(std::process::id()).unwrap_or(0);
        Ok(text
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .filter(|&p: &i32| p > 0 && p != me)
            .collect())
    }

    /// Usage figures in runc's `events --stats` shape; `memory.oomKills` is added: the OOM kills the memory controller counted.
    pub fn stats(&self) -> serde_json::Value {
        let mut v = match self {
            CgroupConfig::V1 { paths } => v1::stats(paths),
            CgroupConfig::V2 { path } => v2::stats(path),
        };
        v["memory"]["oomKills"] = serde_json::json!(self.oom_kills());
        v
    }

    /// Whether the memory controller recorded an OOM kill.
    pub fn oom_kills(&self) -> u64 {
        match self {
            CgroupConfig::V1 { paths } => paths
                .get("memory")
                .and_then(|d| read_kv(&d.join("memory.oom_control")).get("oom_kill").copied())
                .unwrap_or(0),
            CgroupConfig::V2 { path } => read_kv(&path.join("memory.events"))
                .get("oom_kill")
                .copied()
                .unwrap_or(0),
        }
    }

    /// Removes the directories; retries while exiting tasks leave (a reaped process can stay
    /// counted for a moment), backing off from 50 µs up to 10 ms, for at most ~2 s.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        for dir in self.dirs() {
            let mut nap = std::time::Duration::from_micros(50);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            loop {
                match std::fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && std::time::Instant::now() < deadline => {
                        std::thread::sleep(nap);
                        nap = (nap * 2).min(std::time::Duration::from_millis(10));
                    }
                    Err(e) => return Err(io_err("removing", &dir)(e)),
                }
            }
        }
        Ok(())
    }

    /// The distinct directories, deepest-first order does not matter (one level each).
    pub fn dirs(&self) -> Vec<PathBuf> {
        match self {
            CgroupConfig::V1 { paths } => {
                let mut v: Vec<PathBuf> = paths.values().cloned().collect();
                v.sort();
                v.dedup();
                v
            }
            CgroupConfig::V2 { path } => vec![path.clone()],
        }
    }

    /// The cgroup v2 directory, or the v1 directory of `controller`.
    pub fn dir_of(&self, controller: &str) -> Option<&Path> {
        match self {
            CgroupConfig::V1 { paths } => paths.get(controller).map(PathBuf::as_path),
            CgroupConfig::V2 { path } => Some(path),
        }
    }
}

/// Writes `value` to `dir/file`, naming the setting in the error.
pub(crate) fn write(dir: &Path, file: &str, value: impl AsRef<str>) -> Result<(), CgroupError> {
    let p = dir.join(file);
    std::fs::write(&p, value.as_ref()).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            CgroupError::Unsupported {
                what: file.to_string(),
                path: p,
            }
        } else {
            CgroupError::Io {
                op: "writing",
                path: p,
                source,
            }
        }
    })
}

/// Reads a single number from a cgroup file (`max` reads as u64::MAX).
pub(crate) fn read_u64(p: &Path) -> Option<u64> {
    let s = std::fs::read_to_string(p).ok()?;
    let s = s.trim();
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// Reads a flat-keyed cgroup file (`key value` per line).
pub(crate) fn read_kv(p: &Path) -> BTreeMap<String, u64> {
    let Ok(s) = std::fs::read_to_string(p) else {
        return BTreeMap::new();
    };
    s.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
30 23 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
33 30 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
35 30 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw";

    #[test]
    fn hybrid_layout_is_v1_with_unified() {
        let Layout::V1(m) = layout_from_mountinfo(HYBRID).unwrap() else {
            panic!("not v1")
        };
        assert_eq!(m["cpu"], PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(m["name=systemd"], PathBuf::from("/sys/fs/cgroup/systemd"));
        assert_eq!(m["unified"], PathBuf::from("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn pure_v2_layout() {
        let mi = "28 22 0:25 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate";
        assert_eq!(
            layout_from_mountinfo(mi).unwrap(),
            Layout::V2(PathBuf::from("/sys/fs/cgroup"))
        );
        layout_from_mountinfo("1 2 3:4 / / rw - ext4 /dev/vda rw").unwrap_err();
    }

    #[test]
    fn relative_paths_nest_under_own_cgroup() {
        let layout = Layout::V2(PathBuf::from("/sys/fs/cgroup"));
        let own = own_cgroups("0::/user.slice/session-1.scope\n");
        let c = CgroupConfig::resolve(&layout, Path::new("ctr"), &own);
        assert_eq!(
            c,
            CgroupConfig::V2 {
                path: "/sys/fs/cgroup/user.slice/session-1.scope/ctr".into()
            }
        );
        let c = CgroupConfig::resolve(&layout, Path::new("/docker/abc"), &own);
        assert_eq!(c.dirs(), vec![PathBuf::from("/sys/fs/cgroup/docker/abc")]);
    }

    #[test]
    fn systemd_paths_map_to_units() {
        let p = normalize(Some(Path::new("machine-x.slice:libpod:abc")), "abc", true).unwrap();
        assert_eq!(p, PathBuf::from("/machine.slice/machine-x.slice/libpod-abc.scope"));
        let p = normalize(Some(Path::new("system.slice:docker:abc")), "abc", true).unwrap();
        assert_eq!(p, PathBuf::from("/system.slice/docker-abc.scope"));
        normalize(Some(Path::new("bad")), "abc", true).unwrap_err();
        normalize(Some(Path::new("/a/../../etc")), "abc", false).unwrap_err();
        assert_eq!(normalize(None, "x", false).unwrap(), PathBuf::from("/berth/x"));
    }

    #[test]
    fn mountinfo_octal_escapes() {
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}

/// An open v1 `tasks` file of the container (see [`CgroupConfig::open_v1_tasks`]).
#[derive(Debug)]
pub struct SelfJoin {
    /// The file, for error messages.
    pub path: PathBuf,
    /// Open for writing.
    pub fd: std::os::fd::OwnedFd,
}

/// Moves the calling thread into each v1 hierarchy by writing `0` to its `tasks` file; the
/// caller must be single-threaded (a freshly forked child), so this moves the process.
///
/// Why not have the runtime write the child's pid to `cgroup.procs`: moving another
/// process, or a whole thread group, takes the kernel's cgroup threadgroup lock for
/// writing, and that costs an RCU grace period (~10 ms here) per container. A thread
/// moving itself through `tasks` skips that lock (kernel 5.17+, and harmless before).
pub fn join_self(joins: &[SelfJoin]) -> Result<(), crate::sys::SysError> {
    for j in joins {
        nix::unistd::write(&j.fd, b"0").map_err(crate::sys::errno(format!("joining cgroup {}", j.path.display())))?;
    }
    Ok(())
}
