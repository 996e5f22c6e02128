//! berth-safepath: path resolution confined to a root directory.
//!
//! Everything the runtime opens, creates or mounts on inside a container's rootfs is found
//! from an `O_PATH` descriptor of that rootfs with `openat2(RESOLVE_IN_ROOT)`: `..` and
//! symlinks, absolute or relative, are resolved as if the rootfs were `/`, so an image can
//! never point a mount or a write outside itself (the runc CVE class of symlinked mount
//! targets). Where the kernel lacks openat2 (before 5.6) a userspace walk with `O_NOFOLLOW`
//! gives the same confinement. The result is an `O_PATH` descriptor; callers act on it
//! through `/proc/self/fd/N`, never on a re-joined path string. The image store unpacks
//! hostile layer tars with the same functions.
#![deny(unsafe_code)]

pub mod mount;
pub mod userns;

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// Set once openat2 proved missing (or by `BERTH_NO_OPENAT2=1`, which tests use to prove the
/// fallback).
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// The most symlinks one resolution follows, as the kernel's MAXSYMLINKS.
const MAX_SYMLINKS: usize = 40;

/// Forces the userspace fallback for every later resolution in this process.
pub fn force_fallback(on: bool) {
    NO_OPENAT2.store(on, Ordering::Relaxed);
}

fn fallback_forced() -> bool {
    NO_OPENAT2.load(Ordering::Relaxed) || std::env::var_os("BERTH_NO_OPENAT2").is_some()
}

/// Opens `root` itself as an `O_PATH` directory descriptor.
pub fn open_root(root: &Path) -> io::Result<OwnedFd> {
    nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
}

/// Resolves `path` inside `root` and returns an `O_PATH` descriptor of what it names. A final
/// symlink is followed (inside the root) unless `nofollow`.
pub fn resolve(root: BorrowedFd<'_>, path: &Path, nofollow: bool) -> io::Result<OwnedFd> {
    let rel = relative(path);
    if !fallback_forced() {
        let mut flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
        if nofollow {
            flags |= OFlag::O_NOFOLLOW;
        }
        let how = OpenHow::new()
            .flags(flags)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        match nix::fcntl::openat2(root, rel.as_path(), how) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOSYS) => NO_OPENAT2.store(true, Ordering::Relaxed),
            // EAGAIN: a concurrent rename raced the lookup; the walk below is race-free too.
            Err(Errno::EAGAIN) => {}
            Err(e) => return Err(e.into()),
        }
    }
    walk(root, &rel, nofollow)
}

/// Opens `path` inside `root` with real open flags (`O_RDONLY`, `O_WRONLY`...), by resolving
/// it confined and reopening the resolved descriptor.
pub fn open(root: BorrowedFd<'_>, path: &Path, flags: OFlag) -> io::Result<OwnedFd> {
    let fd = resolve(root, path, flags.contains(OFlag::O_NOFOLLOW))?;
    reopen(fd.as_fd(), flags)
}

/// Reopens an `O_PATH` descriptor with `flags` through its `/proc/self/fd` entry.
pub fn reopen(fd: BorrowedFd<'_>, flags: OFlag) -> io::Result<OwnedFd> {
    let flags = (flags | OFlag::O_CLOEXEC) & !(OFlag::O_NOFOLLOW | OFlag::O_CREAT);
    nix::fcntl::open(proc_fd_path(fd).as_path(), flags, Mode::empty()).map_err(io::Error::from)
}

/// The `/proc/self/fd/N` path of a descriptor, to hand to calls that take paths (mount).
pub fn proc_fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// What to create at the end of [`create_all`] when the path is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    /// A directory.
    Dir,
    /// An empty regular file (a bind-mount target for a file).
    File,
}

/// Resolves `path` inside `root`, creating missing directories on the way (mode 0755) and the
/// last component as `leaf`. Returns an `O_PATH` descriptor of the result.
pub fn create_all(root: BorrowedFd<'_>, path: &Path, leaf: Leaf) -> io::Result<OwnedFd> {
    match resolve(root, path, false) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let rel = relative(path);
    let comps: Vec<&std::ffi::OsStr> = rel.iter().collect();
    let mut parent = root.try_clone_to_owned()?;
    let mut sofar = PathBuf::new();
    for (i, name) in comps.iter().enumerate() {
        sofar.push(name);
        let last = i + 1 == comps.len();
        match resolve(root, &sofar, false) {
            Ok(fd) => {
                parent = fd;
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        // The name is missing. Create it with *at calls on the confined parent: a single
        // component never follows a symlink, so nothing is created outside the root.
        let pfd = reopen(parent.as_fd(), OFlag::O_DIRECTORY | OFlag::O_RDONLY)?;
        let res = if last && leaf == Leaf::File {
            nix::fcntl::openat(
                &pfd,
                *name,
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
            .map(drop)
        } else {
            nix::sys::stat::mkdirat(&pfd, *name, Mode::from_bits_truncate(0o755))
        };
        match res {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        parent = resolve(root, &sofar, false)?;
    }
    Ok(parent)
}

/// Strips the leading `/` so the path is relative to the root descriptor.
/// Cleans a slash-separated path lexically, like Go's `path.Clean` made relative: no empty
/// or `.` components, `..` clamped at the top, no leading `/` (`""` for the top itself).
pub fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect();
    // The root itself ("/" or ""): openat2 wants "." for it.
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// The userspace confined walk: one component at a time with `O_NOFOLLOW`, symlinks read and
/// spliced into the remaining path, `..` clamped at the root.
fn walk(root: BorrowedFd<'_>, path: &Path, nofollow: bool) -> io::Result<OwnedFd> {
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut pending: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            stack.pop();
            continue;
        }
        let cur = match stack.last() {
            Some(fd) => fd.as_fd(),
            None => root,
        };
        let fd = nix::fcntl::openat(
            cur,
            name.as_os_str(),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let st = nix::sys::stat::fstat(&fd)?;
        let is_link = st.st_mode & libc::S_IFMT == libc::S_IFLNK;
        if is_link && !(nofollow && pending.is_empty()) {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = nix::fcntl::readlinkat(cur, name.as_os_str())?;
            let target = PathBuf::from(target);
            if target.is_absolute() {
                stack.clear();
            }
            for c in target.components().rev() {
                match c {
                    Component::Normal(n) => pending.push(n.to_os_string()),
                    Component::ParentDir => pending.push("..".into()),
                    _ => {}
                }
            }
            continue;
        }
        stack.push(fd);
    }
    match stack.pop() {
        Some(fd) => Ok(fd),
        None => Ok(root.try_clone_to_owned()?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (PathBuf, PathBuf) {
        let base = std::env::temp_dir().join(format!(
            "bt{}-safepath-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(base.join("outside")).unwrap();
        std::fs::write(base.join("outside/secret"), "host").unwrap();
        std::fs::write(root.join("etc/secret"), "container").unwrap();
        symlink("/", root.join("toroot")).unwrap();
        symlink("../../../../../outside", root.join("dotdot")).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        (base, root)
    }

    fn check_confined(fallback: bool) {
        let (base, root) = tree();
        let rfd = open_root(&root).unwrap();
        let read = |p: &str| -> Option<String> {
            let fd = if fallback {
                let fd = walk(rfd.as_fd(), &relative(Path::new(p)), false).ok()?;
                reopen(fd.as_fd(), OFlag::O_RDONLY).ok()?
            } else {
                open(rfd.as_fd(), Path::new(p), OFlag::O_RDONLY).ok()?
            };
            Some(std::io::read_to_string(std::fs::File::from(fd)).unwrap())
        };
        assert_eq!(read("/abs/secret").as_deref(), Some("container"));
        assert_eq!(read("toroot/etc/secret").as_deref(), Some("container"));
        assert_eq!(read("../../../etc/secret").as_deref(), Some("container"));
        assert_eq!(read("dotdot/secret"), None);
        // "/" and "" name the root itself.
        let same = |p: &str| {
            let fd = if fallback {
                walk(rfd.as_fd(), &relative(Path::new(p)), false).unwrap()
            } else {
                resolve(rfd.as_fd(), Path::new(p), false).unwrap()
            };
            std::fs::read_link(proc_fd_path(fd.as_fd())).unwrap() == root.canonicalize().unwrap()
        };
        assert!(same("/") && same(""));
        let made = create_all(rfd.as_fd(), Path::new("/toroot/new/dir"), Leaf::Dir);
        made.unwrap();
        assert!(root.join("new/dir").is_dir());
        assert!(!Path::new("/new/dir").exists());
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn openat2_keeps_symlinks_inside_root() {
        check_confined(false);
    }

    #[test]
    fn userspace_walk_keeps_symlinks_inside_root() {
        check_confined(true);
    }
}
