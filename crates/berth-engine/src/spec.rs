//! Image config + `run` options -> a container: the merged command, environment, user and
//! the OCI `config.json` berth-runtime gets, with Docker's defaults (its capability set,
//! masked paths, `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` bind-mounted from the
//! container directory).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::store::Record;
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
    entrypoint: Option<&str>,
    args: &[String],
) -> Result<Command> {
    let ep = match entrypoint {
        Some("") => None,
        Some(e) => Some(vec![e.to_string()]),
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

/// Finds `/etc/passwd` or `/etc/group` through the image's layers, top first.
fn image_file(lowers: &[PathBuf], rel: &str) -> Option<String> {
    for l in lowers {
        let p = l.join(rel);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
            return std::fs::read_to_string(p).ok();
        }
    }
    None
}

/// Resolves `user[:group]` (names or numbers) against the image's passwd and group files.
pub fn resolve_user(spec: &str, lowers: &[PathBuf]) -> Result<(u32, u32, Vec<u32>)> {
    if spec.is_empty() {
        return Ok((0, 0, Vec::new()));
    }
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = image_file(lowers, "etc/passwd").unwrap_or_default();
    let group = image_file(lowers, "etc/group").unwrap_or_default();
    let (uid, mut gid, name) = match u.parse::<u32>() {
        Ok(n) => {
            let entry = passwd.lines().find(|l| l.split(':').nth(2) == Some(u));
            let gid = entry.and_then(|l| l.split(':').nth(3)?.parse().ok()).unwrap_or(0);
            (n, gid, entry.and_then(|l| l.split(':').next()).map(str::to_string))
        }
        Err(_) => {
            let l = passwd.lines().find(|l| l.split(':').next() == Some(u)).ok_or_else(|| {
                EngineError::Invalid(format!("unable to find user {u}: no matching entries in passwd file"))
            })?;
            let f: Vec<&str> = l.split(':').collect();
            let uid = f.get(2).and_then(|x| x.parse().ok()).unwrap_or(0);
            let gid = f.get(3).and_then(|x| x.parse().ok()).unwrap_or(0);
            (uid, gid, Some(u.to_string()))
        }
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .lines()
                .find(|l| l.split(':').next() == Some(g))
                .and_then(|l| l.split(':').nth(2)?.parse().ok())
                .ok_or_else(|| {
                    EngineError::Invalid(format!("unable to find group {g}: no matching entries in group file"))
                })?,
        };
    }
    let mut extra = Vec::new();
    if let Some(name) = name {
        for l in group.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if f.get(3).is_some_and(|m| m.split(',').any(|x| x == name)) {
                if let Some(id) = f.get(2).and_then(|x| x.parse::<u32>().ok()) {
                    if id != gid {
                        extra.push(id);
                    }
                }
            }
        }
    }
    Ok((uid, gid, extra))
}

/// The bundle's `config.json` for a container whose rootfs is mounted at `rootfs`.
pub fn oci_spec(r: &Record, rootfs: &Path, dir: &Path, lowers: &[PathBuf], data_root: &Path) -> Result<Value> {
    let (uid, gid, extra) = resolve_user(&r.user, lowers)?;
    let mut args = vec![r.path.clone()];
    args.extend(r.args.iter().cloned());
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if r.network_mode != "host" {
        namespaces.push(json!({"type": "network"}));
    }
    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if r.memory > 0 {
        resources["memory"] = json!({"limit": r.memory});
    }
    if r.pids_limit > 0 {
        resources["pids"] = json!({"limit": r.pids_limit});
    }
    let bind = |src: PathBuf, dst: &str| json!({"destination": dst, "type": "bind", "source": src.display().to_string(), "options": ["rbind", "rprivate"]});
    let cwd = if r.working_dir.is_empty() {
        "/".to_string()
    } else {
        r.working_dir.clone()
    };
    let mut user_mounts = Vec::new();
    for m in &r.mounts {
        let ro = if m.read_only { vec!["ro"] } else { vec![] };
        match m.kind.as_str() {
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
                let mut opts = vec!["rbind", "rprivate"];
                opts.extend(ro);
                user_mounts.push(json!({"destination": m.destination, "type": "bind", "source": src.display().to_string(), "options": opts}));
            }
        }
    }
    let mut spec = json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": gid, "additionalGids": extra},
            "args": args,
            "env": r.env,
            "cwd": cwd,
            "capabilities": {"bounding": DEFAULT_CAPS, "effective": DEFAULT_CAPS, "permitted": DEFAULT_CAPS},
            "noNewPrivileges": false,
            "oomScoreAdj": 0
        },
        "root": {"path": rootfs.display().to_string(), "readonly": r.read_only},
        "hostname": r.hostname,
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
            "cgroupsPath": format!("{}/{}", if r.cgroup_parent.is_empty() { "/berth" } else { r.cgroup_parent.as_str() }, r.id),
            "resources": resources,
            "namespaces": namespaces,
            "maskedPaths": ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                "/sys/devices/virtual/powercap"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    if let Some(ms) = spec["mounts"].as_array_mut() {
        ms.extend(user_mounts);
    }
    Ok(spec)
}

/// Parses Docker's memory sizes: `512`, `64k`, `100m`, `1g` (binary units, `b` optional).
pub fn parse_size(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| EngineError::Invalid(format!("invalid size: '{s}'")))?;
    if v.is_nan() || v < 0.0 {
        return Err(EngineError::Invalid(format!("invalid size: '{s}'")));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    Ok((v * mul as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_merge_like_docker() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (_, _, full) = command(Some(v(&["/ep"])), Some(v(&["a"])), None, &[]).unwrap();
        assert_eq!(full, v(&["/ep", "a"]));
        let (_, _, full) = command(Some(v(&["/ep"])), Some(v(&["a"])), None, &v(&["b"])).unwrap();
        assert_eq!(full, v(&["/ep", "b"]));
        let (_, _, full) = command(Some(v(&["/ep"])), Some(v(&["a"])), Some("/x"), &[]).unwrap();
        assert_eq!(full, v(&["/x"]));
        let (_, _, full) = command(Some(v(&["/ep"])), None, Some(""), &v(&["sh"])).unwrap();
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
