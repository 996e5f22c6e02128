//! Persistent network namespaces: a new namespace bind-mounted on a file (as `ip netns`
//! does), so it lives until unmounted whatever happens to processes, and code run inside
//! one from a short-lived thread (network namespaces are per thread).

use std::os::fd::AsFd;
use std::path::Path;

use crate::{io_err, NetError, Result};

/// Makes a new network namespace and bind-mounts it on `path` (created empty).
pub fn create(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    }
    std::fs::File::create(path).map_err(io_err(format!("creating {}", path.display())))?;
    let target = path.to_path_buf();
    let made = std::thread::spawn(move || -> Result<()> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| io_err("unshare(CLONE_NEWNET)")(e.into()))?;
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| io_err(format!("bind-mounting the namespace on {}", target.display()))(e.into()))
    })
    .join()
    .map_err(|_| NetError::Invalid("the namespace thread panicked".into()))?;
    if made.is_err() {
        let _ = std::fs::remove_file(path);
    }
    made
}

/// Unmounts and removes a namespace made by [`create`] (absent: nothing to do).
pub fn remove(path: &Path) {
    let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(path);
}

/// Runs `f` on a thread inside the namespace at `path`; returns its result.
pub fn run_in<T: Send + 'static>(path: &Path, f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let ns = std::fs::File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    std::thread::spawn(move || -> Result<T> {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| io_err("entering the network namespace")(e.into()))?;
        f()
    })
    .join()
    .map_err(|_| NetError::Invalid("the namespace thread panicked".into()))?
}
