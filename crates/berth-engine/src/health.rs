//! Health checks, run by the monitor itself (no daemon, no systemd timers): every interval a
//! probe process is exec'd into the container (through berth-runtime), its exit code and
//! output recorded, and the status moved between `starting`, `healthy` and `unhealthy` as
//! Docker does (failures during the start period do not count; `retries` consecutive
//! failures make it unhealthy; a probe past its timeout is killed and fails).

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

pub use crate::model::{Health, HealthConfig, Probe};

impl HealthConfig {
    /// The probe's argv, or None for `NONE`/empty.
    pub fn argv(&self) -> Option<Vec<String>> {
        match self.test.first().map(String::as_str) {
            Some("CMD") => Some(self.test[1..].to_vec()),
            Some("CMD-SHELL") => Some(vec!["/bin/sh".into(), "-c".into(), self.test[1..].join(" ")]),
            _ => None,
        }
    }
}

/// Why a probe could not be started.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProbeError {
    /// A system call in the monitor.
    #[error("{op}: {errno}")]
    Sys { op: &'static str, errno: nix::errno::Errno },
    /// The helper could not exec the probe (its words, which crossed a pipe).
    #[error("{0}")]
    Exec(String),
    /// The helper died first.
    #[error("the probe's helper died before it started the probe")]
    HelperDied,
}

/// The probe in flight.
#[derive(Debug)]
struct Running {
    pid: i32,
    /// Readable once the probe exits, so the monitor's poll wakes for it (not only at the
    /// probe's timeout).
    pidfd: Option<OwnedFd>,
    started: Instant,
    start: String,
    out: OwnedFd,
}

/// A pidfd for `pid`, readable once it exits (None where the kernel has none: before 5.3).
pub(crate) fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open with plain integers; the result is checked.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(raw).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Some(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Runs a container's probes from the monitor's loop.
#[derive(Debug)]
pub struct Checker {
    cfg: HealthConfig,
    argv: Vec<String>,
    process: serde_json::Value,
    began: Instant,
    next: Instant,
    running: Option<Running>,
    /// The current health, saved by the caller after each change.
    pub health: Health,
}

impl Checker {
    /// A checker for a container whose init started now; `process` is its spec's process.
    pub fn new(cfg: &HealthConfig, process: serde_json::Value) -> Option<Checker> {
        let argv = cfg.argv()?;
        let now = Instant::now();
        Some(Checker {
            cfg: cfg.clone(),
            argv,
            process,
            began: now,
            next: now + cfg.interval,
            running: None,
            health: Health {
                status: "starting".into(),
                ..Health::default()
            },
        })
    }

    /// How long until something is due.
    pub fn wait(&self) -> Duration {
        let now = Instant::now();
        match &self.running {
            Some(r) => (r.started + self.cfg.timeout).saturating_duration_since(now),
            None => self.next.saturating_duration_since(now),
        }
    }

    /// The running probe's pidfd, to poll.
    pub fn probe_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.running
            .as_ref()
            .and_then(|r| r.pidfd.as_ref())
            .map(std::os::fd::AsFd::as_fd)
    }

    /// Starts a probe when due, kills one past its timeout; returns whether the health
    /// changed.
    pub fn tick(&mut self, rt: &crate::runtimes::Rt, id: &str, dir: &std::path::Path) -> bool {
        let now = Instant::now();
        if let Some(r) = &self.running {
            if now >= r.started + self.cfg.timeout {
                // The probe this checker started (a pid it read as 0 is refused).
                let _ = berth_runtime::kill(r.pid, libc::SIGKILL);
                let r = self.running.take();
                let start = r.map(|r| r.start).unwrap_or_default();
                let timeout = self.cfg.timeout;
                return self.record(start, -1, format!("Health check exceeded timeout ({timeout:?})"));
            }
            return false;
        }
        if now < self.next {
            return false;
        }
        self.next = now + self.cfg.interval;
        let start = berth_image::store::now();
        match self.spawn(rt, id, dir) {
            Ok((pid, out)) => {
                self.running = Some(Running {
                    pid,
                    pidfd: pidfd_open(pid),
                    started: now,
                    start,
                    out,
                });
                false
            }
            Err(e) => self.record(start, -1, e.to_string()),
        }
    }

    fn spawn(&self, rt: &crate::runtimes::Rt, id: &str, dir: &std::path::Path) -> Result<(i32, OwnedFd), ProbeError> {
        spawn_exec(rt, id, dir, &self.process, &self.argv)
    }

    /// A reaped child: if it is the probe, records it; returns whether the health changed.
    pub fn reaped(&mut self, pid: i32, code: i32) -> bool {
        if self.running.as_ref().map(|r| r.pid) != Some(pid) {
            return false;
        }
        let Some(r) = self.running.take() else { return false };
        self.record(r.start, code, read_output(r.out))
    }

    fn record(&mut self, start: String, code: i32, output: String) -> bool {
        let before = self.health.clone();
        self.health.log.push(Probe {
            start,
            end: berth_image::store::now(),
            exit_code: code,
            output,
        });
        if self.health.log.len() > 5 {
            self.health.log.remove(0);
        }
        if code == 0 {
            self.health.status = "healthy".into();
            self.health.failing_streak = 0;
        } else if self.began.elapsed() >= self.cfg.start_period {
            self.health.failing_streak += 1;
            if self.health.failing_streak >= self.cfg.retries.max(1) {
                self.health.status = "unhealthy".into();
            }
        }
        self.health != before
    }
}

/// Starts a probe exec'd into the container (`process`, its spec's process, with `argv`)
/// from a forked helper, so that the runtime's exec path (the spec, the seccomp filter's
/// compilation, the namespaces) never runs in the monitor's own memory: the helper reports
/// the probe's pid on a pipe and exits, and the probe, an orphan then, is the monitor's to
/// reap (it is the subreaper). Returns its pid and the read end of its output.
pub(crate) fn spawn_exec(
    rt: &crate::runtimes::Rt,
    id: &str,
    dir: &std::path::Path,
    process: &serde_json::Value,
    argv: &[String],
) -> Result<(i32, OwnedFd), ProbeError> {
    let cloexec = nix::fcntl::OFlag::O_CLOEXEC;
    let sys = |op| move |e| ProbeError::Sys { op, errno: e };
    let (out_r, out_w) = nix::unistd::pipe2(cloexec).map_err(sys("pipe"))?;
    let (rep_r, rep_w) = nix::unistd::pipe2(cloexec).map_err(sys("pipe"))?;
    // SAFETY: the monitor is single-threaded; the child only runs the exec and _exits.
    let helper = match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            drop(out_r);
            drop(rep_r);
            // The probe inherits stdout/stderr: its output goes to the pipe.
            // SAFETY: dup2 between descriptors this process owns.
            unsafe {
                libc::dup2(out_w.as_raw_fd(), 1);
                libc::dup2(out_w.as_raw_fd(), 2);
            }
            let report = match exec_in(rt, id, dir, process, argv) {
                Ok(pid) => pid.to_string(),
                Err(e) => format!("!{e}"),
            };
            let _ = nix::unistd::write(&rep_w, report.as_bytes());
            // SAFETY: _exit ends the forked helper without the monitor's destructors.
            unsafe { libc::_exit(0) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => child,
        Err(e) => return Err(sys("fork")(e)),
    };
    drop(out_w);
    drop(rep_w);
    let mut report = String::new();
    let _ = std::fs::File::from(rep_r).read_to_string(&mut report);
    while let Err(nix::errno::Errno::EINTR) = nix::sys::wait::waitpid(helper, None) {}
    match report.strip_prefix('!') {
        Some(e) => Err(ProbeError::Exec(e.to_string())),
        None => {
            let pid = report.parse().map_err(|_| ProbeError::HelperDied)?;
            let _ = nix::fcntl::fcntl(&out_r, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
            Ok((pid, out_r))
        }
    }
}

/// In the helper: the container's process with `argv`, exec'd into the container; its pid.
fn exec_in(
    rt: &crate::runtimes::Rt,
    id: &str,
    dir: &std::path::Path,
    process: &serde_json::Value,
    argv: &[String],
) -> crate::Result<i32> {
    let mut p = process.clone();
    p["args"] = serde_json::json!(argv);
    p["terminal"] = serde_json::json!(false);
    let process: berth_oci::oci_spec::runtime::Process =
        serde_json::from_value(p).map_err(|e| crate::EngineError::Invalid(format!("the probe's process: {e}")))?;
    rt.exec_detached(id, &process, dir)
}

/// Reads what a finished probe wrote (at most 4 KiB).
pub(crate) fn read_output(out: OwnedFd) -> String {
    let mut buf = Vec::new();
    let mut f = std::fs::File::from(out);
    let _ = (&mut f).take(4096).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

pub use berth_oci::time::parse_go_duration as parse_duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_transitions() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("x"), None);
        let cfg = HealthConfig {
            test: vec!["CMD-SHELL".into(), "true".into()],
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            start_period: Duration::ZERO,
            retries: 2,
        };
        assert_eq!(cfg.argv().unwrap(), ["/bin/sh", "-c", "true"]);
        let mut c = Checker::new(&cfg, serde_json::json!({})).unwrap();
        assert_eq!(c.health.status, "starting");
        assert!(c.record("t".into(), 0, String::new()));
        assert_eq!(c.health.status, "healthy");
        c.record("t".into(), 1, String::new());
        assert_eq!(c.health.status, "healthy", "one failure of two allowed");
        c.record("t".into(), 1, String::new());
        assert_eq!(c.health.status, "unhealthy");
        for _ in 0..10 {
            c.record("t".into(), 1, String::new());
        }
        assert_eq!(c.health.log.len(), 5);
    }
}
