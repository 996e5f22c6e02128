//! `cp` between a container and the host. Every path on the container side is resolved
//! inside its root (berth-safepath, `openat2(RESOLVE_IN_ROOT)` without magic links) and used
//! through descriptors: a symlink in the container can never make berth read or write a host
//! file. Copying in never follows a final symlink (`O_NOFOLLOW`): a container that plants
//! one where the copy lands gets an error, not a write through it. Symlinks inside copied
//! trees are copied as symlinks.

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_safepath as safepath;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;

use crate::store::Engine;
use crate::{ops, EngineError, Result};

fn err(what: &str, path: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid(format!("{what} {path}: {e}"))
}

/// Runs `f` with the container's rootfs mounted (it is while the container runs).
fn with_rootfs<T>(engine: &Engine, id: &str, f: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    let r = engine.resolve(id)?;
    let running = engine.state(&r.id).running();
    if !running {
        ops::mount_rootfs(engine, &r)?;
    }
    let res = f(&engine.dir(&r.id).join("rootfs"));
    if !running {
        ops::unmount_rootfs(engine, &r.id);
    }
    res
}

/// What `stat` says of a path in the container (the final symlink not followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStat {
    /// Permission bits with the file type (`st_mode`).
    pub mode: u32,
    /// Size in bytes.
    pub size: i64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// A symlink's target.
    pub link: String,
}

/// Stats `path` inside the container, confined to its root.
pub fn stat(engine: &Engine, id: &str, path: &str) -> Result<PathStat> {
    with_rootfs(engine, id, |rootfs| {
        let root = safepath::open_root(rootfs).map_err(|e| err("opening", &rootfs.display().to_string(), e))?;
        let fd = safepath::resolve(root.as_fd(), Path::new(path), true)
            .map_err(|e| err("Could not find the file", path, format!("in container {id}: {e}")))?;
        let st = nix::sys::stat::fstat(&fd).map_err(|e| err("stat", path, e))?;
        let link = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            nix::fcntl::readlinkat(&fd, "")
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(PathStat {
            mode: st.st_mode,
            size: st.st_size,
            mtime: st.st_mtime,
            link,
        })
    })
}

/// Copies `src` (a path in the container) to `dest` on the host, Docker's way: into `dest`
/// when it is an existing directory, else as `dest`.
pub fn copy_out(engine: &Engine, id: &str, src: &str, dest: &Path) -> Result<()> {
    with_rootfs(engine, id, |rootfs| {
        let root = safepath::open_root(rootfs).map_err(|e| err("opening", &rootfs.display().to_string(), e))?;
        let fd = safepath::resolve(root.as_fd(), Path::new(src), true)
            .map_err(|e| err("Could not find the file", src, format!("in container {id}: {e}")))?;
        let name = Path::new(src)
            .file_name()
            .map(OsStr::to_os_string)
            .unwrap_or_else(|| "root".into());
        let target = if dest.is_dir() {
            dest.join(name)
        } else {
            dest.to_path_buf()
        };
        out_entry(fd.as_fd(), &target)
    })
}

fn out_entry(fd: BorrowedFd<'_>, target: &Path) -> Result<()> {
    let st = nix::sys::stat::fstat(fd).map_err(|e| err("stat", &target.display().to_string(), e))?;
    let t = target.display().to_string();
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => {
            if !target.is_dir() {
                std::fs::create_dir(target).map_err(|e| err("creating", &t, e))?;
            }
            std::fs::set_permissions(target, std::fs::Permissions::from_mode(st.st_mode & 0o7777))
                .map_err(|e| err("chmod", &t, e))?;
            let dir = safepath::reopen(fd, OFlag::O_RDONLY | OFlag::O_DIRECTORY).map_err(|e| err("opening", &t, e))?;
            let names: Vec<std::ffi::OsString> = std::fs::read_dir(safepath::proc_fd_path(dir.as_fd()))
                .map_err(|e| err("listing", &t, e))?
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect();
            for n in names {
                let child = nix::fcntl::openat(
                    &dir,
                    n.as_os_str(),
                    OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| err("opening", &t, e))?;
                out_entry(child.as_fd(), &target.join(&n))?;
            }
            Ok(())
        }
        libc::S_IFREG => {
            let f = safepath::reopen(fd, OFlag::O_RDONLY).map_err(|e| err("opening", &t, e))?;
            let mut src = std::fs::File::from(f);
            let mut dst = std::fs::File::create(target).map_err(|e| err("creating", &t, e))?;
            std::io::copy(&mut src, &mut dst).map_err(|e| err("copying to", &t, e))?;
            dst.set_permissions(std::fs::Permissions::from_mode(st.st_mode & 0o7777))
                .map_err(|e| err("chmod", &t, e))?;
            Ok(())
        }
        libc::S_IFLNK => {
            let link = nix::fcntl::readlinkat(fd, "").map_err(|e| err("reading link", &t, e))?;
            let _ = std::fs::remove_file(target);
            std::os::unix::fs::symlink(link, target).map_err(|e| err("creating", &t, e))
        }
        // Devices, fifos and sockets are not copied out.
        _ => Ok(()),
    }
}

/// Copies `src` from the host to `dest` in the container: into `dest` when it is an existing
/// directory there, else as `dest` (whose parent must exist).
pub fn copy_in(engine: &Engine, id: &str, src: &Path, dest: &str) -> Result<()> {
    let s = src.display().to_string();
    let md = std::fs::symlink_metadata(src).map_err(|e| err("Could not find the file", &s, e))?;
    with_rootfs(engine, id, |rootfs| {
        let root = safepath::open_root(rootfs).map_err(|e| err("opening", &rootfs.display().to_string(), e))?;
        let dest_path = Path::new(dest);
        let existing = safepath::resolve(root.as_fd(), dest_path, false).ok();
        let is_dir = existing
            .as_ref()
            .and_then(|fd| nix::sys::stat::fstat(fd).ok())
            .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
        let (parent, name): (OwnedFd, std::ffi::OsString) = if is_dir {
            let Some(fd) = existing else {
                return Err(err("resolving", dest, "vanished"));
            };
            let name = src
                .file_name()
                .map(OsStr::to_os_string)
                .unwrap_or_else(|| "root".into());
            (fd, name)
        } else {
            let parent = dest_path.parent().unwrap_or(Path::new("/"));
            let fd = safepath::resolve(root.as_fd(), parent, false)
                .map_err(|e| err("Could not find the directory", &parent.display().to_string(), e))?;
            let name = dest_path
                .file_name()
                .map(OsStr::to_os_string)
                .ok_or_else(|| err("invalid destination", dest, "no file name"))?;
            (fd, name)
        };
        let dir = safepath::reopen(parent.as_fd(), OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .map_err(|e| err("opening", dest, e))?;
        in_entry(src, &md, dir.as_fd(), &name, dest)
    })
}

fn in_entry(src: &Path, md: &std::fs::Metadata, dir: BorrowedFd<'_>, name: &OsStr, shown: &str) -> Result<()> {
    let s = src.display().to_string();
    let ft = md.file_type();
    if ft.is_dir() {
        match nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(md.mode() & 0o7777)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(err("creating", shown, e)),
        }
        // O_NOFOLLOW: an existing symlink in the container at this name is refused.
        let sub = nix::fcntl::openat(
            dir,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err("refusing to write through", shown, e))?;
        for e in std::fs::read_dir(src).map_err(|e| err("listing", &s, e))? {
            let e = e.map_err(|e| err("listing", &s, e))?;
            let cm = std::fs::symlink_metadata(e.path()).map_err(|er| err("reading", &s, er))?;
            in_entry(&e.path(), &cm, sub.as_fd(), &e.file_name(), shown)?;
        }
        Ok(())
    } else if ft.is_symlink() {
        let link = std::fs::read_link(src).map_err(|e| err("reading link", &s, e))?;
        let _ = nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        nix::unistd::symlinkat(link.as_path(), dir, name).map_err(|e| err("creating", shown, e))
    } else if ft.is_file() {
        let fd = nix::fcntl::openat(
            dir,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(md.mode() & 0o7777),
        )
        .map_err(|e| err("refusing to write through", shown, e))?;
        let mut out = std::fs::File::from(fd);
        let mut inp = std::fs::File::open(src).map_err(|e| err("opening", &s, e))?;
        std::io::copy(&mut inp, &mut out).map_err(|e| err("copying to", shown, e))?;
        out.flush().map_err(|e| err("copying to", shown, e))?;
        let _ = nix::unistd::fchownat(
            dir,
            name,
            Some(nix::unistd::Uid::from_raw(0)),
            Some(nix::unistd::Gid::from_raw(0)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        );
        Ok(())
    } else {
        Err(err("cannot copy", &s, "not a file, directory or symlink"))
    }
}

/// Splits `CONTAINER:PATH`; `None` for a host path.
pub fn split(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    arg.split_once(':').filter(|(c, _)| !c.is_empty() && !c.contains('/'))
}

/// A host path as given.
pub fn host(arg: &str) -> PathBuf {
    PathBuf::from(arg)
}
