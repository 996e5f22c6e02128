//! Persistent network namespaces: a new namespace bind-mounted on a file (as `ip netns`
//! does), so it lives until unmounted whatever happens to processes, and code run inside
//! one. A network namespace is a property of each thread: the calling thread enters it and
//! comes back, with no thread of its own (a thread would leave a malloc arena and a cached
//! stack behind in the long-lived monitor that calls this, ~70 KiB of its idle memory).

use std::os::fd::AsFd;
use std::path::Path;

use crate::{io_err, Result};

/// The calling thread's own network namespace, entered again when this is dropped.
struct Return(std::fs::File);

impl Return {
    fn here() -> Result<Return> {
        std::fs::File::open("/proc/thread-self/ns/net")
            .map(Return)
            .map_err(io_err("opening this thread's network namespace"))
    }
}

impl Drop for Return {
    fn drop(&mut self) {
        if nix::sched::setns(self.0.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
            // Carrying on would make every later socket and link in the container's
            // namespace instead of the host's.
            eprintln!("berth: cannot return to the host's network namespace");
            std::process::abort();
        }
    }
}

/// Makes a new network namespace and bind-mounts it on `path` (created empty).
pub fn create(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    }
    std::fs::File::create(path).map_err(io_err(format!("creating {}", path.display())))?;
    let made = (|| {
        let _back = Return::here()?;
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| io_err("unshare(CLONE_NEWNET)")(e.into()))?;
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            path,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| io_err(format!("bind-mounting the namespace on {}", path.display()))(e.into()))
    })();
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

/// Runs `f` inside the namespace at `path` (on the calling thread, which returns to its own
/// namespace afterwards); returns its result.
pub fn run_in<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let ns = std::fs::File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    let _back = Return::here()?;
    nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| io_err("entering the network namespace")(e.into()))?;
    f()
}
