//! The keeper: the monitor's parent, so that a container outlives its monitor's death with
//! its exit code recorded. `monitor::main` forks once more after `setsid`; the parent stays
//! here, the child is the monitor.

use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::wait::WaitStatus;

use berth_runtime::shed::Shedder;

use crate::monitor::{ended, exited, NETWORK_LINGER};
use crate::store::{Engine, State, Status};
use crate::Result;

/// The keeper: the monitor's parent, a child subreaper that only waits. While the monitor
/// lives, the keeper sleeps in `waitpid` (its memory shed, so it costs a few pages). If the
/// monitor dies while its container runs (killed, or the OOM killer's choice), the
/// container's init is reparented to the keeper, which reaps it and records its real exit
/// code, then finishes the run as the monitor would have (addresses, mounts, `die`, `--rm`).
/// The container's output has no reader once the monitor is gone, and a restart policy is
/// not applied to such a run: the keeper only closes it.
pub(crate) fn keep(root: &Path, id: &str, monitor: nix::unistd::Pid) -> ! {
    // Nothing the monitor's starter waits on (its stdio, the ready pipe) stays open here.
    if let Ok(null) = nix::fcntl::open("/dev/null", OFlag::O_RDWR, nix::sys::stat::Mode::empty()) {
        for fd in 0..3 {
            // SAFETY: dup2 onto stdio, which this process owns.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    // SAFETY: close_range on plain integers; nothing in this process uses a descriptor
    // above stdio from here on (Rust-owned ones are never touched again: we exec or _exit).
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    // The keeper's work (this exec, and a rare adoption) waits for idle CPU: it must not
    // slow the container starts it runs beside. Its child, the monitor, keeps its priority.
    // SAFETY: setpriority on this process with plain integers.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
    // The exec below waits until the monitor has had its start to itself (2 s): starts come
    // in bursts, and the keeper's housekeeping is not on their path.
    if let Some(fd) = crate::health::pidfd_open(monitor.as_raw()) {
        let mut fds = [nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN)];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(2000u16)).unwrap_or(0) > 0 {
            // The monitor is done already: no need for a fresh image, nor to shed memory.
            wait_and_adopt(root, id, monitor, None)
        }
    }
    // A fresh image of the binary (`berth _keep`), so the keeper does not hold the heap the
    // command line's parsing left; the pid, the child and the subreaper flag carry over.
    let args = [
        c"berth".to_owned(),
        c"_keep".to_owned(),
        std::ffi::CString::new(root.as_os_str().as_encoded_bytes()).unwrap_or_default(),
        std::ffi::CString::new(id).unwrap_or_default(),
        std::ffi::CString::new(monitor.as_raw().to_string()).unwrap_or_default(),
    ];
    let _ = nix::unistd::execv(c"/proc/self/exe", &args);
    keeper(root, id, monitor.as_raw())
}

/// `berth _keep ROOT ID MONITOR_PID`: the keeper's loop (see [`keep`]).
pub fn keeper(root: &Path, id: &str, monitor: i32) -> ! {
    wait_and_adopt(root, id, nix::unistd::Pid::from_raw(monitor), Some(Shedder::default()))
}

fn wait_and_adopt(root: &Path, id: &str, monitor: nix::unistd::Pid, shed: Option<Shedder>) -> ! {
    // A keeper that adopted the container is its monitor pid: a log reopen's SIGHUP must not
    // end it (it writes no log).
    // SAFETY: setting a signal's disposition to ignored.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    // Only a monitor killed by a signal can leave a run half made: one that returned (even
    // with an error, such as a second `start` racing the first) cleaned up after itself or
    // never touched the container.
    let killed = loop {
        // Right before the wait, so only the wait's own pages come back.
        if let Some(s) = &shed {
            s.shed();
        }
        match nix::sys::wait::waitpid(monitor, None) {
            Ok(WaitStatus::Exited(..)) => break false,
            Ok(WaitStatus::Signaled(..)) => break true,
            Err(nix::errno::Errno::EINTR) | Ok(_) => {}
            Err(_) => break false,
        }
    };
    let mut code = i32::from(adopt(root, id, monitor.as_raw()).is_err());
    if killed && half_made(root, id).is_err() {
        code = 1;
    }
    // SAFETY: _exit ends the keeper without running destructors of state it shares with
    // the monitor it was forked from.
    unsafe { libc::_exit(code) }
}

/// After a monitor killed outside a run: a container it was creating or
/// starting is torn down (the runtime's processes, blocked on the start fifo, are killed
/// and reaped here, their cgroups and state removed, the rootfs unmounted), so nothing
/// half-made outlives it. A container that reached `running` was adopted instead.
fn half_made(root: &Path, id: &str) -> Result<()> {
    let dir = root.join("containers").join(id);
    let recorded: Option<State> = std::fs::read(dir.join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if recorded.is_none_or(|st| st.status != Status::Created) {
        return Ok(());
    }
    // Only what the dead monitor left is this keeper's: its orphans were reparented here.
    // With no child, nothing half made is ours (a later `start` may be creating it).
    if nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG)).is_err() {
        return Ok(());
    }
    let eng = Engine::open(root)?;
    let rec = eng.resolve(id)?;
    let _ = eng.rt(&rec)?.delete(&rec.id, true);
    crate::ops::unmount_rootfs(&eng, &rec.id);
    // The runtime's stage 2 was reparented here when the monitor died: reap it once the
    // force delete's SIGKILL has landed (bounded: nothing else is waited for).
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < until {
        match nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    Ok(())
}

/// After the monitor is gone: reaps the container's init if it still runs, and records it.
fn adopt(root: &Path, id: &str, monitor: i32) -> Result<()> {
    // The common case, a monitor that finished its run (or removed its container), is seen
    // from the state file alone, without opening the database. A run that another monitor
    // started since (this keeper may wake late: it is niced) is not this keeper's.
    let recorded: Option<State> = std::fs::read(root.join("containers").join(id).join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if !recorded.is_some_and(|st| {
        matches!(st.status.as_str(), "running" | "restarting") && st.pid > 0 && st.monitor_pid == monitor
    }) {
        return Ok(());
    }
    let eng = Engine::open(root)?;
    let rec = eng.resolve(id)?;
    let mut st = eng.state(&rec.id);
    let init = st.pid;
    // SAFETY: signal 0 only checks that the pid exists.
    let alive = init > 0 && unsafe { libc::kill(init, 0) } == 0;
    if !alive || !matches!(st.status.as_str(), "running" | "restarting") || st.monitor_pid != monitor {
        // The monitor finished the run itself (or never started one), or it is not ours.
        return Ok(());
    }
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    st.monitor_pid = me;
    eng.save_state(&rec.id, &st)?;
    let rt = eng.rt(&rec)?;
    drop(eng);
    let mut code = None;
    loop {
        match nix::sys::wait::waitpid(None, None) {
            Ok(WaitStatus::Exited(p, c)) if p.as_raw() == init => code = Some(c),
            Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == init => code = Some(128 + s as i32),
            Err(nix::errno::Errno::EINTR) => continue,
            // Probes and exec'd processes the monitor left are reaped on the way.
            Ok(_) => continue,
            // No child left: the init was not reparented here (it is someone else's).
            Err(_) => {}
        }
        break;
    }
    let code = code.unwrap_or_else(|| {
        // Not ours to reap: wait for it to go, with an unknown code, as before.
        if let Some(fd) = crate::health::pidfd_open(init) {
            let mut fds = [nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN)];
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE);
        }
        255
    });
    let eng = Engine::open(root)?;
    let Ok(rec) = eng.resolve(id) else {
        return Ok(());
    };
    let mut st = eng.state(&rec.id);
    if st.monitor_pid != me {
        // Started again meanwhile: that run is its own monitor's.
        return Ok(());
    }
    ended(&eng, &rt, &rec, &mut st, code);
    let idle_networks = exited(&eng, &rec, &mut st)?;
    crate::networks::remove_netns(&eng, &rec.id);
    crate::networks::tear_down_idle(&eng, &idle_networks, NETWORK_LINGER);
    Ok(())
}
