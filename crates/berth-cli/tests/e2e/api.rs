//! `berth daemon` driven by the real `docker` CLI (DOCKER_HOST on berth's socket).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_testutil::{require_root, require_tool, TempDir};

use crate::containers::with_busybox;
use crate::images::Berth;

/// A berth daemon on a socket of its own; killed by pid on drop.
pub(crate) struct Daemon {
    child: Option<Child>,
    sock: PathBuf,
    cfg: TempDir,
    _dir: TempDir,
}

impl Daemon {
    /// Runs docker-compose against this daemon in `dir` for `project`; must succeed.
    /// Its stdout and stderr.
    pub(crate) fn docker_compose(&self, dir: &std::path::Path, project: &str, args: &[&str]) -> String {
        let o = Command::new("docker-compose")
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.cfg.path())
            .current_dir(dir)
            .arg("-p")
            .arg(project)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "docker-compose {args:?}: {text}");
        text
    }

    pub(crate) fn start(b: &Berth, dir: TempDir) -> Daemon {
        let sock = dir.path().join("berth.sock");
        let mut d = Daemon {
            child: None,
            sock,
            cfg: TempDir::new("api-docker-cfg"),
            _dir: dir,
        };
        d.restart(b);
        d
    }

    fn restart(&mut self, b: &Berth) {
        let log = std::fs::File::create(self._dir.path().join("daemon.log")).unwrap();
        let child = b
            .cmd(&["daemon", "-H", &format!("unix://{}", self.sock.display())])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.sock).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "the daemon did not listen: {}",
            std::fs::read_to_string(self._dir.path().join("daemon.log")).unwrap_or_default()
        );
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn docker(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.cfg.path())
            .args(args)
            .stdin(Stdio::null());
        // A hung client must not hang the suite.
        let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let pid = child.id();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        let killer = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline && !flag.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if !flag.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        });
        let _ = child.stdin.take();
        let out = child.wait_with_output().unwrap();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = killer.join();
        out
    }

    /// `docker events` from `since` (seconds) until now, filtered and formatted.
    pub(crate) fn events_since(&self, since: u64, filter: &str, format: &str) -> String {
        let until = (now_secs() + 1).to_string();
        self.ok(&[
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until,
            "--filter",
            filter,
            "--format",
            format,
        ])
    }

    pub(crate) fn sock(&self) -> &std::path::Path {
        &self.sock
    }

    pub(crate) fn config(&self) -> &std::path::Path {
        self.cfg.path()
    }

    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?} failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Seconds since the epoch (what `docker events --since/--until` take).
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn docker_cli_runs_lists_logs_stops_and_removes_through_the_daemon() {
    require_root!();
    require_tool!("docker");
    let (b, _img) = with_busybox("api-docker");
    let d = Daemon::start(&b, TempDir::new("api-docker-sock"));
    // Version negotiation and system info.
    let v = d.ok(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.Os}} {{.Server.MinAPIVersion}}",
    ]);
    assert_eq!(v.trim(), "1.45 linux 1.24");
    let info = d.ok(&["info", "--format", "{{.Driver}} {{.OSType}} {{.Images}}"]);
    assert!(info.starts_with("overlay2 linux "), "{info}");
    assert!(d
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .lines()
        .any(|l| l == "bb:1"));
    assert!(d
        .ok(&["image", "inspect", "--format", "{{.Id}}", "bb:1"])
        .starts_with("sha256:"));
    // Reference filters are globs, as dockerd's; an unknown filter is refused.
    assert_eq!(
        d.ok(&[
            "images",
            "--filter",
            "reference=b*",
            "--format",
            "{{.Repository}}:{{.Tag}}"
        ]),
        "bb:1\n"
    );
    assert_eq!(d.ok(&["images", "-q", "--filter", "reference=nomatch*"]), "");
    assert!(!d.docker(&["images", "--filter", "nosuch=1"]).status.success());
    let t0 = now_secs();
    // Foreground run: output on both streams, exit code, --rm.
    let o = d.docker(&["run", "--rm", "bb:1", "sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    assert_eq!(b.ok(&["ps", "-aq"]), "", "--rm left the container");
    // The event log saw that run: create, start, die (with its code), destroy.
    let ev = d.events_since(t0, "type=container", "{{.Action}} {{.Actor.Attributes.exitCode}}");
    let actions: Vec<&str> = ev.lines().collect();
    assert_eq!(
        actions,
        vec!["create <no value>", "start <no value>", "die 7", "destroy <no value>"],
        "{ev}"
    );
    // -e -w -u.
    let out = d.ok(&[
        "run",
        "--rm",
        "-e",
        "GREETING=hi",
        "-w",
        "/tmp",
        "-u",
        "65534",
        "bb:1",
        "sh",
        "-c",
        "echo $GREETING $(pwd) $(id -u)",
    ]);
    assert_eq!(out, "hi /tmp 65534\n");
    // Detached: ps, logs, inspect, stop, wait, rm; berth's CLI sees the same container.
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "bb:1",
        "sh",
        "-c",
        "echo started; trap 'exit 0' TERM; while true; do sleep 0.1; done",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.ok(&["logs", "ticker"]).contains("started") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(d.ok(&["logs", "ticker"]), "started\n");
    assert!(d
        .ok(&["ps", "--format", "{{.Names}} {{.State}}"])
        .lines()
        .any(|l| l == "ticker running"));
    assert!(b.ok(&["ps", "--format", "{{.Names}}"]).lines().any(|l| l == "ticker"));
    assert_eq!(
        d.ok(&["inspect", "--format", "{{.State.Running}} {{.Name}}", "ticker"])
            .trim(),
        "true /ticker"
    );
    // exec: output on both streams, exit code, options, stdin, detached.
    let o = d.docker(&["exec", "ticker", "sh", "-c", "echo in-exec; echo e >&2; exit 4"]);
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "in-exec\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "e\n");
    assert_eq!(
        d.ok(&[
            "exec",
            "-u",
            "65534",
            "-w",
            "/tmp",
            "-e",
            "V=1",
            "ticker",
            "sh",
            "-c",
            "echo $(id -u) $(pwd) $V"
        ]),
        "65534 /tmp 1\n"
    );
    d.ok(&["exec", "-d", "ticker", "touch", "/tmp/detached"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d
        .docker(&["exec", "ticker", "test", "-e", "/tmp/detached"])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "exec -d did not run");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = Command::new("docker");
    c.env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.cfg.path())
        .args(["exec", "-i", "ticker", "sh", "-c", "tr a-z A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"piped through\n").unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "PIPED THROUGH\n");
    // rename, pause/unpause, diff (changes).
    d.ok(&["rename", "ticker", "ticker2"]);
    d.ok(&["rename", "ticker2", "ticker"]);
    d.ok(&["pause", "ticker"]);
    assert_eq!(
        d.ok(&["inspect", "--format", "{{.State.Status}}", "ticker"]).trim(),
        "paused"
    );
    d.ok(&["unpause", "ticker"]);
    d.ok(&["exec", "ticker", "touch", "/made-by-exec"]);
    assert!(d.ok(&["diff", "ticker"]).lines().any(|l| l == "A /made-by-exec"));
    // update: the cgroup sees it at once, inspect keeps it; export; commit; history.
    d.ok(&[
        "update",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        "--restart",
        "on-failure:3",
        "ticker",
    ]);
    assert_eq!(
        d.ok(&[
            "inspect",
            "--format",
            "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
            "ticker"
        ])
        .trim(),
        "67108864 50 on-failure:3"
    );
    let limits = d.ok(&["exec", "ticker", "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; true"]);
    assert!(limits.contains("67108864") && limits.contains("50"), "{limits}");
    let exported = d.docker(&["export", "ticker"]);
    assert!(exported.status.success());
    let listing = {
        let mut t = Command::new("tar")
            .args(["-t"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            t.stdin.take().unwrap().write_all(&exported.stdout).unwrap();
        }
        String::from_utf8_lossy(&t.wait_with_output().unwrap().stdout).into_owned()
    };
    assert!(listing.lines().any(|l| l == "made-by-exec"), "{listing}");
    // The export imported back as an image (`docker import`, the tar in the request body).
    let mut imp = Command::new("docker")
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.cfg.path())
        .args(["import", "-c", "ENV IMPORTED=1", "-", "imported:1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        imp.stdin.take().unwrap().write_all(&exported.stdout).unwrap();
    }
    let o = imp.wait_with_output().unwrap();
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with("sha256:"),
        "{o:?}"
    );
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "imported:1",
            "sh",
            "-c",
            "test -e /made-by-exec && echo $IMPORTED"
        ]),
        "1\n"
    );
    d.ok(&["rmi", "imported:1"]);
    let committed = d.ok(&[
        "commit",
        "-c",
        "ENV COMMITTED=yes",
        "-m",
        "via api",
        "ticker",
        "committed:1",
    ]);
    assert!(committed.trim().starts_with("sha256:"), "{committed}");
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "committed:1",
            "sh",
            "-c",
            "test -e /made-by-exec && echo $COMMITTED"
        ]),
        "yes\n"
    );
    let hist = d.ok(&["history", "--format", "{{.Comment}}|{{.CreatedBy}}", "committed:1"]);
    assert!(hist.lines().next().unwrap_or("").starts_with("via api|"), "{hist}");
    d.ok(&["rmi", "committed:1"]);
    // cp both ways, files and directories, to and from the root.
    let cpdir = TempDir::new("api-cp");
    std::fs::write(cpdir.path().join("f.txt"), "one\n").unwrap();
    std::fs::create_dir_all(cpdir.path().join("d")).unwrap();
    std::fs::write(cpdir.path().join("d/g.txt"), "two\n").unwrap();
    d.ok(&["cp", cpdir.path().join("f.txt").to_str().unwrap(), "ticker:/"]);
    d.ok(&["cp", cpdir.path().join("d").to_str().unwrap(), "ticker:/tmp/dd"]);
    assert_eq!(
        d.ok(&["exec", "ticker", "cat", "/f.txt", "/tmp/dd/g.txt"]),
        "one\ntwo\n"
    );
    let back = cpdir.path().join("back");
    d.ok(&["cp", "ticker:/tmp/dd", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(back.join("g.txt")).unwrap(), "two\n");
    d.ok(&["cp", "ticker:/f.txt", cpdir.path().join("f2.txt").to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(cpdir.path().join("f2.txt")).unwrap(), "one\n");
    assert!(!d
        .docker(&["cp", "ticker:/nope", cpdir.path().to_str().unwrap()])
        .status
        .success());
    // The container's own view: /etc/hostname is bind-mounted, not the rootfs's empty file;
    // a file and a directory holding it, and a tar on stdout.
    let hostname = d.ok(&["exec", "ticker", "hostname"]);
    assert!(!hostname.trim().is_empty());
    let out = cpdir.path().join("out");
    d.ok(&["cp", "ticker:/etc/hostname", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), hostname);
    let etc = cpdir.path().join("etc-copy");
    d.ok(&["cp", "ticker:/etc", etc.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(etc.join("hostname")).unwrap(), hostname);
    let o = d.docker(&["cp", "ticker:/etc/hostname", "-"]);
    assert!(o.status.success());
    let mut ar = tar::Archive::new(o.stdout.as_slice());
    let mut e = ar.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(e.path().unwrap().to_str(), Some("hostname"));
    let mut text = String::new();
    std::io::Read::read_to_string(&mut e, &mut text).unwrap();
    assert_eq!(text, hostname);
    // top, stats, tag, rmi, system df.
    assert!(d.ok(&["top", "ticker"]).lines().next().unwrap().contains("PID"));
    // ps options go to the host's ps, Docker's way; without a PID column there is no top.
    let top = d.ok(&["top", "ticker", "-o", "pid,args"]);
    assert!(top.starts_with("PID") && top.contains("while true"), "{top}");
    assert!(!d.docker(&["top", "ticker", "-o", "user"]).status.success());
    // Sizes: the writable layer and the whole root filesystem.
    let sizes = d.ok(&["inspect", "--size", "--format", "{{.SizeRw}} {{.SizeRootFs}}", "ticker"]);
    let sizes: Vec<u64> = sizes.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert!(sizes.len() == 2 && sizes[1] > sizes[0], "{sizes:?}");
    assert!(d.ok(&["ps", "-s", "--format", "{{.Size}}"]).contains("virtual"));
    let st = d.ok(&["stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "ticker"]);
    assert!(st.starts_with("ticker "), "{st}");
    d.ok(&["tag", "bb:1", "retagged:2"]);
    assert_eq!(
        d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}", "retagged"])
            .trim(),
        "retagged:2"
    );
    assert!(d.ok(&["rmi", "retagged:2"]).contains("Untagged: retagged:2"));
    let ev = d.events_since(t0, "type=image", "{{.Action}} {{.Actor.Attributes.name}}");
    assert!(
        ev.lines().any(|l| l == "tag retagged:2") && ev.lines().any(|l| l == "untag retagged:2"),
        "{ev}"
    );
    assert!(d.ok(&["system", "df"]).contains("Images"));
    // push to and pull from a local registry through the API.
    {
        let reg = berth_testutil::images::Registry::start("api-registry", berth_testutil::images::Auth::Open);
        let remote = format!("{}/api/bb:1", reg.host);
        d.ok(&["tag", "bb:1", &remote]);
        let out = d.ok(&["push", &remote]);
        assert!(out.contains("digest: sha256:"), "{out}");
        d.ok(&["rmi", &remote]);
        let out = d.ok(&["pull", &remote]);
        assert!(out.contains("Status: "), "{out}");
        assert_eq!(d.ok(&["run", "--rm", &remote, "echo", "pulled"]), "pulled\n");
        d.ok(&["rmi", &remote]);
    }
    // docker build (multi-stage) through the daemon, then run the result.
    let ctx = TempDir::new("api-build");
    std::fs::write(ctx.path().join("msg"), "built through the API\n").unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM bb:1 AS first\nCOPY msg /msg\nRUN cat /msg > /copy\nFROM bb:1\nCOPY --from=first /copy /out\nCMD [\"cat\", \"/out\"]\n",
    )
    .unwrap();
    let out = d.ok(&["build", "-t", "apibuilt:1", ctx.path().to_str().unwrap()]);
    assert!(
        out.contains("Successfully tagged apibuilt:1") || d.ok(&["images", "-q", "apibuilt:1"]).trim().len() == 12,
        "{out}"
    );
    assert_eq!(d.ok(&["run", "--rm", "apibuilt:1"]), "built through the API\n");
    // save and load round-trip an image through the API.
    let dir = TempDir::new("api-save");
    let tar = dir.path().join("img.tar");
    d.ok(&["tag", "bb:1", "saved:1"]);
    d.ok(&["save", "-o", tar.to_str().unwrap(), "saved:1"]);
    d.ok(&["rmi", "saved:1"]);
    assert!(d
        .ok(&["load", "-i", tar.to_str().unwrap()])
        .contains("Loaded image: saved:1"));
    assert_eq!(d.ok(&["run", "--rm", "saved:1", "echo", "loaded"]), "loaded\n");
    d.ok(&["rmi", "saved:1"]);
    // The daemon dies (SIGKILL); the container lives on and the next daemon manages it.
    let mut d = d;
    d.kill9();
    assert_eq!(
        b.ok(&["inspect", "--format", "{{.State.Status}}", "ticker"]).trim(),
        "running"
    );
    d.restart(&b);
    d.ok(&["stop", "-t", "5", "ticker"]);
    assert_eq!(d.ok(&["wait", "ticker"]).trim(), "0");
    assert_eq!(
        d.ok(&["inspect", "--format", "{{.State.Status}}", "ticker"]).trim(),
        "exited"
    );
    d.ok(&["rm", "ticker"]);
    // A container berth's CLI made shows through the API.
    b.ok(&["run", "-d", "--name", "fromcli", "bb:1", "sleep", "100"]);
    assert!(d.ok(&["ps", "--format", "{{.Names}}"]).lines().any(|l| l == "fromcli"));
    d.ok(&["kill", "fromcli"]);
    assert_eq!(d.ok(&["wait", "fromcli"]).trim(), "137");
    d.ok(&["rm", "-f", "fromcli"]);
    // Volumes and networks: a named volume shared by two runs; a user network on which a
    // container finds another by its alias.
    assert_eq!(d.ok(&["volume", "create", "--label", "k=v", "apivol"]).trim(), "apivol");
    assert_eq!(d.ok(&["volume", "ls", "-q", "--filter", "label=k=v"]).trim(), "apivol");
    assert_eq!(d.ok(&["volume", "ls", "-q", "--filter", "label=k=other"]).trim(), "");
    d.ok(&["volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "apitmp"]);
    let m = d.ok(&[
        "run",
        "--rm",
        "-v",
        "apitmp:/t",
        "bb:1",
        "sh",
        "-c",
        "mount | grep ' /t '",
    ]);
    assert!(m.contains("tmpfs"), "{m}");
    d.ok(&["volume", "rm", "apitmp"]);
    // `-v /path` is an anonymous volume; prune takes only those unless -a.
    d.ok(&["run", "--name", "anonv", "-v", "/anon", "bb:1", "true"]);
    let anon = d.ok(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{.Type}}:{{.Name}}{{end}}",
        "anonv",
    ]);
    assert!(anon.starts_with("volume:"), "{anon}");
    d.ok(&["rm", "anonv"]);
    let pruned = d.ok(&["volume", "prune", "-f"]);
    assert!(pruned.contains(anon.trim().trim_start_matches("volume:")), "{pruned}");
    assert!(
        d.ok(&["volume", "ls", "-q"]).lines().any(|l| l == "apivol"),
        "a named volume was pruned"
    );
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "apivol:/data",
        "bb:1",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(
        d.ok(&["run", "--rm", "-v", "apivol:/data:ro", "bb:1", "cat", "/data/f"]),
        "kept\n"
    );
    assert!(d
        .ok(&["volume", "ls", "--format", "{{.Name}}"])
        .lines()
        .any(|l| l == "apivol"));
    assert_eq!(
        d.ok(&["volume", "inspect", "--format", "{{.Driver}}", "apivol"]).trim(),
        "local"
    );
    let net = format!("apinet{}", b.net);
    d.ok(&["network", "create", &net]);
    assert!(d
        .ok(&["network", "ls", "--format", "{{.Name}}"])
        .lines()
        .any(|l| l == net));
    d.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        &net,
        "--network-alias",
        "web",
        "bb:1",
        "sleep",
        "100",
    ]);
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        &net,
        "bb:1",
        "sh",
        "-c",
        "ping -c1 -W2 web >/dev/null && echo reached",
    ]);
    assert_eq!(out, "reached\n");
    let o = d.docker(&["network", "rm", &net]);
    assert!(!o.status.success(), "a network in use was removed");
    d.ok(&["rm", "-f", "srv"]);
    d.ok(&["network", "rm", &net]);
    d.ok(&["volume", "rm", "apivol"]);
    assert!(!d.ok(&["volume", "ls", "--format", "{{.Name}}"]).contains("apivol"));
    // prune filters: only what they select goes; a filter berth cannot honour is refused,
    // never ignored.
    d.ok(&["run", "--name", "keepme", "--label", "keep=1", "bb:1", "true"]);
    d.ok(&["run", "--name", "dropme", "bb:1", "true"]);
    let pruned = d.ok(&["container", "prune", "-f", "--filter", "label!=keep=1"]);
    assert!(d.docker(&["inspect", "dropme"]).status.code() != Some(0), "{pruned}");
    assert_eq!(d.ok(&["inspect", "--format", "{{.Name}}", "keepme"]).trim(), "/keepme");
    d.ok(&["container", "prune", "-f", "--filter", "until=1h"]);
    assert_eq!(d.ok(&["inspect", "--format", "{{.Name}}", "keepme"]).trim(), "/keepme");
    assert!(!d
        .docker(&["container", "prune", "-f", "--filter", "nosuch=1"])
        .status
        .success());
    assert!(!d
        .docker(&["image", "prune", "-f", "--filter", "label=x"])
        .status
        .success());
    d.ok(&["rm", "keepme"]);
    // prune: a stopped container, then an unused image.
    d.ok(&["run", "--name", "stopped", "bb:1", "true"]);
    assert!(d.ok(&["container", "prune", "-f"]).contains("Deleted Containers"));
    assert!(d.docker(&["inspect", "stopped"]).status.code() != Some(0));
    d.ok(&["tag", "bb:1", "prunable:1"]);
    d.ok(&["image", "prune", "-a", "-f"]);
    assert!(d.docker(&["image", "inspect", "prunable:1"]).status.code() != Some(0));
    // Errors keep Docker's shape.
    let o = d.docker(&["inspect", "nosuch"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("No such"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = d.docker(&["run", "--rm", "nosuch-image:1", "true"]);
    assert!(!o.status.success());
}

#[test]
fn the_api_refuses_bad_requests_and_stays_up() {
    require_root!();
    let b = Berth::new("api-bad");
    let dir = TempDir::new("api-bad-sock");
    let d = Daemon::start(&b, dir);
    let send = |raw: &[u8]| -> String {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&d.sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(raw);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    let post = |path: &str, body: &str| {
        send(format!("POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes())
    };
    let r = post("/v1.45/containers/create", "{not json");
    assert!(r.starts_with("HTTP/1.1 400") && r.contains("invalid JSON"), "{r}");
    let r = post("/containers/create", r#"{"Image": "nosuch:1"}"#);
    assert!(
        r.starts_with("HTTP/1.1 404") && r.contains("No such image: nosuch:1"),
        "{r}"
    );
    // An invalid HostConfig: a field of the wrong type, a limit Docker refuses.
    let r = post(
        "/v1.45/containers/create",
        r#"{"Image": "nosuch:1", "HostConfig": {"Memory": "lots"}}"#,
    );
    assert!(
        r.starts_with("HTTP/1.1 400")
            && r.contains("cannot unmarshal string into Go struct field HostConfig.Memory of type int64"),
        "{r}"
    );
    let r = post(
        "/v1.45/containers/create",
        r#"{"Image": "nosuch:1", "HostConfig": {"Memory": 1000}}"#,
    );
    assert!(
        r.starts_with("HTTP/1.1 400") && r.contains("Minimum memory limit allowed is 6MB"),
        "{r}"
    );
    let r = post("/v1.45/containers/create", r#"{"Image": "nosuch:1", "Env": "A=1"}"#);
    assert!(r.starts_with("HTTP/1.1 400") && r.contains("Config.Env"), "{r}");
    let r = send(b"GET /v1.45/containers/nosuch/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(
        r.starts_with("HTTP/1.1 404") && r.contains(r#""message":"No such container: nosuch""#),
        "{r}"
    );
    let r = send(b"GET /v1.12/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400") && r.contains("too old"), "{r}");
    let r = send(b"GET /v1.45/nothing/here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    let big = "x".repeat(17 << 20);
    let r = post("/containers/create", &big);
    assert!(
        r.starts_with("HTTP/1.1 413") || r.is_empty(),
        "{}",
        &r[..r.len().min(200)]
    );
    // Still up, and /_ping answers with and without a version, GET and HEAD.
    for req in [
        "GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "HEAD /v1.45/_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ] {
        let r = send(req.as_bytes());
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        let lower = r.to_ascii_lowercase();
        for h in [
            "api-version: 1.45",
            "ostype: linux",
            "builder-version: 1",
            "swarm: inactive",
            "cache-control: no-cache",
        ] {
            assert!(lower.contains(h), "{h} missing: {r}");
        }
    }
}

#[test]
fn the_python_sdk_drives_the_daemon() {
    require_root!();
    require_tool!("python3");
    let (b, _img) = with_busybox("api-sdk");
    let d = Daemon::start(&b, TempDir::new("api-sdk-sock"));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/sdk_check.py");
    let prefix = format!("sdk{}", b.net);
    let o = Command::new("python3")
        .arg(&script)
        .arg(format!("unix://{}", d.sock.display()))
        .arg(&prefix)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        out,
        "api 1.45\nrun from-sdk\nlogs started\nexec 3 in-exec 1\nstatus running\nvolume True\nnetwork True\nwait 0\nleft []\n"
    );
}

#[test]
fn docker_compose_brings_up_a_healthchecked_app_and_tears_it_down() {
    require_root!();
    require_tool!("docker-compose");
    let (b, _img) = with_busybox("api-compose");
    let d = Daemon::start(&b, TempDir::new("api-compose-sock"));
    let dir = TempDir::new("api-compose-project");
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        r#"version: "2.4"
services:
  web:
    image: bb:1
    command: ["sh", "-c", "mkdir -p /www && echo hello-compose > /www/index.html && echo kept > /data/v && httpd -f -p 8080 -h /www"]
    volumes:
      - webdata:/data
    networks: [appnet]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      timeout: 2s
      retries: 20
  client:
    image: bb:1
    command: ["sh", "-c", "wget -q -O - http://web:8080/ && sleep 100"]
    networks: [appnet]
    depends_on:
      web:
        condition: service_healthy
  idle:
    image: bb:1
    command: ["sleep", "100"]
    networks: [appnet]
volumes:
  webdata: {}
networks:
  appnet: {}
"#,
    )
    .unwrap();
    let project = format!("bcomp{}", b.net);
    let compose = |args: &[&str]| d.docker_compose(dir.path(), &project, args);
    compose(&["up", "-d"]);
    let ps = compose(&["ps"]);
    for svc in ["web", "client", "idle"] {
        assert!(
            ps.lines()
                .any(|l| l.contains(&format!("{project}_{svc}_1")) && l.contains("Up")),
            "{svc} not up: {ps}"
        );
    }
    assert!(ps.contains("(healthy)"), "{ps}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = compose(&["logs", "client"]);
        if logs.contains("hello-compose") {
            break;
        }
        assert!(Instant::now() < deadline, "the client never reached web: {logs}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // One-off runs on the project's network (compose checks the network's options first),
    // exec into a service, restart, top.
    let out = compose(&["run", "--rm", "idle", "sh", "-c", "wget -q -O - http://web:8080/"]);
    assert!(out.contains("hello-compose"), "{out}");
    let out = compose(&["exec", "-T", "idle", "cat", "/etc/hostname"]);
    assert!(!out.trim().is_empty());
    compose(&["restart", "idle"]);
    assert!(compose(&["top", "idle"]).contains("sleep 100"));
    compose(&["down", "-v"]);
    // Nothing left: no container, no user network, no volume.
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert!(!d.ok(&["network", "ls", "--format", "{{.Name}}"]).contains(&project));
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "");
}

#[test]
fn live_restore_five_containers_survive_a_killed_daemon() {
    require_root!();
    require_tool!("docker");
    let (b, _img) = with_busybox("api-restore");
    let mut d = Daemon::start(&b, TempDir::new("api-restore-sock"));
    let names: Vec<String> = (0..5).map(|i| format!("lr{}x{i}", b.net)).collect();
    for n in &names {
        d.ok(&[
            "run",
            "-d",
            "--name",
            n,
            "bb:1",
            "sh",
            "-c",
            "echo up; trap 'exit 0' TERM; while true; do sleep 0.1; done",
        ]);
    }
    d.kill9();
    for n in &names {
        assert_eq!(
            b.ok(&["inspect", "--format", "{{.State.Status}}", n]).trim(),
            "running",
            "{n} died with the daemon"
        );
    }
    d.restart(&b);
    let running = d.ok(&["ps", "--format", "{{.Names}}"]);
    for n in &names {
        assert!(running.lines().any(|l| l == n), "{n} not listed: {running}");
        assert_eq!(d.ok(&["logs", n]), "up\n");
        assert_eq!(d.ok(&["exec", n, "echo", "still here"]), "still here\n");
    }
    d.ok(&["stop", &names[0]]);
    assert_eq!(d.ok(&["wait", &names[0]]).trim(), "0");
    let mut args = vec!["rm", "-f"];
    args.extend(names.iter().map(String::as_str));
    d.ok(&args);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

/// One raw HTTP/1.1 exchange on the daemon's socket (`Connection: close`); the whole
/// answer, or "" if the daemon dropped the connection without one.
fn exchange(sock: &std::path::Path, method: &str, path: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// xorshift64*: a small seeded generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    fn word(&mut self, xs: &[&'static str]) -> &'static str {
        xs[self.below(xs.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// A value of a random JSON type, sometimes nested.
#[allow(clippy::cast_possible_wrap)]
fn random_json(r: &mut Rng, depth: usize) -> serde_json::Value {
    use serde_json::json;
    let strings = [
        "",
        "a",
        "../../etc",
        "/",
        "-1",
        "1e400",
        "\u{0}",
        "ü",
        "sha256:",
        "tcp",
        "0.0.0.0",
        "80/tcp",
        "bind",
        "always",
    ];
    match r.below(if depth > 3 { 5 } else { 8 }) {
        0 => serde_json::Value::Null,
        1 => json!(r.chance(50)),
        2 => json!(r.next() as i64),
        3 => json!(*r.pick(&[0i64, -1, 1, i64::MAX, i64::MIN, 4096, 65536])),
        4 => json!(r.pick(&strings).to_string()),
        5 => json!(1.5e300),
        6 => serde_json::Value::Array((0..r.below(4)).map(|_| random_json(r, depth + 1)).collect()),
        _ => {
            let keys = [
                "Image",
                "Cmd",
                "Env",
                "HostConfig",
                "Binds",
                "Mounts",
                "PortBindings",
                "Memory",
                "NetworkMode",
                "Name",
                "Driver",
                "IPAM",
                "Config",
                "Subnet",
                "Labels",
                "Healthcheck",
                "AttachStdin",
                "Tty",
                "RestartPolicy",
                "Ulimits",
                "ExposedPorts",
                "Entrypoint",
            ];
            let mut m = serde_json::Map::new();
            for _ in 0..r.below(5) {
                m.insert(r.pick(&keys).to_string(), random_json(r, depth + 1));
            }
            serde_json::Value::Object(m)
        }
    }
}

/// Mutates a valid request body: a field replaced by another type, dropped, or nested.
fn mutate(r: &mut Rng, v: &mut serde_json::Value) {
    if let serde_json::Value::Object(m) = v {
        let keys: Vec<String> = m.keys().cloned().collect();
        if keys.is_empty() {
            return;
        }
        let k = r.pick(&keys).clone();
        match r.below(4) {
            0 => {
                m.remove(&k);
            }
            1 | 2 => {
                let nv = random_json(r, 1);
                m.insert(k, nv);
            }
            _ => {
                if let Some(inner) = m.get_mut(&k) {
                    mutate(r, inner);
                }
            }
        }
    }
}

#[test]
#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
fn fuzzed_requests_get_answers_and_leave_the_daemon_up() {
    use serde_json::json;
    require_root!();
    let b = Berth::new("api-fuzz");
    let d = Daemon::start(&b, TempDir::new("api-fuzz-sock"));
    let seed: u64 = std::env::var("BERTH_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let iters: usize = std::env::var("BERTH_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2500);
    eprintln!("fuzz seed {seed} ({iters} requests; BERTH_FUZZ_SEED replays it)");
    let mut r = Rng(seed);
    // Routes that reach outside (pulls, pushes, logins, builds that pull) or stream without
    // end (events) are left out: everything else is fair game.
    let first = [
        "containers",
        "images",
        "networks",
        "volumes",
        "exec",
        "system",
        "_ping",
        "info",
        "version",
        "commit",
        "distribution",
        "session",
        "swarm",
        "plugins",
        "x",
    ];
    let rest = [
        "json",
        "create",
        "start",
        "stop",
        "restart",
        "kill",
        "wait",
        "logs",
        "top",
        "stats",
        "archive",
        "rename",
        "pause",
        "unpause",
        "resize",
        "update",
        "changes",
        "export",
        "prune",
        "history",
        "tag",
        "get",
        "load",
        "connect",
        "disconnect",
        "df",
        "nosuch",
        "0",
        "..",
        "%2e%2e",
        "%2F",
        "a%00b",
        "ü",
        "",
    ];
    let versions = [
        "/v1.45", "/v1.24", "/v1.44", "/v1.12", "/v9.99", "/v1.", "/vx", "/v1.45.1",
    ];
    let routes = [
        "/containers/json",
        "/containers/create",
        "/containers/{id}/json",
        "/containers/{id}/start",
        "/containers/{id}/stop",
        "/containers/{id}/restart",
        "/containers/{id}/kill",
        "/containers/{id}/wait",
        "/containers/{id}",
        "/containers/{id}/logs",
        "/containers/{id}/top",
        "/containers/{id}/stats",
        "/containers/{id}/archive",
        "/containers/{id}/rename",
        "/containers/{id}/pause",
        "/containers/{id}/resize",
        "/containers/{id}/update",
        "/containers/{id}/changes",
        "/containers/{id}/export",
        "/containers/{id}/exec",
        "/containers/prune",
        "/exec/{id}/start",
        "/exec/{id}/json",
        "/exec/{id}/resize",
        "/images/json",
        "/images/{id}/json",
        "/images/{id}/history",
        "/images/{id}/tag",
        "/images/{id}",
        "/images/{id}/get",
        "/images/get",
        "/images/load",
        "/images/prune",
        "/networks",
        "/networks/create",
        "/networks/{id}",
        "/networks/{id}/connect",
        "/networks/{id}/disconnect",
        "/networks/prune",
        "/volumes",
        "/volumes/create",
        "/volumes/{id}",
        "/volumes/prune",
        "/system/df",
        "/info",
        "/version",
        "/_ping",
        "/commit",
        "/build/prune",
    ];
    let queries = [
        "all",
        "filters",
        "force",
        "v",
        "name",
        "tail",
        "since",
        "until",
        "timeout",
        "t",
        "signal",
        "condition",
        "stream",
        "follow",
        "stdout",
        "path",
        "repo",
        "tag",
        "changes",
        "size",
        "h",
        "w",
        "limit",
    ];
    let qvalues = [
        "1",
        "true",
        "-1",
        "99999999999999999999",
        "",
        "%",
        "%zz",
        "{\"label\":[\"a\"]}",
        "{\"status\":{\"running\":true}}",
        "{bad",
        "[]",
        "SIGKILL",
        "not-running",
        "/",
        "../..",
        "1.5h",
    ];
    let templates = [
        json!({"Image": "nosuch:1", "Cmd": ["true"], "HostConfig": {"Memory": 0, "PortBindings": {"80/tcp": [{"HostPort": "8080"}]}, "Binds": ["/tmp:/x"], "RestartPolicy": {"Name": "no"}}}),
        json!({"Name": "fz", "Driver": "bridge", "IPAM": {"Config": [{"Subnet": "10.250.9.0/24"}]}, "Labels": {"a": "b"}}),
        json!({"Name": "fzv", "Driver": "local", "Labels": {}}),
        json!({"Cmd": ["sh"], "AttachStdout": true, "Tty": false, "Env": ["A=1"]}),
        json!({"Memory": 67108864, "PidsLimit": 10, "RestartPolicy": {"Name": "always", "MaximumRetryCount": 0}}),
        json!({"Container": "nosuch", "EndpointConfig": {"Aliases": ["x"]}}),
    ];
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..iters {
        let method = *r.pick(&["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]);
        let mut path = String::new();
        if r.chance(50) {
            path.push_str(r.word(&versions));
        }
        if r.chance(60) {
            // A real route with a random object name in it.
            let id = *r.pick(&[
                "nosuch",
                "0",
                "..",
                "%2e%2e%2f%2e%2e",
                "a%00b",
                "fz",
                "fzv",
                "bridge",
                "host",
                "none",
                "sha256:",
                "x/y/z",
            ]);
            path.push_str(&r.pick(&routes).replace("{id}", id));
        } else {
            path.push('/');
            path.push_str(r.word(&first));
            for _ in 0..r.below(4) {
                path.push('/');
                path.push_str(r.word(&rest));
            }
        }
        if path.contains("/events") {
            continue;
        }
        if r.chance(60) {
            path.push('?');
            for _ in 0..r.below(4) {
                path.push_str(&format!("{}={}&", r.pick(&queries), r.pick(&qvalues)));
            }
        }
        let body: Vec<u8> = match r.below(6) {
            0 => Vec::new(),
            1 => (0..r.below(300)).map(|_| r.next() as u8).collect(),
            2 => {
                let mut s = r.pick(&templates).to_string();
                let cut = r.below(s.len());
                s.truncate(cut);
                s.into_bytes()
            }
            3 => "[".repeat(1 + r.below(5000)).into_bytes(),
            _ => {
                let mut v = r.pick(&templates).clone();
                for _ in 0..=r.below(3) {
                    mutate(&mut r, &mut v);
                }
                v.to_string().into_bytes()
            }
        };
        let ctype = if r.chance(80) {
            "Content-Type: application/json\r\n"
        } else {
            ""
        };
        let out = exchange(&d.sock, method, &path, ctype, &body);
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("HTTP/1.1 "),
            "request {i} (seed {seed}) got no answer: {method} {path} body {:?}",
            String::from_utf8_lossy(&body)
        );
        let status: u16 = text[9..12].parse().unwrap();
        *statuses.entry(status).or_insert(0usize) += 1;
        assert!(
            status < 500 || status == 501,
            "request {i} (seed {seed}): {method} {path} body {:?} -> {text}",
            String::from_utf8_lossy(&body)
        );
        // hyper answers a request it cannot parse (a raw non-ASCII path) with a bare 400
        // before the router sees it, as Go's server does for dockerd; every answer from
        // the router carries the API headers and, for an error, Docker's error JSON.
        let routed = text.to_ascii_lowercase().contains("\r\napi-version: ");
        assert!(routed || status == 400, "request {i} (seed {seed}): {text}");
        if routed && status >= 400 && method != "HEAD" {
            let body_at = text.find("\r\n\r\n").map_or(text.len(), |p| p + 4);
            let v: serde_json::Value = serde_json::from_str(text[body_at..].trim())
                .unwrap_or_else(|e| panic!("request {i} (seed {seed}): error body is not JSON ({e}): {text}"));
            assert!(v["message"].is_string(), "{text}");
        }
    }
    eprintln!("statuses: {statuses:?}");
    let ping = exchange(&d.sock, "GET", "/_ping", "", b"");
    assert!(String::from_utf8_lossy(&ping).starts_with("HTTP/1.1 200"));
    // Whatever the fuzzer made (networks, volumes) goes with a prune; nothing is left.
    b.ok(&["network", "prune", "-f"]);
    b.ok(&["volume", "prune", "-f", "-a"]);
    assert_eq!(b.ok(&["network", "ls", "-q", "--filter", "type=custom"]).trim(), "");
}

#[test]
fn an_archive_put_cannot_write_outside_the_container() {
    use berth_testutil::tars::{build, Entry};
    require_root!();
    let (b, _img) = with_busybox("api-cp-escape");
    let d = Daemon::start(&b, TempDir::new("api-cp-escape-sock"));
    let id = d
        .ok(&["create", "--name", "cpx", "bb:1", "sleep", "100"])
        .trim()
        .to_string();
    let outside = TempDir::new("api-cp-escape-outside");
    let target = outside.path().join("pwned");
    let hostile = [
        vec![Entry::File(
            "../../../../../../../../../..".to_string() + &target.display().to_string(),
            0o644,
            b"x".to_vec(),
        )],
        vec![Entry::File(target.display().to_string(), 0o644, b"x".to_vec())],
        vec![
            Entry::Symlink("link".into(), outside.path().display().to_string()),
            Entry::File("link/pwned".into(), 0o644, b"x".to_vec()),
        ],
        vec![Entry::Hardlink("hl".into(), "/etc/shadow".into())],
    ];
    for (n, entries) in hostile.iter().enumerate() {
        let tar = build(entries);
        let out = exchange(
            &d.sock,
            "PUT",
            &format!("/v1.45/containers/{id}/archive?path=/tmp"),
            "Content-Type: application/x-tar\r\n",
            &tar,
        );
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 "), "case {n}: no answer");
        assert!(!target.exists(), "case {n} wrote outside the container: {text}");
    }
    // A symlink the container holds, pointing out, is followed inside the container only.
    let link = build(&[Entry::Symlink("out".into(), outside.path().display().to_string())]);
    exchange(
        &d.sock,
        "PUT",
        &format!("/containers/{id}/archive?path=/tmp"),
        "",
        &link,
    );
    let through = build(&[Entry::File("pwned".into(), 0o644, b"x".to_vec())]);
    exchange(
        &d.sock,
        "PUT",
        &format!("/containers/{id}/archive?path=/tmp/out"),
        "",
        &through,
    );
    assert!(!target.exists(), "a container symlink led the copy out");
    // The host's /etc/shadow is not what a hard link in the archive reaches.
    d.ok(&["start", "cpx"]);
    let shadow = d.docker(&["exec", "cpx", "cat", "/tmp/hl"]);
    let host_shadow = std::fs::read("/etc/shadow").unwrap_or_default();
    assert!(host_shadow.is_empty() || shadow.stdout != host_shadow);
    d.ok(&["rm", "-f", "cpx"]);
}

#[test]
fn docker_cli_terminals_run_exec_and_resize() {
    require_root!();
    require_tool!("docker");
    require_tool!("script");
    let (b, _img) = with_busybox("api-tty");
    let d = Daemon::start(&b, TempDir::new("api-tty-sock"));
    // `script` gives the docker CLI a terminal of a known size.
    let on_tty = |line: &str| -> (Option<i32>, String) {
        let o = Command::new("script")
            .args(["-qec", line, "/dev/null"])
            .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
            .env("DOCKER_CONFIG", d.cfg.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned())
    };
    // run -it: the container's terminal has the client's size from the start.
    let (code, out) = on_tty("stty rows 40 cols 90; docker run --rm -it bb:1 sh -c 'stty size; exit 4'");
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("40 90"), "{out}");
    // exec -it: a terminal of the client's size, the exit code passed on.
    d.ok(&["run", "-d", "-it", "--name", "tt", "bb:1", "sh"]);
    let (code, out) = on_tty("stty rows 33 cols 77; docker exec -it tt sh -c 'stty size; tty; exit 3'");
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("33 77") && out.contains("/dev/pts/"), "{out}");
    // resize of the container's own terminal.
    let r = exchange(&d.sock, "POST", "/v1.45/containers/tt/resize?h=21&w=61", "", b"");
    assert!(String::from_utf8_lossy(&r).starts_with("HTTP/1.1 200"));
    assert_eq!(d.ok(&["exec", "tt", "stty", "size", "-F", "/dev/console"]), "21 61\n");
    let r = exchange(&d.sock, "POST", "/v1.45/containers/tt/resize?h=x&w=61", "", b"");
    assert!(String::from_utf8_lossy(&r).starts_with("HTTP/1.1 400"));
    d.ok(&["rm", "-f", "tt"]);
}

/// A test CA and certificates signed by it, made with openssl: `ca.pem`, the daemon's
/// `server-cert.pem`/`server-key.pem` (for 127.0.0.1) and a client's `cert.pem`/`key.pem`
/// (the names the docker CLI looks for in DOCKER_CERT_PATH).
fn make_certs(dir: &std::path::Path, with_server: bool) {
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=berth test CA",
    ]);
    run(&a);
    let sign = |name: &str, cn: &str, ext: &str| {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        let mut a = vec!["req"];
        a.extend(ec);
        let (key, csr, cert) = (
            format!("{name}-key.pem"),
            format!("{name}.csr"),
            format!("{name}-cert.pem"),
        );
        let subj = format!("/CN={cn}");
        a.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        run(&a);
        let extfile = format!("{name}.ext");
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &extfile,
        ]);
    };
    if with_server {
        sign(
            "server",
            "127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        );
    }
    sign("client", "berth client", "extendedKeyUsage=clientAuth\n");
    std::fs::rename(dir.join("client-cert.pem"), dir.join("cert.pem")).unwrap();
    std::fs::rename(dir.join("client-key.pem"), dir.join("key.pem")).unwrap();
}

#[test]
fn tcp_is_served_only_with_tls_and_a_verified_client() {
    require_root!();
    require_tool!("docker");
    require_tool!("openssl");
    let b = Berth::new("api-tls");
    let dir = TempDir::new("api-tls");
    let certs = dir.path().join("certs");
    let rogue = dir.path().join("rogue");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::create_dir_all(&rogue).unwrap();
    make_certs(&certs, true);
    // A client whose certificate another CA signed (it trusts the daemon's CA).
    make_certs(&rogue, false);
    std::fs::copy(certs.join("ca.pem"), rogue.join("ca.pem")).unwrap();
    // Plain TCP is refused outright.
    let o = b.out(&["daemon", "-H", "tcp://127.0.0.1:1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--tlsverify"), "{o:?}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let sock = dir.path().join("berth.sock");
    let p = |f: &str| certs.join(f).display().to_string();
    let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
    let mut child = b
        .cmd(&[
            "daemon",
            "-H",
            &format!("unix://{}", sock.display()),
            "-H",
            &format!("tcp://{addr}"),
            "--tlsverify",
            "--tlscacert",
            &p("ca.pem"),
            "--tlscert",
            &p("server-cert.pem"),
            "--tlskey",
            &p("server-key.pem"),
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "no TCP listener");
        std::thread::sleep(Duration::from_millis(20));
    }
    let docker = |cert_dir: &std::path::Path, args: &[&str]| {
        Command::new("docker")
            .env("DOCKER_HOST", format!("tcp://{addr}"))
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", cert_dir)
            .env("DOCKER_CONFIG", dir.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = docker(&certs, &["version", "--format", "{{.Server.APIVersion}}"]);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1.45");
        assert!(docker(&certs, &["ps"]).status.success());
        // A certificate from another CA, and no TLS at all: no API.
        let o = docker(&rogue, &["version"]);
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("API version:  1.45"),
            "{o:?}"
        );
        assert!(!o.status.success());
        let plain = {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            out
        };
        assert!(!String::from_utf8_lossy(&plain).contains("200 OK"));
        // The unix socket is served beside it.
        std::os::unix::net::UnixStream::connect(&sock).unwrap();
    }));
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn docker_cli_ports_memory_follow_attach_and_connect() {
    require_root!();
    require_tool!("docker");
    let (b, _img) = with_busybox("api-more");
    let d = Daemon::start(&b, TempDir::new("api-more-sock"));
    // -p and --memory: the published port serves the host through 127.0.0.1; the limit is
    // in the container's cgroup.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "127.0.0.1::80",
        "--memory",
        "48m",
        "bb:1",
        "sh",
        "-c",
        "mkdir -p /www && echo served > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    let port = d.ok(&["port", "web", "80"]);
    let addr = port.lines().next().unwrap_or("").trim().to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{port}");
    let fetch = || -> String {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(&addr) else {
            return String::new();
        };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fetch().contains("served") {
        assert!(Instant::now() < deadline, "the published port never served");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        d.ok(&["inspect", "--format", "{{.HostConfig.Memory}}", "web"]).trim(),
        (48u64 << 20).to_string()
    );
    let limit = d.ok(&[
        "exec",
        "web",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
    ]);
    assert_eq!(limit.trim(), (48u64 << 20).to_string());
    // A start that fails: Docker's exit codes, and --rm removes the container (the CLI
    // waits for that removal).
    let o = d.docker(&["run", "--rm", "bb:1", "/nonexistent"]);
    assert_eq!(o.status.code(), Some(127), "{o:?}");
    let o = d.docker(&["run", "--rm", "bb:1", "/etc"]);
    assert_eq!(o.status.code(), Some(126), "{o:?}");
    assert_eq!(d.ok(&["ps", "-aq", "--filter", "status=created"]), "");
    // --device: the node is made in the container.
    let dev = d.ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/zero:/dev/myzero:r",
        "bb:1",
        "ls",
        "-l",
        "/dev/myzero",
    ]);
    assert!(dev.contains("1,   5") || dev.contains("1, 5"), "{dev}");
    // logs -f follows until the container ends.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "lf",
        "bb:1",
        "sh",
        "-c",
        "for i in 1 2 3; do echo l$i; sleep 0.3; done",
    ]);
    assert_eq!(d.ok(&["logs", "-f", "lf"]), "l1\nl2\nl3\n");
    // attach: stdin in, output and exit code out.
    d.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "at",
        "bb:1",
        "sh",
        "-c",
        "read x; echo got $x; exit 6",
    ]);
    let mut c = Command::new("docker");
    c.env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.cfg.path())
        .args(["attach", "at"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        child.stdin.as_mut().unwrap().write_all(b"hello\n").unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "got hello\n", "{o:?}");
    assert_eq!(o.status.code(), Some(6));
    // network connect: a container on the default bridge joins a user network and finds a
    // container there by name and by alias.
    let net = format!("apiconn{}", b.net);
    d.ok(&["network", "create", &net]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        &net,
        "--network-alias",
        "svc",
        "bb:1",
        "sleep",
        "100",
    ]);
    d.ok(&["run", "-d", "--name", "joiner", "bb:1", "sleep", "100"]);
    assert!(!d
        .docker(&["exec", "joiner", "ping", "-c1", "-W1", "peer"])
        .status
        .success());
    d.ok(&["network", "connect", &net, "joiner"]);
    for name in ["peer", "svc"] {
        let out = d.ok(&[
            "exec",
            "joiner",
            "sh",
            "-c",
            &format!("ping -c1 -W2 {name} >/dev/null && echo ok"),
        ]);
        assert_eq!(out, "ok\n", "{name}");
    }
    let nets = d.ok(&[
        "inspect",
        "--format",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "joiner",
    ]);
    assert!(nets.contains("bridge") && nets.contains(&net), "{nets}");
    d.ok(&["network", "disconnect", &net, "joiner"]);
    d.ok(&["rm", "-f", "web", "lf", "at", "peer", "joiner"]);
    d.ok(&["network", "rm", &net]);
}

#[test]
fn docker_cli_sees_paused_status_host_names_health_events_and_one_shot_stats() {
    require_root!();
    require_tool!("docker");
    let (b, _img) = with_busybox("api-behave");
    let d = Daemon::start(&b, TempDir::new("api-behave-sock"));
    let since = now_secs();
    // A paused container reads as Docker shows it.
    d.ok(&["run", "-d", "--name", "pz", "bb:1", "sleep", "300"]);
    d.ok(&["pause", "pz"]);
    let st = d.ok(&["ps", "--filter", "name=pz", "--format", "{{.Status}}|{{.State}}"]);
    assert!(
        st.starts_with("Up ") && st.trim_end().ends_with("(Paused)|paused"),
        "{st}"
    );
    d.ok(&["unpause", "pz"]);

    // On the host's network the container is named as the host.
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    assert_eq!(
        d.ok(&["run", "--rm", "--network", "host", "bb:1", "hostname"]).trim(),
        host
    );
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--network",
            "host",
            "--hostname",
            "mine",
            "bb:1",
            "hostname"
        ])
        .trim(),
        "mine"
    );

    // Health changes are events, and `event=health_status` matches them.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "good",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        "bb:1",
        "sleep",
        "300",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "bad",
        "--health-cmd",
        "false",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "bb:1",
        "sleep",
        "300",
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h = d.ok(&["inspect", "-f", "{{.State.Health.Status}}", "good", "bad"]);
        if h == "healthy\nunhealthy\n" {
            break;
        }
        assert!(Instant::now() < deadline, "{h}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // `--until` in the future: the events so far, then the stream ends (at that time).
    let t0 = Instant::now();
    let until = (now_secs() + 2).to_string();
    let ev = d.ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until,
        "--filter",
        "event=health_status",
        "--format",
        "{{.Actor.Attributes.name}} {{.Action}}",
    ]);
    assert!(t0.elapsed() < Duration::from_secs(15), "events did not end");
    assert!(ev.contains("good health_status: healthy"), "{ev}");
    assert!(ev.contains("bad health_status: unhealthy"), "{ev}");
    assert!(ev.lines().all(|l| l.contains("health_status: ")), "{ev}");

    // `stream=False` (docker-py's `stats(stream=False)`) is one reading, not a stream.
    let t0 = Instant::now();
    let out = exchange(&d.sock, "GET", "/v1.45/containers/pz/stats?stream=False", "", b"");
    assert!(t0.elapsed() < Duration::from_secs(10), "stats streamed");
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.contains("\"memory_stats\""),
        "{text}"
    );
    d.ok(&["rm", "-f", "pz", "good", "bad"]);
}

#[test]
fn the_clis_image_and_commit_actions_reach_docker_events() {
    require_root!();
    require_tool!("docker");
    let (b, dir) = with_busybox("api-cli-events");
    let d = Daemon::start(&b, TempDir::new("api-cli-events-sock"));
    let since = now_secs();
    b.ok(&["tag", "bb:1", "bb:2"]);
    let id = b.ok(&["create", "bb:1", "true"]).trim().to_string();
    b.ok(&["commit", &id, "committed:1"]);
    let x = dir.path().join("x.tar");
    b.ok(&["export", "-o", x.to_str().unwrap(), &id]);
    b.ok(&["import", x.to_str().unwrap(), "imported:1"]);
    let saved = dir.path().join("saved.tar");
    b.ok(&["save", "-o", saved.to_str().unwrap(), "bb:1"]);
    b.ok(&["load", "-i", saved.to_str().unwrap()]);
    b.ok(&["rmi", "bb:2", "committed:1", "imported:1"]);
    let ev = d.events_since(since, "type=image", "{{.Action}} {{.Actor.Attributes.name}}");
    for want in [
        "tag bb:2",
        "untag bb:2",
        "untag committed:1",
        "delete ",
        "import imported:1",
        "load ",
    ] {
        assert!(ev.lines().any(|l| l.starts_with(want)), "{want}: {ev}");
    }
    let ev = d.events_since(since, "type=container", "{{.Action}}");
    assert!(ev.contains("commit") && ev.contains("export"), "{ev}");
    b.ok(&["rm", &id]);
}
