//! The child side of `create` and `exec`: the code that runs in the forked processes, from
//! entering namespaces to the final execve. Errors are sent to the runtime over the sync
//! channel as text (the process boundary is the reason these are strings) and the process
//! exits.
//!
//! Stage 1 joins and creates namespaces and forks stage 2, which is the container process
//! (pid 1 of a new pid namespace) and so must be a child of a process already inside the
//! namespaces. Stage 1 reports stage 2's pid and exits.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use berth_oci::oci_spec::runtime::{LinuxNamespaceType, Process, Spec};
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;

use crate::cgroups::{self, CgroupConfig, SelfJoin};
use crate::namespaces::{self, Plan};
use crate::rootfs::{self, RootfsCtx};
use crate::sync::{Chan, Msg};
use crate::{hooks, process, safepath, sys};

/// What the container process needs beyond the spec.
#[derive(Debug)]
pub struct InitArgs<'a> {
    /// The bundle's config.
    pub spec: &'a Spec,
    /// Host path of the rootfs.
    pub rootfs: &'a Path,
    /// The container's cgroups.
    pub cgroup: &'a CgroupConfig,
    /// `O_PATH` descriptor of the start fifo.
    pub fifo: &'a OwnedFd,
    /// `O_PATH` descriptor of the state directory holding it (for roots without /proc).
    pub state_dir: &'a OwnedFd,
    /// `--no-pivot`.
    pub no_pivot: bool,
    /// `--preserve-fds`.
    pub preserve_fds: u32,
    /// Compiled seccomp filter and flags.
    pub seccomp: Option<(&'a [libc::sock_filter], u32)>,
    /// Bind mount sources, opened by the runtime before the container's user namespace
    /// (whose root may not search the directories above them).
    pub sources: &'a [(usize, OwnedFd)],
}

/// What an exec'd process needs.
#[derive(Debug)]
pub struct ExecArgs<'a> {
    /// The process to run.
    pub process: &'a Process,
    /// Compiled seccomp filter and flags.
    pub seccomp: Option<(&'a [libc::sock_filter], u32)>,
    /// `--preserve-fds`.
    pub preserve_fds: u32,
}

/// The two kinds of stage 2.
#[derive(Debug)]
pub enum Stage2<'a> {
    /// A new container's init.
    Init(InitArgs<'a>),
    /// A process exec'd into a running container.
    Exec(ExecArgs<'a>),
}

/// Runs stage 1 in the forked child; never returns.
pub fn stage1(chan: &Chan, joins: &[SelfJoin], plan: Plan, time_offsets: Option<String>, next: Stage2<'_>) -> ! {
    let r = (|| -> Result<(), Fail> {
        // Nothing in the container may open our /proc entries while we run there.
        sys::set_dumpable(false).map_err(|e| format!("setting non-dumpable: {e}"))?;
        // Into the v1 hierarchies before anything else: stage 2 is born there.
        cgroups::join_self(joins)?;
        // The runtime may have blocked signals it forwards; the container starts with none.
        nix::sys::signal::SigSet::empty()
            .thread_set_mask()
            .map_err(|e| format!("resetting the signal mask: {e}"))?;
        chan.expect(&Msg::Go)
            .map_err(|e| format!("waiting for the runtime: {e}"))?;
        namespaces::join(&plan).map_err(chain)?;
        if plan.new_user {
            // Into the rootfs while still the runtime's own user: the container's root may
            // not search the directories above it. Stage 2 works from "." then.
            if let Stage2::Init(a) = &next {
                nix::unistd::chdir(a.rootfs).map_err(|e| format!("entering {}: {e}", a.rootfs.display()))?;
            }
            nix::sched::unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| format!("creating user namespace: {e}"))?;
            chan.send(&Msg::MapIds).map_err(|e| e.to_string())?;
            chan.expect(&Msg::Go)
                .map_err(|e| format!("waiting for id mappings: {e}"))?;
            let root_u = nix::unistd::Uid::from_raw(0);
            let root_g = nix::unistd::Gid::from_raw(0);
            nix::unistd::setresgid(root_g, root_g, root_g)
                .map_err(|e| format!("becoming gid 0 in the user namespace: {e}"))?;
            nix::unistd::setresuid(root_u, root_u, root_u)
                .map_err(|e| format!("becoming uid 0 in the user namespace: {e}"))?;
        }
        namespaces::unshare_rest(&plan).map_err(chain)?;
        if let Some(offsets) = &time_offsets {
            std::fs::write("/proc/self/timens_offsets", offsets)
                .map_err(|e| format!("writing time namespace offsets: {e}"))?;
        }
        match sys::fork().map_err(|e| format!("forking container process: {e}"))? {
            // A mount namespace joined by path gets the rootfs set up in it, as a new one
            // does (runc's behaviour): the container's mounts and pivot happen there.
            None => {
                let mntns = plan.new.contains(CloneFlags::CLONE_NEWNS)
                    || plan.join.iter().any(|(t, _)| *t == LinuxNamespaceType::Mount);
                stage2(chan, next, mntns)
            }
            Some(pid) => {
                chan.send(&Msg::Pid(pid.as_raw())).map_err(|e| e.to_string())?;
                Ok(())
            }
        }
    })();
    finish(chan, r)
}

/// A stage's failure: what failed and, for a program that cannot be run, Docker's exit code
/// for it (127 or 126; 0 for anything else).
struct Fail {
    code: u8,
    message: String,
}

impl From<String> for Fail {
    fn from(message: String) -> Fail {
        Fail { code: 0, message }
    }
}

impl From<sys::SysError> for Fail {
    fn from(e: sys::SysError) -> Fail {
        Fail::from(e.to_string())
    }
}

impl From<&str> for Fail {
    fn from(message: &str) -> Fail {
        Fail::from(message.to_string())
    }
}

/// A program the process cannot run, with its exit code.
fn unrunnable(e: process::ProcessError) -> Fail {
    Fail {
        code: e.exit_code(),
        message: chain(e),
    }
}

fn finish(chan: &Chan, r: Result<(), Fail>) -> ! {
    match r {
        Ok(()) => sys::child_exit(0),
        Err(Fail { code, message }) => {
            let _ = chan.send(&Msg::Error { code, message });
            sys::child_exit(1)
        }
    }
}

fn chain(e: impl std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

fn stage2(chan: &Chan, args: Stage2<'_>, new_mntns: bool) -> ! {
    let r = match args {
        Stage2::Init(a) => init(chan, &a, new_mntns),
        Stage2::Exec(a) => exec(chan, &a),
    };
    finish(chan, r.map(|never| match never {}))
}

/// Sets up a pty whose slave becomes stdio and controlling terminal; sends the master.
fn console(chan: &Chan, p: &Process, mount_console: bool) -> Result<(), sys::SysError> {
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let master =
        posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).map_err(sys::errno("opening /dev/ptmx"))?;
    grantpt(&master).map_err(sys::errno("grantpt"))?;
    unlockpt(&master).map_err(sys::errno("unlockpt"))?;
    let name = ptsname_r(&master).map_err(sys::errno("ptsname"))?;
    let slave = nix::fcntl::open(
        Path::new(&name),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys::errno(format!("opening {name}")))?;
    if let Some(sz) = p.console_size() {
        let rows = u16::try_from(sz.height()).unwrap_or(u16::MAX);
        let cols = u16::try_from(sz.width()).unwrap_or(u16::MAX);
        crate::tty::set_window_size(slave.as_fd(), rows, cols);
    }
    if mount_console {
        // /dev/console in the container is the pty, as with runc.
        let root = safepath::open_root(Path::new("/")).map_err(sys::io_err("opening /"))?;
        if let Ok(t) = safepath::create_all(root.as_fd(), Path::new("/dev/console"), safepath::Leaf::File) {
            let _ = nix::mount::mount(
                Some(Path::new(&name)),
                &safepath::proc_fd_path(t.as_fd()),
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            );
        }
    }
    for target in 0..3 {
        // SAFETY: dup2 onto stdio descriptors; slave is a valid open descriptor.
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } < 0 {
            return Err(sys::io_err(format!("dup2 pty to fd {target}"))(
                std::io::Error::last_os_error(),
            ));
        }
    }
    // SAFETY: TIOCSCTTY takes an integer argument; we are a session leader (setsid).
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
        return Err(sys::io_err("setting controlling terminal")(
            std::io::Error::last_os_error(),
        ));
    }
    chan.send_with_fd(&Msg::Console, Some(master.as_raw_fd()))
        .map_err(sys::io_err("sending pty master"))?;
    Ok(())
}

/// Leaves exactly stdio and the preserved descriptors open across exec.
fn settle_fds(preserve: u32) -> Result<(), sys::SysError> {
    sys::cloexec_from(3 + preserve).map_err(sys::io_err("closing descriptors"))?;
    for fd in 3..3 + preserve {
        let fd = i32::try_from(fd).unwrap_or(i32::MAX);
        // SAFETY: F_SETFD on a descriptor number; an unused one returns EBADF, harmlessly.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
    Ok(())
}

enum Never {}

/// Whether the spec asks for a new namespace of type `t` (one not joined by path).
fn has_new(spec: &Spec, t: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|v| v.iter().any(|n| n.typ() == t && n.path().is_none()))
}

fn init(chan: &Chan, a: &InitArgs<'_>, new_mntns: bool) -> Result<Never, Fail> {
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    let spec = a.spec;
    let linux = spec.linux().as_ref();
    let has = |t: LinuxNamespaceType| {
        linux
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|v| v.iter().any(|n| n.typ() == t))
    };
    // A new user namespace with a rootfs that is a mount of its own (the engine's overlay):
    // the rootfs is reached as the working directory stage 1 entered, never by its path.
    let at_cwd = has_new(spec, LinuxNamespaceType::User) && rootfs::cwd_is_mount_root();
    let rootfs_path = if at_cwd { Path::new(".") } else { a.rootfs };
    if new_mntns {
        let ctx = RootfsCtx {
            rootfs: rootfs_path,
            host_rootfs: a.rootfs,
            cgroup: a.cgroup,
            cgroupns: has(LinuxNamespaceType::Cgroup),
            userns: has(LinuxNamespaceType::User) || berth_safepath::userns::in_user_namespace(),
            sources: a.sources,
        };
        rootfs::prepare(spec, &ctx).map_err(chain)?;
    }
    chan.send(&Msg::CreateRuntime).map_err(|e| e.to_string())?;
    // The runtime answers with the OCI state (with our host pid) once its hooks ran.
    let state_json = match chan
        .recv()
        .map_err(|e| format!("waiting for createRuntime hooks: {e}"))?
        .0
    {
        Msg::Error { message, .. } => return Err(message.into()),
        Msg::State(s) => s,
        m => return Err(format!("unexpected {m:?}").into()),
    };
    if let Some(h) = spec.hooks().as_ref().and_then(|h| h.create_container().as_ref()) {
        hooks::run("createContainer", h, state_json.as_bytes()).map_err(chain)?;
    }
    if new_mntns {
        rootfs::pivot(rootfs_path, a.no_pivot).map_err(chain)?;
        rootfs::finish(spec).map_err(chain)?;
    } else {
        nix::unistd::chroot(rootfs_path).map_err(|e| format!("chroot {}: {e}", a.rootfs.display()))?;
        nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))?;
        rootfs::sysctl(spec).map_err(chain)?;
    }
    if has(LinuxNamespaceType::Uts) {
        if let Some(h) = spec.hostname() {
            nix::unistd::sethostname(h).map_err(|e| format!("setting hostname {h:?}: {e}"))?;
        }
        if let Some(d) = spec.domainname() {
            sys::setdomainname(d).map_err(|e| format!("setting domainname {d:?}: {e}"))?;
        }
    }
    let p = spec.process().as_ref().ok_or("config has no process")?;
    if p.terminal() == Some(true) {
        console(chan, p, new_mntns)?;
    }
    if let Some(per) = linux.and_then(|l| l.personality().as_ref()) {
        let v = match per.domain() {
            berth_oci::oci_spec::runtime::LinuxPersonalityDomain::PerLinux32 => 0x0008,
            _ => 0,
        };
        sys::personality(v).map_err(|e| format!("setting personality: {e}"))?;
    }
    let env = process::environment(p);
    let args = p.args().clone().unwrap_or_default();
    let first = args.first().ok_or("process.args is empty")?;
    let path = process::lookup(first, &env).map_err(unrunnable)?;
    process::enter_cwd(p.cwd()).map_err(chain)?;
    // Before the seccomp filter, which need not allow close_range.
    settle_fds(a.preserve_fds)?;
    process::finalize(p, a.seccomp).map_err(chain)?;
    chan.send(&Msg::Ready).map_err(|e| e.to_string())?;
    // Block until `start` opens the fifo's read end. The fifo is reopened through its
    // /proc/self/fd entry (no directory permission needed after the user change); a root
    // without /proc falls back to the state directory's descriptor. Both are close-on-exec.
    let fifo = safepath::reopen(a.fifo.as_fd(), OFlag::O_WRONLY).or_else(|_| {
        nix::fcntl::openat(
            a.state_dir,
            crate::state::FIFO,
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(std::io::Error::from)
    });
    let mut fifo = match fifo {
        Ok(f) => std::fs::File::from(f),
        Err(e) => {
            // The runtime has gone; stderr is the container's, and the only place left.
            let _ = writeln!(std::io::stderr(), "berth-runtime: opening start fifo: {e}");
            sys::child_exit(1);
        }
    };
    if let Err(e) = fifo.write_all(b"0") {
        let _ = writeln!(std::io::stderr(), "berth-runtime: writing start fifo: {e}");
        sys::child_exit(1);
    }
    drop(fifo);
    if let Some(h) = spec.hooks().as_ref().and_then(|h| h.start_container().as_ref()) {
        let s = state_json.replace("\"status\":\"creating\"", "\"status\":\"created\"");
        if let Err(e) = hooks::run("startContainer", h, s.as_bytes()) {
            let _ = writeln!(std::io::stderr(), "berth-runtime: {}", chain(e));
            sys::child_exit(1);
        }
    }
    if let Err(e) = process::late_seccomp(p, a.seccomp) {
        let _ = writeln!(std::io::stderr(), "berth-runtime: {}", chain(e));
        sys::child_exit(1);
    }
    let annotated = |key: &str| {
        spec.annotations()
            .as_ref()
            .and_then(|m| m.get(key))
            .is_some_and(|v| v == "true")
    };
    if annotated(crate::minit::PAUSE_ANNOTATION) {
        crate::minit::pause();
    }
    let wants_init = annotated(crate::minit::ANNOTATION);
    if wants_init {
        // This process stays as PID 1; its child goes on to exec the command.
        if let Err(e) = crate::minit::fork_init() {
            let _ = writeln!(std::io::stderr(), "berth-runtime: {e}");
            sys::child_exit(1);
        }
    }
    let e = process::exec(&path, &args, &env);
    let code = i32::from(e.exit_code());
    // The runtime is gone by now; stderr is all that is left to report on.
    let _ = writeln!(std::io::stderr(), "berth-runtime: {}", chain(e));
    sys::child_exit(code)
}

fn exec(chan: &Chan, a: &ExecArgs<'_>) -> Result<Never, Fail> {
    chan.expect(&Msg::Go)
        .map_err(|e| format!("waiting for the runtime: {e}"))?;
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    let p = a.process;
    if p.terminal() == Some(true) {
        console(chan, p, false)?;
    }
    let env = process::environment(p);
    let args = p.args().clone().unwrap_or_default();
    let first = args.first().ok_or("process.args is empty")?;
    let path = process::lookup(first, &env).map_err(unrunnable)?;
    process::enter_cwd(p.cwd()).map_err(chain)?;
    // Before the seccomp filter, which need not allow close_range.
    settle_fds(a.preserve_fds)?;
    process::finalize(p, a.seccomp).map_err(chain)?;
    chan.send(&Msg::Ready).map_err(|e| e.to_string())?;
    process::late_seccomp(p, a.seccomp).map_err(chain)?;
    Err(unrunnable(process::exec(&path, &args, &env)))
}
