//! Cgroup managers on this host's real hierarchies: v1 (pure or hybrid) and v2 (pure, or the
//! hybrid host's `unified` mount, where the freezer and the eBPF device filter work without
//! any controller).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use berth_oci::oci_spec::runtime::LinuxResources;
use berth_runtime::cgroups::{host_layout, CgroupConfig, Layout};
use berth_testutil::{require_root, unique_name};

/// Removes the cgroup (killing what is left in it) even if the test panicked.
struct CgGuard(CgroupConfig, Vec<Child>);

impl Drop for CgGuard {
    fn drop(&mut self) {
        for c in &mut self.1 {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.0.freeze(false);
        let _ = self.0.destroy();
    }
}

/// Spawns `sh -c script` already inside the cgroup directories (it moves itself before exec).
fn spawn_in(dirs: Vec<PathBuf>, script: &str) -> Child {
    let mut c = Command::new("/bin/sh");
    c.args(["-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The harness is multi-threaded: the child of fork may only make async-signal-safe calls,
    // so the paths are made here and the child uses open/write/close alone.
    let paths: Vec<std::ffi::CString> = dirs
        .iter()
        .map(|d| std::ffi::CString::new(d.join("cgroup.procs").into_os_string().into_encoded_bytes()).unwrap())
        .collect();
    // SAFETY: open, write and close are async-signal-safe; the CStrings outlive the spawn.
    unsafe {
        c.pre_exec(move || {
            for p in &paths {
                let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
            }
            Ok(())
        });
    }
    c.spawn().expect("spawning sh")
}

fn v2_dir() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        if !post.starts_with("cgroup2 ") {
            return None;
        }
        pre.split(' ').nth(4).map(PathBuf::from)
    })
}

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

#[test]
fn v1_limits_freezer_pids_and_stats() {
    require_root!();
    let Layout::V1(mounts) = host_layout().unwrap() else {
        eprintln!("SKIP v1_limits_freezer_pids_and_stats: this host is pure cgroup v2");
        return;
    };
    let name = unique_name("cg-v1");
    let cg = CgroupConfig::resolve(
        &Layout::V1(mounts.clone()),
        Path::new(&format!("/{name}")),
        &Default::default(),
    );
    let mut g = CgGuard(cg.clone(), Vec::new());
    cg.create().unwrap();
    cg.set(&res(r#"{"memory":{"limit":67108864,"reservation":33554432},"cpu":{"shares":256,"quota":20000,"period":100000},"pids":{"limit":7}}"#)).unwrap();
    let rd = |c: &str, f: &str| {
        std::fs::read_to_string(cg.dir_of(c).unwrap().join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(rd("memory", "memory.limit_in_bytes"), "67108864");
    assert_eq!(rd("memory", "memory.soft_limit_in_bytes"), "33554432");
    assert_eq!(rd("cpu", "cpu.shares"), "256");
    assert_eq!(rd("cpu", "cpu.cfs_quota_us"), "20000");
    assert_eq!(rd("pids", "pids.max"), "7");
    // cpuset was seeded from the parent, or joining would fail.
    assert!(!rd("cpuset", "cpuset.cpus").is_empty());
    let child = spawn_in(cg.dirs(), "exec sleep 100");
    let pid = i32::try_from(child.id()).unwrap();
    g.1.push(child);
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(cg.pids().unwrap(), vec![pid]);
    cg.freeze(true).unwrap();
    assert!(cg.is_frozen());
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    assert!(stat.contains(") D ") || stat.contains(") S "), "{stat}");
    cg.freeze(false).unwrap();
    assert!(!cg.is_frozen());
    let s = cg.stats();
    assert_eq!(s["pids"]["current"], 1);
    assert_eq!(s["pids"]["limit"], 7);
    assert!(s["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
    // Bad values are refused with the file named.
    let e = cg
        .set(&res(r#"{"memory":{"swappiness":500}}"#))
        .unwrap_err()
        .to_string();
    assert!(e.contains("swappiness"), "{e}");
    drop(g);
    assert!(!cg.dir_of("pids").unwrap().exists(), "cgroup left behind");
}

#[test]
fn v2_freezer_and_device_filter() {
    require_root!();
    let Some(mount) = v2_dir() else {
        if berth_testutil::unmet("v2_freezer_and_device_filter", "no cgroup2 hierarchy mounted") {
            return;
        }
        return;
    };
    let name = unique_name("cg-v2");
    let cg = CgroupConfig::resolve(&Layout::V2(mount), Path::new(&format!("/{name}")), &Default::default());
    let mut g = CgGuard(cg.clone(), Vec::new());
    cg.create().unwrap();
    // Deny everything but /dev/zero reads: /dev/null becomes unopenable for members.
    cg.set(&res(
        r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":5,"access":"r"}]}"#,
    ))
    .unwrap();
    let child = spawn_in(cg.dirs(), "head -c 3 /dev/zero | wc -c; cat /dev/null 2>&1 || echo null-denied; echo x > /dev/zero || echo zero-write-denied");
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.starts_with("3\n"), "{text}");
    assert!(
        text.contains("null-denied") && text.contains("Operation not permitted"),
        "{text}"
    );
    assert!(text.contains("zero-write-denied"), "{text}");
    let sleeper = spawn_in(cg.dirs(), "exec sleep 100");
    let pid = i32::try_from(sleeper.id()).unwrap();
    g.1.push(sleeper);
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(cg.pids().unwrap(), vec![pid]);
    cg.freeze(true).unwrap();
    assert!(cg.is_frozen());
    cg.freeze(false).unwrap();
    assert!(!cg.is_frozen());
    drop(g);
    assert!(!cg.dirs()[0].exists(), "cgroup left behind");
}
