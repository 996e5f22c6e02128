//! OCI hooks (config.md "POSIX-platform Hooks"): each is run with the container state on its
//! stdin, its own args and env, and an optional timeout; a failing hook fails the operation
//! (except poststart/poststop, whose failures the caller only logs). Output is captured in a
//! memfd, never the container's stdio, and quoted in the error.

use std::io::{Read, Seek, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_oci::oci_spec::runtime::Hook;
use berth_oci::ErrorKind;

/// A hook failure.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The hook could not be started.
    #[error("running {stage} hook {path}")]
    Spawn {
        /// Which hook list.
        stage: &'static str,
        /// The hook binary.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The hook exited unsuccessfully.
    #[error("{stage} hook {path} failed ({status}): {output}")]
    Failed {
        /// Which hook list.
        stage: &'static str,
        /// The hook binary.
        path: String,
        /// How it ended.
        status: String,
        /// Its stderr and stdout.
        output: String,
    },
    /// The hook ran past its timeout and was killed.
    #[error("{stage} hook {path} timed out after {secs}s")]
    Timeout {
        /// Which hook list.
        stage: &'static str,
        /// The hook binary.
        path: String,
        /// The timeout.
        secs: i64,
    },
}

impl HookError {
    /// The error's category.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::FailedPrecondition
    }
}

/// Runs `hooks` in order with `state` (the OCI state JSON) on stdin.
pub fn run(stage: &'static str, hooks: &[Hook], state: &[u8]) -> Result<(), HookError> {
    for h in hooks {
        run_one(stage, h, state)?;
    }
    Ok(())
}

fn run_one(stage: &'static str, h: &Hook, state: &[u8]) -> Result<(), HookError> {
    let path = h.path().display().to_string();
    let spawn_err = |source| HookError::Spawn {
        stage,
        path: path.clone(),
        source,
    };
    let out = nix::sys::memfd::memfd_create("berth-hook", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map_err(|e| spawn_err(e.into()))?;
    let mut out = std::fs::File::from(out);
    let mut cmd = Command::new(h.path());
    let args = h.args().clone().unwrap_or_default();
    if let Some((first, rest)) = args.split_first() {
        cmd.arg0(first).args(rest);
    }
    cmd.env_clear();
    for kv in h.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(out.try_clone().map_err(spawn_err)?)
        .stderr(out.try_clone().map_err(spawn_err)?);
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state);
    }
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t.unsigned_abs()));
    let mut nap = Duration::from_micros(200);
    let status = loop {
        match child.try_wait().map_err(spawn_err)? {
            Some(s) => break s,
            None => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(HookError::Timeout {
                        stage,
                        path,
                        secs: h.timeout().unwrap_or(0),
                    });
                }
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(20));
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut output = String::new();
    let _ = out.rewind();
    let _ = out.take(4096).read_to_string(&mut output);
    Err(HookError::Failed {
        stage,
        path,
        status: status.to_string(),
        output: output.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(path: &str, args: &[&str], timeout: Option<i64>) -> Hook {
        let mut h = Hook::default();
        h.set_path(path.into());
        h.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
        h.set_env(Some(vec!["FOO=bar".into()]));
        h.set_timeout(timeout);
        h
    }

    #[test]
    fn hook_gets_state_args_and_env() {
        let dir = std::env::temp_dir().join(format!("bt{}-hooks", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let script = format!("cat > {0}; echo \"$0 $1 $FOO\" >> {0}", out.display());
        let h = hook("/bin/sh", &["sh", "-c", &script, "x"], Some(5));
        run("prestart", &[h], b"{\"id\":\"c1\"}").unwrap();
        let got = std::fs::read_to_string(&out).unwrap();
        assert_eq!(got, "{\"id\":\"c1\"}x  bar\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn failing_and_slow_hooks_are_errors() {
        let h = hook("/bin/sh", &["sh", "-c", "echo nope >&2; exit 3"], None);
        let e = run("poststop", &[h], b"{}").unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("3"), "{e}");
        let h = hook("/bin/sh", &["sh", "-c", "sleep 5"], Some(1));
        let e = run("prestart", &[h], b"{}").unwrap_err();
        assert!(matches!(e, HookError::Timeout { .. }));
    }
}
