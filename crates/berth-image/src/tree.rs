//! A directory tree as tar entries, walked from descriptors: every entry is opened with
//! `openat(parent, name, O_PATH | O_NOFOLLOW)` relative to its directory's descriptor, so
//! no path string is ever handed to the kernel whole. A tree deeper than `PATH_MAX` (a
//! container can make one) is archived like any other, a symlink is archived as a symlink
//! and never followed, and a rename of a parent during the walk cannot redirect it. `cp`
//! and `export` write containers' files with it.

use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, Mode, SFlag};

fn io(e: nix::errno::Errno) -> io::Error {
    io::Error::from(e)
}

fn header(st: &FileStat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(u64::from(st.st_uid));
    h.set_gid(u64::from(st.st_gid));
    h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
    h.set_size(0);
    h
}

/// Exactly `left` bytes of `inner`: cut, or zero-padded when it ends early.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: io::Read> io::Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.left).unwrap_or(usize::MAX).min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = match self.inner.read(&mut buf[..want])? {
            0 => {
                buf[..want].fill(0);
                want
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// Appends the entry behind `fd` (an `O_PATH | O_NOFOLLOW` descriptor) to `b` as `name`,
/// and, for a directory, everything under it, in name order. An empty `name` archives a
/// directory's contents only (what `export` writes). Sockets are left out.
pub fn append<W: Write>(b: &mut tar::Builder<W>, fd: BorrowedFd<'_>, name: &Path) -> io::Result<()> {
    let st = nix::sys::stat::fstat(fd).map_err(io)?;
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    let at = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", name.display()));
    match kind {
        SFlag::S_IFDIR => {
            if !name.as_os_str().is_empty() {
                let mut h = header(&st, tar::EntryType::Directory);
                b.append_data(&mut h, name, io::empty()).map_err(at)?;
            }
            let dir = nix::fcntl::openat(
                fd,
                ".",
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| at(io(e)))?;
            let mut names: Vec<std::ffi::OsString> = Vec::new();
            {
                let dup = dir.try_clone().map_err(at)?;
                let mut d = nix::dir::Dir::from_fd(dup).map_err(|e| at(io(e)))?;
                for e in d.iter() {
                    let e = e.map_err(|e| at(io(e)))?;
                    let n = e.file_name().to_bytes();
                    if n != b"." && n != b".." {
                        names.push(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(n).to_os_string());
                    }
                }
            }
            names.sort();
            for n in names {
                let child: OwnedFd = match nix::fcntl::openat(
                    &dir,
                    n.as_os_str(),
                    OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => fd,
                    // Gone since the listing (a running container's files change).
                    Err(nix::errno::Errno::ENOENT) => continue,
                    Err(e) => return Err(at(io(e))),
                };
                append(b, child.as_fd(), &name.join(&n))?;
            }
            Ok(())
        }
        SFlag::S_IFREG => {
            let f = berth_safepath::reopen(fd, OFlag::O_RDONLY).map_err(at)?;
            let mut h = header(&st, tar::EntryType::Regular);
            h.set_size(u64::try_from(st.st_size).unwrap_or(0));
            // The size in the header is what was stat'ed: a file that grows meanwhile is
            // cut there, one that shrinks is padded with zeros, so the tar stays whole.
            let mut r = Exact {
                inner: std::fs::File::from(f),
                left: h.size().unwrap_or(0),
            };
            b.append_data(&mut h, name, &mut r).map_err(at)
        }
        SFlag::S_IFLNK => {
            let target = nix::fcntl::readlinkat(fd, "").map_err(|e| at(io(e)))?;
            let mut h = header(&st, tar::EntryType::Symlink);
            b.append_link(&mut h, name, Path::new(&target)).map_err(at)
        }
        SFlag::S_IFCHR | SFlag::S_IFBLK => {
            let kind = if kind == SFlag::S_IFCHR {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            };
            let mut h = header(&st, kind);
            h.set_device_major(libc::major(st.st_rdev)).map_err(at)?;
            h.set_device_minor(libc::minor(st.st_rdev)).map_err(at)?;
            b.append_data(&mut h, name, io::empty()).map_err(at)
        }
        SFlag::S_IFIFO => {
            let mut h = header(&st, tar::EntryType::Fifo);
            b.append_data(&mut h, name, io::empty()).map_err(at)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_a_tree_deeper_than_path_max_without_following_links() {
        let dir = berth_testutil::TempDir::new("tree-deep");
        let base = dir.path().join("t");
        std::fs::create_dir(&base).unwrap();
        // 40 levels of 100-byte names: a 4 KiB path, past PATH_MAX.
        let seg = "d".repeat(100);
        let mut fd = nix::fcntl::open(&base, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        for _ in 0..41 {
            nix::sys::stat::mkdirat(&fd, seg.as_str(), Mode::from_bits_truncate(0o755)).unwrap();
            fd = nix::fcntl::openat(&fd, seg.as_str(), OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        }
        let f = nix::fcntl::openat(
            &fd,
            "leaf",
            OFlag::O_CREAT | OFlag::O_WRONLY,
            Mode::from_bits_truncate(0o640),
        )
        .unwrap();
        std::fs::File::from(f).write_all(b"deep").unwrap();
        std::os::unix::fs::symlink("/etc", base.join("link")).unwrap();

        let top = nix::fcntl::open(&base, OFlag::O_PATH | OFlag::O_NOFOLLOW, Mode::empty()).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        append(&mut b, top.as_fd(), Path::new("t")).unwrap();
        let data = b.into_inner().unwrap();
        let mut ar = tar::Archive::new(data.as_slice());
        let mut found = false;
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let p = e.path().unwrap().into_owned();
            if p.ends_with("leaf") {
                assert!(p.as_os_str().len() > 4096, "{}", p.display());
                let mut s = String::new();
                io::Read::read_to_string(&mut e, &mut s).unwrap();
                assert_eq!(s, "deep");
                assert_eq!(e.header().mode().unwrap(), 0o640);
                found = true;
            }
            if p == Path::new("t/link") {
                assert_eq!(e.header().entry_type(), tar::EntryType::Symlink);
                assert_eq!(e.link_name().unwrap().unwrap(), Path::new("/etc"));
            }
        }
        assert!(found);
        // Leave nothing too deep for remove_dir_all's path-based walk.
        let _ = std::process::Command::new("rm").arg("-rf").arg(&base).status();
    }
}
