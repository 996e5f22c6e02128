//! `Exec`, `Attach` and `PortForward`: the request checked against what exists, then a
//! one-time URL on the streaming server for the client to connect to.

use berth_engine::store::Engine;
use k8s_cri::v1 as cri;
use tonic::Status;

use crate::stream::{Io, Job};
use crate::{container, sandbox, Cri};

/// The running container an exec or attach is for.
fn running(engine: &Engine, id: &str) -> Result<berth_engine::model::Record, Status> {
    let (r, _) = container::get(engine, id)?;
    if !engine.state(&r.id).running() {
        return Err(Status::failed_precondition(format!(
            "container {} is not running",
            r.id
        )));
    }
    Ok(r)
}

/// Some stream must be asked for, and a terminal has no separate stderr.
fn io(tty: bool, stdin: bool, stdout: bool, stderr: bool) -> Result<Io, Status> {
    if !(stdin || stdout || stderr) {
        return Err(Status::invalid_argument("one of stdin, stdout and stderr must be set"));
    }
    if tty && stderr {
        return Err(Status::invalid_argument("tty and stderr cannot both be set"));
    }
    Ok(Io {
        tty,
        stdin,
        stdout,
        stderr,
    })
}

/// `Exec`.
pub(crate) fn exec(cri: &Cri, engine: &Engine, req: cri::ExecRequest) -> Result<String, Status> {
    if req.cmd.is_empty() {
        return Err(Status::invalid_argument("Exec without a command"));
    }
    let io = io(req.tty, req.stdin, req.stdout, req.stderr)?;
    let r = running(engine, &req.container_id)?;
    cri.stream.url(Job::Exec {
        id: r.id,
        cmd: req.cmd,
        io,
    })
}

/// `Attach`: the container's stdin only if it was made with one.
pub(crate) fn attach(cri: &Cri, engine: &Engine, req: cri::AttachRequest) -> Result<String, Status> {
    let io = io(req.tty, req.stdin, req.stdout, req.stderr)?;
    let r = running(engine, &req.container_id)?;
    if io.stdin && !r.open_stdin {
        return Err(Status::invalid_argument(format!(
            "container {} was not created with stdin: it cannot take input",
            r.id
        )));
    }
    if io.tty != r.tty {
        return Err(Status::invalid_argument(format!(
            "attach's tty ({}) must be the container's ({})",
            io.tty, r.tty
        )));
    }
    cri.stream.url(Job::Attach {
        dir: engine.dir(&r.id),
        io,
    })
}

/// `PortForward`: a ready sandbox's network namespace (the host's for a host-network one).
pub(crate) fn port_forward(cri: &Cri, engine: &Engine, req: cri::PortForwardRequest) -> Result<String, Status> {
    let (pod, m) = sandbox::get(engine, &req.pod_sandbox_id)?;
    let st = engine.state(&pod.infra_id);
    if !st.running() {
        return Err(Status::failed_precondition(format!("sandbox {} is not ready", pod.id)));
    }
    for p in &req.port {
        if !(1..=65535).contains(p) {
            return Err(Status::invalid_argument(format!("port {p} is not 1 to 65535")));
        }
    }
    let host = sandbox::namespace_options(&m.config).network == cri::NamespaceMode::Node as i32;
    let netns = if host {
        None
    } else {
        Some(std::path::PathBuf::from(format!("/proc/{}/ns/net", st.pid)))
    };
    cri.stream.url(Job::PortForward { sandbox: pod.id, netns })
}
