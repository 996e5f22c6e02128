//! Shared namespaces: `--pid`, `--ipc`, `--uts` and `--network container:X`, which pods
//! are made of.

use berth_testutil::require_root;

use crate::containers::with_busybox;

#[test]
fn pid_ipc_and_uts_namespaces_are_joined_from_another_container_or_the_host() {
    require_root!();
    let (b, _img) = with_busybox("nsmodes");
    b.ok(&[
        "run",
        "-d",
        "--name",
        "ns-holder",
        "--hostname",
        "holder",
        "bb:1",
        "sleep",
        "300",
    ]);
    let ns = |args: &[&str], which: &str| {
        let mut a = args.to_vec();
        a.extend_from_slice(&["readlink", which]);
        b.ok(&a).trim().to_string()
    };
    let held = |which: &str| ns(&["exec", "ns-holder"], which);
    let run = |flags: &[&str], which: &str| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(flags);
        a.push("bb:1");
        ns(&a, which)
    };
    // Joined: the same namespace as the holder's; not joined: another one.
    for (flag, which) in [
        ("--pid", "/proc/self/ns/pid"),
        ("--ipc", "/proc/self/ns/ipc"),
        ("--uts", "/proc/self/ns/uts"),
    ] {
        if flag != "--uts" {
            assert_eq!(run(&[flag, "container:ns-holder"], which), held(which), "{flag}");
        }
        assert_ne!(run(&[], which), held(which), "{flag}");
        let host = std::fs::read_link(which).unwrap();
        assert_eq!(run(&[flag, "host"], which), host.display().to_string(), "{flag} host");
    }
    // In the holder's PID namespace its sleep is PID 1.
    let cmd = b.ok(&[
        "run",
        "--rm",
        "--pid",
        "container:ns-holder",
        "bb:1",
        "cat",
        "/proc/1/cmdline",
    ]);
    assert!(cmd.starts_with("sleep"), "{cmd:?}");
    // The holder's hostname through its UTS namespace, via the network mode's partner flag.
    let name = b.ok(&[
        "run",
        "--rm",
        "--uts",
        "container:ns-holder",
        "--network",
        "container:ns-holder",
        "bb:1",
        "hostname",
    ]);
    assert_eq!(name.trim(), "holder");
    let e = b.fails(&["run", "--rm", "--pid", "container:nosuch", "bb:1", "true"]);
    assert!(e.contains("nosuch"), "{e}");
    let e = b.fails(&["run", "--rm", "--ipc", "bogus", "bb:1", "true"]);
    assert!(e.contains("--ipc"), "{e}");
    b.ok(&["rm", "-f", "ns-holder"]);
}

/// A port no one listens on now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// Retries `f` for a few seconds until it gives Some.
pub(crate) fn eventually<T>(f: impl Fn() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn containers_of_a_pod_share_localhost_the_pods_ports_and_its_hosts_file() {
    require_root!();
    let (b, _img) = with_busybox("pods-net");
    let port = free_port();
    let id = b.ok(&["pod", "create", "--name", "pweb", "-p", &format!("127.0.0.1:{port}:80")]);
    assert_eq!(id.trim().len(), 64, "{id}");
    b.ok(&[
        "run",
        "-d",
        "--pod",
        "pweb",
        "--name",
        "pweb-srv",
        "bb:1",
        "sh",
        "-c",
        "mkdir -p /www && echo hello-pod > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    // Another container of the pod reaches the server on localhost.
    let got = eventually(|| {
        let o = b
            .cmd(&[
                "run",
                "--rm",
                "--pod",
                "pweb",
                "bb:1",
                "wget",
                "-qO-",
                "http://127.0.0.1/",
            ])
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&o.stdout).to_string();
        s.contains("hello-pod").then_some(s)
    });
    assert_eq!(got.trim(), "hello-pod");
    // The host reaches it through the pod's published port.
    let page = eventually(|| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.contains("hello-pod").then_some(out)
    });
    assert!(page.contains("200"), "{page}");
    // Its hosts file names the pod and its containers; its hostname is the pod's.
    let hosts = b.ok(&["exec", "pweb-srv", "cat", "/etc/hosts"]);
    assert!(hosts.contains("pweb") && hosts.contains("pweb-srv"), "{hosts}");
    assert_eq!(b.ok(&["exec", "pweb-srv", "hostname"]).trim(), "pweb");
    let ps = b.ok(&["pod", "ps"]);
    assert!(ps.contains("pweb") && ps.contains("Running"), "{ps}");
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["pod", "inspect", "pweb"])).unwrap();
    assert_eq!(v[0]["State"], "Running");
    assert_eq!(v[0]["NumContainers"], 2);
    assert_eq!(
        b.ok(&["pod", "inspect", "-f", "{{.Name}} {{len .SharedNamespaces}}", "pweb"])
            .trim(),
        "pweb 3"
    );
    // Removed with all it made.
    let e = b.fails(&["pod", "rm", "pweb"]);
    assert!(e.contains("running"), "{e}");
    b.ok(&["pod", "rm", "-f", "pweb"]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert_eq!(b.ok(&["pod", "ps", "-q"]), "");
    std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_err();
}

#[test]
fn bad_pod_input_is_refused_with_nothing_half_made() {
    require_root!();
    let (b, _img) = with_busybox("pods-bad");
    let e = b.fails(&["run", "--rm", "--pod", "nosuch", "bb:1", "true"]);
    assert!(e.contains("no such pod"), "{e}");
    b.ok(&["pod", "create", "--name", "pbad"]);
    let e = b.fails(&["pod", "create", "--name", "pbad"]);
    assert!(e.contains("already exists"), "{e}");
    let e = b.fails(&["run", "--rm", "--pod", "pbad", "-p", "8080:80", "bb:1", "true"]);
    assert!(
        e.contains("published or exposed ports must be defined when the pod is created"),
        "{e}"
    );
    let e = b.fails(&["run", "--rm", "--pod", "pbad", "--network", "none", "bb:1", "true"]);
    assert!(e.contains("network cannot be configured"), "{e}");
    let e = b.fails(&["pod", "create", "--name", "pbad2", "--share", "ipc,bogus"]);
    assert!(e.contains("bogus"), "{e}");
    b.ok(&["create", "--name", "taken", "bb:1", "true"]);
    let e = b.fails(&["create", "--pod", "pbad", "--name", "taken", "bb:1", "true"]);
    assert!(e.contains("already in use"), "{e}");
    let e = b.fails(&["run", "--pod", "new:pnew", "--name", "taken", "bb:1", "true"]);
    assert!(e.contains("already in use"), "{e}");
    // Nothing half-made: one pod, its infra and the one container.
    assert_eq!(b.ok(&["pod", "ps", "--format", "{{.Name}}"]).trim(), "pbad");
    assert_eq!(b.ok(&["ps", "-aq"]).lines().count(), 2);
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["pod", "inspect", "pbad"])).unwrap();
    assert_eq!(v[0]["NumContainers"], 1);
    b.ok(&["rm", "taken"]);
    b.ok(&["pod", "rm", "pbad"]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn a_pods_limits_hold_for_its_containers_together_and_pid_can_be_shared() {
    require_root!();
    let (b, _img) = with_busybox("pods-limits");
    let id = b.ok(&[
        "pod",
        "create",
        "--name",
        "plim",
        "--memory",
        "32m",
        "--share",
        "ipc,net,uts,pid",
    ]);
    let id = id.trim();
    // With pid shared, one container sees another's processes.
    b.ok(&[
        "run",
        "-d",
        "--pod",
        "plim",
        "--name",
        "plim-sleep",
        "bb:1",
        "sleep",
        "301",
    ]);
    let seen = b.ok(&[
        "run",
        "--rm",
        "--pod",
        "plim",
        "bb:1",
        "sh",
        "-c",
        "cat /proc/[0-9]*/cmdline | tr '\\0' ' '",
    ]);
    assert!(seen.contains("sleep 301"), "{seen}");
    // The pod's cgroup carries the limit, on whichever hierarchy holds memory.
    let v1 = std::path::PathBuf::from(format!("/sys/fs/cgroup/memory/berth/pod-{}", &id[..12]));
    let v2 = std::path::PathBuf::from(format!("/sys/fs/cgroup/berth/pod-{}", &id[..12]));
    let limit = std::fs::read_to_string(v1.join("memory.limit_in_bytes"))
        .or_else(|_| std::fs::read_to_string(v2.join("memory.max")))
        .unwrap();
    assert_eq!(limit.trim(), "33554432");
    // A container that takes more than the pod has is OOM-killed, and that is reported.
    let o = b
        .cmd(&[
            "run",
            "--pod",
            "plim",
            "--name",
            "plim-hog",
            "bb:1",
            "sh",
            "-c",
            "head -c 100m /dev/zero | tail >/dev/null",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(137), "{o:?}");
    assert_eq!(
        b.ok(&["inspect", "-f", "{{.State.OOMKilled}}", "plim-hog"]).trim(),
        "true"
    );
    b.ok(&["pod", "rm", "-f", "plim"]);
    assert!(!v1.exists() && !v2.exists(), "the pod's cgroup is left");
    // CPUs and processes likewise.
    let id = b.ok(&[
        "pod",
        "create",
        "--name",
        "plim2",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "--share",
        "cgroup,net",
    ]);
    b.ok(&["run", "-d", "--pod", "plim2", "bb:1", "sleep", "300"]);
    let dir = |v1: &str| {
        let p = std::path::PathBuf::from(format!("/sys/fs/cgroup/{v1}/berth/pod-{}", &id.trim()[..12]));
        if p.exists() {
            p
        } else {
            std::path::PathBuf::from(format!("/sys/fs/cgroup/berth/pod-{}", &id.trim()[..12]))
        }
    };
    let read = |v1: &str, file: &str| std::fs::read_to_string(dir(v1).join(file)).unwrap_or_default();
    assert_eq!(read("pids", "pids.max").trim(), "50");
    let quota = read("cpu", "cpu.cfs_quota_us");
    let quota = if quota.is_empty() {
        read("cpu", "cpu.max")
    } else {
        quota
    };
    assert!(quota.trim() == "50000" || quota.starts_with("50000 100000"), "{quota}");
    let shared = b.ok(&["pod", "inspect", "-f", "{{json .SharedNamespaces}}", "plim2"]);
    assert_eq!(shared.trim(), r#"["cgroup","net"]"#);
    b.ok(&["pod", "rm", "-f", "plim2"]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn a_pod_starts_its_containers_in_order_and_stops_them_before_its_infra() {
    require_root!();
    let (b, _img) = with_busybox("pods-order");
    let log = berth_testutil::TempDir::new("pods-order-log");
    let bind = format!("{}:/log", log.path().display());
    b.ok(&["pod", "create", "--name", "pord"]);
    for name in ["pord-a", "pord-b"] {
        let script = format!(
            "echo {name}-start >> /log/order; trap 'echo {name}-stop >> /log/order; exit 0' TERM; while :; do sleep 0.1; done"
        );
        b.ok(&[
            "create", "--pod", "pord", "--name", name, "-v", &bind, "bb:1", "sh", "-c", &script,
        ]);
    }
    let read = || std::fs::read_to_string(log.path().join("order")).unwrap_or_default();
    b.ok(&["pod", "start", "pord"]);
    eventually(|| (read().lines().count() == 2).then_some(()));
    assert_eq!(read(), "pord-a-start\npord-b-start\n");
    let infra = b.ok(&["pod", "inspect", "-f", "{{.InfraContainerID}}", "pord"]);
    b.ok(&["pod", "stop", "pord"]);
    assert_eq!(read(), "pord-a-start\npord-b-start\npord-b-stop\npord-a-stop\n");
    assert_eq!(
        b.ok(&["inspect", "-f", "{{.State.Status}}", infra.trim()]).trim(),
        "exited"
    );
    assert_eq!(b.ok(&["pod", "ps", "--format", "{{.Status}}"]).trim(), "Exited");
    b.ok(&["pod", "restart", "pord"]);
    eventually(|| (read().lines().count() == 6).then_some(()));
    assert!(read().ends_with("pord-a-start\npord-b-start\n"), "{}", read());
    b.ok(&["pod", "rm", "-f", "pord"]);
}

#[test]
fn pods_removed_in_a_loop_leave_nothing_behind() {
    require_root!();
    let (b, _img) = with_busybox("pods-leak");
    let port = free_port();
    let root = b.root.path().display().to_string();
    let mounts = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&root))
            .count()
    };
    let before = mounts();
    let mut made = Vec::new();
    for i in 0..20 {
        let name = format!("pleak{i}");
        let id = b.ok(&["pod", "create", "--name", &name, "-p", &format!("127.0.0.1:{port}:80")]);
        b.ok(&["run", "-d", "--pod", &name, "bb:1", "sleep", "30"]);
        let infra = b.ok(&["pod", "inspect", "-f", "{{.InfraContainerID}}", &name]);
        b.ok(&["pod", "rm", "-f", &name]);
        made.push((id.trim().to_string(), infra.trim().to_string()));
    }
    assert_eq!(b.ok(&["pod", "ps", "-q"]), "");
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert_eq!(mounts(), before, "mounts under the data root");
    let netns: Vec<_> = std::fs::read_dir(b.root.path().join("run/netns"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name())
                .filter(|n| !n.to_string_lossy().starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    assert!(netns.is_empty(), "network namespaces left: {netns:?}");
    for (pod, infra) in &made {
        // The kernel takes a namespace's veth down in the background, after its last user.
        let veth = format!("/sys/class/net/vb{}", &infra[..11]);
        eventually(|| (!std::path::Path::new(&veth).exists()).then_some(()));
        for dir in [
            "/sys/fs/cgroup/memory/berth",
            "/sys/fs/cgroup/pids/berth",
            "/sys/fs/cgroup/berth",
            "/sys/fs/cgroup/unified/berth",
        ] {
            let cg = format!("{dir}/pod-{}", &pod[..12]);
            assert!(!std::path::Path::new(&cg).exists(), "{cg} left");
        }
    }
    if let Ok(o) = std::process::Command::new("nft").args(["list", "ruleset"]).output() {
        let rules = String::from_utf8_lossy(&o.stdout);
        assert!(
            !rules.contains(&format!("dport {port}")),
            "a rule for port {port} is left"
        );
    }
}

#[test]
fn an_infra_that_dies_takes_its_containers_and_exit_policy_stop_takes_the_infra() {
    require_root!();
    let (b, _img) = with_busybox("pods-exit");
    let status = |pod: &str| {
        b.ok(&[
            "pod",
            "ps",
            "--filter",
            &format!("name={pod}"),
            "--format",
            "{{.Status}}",
        ])
        .trim()
        .to_string()
    };
    // The infra killed: the pod's containers are stopped with it.
    b.ok(&["pod", "create", "--name", "pdie"]);
    b.ok(&[
        "run",
        "-d",
        "--pod",
        "pdie",
        "--name",
        "pdie-a",
        "bb:1",
        "sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 0.1; done",
    ]);
    let infra = b.ok(&["pod", "inspect", "-f", "{{.InfraContainerID}}", "pdie"]);
    b.ok(&["kill", infra.trim()]);
    eventually(|| (b.ok(&["inspect", "-f", "{{.State.Running}}", "pdie-a"]).trim() == "false").then_some(()));
    assert_eq!(status("pdie"), "Exited");
    // Exit policy stop: the last container to exit stops the infra.
    b.ok(&["pod", "create", "--name", "pstop", "--exit-policy", "stop"]);
    b.ok(&["run", "-d", "--pod", "pstop", "bb:1", "sleep", "0.3"]);
    eventually(|| (status("pstop") == "Exited").then_some(()));
    // The default, continue: the pod stays up.
    b.ok(&["pod", "create", "--name", "pcont"]);
    b.ok(&["run", "--pod", "pcont", "bb:1", "true"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(status("pcont"), "Degraded");
    let e = b.fails(&["pod", "create", "--name", "pbadpol", "--exit-policy", "sometimes"]);
    assert!(e.contains("exit policy"), "{e}");
    for p in ["pdie", "pstop", "pcont"] {
        b.ok(&["pod", "rm", "-f", p]);
    }
}

#[test]
fn a_pod_pauses_and_outlives_every_berth_process_that_keeps_it() {
    require_root!();
    let (b, _img) = with_busybox("pods-kill");
    let status = || b.ok(&["pod", "ps", "--format", "{{.Status}}"]).trim().to_string();
    b.ok(&["pod", "create", "--name", "pk"]);
    let a = b.ok(&[
        "run",
        "-d",
        "--pod",
        "pk",
        "--name",
        "pk-a",
        "bb:1",
        "sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 0.1; done",
    ]);
    b.ok(&["pod", "pause", "pk"]);
    assert_eq!(status(), "Paused");
    assert_eq!(b.ok(&["inspect", "-f", "{{.State.Paused}}", "pk-a"]).trim(), "true");
    b.ok(&["pod", "unpause", "pk"]);
    assert_eq!(status(), "Running");
    // SIGKILL to every berth process that keeps the pod's containers: each monitor and the
    // keeper above it.
    let infra = b.ok(&["pod", "inspect", "-f", "{{.InfraContainerID}}", "pk"]);
    for id in [infra.trim(), a.trim()] {
        let st: serde_json::Value = serde_json::from_slice(
            &std::fs::read(b.root.path().join("containers").join(id).join("state.json")).unwrap(),
        )
        .unwrap();
        let monitor = st["monitor_pid"].as_i64().unwrap();
        let keeper = crate::hardening::parent_of(monitor);
        let comm = std::fs::read_to_string(format!("/proc/{keeper}/comm")).unwrap_or_default();
        let mut victims = vec![monitor];
        if comm.starts_with("berth") {
            victims.push(i64::from(keeper));
        }
        for pid in victims {
            // 0 or -1 would be this test's process group, or everything.
            assert!(pid > 1, "no such berth process: {pid}");
            std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Still running, and still berth's to manage.
    assert_eq!(status(), "Running");
    assert_eq!(b.ok(&["exec", "pk-a", "hostname"]).trim(), "pk");
    b.ok(&["pod", "stop", "pk"]);
    assert_eq!(status(), "Exited");
    b.ok(&["pod", "start", "pk"]);
    assert_eq!(status(), "Running");
    b.ok(&["pod", "rm", "-f", "pk"]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn a_pods_restart_policy_infra_image_and_dns_alias() {
    require_root!();
    let (b, _img) = with_busybox("pods-more");
    // --restart is the policy of the pod's containers that set none.
    b.ok(&["pod", "create", "--name", "prs", "--restart", "on-failure:2"]);
    b.ok(&[
        "run", "-d", "--pod", "prs", "--name", "prs-fail", "bb:1", "sh", "-c", "exit 3",
    ]);
    assert_eq!(
        b.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
            "prs-fail"
        ])
        .trim(),
        "on-failure:2"
    );
    eventually(|| (b.ok(&["inspect", "-f", "{{.RestartCount}}", "prs-fail"]).trim() == "2").then_some(()));
    // --infra-image and --infra-command: the infra runs that instead of berth's pause.
    b.ok(&[
        "pod",
        "create",
        "--name",
        "pimg",
        "--infra-image",
        "bb:1",
        "--infra-command",
        "sleep 600",
    ]);
    b.ok(&["run", "-d", "--pod", "pimg", "bb:1", "sleep", "600"]);
    let infra = b.ok(&["pod", "inspect", "-f", "{{.InfraContainerID}}", "pimg"]);
    assert_eq!(
        b.ok(&["inspect", "-f", "{{json .Config.Entrypoint}}", infra.trim()])
            .trim(),
        r#"["sleep","600"]"#
    );
    let e = b.fails(&["pod", "create", "--name", "pcmd", "--infra-command", "sleep 1"]);
    assert!(e.contains("--infra-image"), "{e}");
    // On a user network the pod's name is a DNS name of its address.
    let net = format!("pnet{}", std::process::id());
    b.ok(&["network", "create", &net]);
    b.ok(&["pod", "create", "--name", "pdns", "--network", &net]);
    b.ok(&["run", "-d", "--pod", "pdns", "bb:1", "sleep", "600"]);
    let ip = b.ok(&["pod", "inspect", "-f", "{{.InfraContainerID}}", "pdns"]);
    let ip = b.ok(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
        ip.trim(),
    ]);
    let seen = b.ok(&["run", "--rm", "--network", &net, "bb:1", "nslookup", "pdns"]);
    assert!(seen.contains(ip.trim()), "{seen} / {ip}");
    for p in ["prs", "pimg", "pdns"] {
        b.ok(&["pod", "rm", "-f", p]);
    }
    b.ok(&["network", "rm", &net]);
}

#[test]
fn pod_top_stats_and_logs_cover_every_container() {
    require_root!();
    let (b, _img) = with_busybox("pods-views");
    b.ok(&["pod", "create", "--name", "pv"]);
    for (name, word) in [("pv-a", "alpha"), ("pv-b", "beta")] {
        b.ok(&[
            "run",
            "-d",
            "--pod",
            "pv",
            "--name",
            name,
            "bb:1",
            "sh",
            "-c",
            &format!("echo {word}; exec sleep 60{}", if name == "pv-a" { "1" } else { "2" }),
        ]);
    }
    let logs = eventually(|| {
        let l = b.ok(&["pod", "logs", "pv"]);
        (l.contains("alpha") && l.contains("beta")).then_some(l)
    });
    assert_eq!(logs, "alpha\nbeta\n");
    let top = b.ok(&["pod", "top", "pv"]);
    assert!(
        top.contains("sleep 601") && top.contains("sleep 602") && top.contains("PID"),
        "{top}"
    );
    let stats = b.ok(&["pod", "stats", "--no-stream", "--format", "{{.Name}}", "pv"]);
    let mut names: Vec<&str> = stats.lines().collect();
    names.sort_unstable();
    assert_eq!(names.len(), 3, "{stats}");
    assert!(names.contains(&"pv-a") && names.contains(&"pv-b"), "{stats}");
    b.ok(&["pod", "kill", "pv"]);
    eventually(|| (b.ok(&["pod", "ps", "--format", "{{.Status}}"]).trim() == "Exited").then_some(()));
    let e = b.fails(&["pod", "top", "pv"]);
    assert!(e.contains("not running"), "{e}");
    b.ok(&["pod", "rm", "pv"]);
}
