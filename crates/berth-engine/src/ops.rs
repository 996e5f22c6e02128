//! Container operations: start (through a monitor), stop, kill, remove, wait, update;
//! `create` is in `create.rs`.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_image::store::ImageStore;

use crate::monitor::wait_exited;
use crate::spec;
use crate::store::{valid_name, Engine, Record, Status};
use crate::{io_err, EngineError, Result};

pub(crate) use crate::create::resolv_conf;
pub use crate::create::{check_limits, create, CreateOptions, Created};

/// Mounts the image layers + the container's upper dir on `rootfs`.
pub fn mount_rootfs(engine: &Engine, r: &Record) -> Result<()> {
    // Volumes with driver options get their mount back (after a reboot) before the
    // container binds them.
    for m in r.mounts.iter().filter(|m| m.kind == "volume") {
        crate::volumes::ensure_mounted(engine, &m.source)?;
    }
    let images = ImageStore::open(&engine.root)?;
    let img = images.image(&r.image_id)?;
    let lowers = images.lowers(&img)?;
    let dir = engine.dir(&r.id);
    unmount_rootfs(engine, &r.id);
    if !r.uid_map.is_empty() {
        return crate::userns::mount_rootfs(r, &dir, &lowers);
    }
    berth_image::snapshot::mount_overlay(
        &dir.join("rootfs"),
        &lowers,
        Some((&dir.join("fs/upper"), &dir.join("fs/work"))),
    )?;
    Ok(())
}

/// Unmounts the rootfs (no error when it is not mounted).
pub fn unmount_rootfs(engine: &Engine, id: &str) {
    let p = engine.dir(id).join("rootfs");
    while nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH).is_ok() {}
}

/// Removes everything of a container: mount, runtime state, directory, row, image use, and
/// its anonymous volumes when asked (`rm -v`, `--rm`).
pub fn remove_files_and_volumes(engine: &Engine, r: &Record, volumes: bool) -> Result<()> {
    remove_files(engine, r)?;
    if volumes {
        for v in &r.anonymous_volumes {
            let _ = crate::volumes::remove(engine, v);
        }
    }
    Ok(())
}

/// Removes everything of a container: mount, runtime state, directory, row, image use.
pub fn remove_files(engine: &Engine, r: &Record) -> Result<()> {
    if let Ok(rt) = engine.rt(r) {
        let _ = rt.delete(&r.id, true);
    }
    crate::networks::detach(engine, r, engine.state(&r.id).net.as_ref());
    crate::networks::forget(engine, &r.id);
    unmount_rootfs(engine, &r.id);
    let dir = engine.dir(&r.id);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err("removing", &dir)(e)),
        _ => {}
    }
    engine.delete_row(&r.id)?;
    let mut images = ImageStore::open(&engine.root)?;
    images.set_user(&r.image_id, &r.id, false)?;
    for m in r.mounts.iter().filter(|m| m.kind == "image") {
        images.set_user(&m.source, &r.id, false)?;
    }
    Ok(())
}

/// Starts a created or exited container: spawns its monitor (`exe _monitor`) and waits
/// until the container runs, or reports why it could not start (with Docker's exit code).
pub fn start(engine: &Engine, id: &str, exe: &Path) -> Result<()> {
    start_attached(engine, id, exe, None).map(|_| ())
}

/// [`start`], attached: the monitor waits for this client before it starts the container,
/// and the connection carries the container's stdio (see [`crate::attach`]). `None` when
/// the container was already running.
pub fn start_attached(
    engine: &Engine,
    id: &str,
    exe: &Path,
    hello: Option<&crate::attach::Hello>,
) -> Result<Option<std::os::unix::net::UnixStream>> {
    if let Ok(r) = engine.resolve(id) {
        crate::pods::start_infra_of(engine, &r, exe)?;
    }
    let started = start_monitor(engine, id, exe, hello);
    // As Docker's daemon: a container made with `--rm` goes when its start fails (clients
    // waiting for its removal would otherwise wait forever).
    if started.is_err() {
        if let Ok(r) = engine.resolve(id) {
            if r.auto_remove {
                let _ = remove(engine, &r.id, true, true);
            }
        }
    }
    started
}

/// The glibc tunables a monitor runs with: the caller's, plus no per-thread cache of freed
/// chunks. The cache keeps up to 7 chunks of each small size out of the heap's free lists,
/// scattered over its pages, so `malloc_trim` cannot give those pages back: ~110 KiB of
/// an idle monitor's 490 (measured). The monitor allocates little once it runs, so the
/// cache buys it nothing.
fn monitor_tunables(inherited: Option<std::ffi::OsString>) -> std::ffi::OsString {
    const NO_TCACHE: &str = "glibc.malloc.tcache_count=0";
    match inherited {
        Some(mut t) if !t.is_empty() => {
            t.push(":");
            t.push(NO_TCACHE);
            t
        }
        _ => NO_TCACHE.into(),
    }
}

/// [`start_attached`] without the `--rm` cleanup.
fn start_monitor(
    engine: &Engine,
    id: &str,
    exe: &Path,
    hello: Option<&crate::attach::Hello>,
) -> Result<Option<std::os::unix::net::UnixStream>> {
    let r = engine.resolve(id)?;
    let st = engine.state(&r.id);
    if st.running() {
        return Ok(None);
    }
    // A container on an overlay network: this host's agent keeps the network in step with
    // the cluster (its absence only delays learning of later endpoints elsewhere).
    if crate::networks::agent::needed(engine, &r) {
        let _ = crate::networks::agent::ensure(engine, exe);
    }
    let dir = engine.dir(&r.id);
    let _ = std::fs::remove_file(dir.join("stopped"));
    let _ = std::fs::remove_file(dir.join(crate::attach::SOCKET));
    // A run nobody saw end (its monitor and keeper were killed, then it stopped): what it
    // left, the runtime's state, the rootfs mount and its addresses, goes first.
    let stale = st.pid != 0 || st.net.is_some();
    if stale {
        if let Ok(rt) = engine.rt(&r) {
            let _ = rt.delete(&r.id, true);
        }
        unmount_rootfs(engine, &r.id);
        let _ = crate::networks::release(engine, &r, st.net.as_ref(), true);
    }
    // A new container's state already reads "created" without an error: rewriting it would
    // only cost a file (an inode) per start.
    if stale || st.status != Status::Created || !st.error.is_empty() {
        let mut fresh = st.clone();
        fresh.status = Status::Created;
        fresh.error.clear();
        fresh.pid = 0;
        fresh.net = None;
        engine.save_state(&r.id, &fresh)?;
    }
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--root").arg(&engine.root).arg("_monitor").arg(&r.id);
    if hello.is_some() {
        cmd.arg("--attach");
    }
    // The monitor reports on a pipe (its fd 3) when it listens and when the container
    // started, so this waits on the pipe instead of polling the state.
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| EngineError::Invalid(format!("pipe: {e}")))?;
    let w = std::os::fd::AsRawFd::as_raw_fd(&ready_w);
    // SAFETY: between fork and exec only dup2 and fcntl, which are async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            // dup2 onto itself would keep close-on-exec: clear it then.
            let ok = if w == 3 {
                libc::fcntl(3, libc::F_SETFD, 0) >= 0
            } else {
                libc::dup2(w, 3) >= 0
            };
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    cmd.arg("--ready-fd").arg("3");
    cmd.env("GLIBC_TUNABLES", monitor_tunables(std::env::var_os("GLIBC_TUNABLES")));
    let status = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(io_err("starting the monitor", exe))?;
    drop(ready_w);
    if !status.success() {
        return Err(EngineError::Invalid(format!("monitor for {} failed to start", r.id)));
    }
    let mut ready = std::fs::File::from(ready_r);
    let mut listening = false;
    let mut pipe_open = true;
    // The monitor said the container runs: it may be gone again by now (`--rm` of a
    // command that ends at once), so the state file no longer has the last word.
    let mut started = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stream = None;
    loop {
        // Until the monitor says it started the container (or goes away), wait on its pipe;
        // a client to attach connects once it listens.
        while pipe_open && !(listening && hello.is_some() && stream.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut fds = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&ready),
                nix::poll::PollFlags::POLLIN,
            )];
            let timeout = nix::poll::PollTimeout::try_from(left).unwrap_or(nix::poll::PollTimeout::MAX);
            match nix::poll::poll(&mut fds, timeout) {
                Ok(0) => break,
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => pipe_open = false,
            }
            let mut b = [0u8; 1];
            match std::io::Read::read(&mut ready, &mut b) {
                Ok(1) if b[0] == crate::monitor::READY_LISTENING => listening = true,
                Ok(1) if b[0] == crate::monitor::READY_STARTED => {
                    started = true;
                    pipe_open = false;
                }
                Ok(1) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Ok(_) | Err(_) => pipe_open = false,
            }
        }
        if let (Some(h), None) = (hello, &stream) {
            if dir.join(crate::attach::SOCKET).exists() {
                stream = crate::attach::connect(&dir, h).ok();
            }
        }
        let st = engine.state(&r.id);
        if !started && !st.error.is_empty() {
            return Err(EngineError::Start {
                code: st.exit_code,
                message: st.error,
            });
        }
        if (started || matches!(st.status, Status::Running | Status::Exited)) && (hello.is_none() || stream.is_some()) {
            crate::events::container(engine, &r, "start", &[]);
            return Ok(stream);
        }
        let err_file = dir.join("monitor.err");
        if let Ok(m) = std::fs::read_to_string(&err_file) {
            return Err(EngineError::Start { code: 125, message: m });
        }
        if Instant::now() > deadline {
            return Err(EngineError::Invalid(format!(
                "container {} did not start in time",
                r.id
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Sends a signal to a running container.
pub fn kill(engine: &Engine, id: &str, signal: &str) -> Result<()> {
    let r = engine.resolve(id)?;
    let st = engine.state(&r.id);
    if !st.running() {
        return Err(EngineError::Conflict(format!(
            "cannot kill container: {}: container {} is not running",
            r.name, r.id
        )));
    }
    let sig = berth_runtime::container::parse_signal(signal)
        .map_err(|e| EngineError::Invalid(format!("invalid signal: {e}")))?;
    mark_stopped(engine, &r.id);
    engine.rt(&r)?.kill(&r.id, sig, false)?;
    crate::events::container(engine, &r, "kill", &[("signal", sig.to_string())]);
    Ok(())
}

/// Passes a signal on to a running container (a foreground client's `--sig-proxy`): unlike
/// [`kill`], the restart policy still applies afterwards.
pub fn signal(engine: &Engine, id: &str, signal: &str) -> Result<()> {
    let r = engine.resolve(id)?;
    let sig = berth_runtime::container::parse_signal(signal)
        .map_err(|e| EngineError::Invalid(format!("invalid signal: {e}")))?;
    if engine.state(&r.id).running() {
        engine.rt(&r)?.kill(&r.id, sig, false)?;
    }
    Ok(())
}

/// Tells the monitor the user stopped the container: no restart policy brings it back.
fn mark_stopped(engine: &Engine, id: &str) {
    let _ = std::fs::write(engine.dir(id).join("stopped"), b"");
}

/// Stops a container: its stop signal, then SIGKILL after `timeout`.
pub fn stop(engine: &Engine, id: &str, timeout: Option<u64>, signal: Option<&str>) -> Result<()> {
    let r = engine.resolve(id)?;
    let st = engine.state(&r.id);
    if st.status == Status::Restarting {
        mark_stopped(engine, &r.id);
        wait_exited(engine, &r.id, Duration::from_secs(5));
        return Ok(());
    }
    if !st.running() {
        return Ok(());
    }
    let mut t = timeout.unwrap_or(r.stop_timeout);
    // A `kube play` container's preStop hook runs first, within the grace period.
    if let Some(argv) = r.kube.as_ref().and_then(|k| k.pre_stop.as_ref()) {
        let began = Instant::now();
        run_hook(engine, &r, argv, Duration::from_secs(t));
        t = t.saturating_sub(began.elapsed().as_secs());
    }
    let _ = kill(engine, &r.id, signal.unwrap_or(&r.stop_signal));
    let st = wait_exited(engine, &r.id, Duration::from_secs(t));
    if st.running() {
        let _ = kill(engine, &r.id, "SIGKILL");
        wait_exited(engine, &r.id, Duration::from_secs(30));
    }
    Ok(())
}

/// Runs `argv` in the running container `r` and waits for it, at most `limit` (then it is
/// killed).
fn run_hook(engine: &Engine, r: &Record, argv: &[String], limit: Duration) {
    let cfg = crate::exec::ExecConfig {
        args: argv.to_vec(),
        ..crate::exec::ExecConfig::default()
    };
    let Ok(process) = crate::exec::process(engine, r, &cfg) else {
        return;
    };
    let Ok(rt) = engine.rt(r) else { return };
    let Ok(pid) = rt.exec_detached(&r.id, &process, &engine.dir(&r.id)) else {
        return;
    };
    if let Some(fd) = crate::health::pidfd_open(pid) {
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&fd),
            nix::poll::PollFlags::POLLIN,
        )];
        let timeout = nix::poll::PollTimeout::try_from(limit).unwrap_or(nix::poll::PollTimeout::MAX);
        if nix::poll::poll(&mut fds, timeout).unwrap_or(0) == 0 {
            // The hook this call started.
            let _ = berth_runtime::kill(pid, libc::SIGKILL);
        }
    }
    // Reaped if it is this process's child (the built-in runtime's exec is).
    let _ = nix::sys::wait::waitpid(
        nix::unistd::Pid::from_raw(pid),
        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
    );
}

/// Removes a container; a running one only with `force` (killed first); with `volumes`
/// its anonymous volumes too.
pub fn remove(engine: &Engine, id: &str, force: bool, volumes: bool) -> Result<Record> {
    let r = engine.resolve(id)?;
    let st = engine.state(&r.id);
    if st.status == Status::Restarting {
        if !force {
            return Err(EngineError::Conflict(format!(
                "cannot remove container \"/{}\": container is restarting: stop the container before removing or force remove",
                r.name
            )));
        }
        mark_stopped(engine, &r.id);
        wait_exited(engine, &r.id, Duration::from_secs(5));
    }
    if engine.state(&r.id).running() {
        if !force {
            return Err(EngineError::Conflict(format!(
                "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                r.name
            )));
        }
        let _ = kill(engine, &r.id, "SIGKILL");
        wait_exited(engine, &r.id, Duration::from_secs(30));
    }
    remove_files_and_volumes(engine, &r, volumes)?;
    crate::events::container(engine, &r, "destroy", &[]);
    Ok(r)
}

/// Waits until the container is not running; returns its exit code.
pub fn wait(engine: &Engine, id: &str) -> Result<i32> {
    let r = engine.resolve(id)?;
    loop {
        let st = engine.state(&r.id);
        if !st.running() {
            return Ok(st.exit_code);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Renames a container (`rename OLD NEW`).
pub fn rename(engine: &Engine, id: &str, new: &str) -> Result<()> {
    let r = engine.resolve(id)?;
    let new = new.trim_start_matches('/');
    if !valid_name(new) {
        return Err(EngineError::Invalid(format!(
            "Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    if r.name == new {
        return Err(EngineError::Invalid(
            "Renaming a container with the same name as its current name".into(),
        ));
    }
    if engine.name_taken(new)? {
        return Err(EngineError::Conflict(format!(
            "Conflict. The container name \"/{new}\" is already in use. You have to remove (or rename) that container to be able to reuse that name."
        )));
    }
    engine.rename(&r.id, new)?;
    let mut renamed = r.clone();
    renamed.name = new.to_string();
    crate::events::container(engine, &renamed, "rename", &[("oldName", format!("/{}", r.name))]);
    Ok(())
}

/// Freezes or thaws a running container.
pub fn set_paused(engine: &Engine, id: &str, paused: bool) -> Result<()> {
    let r = engine.resolve(id)?;
    if !engine.state(&r.id).running() {
        return Err(EngineError::Conflict(format!("container {} is not running", r.id)));
    }
    let rt = engine.rt(&r)?;
    let frozen = is_paused(engine, &r.id);
    if paused && frozen {
        return Err(EngineError::Conflict(format!("container {} is already paused", r.id)));
    }
    if !paused && !frozen {
        return Err(EngineError::Conflict(format!("container {} is not paused", r.id)));
    }
    rt.set_paused(&r.id, paused)?;
    crate::events::container(engine, &r, if paused { "pause" } else { "unpause" }, &[]);
    Ok(())
}

/// Whether the runtime reports the container frozen.
pub fn is_paused(engine: &Engine, id: &str) -> bool {
    match engine.resolve(id) {
        Ok(r) => engine.rt(&r).is_ok_and(|rt| rt.is_paused(&r.id, &engine.dir(&r.id))),
        Err(_) => false,
    }
}

/// The host pids of a running container's processes.
pub fn pids(engine: &Engine, id: &str) -> Result<Vec<i32>> {
    let r = engine.resolve(id)?;
    if !engine.state(&r.id).running() {
        return Err(EngineError::Conflict(format!("container {} is not running", r.id)));
    }
    engine.rt(&r)?.pids(&r.id, &engine.dir(&r.id))
}

/// Removes every container that is not running; returns their ids.
pub fn prune(engine: &Engine) -> Result<Vec<String>> {
    prune_matching(engine, &|_| true)
}

/// Removes the stopped containers `selected` picks (`container prune --filter`).
pub fn prune_matching(engine: &Engine, selected: &dyn Fn(&Record) -> bool) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for r in engine.all()? {
        if !engine.state(&r.id).running() && selected(&r) {
            remove_files(engine, &r)?;
            out.push(r.id);
        }
    }
    Ok(out)
}

/// `ReopenContainerLog`: asks a running container's monitor to open its CRI log again
/// (after the kubelet moved it away to rotate it), and waits until the file is there.
pub fn reopen_cri_log(engine: &Engine, id: &str) -> Result<()> {
    let r = engine.resolve(id)?;
    if r.cri_log_path.is_empty() {
        return Err(EngineError::Invalid(format!("container {} has no CRI log", r.id)));
    }
    let st = engine.state(&r.id);
    if !st.running() {
        return Err(EngineError::Conflict(format!("container {} is not running", r.id)));
    }
    berth_runtime::kill(st.monitor_pid, libc::SIGHUP).map_err(|e| EngineError::Io {
        op: "signalling the monitor of",
        path: r.id.clone().into(),
        source: e,
    })?;
    let path = Path::new(&r.cri_log_path);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while !path.exists() {
        if std::time::Instant::now() > deadline {
            return Err(EngineError::Conflict(format!(
                "container {}: its log {} was not opened again (its monitor is gone)",
                r.id, r.cri_log_path
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok(())
}

/// What `update` changes; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct Update {
    /// Memory limit in bytes (0: none).
    pub memory: Option<i64>,
    /// Memory soft limit in bytes.
    pub memory_reservation: Option<i64>,
    /// Memory plus swap in bytes (-1: unlimited).
    pub memory_swap: Option<i64>,
    /// CFS quota in µs per 100 ms period (`--cpus` × 100000; 0: none).
    pub cpu_quota: Option<i64>,
    /// CPU shares.
    pub cpu_shares: Option<u64>,
    /// CPUs the container may use (`0-1`).
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use (`0-1`).
    pub cpuset_mems: Option<String>,
    /// Hugepage limits, bytes per page size (replacing the container's).
    pub hugepage_limits: Option<std::collections::BTreeMap<String, u64>>,
    /// cgroup v2 files to write (replacing the container's).
    pub unified: Option<std::collections::BTreeMap<String, String>>,
    /// Process limit (0 or less: none).
    pub pids_limit: Option<i64>,
    /// The restart policy.
    pub restart: Option<crate::options::RestartPolicy>,
}

/// Docker's smallest memory limit.
pub(crate) const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// `update`: new limits (or restart policy) for a container. They are kept in its record
/// and bundle, so they last across restarts, and applied to its cgroup when it runs.
pub fn update(engine: &Engine, id: &str, u: &Update) -> Result<()> {
    let mut r = engine.resolve(id)?;
    if let Some(m) = u.memory {
        if m != 0 && m < MIN_MEMORY {
            return Err(EngineError::Invalid("Minimum memory limit allowed is 6MB".into()));
        }
        r.memory = m.max(0);
    }
    if let Some(m) = u.memory_reservation {
        if m != 0 && m < MIN_MEMORY {
            return Err(EngineError::Invalid("Minimum memory reservation allowed is 6MB".into()));
        }
        r.memory_reservation = m.max(0);
    }
    if let Some(s) = u.memory_swap {
        r.memory_swap = s;
    }
    if r.memory_swap > 0 && (r.memory == 0 || r.memory_swap < r.memory) {
        return Err(EngineError::Invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
        ));
    }
    if r.memory > 0 && r.memory_reservation > r.memory {
        return Err(EngineError::Invalid(
            "Minimum memory limit can not be less than memory reservation limit, see usage".into(),
        ));
    }
    if let Some(q) = u.cpu_quota {
        if q != 0 && q < 1000 {
            return Err(EngineError::Invalid(
                "CPU cfs quota can not be less than 1ms (i.e. 1000)".into(),
            ));
        }
        r.cpu_quota = q.max(0);
    }
    if let Some(s) = u.cpu_shares {
        r.cpu_shares = s;
    }
    if let Some(c) = &u.cpuset_cpus {
        r.cpuset_cpus = c.clone();
    }
    if let Some(m) = &u.cpuset_mems {
        r.cpuset_mems = m.clone();
    }
    if let Some(h) = &u.hugepage_limits {
        r.hugepage_limits = h.clone();
    }
    if let Some(x) = &u.unified {
        r.unified = x.clone();
    }
    if let Some(p) = u.pids_limit {
        r.pids_limit = p.max(0);
    }
    if let Some(p) = u.restart {
        if r.auto_remove && p != crate::options::RestartPolicy::No {
            return Err(EngineError::Invalid(
                "Restart policy cannot be updated because AutoRemove is enabled for the container".into(),
            ));
        }
        r.restart = p.name().to_string();
        r.restart_max = p.max_retries();
    }
    let resources = spec::resources(&r);
    let bundle = engine.dir(&r.id);
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value = std::fs::read(&cfg_path)
        .map_err(io_err("reading", &cfg_path))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| EngineError::Invalid(format!("config.json: {e}"))))?;
    cfg["linux"]["resources"] = resources.clone();
    if engine.state(&r.id).running() {
        let mut live = resources;
        if let Some(o) = live.as_object_mut() {
            o.remove("devices");
        }
        // Cleared limits are written as "unlimited", which the runtime applies as such.
        if r.memory == 0 {
            live["memory"]["limit"] = serde_json::json!(-1);
        }
        if r.pids_limit == 0 {
            live["pids"] = serde_json::json!({"limit": -1});
        }
        if r.cpu_quota == 0 {
            live["cpu"]["quota"] = serde_json::json!(-1);
        }
        let res: berth_oci::oci_spec::runtime::LinuxResources =
            serde_json::from_value(live).map_err(|e| EngineError::Invalid(format!("resources: {e}")))?;
        engine.rt(&r)?.update(&r.id, &bundle, &res)?;
    }
    let tmp = bundle.join("config.json.tmp");
    let _ = std::fs::remove_file(&tmp);
    write_mode(
        &tmp,
        serde_json::to_string_pretty(&cfg)
            .map_err(|e| EngineError::Invalid(e.to_string()))?
            .as_bytes(),
        berth_image::perms::PRIVATE,
    )?;
    std::fs::rename(&tmp, &cfg_path).map_err(io_err("writing", &cfg_path))?;
    engine.save_record(&r)?;
    crate::events::container(engine, &r, "update", &[]);
    Ok(())
}

/// Writes `data` to a new (or truncated) file created with `mode`, whatever the umask.
pub(crate) fn write_mode(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io_err("writing", path))?;
    berth_image::perms::set(path, mode).map_err(io_err("securing", path))?;
    f.write_all(data).map_err(io_err("writing", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_tunables_keep_the_callers() {
        assert_eq!(monitor_tunables(None), "glibc.malloc.tcache_count=0");
        assert_eq!(monitor_tunables(Some("".into())), "glibc.malloc.tcache_count=0");
        assert_eq!(
            monitor_tunables(Some("glibc.malloc.arena_max=2".into())),
            "glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0"
        );
    }
}
