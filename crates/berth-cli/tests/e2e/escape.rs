//! The classic runtime escapes must fail safely: symlinked mount targets (the runc CVE class),
//! writing the runtime binary through /proc (CVE-2019-5736), inherited descriptors and a
//! host cwd (CVE-2024-21626), and hostile ids and configs that must leave nothing behind.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;

use berth_testutil::{require_root, unique_name, Bundle};
use serde_json::json;

use crate::{eqnice, Rt};

#[test]
fn symlinked_mount_target_stays_inside_rootfs() {
    require_root!();
    let rt = Rt::new("esc_symlink");
    let mut b = Bundle::new(
        "esc_symlink",
        &["sh", "-c", "ls -d /escape-* /etc/escape-*; cat /etc/escape-*/probe"],
    );
    let name = unique_name("escape");
    std::os::unix::fs::symlink("/", b.rootfs().join("toroot")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc", b.rootfs().join("dotdot")).unwrap();
    let src = berth_testutil::TempDir::new("esc-src");
    std::fs::write(src.path().join("probe"), "inside").unwrap();
    let m = b.config["mounts"].as_array_mut().unwrap();
    m.push(json!({"destination": format!("/toroot/escape-{name}"), "type": "tmpfs", "source": "tmpfs"}));
    m.push(json!({"destination": format!("/dotdot/escape-{name}"), "type": "bind", "source": src.path(), "options": ["rbind"]}));
    b.write();
    let (code, out, err) = rt.run(b.path());
    assert_eq!(code, 0, "{err}");
    eqnice!(out, format!("/escape-{name}\n/etc/escape-{name}\ninside"));
    // Nothing reached the host: neither the directories nor a mount.
    assert!(!Path::new(&format!("/escape-{name}")).exists());
    assert!(!Path::new(&format!("/etc/escape-{name}")).exists());
    assert!(b.rootfs().join(format!("escape-{name}")).is_dir());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&name), "a mount leaked to the host");
}

#[test]
fn symlinked_device_path_stays_inside_rootfs() {
    require_root!();
    let rt = Rt::new("esc_dev");
    let mut b = Bundle::new("esc_dev", &["true"]);
    let name = unique_name("escdev");
    // An image whose /dev is a symlink to the host's /tmp, and no /dev tmpfs over it.
    std::fs::remove_dir(b.rootfs().join("dev")).unwrap();
    std::os::unix::fs::symlink("/tmp", b.rootfs().join("dev")).unwrap();
    b.config["mounts"] = json!([{"destination": "/proc", "type": "proc", "source": "proc"}]);
    b.config["linux"]["devices"] =
        json!([{"path": format!("/dev/{name}"), "type": "c", "major": 1, "minor": 3, "fileMode": 438}]);
    b.config["linux"]["maskedPaths"] = json!([]);
    b.config["linux"]["readonlyPaths"] = json!([]);
    b.write();
    let _ = rt.run(b.path());
    assert!(
        !Path::new("/tmp").join(&name).exists(),
        "device node created on the host"
    );
    assert!(
        b.rootfs().join("tmp").join(&name).exists(),
        "node should land in the rootfs's /tmp"
    );
}

#[test]
fn runtime_binary_cannot_be_written_from_container() {
    require_root!();
    let rt = Rt::new("esc_exe");
    let b = Bundle::new("esc_exe", &["sleep", "1000"]);
    let id = rt.id();
    let bin = crate::berth_bin();
    let before = std::fs::read(&bin).unwrap();
    // Created, not started: the container's pid 1 is still the runtime's code.
    rt.ok_detached(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let o = rt.out(&[
        "exec",
        "--cap",
        "CAP_SYS_PTRACE",
        &id,
        "sh",
        "-c",
        "readlink /proc/1/exe; echo junk >> /proc/1/exe && echo WROTE; echo junk > /proc/1/exe && echo WROTE",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("WROTE"), "the runtime binary was writable: {out}");
    assert!(
        !out.contains(bin.to_str().unwrap()),
        "the container can see the host binary path: {out}"
    );
    // Without ptrace rights the init's /proc entries are closed altogether.
    let o = rt.out(&["exec", &id, "sh", "-c", "cat /proc/1/exe > /dev/null && echo READ"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("READ"));
    rt.ok(&["delete", "--force", &id]);
    // A container whose program is /proc/self/exe (the CVE-2019-5736 entry point) reaches
    // only the sealed copy, which cannot even be executed from inside.
    let b2 = Bundle::new("esc_exe2", &["/proc/self/exe", "--version"]);
    let (code, out, _) = rt.run(b2.path());
    assert!(code != 0 || out.starts_with("berth"), "{out}");
    assert_eq!(std::fs::read(&bin).unwrap(), before, "runtime binary changed");
}

#[test]
fn no_host_descriptors_or_cwd_reach_the_container() {
    require_root!();
    let rt = Rt::new("esc_fd");
    let b = Bundle::new(
        "esc_fd",
        &[
            "sh",
            "-c",
            // No pipe around the listing: while a pipeline runs, the shell itself briefly
            // holds the pipe's two ends, which a listing of its fds would catch.
            "ls /proc/$$/fd; echo END; pwd; ls / | grep -c bin",
        ],
    );
    let id = rt.id();
    let host_dir = std::fs::File::open("/").unwrap();
    let raw = host_dir.as_raw_fd();
    let mut c = rt.cmd(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    c.current_dir("/etc");
    // The runtime inherits an open host directory (its number does not matter; a fixed
    // number could land on std's own exec-status pipe).
    // SAFETY: fcntl in the forked child before exec touches only a descriptor.
    unsafe {
        c.pre_exec(move || {
            if libc::fcntl(raw, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let (fds, rest) = out.split_once("END\n").unwrap();
    let fds: String = fds.lines().map(|l| format!("{l} ")).collect();
    eqnice!(format!("{fds}\n{rest}"), "0 1 2 \n/\n1\n");
}

#[test]
fn cwd_through_proc_fd_is_refused() {
    require_root!();
    let rt = Rt::new("esc_cwd");
    let mut b = Bundle::new("esc_cwd", &["sh", "-c", "ls ../../../ | head -3"]);
    b.config["process"]["cwd"] = json!("/proc/self/fd/7");
    b.write();
    let host_dir = std::fs::File::open("/").unwrap();
    let raw = host_dir.as_raw_fd();
    let id = rt.id();
    let mut c = rt.cmd(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    // SAFETY: dup2 and fcntl in the forked child before exec touch only descriptors.
    unsafe {
        c.pre_exec(move || {
            libc::dup2(raw, 7);
            libc::fcntl(7, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let o = c.output().unwrap();
    assert!(
        !o.status.success(),
        "a cwd through /proc/self/fd must be refused: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(rt.ok(&["list", "-q"]).is_empty());
}

#[test]
fn hostile_input_is_refused_and_leaves_nothing() {
    require_root!();
    let rt = Rt::new("esc_input");
    let b = Bundle::new("esc_input", &["true"]);
    let bp = b.path().to_str().unwrap().to_string();
    let root = rt.root.path().to_path_buf();
    let check = |args: &[&str], want: &str| {
        let o = rt.out(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?} should fail: {err}");
        assert!(err.contains(want), "{args:?}: expected {want:?} in {err:?}");
        let left: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{args:?} left state: {left:?}");
    };
    check(&["create", "--bundle", &bp, "../evil"], "invalid container id");
    check(&["create", "--bundle", &bp, "a/b"], "invalid container id");
    check(&["create", "--bundle", &bp, ".."], "invalid container id");
    check(&["kill", "nosuch", "SIGBOGUS"], "unknown signal");
    let write = |cfg: &str| std::fs::write(b.path().join("config.json"), cfg).unwrap();
    write("{ not json");
    check(&["create", "--bundle", &bp, "c1"], "config.json");
    let mut cfg = b.config.clone();
    cfg["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "bogus"}]);
    write(&cfg.to_string());
    check(&["create", "--bundle", &bp, "c1"], "bogus");
    let mut cfg = b.config.clone();
    cfg["mounts"] = json!([{"destination": "relative/path", "type": "tmpfs", "source": "tmpfs"}]);
    write(&cfg.to_string());
    check(&["create", "--bundle", &bp, "c1"], "mounts[0].destination");
    let mut cfg = b.config.clone();
    let cg = unique_name("hostile-cg");
    cfg["linux"]["cgroupsPath"] = json!(format!("/{cg}"));
    cfg["mounts"] = json!([{"destination": "/x", "type": "nosuchfs", "source": "none"}]);
    write(&cfg.to_string());
    check(&["create", "--bundle", &bp, "c1"], "mounting /x");
    let mut cfg = b.config.clone();
    cfg["linux"]["cgroupsPath"] = json!("/../../escape");
    write(&cfg.to_string());
    check(&["create", "--bundle", &bp, "c1"], "..");
    for d in ["/sys/fs/cgroup", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory"] {
        assert!(!Path::new(d).join(&cg).exists(), "a cgroup was left behind in {d}");
    }
}
