//! CDI devices: a fake vendor's spec (device nodes the test makes with mknod, a mount,
//! env, hooks that leave markers) applied to a container; invalid specs, unknown devices
//! and GPU requests on a host without GPUs refused.

use std::path::Path;
use std::process::Command;

use berth_testutil::{require_root, require_tool, TempDir};

use crate::api::Daemon;
use crate::containers::with_busybox;

fn mknod(path: &Path, major: u32, minor: u32) {
    let st = Command::new("mknod")
        .arg(path)
        .args(["c", &major.to_string(), &minor.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "mknod {}", path.display());
}

/// A fake vendor under `d`: `example.test/accel=accel0` (a node with /dev/fuse's numbers,
/// 10:229, which the default device cgroup does not allow), a mount, env, hooks leaving
/// markers in `d`; a shadowed copy in a lower directory and a broken spec beside it. The
/// value for `BERTH_CDI_SPEC_DIRS`.
pub(crate) fn fake_vendor(d: &Path) -> String {
    for sub in ["low", "high", "nodes", "vendor"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    // The vendor's device: /dev/fuse's numbers (10:229), which the default device cgroup
    // does not allow, under a name of the vendor's.
    mknod(&d.join("nodes/accel0"), 10, 229);
    std::fs::write(d.join("vendor/lib.txt"), "vendor-lib\n").unwrap();
    let spec = format!(
        "cdiVersion: 0.6.0\nkind: example.test/accel\ncontainerEdits:\n  env: [VENDOR=example]\n  mounts:\n  - {{hostPath: {vendor}, containerPath: /opt/vendor, options: [ro]}}\n  hooks:\n  - {{hookName: createRuntime, path: /bin/sh, args: [sh, -c, 'echo created > {d}/created']}}\n  - {{hookName: poststop, path: /bin/sh, args: [sh, -c, 'echo stopped > {d}/stopped']}}\ndevices:\n- name: accel0\n  containerEdits:\n    env: [ACCEL_VISIBLE=0]\n    deviceNodes:\n    - {{path: /dev/accel0, hostPath: {node}, permissions: rw}}\n",
        vendor = d.join("vendor").display(),
        node = d.join("nodes/accel0").display(),
        d = d.display(),
    );
    // The same device in both directories: the later one wins.
    std::fs::write(
        d.join("low/accel.yaml"),
        spec.replace("VENDOR=example", "VENDOR=shadowed"),
    )
    .unwrap();
    std::fs::write(d.join("high/accel.yaml"), &spec).unwrap();
    std::fs::write(
        d.join("high/broken.json"),
        r#"{"cdiVersion": "0.6.0", "kind": "example.test/broken", "devices": [{"name": "x", "containerEdits": {"deviceNode": []}}]}"#,
    )
    .unwrap();
    format!("{}:{}", d.join("low").display(), d.join("high").display())
}

#[test]
fn cdi_devices_bring_their_nodes_mounts_env_and_hooks() {
    require_root!();
    let (b, _img) = with_busybox("cdi-dev");
    let dir = TempDir::new("cdi-dev-dir");
    let d = dir.path();
    let dirs = fake_vendor(d);
    let berth = |args: &[&str]| {
        let mut c = b.cmd(args);
        c.env("BERTH_CDI_SPEC_DIRS", &dirs);
        c.output().unwrap()
    };
    let o = berth(&["cdi", "list"]);
    let listed = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(listed.trim(), "example.test/accel=accel0");
    let warned = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        warned.contains("broken.json") && warned.contains("deviceNode"),
        "{warned}"
    );

    let script = "exec 3<>/dev/accel0 && echo opened; cat /opt/vendor/lib.txt; echo \"$VENDOR $ACCEL_VISIBLE\"; \
                  mknod /tmp/other c 10 231 && cat /tmp/other 2>&1 | head -1";
    let o = berth(&[
        "run",
        "--rm",
        "--device",
        "example.test/accel=accel0",
        "bb:1",
        "sh",
        "-c",
        script,
    ]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], ["opened", "vendor-lib", "example 0"], "{out}");
    // Another device is not allowed: the cgroup refuses it before any driver is asked.
    assert!(lines[3].contains("Operation not permitted"), "{out}");
    assert_eq!(std::fs::read_to_string(d.join("created")).unwrap(), "created\n");
    // poststop runs as the container is deleted, which `--rm` may finish after `run`
    // returned.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !d.join("stopped").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(std::fs::read_to_string(d.join("stopped")).unwrap(), "stopped\n");

    // The spec the runtime got: the node, and one cgroup rule for it beyond the defaults.
    let o = berth(&["create", "--device", "example.test/accel=all", "bb:1", "true"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.root.path().join("containers").join(&id).join("config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["linux"]["devices"][0]["path"], "/dev/accel0");
    let rules = cfg["linux"]["resources"]["devices"].as_array().unwrap();
    let allowed: Vec<&serde_json::Value> = rules
        .iter()
        .filter(|r| r["allow"] == true && r["access"] != "m")
        .collect();
    assert_eq!(allowed.len(), 1, "{rules:?}");
    assert_eq!(
        (allowed[0]["major"].as_u64(), allowed[0]["minor"].as_u64()),
        (Some(10), Some(229))
    );
    assert_eq!(allowed[0]["access"], "rw");
    b.ok(&["rm", &id]);

    // Refused: an unknown device, one of an invalid spec (named with its field), a bad name.
    for (dev, want) in [
        (
            "example.test/accel=accel9",
            "unresolvable CDI devices example.test/accel=accel9",
        ),
        ("example.test/broken=x", "deviceNode"),
        ("example.test/a ccel=x", "invalid CDI device name"),
    ] {
        let o = berth(&["run", "--rm", "--device", dev, "bb:1", "true"]);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(125), "{dev}: {err}");
        assert!(err.contains(want), "{dev}: {err}");
    }
    // Compose: a CDI name under `devices`, and `gpus` refused without GPUs.
    std::fs::write(
        d.join("compose.yaml"),
        "services:\n  app:\n    image: bb:1\n    network_mode: none\n    devices: [example.test/accel=accel0]\n    command: [sh, -c, 'exec 3<>/dev/accel0 && echo \"compose-opened $$VENDOR\"']\n  gpu:\n    image: bb:1\n    network_mode: none\n    profiles: [gpu]\n    deploy:\n      resources:\n        reservations:\n          devices: [{capabilities: [gpu], count: 1}]\n",
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let mut c = b.cmd(&[]);
        c.arg("compose")
            .args(args)
            .current_dir(d)
            .env("BERTH_CDI_SPEC_DIRS", &dirs);
        c.output().unwrap()
    };
    let o = compose(&["-p", "cdiproj", "run", "--rm", "-T", "app"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains("compose-opened example"),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = compose(&["-p", "cdiproj", "--profile", "gpu", "up", "-d", "gpu"]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !o.status.success() && err.contains("could not select device driver"),
        "{err}"
    );
    let o = compose(&["-p", "cdiproj", "down"]);
    assert!(o.status.success());
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn gpu_requests_without_gpus_are_refused_through_the_daemon_and_the_cli() {
    require_root!();
    require_tool!("docker");
    let (b, _img) = with_busybox("cdi-gpus");
    let empty = TempDir::new("cdi-gpus-specs");
    let o = b
        .cmd(&["run", "--rm", "--gpus", "all", "bb:1", "true"])
        .env("BERTH_CDI_SPEC_DIRS", empty.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains("could not select device driver \"\" with capabilities: [[gpu]]"),
        "{err}"
    );
    let d = Daemon::start(&b, TempDir::new("cdi-gpus-sock"));
    let o = d.docker(&["run", "--rm", "--gpus", "all", "bb:1", "true"]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "docker run --gpus succeeded without GPUs");
    assert!(err.contains("could not select device driver"), "{err}");
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}
