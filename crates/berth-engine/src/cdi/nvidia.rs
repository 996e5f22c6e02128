//! `berth cdi generate nvidia`: a CDI spec for the NVIDIA driver installed here, as
//! nvidia-ctk writes it: one device per GPU (by index and by UUID) with its
//! `/dev/nvidiaN`, and for all of them the control nodes, the driver's user-space
//! libraries (found through the loader cache), its binaries, and a hook (berth's own)
//! that updates the container's loader cache.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{Device, DeviceNode, Edits, Hook, Mount, Spec, GPU_KIND};
use crate::{EngineError, Result};

/// Library name prefixes of the driver's user-space parts.
const LIBS: [&str; 10] = [
    "libnvidia-",
    "libcuda.so",
    "libcudadebugger.so",
    "libnvcuvid.so",
    "libnvoptix.so",
    "libGLX_nvidia.so",
    "libEGL_nvidia.so",
    "libGLESv2_nvidia.so",
    "libGLESv1_CM_nvidia.so",
    "libvdpau_nvidia.so",
];

/// The driver's binaries.
const BINS: [&str; 5] = [
    "nvidia-smi",
    "nvidia-debugdump",
    "nvidia-persistenced",
    "nvidia-cuda-mps-control",
    "nvidia-cuda-mps-server",
];

/// The libraries of the loader cache (`/etc/ld.so.cache`, glibc's 1.1 format): (name,
/// path), 64-bit ones only on x86_64.
pub fn ld_cache(data: &[u8]) -> Vec<(String, String)> {
    const MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
    let Some(base) = data.windows(MAGIC.len()).position(|w| w == MAGIC) else {
        return Vec::new();
    };
    let u32_at = |off: usize| -> Option<u32> {
        data.get(off..off + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let cstr = |off: usize| -> Option<String> {
        let rest = data.get(off..)?;
        let end = rest.iter().position(|b| *b == 0)?;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    };
    let Some(n) = u32_at(base + 20) else { return Vec::new() };
    let mut out = Vec::new();
    for i in 0..n as usize {
        let e = base + 48 + i * 24;
        let (Some(flags), Some(key), Some(value)) = (u32_at(e), u32_at(e + 4), u32_at(e + 8)) else {
            break;
        };
        // x86-64 libc6 entries only, where that is the machine.
        if cfg!(target_arch = "x86_64") && flags & 0xff00 != 0x0300 {
            continue;
        }
        if let (Some(k), Some(v)) = (cstr(base + key as usize), cstr(base + value as usize)) {
            out.push((k, v));
        }
    }
    out
}

/// What `generate` reads: where the devices and the driver's files are (`/` normally; a
/// test points them elsewhere), and the hook's program.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Root of `/dev` and `/proc/driver/nvidia`.
    pub dev_root: PathBuf,
    /// The loader cache.
    pub ld_cache: PathBuf,
    /// Directories searched for the binaries.
    pub bin_dirs: Vec<PathBuf>,
    /// The berth binary the ldcache hook runs.
    pub berth: PathBuf,
}

impl Default for Sources {
    fn default() -> Sources {
        Sources {
            dev_root: PathBuf::from("/"),
            ld_cache: PathBuf::from("/etc/ld.so.cache"),
            bin_dirs: ["/usr/bin", "/usr/local/bin", "/usr/sbin", "/bin"]
                .iter()
                .map(PathBuf::from)
                .collect(),
            berth: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/local/bin/berth")),
        }
    }
}

fn node(dev_root: &Path, path: &str) -> DeviceNode {
    DeviceNode {
        path: path.to_string(),
        host_path: Some(dev_root.join(path.trim_start_matches('/')).display().to_string()),
        ..DeviceNode::default()
    }
}

/// The GPUs' UUIDs by device minor, from `/proc/driver/nvidia/gpus/*/information`.
fn uuids(dev_root: &Path) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dev_root.join("proc/driver/nvidia/gpus")) else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path().join("information")) else {
            continue;
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim_start_matches(':').trim().to_string())
        };
        if let (Some(minor), Some(uuid)) = (field("Device Minor"), field("GPU UUID")) {
            if let Ok(m) = minor.parse() {
                out.push((m, uuid));
            }
        }
    }
    out
}

/// The spec for the driver `src` finds; an error when there is no NVIDIA device.
pub fn generate(src: &Sources) -> Result<Spec> {
    let dev = src.dev_root.join("dev");
    let mut gpus: Vec<u32> = std::fs::read_dir(&dev)
        .map_err(|e| EngineError::Invalid(format!("{}: {e}", dev.display())))?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("nvidia")?.parse().ok())
        .collect();
    gpus.sort_unstable();
    if gpus.is_empty() {
        return Err(EngineError::Invalid(format!(
            "no NVIDIA GPU found (no {}/nvidia[0-9]*): is the driver installed and loaded?",
            dev.display()
        )));
    }
    let ids = uuids(&src.dev_root);
    let mut devices = Vec::new();
    for g in &gpus {
        let edits = Edits {
            device_nodes: vec![node(&src.dev_root, &format!("/dev/nvidia{g}"))],
            ..Edits::default()
        };
        devices.push(Device {
            name: g.to_string(),
            container_edits: edits.clone(),
            ..Device::default()
        });
        if let Some((_, uuid)) = ids.iter().find(|(m, _)| m == g) {
            devices.push(Device {
                name: uuid.clone(),
                container_edits: edits,
                ..Device::default()
            });
        }
    }
    devices.push(Device {
        name: "all".into(),
        container_edits: Edits {
            device_nodes: gpus
                .iter()
                .map(|g| node(&src.dev_root, &format!("/dev/nvidia{g}")))
                .collect(),
            ..Edits::default()
        },
        ..Device::default()
    });
    let mut common = Edits::default();
    for n in ["nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset"] {
        if dev.join(n).exists() {
            common.device_nodes.push(node(&src.dev_root, &format!("/dev/{n}")));
        }
    }
    if let Ok(rd) = std::fs::read_dir(dev.join("nvidia-caps")) {
        let mut caps: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        caps.sort();
        for c in caps {
            common
                .device_nodes
                .push(node(&src.dev_root, &format!("/dev/nvidia-caps/{c}")));
        }
    }
    let ro = vec!["ro".to_string(), "nosuid".into(), "nodev".into(), "bind".into()];
    let mut folders = BTreeSet::new();
    let cache = std::fs::read(&src.ld_cache).unwrap_or_default();
    let mut seen = BTreeSet::new();
    for (name, path) in ld_cache(&cache) {
        if !LIBS.iter().any(|p| name.starts_with(p)) || !seen.insert(path.clone()) {
            continue;
        }
        // The real file, at its own path (the soname link is made by the hook's ldconfig).
        let real = std::fs::canonicalize(&path).unwrap_or_else(|_| PathBuf::from(&path));
        if let Some(dir) = real.parent() {
            folders.insert(dir.display().to_string());
        }
        common.mounts.push(Mount {
            host_path: real.display().to_string(),
            container_path: real.display().to_string(),
            options: ro.clone(),
            kind: None,
        });
    }
    common.mounts.dedup_by(|a, b| a.host_path == b.host_path);
    for b in BINS {
        if let Some(p) = src.bin_dirs.iter().map(|d| d.join(b)).find(|p| p.is_file()) {
            common.mounts.push(Mount {
                host_path: p.display().to_string(),
                container_path: p.display().to_string(),
                options: ro.clone(),
                kind: None,
            });
        }
    }
    if !folders.is_empty() {
        let mut args = vec![
            "berth".to_string(),
            "cdi".into(),
            "hook".into(),
            "update-ldcache".into(),
        ];
        for f in &folders {
            args.extend(["--folder".into(), f.clone()]);
        }
        common.hooks.push(Hook {
            hook_name: "createContainer".into(),
            path: src.berth.display().to_string(),
            args,
            ..Hook::default()
        });
    }
    Ok(Spec {
        cdi_version: "0.5.0".into(),
        kind: GPU_KIND.into(),
        devices,
        container_edits: Some(common),
        ..Spec::default()
    })
}

/// The `update-ldcache` hook: run by the runtime with the container's state on stdin, it
/// lists `folders` in the container's `/etc/ld.so.conf.d` and runs the host's `ldconfig`
/// over the container's root, so the driver's libraries mounted there are found.
pub fn update_ldcache(state: &str, folders: &[String]) -> Result<()> {
    let st: serde_json::Value = serde_json::from_str(state)
        .map_err(|e| EngineError::Invalid(format!("the container's state on stdin: {e}")))?;
    let bundle = st["bundle"].as_str().unwrap_or_default();
    let cfg_path = Path::new(bundle).join("config.json");
    let cfg: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&cfg_path).map_err(|e| EngineError::Invalid(format!("{}: {e}", cfg_path.display())))?,
    )
    .map_err(|e| EngineError::Invalid(format!("{}: {e}", cfg_path.display())))?;
    let root = cfg["root"]["path"].as_str().unwrap_or("rootfs");
    let rootfs = Path::new(bundle).join(root);
    // Inside the container's root only: the file is made through a descriptor resolved
    // in it, so a symlink in the image cannot send it elsewhere.
    let bad = |e: std::io::Error| EngineError::Invalid(format!("making /etc/ld.so.conf.d in the container: {e}"));
    let root_fd = berth_safepath::open_root(&rootfs).map_err(bad)?;
    let dir = berth_safepath::create_all(
        std::os::fd::AsFd::as_fd(&root_fd),
        Path::new("etc/ld.so.conf.d"),
        berth_safepath::Leaf::Dir,
    )
    .map_err(bad)?;
    let conf = berth_safepath::proc_fd_path(std::os::fd::AsFd::as_fd(&dir)).join("00-berth-cdi.conf");
    std::fs::write(&conf, folders.join("\n") + "\n")
        .map_err(|e| EngineError::Invalid(format!("writing the container's ld.so.conf.d: {e}")))?;
    let ldconfig = ["/sbin/ldconfig", "/usr/sbin/ldconfig", "/sbin/ldconfig.real"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if let Some(l) = ldconfig {
        let st = std::process::Command::new(l)
            .arg("-r")
            .arg(&rootfs)
            .status()
            .map_err(|e| EngineError::Invalid(format!("{l}: {e}")))?;
        if !st.success() {
            return Err(EngineError::Invalid(format!("{l} -r {}: {st}", rootfs.display())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_loader_cache_reads() {
        let Ok(data) = std::fs::read("/etc/ld.so.cache") else {
            return;
        };
        let libs = ld_cache(&data);
        assert!(
            libs.iter()
                .any(|(n, p)| n.starts_with("libc.so") && p.contains("libc.so")),
            "{libs:?}"
        );
    }

    #[test]
    fn no_gpu_is_named_and_fake_ones_make_a_spec() {
        let root = std::env::temp_dir().join(format!("berth-nvidia-unit-{}", std::process::id()));
        std::fs::create_dir_all(root.join("dev")).unwrap();
        let src = Sources {
            dev_root: root.clone(),
            ld_cache: root.join("none"),
            bin_dirs: Vec::new(),
            berth: PathBuf::from("/usr/bin/berth"),
        };
        let e = generate(&src).unwrap_err().to_string();
        assert!(e.contains("no NVIDIA GPU found"), "{e}");
        // Regular files stand in for the nodes: generate only lists them.
        for n in ["nvidia0", "nvidia1", "nvidiactl"] {
            std::fs::write(root.join("dev").join(n), "").unwrap();
        }
        std::fs::create_dir_all(root.join("proc/driver/nvidia/gpus/0000:01:00.0")).unwrap();
        std::fs::write(
            root.join("proc/driver/nvidia/gpus/0000:01:00.0/information"),
            "Model: \t\t NVIDIA H200\nGPU UUID: \t GPU-1234\nDevice Minor: \t 1\n",
        )
        .unwrap();
        let spec = generate(&src).unwrap();
        spec.check().unwrap();
        let names: Vec<&str> = spec.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["0", "1", "GPU-1234", "all"]);
        let common = spec.container_edits.unwrap();
        assert_eq!(common.device_nodes[0].path, "/dev/nvidiactl");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
