//! The data root's permission model (CVE-2021-41091 is what happens without one: a host user
//! who can walk into an unpacked layer runs its setuid-root files, or opens a device node a
//! layer carried).
//!
//! - Every directory that leads to image or container content is `0700`, owned by root: the
//!   root itself and, behind it for defence in depth, `content/`, `snapshots/`,
//!   `containers/` (and each container's directory), `volumes/`, `tmp/`. No other
//!   user can reach a layer, a rootfs, a volume or a log through the store. (`0710`, with a
//!   group allowed to traverse, is for a non-root process that must walk in, as rootless
//!   will; nothing needs it today.)
//! - Metadata and configuration are `0600`: `berth.db` and its WAL files, each container's
//!   `config.json` (it holds `-e` secrets) and `state.json`.
//! - Logs (`json.log` and its rotations) are `0640`.
//!
//! A store made before this model is repaired when it is opened: the directories and the
//! database are checked at every open (a stat each), the per-container files once, recorded
//! by a marker file.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Directories on the way to content.
pub const DIR: u32 = 0o700;
/// Metadata and configuration files.
pub const PRIVATE: u32 = 0o600;
/// Log files.
pub const LOG: u32 = 0o640;

/// The marker of a store whose per-container files have been repaired.
const MARKER: &str = ".perms-v1";

/// Sets `path`'s permission bits to `mode` unless they already are (missing paths are
/// skipped). A shared sticky directory (`/tmp` given as a data root) is left alone.
pub fn set(path: &Path, mode: u32) -> std::io::Result<()> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let cur = md.permissions().mode() & 0o7777;
    if md.file_type().is_symlink() || cur == mode || (md.is_dir() && cur & 0o1000 != 0) {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Makes `path` (and missing parents) and gives it [`DIR`]'s mode.
pub fn make_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)?;
    set(path, DIR)
}

/// Applies the model to the store under `root` (see the module's documentation).
pub fn secure(root: &Path) -> std::io::Result<()> {
    set(root, DIR)?;
    // `run/` (the runtime state of a non-default root) is the engine's to set.
    for d in ["content", "snapshots", "containers", "volumes", "tmp"] {
        set(&root.join(d), DIR)?;
    }
    for f in ["berth.db", "berth.db-wal", "berth.db-shm"] {
        set(&root.join(f), PRIVATE)?;
    }
    if root.join(MARKER).exists() {
        return Ok(());
    }
    if let Ok(rd) = std::fs::read_dir(root.join("containers")) {
        for e in rd.flatten() {
            let dir = e.path();
            set(&dir, DIR)?;
            set(&dir.join("config.json"), PRIVATE)?;
            set(&dir.join("state.json"), PRIVATE)?;
            if let Ok(files) = std::fs::read_dir(&dir) {
                for f in files.flatten() {
                    if f.file_name().to_string_lossy().starts_with("json.log") {
                        set(&f.path(), LOG)?;
                    }
                }
            }
        }
    }
    std::fs::write(root.join(MARKER), b"")?;
    set(&root.join(MARKER), PRIVATE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn repairs_an_old_store_once() {
        let t = berth_testutil::TempDir::new("perms-repair");
        let root = t.path().join("root");
        let c = root.join("containers/abc");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::create_dir_all(root.join("snapshots/x/fs")).unwrap();
        for f in ["config.json", "state.json", "json.log", "json.log.1", "hostname"] {
            std::fs::write(c.join(f), "{}").unwrap();
            std::fs::set_permissions(c.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        std::fs::write(root.join("berth.db"), "").unwrap();
        for d in [&root, &root.join("snapshots"), &root.join("containers"), &c] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        secure(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("snapshots")), 0o700);
        assert_eq!(mode(&root.join("containers")), 0o700);
        assert_eq!(mode(&c), 0o700);
        assert_eq!(mode(&c.join("config.json")), 0o600);
        assert_eq!(mode(&c.join("state.json")), 0o600);
        assert_eq!(mode(&c.join("json.log")), 0o640);
        assert_eq!(mode(&c.join("json.log.1")), 0o640);
        // Bind-mounted into the container: readable by its users, behind a 0700 directory.
        assert_eq!(mode(&c.join("hostname")), 0o644);
        assert_eq!(mode(&root.join("berth.db")), 0o600);
        // The per-container walk is done once; the top directories are checked every time.
        std::fs::set_permissions(c.join("config.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        secure(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&c.join("config.json")), 0o644);
    }

    #[test]
    fn leaves_a_sticky_shared_directory_alone() {
        let t = berth_testutil::TempDir::new("perms-sticky");
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        set(t.path(), DIR).unwrap();
        assert_eq!(mode(t.path()), 0o1777);
    }
}
