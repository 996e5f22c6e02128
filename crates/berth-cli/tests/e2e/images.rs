//! Images end to end: the `berth` image commands against a real registry (Debian's
//! docker-registry, open and with basic auth), skopeo and dockerd as peers, hostile layers,
//! and pulls killed at random moments.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testutil::images::{Auth, Layer, Layout, Registry};
use berth_testutil::tars::{build, Entry as E};
use berth_testutil::{require_root, require_tool, TempDir};
use serde_json::Value;

use crate::berth_bin;

/// A berth data root and Docker config dir of its own.
pub struct Berth {
    pub root: TempDir,
    pub cfg: TempDir,
    /// This instance's number, for names and subnets no other test uses.
    pub net: u8,
}

static NEXT_NET: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);

impl Drop for Berth {
    /// Removes what a test (a failed one especially) left running before the directory
    /// goes: no container outlives its test.
    fn drop(&mut self) {
        if !self.root.path().join("berth.db").exists() {
            return;
        }
        // Pods first: their cgroups are made outside the data root.
        if let Ok(o) = self.cmd(&["pod", "ps", "-q", "--no-trunc"]).output() {
            for id in String::from_utf8_lossy(&o.stdout).lines() {
                let _ = self.cmd(&["pod", "rm", "-f", id]).output();
            }
        }
        let Ok(o) = self.cmd(&["ps", "-aq", "--no-trunc"]).output() else {
            return;
        };
        let ids: Vec<String> = String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(ids.iter().map(String::as_str));
            let _ = self.cmd(&args).output();
        }
    }
}

impl Berth {
    pub fn new(test: &str) -> Berth {
        Berth {
            root: TempDir::new(&format!("{test}-root")),
            cfg: TempDir::new(&format!("{test}-cfg")),
            net: NEXT_NET.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(berth_bin());
        // Every test's networking apart: its own bridge names, subnets and nftables table.
        let n = self.net;
        c.env("BERTH_BRIDGE", format!("bt{}b{n}", std::process::id() % 10000))
            // Hex keeps the prefix at 10 characters whatever the instance's number, so a
            // bridge name (prefix and 5 more) stays within the kernel's 15.
            .env(
                "BERTH_BRIDGE_PREFIX",
                format!("bt{}n{n:x}-", std::process::id() % 10000),
            )
            .env("BERTH_NFT_TABLE", format!("bt{}_{n}", std::process::id()))
            .env(
                "BERTH_BRIDGE_SUBNET",
                format!("10.{}.{n}.0/24", 200 + (std::process::id() % 20)),
            )
            .env("BERTH_NETWORK_POOL", format!("10.{}.0.0/16", 220 + n % 30));
        c.env("BERTH_ROOT", self.root.path())
            .env("DOCKER_CONFIG", self.cfg.path())
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub fn out(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("running berth")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "berth {args:?} failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(!o.status.success(), "berth {args:?} should fail");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    pub fn inspect(&self, name: &str) -> Value {
        let v: Value = serde_json::from_str(&self.ok(&["image", "inspect", name])).unwrap();
        v[0].clone()
    }
}

/// The busybox layer every test image starts from.
fn busybox_tar() -> Vec<u8> {
    let mut entries = vec![
        E::Dir("bin/".into(), 0o755),
        E::Dir("etc/".into(), 0o755),
        E::Dir("tmp/".into(), 0o1777),
    ];
    entries.push(E::File(
        "bin/busybox".into(),
        0o755,
        std::fs::read("/bin/busybox").unwrap(),
    ));
    for a in ["sh", "cat", "ls", "echo", "true", "test"] {
        entries.push(E::Symlink(format!("bin/{a}"), "busybox".into()));
    }
    for d in ["proc", "sys", "dev"] {
        entries.push(E::Dir(format!("{d}/"), 0o755));
    }
    build(&entries)
}

/// A three-layer image (gzip, zstd, plain) in an OCI layout under `dir`, tagged `tag`:
/// layer 2 adds /etc/hello and /etc/old, layer 3 deletes /etc/old (a whiteout) and adds
/// /etc/third.
fn three_layer_layout(dir: &Path, tag: &str) -> Layout {
    let mut l = Layout::new(dir);
    let layers = [
        Layer::gzip(&busybox_tar()),
        Layer::zstd(&build(&[
            E::File("etc/hello".into(), 0o644, b"hello from layer two\n".to_vec()),
            E::File("etc/old".into(), 0o644, b"old\n".to_vec()),
        ])),
        Layer::plain(build(&[
            E::File("etc/.wh.old".into(), 0o644, vec![]),
            E::File("etc/third".into(), 0o644, b"3\n".to_vec()),
        ])),
    ];
    let m = l.image("amd64", &layers, &["sh"]);
    l.tag(m, tag);
    l
}

/// A one-image OCI archive of `layers` (amd64, tagged `tag`) in a fresh directory; returns
/// the directory (kept alive by the caller) and the archive's path.
fn archive_of(test: &str, layers: &[Layer], tag: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(test);
    let mut l = Layout::new(&dir.path().join("l"));
    let m = l.image("amd64", layers, &["sh"]);
    l.tag(m, tag);
    let ar = dir.path().join("a.tar");
    l.archive(&ar);
    (dir, ar)
}

fn skopeo(args: &[&str]) -> String {
    let o = Command::new("skopeo")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("skopeo");
    assert!(
        o.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Mounts an image's layers (from `image inspect`) as an overlay and runs `args` in it with
/// the berth runtime; returns stdout.
fn run_image(b: &Berth, image: &str, args: &[&str]) -> String {
    let v = b.inspect(image);
    let gd = &v["GraphDriver"]["Data"];
    let mut lowers = vec![gd["UpperDir"].as_str().unwrap().to_string()];
    lowers.extend(
        gd["LowerDir"]
            .as_str()
            .unwrap()
            .split(':')
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    );
    let dir = TempDir::new("runimg");
    let (upper, work, rootfs) = (
        dir.path().join("upper"),
        dir.path().join("work"),
        dir.path().join("rootfs"),
    );
    for d in [&upper, &work, &rootfs] {
        std::fs::create_dir_all(d).unwrap();
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        upper.display(),
        work.display()
    );
    nix::mount::mount(
        Some("overlay"),
        &rootfs,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(opts.as_str()),
    )
    .unwrap();
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _u = Umount(rootfs.clone());
    let mut cfg = berth_testutil::base_config(args);
    cfg["root"]["path"] = Value::String(rootfs.display().to_string());
    std::fs::write(dir.path().join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
    let rt = crate::Rt::new("runimg");
    let o = rt.out(&["run", "--bundle", dir.path().to_str().unwrap(), &rt.id()]);
    assert!(o.status.success(), "run: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn snapshot_count(b: &Berth) -> usize {
    std::fs::read_dir(b.root.path().join("snapshots"))
        .map(|r| {
            r.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with("tmp-"))
                .count()
        })
        .unwrap_or(0)
}

/// The image events in a store's event log (what `/events` serves), as Python prints a list.
fn image_events(b: &Berth) -> String {
    let o = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; print([a for (a,) in sqlite3.connect(sys.argv[1]).execute(\"SELECT action FROM events WHERE kind='image'\")])",
        ])
        .arg(b.root.path().join("berth.db"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn load_push_pull_three_layers_and_run() {
    require_root!();
    require_tool!("docker-registry");
    let reg = Registry::start("pushpull", Auth::Open);
    let b = Berth::new("pushpull");
    let dir = TempDir::new("layout");
    let l = three_layer_layout(&dir.path().join("l"), "v1");
    let ar = dir.path().join("img.tar");
    l.archive(&ar);
    // An OCI archive tagged only "v1" loads as a dangling image with its id printed.
    let out = b.ok(&["load", "-i", ar.to_str().unwrap()]);
    assert!(out.starts_with("Loaded image ID: sha256:"), "{out}");
    let id = out.trim().trim_start_matches("Loaded image ID: ").to_string();
    let name = format!("{}/test/three:v1", reg.host);
    b.ok(&["tag", &id, &name]);
    let out = b.ok(&["push", &name]);
    assert!(
        out.contains(&format!("The push refers to repository [{}/test/three]", reg.host)),
        "{out}"
    );
    assert_eq!(out.matches(": Pushed").count(), 3, "{out}");
    let pushed_digest = out
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();
    // The CLI's load, tag and push are in the event log `/events` reads.
    let log = image_events(&b);
    for want in ["'load'", "'tag'", "'push'"] {
        assert!(log.contains(want), "{want}: {log}");
    }
    // Pushing again finds every layer there.
    let out = b.ok(&["push", &name]);
    assert_eq!(out.matches("Layer already exists").count(), 3, "{out}");
    // Another store pulls it: three layers, whiteout applied, and it runs.
    let c = Berth::new("pushpull2");
    let out = c.ok(&["pull", &name]);
    assert!(out.contains(&format!("Digest: {pushed_digest}")), "{out}");
    assert!(out.contains("Status: Downloaded newer image"), "{out}");
    assert_eq!(out.matches("Pull complete").count(), 3, "{out}");
    // The CLI's pull is in the event log `/events` reads, as the API's is.
    assert!(image_events(&c).contains("'pull'"));
    let v = c.inspect(&name);
    assert_eq!(v["Id"], id);
    assert_eq!(v["RootFS"]["Layers"].as_array().unwrap().len(), 3);
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(v["RepoDigests"][0], format!("{}/test/three@{pushed_digest}", reg.host));
    let out = run_image(
        &c,
        &name,
        &[
            "sh",
            "-c",
            "cat /etc/hello /etc/third; test -e /etc/old || echo old-gone",
        ],
    );
    assert_eq!(out, "hello from layer two\n3\nold-gone\n");
    // A second pull fetches nothing.
    let out = c.ok(&["pull", &name]);
    assert!(out.contains("Status: Image is up to date"), "{out}");
    // Pull by digest works and verifies.
    let d = Berth::new("pushpull3");
    d.ok(&["pull", "-q", &format!("{}/test/three@{pushed_digest}", reg.host)]);
    assert_eq!(d.inspect(&format!("{}/test/three@{pushed_digest}", reg.host))["Id"], id);
}

#[test]
fn skopeo_pushes_berth_pulls_and_the_other_way() {
    require_root!();
    require_tool!("docker-registry");
    require_tool!("skopeo");
    let reg = Registry::start("skopeo", Auth::Open);
    let dir = TempDir::new("skopeo-layout");
    three_layer_layout(&dir.path().join("l"), "v1");
    let src = format!("oci:{}:v1", dir.path().join("l").display());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &src,
        &format!("docker://{}/sk/img:v1", reg.host),
    ]);
    let b = Berth::new("skopeo");
    b.ok(&["pull", &format!("{}/sk/img:v1", reg.host)]);
    assert_eq!(
        run_image(&b, &format!("{}/sk/img:v1", reg.host), &["cat", "/etc/third"]),
        "3\n"
    );
    // berth pushes; skopeo copies it to an OCI layout: same manifest digest.
    let name = format!("{}/berth/img:v2", reg.host);
    b.ok(&["tag", &format!("{}/sk/img:v1", reg.host), &name]);
    let out = b.ok(&["push", &name]);
    assert!(
        out.contains("Mounted from sk/img") || out.contains("Layer already exists"),
        "{out}"
    );
    let digest = out
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();
    let dest = dir.path().join("copied");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("oci:{}:v2", dest.display()),
    ]);
    let idx: Value = serde_json::from_slice(&std::fs::read(dest.join("index.json")).unwrap()).unwrap();
    assert_eq!(idx["manifests"][0]["digest"], digest);
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{name}")]);
    assert_eq!(berth_testutil::images::digest(raw.as_bytes()), digest);
}

#[test]
fn index_with_two_platforms() {
    require_root!();
    require_tool!("docker-registry");
    require_tool!("skopeo");
    let reg = Registry::start("index", Auth::Open);
    let dir = TempDir::new("index-layout");
    let mut l = Layout::new(&dir.path().join("l"));
    let base = Layer::gzip(&busybox_tar());
    let amd = l.image(
        "amd64",
        &[
            base.clone(),
            Layer::gzip(&build(&[E::File("arch".into(), 0o644, b"amd64\n".to_vec())])),
        ],
        &["sh"],
    );
    let mut arm = l.image(
        "arm64",
        &[
            base,
            Layer::gzip(&build(&[E::File("arch".into(), 0o644, b"arm64\n".to_vec())])),
        ],
        &["sh"],
    );
    arm["platform"]["variant"] = Value::String("v8".into());
    let idx = l.index(&[amd, arm]);
    l.tag(idx, "multi");
    let name = format!("{}/multi/img:latest", reg.host);
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", dir.path().join("l").display()),
        &format!("docker://{name}"),
    ]);
    let b = Berth::new("index-amd");
    let out = b.ok(&["pull", &name]);
    let v = b.inspect(&name);
    assert_eq!(v["Architecture"], "amd64", "{out}");
    assert_eq!(v["Config"]["Labels"]["berth.test"], "amd64");
    // The repo digest is the index's, as Docker records it.
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{name}")]);
    let index_digest = berth_testutil::images::digest(raw.as_bytes());
    assert!(out.contains(&format!("Digest: {index_digest}")), "{out}");
    let c = Berth::new("index-arm");
    c.ok(&["pull", "--platform", "linux/arm64", &name]);
    assert_eq!(c.inspect(&name)["Architecture"], "arm64");
    let e = c.fails(&["pull", "--platform", "linux/s390x", &name]);
    assert!(e.contains("no matching manifest for linux/s390x"), "{e}");
}

#[test]
fn basic_auth_login_push_pull_logout() {
    require_root!();
    require_tool!("docker-registry");
    require_tool!("htpasswd");
    let reg = Registry::start("auth", Auth::Basic("alice", "s3cret"));
    auth_flow(&reg);
}

#[test]
fn token_auth_login_push_pull_logout() {
    require_root!();
    require_tool!("docker-registry");
    require_tool!("python3");
    let reg = Registry::start("token", Auth::Token("alice", "s3cret"));
    auth_flow(&reg);
}

/// Push refused without credentials, a wrong password refused at login, login, push and
/// pull with the stored credentials, logout.
fn auth_flow(reg: &Registry) {
    let b = Berth::new("auth");
    let dir = TempDir::new("auth-layout");
    three_layer_layout(&dir.path().join("l"), "v1").archive(&dir.path().join("a.tar"));
    let id = b.ok(&["load", "-q", "-i", dir.path().join("a.tar").to_str().unwrap()]);
    assert!(id.is_empty());
    let id = b.ok(&["images", "-q", "--no-trunc"]).trim().to_string();
    let name = format!("{}/private/img:v1", reg.host);
    b.ok(&["tag", &id, &name]);
    let e = b.fails(&["push", &name]);
    assert!(
        e.contains("unauthorized") || e.contains("authentication required"),
        "{e}"
    );
    let mut wrong = b.cmd(&["login", "-u", "alice", "--password-stdin", &reg.host]);
    let o = pipe_in(&mut wrong, "nope\n");
    assert!(!o.status.success(), "a wrong password logs in");
    let mut login = b.cmd(&["login", "-u", "alice", "--password-stdin", &reg.host]);
    let o = pipe_in(&mut login, "s3cret\n");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "Login Succeeded");
    let conf: Value = serde_json::from_slice(&std::fs::read(b.cfg.path().join("config.json")).unwrap()).unwrap();
    assert!(conf["auths"][&reg.host]["auth"].is_string(), "{conf}");
    b.ok(&["push", &name]);
    // A second store with the same Docker config pulls; without it, it cannot.
    let c = Berth::new("auth2");
    std::fs::copy(b.cfg.path().join("config.json"), c.cfg.path().join("config.json")).unwrap();
    c.ok(&["pull", &name]);
    let out = b.ok(&["logout", &reg.host]);
    assert!(out.contains("Removing login credentials"), "{out}");
    let d = Berth::new("auth3");
    let e = d.fails(&["pull", &name]);
    assert!(
        e.contains("unauthorized") || e.contains("authentication required"),
        "{e}"
    );
}

fn pipe_in(c: &mut Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// An image with one large incompressible layer, pushed under `name`.
fn push_big(reg: &Registry, name: &str, mb: usize, layers: usize) -> Berth {
    let b = Berth::new("big-src");
    let dir = TempDir::new("big-layout");
    let mut l = Layout::new(&dir.path().join("l"));
    let mut ls = vec![Layer::gzip(&busybox_tar())];
    let mut seed = 0x2545_f491_4f6c_dd1du64 ^ u64::from(std::process::id());
    for i in 0..layers {
        let mut data = vec![0u8; mb << 20];
        for chunk in data.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
        }
        ls.push(Layer::plain(build(&[E::File(format!("data{i}"), 0o644, data)])));
    }
    let m = l.image("amd64", &ls, &["sh"]);
    l.tag(m, "big");
    l.archive(&dir.path().join("a.tar"));
    b.ok(&["load", "-q", "-i", dir.path().join("a.tar").to_str().unwrap()]);
    let id = b.ok(&["images", "-q", "--no-trunc"]).trim().to_string();
    b.ok(&["tag", &id, name]);
    let _ = reg;
    b.ok(&["push", "-q", name]);
    b
}

#[test]
fn interrupted_pull_resumes_mid_layer() {
    require_root!();
    require_tool!("docker-registry");
    let reg = Registry::start("resume", Auth::Open);
    let name = format!("{}/big/img:v1", reg.host);
    let _src = push_big(&reg, &name, 48, 1);
    let b = Berth::new("resume");
    let mut child = b
        .cmd(&["pull", "-q", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once part of the big layer is on disk.
    let ingest = b.root.path().join("content/ingest");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut partial = 0;
    while Instant::now() < deadline {
        partial = std::fs::read_dir(&ingest)
            .map(|r| {
                r.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        if partial > 4 << 20 || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: kill by the pid of the child this test spawned.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGKILL) };
    let _ = child.wait();
    assert!(partial > 0, "no partial download seen");
    let log_before = reg.log().len();
    b.ok(&["pull", "-q", &name]);
    // The registry served the rest of the layer: a 206 for a ranged blob GET.
    let log = &reg.log()[log_before..];
    assert!(
        log.lines().any(|l| l.contains("/blobs/sha256:") && l.contains("206")),
        "no ranged request after the interruption (partial {partial}):\n{log}"
    );
    assert_eq!(std::fs::read_dir(&ingest).unwrap().count(), 0, "partials left");
    let out = run_image(&b, &name, &["sh", "-c", "test -s /data0 && echo ok"]);
    assert_eq!(out, "ok\n");
}

#[test]
fn pulls_killed_at_random_moments_leave_a_sound_store() {
    require_root!();
    require_tool!("docker-registry");
    let reg = Registry::start("sigkill", Auth::Open);
    let name = format!("{}/kill/img:v1", reg.host);
    let _src = push_big(&reg, &name, 6, 3);
    let b = Berth::new("sigkill");
    let mut seed = u64::from(std::process::id()) * 2_654_435_761;
    for _ in 0..20 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let delay = Duration::from_millis((seed >> 33) % 400);
        let mut child = b
            .cmd(&["pull", "-q", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        // SAFETY: kill by the pid of the child this test spawned.
        unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGKILL) };
        let _ = child.wait();
        // The store always reads back.
        b.ok(&["images"]);
    }
    b.ok(&["pull", "-q", &name]);
    let v = b.inspect(&name);
    assert_eq!(v["RootFS"]["Layers"].as_array().unwrap().len(), 4);
    assert_eq!(snapshot_count(&b), 4);
    b.ok(&["images", "-q"]);
    let out = run_image(&b, &name, &["sh", "-c", "ls /data0 /data1 /data2"]);
    assert_eq!(out.lines().count(), 3);
    // Removing the image leaves nothing behind.
    b.ok(&["rmi", &name]);
    assert_eq!(snapshot_count(&b), 0);
    let blobs = std::fs::read_dir(b.root.path().join("content/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0, "blobs left after rmi");
}

#[test]
fn hostile_layers_are_refused_and_leave_nothing() {
    require_root!();
    let victim = TempDir::new("victim");
    let v = victim.path().display().to_string();
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        (
            "traversal",
            build(&[E::File("../../../../tmp/escaped".into(), 0o644, b"x".to_vec())]),
        ),
        (
            "hardlink to /etc/shadow",
            build(&[E::Hardlink("shadow".into(), "/etc/shadow".into())]),
        ),
        (
            "symlink then write-through",
            build(&[
                E::Symlink("x".into(), v.clone()),
                E::File("x/pwned".into(), 0o644, b"x".to_vec()),
            ]),
        ),
        ("sparse bomb header", build(&[E::Lying("bomb".into(), 10 << 30)])),
    ];
    for (what, tar) in hostile {
        let b = Berth::new("hostile");
        let (_dir, ar) = archive_of("hostile-layout", &[Layer::gzip(&tar)], "bad");
        let o = b.out(&["load", "-i", ar.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        if o.status.success() {
            // Contained rather than refused: the write stayed inside the snapshot.
            assert_eq!(what, "symlink then write-through", "{what} accepted");
        } else {
            assert!(err.contains("layer"), "{what}: unclear error: {err}");
            assert_eq!(snapshot_count(&b), 0, "{what}: a snapshot was left");
            assert_eq!(b.ok(&["images", "-q"]), "", "{what}: an image was recorded");
        }
        assert_eq!(
            std::fs::read_dir(victim.path()).unwrap().count(),
            0,
            "{what}: wrote outside"
        );
        let tmp_left = std::fs::read_dir(b.root.path().join("snapshots"))
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("tmp-"));
        assert!(!tmp_left, "{what}: a temporary snapshot was left");
    }
    assert!(!Path::new("/tmp/escaped").exists());
    // A blob whose content does not match its digest never enters the store.
    let b = Berth::new("mismatch");
    let dir = TempDir::new("mismatch-layout");
    let mut l = Layout::new(&dir.path().join("l"));
    let m = l.image("amd64", &[Layer::gzip(&busybox_tar())], &["sh"]);
    let layer_digest = {
        let man: Value = serde_json::from_slice(
            &std::fs::read(
                dir.path()
                    .join("l/blobs/sha256")
                    .join(&m["digest"].as_str().unwrap()[7..]),
            )
            .unwrap(),
        )
        .unwrap();
        man["layers"][0]["digest"].as_str().unwrap().to_string()
    };
    l.tag(m, "bad");
    std::fs::write(dir.path().join("l/blobs/sha256").join(&layer_digest[7..]), b"tampered").unwrap();
    l.archive(&dir.path().join("a.tar"));
    let e = b.fails(&["load", "-i", dir.path().join("a.tar").to_str().unwrap()]);
    assert!(e.contains("digest mismatch") || e.contains("size mismatch"), "{e}");
    assert!(!b
        .root
        .path()
        .join("content/blobs/sha256")
        .join(&layer_digest[7..])
        .exists());
}

#[test]
fn docker_load_reads_berth_save_and_berth_loads_docker_save() {
    require_root!();
    require_tool!("dockerd");
    let d = crate::peers::dockerd::Dockerd::start("imgio");
    d.import_busybox("fromdocker:v1");
    let dir = TempDir::new("imgio");
    let saved = dir.path().join("docker.tar");
    d.ok(&["save", "-o", saved.to_str().unwrap(), "fromdocker:v1"]);
    let b = Berth::new("imgio");
    let out = b.ok(&["load", "-i", saved.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: fromdocker:v1");
    assert_eq!(run_image(&b, "fromdocker:v1", &["echo", "hi"]), "hi\n");
    // And back: berth's archive (Docker format), tagged anew, into dockerd.
    b.ok(&["tag", "fromdocker:v1", "berthmade:v2"]);
    let ours = dir.path().join("berth.tar");
    b.ok(&["save", "-o", ours.to_str().unwrap(), "berthmade:v2"]);
    let out = d.ok(&["load", "-i", ours.to_str().unwrap()]);
    assert!(out.contains("Loaded image: berthmade:v2"), "{out}");
    let ids = d.ok(&["image", "inspect", "--format", "{{.Id}}", "berthmade:v2"]);
    assert_eq!(ids.trim(), b.inspect("berthmade:v2")["Id"]);
    // The OCI flavour loads back into berth.
    let oci = dir.path().join("oci.tar");
    b.ok(&["save", "--format", "oci", "-o", oci.to_str().unwrap(), "berthmade:v2"]);
    let c = Berth::new("imgio2");
    assert_eq!(
        c.ok(&["load", "-i", oci.to_str().unwrap()]).trim(),
        "Loaded image: berthmade:v2"
    );
}

#[test]
fn image_commands_behave_like_docker() {
    require_root!();
    let b = Berth::new("cmds");
    let dir = TempDir::new("cmds");
    let rootfs = dir.path().join("rootfs");
    berth_testutil::busybox_rootfs(&rootfs).unwrap();
    let tar = dir.path().join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("--warning=no-file-changed")
        .arg("-czf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    // GNU tar exits 1 when a file changed while read (a parallel test touching /tmp).
    assert!(st.code().is_some_and(|c| c <= 1) && std::fs::metadata(&tar).unwrap().len() > 0);
    let id = b.ok(&[
        "import",
        "-c",
        "CMD [\"sh\", \"-c\", \"echo hi\"]",
        "-c",
        "ENV A=1 B=2",
        "-c",
        "WORKDIR /tmp",
        "-c",
        "LABEL team=core",
        "-m",
        "from a tarball",
        tar.to_str().unwrap(),
        "me/app:1.0",
    ]);
    let id = id.trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let v = b.inspect("me/app:1.0");
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["sh", "-c", "echo hi"]));
    assert_eq!(v["Config"]["Env"], serde_json::json!(["A=1", "B=2"]));
    assert_eq!(v["Config"]["WorkingDir"], "/tmp");
    assert_eq!(v["Config"]["Labels"]["team"], "core");
    assert_eq!(v["Comment"], "from a tarball");
    assert_eq!(v["RepoTags"], serde_json::json!(["me/app:1.0"]));
    // Bad --change is refused.
    let e = b.fails(&["import", "-c", "FROBNICATE x", tar.to_str().unwrap()]);
    assert!(e.contains("FROBNICATE is not a valid change command"), "{e}");
    // images: table, -q, --format, filters, short id prefixes.
    b.ok(&["tag", "me/app:1.0", "me/app:latest"]);
    b.ok(&["tag", &id[7..19], "other/img"]);
    let table = b.ok(&["images"]);
    let head = table.lines().next().unwrap();
    assert!(
        head.starts_with("REPOSITORY") && head.contains("IMAGE ID") && head.ends_with("SIZE"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 4, "{table}");
    assert_eq!(b.ok(&["images", "-q"]).trim(), &id[7..19]);
    let f = b.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}", "me/app"]);
    let mut lines: Vec<&str> = f.lines().collect();
    lines.sort();
    assert_eq!(lines, ["me/app:1.0", "me/app:latest"]);
    assert_eq!(
        b.ok(&["images", "--filter", "label=team=core", "-q"]).trim(),
        &id[7..19]
    );
    assert_eq!(b.ok(&["images", "--filter", "dangling=true", "-q"]), "");
    let j: Value = serde_json::from_str(b.ok(&["images", "--format", "json"]).lines().next().unwrap()).unwrap();
    assert_eq!(j["ID"], &id[7..19]);
    assert_eq!(b.ok(&["inspect", "--format", "{{.Id}}", &id[7..15]]).trim(), id);
    assert_eq!(
        b.ok(&["image", "inspect", "-f", "{{json .Config.Cmd}}", "me/app:1.0"])
            .trim(),
        r#"["sh","-c","echo hi"]"#
    );
    let h = b.ok(&["history", "me/app:1.0"]);
    assert!(
        h.starts_with("IMAGE") && h.contains("berth import") && h.contains("from a tarball"),
        "{h}"
    );
    // rmi: by tag untags; by id with several repositories needs -f.
    assert_eq!(b.ok(&["rmi", "me/app:latest"]).trim(), "Untagged: me/app:latest");
    let e = b.fails(&["rmi", &id[7..19]]);
    assert!(e.contains("referenced in multiple repositories"), "{e}");
    let e = b.fails(&["rmi", "no/such:image"]);
    assert!(e.contains("No such image: no/such:image"), "{e}");
    let e = b.fails(&["pull", "me/Upper"]);
    assert!(e.contains("invalid reference format"), "{e}");
    let df = b.ok(&["system", "df"]);
    assert!(df.starts_with("TYPE") && df.contains("Images"), "{df}");
    let out = b.ok(&["rmi", "-f", &id[7..19]]);
    assert!(
        out.contains("Untagged: me/app:1.0")
            && out.contains("Untagged: other/img:latest")
            && out.contains(&format!("Deleted: {id}")),
        "{out}"
    );
    assert_eq!(b.ok(&["images", "-q"]), "");
    assert_eq!(snapshot_count(&b), 0);
    // prune removes dangling images only.
    b.ok(&["import", tar.to_str().unwrap()]);
    b.ok(&["import", tar.to_str().unwrap(), "keep:me"]);
    let out = b.ok(&["image", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space"), "{out}");
    assert_eq!(b.ok(&["images", "--format", "{{.Repository}}"]).trim(), "keep");
    // save to a terminal-less stdout streams; a missing image fails with nothing written.
    let e = b.fails(&["save", "-o", dir.path().join("x.tar").to_str().unwrap(), "nope"]);
    assert!(e.contains("No such image"), "{e}");
    assert!(!dir.path().join("x.tar").exists());
}

#[test]
fn hostile_layer_pulled_from_a_registry_is_refused() {
    require_root!();
    require_tool!("docker-registry");
    require_tool!("skopeo");
    let reg = Registry::start("hostile-pull", Auth::Open);
    let dir = TempDir::new("hostile-pull");
    let mut l = Layout::new(&dir.path().join("l"));
    let bad = build(&[
        E::File("ok".into(), 0o644, b"fine".to_vec()),
        E::File("../../../../../tmp/pulled-escape".into(), 0o644, b"x".to_vec()),
    ]);
    let m = l.image("amd64", &[Layer::gzip(&busybox_tar()), Layer::gzip(&bad)], &["sh"]);
    l.tag(m, "bad");
    let name = format!("{}/hostile/img:bad", reg.host);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:bad", dir.path().join("l").display()),
        &format!("docker://{name}"),
    ]);
    let b = Berth::new("hostile-pull");
    let e = b.fails(&["pull", &name]);
    assert!(e.contains("layer") && e.contains("escapes"), "{e}");
    assert!(!Path::new("/tmp/pulled-escape").exists());
    assert_eq!(b.ok(&["images", "-q"]), "");
    let left: Vec<String> = std::fs::read_dir(b.root.path().join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    // The good base layer may stay as a snapshot for the next pull; the bad one is not there
    // and nothing half-made is.
    assert!(
        left.len() <= 1 && left.iter().all(|n| !n.starts_with("tmp-")),
        "{left:?}"
    );
}

#[test]
fn device_nodes_are_skipped_in_a_rootless_context() {
    require_root!();
    require_tool!("unshare");
    let tar = build(&[
        E::Dir("dev/".into(), 0o755),
        E::Char("dev/mem".into(), 1, 1),
        E::File("etc-file".into(), 0o644, b"kept".to_vec()),
        E::Fifo("fifo".into()),
    ]);
    let (_dir, ar) = archive_of("rootless-dev", &[Layer::gzip(&tar)], "dev");
    let b = Berth::new("rootless-dev");
    // A user namespace whose root maps to one id: what a rootless berth runs as.
    let o = Command::new("unshare")
        .args(["--user", "--map-root-user", "--"])
        .arg(berth_bin())
        .args(["load", "-i", ar.to_str().unwrap()])
        .env("BERTH_ROOT", b.root.path())
        .env("DOCKER_CONFIG", b.cfg.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let snaps: Vec<PathBuf> = std::fs::read_dir(b.root.path().join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("fs"))
        .collect();
    assert_eq!(snaps.len(), 1);
    assert!(
        !snaps[0].join("dev/mem").exists(),
        "a device node was made without privilege"
    );
    assert_eq!(std::fs::read_to_string(snaps[0].join("etc-file")).unwrap(), "kept");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(snaps[0].join("fifo")).unwrap().file_type().is_fifo());
}
