//! COPY and ADD on the filesystem: sources found inside a root (the build context, another
//! stage's or image's filesystem) and written into the step's rootfs. Both sides are
//! resolved with berth-safepath, so neither a symlink in the context nor one in the image
//! can make a read or a write leave its root. Sources are listed and hashed first (the
//! hash is part of the step's cache key), then written.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use berth_safepath as safepath;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use sha2::{Digest as _, Sha256};

use crate::ignore::{clean, fnmatch, has_glob, Ignore};

/// What a source entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symlink with its target.
    Symlink(PathBuf),
}

/// One entry to copy: its path relative to the source root, and what it is.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path relative to the source root.
    pub rel: String,
    /// Path relative to the matched source (empty for the source itself).
    pub sub: String,
    /// File type.
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time (seconds, nanoseconds).
    pub mtime: (i64, i64),
}

/// A matched source and everything under it.
#[derive(Debug, Clone)]
pub struct Source {
    /// The matched path, relative to the root.
    pub rel: String,
    /// Whether it is a directory (its contents are copied, not itself).
    pub is_dir: bool,
    /// It and its descendants, parents first.
    pub entries: Vec<Entry>,
}

/// Why a copy into (or a walk of) a tree failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A system call failed.
    #[error("{op}: {err}")]
    Io {
        /// What was being done, on which path.
        op: String,
        /// The kernel's answer.
        err: std::io::Error,
    },
    /// What was asked cannot be done (a path that escapes, a type that cannot be copied,
    /// a bad owner or mode).
    #[error("{0}")]
    Invalid(String),
}

impl From<String> for CopyError {
    fn from(s: String) -> CopyError {
        CopyError::Invalid(s)
    }
}

fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> CopyError {
    move |err| CopyError::Io {
        op: what.to_string(),
        err,
    }
}

fn errno(what: impl std::fmt::Display) -> impl FnOnce(nix::errno::Errno) -> CopyError {
    move |e| CopyError::Io {
        op: what.to_string(),
        err: e.into(),
    }
}

fn stat_of(fd: BorrowedFd<'_>) -> Result<nix::sys::stat::FileStat, CopyError> {
    nix::sys::stat::fstat(fd).map_err(errno("stat"))
}

fn entry_of(root: BorrowedFd<'_>, rel: &str, sub: &str) -> Result<Entry, CopyError> {
    let fd = safepath::resolve(root, Path::new(rel), true).map_err(io(format!("stat {rel}")))?;
    let st = stat_of(fd.as_fd())?;
    let fmt = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    let kind = if fmt == SFlag::S_IFDIR {
        Kind::Dir
    } else if fmt == SFlag::S_IFLNK {
        let target = nix::fcntl::readlinkat(&fd, "").map_err(errno(format!("readlink {rel}")))?;
        Kind::Symlink(PathBuf::from(target))
    } else if fmt == SFlag::S_IFREG {
        Kind::File
    } else {
        return Err(format!("{rel}: only files, directories and symlinks can be copied").into());
    };
    Ok(Entry {
        rel: rel.to_string(),
        sub: sub.to_string(),
        kind,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: (st.st_mtime, st.st_mtime_nsec),
    })
}

fn list_dir(root: BorrowedFd<'_>, rel: &str) -> Result<Vec<String>, CopyError> {
    let fd = safepath::open(root, Path::new(rel), OFlag::O_RDONLY | OFlag::O_DIRECTORY)
        .map_err(io(format!("opening {}", if rel.is_empty() { "." } else { rel })))?;
    let mut names: Vec<String> = std::fs::read_dir(safepath::proc_fd_path(fd.as_fd()))
        .map_err(io(format!("listing {rel}")))?
        .filter_map(|e| e.ok())
        .map(|e| String::from_utf8_lossy(e.file_name().as_bytes()).into_owned())
        .collect();
    names.sort();
    Ok(names)
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}/{b}")
    }
}

/// Finds the sources a COPY/ADD names (globs allowed in any component) under `root`,
/// skipping what `ignore` excludes. A source that matches nothing is an error.
pub fn collect(root: &Path, sources: &[String], ignore: &Ignore) -> Result<Vec<Source>, CopyError> {
    let rootfd = safepath::open_root(root).map_err(io(format!("opening {}", root.display())))?;
    let mut out = Vec::new();
    for src in sources {
        let c = clean(src);
        let mut matched: Vec<String> = vec![String::new()];
        if !c.is_empty() {
            for comp in c.split('/') {
                let mut next = Vec::new();
                for m in &matched {
                    if has_glob(comp) {
                        let Ok(names) = list_dir(rootfd.as_fd(), m) else {
                            continue;
                        };
                        for n in names {
                            if fnmatch(comp.as_bytes(), n.as_bytes()) {
                                next.push(join(m, &n));
                            }
                        }
                    } else {
                        next.push(join(m, comp));
                    }
                }
                matched = next;
            }
        }
        let mut found = false;
        for m in matched {
            if !m.is_empty() && ignore.excluded(&m) && !ignore.has_exceptions() {
                continue;
            }
            let e = match entry_of(rootfd.as_fd(), &m, "") {
                Ok(e) => e,
                Err(_) if has_glob(&c) => continue,
                Err(_) => break,
            };
            let mut entries = Vec::new();
            let is_dir = e.kind == Kind::Dir;
            if is_dir {
                walk(rootfd.as_fd(), &m, "", ignore, &mut entries)?;
                if !m.is_empty() && ignore.excluded(&m) && entries.is_empty() {
                    continue;
                }
            } else if !m.is_empty() && ignore.excluded(&m) {
                continue;
            }
            entries.insert(0, e);
            found = true;
            out.push(Source {
                rel: m,
                is_dir,
                entries,
            });
        }
        if !found {
            return Err(format!("\"{src}\": not found in the build context or excluded by .dockerignore").into());
        }
    }
    Ok(out)
}

/// Lists what is under the directory `rel`; returns whether anything was kept.
fn walk(root: BorrowedFd<'_>, rel: &str, sub: &str, ignore: &Ignore, out: &mut Vec<Entry>) -> Result<(), CopyError> {
    for name in list_dir(root, rel)? {
        let r = join(rel, &name);
        let s = join(sub, &name);
        let e = entry_of(root, &r, &s)?;
        let excluded = ignore.excluded(&r);
        if e.kind == Kind::Dir {
            if excluded && !ignore.has_exceptions() {
                continue;
            }
            let at = out.len();
            let mut below = Vec::new();
            walk(root, &r, &s, ignore, &mut below)?;
            if excluded && below.is_empty() {
                continue;
            }
            out.insert(at, e);
            out.extend(below);
        } else if !excluded {
            out.push(e);
        }
    }
    Ok(())
}

/// A digest of the sources' names, types, modes and contents (what the cache compares;
/// owners and times are left out, as Docker does for the context).
pub fn checksum(root: &Path, sources: &[Source]) -> Result<String, CopyError> {
    let rootfd = safepath::open_root(root).map_err(io(format!("opening {}", root.display())))?;
    let mut h = Sha256::new();
    for s in sources {
        h.update(format!("source {} {}\n", s.rel, s.is_dir));
        for e in &s.entries {
            h.update(format!("{} {:o} ", e.sub, e.mode));
            match &e.kind {
                Kind::Dir => h.update(b"dir\n"),
                Kind::Symlink(t) => {
                    h.update(b"link ");
                    h.update(t.as_os_str().as_bytes());
                    h.update(b"\n");
                }
                Kind::File => {
                    let fd = safepath::open(rootfd.as_fd(), Path::new(&e.rel), OFlag::O_RDONLY | OFlag::O_NOFOLLOW)
                        .map_err(io(format!("opening {}", e.rel)))?;
                    let mut f = std::fs::File::from(fd);
                    let mut fh = Sha256::new();
                    std::io::copy(&mut f, &mut fh).map_err(io(format!("reading {}", e.rel)))?;
                    h.update(fh.finalize());
                    h.update(b"\n");
                }
            }
        }
    }
    Ok(format!("sha256:{:x}", h.finalize()))
}

/// How copied entries are owned and moded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Meta {
    /// `--chown` (or 0:0 from the context), `None` keeps the source's.
    pub owner: Option<(u32, u32)>,
    /// `--chmod`.
    pub mode: Option<u32>,
}

/// A writer confined to a rootfs.
#[derive(Debug)]
pub struct Dest {
    root: OwnedFd,
}

impl Dest {
    /// Opens the rootfs.
    pub fn open(rootfs: &Path) -> Result<Dest, CopyError> {
        Ok(Dest {
            root: safepath::open_root(rootfs).map_err(io(format!("opening {}", rootfs.display())))?,
        })
    }

    /// A writer confined to the directory behind `root` (an `O_PATH` descriptor).
    pub fn from_fd(root: OwnedFd) -> Dest {
        Dest { root }
    }

    /// Whether `path` is an existing directory (following symlinks inside the root).
    pub fn is_dir(&self, path: &str) -> bool {
        safepath::resolve(self.root.as_fd(), Path::new(&clean(path)), false)
            .ok()
            .and_then(|fd| stat_of(fd.as_fd()).ok())
            .is_some_and(|st| SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR)
    }

    /// Whether anything exists at `path` (not following a final symlink).
    pub fn exists(&self, path: &str) -> bool {
        safepath::resolve(self.root.as_fd(), Path::new(&clean(path)), true).is_ok()
    }

    /// Makes the directory `path` and its parents (new ones owned by `owner`).
    pub fn mkdir_all(&self, path: &str, owner: Option<(u32, u32)>) -> Result<(), CopyError> {
        self.mkdir_in(path, owner, 0)
    }

    /// [`Dest::mkdir_all`], following a dangling symlink on the way inside the root (as
    /// Docker does: `/target -> /srv/x` makes `/srv/x` in the rootfs).
    fn mkdir_in(&self, path: &str, owner: Option<(u32, u32)>, depth: usize) -> Result<(), CopyError> {
        if depth > 40 {
            return Err(format!("creating directory /{}: too many levels of symbolic links", clean(path)).into());
        }
        let c = clean(path);
        let comps: Vec<&str> = c.split('/').filter(|s| !s.is_empty()).collect();
        let mut sofar = String::new();
        for (i, comp) in comps.iter().enumerate() {
            let next = join(&sofar, comp);
            if self.is_dir(&next) {
                sofar = next;
                continue;
            }
            if let Some(target) = self.readlink(&next) {
                let base = if target.starts_with('/') {
                    target
                } else {
                    join(&sofar, &target)
                };
                return self.mkdir_in(&join(&clean(&base), &comps[i + 1..].join("/")), owner, depth + 1);
            }
            if self.exists(&next) {
                return Err(format!("creating directory /{next}: not a directory").into());
            }
            let fd = safepath::create_all(self.root.as_fd(), Path::new(&next), safepath::Leaf::Dir)
                .map_err(io(format!("creating directory /{next}")))?;
            if let Some((u, g)) = owner {
                chown_fd(fd.as_fd(), u, g)?;
            }
            sofar = next;
        }
        Ok(())
    }

    /// The target of a symlink at `path` (its parents resolved inside the root).
    fn readlink(&self, path: &str) -> Option<String> {
        let fd = safepath::resolve(self.root.as_fd(), Path::new(&clean(path)), true).ok()?;
        let st = stat_of(fd.as_fd()).ok()?;
        if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFLNK {
            return None;
        }
        let t = nix::fcntl::readlinkat(&fd, "").ok()?;
        Some(t.to_string_lossy().into_owned())
    }

    fn parent(&self, path: &str) -> Result<(OwnedFd, String), CopyError> {
        let c = clean(path);
        let (dir, name) = c.rsplit_once('/').unwrap_or(("", c.as_str()));
        if name.is_empty() {
            return Err(format!("cannot write to /{c}").into());
        }
        self.mkdir_all(dir, None)?;
        let pfd = safepath::open(self.root.as_fd(), Path::new(dir), OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .map_err(io(format!("opening /{dir}")))?;
        Ok((pfd, name.to_string()))
    }

    /// Removes whatever non-directory is at `name` in `parent`.
    fn clear(parent: BorrowedFd<'_>, name: &str) -> Result<bool, CopyError> {
        match nix::sys::stat::fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR => Ok(true),
            Ok(_) => {
                nix::unistd::unlinkat(parent, name, nix::unistd::UnlinkatFlags::NoRemoveDir)
                    .map_err(errno(format!("replacing {name}")))?;
                Ok(false)
            }
            Err(_) => Ok(false),
        }
    }

    /// Writes a regular file with `data` read from `r`.
    pub fn write_file(
        &self,
        path: &str,
        r: &mut dyn Read,
        mode: u32,
        owner: (u32, u32),
        mtime: Option<(i64, i64)>,
    ) -> Result<(), CopyError> {
        let (pfd, name) = self.parent(path)?;
        if Dest::clear(pfd.as_fd(), &name)? {
            return Err(format!("cannot overwrite directory /{} with a file", clean(path)).into());
        }
        let fd = nix::fcntl::openat(
            &pfd,
            name.as_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(errno(format!("creating /{}", clean(path))))?;
        let mut f = std::fs::File::from(fd);
        std::io::copy(r, &mut f).map_err(io(format!("writing /{}", clean(path))))?;
        f.flush().map_err(io("flushing"))?;
        chown_fd(f.as_fd(), owner.0, owner.1)?;
        nix::sys::stat::fchmod(&f, Mode::from_bits_truncate(mode)).map_err(errno("chmod"))?;
        if let Some(t) = mtime {
            set_times(f.as_fd(), t)?;
        }
        Ok(())
    }

    /// Makes a symlink.
    pub fn symlink(&self, path: &str, target: &Path, owner: (u32, u32)) -> Result<(), CopyError> {
        let (pfd, name) = self.parent(path)?;
        if Dest::clear(pfd.as_fd(), &name)? {
            return Err(format!("cannot overwrite directory /{} with a symlink", clean(path)).into());
        }
        nix::unistd::symlinkat(target, &pfd, name.as_str()).map_err(errno(format!("symlink /{}", clean(path))))?;
        nix::unistd::fchownat(
            &pfd,
            name.as_str(),
            Some(nix::unistd::Uid::from_raw(owner.0)),
            Some(nix::unistd::Gid::from_raw(owner.1)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(errno("chown"))
    }

    /// Makes (or keeps) a directory and sets its metadata.
    pub fn dir(&self, path: &str, mode: u32, owner: (u32, u32), mtime: Option<(i64, i64)>) -> Result<(), CopyError> {
        if clean(path).is_empty() {
            return Ok(());
        }
        let (pfd, name) = self.parent(path)?;
        if !Dest::clear(pfd.as_fd(), &name)? {
            nix::sys::stat::mkdirat(&pfd, name.as_str(), Mode::from_bits_truncate(0o755))
                .map_err(errno(format!("mkdir /{}", clean(path))))?;
        }
        let fd = nix::fcntl::openat(
            &pfd,
            name.as_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno(format!("opening /{}", clean(path))))?;
        chown_fd(fd.as_fd(), owner.0, owner.1)?;
        nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode)).map_err(errno("chmod"))?;
        if let Some(t) = mtime {
            set_times(fd.as_fd(), t)?;
        }
        Ok(())
    }

    /// Reads a file of the rootfs (for /etc/passwd and /etc/group).
    pub fn read(&self, path: &str) -> Option<String> {
        let fd = safepath::open(self.root.as_fd(), Path::new(path), OFlag::O_RDONLY).ok()?;
        let mut s = String::new();
        std::fs::File::from(fd).read_to_string(&mut s).ok()?;
        Some(s)
    }
}

fn chown_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> Result<(), CopyError> {
    nix::unistd::fchownat(
        fd,
        "",
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
        AtFlags::AT_EMPTY_PATH,
    )
    .map_err(errno("chown"))
}

fn set_times(fd: BorrowedFd<'_>, (s, ns): (i64, i64)) -> Result<(), CopyError> {
    let t = nix::sys::time::TimeSpec::new(s, ns);
    nix::sys::stat::futimens(fd, &t, &t).map_err(errno("setting times"))
}

/// Copies `sources` from `root` to `dest` (Docker's rules: a directory's contents go into
/// the destination; several sources or a trailing `/` need a directory destination).
pub fn copy(root: &Path, sources: &[Source], out: &Dest, dest: &str, meta: Meta) -> Result<(), CopyError> {
    let rootfd = safepath::open_root(root).map_err(io(format!("opening {}", root.display())))?;
    let dir_dest = dest.ends_with('/') || sources.len() > 1 || sources.iter().any(|s| s.is_dir) || out.is_dir(dest);
    if sources.len() > 1 && !dest.ends_with('/') && !out.is_dir(dest) {
        return Err(format!("When using COPY with more than one source file, the destination must be a directory and end with a /: {dest}").into());
    }
    let owner = |e: &Entry| meta.owner.unwrap_or((e.uid, e.gid));
    let mode = |e: &Entry| match (meta.mode, &e.kind) {
        (Some(m), _) => m,
        _ => e.mode,
    };
    if dir_dest {
        out.mkdir_all(dest, meta.owner)?;
    }
    for s in sources {
        for e in &s.entries {
            let target = if s.is_dir {
                if e.sub.is_empty() {
                    continue;
                }
                join(&clean(dest), &e.sub)
            } else if dir_dest {
                let base = s.rel.rsplit('/').next().unwrap_or(&s.rel);
                join(&clean(dest), base)
            } else {
                clean(dest)
            };
            match &e.kind {
                Kind::Dir => out.dir(&target, mode(e), owner(e), Some(e.mtime))?,
                Kind::Symlink(t) => out.symlink(&target, t, owner(e))?,
                Kind::File => {
                    let fd = safepath::open(rootfd.as_fd(), Path::new(&e.rel), OFlag::O_RDONLY | OFlag::O_NOFOLLOW)
                        .map_err(io(format!("opening {}", e.rel)))?;
                    let mut f = std::fs::File::from(fd);
                    out.write_file(&target, &mut f, mode(e), owner(e), Some(e.mtime))?;
                }
            }
        }
    }
    Ok(())
}

/// Extracts a tar stream (already decompressed) into `dest` inside the rootfs, as ADD does:
/// owners and modes from the archive, every path confined to the rootfs.
pub fn extract(r: &mut dyn Read, out: &Dest, dest: &str, owner: Option<(u32, u32)>) -> Result<(), CopyError> {
    out.mkdir_all(dest, None)?;
    let mut ar = tar::Archive::new(r);
    let mut links: Vec<(String, String)> = Vec::new();
    for e in ar.entries().map_err(io("reading the archive"))? {
        let mut e = e.map_err(io("reading the archive"))?;
        let raw = e.path_bytes();
        let rel = clean(&String::from_utf8_lossy(&raw));
        if rel.is_empty() {
            continue;
        }
        let target = join(&clean(dest), &rel);
        let h = e.header();
        let own = owner.unwrap_or((
            u32::try_from(h.uid().unwrap_or(0)).unwrap_or(0),
            u32::try_from(h.gid().unwrap_or(0)).unwrap_or(0),
        ));
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let mtime = h.mtime().ok().and_then(|m| i64::try_from(m).ok()).map(|m| (m, 0));
        match h.entry_type() {
            tar::EntryType::Directory => out.dir(&target, mode, own, mtime)?,
            tar::EntryType::Symlink => {
                let t = e
                    .link_name()
                    .map_err(io("reading a link"))?
                    .ok_or_else(|| format!("{rel}: symlink without a target"))?
                    .into_owned();
                out.symlink(&target, &t, own)?
            }
            tar::EntryType::Link => {
                let t = e
                    .link_name()
                    .map_err(io("reading a link"))?
                    .ok_or_else(|| format!("{rel}: hard link without a target"))?;
                links.push((target, join(&clean(dest), &clean(&t.to_string_lossy()))));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                out.write_file(&target, &mut e, mode, own, mtime)?
            }
            // Devices, fifos and the like are not made by ADD.
            _ => {}
        }
    }
    for (at, to) in links {
        // The link's target inside the destination, copied (a hard link across the
        // confinement check would need linkat on two resolved descriptors).
        let fd = safepath::open(out.root.as_fd(), Path::new(&to), OFlag::O_RDONLY | OFlag::O_NOFOLLOW)
            .map_err(io(format!("hard link target {to}")))?;
        let st = stat_of(fd.as_fd())?;
        let mut f = std::fs::File::from(fd);
        out.write_file(&at, &mut f, st.st_mode & 0o7777, (st.st_uid, st.st_gid), None)?;
    }
    Ok(())
}

/// Resolves `user[:group]` (names or numbers) against the rootfs's /etc/passwd and
/// /etc/group, for `--chown`.
pub fn resolve_owner(out: &Dest, spec: &str) -> Result<(u32, u32), CopyError> {
    let (u, g) = spec.split_once(':').map_or((spec, None), |(u, g)| (u, Some(g)));
    let passwd = out.read("/etc/passwd").unwrap_or_default();
    let group = out.read("/etc/group").unwrap_or_default();
    let lookup = |db: &str, name: &str| -> Option<(u32, u32)> {
        db.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.first() != Some(&name) {
                return None;
            }
            Some((
                f.get(2)?.parse().ok()?,
                f.get(3).and_then(|x| x.parse().ok()).unwrap_or(0),
            ))
        })
    };
    let (uid, primary) = match u.parse::<u32>() {
        Ok(n) => (n, n),
        Err(_) => {
            lookup(&passwd, u).ok_or_else(|| format!("unable to find user {u}: no matching entries in passwd file"))?
        }
    };
    let gid = match g {
        None => {
            if u.parse::<u32>().is_ok() {
                uid
            } else {
                primary
            }
        }
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup(&group, g)
                .map(|(id, _)| id)
                .ok_or_else(|| format!("unable to find group {g}: no matching entries in group file"))?,
        },
    };
    Ok((uid, gid))
}

/// Parses `--chmod` (octal).
pub fn parse_chmod(s: &str) -> Result<u32, CopyError> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| CopyError::Invalid(format!("invalid --chmod {s:?}: an octal mode is expected")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_failed_and_keep_the_kernels_answer() {
        match Dest::open(Path::new("/nonexistent/berth-copy-test")).unwrap_err() {
            CopyError::Io { op, err } => {
                assert!(op.contains("/nonexistent/berth-copy-test"), "{op}");
                assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
            }
            e => panic!("{e:?}"),
        }
        let e = parse_chmod("9x").unwrap_err();
        assert!(matches!(e, CopyError::Invalid(_)), "{e:?}");
        assert!(e.to_string().contains("--chmod \"9x\""), "{e}");
        assert_eq!(parse_chmod("755").unwrap(), 0o755);
    }
}
