//! `exec`: a process started in a running container, joining its namespaces, cgroup and
//! security settings.

use super::*;

impl Runtime {
    /// `exec`: starts `process` in the running container. Returns the host pid and, for a
    /// terminal without a console socket, the pty master.
    pub fn exec(&self, id: &str, process: &Process, opts: &ExecOpts) -> Result<Created, ContainerError> {
        let (_, st, status) = self.load(id)?;
        match status {
            Status::Running | Status::Created => {}
            Status::Paused if opts.ignore_paused => {}
            s => {
                return Err(ContainerError::WrongState {
                    id: id.into(),
                    status: s.as_str(),
                    op: "exec",
                })
            }
        }
        let linux = st.config.linux().clone().unwrap_or_default();
        let namespaces = linux.namespaces().clone().unwrap_or_default();
        let plan = namespaces::plan_exec(&namespaces, st.pid)?;
        let filter = match linux.seccomp() {
            Some(s) => Some((seccomp::compile(s)?, seccomp::flags(s))),
            None => None,
        };
        if opts.subreaper {
            nix::sys::prctl::set_child_subreaper(true).map_err(sys_err("becoming subreaper"))?;
        }
        let (parent, child) = sync::pair().map_err(sys_err("creating sync socket"))?;
        let joins = st.cgroup.open_v1_tasks()?;
        let (forked, placed) = fork_stage1(&st.cgroup)?;
        let stage1 = match forked {
            None => {
                drop(parent);
                let seccomp = filter.as_ref().map(|(p, f)| (p.as_slice(), *f));
                init::stage1(
                    &child,
                    &joins,
                    plan,
                    None,
                    Stage2::Exec(ExecArgs {
                        process,
                        seccomp,
                        preserve_fds: opts.preserve_fds,
                    }),
                )
            }
            Some(pid) => pid,
        };
        drop(child);
        drop(joins);
        let kill = |p: i32| {
            let _ = crate::sys::kill(p, libc::SIGKILL);
        };
        let failed = |message: String| ContainerError::init(id, 0, message);
        let refused = |code: u8, message: String| ContainerError::init(id, code, message);
        let mut pid = 0;
        let mut console = None;
        let r = (|| -> Result<(), ContainerError> {
            parent.send(&Msg::Go).map_err(sys_err("sync"))?;
            loop {
                let (msg, fd) = match parent.recv() {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        return Err(failed("the process exited during setup".into()))
                    }
                    Err(e) => return Err(sys_err("reading sync socket")(e)),
                };
                match msg {
                    Msg::Pid(p) => {
                        pid = p;
                        let _ = nix::sys::wait::waitpid(stage1, None);
                        st.cgroup.add_v2(p, placed)?;
                        parent.send(&Msg::Go).map_err(sys_err("sync"))?;
                    }
                    Msg::Console => {
                        let master = fd.ok_or_else(|| failed("pty master missing".into()))?;
                        match &opts.console_socket {
                            Some(sock) => send_console(sock, &master)?,
                            None => console = Some(master),
                        }
                    }
                    Msg::Ready => return Ok(()),
                    Msg::Error { code, message } => return Err(refused(code, message)),
                    m => return Err(failed(format!("unexpected message {m:?}"))),
                }
            }
        })();
        if let Err(e) = r {
            kill(stage1.as_raw());
            let _ = nix::sys::wait::waitpid(stage1, None);
            if pid > 0 {
                kill(pid);
                let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), Some(nix::sys::wait::WaitPidFlag::WNOHANG));
            }
            return Err(e);
        }
        if let Some(pf) = &opts.pid_file {
            write_pid_file(pf, pid)?;
        }
        Ok(Created { pid, console })
    }
}

/// Options of `exec`.
#[derive(Debug, Default)]
pub struct ExecOpts {
    /// Where to write the process's pid.
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the pty master to.
    pub console_socket: Option<PathBuf>,
    /// Descriptors 3..3+N passed on.
    pub preserve_fds: u32,
    /// Become the subreaper (foreground exec).
    pub subreaper: bool,
    /// Exec even into a paused container.
    pub ignore_paused: bool,
}
