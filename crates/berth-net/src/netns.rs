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

/// Whether a thread that leaves the host's network namespace may come back: not in a user
/// namespace (a rootless engine), whose root has no say over the host's namespace. There
/// the work runs on a thread of its own that ends with it.
fn can_return() -> bool {
    static INITIAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INITIAL.get_or_init(|| {
        let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
        map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"]
    })
}

/// Runs `f` with the calling thread free to change its network namespace: on this thread
/// (returned to its namespace afterwards) or, where it could not return, on a scoped one.
fn isolated<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    if can_return() {
        let _back = Return::here()?;
        return f();
    }
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|_| Err(io_err("a network namespace thread")(std::io::Error::other("panicked"))))
    })
}

/// The namespace berth's bridges, veths and nftables table live in, when not the
/// process's own: a rootless engine's, which may not change the host's.
static HOME: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();

/// Makes the namespace at `path` the home of every later link and nftables change of this
/// process (once; a second call changes nothing).
pub fn set_home(path: &Path) -> Result<()> {
    if HOME.get().is_none() {
        let f = std::fs::File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
        let _ = HOME.set(f);
    }
    Ok(())
}

/// The home namespace set by [`set_home`], if any.
pub(crate) fn home() -> Option<&'static std::fs::File> {
    HOME.get()
}

/// Runs `f` in the home namespace (on a thread of its own), or here without one.
pub(crate) fn in_home<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    match home() {
        None => f(),
        Some(h) => isolated(move || {
            nix::sched::setns(h.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| io_err("entering the home network namespace")(e.into()))?;
            f()
        }),
    }
}

/// Makes a new network namespace and bind-mounts it on `path` (created empty).
pub fn create(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    }
    std::fs::File::create(path).map_err(io_err(format!("creating {}", path.display())))?;
    let made = isolated(|| {
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
    });
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
pub fn run_in<T: Send>(path: &Path, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let ns = std::fs::File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    isolated(move || {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| io_err("entering the network namespace")(e.into()))?;
        f()
    })
}
