//! Rootless berth end to end: each test makes an ordinary user of its own (with subordinate
//! id ranges of its own in /etc/subuid and /etc/subgid), drives the `berth` binary as that
//! user, and checks from the host what the kernel says: which uid a container's process
//! has, who owns what it wrote, which ports answer on the loopback. Root's `--userns=auto`
//! is checked the same way. Each user, its processes, its entries and its files go when the
//! test ends, failed or not.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_testutil::images::{Auth, Layer, Layout, Registry};
use berth_testutil::tars::{build, Entry as E};
use berth_testutil::{require_root, require_tool, TempDir};

use crate::berth_bin;
use crate::images::Berth;

/// useradd, usermod, userdel and edits of /etc/subuid take the shadow suite's locks:
/// one at a time within this test binary.
static ACCOUNTS: Mutex<()> = Mutex::new(());

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A user of the test's own, removed with everything it ran and owned on drop.
struct User {
    name: String,
    uid: u32,
    gid: u32,
    home: TempDir,
    run: PathBuf,
    /// Its subordinate range (start, count), when it has one.
    sub: Option<(u32, u32)>,
    /// Processes started in the background (a daemon), killed first.
    background: Vec<std::process::Child>,
}

fn sh(cmd: &mut Command) -> Output {
    let o = cmd.output().expect("running an account tool");
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

impl User {
    fn new(test: &str, with_subids: bool) -> User {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let pid = std::process::id();
        let name = format!("brl{}x{n}", pid % 100_000);
        let home = TempDir::new(&format!("{test}-home"));
        let _g = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        // No automatic ranges (login.defs' SUB_UID_COUNT): the test picks its own.
        sh(Command::new("useradd")
            .args([
                "-M",
                "-U",
                "-s",
                "/bin/sh",
                "-K",
                "SUB_UID_COUNT=0",
                "-K",
                "SUB_GID_COUNT=0",
                "-d",
            ])
            .arg(home.path())
            .arg(&name));
        let id = |flag: &str| -> u32 {
            let o = sh(Command::new("id").arg(flag).arg(&name));
            String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        let sub = with_subids.then(|| {
            // Ranges no other test of this run (nor the host's usual 100000+) uses.
            let start = 1_000_000_000 + ((pid % 400) * 16 + n % 16) * 70_000;
            let range = format!("{start}-{}", start + 65_535);
            sh(Command::new("usermod")
                .args(["--add-subuids", &range, "--add-subgids", &range])
                .arg(&name));
            (start, 65_536)
        });
        drop(_g);
        std::os::unix::fs::chown(home.path(), Some(uid), Some(gid)).unwrap();
        let run = home.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::os::unix::fs::chown(&run, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        User {
            name,
            uid,
            gid,
            home,
            run,
            sub,
            background: Vec::new(),
        }
    }

    /// A command run as this user, with a login's environment.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.uid(self.uid)
            .gid(self.gid)
            .env_clear()
            .env("HOME", self.home.path())
            .env("USER", &self.name)
            .env("PATH", PATH)
            .env("XDG_RUNTIME_DIR", &self.run)
            .current_dir(self.home.path())
            .stdin(Stdio::null());
        c
    }

    fn berth(&self, args: &[&str]) -> Command {
        let mut c = self.command(user_bin());
        c.args(args);
        c
    }

    fn out(&self, args: &[&str]) -> Output {
        self.berth(args).output().expect("running berth")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "berth {args:?} as {} failed ({}): {}{}",
            self.name,
            o.status,
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A command that leaves a container running: its output to files, not pipes.
    fn ok_detached(&self, args: &[&str]) -> String {
        let out = self.home.path().join(format!(
            "out-{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let status = self
            .berth(args)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(out.with_extension("err")).unwrap())
            .status()
            .unwrap();
        let err = std::fs::read_to_string(out.with_extension("err")).unwrap_or_default();
        assert!(status.success(), "berth {args:?} failed ({status}): {err}");
        std::fs::read_to_string(&out).unwrap_or_default()
    }

    fn fails(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            !o.status.success(),
            "berth {args:?} should fail: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// The host pid of a running container's process.
    fn pid(&self, name: &str) -> i32 {
        self.ok(&["inspect", "-f", "{{.State.Pid}}", name])
            .trim()
            .parse()
            .unwrap()
    }

    /// Loads the test image (a busybox with every applet) as `busybox:rl`.
    fn load_image(&self) {
        let (_dir, ar) = image_archive(&self.home, self.uid, self.gid);
        let out = self.ok(&["load", "-i", ar.to_str().unwrap()]);
        self.ok(&["tag", loaded_id(&out), "busybox:rl"]);
    }
}

/// The image id `load` printed for an archive tagged by a bare tag.
fn loaded_id(out: &str) -> &str {
    out.trim().trim_start_matches("Loaded image ID: ")
}

/// Every process of `uid` (or of its subordinate range), by pid.
fn pids_of(uid: u32, sub: Option<(u32, u32)>) -> Vec<i32> {
    let mine = |u: u32| u == uid || sub.is_some_and(|(s, n)| u >= s && u < s + n);
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/status")).is_ok_and(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok())
                    .is_some_and(mine)
            })
        })
        .collect()
}

impl Drop for User {
    fn drop(&mut self) {
        for c in &mut self.background {
            let _ = c.kill();
            let _ = c.wait();
        }
        // The user's processes (pause, monitors, pasta, fuse-overlayfs, the containers) by
        // pid; with them go the user's namespaces and every mount made in them.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = pids_of(self.uid, self.sub);
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for p in pids {
                // SAFETY: signalling processes of the user this test made.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _g = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, n)) = self.sub {
            let range = format!("{s}-{}", s + n - 1);
            let _ = Command::new("usermod")
                .args(["--del-subuids", &range, "--del-subgids", &range])
                .arg(&self.name)
                .output();
        }
        let _ = Command::new("userdel").arg(&self.name).output();
        let _ = Command::new("groupdel").arg(&self.name).output();
        drop(_g);
        let _ = std::fs::remove_dir_all(self.home.path());
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("berth-run-{}", self.uid)));
    }
}

/// The binary under test where any user can run it: itself when every directory above it
/// may be searched, else a copy.
fn user_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let b = berth_bin();
        let open = b
            .ancestors()
            .skip(1)
            .all(|d| std::fs::metadata(d).is_ok_and(|m| m.mode() & 0o001 != 0));
        if open {
            return b;
        }
        let dir = std::env::temp_dir().join(format!("berth-rootless-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let copy = dir.join("berth");
        std::fs::copy(&b, &copy).unwrap();
        copy
    })
    .clone()
}

/// A busybox image with every applet, /etc/passwd naming `uid` too, as an OCI archive
/// the user can read.
fn image_archive(owner_home: &TempDir, uid: u32, gid: u32) -> (TempDir, PathBuf) {
    let dir = TempDir::new("rl-image");
    let mut l = Layout::new(&dir.path().join("l"));
    let m = l.image("amd64", &[Layer::gzip(&busybox_tar(uid, gid))], &["sh"]);
    l.tag(m, "rl");
    let ar = owner_home.path().join("image.tar");
    l.archive(&ar);
    std::os::unix::fs::chown(&ar, Some(uid), Some(gid)).unwrap();
    (dir, ar)
}

fn busybox_tar(uid: u32, gid: u32) -> Vec<u8> {
    let mut entries = vec![
        E::Dir("bin/".into(), 0o755),
        E::Dir("etc/".into(), 0o755),
        E::Dir("tmp/".into(), 0o1777),
        E::Dir("www/".into(), 0o755),
        E::File("bin/busybox".into(), 0o755, std::fs::read("/bin/busybox").unwrap()),
        E::File(
            "etc/passwd".into(),
            0o644,
            format!("root:x:0:0:root:/root:/bin/sh\nme:x:{uid}:{gid}::/tmp:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n")
                .into_bytes(),
        ),
        E::File(
            "etc/group".into(),
            0o644,
            format!("root:x:0:\nme:x:{gid}:\n").into_bytes(),
        ),
        E::File("www/index.html".into(), 0o644, b"served rootless\n".to_vec()),
    ];
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for a in String::from_utf8_lossy(&list.stdout).lines() {
        if a != "busybox" {
            entries.push(E::Symlink(format!("bin/{a}"), "busybox".into()));
        }
    }
    for d in ["proc", "sys", "dev", "root"] {
        entries.push(E::Dir(format!("{d}/"), 0o755));
    }
    build(&entries)
}

/// The value of a `Uid:`/`Gid:` line of /proc/PID/status (the real id).
fn proc_id(pid: i32, key: &str) -> u32 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// GET `path` from 127.0.0.1:`port`, retrying while the server comes up.
fn http_get(port: u16, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = (|| -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n")?;
            let mut body = String::new();
            s.read_to_string(&mut body)?;
            Ok(body)
        })();
        match got {
            Ok(b) if b.contains("200") => return b,
            _ if Instant::now() > deadline => panic!("no answer on 127.0.0.1:{port}{path}: {got:?}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Starts busybox httpd serving /www on port 80 in a container `name`, with `opts` (network,
/// ports, pod) before the image.
fn httpd(u: &User, name: &str, opts: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["busybox:rl", "httpd", "-f", "-p", "80", "-h", "/www"]);
    u.ok_detached(&args);
}

/// A free TCP port on the host: `want` if it is free, else the kernel's pick.
fn port_or_free(want: u16) -> u16 {
    if want != 0 && std::net::TcpListener::bind(("0.0.0.0", want)).is_ok() {
        return want;
    }
    std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

macro_rules! require_rootless_host {
    () => {
        require_root!();
        require_tool!("newuidmap");
        require_tool!("pasta");
    };
}

#[test]
fn rootless_pull_build_run_map_the_user() {
    require_rootless_host!();
    require_tool!("docker-registry");
    let u = User::new("rl-basic", true);
    // Root puts the image in a local registry; the user pulls it from there.
    let reg = Registry::start("rl-basic", Auth::Open);
    let root = Berth::new("rl-basic-root");
    let (_d, ar) = image_archive(&u.home, u.uid, u.gid);
    let out = root.ok(&["load", "-i", ar.to_str().unwrap()]);
    let name = format!("{}/rl/busybox:1", reg.host);
    root.ok(&["tag", loaded_id(&out), &name]);
    root.ok(&["push", &name]);
    let out = u.ok(&["pull", &name]);
    assert!(out.contains("Status: Downloaded newer image"), "{out}");
    // The store and state are the user's, under XDG paths.
    let store = u.home.path().join(".local/share/berth");
    assert_eq!(std::fs::metadata(&store).unwrap().uid(), u.uid);
    assert!(u.run.join("berth/pause.pid").exists());
    let info = u.ok(&["info", "--format", "{{json .}}"]);
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(v["Rootless"], true, "{info}");
    assert_eq!(v["IDMappings"]["UIDMap"][0]["host_id"], u.uid, "{info}");
    assert_eq!(v["IDMappings"]["UIDMap"][1]["host_id"], u.sub.unwrap().0, "{info}");
    assert_eq!(v["NetworkBackend"], "pasta");
    assert!(v["SecurityOptions"].to_string().contains("name=rootless"), "{info}");
    // run --rm passes the exit code on; inside, the user is root.
    let o = u.out(&["run", "--rm", &name, "sh", "-c", "id -u; exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "0");
    // Seen from the host, the container's root is the user; its uid 1000 a subordinate id.
    u.ok_detached(&["run", "-d", "--name", "c1", &name, "sleep", "300"]);
    let pid = u.pid("c1");
    assert_eq!(proc_id(pid, "Uid:"), u.uid);
    assert_eq!(proc_id(pid, "Gid:"), u.gid);
    u.ok_detached(&["exec", "-d", "-u", "1000", "c1", "sleep", "301"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let want = u.sub.unwrap().0 + 999;
    while !pids_of(want, None)
        .iter()
        .any(|p| std::fs::read_to_string(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.contains("301")))
    {
        assert!(Instant::now() < deadline, "no process of uid {want} on the host");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A file the container writes to a bind mount is the user's on the host.
    let data = u.home.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(u.uid), Some(u.gid)).unwrap();
    let bind = format!("{}:/data", data.display());
    u.ok(&["run", "--rm", "-v", &bind, &name, "sh", "-c", "echo hi > /data/f"]);
    let md = std::fs::metadata(data.join("f")).unwrap();
    assert_eq!((md.uid(), md.gid()), (u.uid, u.gid));
    // keep-id: the user's own uid inside, and files keep it both ways.
    let out = u.ok(&[
        "run",
        "--rm",
        "--userns=keep-id",
        "-v",
        &bind,
        &name,
        "sh",
        "-c",
        "id -u; id -g; stat -c %u /data/f; touch /data/k",
    ]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        [&u.uid.to_string(), &u.gid.to_string(), &u.uid.to_string()]
    );
    assert_eq!(std::fs::metadata(data.join("k")).unwrap().uid(), u.uid);
    // The image's own files stay root's inside a keep-id container.
    let out = u.ok(&[
        "run",
        "--rm",
        "--userns=keep-id",
        &name,
        "stat",
        "-c",
        "%u",
        "/bin/busybox",
    ]);
    assert_eq!(out.trim(), "0");
    // A Dockerfile with a RUN step builds, its files owned as the step made them.
    let ctx = u.home.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {name}\nRUN echo built > /made && chown 1000:1000 /made\nCMD [\"cat\", \"/made\"]\n"),
    )
    .unwrap();
    std::os::unix::fs::chown(&ctx, Some(u.uid), Some(u.gid)).unwrap();
    u.ok(&["build", "-q", "-t", "rlbuilt:1", ctx.to_str().unwrap()]);
    assert_eq!(u.ok(&["run", "--rm", "rlbuilt:1"]).trim(), "built");
    assert_eq!(
        u.ok(&["run", "--rm", "rlbuilt:1", "stat", "-c", "%u:%g", "/made"])
            .trim(),
        "1000:1000"
    );
    // fuse-overlayfs, the fallback where the kernel refuses overlayfs in a user namespace
    // (forced here), gives the same container.
    let o = u
        .berth(&[
            "run",
            "--rm",
            &name,
            "sh",
            "-c",
            "echo fused > /f; cat /f; grep -c fuse /proc/mounts",
        ])
        .env("BERTH_FUSE_OVERLAY", "1")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.starts_with("fused\n") && !out.ends_with("0\n"), "{out}");
    // berth unshare: the store's files as the namespace sees them.
    let out = u.ok(&["unshare", "cat", "/proc/self/uid_map"]);
    assert!(out.contains(&u.uid.to_string()), "{out}");
    u.ok(&["rm", "-f", "c1"]);
}

#[test]
fn rootless_networking_pasta_slirp4netns_and_user_networks() {
    require_rootless_host!();
    require_tool!("slirp4netns");
    let u = User::new("rl-net", true);
    u.load_image();
    // -p on the default network (pasta): busybox httpd answers on the host's loopback.
    let port = port_or_free(8080);
    let publish = format!("{port}:80");
    httpd(&u, "web", &["-p", &publish]);
    assert!(http_get(port, "/index.html").contains("served rootless"));
    let out = u.ok(&["port", "web"]);
    assert!(out.contains(&format!("0.0.0.0:{port}")), "{out}");
    let hc = u.ok(&["inspect", "-f", "{{.HostConfig.NetworkMode}}", "web"]);
    assert_eq!(hc.trim(), "pasta");
    u.ok(&["rm", "-f", "web"]);
    // slirp4netns, the alternative.
    let port2 = port_or_free(0);
    let publish = format!("{port2}:80");
    httpd(&u, "web2", &["--network", "slirp4netns", "-p", &publish]);
    assert!(http_get(port2, "/index.html").contains("served rootless"));
    u.ok(&["rm", "-f", "web2"]);
    // A user network: containers resolve and reach each other; a port is published too.
    u.ok(&["network", "create", "rlnet"]);
    let port3 = port_or_free(0);
    let publish = format!("{port3}:80");
    httpd(&u, "a1", &["--network", "rlnet", "-p", &publish]);
    let out = u.ok(&[
        "run",
        "--rm",
        "--network",
        "rlnet",
        "busybox:rl",
        "wget",
        "-qO-",
        "http://a1/index.html",
    ]);
    assert_eq!(out.trim(), "served rootless");
    let out = u.ok(&["run", "--rm", "--network", "rlnet", "busybox:rl", "nslookup", "a1"]);
    let ip = u.ok(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        "a1",
    ]);
    assert!(out.contains(ip.trim()), "{out} / {ip}");
    assert!(http_get(port3, "/index.html").contains("served rootless"));
    // The bridge is in the user's own network namespace, not the host's.
    assert!(u.run.join("berth/netns/rootless").exists());
    u.ok(&["rm", "-f", "a1"]);
    u.ok(&["network", "rm", "rlnet"]);
    // A pod: its infra holds the pasta namespace and the port, its containers share them.
    let port4 = port_or_free(0);
    let publish = format!("{port4}:80");
    u.ok(&["pod", "create", "--name", "rlpod", "-p", &publish]);
    httpd(&u, "pweb", &["--pod", "rlpod"]);
    assert!(http_get(port4, "/index.html").contains("served rootless"));
    let out = u.ok(&[
        "run",
        "--rm",
        "--pod",
        "rlpod",
        "busybox:rl",
        "wget",
        "-qO-",
        "http://127.0.0.1/index.html",
    ]);
    assert_eq!(out.trim(), "served rootless");
    u.ok(&["pod", "rm", "-f", "rlpod"]);
    // Privileged ports are the host's: refused, saying why.
    let e = u.fails(&["run", "--rm", "-p", "80:80", "busybox:rl", "true"]);
    assert!(e.contains("ip_unprivileged_port_start"), "{e}");
}

#[test]
fn rootless_daemon_serves_the_docker_cli() {
    require_rootless_host!();
    require_tool!("docker");
    let mut u = User::new("rl-daemon", true);
    u.load_image();
    let log = std::fs::File::create(u.home.path().join("daemon.log")).unwrap();
    let child = u
        .berth(&["daemon"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    u.background.push(child);
    let sock = u.run.join("berth.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(Instant::now() < deadline, "no socket at {}", sock.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    let host = format!("unix://{}", sock.display());
    let docker = |args: &[&str]| {
        let o = u
            .command("docker")
            .env("DOCKER_HOST", &host)
            .env("DOCKER_CONFIG", u.home.path().join(".docker"))
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, out, err) = docker(&[
        "run",
        "--rm",
        "busybox:rl",
        "sh",
        "-c",
        "echo from docker; id -u; exit 4",
    ]);
    assert_eq!(code, Some(4), "{err}");
    assert_eq!(out, "from docker\n0\n", "{err}");
    let (_, out, err) = docker(&["info", "--format", "{{json .SecurityOptions}}"]);
    assert!(out.contains("name=rootless"), "{out} {err}");
    // The daemon and the CLI see the same store.
    let (_, out, _) = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(out.contains("busybox:rl"), "{out}");
}

#[test]
fn rootless_stores_are_private() {
    require_rootless_host!();
    let a = User::new("rl-priv-a", true);
    let b = User::new("rl-priv-b", true);
    a.load_image();
    b.ok(&["images"]);
    let b_store = b.home.path().join(".local/share/berth");
    // A cannot read or change B's store, nor root's.
    let root = Berth::new("rl-priv-root");
    root.ok(&["images"]);
    for store in [b_store.clone(), root.root.path().to_path_buf()] {
        let e = a.fails(&["--root", store.to_str().unwrap(), "images"]);
        assert!(e.contains("Permission denied"), "{e}");
        let o = a.command("ls").arg(&store).output().unwrap();
        assert!(!o.status.success(), "{} listed {}", a.name, store.display());
    }
    // Nor see B's containers: each has its own.
    b.load_image();
    b.ok_detached(&["run", "-d", "--name", "bonly", "busybox:rl", "sleep", "300"]);
    assert!(!a.ok(&["ps", "-a"]).contains("bonly"));
    let e = a.fails(&["rm", "-f", "bonly"]);
    assert!(e.contains("No such container"), "{e}");
    assert!(b.ok(&["ps"]).contains("bonly"));
    // Nor get into B's runtime directory.
    let o = a.command("ls").arg(&b.run).output().unwrap();
    assert!(!o.status.success());
}

#[test]
fn rootless_bad_input_says_what_to_fix() {
    require_rootless_host!();
    // No subordinate ids: the error names the file and the command that adds them.
    let u = User::new("rl-nosub", false);
    let e = u.fails(&["images"]);
    assert!(e.contains("/etc/subuid") && e.contains("usermod --add-subuids"), "{e}");
    // What touches no store still works.
    assert!(u.ok(&["version"]).contains("berth version"));
    // No newuidmap on PATH: the error says which package to install.
    let v = User::new("rl-nohelper", true);
    let empty = v.home.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = v.berth(&["images"]).env("PATH", &empty).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "{e}");
    assert!(e.contains("newuidmap") && e.contains("uidmap package"), "{e}");
    // With everything there, limits this host cannot apply rootless are refused by name.
    v.load_image();
    let layout = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let pure_v2 = !layout.lines().any(|l| l.contains(" - cgroup "));
    if !pure_v2 {
        let e = v.fails(&["run", "--rm", "--memory", "64m", "busybox:rl", "true"]);
        assert!(e.contains("--memory") && e.contains("rootless"), "{e}");
        assert!(!v.ok(&["ps", "-a"]).contains("busybox"), "a refused container was left");
    }
    // A layer owned beyond the user's ranges: the unpack says which owner and what to add,
    // and leaves no image behind.
    let dir = TempDir::new("rl-unmapped");
    let mut l = Layout::new(&dir.path().join("l"));
    let tar = build(&[
        E::Dir("etc/".into(), 0o755),
        E::Owned("etc/far".into(), 70_000, 70_000, b"x".to_vec()),
    ]);
    let m = l.image("amd64", &[Layer::gzip(&tar)], &["sh"]);
    l.tag(m, "far");
    let ar = v.home.path().join("far.tar");
    l.archive(&ar);
    std::os::unix::fs::chown(&ar, Some(v.uid), Some(v.gid)).unwrap();
    let e = v.fails(&["load", "-i", ar.to_str().unwrap()]);
    assert!(e.contains("70000") && e.contains("/etc/subuid"), "{e}");
    assert_eq!(v.ok(&["images", "-q"]).lines().count(), 1, "only busybox:rl");
    // Root's options are refused rootless, and keep-id as root.
    let e = v.fails(&["run", "--rm", "--userns=auto", "busybox:rl", "true"]);
    assert!(e.contains("needs root"), "{e}");
    let e = v.fails(&["run", "--rm", "--uidmap", "0:70000:10", "busybox:rl", "true"]);
    assert!(e.contains("reaches past"), "{e}");
}

/// Makes sure the `containers` user has subordinate ranges for `--userns=auto`; the entries
/// added are removed on drop.
struct AutoRanges(Option<String>);

impl AutoRanges {
    fn ensure() -> AutoRanges {
        let _g = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let has = |f: &str| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .any(|l| l.starts_with("containers:"))
        };
        if has("/etc/subuid") && has("/etc/subgid") {
            return AutoRanges(None);
        }
        let line = format!("containers:{}:{}", 3_000_000_000u32, 65_536 * 3);
        for f in ["/etc/subuid", "/etc/subgid"] {
            let mut t = std::fs::read_to_string(f).unwrap_or_default();
            if !t.is_empty() && !t.ends_with('\n') {
                t.push('\n');
            }
            t.push_str(&line);
            t.push('\n');
            std::fs::write(f, t).unwrap();
        }
        AutoRanges(Some(line))
    }
}

impl Drop for AutoRanges {
    fn drop(&mut self) {
        let Some(line) = &self.0 else { return };
        let _g = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        for f in ["/etc/subuid", "/etc/subgid"] {
            let t = std::fs::read_to_string(f).unwrap_or_default();
            let kept: String = t.lines().filter(|l| l != line).map(|l| format!("{l}\n")).collect();
            let _ = std::fs::write(f, kept);
        }
    }
}

#[test]
fn userns_auto_gives_disjoint_unprivileged_ranges() {
    require_root!();
    let _ranges = AutoRanges::ensure();
    let b = Berth::new("userns-auto");
    let home = TempDir::new("userns-auto-img");
    let (_d, ar) = image_archive(&home, 0, 0);
    let out = b.ok(&["load", "-i", ar.to_str().unwrap()]);
    b.ok(&["tag", loaded_id(&out), "busybox:rl"]);
    let hostdir = TempDir::new("userns-auto-bind");
    std::fs::set_permissions(hostdir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bind = format!("{}:/h", hostdir.path().display());
    let mut ranges = Vec::new();
    for c in ["ua1", "ua2"] {
        let status = b
            .cmd(&[
                "run",
                "-d",
                "--name",
                c,
                "--userns=auto",
                "-v",
                &bind,
                "busybox:rl",
                "sleep",
                "300",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let pid: i32 = b.ok(&["inspect", "-f", "{{.State.Pid}}", c]).trim().parse().unwrap();
        let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
        let f: Vec<u32> = map.split_whitespace().map(|x| x.parse().unwrap()).collect();
        assert_eq!(f.len(), 3, "{map}");
        assert_eq!(f[0], 0);
        // Root inside is an unprivileged uid outside: the range's first.
        assert_eq!(proc_id(pid, "Uid:"), f[1]);
        assert!(f[1] >= 65_536, "{map}");
        ranges.push((f[1], f[2]));
        assert_eq!(b.ok(&["inspect", "-f", "{{.HostConfig.UsernsMode}}", c]).trim(), "auto");
        // The image's files are its root's (idmapped, not copied); a root-owned host
        // directory is not writable by it.
        assert_eq!(b.ok(&["exec", c, "stat", "-c", "%u", "/bin/busybox"]).trim(), "0");
        let o = b.out(&["exec", c, "touch", "/h/x"]);
        assert!(
            !o.status.success(),
            "root in the container wrote to a host root's directory"
        );
        b.ok(&["exec", c, "touch", "/tmp/mine"]);
    }
    let (a, z) = (ranges[0], ranges[1]);
    assert!(a.0 + a.1 <= z.0 || z.0 + z.1 <= a.0, "overlapping ranges {ranges:?}");
    // Explicit maps, and an impossible size says what is exhausted.
    let out = b.ok(&[
        "run",
        "--rm",
        "--uidmap",
        "0:2000000000:1000",
        "busybox:rl",
        "cat",
        "/proc/self/uid_map",
    ]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "2000000000", "1000"]);
    let e = b.fails(&["run", "--rm", "--userns=auto:size=4000000000", "busybox:rl", "true"]);
    assert!(e.contains("no free range"), "{e}");
    let e = b.fails(&["run", "--rm", "--userns=keep-id", "busybox:rl", "true"]);
    assert!(e.contains("rootless"), "{e}");
    b.ok(&["rm", "-f", "ua1", "ua2"]);
}
