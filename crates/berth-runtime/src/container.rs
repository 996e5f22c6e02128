//! Container lifecycle on the runtime side (runtime-spec runtime.md "Operations"): create,
//! start, state, kill, delete, plus runc's exec, pause, resume, update, ps and events.
//!
//! `create` prepares everything host-side (state directory, start fifo, cgroups, seccomp
//! program), forks stage 1 (see `init.rs`), serves its requests (id maps, hooks, the pty),
//! records the state and returns while the container's init waits on the fifo. Whatever
//! fails, a guard kills what was started and removes what was made.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use berth_oci::oci_spec::runtime::{LinuxResources, Process, Spec};
use berth_oci::ErrorKind;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::cgroups::{self, CgroupConfig, CgroupError};
use crate::hooks::{self, HookError};
use crate::init::{self, ExecArgs, InitArgs, Stage2};
use crate::namespaces::{self, NamespaceError};
use crate::seccomp::{self, SeccompError};
use crate::spec::{self, SpecError};
use crate::state::{self, State, StateDir, StateError, Status};
use crate::sync::{self, Chan, Msg};
use crate::sys;

mod exec;
mod userns;
pub use exec::ExecOpts;
use userns::{bind_sources, pids_of, rootless_cgroup};

/// A lifecycle operation's failure.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The bundle's config.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// State files.
    #[error(transparent)]
    State(#[from] StateError),
    /// Cgroups.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// Seccomp.
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// A hook.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// Namespaces.
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    /// The container is not in a state that allows the operation.
    #[error("container {id} is {status}: cannot {op}")]
    WrongState {
        /// The container.
        id: String,
        /// Its status.
        status: &'static str,
        /// The refused operation.
        op: &'static str,
    },
    /// A signal name or number is unknown.
    #[error("unknown signal {0:?}")]
    BadSignal(String),
    /// The container process reported a failure while being set up.
    #[error("container {id}: {message}")]
    Init {
        /// The container.
        id: String,
        /// What the process reported (a chain of causes).
        message: String,
        /// Docker's exit code for it: 127 (no such program), 126 (cannot run it), 0 (any
        /// other failure).
        code: u8,
    },
    /// A host-side system call failed.
    #[error("{op}")]
    Sys {
        /// What was being done.
        op: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl ContainerError {
    /// What the container process reported while being set up, with Docker's exit code
    /// for it (0: none in particular).
    fn init(id: &str, code: u8, message: String) -> ContainerError {
        ContainerError::Init {
            id: id.to_string(),
            message,
            code,
        }
    }

    /// The exit code Docker gives a container or exec that fails to start this way: 127
    /// when its program is not there, 126 when it cannot be run, else 125.
    pub fn exit_code(&self) -> u8 {
        match self {
            ContainerError::Init { code, .. } if *code != 0 => *code,
            _ => 125,
        }
    }

    /// The error's category.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ContainerError::Spec(e) => e.kind(),
            ContainerError::State(e) => e.kind(),
            ContainerError::Cgroup(e) => e.kind(),
            ContainerError::Seccomp(e) => e.kind(),
            ContainerError::Hook(e) => e.kind(),
            ContainerError::Namespace(_) => ErrorKind::FailedPrecondition,
            ContainerError::WrongState { .. } => ErrorKind::FailedPrecondition,
            ContainerError::BadSignal(_) => ErrorKind::InvalidArgument,
            ContainerError::Init { .. } => ErrorKind::FailedPrecondition,
            ContainerError::Sys { .. } => ErrorKind::Internal,
        }
    }
}

fn sys_err<E: Into<std::io::Error>>(op: impl Into<String>) -> impl FnOnce(E) -> ContainerError {
    let op = op.into();
    move |e| ContainerError::Sys { op, source: e.into() }
}

/// The runtime: its state root and global options.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// State root (`--root`).
    pub root: PathBuf,
    /// `--systemd-cgroup`: cgroupsPath is `slice:prefix:name`.
    pub systemd_cgroup: bool,
}

/// Options of `create` (and `run`).
#[derive(Debug, Default)]
pub struct CreateOpts {
    /// The bundle directory.
    pub bundle: PathBuf,
    /// Where to write the init's pid.
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the pty master to.
    pub console_socket: Option<PathBuf>,
    /// Use chroot-style move mount instead of pivot_root.
    pub no_pivot: bool,
    /// Descriptors 3..3+N passed to the container.
    pub preserve_fds: u32,
    /// Become the subreaper (foreground `run`), so the init is our child.
    pub subreaper: bool,
}

/// What `create` hands back.
#[derive(Debug)]
pub struct Created {
    /// Host pid of the init.
    pub pid: i32,
    /// The pty master, when there is a terminal and no console socket took it.
    pub console: Option<OwnedFd>,
}

/// Undoes a half-made container when dropped, unless disarmed.
struct Guard<'a> {
    sd: &'a StateDir,
    cgroup: Option<&'a CgroupConfig>,
    pids: Vec<i32>,
    armed: bool,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for p in &self.pids {
            let _ = crate::sys::kill(*p, libc::SIGKILL);
            let _ = nix::sys::wait::waitpid(Pid::from_raw(*p), Some(nix::sys::wait::WaitPidFlag::__WALL));
        }
        if let Some(cg) = self.cgroup {
            if let Ok(pids) = cg.pids() {
                for p in pids {
                    let _ = crate::sys::kill(p, libc::SIGKILL);
                }
            }
            let _ = cg.destroy();
        }
        let _ = self.sd.remove();
    }
}

/// The caller's user name from /etc/passwd (no NSS: the binary is static), else the uid.
fn owner() -> String {
    let uid = nix::unistd::getuid().as_raw();
    crate::idmap::user_name(uid).unwrap_or_else(|| uid.to_string())
}

fn write_id_map(
    pid: i32,
    file: &str,
    maps: &[berth_oci::oci_spec::runtime::LinuxIdMapping],
) -> Result<(), ContainerError> {
    let text: String = maps
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect();
    let p = format!("/proc/{pid}/{file}");
    std::fs::write(&p, text).map_err(sys_err(format!("writing {p}")))
}

fn time_offsets(spec: &Spec) -> Option<String> {
    let offs = spec.linux().as_ref()?.time_offsets().as_ref()?;
    let mut s = String::new();
    for (clock, o) in offs {
        let name = match clock.as_str() {
            "monotonic" | "boottime" => clock.as_str(),
            _ => continue,
        };
        s.push_str(&format!(
            "{name} {} {}\n",
            o.secs().unwrap_or(0),
            o.nanosecs().unwrap_or(0)
        ));
    }
    (!s.is_empty()).then_some(s)
}

fn send_console(socket: &Path, master: &OwnedFd) -> Result<(), ContainerError> {
    let stream = std::os::unix::net::UnixStream::connect(socket)
        .map_err(sys_err(format!("connecting to console socket {}", socket.display())))?;
    let chan = Chan(OwnedFd::from(stream));
    // runc sends the pty's name as the payload; receivers only use the descriptor.
    chan.send_with_fd(&Msg::Console, Some(master.as_raw_fd()))
        .map_err(sys_err("sending pty master"))
}

fn hooks_of(
    spec: &Spec,
    f: impl Fn(&berth_oci::oci_spec::runtime::Hooks) -> &Option<Vec<berth_oci::oci_spec::runtime::Hook>>,
) -> Vec<berth_oci::oci_spec::runtime::Hook> {
    spec.hooks().as_ref().and_then(|h| f(h).clone()).unwrap_or_default()
}

impl Runtime {
    fn dir(&self, id: &str) -> Result<StateDir, ContainerError> {
        Ok(StateDir::new(&self.root, id)?)
    }

    /// `create`: sets the container up; its init waits for `start`.
    pub fn create(&self, id: &str, opts: &CreateOpts) -> Result<Created, ContainerError> {
        let sd = self.dir(id)?;
        let bundle = std::fs::canonicalize(&opts.bundle).map_err(|source| SpecError::Read {
            path: opts.bundle.clone(),
            source,
        })?;
        let spec = spec::load(&bundle)?;
        spec::validate(&spec, true)?;
        let rootfs = spec::rootfs(&spec, &bundle)?;
        let linux = spec.linux().clone().unwrap_or_default();
        let layout = cgroups::host_layout()?;
        let own = cgroups::own_cgroups(&std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default());
        let cg_path = cgroups::normalize(linux.cgroups_path().as_deref(), id, self.systemd_cgroup)?;
        let cgroup = CgroupConfig::resolve(&layout, &cg_path, &own);
        let filter = match linux.seccomp() {
            Some(s) => Some((seccomp::compile(s)?, seccomp::flags(s))),
            None => None,
        };
        let namespaces = linux.namespaces().clone().unwrap_or_default();
        let plan = namespaces::plan(&namespaces)?;
        let cgroup = rootless_cgroup(cgroup, linux.resources().as_ref())?;
        sd.create()?;
        let mut guard = Guard {
            sd: &sd,
            cgroup: None,
            pids: Vec::new(),
            armed: true,
        };
        let fifo = sd.fifo();
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o622))
            .map_err(sys_err(format!("creating {}", fifo.display())))?;
        // mkfifo honours the umask; the container's user must be able to open it.
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            &fifo,
            nix::sys::stat::Mode::from_bits_truncate(0o622),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(sys_err(format!("chmod {}", fifo.display())))?;
        let state_dir_fd = nix::fcntl::open(
            &sd.dir,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(sys_err(format!("opening {}", sd.dir.display())))?;
        let fifo_fd = nix::fcntl::open(
            &fifo,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(sys_err(format!("opening {}", fifo.display())))?;
        guard.cgroup = Some(&cgroup);
        if let Some(res) = linux.resources().as_ref().filter(|_| !cgroup.is_none()) {
            cgroup.set(&with_default_devices(res, linux.devices().as_deref().unwrap_or(&[])))?;
        }
        if opts.subreaper {
            nix::sys::prctl::set_child_subreaper(true).map_err(sys_err("becoming subreaper"))?;
        }
        let (parent, child) = sync::pair().map_err(sys_err("creating sync socket"))?;
        let offsets = time_offsets(&spec);
        let joins = cgroup.open_v1_tasks()?;
        let sources = if plan.new_user { bind_sources(&spec) } else { Vec::new() };
        let (forked, placed) = fork_stage1(&cgroup)?;
        let stage1 = match forked {
            None => {
                drop(parent);
                let seccomp = filter.as_ref().map(|(p, f)| (p.as_slice(), *f));
                init::stage1(
                    &child,
                    &joins,
                    plan,
                    offsets,
                    Stage2::Init(InitArgs {
                        spec: &spec,
                        rootfs: &rootfs,
                        cgroup: &cgroup,
                        fifo: &fifo_fd,
                        state_dir: &state_dir_fd,
                        no_pivot: opts.no_pivot,
                        preserve_fds: opts.preserve_fds,
                        seccomp,
                        sources: &sources,
                    }),
                )
            }
            Some(pid) => pid,
        };
        drop(child);
        drop(joins);
        guard.pids.push(stage1.as_raw());
        cgroup.add_v2(stage1.as_raw(), placed)?;
        let failed = |message: String| ContainerError::init(id, 0, message);
        let refused = |code: u8, message: String| ContainerError::init(id, code, message);
        parent.send(&Msg::Go).map_err(sys_err("starting stage 1"))?;
        let mut init_pid = 0;
        let mut ready = false;
        let mut console = None;
        let mut state = State {
            id: id.to_string(),
            pid: 0,
            pid_start: 0,
            bundle: bundle.clone(),
            rootfs: rootfs.clone(),
            created: state::rfc3339(SystemTime::now()),
            owner: owner(),
            cgroup: cgroup.clone(),
            config: spec.clone(),
        };
        loop {
            let (msg, fd) = match parent.recv() {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(failed("the container process exited during setup".into()))
                }
                Err(e) => return Err(sys_err("reading sync socket")(e)),
            };
            match msg {
                Msg::MapIds => {
                    write_id_map(
                        stage1.as_raw(),
                        "uid_map",
                        linux.uid_mappings().as_deref().unwrap_or(&[]),
                    )?;
                    write_id_map(
                        stage1.as_raw(),
                        "gid_map",
                        linux.gid_mappings().as_deref().unwrap_or(&[]),
                    )?;
                    parent.send(&Msg::Go).map_err(sys_err("sync"))?;
                }
                Msg::Pid(p) => {
                    init_pid = p;
                    guard.pids.push(p);
                    let _ = nix::sys::wait::waitpid(stage1, None);
                    guard.pids.retain(|x| *x != stage1.as_raw());
                    state.pid = p;
                    state.pid_start = state::proc_stat(p).map(|s| s.0).unwrap_or(0);
                    if ready {
                        break;
                    }
                }
                Msg::CreateRuntime => {
                    let st = state::oci_state_json(&state, Status::Creating);
                    let st_bytes = st.to_string();
                    let prestart = hooks_of(&spec, |h| h.prestart());
                    let create_rt = hooks_of(&spec, |h| h.create_runtime());
                    if !prestart.is_empty() || !create_rt.is_empty() {
                        sd.save(&state)?;
                        hooks::run("prestart", &prestart, st_bytes.as_bytes())?;
                        hooks::run("createRuntime", &create_rt, st_bytes.as_bytes())?;
                    }
                    parent.send(&Msg::State(st_bytes)).map_err(sys_err("sync"))?;
                }
                Msg::Console => {
                    let master = fd.ok_or_else(|| failed("pty master missing".into()))?;
                    match &opts.console_socket {
                        Some(sock) => send_console(sock, &master)?,
                        None => console = Some(master),
                    }
                }
                // Stage 1 reports the init's pid after its fork while the init (stage 2)
                // already runs on: on a busy machine the init's Ready can come first, and
                // the pid is still to be read.
                Msg::Ready if init_pid == 0 => ready = true,
                Msg::Ready => break,
                Msg::Error { code, message } => return Err(refused(code, message)),
                m => return Err(failed(format!("unexpected message {m:?}"))),
            }
        }
        sd.save(&state)?;
        if let Some(pf) = &opts.pid_file {
            write_pid_file(pf, init_pid)?;
        }
        guard.armed = false;
        Ok(Created { pid: init_pid, console })
    }

    /// Loads a container's state and observes its status.
    pub fn load(&self, id: &str) -> Result<(StateDir, State, Status), ContainerError> {
        let sd = self.dir(id)?;
        let st = sd.load()?;
        let status = observe(&sd, &st);
        Ok((sd, st, status))
    }

    /// `state`: the OCI state JSON.
    pub fn state(&self, id: &str) -> Result<serde_json::Value, ContainerError> {
        let (_, st, status) = self.load(id)?;
        Ok(state::oci_state_json(&st, status))
    }

    /// `start`: releases the init to exec the user process.
    pub fn start(&self, id: &str) -> Result<(), ContainerError> {
        let (sd, st, status) = self.load(id)?;
        if status != Status::Created {
            return Err(ContainerError::WrongState {
                id: id.into(),
                status: status.as_str(),
                op: "start",
            });
        }
        let fifo = sd.fifo();
        let fd = nix::fcntl::open(
            &fifo,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(sys_err(format!("opening {}", fifo.display())))?;
        // The init opens the write end as soon as we hold the read end; poll so a dead init
        // cannot hang us.
        loop {
            let mut pfd = [nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN)];
            match nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(100u16)) {
                Ok(n) if n > 0 => {
                    let mut b = [0u8; 1];
                    match nix::unistd::read(&fd, &mut b) {
                        Ok(1) => break,
                        Ok(_) | Err(nix::errno::Errno::EAGAIN) => {}
                        Err(e) => return Err(sys_err("reading start fifo")(e)),
                    }
                }
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(sys_err("polling start fifo")(e)),
            }
            if !state::init_alive(st.pid, st.pid_start) {
                return Err(ContainerError::Init {
                    id: id.into(),
                    message: "the container process exited before start".into(),
                    code: 0,
                });
            }
        }
        let _ = std::fs::remove_file(&fifo);
        let poststart = hooks_of(&st.config, |h| h.poststart());
        if !poststart.is_empty() {
            let js = state::oci_state_json(&st, Status::Running).to_string();
            if let Err(e) = hooks::run("poststart", &poststart, js.as_bytes()) {
                // runtime.md: a poststart failure is logged, the container keeps running.
                eprintln!("berth-runtime: warning: {e}");
            }
        }
        Ok(())
    }

    /// `kill`: sends `sig` to the init, or with `all` to every process of the container.
    pub fn kill(&self, id: &str, sig: i32, all: bool) -> Result<(), ContainerError> {
        let (_, st, status) = self.load(id)?;
        // With `all`, a stopped container's leftovers (its init gone, others of a shared
        // PID namespace still in its cgroup) can be signalled, as with runc.
        if status == Status::Stopped && !all {
            return Err(ContainerError::WrongState {
                id: id.into(),
                status: "not running",
                op: "kill",
            });
        }
        if all {
            signal_all(&st, sig)?;
        } else {
            crate::sys::kill(st.pid, sig).map_err(sys_err(format!("sending signal {sig} to {}", st.pid)))?;
        }
        Ok(())
    }

    /// `delete`: removes a stopped (or, with `force`, any) container.
    pub fn delete(&self, id: &str, force: bool) -> Result<(), ContainerError> {
        let sd = self.dir(id)?;
        let st = match sd.load() {
            Ok(st) => st,
            Err(StateError::Corrupt { .. }) | Err(StateError::NotFound { .. }) if force || sd.dir.exists() => {
                // A container that never finished creating: nothing runs, remove its files.
                if !sd.dir.exists() {
                    return Err(StateError::NotFound { id: id.into() }.into());
                }
                sd.remove()?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let status = observe(&sd, &st);
        match status {
            Status::Stopped => {}
            Status::Created => kill_and_wait(&st)?,
            Status::Running | Status::Paused | Status::Creating if force => kill_and_wait(&st)?,
            _ => {
                return Err(ContainerError::WrongState {
                    id: id.into(),
                    status: status.as_str(),
                    op: "delete (use --force)",
                })
            }
        }
        let cg = st.cgroup.destroy();
        sd.remove()?;
        let poststop = hooks_of(&st.config, |h| h.poststop());
        if !poststop.is_empty() {
            let js = state::oci_state_json(&st, Status::Stopped).to_string();
            if let Err(e) = hooks::run("poststop", &poststop, js.as_bytes()) {
                eprintln!("berth-runtime: warning: {e}");
            }
        }
        cg?;
        Ok(())
    }

    /// All containers under the root.
    pub fn list(&self) -> Result<Vec<(State, Status)>, ContainerError> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(sys_err(format!("reading {}", self.root.display()))(e)),
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(id) = name.to_str() else { continue };
            if let Ok((_, st, status)) = self.load(id) {
                out.push((st, status));
            }
        }
        out.sort_by(|a, b| a.0.created.cmp(&b.0.created));
        Ok(out)
    }

    /// `pause` / `resume`.
    pub fn set_paused(&self, id: &str, paused: bool) -> Result<(), ContainerError> {
        let (_, st, status) = self.load(id)?;
        let ok = if paused {
            status == Status::Running
        } else {
            status == Status::Paused
        };
        if !ok {
            return Err(ContainerError::WrongState {
                id: id.into(),
                status: status.as_str(),
                op: if paused { "pause" } else { "resume" },
            });
        }
        st.cgroup.freeze(paused)?;
        Ok(())
    }

    /// `update`: applies new resource limits.
    pub fn update(&self, id: &str, res: &LinuxResources) -> Result<(), ContainerError> {
        let (sd, mut st, status) = self.load(id)?;
        if status == Status::Stopped {
            return Err(ContainerError::WrongState {
                id: id.into(),
                status: status.as_str(),
                op: "update",
            });
        }
        st.cgroup.set(res)?;
        if let Some(linux) = st.config.linux_mut() {
            linux.set_resources(Some(res.clone()));
        }
        sd.save(&st)?;
        Ok(())
    }

    /// `ps`: the container's pids.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>, ContainerError> {
        let (_, st, _) = self.load(id)?;
        pids_of(&st)
    }

    /// One `events --stats` record.
    pub fn stats(&self, id: &str) -> Result<serde_json::Value, ContainerError> {
        let (_, st, status) = self.load(id)?;
        if status == Status::Stopped {
            return Err(ContainerError::WrongState {
                id: id.into(),
                status: status.as_str(),
                op: "collect stats",
            });
        }
        Ok(serde_json::json!({"type": "stats", "id": id, "data": st.cgroup.stats()}))
    }
}

/// The device rules actually applied: the spec's, then (as runc does) the devices every
/// container gets and the spec's own `linux.devices`, so /dev/null and friends always work
/// whatever the spec's device list says.
fn with_default_devices(res: &LinuxResources, devices: &[berth_oci::oci_spec::runtime::LinuxDevice]) -> LinuxResources {
    use berth_oci::oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
    let Some(rules) = res.devices() else {
        return res.clone();
    };
    let mut rules = rules.clone();
    let rule = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    };
    for (major, minor) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)] {
        rules.push(rule(LinuxDeviceType::C, Some(major), Some(minor), "rwm"));
    }
    // /dev/pts/*
    rules.push(rule(LinuxDeviceType::C, Some(136), None, "rwm"));
    for d in devices {
        let typ = match d.typ() {
            LinuxDeviceType::B => LinuxDeviceType::B,
            _ => LinuxDeviceType::C,
        };
        rules.push(rule(typ, Some(d.major()), Some(d.minor()), "rwm"));
    }
    let mut out = res.clone();
    out.set_devices(Some(rules));
    out
}

/// Forks stage 1, born in the container's cgroup v2 directory where there is one (see
/// `sys::fork_into_cgroup`); says whether that placement happened.
fn fork_stage1(cgroup: &CgroupConfig) -> Result<(Option<Pid>, bool), ContainerError> {
    let into = cgroup.v2_dir().and_then(|d| {
        nix::fcntl::open(
            d,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok()
    });
    sys::fork_into_cgroup(into.as_ref().map(|f| f.as_fd())).map_err(sys_err("forking"))
}

fn write_pid_file(path: &Path, pid: i32) -> Result<(), ContainerError> {
    // Written whole then renamed: containerd and conmon read it as soon as we exit.
    let tmp = path.with_extension("berth-tmp");
    std::fs::write(&tmp, pid.to_string()).map_err(sys_err(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(sys_err(format!("writing {}", path.display())))
}

/// Observes the status of a recorded container.
pub fn observe(sd: &StateDir, st: &State) -> Status {
    if st.pid == 0 {
        return Status::Creating;
    }
    if !state::init_alive(st.pid, st.pid_start) {
        return Status::Stopped;
    }
    if sd.fifo().exists() {
        return Status::Created;
    }
    if st.cgroup.is_frozen() {
        return Status::Paused;
    }
    Status::Running
}

fn signal_all(st: &State, sig: i32) -> Result<(), ContainerError> {
    let frozen = st.cgroup.is_frozen();
    for p in pids_of(st)? {
        let _ = crate::sys::kill(p, sig);
    }
    // A frozen process only acts on SIGKILL once thawed.
    if frozen && sig == libc::SIGKILL {
        st.cgroup.freeze(false)?;
    }
    Ok(())
}

pub(crate) fn has_pidns(st: &State) -> bool {
    st.config
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|v| {
            v.iter()
                .any(|n| n.typ() == berth_oci::oci_spec::runtime::LinuxNamespaceType::Pid && n.path().is_none())
        })
}

/// SIGKILLs the container (every process when it shares the host pid namespace, since then
/// the init's death does not take the rest along) and waits until the init is gone.
fn kill_and_wait(st: &State) -> Result<(), ContainerError> {
    if has_pidns(st) {
        let _ = crate::sys::kill(st.pid, libc::SIGKILL);
        if st.cgroup.is_frozen() {
            st.cgroup.freeze(false)?;
        }
    } else {
        signal_all(st, libc::SIGKILL)?;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut nap = Duration::from_micros(100);
    while state::init_alive(st.pid, st.pid_start) {
        if Instant::now() > deadline {
            return Err(ContainerError::Sys {
                op: format!("waiting for container {} to die", st.id),
                source: std::io::Error::from(std::io::ErrorKind::TimedOut),
            });
        }
        // Our own child (foreground run): reap it.
        let _ = nix::sys::wait::waitpid(Pid::from_raw(st.pid), Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(10));
    }
    Ok(())
}

/// Parses a signal as runc does: a number, or a name with or without `SIG`, any case.
pub fn parse_signal(s: &str) -> Result<i32, ContainerError> {
    let bad = || ContainerError::BadSignal(s.to_string());
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) { Ok(n) } else { Err(bad()) };
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") { up } else { format!("SIG{up}") };
    if let Some(rest) = name.strip_prefix("SIGRTMIN") {
        let base = libc::SIGRTMIN();
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix('+').and_then(|r| r.parse().ok()).ok_or_else(bad)?
        };
        let n = base + off;
        return if n <= libc::SIGRTMAX() { Ok(n) } else { Err(bad()) };
    }
    if let Some(rest) = name.strip_prefix("SIGRTMAX") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix('-').and_then(|r| r.parse().ok()).ok_or_else(bad)?
        };
        let n = libc::SIGRTMAX() - off;
        return if n >= libc::SIGRTMIN() { Ok(n) } else { Err(bad()) };
    }
    name.parse::<Signal>().map(|s| s as i32).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_names_come_from_passwd() {
        let pw = "root:x:0:0:root:/root:/bin/bash\n# junk\nbad\ndaemon:x:1:1::/:/bin/false\n";
        assert_eq!(crate::idmap::passwd_field(pw, 0, 0).as_deref(), Some("root"));
        assert_eq!(crate::idmap::passwd_field(pw, 1, 0).as_deref(), Some("daemon"));
        assert_eq!(crate::idmap::passwd_field(pw, 7, 0), None);
    }

    #[test]
    fn signals_parse_like_runc() {
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("sigterm").unwrap(), 15);
        assert_eq!(parse_signal("SIGUSR1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse_signal("RTMIN+2").unwrap(), libc::SIGRTMIN() + 2);
        for bad in ["0", "65", "SIGBOGUS", "", "RTMIN+99", "-1"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }
}
