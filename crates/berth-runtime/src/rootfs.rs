//! The container's filesystem view (config.md "Root", "Mounts"; config-linux.md "Devices",
//! "Masked/Readonly Paths", "Rootfs Mount Propagation"). Runs in the container's new mount
//! namespace, before and after pivot_root.
//!
//! Every mount target and device node is resolved inside the rootfs with [`safepath`] and
//! mounted through its `/proc/self/fd` path, so a symlink planted in the image cannot move a
//! mount or a node onto the host.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_oci::oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};

use crate::cgroups::CgroupConfig;
use crate::safepath::{self, Leaf};

/// A mount or rootfs failure, naming the object.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A syscall on a path failed.
    #[error("{op} {path}")]
    Sys {
        /// What was being done.
        op: &'static str,
        /// The path inside the container (or the host source).
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A mount option is not supported.
    #[error("mount {dest}: unsupported option {option:?}")]
    Option {
        /// The mount destination.
        dest: PathBuf,
        /// The option.
        option: String,
    },
}

impl MountError {
    /// The error's category.
    pub fn kind(&self) -> berth_oci::ErrorKind {
        match self {
            MountError::Option { .. } => berth_oci::ErrorKind::InvalidArgument,
            MountError::Sys { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                berth_oci::ErrorKind::NotFound
            }
            _ => berth_oci::ErrorKind::Internal,
        }
    }
}

fn sys<E: Into<std::io::Error>>(op: &'static str, path: &Path) -> impl FnOnce(E) -> MountError {
    let path = path.to_path_buf();
    move |e| MountError::Sys {
        op,
        path,
        source: e.into(),
    }
}

/// Parsed mount options.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// MS_* flags for the mount itself.
    pub flags: MsFlags,
    /// Propagation flags applied afterwards.
    pub propagation: Vec<MsFlags>,
    /// Filesystem-specific data (`mode=755,size=65536k`).
    pub data: String,
    /// A bind mount (`bind` or `rbind`, or type `bind`).
    pub bind: bool,
    /// `rro`: read-only with every mount below it.
    pub recursive_ro: bool,
}

/// Splits mount options into flags, propagation and data (mount(8) option names).
pub fn parse_options(opts: &[String], dest: &Path) -> Result<Options, MountError> {
    let mut o = Options {
        flags: MsFlags::empty(),
        propagation: Vec::new(),
        data: String::new(),
        bind: false,
        recursive_ro: false,
    };
    let mut data = Vec::new();
    for opt in opts {
        let (set, clear) = match opt.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rro" => {
                o.recursive_ro = true;
                (MsFlags::MS_RDONLY, MsFlags::empty())
            }
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            "nosymfollow" => (MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW), MsFlags::empty()),
            "bind" => {
                o.bind = true;
                (MsFlags::MS_BIND, MsFlags::empty())
            }
            "rbind" => {
                o.bind = true;
                (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty())
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable" | "runbindable" => {
                o.propagation.push(propagation(opt).unwrap_or(MsFlags::MS_PRIVATE));
                continue;
            }
            // Docker and podman annotations for their own use; nothing for the kernel.
            "tmpcopyup" | "notmpcopyup" | "copy-symlink" | "z" | "Z" | "U" => continue,
            "idmap" | "ridmap" => {
                return Err(MountError::Option {
                    dest: dest.to_path_buf(),
                    option: opt.clone(),
                })
            }
            _ => {
                data.push(opt.as_str());
                continue;
            }
        };
        o.flags |= set;
        o.flags &= !clear;
    }
    o.data = data.join(",");
    Ok(o)
}

/// A propagation option as MS_* flags.
pub fn propagation(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// The flags of an existing mount that a remount must keep: in a user namespace the kernel
/// refuses to clear them ("locked" flags), and elsewhere keeping them is what the user meant.
fn locked_flags(path: &Path) -> MsFlags {
    let Ok(st) = nix::sys::statvfs::statvfs(path) else {
        return MsFlags::empty();
    };
    use nix::sys::statvfs::FsFlags;
    let f = st.flags();
    let mut m = MsFlags::empty();
    for (a, b) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(a) {
            m |= b;
        }
    }
    m
}

/// What rootfs setup needs beyond the spec.
#[derive(Debug)]
pub struct RootfsCtx<'a> {
    /// The path of the rootfs to work with: its host path, or "." when stage 1 entered it.
    pub rootfs: &'a Path,
    /// Its host path (for reading mountinfo).
    pub host_rootfs: &'a Path,
    /// Bind sources cloned before the user namespace, by mount index (attached, not
    /// bound by path).
    pub sources: &'a [(usize, OwnedFd)],
    /// The container's cgroups, for `cgroup` mounts.
    pub cgroup: &'a CgroupConfig,
    /// Whether the container has its own cgroup namespace.
    pub cgroupns: bool,
    /// Whether the container is in a new user namespace (devices are bind-mounted then).
    pub userns: bool,
}

/// Everything before pivot_root: propagation, the rootfs bind, the spec's mounts, devices.
pub fn prepare(spec: &Spec, ctx: &RootfsCtx<'_>) -> Result<(), MountError> {
    let linux = spec.linux().as_ref();
    let prop = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(propagation)
        .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    // Nothing we mount may leak back to the host: make the whole tree a slave (or what the
    // spec asks) before touching it.
    let root_prop = if prop.contains(MsFlags::MS_SHARED) {
        MsFlags::MS_SHARED | MsFlags::MS_REC
    } else {
        MsFlags::MS_SLAVE | MsFlags::MS_REC
    };
    mount(None::<&str>, "/", None::<&str>, root_prop, None::<&str>)
        .map_err(sys("making / a slave mount", Path::new("/")))?;
    // With a shared tree (rootfsPropagation "shared"/"rshared"), the mount holding the rootfs
    // must turn private: pivot_root refuses a shared parent, and the rootfs bind below would
    // otherwise propagate back into the host. The spec's propagation is set on the new root
    // once pivoted (`finish`).
    if root_prop.contains(MsFlags::MS_SHARED) {
        let info = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(sys("reading", Path::new("/proc/self/mountinfo")))?;
        if let Some(parent) = shared_parent_mount(&info, ctx.host_rootfs) {
            mount(None::<&str>, &parent, None::<&str>, MsFlags::MS_PRIVATE, None::<&str>)
                .map_err(sys("making the rootfs's parent mount private", &parent))?;
        }
    }
    // pivot_root needs the new root to be a mount point, and one made in this namespace
    // (those copied from the host's into a user namespace's are locked). Entered as ".",
    // the rootfs gets a fresh copy of its mount put on it, which becomes the working
    // directory.
    if ctx.rootfs == Path::new(".") {
        let copy = safepath::mount::clone_tree(Path::new("."), true)
            .map_err(sys("copying the rootfs mount", ctx.host_rootfs))?;
        let here = nix::fcntl::open(".", OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(sys("opening rootfs", ctx.host_rootfs))?;
        safepath::mount::attach_on(&copy, &here).map_err(sys("attaching the rootfs copy on", ctx.host_rootfs))?;
        nix::unistd::fchdir(&copy).map_err(sys("entering rootfs", ctx.host_rootfs))?;
    } else {
        mount(
            Some(ctx.rootfs),
            ctx.rootfs,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys("bind-mounting rootfs", ctx.rootfs))?;
    }
    let root = safepath::open_root(ctx.rootfs).map_err(sys("opening rootfs", ctx.rootfs))?;
    let mut dev_is_bind = false;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if m.destination() == Path::new("/dev") && is_bind(m) {
            dev_is_bind = true;
        }
        let cloned = ctx.sources.iter().find(|(n, _)| *n == i).map(|(_, fd)| fd);
        mount_one(root.as_fd(), m, ctx, cloned)?;
    }
    if !dev_is_bind {
        create_devices(
            root.as_fd(),
            linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]),
            ctx.userns,
        )?;
        dev_symlinks(root.as_fd())?;
    } else {
        for d in linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]) {
            create_device(root.as_fd(), d, ctx.userns)?;
        }
    }
    if let Some(p) = spec.process() {
        // runc creates a missing cwd; so do we, inside the root.
        safepath::create_all(root.as_fd(), p.cwd(), Leaf::Dir).map_err(sys("creating cwd", p.cwd()))?;
    }
    Ok(())
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind") || m.options().iter().flatten().any(|o| o == "bind" || o == "rbind")
}

/// Mounts one entry of `mounts`.
fn mount_one(
    root: std::os::fd::BorrowedFd<'_>,
    m: &Mount,
    ctx: &RootfsCtx<'_>,
    cloned: Option<&OwnedFd>,
) -> Result<(), MountError> {
    let dest = m.destination();
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]), dest)?;
    let typ = m.typ().as_deref().unwrap_or("");
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(root, dest, &opts, ctx);
    }
    let bind = opts.bind || typ == "bind";
    let source = m.source().clone().unwrap_or_default();
    let is_dir = match cloned {
        Some(fd) => nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR),
        None => source.is_dir(),
    };
    let leaf = if bind && !is_dir { Leaf::File } else { Leaf::Dir };
    let target = safepath::create_all(root, dest, leaf).map_err(sys("creating mount point", dest))?;
    let tpath = safepath::proc_fd_path(target.as_fd());
    if bind {
        let rec = opts.flags & MsFlags::MS_REC;
        match cloned {
            Some(fd) => safepath::mount::attach_on(fd, &target).map_err(sys("attaching the bind of", dest))?,
            None => mount(
                Some(&source),
                &tpath,
                None::<&str>,
                MsFlags::MS_BIND | rec,
                None::<&str>,
            )
            .map_err(sys("bind-mounting", dest))?,
        }
        let extra = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() {
            let top = reresolve(root, dest)?;
            let tp = safepath::proc_fd_path(top.as_fd());
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra | locked_flags(&tp);
            mount(None::<&str>, &tp, None::<&str>, flags, None::<&str>).map_err(sys("remounting", dest))?;
        }
    } else {
        let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
        let src = m.source().as_deref().map(Path::as_os_str).unwrap_or(OsStr::new(typ));
        let r = mount(Some(src), &tpath, Some(typ), opts.flags & !MsFlags::MS_REMOUNT, data);
        if let Err(e) = r {
            // sysfs and mqueue cannot be mounted fresh in a user namespace that does not own
            // the network/ipc namespace; runc binds the host's instead, read-only.
            if ctx.userns && e == nix::errno::Errno::EPERM && (typ == "sysfs" || typ == "mqueue") {
                let host = if typ == "sysfs" { "/sys" } else { "/dev/mqueue" };
                mount(
                    Some(host),
                    &tpath,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(sys("bind-mounting", dest))?;
            } else {
                return Err(sys("mounting", dest)(e));
            }
        }
    }
    if !opts.propagation.is_empty() {
        let top = reresolve(root, dest)?;
        let tp = safepath::proc_fd_path(top.as_fd());
        for p in &opts.propagation {
            mount(None::<&str>, &tp, None::<&str>, *p, None::<&str>).map_err(sys("setting propagation of", dest))?;
        }
    }
    if opts.recursive_ro {
        let top = reresolve(root, dest)?;
        crate::sys::make_readonly_recursive(top.as_fd()).map_err(|e| {
            sys("making read-only recursively", dest)(nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)))
        })?;
    }
    Ok(())
}

/// After mounting on a path, a new descriptor is needed to reach the new mount's root.
fn reresolve(root: std::os::fd::BorrowedFd<'_>, dest: &Path) -> Result<OwnedFd, MountError> {
    safepath::resolve(root, dest, false).map_err(sys("resolving", dest))
}

/// `cgroup` mounts: on v2 a cgroup2 mount (with a cgroup namespace) or a bind of the
/// container's own cgroup; on v1 a tmpfs holding a bind of the container's directory in each
/// hierarchy, as runc lays it out.
fn mount_cgroup(
    root: std::os::fd::BorrowedFd<'_>,
    dest: &Path,
    opts: &Options,
    ctx: &RootfsCtx<'_>,
) -> Result<(), MountError> {
    let target = safepath::create_all(root, dest, Leaf::Dir).map_err(sys("creating mount point", dest))?;
    let tpath = safepath::proc_fd_path(target.as_fd());
    let flags = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    match ctx.cgroup {
        CgroupConfig::V2 { path } => {
            if ctx.cgroupns {
                mount(Some("cgroup2"), &tpath, Some("cgroup2"), flags, None::<&str>)
                    .map_err(sys("mounting cgroup2 on", dest))?;
            } else {
                mount(Some(path), &tpath, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                    .map_err(sys("bind-mounting cgroup on", dest))?;
                let top = reresolve(root, dest)?;
                let tp = safepath::proc_fd_path(top.as_fd());
                mount(
                    None::<&str>,
                    &tp,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | locked_flags(&tp),
                    None::<&str>,
                )
                .map_err(sys("remounting", dest))?;
            }
        }
        CgroupConfig::V1 { paths } => {
            let tmpfs_flags = flags & !MsFlags::MS_RDONLY;
            mount(Some("tmpfs"), &tpath, Some("tmpfs"), tmpfs_flags, Some("mode=755"))
                .map_err(sys("mounting tmpfs on", dest))?;
            let mut seen: Vec<&PathBuf> = Vec::new();
            for dir in paths.values() {
                if seen.contains(&dir) {
                    continue;
                }
                seen.push(dir);
                // The hierarchy's name is its mount point's last component below the cgroup
                // root: /sys/fs/cgroup/cpu,cpuacct/<path> -> cpu,cpuacct.
                let Some(name) = hierarchy_name(dir, paths) else {
                    continue;
                };
                let sub = dest.join(&name);
                let t = safepath::create_all(root, &sub, Leaf::Dir).map_err(sys("creating", &sub))?;
                let tp = safepath::proc_fd_path(t.as_fd());
                mount(Some(dir), &tp, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                    .map_err(sys("bind-mounting cgroup on", &sub))?;
                let top = reresolve(root, &sub)?;
                let tp = safepath::proc_fd_path(top.as_fd());
                mount(
                    None::<&str>,
                    &tp,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | locked_flags(&tp),
                    None::<&str>,
                )
                .map_err(sys("remounting", &sub))?;
                if name.contains(',') {
                    let d = safepath::open(root, dest, OFlag::O_DIRECTORY | OFlag::O_RDONLY)
                        .map_err(sys("opening", dest))?;
                    for part in name.split(',') {
                        let _ = nix::unistd::symlinkat(name.as_str(), &d, part);
                    }
                }
            }
            if flags.contains(MsFlags::MS_RDONLY) {
                let top = reresolve(root, dest)?;
                let tp = safepath::proc_fd_path(top.as_fd());
                mount(
                    None::<&str>,
                    &tp,
                    None::<&str>,
                    MsFlags::MS_REMOUNT | flags | locked_flags(&tp),
                    Some("mode=755"),
                )
                .map_err(sys("remounting", dest))?;
            }
        }
    }
    Ok(())
}

fn hierarchy_name(dir: &Path, paths: &std::collections::BTreeMap<String, PathBuf>) -> Option<String> {
    let ctrls: Vec<&str> = paths
        .iter()
        .filter(|(_, d)| *d == dir)
        .map(|(c, _)| c.as_str())
        .collect();
    if ctrls.contains(&"unified") {
        return Some("unified".into());
    }
    if let Some(n) = ctrls.iter().find_map(|c| c.strip_prefix("name=")) {
        return Some(n.to_string());
    }
    let mut c: Vec<&str> = ctrls;
    c.sort();
    Some(c.join(","))
}

const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

fn create_devices(root: std::os::fd::BorrowedFd<'_>, extra: &[LinuxDevice], userns: bool) -> Result<(), MountError> {
    for (path, major, minor) in DEFAULT_DEVICES {
        if extra.iter().any(|d| d.path() == Path::new(path)) {
            continue;
        }
        let mut d = LinuxDevice::default();
        d.set_path(path.into());
        d.set_typ(LinuxDeviceType::C);
        d.set_major(i64::try_from(major).unwrap_or(0));
        d.set_minor(i64::try_from(minor).unwrap_or(0));
        d.set_file_mode(Some(0o666));
        d.set_uid(Some(0));
        d.set_gid(Some(0));
        create_device(root, &d, userns)?;
    }
    for d in extra {
        create_device(root, d, userns)?;
    }
    Ok(())
}

/// Creates one device node inside the root: mknod, or in a user namespace (where mknod is
/// not allowed) a bind mount of the host's node.
pub fn create_device(root: std::os::fd::BorrowedFd<'_>, d: &LinuxDevice, userns: bool) -> Result<(), MountError> {
    let path = d.path();
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(sys("creating device", path)(std::io::Error::from_raw_os_error(
            libc::EINVAL,
        )));
    };
    let pfd = safepath::create_all(root, parent, Leaf::Dir).map_err(sys("creating directory for", path))?;
    let dir = safepath::reopen(pfd.as_fd(), OFlag::O_DIRECTORY | OFlag::O_RDONLY)
        .map_err(sys("opening directory for", path))?;
    if userns {
        match nix::fcntl::openat(
            &dir,
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(_) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(sys("creating device placeholder", path)(e)),
        }
        let t = safepath::resolve(root, path, true).map_err(sys("resolving", path))?;
        mount(
            Some(path),
            &safepath::proc_fd_path(t.as_fd()),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys("bind-mounting device", path))?;
        return Ok(());
    }
    let kind = match d.typ() {
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    let mode = d.file_mode().unwrap_or(0o666) & 0o7777;
    let major = u64::try_from(d.major()).unwrap_or(0);
    let minor = u64::try_from(d.minor()).unwrap_or(0);
    let dev = nix::sys::stat::makedev(major, minor);
    match nix::sys::stat::mknodat(&dir, name, kind, Mode::from_bits_truncate(mode), dev) {
        Ok(()) => {}
        Err(nix::errno::Errno::EEXIST) => {
            // An image's own /dev entry: replace it so the node is what the spec says.
            let _ = nix::unistd::unlinkat(&dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
            nix::sys::stat::mknodat(&dir, name, kind, Mode::from_bits_truncate(mode), dev)
                .map_err(sys("creating device", path))?;
        }
        Err(e) => return Err(sys("creating device", path)(e)),
    }
    nix::sys::stat::fchmodat(
        &dir,
        name,
        Mode::from_bits_truncate(mode),
        nix::sys::stat::FchmodatFlags::NoFollowSymlink,
    )
    .or_else(|e| {
        if e == nix::errno::Errno::EOPNOTSUPP {
            Ok(())
        } else {
            Err(e)
        }
    })
    .map_err(sys("chmod device", path))?;
    nix::unistd::fchownat(
        &dir,
        name,
        d.uid().map(nix::unistd::Uid::from_raw),
        d.gid().map(nix::unistd::Gid::from_raw),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(sys("chown device", path))?;
    Ok(())
}

fn dev_symlinks(root: std::os::fd::BorrowedFd<'_>) -> Result<(), MountError> {
    let dev = Path::new("/dev");
    let d = safepath::create_all(root, dev, Leaf::Dir).map_err(sys("creating", dev))?;
    let d = safepath::reopen(d.as_fd(), OFlag::O_DIRECTORY | OFlag::O_RDONLY).map_err(sys("opening", dev))?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        if name == "ptmx" {
            // Replace any ptmx node with the link to this devpts instance's ptmx.
            let _ = nix::unistd::unlinkat(&d, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
        match nix::unistd::symlinkat(target, &d, name) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(sys("creating /dev symlink", &dev.join(name))(e)),
        }
    }
    Ok(())
}

/// Whether the working directory is the root of a mount (its device differs from its
/// parent's: the engine's overlay rootfs).
pub fn cwd_is_mount_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata("."), std::fs::metadata("..")) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        _ => false,
    }
}

/// Makes `rootfs` the root: pivot_root, or with `no_pivot` a move mount and chroot (for
/// roots on ramfs, where pivot_root is impossible).
pub fn pivot(rootfs: &Path, no_pivot: bool) -> Result<(), MountError> {
    if no_pivot {
        nix::unistd::chdir(rootfs).map_err(sys("entering rootfs", rootfs))?;
        mount(Some(rootfs), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .map_err(sys("moving rootfs to /", rootfs))?;
        nix::unistd::chroot(".").map_err(sys("chroot into", rootfs))?;
        nix::unistd::chdir("/").map_err(sys("entering /", rootfs))?;
        return Ok(());
    }
    let old = nix::fcntl::open(
        "/",
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys("opening old root", Path::new("/")))?;
    let new = nix::fcntl::open(
        rootfs,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys("opening rootfs", rootfs))?;
    nix::unistd::fchdir(&new).map_err(sys("entering rootfs", rootfs))?;
    // pivot_root(".", "."): the old root ends up stacked under the new one at "/", from
    // where it is detached without needing a directory for it in the image.
    nix::unistd::pivot_root(".", ".").map_err(sys("pivot_root to", rootfs))?;
    nix::unistd::fchdir(&old).map_err(sys("entering old root", rootfs))?;
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys("making old root a slave", rootfs))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(sys("detaching old root", rootfs))?;
    nix::unistd::chdir("/").map_err(sys("entering /", rootfs))?;
    let _ = old.as_raw_fd();
    Ok(())
}

/// The mount point holding `path` (the longest mount point that is an ancestor) when that
/// mount is shared, from /proc/self/mountinfo text.
fn shared_parent_mount(mountinfo: &str, path: &Path) -> Option<std::path::PathBuf> {
    let mut best: Option<(std::path::PathBuf, bool)> = None;
    for line in mountinfo.lines() {
        let (head, _) = line.split_once(" - ")?;
        let fields: Vec<&str> = head.split(' ').collect();
        let Some(point) = fields.get(4).map(|p| Path::new(*p)) else {
            continue;
        };
        if !path.starts_with(point) {
            continue;
        }
        let shared = fields.iter().skip(6).any(|f| f.starts_with("shared:"));
        // Later lines win at equal length: they are mounted on top.
        if best
            .as_ref()
            .is_none_or(|(b, _)| point.as_os_str().len() >= b.as_os_str().len())
        {
            best = Some((point.to_path_buf(), shared));
        }
    }
    best.and_then(|(p, shared)| shared.then_some(p))
}

/// Everything after pivot_root: propagation of the new root, sysctls, masked and read-only
/// paths, `root.readonly`.
pub fn finish(spec: &Spec) -> Result<(), MountError> {
    let root = safepath::open_root(Path::new("/")).map_err(sys("opening", Path::new("/")))?;
    let linux = spec.linux().as_ref();
    if let Some(p) = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(propagation)
    {
        mount(None::<&str>, "/", None::<&str>, p, None::<&str>)
            .map_err(sys("setting propagation of", Path::new("/")))?;
    }
    // Before /proc/sys turns read-only.
    sysctl(spec)?;
    for p in linux.and_then(|l| l.readonly_paths().as_deref()).unwrap_or(&[]) {
        let path = Path::new(p);
        let fd = match safepath::resolve(root.as_fd(), path, false) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(sys("resolving read-only path", path)(e)),
        };
        let tp = safepath::proc_fd_path(fd.as_fd());
        mount(
            Some(&tp),
            &tp,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys("bind-mounting read-only path", path))?;
        let top = reresolve(root.as_fd(), path)?;
        let tp = safepath::proc_fd_path(top.as_fd());
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC | locked_flags(&tp);
        mount(None::<&str>, &tp, None::<&str>, flags, None::<&str>).map_err(sys("remounting read-only", path))?;
    }
    for p in linux.and_then(|l| l.masked_paths().as_deref()).unwrap_or(&[]) {
        let path = Path::new(p);
        let fd = match safepath::resolve(root.as_fd(), path, false) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(sys("resolving masked path", path)(e)),
        };
        let tp = safepath::proc_fd_path(fd.as_fd());
        let st = nix::sys::stat::fstat(&fd).map_err(sys("stat", path))?;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            mount(Some("tmpfs"), &tp, Some("tmpfs"), MsFlags::MS_RDONLY, None::<&str>).map_err(sys("masking", path))?;
        } else {
            mount(Some("/dev/null"), &tp, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(sys("masking", path))?;
        }
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked_flags(Path::new("/"));
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .map_err(sys("remounting / read-only", Path::new("/")))?;
    }
    Ok(())
}

/// Writes `linux.sysctl` under the container's /proc/sys.
pub fn sysctl(spec: &Spec) -> Result<(), MountError> {
    let Some(map) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    for (k, v) in map {
        let p = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        std::fs::write(&p, v).map_err(sys("writing sysctl", &p))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Options {
        parse_options(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>(), Path::new("/x")).unwrap()
    }

    #[test]
    fn docker_dev_and_devpts_options() {
        let o = opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        let o = opts(&["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]);
        assert_eq!(o.data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
        assert!(!o.bind);
    }

    #[test]
    fn finds_the_shared_parent_mount() {
        let info = "22 1 8:1 / / rw shared:1 - ext4 /dev/sda rw\n\
                    40 22 0:30 / /tmp rw shared:5 - tmpfs tmpfs rw\n\
                    41 40 0:31 / /tmp/b rw - tmpfs tmpfs rw\n";
        assert_eq!(
            shared_parent_mount(info, Path::new("/tmp/x/rootfs")),
            Some("/tmp".into())
        );
        assert_eq!(shared_parent_mount(info, Path::new("/tmp/b/rootfs")), None);
        assert_eq!(shared_parent_mount(info, Path::new("/var/rootfs")), Some("/".into()));
        assert_eq!(shared_parent_mount(info, Path::new("/tmpx")), Some("/".into()));
    }

    #[test]
    fn bind_ro_and_propagation() {
        let o = opts(&["rbind", "ro", "rprivate"]);
        assert!(o.bind);
        assert!(o
            .flags
            .contains(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY));
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        let o = opts(&["ro", "rw"]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn idmap_is_refused() {
        let e = parse_options(&["idmap".to_string()], Path::new("/data")).unwrap_err();
        assert!(e.to_string().contains("idmap"));
    }
}
