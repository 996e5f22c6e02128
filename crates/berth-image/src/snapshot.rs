//! Snapshots: one unpacked directory per layer chain id (`snapshots/<hex>/fs`), shared by
//! every image that has that layer stack, and overlayfs mounts over them.
//!
//! A snapshot is made in `snapshots/tmp-*`, and renamed to its final name only when the
//! unpack succeeded: a bad layer or a crash never leaves a partial snapshot under a chain id
//! (leftover `tmp-*` directories are removed when the store opens).

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use berth_oci::Digest;

use crate::content::unique;
use crate::error::{io_err, ImageError, Result};

/// The snapshot directory tree.
#[derive(Debug, Clone)]
pub struct Snapshots {
    dir: PathBuf,
}

impl Snapshots {
    /// Opens (creating) `dir` and clears temporary leftovers of interrupted unpacks.
    pub fn open(dir: &Path) -> Result<Snapshots> {
        fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if let Some(pid) = name.strip_prefix("tmp-").and_then(|r| r.split('-').next()) {
                    // Another live process may be unpacking into its own tmp dir.
                    let alive = pid
                        .parse::<i32>()
                        .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
                    if !alive {
                        let _ = fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        Ok(Snapshots { dir: dir.to_path_buf() })
    }

    /// The unpacked tree of a chain id.
    pub fn path(&self, chain: &Digest) -> PathBuf {
        self.dir.join(chain.hex()).join("fs")
    }

    /// Whether the snapshot's directory exists.
    pub fn exists(&self, chain: &Digest) -> bool {
        self.path(chain).is_dir()
    }

    /// Makes the snapshot `chain` by running `fill` on an empty directory; on success the
    /// directory becomes the snapshot atomically, on failure it is removed.
    pub fn create<T>(&self, chain: &Digest, fill: impl FnOnce(&Path) -> Result<T>) -> Result<Option<T>> {
        if self.exists(chain) {
            return Ok(None);
        }
        let tmp = self.dir.join(format!("tmp-{}-{}", std::process::id(), unique()));
        let fsdir = tmp.join("fs");
        fs::create_dir_all(&fsdir).map_err(io_err("creating", &fsdir))?;
        fs::set_permissions(&fsdir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(io_err("chmod", &fsdir))?;
        let out = match fill(&fsdir) {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        if let Ok(d) = fs::File::open(&fsdir) {
            // SAFETY: syncfs on a directory we just opened; it only flushes the filesystem.
            unsafe { libc::syncfs(d.as_raw_fd()) };
        }
        let dest = self.dir.join(chain.hex());
        match fs::rename(&tmp, &dest) {
            Ok(()) => {
                crate::content::sync_dir(&self.dir);
                Ok(Some(out))
            }
            // Someone else made it meanwhile: theirs is as good as ours.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY)) => {
                let _ = fs::remove_dir_all(&tmp);
                Ok(None)
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(io_err("renaming into", &dest)(e))
            }
        }
    }

    /// Removes a snapshot's directory.
    pub fn remove(&self, chain: &Digest) -> Result<()> {
        let d = self.dir.join(chain.hex());
        match fs::remove_dir_all(&d) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("removing", &d)(e)),
            _ => Ok(()),
        }
    }
}

/// Mounts an overlay at `target`: `lowers` top first, and with `upper`/`work` a writable
/// one. Uses the new mount API with one `lowerdir+` per layer (no limit from the one-page
/// mount option string, kernel 6.8+), falling back to the classic option string.
pub fn mount_overlay(target: &Path, lowers: &[PathBuf], upper: Option<(&Path, &Path)>) -> Result<()> {
    if lowers.is_empty() {
        return Err(ImageError::Invalid("an overlay needs at least one lower layer".into()));
    }
    // In a user namespace (rootless) the kernel's overlayfs is used from Linux 5.11 on;
    // where it refuses, fuse-overlayfs does the same job (also when BERTH_FUSE_OVERLAY=1).
    let rootless = berth_safepath::userns::in_user_namespace();
    if let (true, Some(u)) = (rootless, upper) {
        if std::env::var("BERTH_FUSE_OVERLAY").is_ok_and(|v| v == "1") {
            return mount_fuse_overlay(target, lowers, u, "", "");
        }
    }
    let refused = |e: &std::io::Error| rootless && matches!(e.raw_os_error(), Some(libc::EPERM));
    match mount_overlay_fsconfig(target, lowers, upper) {
        Ok(()) => return Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EINVAL)) => {}
        Err(e) if refused(&e) => {
            return match upper {
                Some(u) => mount_fuse_overlay(target, lowers, u, "", ""),
                None => Err(io_err("mounting overlay on", target)(e)),
            }
        }
        Err(e) => return Err(io_err("mounting overlay on", target)(e)),
    }
    let lower = lowers
        .iter()
        .map(|p| p.to_string_lossy().replace(':', "\\:"))
        .collect::<Vec<_>>()
        .join(":");
    let mut opts = format!("lowerdir={lower}");
    if berth_safepath::userns::in_user_namespace() {
        opts.push_str(",userxattr");
    }
    if let Some((u, w)) = upper {
        opts.push_str(&format!(",upperdir={},workdir={}", u.display(), w.display()));
    }
    if lowers.len() == 1 && upper.is_none() {
        // overlayfs refuses a single lower without an upper: bind it read-only instead.
        return bind_readonly(&lowers[0], target);
    }
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(opts.as_str()),
    )
    .map_err(|e| io_err("mounting overlay on", target)(e.into()))
}

/// Mounts an overlay at `target` with fuse-overlayfs, presenting owners through the maps
/// (`uidmapping`/`gidmapping`, `C:H:S` triples joined by `:`): for a rootless container
/// whose user namespace has maps of its own, where the kernel will not idmap the host's
/// filesystem. fuse-overlayfs runs on as the mount's daemon until it is unmounted.
pub fn mount_fuse_overlay(
    target: &Path,
    lowers: &[PathBuf],
    (upper, work): (&Path, &Path),
    uidmap: &str,
    gidmap: &str,
) -> Result<()> {
    let exe = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("fuse-overlayfs"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            ImageError::Invalid(
                "fuse-overlayfs was not found in PATH: a rootless container with its own id map needs it \
                 (apt-get install fuse-overlayfs)"
                    .into(),
            )
        })?;
    let esc = |p: &Path| p.to_string_lossy().replace(',', "\\,").replace(':', "\\:");
    let lower: Vec<String> = lowers.iter().map(|p| esc(p)).collect();
    let mut opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        esc(upper),
        esc(work)
    );
    if !uidmap.is_empty() {
        opts.push_str(&format!(",uidmapping={uidmap},gidmapping={gidmap}"));
    }
    let out = std::process::Command::new(exe)
        .arg("-o")
        .arg(&opts)
        .arg(target)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(io_err("running fuse-overlayfs on", target))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let hint = if msg.contains("/dev/fuse") {
            " (it needs /dev/fuse readable and writable by users, mode 0666 as udev makes it)"
        } else {
            ""
        };
        return Err(ImageError::Invalid(format!(
            "fuse-overlayfs on {}: {msg}{hint}",
            target.display()
        )));
    }
    Ok(())
}

fn bind_readonly(src: &Path, target: &Path) -> Result<()> {
    use nix::mount::MsFlags;
    nix::mount::mount(Some(src), target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| io_err("bind-mounting on", target)(e.into()))?;
    nix::mount::mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(|e| io_err("remounting read-only", target)(e.into()))
}

fn mount_overlay_fsconfig(target: &Path, lowers: &[PathBuf], upper: Option<(&Path, &Path)>) -> std::io::Result<()> {
    use berth_safepath::mount;
    let fs = mount::fsopen("overlay")?;
    // Bottom layer last in the classic string is first here: lowerdir+ appends below.
    for l in lowers {
        mount::set_string(&fs, "lowerdir+", &l.to_string_lossy())?;
    }
    if berth_safepath::userns::in_user_namespace() {
        mount::set_flag(&fs, "userxattr")?;
    }
    if let Some((u, w)) = upper {
        mount::set_string(&fs, "upperdir", &u.to_string_lossy())?;
        mount::set_string(&fs, "workdir", &w.to_string_lossy())?;
    }
    mount::create(&fs)?;
    let attr = if upper.is_none() { mount::ATTR_RDONLY } else { 0 };
    let mnt = mount::fsmount(&fs, attr)?;
    mount::attach(&mnt, target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_testutil::require_root;

    #[test]
    fn overlay_stacks_past_the_mount_option_page_limit() {
        require_root!();
        let t = berth_testutil::TempDir::new("manylayers");
        let mut lowers = Vec::new();
        // 150 layers with long paths: ~12 KB of lowerdir, three times the one-page limit.
        for i in 0..150 {
            let d = t.path().join(format!("{}-{i:03}", "l".repeat(70)));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(format!("f{i}")), i.to_string()).unwrap();
            std::fs::write(d.join("top"), i.to_string()).unwrap();
            lowers.push(d);
        }
        lowers.reverse(); // top first
        let target = t.path().join("merged");
        std::fs::create_dir(&target).unwrap();
        mount_overlay(&target, &lowers, None).unwrap();
        struct Unmount<'a>(&'a Path);
        impl Drop for Unmount<'_> {
            fn drop(&mut self) {
                let _ = nix::mount::umount2(self.0, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        let _u = Unmount(&target);
        assert_eq!(
            std::fs::read_to_string(target.join("top")).unwrap(),
            "149",
            "the top layer wins"
        );
        assert_eq!(std::fs::read_to_string(target.join("f0")).unwrap(), "0");
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 151);
        assert!(
            std::fs::write(target.join("x"), "y").is_err(),
            "read-only without an upper"
        );
    }
}
