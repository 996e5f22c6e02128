//! `cp` between a container and the host, as tar streams (Docker's model: `docker cp`
//! moves a tar of the source, and `-` on either side is that tar on stdin or stdout).
//!
//! The container side: while the container runs, paths resolve in its own mount namespace's
//! view (`/proc/<pid>/root`), so `/etc/hostname`, volumes and binds read as the container
//! sees them; a stopped container's rootfs is mounted for the copy. Every container path is
//! resolved inside that root (berth-safepath, `openat2(RESOLVE_IN_ROOT)` without magic
//! links) and archived from descriptors (`berth_image::tree`): a symlink in the container
//! can never make berth read a host file.
//!
//! The host side of a copy out, and the container side of a copy in, are written by the
//! builder's confined writer (`berth_build::copy::Dest`) rooted at the destination
//! directory: a symlink that the archive (the container) made, or that already sits there,
//! resolves inside that directory, and a final symlink is replaced, never written through.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_build::copy::{extract, CopyError, Dest};
use berth_safepath as safepath;

use crate::store::Engine;
use crate::{ops, EngineError, Result};

fn err(what: &str, path: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid(format!("{what} {path}: {e}"))
}

fn not_found(path: &str, id: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::NotFound(format!("Could not find the file {path} in container {id}: {e}"))
}

/// Opens a running container's root as its processes see it, through its init's
/// `/proc/<pid>/root`; refuses a pid that is no longer the container's.
fn live_root(pid: i32) -> Result<OwnedFd> {
    let gone = || EngineError::Conflict(format!("the container's init (pid {pid}) is gone"));
    let pidfd = crate::health::pidfd_open(pid).ok_or_else(gone)?;
    let root = safepath::open_root(Path::new(&format!("/proc/{pid}/root"))).map_err(|_| gone())?;
    // SAFETY: pidfd_send_signal with signal 0 on a descriptor we own only checks liveness.
    let alive = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            std::os::fd::AsRawFd::as_raw_fd(&pidfd),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    } == 0;
    let ours = nix::sys::stat::stat("/").ok();
    let theirs = nix::sys::stat::fstat(&root).ok();
    let same_as_host = matches!((ours, theirs), (Some(a), Some(b)) if a.st_dev == b.st_dev && a.st_ino == b.st_ino);
    if !alive || same_as_host {
        return Err(gone());
    }
    Ok(root)
}

/// Runs `f` on the container's root directory (an `O_PATH` descriptor).
fn with_root<T>(engine: &Engine, id: &str, f: impl FnOnce(OwnedFd) -> Result<T>) -> Result<T> {
    let r = engine.resolve(id)?;
    let st = engine.state(&r.id);
    if st.running() {
        if let Ok(root) = live_root(st.pid) {
            return f(root);
        }
        // No pidfd here (a kernel before 5.3): the rootfs mounted for it, without its binds.
        let rootfs = engine.dir(&r.id).join("rootfs");
        let root = safepath::open_root(&rootfs).map_err(|e| err("opening", &rootfs.display().to_string(), e))?;
        return f(root);
    }
    ops::mount_rootfs(engine, &r)?;
    let dir = engine.dir(&r.id);
    let res = StoppedView::open(&dir)
        .map_err(|e| err("opening", &dir.join("rootfs").display().to_string(), e))
        .and_then(|v| {
            let root = v.root.try_clone().map_err(|e| err("opening", &r.id, e))?;
            let out = f(root);
            drop(v);
            out
        });
    ops::unmount_rootfs(engine, &r.id);
    res
}

/// A stopped container as it would see itself: its mounted rootfs with its bind mounts (the
/// `/etc` files berth writes, volumes, host binds) on top, made in a private mount namespace
/// of a helper thread that holds it while the copy runs. Nothing is mounted in the caller's
/// namespace, and the binds vanish with the thread.
struct StoppedView {
    root: OwnedFd,
    done: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StoppedView {
    fn open(dir: &Path) -> std::io::Result<StoppedView> {
        let rootfs = dir.join("rootfs");
        let spec: serde_json::Value = std::fs::read(dir.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let binds: Vec<(String, String, bool)> = spec["mounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["type"] == "bind")
            .filter_map(|m| {
                let ro = m["options"].as_array().is_some_and(|o| o.iter().any(|x| x == "ro"));
                Some((
                    m["source"].as_str()?.to_string(),
                    m["destination"].as_str()?.to_string(),
                    ro,
                ))
            })
            .collect();
        let (tx, rx) = std::sync::mpsc::channel::<std::io::Result<OwnedFd>>();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let made = (|| -> std::io::Result<OwnedFd> {
                use nix::mount::MsFlags;
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS | nix::sched::CloneFlags::CLONE_FS)?;
                nix::mount::mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    None::<&str>,
                )?;
                let root = safepath::open_root(&rootfs)?;
                for (src, dst, ro) in &binds {
                    // Only onto what the rootfs has: nothing is created in it for a copy.
                    let Ok(target) = safepath::resolve(root.as_fd(), Path::new(dst), false) else {
                        continue;
                    };
                    let at = safepath::proc_fd_path(target.as_fd());
                    let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
                    if nix::mount::mount(Some(src.as_str()), &at, None::<&str>, bind, None::<&str>).is_err() {
                        continue;
                    }
                    if *ro {
                        // A read-only bind stays read-only for a copy into it, or is not there.
                        let target = safepath::resolve(root.as_fd(), Path::new(dst), false)?;
                        let again = safepath::proc_fd_path(target.as_fd());
                        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
                        if nix::mount::mount(None::<&str>, &again, None::<&str>, flags, None::<&str>).is_err() {
                            nix::mount::umount2(&again, nix::mount::MntFlags::MNT_DETACH)?;
                        }
                    }
                }
                Ok(root)
            })();
            let failed = made.is_err();
            let _ = tx.send(made);
            if !failed {
                // Hold the namespace until the copy is over (the sender is dropped).
                let _ = wait.recv();
            }
        });
        let root = rx
            .recv()
            .map_err(|_| std::io::Error::other("the mount helper thread ended"))??;
        Ok(StoppedView {
            root,
            done: Some(done),
            thread: Some(thread),
        })
    }
}

impl Drop for StoppedView {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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

/// Whether a source path asks for a directory's contents (`DIR/.`) or follows a final
/// symlink (`LINK/`), as Docker reads them.
fn follows(src: &str) -> bool {
    src.ends_with('/') || src.ends_with("/.")
}

/// The name Docker gives a source's top entry in its archive: its base name, `.` for the
/// contents of `DIR/.`.
pub fn archive_name(src: &str) -> String {
    if src.ends_with("/.") || src == "." {
        return ".".into();
    }
    Path::new(src)
        .file_name()
        .map_or_else(|| ".".into(), |n| n.to_string_lossy().into_owned())
}

/// Stats `path` inside the container, confined to its root.
pub fn stat(engine: &Engine, id: &str, path: &str) -> Result<PathStat> {
    with_root(engine, id, |root| {
        let fd =
            safepath::resolve(root.as_fd(), Path::new(path), !follows(path)).map_err(|e| not_found(path, id, e))?;
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

/// Writes a tar of `src` (a path in the container) to `out`, its top entry named `name`
/// (`.` archives a directory's entries under `./`).
fn archive_fd(fd: OwnedFd, name: &str, out: &mut dyn Write) -> std::io::Result<()> {
    let mut b = tar::Builder::new(out);
    berth_image::tree::append(&mut b, fd.as_fd(), Path::new(name))?;
    b.finish()
}

/// `GET /containers/{id}/archive` and `cp CONTAINER:SRC -`: a tar of `src` to `out`, its
/// top entry named as [`archive_name`] says.
pub fn archive(engine: &Engine, id: &str, src: &str, out: &mut dyn Write) -> Result<()> {
    with_root(engine, id, |root| {
        let fd = safepath::resolve(root.as_fd(), Path::new(src), !follows(src)).map_err(|e| not_found(src, id, e))?;
        archive_fd(fd, &archive_name(src), out).map_err(|e| err("archiving", src, e))
    })
}

/// Copies `src` (a path in the container) to `dest` on the host, Docker's way: into `dest`
/// when it is an existing directory, else as `dest` (whose parent must exist); `DIR/.`
/// copies the directory's contents. A symlink at `dest` is replaced, not followed, unless
/// `dest` ends in `/`. Files are owned by the caller, as `docker cp` leaves
/// them.
pub fn copy_out(engine: &Engine, id: &str, src: &str, dest: &Path) -> Result<()> {
    let d = dest.display().to_string();
    let contents = src.ends_with("/.") || src == ".";
    // A final symlink at the destination is not followed unless the path ends in `/`: it may
    // be one that an earlier copy brought out of a container.
    let dest_is_dir = if d.ends_with('/') {
        dest.is_dir()
    } else {
        std::fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir())
    };
    let (dir, name): (PathBuf, String) = if dest_is_dir {
        (dest.to_path_buf(), archive_name(src))
    } else if contents {
        std::fs::create_dir(dest).map_err(|e| err("creating", &d, e))?;
        (dest.to_path_buf(), ".".into())
    } else {
        if d.ends_with('/') {
            return Err(err("destination directory", &d, "does not exist"));
        }
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .map(OsStr::to_string_lossy)
            .ok_or_else(|| err("invalid destination", &d, "no file name"))?;
        (parent, name.into_owned())
    };
    if !dir.is_dir() {
        return Err(err(
            "destination directory",
            &dir.display().to_string(),
            "does not exist",
        ));
    }
    let out = Dest::open(&dir).map_err(|e| err("opening", &d, e))?;
    let owner = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
    with_root(engine, id, |root| {
        let fd = safepath::resolve(root.as_fd(), Path::new(src), !follows(src)).map_err(|e| not_found(src, id, e))?;
        let is_dir = nix::sys::stat::fstat(&fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
        let there = std::fs::symlink_metadata(dir.join(&name)).ok().filter(|_| name != ".");
        if !is_dir && there.as_ref().is_some_and(std::fs::Metadata::is_dir) {
            return Err(err("cannot overwrite directory", &d, "with a non-directory"));
        }
        if is_dir && there.is_some_and(|m| !m.is_dir()) {
            return Err(err("cannot copy a directory to", &d, "a non-directory"));
        }
        through_pipe(|w| archive_fd(fd, &name, w), |r| extract(r, &out, "/", Some(owner)))
            .map_err(|e| err("copying to", &d, e))
    })
}

/// Runs `produce` (writing a tar) and `consume` (reading it) on the two ends of a pipe.
fn through_pipe(
    produce: impl FnOnce(&mut dyn Write) -> std::io::Result<()> + Send,
    consume: impl FnOnce(&mut dyn Read) -> std::result::Result<(), CopyError>,
) -> std::result::Result<(), CopyError> {
    let io = |op: &str| {
        let op = op.to_string();
        move |err| CopyError::Io { op, err }
    };
    let (mut r, mut w) = std::io::pipe().map_err(io("making a pipe"))?;
    std::thread::scope(|s| {
        let producer = s.spawn(move || produce(&mut w));
        let consumed = consume(&mut r);
        // Unblock a producer whose reader stopped early.
        drop(r);
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the archiver panicked")));
        consumed?;
        produced.map_err(io("archiving"))
    })
}

/// Unpacks the tar read from `input` into `dest`, an existing directory in the container
/// (`PUT /containers/{id}/archive`, `cp - CONTAINER:DIR`). Owners become root unless
/// `keep_owners` (the API's `copyUIDGID`).
pub fn extract_in(engine: &Engine, id: &str, input: &mut dyn Read, dest: &str, keep_owners: bool) -> Result<()> {
    with_root(engine, id, |root| {
        let fd = safepath::resolve(root.as_fd(), Path::new(dest), false).map_err(|e| not_found(dest, id, e))?;
        if !nix::sys::stat::fstat(&fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR) {
            return Err(EngineError::Invalid(format!(
                "extraction point is not a directory: {dest}"
            )));
        }
        let out = Dest::from_fd(root);
        let owner = if keep_owners { None } else { Some((0, 0)) };
        extract(input, &out, dest, owner).map_err(|e| err("copying to", dest, e))
    })
}

/// Copies `src` from the host to `dest` in the container: into `dest` when it is an existing
/// directory there, else as `dest` (whose parent must exist); `DIR/.` copies the contents.
pub fn copy_in(engine: &Engine, id: &str, src: &Path, dest: &str) -> Result<()> {
    let s = src.display().to_string();
    let follow = s.ends_with('/') || s.ends_with("/.");
    let mut flags = nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC;
    if !follow {
        flags |= nix::fcntl::OFlag::O_NOFOLLOW;
    }
    let fd = nix::fcntl::open(src, flags, nix::sys::stat::Mode::empty())
        .map_err(|e| EngineError::NotFound(format!("Could not find the file {s}: {e}")))?;
    let src_is_dir = nix::sys::stat::fstat(&fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
    with_root(engine, id, |root| {
        // A symlink at the destination is followed inside the container, as Docker does.
        let dest = &follow_links(root.as_fd(), dest);
        let existing = safepath::resolve(root.as_fd(), Path::new(dest), false).ok();
        let dest_is_dir = existing
            .and_then(|fd| nix::sys::stat::fstat(&fd).ok())
            .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
        let contents = s.ends_with("/.");
        let (dir, name) = if dest_is_dir {
            (dest.to_string(), if contents { ".".into() } else { archive_name(&s) })
        } else {
            if dest.ends_with('/') && !src_is_dir {
                return Err(EngineError::NotFound(format!(
                    "no such directory {dest} in container {id}"
                )));
            }
            let dp = Path::new(dest);
            let parent = dp
                .parent()
                .map_or_else(|| "/".into(), |p| p.to_string_lossy().into_owned());
            let name = dp
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| err("invalid destination", dest, "no file name"))?;
            if safepath::resolve(root.as_fd(), Path::new(&parent), false).is_err() {
                return Err(not_found(&parent, id, "no such directory"));
            }
            (parent, name)
        };
        let out = Dest::from_fd(root);
        through_pipe(|w| archive_fd(fd, &name, w), |r| extract(r, &out, &dir, Some((0, 0))))
            .map_err(|e| err("copying to", dest, e))
    })
}

/// `dest` with final symlinks replaced by their targets, read inside the root (as many as
/// the kernel would follow).
fn follow_links(root: std::os::fd::BorrowedFd<'_>, dest: &str) -> String {
    let mut p = PathBuf::from(dest);
    for _ in 0..40 {
        let Ok(fd) = safepath::resolve(root, &p, true) else {
            break;
        };
        let Ok(target) = nix::fcntl::readlinkat(&fd, "") else {
            break;
        };
        p = p.parent().unwrap_or(Path::new("/")).join(target);
    }
    p.to_string_lossy().into_owned()
}

/// Splits `CONTAINER:PATH`; `None` for a host path (and for `-`).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_names_for_archived_sources() {
        assert_eq!(archive_name("/etc/hostname"), "hostname");
        assert_eq!(archive_name("/etc/"), "etc");
        assert_eq!(archive_name("/etc/."), ".");
        assert_eq!(archive_name("/"), ".");
        assert!(follows("/link/") && follows("/d/.") && !follows("/link"));
        assert_eq!(split("c:/x"), Some(("c", "/x")));
        assert_eq!(split("-"), None);
        assert_eq!(split("./a:b"), None);
    }
}
