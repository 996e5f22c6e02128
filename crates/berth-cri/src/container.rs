//! Containers in sandboxes: berth containers made from a `ContainerConfig`.

use berth_engine::create::CreateOptions;
use berth_engine::images::ImageStore;
use berth_engine::model::{MountSpec, NamespaceMode as Ns, Record, State, Status as EngineStatus};
use berth_engine::store::Engine;
use k8s_cri::v1 as cri;
use tonic::Status;

use crate::meta::{self, ContainerMeta};
use crate::{engine_status, nanos, sandbox, Cri};

/// Propagation of a CRI mount as the OCI option.
fn propagation(v: i32) -> &'static str {
    match cri::MountPropagation::try_from(v) {
        Ok(cri::MountPropagation::PropagationHostToContainer) => "rslave",
        Ok(cri::MountPropagation::PropagationBidirectional) => "rshared",
        _ => "rprivate",
    }
}

/// The create options a container config asks for, in `pod`.
fn create_options(
    c: &cri::ContainerConfig,
    pod: &berth_engine::pods::Pod,
    sandbox: &cri::PodSandboxConfig,
    name: String,
) -> Result<CreateOptions, Status> {
    let image = c
        .image
        .as_ref()
        .map(|i| i.image.clone())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| Status::invalid_argument("container config names no image"))?;
    let mut o = CreateOptions {
        image,
        name: Some(name),
        pod: Some(pod.id.clone()),
        workdir: Some(c.working_dir.clone()).filter(|w| !w.is_empty()),
        env: c.envs.iter().map(|kv| format!("{}={}", kv.key, kv.value)).collect(),
        labels: meta::tree(&c.labels),
        annotations: meta::tree(&c.annotations),
        tty: c.tty,
        open_stdin: c.stdin,
        stdin_once: c.stdin_once,
        ..CreateOptions::default()
    };
    // Kubernetes' command replaces the entrypoint, its args the cmd.
    if !c.command.is_empty() {
        o.entrypoint = Some(c.command.clone());
    }
    o.cmd = c.args.clone();
    for m in &c.mounts {
        if let Some(image) = m.image.as_ref().filter(|i| !i.image.is_empty()) {
            // An image volume (KEP-4639): the image's content, read-only.
            if !m.readonly {
                return Err(Status::invalid_argument(format!(
                    "mount {}: an image volume must be read-only",
                    m.container_path
                )));
            }
            if !m.container_path.starts_with('/') {
                return Err(Status::invalid_argument(format!(
                    "mount {:?}: the container path must be absolute",
                    m.container_path
                )));
            }
            o.mounts.push(MountSpec {
                kind: "image".into(),
                source: image.image.clone(),
                destination: m.container_path.clone(),
                read_only: true,
                options: Vec::new(),
            });
            continue;
        }
        if m.host_path.is_empty() || !m.container_path.starts_with('/') {
            return Err(Status::invalid_argument(format!(
                "mount {:?} -> {:?}: a host path and an absolute container path are needed",
                m.host_path, m.container_path
            )));
        }
        if !std::path::Path::new(&m.host_path).exists() {
            return Err(Status::invalid_argument(format!(
                "mount {}: host path {} does not exist",
                m.container_path, m.host_path
            )));
        }
        let mut options = vec![propagation(m.propagation).to_string()];
        if m.recursive_read_only {
            // As the kubelet asks: read-only, private, and the mounts below read-only too.
            if !m.readonly {
                return Err(Status::invalid_argument(format!(
                    "mount {}: recursive read-only needs read-only",
                    m.container_path
                )));
            }
            if options[0] != "rprivate" {
                return Err(Status::invalid_argument(format!(
                    "mount {}: recursive read-only needs private propagation, not {}",
                    m.container_path, options[0]
                )));
            }
            options.push("rro".into());
        }
        o.mounts.push(MountSpec {
            kind: "bind".into(),
            source: m.host_path.clone(),
            destination: m.container_path.clone(),
            read_only: m.readonly,
            options,
        });
    }
    if let Some(linux) = &c.linux {
        if let Some(r) = &linux.resources {
            apply_resources(&mut o, r)?;
        }
    }
    // CDI devices named in `cdi.k8s.io/*` annotations (comma separated), as containerd
    // and CRI-O read them (this CRI's types predate the CDIDevices field).
    for (k, v) in &c.annotations {
        if k.starts_with("cdi.k8s.io/") {
            o.cdi_devices.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::to_string),
            );
        }
    }
    for d in &c.devices {
        let m = berth_engine::model::DeviceMapping {
            host: d.host_path.clone(),
            container: d.container_path.clone(),
            perms: d.permissions.clone(),
        };
        o.devices.push(
            m.checked().map_err(|e| {
                Status::invalid_argument(format!("device {} -> {}: {e}", d.host_path, d.container_path))
            })?,
        );
    }
    let none = cri::LinuxContainerSecurityContext::default();
    let security = c
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .unwrap_or(&none);
    apply_security(&mut o, security)?;
    // The sandbox's namespace options reach the container: the node's IPC or PID.
    let nso = sandbox::namespace_options(sandbox);
    if cri::NamespaceMode::try_from(nso.pid) == Ok(cri::NamespaceMode::Node) {
        o.pid = Ns::Host;
    }
    if cri::NamespaceMode::try_from(nso.ipc) == Ok(cri::NamespaceMode::Node) {
        o.ipc = Ns::Host;
    }
    // The container's own: another container's PID namespace (an ephemeral debug
    // container's TARGET).
    let own = c
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_default();
    match cri::NamespaceMode::try_from(own.pid) {
        Ok(cri::NamespaceMode::Node) => o.pid = Ns::Host,
        Ok(cri::NamespaceMode::Target) => {
            if own.target_id.is_empty() {
                return Err(Status::invalid_argument("pid namespace TARGET without a target_id"));
            }
            o.pid = Ns::Container(own.target_id.clone());
        }
        _ => {}
    }
    Ok(o)
}

fn apply_resources(o: &mut CreateOptions, r: &cri::LinuxContainerResources) -> Result<(), Status> {
    o.memory = r.memory_limit_in_bytes.max(0);
    o.cpu_shares = u64::try_from(r.cpu_shares).unwrap_or(0);
    if r.cpu_quota > 0 {
        let period = if r.cpu_period > 0 { r.cpu_period } else { 100_000 };
        o.nano_cpus = r.cpu_quota.saturating_mul(1_000_000_000) / period;
    }
    o.cpuset_cpus = r.cpuset_cpus.clone();
    o.cpuset_mems = r.cpuset_mems.clone();
    o.hugepage_limits = hugepages(&r.hugepage_limits)?;
    o.unified = r.unified.clone().into_iter().collect();
    o.oom_score_adj = i32::try_from(r.oom_score_adj)
        .map_err(|_| Status::invalid_argument(format!("oom_score_adj {} is out of range", r.oom_score_adj)))?;
    if r.memory_swap_limit_in_bytes != 0 {
        o.memory_swap = r.memory_swap_limit_in_bytes;
    }
    Ok(())
}

/// Hugepage limits by page size (`2MB`, `1GB`: the cgroup files' names).
fn hugepages(l: &[cri::HugepageLimit]) -> Result<std::collections::BTreeMap<String, u64>, Status> {
    l.iter()
        .map(|h| {
            let ok = h.page_size.len() > 2
                && h.page_size.ends_with('B')
                && h.page_size[..h.page_size.len() - 2].bytes().all(|b| b.is_ascii_digit())
                && matches!(h.page_size.as_bytes()[h.page_size.len() - 2], b'K' | b'M' | b'G');
            if !ok {
                return Err(Status::invalid_argument(format!(
                    "hugepage size {:?}: a size like 2MB or 1GB",
                    h.page_size
                )));
            }
            Ok((h.page_size.clone(), h.limit))
        })
        .collect()
}

fn apply_security(o: &mut CreateOptions, s: &cri::LinuxContainerSecurityContext) -> Result<(), Status> {
    o.privileged = s.privileged;
    o.read_only = s.readonly_rootfs;
    if let Some(caps) = &s.capabilities {
        o.cap_add = caps.add_capabilities.iter().map(|c| cap(c)).collect();
        o.cap_drop = caps.drop_capabilities.iter().map(|c| cap(c)).collect();
    }
    let user = match (&s.run_as_user, s.run_as_username.as_str(), &s.run_as_group) {
        (Some(u), _, Some(g)) => Some(format!("{}:{}", u.value, g.value)),
        (Some(u), _, None) => Some(u.value.to_string()),
        (None, name, Some(g)) if !name.is_empty() => Some(format!("{name}:{}", g.value)),
        (None, name, None) if !name.is_empty() => Some(name.to_string()),
        (None, _, Some(_)) => {
            return Err(Status::invalid_argument(
                "run_as_group needs run_as_user or run_as_username",
            ))
        }
        _ => None,
    };
    o.user = user;
    if s.no_new_privs {
        o.security_opt.push("no-new-privileges".into());
    }
    // The CRI's unset profile is no profile (the kubelet sends RuntimeDefault when a pod
    // asks for it), as with containerd and CRI-O.
    match &s.seccomp {
        None => o.security_opt.push("seccomp=unconfined".into()),
        Some(p) => match cri::security_profile::ProfileType::try_from(p.profile_type) {
            Ok(cri::security_profile::ProfileType::RuntimeDefault) => {}
            Ok(cri::security_profile::ProfileType::Unconfined) => o.security_opt.push("seccomp=unconfined".into()),
            Ok(cri::security_profile::ProfileType::Localhost) => {
                let path = p.localhost_ref.strip_prefix("localhost/").unwrap_or(&p.localhost_ref);
                if !path.starts_with('/') || !std::path::Path::new(path).is_file() {
                    return Err(Status::invalid_argument(format!(
                        "seccomp profile {:?}: not an absolute path to a file",
                        p.localhost_ref
                    )));
                }
                o.security_opt.push(format!("seccomp={path}"));
            }
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "unknown seccomp profile type {}",
                    p.profile_type
                )))
            }
        },
    }
    // The kubelet sends the paths to mask and make read-only (its defaults): they replace
    // berth's, as containerd's do. None sent (nothing on the wire tells that from an empty
    // list) keeps the defaults.
    if !s.privileged {
        o.masked_paths = Some(s.masked_paths.clone()).filter(|p| !p.is_empty());
        o.readonly_paths = Some(s.readonly_paths.clone()).filter(|p| !p.is_empty());
    }
    o.group_add = s.supplemental_groups.iter().map(i64::to_string).collect();
    if let Some(bad) = s.supplemental_groups.iter().find(|g| u32::try_from(**g).is_err()) {
        return Err(Status::invalid_argument(format!(
            "supplemental group {bad} is not a group id"
        )));
    }
    o.groups_strict = s.supplemental_groups_policy == cri::SupplementalGroupsPolicy::Strict as i32;
    Ok(())
}

/// `CAP_X` from the CRI's `X` (or `CAP_X`); `ALL` stays.
fn cap(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    if up == "ALL" || up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// `CreateContainer`: made in the sandbox, not started.
pub fn create(engine: &Engine, images: &mut ImageStore, req: cri::CreateContainerRequest) -> Result<String, Status> {
    let (pod, sm) = sandbox::get(engine, &req.pod_sandbox_id)?;
    let config = req
        .config
        .ok_or_else(|| Status::invalid_argument("CreateContainer without a config"))?;
    let md = config
        .metadata
        .clone()
        .filter(|m| !m.name.is_empty())
        .ok_or_else(|| Status::invalid_argument("container config has no metadata name"))?;
    let smd = sandbox::check_metadata(sm.config.metadata.as_ref())?;
    let name = format!(
        "k8s_{}_{}_{}_{}_{}",
        md.name, smd.name, smd.namespace, smd.uid, md.attempt
    );
    if engine.resolve(&name).is_ok() {
        return Err(Status::already_exists(format!(
            "a container named {name} already exists in sandbox {}",
            pod.id
        )));
    }
    let sandbox_config = req.sandbox_config.unwrap_or_else(|| sm.config.clone());
    let mut o = create_options(&config, &pod, &sandbox_config, name)?;
    let log_path = if config.log_path.is_empty() || sm.config.log_directory.is_empty() {
        String::new()
    } else {
        std::path::Path::new(&sm.config.log_directory)
            .join(&config.log_path)
            .display()
            .to_string()
    };
    o.cri_log_path = Some(log_path.clone()).filter(|p| !p.is_empty());
    let made = berth_engine::create::create(engine, images, &o).map_err(engine_status)?;
    let id = made.record.id;
    for w in &made.warnings {
        eprintln!("berth cri: container {id}: {w}");
    }
    let m = ContainerMeta {
        sandbox_id: pod.id.clone(),
        metadata: md,
        image: config.image.clone().unwrap_or_default(),
        log_path,
        mounts: config.mounts.clone(),
        labels: config.labels.clone(),
        annotations: config.annotations.clone(),
    };
    if let Err(e) = meta::save_container(engine, &id, &m) {
        let _ = berth_engine::ops::remove(engine, &id, true, true);
        return Err(e);
    }
    Ok(id)
}

/// A container by id (or unique prefix): one the CRI made.
pub fn get(engine: &Engine, id: &str) -> Result<(Record, ContainerMeta), Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument("no container id"));
    }
    let r = engine
        .resolve(id)
        .map_err(|_| Status::not_found(format!("container {id} not found")))?;
    let m = meta::container(engine, &r.id).ok_or_else(|| Status::not_found(format!("container {id} not found")))?;
    Ok((r, m))
}

/// `StartContainer`.
pub fn start(cri: &Cri, engine: &Engine, id: &str) -> Result<(), Status> {
    let (r, _) = get(engine, id)?;
    let st = engine.state(&r.id);
    if st.status != EngineStatus::Created {
        return Err(Status::failed_precondition(format!(
            "container {} is {}, not created: a CRI container starts once",
            r.id,
            st.status.as_str()
        )));
    }
    berth_engine::ops::start(engine, &r.id, &cri.opts.exe).map_err(engine_status)
}

/// `StopContainer` with a timeout in seconds (a container already gone is stopped).
pub fn stop(engine: &Engine, id: &str, timeout: i64) -> Result<(), Status> {
    let r = match get(engine, id) {
        Ok((r, _)) => r,
        Err(e) if e.code() == tonic::Code::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if engine.state(&r.id).running() {
        berth_engine::ops::stop(engine, &r.id, Some(u64::try_from(timeout).unwrap_or(0)), None)
            .map_err(engine_status)?;
    }
    Ok(())
}

/// `RemoveContainer` (a container already gone is removed).
pub fn remove(engine: &Engine, id: &str) -> Result<(), Status> {
    let r = match get(engine, id) {
        Ok((r, _)) => r,
        Err(e) if e.code() == tonic::Code::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    berth_engine::ops::remove(engine, &r.id, true, true).map_err(engine_status)?;
    Ok(())
}

fn state_of(st: &State) -> cri::ContainerState {
    match st.status {
        EngineStatus::Created => cri::ContainerState::ContainerCreated,
        EngineStatus::Running | EngineStatus::Paused | EngineStatus::Restarting => {
            cri::ContainerState::ContainerRunning
        }
        EngineStatus::Exited | EngineStatus::Dead => cri::ContainerState::ContainerExited,
        EngineStatus::Removing => cri::ContainerState::ContainerUnknown,
    }
}

/// `ContainerStatus`.
pub fn status(engine: &Engine, id: &str) -> Result<cri::ContainerStatus, Status> {
    let (r, m) = get(engine, id)?;
    let st = engine.state(&r.id);
    let state = state_of(&st);
    let (reason, message) = match state {
        cri::ContainerState::ContainerExited if st.oom_killed => ("OOMKilled".to_string(), String::new()),
        cri::ContainerState::ContainerExited if !st.error.is_empty() => ("StartError".to_string(), st.error.clone()),
        cri::ContainerState::ContainerExited if st.exit_code == 0 => ("Completed".to_string(), String::new()),
        cri::ContainerState::ContainerExited => ("Error".to_string(), String::new()),
        _ => (String::new(), String::new()),
    };
    let started = if state == cri::ContainerState::ContainerCreated {
        0
    } else {
        nanos(&st.started_at)
    };
    Ok(cri::ContainerStatus {
        id: r.id.clone(),
        metadata: Some(m.metadata.clone()),
        state: state as i32,
        created_at: nanos(&r.created),
        started_at: started,
        finished_at: if state == cri::ContainerState::ContainerExited {
            nanos(&st.finished_at)
        } else {
            0
        },
        exit_code: st.exit_code,
        image: Some(m.image.clone()),
        image_ref: r.image_id.clone(),
        image_id: r.image_id.clone(),
        reason,
        message,
        labels: m.labels.clone(),
        annotations: m.annotations.clone(),
        mounts: m.mounts.clone(),
        log_path: m.log_path.clone(),
        resources: None,
        user: user(engine, &r.id),
    })
}

/// The identity the container's first process has, from its bundle's `process.user`.
fn user(engine: &Engine, id: &str) -> Option<cri::ContainerUser> {
    let config = std::fs::read(engine.dir(id).join("config.json")).ok()?;
    let spec: serde_json::Value = serde_json::from_slice(&config).ok()?;
    let u = &spec["process"]["user"];
    let gid = u["gid"].as_i64()?;
    let mut groups: Vec<i64> = u["additionalGids"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_i64).collect())
        .unwrap_or_default();
    // The kernel's view: the process's own group is one of its groups.
    if !groups.contains(&gid) {
        groups.insert(0, gid);
    }
    Some(cri::ContainerUser {
        linux: Some(cri::LinuxContainerUser {
            uid: u["uid"].as_i64()?,
            gid,
            supplemental_groups: groups,
        }),
    })
}

/// `ListContainers`, filtered by id (or prefix), sandbox, state and labels.
pub fn list(engine: &Engine, f: Option<&cri::ContainerFilter>) -> Result<Vec<cri::Container>, Status> {
    let mut out = Vec::new();
    for r in engine.all().map_err(engine_status)? {
        let Some(m) = meta::container(engine, &r.id) else {
            continue;
        };
        let state = state_of(&engine.state(&r.id));
        if let Some(f) = f {
            if !f.id.is_empty() && !r.id.starts_with(&f.id) {
                continue;
            }
            if !f.pod_sandbox_id.is_empty() && !m.sandbox_id.starts_with(&f.pod_sandbox_id) {
                continue;
            }
            if f.state.as_ref().is_some_and(|v| v.state != state as i32) {
                continue;
            }
            if !meta::selected(&m.labels, &f.label_selector) {
                continue;
            }
        }
        out.push(cri::Container {
            id: r.id.clone(),
            pod_sandbox_id: m.sandbox_id.clone(),
            metadata: Some(m.metadata.clone()),
            image: Some(m.image.clone()),
            image_ref: r.image_id.clone(),
            image_id: r.image_id.clone(),
            state: state as i32,
            created_at: nanos(&r.created),
            labels: m.labels.clone(),
            annotations: m.annotations.clone(),
        });
    }
    Ok(out)
}

/// `ReopenContainerLog`: the monitor opens the log at its path again.
pub fn reopen_log(engine: &Engine, id: &str) -> Result<(), Status> {
    let (r, _) = get(engine, id)?;
    if !engine.state(&r.id).running() {
        return Err(Status::failed_precondition(format!(
            "container {} is not running",
            r.id
        )));
    }
    berth_engine::ops::reopen_cri_log(engine, &r.id).map_err(engine_status)
}

/// `UpdateContainerResources`: the limits the engine's `update` takes.
pub fn update(engine: &Engine, req: &cri::UpdateContainerResourcesRequest) -> Result<(), Status> {
    let (r, _) = get(engine, &req.container_id)?;
    let Some(l) = &req.linux else { return Ok(()) };
    let quota = if l.cpu_quota > 0 {
        let period = if l.cpu_period > 0 { l.cpu_period } else { 100_000 };
        Some(l.cpu_quota.saturating_mul(100_000) / period)
    } else {
        None
    };
    let u = berth_engine::ops::Update {
        memory: Some(l.memory_limit_in_bytes).filter(|m| *m > 0),
        cpu_quota: quota,
        cpu_shares: u64::try_from(l.cpu_shares).ok().filter(|s| *s > 0),
        cpuset_cpus: Some(l.cpuset_cpus.clone()).filter(|c| !c.is_empty()),
        cpuset_mems: Some(l.cpuset_mems.clone()).filter(|c| !c.is_empty()),
        hugepage_limits: Some(hugepages(&l.hugepage_limits)?).filter(|h| !h.is_empty()),
        unified: Some(l.unified.clone().into_iter().collect())
            .filter(|u: &std::collections::BTreeMap<_, _>| !u.is_empty()),
        ..Default::default()
    };
    berth_engine::ops::update(engine, &r.id, &u).map_err(engine_status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugepage_sizes_are_the_cgroup_files_names() {
        let l = |s: &str| cri::HugepageLimit {
            page_size: s.into(),
            limit: 1 << 21,
        };
        let got = hugepages(&[l("2MB"), l("1GB")]).unwrap();
        assert_eq!(got.get("2MB"), Some(&(1 << 21)));
        assert_eq!(got.len(), 2);
        for bad in ["2M", "MB", "2XB", "../2MB", ""] {
            assert!(hugepages(&[l(bad)]).is_err(), "{bad}");
        }
    }
}
