//! End-to-end tests: they drive the built `berth` binary as dockerd, podman or a person
//! would, and check real outcomes from inside containers (busybox) and on the host.
// Integration tests are test code from top to bottom: the in-crate test lints do not apply.
#![allow(clippy::unwrap_used, clippy::tests_outside_test_module)]

mod api;
mod build;
mod cdi;
mod cluster;
mod compose;
mod containers;
mod cri;
mod escape;
mod fronts;
mod hardening;
mod images;
mod interactive;
mod kube;
mod kube_peer;
mod kube_probes;
mod network;
mod overlay;
mod peers;
mod pods;
mod rootless;
mod runtime;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use berth_testutil::{unique_name, TempDir};

/// The binary under test.
pub fn berth_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_berth"))
}

/// A runtime state root of its own per test; every container left in it is force-deleted
/// when the guard drops, even if the test panicked.
#[derive(Debug)]
pub struct Rt {
    pub root: TempDir,
    pub test: String,
}

impl Rt {
    pub fn new(test: &str) -> Rt {
        Rt {
            root: TempDir::new(&format!("{test}-root")),
            test: test.to_string(),
        }
    }

    /// A unique container id for this test.
    pub fn id(&self) -> String {
        unique_name(&self.test)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(berth_bin());
        c.arg("runtime").arg("--root").arg(self.root.path()).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Runs a runtime command and returns its output.
    pub fn out(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("running berth")
    }

    /// Runs a runtime command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "berth runtime {args:?} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A command that leaves a container running (`create`, `run -d`): the container keeps
    /// its stdio, so pipes would never reach end of file; it gets files instead.
    pub fn ok_detached(&self, args: &[&str]) -> String {
        let log = berth_testutil::TempDir::new(&format!("{}-log", self.test));
        let out = log.path().join("out");
        let err = log.path().join("err");
        let status = self
            .cmd(args)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .expect("running berth");
        let e = std::fs::read_to_string(&err).unwrap_or_default();
        assert!(status.success(), "berth runtime {args:?} failed ({status}): {e}");
        std::fs::read_to_string(&out).unwrap_or_default()
    }

    /// `run` in the foreground; returns (exit code, stdout, stderr).
    pub fn run(&self, bundle: &Path) -> (i32, String, String) {
        let id = self.id();
        let o = self.out(&["run", "--bundle", bundle.to_str().unwrap(), &id]);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// The status field of `state`.
    pub fn status(&self, id: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["state", id])).unwrap();
        v["status"].as_str().unwrap().to_string()
    }

    pub fn state(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        if let Ok(o) = self.cmd(&["list", "-q"]).output() {
            for id in String::from_utf8_lossy(&o.stdout).lines() {
                let _ = self.cmd(&["delete", "--force", id]).output();
            }
        }
    }
}

/// Asserts with both sides printed.
#[macro_export]
macro_rules! eqnice {
    ($a:expr, $b:expr) => {{
        let (a, b) = (&$a, &$b);
        if a != b {
            panic!("\n--- left\n{a}\n--- right\n{b}\n--- (debug)\n{a:?}\n{b:?}\n");
        }
    }};
}
