//! Pods: containers that share the namespaces of an infra container (network, IPC and UTS
//! by default, PID on request), a cgroup parent and a lifecycle, as Podman's.
//!
//! The infra container's process is the runtime's own pause (no command is executed: the
//! container's first process stays in berth's code, in an empty image): it holds the
//! namespaces, reaps what is re-parented to it and sleeps in `sigwait`. It is a container like any other,
//! with a monitor, so a pod outlives every berth process. Its network settings (ports,
//! network, address, DNS, hosts) are the pod's; a member joins its namespaces when it
//! starts. Pods are rows of the metadata database beside the containers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_image::store::ImageStore;
use rusqlite::params;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::create::CreateOptions;
use crate::model::{NamespaceMode, NetworkMode};
use crate::store::{new_id, valid_name, Engine, Record};
use crate::{EngineError, Result};

/// The image infra containers are made from: empty but for mount points (and a `/pause`
/// the runtime looks up but never executes).
pub const PAUSE_IMAGE: &str = "localhost/berth-pause:1";

/// The namespaces a pod can share. berth's containers are in the host's cgroup namespace
/// (as Docker's on cgroup v1), so `cgroup` is shared whether asked or not.
const SHAREABLE: [&str; 5] = ["cgroup", "ipc", "net", "pid", "uts"];

/// A pod as the database keeps it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Pod {
    /// 64 hex digits.
    pub id: String,
    /// Unique among pods.
    pub name: String,
    /// RFC 3339.
    pub created: String,
    /// The hostname its containers share (with `uts` shared).
    pub hostname: String,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// Annotations (a CRI sandbox's).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The infra container's id.
    pub infra_id: String,
    /// The namespaces its containers share with the infra (`net`, `ipc`, `uts`, `pid`,
    /// `cgroup`).
    pub share: Vec<String>,
    /// The cgroup its containers are made under.
    pub cgroup_parent: String,
    /// `continue` (the pod stays when its containers exit) or `stop`.
    pub exit_policy: String,
    /// `--memory`: the limit of all its containers together, in bytes (0: none).
    #[serde(default)]
    pub memory: i64,
    /// `--cpus`, in billionths of a CPU (0: no limit).
    #[serde(default)]
    pub nano_cpus: i64,
    /// `--pids-limit` (0: none).
    #[serde(default)]
    pub pids_limit: i64,
    /// `--restart`: the policy of its containers that set none (`no`, `always`,
    /// `on-failure[:N]`, `unless-stopped`).
    #[serde(default)]
    pub restart: String,
}

impl Pod {
    fn shares(&self, ns: &str) -> bool {
        self.share.iter().any(|s| s == ns)
    }
}

/// What `pod create` asks for.
#[derive(Debug, Clone, Default)]
pub struct PodOptions {
    /// `--name` (default: a generated one).
    pub name: Option<String>,
    /// `--hostname` (default: the pod's name).
    pub hostname: Option<String>,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// Annotations (a CRI sandbox's).
    pub annotations: BTreeMap<String, String>,
    /// `--share` (default `ipc,net,uts`).
    pub share: Option<Vec<String>>,
    /// `--restart` for its containers.
    pub restart: crate::options::RestartPolicy,
    /// `--infra-image`: the infra runs this image's command instead of berth's pause.
    pub infra_image: Option<String>,
    /// `--infra-command` (with `--infra-image`).
    pub infra_command: Option<Vec<String>>,
    /// `--exit-policy` (default `continue`).
    pub exit_policy: Option<String>,
    /// `--cgroup-parent` (default `/berth`, under which the pod's own cgroup is made).
    pub cgroup_parent: Option<String>,
    /// The infra container's network settings, which are the pod's: `--network`, `-p`,
    /// `--ip`, `--dns*`, `--add-host`, `--restart` and the limits the pod's cgroup takes.
    pub infra: CreateOptions,
}

/// A pod's state, as `pod ps` shows it.
pub fn status(engine: &Engine, pod: &Pod) -> &'static str {
    let infra = engine.state(&pod.infra_id);
    let members: Vec<bool> = members(engine, pod)
        .unwrap_or_default()
        .iter()
        .map(|r| engine.state(&r.id).running())
        .collect();
    let running = members.iter().filter(|r| **r).count();
    if infra.running() && crate::ops::is_paused(engine, &pod.infra_id) {
        "Paused"
    } else if infra.running() && running == members.len() {
        "Running"
    } else if infra.running() || running > 0 {
        "Degraded"
    } else if infra.status == crate::model::Status::Created && members.iter().all(|r| !r) {
        "Created"
    } else {
        "Exited"
    }
}

fn row_to_pod(json: &str) -> Result<Pod> {
    serde_json::from_str(json).map_err(|e| EngineError::Invalid(format!("a pod's record: {e}")))
}

/// Every pod, oldest first.
pub fn list(engine: &Engine) -> Result<Vec<Pod>> {
    let mut st = engine.conn().prepare("SELECT record FROM pods")?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for r in rows {
        out.push(row_to_pod(&r?)?);
    }
    out.sort_by(|a, b| a.created.cmp(&b.created));
    Ok(out)
}

/// The pods that pass `pod ps` filters (`KEY=VALUE`: `name` a substring, `id` a prefix,
/// `status`, `label` `k` or `k=v`), all of them ANDed; an unknown key is an error.
pub fn filtered(engine: &Engine, filters: &[String]) -> Result<Vec<Pod>> {
    let split: Vec<(&str, &str)> = filters
        .iter()
        .map(|f| f.split_once('=').unwrap_or((f.as_str(), "")))
        .collect();
    if let Some((bad, _)) = split
        .iter()
        .find(|(k, _)| !["name", "id", "status", "label"].contains(k))
    {
        return Err(EngineError::Invalid(format!("invalid filter {bad:?}")));
    }
    Ok(list(engine)?
        .into_iter()
        .filter(|p| {
            split.iter().all(|(k, v)| match *k {
                "name" => p.name.contains(v),
                "id" => p.id.starts_with(v),
                "status" => status(engine, p).eq_ignore_ascii_case(v),
                _ => {
                    let (lk, lv) = v.split_once('=').map_or((*v, None), |(a, b)| (a, Some(b)));
                    p.labels.get(lk).is_some_and(|x| lv.is_none_or(|lv| x == lv))
                }
            })
        })
        .collect())
}

/// `pod prune`: removes every pod none of whose containers runs; returns them.
pub fn prune(engine: &Engine) -> Result<Vec<Pod>> {
    let mut gone = Vec::new();
    for p in list(engine)? {
        if matches!(status(engine, &p), "Exited" | "Created") {
            gone.push(remove(engine, &p.id, false)?);
        }
    }
    Ok(gone)
}

/// The ids of a pod's running containers, its infra first.
pub fn running(engine: &Engine, pod: &Pod) -> Result<Vec<String>> {
    let mut ids = vec![pod.infra_id.clone()];
    ids.extend(members(engine, pod)?.into_iter().map(|r| r.id));
    ids.retain(|id| engine.state(id).running());
    Ok(ids)
}

/// A pod by name, id or unique id prefix.
pub fn get(engine: &Engine, key: &str) -> Result<Pod> {
    let all = list(engine)?;
    if let Some(p) = all.iter().find(|p| p.name == key || p.id == key) {
        return Ok(p.clone());
    }
    let found: Vec<&Pod> = all
        .iter()
        .filter(|p| !key.is_empty() && p.id.starts_with(key))
        .collect();
    match found.as_slice() {
        [p] => Ok((*p).clone()),
        [] => Err(EngineError::NotFound(format!(
            "no pod with name or ID {key} found: no such pod"
        ))),
        _ => Err(EngineError::Invalid(format!("more than one pod matches {key:?}"))),
    }
}

/// A pod's containers, the infra left out, in the order they were made.
pub fn members(engine: &Engine, pod: &Pod) -> Result<Vec<Record>> {
    let mut out: Vec<Record> = engine
        .all()?
        .into_iter()
        .filter(|r| r.pod == pod.id && r.id != pod.infra_id)
        .collect();
    out.sort_by(|a, b| a.created.cmp(&b.created));
    Ok(out)
}

/// Makes the pause image when the store lacks it: directories for the runtime's mounts
/// and a `/pause` to bind the berth binary on.
fn ensure_pause_image(engine: &Engine, images: &mut ImageStore) -> Result<()> {
    if images.resolve(PAUSE_IMAGE).is_ok() {
        return Ok(());
    }
    let mut tar = tar::Builder::new(Vec::new());
    let entry = |path: &str, kind: tar::EntryType, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        (h, path.to_string())
    };
    for (path, kind, mode) in [
        ("dev/", tar::EntryType::Directory, 0o755),
        ("proc/", tar::EntryType::Directory, 0o555),
        ("sys/", tar::EntryType::Directory, 0o555),
        ("etc/", tar::EntryType::Directory, 0o755),
        ("pause", tar::EntryType::Regular, 0o755),
    ] {
        let (mut h, p) = entry(path, kind, mode);
        tar.append_data(&mut h, p, std::io::empty())
            .map_err(crate::io_err("making", "the pause image"))?;
    }
    let data = tar.into_inner().map_err(crate::io_err("making", "the pause image"))?;
    let tag = berth_oci::Reference::parse(PAUSE_IMAGE).map_err(|e| EngineError::Invalid(e.to_string()))?;
    crate::images::import(engine, images, &mut &data[..], &[], "berth pod infra", Some(&tag))?;
    Ok(())
}

/// `pod create`: the pod's row and its infra container (made, not started).
pub fn create(engine: &Engine, images: &mut ImageStore, o: &PodOptions) -> Result<Pod> {
    let id = new_id()?;
    let name = match &o.name {
        Some(n) if !valid_name(n) => {
            return Err(EngineError::Invalid(format!(
                "invalid pod name {n:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )))
        }
        Some(n) => n.clone(),
        None => crate::store::random_name(&id),
    };
    if list(engine)?.iter().any(|p| p.name == name) {
        return Err(EngineError::Conflict(format!("{name}: pod already exists")));
    }
    let mut share = o
        .share
        .clone()
        .unwrap_or_else(|| vec!["ipc".into(), "net".into(), "uts".into()]);
    share.retain(|s| !s.is_empty());
    for s in &share {
        if !SHAREABLE.contains(&s.as_str()) {
            return Err(EngineError::Invalid(format!(
                "invalid kernel namespace to share: {s}: options are cgroup, ipc, net, pid or uts"
            )));
        }
    }
    share.sort();
    share.dedup();
    let exit_policy = o.exit_policy.clone().unwrap_or_else(|| "continue".into());
    if !["continue", "stop"].contains(&exit_policy.as_str()) {
        return Err(EngineError::Invalid(format!(
            "invalid pod exit policy: {exit_policy:?}: continue or stop"
        )));
    }
    let parent = o
        .cgroup_parent
        .clone()
        .unwrap_or_else(|| "/berth".into())
        .trim_end_matches('/')
        .to_string();
    let pod = Pod {
        id: id.clone(),
        hostname: o
            .hostname
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| name.clone()),
        name,
        created: berth_image::store::now(),
        labels: o.labels.clone(),
        annotations: o.annotations.clone(),
        infra_id: String::new(),
        share,
        cgroup_parent: format!("{parent}/pod-{}", &id[..12]),
        exit_policy,
        memory: o.infra.memory,
        nano_cpus: o.infra.nano_cpus,
        pids_limit: o.infra.pids_limit,
        restart: match o.restart {
            crate::options::RestartPolicy::OnFailure(n) if n > 0 => format!("on-failure:{n}"),
            p => p.name().to_string(),
        },
    };
    if o.infra_command.is_some() && o.infra_image.is_none() {
        return Err(EngineError::Invalid(
            "--infra-command needs --infra-image: berth's own infra runs no command".into(),
        ));
    }
    crate::create::check_limits(&o.infra)?;
    if pod.memory > 0 || pod.nano_cpus > 0 || pod.pids_limit > 0 {
        if let Some(why) = crate::rootless::why_no_limits() {
            return Err(EngineError::Invalid(format!(
                "rootless pods cannot have resource limits here: {why}"
            )));
        }
    }
    #[allow(clippy::cast_precision_loss)]
    crate::spec::check_cpus(pod.nano_cpus as f64 / 1e9)?;
    if o.infra_image.is_none() {
        ensure_pause_image(engine, images)?;
    }
    let mut infra = o.infra.clone();
    // The limits are the pod's cgroup's, not the infra's own.
    (infra.memory, infra.nano_cpus, infra.pids_limit) = (0, 0, 0);
    infra.name = Some(format!("{}-infra", &id[..12]));
    // An infra in the host's UTS namespace has the host's name, which it cannot set.
    infra.hostname = Some(pod.hostname.clone()).filter(|_| infra.uts != NamespaceMode::Host);
    match &o.infra_image {
        Some(image) => {
            infra.image = image.clone();
            infra.entrypoint = o.infra_command.clone();
        }
        None => {
            infra.image = PAUSE_IMAGE.to_string();
            infra.entrypoint = Some(Vec::new());
            infra.cmd = vec!["/pause".into()];
            infra.infra = true;
            infra.runtime = String::new();
        }
    }
    infra.cgroup_parent = Some(pod.cgroup_parent.clone());
    infra.labels.insert("io.berth.pod".into(), pod.id.clone());
    if let NetworkMode::Named(_) = infra.network {
        infra.aliases.push(pod.name.clone());
    }
    let mut made = crate::create::create(engine, images, &infra)?.record;
    made.pod = pod.id.clone();
    engine.save_record(&made)?;
    let pod = Pod {
        infra_id: made.id.clone(),
        ..pod
    };
    let json = serde_json::to_string(&pod).map_err(|e| EngineError::Invalid(e.to_string()))?;
    let inserted = engine.conn().execute(
        "INSERT INTO pods(id, name, record) VALUES (?1, ?2, ?3)",
        params![pod.id, pod.name, json],
    );
    if let Err(e) = inserted {
        let _ = crate::ops::remove(engine, &pod.infra_id, true, true);
        return Err(e.into());
    }
    crate::events::record(engine, "pod", "create", &pod.id, json!({"name": pod.name}));
    Ok(pod)
}

/// What a container of `pod` takes from it, applied to its options: the shared namespaces
/// (the infra's), the cgroup parent. Ports and networks belong to the pod.
pub(crate) fn join(engine: &Engine, key: &str, o: &mut CreateOptions) -> Result<Pod> {
    let pod = get(engine, key)?;
    if pod.shares("net") {
        if !o.publish.is_empty() || o.publish_all {
            return Err(EngineError::Invalid(
                "invalid config provided: published or exposed ports must be defined when the pod is created: network cannot be configured when it is shared with a pod".into(),
            ));
        }
        if o.network != NetworkMode::Bridge || o.ip.is_some() || !o.aliases.is_empty() || !o.dns.is_empty() {
            return Err(EngineError::Invalid(
                "invalid config provided: network cannot be configured when it is shared with a pod".into(),
            ));
        }
        o.network = NetworkMode::Container(pod.infra_id.clone());
    }
    let joined = |ns: &str| {
        if pod.shares(ns) {
            NamespaceMode::Container(pod.infra_id.clone())
        } else {
            NamespaceMode::Private
        }
    };
    // A member that asks for a namespace of its own kind (the host's, another member's)
    // keeps it; the rest join the infra's where the pod shares them.
    if o.ipc == NamespaceMode::Private {
        o.ipc = joined("ipc");
    }
    if o.pid == NamespaceMode::Private {
        o.pid = joined("pid");
    }
    if pod.shares("uts") {
        if o.hostname.as_deref().is_some_and(|h| !h.is_empty()) {
            return Err(EngineError::Invalid(
                "invalid config provided: cannot set hostname when joining the pod UTS namespace".into(),
            ));
        }
        o.uts = NamespaceMode::Container(pod.infra_id.clone());
        o.hostname = Some(pod.hostname.clone());
    }
    if o.cgroup_parent.is_none() {
        o.cgroup_parent = Some(pod.cgroup_parent.clone());
    }
    if o.restart == crate::options::RestartPolicy::No && !o.auto_remove && !pod.restart.is_empty() {
        o.restart = crate::options::RestartPolicy::parse(&pod.restart)?;
    }
    Ok(pod)
}

/// `/etc/hosts` of a pod: the infra's, with the pod's hostname and every container's name
/// at the pod's address; written (in place: they are bind-mounted) for the infra and, when
/// they share its network, every container of the pod.
pub fn write_hosts(engine: &Engine, pod: &Pod) -> Result<()> {
    let infra_hosts = engine.dir(&pod.infra_id).join("hosts");
    let base = std::fs::read_to_string(&infra_hosts).unwrap_or_default();
    let mine = |l: &str| l.ends_with("\t# pod") || l.split_whitespace().skip(1).any(|n| n == pod.hostname);
    // The address the infra's network gave its hostname.
    let ip = base
        .lines()
        .find(|l| mine(l))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("127.0.1.1")
        .to_string();
    let members = members(engine, pod)?;
    let mut names: Vec<&str> = vec![pod.hostname.as_str()];
    if pod.name != pod.hostname {
        names.push(&pod.name);
    }
    names.extend(members.iter().map(|r| r.name.as_str()));
    let mut text: String = base.lines().filter(|l| !mine(l)).map(|l| format!("{l}\n")).collect();
    text.push_str(&format!("{ip}\t{}\t# pod\n", names.join(" ")));
    let mut ids = vec![pod.infra_id.clone()];
    if pod.shares("net") {
        ids.extend(members.iter().map(|r| r.id.clone()));
    }
    for id in ids {
        let p = engine.dir(&id).join("hosts");
        std::fs::write(&p, &text).map_err(crate::io_err("writing", &p))?;
    }
    Ok(())
}

/// Starts the infra of `r`'s pod if it is not running (a member's namespaces are its).
pub(crate) fn start_infra_of(engine: &Engine, r: &Record, exe: &Path) -> Result<()> {
    if r.pod.is_empty() {
        return Ok(());
    }
    let pod = get(engine, &r.pod)?;
    if pod.infra_id == r.id {
        return ensure_cgroup(&pod);
    }
    if !engine.state(&pod.infra_id).running() {
        ensure_cgroup(&pod)?;
        crate::ops::start(engine, &pod.infra_id, exe)?;
        write_hosts(engine, &pod)?;
    }
    Ok(())
}

/// The pod's cgroup (its containers' parent) on this host's hierarchies.
/// Rootless, it is below the user's delegated subtree, or there is none.
fn pod_cgroup(pod: &Pod) -> Option<berth_runtime::cgroups::CgroupConfig> {
    let layout = berth_runtime::cgroups::host_layout().ok()?;
    let path = if crate::rootless::is_rootless() {
        let base = crate::rootless::delegated_cgroup()?;
        base.join(pod.cgroup_parent.trim_start_matches('/'))
    } else {
        PathBuf::from(&pod.cgroup_parent)
    };
    Some(berth_runtime::cgroups::CgroupConfig::resolve(
        &layout,
        &path,
        &BTreeMap::new(),
    ))
}

/// Makes the pod's cgroup with its limits (again after a reboot), before its infra
/// starts: its containers' cgroups are made below it, so the limits hold for them together.
fn ensure_cgroup(pod: &Pod) -> Result<()> {
    let Some(cg) = pod_cgroup(pod) else { return Ok(()) };
    let mut res = json!({});
    if pod.memory > 0 {
        res["memory"] = json!({"limit": pod.memory});
    }
    if pod.nano_cpus > 0 {
        res["cpu"] = json!({"quota": pod.nano_cpus / 10_000, "period": 100_000u64});
    }
    if pod.pids_limit > 0 {
        res["pids"] = json!({"limit": pod.pids_limit});
    }
    let res: berth_oci::oci_spec::runtime::LinuxResources =
        serde_json::from_value(res).map_err(|e| EngineError::Invalid(format!("the pod's limits: {e}")))?;
    cg.create()
        .and_then(|()| cg.set(&res))
        .map_err(|e| EngineError::Invalid(format!("the pod's cgroup {}: {e}", pod.cgroup_parent)))
}

/// `pod start`: the infra first, then the containers in the order they were made.
pub fn start(engine: &Engine, key: &str, exe: &Path) -> Result<Pod> {
    let (pod, fresh) = start_infra(engine, key, exe)?;
    for r in members(engine, &pod)? {
        // Init containers (`kube play`'s) run in order, each to success before the next;
        // again only when the pod itself starts afresh.
        if r.labels.contains_key(crate::kstatus::INIT_LABEL) {
            let st = engine.state(&r.id);
            if !fresh && st.status == crate::model::Status::Exited && st.exit_code == 0 {
                continue;
            }
            if !st.running() {
                crate::ops::start(engine, &r.id, exe)?;
            }
            // Until it ran for good (no restart brings it back), or is gone.
            let st = crate::monitor::wait_exited(engine, &r.id, Duration::from_secs(365 * 24 * 3600));
            if st.status != crate::model::Status::Exited || st.exit_code != 0 {
                return Err(EngineError::Start {
                    code: st.exit_code,
                    message: format!("init container {} failed (exit code {})", r.name, st.exit_code),
                });
            }
            continue;
        }
        if !engine.state(&r.id).running() {
            crate::ops::start(engine, &r.id, exe)?;
        }
    }
    crate::events::record(engine, "pod", "start", &pod.id, json!({"name": pod.name}));
    Ok(pod)
}

/// Starts a pod's infra if it is not running (the pod's cgroup and hosts file made);
/// returns the pod and whether the infra was started now.
pub fn start_infra(engine: &Engine, key: &str, exe: &Path) -> Result<(Pod, bool)> {
    let pod = get(engine, key)?;
    let fresh = !engine.state(&pod.infra_id).running();
    if fresh {
        ensure_cgroup(&pod)?;
        crate::ops::start(engine, &pod.infra_id, exe)?;
    }
    write_hosts(engine, &pod)?;
    Ok((pod, fresh))
}

/// After a container of a pod stopped for good (its monitor calls this): the infra gone
/// takes the pod's containers down with it, as they lost what held their namespaces; with
/// the exit policy `stop`, the last container to go takes the infra.
pub(crate) fn after_exit(engine: &Engine, r: &Record) {
    if r.pod.is_empty() {
        return;
    }
    let Ok(pod) = get(engine, &r.pod) else { return };
    let members = members(engine, &pod).unwrap_or_default();
    if r.id == pod.infra_id {
        for m in members.iter().rev().filter(|m| engine.state(&m.id).running()) {
            let _ = crate::ops::stop(engine, &m.id, None, None);
        }
    } else if pod.exit_policy == "stop"
        && !members.iter().any(|m| m.id != r.id && engine.state(&m.id).running())
        && engine.state(&pod.infra_id).running()
    {
        let _ = crate::ops::stop(engine, &pod.infra_id, None, None);
    }
}

/// `pod stop`: the containers, newest first (their stop signal, then SIGKILL after
/// `timeout`), then the infra.
pub fn stop(engine: &Engine, key: &str, timeout: Option<u64>) -> Result<Pod> {
    let pod = get(engine, key)?;
    let all = members(engine, &pod)?;
    // A `kube play` pod's containers stop together, as the kubelet stops them (one grace
    // period for all); others one after another, newest first, as Podman's.
    let together = all.iter().any(|r| r.kube.is_some());
    let ids: Vec<String> = all
        .into_iter()
        .rev()
        .filter(|r| {
            matches!(
                engine.state(&r.id).status,
                crate::model::Status::Running | crate::model::Status::Restarting
            )
        })
        .map(|r| r.id)
        .collect();
    if !together {
        for id in &ids {
            crate::ops::stop(engine, id, timeout, None)?;
        }
    }
    let ids = if together { ids } else { Vec::new() };
    let root = engine.root.clone();
    let stopped: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| s.spawn(|| Engine::open(&root).and_then(|e| crate::ops::stop(&e, id, timeout, None))))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(EngineError::Invalid("stopping a container panicked".into())))
            })
            .collect()
    });
    stopped.into_iter().collect::<Result<Vec<()>>>()?;
    if engine.state(&pod.infra_id).running() {
        crate::ops::stop(engine, &pod.infra_id, timeout, None)?;
    }
    crate::events::record(engine, "pod", "stop", &pod.id, json!({"name": pod.name}));
    Ok(pod)
}

/// `pod kill`: `signal` to every running container of the pod, the infra last.
pub fn kill(engine: &Engine, key: &str, signal: &str) -> Result<Pod> {
    let pod = get(engine, key)?;
    let mut ids: Vec<String> = members(engine, &pod)?.into_iter().map(|r| r.id).collect();
    ids.push(pod.infra_id.clone());
    let mut any = false;
    for id in ids.iter().filter(|id| engine.state(id).running()) {
        crate::ops::kill(engine, id, signal)?;
        any = true;
    }
    if !any {
        return Err(EngineError::Conflict(format!("pod {} is not running", pod.name)));
    }
    crate::events::record(engine, "pod", "kill", &pod.id, json!({"name": pod.name}));
    Ok(pod)
}

/// `pod pause` / `pod unpause`: freezes or thaws every running container of the pod.
pub fn set_paused(engine: &Engine, key: &str, paused: bool) -> Result<Pod> {
    let pod = get(engine, key)?;
    let mut ids: Vec<String> = members(engine, &pod)?.into_iter().map(|r| r.id).collect();
    ids.push(pod.infra_id.clone());
    let running: Vec<&String> = ids.iter().filter(|id| engine.state(id).running()).collect();
    if running.is_empty() {
        return Err(EngineError::Conflict(format!("pod {} is not running", pod.name)));
    }
    for id in running {
        if crate::ops::is_paused(engine, id) != paused {
            crate::ops::set_paused(engine, id, paused)?;
        }
    }
    let action = if paused { "pause" } else { "unpause" };
    crate::events::record(engine, "pod", action, &pod.id, json!({"name": pod.name}));
    Ok(pod)
}

/// `pod rm`: the pod and its containers; a running pod only with `force`.
pub fn remove(engine: &Engine, key: &str, force: bool) -> Result<Pod> {
    let pod = get(engine, key)?;
    let members = members(engine, &pod)?;
    let running = members.iter().any(|r| engine.state(&r.id).running()) || engine.state(&pod.infra_id).running();
    if running && !force {
        return Err(EngineError::Conflict(format!(
            "pod {} has running containers: stop them or remove with --force",
            pod.name
        )));
    }
    for r in members.iter().rev() {
        crate::ops::remove(engine, &r.id, true, true)?;
    }
    match crate::ops::remove(engine, &pod.infra_id, true, true) {
        Ok(_) | Err(EngineError::NoSuchContainer(_)) => {}
        Err(e) => return Err(e),
    }
    if let Some(cg) = pod_cgroup(&pod) {
        // A container cgroup a run nobody saw end left below it (empty once its
        // processes are gone) would keep the pod's from going.
        for dir in cg.dirs() {
            for child in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if child.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = std::fs::remove_dir(child.path());
                }
            }
        }
        let _ = cg.destroy();
    }
    engine.conn().execute("DELETE FROM pods WHERE id = ?1", [&pod.id])?;
    crate::events::record(engine, "pod", "remove", &pod.id, json!({"name": pod.name}));
    Ok(pod)
}

/// `pod inspect`: Podman's shape.
pub fn inspect_json(engine: &Engine, pod: &Pod) -> Value {
    let members = members(engine, pod).unwrap_or_default();
    let infra = engine.resolve(&pod.infra_id).ok();
    let state = |id: &str| engine.state(id).status.to_string();
    let mut containers = Vec::new();
    if let Some(i) = &infra {
        containers.push(json!({"Id": i.id, "Name": i.name, "State": state(&i.id)}));
    }
    for r in &members {
        // A `kube play` container: what the kubelet would report of it, too.
        containers.push(match &r.kube {
            Some(_) => crate::kstatus::container(engine, r),
            None => json!({"Id": r.id, "Name": r.name, "State": state(&r.id)}),
        });
    }
    let kube = members.iter().any(|r| r.kube.is_some()).then(|| {
        let s = crate::kstatus::summary(engine, pod);
        json!({"Ready": format!("{}/{}", s.ready, s.total), "Status": s.status, "Restarts": s.restarts})
    });
    json!({
        "Id": pod.id,
        "Name": pod.name,
        "Created": pod.created,
        "State": status(engine, pod),
        "Hostname": pod.hostname,
        "Labels": pod.labels,
        "CreateInfra": true,
        "InfraContainerID": pod.infra_id,
        "CgroupParent": pod.cgroup_parent,
        "SharedNamespaces": pod.share,
        "ExitPolicy": pod.exit_policy,
        "RestartPolicy": pod.restart,
        "Memory": pod.memory,
        "NanoCpus": pod.nano_cpus,
        "PidsLimit": pod.pids_limit,
        "NumContainers": containers.len(),
        "Containers": containers,
        "Kube": kube,
        "InfraConfig": infra.as_ref().map(|i| json!({
            "PortBindings": crate::inspect::port_bindings(i),
            "NetworkMode": i.network_mode,
            "HostNetwork": i.network_mode == "host",
        })),
    })
}
