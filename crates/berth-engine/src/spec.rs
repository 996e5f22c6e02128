//! Image config + `run` options -> a container: the merged command, environment, user and
//! the OCI `config.json` berth-runtime gets, with Docker's defaults (its capability set,
//! masked paths, `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` bind-mounted from the
//! container directory).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

pub use crate::model::DeviceMapping;
use crate::store::Record;
pub use crate::users::resolve_user;
use crate::{EngineError, Result};

/// Docker's default capabilities.
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability, for `--privileged` and `--cap-add ALL`.
pub const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Normalises a capability name as Docker accepts it (`net_admin`, `NET_ADMIN`, `CAP_NET_ADMIN`).
pub fn cap_name(c: &str) -> Result<String> {
    let up = c.to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(EngineError::Invalid(format!("invalid capability: {c}")))
    }
}

/// The capabilities berth itself holds (its bounding set): "all" can mean no more.
fn host_caps() -> Vec<String> {
    let bnd = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("CapBnd:"))
                .and_then(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        })
        .unwrap_or(u64::MAX);
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(i, _)| bnd & (1u64 << i) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// The capability set: Docker's defaults, then `--cap-add`, then `--cap-drop`.
pub fn capabilities(r: &Record) -> Vec<String> {
    let mut caps: Vec<String> = if r.privileged || r.cap_add.iter().any(|c| c == "ALL") {
        host_caps()
    } else {
        DEFAULT_CAPS.iter().map(|c| c.to_string()).collect()
    };
    for c in &r.cap_add {
        if c != "ALL" && !caps.contains(c) {
            caps.push(c.clone());
        }
    }
    if r.cap_drop.iter().any(|c| c == "ALL") {
        caps.retain(|c| r.cap_add.contains(c));
    } else {
        caps.retain(|c| !r.cap_drop.contains(c));
    }
    caps
}

/// Syscalls the default seccomp profile refuses (EPERM): kernel modules, reboot, clocks,
/// keyrings, kexec, BPF, perf, mounts and namespaces (unless CAP_SYS_ADMIN was granted), the
/// handle-based opens of the shocker escape, and the like. Everything else is allowed.
const BLOCKED: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "perf_event_open",
    "process_vm_readv",
    "process_vm_writev",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "settimeofday",
    "stime",
    "swapon",
    "swapoff",
    "sysfs",
    "_sysctl",
    "syslog",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
];

/// Also refused without CAP_SYS_ADMIN.
const ADMIN_ONLY: &[&str] = &[
    "mount",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "umount",
    "umount2",
    "pivot_root",
    "setns",
    "unshare",
];

/// berth's default seccomp profile (see [`BLOCKED`]); `clone` may not create namespaces and
/// `clone3` answers ENOSYS so libc falls back to `clone`, both as in Docker's profile.
pub fn default_seccomp(caps: &[String]) -> Value {
    let admin = caps.iter().any(|c| c == "CAP_SYS_ADMIN");
    let mut names: Vec<&str> = BLOCKED.to_vec();
    if !admin {
        names.extend(ADMIN_ONLY);
    }
    let mut syscalls = vec![json!({"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": 1})];
    if !admin {
        syscalls.push(json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}));
        for flag in [
            0x0002_0000u64,
            0x0200_0000,
            0x0400_0000,
            0x0800_0000,
            0x1000_0000,
            0x2000_0000,
            0x4000_0000,
        ] {
            syscalls.push(json!({
                "names": ["clone"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 1,
                "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}]
            }));
        }
    }
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "syscalls": syscalls,
    })
}

/// The default PATH when neither image nor user sets one.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Merges environments Docker's way: later keys replace earlier ones, order kept.
pub fn merge_env(base: &[String], over: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in base.iter().chain(over) {
        let key = e.split('=').next().unwrap_or("");
        out.retain(|x| x.split('=').next().unwrap_or("") != key);
        out.push(e.clone());
    }
    out
}

/// The entrypoint and cmd a container keeps, and the full command line they make.
pub type Command = (Option<Vec<String>>, Option<Vec<String>>, Vec<String>);

/// The command: `--entrypoint` replaces the image's entrypoint and drops its cmd; trailing
/// args replace the cmd.
pub fn command(
    image_entrypoint: Option<Vec<String>>,
    image_cmd: Option<Vec<String>>,
    entrypoint: Option<&[String]>,
    args: &[String],
) -> Result<Command> {
    let ep = match entrypoint {
        Some([]) => None,
        Some(e) => Some(e.to_vec()),
        None => image_entrypoint,
    };
    let cmd = if !args.is_empty() {
        Some(args.to_vec())
    } else if entrypoint.is_some() {
        None
    } else {
        image_cmd
    };
    let mut full: Vec<String> = ep.clone().unwrap_or_default();
    full.extend(cmd.clone().unwrap_or_default());
    if full.is_empty() {
        return Err(EngineError::Invalid("no command specified".into()));
    }
    Ok((ep, cmd, full))
}

impl DeviceMapping {
    /// Parses `HOST[:CONTAINER[:PERMS]]` (Docker's `--device`; `HOST:PERMS` too).
    pub fn parse(spec: &str) -> Result<DeviceMapping> {
        let bad = || EngineError::Invalid(format!("invalid device specification: {spec}"));
        let perms_ok = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
        let parts: Vec<&str> = spec.split(':').collect();
        let (host, container, perms) = match parts.as_slice() {
            [h] => (*h, *h, "rwm"),
            [h, p] if perms_ok(p) => (*h, *h, *p),
            [h, c] => (*h, *c, "rwm"),
            [h, c, p] if perms_ok(p) => (*h, *c, *p),
            _ => return Err(bad()),
        };
        DeviceMapping {
            host: host.to_string(),
            container: container.to_string(),
            perms: perms.to_string(),
        }
        .checked()
        .map_err(|_| bad())
    }

    /// The mapping, once its paths are absolute and its permissions some of `rwm` (an
    /// empty container path is the host's, empty permissions all of them).
    pub fn checked(&self) -> Result<DeviceMapping> {
        let mut d = self.clone();
        if d.container.is_empty() {
            d.container = d.host.clone();
        }
        if d.perms.is_empty() {
            d.perms = "rwm".into();
        }
        if !d.host.starts_with('/') || !d.container.starts_with('/') {
            return Err(EngineError::Invalid(format!(
                "invalid device mapping {}:{}: paths must be absolute",
                d.host, d.container
            )));
        }
        if !d.perms.chars().all(|c| "rwm".contains(c)) {
            return Err(EngineError::Invalid(format!(
                "invalid device mode {:?}: some of r, w and m",
                d.perms
            )));
        }
        Ok(d)
    }
}

/// A device node to make in the container: (container path, `c` or `b`, major, minor,
/// permission bits, cgroup permissions).
type DeviceNode = (String, char, u64, u64, u32, String);

/// The device nodes of a container's `--device`s, from the host's (a directory gives
/// every device under it, as Docker does).
pub fn device_nodes(r: &Record) -> Result<Vec<DeviceNode>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    for d in &r.devices {
        let gather = |e: std::io::Error| {
            EngineError::Invalid(format!(
                "error gathering device information while adding custom device \"{}\": {e}",
                d.host
            ))
        };
        let md = std::fs::metadata(&d.host).map_err(gather)?;
        let mut todo = vec![(PathBuf::from(&d.host), md)];
        while let Some((p, md)) = todo.pop() {
            let ft = md.file_type();
            if ft.is_dir() {
                for e in std::fs::read_dir(&p).map_err(gather)?.flatten() {
                    if let Ok(m) = std::fs::metadata(e.path()) {
                        todo.push((e.path(), m));
                    }
                }
                continue;
            }
            let kind = if ft.is_char_device() {
                'c'
            } else if ft.is_block_device() {
                'b'
            } else if p == Path::new(&d.host) {
                return Err(EngineError::Invalid(format!("{} is not a device node", d.host)));
            } else {
                continue;
            };
            let rel = p.strip_prefix(&d.host).unwrap_or(Path::new(""));
            let target = if rel.as_os_str().is_empty() {
                d.container.clone()
            } else {
                Path::new(&d.container).join(rel).display().to_string()
            };
            let rdev = md.rdev();
            out.push((
                target,
                kind,
                nix::sys::stat::major(rdev),
                nix::sys::stat::minor(rdev),
                md.mode() & 0o7777,
                d.perms.clone(),
            ));
        }
    }
    Ok(out)
}

/// The container's `linux.resources`: its limits, and no device access beyond the
/// spec's device list.
pub fn resources(r: &Record) -> Value {
    // Docker's defaults: nothing, then mknod of any device (using one still needs a rule).
    let mut rules = vec![
        json!({"allow": false, "access": "rwm"}),
        json!({"allow": true, "type": "c", "access": "m"}),
        json!({"allow": true, "type": "b", "access": "m"}),
    ];
    // `--device`s (a device that has gone since the create is left out here; the create
    // itself refuses a missing one).
    for (_, kind, major, minor, _, perms) in device_nodes(r).unwrap_or_default() {
        rules.push(json!({"allow": true, "type": kind.to_string(), "major": major, "minor": minor, "access": perms}));
    }
    let mut resources = json!({ "devices": rules });
    if r.memory > 0 {
        resources["memory"] = json!({"limit": r.memory});
    }
    if r.memory_reservation > 0 {
        resources["memory"]["reservation"] = json!(r.memory_reservation);
    }
    if r.memory_swap != 0 {
        resources["memory"]["swap"] = json!(r.memory_swap);
    }
    if r.cpu_quota > 0 {
        resources["cpu"]["quota"] = json!(r.cpu_quota);
        resources["cpu"]["period"] = json!(100_000u64);
    }
    if r.cpu_shares > 0 {
        resources["cpu"]["shares"] = json!(r.cpu_shares);
    }
    if !r.cpuset_cpus.is_empty() {
        resources["cpu"]["cpus"] = json!(r.cpuset_cpus);
    }
    if !r.cpuset_mems.is_empty() {
        resources["cpu"]["mems"] = json!(r.cpuset_mems);
    }
    if !r.hugepage_limits.is_empty() {
        resources["hugepageLimits"] = json!(r
            .hugepage_limits
            .iter()
            .map(|(size, limit)| json!({"pageSize": size, "limit": limit}))
            .collect::<Vec<_>>());
    }
    if !r.unified.is_empty() {
        resources["unified"] = json!(r.unified);
    }
    if r.pids_limit > 0 {
        resources["pids"] = json!({"limit": r.pids_limit});
    }
    resources
}

/// The bundle's `config.json` for a container whose rootfs is mounted at `rootfs`.
pub fn oci_spec(r: &Record, rootfs: &Path, dir: &Path, lowers: &[PathBuf], data_root: &Path) -> Result<Value> {
    let (uid, gid, extra) = resolve_user(&r.user, lowers)?;
    let extra = crate::users::additional_groups(r, lowers, gid, extra)?;
    let mut args = vec![r.path.clone()];
    args.extend(r.args.iter().cloned());
    let mut namespaces = vec![json!({"type": "mount"})];
    if !r.uid_map.is_empty() {
        namespaces.push(json!({"type": "user"}));
    }
    // Another container's namespace is pointed at when the monitor starts this one.
    for (ty, mode) in [("pid", &r.pid_mode), ("ipc", &r.ipc_mode), ("uts", &r.uts_mode)] {
        match mode.as_str() {
            "host" => {}
            m if m.starts_with("container:") => namespaces.push(json!({"type": ty, "path": ""})),
            _ => namespaces.push(json!({"type": ty})),
        }
    }
    match r.network() {
        crate::model::NetworkMode::Host => {}
        crate::model::NetworkMode::None => namespaces.push(json!({"type": "network"})),
        // Another container's: its namespace file (bridge), or its init's; the monitor
        // points this at the right one when it starts the container.
        crate::model::NetworkMode::Container(_) => namespaces.push(json!({"type": "network", "path": ""})),
        // A namespace someone else made and wired (a CRI sandbox's CNI plugins).
        crate::model::NetworkMode::Path(p) => namespaces.push(json!({"type": "network", "path": p})),
        // A bridge network: the namespace the monitor made and wired before the start.
        _ => namespaces.push(json!({"type": "network", "path": crate::store::run_dir(data_root).join("netns").join(&r.id).display().to_string()})),
    }
    let resources = resources(r);
    let bind = |src: PathBuf, dst: &str| json!({"destination": dst, "type": "bind", "source": src.display().to_string(), "options": ["rbind", "rprivate"]});
    let cwd = if r.working_dir.is_empty() {
        "/".to_string()
    } else {
        r.working_dir.clone()
    };
    let caps = capabilities(r);
    let mut user_mounts = Vec::new();
    for m in &r.mounts {
        let ro = if m.read_only { vec!["ro"] } else { vec![] };
        match m.kind.as_str() {
            // Resolved at create: its options hold the image's layers (`lowerdir=`).
            "image" => {
                let lowers = m.options.iter().find_map(|o| o.strip_prefix("lowerdir=")).unwrap_or("");
                if lowers.contains(':') {
                    let mut opts = ["ro", "nodev", "nosuid", &format!("lowerdir={lowers}")]
                        .map(str::to_string)
                        .to_vec();
                    if berth_safepath::userns::in_user_namespace() {
                        opts.push("userxattr".into());
                    }
                    user_mounts.push(
                        json!({"destination": m.destination, "type": "overlay", "source": "overlay", "options": opts}),
                    );
                } else {
                    // One layer: overlayfs wants two lower layers without an upper one; the
                    // layer's directory, bound read-only, is the same.
                    user_mounts.push(json!({"destination": m.destination, "type": "bind", "source": lowers,
                        "options": ["rbind", "rprivate", "ro", "nodev", "nosuid"]}));
                }
            }
            "tmpfs" => {
                let mut opts: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
                opts.extend(m.options.iter().cloned());
                user_mounts
                    .push(json!({"destination": m.destination, "type": "tmpfs", "source": "tmpfs", "options": opts}));
            }
            kind => {
                let src = if kind == "volume" {
                    data_root.join("volumes").join(&m.source).join("_data")
                } else {
                    PathBuf::from(&m.source)
                };
                let mut opts = vec!["rbind", crate::volumes::propagation(m)];
                // Recursive read-only (the kernel's mount_setattr) takes in the mounts below.
                if m.read_only && m.options.iter().any(|o| o == "rro") {
                    opts.push("rro");
                } else {
                    opts.extend(ro);
                }
                user_mounts.push(json!({"destination": m.destination, "type": "bind", "source": src.display().to_string(), "options": opts}));
            }
        }
    }
    let mut spec = json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": r.tty,
            "user": {"uid": uid, "gid": gid, "additionalGids": extra},
            "args": args,
            "env": r.env,
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": r.no_new_privileges,
            "oomScoreAdj": r.oom_score_adj
        },
        "root": {"path": rootfs.display().to_string(), "readonly": r.read_only},
        "hostname": if r.uts_mode.is_empty() { Some(&r.hostname) } else { None },
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]},
            bind(dir.join("resolv.conf"), "/etc/resolv.conf"),
            bind(dir.join("hostname"), "/etc/hostname"),
            bind(dir.join("hosts"), "/etc/hosts")
        ],
        "linux": {
            "cgroupsPath": crate::rootless::cgroups_path(r),
            "resources": resources,
            "namespaces": namespaces,
            "maskedPaths": masked_paths(r),
            "readonlyPaths": readonly_paths(r)
        }
    });
    if let Some(ms) = spec["mounts"].as_array_mut() {
        ms.extend(user_mounts);
    }
    if !r.uid_map.is_empty() {
        spec["linux"]["uidMappings"] = crate::userns::spec_json(&r.uid_map);
        spec["linux"]["gidMappings"] = crate::userns::spec_json(&r.gid_map);
    }
    // A shared or slave bind needs the container's root to pass mounts on too (Docker's
    // rule): shared if any is shared, else slave.
    let props: Vec<&str> = r.mounts.iter().map(crate::volumes::propagation).collect();
    if props.iter().any(|p| p.ends_with("shared")) {
        spec["linux"]["rootfsPropagation"] = json!("rshared");
    } else if props.iter().any(|p| p.ends_with("slave")) {
        spec["linux"]["rootfsPropagation"] = json!("rslave");
    }
    if !r.sysctls.is_empty() {
        spec["linux"]["sysctl"] = json!(r.sysctls);
    }
    // The nodes; their cgroup rules are in `resources`.
    let nodes = device_nodes(r)?;
    if !nodes.is_empty() {
        spec["linux"]["devices"] = json!(nodes
            .iter()
            .map(|(path, kind, major, minor, mode, _)| json!({"path": path, "type": kind.to_string(), "major": major, "minor": minor, "fileMode": mode, "uid": 0, "gid": 0}))
            .collect::<Vec<_>>());
    }
    // CDI devices: their nodes, cgroup rules, mounts, env and hooks.
    if !r.cdi_devices.is_empty() {
        crate::cdi::Registry::load().apply(&mut spec, &r.cdi_devices)?;
    }
    // The record's own first: berth's (`run.berth.*`) are set over them below.
    if !r.annotations.is_empty() {
        spec["annotations"] = json!(r.annotations);
    }
    if r.infra {
        spec["annotations"][berth_runtime::minit::PAUSE_ANNOTATION] = json!("true");
    } else if r.init {
        if r.runtime.is_empty() {
            spec["annotations"][berth_runtime::minit::ANNOTATION] = json!("true");
        } else {
            // An external runtime runs this binary, mounted read-only, as PID 1.
            let exe = std::env::current_exe()
                .map_err(|e| EngineError::Invalid(format!("finding the berth binary for --init: {e}")))?;
            if !is_static(&exe) {
                return Err(EngineError::Invalid(format!(
                    "--init with --runtime {} needs a statically linked berth (scripts/build.sh); {} is dynamic",
                    r.runtime,
                    exe.display()
                )));
            }
            if let Some(ms) = spec["mounts"].as_array_mut() {
                ms.push(json!({"destination": berth_runtime::minit::PATH, "type": "bind",
                    "source": exe.display().to_string(), "options": ["bind", "ro", "nosuid", "nodev"]}));
            }
            let mut a = vec![json!(berth_runtime::minit::PATH), json!("--")];
            a.extend(spec["process"]["args"].as_array().cloned().unwrap_or_default());
            spec["process"]["args"] = json!(a);
        }
    }
    if !r.ulimits.is_empty() {
        spec["process"]["rlimits"] = json!(r
            .ulimits
            .iter()
            .map(|(n, soft, hard)| json!({"type": format!("RLIMIT_{}", n.to_ascii_uppercase()), "soft": soft, "hard": hard}))
            .collect::<Vec<_>>());
    }
    if r.privileged {
        // Docker's --privileged: every capability, no seccomp, no masked or read-only
        // /proc paths (masked_paths), every device allowed, /sys writable.
        spec["linux"]["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
        if let Some(ms) = spec["mounts"].as_array_mut() {
            for m in ms.iter_mut() {
                if m["destination"] == "/sys" {
                    m["options"] = json!(["nosuid", "noexec", "nodev"]);
                }
            }
        }
    } else if r.seccomp.is_empty() {
        spec["linux"]["seccomp"] = default_seccomp(&caps);
    } else if r.seccomp != "unconfined" {
        let profile: Value = serde_json::from_str(&r.seccomp)
            .map_err(|e| EngineError::Invalid(format!("decoding seccomp profile failed: {e}")))?;
        spec["linux"]["seccomp"] = profile;
    }
    Ok(spec)
}

/// The paths masked by default, as Docker's.
const DEFAULT_MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// The paths read-only by default, as Docker's.
const DEFAULT_READONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// A container's masked paths: its own, the defaults, or none when privileged.
pub fn masked_paths(r: &Record) -> Vec<String> {
    match &r.masked_paths {
        Some(p) => p.clone(),
        None if r.privileged => Vec::new(),
        None => DEFAULT_MASKED_PATHS.iter().map(|p| (*p).to_string()).collect(),
    }
}

/// A container's read-only paths: its own, the defaults, or none when privileged.
pub fn readonly_paths(r: &Record) -> Vec<String> {
    match &r.readonly_paths {
        Some(p) => p.clone(),
        None if r.privileged => Vec::new(),
        None => DEFAULT_READONLY_PATHS.iter().map(|p| (*p).to_string()).collect(),
    }
}

/// Whether an ELF binary needs no dynamic loader (no `PT_INTERP` program header).
fn is_static(exe: &Path) -> bool {
    let Ok(b) = std::fs::read(exe) else { return false };
    let u16_at = |o: usize| b.get(o..o + 2).map(|x| u16::from_le_bytes([x[0], x[1]]) as usize);
    let u64_at = |o: usize| {
        b.get(o..o + 8)
            .and_then(|x| <[u8; 8]>::try_from(x).ok())
            .and_then(|x| usize::try_from(u64::from_le_bytes(x)).ok())
    };
    // 64-bit little-endian ELF only (the hosts berth builds for).
    if b.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return false;
    }
    let (Some(phoff), Some(size), Some(count)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    (0..count).all(|i| {
        let ty = b.get(phoff + i * size..phoff + i * size + 4);
        ty != Some([3u8, 0, 0, 0].as_slice())
    })
}

/// Parses Docker's memory sizes: `512`, `64k`, `100m`, `1g` (binary units, `b` optional).
pub fn parse_size(s: &str) -> Result<i64> {
    berth_oci::units::parse_size(s).ok_or_else(|| EngineError::Invalid(format!("invalid size: '{s}'")))
}

/// Parses `--cpus` as the docker CLI does (a decimal number, as a rational: `NaN` and
/// `inf` are not numbers), refusing more precision than nanoseconds of CPU.
pub fn parse_cpus(s: &str) -> Result<f64> {
    let t = s.trim();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if digits.is_empty()
        || digits == "."
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(EngineError::Invalid(format!(
            "failed to parse {s} as a rational number"
        )));
    }
    if frac.trim_end_matches('0').len() > 9 {
        return Err(EngineError::Invalid("value is too precise".into()));
    }
    t.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| EngineError::Invalid(format!("failed to parse {s} as a rational number")))
}

/// Checks a CPU count against the host's, with dockerd's message.
pub fn check_cpus(cpus: f64) -> Result<()> {
    let n = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    #[allow(clippy::cast_precision_loss)]
    let max = n as f64;
    if cpus.is_nan() || cpus < 0.0 || (cpus > 0.0 && cpus < 0.01) || cpus > max {
        return Err(EngineError::Invalid(format!(
            "Range of CPUs is from 0.01 to {max:.2}, as there are only {n} CPUs available"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_parse_as_rationals() {
        assert_eq!(parse_cpus("1.5").unwrap(), 1.5);
        assert_eq!(parse_cpus("0.000000001").unwrap(), 1e-9);
        for bad in ["NaN", "nan", "inf", "-inf", "", ".", "1e3", "one"] {
            let e = parse_cpus(bad).unwrap_err().to_string();
            assert!(e.contains("as a rational number"), "{bad}: {e}");
        }
        assert!(parse_cpus("0.0000000001")
            .unwrap_err()
            .to_string()
            .contains("too precise"));
        check_cpus(0.0).unwrap();
        check_cpus(1.0).unwrap();
        check_cpus(f64::NAN).unwrap_err();
        check_cpus(-1.0).unwrap_err();
        assert!(check_cpus(100_000.0)
            .unwrap_err()
            .to_string()
            .starts_with("Range of CPUs is from 0.01 to"));
    }

    #[test]
    fn commands_merge_like_docker() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (_, _, full) = command(Some(v(&["/ep"])), Some(v(&["a"])), None, &[]).unwrap();
        assert_eq!(full, v(&["/ep", "a"]));
        let (_, _, full) = command(Some(v(&["/ep"])), Some(v(&["a"])), None, &v(&["b"])).unwrap();
        assert_eq!(full, v(&["/ep", "b"]));
        let (_, _, full) = command(Some(v(&["/ep"])), Some(v(&["a"])), Some(&v(&["/x"])), &[]).unwrap();
        assert_eq!(full, v(&["/x"]));
        let (_, _, full) = command(Some(v(&["/ep"])), None, Some(&[]), &v(&["sh"])).unwrap();
        assert_eq!(full, v(&["sh"]));
        command(None, None, None, &[]).unwrap_err();
        assert_eq!(merge_env(&v(&["A=1", "B=2"]), &v(&["A=3"])), v(&["B=2", "A=3"]));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("10KB").unwrap(), 10 << 10);
        parse_size("lots").unwrap_err();
        parse_size("-1m").unwrap_err();
    }
}
