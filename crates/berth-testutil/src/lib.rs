//! Test fixtures shared by every berth crate (dev-dependency only): capability gates that
//! skip with a reason (or fail under `BERTH_TEST_ROOT=1`), unique names with guards that
//! clean up, a busybox rootfs and OCI bundle built offline from the host's `busybox-static`,
//! and launchers for external tools.
#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where the host's static busybox lives (Debian's busybox-static).
pub const BUSYBOX: &str = "/bin/busybox";

pub mod etcd;
pub mod images;
pub mod netlab;
pub mod tars;

/// True when `BERTH_TEST_ROOT=1`: every gate must pass or the test fails.
pub fn strict() -> bool {
    std::env::var("BERTH_TEST_ROOT").is_ok_and(|v| v == "1")
}

/// Reports an unmet requirement: a failure in strict mode, else a printed skip. Returns true
/// when the test should return early.
pub fn unmet(test: &str, reason: &str) -> bool {
    if strict() {
        panic!("{test}: requirement not met under BERTH_TEST_ROOT=1: {reason}");
    }
    eprintln!("SKIP {test}: {reason}");
    true
}

/// Returns from the test unless running as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::nix_is_root() && $crate::unmet(module_path!(), "needs root") {
            return;
        }
    };
}

/// Returns from the test unless `tool` is on PATH.
#[macro_export]
macro_rules! require_tool {
    ($tool:expr) => {
        if $crate::which($tool).is_none() && $crate::unmet(module_path!(), &format!("needs {} on PATH", $tool)) {
            return;
        }
    };
}

/// Whether the effective uid is 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The gate macros call this name; re-exported so callers need no import.
#[doc(hidden)]
pub fn nix_is_root() -> bool {
    is_root()
}

/// Finds a program on PATH.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(tool)).find(|p| p.is_file())
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this process and call: `bt<pid>-<test>-<n>`.
pub fn unique_name(test: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let clean: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let clean = clean.trim_matches('-');
    let short = &clean[clean.len().saturating_sub(24)..];
    format!("bt{}-{}-{n}", std::process::id(), short.trim_start_matches('-'))
}

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `/tmp/<unique name>`.
    pub fn new(test: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique_name(test));
        std::fs::create_dir_all(&p).expect("creating temp dir");
        TempDir(p)
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes the cgroup directory `rel` (and everything below it) from every cgroup hierarchy
/// mounted on this host, deepest first; for parents that a test's daemon left behind.
pub fn remove_cgroup_everywhere(rel: &str) {
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() || rel.contains("..") {
        return;
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mounts.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        if !(post.starts_with("cgroup ") || post.starts_with("cgroup2 ")) {
            continue;
        }
        let Some(mp) = pre.split(' ').nth(4) else { continue };
        remove_tree(&Path::new(mp).join(rel));
    }
}

fn remove_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Fills `rootfs` with a minimal busybox system: /bin/busybox (a hard link, or a copy across
/// filesystems) with a link per applet, /etc/passwd and group with root and nobody, and the
/// empty directories a runtime mounts on.
pub fn busybox_rootfs(rootfs: &Path) -> std::io::Result<()> {
    for d in [
        "bin",
        "etc",
        "dev",
        "proc",
        "sys",
        "tmp",
        "root",
        "home/nobody",
        "var",
        "run",
    ] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    let bb = rootfs.join("bin/busybox");
    if std::fs::hard_link(BUSYBOX, &bb).is_err() {
        std::fs::copy(BUSYBOX, &bb)?;
    }
    let list = std::process::Command::new(BUSYBOX).arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home/nobody:/bin/sh\n",
    )?;
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\ntty:x:5:\nnobody:x:65534:\n")?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(rootfs.join("tmp"), std::fs::Permissions::from_mode(0o1777))?;
    Ok(())
}

/// An OCI bundle: `<dir>/rootfs` with busybox and `<dir>/config.json`.
#[derive(Debug)]
pub struct Bundle {
    /// The bundle directory (removed on drop).
    pub dir: TempDir,
    /// The config, edited by the test before [`Bundle::write`].
    pub config: serde_json::Value,
}

impl Bundle {
    /// A busybox bundle running `args`, with runc's default mounts and namespaces, no
    /// terminal, a writable root.
    pub fn new(test: &str, args: &[&str]) -> Bundle {
        let dir = TempDir::new(test);
        busybox_rootfs(&dir.path().join("rootfs")).expect("building busybox rootfs");
        let config = base_config(args);
        let b = Bundle { dir, config };
        b.write();
        b
    }

    /// The bundle path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The rootfs path.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Writes config.json from `self.config`.
    pub fn write(&self) {
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).expect("json"),
        )
        .expect("writing config.json");
    }
}

/// The capabilities Docker grants by default.
pub const DOCKER_CAPS: [&str; 14] = [
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

/// A config like the one dockerd generates for `docker run busybox`, minus the network.
pub fn base_config(args: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": {"bounding": DOCKER_CAPS, "effective": DOCKER_CAPS, "permitted": DOCKER_CAPS},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "berthtest",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The crate graph of DESIGN.md: which berth crates each crate may depend on (normal
    /// dependencies; berth-testutil is allowed everywhere as a dev-dependency only).
    const ALLOWED: &[(&str, &[&str])] = &[
        ("berth-oci", &[]),
        ("berth-safepath", &[]),
        ("berth-testutil", &["berth-oci"]),
        ("berth-runtime", &["berth-oci", "berth-safepath"]),
        ("berth-image", &["berth-oci", "berth-safepath"]),
        ("berth-net", &["berth-oci"]),
        (
            "berth-build",
            &["berth-oci", "berth-image", "berth-runtime", "berth-safepath"],
        ),
        (
            "berth-engine",
            &[
                "berth-oci",
                "berth-image",
                "berth-net",
                "berth-runtime",
                "berth-build",
                "berth-safepath",
            ],
        ),
        ("berth-api", &["berth-oci", "berth-engine"]),
        ("berth-cri", &["berth-oci", "berth-engine"]),
        ("berth-kube", &["berth-oci", "berth-engine"]),
        ("berth-compose", &["berth-oci", "berth-engine"]),
        (
            "berth",
            &[
                "berth-oci",
                "berth-api",
                "berth-cri",
                "berth-kube",
                "berth-compose",
                "berth-engine",
                "berth-runtime",
                "berth-image",
            ],
        ),
    ];

    #[test]
    fn crate_dependencies_follow_the_design_dag() {
        let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for entry in std::fs::read_dir(crates).unwrap() {
            let manifest = entry.unwrap().path().join("Cargo.toml");
            let Ok(text) = std::fs::read_to_string(&manifest) else {
                continue;
            };
            let name = text
                .lines()
                .find_map(|l| l.strip_prefix("name = \""))
                .map(|n| n.trim_end_matches('"').to_string())
                .unwrap();
            let allowed = ALLOWED
                .iter()
                .find(|(c, _)| *c == name)
                .map(|(_, a)| *a)
                .unwrap_or_else(|| panic!("crate {name} is not in the DAG table"));
            let mut section = "";
            for line in text.lines() {
                let line = line.trim();
                if line.starts_with('[') {
                    section = line;
                    continue;
                }
                let Some(dep) = line.split(['=', '.', ' ']).next().filter(|d| d.starts_with("berth")) else {
                    continue;
                };
                match section {
                    "[dependencies]" => assert!(allowed.contains(&dep), "{name} must not depend on {dep}"),
                    "[dev-dependencies]" => assert!(
                        dep == "berth-testutil" || allowed.contains(&dep),
                        "{name} dev-depends on {dep}"
                    ),
                    _ => {}
                }
                assert!(
                    !(section == "[dependencies]" && dep == "berth-testutil"),
                    "{name}: berth-testutil is dev-only"
                );
            }
        }
    }

    #[test]
    fn unique_names_have_prefix_and_differ() {
        let a = unique_name("some::module::test_x");
        let b = unique_name("some::module::test_x");
        assert!(a.starts_with(&format!("bt{}-", std::process::id())));
        assert_ne!(a, b);
        assert!(!a.contains(':'));
    }
}
