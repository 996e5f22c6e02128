//! What a container in a user namespace needs of the runtime: its bind sources cloned
//! before the namespace exists, running without a cgroup where a rootless engine has none
//! delegated, and finding its processes without one.

use std::os::fd::OwnedFd;

use berth_oci::oci_spec::runtime::{LinuxResources, Spec};

use super::has_pidns;
use crate::cgroups::{self, CgroupConfig, CgroupError};
use crate::state::State;
use crate::ContainerError;

/// Detached copies (`open_tree(OPEN_TREE_CLONE)`) of the spec's bind mount sources, by
/// mount index, made with the runtime's own credentials: a container in a user namespace
/// of its own attaches them (`move_mount`), as its root may not search the directories
/// above them (a data root is 0700). One that cannot be made is left to fail by its path,
/// with its own error.
pub(super) fn bind_sources(spec: &Spec) -> Vec<(usize, OwnedFd)> {
    spec.mounts()
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, m)| {
            let opts = m.options().clone().unwrap_or_default();
            let bind = m.typ().as_deref() == Some("bind") || opts.iter().any(|o| o == "bind" || o == "rbind");
            if !bind {
                return None;
            }
            let rec = opts.iter().any(|o| o == "rbind");
            let src = m.source().clone()?;
            let fd = berth_safepath::mount::clone_tree(&src, rec).ok()?;
            Some((i, fd))
        })
        .collect()
}

/// Creates the container's cgroup. In a user namespace (a rootless engine) where the host
/// has not delegated the hierarchy, the container runs without one, as runc's rootless mode
/// does, unless the spec asks for limits that only a cgroup can apply: that is refused.
pub(super) fn rootless_cgroup(
    cgroup: CgroupConfig,
    res: Option<&LinuxResources>,
) -> Result<CgroupConfig, ContainerError> {
    match cgroup.create() {
        Ok(()) => Ok(cgroup),
        Err(CgroupError::Io { source, path, .. })
            if berth_safepath::userns::in_user_namespace()
                && matches!(source.raw_os_error(), Some(libc::EACCES | libc::EPERM | libc::EROFS)) =>
        {
            if let Some(what) = res.and_then(cgroups::limit_named) {
                return Err(CgroupError::Invalid {
                    what,
                    reason: format!(
                        "resource limits need a cgroup, and this user may not create one ({} is not writable): \
                         rootless containers get limits only on a cgroup v2 host that delegates a subtree to the user",
                        path.display()
                    ),
                }
                .into());
            }
            Ok(CgroupConfig::none())
        }
        Err(e) => Err(e.into()),
    }
}

/// The container's processes: its cgroup's, or without one (rootless, undelegated) those in
/// its init's pid namespace, or with the host's pid namespace the init and its descendants.
pub(super) fn pids_of(st: &State) -> Result<Vec<i32>, ContainerError> {
    if !st.cgroup.is_none() {
        return Ok(st.cgroup.pids()?);
    }
    let ns_of = |p: i32| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    let init_ns = ns_of(st.pid);
    if st.pid <= 0 || init_ns.is_none() {
        return Ok(Vec::new());
    }
    let all: Vec<(i32, i32)> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter_map(|p| {
                    let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
                    let ppid = stat[stat.rfind(')')? + 2..].split_whitespace().nth(1)?.parse().ok()?;
                    Some((p, ppid))
                })
                .collect()
        })
        .unwrap_or_default();
    if has_pidns(st) {
        return Ok(all.iter().map(|(p, _)| *p).filter(|p| ns_of(*p) == init_ns).collect());
    }
    let mut found = vec![st.pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(all.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    Ok(found)
}
