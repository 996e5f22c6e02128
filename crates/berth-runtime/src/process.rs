//! The last steps before the user program runs (config.md "Process"): rlimits, oom score,
//! umask, no_new_privs, the user and groups, the five capability sets, seccomp, cwd, and the
//! lookup of the program. Shared by a container's init and by `exec`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use berth_oci::oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, PosixRlimitType, Process};
use nix::unistd::{Gid, Uid};

use crate::sys;

/// A failure preparing the process, naming the step.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A step failed.
    #[error("{step}")]
    Step {
        /// What was being done.
        step: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The program was not found.
    #[error("exec: {name:?}: executable file not found in $PATH")]
    NotFound {
        /// args[0].
        name: String,
    },
    /// The program cannot be run.
    #[error("exec: {name:?}: {reason}")]
    NotExecutable {
        /// args[0].
        name: String,
        /// Why.
        reason: Unrunnable,
    },
    /// The `execve` itself failed.
    #[error("exec {}", path.display())]
    Exec {
        /// The program.
        path: PathBuf,
        /// The kernel's answer.
        #[source]
        source: std::io::Error,
    },
    /// Seccomp setup failed.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
}

/// Why a program named by path cannot be run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unrunnable {
    /// Nothing is there.
    Missing,
    /// It is not executable for the process's user.
    PermissionDenied,
    /// It is a directory.
    Directory,
}

impl std::fmt::Display for Unrunnable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unrunnable::Missing => "no such file or directory",
            Unrunnable::PermissionDenied => "permission denied",
            Unrunnable::Directory => "is a directory",
        })
    }
}

impl ProcessError {
    /// The exit code Docker gives a container (or exec) that fails this way: 127 for a
    /// program that is not there, 126 for one that cannot be run, 125 for anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            ProcessError::NotFound { .. }
            | ProcessError::NotExecutable {
                reason: Unrunnable::Missing,
                ..
            } => 127,
            ProcessError::NotExecutable { .. } => 126,
            ProcessError::Exec { source, .. } => match source.raw_os_error() {
                Some(libc::ENOENT) => 127,
                _ => 126,
            },
            ProcessError::Step { .. } | ProcessError::Seccomp(_) => 125,
        }
    }
}

fn step<E: Into<std::io::Error>>(s: impl Into<String>) -> impl FnOnce(E) -> ProcessError {
    let s = s.into();
    move |e| ProcessError::Step {
        step: s,
        source: e.into(),
    }
}

/// The resource number of an rlimit type.
pub fn rlimit_resource(t: PosixRlimitType) -> Option<libc::__rlimit_resource_t> {
    use PosixRlimitType as R;
    Some(match t {
        R::RlimitCpu => libc::RLIMIT_CPU,
        R::RlimitFsize => libc::RLIMIT_FSIZE,
        R::RlimitData => libc::RLIMIT_DATA,
        R::RlimitStack => libc::RLIMIT_STACK,
        R::RlimitCore => libc::RLIMIT_CORE,
        R::RlimitRss => libc::RLIMIT_RSS,
        R::RlimitNproc => libc::RLIMIT_NPROC,
        R::RlimitNofile => libc::RLIMIT_NOFILE,
        R::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        R::RlimitAs => libc::RLIMIT_AS,
        R::RlimitLocks => libc::RLIMIT_LOCKS,
        R::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        R::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        R::RlimitNice => libc::RLIMIT_NICE,
        R::RlimitRtprio => libc::RLIMIT_RTPRIO,
        R::RlimitRttime => libc::RLIMIT_RTTIME,
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// The kernel number of a capability, through its name (`CAP_SYS_ADMIN`).
pub fn cap_number(c: &Capability) -> Option<u32> {
    let name = serde_json::to_value(c).ok()?;
    let name = name.as_str()?;
    let cap: caps::Capability = name.parse().ok()?;
    Some(u32::from(cap.index()))
}

fn mask(set: &Option<Capabilities>) -> u64 {
    set.iter()
        .flatten()
        .filter_map(cap_number)
        .filter(|n| *n < 64)
        .fold(0, |m, n| m | (1u64 << n))
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Drops everything from the bounding set that `caps.bounding` lacks. Needs CAP_SETPCAP, so
/// it runs before the user change.
fn set_bounding(c: &LinuxCapabilities) -> Result<(), ProcessError> {
    let keep = mask(c.bounding());
    for n in 0..=last_cap().min(63) {
        if keep & (1 << n) == 0 {
            match sys::capbset_drop(n) {
                Ok(()) => {}
                // Already gone, or unknown to this kernel.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(e) => return Err(step(format!("dropping capability {n} from the bounding set"))(e)),
            }
        }
    }
    Ok(())
}

fn set_caps(c: &LinuxCapabilities) -> Result<(), ProcessError> {
    sys::capset(mask(c.effective()), mask(c.permitted()), mask(c.inheritable()))
        .map_err(step("setting capabilities"))?;
    let amb = mask(c.ambient());
    for n in 0..64 {
        if amb & (1 << n) != 0 {
            // An ambient capability must be permitted and inheritable; the kernel refuses it
            // otherwise, which runc reports only as a warning.
            let _ = sys::ambient_raise(n);
        }
    }
    Ok(())
}

/// Whether a user namespace forbids setgroups (its setgroups file says deny).
fn setgroups_denied() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny")
}

/// Applies everything of `p` that must happen while still privileged, then switches user and
/// capabilities. Without no_new_privs `seccomp` is installed here, before the switch (loading
/// a filter then needs CAP_SYS_ADMIN); with it, [`late_seccomp`] installs it just before
/// execve, so the filter never has to allow the runtime's own syscalls.
pub fn finalize(p: &Process, seccomp: Option<(&[libc::sock_filter], u32)>) -> Result<(), ProcessError> {
    for r in p.rlimits().iter().flatten() {
        let Some(res) = rlimit_resource(r.typ()) else { continue };
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: lim is a valid rlimit for the duration of the call.
        if unsafe { libc::setrlimit(res, &lim) } < 0 {
            return Err(step(format!("setting rlimit {:?}", r.typ()))(
                std::io::Error::last_os_error(),
            ));
        }
    }
    if let Some(adj) = p.oom_score_adj() {
        match std::fs::write("/proc/self/oom_score_adj", adj.to_string()) {
            // A process in a user namespace may raise its score, never lower it (that takes
            // CAP_SYS_RESOURCE on the host): it keeps the one it has, as Podman's do.
            Err(e)
                if e.kind() == std::io::ErrorKind::PermissionDenied
                    && berth_safepath::userns::in_user_namespace_now() => {}
            r => r.map_err(step("setting oom_score_adj"))?,
        }
    }
    let umask = p.user().umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
    let nnp = p.no_new_privileges() == Some(true);
    if nnp {
        nix::sys::prctl::set_no_new_privs().map_err(step("setting no_new_privs"))?;
    }
    if let Some((prog, flags)) = seccomp {
        if !nnp {
            crate::seccomp::install(prog, flags)?;
        }
    }
    if let Some(c) = p.capabilities() {
        set_bounding(c)?;
    }
    let user = p.user();
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    match nix::unistd::setgroups(&gids) {
        Ok(()) => {}
        Err(_) if gids.is_empty() && setgroups_denied() => {}
        Err(e) => return Err(step("setting additional groups")(e)),
    }
    sys::set_keepcaps(true).map_err(step("keeping capabilities"))?;
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid).map_err(step(format!("setting gid {}", user.gid())))?;
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid).map_err(step(format!("setting uid {}", user.uid())))?;
    match p.capabilities() {
        Some(c) => set_caps(c)?,
        None => sys::capset(0, 0, 0).map_err(step("clearing capabilities"))?,
    }
    sys::set_keepcaps(false).map_err(step("resetting keepcaps"))?;
    Ok(())
}

/// Installs the filter that [`finalize`] left for last (no_new_privs processes).
pub fn late_seccomp(p: &Process, seccomp: Option<(&[libc::sock_filter], u32)>) -> Result<(), ProcessError> {
    if let Some((prog, flags)) = seccomp {
        if p.no_new_privileges() == Some(true) {
            crate::seccomp::install(prog, flags)?;
        }
    }
    Ok(())
}

/// Changes into the process cwd and checks it is inside the container's root: a cwd that
/// resolves outside it (CVE-2024-21626, a leaked host directory descriptor) is refused.
pub fn enter_cwd(cwd: &Path) -> Result<(), ProcessError> {
    nix::unistd::chdir(cwd).map_err(step(format!("changing to cwd {}", cwd.display())))?;
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        _ => Err(step(format!("cwd {} is outside the container", cwd.display()))(
            std::io::Error::from_raw_os_error(libc::ENOENT),
        )),
    }
}

/// The environment for the process: the spec's, plus HOME from /etc/passwd when missing.
pub fn environment(p: &Process) -> Vec<String> {
    let mut env: Vec<String> = p.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let home = home_of(p.user().uid()).unwrap_or_else(|| "/".into());
        env.push(format!("HOME={home}"));
    }
    env
}

fn home_of(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
    })
}

/// Finds args[0] as execvp would, with the PATH of `env`.
pub fn lookup(name: &str, env: &[String]) -> Result<PathBuf, ProcessError> {
    let is_exec = |p: &Path| -> Result<bool, Unrunnable> {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => Err(Unrunnable::Directory),
            Ok(_) => Ok(nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok()),
            Err(_) => Ok(false),
        }
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        let unrunnable = |reason| ProcessError::NotExecutable {
            name: name.into(),
            reason,
        };
        return match is_exec(&p) {
            Ok(true) => Ok(p),
            Ok(false) if p.exists() => Err(unrunnable(Unrunnable::PermissionDenied)),
            Ok(false) => Err(unrunnable(Unrunnable::Missing)),
            Err(reason) => Err(unrunnable(reason)),
        };
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let p = Path::new(dir).join(name);
        if is_exec(&p) == Ok(true) {
            return Ok(p);
        }
    }
    Err(ProcessError::NotFound { name: name.into() })
}

/// Puts every signal back to its default action and unblocks them all. An ignored signal stays ignored across
/// execve, so a container started from a shell under `nohup` (SIGHUP ignored) would
/// otherwise inherit that, and its programs could not even trap the signal.
pub fn reset_signal_dispositions() {
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: a zeroed sigaction with SIG_DFL is a valid argument; signals the kernel
        // or libc reserve just fail with EINVAL, which is ignored.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    // And nothing blocked: a blocked mask is inherited across execve too.
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
}

/// Replaces this process with the program. Returns only on failure.
pub fn exec(path: &Path, args: &[String], env: &[String]) -> ProcessError {
    reset_signal_dispositions();
    let cstr = |s: &[u8]| CString::new(s).unwrap_or_default();
    let path_c = cstr(path.as_os_str().as_bytes());
    let argv: Vec<CString> = args.iter().map(|a| cstr(a.as_bytes())).collect();
    let envp: Vec<CString> = env.iter().map(|e| cstr(e.as_bytes())).collect();
    let e = nix::unistd::execve(&path_c, &argv, &envp)
        .err()
        .unwrap_or(nix::errno::Errno::EINVAL);
    ProcessError::Exec {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_map_to_kernel_numbers() {
        assert_eq!(cap_number(&Capability::Chown), Some(0));
        assert_eq!(cap_number(&Capability::SysAdmin), Some(21));
        assert_eq!(cap_number(&Capability::Bpf), Some(39));
    }

    #[test]
    fn failures_carry_dockers_exit_codes() {
        let env = vec!["PATH=/nonexistent:/bin".to_string()];
        assert_eq!(lookup("no-such-prog-xyz", &env).unwrap_err().exit_code(), 127);
        assert_eq!(lookup("/no/such/prog", &env).unwrap_err().exit_code(), 127);
        assert_eq!(lookup("/etc", &env).unwrap_err().exit_code(), 126);
        assert_eq!(lookup("/etc/passwd", &env).unwrap_err().exit_code(), 126);
        let exec = |errno| ProcessError::Exec {
            path: "/x".into(),
            source: std::io::Error::from_raw_os_error(errno),
        };
        assert_eq!(exec(libc::ENOENT).exit_code(), 127);
        assert_eq!(exec(libc::EACCES).exit_code(), 126);
        assert_eq!(exec(libc::ENOEXEC).exit_code(), 126);
        assert_eq!(
            step("setting rlimits")(std::io::Error::from_raw_os_error(libc::EPERM)).exit_code(),
            125
        );
    }

    #[test]
    fn lookup_uses_env_path() {
        let env = vec!["PATH=/nonexistent:/bin".to_string()];
        assert_eq!(lookup("sh", &env).unwrap(), PathBuf::from("/bin/sh"));
        assert!(matches!(
            lookup("no-such-prog-xyz", &env),
            Err(ProcessError::NotFound { .. })
        ));
        assert!(lookup("/etc", &env).unwrap_err().to_string().contains("directory"));
    }
}
