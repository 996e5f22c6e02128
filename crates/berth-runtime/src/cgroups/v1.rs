//! cgroup v1: one directory per hierarchy (kernel Documentation/admin-guide/cgroup-v1/).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_oci::oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};
use serde_json::json;

use super::{io_err, read_kv, read_u64, write, CgroupError};

pub(super) fn create(paths: &BTreeMap<String, PathBuf>) -> Result<(), CgroupError> {
    let mut done: Vec<&PathBuf> = Vec::new();
    for (ctrl, dir) in paths {
        if done.contains(&dir) {
            continue;
        }
        done.push(dir);
        if ctrl == "cpuset" {
            create_cpuset(dir)?;
        } else {
            std::fs::create_dir_all(dir).map_err(io_err("creating cgroup", dir))?;
        }
    }
    Ok(())
}

/// A new v1 cpuset cgroup starts with empty `cpus` and `mems`, and a task cannot join it
/// until both are set: copy them down from the parent at every level created.
fn create_cpuset(dir: &Path) -> Result<(), CgroupError> {
    if dir.exists() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_cpuset(parent)?;
    }
    std::fs::create_dir(dir).or_else(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Ok(())
        } else {
            Err(io_err("creating cgroup", dir)(e))
        }
    })?;
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let mine = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        if mine.trim().is_empty() {
            if let Some(parent) = dir.parent() {
                let theirs = std::fs::read_to_string(parent.join(file)).unwrap_or_default();
                write(dir, file, theirs.trim())?;
            }
        }
    }
    Ok(())
}

fn limit(v: i64) -> String {
    if v < 0 {
        "-1".to_string()
    } else {
        v.to_string()
    }
}

pub(super) fn set(paths: &BTreeMap<String, PathBuf>, res: &LinuxResources) -> Result<(), CgroupError> {
    let dir = |c: &str| -> Result<&PathBuf, CgroupError> {
        paths.get(c).ok_or_else(|| CgroupError::Unsupported {
            what: format!("the {c} controller"),
            path: PathBuf::from(format!("/sys/fs/cgroup/{c}")),
        })
    };
    if let Some(mem) = res.memory() {
        if mem.limit().is_some()
            || mem.swap().is_some()
            || mem.reservation().is_some()
            || mem.swappiness().is_some()
            || mem.disable_oom_killer().is_some()
        {
            let d = dir("memory")?;
            // memsw must stay >= limit at every moment: raise memsw first when growing.
            let cur_memsw = read_u64(&d.join("memory.memsw.limit_in_bytes"));
            let grow = match (mem.swap(), cur_memsw) {
                (Some(s), Some(cur)) => s < 0 || u64::try_from(s).is_ok_and(|s| s > cur),
                _ => false,
            };
            if grow {
                if let Some(s) = mem.swap() {
                    write(d, "memory.memsw.limit_in_bytes", limit(s))?;
                }
            }
            if let Some(l) = mem.limit() {
                write(d, "memory.limit_in_bytes", limit(l))?;
            }
            if !grow {
                if let Some(s) = mem.swap() {
                    write(d, "memory.memsw.limit_in_bytes", limit(s))?;
                }
            }
            if let Some(r) = mem.reservation() {
                write(d, "memory.soft_limit_in_bytes", limit(r))?;
            }
            if let Some(s) = mem.swappiness() {
                if s <= 100 {
                    write(d, "memory.swappiness", s.to_string())?;
                } else {
                    return Err(CgroupError::Invalid {
                        what: "memory.swappiness".into(),
                        reason: format!("{s} is above 100"),
                    });
                }
            }
            if mem.disable_oom_killer() == Some(true) {
                write(d, "memory.oom_control", "1")?;
            }
        }
    }
    if let Some(cpu) = res.cpu() {
        if let Some(shares) = cpu.shares() {
            if shares > 0 {
                write(dir("cpu")?, "cpu.shares", shares.to_string())?;
            }
        }
        if let Some(period) = cpu.period() {
            if period > 0 {
                write(dir("cpu")?, "cpu.cfs_period_us", period.to_string())?;
            }
        }
        if let Some(quota) = cpu.quota() {
            if quota != 0 {
                write(dir("cpu")?, "cpu.cfs_quota_us", limit(quota))?;
            }
        }
        if let Some(rt) = cpu.realtime_period() {
            if rt > 0 {
                write(dir("cpu")?, "cpu.rt_period_us", rt.to_string())?;
            }
        }
        if let Some(rt) = cpu.realtime_runtime() {
            if rt != 0 {
                write(dir("cpu")?, "cpu.rt_runtime_us", rt.to_string())?;
            }
        }
        if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
            write(dir("cpuset")?, "cpuset.cpus", cpus)?;
        }
        if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
            write(dir("cpuset")?, "cpuset.mems", mems)?;
        }
    }
    if let Some(pids) = res.pids() {
        let v = if pids.limit() > 0 {
            pids.limit().to_string()
        } else {
            "max".to_string()
        };
        write(dir("pids")?, "pids.max", v)?;
    }
    if let Some(blkio) = res.block_io() {
        let d = dir("blkio")?;
        // A zero weight means "not set" (dockerd sends it for every container).
        if let Some(w) = blkio.weight().filter(|w| *w > 0) {
            set_weight(d, w)?;
        }
        if let Some(w) = blkio.leaf_weight().filter(|w| *w > 0) {
            write(d, "blkio.leaf_weight", w.to_string())?;
        }
        for wd in blkio.weight_device().iter().flatten() {
            if let Some(w) = wd.weight().filter(|w| *w > 0) {
                write(d, "blkio.weight_device", format!("{}:{} {w}", wd.major(), wd.minor()))?;
            }
        }
        let throttles = [
            ("blkio.throttle.read_bps_device", blkio.throttle_read_bps_device()),
            ("blkio.throttle.write_bps_device", blkio.throttle_write_bps_device()),
            ("blkio.throttle.read_iops_device", blkio.throttle_read_iops_device()),
            ("blkio.throttle.write_iops_device", blkio.throttle_write_iops_device()),
        ];
        for (file, list) in throttles {
            for t in list.iter().flatten() {
                write(d, file, format!("{}:{} {}", t.major(), t.minor(), t.rate()))?;
            }
        }
    }
    for h in res.hugepage_limits().iter().flatten() {
        write(
            dir("hugetlb")?,
            &format!("hugetlb.{}.limit_in_bytes", h.page_size()),
            h.limit().to_string(),
        )?;
    }
    if let Some(net) = res.network() {
        if let Some(id) = net.class_id() {
            write(dir("net_cls")?, "net_cls.classid", id.to_string())?;
        }
        for p in net.priorities().iter().flatten() {
            write(
                dir("net_prio")?,
                "net_prio.ifpriomap",
                format!("{} {}", p.name(), p.priority()),
            )?;
        }
    }
    if let Some(devs) = res.devices() {
        if let Some(d) = paths.get("devices") {
            set_devices(d, devs)?;
        }
    }
    Ok(())
}

/// blkio.weight exists only with CFQ; BFQ names it blkio.bfq.weight.
fn set_weight(d: &Path, w: u16) -> Result<(), CgroupError> {
    if d.join("blkio.weight").exists() {
        write(d, "blkio.weight", w.to_string())
    } else {
        write(d, "blkio.bfq.weight", w.to_string())
    }
}

/// Rule text for devices.allow/deny: `c 1:3 rwm`, `a *:* rwm`.
pub(super) fn device_rule(r: &LinuxDeviceCgroup) -> String {
    let typ = r.typ().map(|t| t.as_str().to_string()).unwrap_or_else(|| "a".into());
    let num = |n: Option<i64>| n.filter(|n| *n >= 0).map_or("*".to_string(), |n| n.to_string());
    let access = r.access().clone().unwrap_or_else(|| "rwm".into());
    format!("{typ} {}:{} {access}", num(r.major()), num(r.minor()))
}

fn set_devices(d: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    for r in rules {
        let file = if r.allow() { "devices.allow" } else { "devices.deny" };
        write(d, file, device_rule(r))?;
    }
    Ok(())
}

pub(super) fn freeze(paths: &BTreeMap<String, PathBuf>, frozen: bool) -> Result<(), CgroupError> {
    let d = paths.get("freezer").ok_or_else(|| CgroupError::Unsupported {
        what: "pause (the freezer controller)".into(),
        path: PathBuf::from("/sys/fs/cgroup/freezer"),
    })?;
    let want = if frozen { "FROZEN" } else { "THAWED" };
    for _ in 0..2000 {
        write(d, "freezer.state", want)?;
        let now = std::fs::read_to_string(d.join("freezer.state")).unwrap_or_default();
        if now.trim() == want {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Err(CgroupError::Io {
        op: "waiting for freezer state",
        path: d.join("freezer.state"),
        source: std::io::Error::from(std::io::ErrorKind::TimedOut),
    })
}

pub(super) fn is_frozen(paths: &BTreeMap<String, PathBuf>) -> bool {
    paths
        .get("freezer")
        .and_then(|d| std::fs::read_to_string(d.join("freezer.state")).ok())
        .is_some_and(|s| s.trim() == "FROZEN")
}

pub(super) fn stats(paths: &BTreeMap<String, PathBuf>) -> serde_json::Value {
    let get = |c: &str, f: &str| paths.get(c).and_then(|d| read_u64(&d.join(f))).unwrap_or(0);
    let percpu: Vec<u64> = paths
        .get("cpuacct")
        .and_then(|d| std::fs::read_to_string(d.join("cpuacct.usage_percpu")).ok())
        .map(|s| s.split_whitespace().filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default();
    let cpustat = paths
        .get("cpuacct")
        .map(|d| read_kv(&d.join("cpuacct.stat")))
        .unwrap_or_default();
    // cpuacct.stat is in USER_HZ ticks (100/s): nanoseconds are what runc reports.
    let tick_ns = 10_000_000u64;
    let throttle = paths
        .get("cpu")
        .map(|d| read_kv(&d.join("cpu.stat")))
        .unwrap_or_default();
    let raw = paths
        .get("memory")
        .map(|d| read_kv(&d.join("memory.stat")))
        .unwrap_or_default();
    let mem = |prefix: &str| {
        json!({
            "limit": get("memory", &format!("{prefix}limit_in_bytes")),
            "usage": get("memory", &format!("{prefix}usage_in_bytes")),
            "max": get("memory", &format!("{prefix}max_usage_in_bytes")),
            "failcnt": get("memory", &format!("{prefix}failcnt")),
        })
    };
    json!({
        "cpu": {
            "usage": {
                "total": get("cpuacct", "cpuacct.usage"),
                "percpu": percpu,
                "kernel": cpustat.get("system").copied().unwrap_or(0) * tick_ns,
                "user": cpustat.get("user").copied().unwrap_or(0) * tick_ns,
            },
            "throttling": {
                "periods": throttle.get("nr_periods").copied().unwrap_or(0),
                "throttledPeriods": throttle.get("nr_throttled").copied().unwrap_or(0),
                "throttledTime": throttle.get("throttled_time").copied().unwrap_or(0),
            },
        },
        "memory": {
            "cache": raw.get("cache").copied().unwrap_or(0),
            "usage": mem("memory."),
            "swap": mem("memory.memsw."),
            "kernel": mem("memory.kmem."),
            "raw": raw,
        },
        "pids": {
            "current": get("pids", "pids.current"),
            "limit": get("pids", "pids.max"),
        },
        "blkio": {},
        "hugetlb": {},
    })
}
