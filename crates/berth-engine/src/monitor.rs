//! The per-container monitor: `berth` re-executed as a hidden subcommand, detached in its
//! own session (forked once more so it is nobody's child), single-threaded and without an
//! async runtime. It mounts the container's rootfs, creates and starts the container through
//! berth-runtime as child subreaper (so the init is its child), turns the container's
//! stdout/stderr pipes into the json-file log, reaps the init, records the exit code and an
//! OOM kill, deletes the runtime state, unmounts, and removes the container for `--rm`.
//!
//! The monitor is the only writer of `state.json` while it lives; when it is gone, readers
//! reconcile (see [`crate::store::Engine::state`]).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::wait::{WaitPidFlag, WaitStatus};

use crate::store::{Engine, Record, State, Status, ZERO_TIME};
use crate::{attach, ops};
use crate::{EngineError, Result};
use berth_runtime::shed::Shedder;

mod probes;
use probes::Probes;

/// Log rotation defaults: 10 MB per file, 3 files.
pub const LOG_MAX_SIZE: u64 = 10 << 20;
/// Files kept.
pub const LOG_MAX_FILES: u32 = 3;

/// How long a monitor keeps a bridge it was the last user of, for the next container.
pub const NETWORK_LINGER: Duration = Duration::from_secs(2);

/// Runs the monitor for container `id` under data root `root`; returns the process exit
/// code. Forks first: the parent returns at once (the caller exits with it), the child
/// carries on, reparented away from the CLI. With `wait_attach`, the container starts only
/// once a client has attached (or after 30 s), so a foreground `run` sees all its output.
pub fn main(root: &Path, id: &str, wait_attach: bool, ready_fd: Option<i32>) -> i32 {
    let ready = ready_fd.and_then(|fd| {
        // SAFETY: fcntl on a plain descriptor number: F_GETFD only checks that it is open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return None;
        }
        // SAFETY: the starter handed this descriptor to us alone, by number; nothing else in
        // this process owns it.
        let f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // It must reach neither the runtime nor the container.
        let _ = nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
        Some(Ready(f))
    });
    // SAFETY: the monitor is single-threaded here; fork is sound.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => return 0,
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(_) => return 1,
    }
    let _ = nix::unistd::setsid();
    // The keeper stays here as the monitor's parent; the monitor carries on in a child.
    if nix::sys::prctl::set_child_subreaper(true).is_ok() {
        // SAFETY: still single-threaded; fork is sound.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Parent { child }) => {
                drop(ready);
                crate::keeper::keep(root, id, child)
            }
            Ok(nix::unistd::ForkResult::Child) => {}
            // No keeper: the monitor runs on, as it did before there was one.
            Err(_) => {}
        }
    }
    let code = match monitor(root, id, wait_attach, ready) {
        Ok(()) => 0,
        Err(e) => {
            let _ = std::fs::write(root.join("containers").join(id).join("monitor.err"), e.to_string());
            1
        }
    };
    // SAFETY: _exit ends the forked child without running the parent's destructors.
    unsafe { libc::_exit(code) }
}

/// Whether the restart policy wants the container back after it ended with `code`.
pub fn should_restart(policy: &str, max: u32, count: u32, code: i32, stopped_by_user: bool) -> bool {
    if stopped_by_user {
        return false;
    }
    match policy {
        "always" | "unless-stopped" => true,
        "on-failure" => code != 0 && (max == 0 || count < max),
        _ => false,
    }
}

/// Docker's restart backoff: 100 ms, doubling per quick exit, at most a minute; a run of 10 s
/// or more starts the sequence over.
pub fn backoff(previous: Duration, ran: Duration) -> Duration {
    if ran >= Duration::from_secs(10) || previous.is_zero() {
        Duration::from_millis(100)
    } else {
        (previous * 2).min(Duration::from_secs(60))
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| EngineError::Invalid(format!("pipe: {e}")))
}

fn nonblocking(fd: &OwnedFd) {
    let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
}

/// The pipe that tells whoever started the monitor how far it got: [`READY_LISTENING`] once
/// clients can attach, [`READY_STARTED`] once the container runs (or failed to: the state
/// says which). Its end of file means the monitor is gone.
#[derive(Debug)]
struct Ready(std::fs::File);

/// The attach socket is listening.
pub const READY_LISTENING: u8 = b'L';
/// The first start is over (running, or failed: see the state).
pub const READY_STARTED: u8 = b'S';

impl Ready {
    fn say(&mut self, what: u8) {
        let _ = std::io::Write::write_all(&mut self.0, &[what]);
    }
}

fn monitor(root: &Path, id: &str, wait_attach: bool, ready: Option<Ready>) -> Result<()> {
    let mut ready = ready;
    let engine = Engine::open(root)?;
    let rec = engine.resolve(id)?;
    let dir = engine.dir(&rec.id);
    let mut st = engine.state(&rec.id);
    st.monitor_pid = i32::try_from(std::process::id()).unwrap_or(0);
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| EngineError::Invalid(format!("subreaper: {e}")))?;
    let devnull = nix::fcntl::open(
        "/dev/null",
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| EngineError::Invalid(format!("/dev/null: {e}")))?;
    let stopped_flag = dir.join("stopped");
    let mut hub = attach::Hub::listen(&dir).map_err(crate::io_err("listening on", dir.join(attach::SOCKET)))?;
    if let Some(r) = ready.as_mut() {
        r.say(READY_LISTENING);
    }
    if wait_attach {
        hub.wait_for_client(Duration::from_secs(30));
    }
    // The network outlives restarts: attached once, before the first start.
    let mut resolver = None;
    crate::networks::usermode::defer_setup();
    let attached = match crate::networks::attach(&engine, &rec) {
        Ok(Some((att, dns))) => {
            resolver = dns.map(|s| crate::dns::Resolver::new(s, &rec.id, &att.dns_upstream));
            st.net = Some(att);
            let extra = crate::networks::attach_connections(&engine, &rec);
            if extra.is_err() {
                crate::networks::detach(&engine, &rec, st.net.as_ref());
                st.net = None;
            }
            extra
        }
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = attached {
        st.status = Status::Created;
        st.error = e.to_string();
        st.exit_code = 125;
        st.monitor_pid = 0;
        engine.save_state(&rec.id, &st)?;
        hub.finish(125);
        return Ok(());
    }
    let mut engine = Some(engine);
    let mut delay = Duration::ZERO;
    // The kubelet's back-off, for a `kube play` container: the last delay.
    let mut kube_delay = None;
    loop {
        let eng = match engine.take() {
            Some(e) => e,
            None => Engine::open(root)?,
        };
        // Stdio: a terminal (the runtime makes it and hands back the master), or a pipe
        // per output stream and, with `-i`, one for stdin; otherwise stdin is /dev/null.
        let dup_to = |from: &OwnedFd, to: i32| {
            // SAFETY: dup2 between descriptors this process owns; 0-2 are ours to replace.
            unsafe { libc::dup2(from.as_raw_fd(), to) };
        };
        let mut outputs: Vec<(OwnedFd, u8)> = Vec::new();
        let mut stdin = attach::StdinSink::new(rec.stdin_once, rec.tty);
        let mut child_ends: Vec<OwnedFd> = Vec::new();
        if rec.tty {
            dup_to(&devnull, 0);
            dup_to(&devnull, 1);
            dup_to(&devnull, 2);
        } else {
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            if rec.open_stdin {
                let (in_r, in_w) = pipe()?;
                dup_to(&in_r, 0);
                nonblocking(&in_w);
                stdin.fd = Some(in_w);
                child_ends.push(in_r);
            } else {
                dup_to(&devnull, 0);
            }
            dup_to(&out_w, 1);
            dup_to(&err_w, 2);
            outputs.push((out_r, attach::STDOUT));
            outputs.push((err_r, attach::STDERR));
            child_ends.push(out_w);
            child_ends.push(err_w);
        }
        let rt = eng.rt(&rec)?;
        let started = crate::networks::join_container(&eng, &rec)
            .and_then(|()| ops::mount_rootfs(&eng, &rec))
            .and_then(|()| {
                let created = rt.create(&rec.id, &dir, rec.tty)?;
                let wanted = (rec.console_size.0 > 0 && rec.console_size.1 > 0).then_some(rec.console_size);
                if let (Some(c), Some((rows, cols))) = (&created.console, hub.size.or(wanted)) {
                    attach::apply_size(Some(c.as_fd()), rows, cols);
                }
                crate::networks::usermode::await_setup()?;
                rt.start(&rec.id)?;
                Ok(created)
            });
        // The container holds the child's ends now; the monitor must not, or EOF never comes.
        dup_to(&devnull, 0);
        dup_to(&devnull, 1);
        dup_to(&devnull, 2);
        drop(child_ends);
        let (started, console) = match started {
            Ok(c) => (Ok(c.pid), c.console),
            Err(e) => (Err(e), None),
        };
        if let Some(c) = &console {
            nonblocking(c);
            if rec.open_stdin {
                stdin.fd = c.try_clone().ok();
            }
            if let Ok(c) = c.try_clone() {
                outputs.push((c, attach::STDOUT));
            }
        }
        let pid = match started {
            Ok(pid) => pid,
            Err(e) => {
                let msg = e.to_string();
                let code = e.start_code();
                let _ = rt.delete(&rec.id, true);
                ops::unmount_rootfs(&eng, &rec.id);
                st.status = if st.restart_count > 0 {
                    Status::Exited
                } else {
                    Status::Created
                };
                st.error = msg.clone();
                st.exit_code = code;
                st.monitor_pid = 0;
                crate::networks::detach(&eng, &rec, st.net.as_ref());
                st.net = None;
                eng.save_state(&rec.id, &st)?;
                hub.finish(st.exit_code);
                drop(ready.take());
                return Ok(());
            }
        };
        st.status = Status::Running;
        st.pid = pid;
        st.error.clear();
        st.exit_code = 0;
        st.started_at = berth_image::store::now();
        st.finished_at = ZERO_TIME.into();
        st.oom_killed = false;
        eng.save_state(&rec.id, &st)?;
        if let Some(mut r) = ready.take() {
            r.say(READY_STARTED);
        }
        let began = Instant::now();

        // --log-driver none: output is still drained (the container must never block on a
        // full pipe), but a zero-size log keeps nothing.
        let (max, files) = if rec.log_driver == "none" {
            (1, 1)
        } else {
            (
                if rec.log_max_size > 0 {
                    rec.log_max_size
                } else {
                    LOG_MAX_SIZE
                },
                if rec.log_max_file > 0 {
                    rec.log_max_file
                } else {
                    LOG_MAX_FILES
                },
            )
        };
        let mut log = crate::logs::Writer::open(&dir.join("json.log"), max, files)
            .map_err(crate::io_err("opening", dir.join("json.log")))?;
        if !rec.cri_log_path.is_empty() {
            log = log
                .with_cri(Path::new(&rec.cri_log_path))
                .map_err(crate::io_err("opening", &rec.cri_log_path))?;
            reopen_on_sighup();
        }
        // Idle, the monitor should cost almost nothing: the database closes now, and the
        // pump sheds the heap and code pages setup touched once it is quiet.
        drop(eng);
        let process = (rec.health.is_some() || rec.kube.is_some())
            .then(|| {
                let spec: serde_json::Value = std::fs::read(dir.join("config.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())?;
                Some(spec["process"].clone())
            })
            .flatten();
        let mut checker = rec
            .health
            .as_ref()
            .zip(process.clone())
            .and_then(|(h, p)| crate::health::Checker::new(h, p));
        if let Some(c) = &checker {
            st.health = Some(c.health.clone());
        }
        let mut prober = rec
            .kube
            .as_ref()
            .map(|k| crate::kprobe::Prober::new(k, process.clone().unwrap_or_default(), pid, st.kube.take()));
        if let Some(p) = &prober {
            st.kube = Some(p.state.clone());
        }
        if checker.is_some() || prober.is_some() {
            let _ = crate::store::write_state(&dir, &st);
        }
        let shedder = Shedder::default();
        let mut probes = (checker.is_some() || prober.is_some()).then(|| Probes {
            reported: checker.as_ref().map(|c| c.health.status.clone()).unwrap_or_default(),
            checker: checker.as_mut(),
            kube: prober.as_mut(),
            killing: None,
            runtime: rt.clone(),
            id: rec.id.clone(),
            dir: dir.clone(),
            rec: &rec,
        });
        let mut io = Io {
            outputs,
            stdin: &mut stdin,
            hub: &mut hub,
            console: console.as_ref(),
            resolver: resolver.as_mut(),
            root,
            shedder: &shedder,
            shared_pidns: (!rec.pid_mode.is_empty()).then_some((&rt, rec.id.as_str())),
        };
        let status = pump(&mut io, pid, &mut log, probes.as_mut(), &mut st);
        drop(probes);
        drop(io);
        drop(console);
        drop(stdin);
        drop(log);
        let eng = Engine::open(root)?;
        ended(&eng, &rt, &rec, &mut st, status);
        let by_user = stopped_flag.exists();
        // The policy as it is now: `update` may have changed it while the container ran.
        let (restart, restart_max) = eng
            .resolve(&rec.id)
            .map(|f| (f.restart, f.restart_max))
            .unwrap_or_else(|_| (rec.restart.clone(), rec.restart_max));
        if let Some(k) = st.kube.as_mut() {
            k.ready = false;
            k.started = false;
            k.last = Some(crate::model::Terminated {
                exit_code: status,
                reason: crate::kprobe::reason(status, st.oom_killed).into(),
                started_at: st.started_at.clone(),
                finished_at: st.finished_at.clone(),
            });
        }
        if dir.exists() && !rec.auto_remove && should_restart(&restart, restart_max, st.restart_count, status, by_user)
        {
            if rec.kube.is_some() {
                let d = crate::kprobe::backoff(kube_delay, began.elapsed());
                kube_delay = Some(d);
                delay = d;
                if let Some(k) = st.kube.as_mut().filter(|_| !d.is_zero()) {
                    k.waiting = "CrashLoopBackOff".into();
                }
            } else {
                delay = backoff(delay, began.elapsed());
            }
            st.status = Status::Restarting;
            eng.save_state(&rec.id, &st)?;
            // Attached clients follow one run of the container, as Docker's do.
            hub.finish(status);
            // Wait out the backoff, unless the user stops or removes the container meanwhile.
            let until = Instant::now() + delay;
            // The kubelet's waits are long (up to 5 min): looked at less often.
            let nap = Duration::from_millis(if delay > Duration::from_secs(2) { 100 } else { 20 });
            while Instant::now() < until && !stopped_flag.exists() && dir.exists() {
                std::thread::sleep(nap);
            }
            if !dir.exists() {
                return Ok(());
            }
            if !stopped_flag.exists() {
                st.restart_count += 1;
                engine = Some(eng);
                continue;
            }
        }
        let idle_networks = exited(&eng, &rec, &mut st)?;
        // Last, so that a foreground `run --rm` returns once the container is gone.
        hub.finish(status);
        // Then, with no one waiting: the namespace goes, and bridges this container was the
        // last user of, unless another container takes them up within the grace period.
        crate::networks::remove_netns(&eng, &rec.id);
        crate::networks::tear_down_idle(&eng, &idle_networks, NETWORK_LINGER);
        return Ok(());
    }
}

/// What every end of a run records, whoever reaped the init: its exit code, an OOM kill,
/// and the runtime state and rootfs mount gone.
pub(crate) fn ended(eng: &Engine, rt: &crate::runtimes::Rt, rec: &Record, st: &mut State, code: i32) {
    st.oom_killed = rt.oom_kills(&rec.id, &eng.dir(&rec.id)) > 0;
    let _ = rt.delete(&rec.id, true);
    ops::unmount_rootfs(eng, &rec.id);
    st.exit_code = code;
    st.pid = 0;
    st.finished_at = berth_image::store::now();
}

/// A run over for good (no restart): addresses released, the state `exited`, the `die`
/// event, and a `--rm` container removed. Returns the networks left idle.
pub(crate) fn exited(eng: &Engine, rec: &Record, st: &mut State) -> Result<Vec<String>> {
    let dir = eng.dir(&rec.id);
    let idle_networks = crate::networks::release(eng, rec, st.net.as_ref(), false);
    st.net = None;
    st.status = Status::Exited;
    st.monitor_pid = 0;
    if dir.exists() {
        eng.save_state(&rec.id, st)?;
    }
    crate::events::container(eng, rec, "die", &[("exitCode", st.exit_code.to_string())]);
    if rec.auto_remove {
        ops::remove_files_and_volumes(eng, rec, true)?;
        crate::events::container(eng, rec, "destroy", &[]);
    } else {
        let _ = std::fs::remove_file(dir.join(attach::SOCKET));
    }
    crate::pods::after_exit(eng, rec);
    Ok(idle_networks)
}

/// The container's stdio as the monitor sees it.
struct Io<'a> {
    /// Output sources: stdout and stderr pipes, or the terminal (as stdout).
    outputs: Vec<(OwnedFd, u8)>,
    stdin: &'a mut attach::StdinSink,
    hub: &'a mut attach::Hub,
    console: Option<&'a OwnedFd>,
    /// The embedded DNS, on a user network.
    resolver: Option<&'a mut crate::dns::Resolver>,
    root: &'a Path,
    shedder: &'a Shedder,
    /// The runtime and id of a container whose PID namespace is not its own.
    shared_pidns: Option<(&'a crate::runtimes::Rt, &'a str)>,
}

/// How long the monitor waits without work before it sheds what the work faulted in: short
/// enough that it happens between health probes, long enough that a container writing
/// lines continuously does not pay for it on every line.
const QUIET: Duration = Duration::from_millis(250);

fn pump(
    io: &mut Io<'_>,
    init: i32,
    log: &mut crate::logs::Writer,
    mut probes: Option<&mut Probes<'_>>,
    st: &mut State,
) -> i32 {
    for (fd, _) in &io.outputs {
        nonblocking(fd);
    }
    let n = io.outputs.len();
    let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); n];
    let mut open = vec![true; n];
    let mut code: Option<i32> = None;
    let mut exited_at: Option<Instant> = None;
    let mut chunk = vec![0u8; 16 * 1024];
    let stream_name = |kind: u8| if kind == attach::STDERR { "stderr" } else { "stdout" };
    // The init's exit wakes poll through a pidfd, so an idle monitor sleeps in one poll
    // (no periodic wakeups: no CPU, and no code paged back in). Without pidfds (kernels
    // before 5.3), it looks every 200 ms.
    let pidfd = crate::health::pidfd_open(init);
    // When the monitor last did some work: it sheds memory once quiet after it. Getting
    // here from the start was work too.
    let mut worked = Some(Instant::now());
    loop {
        let mut wait = if pidfd.is_some() {
            None
        } else {
            Some(Duration::from_millis(200))
        };
        if let Some(w) = probes.as_ref().filter(|_| code.is_none()).and_then(|p| p.wait()) {
            let w = w.max(Duration::from_millis(1));
            wait = Some(wait.map_or(w, |x| x.min(w)));
        }
        if let Some(w) = io.resolver.as_ref().and_then(|r| r.wait()) {
            wait = Some(wait.map_or(w, |x| x.min(w)).max(Duration::from_millis(1)));
        }
        if code.is_some() {
            wait = Some(Duration::from_millis(20));
        }
        // Back to idle after work: once it has been quiet for a while, shed what the work
        // faulted in, then sleep as long as the work due allows.
        // The shed comes last before the poll, so that nothing faults code back in between.
        let mut quiet_timer = false;
        let mut shed_now = false;
        if let Some(t) = worked {
            let left = QUIET.saturating_sub(t.elapsed());
            if left.is_zero() {
                shed_now = true;
                worked = None;
            } else if wait.is_none_or(|w| left < w) {
                wait = Some(left);
                quiet_timer = true;
            }
        }
        {
            use nix::poll::{PollFd, PollFlags};
            let mut pfds: Vec<PollFd<'_>> = Vec::new();
            for (i, (fd, _)) in io.outputs.iter().enumerate() {
                if open[i] {
                    pfds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                }
            }
            if io.stdin.wants_write() {
                if let Some(fd) = &io.stdin.fd {
                    pfds.push(PollFd::new(fd.as_fd(), PollFlags::POLLOUT));
                }
            }
            if let (Some(p), None) = (&pidfd, code) {
                pfds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
            }
            if let Some(p) = &probes {
                if let Some(fd) = p.checker.as_deref().and_then(|c| c.probe_fd()) {
                    pfds.push(PollFd::new(fd, PollFlags::POLLIN));
                }
                if let Some(k) = p.kube.as_deref() {
                    pfds.extend(k.fds().map(|fd| PollFd::new(fd, PollFlags::POLLIN)));
                }
            }
            pfds.extend(io.hub.fds());
            if let Some(r) = &io.resolver {
                pfds.extend(r.fds().into_iter().map(|fd| PollFd::new(fd, PollFlags::POLLIN)));
            }
            let timeout = match wait {
                // Longer waits (a probe interval past 65 s) wake early and wait again.
                Some(w) => nix::poll::PollTimeout::from(u16::try_from(w.as_millis()).unwrap_or(u16::MAX)),
                None => nix::poll::PollTimeout::NONE,
            };
            if shed_now {
                io.shedder.shed();
            }
            let ready = nix::poll::poll(&mut pfds, timeout).unwrap_or(1);
            if ready != 0 || !quiet_timer {
                worked = Some(Instant::now());
            }
        }
        if REOPEN.swap(false, std::sync::atomic::Ordering::SeqCst) {
            let _ = log.reopen_cri();
        }
        io.hub.service(io.stdin, io.console.map(|c| c.as_fd()));
        if let Some(r) = io.resolver.as_deref_mut() {
            r.service(io.root);
        }
        io.stdin.flush();
        for i in 0..n {
            if !open[i] {
                continue;
            }
            let (fd, kind) = &io.outputs[i];
            loop {
                match nix::unistd::read(fd, &mut chunk) {
                    Ok(0) => {
                        open[i] = false;
                        break;
                    }
                    Ok(got) => {
                        io.hub.broadcast(*kind, &chunk[..got]);
                        bufs[i].extend_from_slice(&chunk[..got]);
                        flush_lines(&mut bufs[i], stream_name(*kind), log, false);
                    }
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(nix::errno::Errno::EAGAIN) => break,
                    // EIO: a terminal whose last user is gone.
                    Err(_) => {
                        open[i] = false;
                        break;
                    }
                }
            }
        }
        // A probe's end is a burst of its own, with nothing after it until the next one.
        let mut probed = false;
        loop {
            match nix::sys::wait::waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, c)) if p.as_raw() == init => code = Some(c),
                Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == init => code = Some(128 + s as i32),
                Ok(WaitStatus::Exited(p, c)) => {
                    if let Some(pr) = probes.as_deref_mut() {
                        probed |= pr.reaped(p.as_raw(), c, st);
                    }
                }
                Ok(WaitStatus::Signaled(p, s, _)) => {
                    if let Some(pr) = probes.as_deref_mut() {
                        probed |= pr.reaped(p.as_raw(), 128 + s as i32, st);
                    }
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
        if probed {
            // Shed at once, not a quiet interval later: the code the probe's end ran would
            // otherwise stay mapped for that interval after every probe.
            worked = Instant::now().checked_sub(QUIET).or(worked);
        }
        if code.is_none() {
            if let Some(pr) = probes.as_deref_mut() {
                pr.tick(st);
            }
        }
        if code.is_some() && exited_at.is_none() {
            exited_at = Some(Instant::now());
            // In a PID namespace it does not own (a pod's, the host's), the init's death
            // does not take the rest along: they go now, as runc has them go.
            if let Some((rt, id)) = io.shared_pidns {
                let _ = rt.kill(id, libc::SIGKILL, true);
            }
        }
        // A terminal's master reads EIO once the last process holding the slave is gone.
        let drained = open.iter().all(|o| !o);
        let waited_long = exited_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2));
        if code.is_some() && (drained || waited_long) {
            break;
        }
    }
    for (i, (_, kind)) in io.outputs.iter().enumerate() {
        flush_lines(&mut bufs[i], stream_name(*kind), log, true);
    }
    code.unwrap_or(255)
}

/// Set by SIGHUP: the CRI log is to be opened again (`ReopenContainerLog`).
static REOPEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_sighup(_: libc::c_int) {
    REOPEN.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// SIGHUP interrupts the monitor's poll (no SA_RESTART) and asks for the CRI log to be
/// opened again.
fn reopen_on_sighup() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe; the
    // sigaction struct is zeroed, then filled.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sighup as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGHUP, &sa, std::ptr::null_mut());
    }
}

/// Writes the complete lines of `buf` (and, at the end, what is left) as records. A line
/// longer than 16 KiB is split, as Docker does.
fn flush_lines(buf: &mut Vec<u8>, stream: &str, log: &mut crate::logs::Writer, end: bool) {
    loop {
        let cut = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => i + 1,
            None if buf.len() >= 16 * 1024 => 16 * 1024,
            None if end && !buf.is_empty() => buf.len(),
            None => return,
        };
        let line: Vec<u8> = buf.drain(..cut).collect();
        let _ = log.write(stream, &line);
    }
}

/// The init is gone but the monitor may still be writing: waits for its final state.
pub fn wait_exited(engine: &Engine, id: &str, timeout: Duration) -> State {
    let deadline = Instant::now() + timeout;
    // The monitor records an exit within a few milliseconds: look often at first, then
    // every 10 ms.
    let mut nap = Duration::from_micros(250);
    loop {
        let st = engine.state(id);
        if !matches!(st.status, Status::Running | Status::Restarting) || Instant::now() > deadline {
            return st;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies_and_backoff() {
        assert!(!should_restart("no", 0, 0, 1, false));
        assert!(should_restart("always", 0, 5, 0, false));
        assert!(!should_restart("always", 0, 5, 0, true), "a stop by the user ends it");
        assert!(should_restart("unless-stopped", 0, 0, 0, false));
        assert!(should_restart("on-failure", 3, 2, 1, false));
        assert!(!should_restart("on-failure", 3, 3, 1, false));
        assert!(!should_restart("on-failure", 0, 0, 0, false));
        let d = backoff(Duration::ZERO, Duration::ZERO);
        assert_eq!(d, Duration::from_millis(100));
        assert_eq!(backoff(d, Duration::from_millis(5)), Duration::from_millis(200));
        assert_eq!(
            backoff(Duration::from_secs(50), Duration::ZERO),
            Duration::from_secs(60)
        );
        assert_eq!(
            backoff(Duration::from_secs(50), Duration::from_secs(11)),
            Duration::from_millis(100)
        );
    }
}
