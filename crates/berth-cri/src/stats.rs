//! Usage figures: a container's from its cgroup (the engine's one sample), a sandbox's as
//! the sum of its containers' and its infra's.

use berth_engine::store::Engine;
use k8s_cri::v1 as cri;
use tonic::Status;

use crate::{container, sandbox};

fn value(v: u64) -> Option<cri::UInt64Value> {
    Some(cri::UInt64Value { value: v })
}

/// (cpu ns, memory bytes (less inactive file pages), memory limit) of a container, zeros if
/// it does not run.
fn sample(engine: &Engine, id: &str) -> (u64, u64, u64) {
    berth_engine::inspect::sample(engine, id).map_or((0, 0, 0), |(cpu, mem, limit, _)| (cpu, mem, limit))
}

fn cpu(ts: i64, ns: u64) -> cri::CpuUsage {
    cri::CpuUsage {
        timestamp: ts,
        usage_core_nano_seconds: value(ns),
        usage_nano_cores: None,
    }
}

fn memory(ts: i64, used: u64, limit: u64) -> cri::MemoryUsage {
    cri::MemoryUsage {
        timestamp: ts,
        working_set_bytes: value(used),
        available_bytes: value(limit.saturating_sub(used)),
        usage_bytes: value(used),
        rss_bytes: None,
        page_faults: None,
        major_page_faults: None,
    }
}

/// One container's stats.
pub fn container(engine: &Engine, id: &str) -> Result<cri::ContainerStats, Status> {
    let (r, m) = container::get(engine, id)?;
    let ts = crate::now_nanos();
    let (c, mem, limit) = sample(engine, &r.id);
    Ok(cri::ContainerStats {
        attributes: Some(cri::ContainerAttributes {
            id: r.id.clone(),
            metadata: Some(m.metadata.clone()),
            labels: m.labels.clone(),
            annotations: m.annotations.clone(),
        }),
        cpu: Some(cpu(ts, c)),
        memory: Some(memory(ts, mem, limit)),
        writable_layer: Some(cri::FilesystemUsage {
            timestamp: ts,
            fs_id: Some(cri::FilesystemIdentifier {
                mountpoint: engine.dir(&r.id).display().to_string(),
            }),
            // The writable layer, as `berth ps --size` counts it; inodes are not counted.
            used_bytes: value(berth_engine::inspect::dir_size(
                &engine.dir(&r.id).join("fs").join("upper"),
            )),
            inodes_used: value(0),
        }),
        swap: None,
    })
}

/// `ListContainerStats`, filtered as `ListContainers` is.
pub fn containers(engine: &Engine, f: Option<&cri::ContainerStatsFilter>) -> Result<Vec<cri::ContainerStats>, Status> {
    let filter = f.map(|f| cri::ContainerFilter {
        id: f.id.clone(),
        pod_sandbox_id: f.pod_sandbox_id.clone(),
        label_selector: f.label_selector.clone(),
        state: None,
    });
    let mut out = Vec::new();
    for c in container::list(engine, filter.as_ref())? {
        if c.state == cri::ContainerState::ContainerRunning as i32 {
            out.push(container(engine, &c.id)?);
        }
    }
    Ok(out)
}

/// One sandbox's stats: its containers' and, in all, theirs with the infra's.
pub fn sandbox(engine: &Engine, id: &str) -> Result<cri::PodSandboxStats, Status> {
    let (pod, m) = sandbox::get(engine, id)?;
    let filter = cri::ContainerStatsFilter {
        pod_sandbox_id: pod.id.clone(),
        ..Default::default()
    };
    let members = containers(engine, Some(&filter))?;
    let ts = crate::now_nanos();
    let (mut c, mut mem, limit) = sample(engine, &pod.infra_id);
    for s in &members {
        c += s
            .cpu
            .as_ref()
            .and_then(|u| u.usage_core_nano_seconds.as_ref())
            .map_or(0, |v| v.value);
        mem += s
            .memory
            .as_ref()
            .and_then(|u| u.working_set_bytes.as_ref())
            .map_or(0, |v| v.value);
    }
    let procs = berth_engine::pods::running(engine, &pod)
        .map_err(crate::engine_status)?
        .iter()
        .map(|id| berth_engine::ops::pids(engine, id).map_or(0, |p| p.len() as u64))
        .sum();
    Ok(cri::PodSandboxStats {
        attributes: Some(cri::PodSandboxAttributes {
            id: pod.id.clone(),
            metadata: m.config.metadata.clone(),
            labels: m.config.labels.clone(),
            annotations: m.config.annotations.clone(),
        }),
        linux: Some(cri::LinuxPodSandboxStats {
            cpu: Some(cpu(ts, c)),
            memory: Some(memory(ts, mem, limit)),
            network: None,
            process: Some(cri::ProcessUsage {
                timestamp: ts,
                process_count: value(procs),
            }),
            containers: members,
        }),
        windows: None,
    })
}

/// `ListPodSandboxStats`, filtered by id (or prefix) and labels.
pub fn sandboxes(engine: &Engine, f: Option<&cri::PodSandboxStatsFilter>) -> Result<Vec<cri::PodSandboxStats>, Status> {
    let filter = f.map(|f| cri::PodSandboxFilter {
        id: f.id.clone(),
        label_selector: f.label_selector.clone(),
        state: Some(cri::PodSandboxStateValue {
            state: cri::PodSandboxState::SandboxReady as i32,
        }),
    });
    let filter = filter.unwrap_or(cri::PodSandboxFilter {
        state: Some(cri::PodSandboxStateValue {
            state: cri::PodSandboxState::SandboxReady as i32,
        }),
        ..Default::default()
    });
    sandbox::list(engine, Some(&filter))?
        .iter()
        .map(|p| sandbox(engine, &p.id))
        .collect()
}
