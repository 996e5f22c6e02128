//! The monitor's probes: Docker health checks and Kubernetes probes run from its loop, and
//! the kill a failed liveness or startup probe asks for.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::store::{Engine, Record, State};

/// What the pump needs to run health checks and Kubernetes probes.
pub(super) struct Probes<'a> {
    pub(super) checker: Option<&'a mut crate::health::Checker>,
    pub(super) kube: Option<&'a mut crate::kprobe::Prober>,
    /// A kill a failed probe asked for, under way.
    pub(super) killing: Option<Killing>,
    pub(super) runtime: crate::runtimes::Rt,
    pub(super) id: String,
    pub(super) dir: std::path::PathBuf,
    pub(super) rec: &'a Record,
    /// The health status last announced (`health_status: ...` events go out on changes).
    pub(super) reported: String,
}

impl Probes<'_> {
    /// Records the health in `state.json` and, when its status changed, the
    /// `health_status` event. Both are written from a forked child: serializing the state
    /// and opening the database run ~1.7 MiB of the binary's code, which would otherwise be
    /// faulted into the monitor after every probe (until its next shed).
    pub(super) fn save(&mut self, st: &mut State) {
        let mut event = None;
        if let Some(c) = self.checker.as_deref() {
            st.health = Some(c.health.clone());
            let now = &c.health.status;
            event = (*now != self.reported && now != "starting").then(|| format!("health_status: {now}"));
            if event.is_some() {
                self.reported.clone_from(now);
            }
        }
        if let Some(k) = self.kube.as_deref() {
            st.kube = Some(k.state.clone());
        }
        let write = || {
            let _ = crate::store::write_state(&self.dir, st);
            if let Some(action) = &event {
                // The database is open only for this (the idle monitor keeps it closed).
                let root = self.dir.parent().and_then(Path::parent);
                if let Some(eng) = root.and_then(|r| Engine::open(r).ok()) {
                    crate::events::container(&eng, self.rec, action, &[]);
                }
            }
        };
        // SAFETY: the monitor is single-threaded; the child only writes and _exits.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                write();
                // SAFETY: _exit ends the forked writer without the monitor's destructors.
                unsafe { libc::_exit(0) }
            }
            Ok(nix::unistd::ForkResult::Parent { child }) => {
                while let Err(nix::errno::Errno::EINTR) = nix::sys::wait::waitpid(child, None) {}
            }
            // No child: write here.
            Err(_) => write(),
        }
    }

    /// How long until a probe or a kill is due.
    pub(super) fn wait(&self) -> Option<Duration> {
        let a = self.checker.as_deref().map(crate::health::Checker::wait);
        let b = self.kube.as_deref().and_then(crate::kprobe::Prober::wait);
        let c = self
            .killing
            .as_ref()
            .map(|k| k.deadline.saturating_duration_since(Instant::now()));
        [a, b, c].into_iter().flatten().min()
    }

    /// A reaped child: a probe's or the pre-stop hook's; returns whether it was one.
    pub(super) fn reaped(&mut self, pid: i32, code: i32, st: &mut State) -> bool {
        if let Some(k) = self.killing.as_mut().filter(|k| k.hook == Some(pid)) {
            k.hook = None;
            return true;
        }
        let health = self.checker.as_deref_mut().is_some_and(|c| c.reaped(pid, code));
        let kube = self.kube.as_deref_mut().and_then(|k| k.reaped(pid, code));
        if health || kube == Some(true) {
            self.save(st);
        }
        health || kube.is_some()
    }

    /// Starts what is due; a failed liveness or startup probe begins the container's kill
    /// (its pre-stop hook, its stop signal, SIGKILL when the grace is over).
    pub(super) fn tick(&mut self, st: &mut State) {
        let mut changed = false;
        if let Some(c) = self.checker.as_deref_mut() {
            changed |= c.tick(&self.runtime, &self.id, &self.dir);
        }
        if let Some(k) = self.kube.as_deref_mut() {
            changed |= k.tick(&self.runtime, &self.id, &self.dir);
            if let Some(grace) = k.take_kill() {
                let grace = Duration::from_secs(grace.unwrap_or(self.rec.stop_timeout));
                let hook = self
                    .rec
                    .kube
                    .as_ref()
                    .and_then(|c| c.pre_stop.as_ref())
                    .and_then(|argv| {
                        let process = self.process();
                        crate::health::spawn_exec(&self.runtime, &self.id, &self.dir, &process, argv)
                            .ok()
                            .map(|(pid, _)| pid)
                    });
                self.killing = Some(Killing {
                    hook,
                    signalled: false,
                    deadline: Instant::now() + grace,
                });
            }
        }
        if let Some(k) = self.killing.as_mut() {
            if !k.signalled && (k.hook.is_none() || Instant::now() >= k.deadline) {
                let sig = berth_runtime::container::parse_signal(&self.rec.stop_signal).unwrap_or(libc::SIGTERM);
                let _ = self.runtime.kill(&self.id, sig, false);
                k.signalled = true;
            }
            if Instant::now() >= k.deadline {
                let _ = self.runtime.kill(&self.id, libc::SIGKILL, true);
                // Once: the init's exit ends the pump.
                k.deadline = Instant::now() + Duration::from_secs(3600);
            }
        }
        if changed {
            self.save(st);
        }
    }

    /// The container's spec's process (for hooks).
    fn process(&self) -> serde_json::Value {
        std::fs::read(self.dir.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map(|v| v["process"].clone())
            .unwrap_or_default()
    }
}

/// A container being killed because a probe failed.
pub(super) struct Killing {
    /// The pre-stop hook's pid while it runs.
    hook: Option<i32>,
    /// The stop signal went out.
    signalled: bool,
    /// SIGKILL then.
    deadline: Instant,
}
