//! Pods and containers as the kubelet reports them (`kube play`'s): a container's state
//! (`waiting`, `running`, `terminated`), ready, restartCount and lastState; a pod's READY
//! (n/m), STATUS and RESTARTS as `kubectl get pods` shows them.

use serde_json::{json, Value};

use crate::model::{Record, Status};
use crate::pods::Pod;
use crate::store::Engine;

/// The label that marks a pod's init containers (their order, from 0).
pub const INIT_LABEL: &str = "io.berth.kube.init";

/// A container as the kubelet reports it (`status.containerStatuses[]`), with berth's
/// probe results beside.
pub fn container(engine: &Engine, r: &Record) -> Value {
    let st = engine.state(&r.id);
    let k = st.kube.clone().unwrap_or_default();
    let state = match st.status {
        Status::Running | Status::Paused => json!({"running": {"startedAt": st.started_at}}),
        Status::Restarting if !k.waiting.is_empty() => {
            json!({"waiting": {"reason": k.waiting, "message": format!("back-off restarting failed container {}", r.name)}})
        }
        Status::Restarting => json!({"waiting": {"reason": "ContainerCreating"}}),
        Status::Exited | Status::Dead | Status::Removing => json!({"terminated": {
            "exitCode": st.exit_code,
            "reason": crate::kprobe::reason(st.exit_code, st.oom_killed),
            "startedAt": st.started_at,
            "finishedAt": st.finished_at,
        }}),
        Status::Created if !st.error.is_empty() => {
            json!({"waiting": {"reason": "CreateContainerError", "message": st.error}})
        }
        Status::Created => json!({"waiting": {"reason": "ContainerCreating"}}),
    };
    let last = k.last.as_ref().map_or_else(
        || json!({}),
        |t| {
            json!({"terminated": {
                "exitCode": t.exit_code,
                "reason": t.reason,
                "startedAt": t.started_at,
                "finishedAt": t.finished_at,
            }})
        },
    );
    json!({
        "Name": r.name,
        "Id": r.id,
        "State": st.status.as_str(),
        "Ready": st.running() && k.ready,
        "Started": st.running() && k.started,
        "RestartCount": st.restart_count,
        "ContainerState": state,
        "LastState": last,
        "Probes": k.probes,
        "Init": r.labels.contains_key(INIT_LABEL),
    })
}

/// A pod as `kubectl get pods` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Ready app containers.
    pub ready: usize,
    /// App containers.
    pub total: usize,
    /// STATUS: `Running`, `CrashLoopBackOff`, `Init:0/1`, `Completed`, `Error`, ...
    pub status: String,
    /// Restarts of its containers, in all.
    pub restarts: u32,
}

/// The pod's summary, from its members' states.
pub fn summary(engine: &Engine, pod: &Pod) -> Summary {
    let members = crate::pods::members(engine, pod).unwrap_or_default();
    let views: Vec<(bool, Value)> = members
        .iter()
        .map(|r| (r.labels.contains_key(INIT_LABEL), container(engine, r)))
        .collect();
    let (init, app): (Vec<_>, Vec<_>) = views.into_iter().partition(|(i, _)| *i);
    let init: Vec<Value> = init.into_iter().map(|(_, v)| v).collect();
    let app: Vec<Value> = app.into_iter().map(|(_, v)| v).collect();
    let restarts = init
        .iter()
        .chain(&app)
        .map(|v| u32::try_from(v["RestartCount"].as_u64().unwrap_or(0)).unwrap_or(u32::MAX))
        .sum();
    let ready = app.iter().filter(|v| v["Ready"] == json!(true)).count();
    Summary {
        ready,
        total: app.len(),
        status: status(&init, &app),
        restarts,
    }
}

/// STATUS as kubectl words it: a pending init container first (`Init:N/M`, or its
/// reason), then a waiting container's reason, then running, then how they ended.
fn status(init: &[Value], app: &[Value]) -> String {
    let reason = |v: &Value, kind: &str| v["ContainerState"][kind]["reason"].as_str().map(str::to_string);
    let done = init
        .iter()
        .filter(|v| v["ContainerState"]["terminated"]["exitCode"] == json!(0))
        .count();
    if done < init.len() {
        let pending = &init[done];
        return match reason(pending, "waiting").or_else(|| reason(pending, "terminated")) {
            Some(r) if r != "ContainerCreating" && r != "Completed" => format!("Init:{r}"),
            _ => format!("Init:{done}/{}", init.len()),
        };
    }
    if let Some(r) = app
        .iter()
        .filter_map(|v| reason(v, "waiting"))
        .find(|r| r != "ContainerCreating")
    {
        return r;
    }
    if app.iter().any(|v| v["ContainerState"].get("running").is_some()) {
        let failed = app
            .iter()
            .filter_map(|v| reason(v, "terminated"))
            .find(|r| r != "Completed");
        return failed.unwrap_or_else(|| "Running".into());
    }
    if !app.is_empty() && app.iter().all(|v| v["ContainerState"].get("terminated").is_some()) {
        let failed = app
            .iter()
            .filter_map(|v| reason(v, "terminated"))
            .find(|r| r != "Completed");
        return failed.unwrap_or_else(|| "Completed".into());
    }
    "Pending".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(state: Value) -> Value {
        json!({"ContainerState": state})
    }

    #[test]
    fn status_reads_as_kubectls() {
        let running = c(json!({"running": {}}));
        let ok = c(json!({"terminated": {"exitCode": 0, "reason": "Completed"}}));
        let err = c(json!({"terminated": {"exitCode": 1, "reason": "Error"}}));
        let crash = c(json!({"waiting": {"reason": "CrashLoopBackOff"}}));
        let creating = c(json!({"waiting": {"reason": "ContainerCreating"}}));
        let one = |v: &Value| vec![v.clone()];
        assert_eq!(status(&[], &one(&running)), "Running");
        assert_eq!(status(&[], &[running.clone(), crash.clone()]), "CrashLoopBackOff");
        assert_eq!(status(&[], &[ok.clone(), ok.clone()]), "Completed");
        assert_eq!(status(&[], &[ok.clone(), err.clone()]), "Error");
        assert_eq!(status(&[ok.clone(), creating.clone()], &one(&creating)), "Init:1/2");
        assert_eq!(status(&one(&err), &one(&creating)), "Init:Error");
        assert_eq!(status(&[crash], &one(&creating)), "Init:CrashLoopBackOff");
        assert_eq!(status(&[ok], &[creating]), "Pending");
        assert_eq!(status(&[], &[running, err]), "Error");
    }
}
