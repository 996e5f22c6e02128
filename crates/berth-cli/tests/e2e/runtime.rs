//! The runtime front against the real kernel: each feature of the spec, checked from inside.

use std::time::Duration;

use berth_testutil::{require_root, require_tool, Bundle};
use serde_json::json;

use crate::{eqnice, Rt};

fn sh(test: &str, script: &str) -> Bundle {
    Bundle::new(test, &["sh", "-c", script])
}

#[test]
fn run_reports_output_and_exit_code() {
    require_root!();
    let rt = Rt::new("run_exit");
    let b = sh("run_exit", "echo hello; echo oops >&2; exit 3");
    let (code, out, err) = rt.run(b.path());
    assert_eq!(code, 3, "stderr: {err}");
    eqnice!(out, "hello\n");
    assert!(err.contains("oops"));
    assert!(rt.ok(&["list", "-q"]).is_empty(), "run must delete the container");
}

#[test]
fn pid1_hostname_env_cwd_umask() {
    require_root!();
    let rt = Rt::new("pid1");
    let mut b = sh(
        "pid1",
        "echo $$; hostname; echo $FOO; pwd; umask; cat /proc/sys/kernel/domainname",
    );
    b.config["process"]["env"] = json!(["PATH=/bin", "FOO=bar"]);
    b.config["process"]["cwd"] = json!("/work/dir");
    b.config["process"]["user"]["umask"] = json!(0o027);
    b.config["domainname"] = json!("example.org");
    b.write();
    let (code, out, err) = rt.run(b.path());
    assert_eq!(code, 0, "{err}");
    eqnice!(out, "1\nberthtest\nbar\n/work/dir\n0027\nexample.org\n");
}

#[test]
fn mounts_have_their_flags_and_paths_are_masked() {
    require_root!();
    let rt = Rt::new("mounts");
    let mut b = sh(
        "mounts",
        "grep -E ' /(sys|dev|proc/sys|dev/pts|data) ' /proc/mounts | cut -d' ' -f2,4; \
         cat /proc/keys /proc/timer_list 2>&1 | wc -c; ls /sys/firmware | wc -l; \
         touch /proc/sys/x 2>/dev/null || echo procsys-ro; touch /data/f 2>/dev/null || echo data-ro",
    );
    let host = berth_testutil::TempDir::new("mounts-src");
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": host.path(), "options": ["rbind", "ro", "nosuid"]
    }));
    b.write();
    let (code, out, err) = rt.run(b.path());
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let flags = |p: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("{p} ")))
            .map(|l| l.to_string())
            .unwrap_or_default()
    };
    assert!(flags("/sys").contains("ro,nosuid,nodev,noexec"), "{out}");
    assert!(flags("/dev").contains("rw,nosuid"), "{out}");
    assert!(flags("/proc/sys").starts_with("/proc/sys ro"), "{out}");
    assert!(flags("/dev/pts").contains("noexec"), "{out}");
    assert!(flags("/data").starts_with("/data ro,nosuid"), "{out}");
    assert!(
        out.contains("\n0\n0\n"),
        "masked /proc/keys, /proc/timer_list and /sys/firmware must be empty: {out}"
    );
    assert!(out.contains("procsys-ro") && out.contains("data-ro"), "{out}");
}

#[test]
fn readonly_root_and_default_devices() {
    require_root!();
    let rt = Rt::new("roroot");
    let mut b = sh(
        "roroot",
        "touch /x 2>/dev/null || echo root-ro; echo ok > /dev/null && echo null-ok; \
         ls -l /dev/zero | cut -c1; head -c 4 /dev/zero | wc -c; readlink /dev/fd; touch /dev/shm/w && echo shm-rw",
    );
    b.config["root"]["readonly"] = json!(true);
    b.write();
    let (code, out, err) = rt.run(b.path());
    assert_eq!(code, 0, "{err}");
    eqnice!(out, "root-ro\nnull-ok\nc\n4\n/proc/self/fd\nshm-rw\n");
}

#[test]
fn capabilities_user_groups_and_rlimits() {
    require_root!();
    let rt = Rt::new("caps");
    let mut b = sh(
        "caps",
        "grep -E '^Cap(Eff|Bnd|Prm|Amb)' /proc/self/status; id; ulimit -n; cat /proc/self/oom_score_adj",
    );
    b.config["process"]["user"] = json!({"uid": 65534, "gid": 65534, "additionalGids": [5, 1234]});
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
        "effective": ["CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"]
    });
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 300}]);
    b.config["process"]["oomScoreAdj"] = json!(500);
    b.write();
    let (code, out, err) = rt.run(b.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("CapEff:\t0000000000000400"), "{out}");
    assert!(out.contains("CapPrm:\t0000000000000400"), "{out}");
    assert!(out.contains("CapAmb:\t0000000000000400"), "{out}");
    assert!(out.contains("CapBnd:\t0000000000000421"), "{out}");
    assert!(
        out.contains("uid=65534(nobody) gid=65534(nobody) groups=5(tty),1234"),
        "{out}"
    );
    assert!(out.contains("\n300\n500\n"), "{out}");
}

#[test]
fn docker_default_caps_for_root() {
    require_root!();
    let rt = Rt::new("dcaps");
    let b = sh("dcaps", "grep CapEff /proc/self/status");
    let (code, out, _) = rt.run(b.path());
    assert_eq!(code, 0);
    eqnice!(out.trim(), "CapEff:\t00000000a80425fb");
}

#[test]
fn seccomp_blocks_with_eperm_and_errno_ret() {
    require_root!();
    let rt = Rt::new("seccomp");
    let mut b = sh(
        "seccomp",
        "mkdir /tmp/a; echo mkdir=$?; ln -s x /tmp/l; echo symlink=$?; echo still-alive",
    );
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["symlink", "symlinkat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
        ]
    });
    b.write();
    let (code, out, err) = rt.run(b.path());
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("mkdir=1") && out.contains("symlink=1") && out.contains("still-alive"),
        "{out}"
    );
    assert!(err.contains("Operation not permitted"), "{err}");
    assert!(err.contains("Function not implemented"), "{err}");
}

#[test]
fn seccomp_allowlist_with_argument_conditions() {
    require_root!();
    let rt = Rt::new("seccomp2");
    // A Docker-style allow list: everything busybox needs, and personality only with 0.
    let mut b = sh(
        "seccomp2",
        "echo in; unshare -U true 2>/dev/null || echo unshare-denied",
    );
    let allow = [
        "read",
        "write",
        "openat",
        "open",
        "close",
        "fstat",
        "newfstatat",
        "stat",
        "lstat",
        "mmap",
        "mprotect",
        "munmap",
        "brk",
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "ioctl",
        "access",
        "execve",
        "exit",
        "exit_group",
        "getpid",
        "getppid",
        "getuid",
        "geteuid",
        "getgid",
        "getegid",
        "fcntl",
        "dup2",
        "dup3",
        "wait4",
        "clone",
        "fork",
        "vfork",
        "arch_prctl",
        "set_tid_address",
        "getcwd",
        "chdir",
        "uname",
        "prctl",
        "capget",
        "capset",
        "setgroups",
        "setresuid",
        "setresgid",
        "setuid",
        "setgid",
        "getrandom",
        "readlink",
        "getdents64",
        "lseek",
        "pipe",
        "pipe2",
        "poll",
        "select",
        "pselect6",
        "sigaltstack",
        "futex",
        "set_robust_list",
        "rseq",
        "prlimit64",
        "umask",
        "statx",
        "faccessat",
        "faccessat2",
        "readlinkat",
        "write",
        "writev",
        "getpgrp",
        "setpgid",
        "getpgid",
        "kill",
        "nanosleep",
        "clock_nanosleep",
        "seccomp",
        "gettid",
        "tgkill",
        "sched_getaffinity",
        "close_range",
        "execveat",
        "setsid",
        "getrlimit",
        "sysinfo",
    ];
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": allow.to_vec(), "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}
        ]
    });
    b.write();
    let (code, out, err) = rt.run(b.path());
    assert_eq!(code, 0, "{err}");
    eqnice!(out, "in\nunshare-denied\n");
}

#[test]
fn lifecycle_and_state_transitions() {
    require_root!();
    let rt = Rt::new("lifecycle");
    let b = sh("lifecycle", "read x < /dev/null; sleep 1000");
    let id = rt.id();
    let pidfile = b.path().join("pid");
    rt.ok_detached(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
    ]);
    let st = rt.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    eqnice!(std::fs::read_to_string(&pidfile).unwrap(), pid.to_string());
    assert_eq!(st["bundle"], b.path().to_str().unwrap());
    // A second create of the same id is refused.
    let o = rt.out(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    rt.ok(&["start", &id]);
    assert_eq!(rt.status(&id), "running");
    let o = rt.out(&["start", &id]);
    assert!(!o.status.success(), "second start must fail");
    let o = rt.out(&["delete", &id]);
    assert!(!o.status.success(), "delete of a running container needs --force");
    rt.ok(&["kill", &id, "KILL"]);
    let mut status = String::new();
    for _ in 0..200 {
        status = rt.status(&id);
        if status == "stopped" {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(status, "stopped");
    let o = rt.out(&["kill", &id, "TERM"]);
    assert!(!o.status.success(), "kill of a stopped container fails");
    rt.ok(&["delete", &id]);
    let o = rt.out(&["state", &id]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not exist"));
}

#[test]
fn exec_into_running_container() {
    require_root!();
    let rt = Rt::new("exec");
    let b = sh("exec", "echo started > /tmp/marker; sleep 1000");
    let id = rt.id();
    rt.ok_detached(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let out = rt.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /tmp/marker; hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "started", "{out}");
    assert_eq!(lines[1], "berthtest");
    // busybox sh execs its last command: pid 1 is now the sleep.
    assert_eq!(lines[2], "sleep 1000 ", "{out}");
    assert!(lines[3].parse::<i32>().unwrap() > 1);
    let o = rt.out(&[
        "exec",
        "--env",
        "X=42",
        "--cwd",
        "/tmp",
        &id,
        "sh",
        "-c",
        "echo $X $(pwd); exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7));
    eqnice!(String::from_utf8_lossy(&o.stdout), "42 /tmp\n");
    let o = rt.out(&["exec", "--user", "65534:65534", &id, "id", "-u"]);
    eqnice!(String::from_utf8_lossy(&o.stdout), "65534\n");
    // Detached exec with a pid file, as containerd's shim does it.
    let proc_json = b.path().join("process.json");
    std::fs::write(
        &proc_json,
        json!({"user": {"uid": 0, "gid": 0}, "args": ["sleep", "1000"], "cwd": "/", "env": ["PATH=/bin"]}).to_string(),
    )
    .unwrap();
    let pf = b.path().join("exec.pid");
    rt.ok_detached(&[
        "exec",
        "--detach",
        "--process",
        proc_json.to_str().unwrap(),
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
    ]);
    let epid: i32 = std::fs::read_to_string(&pf).unwrap().parse().unwrap();
    let pids: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    assert!(pids.contains(&epid), "{pids:?} lacks {epid}");
    let o = rt.out(&["exec", &id, "no-such-binary"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("executable file not found"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    rt.ok(&["delete", "--force", &id]);
    assert!(
        !std::path::Path::new(&format!("/proc/{epid}")).exists()
            || std::fs::read_to_string(format!("/proc/{epid}/stat"))
                .unwrap_or_default()
                .contains(") Z")
    );
}

#[test]
fn pause_resume_kill_all_and_force_delete() {
    require_root!();
    let rt = Rt::new("pause");
    let b = sh("pause", "sleep 1000 & sleep 1000");
    let id = rt.id();
    rt.ok_detached(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    rt.ok(&["pause", &id]);
    assert_eq!(rt.status(&id), "paused");
    let o = rt.out(&["exec", &id, "true"]);
    assert!(!o.status.success(), "exec into a paused container is refused");
    rt.ok(&["resume", &id]);
    assert_eq!(rt.status(&id), "running");
    let pids: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    assert!(pids.len() >= 2, "{pids:?}");
    rt.ok(&["kill", "--all", &id, "KILL"]);
    rt.ok(&["delete", "--force", &id]);
    for p in pids {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        assert!(stat.is_empty() || stat.contains(") Z "), "pid {p} survived: {stat}");
    }
}

/// A cgroup parent directory made by a test, removed from every hierarchy on drop.
struct CgParent(String);

impl Drop for CgParent {
    fn drop(&mut self) {
        berth_testutil::remove_cgroup_everywhere(&self.0);
    }
}

fn cgroup_file(ctrl: &str, rel: &str, file: &str) -> Option<String> {
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let p = if v2 {
        format!("/sys/fs/cgroup/{rel}/{file}")
    } else {
        format!("/sys/fs/cgroup/{ctrl}/{rel}/{file}")
    };
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

#[test]
fn cgroup_limits_are_written_and_enforced() {
    require_root!();
    let rt = Rt::new("cgroups");
    let id = rt.id();
    let parent = CgParent(berth_testutil::unique_name("cgparent"));
    let rel = format!("{}/{id}", parent.0);
    let mut b = sh("cgroups", "sleep 1000");
    b.config["linux"]["cgroupsPath"] = json!(format!("/{rel}"));
    b.config["linux"]["resources"] = json!({
        "devices": [{"allow": false, "access": "rwm"}],
        "memory": {"limit": 33554432, "reservation": 16777216},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
        "pids": {"limit": 20}
    });
    b.write();
    rt.ok_detached(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if v2 {
        assert_eq!(cgroup_file("", &rel, "memory.max").as_deref(), Some("33554432"));
        assert_eq!(cgroup_file("", &rel, "memory.low").as_deref(), Some("16777216"));
        assert_eq!(cgroup_file("", &rel, "cpu.max").as_deref(), Some("50000 100000"));
        assert_eq!(cgroup_file("", &rel, "cpu.weight").as_deref(), Some("20"));
        assert_eq!(cgroup_file("", &rel, "pids.max").as_deref(), Some("20"));
        assert_eq!(cgroup_file("", &rel, "cpuset.cpus").as_deref(), Some("0"));
    } else {
        assert_eq!(
            cgroup_file("memory", &rel, "memory.limit_in_bytes").as_deref(),
            Some("33554432")
        );
        assert_eq!(
            cgroup_file("memory", &rel, "memory.soft_limit_in_bytes").as_deref(),
            Some("16777216")
        );
        assert_eq!(cgroup_file("cpu", &rel, "cpu.shares").as_deref(), Some("512"));
        assert_eq!(cgroup_file("cpu", &rel, "cpu.cfs_quota_us").as_deref(), Some("50000"));
        assert_eq!(cgroup_file("pids", &rel, "pids.max").as_deref(), Some("20"));
        assert_eq!(cgroup_file("cpuset", &rel, "cpuset.cpus").as_deref(), Some("0"));
        assert!(cgroup_file("devices", &rel, "devices.list")
            .unwrap()
            .contains("c 1:3 rwm"));
    }
    // Init and an exec'd process are in the container's cgroup in every hierarchy (v1
    // ones are joined by the process itself, v2 by birth).
    let state: serde_json::Value = serde_json::from_str(&rt.ok(&["state", &id])).unwrap();
    let init_cg = std::fs::read_to_string(format!("/proc/{}/cgroup", state["pid"])).unwrap();
    let exec_cg = rt.ok(&["exec", &id, "cat", "/proc/self/cgroup"]);
    for cg in [&init_cg, &exec_cg] {
        let lines: Vec<&str> = cg.lines().filter(|l| !l.contains("name=")).collect();
        assert!(!lines.is_empty());
        for l in lines {
            assert!(
                l.ends_with(&format!("/{rel}")),
                "not in the container's cgroup: {l}\n{cg}"
            );
        }
    }
    // The pids limit holds inside: 30 background sleeps cannot all start.
    let _ = rt.out(&[
        "exec",
        &id,
        "sh",
        "-c",
        "for i in $(seq 30); do sleep 100 >/dev/null 2>&1 & done 2>/dev/null; exit 0",
    ]);
    let pids: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    assert!(
        pids.len() > 5 && pids.len() <= 20,
        "pids.max not enforced: {} processes",
        pids.len()
    );
    // events --stats reports usage; update changes the limit.
    let stats: serde_json::Value = serde_json::from_str(&rt.ok(&["events", "--stats", &id])).unwrap();
    assert_eq!(stats["type"], "stats");
    assert!(
        stats["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert!(stats["data"]["pids"]["current"].as_u64().unwrap() >= 1);
    rt.ok(&["update", "--memory", "64m", "--pids-limit", "50", &id]);
    if v2 {
        assert_eq!(cgroup_file("", &rel, "memory.max").as_deref(), Some("67108864"));
    } else {
        assert_eq!(
            cgroup_file("memory", &rel, "memory.limit_in_bytes").as_deref(),
            Some("67108864")
        );
    }
    assert_eq!(cgroup_file("pids", &rel, "pids.max").as_deref(), Some("50"));
    rt.ok(&["delete", "--force", &id]);
    assert!(cgroup_file("pids", &rel, "pids.max").is_none(), "cgroup left behind");
}

#[test]
fn memory_limit_is_enforced() {
    require_root!();
    let rt = Rt::new("oom");
    let mut b = sh(
        "oom",
        "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null && echo survived",
    );
    b.config["linux"]["resources"] = json!({"memory": {"limit": 16777216, "swap": 16777216}});
    b.write();
    let (code, out, _) = rt.run(b.path());
    assert!(
        code != 0 || !out.contains("survived"),
        "a 64 MiB allocation survived a 16 MiB limit"
    );
}

#[test]
fn user_namespace_maps_ids() {
    require_root!();
    let rt = Rt::new("userns");
    let mut b = sh(
        "userns",
        "cat /proc/self/uid_map; id -u; echo x > /tmp/f && echo write-ok; sleep 1000",
    );
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    b.write();
    // The rootfs must belong to the mapped root to be writable.
    let o = std::process::Command::new("chown")
        .args(["-R", "200000:200000"])
        .arg(b.rootfs())
        .output()
        .unwrap();
    assert!(o.status.success());
    let id = rt.id();
    let log = b.path().join("out");
    let mut c = rt.cmd(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    c.stdout(std::fs::File::create(&log).unwrap());
    assert!(c.status().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    let out = std::fs::read_to_string(&log).unwrap();
    let first = out.lines().next().unwrap_or("");
    let f: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(f, ["0", "200000", "65536"], "{out}");
    assert!(out.contains("\n0\nwrite-ok"), "{out}");
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t200000")),
        "host uid: {status}"
    );
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn time_and_cgroup_namespaces() {
    require_root!();
    let rt = Rt::new("timens");
    let mut b = sh(
        "timens",
        "cut -d' ' -f1 /proc/uptime | cut -d. -f1; cat /proc/self/cgroup | tail -1",
    );
    let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.push(json!({"type": "time"}));
    ns.push(json!({"type": "cgroup"}));
    b.config["linux"]["timeOffsets"] =
        json!({"boottime": {"secs": 86400000, "nanosecs": 0}, "monotonic": {"secs": 86400000}});
    b.write();
    let (code, out, err) = rt.run(b.path());
    assert_eq!(code, 0, "{err}");
    let mut l = out.lines();
    let up: u64 = l.next().unwrap().parse().unwrap();
    assert!(up >= 86_400_000, "boottime offset not applied: {up}");
    assert!(l.next().unwrap().ends_with(":/"), "cgroup namespace root: {out}");
}

#[test]
fn hooks_receive_state_in_order() {
    require_root!();
    let rt = Rt::new("hooks");
    let b0 = sh("hooks", "echo main");
    let log = b0.path().join("hooks.log");
    let mut b = b0;
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("read s; echo \"{name} $s\" >> {}", log.display())]});
    // createContainer and startContainer run in the container's namespaces: they log inside.
    let in_ctr = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("read s; echo \"{name} $s\" >> /tmp/hooks.log")]});
    b.config["hooks"] = json!({
        "prestart": [hook("prestart")],
        "createRuntime": [hook("createRuntime")],
        "createContainer": [hook("createContainer")],
        "startContainer": [in_ctr("startContainer")],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")]
    });
    b.config["process"]["args"] = json!(["sh", "-c", "cat /tmp/hooks.log"]);
    b.write();
    let (code, out, err) = rt.run(b.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("startContainer {"), "{out}");
    let text = std::fs::read_to_string(&log).unwrap();
    let order: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        order,
        ["prestart", "createRuntime", "createContainer", "poststart", "poststop"],
        "{text}"
    );
    for line in text.lines() {
        let json = line.split_once(' ').unwrap().1;
        let st: serde_json::Value = serde_json::from_str(json).unwrap();
        assert!(st["id"].as_str().unwrap().starts_with("bt"), "{st}");
        assert!(st["pid"].as_i64().unwrap() > 1 || st["status"] == "stopped", "{st}");
    }
    assert!(text.contains("\"status\":\"stopped\""), "{text}");
}

#[test]
fn failing_hook_fails_create_and_cleans_up() {
    require_root!();
    let rt = Rt::new("badhook");
    let mut b = sh("badhook", "true");
    b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
    b.write();
    let (code, _, err) = rt.run(b.path());
    assert_ne!(code, 0);
    assert!(err.contains("createRuntime hook /bin/false failed"), "{err}");
    assert!(rt.ok(&["list", "-q"]).is_empty());
    assert_eq!(
        std::fs::read_dir(rt.root.path()).unwrap().count(),
        0,
        "state left behind"
    );
}

#[test]
fn terminal_through_console_socket() {
    require_root!();
    let rt = Rt::new("console");
    let mut b = sh("console", "tty; echo hi-from-pty");
    b.config["process"]["terminal"] = json!(true);
    b.write();
    let sock = b.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let id = rt.id();
    let bp = b.path().to_str().unwrap().to_string();
    let root = rt.root.path().to_path_buf();
    let sock_s = sock.to_str().unwrap().to_string();
    let id2 = id.clone();
    let h = std::thread::spawn(move || {
        std::process::Command::new(crate::berth_bin())
            .args([
                "runtime",
                "--root",
                root.to_str().unwrap(),
                "create",
                "--bundle",
                &bp,
                "--console-socket",
                &sock_s,
                &id2,
            ])
            .output()
            .unwrap()
    });
    let (conn, _) = listener.accept().unwrap();
    let master = recv_fd(&conn);
    let o = h.join().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    rt.ok(&["start", &id]);
    let mut text = String::new();
    let mut f = std::fs::File::from(master);
    use std::io::Read;
    let mut buf = [0u8; 1024];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if text.contains("hi-from-pty") {
            break;
        }
    }
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert!(text.contains("hi-from-pty"), "{text}");
}

fn recv_fd(conn: &std::os::unix::net::UnixStream) -> std::os::fd::OwnedFd {
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut buf = [0u8; 64];
    let mut cmsg = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: a zeroed msghdr is valid; its pointers are set to live buffers below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = cmsg.len();
    // SAFETY: msg points at live buffers for the duration of the call.
    let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut msg, 0) };
    assert!(n >= 0);
    // SAFETY: the kernel filled a control message; CMSG_FIRSTHDR/CMSG_DATA walk it.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        assert!(!c.is_null());
        let fd = *(libc::CMSG_DATA(c) as *const i32);
        std::os::fd::OwnedFd::from_raw_fd(fd)
    }
}

#[test]
fn features_spec_and_list() {
    let rt = Rt::new("features");
    let f: serde_json::Value = serde_json::from_str(&rt.ok(&["features"])).unwrap();
    assert!(f["linux"]["namespaces"].as_array().unwrap().contains(&json!("time")));
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    let dir = berth_testutil::TempDir::new("specgen");
    rt.ok(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(v["process"]["args"], json!(["sh"]));
    let o = rt.out(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    assert!(!o.status.success(), "spec must not overwrite");
    assert_eq!(rt.ok(&["list", "--format", "json"]).trim(), "[]");
}

#[test]
fn joins_namespaces_by_path() {
    require_root!();
    let rt = Rt::new("nsjoin");
    let first = rt.id();
    let b1 = sh("nsjoin1", "hostname > /dev/null; sleep 1000");
    rt.ok_detached(&["run", "-d", "--bundle", b1.path().to_str().unwrap(), &first]);
    let pid = rt.state(&first)["pid"].as_i64().unwrap();
    // A second container joins the first's uts, ipc and network namespaces by path and
    // sees the same hostname and the same net namespace inode.
    let mut b2 = sh(
        "nsjoin2",
        "hostname; readlink /proc/self/ns/net; readlink /proc/self/ns/uts",
    );
    b2.config["hostname"] = serde_json::Value::Null;
    b2.config["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "mount"},
        {"type": "uts", "path": format!("/proc/{pid}/ns/uts")},
        {"type": "ipc", "path": format!("/proc/{pid}/ns/ipc")},
        {"type": "network", "path": format!("/proc/{pid}/ns/net")},
    ]);
    b2.write();
    let (code, out, err) = rt.run(b2.path());
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let first_host = rt.ok(&["exec", &first, "hostname"]);
    eqnice!(lines[0], first_host.trim());
    let net = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let uts = std::fs::read_link(format!("/proc/{pid}/ns/uts")).unwrap();
    eqnice!(lines[1], net.to_str().unwrap());
    eqnice!(lines[2], uts.to_str().unwrap());
    // A path that is not a namespace of that type is refused.
    let mut b3 = sh("nsjoin3", "true");
    b3.config["linux"]["namespaces"] = json!([{"type": "network", "path": format!("/proc/{pid}/ns/uts")}]);
    b3.write();
    let (code, _, err) = rt.run(b3.path());
    assert_ne!(code, 0);
    assert!(err.contains("network") || err.contains("namespace"), "{err}");
    rt.ok(&["delete", "--force", &first]);
}

#[test]
fn joins_a_mount_namespace_by_path_and_sets_the_rootfs_up_in_it() {
    require_root!();
    require_tool!("unshare");
    let rt = Rt::new("nsmnt");
    // A holder of new mount, uts, ipc and network namespaces, as runtime-tools'
    // linux_ns_path makes one.
    let mut holder = std::process::Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--uts",
            "--ipc",
            "--net",
            "sleep",
            "1000",
        ])
        .spawn()
        .unwrap();
    let pid = holder.id();
    let ns = |t: &str| std::fs::read_link(format!("/proc/{pid}/ns/{t}")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ns("mnt") == std::fs::read_link("/proc/self/ns/mnt").unwrap() {
        assert!(std::time::Instant::now() < deadline, "the holder never unshared");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut b = sh(
        "nsmnt",
        "for t in mnt uts ipc net; do readlink /proc/self/ns/$t; done; grep -c ' /proc ' /proc/self/mountinfo",
    );
    b.config["linux"]["namespaces"] = json!([
        {"type": "pid"},
        {"type": "mount", "path": format!("/proc/{pid}/ns/mnt")},
        {"type": "uts", "path": format!("/proc/{pid}/ns/uts")},
        {"type": "ipc", "path": format!("/proc/{pid}/ns/ipc")},
        {"type": "network", "path": format!("/proc/{pid}/ns/net")},
    ]);
    b.write();
    let (code, out, err) = rt.run(b.path());
    let want: Vec<String> = ["mnt", "uts", "ipc", "net"].iter().map(|t| ns_of(pid, t)).collect();
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    for (i, w) in want.iter().enumerate() {
        eqnice!(lines[i], w.as_str());
    }
    // /proc is mounted in the container (the rootfs was prepared in the joined namespace).
    eqnice!(lines[4], "1");
}

fn ns_of(pid: u32, t: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{t}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn preserve_fds_passes_extra_descriptors() {
    require_root!();
    use std::os::fd::AsRawFd;
    let rt = Rt::new("preserve");
    let b = sh("preserve", "cat <&3; ls /proc/self/fd");
    let dir = berth_testutil::TempDir::new("preserve-data");
    let data = dir.path().join("data");
    std::fs::write(&data, "through fd 3\n").unwrap();
    let f = std::fs::File::open(&data).unwrap();
    let id = rt.id();
    let mut c = rt.cmd(&[
        "run",
        "--preserve-fds",
        "1",
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ]);
    let raw = f.as_raw_fd();
    // SAFETY: fd 3 set up in the child before exec; only async-signal-safe calls.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, move || {
            // dup2 onto itself keeps close-on-exec: clear it instead.
            let r = if raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, 3)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = c.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.starts_with("through fd 3\n"), "{out}");
    let fds: Vec<&str> = out.lines().skip(1).collect();
    assert!(fds.contains(&"3"), "fd 3 kept: {fds:?}");
    assert!(!fds.contains(&"4") || fds.len() <= 5, "nothing beyond: {fds:?}");
    // Numbers the caller left closed stay closed to the runtime's own descriptors: the
    // container finds /dev/null there, never a state directory or a cgroup file.
    let id = rt.id();
    let b = sh(
        "preserve2",
        "for f in /proc/self/fd/*; do echo ${f##*/} $(readlink $f); done",
    );
    let o = rt.out(&[
        "run",
        "--preserve-fds",
        "8",
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut seen = 0;
    for l in out.lines() {
        // (The shell's own descriptor for the listing is gone by the time it is read.)
        let Some((n, target)) = l.split_once(' ') else { continue };
        if n.parse::<u32>().unwrap() < 3 {
            continue;
        }
        seen += 1;
        assert!(
            target == "/dev/null" || target.starts_with("/proc/"),
            "leaked into the container: {l}\n{out}"
        );
    }
    assert!(seen >= 8, "{out}");
}

/// Unmounts a test's mount point when dropped.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn rootfs_propagation_is_applied() {
    require_root!();
    use nix::mount::{mount, MsFlags};
    let rt = Rt::new("propagation");
    let show_root = "awk '$5==\"/\"' /proc/self/mountinfo";
    for (mode, expect) in [("slave", "master:"), ("shared", "shared:"), ("private", "")] {
        let mut b = sh(&format!("propagation-{mode}"), show_root);
        b.config["linux"]["rootfsPropagation"] = json!(mode);
        b.write();
        // The bundle sits on a shared mount of its own, so the container's root has a
        // peer group to be a slave of (the host's / may well be private).
        let dir = b.path().to_path_buf();
        mount(Some(&dir), &dir, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
        let _undo = Unmount(dir.clone());
        mount(None::<&str>, &dir, None::<&str>, MsFlags::MS_SHARED, None::<&str>).unwrap();
        let (code, out, err) = rt.run(b.path());
        assert_eq!(code, 0, "{err}");
        let fields: Vec<&str> = out.split(" - ").next().unwrap().split(' ').skip(6).collect();
        if expect.is_empty() {
            assert!(fields.is_empty(), "{mode}: {out}");
        } else {
            assert!(fields.iter().any(|f| f.starts_with(expect)), "{mode}: {out}");
        }
    }
}

#[test]
fn errors_go_to_the_json_log() {
    let rt = Rt::new("jsonlog");
    let dir = berth_testutil::TempDir::new("jsonlog");
    let log = dir.path().join("log.json");
    let o = rt.out(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "no-such-container",
    ]);
    assert!(!o.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let rec: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(rec["level"], "error");
    assert!(rec["msg"].as_str().unwrap().contains("no-such-container"), "{rec}");
    assert!(rec["time"].as_str().unwrap().ends_with('Z') || rec["time"].as_str().unwrap().contains('+'));
}
