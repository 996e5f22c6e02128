//! Rootless berth: an ordinary user's engine. Its store is under `$XDG_DATA_HOME/berth`
//! (`~/.local/share/berth`), its runtime state under `$XDG_RUNTIME_DIR/berth` (a private
//! directory in /tmp without one), its API socket `$XDG_RUNTIME_DIR/berth.sock`.
//!
//! Every command runs in one long-lived user namespace per user, held by a tiny pause
//! process (as Podman's): the user's uid is 0 there and the subordinate ranges of
//! `/etc/subuid` and `/etc/subgid` follow (mapped by `newuidmap`/`newgidmap`), so layers
//! unpack with their owners and the container's root is the user on the host. The pause
//! process also holds a mount namespace: the overlays of running containers live there, and
//! each command joins both namespaces with two `setns` calls before it starts any thread.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use berth_runtime::idmap::{self, IdMapError};
use berth_safepath::userns;

/// Failures entering the user's namespace.
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    /// Mapping ids (no ranges, no helper, a helper's refusal).
    #[error(transparent)]
    IdMap(#[from] IdMapError),
    /// The user's runtime directory is unsafe or cannot be made.
    #[error("{0}")]
    RunDir(String),
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn sys(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RootlessError {
    let what = what.into();
    move |source| RootlessError::Sys { what, source }
}

fn errno(what: &str) -> impl FnOnce(nix::errno::Errno) -> RootlessError + '_ {
    move |e| RootlessError::Sys {
        what: what.to_string(),
        source: e.into(),
    }
}

/// Whether this engine is rootless: run by a non-root user, or inside a user namespace
/// (the one [`enter`] joined).
pub fn is_rootless() -> bool {
    !nix::unistd::geteuid().is_root() || userns::in_user_namespace()
}

/// The user's uid on the host (its own uid outside the namespace).
pub fn host_uid() -> u32 {
    // Before [`enter`] (a non-root euid) the map is not read: it is cached once read.
    if !nix::unistd::geteuid().is_root() {
        nix::unistd::getuid().as_raw()
    } else if userns::in_user_namespace() {
        userns::to_outside(userns::own_uid_map(), 0).unwrap_or(0)
    } else {
        0
    }
}

fn env_dir(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_absolute())
}

fn home() -> PathBuf {
    env_dir("HOME")
        .or_else(|| idmap::user_home(host_uid()))
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// The default data root: `/var/lib/berth` for root, `$XDG_DATA_HOME/berth` (or
/// `~/.local/share/berth`) rootless.
pub fn default_root() -> PathBuf {
    if !is_rootless() {
        return PathBuf::from("/var/lib/berth");
    }
    env_dir("XDG_DATA_HOME")
        .unwrap_or_else(|| home().join(".local/share"))
        .join("berth")
}

/// The rootless runtime directory: `$XDG_RUNTIME_DIR/berth`, or `/tmp/berth-run-UID`.
pub fn run_root() -> PathBuf {
    match env_dir("XDG_RUNTIME_DIR") {
        Some(d) => d.join("berth"),
        None => std::env::temp_dir().join(format!("berth-run-{}", host_uid())),
    }
}

/// The default API socket: `/run/berth/berth.sock` for root; `$XDG_RUNTIME_DIR/berth.sock`
/// (or the runtime directory's) rootless.
pub fn default_socket() -> PathBuf {
    if !is_rootless() {
        return PathBuf::from("/run/berth/berth.sock");
    }
    match env_dir("XDG_RUNTIME_DIR") {
        Some(d) => d.join("berth.sock"),
        None => run_root().join("berth.sock"),
    }
}

/// Makes `dir` (mode 0700) or checks that the one there is a directory of this user's that
/// no one else may enter: a directory in /tmp could be someone else's trap.
fn private_dir(dir: &Path) -> Result<(), RootlessError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match std::fs::DirBuilder::new().mode(0o700).recursive(true).create(dir) {
        Ok(()) => {}
        Err(e) => return Err(RootlessError::RunDir(format!("creating {}: {e}", dir.display()))),
    }
    let md = std::fs::symlink_metadata(dir).map_err(sys(format!("reading {}", dir.display())))?;
    let me = nix::unistd::geteuid().as_raw();
    if !md.is_dir() || md.uid() != me || md.mode() & 0o077 != 0 {
        return Err(RootlessError::RunDir(format!(
            "{} must be a directory of uid {me} with mode 0700 (it is owned by uid {} with mode {:o}): remove it, or set XDG_RUNTIME_DIR",
            dir.display(),
            md.uid(),
            md.mode() & 0o7777
        )));
    }
    Ok(())
}

/// The pause process's pid file: `PID START` (its start time tells a reused pid apart).
fn pause_file(run: &Path) -> PathBuf {
    run.join("pause.pid")
}

fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Enters the user's namespace, making it (with its pause process) if there is none. A
/// no-op for root and inside the namespace. Must run before any thread is started:
/// `setns` into a user namespace refuses a multi-threaded process.
pub fn enter() -> Result<(), RootlessError> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let run = run_root();
    private_dir(&run)?;
    let lock_path = run.join("pause.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(sys(format!("opening {}", lock_path.display())))?;
    let _lock =
        nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| RootlessError::Sys {
            what: format!("locking {}", lock_path.display()),
            source: e.into(),
        })?;
    if let Some(pid) = running_pause(&run) {
        if join(pid).is_ok() {
            return Ok(());
        }
    }
    let pid = spawn_pause()?;
    let text = format!("{pid} {}\n", start_time(pid).unwrap_or(0));
    let tmp = run.join("pause.pid.tmp");
    std::fs::write(&tmp, text).map_err(sys(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, pause_file(&run)).map_err(sys("recording the pause process"))?;
    join(pid)
}

/// The pause process recorded in `run`, if it still runs.
fn running_pause(run: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(pause_file(run)).ok()?;
    let mut f = text.split_whitespace();
    let pid: i32 = f.next()?.parse().ok()?;
    let start: u64 = f.next()?.parse().ok()?;
    (pid > 0 && start_time(pid) == Some(start)).then_some(pid)
}

/// Joins process `pid`'s user and mount namespaces, staying in the same directory.
fn join(pid: i32) -> Result<(), RootlessError> {
    use nix::sched::CloneFlags;
    let cwd = std::env::current_dir().ok();
    let open = |ns: &str| {
        let p = format!("/proc/{pid}/ns/{ns}");
        std::fs::File::open(&p).map_err(sys(format!("opening {p}")))
    };
    let user = open("user")?;
    let mnt = open("mnt")?;
    nix::sched::setns(user.as_fd(), CloneFlags::CLONE_NEWUSER).map_err(errno("joining the user namespace"))?;
    nix::sched::setns(mnt.as_fd(), CloneFlags::CLONE_NEWNS).map_err(errno("joining the mount namespace"))?;
    if let Some(c) = cwd {
        let _ = std::env::set_current_dir(c);
    }
    Ok(())
}

/// Starts the pause process: a child that makes the user and mount namespaces, waits for
/// its ids to be mapped, becomes 0 there and execs this binary as `berth-pause`.
fn spawn_pause() -> Result<i32, RootlessError> {
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let name = idmap::user_name(uid).ok_or_else(|| {
        RootlessError::RunDir(format!(
            "uid {uid} has no entry in /etc/passwd: its subordinate ids cannot be found"
        ))
    })?;
    let uids = idmap::rootless_map(uid, &idmap::ranges("uid", Path::new("/etc/subuid"), &name, uid)?);
    let gids = idmap::rootless_map(gid, &idmap::ranges("gid", Path::new("/etc/subgid"), &name, uid)?);
    idmap::find_helper("newuidmap")?;
    idmap::find_helper("newgidmap")?;
    let (up_r, up_w) = nix::unistd::pipe().map_err(errno("making a pipe"))?;
    let (go_r, go_w) = nix::unistd::pipe().map_err(errno("making a pipe"))?;
    // SAFETY: the process is single-threaded here (enter runs first thing in main); the
    // child only makes system calls and execs.
    match unsafe { nix::unistd::fork() }.map_err(errno("forking the pause process"))? {
        nix::unistd::ForkResult::Child => {
            drop(up_r);
            drop(go_w);
            pause_child(up_w, go_r)
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(up_w);
            drop(go_r);
            let pid = child.as_raw();
            let fail = |e: RootlessError| {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(child, None);
                e
            };
            let mut b = [0u8; 1];
            let mut up = std::fs::File::from(up_r);
            if up.read(&mut b).unwrap_or(0) != 1 {
                return Err(fail(RootlessError::RunDir(
                    "cannot create a user namespace: unprivileged user namespaces may be disabled on this host \
                     (sysctls user.max_user_namespaces, kernel.unprivileged_userns_clone)"
                        .into(),
                )));
            }
            idmap::apply("newuidmap", pid, &uids).map_err(|e| fail(e.into()))?;
            idmap::apply("newgidmap", pid, &gids).map_err(|e| fail(e.into()))?;
            std::fs::File::from(go_w)
                .write_all(&[1])
                .map_err(|e| fail(sys("releasing the pause process")(e)))?;
            Ok(pid)
        }
    }
}

fn pause_child(up: std::os::fd::OwnedFd, go: std::os::fd::OwnedFd) -> ! {
    use nix::sched::CloneFlags;
    let r = (|| -> Option<()> {
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).ok()?;
        std::fs::File::from(up).write_all(&[1]).ok()?;
        let mut b = [0u8; 1];
        (std::fs::File::from(go).read(&mut b).ok()? == 1).then_some(())?;
        let zero_g = nix::unistd::Gid::from_raw(0);
        let zero_u = nix::unistd::Uid::from_raw(0);
        nix::unistd::setresgid(zero_g, zero_g, zero_g).ok()?;
        nix::unistd::setresuid(zero_u, zero_u, zero_u).ok()?;
        nix::unistd::setsid().ok()?;
        nix::unistd::chdir("/").ok()?;
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .ok()?;
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors, which this process owns.
            unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) };
        }
        let exe = c"/proc/self/exe";
        let _ = nix::unistd::execv(exe, &[c"berth-pause"]);
        None
    })();
    let _ = r;
    // SAFETY: leaving the forked child without running the parent's exit handlers.
    unsafe { libc::_exit(1) }
}

/// `berth unshare CMD...`: runs a command in the user's namespace (as its root, which owns
/// the user's store there). Returns only on failure.
pub fn unshare_exec(cmd: &[String]) -> Result<std::convert::Infallible, RootlessError> {
    if !userns::in_user_namespace() {
        return Err(RootlessError::RunDir(
            "berth unshare is for rootless users: root's engine has no user namespace to enter".into(),
        ));
    }
    let shell = std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into());
    let argv: Vec<String> = if cmd.is_empty() { vec![shell] } else { cmd.to_vec() };
    let err = std::os::unix::process::CommandExt::exec(std::process::Command::new(&argv[0]).args(&argv[1..]));
    Err(sys(format!("running {}", argv[0]))(err))
}

/// What `berth info` reports of the user namespace: the uid and gid maps.
pub fn id_mappings() -> (Vec<userns::IdRange>, Vec<userns::IdRange>) {
    let read = |f: &str| userns::parse_map(&std::fs::read_to_string(f).unwrap_or_default());
    (read("/proc/self/uid_map"), read("/proc/self/gid_map"))
}

/// The cgroup v2 subtree the host delegates to this user (relative to the cgroup mount):
/// the highest ancestor of this process's cgroup that the user owns, on a pure v2 host
/// (systemd gives each user `user@UID.service`). None where the host cannot delegate (v1
/// or hybrid, as cgroup v1 controllers are never delegated) or did not.
pub fn delegated_cgroup() -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let berth_runtime::cgroups::Layout::V2(mount) = berth_runtime::cgroups::host_layout().ok()? else {
        return None;
    };
    let own = berth_runtime::cgroups::own_cgroups(&std::fs::read_to_string("/proc/self/cgroup").ok()?);
    let me = nix::unistd::geteuid().as_raw();
    delegated_from(own.get("unified")?, |r| {
        std::fs::metadata(mount.join(r)).is_ok_and(|m| m.uid() == me)
    })
}

/// The highest ancestor of cgroup `own` (itself included) that `owned` says is the user's,
/// if `own` is.
fn delegated_from(own: &str, owned: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let mut rel = PathBuf::from(own.trim_start_matches('/'));
    if rel.as_os_str().is_empty() || !owned(&rel) {
        return None;
    }
    while let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty() && owned(p)) {
        rel = parent.to_path_buf();
    }
    Some(Path::new("/").join(rel))
}

/// Why a rootless container cannot have limits here (None: it can).
pub fn why_no_limits() -> Option<String> {
    if !is_rootless() || delegated_cgroup().is_some() {
        return None;
    }
    Some(match berth_runtime::cgroups::host_layout() {
        Ok(berth_runtime::cgroups::Layout::V2(_)) => format!(
            "no cgroup v2 subtree is delegated to uid {} (systemd's user@{}.service gives one)",
            host_uid(),
            host_uid()
        ),
        _ => "this host mounts cgroup v1 controllers, which are never delegated to a user (limits need a pure cgroup v2 host)".into(),
    })
}

/// Refuses the limits a rootless container cannot have on this host, naming the flag.
pub fn check_limits(r: &crate::model::Record) -> crate::Result<()> {
    let flags = [
        (r.memory > 0, "--memory"),
        (r.memory_reservation > 0, "--memory-reservation"),
        (r.memory_swap > 0, "--memory-swap"),
        (r.cpu_quota > 0, "--cpus/--cpu-quota"),
        (r.cpu_shares > 0, "--cpu-shares"),
        (!r.cpuset_cpus.is_empty(), "--cpuset-cpus"),
        (!r.cpuset_mems.is_empty(), "--cpuset-mems"),
        (r.pids_limit > 0, "--pids-limit"),
        (!r.hugepage_limits.is_empty(), "hugepage limits"),
        (!r.unified.is_empty(), "--cgroup-conf"),
    ];
    let Some((_, flag)) = flags.iter().find(|(set, _)| *set) else {
        return Ok(());
    };
    match why_no_limits() {
        Some(why) => Err(crate::EngineError::Invalid(format!(
            "rootless containers cannot have resource limits ({flag}) here: {why}"
        ))),
        None => Ok(()),
    }
}

/// The container's `cgroupsPath`: under `/berth` (or its `--cgroup-parent`) for root; under
/// the user's delegated subtree rootless; none rootless without one (the runtime then runs
/// the container without a cgroup).
pub fn cgroups_path(r: &crate::model::Record) -> Option<String> {
    let parent = if r.cgroup_parent.is_empty() {
        "/berth"
    } else {
        r.cgroup_parent.as_str()
    };
    if !is_rootless() {
        return Some(format!("{parent}/{}", r.id));
    }
    let d = delegated_cgroup()?;
    Some(format!(
        "{}{parent}/{}",
        d.display().to_string().trim_end_matches('/'),
        r.id
    ))
}

/// The network namespace a rootless user's bridges (user-defined networks) live in, as
/// Podman's "rootless netns": made on first use under the runtime directory, with pasta
/// giving it (and so the containers behind its bridges) a way out through the host's
/// sockets. Every later link and nftables change of this process goes there.
pub fn network_home(run: &Path) -> crate::Result<()> {
    let ns = network_home_path(run);
    let is_ns = std::fs::File::open(&ns).ok().is_some_and(|f| {
        nix::sys::statfs::fstatfs(&f).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
    });
    let err = |e: berth_net::NetError| crate::EngineError::Invalid(format!("the rootless network namespace: {e}"));
    if !is_ns {
        let _ = std::fs::remove_file(&ns);
        berth_net::netns::create(&ns).map_err(err)?;
        berth_net::link::loopback_up(&ns).map_err(err)?;
        berth_net::netns::run_in(&ns, || {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(|e| berth_net::NetError::Io {
                op: "enabling forwarding".into(),
                source: e,
            })
        })
        .map_err(err)?;
        start_home_pasta(run, &ns);
    }
    berth_net::netns::set_home(&ns).map_err(err)
}

/// pasta on the rootless network namespace, for the way out. Without pasta the user's
/// networks still connect their containers, only not to the outside.
fn start_home_pasta(run: &Path, ns: &Path) {
    let Ok(exe) = crate::networks::usermode::helper("pasta") else {
        return;
    };
    let _ = std::process::Command::new(exe)
        .args([
            "--config-net",
            "--quiet",
            "--no-map-gw",
            "-t",
            "none",
            "-u",
            "none",
            "-T",
            "none",
            "-U",
            "none",
        ])
        .arg("--netns")
        .arg(ns)
        .arg("--pid")
        .arg(run.join("netns").join("rootless.pid"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Where [`network_home`] keeps the namespace.
pub fn network_home_path(run: &Path) -> PathBuf {
    run.join("netns").join("rootless")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delegated_subtree_is_the_highest_one_owned() {
        // systemd's layout: user@1000.service and below are the user's.
        let mine = [
            "user.slice/user-1000.slice/user@1000.service",
            "user.slice/user-1000.slice/user@1000.service/app.slice",
            "user.slice/user-1000.slice/user@1000.service/app.slice/x.scope",
        ];
        let owned = |p: &Path| mine.iter().any(|m| Path::new(m) == p);
        assert_eq!(
            delegated_from("/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope", owned),
            Some(PathBuf::from("/user.slice/user-1000.slice/user@1000.service"))
        );
        // A session scope root owns: nothing delegated.
        assert_eq!(
            delegated_from("/user.slice/user-1000.slice/session-3.scope", owned),
            None
        );
        assert_eq!(delegated_from("/", owned), None);
    }

    #[test]
    fn limits_are_named_by_their_flag() {
        let r = crate::model::Record {
            memory: 64 << 20,
            ..Default::default()
        };
        match why_no_limits() {
            Some(_) => {
                let e = check_limits(&r).unwrap_err().to_string();
                assert!(e.contains("--memory"), "{e}");
            }
            None => check_limits(&r).unwrap(),
        }
    }
}
