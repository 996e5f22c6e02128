//! A process run in a running container (`berth exec`, `POST /containers/{id}/exec`): its
//! OCI process built once, from the container's own and Docker's exec options.

use berth_oci::oci_spec::runtime::Process;
use serde_json::{json, Value};

use crate::store::{Engine, Record};
use crate::{EngineError, Result};

/// Docker's exec options.
#[derive(Debug, Clone, Default)]
pub struct ExecConfig {
    /// The command and its arguments.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries over the container's environment.
    pub env: Vec<String>,
    /// The working directory (default: the container's).
    pub workdir: Option<String>,
    /// `user[:group]`, names or ids (default: the container's).
    pub user: Option<String>,
    /// A terminal.
    pub tty: bool,
    /// The terminal's size (rows, columns), when known.
    pub console_size: Option<(u16, u16)>,
}

/// The running container `name` names, or Docker's conflict error.
pub fn running(engine: &Engine, name: &str) -> Result<Record> {
    let r = engine.resolve(name)?;
    if !engine.state(&r.id).running() {
        return Err(EngineError::Conflict(format!("container {} is not running", r.id)));
    }
    Ok(r)
}

/// The process to exec in container `r`: its spec's process with the exec's command,
/// environment (`TERM=xterm` added for a terminal, as Docker does), directory and user.
/// A user the container does not know is Docker's exit 126.
pub fn process(engine: &Engine, r: &Record, c: &ExecConfig) -> Result<Process> {
    if c.args.is_empty() {
        return Err(EngineError::Invalid("No exec command specified".into()));
    }
    let dir = engine.dir(&r.id);
    let config = std::fs::read(dir.join("config.json")).map_err(crate::io_err("reading", dir.join("config.json")))?;
    let spec: Value = serde_json::from_slice(&config)
        .map_err(|e| EngineError::Invalid(format!("the container's config.json: {e}")))?;
    let mut p = spec["process"].clone();
    p["args"] = json!(c.args);
    let base: Vec<String> = serde_json::from_value(p["env"].clone()).unwrap_or_default();
    let mut env = crate::spec::merge_env(&base, &c.env);
    if c.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    p["env"] = json!(env);
    if let Some(w) = c.workdir.as_deref().filter(|w| !w.is_empty()) {
        p["cwd"] = json!(w);
    }
    if let Some(u) = c.user.as_deref().filter(|u| !u.is_empty()) {
        let (uid, gid, extra) =
            crate::spec::resolve_user(u, &[dir.join("rootfs")]).map_err(|e| EngineError::Start {
                code: 126,
                message: e.to_string(),
            })?;
        p["user"] = json!({"uid": uid, "gid": gid, "additionalGids": extra});
    }
    p["terminal"] = json!(c.tty);
    if let (true, Some((rows, cols))) = (c.tty, c.console_size) {
        p["consoleSize"] = json!({"height": rows, "width": cols});
    }
    serde_json::from_value(p).map_err(|e| EngineError::Invalid(format!("building the exec process: {e}")))
}
