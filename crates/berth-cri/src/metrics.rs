//! `ListMetricDescriptors` and `ListPodSandboxMetrics`: cAdvisor's container metrics (the
//! names the kubelet's `/metrics/cadvisor` serves), read from each container's cgroup, its
//! processes in /proc, its writable layer's filesystem and, for the pod, its network
//! namespace's interfaces.
//!
//! Values are the CRI's unsigned integers: `*_seconds*` in whole seconds, sizes in bytes.
//! Per-device block I/O, hugetlb and pressure figures are not served (cAdvisor's optional
//! or not-yet-common ones).

use std::collections::HashMap;

use berth_engine::store::Engine;
use k8s_cri::v1 as cri;
use serde_json::Value;
use tonic::Status;

use crate::{container, meta, sandbox};

/// Every metric's first labels: the container's name in the pod, its id, image, runtime
/// name, and the pod's namespace and name.
const BASE: [&str; 6] = ["container", "id", "image", "name", "namespace", "pod"];

/// A metric: its name, help, extra labels, and whether it only grows.
struct Desc(&'static str, &'static str, &'static [&'static str], bool);

const DESCS: &[Desc] = &[
    Desc(
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed in seconds.",
        &["cpu"],
        true,
    ),
    Desc(
        "container_cpu_user_seconds_total",
        "Cumulative user cpu time consumed in seconds.",
        &[],
        true,
    ),
    Desc(
        "container_cpu_system_seconds_total",
        "Cumulative system cpu time consumed in seconds.",
        &[],
        true,
    ),
    Desc(
        "container_cpu_cfs_periods_total",
        "Number of elapsed enforcement period intervals.",
        &[],
        true,
    ),
    Desc(
        "container_cpu_cfs_throttled_periods_total",
        "Number of throttled period intervals.",
        &[],
        true,
    ),
    Desc(
        "container_cpu_cfs_throttled_seconds_total",
        "Total time duration the container has been throttled.",
        &[],
        true,
    ),
    Desc(
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed.",
        &[],
        false,
    ),
    Desc(
        "container_memory_working_set_bytes",
        "Current working set in bytes.",
        &[],
        false,
    ),
    Desc(
        "container_memory_max_usage_bytes",
        "Maximum memory usage recorded in bytes.",
        &[],
        false,
    ),
    Desc(
        "container_memory_cache",
        "Number of bytes of page cache memory.",
        &[],
        false,
    ),
    Desc("container_memory_rss", "Size of RSS in bytes.", &[], false),
    Desc(
        "container_memory_mapped_file",
        "Size of memory mapped files in bytes.",
        &[],
        false,
    ),
    Desc("container_memory_swap", "Container swap usage in bytes.", &[], false),
    Desc(
        "container_memory_kernel_usage",
        "Size of kernel memory allocated in bytes.",
        &[],
        false,
    ),
    Desc(
        "container_memory_failcnt",
        "Number of memory usage hits limits.",
        &[],
        true,
    ),
    Desc(
        "container_memory_failures_total",
        "Cumulative count of memory allocation failures.",
        &["failure_type", "scope"],
        true,
    ),
    Desc(
        "container_oom_events_total",
        "Count of out of memory events observed for the container.",
        &[],
        true,
    ),
    Desc(
        "container_processes",
        "Number of processes running inside the container.",
        &[],
        false,
    ),
    Desc(
        "container_threads",
        "Number of threads running inside the container.",
        &[],
        false,
    ),
    Desc(
        "container_threads_max",
        "Maximum number of threads allowed inside the container, zero for no limit.",
        &[],
        false,
    ),
    Desc(
        "container_file_descriptors",
        "Number of open file descriptors for the container.",
        &[],
        false,
    ),
    Desc(
        "container_sockets",
        "Number of open sockets for the container.",
        &[],
        false,
    ),
    Desc(
        "container_fs_usage_bytes",
        "Number of bytes that are consumed by the container on this filesystem.",
        &["device"],
        false,
    ),
    Desc(
        "container_fs_limit_bytes",
        "Number of bytes that can be consumed by the container on this filesystem.",
        &["device"],
        false,
    ),
    Desc(
        "container_fs_inodes_free",
        "Number of available Inodes.",
        &["device"],
        false,
    ),
    Desc("container_fs_inodes_total", "Number of Inodes.", &["device"], false),
    Desc(
        "container_fs_reads_total",
        "Cumulative count of reads completed.",
        &["device"],
        true,
    ),
    Desc(
        "container_fs_reads_bytes_total",
        "Cumulative count of bytes read.",
        &["device"],
        true,
    ),
    Desc(
        "container_fs_writes_total",
        "Cumulative count of writes completed.",
        &["device"],
        true,
    ),
    Desc(
        "container_fs_writes_bytes_total",
        "Cumulative count of bytes written.",
        &["device"],
        true,
    ),
    Desc(
        "container_blkio_device_usage_total",
        "Blkio device bytes usage.",
        &["device", "major", "minor", "operation"],
        true,
    ),
    Desc(
        "container_network_receive_bytes_total",
        "Cumulative count of bytes received.",
        &["interface"],
        true,
    ),
    Desc(
        "container_network_receive_packets_total",
        "Cumulative count of packets received.",
        &["interface"],
        true,
    ),
    Desc(
        "container_network_receive_errors_total",
        "Cumulative count of errors encountered while receiving.",
        &["interface"],
        true,
    ),
    Desc(
        "container_network_receive_packets_dropped_total",
        "Cumulative count of packets dropped while receiving.",
        &["interface"],
        true,
    ),
    Desc(
        "container_network_transmit_bytes_total",
        "Cumulative count of bytes transmitted.",
        &["interface"],
        true,
    ),
    Desc(
        "container_network_transmit_packets_total",
        "Cumulative count of packets transmitted.",
        &["interface"],
        true,
    ),
    Desc(
        "container_network_transmit_errors_total",
        "Cumulative count of errors encountered while transmitting.",
        &["interface"],
        true,
    ),
    Desc(
        "container_network_transmit_packets_dropped_total",
        "Cumulative count of packets dropped while transmitting.",
        &["interface"],
        true,
    ),
    Desc("container_spec_cpu_period", "CPU period of the container.", &[], false),
    Desc("container_spec_cpu_shares", "CPU share of the container.", &[], false),
    Desc(
        "container_spec_memory_limit_bytes",
        "Memory limit for the container.",
        &[],
        false,
    ),
    Desc(
        "container_spec_memory_swap_limit_bytes",
        "Memory swap limit for the container.",
        &[],
        false,
    ),
    Desc(
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds.",
        &[],
        false,
    ),
    Desc(
        "container_last_seen",
        "Last time a container was seen by the exporter.",
        &[],
        false,
    ),
];

/// `ListMetricDescriptors`.
pub fn descriptors() -> Vec<cri::MetricDescriptor> {
    DESCS
        .iter()
        .map(|d| cri::MetricDescriptor {
            name: d.0.to_string(),
            help: d.1.to_string(),
            label_keys: BASE.iter().chain(d.2).map(|s| (*s).to_string()).collect(),
        })
        .collect()
}

/// Collects metrics with their base labels.
struct Out {
    base: Vec<String>,
    ts: i64,
    list: Vec<cri::Metric>,
}

impl Out {
    fn add(&mut self, name: &str, extra: &[&str], value: u64) {
        let Some(d) = DESCS.iter().find(|d| d.0 == name) else {
            return;
        };
        let mut labels = self.base.clone();
        labels.extend(extra.iter().map(|s| (*s).to_string()));
        self.list.push(cri::Metric {
            name: name.to_string(),
            timestamp: self.ts,
            metric_type: if d.3 {
                cri::MetricType::Counter as i32
            } else {
                cri::MetricType::Gauge as i32
            },
            label_values: labels,
            value: Some(cri::UInt64Value { value }),
        });
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// The processes' open descriptors, sockets among them, and threads.
fn proc_counts(pids: &[i32]) -> (u64, u64, u64) {
    let (mut fds, mut socks, mut threads) = (0u64, 0u64, 0u64);
    for p in pids {
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{p}/fd")) {
            for e in dir.flatten() {
                fds += 1;
                if std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:")) {
                    socks += 1;
                }
            }
        }
        threads += std::fs::read_to_string(format!("/proc/{p}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Threads:"))
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })
            .unwrap_or(0);
    }
    (fds, socks, threads)
}

/// One container's metrics.
fn container_metrics(engine: &Engine, id: &str, base: Vec<String>, ts: i64) -> Vec<cri::Metric> {
    let mut o = Out {
        base,
        ts,
        list: Vec::new(),
    };
    let Ok(r) = engine.resolve(id) else { return Vec::new() };
    let st = engine.state(&r.id);
    let d = berth_engine::inspect::cgroup_stats(engine, &r.id).unwrap_or(Value::Null);
    let ns_to_s = |v: u64| v / 1_000_000_000;
    let cpu = &d["cpu"];
    o.add(
        "container_cpu_usage_seconds_total",
        &["total"],
        ns_to_s(u(&cpu["usage"]["total"])),
    );
    o.add(
        "container_cpu_user_seconds_total",
        &[],
        ns_to_s(u(&cpu["usage"]["user"])),
    );
    o.add(
        "container_cpu_system_seconds_total",
        &[],
        ns_to_s(u(&cpu["usage"]["kernel"])),
    );
    o.add("container_cpu_cfs_periods_total", &[], u(&cpu["throttling"]["periods"]));
    o.add(
        "container_cpu_cfs_throttled_periods_total",
        &[],
        u(&cpu["throttling"]["throttledPeriods"]),
    );
    o.add(
        "container_cpu_cfs_throttled_seconds_total",
        &[],
        ns_to_s(u(&cpu["throttling"]["throttledTime"])),
    );
    let mem = &d["memory"];
    let raw = &mem["raw"];
    // cgroup v1 names first (total_*: the hierarchy), then v2's.
    let stat = |v1: &str, v2: &str| {
        raw.get(format!("total_{v1}"))
            .or_else(|| raw.get(v1))
            .or_else(|| raw.get(v2))
            .map_or(0, u)
    };
    let usage = u(&mem["usage"]["usage"]);
    let inactive = stat("inactive_file", "inactive_file");
    o.add("container_memory_usage_bytes", &[], usage);
    o.add(
        "container_memory_working_set_bytes",
        &[],
        usage.saturating_sub(inactive),
    );
    o.add("container_memory_max_usage_bytes", &[], u(&mem["usage"]["max"]));
    o.add("container_memory_cache", &[], u(&mem["cache"]));
    o.add("container_memory_rss", &[], stat("rss", "anon"));
    o.add("container_memory_mapped_file", &[], stat("mapped_file", "file_mapped"));
    // v1's memsw counts memory and swap together; v2's swap.current is swap alone.
    let swap = if raw.get("anon").is_some() {
        u(&mem["swap"]["usage"])
    } else {
        u(&mem["swap"]["usage"]).saturating_sub(usage)
    };
    o.add("container_memory_swap", &[], swap);
    let kernel = match mem["kernel"]["usage"].as_u64() {
        Some(k) => k,
        None => stat("kernel", "kernel"),
    };
    o.add("container_memory_kernel_usage", &[], kernel);
    o.add("container_memory_failcnt", &[], u(&mem["usage"]["failcnt"]));
    o.add(
        "container_memory_failures_total",
        &["pgfault", "container"],
        stat("pgfault", "pgfault"),
    );
    o.add(
        "container_memory_failures_total",
        &["pgmajfault", "container"],
        stat("pgmajfault", "pgmajfault"),
    );
    o.add("container_oom_events_total", &[], u(&mem["oomKills"]));
    let pids = berth_engine::ops::pids(engine, &r.id).unwrap_or_default();
    let (fds, socks, threads) = proc_counts(&pids);
    o.add("container_processes", &[], pids.len() as u64);
    o.add("container_threads", &[], threads);
    // pids.max reads "max" (no limit) as no number: 0.
    o.add("container_threads_max", &[], u(&d["pids"]["limit"]));
    o.add("container_file_descriptors", &[], fds);
    o.add("container_sockets", &[], socks);
    // The writable layer, on the filesystem holding the container's directory.
    let dir = engine.dir(&r.id);
    let used = berth_engine::inspect::dir_size(&dir.join("fs").join("upper"));
    let device = dir.display().to_string();
    o.add("container_fs_usage_bytes", &[&device], used);
    if let Ok(fs) = nix::sys::statvfs::statvfs(&dir) {
        let frsize = fs.fragment_size();
        o.add(
            "container_fs_limit_bytes",
            &[&device],
            fs.blocks().saturating_mul(frsize),
        );
        o.add("container_fs_inodes_free", &[&device], fs.files_free());
        o.add("container_fs_inodes_total", &[&device], fs.files());
    }
    // berth sets CPU limits as a quota of a 100 ms period.
    o.add("container_spec_cpu_period", &[], 100_000);
    o.add(
        "container_spec_cpu_shares",
        &[],
        if r.cpu_shares > 0 { r.cpu_shares } else { 1024 },
    );
    o.add("container_spec_memory_limit_bytes", &[], r.memory.unsigned_abs());
    o.add(
        "container_spec_memory_swap_limit_bytes",
        &[],
        r.memory_swap.unsigned_abs(),
    );
    let started = crate::nanos(&st.started_at);
    o.add(
        "container_start_time_seconds",
        &[],
        u64::try_from(started / 1_000_000_000).unwrap_or(0),
    );
    o.add(
        "container_last_seen",
        &[],
        u64::try_from(ts / 1_000_000_000).unwrap_or(0),
    );
    o.list
}

/// The network counters of a process's namespace, per interface (loopback left out), from
/// `/proc/PID/net/dev`.
fn interfaces(pid: i32) -> HashMap<String, [u64; 16]> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    let mut out = HashMap::new();
    for l in text.lines().skip(2) {
        let Some((name, rest)) = l.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let mut v = [0u64; 16];
        for (i, f) in rest.split_whitespace().take(16).enumerate() {
            v[i] = f.parse().unwrap_or(0);
        }
        out.insert(name.to_string(), v);
    }
    out
}

/// `ListPodSandboxMetrics`: every ready sandbox's network, and its running containers'.
pub fn sandboxes(engine: &Engine) -> Result<Vec<cri::PodSandboxMetrics>, Status> {
    let ready = cri::PodSandboxFilter {
        state: Some(cri::PodSandboxStateValue {
            state: cri::PodSandboxState::SandboxReady as i32,
        }),
        ..Default::default()
    };
    let ts = crate::now_nanos();
    let mut out = Vec::new();
    for p in sandbox::list(engine, Some(&ready))? {
        let Ok((pod, sm)) = sandbox::get(engine, &p.id) else {
            continue;
        };
        let md = sm.config.metadata.clone().unwrap_or_default();
        let infra = engine.state(&pod.infra_id);
        let mut o = Out {
            base: vec![
                "POD".into(),
                pod.id.clone(),
                String::new(),
                pod.name.clone(),
                md.namespace.clone(),
                md.name.clone(),
            ],
            ts,
            list: Vec::new(),
        };
        if infra.pid > 0 {
            for (name, v) in interfaces(infra.pid) {
                let i: &[&str] = &[&name];
                o.add("container_network_receive_bytes_total", i, v[0]);
                o.add("container_network_receive_packets_total", i, v[1]);
                o.add("container_network_receive_errors_total", i, v[2]);
                o.add("container_network_receive_packets_dropped_total", i, v[3]);
                o.add("container_network_transmit_bytes_total", i, v[8]);
                o.add("container_network_transmit_packets_total", i, v[9]);
                o.add("container_network_transmit_errors_total", i, v[10]);
                o.add("container_network_transmit_packets_dropped_total", i, v[11]);
            }
        }
        let running = cri::ContainerFilter {
            pod_sandbox_id: pod.id.clone(),
            state: Some(cri::ContainerStateValue {
                state: cri::ContainerState::ContainerRunning as i32,
            }),
            ..Default::default()
        };
        let mut containers = Vec::new();
        for c in container::list(engine, Some(&running))? {
            let Some(m) = meta::container(engine, &c.id) else {
                continue;
            };
            let Ok(r) = engine.resolve(&c.id) else { continue };
            let base = vec![
                m.metadata.name.clone(),
                c.id.clone(),
                m.image.image.clone(),
                r.name.clone(),
                md.namespace.clone(),
                md.name.clone(),
            ];
            containers.push(cri::ContainerMetrics {
                container_id: c.id.clone(),
                metrics: container_metrics(engine, &c.id, base, ts),
            });
        }
        out.push(cri::PodSandboxMetrics {
            pod_sandbox_id: pod.id.clone(),
            metrics: o.list,
            container_metrics: containers,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_have_help_and_labels_and_are_unique() {
        let d = descriptors();
        let mut names: Vec<&str> = d.iter().map(|d| d.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), d.len());
        assert!(d.iter().all(|d| !d.help.is_empty() && d.label_keys.len() >= BASE.len()));
    }

    #[test]
    fn metrics_carry_as_many_labels_as_their_descriptors() {
        let mut o = Out {
            base: BASE.iter().map(|s| (*s).to_string()).collect(),
            ts: 1,
            list: Vec::new(),
        };
        o.add("container_memory_failures_total", &["pgfault", "container"], 3);
        o.add("container_processes", &[], 2);
        o.add("no_such_metric", &[], 2);
        assert_eq!(o.list.len(), 2);
        for m in &o.list {
            let d = descriptors().into_iter().find(|d| d.name == m.name).unwrap();
            assert_eq!(m.label_values.len(), d.label_keys.len(), "{}", m.name);
        }
        assert_eq!(o.list[0].metric_type, cri::MetricType::Counter as i32);
        assert_eq!(o.list[1].metric_type, cri::MetricType::Gauge as i32);
    }

    #[test]
    fn net_dev_lines_are_read_per_interface() {
        let pid = i32::try_from(std::process::id()).unwrap();
        // This process's namespace has at least its loopback, which is left out.
        assert!(!interfaces(pid).contains_key("lo"));
    }
}
