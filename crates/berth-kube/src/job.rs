//! Jobs: pods run to completion, `completions` of them succeeding, at most `parallelism`
//! at a time, failing the Job after more than `backoffLimit` failures (failed pods, under
//! `restartPolicy: Never`; container restarts, under `OnFailure`).
//!
//! With no cluster there is no Job controller: `kube play` makes the first pods itself (so
//! that what is wrong with them is said at once, and undone), then leaves a detached
//! driver (`berth kube job NAME`, its own session, as a monitor is) that makes the rest as
//! pods finish and records the Job's status in `<root>/kube/jobs/NAME/status.json`. It
//! exits when the Job completes or fails, or when `kube down` removes the Job.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_engine::images::ImageStore;
use berth_engine::model::Status;
use berth_engine::pods;
use berth_engine::store::Engine;
use berth_engine::EngineError;
use serde::{Deserialize, Serialize};

use crate::env::Data;
use crate::{play_pod, workload_pod, KubeError, Workload, OWNER_LABEL};

/// What the driver needs: the Job, and the ConfigMaps and Secrets of its file.
#[derive(Debug, Serialize, Deserialize)]
struct JobFile {
    workload: Workload,
    data: Data,
}

/// A Job's status, as its driver last wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    /// `Running`, `Complete` or `Failed`.
    pub status: String,
    /// Why it failed (`BackoffLimitExceeded`).
    #[serde(default)]
    pub reason: String,
    /// Pods running.
    pub active: usize,
    /// Pods that succeeded.
    pub succeeded: usize,
    /// Failures counted against the back-off limit.
    pub failed: u32,
    /// The driver's pid while it runs.
    #[serde(default)]
    pub pid: i32,
}

/// The directory a Job's file and status are kept in.
fn dir(engine: &Engine, name: &str) -> PathBuf {
    engine.root.join("kube").join("jobs").join(name)
}

/// The status of Job `name` (None: no such Job).
pub fn status(engine: &Engine, name: &str) -> Option<JobStatus> {
    let b = std::fs::read(dir(engine, name).join("status.json")).ok()?;
    serde_json::from_slice(&b).ok()
}

/// Every Job with its status and completions wanted, by name.
pub fn list(engine: &Engine) -> Vec<(String, JobStatus, i32)> {
    let Ok(entries) = std::fs::read_dir(engine.root.join("kube").join("jobs")) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let b = std::fs::read(e.path().join("job.json")).ok()?;
            let f: JobFile = serde_json::from_slice(&b).ok()?;
            let st = status(engine, &name).unwrap_or_default();
            Some((name, st, f.workload.job.map_or(1, |j| j.completions)))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn write_status(d: &Path, s: &JobStatus) {
    let tmp = d.join("status.json.tmp");
    if std::fs::write(&tmp, serde_json::to_vec(s).unwrap_or_default()).is_ok() {
        let _ = std::fs::rename(&tmp, d.join("status.json"));
    }
}

/// Plays a Job: records it, makes its first pods (all undone if one fails), starts its
/// driver. The pods made.
pub(crate) fn start(
    engine: &Engine,
    images: &mut ImageStore,
    w: &Workload,
    data: &mut Data,
    exe: &Path,
    warnings: &mut Vec<String>,
) -> Result<Vec<(String, Vec<String>)>, KubeError> {
    let Some(spec) = w.job else {
        return Err(EngineError::Invalid(format!("{} is not a Job", w.name)).into());
    };
    let d = dir(engine, &w.name);
    if d.exists() {
        return Err(EngineError::Conflict(format!(
            "job {:?} exists: `kube down` its file first, or play it with --replace",
            w.name
        ))
        .into());
    }
    std::fs::create_dir_all(&d).map_err(|e| EngineError::Invalid(format!("creating {}: {e}", d.display())))?;
    let mut made = Vec::new();
    let first = spec.completions.min(spec.parallelism);
    for i in 0..first {
        match play_pod(engine, images, &workload_pod(w, i), data, exe, warnings) {
            Ok(p) => made.push(p),
            Err(e) => {
                for (id, _) in &made {
                    let _ = pods::remove(engine, id, true);
                }
                let _ = std::fs::remove_dir_all(&d);
                return Err(e);
            }
        }
    }
    let file = JobFile {
        workload: w.clone(),
        data: std::mem::take(data),
    };
    let written = std::fs::write(d.join("job.json"), serde_json::to_vec(&file).unwrap_or_default());
    *data = file.data;
    write_status(
        &d,
        &JobStatus {
            status: "Running".into(),
            active: made.len(),
            ..JobStatus::default()
        },
    );
    let spawned = written
        .map_err(|e| EngineError::Invalid(format!("writing the job: {e}")))
        .and_then(|()| crate::spawn_detached(engine, exe, &["kube", "job", &w.name]));
    if let Err(e) = spawned {
        for (id, _) in &made {
            let _ = pods::remove(engine, id, true);
        }
        let _ = std::fs::remove_dir_all(&d);
        return Err(e.into());
    }
    Ok(made)
}

/// How a Job's pods stand.
#[derive(Debug, Default)]
struct Count {
    active: usize,
    succeeded: usize,
    failed_pods: u32,
    restarts: u32,
}

fn count(engine: &Engine, owner: &str) -> Result<(Count, Vec<pods::Pod>), EngineError> {
    let mut c = Count::default();
    let mut mine = Vec::new();
    for p in pods::list(engine)? {
        if p.labels.get(OWNER_LABEL).map(String::as_str) != Some(owner) {
            continue;
        }
        let states: Vec<_> = pods::members(engine, &p)?
            .iter()
            .filter(|r| !r.labels.contains_key(berth_engine::kstatus::INIT_LABEL))
            .map(|r| engine.state(&r.id))
            .collect();
        c.restarts += states.iter().map(|s| s.restart_count).sum::<u32>();
        let over = |s: &berth_engine::model::State| s.status == Status::Exited;
        if !states.is_empty() && states.iter().all(|s| over(s) && s.exit_code == 0) {
            c.succeeded += 1;
        } else if states.iter().any(|s| over(s) && s.exit_code != 0) {
            c.failed_pods += 1;
        } else {
            c.active += 1;
        }
        mine.push(p);
    }
    Ok((c, mine))
}

/// The driver of Job `name` (`berth kube job NAME`): runs until the Job completes, fails,
/// or is removed; returns its final status.
pub fn drive(engine: &Engine, images: &mut ImageStore, name: &str, exe: &Path) -> Result<JobStatus, KubeError> {
    let d = dir(engine, name);
    let b = std::fs::read(d.join("job.json")).map_err(|e| EngineError::Invalid(format!("job {name:?}: {e}")))?;
    let JobFile { workload: w, mut data } =
        serde_json::from_slice(&b).map_err(|e| EngineError::Invalid(format!("job {name:?}: {e}")))?;
    let Some(spec) = w.job else {
        return Err(EngineError::Invalid(format!("{name} is not a Job")).into());
    };
    let owner = format!("Job/{}", w.name);
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    let limit = u32::try_from(spec.backoff_limit).unwrap_or(0);
    let completions = usize::try_from(spec.completions).unwrap_or(1);
    let parallelism = usize::try_from(spec.parallelism).unwrap_or(1);
    // Pods replacing failed ones wait out the Job controller's back-off: 10 s doubling.
    let mut failures_seen = 0u32;
    let mut hold_until = Instant::now();
    let mut made = i32::try_from(completions.min(parallelism)).unwrap_or(1);
    let mut warnings = Vec::new();
    loop {
        if !d.exists() {
            return Ok(JobStatus::default());
        }
        let (c, mine) = count(engine, &owner)?;
        let failed = c.failed_pods + c.restarts;
        if c.failed_pods > failures_seen {
            failures_seen = c.failed_pods;
            let exp = failures_seen.saturating_sub(1).min(6);
            hold_until = Instant::now() + Duration::from_secs(10 << exp).min(Duration::from_secs(360));
        }
        let mut st = JobStatus {
            status: "Running".into(),
            reason: String::new(),
            active: c.active,
            succeeded: c.succeeded,
            failed,
            pid: me,
        };
        if failed > limit {
            // Its pods still running are stopped; all stay to be looked at.
            for p in &mine {
                let _ = pods::stop(engine, &p.id, Some(1));
            }
            st.status = "Failed".into();
            st.reason = "BackoffLimitExceeded".into();
            st.active = 0;
            st.pid = 0;
            write_status(&d, &st);
            return Ok(st);
        }
        if c.succeeded >= completions {
            st.status = "Complete".into();
            st.pid = 0;
            write_status(&d, &st);
            return Ok(st);
        }
        let room = parallelism
            .saturating_sub(c.active)
            .min(completions.saturating_sub(c.succeeded + c.active));
        if room > 0 && Instant::now() >= hold_until {
            for _ in 0..room {
                match play_pod(engine, images, &workload_pod(&w, made), &mut data, exe, &mut warnings) {
                    Ok(_) => st.active += 1,
                    // A pod that cannot be made counts as a failed one.
                    Err(_) => st.failed += 1,
                }
                made += 1;
            }
        }
        write_status(&d, &st);
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Removes a Job's record and stops its driver (its pods are removed by the caller).
pub(crate) fn remove(engine: &Engine, name: &str) {
    let d = dir(engine, name);
    if let Some(st) = status(engine, name).filter(|s| s.pid > 0) {
        // The driver this engine started: its pid is in the record, and its command line
        // still names the Job (a pid reused since is left alone).
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", st.pid)).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.windows(3).any(|w| w == [&b"kube"[..], b"job", name.as_bytes()]) {
            // SAFETY: kill with a pid read from the Job's record and checked above.
            unsafe { libc::kill(st.pid, libc::SIGKILL) };
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}
