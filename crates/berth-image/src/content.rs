//! The content store: immutable blobs addressed by their sha256 digest.
//!
//! A blob becomes visible only whole and verified: bytes go to `ingest/<hex>.partial`, are
//! hashed as they arrive, fsynced, checked against the expected digest and size, then renamed
//! to `blobs/sha256/<hex>` (and the directory fsynced). A partial file survives a crash or a
//! kill and is resumed by the next write of the same digest; a verification failure deletes it.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use berth_oci::Digest;
use sha2::{Digest as _, Sha256};

use crate::error::{io_err, ImageError, Result};

/// Blobs under `<root>/content`.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// Opens (creating) the store under `root`.
    pub fn open(root: &Path) -> Result<ContentStore> {
        for d in ["blobs/sha256", "ingest"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err("creating", &p))?;
        }
        Ok(ContentStore {
            root: root.to_path_buf(),
        })
    }

    /// Where a blob lives (whether or not it is there).
    pub fn path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join(d.algo().name()).join(d.hex())
    }

    /// Whether the blob is present.
    pub fn has(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    /// The blob's size, if present.
    pub fn size(&self, d: &Digest) -> Option<u64> {
        fs::metadata(self.path(d)).ok().map(|m| m.len())
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        let p = self.path(d);
        File::open(&p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ImageError::NotFound(format!("blob {d} not found")),
            _ => io_err("opening", &p)(e),
        })
    }

    /// Reads a whole blob (for manifests and configs).
    pub fn read(&self, d: &Digest) -> Result<Vec<u8>> {
        let mut f = self.open_blob(d)?;
        let mut v = Vec::new();
        f.read_to_end(&mut v).map_err(io_err("reading", self.path(d)))?;
        Ok(v)
    }

    /// Stores bytes whose digest is computed here; returns it.
    pub fn put(&self, data: &[u8]) -> Result<Digest> {
        let d = sha256(data);
        if self.has(&d) {
            return Ok(d);
        }
        let mut w = self.writer(&d, Some(data.len() as u64))?;
        w.reset()?;
        w.write_all(data).map_err(io_err("writing", w.path.clone()))?;
        w.commit()?;
        Ok(d)
    }

    /// Stores a stream of unknown digest (a layer from an archive): written to a temporary
    /// ingest file, hashed, then moved into place under the digest found.
    pub fn put_stream(&self, r: &mut dyn Read) -> Result<(Digest, u64)> {
        let tmp = self
            .root
            .join("ingest")
            .join(format!("stream-{}-{}.partial", std::process::id(), unique()));
        let mut f = File::create(&tmp).map_err(io_err("creating", &tmp))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut n = 0u64;
        let r = (|| -> Result<()> {
            loop {
                let k = r.read(&mut buf).map_err(io_err("reading stream for", &tmp))?;
                if k == 0 {
                    break;
                }
                h.update(&buf[..k]);
                f.write_all(&buf[..k]).map_err(io_err("writing", &tmp))?;
                n += k as u64;
            }
            f.sync_all().map_err(io_err("syncing", &tmp))
        })();
        if let Err(e) = r {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let d = Digest::sha256_from_bytes(&h.finalize().into());
        let dest = self.path(&d);
        fs::rename(&tmp, &dest).map_err(io_err("renaming into", &dest))?;
        sync_dir(dest.parent().unwrap_or(&self.root));
        Ok((d, n))
    }

    /// A writer for the blob `d`, resuming a partial ingest left by an earlier attempt.
    pub fn writer(&self, d: &Digest, size: Option<u64>) -> Result<BlobWriter> {
        let path = self.root.join("ingest").join(format!("{}.partial", d.hex()));
        // One writer at a time per blob (two pulls of one image share its partial file): the
        // second waits for the first's lock, and opens the file again if the first moved it
        // into place meanwhile.
        let mut file = loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io_err("opening", &path))?;
            let file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
                .map_err(|(_, e)| io_err("locking", &path)(e.into()))?;
            use std::os::unix::fs::MetadataExt;
            let same = match (file.metadata(), fs::metadata(&path)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if same {
                break file;
            }
        };
        // Re-hash what an earlier attempt left, so the digest covers the whole blob.
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut offset = 0u64;
        loop {
            let k = file.read(&mut buf).map_err(io_err("reading", &path))?;
            if k == 0 {
                break;
            }
            hasher.update(&buf[..k]);
            offset += k as u64;
        }
        let mut w = BlobWriter {
            path,
            file,
            hasher,
            offset,
            digest: d.clone(),
            size,
            dest: self.path(d),
        };
        if size.is_some_and(|s| offset > s) {
            w.reset()?;
        }
        Ok(w)
    }

    /// Deletes a blob (no error if absent).
    pub fn delete(&self, d: &Digest) -> Result<()> {
        let p = self.path(d);
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("removing", &p)(e)),
            _ => Ok(()),
        }
    }

    /// Every blob present.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let dir = self.root.join("blobs/sha256");
        let mut v = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
            let e = e.map_err(io_err("listing", &dir))?;
            if let Ok(d) = format!("sha256:{}", e.file_name().to_string_lossy()).parse() {
                v.push(d);
            }
        }
        Ok(v)
    }
}

/// An in-progress blob: write, then [`BlobWriter::commit`].
#[derive(Debug)]
pub struct BlobWriter {
    path: PathBuf,
    file: nix::fcntl::Flock<File>,
    hasher: Sha256,
    offset: u64,
    digest: Digest,
    size: Option<u64>,
    dest: PathBuf,
}

impl BlobWriter {
    /// How many bytes are already there (where a resumed download starts).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Starts over from zero bytes.
    pub fn reset(&mut self) -> Result<()> {
        self.file.set_len(0).map_err(io_err("truncating", &self.path))?;
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(io_err("seeking", &self.path))?;
        self.hasher = Sha256::new();
        self.offset = 0;
        Ok(())
    }

    /// Verifies size and digest, syncs and moves the blob into place. On a mismatch the
    /// partial file is deleted and nothing becomes visible.
    pub fn commit(mut self) -> Result<Digest> {
        self.file.flush().map_err(io_err("writing", &self.path))?;
        if let Some(s) = self.size {
            if s != self.offset {
                let _ = fs::remove_file(&self.path);
                return Err(ImageError::Invalid(format!(
                    "blob {}: size mismatch: expected {s} bytes, got {}",
                    self.digest, self.offset
                )));
            }
        }
        let actual = Digest::sha256_from_bytes(&self.hasher.clone().finalize().into());
        if actual != self.digest {
            let _ = fs::remove_file(&self.path);
            return Err(ImageError::DigestMismatch {
                what: format!("blob {}", self.digest),
                expected: self.digest.to_string(),
                actual: actual.to_string(),
            });
        }
        self.file.sync_all().map_err(io_err("syncing", &self.path))?;
        fs::rename(&self.path, &self.dest).map_err(io_err("renaming into", &self.dest))?;
        if let Some(dir) = self.dest.parent() {
            sync_dir(dir);
        }
        Ok(self.digest)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        let before = self.offset;
        self.offset += n as u64;
        if before / WRITEBACK_CHUNK != self.offset / WRITEBACK_CHUNK {
            start_writeback(&self.file);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Bytes between writeback kicks of a file being written.
pub(crate) const WRITEBACK_CHUNK: u64 = 8 << 20;

/// Starts writing a file's dirty pages to disk without waiting, so the fsync that makes it
/// durable later finds little left to do: the disk works while the CPU downloads and
/// decompresses instead of after.
pub(crate) fn start_writeback(f: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range on a descriptor we own; it only schedules I/O.
    unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

/// sha256 of some bytes, as a digest.
pub fn sha256(data: &[u8]) -> Digest {
    Digest::sha256_from_bytes(&Sha256::digest(data).into())
}

/// Fsyncs a directory so a rename in it survives a crash (best effort).
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// A process-unique counter for temporary names.
pub(crate) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (u64::from(nanos) << 20) ^ N.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_resume_and_refuse_bad_content() {
        let dir = berth_testutil::TempDir::new("content");
        let cs = ContentStore::open(dir.path()).unwrap();
        let d = cs.put(b"hello").unwrap();
        assert_eq!(cs.read(&d).unwrap(), b"hello");
        // A partial ingest is resumed.
        let data = b"0123456789".repeat(1000);
        let want = sha256(&data);
        let mut w = cs.writer(&want, Some(data.len() as u64)).unwrap();
        w.write_all(&data[..4000]).unwrap();
        drop(w);
        let mut w = cs.writer(&want, Some(data.len() as u64)).unwrap();
        assert_eq!(w.offset(), 4000);
        w.write_all(&data[4000..]).unwrap();
        assert_eq!(w.commit().unwrap(), want);
        assert_eq!(cs.read(&want).unwrap(), data);
        // Wrong bytes never become visible.
        let other = sha256(b"other");
        let mut w = cs.writer(&other, None).unwrap();
        w.write_all(b"not other").unwrap();
        assert!(matches!(w.commit(), Err(ImageError::DigestMismatch { .. })));
        assert!(!cs.has(&other));
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);
        let (sd, n) = cs.put_stream(&mut &b"stream"[..]).unwrap();
        assert_eq!((sd, n), (sha256(b"stream"), 6));
    }

    #[test]
    fn two_writers_of_one_blob_take_turns() {
        let dir = berth_testutil::TempDir::new("content-race");
        let cs = ContentStore::open(dir.path()).unwrap();
        let data = b"abcdefgh".repeat(4096);
        let want = sha256(&data);
        let mut first = cs.writer(&want, Some(data.len() as u64)).unwrap();
        first.write_all(&data[..1000]).unwrap();
        std::thread::scope(|s| {
            // The second waits for the first, which moves the partial file into place.
            let second = s.spawn(|| {
                let mut w = cs.writer(&want, Some(data.len() as u64)).unwrap();
                assert_eq!(w.offset(), 0, "the first's file is not the second's");
                w.write_all(&data).unwrap();
                w.commit().unwrap()
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            first.write_all(&data[1000..]).unwrap();
            assert_eq!(first.commit().unwrap(), want);
            assert_eq!(second.join().unwrap(), want);
        });
        assert_eq!(cs.read(&want).unwrap(), data);
    }
}
