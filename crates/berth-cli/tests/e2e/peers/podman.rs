//! podman with berth as its OCI runtime: `podman --runtime <berth-runtime> run`.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use berth_testutil::{busybox_rootfs, require_root, require_tool, TempDir};

/// A podman invocation with a private store, run root and tmpdir under one test directory.
pub(crate) struct Podman {
    pub(crate) dir: TempDir,
    runtime: PathBuf,
}

impl Podman {
    /// podman with runc as its runtime (a peer of berth, not a client), the host's hard
    /// limits as its containers' default rlimits.
    pub(crate) fn with_runc(test: &str) -> Podman {
        let dir = TempDir::new(test);
        std::fs::write(
            dir.path().join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n[engine]\nevents_logger = \"file\"\ncgroup_manager = \"cgroupfs\"\n",
        )
        .unwrap();
        Podman {
            dir,
            runtime: PathBuf::from("runc"),
        }
    }

    /// podman with berth-runtime as its OCI runtime.
    fn new(test: &str) -> Podman {
        let dir = TempDir::new(test);
        let runtime = dir.path().join("berth-runtime");
        std::os::unix::fs::symlink(crate::berth_bin(), &runtime).unwrap();
        std::fs::write(
            dir.path().join("containers.conf"),
            "[engine]\nevents_logger = \"file\"\ncgroup_manager = \"cgroupfs\"\n",
        )
        .unwrap();
        Podman { dir, runtime }
    }

    pub(crate) fn podman(&self, args: &[&str]) -> std::process::Output {
        let d = self.dir.path();
        Command::new("podman")
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .arg("--root")
            .arg(d.join("storage"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .arg("--runtime")
            .arg(&self.runtime)
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running podman")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.podman(args);
        assert!(
            o.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["pod", "rm", "-af", "-t", "0"]);
        let _ = self.podman(&["rm", "-af", "-t", "0"]);
        let _ = self.podman(&["system", "reset", "-f"]);
        super::dockerd::unmount_below(self.dir.path());
    }
}

const ULIMITS: [&str; 4] = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"];

#[test]
fn podman_run_exec_and_stop_with_berth_runtime() {
    require_root!();
    require_tool!("podman");
    require_tool!("conmon");
    let p = Podman::new("podman");
    let rootfs = p.dir.path().join("img");
    busybox_rootfs(&rootfs).unwrap();
    let tar = p.dir.path().join("img.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap()
        .success());
    p.ok(&["import", tar.to_str().unwrap(), "localhost/bt-busybox:latest"]);
    let mut run = vec!["run", "--rm", "--network", "none"];
    run.extend(ULIMITS);
    run.extend(["localhost/bt-busybox", "sh", "-c", "echo hello from podman; exit 4"]);
    let o = p.podman(&run);
    assert_eq!(o.status.code(), Some(4), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello from podman\n");
    let mut run = vec!["run", "-d", "--network", "none", "--memory", "32m"];
    run.extend(ULIMITS);
    run.extend(["localhost/bt-busybox", "sleep", "1000"]);
    let id = p.ok(&run);
    let id = id.trim();
    assert_eq!(
        p.ok(&[
            "exec",
            id,
            "sh",
            "-c",
            "echo in-exec; cat /proc/1/cmdline | tr '\\0' ' '"
        ]),
        "in-exec\nsleep 1000 "
    );
    let o = p.podman(&[
        "exec",
        id,
        "sh",
        "-c",
        "dd if=/dev/zero of=/dev/null bs=200M count=1 2>/dev/null && echo survived",
    ]);
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("survived"),
        "--memory 32m not enforced"
    );
    p.ok(&["stop", "-t", "1", id]);
    let st = p.ok(&["inspect", "-f", "{{.State.Status}}", id]);
    assert_eq!(st.trim(), "exited");
    p.ok(&["rm", id]);
}
