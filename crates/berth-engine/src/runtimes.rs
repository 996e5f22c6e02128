//! The OCI runtime a container runs under: berth's own, called in process, or an external
//! one (runc, crun, youki, any path) driven through the OCI runtime command line, the way
//! containerd's shim and conmon drive them. Both are reached through [`Rt`], so the monitor,
//! `stop`, `exec`, `pause`, `stats` and health checks take one path whichever it is.
//!
//! An external runtime keeps its state under `<run>/runtimes/<name>` (its `--root`), apart
//! from any other user of the same runtime. Reading a container's cgroup (stats, pids, OOM
//! kills, `update`) needs no runtime: the cgroup is where the bundle's `cgroupsPath` puts it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_oci::oci_spec::runtime::Process;
use berth_runtime::cgroups::CgroupConfig;
use berth_runtime::container::{CreateOpts, Created, ExecOpts, Runtime};

use crate::{EngineError, Result};

/// Validates a `--runtime` value: empty (or `berth`) for the built-in runtime, else the
/// name of an executable on `PATH` or a path to one. Returns what is stored.
pub fn check_name(name: &str) -> Result<String> {
    match name {
        "" | "berth" | "berth-runtime" => Ok(String::new()),
        n if find(n).is_some() => Ok(n.to_string()),
        n => Err(EngineError::Invalid(format!("unknown or invalid runtime name: {n}"))),
    }
}

fn find(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| executable(p))
}

/// A container's runtime.
#[derive(Debug, Clone)]
pub enum Rt {
    /// berth-runtime, in process.
    Builtin(Runtime),
    /// An OCI runtime binary.
    External {
        /// The binary.
        bin: PathBuf,
        /// Its `--root`.
        root: PathBuf,
    },
}

impl Rt {
    /// The runtime stored in a record (`runtime`) under the engine's run directory.
    pub fn new(run: &Path, runtime: &str) -> Result<Rt> {
        if runtime.is_empty() {
            return Ok(Rt::Builtin(Runtime {
                root: run.join("runtime"),
                systemd_cgroup: false,
            }));
        }
        let bin =
            find(runtime).ok_or_else(|| EngineError::Invalid(format!("unknown or invalid runtime name: {runtime}")))?;
        let tag: String = runtime
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
            .collect();
        Ok(Rt::External {
            bin,
            root: run.join("runtimes").join(tag),
        })
    }

    fn cmd(&self) -> Option<Command> {
        match self {
            Rt::Builtin(_) => None,
            Rt::External { bin, root } => {
                let mut c = Command::new(bin);
                c.arg("--root").arg(root);
                Some(c)
            }
        }
    }

    /// Creates the container from the bundle in `bundle`, its stdio being the caller's
    /// 0-2. The caller is the child subreaper, so the init ends up its child. With a
    /// terminal, the pty master comes back.
    pub fn create(&self, id: &str, bundle: &Path, terminal: bool) -> Result<Created> {
        let mut c = match self {
            Rt::Builtin(rt) => {
                let opts = CreateOpts {
                    bundle: bundle.to_path_buf(),
                    subreaper: true,
                    ..Default::default()
                };
                return Ok(rt.create(id, &opts)?);
            }
            Rt::External { bin, root } => {
                let mut c = Command::new(bin);
                c.arg("--root").arg(root);
                c
            }
        };
        let pid_file = bundle.join("init.pid");
        let log = bundle.join("runtime.log");
        let _ = std::fs::remove_file(&pid_file);
        let _ = std::fs::remove_file(&log);
        let console = if terminal {
            Some(ConsoleSocket::listen(bundle)?)
        } else {
            None
        };
        c.arg("--log").arg(&log).arg("--log-format").arg("json").arg("create");
        c.arg("--bundle").arg(bundle).arg("--pid-file").arg(&pid_file);
        if let Some(s) = &console {
            c.arg("--console-socket").arg(&s.path);
        }
        c.arg(id);
        let mut child = c.spawn().map_err(crate::io_err("running", self.bin()))?;
        let master = match &console {
            Some(s) => s.receive(Duration::from_secs(30)),
            None => None,
        };
        let status = child.wait().map_err(crate::io_err("waiting for", self.bin()))?;
        if !status.success() {
            let message = runtime_error(&log, status);
            return Err(EngineError::Start {
                code: oci_runtime_code(&message),
                message,
            });
        }
        if terminal && master.is_none() {
            return Err(EngineError::Invalid("the runtime sent no terminal".into()));
        }
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| EngineError::Invalid(format!("the runtime wrote no pid to {}", pid_file.display())))?;
        Ok(Created { pid, console: master })
    }

    fn bin(&self) -> PathBuf {
        match self {
            Rt::Builtin(_) => PathBuf::from("berth-runtime"),
            Rt::External { bin, .. } => bin.clone(),
        }
    }

    /// Runs `args` on the external runtime; its error output becomes the error.
    fn run(&self, args: &[&str]) -> Result<()> {
        let Some(mut c) = self.cmd() else { return Ok(()) };
        let out = c
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(crate::io_err("running", self.bin()))?;
        if !out.status.success() {
            return Err(EngineError::Invalid(format!(
                "{} {}: {}",
                self.bin().display(),
                args.first().unwrap_or(&""),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// Starts the created container's process.
    pub fn start(&self, id: &str) -> Result<()> {
        match self {
            Rt::Builtin(rt) => Ok(rt.start(id)?),
            Rt::External { .. } => self.run(&["start", id]),
        }
    }

    /// Sends a signal to the init (or, with `all`, every process).
    pub fn kill(&self, id: &str, sig: i32, all: bool) -> Result<()> {
        match self {
            Rt::Builtin(rt) => Ok(rt.kill(id, sig, all)?),
            Rt::External { .. } => {
                let s = sig.to_string();
                if all {
                    self.run(&["kill", "--all", id, &s])
                } else {
                    self.run(&["kill", id, &s])
                }
            }
        }
    }

    /// Deletes the runtime's state (and, with `force`, kills what still runs).
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        match self {
            Rt::Builtin(rt) => Ok(rt.delete(id, force)?),
            Rt::External { .. } if force => self.run(&["delete", "--force", id]),
            Rt::External { .. } => self.run(&["delete", id]),
        }
    }

    /// Freezes or thaws the container.
    pub fn set_paused(&self, id: &str, paused: bool) -> Result<()> {
        match self {
            Rt::Builtin(rt) => Ok(rt.set_paused(id, paused)?),
            Rt::External { .. } => self.run(&[if paused { "pause" } else { "resume" }, id]),
        }
    }

    /// Starts `process` in the running container, its stdio being the caller's 0-2, and
    /// returns at once with its pid (the caller, a child subreaper, reaps it).
    pub fn exec_detached(&self, id: &str, process: &Process, scratch: &Path) -> Result<i32> {
        match self {
            Rt::Builtin(rt) => Ok(rt.exec(id, process, &ExecOpts::default())?.pid),
            Rt::External { .. } => {
                let (file, pid_file) = write_process(process, scratch)?;
                let mut c = self.cmd().ok_or_else(|| EngineError::Invalid("no runtime".into()))?;
                let status = c
                    .arg("exec")
                    .arg("--detach")
                    .arg("--process")
                    .arg(&file)
                    .arg("--pid-file")
                    .arg(&pid_file)
                    .arg(id)
                    .status()
                    .map_err(crate::io_err("running", self.bin()))?;
                let _ = std::fs::remove_file(&file);
                let pid = std::fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
                let _ = std::fs::remove_file(&pid_file);
                match (status.success(), pid) {
                    (true, Some(p)) => Ok(p),
                    _ => Err(EngineError::Invalid(format!(
                        "{} exec failed ({status})",
                        self.bin().display()
                    ))),
                }
            }
        }
    }

    /// For an external runtime: the command that runs `process` in the container in the
    /// foreground (with `-t`, the runtime handles the terminal), or `None` for berth's own.
    pub fn exec_command(
        &self,
        id: &str,
        process: &Process,
        scratch: &Path,
        detach: bool,
    ) -> Result<Option<(Command, PathBuf)>> {
        let Some(mut c) = self.cmd() else { return Ok(None) };
        let (file, _) = write_process(process, scratch)?;
        c.arg("exec").arg("--process").arg(&file);
        if detach {
            c.arg("--detach");
        }
        if process.terminal() == Some(true) {
            c.arg("--tty");
        }
        c.arg(id);
        Ok(Some((c, file)))
    }

    /// The container's cgroup, while the runtime has it.
    fn cgroup(&self, id: &str, bundle: &Path) -> Option<CgroupConfig> {
        match self {
            Rt::Builtin(rt) => rt.load(id).ok().map(|(_, st, _)| st.cgroup),
            Rt::External { .. } => cgroup_of(bundle, id),
        }
    }

    /// OOM kills recorded in the container's cgroup.
    pub fn oom_kills(&self, id: &str, bundle: &Path) -> u64 {
        self.cgroup(id, bundle).map(|c| c.oom_kills()).unwrap_or(0)
    }

    /// Whether the container is frozen.
    pub fn is_paused(&self, id: &str, bundle: &Path) -> bool {
        self.cgroup(id, bundle).is_some_and(|c| c.is_frozen())
    }

    /// The container's processes (host pids).
    pub fn pids(&self, id: &str, bundle: &Path) -> Result<Vec<i32>> {
        match self {
            Rt::Builtin(rt) => Ok(rt.pids(id)?),
            Rt::External { .. } => {
                let c = cgroup_of(bundle, id).ok_or_else(|| EngineError::Invalid(format!("no cgroup for {id}")))?;
                c.pids().map_err(|e| EngineError::Invalid(e.to_string()))
            }
        }
    }

    /// Resource usage, as `berth runtime events --stats` reports it.
    pub fn stats(&self, id: &str, bundle: &Path) -> Result<serde_json::Value> {
        match self {
            Rt::Builtin(rt) => Ok(rt.stats(id)?),
            Rt::External { .. } => {
                let c = cgroup_of(bundle, id).ok_or_else(|| EngineError::Invalid(format!("no cgroup for {id}")))?;
                Ok(serde_json::json!({"type": "stats", "id": id, "data": c.stats()}))
            }
        }
    }

    /// Applies new resource limits.
    pub fn update(&self, id: &str, bundle: &Path, res: &berth_oci::oci_spec::runtime::LinuxResources) -> Result<()> {
        match self {
            Rt::Builtin(rt) => Ok(rt.update(id, res)?),
            Rt::External { .. } => {
                let c = cgroup_of(bundle, id).ok_or_else(|| EngineError::Invalid(format!("no cgroup for {id}")))?;
                c.set(res).map_err(|e| EngineError::Invalid(e.to_string()))
            }
        }
    }

    /// Whether the built-in runtime is in use.
    pub fn is_builtin(&self) -> bool {
        matches!(self, Rt::Builtin(_))
    }
}

fn write_process(process: &Process, scratch: &Path) -> Result<(PathBuf, PathBuf)> {
    let n = std::process::id();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let file = scratch.join(format!("exec-{n}-{nanos}.json"));
    let json = serde_json::to_vec(process).map_err(|e| EngineError::Invalid(e.to_string()))?;
    std::fs::write(&file, json).map_err(crate::io_err("writing", &file))?;
    Ok((file, scratch.join(format!("exec-{n}-{nanos}.pid"))))
}

/// The exit code for an external OCI runtime's failure to create a container. Such a runtime
/// says why only in words, so this reads them as dockerd reads runc's: a program not found
/// is 127, one it may not run 126, anything else 125. berth's own runtime reports the kind
/// itself ([`berth_runtime::container::ContainerError::exit_code`]).
fn oci_runtime_code(message: &str) -> i32 {
    let m = message.to_ascii_lowercase();
    if m.contains("executable file not found") || m.contains("no such file or directory") {
        127
    } else if m.contains("permission denied") {
        126
    } else {
        125
    }
}

/// The last error an OCI runtime logged (`--log-format json`), or its exit status.
fn runtime_error(log: &Path, status: std::process::ExitStatus) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "error" || v["level"] == "fatal")
        .and_then(|v| v["msg"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("the OCI runtime failed ({status})"))
}

/// The cgroup a container's bundle puts it in (for stats, pids, OOM kills and `update`
/// under any runtime).
pub fn cgroup_of(bundle: &Path, id: &str) -> Option<CgroupConfig> {
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(bundle.join("config.json")).ok()?).ok()?;
    let p = spec["linux"]["cgroupsPath"].as_str().map(PathBuf::from);
    let path = berth_runtime::cgroups::normalize(p.as_deref(), id, false).ok()?;
    let layout = berth_runtime::cgroups::host_layout().ok()?;
    let own = berth_runtime::cgroups::own_cgroups(&std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default());
    Some(CgroupConfig::resolve(&layout, &path, &own))
}

/// A socket an external runtime sends the pty master to (`--console-socket`).
struct ConsoleSocket {
    listener: std::os::unix::net::UnixListener,
    path: String,
    _dir: std::fs::File,
}

impl ConsoleSocket {
    fn listen(dir: &Path) -> Result<ConsoleSocket> {
        let d = std::fs::File::open(dir).map_err(crate::io_err("opening", dir))?;
        // The runtime resolves the path itself: it must not depend on our descriptors.
        let path = dir.join("console.sock");
        let _ = std::fs::remove_file(&path);
        let short = format!("/proc/self/fd/{}/console.sock", d.as_raw_fd());
        let listener = std::os::unix::net::UnixListener::bind(&short).map_err(crate::io_err("listening on", &path))?;
        let _ = listener.set_nonblocking(true);
        let path = if path.as_os_str().len() < 100 {
            path.display().to_string()
        } else {
            format!("/proc/{}/fd/{}/console.sock", std::process::id(), d.as_raw_fd())
        };
        Ok(ConsoleSocket {
            listener,
            path,
            _dir: d,
        })
    }

    /// Waits for the runtime to connect and send the master.
    fn receive(&self, timeout: Duration) -> Option<OwnedFd> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        let deadline = Instant::now() + timeout;
        let conn = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
                Err(_) => return None,
            }
        };
        let _ = conn.set_nonblocking(false);
        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
        let mut buf = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(conn.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).ok()?;
        for c in msg.cmsgs().ok()? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                if let Some(&fd) = fds.first() {
                    // SAFETY: the kernel just installed this descriptor for us; we own it.
                    return Some(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        None
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/proc/self/fd/{}/console.sock", self._dir.as_raw_fd()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_names() {
        assert_eq!(check_name("").unwrap(), "");
        assert_eq!(check_name("berth").unwrap(), "");
        assert_eq!(check_name("sh").unwrap(), "sh");
        check_name("no-such-runtime-xyz").unwrap_err();
        check_name("/nonexistent/runc").unwrap_err();
    }
}
