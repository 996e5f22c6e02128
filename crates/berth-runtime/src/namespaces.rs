//! Namespaces (config-linux.md "Namespaces"): which to create, which to join by path, and in
//! what order. Joining comes first (user first, so the others are joined with its
//! privileges), then a new user namespace, then the other new ones; pid and time namespaces
//! apply to children only, which is why the container process is forked after this.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use berth_oci::oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;

/// The clone flag of a namespace type.
pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The `/proc/<pid>/ns/<name>` name of a namespace type.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Namespaces to join: an open descriptor each, user first.
#[derive(Debug)]
pub struct Plan {
    /// (type, descriptor) to setns into, in order.
    pub join: Vec<(LinuxNamespaceType, OwnedFd)>,
    /// Namespaces to create with unshare (user handled apart).
    pub new: CloneFlags,
    /// Whether a new user namespace is created.
    pub new_user: bool,
}

/// Failure opening or entering a namespace.
#[derive(Debug, thiserror::Error)]
#[error("{op} {typ} namespace {path}")]
pub struct NamespaceError {
    /// What was being done.
    pub op: &'static str,
    /// The namespace type.
    pub typ: String,
    /// Its path, if joined.
    pub path: String,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// Opens every namespace to join now, before anything changes, so a later setns (mount)
/// cannot change what the paths mean.
pub fn plan(namespaces: &[LinuxNamespace]) -> Result<Plan, NamespaceError> {
    let mut p = Plan {
        join: Vec::new(),
        new: CloneFlags::empty(),
        new_user: false,
    };
    let mut join = Vec::new();
    for ns in namespaces {
        match ns.path() {
            Some(path) => {
                let fd = nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| {
                    NamespaceError {
                        op: "opening",
                        typ: ns.typ().to_string(),
                        path: path.display().to_string(),
                        source: e.into(),
                    }
                })?;
                join.push((ns.typ(), fd));
            }
            None if ns.typ() == LinuxNamespaceType::User => p.new_user = true,
            None => p.new |= flag(ns.typ()),
        }
    }
    // A user namespace is joined first by an unprivileged runtime (its capabilities there
    // are what let it join the rest), last by root: once in a container's user namespace,
    // root could no longer join namespaces owned by its own (the network namespace an
    // engine made for the container).
    if nix::unistd::geteuid().is_root() {
        join.sort_by_key(|(t, _)| *t == LinuxNamespaceType::User);
    } else {
        join.sort_by_key(|(t, _)| *t != LinuxNamespaceType::User);
    }
    p.join = join;
    Ok(p)
}

/// Plan for `exec`: join every namespace type the container has, through its init's
/// `/proc/<pid>/ns` entries.
pub fn plan_exec(namespaces: &[LinuxNamespace], pid: i32) -> Result<Plan, NamespaceError> {
    let own: Vec<LinuxNamespace> = namespaces
        .iter()
        .map(|ns| {
            let mut n = ns.clone();
            n.set_path(Some(PathBuf::from(format!("/proc/{pid}/ns/{}", proc_name(ns.typ())))));
            n
        })
        .collect();
    plan(&own)
}

/// setns into every planned namespace, in order.
pub fn join(plan: &Plan) -> Result<(), NamespaceError> {
    for (t, fd) in &plan.join {
        nix::sched::setns(fd, flag(*t)).map_err(|e| NamespaceError {
            op: "joining",
            typ: t.to_string(),
            path: String::new(),
            source: e.into(),
        })?;
    }
    Ok(())
}

/// Unshares the planned new namespaces other than user.
pub fn unshare_rest(plan: &Plan) -> Result<(), NamespaceError> {
    if plan.new.is_empty() {
        return Ok(());
    }
    nix::sched::unshare(plan.new).map_err(|e| NamespaceError {
        op: "creating",
        typ: format!("{:?}", plan.new),
        path: String::new(),
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_namespace_is_joined_last_by_root() {
        let mk = |t, p: Option<&str>| {
            let mut n = LinuxNamespace::default();
            n.set_typ(t);
            n.set_path(p.map(PathBuf::from));
            n
        };
        let me = std::process::id();
        let p = plan(&[
            mk(LinuxNamespaceType::Network, Some(&format!("/proc/{me}/ns/net"))),
            mk(LinuxNamespaceType::User, Some(&format!("/proc/{me}/ns/user"))),
            mk(LinuxNamespaceType::Pid, None),
            mk(LinuxNamespaceType::Time, None),
        ])
        .unwrap();
        let user_at = if nix::unistd::geteuid().is_root() { 1 } else { 0 };
        assert_eq!(p.join[user_at].0, LinuxNamespaceType::User);
        assert!(p.new.contains(CloneFlags::CLONE_NEWPID));
        assert!(!p.new_user);
        let err = plan(&[mk(LinuxNamespaceType::Network, Some("/nonexistent/ns"))]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ns"));
    }
}
