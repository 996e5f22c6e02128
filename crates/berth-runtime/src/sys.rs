//! The few raw syscalls that nix does not wrap. Every `unsafe` block of the runtime lives here
//! (and in the fork calls of `process.rs`), each with the invariant it relies on.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

/// A system call that failed: what was being done, and the kernel's answer.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {source}")]
pub struct SysError {
    /// What was being done.
    pub op: String,
    /// The kernel's answer.
    pub source: io::Error,
}

/// Makes a [`SysError`] for `op` from nix's errno.
pub fn errno(op: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> SysError {
    let op = op.into();
    move |e| SysError { op, source: e.into() }
}

/// Makes a [`SysError`] for `op` from an I/O error.
pub fn io_err(op: impl Into<String>) -> impl FnOnce(io::Error) -> SysError {
    let op = op.into();
    move |source| SysError { op, source }
}

/// Marks every descriptor from `first` upwards close-on-exec, so nothing the runtime or its
/// caller had open reaches the container process (CVE-2024-21626 was such a leak).
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range takes plain integers and only changes descriptor flags; with
    // CLOSE_RANGE_CLOEXEC nothing is closed, so no Rust-owned descriptor is invalidated.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if rc == 0 {
        return Ok(());
    }
    // Kernels before 5.11 lack CLOSE_RANGE_CLOEXEC: walk /proc/self/fd instead, or, where
    // /proc is not ours or not there (a joined mount namespace, a chroot), every number up
    // to the descriptor limit.
    let fds: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect(),
        Err(_) => {
            let (soft, _) =
                nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
            let top = RawFd::try_from(soft.min(1 << 20)).unwrap_or(RawFd::MAX);
            (0..top).collect()
        }
    };
    for fd in fds {
        if fd >= first as RawFd {
            // SAFETY: fcntl F_SETFD on a possibly closed descriptor only returns EBADF.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    Ok(())
}

/// Installs a classic-BPF seccomp filter with the given `SECCOMP_FILTER_FLAG_*` flags.
pub fn seccomp_set_filter(prog: &[libc::sock_filter], flags: u32) -> io::Result<()> {
    let len = u16::try_from(prog.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "seccomp program too long"))?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: fprog points at `prog`, which outlives the call; the kernel copies the program
    // and does not keep the pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the NIS domain name of the current UTS namespace.
/// Makes the mount at `fd` and every mount below it read-only (`mount_setattr(2)` with
/// `AT_RECURSIVE` and `MOUNT_ATTR_RDONLY`, Linux 5.12): the OCI `rro` option.
pub fn make_readonly_recursive(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    // struct mount_attr, version 0: attr_set, attr_clr, propagation, userns_fd.
    let attr: [u64; 4] = [MOUNT_ATTR_RDONLY, 0, 0, 0];
    let empty = c"";
    // SAFETY: mount_setattr reads a 32-byte mount_attr from a valid pointer and a
    // NUL-terminated (empty) path; the fd is open for the call's duration.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn setdomainname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, valid for the call.
    let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the execution domain (`personality(2)`).
pub fn personality(persona: libc::c_ulong) -> io::Result<()> {
    // SAFETY: personality takes a plain integer.
    let rc = unsafe { libc::personality(persona) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `bpf(2)` with a caller-built attribute union.
pub fn bpf(cmd: libc::c_int, attr: &mut [u8]) -> io::Result<libc::c_long> {
    // SAFETY: attr is a live, writable buffer of the size passed; the kernel reads at most
    // that many bytes and writes only inside it.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// Forks the calling process. The runtime is single-threaded wherever it forks (the CLI
/// starts no threads), so the child may allocate and run ordinary Rust code.
pub fn fork() -> io::Result<Option<nix::unistd::Pid>> {
    // SAFETY: the caller is single-threaded (see above), so no lock can be held by a thread
    // that does not exist in the child.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        nix::unistd::ForkResult::Parent { child } => Ok(Some(child)),
        nix::unistd::ForkResult::Child => Ok(None),
    }
}

/// Forks straight into the cgroup v2 directory `cgroup` (clone3 with CLONE_INTO_CGROUP), so
/// no process is ever migrated: migration takes the kernel's cgroup threadgroup lock for
/// writing, which costs an RCU grace period (~10 ms) per container. Returns `None` in the
/// child, the child's pid and whether the cgroup placement happened in the parent. Falls
/// back to fork on kernels without clone3 or CLONE_INTO_CGROUP.
///
/// The child of a raw clone3 keeps glibc's cached thread id of the parent, so it must not
/// raise signals at itself (abort): the runtime's stage 1 only makes syscalls, reports
/// errors over its channel and exits or forks (glibc's fork fixes the id for the grandchild).
pub fn fork_into_cgroup(cgroup: Option<std::os::fd::BorrowedFd<'_>>) -> io::Result<(Option<nix::unistd::Pid>, bool)> {
    if let Some(fd) = cgroup {
        #[repr(C)]
        #[derive(Default)]
        struct CloneArgs {
            flags: u64,
            pidfd: u64,
            child_tid: u64,
            parent_tid: u64,
            exit_signal: u64,
            stack: u64,
            stack_size: u64,
            tls: u64,
            set_tid: u64,
            set_tid_size: u64,
            cgroup: u64,
        }
        const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
        let args = CloneArgs {
            flags: CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: u64::try_from(fd.as_raw_fd()).unwrap_or(0),
            ..Default::default()
        };
        // SAFETY: without CLONE_VM and with no stack given, clone3 behaves as fork: the child
        // gets a copy of the address space. The caller is single-threaded (see `fork`).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        if rc == 0 {
            return Ok((None, true));
        }
        if rc > 0 {
            let pid = i32::try_from(rc).map_err(|_| io::Error::other("pid out of range"))?;
            return Ok((Some(nix::unistd::Pid::from_raw(pid)), true));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::E2BIG) | Some(libc::EOPNOTSUPP) => {}
            _ => return Err(e),
        }
    }
    Ok((fork()?, false))
}

/// Sends `sig` to the one process `pid`. A pid that is not positive is refused: `kill(2)`
/// reads 0 as the caller's process group and -1 as every process it may signal, so a pid
/// read as 0 (an unset field, a cgroup listing a process of another pid namespace) must
/// never reach it.
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    if pid <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal pid {pid}: not a single process"),
        ));
    }
    // SAFETY: kill takes plain integers; pid names one process (checked above).
    if unsafe { libc::kill(pid, sig) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Ends a forked child without running the parent's atexit handlers or destructors.
pub fn child_exit(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it never returns.
    unsafe { libc::_exit(code) }
}

/// Sets the effective, permitted and inheritable capability sets in one `capset(2)`.
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut hdr = Header {
        version: VERSION_3,
        pid: 0,
    };
    let lo = |v: u64| (v & 0xffff_ffff) as u32;
    let hi = |v: u64| (v >> 32) as u32;
    let data = [
        Data {
            effective: lo(effective),
            permitted: lo(permitted),
            inheritable: lo(inheritable),
        },
        Data {
            effective: hi(effective),
            permitted: hi(permitted),
            inheritable: hi(inheritable),
        },
    ];
    // SAFETY: hdr and data are live, correctly laid out (linux/capability.h, version 3 takes
    // two data structs) and only read by the kernel, except hdr.version on EINVAL.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut Header, data.as_ptr()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn prctl(op: libc::c_int, a: libc::c_ulong, b: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: the prctl operations used here take integer arguments only.
    let rc = unsafe { libc::prctl(op, a, b, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// Drops one capability from the bounding set.
pub fn capbset_drop(cap: u32) -> io::Result<()> {
    prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0).map(drop)
}

/// Raises one capability in the ambient set.
pub fn ambient_raise(cap: u32) -> io::Result<()> {
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
        libc::c_ulong::from(cap),
    )
    .map(drop)
}

/// Keeps permitted capabilities across a uid change away from 0.
pub fn set_keepcaps(on: bool) -> io::Result<()> {
    prctl(libc::PR_SET_KEEPCAPS, libc::c_ulong::from(on), 0).map(drop)
}

/// Sets the dumpable flag; a non-dumpable process's /proc files are closed to others.
pub fn set_dumpable(on: bool) -> io::Result<()> {
    prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(on), 0).map(drop)
}

/// Makes sure descriptors `3..3 + count` are open, parking `/dev/null` on each free one.
///
/// `--preserve-fds N` hands the caller's fds 3..3+N to the container. Where the caller left
/// one closed, the runtime's own descriptors (its state directory, cgroup files, the sync
/// socket) would take that number and cross into the container: a way out. Called first
/// thing, before the runtime opens anything.
pub fn reserve_fds(count: u32) -> io::Result<()> {
    let Some(end) = 3i32.checked_add(i32::try_from(count.min(1 << 20)).unwrap_or(1 << 20)) else {
        return Ok(());
    };
    let mut null: Option<i32> = None;
    for fd in 3..end {
        // SAFETY: F_GETFD only reads the descriptor's flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
            continue;
        }
        let src = match null {
            Some(n) => n,
            None => {
                // SAFETY: a plain open of a constant path, no close-on-exec on purpose.
                let n = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                null = Some(n);
                if n == fd {
                    continue;
                }
                n
            }
        };
        // SAFETY: dup2 onto a descriptor number that is free.
        if unsafe { libc::dup2(src, fd) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    if let Some(n) = null.filter(|n| *n >= end) {
        // SAFETY: closing the /dev/null descriptor this function opened outside the range.
        unsafe { libc::close(n) };
    }
    Ok(())
}
