//! The same Kubernetes YAML under `berth kube play` and `podman kube play` (podman with
//! runc, a private store, `--network none`): the observable outcomes agree, pod by pod:
//! the exit code of the last run, whether the restart policy restarted it, and whether it
//! runs (is ready) now.

use std::process::Command;
use std::time::Duration;

use berth_testutil::{busybox_rootfs, require_root, require_tool};
use serde_json::Value;

use crate::containers::with_busybox;
use crate::peers::podman::Podman;

/// The pods: each restart policy on exit codes 0 and 1, and one that keeps running.
fn yaml() -> String {
    let mut y = String::new();
    for policy in ["Never", "OnFailure", "Always"] {
        for code in [0, 1] {
            y.push_str(&format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {}-{code}\nspec:\n  restartPolicy: {policy}\n  containers:\n  - name: c\n    image: bb:1\n    command: [\"sh\", \"-c\", \"exit {code}\"]\n",
                policy.to_lowercase()
            ));
        }
    }
    y.push_str("---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: steady\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: bb:1\n    command: [\"sleep\", \"1000\"]\n");
    y
}

/// What is compared of a pod's container: (last exit code, restarted, running).
type Outcome = (i64, bool, bool);

#[test]
fn the_same_yaml_under_podman_kube_play_ends_the_same() {
    require_root!();
    require_tool!("podman");
    require_tool!("runc");
    require_tool!("conmon");
    require_tool!("catatonit");
    let (b, _img) = with_busybox("kube-peer");
    let p = Podman::with_runc("kube-peer-podman");
    let d = p.dir.path();
    let rootfs = d.join("img");
    busybox_rootfs(&rootfs).unwrap();
    let tar = d.join("img.tar");
    let o = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .unwrap();
    assert!(o.status.success());
    let o = p.podman(&["import", "--change", "ENV PATH=/bin", tar.to_str().unwrap(), "bb:1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let file = d.join("pods.yaml");
    std::fs::write(&file, yaml()).unwrap();
    let file = file.to_str().unwrap();

    let o = p.podman(&["kube", "play", "--network", "none", file]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = b.out(&["kube", "play", file]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::thread::sleep(Duration::from_secs(3));

    let pods = [
        "never-0",
        "never-1",
        "onfailure-0",
        "onfailure-1",
        "always-0",
        "always-1",
        "steady",
    ];
    for pod in pods {
        let name = format!("{pod}-c");
        let seen: Value = serde_json::from_slice(&p.podman(&["inspect", &name]).stdout).unwrap();
        let seen = &seen[0];
        let theirs: Outcome = (
            seen["State"]["ExitCode"].as_i64().unwrap_or(-1),
            seen["RestartCount"].as_i64().unwrap_or(0) > 0,
            seen["State"]["Status"] == "running",
        );
        let v: Value = serde_json::from_str(&b.ok(&["pod", "inspect", pod])).unwrap();
        let v = if v.is_array() { v[0].clone() } else { v };
        let c = v["Containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["Name"] == name)
            .cloned()
            .unwrap();
        let state = &c["ContainerState"];
        let code = state["terminated"]["exitCode"]
            .as_i64()
            .or_else(|| c["LastState"]["terminated"]["exitCode"].as_i64())
            .unwrap_or(0);
        let ours: Outcome = (code, c["RestartCount"].as_i64().unwrap_or(0) > 0, c["Ready"] == true);
        // A container restarting in a loop may be caught running by podman (it restarts
        // at once, berth after the kubelet's back-off; its exit code then reads 0): only
        // that it restarted is compared.
        if ours.1 {
            assert_eq!(ours.1, theirs.1, "{pod}: berth {ours:?}, podman {theirs:?}");
        } else {
            assert_eq!(ours, theirs, "{pod}: berth {ours:?}, podman {theirs:?}");
        }
    }
    b.ok(&["kube", "down", file]);
    assert_eq!(b.ok(&["ps", "-aq"]).trim(), "");
    // podman's own teardown races its restart loop now and then ("device or resource busy"
    // on a container's shm): it is cleanup here, finished by the store's drop.
    let _ = p.podman(&["kube", "down", file]);
}
