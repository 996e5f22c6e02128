//! Exec through the API: `POST /containers/{id}/exec` records what to run,
//! `POST /exec/{id}/start` runs it (berth's own `exec`, a child of the daemon, whose
//! output is framed onto the hijacked connection), `GET /exec/{id}/json` reports it.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use berth_engine::attach as att;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{empty, json_body, json_response, ApiError, Body, Daemon};

/// One exec instance.
#[derive(Debug, Clone, Default)]
pub struct Exec {
    container: String,
    cmd: Vec<String>,
    env: Vec<String>,
    workdir: String,
    user: String,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
    running: bool,
    started: bool,
    exit_code: Option<i32>,
    pid: u32,
    /// The terminal's master side, for a TTY exec (resizes go to it).
    pty: Option<Arc<std::os::fd::OwnedFd>>,
}

/// The exec instances this daemon made.
pub type Execs = Mutex<HashMap<String, Exec>>;

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// `POST /containers/{id}/exec`.
pub async fn create(d: &Arc<Daemon>, req: Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let body = json_body(req).await?;
    let cmd = strs(&body["Cmd"]);
    if cmd.is_empty() {
        return Err(ApiError::bad("No exec command specified"));
    }
    let cid = d
        .engine(move |e| {
            let rid = crate::running_id(e, &id)?;
            Ok(rid)
        })
        .await?;
    let exec_id = berth_engine::store::new_id().map_err(ApiError::from)?;
    let x = Exec {
        container: cid,
        cmd,
        env: strs(&body["Env"]),
        workdir: body["WorkingDir"].as_str().unwrap_or("").to_string(),
        user: body["User"].as_str().unwrap_or("").to_string(),
        stdin: body["AttachStdin"].as_bool().unwrap_or(false),
        stdout: body["AttachStdout"].as_bool().unwrap_or(false),
        stderr: body["AttachStderr"].as_bool().unwrap_or(false),
        tty: body["Tty"].as_bool().unwrap_or(false),
        ..Exec::default()
    };
    if let Ok(mut m) = d.execs.lock() {
        m.insert(exec_id.clone(), x);
    }
    Ok(json_response(StatusCode::CREATED, &json!({ "Id": exec_id })))
}

fn get(d: &Daemon, id: &str) -> Result<Exec, ApiError> {
    d.execs
        .lock()
        .ok()
        .and_then(|m| m.get(id).cloned())
        .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
}

fn update(d: &Daemon, id: &str, f: impl FnOnce(&mut Exec)) {
    if let Ok(mut m) = d.execs.lock() {
        if let Some(x) = m.get_mut(id) {
            f(x);
        }
    }
}

/// `GET /exec/{id}/json`.
pub async fn inspect(d: &Arc<Daemon>, id: String) -> Result<Response<Body>, ApiError> {
    let x = get(d, &id)?;
    let (entry, args) = x
        .cmd
        .split_first()
        .map(|(a, b)| (a.clone(), b.to_vec()))
        .unwrap_or_default();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "ID": id,
            "Running": x.running,
            "ExitCode": x.exit_code,
            "ProcessConfig": {"tty": x.tty, "entrypoint": entry, "arguments": args, "privileged": false, "user": x.user},
            "OpenStdin": x.stdin,
            "OpenStderr": x.stderr,
            "OpenStdout": x.stdout,
            "CanRemove": false,
            "ContainerID": x.container,
            "DetachKeys": "",
            "Pid": x.pid,
        }),
    ))
}

/// `POST /exec/{id}/start`: detached, or on a hijacked connection.
pub async fn start(d: &Arc<Daemon>, req: Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let x = get(d, &id)?;
    if x.started {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("exec {id} has already been started"),
        ));
    }
    let mut req = req;
    let upgrade = hyper::upgrade::on(&mut req);
    let body = json_body(req).await?;
    let detach = body["Detach"].as_bool().unwrap_or(false);
    let mut cmd = tokio::process::Command::new(&d.exe);
    cmd.arg("--root").arg(&d.root).arg("exec");
    if x.stdin && !detach {
        cmd.arg("-i");
    }
    // A TTY exec: `berth exec -t` runs on a terminal the daemon holds the master side of,
    // as its controlling terminal (so a resize reaches it as SIGWINCH).
    let pty = if x.tty && !detach {
        cmd.arg("-t");
        Some(
            att::open_pty()
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("opening a terminal: {e}")))?,
        )
    } else {
        None
    };
    for e in &x.env {
        cmd.arg("-e").arg(e);
    }
    if !x.workdir.is_empty() {
        cmd.arg("-w").arg(&x.workdir);
    }
    if !x.user.is_empty() {
        cmd.arg("-u").arg(&x.user);
    }
    cmd.arg(&x.container).args(&x.cmd);
    let internal = |e: std::io::Error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("starting exec: {e}"));
    if let Some((_, slave)) = &pty {
        cmd.stdin(Stdio::from(slave.try_clone().map_err(internal)?))
            .stdout(Stdio::from(slave.try_clone().map_err(internal)?))
            .stderr(Stdio::from(slave.try_clone().map_err(internal)?));
        // SAFETY: between fork and exec only async-signal-safe calls: setsid and ioctl.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    } else {
        cmd.stdin(if x.stdin && !detach {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(if detach { Stdio::null() } else { Stdio::piped() })
        .stderr(if detach { Stdio::null() } else { Stdio::piped() });
    }
    cmd.kill_on_drop(false);
    let mut child = cmd.spawn().map_err(internal)?;
    let master = pty.map(|(m, _slave)| Arc::new(m));
    update(d, &id, |x| {
        x.started = true;
        x.running = true;
        x.pid = child.id().unwrap_or(0);
        x.pty.clone_from(&master);
    });
    if let Some(master) = master {
        let dd = d.clone();
        tokio::spawn(async move {
            let Ok(io) = upgrade.await else {
                let _ = child.kill().await;
                return;
            };
            let mut cw = pump_pty(io, &master).await;
            let code = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
            update(&dd, &id, |x| {
                x.running = false;
                x.exit_code = Some(code);
                x.pty = None;
            });
            // Closed only now: the client inspects the exit code as soon as the stream ends.
            if let Some(w) = cw.as_mut() {
                let _ = w.shutdown().await;
            }
        });
        return Ok(crate::hijacked(true));
    }
    let dd = d.clone();
    if detach {
        tokio::spawn(async move {
            let code = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
            update(&dd, &id, |x| {
                x.running = false;
                x.exit_code = Some(code);
            });
        });
        return Ok(empty(StatusCode::OK));
    }
    let tty = x.tty;
    tokio::spawn(async move {
        let Ok(io) = upgrade.await else {
            let _ = child.kill().await;
            return;
        };
        let io = hyper_util::rt::TokioIo::new(io);
        let (mut cr, cw) = tokio::io::split(io);
        let cw = Arc::new(tokio::sync::Mutex::new(cw));
        let mut stdin = child.stdin.take();
        let input = tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        drop(stdin.take());
                        std::future::pending::<()>().await;
                    }
                    Ok(n) => {
                        if let Some(s) = stdin.as_mut() {
                            if s.write_all(&buf[..n]).await.is_err() {
                                stdin = None;
                            }
                        }
                    }
                }
            }
        });
        let copy = |mut r: Box<dyn tokio::io::AsyncRead + Unpin + Send>, kind: u8| {
            let cw = cw.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match r.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let chunk = if tty {
                                buf[..n].to_vec()
                            } else {
                                att::frame(kind, &buf[..n])
                            };
                            let mut w = cw.lock().await;
                            if w.write_all(&chunk).await.is_err() {
                                return;
                            }
                            let _ = w.flush().await;
                        }
                    }
                }
            })
        };
        let mut tasks = Vec::new();
        if let Some(o) = child.stdout.take() {
            tasks.push(copy(Box::new(o), att::STDOUT));
        }
        if let Some(e) = child.stderr.take() {
            tasks.push(copy(Box::new(e), att::STDERR));
        }
        for t in tasks {
            let _ = t.await;
        }
        let code = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
        update(&dd, &id, |x| {
            x.running = false;
            x.exit_code = Some(code);
        });
        input.abort();
        let _ = cw.lock().await.shutdown().await;
    });
    Ok(crate::hijacked(tty))
}

/// The connection's write half.
type ClientWriter = tokio::io::WriteHalf<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// Copies between a hijacked connection and a terminal's master side until the terminal
/// closes (the exec and everything holding its terminal are gone); returns the
/// connection's write half, still open.
async fn pump_pty(io: hyper::upgrade::Upgraded, master: &std::os::fd::OwnedFd) -> Option<ClientWriter> {
    let (Ok(r), Ok(w)) = (master.try_clone(), master.try_clone()) else {
        return None;
    };
    let mut from_pty = tokio::fs::File::from_std(std::fs::File::from(r));
    let mut to_pty = tokio::fs::File::from_std(std::fs::File::from(w));
    let io = hyper_util::rt::TokioIo::new(io);
    let (mut cr, mut cw) = tokio::io::split(io);
    let input = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        while let Ok(n) = cr.read(&mut buf).await {
            if n == 0 || to_pty.write_all(&buf[..n]).await.is_err() {
                break;
            }
            let _ = to_pty.flush().await;
        }
        std::future::pending::<()>().await;
    });
    let mut buf = vec![0u8; 32 * 1024];
    // Reading the master fails with EIO once the last slave descriptor is closed.
    while let Ok(n) = from_pty.read(&mut buf).await {
        if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
            break;
        }
        let _ = cw.flush().await;
    }
    input.abort();
    Some(cw)
}

/// Sets a terminal's size.
pub fn set_size(fd: &std::os::fd::OwnedFd, rows: u16, cols: u16) {
    att::apply_size(Some(std::os::fd::AsFd::as_fd(fd)), rows, cols);
}

/// `h` and `w` of a resize request.
pub fn size_of(req: &Request<Incoming>) -> Result<(u16, u16), ApiError> {
    let q = crate::query(req);
    let dim = |k: &str| -> Result<u16, ApiError> {
        q.get(k).map_or(Ok(0), |v| {
            v.parse::<u16>().map_err(|_| ApiError::bad(format!("invalid {k}: {v}")))
        })
    };
    Ok((dim("h")?, dim("w")?))
}

/// `POST /exec/{id}/resize?h=&w=`: the exec's terminal takes the new size.
pub async fn resize(d: &Arc<Daemon>, req: &Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let (rows, cols) = size_of(req)?;
    let x = get(d, &id)?;
    if let Some(m) = &x.pty {
        if rows > 0 && cols > 0 {
            set_size(m, rows, cols);
        }
    }
    Ok(empty(StatusCode::OK))
}
