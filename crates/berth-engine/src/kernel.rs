//! What a container asks of the kernel beyond its namespaces and cgroup, checked before it
//! is made: sysctls (namespaced ones only), its OOM score (never below berth's own without
//! CAP_SYS_RESOURCE), and the /proc and /sys paths masked or made read-only.

use std::collections::BTreeMap;

use crate::create::CreateOptions;
use crate::model::{NamespaceMode, NetworkMode};
use crate::{EngineError, Result};

/// `--sysctl`: only kernel parameters a container's own namespaces hold, as Docker allows
/// them (IPC ones not with the host's IPC, network ones not with the host's network).
pub(crate) fn check_sysctls(o: &CreateOptions) -> Result<BTreeMap<String, String>> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    for k in o.sysctls.keys() {
        let ipc = IPC.contains(&k.as_str()) || k.starts_with("fs.mqueue.");
        let net = k.starts_with("net.");
        if !ipc && !net {
            return Err(EngineError::Invalid(format!(
                "sysctl '{k}' is not allowed: only namespaced ones (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*) are"
            )));
        }
        if ipc && o.ipc == NamespaceMode::Host {
            return Err(EngineError::Invalid(format!(
                "sysctl '{k}' is not allowed with the host's IPC namespace"
            )));
        }
        if net && o.network == NetworkMode::Host {
            return Err(EngineError::Invalid(format!(
                "sysctl '{k}' is not allowed with the host's network namespace"
            )));
        }
        if k.contains('/') || k.contains("..") {
            return Err(EngineError::Invalid(format!("sysctl '{k}': not a parameter name")));
        }
    }
    Ok(o.sysctls.clone())
}

/// `--oom-score-adj`: in Docker's range; below berth's own value only where berth may lower
/// it (CAP_SYS_RESOURCE), else raised to berth's own with a warning, as containerd's
/// `restrict_oom_score_adj` does (a kubelet asks -998 for sandboxes).
pub(crate) fn oom_score_adj(wanted: i32, warnings: &mut Vec<String>) -> Result<i32> {
    if !(-1000..=1000).contains(&wanted) {
        return Err(EngineError::Invalid(format!(
            "Invalid value {wanted}, range for oom score adj is [-1000, 1000]"
        )));
    }
    let own: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if wanted >= own || may_lower_oom_score() {
        return Ok(wanted);
    }
    warnings.push(format!(
        "oom_score_adj {wanted} is below berth's own ({own}) and berth lacks CAP_SYS_RESOURCE to lower it: {own} is used"
    ));
    Ok(own)
}

/// Whether this process has CAP_SYS_RESOURCE (bit 24) in its effective set.
fn may_lower_oom_score() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

/// Masked or read-only paths: absolute, or an error naming the first that is not.
pub(crate) fn check_paths(what: &str, paths: Option<&Vec<String>>) -> Result<Option<Vec<String>>> {
    if let Some(bad) = paths.into_iter().flatten().find(|p| !p.starts_with('/')) {
        return Err(EngineError::Invalid(format!("{what} path {bad:?} is not absolute")));
    }
    Ok(paths.cloned())
}
