//! cgroup v2: one unified directory (kernel Documentation/admin-guide/cgroup-v2.rst).

use std::path::Path;
use std::time::Duration;

use berth_oci::oci_spec::runtime::LinuxResources;
use serde_json::json;

use super::{devices, io_err, read_kv, read_u64, write, CgroupError};

/// Creates `path` and enables every available controller in each ancestor's
/// `cgroup.subtree_control`, so the limits can be written in the leaf.
pub(super) fn create(path: &Path) -> Result<(), CgroupError> {
    // Find the mount root: the highest ancestor that has cgroup.controllers.
    let mut ancestors: Vec<&Path> = path.ancestors().skip(1).collect();
    ancestors.reverse();
    let mut parent_ok = false;
    for dir in ancestors {
        if !dir.join("cgroup.controllers").exists() {
            if parent_ok {
                std::fs::create_dir(dir).or_else(ignore_exists(dir))?;
            } else {
                continue;
            }
        }
        parent_ok = true;
        enable_controllers(dir)?;
    }
    std::fs::create_dir(path).or_else(ignore_exists(path))?;
    Ok(())
}

fn ignore_exists(p: &Path) -> impl Fn(std::io::Error) -> Result<(), CgroupError> + '_ {
    move |e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Ok(())
        } else {
            Err(io_err("creating cgroup", p)(e))
        }
    }
}

fn enable_controllers(dir: &Path) -> Result<(), CgroupError> {
    let avail = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let enabled = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    let want: Vec<String> = avail
        .split_whitespace()
        .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if want.is_empty() {
        return Ok(());
    }
    // Enabling all at once fails if one controller cannot be enabled here (for instance cpu
    // with realtime tasks in the parent); fall back to one at a time and keep what works.
    if write(dir, "cgroup.subtree_control", want.join(" ")).is_err() {
        for c in want {
            let _ = write(dir, "cgroup.subtree_control", c);
        }
    }
    Ok(())
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// cpu.shares (2..262144) to cpu.weight (1..10000), the conversion runc and crun use.
pub(super) fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// blkio.weight (10..1000) to io.weight (1..10000).
fn blkio_to_io_weight(w: u16) -> u64 {
    let w = u64::from(w.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

pub(super) fn set(path: &Path, res: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(mem) = res.memory() {
        if let Some(l) = mem.limit() {
            write(path, "memory.max", max_or(l))?;
        }
        if let Some(r) = mem.reservation() {
            write(path, "memory.low", max_or(r))?;
        }
        if let Some(s) = mem.swap() {
            // v1's memsw is memory+swap; v2's swap.max is swap alone.
            let v = match (s, mem.limit()) {
                (s, _) if s < 0 => "max".to_string(),
                (s, Some(l)) if l > 0 => {
                    if s < l {
                        return Err(CgroupError::Invalid {
                            what: "memory.swap".into(),
                            reason: format!("memory+swap {s} is below the memory limit {l}"),
                        });
                    }
                    (s - l).to_string()
                }
                (0, _) => "0".to_string(),
                (s, _) => s.to_string(),
            };
            if path.join("memory.swap.max").exists() {
                write(path, "memory.swap.max", v)?;
            } else if v != "max" && v != "0" {
                return Err(CgroupError::Unsupported {
                    what: "memory swap limit".into(),
                    path: path.join("memory.swap.max"),
                });
            }
        }
        if mem.disable_oom_killer() == Some(true) {
            return Err(CgroupError::Unsupported {
                what: "disabling the OOM killer on cgroup v2".into(),
                path: path.join("memory.oom_control"),
            });
        }
    }
    if let Some(cpu) = res.cpu() {
        if let Some(shares) = cpu.shares() {
            if shares > 0 {
                write(path, "cpu.weight", shares_to_weight(shares).to_string())?;
            }
        }
        let quota = cpu.quota();
        let period = cpu.period();
        if quota.is_some() || period.is_some() {
            let period = period.filter(|p| *p > 0).unwrap_or(100_000);
            let q = match quota {
                Some(q) if q > 0 => q.to_string(),
                _ => "max".to_string(),
            };
            write(path, "cpu.max", format!("{q} {period}"))?;
        }
        if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
            write(path, "cpuset.cpus", cpus)?;
        }
        if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
            write(path, "cpuset.mems", mems)?;
        }
        if let Some(idle) = cpu.idle() {
            write(path, "cpu.idle", idle.to_string())?;
        }
    }
    if let Some(pids) = res.pids() {
        let v = if pids.limit() > 0 {
            pids.limit().to_string()
        } else {
            "max".to_string()
        };
        write(path, "pids.max", v)?;
    }
    if let Some(blkio) = res.block_io() {
        // A zero weight means "not set" (dockerd sends it for every container).
        if let Some(w) = blkio.weight().filter(|w| *w > 0) {
            if path.join("io.bfq.weight").exists() {
                write(path, "io.bfq.weight", w.to_string())?;
            } else {
                write(path, "io.weight", format!("default {}", blkio_to_io_weight(w)))?;
            }
        }
        for wd in blkio.weight_device().iter().flatten() {
            if let Some(w) = wd.weight().filter(|w| *w > 0) {
                write(
                    path,
                    "io.weight",
                    format!("{}:{} {}", wd.major(), wd.minor(), blkio_to_io_weight(w)),
                )?;
            }
        }
        let throttles = [
            ("rbps", blkio.throttle_read_bps_device()),
            ("wbps", blkio.throttle_write_bps_device()),
            ("riops", blkio.throttle_read_iops_device()),
            ("wiops", blkio.throttle_write_iops_device()),
        ];
        for (key, list) in throttles {
            for t in list.iter().flatten() {
                write(
                    path,
                    "io.max",
                    format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()),
                )?;
            }
        }
    }
    for h in res.hugepage_limits().iter().flatten() {
        write(path, &format!("hugetlb.{}.max", h.page_size()), h.limit().to_string())?;
    }
    for (key, value) in res.unified().iter().flatten() {
        if key.contains('/') || key.starts_with('.') || !key.contains('.') {
            return Err(CgroupError::Invalid {
                what: format!("unified.{key}"),
                reason: "not a cgroup file name".into(),
            });
        }
        write(path, key, value)?;
    }
    if let Some(devs) = res.devices() {
        devices::apply(path, devs)?;
    }
    Ok(())
}

pub(super) fn freeze(path: &Path, frozen: bool) -> Result<(), CgroupError> {
    write(path, "cgroup.freeze", if frozen { "1" } else { "0" })?;
    let want = if frozen { 1 } else { 0 };
    for _ in 0..2000 {
        if read_kv(&path.join("cgroup.events")).get("frozen").copied() == Some(want) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Err(CgroupError::Io {
        op: "waiting for freeze",
        path: path.join("cgroup.events"),
        source: std::io::Error::from(std::io::ErrorKind::TimedOut),
    })
}

pub(super) fn is_frozen(path: &Path) -> bool {
    read_kv(&path.join("cgroup.events")).get("frozen").copied() == Some(1)
}

pub(super) fn stats(path: &Path) -> serde_json::Value {
    let get = |f: &str| read_u64(&path.join(f)).unwrap_or(0);
    let cpu = read_kv(&path.join("cpu.stat"));
    let c = |k: &str| cpu.get(k).copied().unwrap_or(0);
    let raw = read_kv(&path.join("memory.stat"));
    let events = read_kv(&path.join("memory.events"));
    json!({
        "cpu": {
            "usage": {
                "total": c("usage_usec") * 1000,
                "percpu": [],
                "kernel": c("system_usec") * 1000,
                "user": c("user_usec") * 1000,
            },
            "throttling": {
                "periods": c("nr_periods"),
                "throttledPeriods": c("nr_throttled"),
                "throttledTime": c("throttled_usec") * 1000,
            },
        },
        "memory": {
            "cache": raw.get("file").copied().unwrap_or(0),
            "usage": {
                "limit": get("memory.max"),
                "usage": get("memory.current"),
                "max": get("memory.peak"),
                "failcnt": events.get("max").copied().unwrap_or(0),
            },
            "swap": {
                "limit": get("memory.swap.max"),
                "usage": get("memory.swap.current"),
            },
            "raw": raw,
        },
        "pids": {
            "current": get("pids.current"),
            "limit": get("pids.max"),
        },
        "blkio": {},
        "hugetlb": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_map_to_weight_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
    }
}
