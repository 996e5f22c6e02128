//! Layer unpacking: a (possibly compressed) layer tar extracted into an empty directory,
//! entry by entry, every path resolved inside that directory.
//!
//! Hostile layers are the dominant attack on image stores, so nothing here trusts the tar:
//! - names with `..` are refused; absolute names are taken relative to the layer root;
//! - parents are resolved with `openat2(RESOLVE_IN_ROOT)` (berth-safepath), so a symlink in
//!   the layer (`etc -> /etc`) resolves inside the layer, never to the host;
//! - the last component is created with `*at` calls on that parent, never following a
//!   symlink; an existing entry is removed first;
//! - hard links must name an entry inside the layer, resolved the same way;
//! - `trusted.overlay.*` xattrs in the tar are dropped (overlayfs would act on them);
//! - device nodes are skipped where the caller may not make them (a rootless context);
//! - runs of zeros are seeked over, so a sparse-file bomb does not fill the disk.
//!
//! Whiteouts become overlayfs whiteouts: `.wh.NAME` a 0/0 character device, `.wh..wh..opq`
//! the `trusted.overlay.opaque` xattr on its directory. The uncompressed stream is hashed on
//! the way through: its digest is the layer's diff id.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use berth_oci::Digest;
use berth_safepath::{self as safepath, Leaf};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid, UnlinkatFlags};
use sha2::{Digest as _, Sha256};

use crate::error::{ImageError, Result};

/// What an unpack produced.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Bytes of regular file content.
    pub size: u64,
    /// Entries skipped (device nodes where mknod is not allowed).
    pub skipped: u64,
}

/// Layer compression, found from the stream's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Unpacked {
    /// Checks the diff id against the one the image config lists for the layer `name`.
    pub fn expect_diff_id(self, name: &str, want: &Digest) -> Result<Unpacked> {
        if &self.diff_id != want {
            return Err(ImageError::DigestMismatch {
                what: format!("layer {name} (uncompressed)"),
                expected: want.to_string(),
                actual: self.diff_id.to_string(),
            });
        }
        Ok(self)
    }
}

/// The compression of a stored blob, from its first bytes.
pub fn detect_file(f: &mut File) -> std::io::Result<Compression> {
    let mut head = [0u8; 4];
    let n = f.read(&mut head)?;
    f.seek(SeekFrom::Start(0))?;
    let mut r: &[u8] = &head[..n];
    detect(&mut r)
}

/// Looks at the first bytes of a buffered stream.
pub fn detect(r: &mut dyn BufRead) -> std::io::Result<Compression> {
    let head = r.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    })
}

/// Wraps a stream in the decompressor its magic bytes call for.
pub fn decompress<'a>(r: impl Read + 'a) -> std::io::Result<Box<dyn Read + 'a>> {
    let mut br = BufReader::with_capacity(256 * 1024, r);
    Ok(match detect(&mut br)? {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(br)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(br)?),
        Compression::None => Box::new(br),
    })
}

/// A reader that hashes what passes through.
pub(crate) struct Hashing<R> {
    pub(crate) inner: R,
    pub(crate) hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Unpacks the layer `name` (a digest, for messages) from `r` into the empty directory
/// `dest`. On error the caller discards `dest`: it is never a snapshot.
pub fn unpack(name: &str, r: impl Read, dest: &Path) -> Result<Unpacked> {
    let bad = |entry: &str, reason: String| ImageError::BadLayer {
        layer: name.to_string(),
        entry: entry.to_string(),
        reason,
    };
    let root = safepath::open_root(dest).map_err(|e| bad("", format!("opening {}: {e}", dest.display())))?;
    let stream = decompress(r).map_err(|e| bad("", format!("reading: {e}")))?;
    let mut hashing = Hashing {
        inner: stream,
        hasher: Sha256::new(),
    };
    let may_mknod = caps_allow_mknod();
    let mut size = 0u64;
    let mut skipped = 0u64;
    let mut dir_times: Vec<(PathBuf, i64)> = Vec::new();
    {
        let mut archive = tar::Archive::new(&mut hashing);
        let entries = archive.entries().map_err(|e| bad("", format!("not a tar: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| bad("", format!("reading tar: {e}")))?;
            let raw = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let rel = clean(Path::new(OsStr::from_bytes(&raw))).map_err(|r| bad(&shown, r.to_string()))?;
            let Some(file_name) = rel.file_name().map(|n| n.to_os_string()) else {
                continue; // the root itself ("./")
            };
            let parent_rel = rel.parent().map(Path::to_path_buf).unwrap_or_default();
            let parent = safepath::create_all(root.as_fd(), &parent_rel, Leaf::Dir)
                .map_err(|e| bad(&shown, format!("resolving its directory: {e}")))?;
            let pdir = safepath::reopen(parent.as_fd(), OFlag::O_DIRECTORY | OFlag::O_RDONLY)
                .map_err(|e| bad(&shown, format!("opening its directory: {e}")))?;
            let fname = file_name.as_os_str();
            // Whiteouts.
            if let Some(hidden) = fname.as_bytes().strip_prefix(b".wh.") {
                if hidden == b".wh..opq" {
                    set_xattr(
                        pdir.as_fd(),
                        &format!("{}opaque", safepath::userns::overlay_xattr_prefix()),
                        b"y",
                    )
                    .map_err(|e| bad(&shown, format!("marking opaque: {e}")))?;
                } else if hidden.starts_with(b".wh.") {
                    // AUFS metadata (.wh..wh.plnk...): not content.
                } else {
                    let hidden = OsStr::from_bytes(hidden);
                    remove_existing(pdir.as_fd(), hidden).map_err(|e| bad(&shown, e.to_string()))?;
                    nix::sys::stat::mknodat(&pdir, hidden, SFlag::S_IFCHR, Mode::empty(), 0)
                        .map_err(|e| bad(&shown, format!("making whiteout: {e}")))?;
                }
                continue;
            }
            let header = entry.header().clone();
            let mode = header.mode().map_err(|e| bad(&shown, format!("bad mode: {e}")))? & 0o7777;
            let (uid, gid) = owner(&mut entry, &header).map_err(|e| bad(&shown, e.to_string()))?;
            let mtime = header.mtime().unwrap_or(0);
            let mtime = i64::try_from(mtime).unwrap_or(0);
            let xattrs = xattrs(&mut entry);
            let kind = header.entry_type();
            use tar::EntryType as T;
            match kind {
                T::Directory => {
                    match nix::sys::stat::fstatat(&pdir, fname, AtFlags::AT_SYMLINK_NOFOLLOW) {
                        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {}
                        Ok(_) => {
                            remove_existing(pdir.as_fd(), fname).map_err(|e| bad(&shown, e.to_string()))?;
                            mkdir(pdir.as_fd(), fname).map_err(|e| bad(&shown, e.to_string()))?;
                        }
                        Err(_) => mkdir(pdir.as_fd(), fname).map_err(|e| bad(&shown, e.to_string()))?,
                    }
                    let fd = nix::fcntl::openat(
                        &pdir,
                        fname,
                        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| bad(&shown, format!("opening: {e}")))?;
                    finish_fd(fd.as_fd(), uid, gid, mode, &xattrs).map_err(|e| bad(&shown, e.to_string()))?;
                    dir_times.push((rel.clone(), mtime));
                    continue;
                }
                T::Regular | T::Continuous | T::GNUSparse => {
                    remove_existing(pdir.as_fd(), fname).map_err(|e| bad(&shown, e.to_string()))?;
                    let fd = nix::fcntl::openat(
                        &pdir,
                        fname,
                        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o600),
                    )
                    .map_err(|e| bad(&shown, format!("creating: {e}")))?;
                    let mut f = File::from(fd);
                    let n = copy_sparse(&mut entry, &mut f).map_err(|e| bad(&shown, format!("writing: {e}")))?;
                    size += n;
                    finish_fd(f.as_fd(), uid, gid, mode, &xattrs).map_err(|e| bad(&shown, e.to_string()))?;
                }
                T::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .ok_or_else(|| bad(&shown, "symlink without a target".into()))?
                        .into_owned();
                    remove_existing(pdir.as_fd(), fname).map_err(|e| bad(&shown, e.to_string()))?;
                    nix::unistd::symlinkat(OsStr::from_bytes(&target), &pdir, fname)
                        .map_err(|e| bad(&shown, format!("making symlink: {e}")))?;
                    nix::unistd::fchownat(
                        &pdir,
                        fname,
                        Some(Uid::from_raw(uid)),
                        Some(Gid::from_raw(gid)),
                        AtFlags::AT_SYMLINK_NOFOLLOW,
                    )
                    .map_err(|e| bad(&shown, chown_err(uid, gid)(e).to_string()))?;
                }
                T::Link => {
                    let target = entry
                        .link_name_bytes()
                        .ok_or_else(|| bad(&shown, "hard link without a target".into()))?
                        .into_owned();
                    let trel = clean(Path::new(OsStr::from_bytes(&target)))
                        .map_err(|r| bad(&shown, format!("hard link target: {r}")))?;
                    let tname = trel
                        .file_name()
                        .ok_or_else(|| bad(&shown, "hard link to the layer root".into()))?;
                    let tparent = match trel.parent().filter(|p| !p.as_os_str().is_empty()) {
                        Some(p) => safepath::resolve(root.as_fd(), p, false),
                        None => root.try_clone(),
                    }
                    .map_err(|e| bad(&shown, format!("hard link target {}: {e}", trel.display())))?;
                    let tdir = safepath::reopen(tparent.as_fd(), OFlag::O_DIRECTORY | OFlag::O_RDONLY)
                        .map_err(|e| bad(&shown, format!("hard link target: {e}")))?;
                    if nix::sys::stat::fstatat(&tdir, tname, AtFlags::AT_SYMLINK_NOFOLLOW).is_err() {
                        return Err(bad(
                            &shown,
                            format!("hard link target {} is not in the layer", trel.display()),
                        ));
                    }
                    if trel == rel {
                        continue;
                    }
                    remove_existing(pdir.as_fd(), fname).map_err(|e| bad(&shown, e.to_string()))?;
                    nix::unistd::linkat(&tdir, tname, &pdir, fname, AtFlags::empty())
                        .map_err(|e| bad(&shown, format!("making hard link: {e}")))?;
                    continue; // the link shares the target's metadata
                }
                T::Char | T::Block | T::Fifo => {
                    let (sflag, dev) = match kind {
                        T::Char => (SFlag::S_IFCHR, dev_of(&header)),
                        T::Block => (SFlag::S_IFBLK, dev_of(&header)),
                        _ => (SFlag::S_IFIFO, 0),
                    };
                    if sflag != SFlag::S_IFIFO && !may_mknod {
                        skipped += 1;
                        continue;
                    }
                    remove_existing(pdir.as_fd(), fname).map_err(|e| bad(&shown, e.to_string()))?;
                    match nix::sys::stat::mknodat(&pdir, fname, sflag, Mode::from_bits_truncate(0o600), dev) {
                        Ok(()) => {}
                        Err(Errno::EPERM) if sflag != SFlag::S_IFIFO => {
                            skipped += 1;
                            continue;
                        }
                        Err(e) => return Err(bad(&shown, format!("mknod: {e}"))),
                    }
                    let fd = nix::fcntl::openat(
                        &pdir,
                        fname,
                        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| bad(&shown, format!("opening: {e}")))?;
                    finish_path_fd(fd.as_fd(), uid, gid, mode, &xattrs).map_err(|e| bad(&shown, e.to_string()))?;
                }
                T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => continue,
                other => return Err(bad(&shown, format!("unsupported entry type {other:?}"))),
            }
            set_mtime(pdir.as_fd(), fname, mtime).map_err(|e| bad(&shown, e.to_string()))?;
        }
    }
    // Directory times last: creating their children changed them.
    for (rel, mtime) in dir_times.iter().rev() {
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            continue;
        };
        let p = if parent.as_os_str().is_empty() {
            root.try_clone()
        } else {
            safepath::resolve(root.as_fd(), parent, false)
        };
        if let Ok(p) = p {
            if let Ok(pdir) = safepath::reopen(p.as_fd(), OFlag::O_DIRECTORY | OFlag::O_RDONLY) {
                let _ = set_mtime(pdir.as_fd(), name, *mtime);
            }
        }
    }
    // The tar's end blocks and any padding belong to the diff id too.
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| bad("", format!("reading: {e}")))?;
    Ok(Unpacked {
        diff_id: Digest::sha256_from_bytes(&hashing.hasher.finalize().into()),
        size,
        skipped,
    })
}

/// A tar name made relative and checked: no `..`, no empty result for a non-root entry.
fn clean(p: &Path) -> std::result::Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => return Err("path escapes the layer (\"..\")"),
        }
    }
    Ok(out)
}

fn owner<R: Read>(entry: &mut tar::Entry<'_, R>, header: &tar::Header) -> std::result::Result<(u32, u32), EntryError> {
    let mut uid = header.uid().map_err(|e| EntryError::Sys {
        op: "reading its uid",
        source: e,
    })?;
    let mut gid = header.gid().map_err(|e| EntryError::Sys {
        op: "reading its gid",
        source: e,
    })?;
    if let Ok(Some(exts)) = entry.pax_extensions() {
        for ext in exts.flatten() {
            match (ext.key(), ext.value()) {
                (Ok("uid"), Ok(v)) => {
                    uid = v.parse().map_err(|_| EntryError::Id {
                        what: "PAX uid",
                        value: v.to_string(),
                    })?
                }
                (Ok("gid"), Ok(v)) => {
                    gid = v.parse().map_err(|_| EntryError::Id {
                        what: "PAX gid",
                        value: v.to_string(),
                    })?
                }
                _ => {}
            }
        }
    }
    let uid = u32::try_from(uid).map_err(|_| EntryError::Id {
        what: "uid",
        value: uid.to_string(),
    })?;
    let gid = u32::try_from(gid).map_err(|_| EntryError::Id {
        what: "gid",
        value: gid.to_string(),
    })?;
    Ok((uid, gid))
}

fn xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    if let Ok(Some(exts)) = entry.pax_extensions() {
        for ext in exts.flatten() {
            if let Ok(k) = ext.key() {
                if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                    // overlayfs reads trusted.overlay.* as instructions (redirects,
                    // metacopy, opacity): a layer may not smuggle them in.
                    if !name.starts_with("trusted.overlay.") && !name.starts_with("user.overlay.") && !name.is_empty() {
                        v.push((name.to_string(), ext.value_bytes().to_vec()));
                    }
                }
            }
        }
    }
    v
}

fn dev_of(h: &tar::Header) -> libc::dev_t {
    let major = h.device_major().ok().flatten().unwrap_or(0);
    let minor = h.device_minor().ok().flatten().unwrap_or(0);
    libc::makedev(major, minor)
}

/// A system call that failed on one entry of a layer, or an id it carries that is not one.
#[derive(Debug, thiserror::Error)]
enum EntryError {
    /// What was being done, and the kernel's answer.
    #[error("{op}: {source}")]
    Sys { op: &'static str, source: std::io::Error },
    /// A uid or gid out of range or not a number.
    #[error("bad {what} {value:?}")]
    Id { what: &'static str, value: String },
    /// An owner this (rootless) user namespace does not map.
    #[error(
        "owned by {uid}:{gid}, beyond the {mapped} ids this user's namespace maps: a rootless user needs \
         subordinate ranges of at least {need} ids in /etc/subuid and /etc/subgid (usermod --add-subuids / --add-subgids)"
    )]
    Unmapped { uid: u32, gid: u32, mapped: u64, need: u64 },
}

/// A failed chown: in a user namespace, EINVAL means the owner is not mapped.
fn chown_err(uid: u32, gid: u32) -> impl Fn(Errno) -> EntryError {
    move |e| {
        if e == Errno::EINVAL && safepath::userns::in_user_namespace() {
            let mapped: u64 = safepath::userns::own_uid_map().iter().map(|r| u64::from(r.count)).sum();
            return EntryError::Unmapped {
                uid,
                gid,
                mapped,
                need: u64::from(uid.max(gid)) + 1,
            };
        }
        EntryError::Sys {
            op: "chown",
            source: e.into(),
        }
    }
}

fn sys(op: &'static str) -> impl Fn(Errno) -> EntryError {
    move |e| EntryError::Sys { op, source: e.into() }
}

fn sys_io(op: &'static str) -> impl Fn(std::io::Error) -> EntryError {
    move |source| EntryError::Sys { op, source }
}

fn mkdir(dir: BorrowedFd<'_>, name: &OsStr) -> std::result::Result<(), EntryError> {
    nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(0o700)).map_err(sys("mkdir"))
}

/// Removes whatever is at `name` in `dir` (a whole tree for a directory), without following
/// symlinks.
fn remove_existing(dir: BorrowedFd<'_>, name: &OsStr) -> std::result::Result<(), EntryError> {
    match nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(sys("stat")(e)),
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
            let fd = nix::fcntl::openat(
                dir,
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(sys("opening"))?;
            let children: Vec<std::ffi::OsString> = std::fs::read_dir(safepath::proc_fd_path(fd.as_fd()))
                .map_err(sys_io("listing"))?
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect();
            for c in children {
                remove_existing(fd.as_fd(), &c)?;
            }
            nix::unistd::unlinkat(dir, name, UnlinkatFlags::RemoveDir).map_err(sys("rmdir"))
        }
        Ok(_) => nix::unistd::unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).map_err(sys("unlink")),
    }
}

/// Owner, mode (after chown, which clears set-id bits) and xattrs on an open file.
fn finish_fd(
    fd: BorrowedFd<'_>,
    uid: u32,
    gid: u32,
    mode: u32,
    xattrs: &[(String, Vec<u8>)],
) -> std::result::Result<(), EntryError> {
    nix::unistd::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))).map_err(chown_err(uid, gid))?;
    nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(mode)).map_err(sys("chmod"))?;
    for (k, v) in xattrs {
        set_xattr(fd, k, v).map_err(sys_io("setting an xattr"))?;
    }
    Ok(())
}

/// The same for a node that cannot be opened for I/O (a fifo or device), through its
/// `O_PATH` descriptor's /proc entry.
fn finish_path_fd(
    fd: BorrowedFd<'_>,
    uid: u32,
    gid: u32,
    mode: u32,
    xattrs: &[(String, Vec<u8>)],
) -> std::result::Result<(), EntryError> {
    let p = safepath::proc_fd_path(fd);
    std::os::unix::fs::chown(&p, Some(uid), Some(gid))
        .map_err(|e| chown_err(uid, gid)(Errno::from_raw(e.raw_os_error().unwrap_or(0))))?;
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).map_err(sys_io("chmod"))?;
    for (k, v) in xattrs {
        let path = CString::new(p.as_os_str().as_bytes()).map_err(|e| sys_io("setting an xattr")(e.into()))?;
        let name = CString::new(k.as_str()).map_err(|e| sys_io("setting an xattr")(e.into()))?;
        // SAFETY: NUL-terminated strings and a live buffer of the given length.
        let rc = unsafe { libc::setxattr(path.as_ptr(), name.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                return Err(sys_io("setting an xattr")(e));
            }
        }
    }
    Ok(())
}

fn set_xattr(fd: BorrowedFd<'_>, name: &str, value: &[u8]) -> std::io::Result<()> {
    let cname = CString::new(name).map_err(std::io::Error::other)?;
    // SAFETY: a valid descriptor, a NUL-terminated name and a live buffer of its length.
    let rc = unsafe { libc::fsetxattr(fd.as_raw_fd(), cname.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        // A filesystem without xattrs (or user.* on tmpfs of old kernels) loses them, as
        // Docker's unpack does.
        if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
            return Ok(());
        }
        return Err(e);
    }
    Ok(())
}

fn set_mtime(dir: BorrowedFd<'_>, name: &OsStr, mtime: i64) -> std::result::Result<(), EntryError> {
    let t = nix::sys::time::TimeSpec::new(mtime, 0);
    nix::sys::stat::utimensat(dir, name, &t, &t, nix::sys::stat::UtimensatFlags::NoFollowSymlink)
        .map_err(sys("setting times"))
}

/// Copies file content, seeking over whole zero blocks so the result is sparse; returns the
/// logical size.
fn copy_sparse(r: &mut dyn Read, f: &mut File) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 128 * 1024];
    let mut n = 0u64;
    let mut hole = false;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        let chunk = &buf[..k];
        if chunk.iter().all(|b| *b == 0) {
            f.seek(SeekFrom::Current(i64::try_from(k).unwrap_or(i64::MAX)))?;
            hole = true;
        } else {
            f.write_all(chunk)?;
            hole = false;
        }
        let before = n;
        n += k as u64;
        if before / crate::content::WRITEBACK_CHUNK != n / crate::content::WRITEBACK_CHUNK {
            crate::content::start_writeback(f);
        }
    }
    if hole {
        f.set_len(n)?;
    }
    if n >= 1 << 20 {
        crate::content::start_writeback(f);
    }
    Ok(n)
}

/// Whether this process may create device nodes (CAP_MKNOD in the initial user namespace
/// is what counts for usable devices; a user namespace's root gets EPERM).
fn caps_allow_mknod() -> bool {
    !safepath::userns::in_user_namespace() && nix::unistd::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_testutil::require_root;
    use berth_testutil::tars::{build, gzip, Entry as E};
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    fn unpack_into(data: &[u8]) -> (berth_testutil::TempDir, Result<Unpacked>) {
        let dir = berth_testutil::TempDir::new("unpack");
        let r = unpack("sha256:test", data, dir.path());
        (dir, r)
    }

    #[test]
    fn unpacks_every_kind_of_entry() {
        require_root!();
        let tar = build(&[
            E::Dir("etc/".into(), 0o755),
            E::File("etc/hosts".into(), 0o644, b"127.0.0.1 localhost\n".to_vec()),
            E::File("bin/tool".into(), 0o4755, b"#!/bin/sh\n".to_vec()),
            E::Symlink("etc/link".into(), "hosts".into()),
            E::Hardlink("etc/hard".into(), "etc/hosts".into()),
            E::Fifo("run/fifo".into()),
            E::Char("dev/null".into(), 1, 3),
            E::FileXattr(
                "x".into(),
                b"x".to_vec(),
                vec![
                    ("user.note".into(), b"hi".to_vec()),
                    ("trusted.overlay.redirect".into(), b"/etc".to_vec()),
                ],
            ),
            E::File("gone/.wh.old".into(), 0o644, vec![]),
            E::File("opaque/.wh..wh..opq".into(), 0o644, vec![]),
        ]);
        for data in [tar.clone(), gzip(&tar)] {
            let (dir, r) = unpack_into(&data);
            let u = r.unwrap();
            assert_eq!(
                u.diff_id,
                crate::content::sha256(&tar),
                "diff id is the uncompressed digest"
            );
            let p = dir.path();
            assert_eq!(
                std::fs::read_to_string(p.join("etc/hosts")).unwrap(),
                "127.0.0.1 localhost\n"
            );
            assert_eq!(
                std::fs::metadata(p.join("bin/tool")).unwrap().permissions().mode() & 0o7777,
                0o4755
            );
            assert_eq!(std::fs::read_link(p.join("etc/link")).unwrap(), Path::new("hosts"));
            assert_eq!(
                std::fs::metadata(p.join("etc/hard")).unwrap().ino(),
                std::fs::metadata(p.join("etc/hosts")).unwrap().ino()
            );
            assert!(std::fs::metadata(p.join("run/fifo")).unwrap().file_type().is_fifo());
            let dev = std::fs::metadata(p.join("dev/null")).unwrap();
            assert!(dev.file_type().is_char_device());
            assert_eq!(dev.rdev(), libc::makedev(1, 3));
            let wh = std::fs::symlink_metadata(p.join("gone/old")).unwrap();
            assert!(wh.file_type().is_char_device() && wh.rdev() == 0, "whiteout");
            let mut buf = [0u8; 8];
            let c = std::ffi::CString::new(p.join("opaque").to_str().unwrap()).unwrap();
            // SAFETY: valid path and name strings, a live buffer.
            let n = unsafe {
                libc::getxattr(
                    c.as_ptr(),
                    c"trusted.overlay.opaque".as_ptr(),
                    buf.as_mut_ptr().cast(),
                    8,
                )
            };
            assert_eq!(n, 1);
            let c = std::ffi::CString::new(p.join("x").to_str().unwrap()).unwrap();
            // SAFETY: as above.
            let n = unsafe {
                libc::getxattr(
                    c.as_ptr(),
                    c"trusted.overlay.redirect".as_ptr(),
                    buf.as_mut_ptr().cast(),
                    8,
                )
            };
            assert!(n < 0, "a layer cannot set overlay xattrs");
            assert_eq!(std::fs::metadata(p.join("etc/hosts")).unwrap().mtime(), 1_700_000_000);
        }
    }

    #[test]
    fn hostile_layers_cannot_write_outside() {
        require_root!();
        let victim = berth_testutil::TempDir::new("victim");
        let v = victim.path().to_str().unwrap().to_string();
        let outside = |dir: &Path| {
            assert_eq!(std::fs::read_dir(victim.path()).unwrap().count(), 0, "written outside");
            let _ = dir;
        };
        // `..` is refused outright.
        let (_d, r) = unpack_into(&build(&[E::File("../escape".into(), 0o644, b"x".to_vec())]));
        assert!(
            matches!(r, Err(ImageError::BadLayer { ref reason, .. }) if reason.contains("..")),
            "{r:?}"
        );
        let (_d, r) = unpack_into(&build(&[E::File("a/../../escape".into(), 0o644, b"x".to_vec())]));
        r.unwrap_err();
        // Absolute names land inside.
        let abs = format!("{v}/abs");
        let (d, r) = unpack_into(&build(&[E::File(abs.clone(), 0o644, b"x".to_vec())]));
        r.unwrap();
        assert!(d.path().join(abs.trim_start_matches('/')).exists());
        outside(d.path());
        // A symlink to the outside, then a write through it: resolved inside the layer.
        let (d, r) = unpack_into(&build(&[
            E::Symlink("evil".into(), v.clone()),
            E::File("evil/pwned".into(), 0o644, b"x".to_vec()),
        ]));
        let _ = r;
        outside(d.path());
        let (d, r) = unpack_into(&build(&[
            E::Symlink("up".into(), "../../../../../../../../".into()),
            E::File(format!("up{v}/pwned"), 0o644, b"x".to_vec()),
        ]));
        let _ = r;
        outside(d.path());
        // Replacing a symlink with a file writes the file, not through the link.
        let target = format!("{v}/file");
        let (d, r) = unpack_into(&build(&[
            E::Symlink("f".into(), target),
            E::File("f".into(), 0o644, b"x".to_vec()),
        ]));
        r.unwrap();
        assert!(std::fs::symlink_metadata(d.path().join("f")).unwrap().is_file());
        outside(d.path());
        // Hard links to host files or out of the layer are refused.
        for t in ["/etc/shadow", "../../etc/shadow", "etc/shadow"] {
            let (_d, r) = unpack_into(&build(&[E::Hardlink("h".into(), t.into())]));
            assert!(r.is_err(), "hard link to {t} accepted");
        }
        // Hard link through a symlinked parent to the outside.
        std::fs::write(victim.path().join("secret"), "s").unwrap();
        let (_d, r) = unpack_into(&build(&[
            E::Symlink("l".into(), v.clone()),
            E::Hardlink("h".into(), "l/secret".into()),
        ]));
        assert!(r.is_err(), "hard link through a symlink to the host");
        assert_eq!(std::fs::metadata(victim.path().join("secret")).unwrap().nlink(), 1);
        std::fs::remove_file(victim.path().join("secret")).unwrap();
        // A header that claims 10 GB: refused as truncated, nothing big written.
        let (d, r) = unpack_into(&build(&[E::Lying("bomb".into(), 10 << 30)]));
        r.unwrap_err();
        let used = std::fs::metadata(d.path().join("bomb"))
            .map(|m| m.blocks() * 512)
            .unwrap_or(0);
        assert!(used < 1 << 20, "bomb used {used} bytes");
        // Not a tar at all.
        let (_d, r) =
            unpack_into(b"this is not a tar archive, just some text that is long enough to fill a block.......");
        r.unwrap_err();
    }
}
