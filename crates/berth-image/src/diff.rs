//! Diff: a container's overlayfs upper directory turned back into a layer tar (for commit
//! and build). Overlay whiteouts (0/0 character devices) become `.wh.NAME` entries, opaque
//! directories (`trusted.overlay.opaque=y`) a `.wh..wh..opq` entry; hard links within the
//! upper dir stay hard links; xattrs travel as PAX records, except overlayfs's own. Entries
//! are written in sorted order so the same changes give the same digest.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_oci::Digest;
use sha2::{Digest as _, Sha256};

use crate::error::{io_err, ImageError, Result};

/// Counts and hashes what passes to the inner writer.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    n: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.hasher.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the changes recorded in `upper` as an uncompressed layer tar to `out`; returns the
/// diff id and size of the tar.
pub fn diff(upper: &Path, out: &mut dyn Write) -> Result<(Digest, u64)> {
    let mut w = Hashing {
        inner: out,
        hasher: Sha256::new(),
        n: 0,
    };
    {
        let mut b = tar::Builder::new(&mut w as &mut dyn Write);
        b.follow_symlinks(false);
        let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
        walk(upper, Path::new(""), &mut b, &mut links)?;
        b.finish()
            .map_err(|e| ImageError::Invalid(format!("writing layer tar: {e}")))?;
    }
    w.flush()
        .map_err(|e| ImageError::Invalid(format!("writing layer tar: {e}")))?;
    Ok((Digest::sha256_from_bytes(&w.hasher.finalize().into()), w.n))
}

fn tar_err(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |e| ImageError::Invalid(format!("writing layer tar entry {}: {e}", path.display()))
}

fn walk(
    root: &Path,
    rel: &Path,
    b: &mut tar::Builder<&mut dyn Write>,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(&dir)
        .map_err(io_err("listing", &dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(io_err("listing", &dir))?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let r = rel.join(&name);
        let md = std::fs::symlink_metadata(&path).map_err(io_err("reading", &path))?;
        let ft = md.file_type();
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&md, tar::HeaderMode::Complete);
        if ft.is_char_device() && md.rdev() == 0 {
            let wh = rel.join(format!(".wh.{}", name.to_string_lossy()));
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(0);
            h.set_mode(0o600);
            h.set_mtime(md.mtime().try_into().unwrap_or(0));
            b.append_data(&mut h, &wh, std::io::empty()).map_err(tar_err(&wh))?;
            continue;
        }
        let xattrs = xattrs(&path);
        if !xattrs.is_empty() {
            let recs: Vec<(String, Vec<u8>)> = xattrs
                .iter()
                .filter(|(k, _)| !k.starts_with("trusted.overlay.") && !k.starts_with("user.overlay."))
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.clone()))
                .collect();
            if !recs.is_empty() {
                b.append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                    .map_err(tar_err(&r))?;
            }
        }
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            b.append_data(&mut h, &r, std::io::empty()).map_err(tar_err(&r))?;
            if xattrs.iter().any(|(k, v)| {
                k.strip_prefix(berth_safepath::userns::overlay_xattr_prefix()) == Some("opaque") && v.as_slice() == b"y"
            }) {
                let opq = r.join(".wh..wh..opq");
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(0);
                h.set_mode(0o600);
                h.set_mtime(md.mtime().try_into().unwrap_or(0));
                b.append_data(&mut h, &opq, std::io::empty()).map_err(tar_err(&opq))?;
            }
            walk(root, &r, b, links)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path).map_err(io_err("reading link", &path))?;
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, &r, &target).map_err(tar_err(&r))?;
        } else if ft.is_file() {
            if md.nlink() > 1 {
                if let Some(first) = links.get(&(md.dev(), md.ino())) {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    b.append_link(&mut h, &r, first).map_err(tar_err(&r))?;
                    continue;
                }
                links.insert((md.dev(), md.ino()), r.clone());
            }
            let f = std::fs::File::open(&path).map_err(io_err("opening", &path))?;
            b.append_data(&mut h, &r, f).map_err(tar_err(&r))?;
        } else {
            // Devices and fifos: the header carries everything.
            h.set_size(0);
            b.append_data(&mut h, &r, std::io::empty()).map_err(tar_err(&r))?;
        }
    }
    Ok(())
}

/// All xattrs of a path (not following symlinks).
fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return Vec::new();
    };
    let mut names = vec![0u8; 4096];
    // SAFETY: a NUL-terminated path and a live buffer of the given length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    let Ok(n) = usize::try_from(n) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let Ok(cn) = CString::new(name) else { continue };
        let mut val = vec![0u8; 65536];
        // SAFETY: NUL-terminated strings and a live buffer of the given length.
        let k = unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), val.as_mut_ptr().cast(), val.len()) };
        if let Ok(k) = usize::try_from(k) {
            val.truncate(k);
            out.push((String::from_utf8_lossy(name).into_owned(), val));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_testutil::require_root;
    use std::os::unix::fs::symlink;

    struct Mounted(PathBuf);
    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }

    #[test]
    fn upper_dir_round_trips_through_a_layer() {
        require_root!();
        let t = berth_testutil::TempDir::new("diff");
        let p = |s: &str| t.path().join(s);
        for d in ["lower/d", "lower/e", "upper", "work", "merged", "l2", "view"] {
            std::fs::create_dir_all(p(d)).unwrap();
        }
        std::fs::write(p("lower/a"), "old a").unwrap();
        std::fs::write(p("lower/d/x"), "x").unwrap();
        std::fs::write(p("lower/d/y"), "y").unwrap();
        std::fs::write(p("lower/e/gone"), "g").unwrap();
        {
            crate::snapshot::mount_overlay(&p("merged"), &[p("lower")], Some((&p("upper"), &p("work")))).unwrap();
            let _m = Mounted(p("merged"));
            let m = |s: &str| p("merged").join(s);
            std::fs::write(m("a"), "new a").unwrap();
            std::fs::write(m("n"), "new file").unwrap();
            std::fs::remove_file(m("d/x")).unwrap();
            std::fs::remove_dir_all(m("e")).unwrap();
            std::fs::create_dir(m("e")).unwrap();
            std::fs::write(m("e/fresh"), "f").unwrap();
            symlink("n", m("link")).unwrap();
            std::fs::hard_link(m("n"), m("hard")).unwrap();
        }
        let mut tar = Vec::new();
        let (diff_id, n) = diff(&p("upper"), &mut tar).unwrap();
        assert_eq!(n, tar.len() as u64);
        assert_eq!(diff_id, crate::content::sha256(&tar));
        let names: Vec<String> = tar::Archive::new(&tar[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(names.contains(&"d/.wh.x".to_string()), "{names:?}");
        assert!(names.contains(&"e/.wh..wh..opq".to_string()), "{names:?}");
        // Unpacked as a layer over the same lower, the view is the container's.
        let u = crate::unpack::unpack("diff", &tar[..], &p("l2")).unwrap();
        assert_eq!(u.diff_id, diff_id);
        crate::snapshot::mount_overlay(&p("view"), &[p("l2"), p("lower")], None).unwrap();
        let _v = Mounted(p("view"));
        let v = |s: &str| p("view").join(s);
        assert_eq!(std::fs::read_to_string(v("a")).unwrap(), "new a");
        assert_eq!(std::fs::read_to_string(v("n")).unwrap(), "new file");
        assert!(!v("d/x").exists());
        assert_eq!(std::fs::read_to_string(v("d/y")).unwrap(), "y");
        assert!(!v("e/gone").exists(), "opaque directory hides the lower one");
        assert_eq!(std::fs::read_to_string(v("e/fresh")).unwrap(), "f");
        assert_eq!(std::fs::read_link(v("link")).unwrap(), Path::new("n"));
        assert_eq!(
            std::fs::metadata(v("hard")).unwrap().ino(),
            std::fs::metadata(v("n")).unwrap().ino()
        );
        // Same changes, same bytes.
        let mut again = Vec::new();
        assert_eq!(diff(&p("upper"), &mut again).unwrap().0, diff_id);
    }
}
