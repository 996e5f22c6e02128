//! Containers end to end: `berth run/ps/logs/stop/kill/rm/wait/inspect` on busybox images
//! imported offline, checked from inside the container and on the host.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testutil::{require_root, TempDir};
use serde_json::Value;

use crate::images::Berth;

/// Packs a directory into a tar (GNU tar exits 1 when a file changed while read, which a
/// parallel test touching /tmp can cause: that is not a failure here).
fn tar_dir(dir: &Path, tar: &Path) {
    let st = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("--warning=no-file-changed")
        .arg("-cf")
        .arg(tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.code().is_some_and(|c| c <= 1) && std::fs::metadata(tar).unwrap().len() > 0);
}

/// A store with a busybox image `bb:1` (CMD sh) and the tarball it came from.
pub(crate) fn with_busybox(test: &str) -> (Berth, TempDir) {
    let b = Berth::new(test);
    let dir = TempDir::new(&format!("{test}-img"));
    let rootfs = dir.path().join("rootfs");
    berth_testutil::busybox_rootfs(&rootfs).unwrap();
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    let tar = dir.path().join("rootfs.tar");
    tar_dir(&rootfs, &tar);
    b.ok(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        "-c",
        "ENV FROM_IMAGE=yes",
        tar.to_str().unwrap(),
        "bb:1",
    ]);
    (b, dir)
}

pub(crate) fn inspect(b: &Berth, name: &str) -> Value {
    let v: Value = serde_json::from_str(&b.ok(&["inspect", name])).unwrap();
    v[0].clone()
}

fn mounts_under(p: &Path) -> usize {
    let p = p.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&p))
        .count()
}

#[test]
fn run_in_the_foreground_streams_output_and_exit_code() {
    require_root!();
    let (b, _d) = with_busybox("run-fg");
    let o = b.out(&["run", "--rm", "bb:1", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    // --rm left nothing: no container, no mount, no runtime state.
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert_eq!(std::fs::read_dir(b.root.path().join("containers")).unwrap().count(), 0);
    assert_eq!(mounts_under(b.root.path()), 0);
    // Options reach the process.
    let out = b.ok(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "--hostname",
        "box",
        "bb:1",
        "sh",
        "-c",
        "echo $A $FROM_IMAGE $(pwd) $(id -u):$(id -g) $(hostname) $(cat /etc/hostname)",
    ]);
    assert_eq!(out, "1 yes /tmp 65534:65534 box box\n");
    let out = b.ok(&["run", "--rm", "--entrypoint", "echo", "bb:1", "via", "entrypoint"]);
    assert_eq!(out, "via entrypoint\n");
    // The image's CMD runs when no command is given; pid 1 is the command.
    let out = b.ok(&["run", "--rm", "--entrypoint", "", "bb:1", "sh", "-c", "echo $$"]);
    assert_eq!(out, "1\n");
    // --read-only; the default network is the bridge (eth0), --network none has only lo.
    let o = b.out(&["run", "--rm", "--read-only", "bb:1", "touch", "/x"]);
    assert_ne!(o.status.code(), Some(0));
    let out = b.ok(&["run", "--rm", "bb:1", "sh", "-c", "ls /sys/class/net"]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["eth0", "lo"]);
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "bb:1",
        "sh",
        "-c",
        "ls /sys/class/net",
    ]);
    assert_eq!(out.trim(), "lo");
}

#[test]
fn detached_containers_are_listed_logged_stopped_and_removed() {
    require_root!();
    let (b, _d) = with_busybox("run-d");
    let id = b.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "--label",
        "app=t",
        "bb:1",
        "sh",
        "-c",
        "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.ok(&["logs", "ticker"]).contains("started") {
        assert!(Instant::now() < deadline, "no log");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ps = b.ok(&["ps"]);
    assert!(ps.contains("ticker") && ps.contains("Up "), "{ps}");
    assert_eq!(b.ok(&["ps", "-q", "--filter", "label=app=t"]).trim(), &id[..12]);
    assert_eq!(
        b.ok(&["ps", "--format", "{{.Names}} {{.State}}"]).trim(),
        "ticker running"
    );
    let v = inspect(&b, &id[..8]);
    assert_eq!(v["Name"], "/ticker");
    assert_eq!(v["State"]["Running"], true);
    let pid = v["State"]["Pid"].as_i64().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    // exec: output, environment, user, working dir and the exit code come through.
    let o = b.out(&[
        "exec",
        "-e",
        "X=9",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "ticker",
        "sh",
        "-c",
        "echo $X $(pwd) $(id -u); exit 4",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "9 /tmp 65534\n");
    let o = b.out(&["exec", "ticker", "no-such-command"]);
    assert_eq!(o.status.code(), Some(127), "{}", String::from_utf8_lossy(&o.stderr));
    // Removing a running container needs -f.
    let e = b.fails(&["rm", "ticker"]);
    assert!(e.contains("container is running"), "{e}");
    // A name in use is refused with Docker's conflict error and code.
    let o = b.out(&["run", "-d", "--name", "ticker", "bb:1", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is already in use"));
    // stop: TERM first; the trap exits 0.
    assert_eq!(b.ok(&["stop", "ticker"]).trim(), "ticker");
    let v = inspect(&b, "ticker");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 0);
    assert!(b.ok(&["logs", "ticker"]).ends_with("bye\n"));
    assert!(b.ok(&["ps", "-a"]).contains("Exited (0)"));
    assert_eq!(b.ok(&["ps", "-q"]), "");
    let o = b.out(&["exec", "ticker", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not running"));
    // Started again, then killed.
    b.ok(&["start", "ticker"]);
    b.ok(&["kill", "ticker"]);
    assert_eq!(b.ok(&["wait", "ticker"]).trim(), "137");
    b.ok(&["rm", "ticker"]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert_eq!(mounts_under(b.root.path()), 0);
    let e = b.fails(&["logs", "ticker"]);
    assert!(e.contains("No such container: ticker"), "{e}");
}

#[test]
fn limits_oom_and_start_failures() {
    require_root!();
    let (b, _d) = with_busybox("limits");
    let id = b
        .ok(&[
            "run",
            "-d",
            "--memory",
            "32m",
            "--pids-limit",
            "50",
            "bb:1",
            "sleep",
            "100",
        ])
        .trim()
        .to_string();
    let mem = std::fs::read_to_string(format!("/sys/fs/cgroup/memory/berth/{id}/memory.limit_in_bytes"))
        .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/berth/{id}/memory.max")))
        .unwrap();
    assert_eq!(mem.trim(), (32u64 << 20).to_string());
    let pids = std::fs::read_to_string(format!("/sys/fs/cgroup/pids/berth/{id}/pids.max"))
        .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/berth/{id}/pids.max")))
        .unwrap();
    assert_eq!(pids.trim(), "50");
    b.ok(&["rm", "-f", &id]);
    assert!(
        !Path::new(&format!("/sys/fs/cgroup/memory/berth/{id}")).exists(),
        "cgroup left"
    );
    // CPU and memory flags reach the cgroup files.
    let id = b
        .ok(&[
            "run",
            "-d",
            "--cpus",
            "0.5",
            "--cpu-shares",
            "512",
            "--cpuset-cpus",
            "0",
            "--memory",
            "64m",
            "--memory-reservation",
            "32m",
            "--log-driver",
            "none",
            "bb:1",
            "sh",
            "-c",
            "echo quiet; sleep 1000",
        ])
        .trim()
        .to_string();
    let v1 = |ctrl: &str, f: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{ctrl}/berth/{id}/{f}"))
            .ok()
            .map(|s| s.trim().to_string())
    };
    if Path::new("/sys/fs/cgroup/cpu/berth").exists() {
        assert_eq!(v1("cpu", "cpu.cfs_quota_us").as_deref(), Some("50000"));
        assert_eq!(v1("cpu", "cpu.shares").as_deref(), Some("512"));
        assert_eq!(v1("cpuset", "cpuset.cpus").as_deref(), Some("0"));
        assert_eq!(
            v1("memory", "memory.soft_limit_in_bytes").as_deref(),
            Some((32u64 << 20).to_string().as_str())
        );
    }
    let v = inspect(&b, &id);
    assert_eq!(v["HostConfig"]["NanoCpus"], 500_000_000);
    assert_eq!(v["HostConfig"]["LogConfig"]["Type"], "none");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(b.ok(&["logs", &id]), "", "--log-driver none keeps nothing");
    b.ok(&["rm", "-f", &id]);
    let o = b.out(&["run", "--rm", "--memory-swap", "10m", "--memory", "64m", "bb:1", "true"]);
    assert_eq!(o.status.code(), Some(125));
    // The OOM killer: exit 137 and OOMKilled.
    let o = b.out(&[
        "run",
        "--name",
        "oom",
        "--memory",
        "16m",
        "bb:1",
        "sh",
        "-c",
        "x=a; while true; do x=$x$x; done",
    ]);
    assert_eq!(o.status.code(), Some(137));
    let v = inspect(&b, "oom");
    assert_eq!(v["State"]["OOMKilled"], true, "{v}");
    b.ok(&["rm", "oom"]);
    // Docker's exit codes for start failures.
    let o = b.out(&["run", "--rm", "bb:1", "no-such-command"]);
    assert_eq!(o.status.code(), Some(127), "{}", String::from_utf8_lossy(&o.stderr));
    let o = b.out(&["run", "--rm", "bb:1", "/etc/passwd"]);
    assert_eq!(o.status.code(), Some(126), "{}", String::from_utf8_lossy(&o.stderr));
    let o = b.out(&["run", "--rm", "--pull", "never", "nothere:1", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("No such image"));
    let o = b.out(&["run", "--rm", "--memory", "lots", "bb:1", "true"]);
    assert_eq!(o.status.code(), Some(125));
    let o = b.out(&["run", "--rm", "--bogus-flag", "bb:1", "true"]);
    assert_ne!(o.status.code(), Some(0));
    assert_eq!(b.ok(&["ps", "-aq"]), "", "a failed run left a container");
    assert_eq!(mounts_under(b.root.path()), 0);
}

#[test]
fn containers_outlive_killed_berth_processes() {
    require_root!();
    let (b, _d) = with_busybox("outlive");
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            b.ok(&[
                "run",
                "-d",
                "--name",
                &format!("c{i}"),
                "bb:1",
                "sh",
                "-c",
                "trap 'exit 0' TERM; while true; do echo alive; sleep 0.2; done",
            ])
            .trim()
            .to_string(),
        );
    }
    // SIGKILL every berth process: all ten monitors.
    for id in &ids {
        let st: Value = serde_json::from_slice(
            &std::fs::read(b.root.path().join("containers").join(id).join("state.json")).unwrap(),
        )
        .unwrap();
        let m = st["monitor_pid"].as_i64().unwrap();
        // 0 would be this test's own process group.
        assert!(m > 1, "no monitor recorded: {st}");
        // SAFETY: kill by a pid this test's containers recorded.
        unsafe { libc::kill(i32::try_from(m).unwrap(), libc::SIGKILL) };
    }
    std::thread::sleep(Duration::from_millis(400));
    // They keep running, and a fresh berth manages them.
    assert_eq!(
        b.ok(&["ps", "-q"]).lines().count(),
        10,
        "containers died with their monitors"
    );
    assert!(b.ok(&["logs", "c3"]).contains("alive"));
    b.ok(&["stop", "-t", "5", "c0"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.ok(&["ps", "-q"]).lines().count() != 9 {
        assert!(Instant::now() < deadline, "a dead container is shown running");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its monitor is gone, so nobody recorded the exit: it reads as exited, never running.
    assert_eq!(inspect(&b, "c0")["State"]["Status"], "exited");
    b.ok(&["kill", "c1"]);
    let mut all = vec!["rm", "-f"];
    let names: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    all.extend(names.iter().map(String::as_str));
    b.ok(&all);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert_eq!(mounts_under(b.root.path()), 0);
    for id in &ids {
        assert!(
            !Path::new(&format!("/sys/fs/cgroup/memory/berth/{id}")).exists(),
            "cgroup left"
        );
    }
    let _ = Stdio::null();
}

#[test]
fn rename_pause_top_diff_commit_export_prune() {
    require_root!();
    let (b, d) = with_busybox("more");
    let id = b
        .ok(&[
            "run",
            "-d",
            "--name",
            "first",
            "bb:1",
            "sh",
            "-c",
            "echo made > /tmp/new; rm /etc/group; mkdir /data; echo 1 > /data/x; sleep 1000",
        ])
        .trim()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.ok(&["diff", "first"]).lines().count() < 3 {
        assert!(Instant::now() < deadline, "changes never showed");
        std::thread::sleep(Duration::from_millis(20));
    }
    // rename
    b.ok(&["rename", "first", "second"]);
    assert_eq!(inspect(&b, &id)["Name"], "/second");
    let e = b.fails(&["rename", "second", "second"]);
    assert!(!e.is_empty());
    // diff: Docker's A/C/D lines
    let diff = b.ok(&["diff", "second"]);
    for want in ["C /tmp", "A /tmp/new", "C /etc", "D /etc/group", "A /data", "A /data/x"] {
        assert!(diff.lines().any(|l| l == want), "{want} missing in\n{diff}");
    }
    // top lists the sleep
    let top = b.ok(&["top", "second"]);
    assert!(
        top.lines().next().unwrap().contains("PID") && top.contains("sleep 1000"),
        "{top}"
    );
    // pause / unpause
    b.ok(&["pause", "second"]);
    assert!(b.ok(&["ps"]).contains("(Paused)"));
    assert_eq!(inspect(&b, "second")["State"]["Status"], "paused");
    b.fails(&["pause", "second"]);
    b.ok(&["unpause", "second"]);
    assert_eq!(inspect(&b, "second")["State"]["Status"], "running");
    // commit: a new image with the changes and a new CMD
    let img = b
        .ok(&[
            "commit",
            "-c",
            "CMD [\"cat\", \"/tmp/new\"]",
            "-m",
            "snap",
            "second",
            "snap:1",
        ])
        .trim()
        .to_string();
    assert!(img.starts_with("sha256:"), "{img}");
    assert_eq!(b.ok(&["run", "--rm", "snap:1"]), "made\n");
    let out = b.ok(&[
        "run",
        "--rm",
        "snap:1",
        "sh",
        "-c",
        "cat /data/x; test -e /etc/group || echo no-group",
    ]);
    assert_eq!(out, "1\nno-group\n");
    let layers = b.inspect("snap:1")["RootFS"]["Layers"].as_array().unwrap().len();
    assert_eq!(layers, 2);
    // export: the merged filesystem as a tar
    let tar = d.path().join("export.tar");
    b.ok(&["export", "-o", tar.to_str().unwrap(), "second"]);
    let list = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    let names = String::from_utf8_lossy(&list.stdout);
    assert!(
        names.lines().any(|l| l.trim_start_matches("./") == "tmp/new"),
        "{names}"
    );
    assert!(names.lines().any(|l| l.trim_start_matches("./") == "bin/busybox"));
    assert!(!names.lines().any(|l| l.trim_start_matches("./") == "etc/group"));
    // prune removes only stopped containers
    b.ok(&["run", "--name", "done", "bb:1", "true"]);
    let out = b.ok(&["container", "prune", "-f"]);
    assert!(out.contains("Deleted Containers:"), "{out}");
    let left = b.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(left.trim(), "second");
    b.ok(&["rm", "-f", "second"]);
    b.ok(&["rmi", "snap:1"]);
    assert!(b.ok(&["version"]).starts_with("berth version"));
    assert_eq!(mounts_under(b.root.path()), 0);
}

#[test]
fn restart_policies_bring_containers_back() {
    require_root!();
    let (b, _d) = with_busybox("restart");
    // on-failure:3: three restarts, then it stays exited.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:3",
        "bb:1",
        "sh",
        "-c",
        "echo run; exit 2",
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = inspect(&b, "flaky");
        if v["State"]["Status"] == "exited" && v["RestartCount"] == 3 {
            assert_eq!(v["State"]["ExitCode"], 2);
            assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
            break;
        }
        assert!(Instant::now() < deadline, "never settled: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(b.ok(&["logs", "flaky"]).matches("run").count(), 4);
    // always: comes back after a clean exit; a stop by the user ends it.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "loop",
        "--restart",
        "always",
        "bb:1",
        "sh",
        "-c",
        "sleep 0.2",
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while inspect(&b, "loop")["RestartCount"].as_u64().unwrap() < 2 {
        assert!(Instant::now() < deadline, "always did not restart");
        std::thread::sleep(Duration::from_millis(50));
    }
    b.ok(&["stop", "loop"]);
    std::thread::sleep(Duration::from_millis(500));
    let v = inspect(&b, "loop");
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    let count = v["RestartCount"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        inspect(&b, "loop")["RestartCount"].as_u64().unwrap(),
        count,
        "restarted after stop"
    );
    // Conflicting options are refused.
    let o = b.out(&["run", "--rm", "--restart", "always", "bb:1", "true"]);
    assert_eq!(o.status.code(), Some(125));
    let o = b.out(&["run", "--restart", "sometimes", "bb:1", "true"]);
    assert_eq!(o.status.code(), Some(125));
    b.ok(&["rm", "-f", "flaky", "loop"]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert_eq!(mounts_under(b.root.path()), 0);
}

#[test]
fn volumes_binds_and_tmpfs() {
    require_root!();
    let (b, d) = with_busybox("volumes");
    // An image with content under a VOLUME path.
    let rootfs = d.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("data")).unwrap();
    std::fs::write(rootfs.join("data/seed"), "from image\n").unwrap();
    let tar = d.path().join("vol.tar");
    tar_dir(&rootfs, &tar);
    b.ok(&["import", "-c", "VOLUME /data", tar.to_str().unwrap(), "vol:1"]);
    // A named volume gets the image's content (copy-up) and keeps what containers write.
    let out = b.ok(&[
        "run",
        "--name",
        "w1",
        "-v",
        "store:/data",
        "vol:1",
        "sh",
        "-c",
        "cat /data/seed; echo kept > /data/new",
    ]);
    assert_eq!(out, "from image\n");
    let e = b.fails(&["volume", "rm", "store"]);
    assert!(e.contains("volume is in use"), "{e}");
    b.ok(&["rm", "w1"]);
    assert_eq!(
        b.ok(&["run", "--rm", "-v", "store:/data", "bb:1", "cat", "/data/new"]),
        "kept\n"
    );
    assert!(b.ok(&["volume", "ls", "-q"]).lines().any(|l| l == "store"));
    let v: Value = serde_json::from_str(&b.ok(&["volume", "inspect", "store"])).unwrap();
    assert_eq!(v[0]["Driver"], "local");
    b.ok(&["volume", "rm", "store"]);
    // The image's VOLUME becomes an anonymous volume; rm -v removes it.
    let id = b.ok(&["create", "vol:1", "true"]).trim().to_string();
    let v = inspect(&b, &id);
    assert_eq!(v["Mounts"][0]["Destination"], "/data");
    assert_eq!(v["Mounts"][0]["Type"], "volume");
    let anon = v["Mounts"][0]["Name"].as_str().unwrap().to_string();
    assert!(b.ok(&["volume", "ls", "-q"]).contains(&anon));
    b.ok(&["rm", "-v", &id]);
    assert!(!b.ok(&["volume", "ls", "-q"]).contains(&anon), "anonymous volume left");
    // Bind mounts (read-only honoured) and tmpfs.
    let host = d.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "host file\n").unwrap();
    let spec = format!("{}:/mnt:ro", host.display());
    assert_eq!(
        b.ok(&["run", "--rm", "-v", &spec, "bb:1", "cat", "/mnt/f"]),
        "host file\n"
    );
    let o = b.out(&["run", "--rm", "-v", &spec, "bb:1", "touch", "/mnt/g"]);
    assert_ne!(o.status.code(), Some(0));
    let m = format!("type=bind,source={},target=/m", host.display());
    assert_eq!(
        b.ok(&["run", "--rm", "--mount", &m, "bb:1", "cat", "/m/f"]),
        "host file\n"
    );
    let out = b.ok(&[
        "run",
        "--rm",
        "--tmpfs",
        "/scratch:size=1m",
        "bb:1",
        "sh",
        "-c",
        "grep ' /scratch ' /proc/mounts",
    ]);
    assert!(
        out.starts_with("tmpfs /scratch tmpfs") && out.contains("size=1024k"),
        "{out}"
    );
    let e = b.fails(&["run", "--rm", "-v", "rel/path:/x", "bb:1", "true"]);
    assert!(e.contains("invalid volume specification"), "{e}");
    // --volumes-from shares another container's volumes (read-only when asked).
    b.ok(&["create", "--name", "holder", "-v", "shared:/shared", "bb:1", "true"]);
    b.ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "holder",
        "bb:1",
        "sh",
        "-c",
        "echo hi > /shared/f",
    ]);
    assert_eq!(
        b.ok(&["run", "--rm", "--volumes-from", "holder:ro", "bb:1", "cat", "/shared/f"]),
        "hi\n"
    );
    let o = b.out(&[
        "run",
        "--rm",
        "--volumes-from",
        "holder:ro",
        "bb:1",
        "touch",
        "/shared/g",
    ]);
    assert_ne!(o.status.code(), Some(0));
    b.ok(&["rm", "holder"]);
    b.ok(&["volume", "rm", "shared"]);
    // --rm removes the anonymous volumes it made.
    b.ok(&["run", "--rm", "vol:1", "true"]);
    b.ok(&["volume", "prune", "-f"]);
    assert_eq!(b.ok(&["volume", "ls", "-q"]), "");
    assert_eq!(mounts_under(b.root.path()), 0);
}

#[test]
fn health_checks_run_without_a_daemon() {
    require_root!();
    let (b, _d) = with_busybox("health");
    b.ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "test -e /tmp/ok && echo fine",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "--health-timeout",
        "2s",
        "bb:1",
        "sh",
        "-c",
        "sleep 0.6; touch /tmp/ok; sleep 1000",
    ]);
    let status = |b: &Berth| {
        inspect(b, "hc")["State"]["Health"]["Status"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let wait_for = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while status(&b) != want {
            assert!(
                Instant::now() < deadline,
                "never {want}: {}",
                inspect(&b, "hc")["State"]
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("healthy");
    // A probe's end is seen when it comes, not at its timeout (30 s by default).
    b.ok(&[
        "run",
        "-d",
        "--name",
        "hc2",
        "--health-cmd",
        "true",
        "--health-interval",
        "200ms",
        "bb:1",
        "sleep",
        "100",
    ]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while inspect(&b, "hc2")["State"]["Health"]["Status"] != "healthy" {
        assert!(
            Instant::now() < deadline,
            "hc2 not healthy: {}",
            inspect(&b, "hc2")["State"]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    b.ok(&["rm", "-f", "hc2"]);
    let v = inspect(&b, "hc");
    assert_eq!(v["Config"]["Healthcheck"]["Test"][0], "CMD-SHELL");
    assert_eq!(v["Config"]["Healthcheck"]["Interval"], 200_000_000);
    assert_eq!(v["Config"]["Healthcheck"]["Retries"], 2);
    let log = v["State"]["Health"]["Log"].as_array().unwrap();
    assert_eq!(log.last().unwrap()["Output"], "fine\n");
    assert!(b.ok(&["ps"]).contains("(healthy)"));
    assert_eq!(b.ok(&["ps", "-q", "--filter", "health=healthy"]).lines().count(), 1);
    // Break it: two failures in a row make it unhealthy.
    b.ok(&["exec", "hc", "rm", "/tmp/ok"]);
    wait_for("unhealthy");
    assert!(inspect(&b, "hc")["State"]["Health"]["FailingStreak"].as_u64().unwrap() >= 2);
    b.ok(&["rm", "-f", "hc"]);
    // A probe that hangs is killed at its timeout and counts as a failure.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "hang",
        "--health-cmd",
        "sleep 100",
        "--health-interval",
        "100ms",
        "--health-timeout",
        "300ms",
        "--health-retries",
        "1",
        "bb:1",
        "sleep",
        "1000",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while inspect(&b, "hang")["State"]["Health"]["Status"] != "unhealthy" {
        assert!(Instant::now() < deadline, "hung probe never failed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let v = inspect(&b, "hang");
    assert!(
        v["State"]["Health"]["Log"][0]["Output"]
            .as_str()
            .unwrap()
            .contains("exceeded timeout"),
        "{v}"
    );
    b.ok(&["rm", "-f", "hang"]);
    let o = b.out(&[
        "run",
        "--rm",
        "--health-interval",
        "soon",
        "--health-cmd",
        "true",
        "bb:1",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert_eq!(mounts_under(b.root.path()), 0);
}

/// What berth could leave behind (mounts, cgroups under `parent`, processes and files of
/// this store), counted.
fn footprint(b: &Berth, parent: &str) -> (usize, usize, usize, usize) {
    let me = b.root.path().display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&me))
        .count();
    let cgroups = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|h| {
            std::fs::read_dir(h.path().join(parent))
                .map(|r| r.flatten().filter(|e| e.path().is_dir()).count())
                .unwrap_or(0)
        })
        .sum::<usize>()
        + std::fs::read_dir(format!("/sys/fs/cgroup/{parent}"))
            .map(|r| r.flatten().filter(|e| e.path().is_dir()).count())
            .unwrap_or(0);
    let procs = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|c| c.is_ascii_digit()))
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&me))
                .unwrap_or(false)
        })
        .count();
    let files = std::fs::read_dir(b.root.path().join("containers"))
        .map(|r| r.count())
        .unwrap_or(0)
        + std::fs::read_dir(b.root.path().join("run/runtime"))
            .map(|r| r.count())
            .unwrap_or(0)
        + std::fs::read_dir(b.root.path().join("run/runtimes"))
            .map(|r| r.count())
            .unwrap_or(0);
    (mounts, cgroups, procs, files)
}

#[test]
fn many_cycles_leave_nothing_behind() {
    require_root!();
    let (b, _d) = with_busybox("cycles");
    let parent = berth_testutil::unique_name("cycles");
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            berth_testutil::remove_cgroup_everywhere(&self.0);
        }
    }
    let _c = Cleanup(parent.clone());
    // Warm up (first use creates directories), then count.
    b.ok(&["run", "--rm", "--cgroup-parent", &parent, "bb:1", "true"]);
    // A monitor exits a moment after it removed its container (and lingers a little longer
    // if it was the last user of the bridge): let the last ones go.
    let settled = |b: &Berth| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let f = footprint(b, &parent);
            if f.2 == 0 || Instant::now() > deadline {
                return f;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let before = settled(&b);
    for _ in 0..200 {
        b.ok(&[
            "run",
            "--rm",
            "--cgroup-parent",
            &parent,
            "--network",
            "none",
            "bb:1",
            "true",
        ]);
    }
    // Concurrent creates on the bridge: generated names and address leases never collide.
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| b.ok(&["run", "-d", "--rm", "--cgroup-parent", &parent, "bb:1", "true"]));
        }
    });
    // Detached --rm containers clean up after themselves too.
    for _ in 0..10 {
        b.ok(&["run", "-d", "--rm", "--cgroup-parent", &parent, "bb:1", "true"]);
    }
    for i in 0..50 {
        let id = b
            .ok(&["run", "-d", "--cgroup-parent", &parent, "bb:1", "sleep", "100"])
            .trim()
            .to_string();
        if i % 10 == 0 {
            assert!(b.ok(&["ps", "-q"]).contains(&id[..12]));
        }
        b.ok(&["rm", "-f", &id]);
    }
    assert_eq!(settled(&b), before, "(mounts, cgroups, processes, files) changed");
    assert_eq!(before, (0, 0, 0, 0), "the warm-up left something");
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn cp_both_ways_and_never_through_hostile_symlinks() {
    require_root!();
    let (b, d) = with_busybox("cp");
    let victim = TempDir::new("cp-victim");
    std::fs::write(victim.path().join("secret"), "host secret\n").unwrap();
    let v = victim.path().display().to_string();
    b.ok(&[
        "run", "-d", "--name", "box", "bb:1", "sh", "-c",
        &format!("mkdir -p /srv/dir && echo inside > /srv/dir/a && ln -s {v} /srv/escape && ln -s {v}/secret /srv/leak && ln -s /etc /srv/etcdir && sleep 1000"),
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.out(&["exec", "box", "test", "-L", "/srv/etcdir"]).status.code() != Some(0) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    // Out: a directory, a file.
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    b.ok(&["cp", "box:/srv/dir", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(out.join("dir/a")).unwrap(), "inside\n");
    b.ok(&["cp", "box:/srv/dir/a", out.join("copy").to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(out.join("copy")).unwrap(), "inside\n");
    // A symlink to a host path is copied as a link, never followed to the host file.
    b.ok(&["cp", "box:/srv/leak", out.join("leak").to_str().unwrap()]);
    assert!(std::fs::symlink_metadata(out.join("leak"))
        .unwrap()
        .file_type()
        .is_symlink());
    // Reading through a container symlink resolves inside the container: /srv/escape/secret
    // is the container's own path, which does not exist.
    let e = b.fails(&["cp", "box:/srv/escape/secret", out.join("x").to_str().unwrap()]);
    assert!(e.contains("Could not find"), "{e}");
    assert!(!out.join("x").exists());
    // In: a file and a directory.
    let src = d.path().join("in");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/f"), "from host\n").unwrap();
    b.ok(&["cp", src.to_str().unwrap(), "box:/srv"]);
    assert_eq!(b.ok(&["exec", "box", "cat", "/srv/in/sub/f"]), "from host\n");
    b.ok(&["cp", src.join("sub/f").to_str().unwrap(), "box:/srv/renamed"]);
    assert_eq!(b.ok(&["exec", "box", "cat", "/srv/renamed"]), "from host\n");
    // Writing through container symlinks stays inside the container or is refused.
    b.fails(&["cp", src.join("sub/f").to_str().unwrap(), "box:/srv/leak"]);
    assert_eq!(
        std::fs::read_to_string(victim.path().join("secret")).unwrap(),
        "host secret\n"
    );
    let _ = b.out(&["cp", src.join("sub/f").to_str().unwrap(), "box:/srv/escape/planted"]);
    assert!(
        !victim.path().join("planted").exists(),
        "wrote to the host through a symlink"
    );
    b.ok(&["cp", src.join("sub/f").to_str().unwrap(), "box:/srv/etcdir/new"]);
    assert_eq!(b.ok(&["exec", "box", "cat", "/etc/new"]), "from host\n");
    assert!(!Path::new("/etc/new").exists());
    // A stopped container's files are reachable too.
    b.ok(&["stop", "-t", "1", "box"]);
    b.ok(&["cp", "box:/srv/renamed", out.join("after").to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(out.join("after")).unwrap(), "from host\n");
    b.ok(&["rm", "box"]);
    assert_eq!(mounts_under(b.root.path()), 0);
}

#[test]
fn stats_and_update() {
    require_root!();
    let (b, _d) = with_busybox("stats");
    let id = b
        .ok(&[
            "run",
            "-d",
            "--name",
            "busy",
            "--memory",
            "64m",
            "bb:1",
            "sh",
            "-c",
            "while true; do :; done",
        ])
        .trim()
        .to_string();
    let out = b.ok(&["stats", "--no-stream", "busy"]);
    let head = out.lines().next().unwrap();
    assert!(
        head.starts_with("CONTAINER ID") && head.contains("MEM USAGE / LIMIT"),
        "{out}"
    );
    let row: Value = serde_json::from_str(b.ok(&["stats", "--no-stream", "--format", "json", "busy"]).trim()).unwrap();
    assert_eq!(row["Name"], "busy");
    assert!(row["MemUsage"].as_str().unwrap().ends_with("/ 64MiB"), "{row}");
    let cpu: f64 = row["CPUPerc"].as_str().unwrap().trim_end_matches('%').parse().unwrap();
    assert!(cpu > 10.0, "a busy loop shows CPU: {row}");
    assert_eq!(row["PIDs"], "1");
    b.ok(&["update", "--memory", "128m", "--pids-limit", "30", "busy"]);
    let mem = std::fs::read_to_string(format!("/sys/fs/cgroup/memory/berth/{id}/memory.limit_in_bytes"))
        .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/berth/{id}/memory.max")))
        .unwrap();
    assert_eq!(mem.trim(), (128u64 << 20).to_string());
    // The new limits are the container's own now: they survive a restart.
    b.ok(&["restart", "-t", "0", "busy"]);
    let limits = b.ok(&["exec", "busy", "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max"]);
    assert_eq!(limits, format!("{}\n30\n", 128u64 << 20));
    let e = b.fails(&["update", "--memory", "1k", "busy"]);
    assert!(e.contains("Minimum memory limit allowed is 6MB"), "{e}");
    b.ok(&["rm", "-f", "busy"]);
    let e = b.fails(&["update", "--memory", "128m", "busy"]);
    assert!(e.contains("No such container"), "{e}");
}

#[test]
fn security_defaults_and_their_flags() {
    require_root!();
    let (b, d) = with_busybox("security");
    let caps = |args: &[&str]| -> u64 {
        let mut a = vec!["run", "--rm"];
        a.extend(args);
        a.extend([
            "bb:1",
            "sh",
            "-c",
            "while read k v; do [ \"$k\" = CapEff: ] && echo $v; done < /proc/self/status; true",
        ]);
        u64::from_str_radix(b.ok(&a).trim(), 16).unwrap()
    };
    // Docker's 14 capabilities by default; add and drop by any spelling; ALL.
    assert_eq!(caps(&[]), 0xa80425fb);
    assert_eq!(caps(&["--cap-add", "net_admin"]), 0xa80425fb | (1 << 12));
    assert_eq!(
        caps(&["--cap-drop", "CAP_CHOWN", "--cap-drop", "kill"]),
        0xa80425fb & !1 & !(1 << 5)
    );
    assert_eq!(caps(&["--cap-drop", "ALL"]), 0);
    assert_eq!(caps(&["--cap-drop", "ALL", "--cap-add", "SETUID"]), 1 << 7);
    let o = b.out(&["run", "--rm", "--cap-add", "CAP_BOGUS", "bb:1", "true"]);
    assert_eq!(o.status.code(), Some(125));
    // Seccomp on by default: namespaces and keyrings are refused, unconfined lifts it.
    let img = d.path().join("full");
    std::fs::create_dir_all(img.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", img.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", img.join("bin/unshare")).unwrap();
    std::os::unix::fs::symlink("busybox", img.join("bin/true")).unwrap();
    let tar = d.path().join("full.tar");
    tar_dir(&img, &tar);
    b.ok(&["import", tar.to_str().unwrap(), "full:1"]);
    let o = b.out(&["run", "--rm", "full:1", "unshare", "-U", "true"]);
    assert_ne!(o.status.code(), Some(0), "unshare allowed by the default profile");
    assert!(String::from_utf8_lossy(&o.stderr).contains("Operation not permitted"));
    b.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "full:1",
        "unshare",
        "-U",
        "true",
    ]);
    // A profile file is used as given.
    let prof = d.path().join("deny-getpid.json");
    std::fs::write(&prof, r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#).unwrap();
    let o = b.out(&[
        "run",
        "--rm",
        "--security-opt",
        &format!("seccomp={}", prof.display()),
        "bb:1",
        "mkdir",
        "/tmp/x",
    ]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // no-new-privileges, ulimits.
    let out = b.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "no-new-privileges",
        "bb:1",
        "sh",
        "-c",
        "while read k v; do [ \"$k\" = NoNewPrivs: ] && echo $v; done < /proc/self/status; true",
    ]);
    assert_eq!(out.trim(), "1");
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--ulimit",
            "nofile=100:200",
            "bb:1",
            "sh",
            "-c",
            "ulimit -n"
        ])
        .trim(),
        "100"
    );
    let o = b.out(&["run", "--rm", "--ulimit", "nofile=300:200", "bb:1", "true"]);
    assert_eq!(o.status.code(), Some(125));
    // --privileged: every capability berth holds, /proc/keys and /sys/firmware unmasked.
    let all = caps(&["--privileged"]);
    assert!(all & (1 << 21) != 0, "CAP_SYS_ADMIN: {all:x}");
    let masked = b.ok(&["run", "--rm", "bb:1", "sh", "-c", "cat /proc/keys | wc -c"]);
    assert_eq!(masked.trim(), "0");
    let _ = b.ok(&["run", "--rm", "--privileged", "bb:1", "true"]);
}

#[test]
fn system_info_prune_and_port() {
    require_root!();
    let (b, _d) = with_busybox("system");
    b.ok(&["run", "-d", "--name", "up", "bb:1", "sleep", "1000"]);
    b.ok(&["run", "--name", "down", "bb:1", "true"]);
    let v: Value = serde_json::from_str(&b.ok(&["system", "info", "--format", "json"])).unwrap();
    assert_eq!(v["Containers"], 2);
    assert_eq!(v["ContainersRunning"], 1);
    assert_eq!(v["ContainersStopped"], 1);
    assert_eq!(v["Images"], 1);
    assert!(b.ok(&["info"]).contains("Storage Driver: overlay2"));
    assert_eq!(b.ok(&["info", "--format", "{{.ContainersRunning}}"]).trim(), "1");
    assert_eq!(b.ok(&["port", "up"]), "");
    let e = b.fails(&["port", "up", "80"]);
    assert!(e.contains("No public port '80/tcp' published for up"), "{e}");
    let out = b.ok(&["system", "prune", "-f"]);
    assert!(
        out.contains("Deleted Containers:") && out.contains("Total reclaimed space"),
        "{out}"
    );
    assert_eq!(b.ok(&["ps", "-a", "--format", "{{.Names}}"]).trim(), "up");
    b.ok(&["rm", "-f", "up"]);
}

#[test]
fn devices_are_made_and_allowed_with_their_permissions() {
    require_root!();
    let (b, _d) = with_busybox("devices");
    // A missing device is refused before anything is made.
    let o = b.out(&["run", "--rm", "--device", "/dev/berth-nosuch", "bb:1", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("error gathering device information"),
        "{o:?}"
    );
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    let e = b.fails(&["create", "--device", "/dev/null:/dev/x:rwx", "bb:1"]);
    assert!(e.contains("invalid device specification"), "{e}");
    // /dev/net/tun is outside the default device rules: only --device makes it usable.
    if !std::path::Path::new("/dev/net/tun").exists() {
        return;
    }
    // Without it, as in Docker: a node may be made (mknod), not opened.
    let own = b.ok(&[
        "run",
        "--rm",
        "bb:1",
        "sh",
        "-c",
        "mknod /dev/t c 10 200 && echo made; (echo x > /dev/t) 2>/dev/null; echo rc=$?",
    ]);
    assert!(own.contains("made") && own.contains("rc=1"), "{own}");
    let made = b.ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/net/tun:/dev/mytun",
        "bb:1",
        "ls",
        "-l",
        "/dev/mytun",
    ]);
    assert!(made.contains("10, 200"), "{made}");
    // Opened read-write: the cgroup lets it through (tun then refuses a read without setup).
    let rw = b.ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/net/tun",
        "bb:1",
        "sh",
        "-c",
        "cat /dev/net/tun 2>&1; true",
    ]);
    assert!(!rw.contains("Operation not permitted"), "{rw}");
    // Read-only permission: a write open is denied by the device cgroup.
    let ro = b.ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/net/tun:/dev/tunr:r",
        "bb:1",
        "sh",
        "-c",
        "echo x 2>&1 > /dev/tunr; echo rc=$?",
    ]);
    assert!(ro.contains("rc=1"), "{ro}");
    // A directory brings every device under it; inspect shows the mapping.
    b.ok(&[
        "run", "-d", "--name", "dv", "--device", "/dev/net", "bb:1", "sleep", "100",
    ]);
    assert!(b.ok(&["exec", "dv", "ls", "/dev/net"]).contains("tun"));
    let v = inspect(&b, "dv");
    assert_eq!(v["HostConfig"]["Devices"][0]["PathOnHost"], "/dev/net");
    assert_eq!(v["HostConfig"]["Devices"][0]["CgroupPermissions"], "rwm");
    b.ok(&["rm", "-f", "dv"]);
}

#[test]
fn volume_labels_filters_and_driver_options() {
    require_root!();
    let (b, d) = with_busybox("volopts");
    b.ok(&["volume", "create", "--label", "tier=db", "plain"]);
    b.ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=2m",
        "scratch",
    ]);
    let host = d.path().join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("kept"), "host data\n").unwrap();
    let dev = format!("device={}", host.display());
    b.ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        &dev,
        "-o",
        "o=bind",
        "hostvol",
    ]);
    assert_eq!(b.ok(&["volume", "ls", "-q", "--filter", "label=tier=db"]), "plain\n");
    assert_eq!(b.ok(&["volume", "ls", "-q", "--filter", "name=scr"]), "scratch\n");
    let v: Value = serde_json::from_str(&b.ok(&["volume", "inspect", "plain", "scratch"])).unwrap();
    assert_eq!(v[0]["Labels"]["tier"], "db");
    assert_eq!(v[1]["Options"]["type"], "tmpfs");
    // The tmpfs option: the volume is a tmpfs of that size in the container.
    let m = b.ok(&[
        "run",
        "--rm",
        "-v",
        "scratch:/s",
        "bb:1",
        "sh",
        "-c",
        "mount | grep ' /s '",
    ]);
    assert!(m.contains("tmpfs") && m.contains("size=2048k"), "{m}");
    // The bind option: the host directory, read and written through the volume...
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-v",
            "hostvol:/h",
            "bb:1",
            "sh",
            "-c",
            "cat /h/kept; echo more > /h/new"
        ]),
        "host data\n"
    );
    assert_eq!(std::fs::read_to_string(host.join("new")).unwrap(), "more\n");
    // ...and never deleted with the volume.
    b.ok(&["volume", "rm", "plain", "scratch", "hostvol"]);
    assert!(host.join("kept").exists() && host.join("new").exists());
    assert_eq!(b.ok(&["volume", "ls", "-q"]), "");
    let e = b.fails(&["volume", "create", "-o", "size=1", "bad"]);
    assert!(e.contains("invalid option key"), "{e}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(b.root.path().to_str().unwrap()),
        "a volume mount was left"
    );
}
