//! Issue #13: the store closed to other host users, `cp` with `-` and without host paths made
//! from container symlinks, bad input refused, and Docker behaviours clients rely on.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_testutil::{require_root, require_tool, TempDir};

use crate::containers::with_busybox;

/// An unprivileged host account made for the test (`useradd`), removed when dropped.
struct Stranger(String);

impl Stranger {
    fn new() -> Stranger {
        let name = format!("bt{}", std::process::id());
        let o = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                &name,
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "useradd: {}", String::from_utf8_lossy(&o.stderr));
        Stranger(name)
    }
}

impl Drop for Stranger {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.0).output();
        let _ = Command::new("groupdel").arg(&self.0).output();
    }
}

/// Runs `argv` as `who` (setpriv, no supplementary groups, no capabilities); returns
/// (success, stderr).
fn as_stranger(who: &Stranger, argv: &[&str]) -> (bool, String) {
    let u = &who.0;
    let o = Command::new("setpriv")
        .args(["--reuid", u, "--regid", u, "--clear-groups", "--inh-caps=-all", "--"])
        // Through a shell: setpriv itself may open its program before it drops privileges.
        .args(["/bin/sh", "-c", "exec \"$@\"", "sh"])
        .args(argv)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if e.file_name() == name {
            return Some(p);
        }
        if e.file_type().ok()?.is_dir() {
            if let Some(f) = find(&p, name) {
                return Some(f);
            }
        }
    }
    None
}

#[test]
fn the_store_is_closed_to_other_host_users() {
    require_root!();
    require_tool!("setpriv");
    require_tool!("useradd");
    let who = Stranger::new();
    let (b, dir) = with_busybox("perm-store");
    // The data root sits in /tmp (0755 parents): only berth's own modes keep a user out.
    assert_eq!(mode(b.root.path().parent().unwrap()) & 0o005, 0o005);
    // A layer with a setuid-root program and a world-writable node of a host block device.
    let lay = dir.path().join("lay");
    std::fs::create_dir(&lay).unwrap();
    std::fs::copy("/bin/busybox", lay.join("suid")).unwrap();
    std::fs::set_permissions(lay.join("suid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    let st = Command::new("mknod")
        .arg(lay.join("disk"))
        .args(["b", "7", "0"])
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::set_permissions(lay.join("disk"), std::fs::Permissions::from_mode(0o666)).unwrap();
    let tar = dir.path().join("lay.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&lay)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap()
        .success());
    b.ok(&["import", tar.to_str().unwrap(), "hostile:1"]);
    let id = b
        .ok(&[
            "run",
            "-d",
            "-e",
            "SECRET=hunter2",
            "bb:1",
            "sh",
            "-c",
            "echo logged; sleep 60",
        ])
        .trim()
        .to_string();
    let root = b.root.path();
    let suid = find(&root.join("snapshots"), "suid").expect("the setuid file in a snapshot");
    let disk = find(&root.join("snapshots"), "disk").expect("the device node in a snapshot");
    let c = root.join("containers").join(&id);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_to_string(c.join("json.log"))
        .unwrap_or_default()
        .is_empty()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    assert_eq!(mode(root), 0o700);
    for d in ["snapshots", "containers", "content", "volumes"] {
        assert_eq!(mode(&root.join(d)), 0o700, "{d}");
    }
    assert_eq!(mode(&c), 0o700);
    assert_eq!(mode(&c.join("config.json")), 0o600);
    assert_eq!(mode(&c.join("state.json")), 0o600);
    assert_eq!(mode(&c.join("json.log")), 0o640);
    assert_eq!(mode(&root.join("berth.db")), 0o600);

    let (ran, err) = as_stranger(&who, &[suid.to_str().unwrap(), "id", "-u"]);
    assert!(
        !ran && err.contains("Permission denied"),
        "the setuid file {} ran: {err}",
        suid.display()
    );
    for f in [
        &disk,
        &c.join("config.json"),
        &c.join("json.log"),
        &root.join("berth.db"),
    ] {
        let (read, err) = as_stranger(&who, &["cat", f.to_str().unwrap()]);
        assert!(
            !read && err.contains("Permission denied"),
            "{} was readable: {err}",
            f.display()
        );
    }
    let (listed, _) = as_stranger(&who, &["ls", root.join("snapshots").to_str().unwrap()]);
    assert!(!listed);

    // A store made before the model is repaired when berth next opens it.
    b.ok(&["rm", "-f", &id]);
    for d in [root, &root.join("snapshots"), &root.join("containers")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(root.join("berth.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    b.ok(&["ps", "-a"]);
    assert_eq!(mode(root), 0o700);
    assert_eq!(mode(&root.join("snapshots")), 0o700);
    assert_eq!(mode(&root.join("berth.db")), 0o600);
    let (ran, _) = as_stranger(&who, &[suid.to_str().unwrap(), "id", "-u"]);
    assert!(!ran);
}

/// Lists a tar's entries (`tar tf`).
fn tar_list(data: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(data);
    ar.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn cp_streams_tars_with_dash_and_never_writes_through_container_symlinks() {
    require_root!();
    let (b, dir) = with_busybox("cp-dash");
    let host = TempDir::new("cp-dash-host");
    let victim = host.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    let id = b
        .ok(&[
            "run",
            "-d",
            "--hostname",
            "boxname",
            "bb:1",
            "sh",
            "-c",
            &format!(
                "mkdir -p /x/sub && echo a > /x/a && echo b > /x/sub/b && ln -s {} /dirlink && sleep 60",
                victim.display()
            ),
        ])
        .trim()
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();

    // `-` as destination: a tar on stdout, and no host file named `-`.
    let o = b
        .cmd(&["cp", &format!("{id}:/etc/hostname"), "-"])
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(tar_list(&o.stdout), ["hostname"]);
    let mut ar = tar::Archive::new(o.stdout.as_slice());
    let mut e = ar.entries().unwrap().next().unwrap().unwrap();
    let mut s = String::new();
    std::io::Read::read_to_string(&mut e, &mut s).unwrap();
    // The container's view (its bind-mounted /etc/hostname), not the rootfs's empty file.
    assert_eq!(s, "boxname\n");
    assert!(!work.join("-").exists());
    let o = b
        .cmd(&["cp", &format!("{id}:/dirlink"), "-"])
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(tar_list(&o.stdout), ["dirlink"]);
    let o = b
        .cmd(&["cp", &format!("{id}:/x/."), "-"])
        .current_dir(&work)
        .output()
        .unwrap();
    let mut names = tar_list(&o.stdout);
    names.sort();
    assert_eq!(names, [".", "a", "sub", "sub/b"]);
    assert!(!work.join("-").exists(), "a host file named - was made");
    assert!(std::fs::read_dir(&victim).unwrap().next().is_none());

    // A symlink copied out is a symlink on the host; a later copy to that path replaces it
    // instead of writing into the directory the container chose.
    let out = work.join("out");
    b.ok(&["cp", &format!("{id}:/dirlink"), out.to_str().unwrap()]);
    assert_eq!(std::fs::read_link(&out).unwrap(), victim);
    b.fails(&["cp", &format!("{id}:/x"), out.to_str().unwrap()]);
    b.ok(&["cp", &format!("{id}:/x/a"), out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "a\n");
    assert!(
        std::fs::read_dir(&victim).unwrap().next().is_none(),
        "wrote into the victim directory"
    );

    // Docker's destination rules: into an existing directory, as a new name, or contents.
    let d = work.join("d");
    std::fs::create_dir(&d).unwrap();
    b.ok(&["cp", &format!("{id}:/x"), d.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(d.join("x/sub/b")).unwrap(), "b\n");
    b.ok(&["cp", &format!("{id}:/x/."), d.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(d.join("sub/b")).unwrap(), "b\n");
    b.ok(&["cp", &format!("{id}:/x"), work.join("renamed").to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(work.join("renamed/a")).unwrap(), "a\n");

    // `-` as source: a tar from stdin, unpacked into a directory of the container.
    let src = work.join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("in.txt"), "from stdin\n").unwrap();
    let tarball = Command::new("tar")
        .arg("-C")
        .arg(&src)
        .args(["-cf", "-", "in.txt"])
        .output()
        .unwrap()
        .stdout;
    let mut child = b
        .cmd(&["cp", "-", &format!("{id}:/tmp")])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &tarball).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(b.ok(&["exec", &id, "cat", "/tmp/in.txt"]), "from stdin\n");
    let e = b.fails(&["cp", "-", &format!("{id}:/x/a")]);
    assert!(e.contains("not a directory"), "{e}");
    b.ok(&["rm", "-f", &id]);
}

#[test]
fn export_writes_paths_longer_than_path_max() {
    require_root!();
    let (b, dir) = with_busybox("export-deep");
    // 40 levels of 100-byte names: a 4 KiB path, made by cd-ing down one level at a time.
    let seg = "d".repeat(100);
    let script = format!("cd /tmp && for i in $(seq 40); do mkdir {seg} && cd {seg}; done && echo deep > leaf");
    let id = b.ok(&["create", "bb:1", "sh", "-c", &script]).trim().to_string();
    b.ok(&["start", "-a", &id]);
    let out = dir.path().join("export.tar");
    b.ok(&["export", "-o", out.to_str().unwrap(), &id]);
    let data = std::fs::read(&out).unwrap();
    let names = tar_list(&data);
    let leaf = names
        .iter()
        .find(|n| n.ends_with("/leaf"))
        .expect("the deep file exported");
    assert!(leaf.len() > 4025, "{}", leaf.len());
    assert!(names.iter().any(|n| n == "bin/busybox"));
    b.ok(&["rm", &id]);
}

#[test]
fn save_of_a_corrupted_store_fails_naming_the_blob() {
    require_root!();
    let (b, dir) = with_busybox("save-corrupt");
    let good = dir.path().join("good.tar");
    b.ok(&["save", "-o", good.to_str().unwrap(), "bb:1"]);
    // Flip a byte in the largest blob (the layer).
    let blobs = b.root.path().join("content/blobs/sha256");
    let (blob, _) = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .map(|e| (e.path(), e.metadata().unwrap().len()))
        .max_by_key(|(_, n)| *n)
        .unwrap();
    let mut data = std::fs::read(&blob).unwrap();
    data[100] ^= 0xff;
    std::fs::write(&blob, &data).unwrap();
    let out = dir.path().join("bad.tar");
    let e = b.fails(&["save", "-o", out.to_str().unwrap(), "bb:1"]);
    let hex = blob.file_name().unwrap().to_str().unwrap();
    assert!(e.contains(hex) && e.contains("corrupt"), "{e}");
    assert!(!out.exists(), "a save that failed left its file");
    // To stdout: the error, and a failing exit code.
    let o = b.cmd(&["save", "bb:1"]).stdout(Stdio::piped()).output().unwrap();
    assert!(!o.status.success());
}

#[test]
fn bad_limits_and_a_root_destination_are_refused_with_nothing_made() {
    require_root!();
    let (b, dir) = with_busybox("bad-input");
    let host = dir.path().to_str().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["-v", &format!("{host}:/")], "destination can't be '/'"),
        (&["-v", "vol:/"], "destination can't be '/'"),
        (
            &["--mount", &format!("type=bind,src={host},dst=/")],
            "destination can't be '/'",
        ),
        (
            &["--memory", "99999999999999999999g"],
            "invalid argument \"99999999999999999999g\" for \"-m, --memory\" flag",
        ),
        (&["--cpus", "NaN"], "failed to parse NaN as a rational number"),
        (&["--cpus", "100000"], "Range of CPUs is from 0.01 to"),
    ];
    for (flags, want) in cases {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["bb:1", "true"]);
        let o = b.out(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(125), "{flags:?}: {err}");
        assert!(err.contains(want), "{flags:?}: {err}");
    }
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert_eq!(b.ok(&["volume", "ls", "-q"]), "");
    let e = b.fails(&["update", "--cpus", "NaN", "x"]);
    assert!(e.contains("failed to parse NaN"), "{e}");
    // A multi-byte unit is an error, not a panic.
    let id = b.ok(&["create", "bb:1", "true"]).trim().to_string();
    for flag in ["--since", "--until"] {
        let o = b.out(&["logs", flag, "5€", &id]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.code().is_some_and(|c| c != 101) && e.contains("invalid time: 5€"),
            "{flag}: {e}"
        );
    }
    b.ok(&["rm", &id]);
}

fn state_json(b: &crate::images::Berth, id: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(b.root.path().join("containers").join(id).join("state.json")).unwrap())
        .unwrap()
}

#[test]
fn a_killed_monitor_still_gets_the_real_exit_code_recorded() {
    require_root!();
    let (b, _dir) = with_busybox("monitor-killed");
    let id = b
        .ok(&["run", "-d", "bb:1", "sh", "-c", "sleep 2; exit 7"])
        .trim()
        .to_string();
    let monitor = state_json(&b, &id)["monitor_pid"].as_i64().unwrap();
    assert!(monitor > 0);
    let keeper = parent_of(monitor);
    // SAFETY: a signal to the monitor this test's container started.
    assert_eq!(unsafe { libc::kill(i32::try_from(monitor).unwrap(), libc::SIGKILL) }, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let st = b.ok(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", &id]);
        if st.starts_with("exited") {
            assert_eq!(st.trim(), "exited 7", "the exit code was lost");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{st}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(b.ok(&["ps", "-a", "--format", "{{.Status}}"]).starts_with("Exited (7)"));
    // The keeper finished the run and went, and the container starts again normally.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while Path::new(&format!("/proc/{keeper}")).exists() {
        assert!(std::time::Instant::now() < deadline, "the keeper stayed");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    b.ok(&["start", &id]);
    assert_eq!(b.ok(&["wait", &id]).trim(), "7");
    b.ok(&["rm", &id]);

    // Once the keeper has become `berth _keep` (a fresh image, 2 s after the start), the same.
    let id = b
        .ok(&["run", "-d", "bb:1", "sh", "-c", "sleep 5; exit 9"])
        .trim()
        .to_string();
    let monitor = state_json(&b, &id)["monitor_pid"].as_i64().unwrap();
    let keeper = parent_of(monitor);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(4);
    while !std::fs::read_to_string(format!("/proc/{keeper}/cmdline"))
        .unwrap_or_default()
        .contains("_keep")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the keeper never became berth _keep"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: a signal to the monitor this test's container started.
    assert_eq!(unsafe { libc::kill(i32::try_from(monitor).unwrap(), libc::SIGKILL) }, 0);
    assert_eq!(b.ok(&["wait", &id]).trim(), "9");
    assert_eq!(
        b.ok(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", &id])
            .trim(),
        "exited 9"
    );
    b.ok(&["rm", &id]);
}

pub(crate) fn parent_of(pid: i64) -> i32 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap()
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn cp_of_a_stopped_container_sees_its_binds_and_volumes() {
    require_root!();
    let (b, dir) = with_busybox("cp-stopped");
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::write(ro.join("f"), "host data\n").unwrap();
    let id = b
        .ok(&[
            "create",
            "--hostname",
            "stoppedbox",
            "-v",
            &format!("{}:/data:ro", ro.display()),
            "-v",
            "cpvol:/vol",
            "bb:1",
            "sh",
            "-c",
            "echo kept > /vol/in-volume",
        ])
        .trim()
        .to_string();
    b.ok(&["start", "-a", &id]);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for (src, want) in [
        ("/etc/hostname", "stoppedbox\n"),
        ("/data/f", "host data\n"),
        ("/vol/in-volume", "kept\n"),
    ] {
        b.ok(&["cp", &format!("{id}:{src}"), out.join("x").to_str().unwrap()]);
        assert_eq!(std::fs::read_to_string(out.join("x")).unwrap(), want, "{src}");
    }
    // A read-only bind stays read-only, and nothing stays mounted on the host.
    std::fs::write(out.join("new"), "n\n").unwrap();
    b.fails(&["cp", out.join("new").to_str().unwrap(), &format!("{id}:/data/")]);
    assert!(!ro.join("new").exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(b.root.path().to_str().unwrap()), "{mounts}");
    b.ok(&["rm", "-v", &id]);
}

#[test]
fn inspect_formats_take_range_if_and_with() {
    require_root!();
    let (b, dir) = with_busybox("format-blocks");
    let host = dir.path().display().to_string();
    let id = b
        .ok(&["create", "-v", &format!("{host}:/h"), "bb:1", "true"])
        .trim()
        .to_string();
    assert_eq!(
        b.ok(&["inspect", "-f", "{{range .Mounts}}{{.Source}}{{end}}", &id])
            .trim(),
        host
    );
    assert_eq!(
        b.ok(&["inspect", "-f", "{{if .State.Running}}up{{else}}down{{end}}", &id])
            .trim(),
        "down"
    );
    assert_eq!(
        b.ok(&["inspect", "-f", "{{with .Config}}{{join .Cmd \" \"}}{{end}}", &id])
            .trim(),
        "true"
    );
    let e = b.fails(&["inspect", "-f", "{{range .Mounts}}", &id]);
    assert!(e.contains("unterminated range"), "{e}");
    b.ok(&["rm", &id]);
}

#[test]
fn a_late_keeper_leaves_a_later_run_to_its_own_monitor() {
    require_root!();
    let (b, _dir) = with_busybox("keeper-late");
    let id = b.ok(&["run", "-d", "bb:1", "sleep", "100"]).trim().to_string();
    let keeper = parent_of(state_json(&b, &id)["monitor_pid"].as_i64().unwrap());
    // The first run's keeper is held while the run ends and a second one starts, as a
    // niced keeper on a busy machine may be.
    // SAFETY: signals to the keeper this test's container started.
    assert_eq!(unsafe { libc::kill(keeper, libc::SIGSTOP) }, 0);
    b.ok(&["stop", "-t", "0", &id]);
    b.ok(&["start", &id]);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(keeper, libc::SIGCONT) }, 0);
    // Whatever the first keeper does now, the second run is recorded by its own monitor.
    std::thread::sleep(std::time::Duration::from_millis(300));
    b.ok(&["kill", &id]);
    assert_eq!(b.ok(&["wait", &id]).trim(), "137");
    assert_eq!(b.ok(&["inspect", "-f", "{{.State.ExitCode}}", &id]).trim(), "137");
    b.ok(&["rm", &id]);
}

#[test]
fn sysctls_and_the_oom_score_are_set_and_checked() {
    require_root!();
    let (b, _img) = with_busybox("sysctl");
    let out = b.ok(&[
        "run",
        "--rm",
        "--sysctl",
        "kernel.shmmni=1234",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--oom-score-adj",
        "300",
        "bb:1",
        "cat",
        "/proc/sys/kernel/shmmni",
        "/proc/sys/net/ipv4/ip_forward",
        "/proc/self/oom_score_adj",
    ]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["1234", "1", "300"]);
    // The host's values are untouched.
    let host = std::fs::read_to_string("/proc/sys/kernel/shmmni").unwrap();
    assert_ne!(host.trim(), "1234");
    let id = b.ok(&[
        "create",
        "--sysctl",
        "kernel.sem=250 32000 32 128",
        "--oom-score-adj",
        "7",
        "bb:1",
    ]);
    assert_eq!(
        b.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.OomScoreAdj}} {{index .HostConfig.Sysctls \"kernel.sem\"}}",
            id.trim()
        ])
        .trim(),
        "7 250 32000 32 128"
    );
    // Not namespaced, the host's namespace, or out of range: refused, nothing made.
    let before = b.ok(&["ps", "-aq"]);
    for args in [
        &["--sysctl", "kernel.hostname=x"][..],
        &["--sysctl", "vm.swappiness=1"],
        &["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"],
        &["--ipc", "host", "--sysctl", "kernel.shmmni=10"],
        &["--sysctl", "noequals"],
        &["--oom-score-adj", "1001"],
    ] {
        let mut full = vec!["create"];
        full.extend_from_slice(args);
        full.push("bb:1");
        let o = b.out(&full);
        assert_eq!(o.status.code(), Some(125), "{args:?}: {o:?}");
        assert!(!o.stderr.is_empty(), "{args:?}");
    }
    assert_eq!(b.ok(&["ps", "-aq"]), before);
    // Lower than berth's own without CAP_SYS_RESOURCE: clamped, with a warning.
    let own: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let o = b.out(&[
        "run",
        "--rm",
        "--oom-score-adj",
        "-1000",
        "bb:1",
        "cat",
        "/proc/self/oom_score_adj",
    ]);
    assert!(o.status.success(), "{o:?}");
    let got: i32 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
    assert!(
        got == -1000 || (got == own && String::from_utf8_lossy(&o.stderr).contains("CAP_SYS_RESOURCE")),
        "{o:?}"
    );
}
