//! The real dockerd with berth as an added runtime: `docker run --runtime berth`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_testutil::{busybox_rootfs, require_root, require_tool, unique_name, TempDir};

/// A private dockerd (and the containerd it manages) with its own data root, exec root and
/// socket; killed by pid and cleaned up on drop.
pub struct Dockerd {
    child: Child,
    dir: TempDir,
    sock: PathBuf,
    cgroup_parent: String,
}

impl Dockerd {
    pub fn start(test: &str) -> Dockerd {
        let dir = TempDir::new(test);
        let runtime = dir.path().join("berth-runtime");
        std::os::unix::fs::symlink(crate::berth_bin(), &runtime).unwrap();
        let sock = dir.path().join("docker.sock");
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let cgroup_parent = unique_name("dockerd");
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--storage-driver=vfs",
            ])
            .args([
                "--exec-opt",
                "native.cgroupdriver=cgroupfs",
                "--cgroup-parent",
                &format!("/{cgroup_parent}"),
            ])
            .arg("--add-runtime")
            .arg(format!("berth={}", runtime.display()))
            .arg("--containerd-namespace")
            .arg(unique_name("moby"))
            .arg("--containerd-plugins-namespace")
            .arg(unique_name("plugins"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        let d = Dockerd {
            child,
            dir,
            sock,
            cgroup_parent,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if d.docker(&["version"]).status.success() {
                return d;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "dockerd did not come up: {}",
            std::fs::read_to_string(d.dir.path().join("dockerd.log")).unwrap_or_default()
        );
    }

    pub fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.dir.path().join("cli"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running docker")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?}: {}\n--- dockerd log tail:\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.log_tail()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        log.lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `docker import` of a busybox rootfs: an image built offline.
    pub fn import_busybox(&self, tag: &str) {
        let rootfs = self.dir.path().join("img");
        busybox_rootfs(&rootfs).unwrap();
        let tar = self.dir.path().join("img.tar");
        let o = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .output()
            .unwrap();
        assert!(o.status.success());
        self.ok(&["import", tar.to_str().unwrap(), tag]);
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        // SAFETY: kill with the pid of the child we spawned.
        unsafe { libc::kill(i32::try_from(self.child.id()).unwrap_or(0), libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        unmount_below(self.dir.path());
        berth_testutil::remove_cgroup_everywhere(&self.cgroup_parent);
    }
}

/// Detaches every mount under `dir` (deepest first), so the directory can be removed.
pub fn unmount_below(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn docker_run_exec_stop_and_memory_with_berth_runtime() {
    require_root!();
    require_tool!("dockerd");
    require_tool!("containerd");
    let d = Dockerd::start("dockerd");
    d.import_busybox("bt-busybox:latest");
    // Output and exit code.
    let o = d.docker(&[
        "run",
        "--rm",
        "--runtime",
        "berth",
        "--network",
        "none",
        "bt-busybox",
        "sh",
        "-c",
        "echo hello from $(hostname | cut -c1-4); exit 5",
    ]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        d.log_tail()
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with("hello from ") && out.ends_with('\n') && out.len() == "hello from xxxx\n".len(),
        "{out:?}"
    );
    // Docker's default seccomp profile is loaded: a syscall it blocks fails with EPERM.
    let out = d.ok(&[
        "run",
        "--rm",
        "--runtime",
        "berth",
        "--network",
        "none",
        "bt-busybox",
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status; unshare -U true 2>&1 || echo blocked",
    ]);
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("blocked"), "{out}");
    // A long-running container: exec, inspect, stop.
    let id = d.ok(&[
        "run",
        "-d",
        "--runtime",
        "berth",
        "--network",
        "none",
        "--memory",
        "32m",
        "bt-busybox",
        "sleep",
        "1000",
    ]);
    let id = id.trim();
    let out = d.ok(&[
        "exec",
        id,
        "sh",
        "-c",
        "echo in-exec; cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    assert_eq!(out, "in-exec\nsleep 1000 ");
    let o = d.docker(&["exec", id, "sh", "-c", "exit 9"]);
    assert_eq!(o.status.code(), Some(9));
    let runtime = d.ok(&["inspect", "-f", "{{.HostConfig.Runtime}}", id]);
    assert_eq!(runtime.trim(), "berth");
    // --memory is enforced: allocating far beyond it kills the allocation.
    let o = d.docker(&[
        "exec",
        id,
        "sh",
        "-c",
        "dd if=/dev/zero of=/dev/null bs=200M count=1 2>/dev/null && echo survived",
    ]);
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("survived"),
        "a 200 MiB allocation survived --memory 32m"
    );
    let t = Instant::now();
    d.ok(&["stop", "-t", "2", id]);
    assert!(t.elapsed() < Duration::from_secs(30));
    let state = d.ok(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", id]);
    assert_eq!(state.trim(), "exited 137");
    d.ok(&["rm", id]);
}

/// The same Dockerfile built by docker's builder and by berth gives the same image config,
/// and docker loads and runs what berth built.
#[test]
fn berth_build_matches_docker_build_and_docker_runs_the_result() {
    require_root!();
    require_tool!("dockerd");
    require_tool!("containerd");
    let d = Dockerd::start("dockerd-build");
    d.import_busybox("bb:1");
    let (b, _img) = crate::containers::with_busybox("dockerd-build-berth");
    let ctx = TempDir::new("dockerd-build-ctx");
    std::fs::write(ctx.path().join("hello.txt"), "hello\n").unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        r#"FROM bb:1
ARG V=3
ENV A=1 B="two words" PATH=/usr/bin:/bin:/custom
LABEL a=b "c d"=e version=$V
WORKDIR /srv/app
WORKDIR sub
COPY hello.txt ./
USER 1000:1000
EXPOSE 80 53/udp
VOLUME ["/data", "/logs"]
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=30s --timeout=3s --retries=2 CMD ["true"]
SHELL ["/bin/sh", "-xc"]
ONBUILD RUN echo hi
ENTRYPOINT ["/bin/sh", "-c"]
CMD echo $A
"#,
    )
    .unwrap();
    let o = Command::new("docker")
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.dir.path().join("cli"))
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", "built:1", ctx.path().to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    b.ok(&["build", "-q", "-t", "built:1", ctx.path().to_str().unwrap()]);
    let docker: serde_json::Value = serde_json::from_str(&d.ok(&["image", "inspect", "built:1"])).unwrap();
    let berth: serde_json::Value = serde_json::from_str(&b.ok(&["image", "inspect", "built:1"])).unwrap();
    let (dc, bc) = (&docker[0]["Config"], &berth[0]["Config"]);
    for field in [
        "Cmd",
        "Entrypoint",
        "WorkingDir",
        "User",
        "ExposedPorts",
        "Volumes",
        "Labels",
        "Healthcheck",
        "StopSignal",
        "OnBuild",
        "Shell",
    ] {
        assert_eq!(dc[field], bc[field], "Config.{field} differs");
    }
    let env = |v: &serde_json::Value| {
        let mut e: Vec<String> = v["Env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            // with_busybox's base sets this one; docker's import has no Env.
            .filter(|x| x != "FROM_IMAGE=yes")
            .collect();
        e.sort();
        e
    };
    assert_eq!(env(dc), env(bc), "Config.Env differs");
    // docker loads berth's image and runs it with its own runtime.
    let dir = TempDir::new("dockerd-build-save");
    let tar = dir.path().join("img.tar");
    b.ok(&["tag", "built:1", "from-berth:1"]);
    b.ok(&["save", "-o", tar.to_str().unwrap(), "from-berth:1"]);
    d.ok(&["load", "-i", tar.to_str().unwrap()]);
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        "0",
        "from-berth:1",
        "cat /srv/app/sub/hello.txt; pwd",
    ]);
    assert_eq!(out, "hello\n/srv/app/sub\n");
}
