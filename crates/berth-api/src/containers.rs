//! The container routes: create, list, inspect, start, stop, restart, kill, wait, remove,
//! logs, attach (a hijacked connection bridged to the container's monitor).

use std::sync::Arc;
use std::time::Duration;

use berth_engine::attach::{self as att, Hello};
use berth_engine::store::Status;
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use crate::create_body::options_from;
use crate::{empty, flag, json_body, json_response, query, ApiError, Body, Daemon};

/// An attach made before its container started.
#[derive(Debug)]
pub struct PendingAttach {
    hello: Hello,
    tty: bool,
    io: tokio::sync::oneshot::Receiver<hyper::upgrade::Upgraded>,
}

/// `POST /containers/create`.
pub async fn create(d: &Arc<Daemon>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let q = query(&req);
    let body = json_body(req).await?;
    let o = options_from(&body, q.get("name").cloned())?;
    berth_engine::ops::check_limits(&o)?;
    let image = o.image.clone();
    let made = d
        .with_images(move |e, s| {
            if s.resolve(&o.image).is_err() {
                return Err(ApiError::not_found(format!("No such image: {image}")));
            }
            Ok(berth_engine::ops::create(e, s, &o)?)
        })
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"Id": made.record.id, "Warnings": made.warnings}),
    ))
}

/// `GET /containers/{id}/json`.
pub async fn inspect(d: &Arc<Daemon>, req: &Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let size = flag(&query(req), "size");
    let v = d
        .with_images(move |e, s| {
            let r = e.resolve(&id)?;
            let mut v = berth_engine::inspect::inspect_json(e, &r);
            if size {
                let (rw, rootfs) = berth_engine::inspect::container_sizes(e, s, &r);
                v["SizeRw"] = json!(rw);
                v["SizeRootFs"] = json!(rootfs);
            }
            Ok(v)
        })
        .await?;
    Ok(json_response(StatusCode::OK, &v))
}

/// `GET /containers/json`.
pub async fn list(d: &Arc<Daemon>, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    let all = flag(&q, "all");
    let limit: Option<usize> = q
        .get("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .and_then(|n| usize::try_from(n).ok());
    let filters =
        berth_engine::list::Filters::from_map(&crate::filters(&q)?).map_err(|e| ApiError::bad(e.to_string()))?;
    let size = flag(&q, "size");
    let v = d
        .with_images(move |e, s| {
            let mut out = Vec::new();
            let opts = berth_engine::list::ListOptions { all, limit, filters };
            for (r, st) in berth_engine::list::containers(e, &opts)? {
                let state = st.status;
                let i = berth_engine::inspect::inspect_json(e, &r);
                let ports: Vec<Value> = st
                    .net
                    .as_ref()
                    .map(|a| {
                        a.ports
                            .iter()
                            .map(|p| json!({"IP": if p.host_ip.is_empty() { "0.0.0.0" } else { &p.host_ip }, "PrivatePort": p.port, "PublicPort": p.host_port, "Type": p.proto}))
                            .collect()
                    })
                    .unwrap_or_default();
                let created = berth_oci::time::parse_rfc3339(&r.created).unwrap_or(0);
                let mut cmd = vec![r.path.clone()];
                cmd.extend(r.args.iter().cloned());
                out.push(json!({
                    "Id": r.id,
                    "Names": [format!("/{}", r.name)],
                    "Image": r.image_name,
                    "ImageID": r.image_id,
                    "Command": cmd.join(" "),
                    "Created": created,
                    "Ports": ports,
                    "Labels": r.labels,
                    "State": state,
                    "Status": berth_engine::inspect::status_text(&st),
                    "HostConfig": {"NetworkMode": if r.network_mode.is_empty() { "default".to_string() } else { r.network_mode.clone() }},
                    "NetworkSettings": {"Networks": i["NetworkSettings"]["Networks"].clone()},
                    "Mounts": i["Mounts"].clone(),
                }));
                if size {
                    if let Some(last) = out.last_mut() {
                        let (rw, rootfs) = berth_engine::inspect::container_sizes(e, s, &r);
                        last["SizeRw"] = json!(rw);
                        last["SizeRootFs"] = json!(rootfs);
                    }
                }
            }
            Ok(out)
        })
        .await?;
    Ok(json_response(StatusCode::OK, &Value::Array(v)))
}

fn dbg_api(m: &str) {
    if std::env::var_os("BERTH_API_DEBUG").is_some() {
        eprintln!("berth-api: {m}");
    }
}

/// Reads monitor frames off `stream` into `out` until the exit frame; returns the code.
async fn pump_out(
    stream: &mut tokio::net::unix::OwnedReadHalf,
    out: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
    tty: bool,
) -> Option<i32> {
    loop {
        let mut head = [0u8; 8];
        stream.read_exact(&mut head).await.ok()?;
        let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).await.ok()?;
        match head[0] {
            att::STDOUT | att::STDERR => {
                // Docker's multiplexed stream has the monitor's frame shape; with a
                // terminal the stream is raw.
                let ok = if tty {
                    out.write_all(&payload).await
                } else {
                    match out.write_all(&head).await {
                        Ok(()) => out.write_all(&payload).await,
                        Err(e) => Err(e),
                    }
                };
                if ok.is_err() {
                    // The client is gone; keep reading for the exit code.
                    continue;
                }
                let _ = out.flush().await;
            }
            att::EXIT => {
                let code = payload
                    .get(..4)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map(i32::from_be_bytes);
                return Some(code.unwrap_or(0));
            }
            _ => {}
        }
    }
}

/// Bridges a client connection and a monitor connection until the container exits.
async fn bridge(
    d: Arc<Daemon>,
    id: String,
    io: hyper::upgrade::Upgraded,
    stream: std::os::unix::net::UnixStream,
    tty: bool,
    stdin: bool,
) {
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(stream) = tokio::net::UnixStream::from_std(stream) else {
        return;
    };
    let (mut mr, mut mw) = stream.into_split();
    let io = hyper_util::rt::TokioIo::new(io);
    let (mut cr, mut cw) = tokio::io::split(io);
    // The monitor takes a closed connection for a client gone: the write half stays open
    // (held by this task) until the container's exit ends the bridge.
    let input = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            if !stdin {
                std::future::pending::<()>().await;
            }
            match cr.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = mw.write_all(&att::frame(att::CLOSE_STDIN, &[])).await;
                    std::future::pending::<()>().await;
                }
                Ok(n) => {
                    if mw.write_all(&att::frame(att::STDIN, &buf[..n])).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    dbg_api(&format!("bridge {id}: pumping"));
    let code = pump_out(&mut mr, &mut cw, tty).await;
    dbg_api(&format!("bridge {id}: exit {code:?}"));
    let _ = cw.shutdown().await;
    input.abort();
    match code {
        Some(c) => d.record_exit(&id, c),
        None => d.unwatch(&id),
    }
}

/// Watches a monitor connection for the exit code (containers started with nobody
/// attached).
async fn observe(d: Arc<Daemon>, id: String, stream: std::os::unix::net::UnixStream) {
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(stream) = tokio::net::UnixStream::from_std(stream) else {
        return;
    };
    let (mut mr, _mw) = stream.into_split();
    let mut sink = tokio::io::sink();
    match pump_out(&mut mr, &mut sink, false).await {
        Some(c) => d.record_exit(&id, c),
        None => d.unwatch(&id),
    }
}

/// `POST /containers/{id}/start`.
pub async fn start(d: &Arc<Daemon>, id: String) -> Result<Response<Body>, ApiError> {
    let full_id = d
        .engine({
            let id = id.clone();
            move |e| {
                let r = e.resolve(&id)?;
                Ok((r.id.clone(), e.state(&r.id).running()))
            }
        })
        .await?;
    let (cid, running) = full_id;
    if running {
        return Ok(empty(StatusCode::NOT_MODIFIED));
    }
    let mut pending: Vec<PendingAttach> = d
        .pending
        .lock()
        .ok()
        .and_then(|mut m| m.remove(&cid))
        .unwrap_or_default();
    let first = if pending.is_empty() {
        None
    } else {
        Some(pending.remove(0))
    };
    let hello = first.as_ref().map(|p| p.hello).unwrap_or(Hello {
        stdin: false,
        stdout: false,
        stderr: false,
        rows: 0,
        cols: 0,
    });
    let exe = d.exe.clone();
    let stream = d
        .engine({
            let cid = cid.clone();
            move |e| Ok(berth_engine::ops::start_attached(e, &cid, &exe, Some(&hello))?)
        })
        .await
        .inspect_err(|_| d.exited.notify_waiters())?;
    dbg_api(&format!(
        "start {cid}: stream {} first {}",
        stream.is_some(),
        first.is_some()
    ));
    if let Some(stream) = stream {
        if let Ok(mut w) = d.watching.lock() {
            w.insert(cid.clone());
        }
        match first {
            Some(p) => {
                let (dd, c) = (d.clone(), cid.clone());
                tokio::spawn(async move {
                    if let Ok(io) = p.io.await {
                        bridge(dd, c, io, stream, p.tty, p.hello.stdin).await;
                    }
                });
            }
            None => {
                tokio::spawn(observe(d.clone(), cid.clone(), stream));
            }
        }
    }
    // Further attaches made before the start join the running container.
    for p in pending {
        let (dd, c, root) = (d.clone(), cid.clone(), d.root.clone());
        tokio::spawn(async move {
            let Ok(io) = p.io.await else { return };
            let hello = p.hello;
            let dir = berth_engine::store::Engine::open(&root).map(|e| e.dir(&c));
            let Ok(dir) = dir else { return };
            if let Ok(Ok(s)) = tokio::task::spawn_blocking(move || att::connect(&dir, &hello)).await {
                bridge(dd, c, io, s, p.tty, p.hello.stdin).await;
            }
        });
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/stop` and `/restart`.
pub async fn stop(
    d: &Arc<Daemon>,
    req: &Request<Incoming>,
    id: String,
    restart: bool,
) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    let t = q
        .get("t")
        .and_then(|t| t.parse::<i64>().ok())
        .map(|t| u64::try_from(t).unwrap_or(0));
    let signal = q.get("signal").filter(|s| !s.is_empty()).cloned();
    let was_running = d
        .engine({
            let id = id.clone();
            move |e| {
                let r = e.resolve(&id)?;
                let running = e.state(&r.id).running();
                if running {
                    berth_engine::ops::stop(e, &r.id, t, signal.as_deref())?;
                }
                Ok(running)
            }
        })
        .await?;
    if restart {
        return start(d, id).await.map(|_| empty(StatusCode::NO_CONTENT));
    }
    Ok(empty(if was_running {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    }))
}

/// `POST /containers/{id}/kill`.
pub async fn kill(d: &Arc<Daemon>, req: &Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    let signal = q
        .get("signal")
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| "KILL".into());
    d.engine(move |e| {
        let r = e.resolve(&id)?;
        if !e.state(&r.id).running() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("Cannot kill container: {id}: Container {} is not running", r.id),
            ));
        }
        Ok(berth_engine::ops::kill(e, &r.id, &signal)?)
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/wait?condition=not-running|next-exit|removed`.
pub async fn wait(d: &Arc<Daemon>, req: &Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    let condition = q.get("condition").cloned().unwrap_or_else(|| "not-running".into());
    if !["not-running", "next-exit", "removed", ""].contains(&condition.as_str()) {
        return Err(ApiError::bad(format!("invalid condition: \"{condition}\"")));
    }
    let (cid, status, code) = d
        .engine({
            let id = id.clone();
            move |e| {
                let r = e.resolve(&id)?;
                let st = e.state(&r.id);
                Ok((r.id, st.status, st.exit_code))
            }
        })
        .await?;
    let running = matches!(status, Status::Running | Status::Restarting);
    if (condition == "not-running" || condition.is_empty()) && !running {
        return Ok(json_response(
            StatusCode::OK,
            &json!({"StatusCode": code, "Error": null}),
        ));
    }
    // The headers go out at once (clients start the container only after they have them);
    // the body follows when the condition is met.
    let (tx, body) = channel_body();
    let d = d.clone();
    tokio::spawn(async move {
        let c = wait_for(&d, &cid, &condition, status, code).await;
        dbg_api(&format!("wait {cid}: {c}"));
        let _ = tx
            .send(Bytes::from(format!("{}\n", json!({"StatusCode": c, "Error": null}))))
            .await;
    });
    Ok(crate::streamed(body, HeaderValue::from_static("application/json")))
}

/// Waits for `condition`; returns the exit code.
async fn wait_for(d: &Arc<Daemon>, cid: &str, condition: &str, status: Status, code: i32) -> i32 {
    // An exit newer than this one ends the wait (a container never started has none).
    let baseline = if status == Status::Created {
        0
    } else {
        d.last_exit(cid).map_or(0, |(g, _)| g)
    };
    loop {
        let notified = d.exited.notified();
        let last = d.last_exit(cid);
        let state = {
            let cid = cid.to_string();
            d.engine(move |e| Ok(e.resolve(&cid).ok().map(|r| e.state(&r.id))))
                .await
                .ok()
                .flatten()
        };
        let newer = last.filter(|(g, _)| *g > baseline).map(|(_, c)| c);
        match (&state, condition) {
            // Removed: its exit code is on its way from the monitor connection.
            (None, _) if newer.is_none() && d.is_watching(cid) => {}
            (None, _) => return newer.or(last.map(|(_, c)| c)).unwrap_or(code),
            (Some(_), "removed") => {}
            (Some(st), _) => {
                if let Some(c) = newer {
                    return c;
                }
                // Started and ended elsewhere (the CLI): the state file tells.
                if st.status == Status::Exited && status != Status::Exited && last.is_none() {
                    return st.exit_code;
                }
            }
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// `DELETE /containers/{id}`.
pub async fn remove(d: &Arc<Daemon>, req: &Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    let (force, volumes) = (flag(&q, "force"), flag(&q, "v"));
    d.engine(move |e| {
        let r = e.resolve(&id)?;
        if !force && e.state(&r.id).running() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("cannot remove container \"/{}\": container is running: stop the container before removing or force remove", r.name),
            ));
        }
        berth_engine::ops::remove(e, &r.id, force, volumes)?;
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// A streamed body fed from a channel.
pub(crate) fn channel_body() -> (tokio::sync::mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let stream = futures_stream(rx);
    (tx, BodyExt::boxed(StreamBody::new(stream)))
}

fn futures_stream(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures_core::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send + Sync + 'static {
    async_stream(move |cx| rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))))
}

/// A stream from a poll function.
fn async_stream<F>(f: F) -> PollStream<F>
where
    F: FnMut(&mut std::task::Context<'_>) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>>,
{
    PollStream(f)
}

/// [`async_stream`]'s stream.
struct PollStream<F>(F);

impl<F> futures_core::Stream for PollStream<F>
where
    F: FnMut(&mut std::task::Context<'_>) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> + Unpin,
{
    type Item = Result<Frame<Bytes>, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        (self.0)(cx)
    }
}

/// `GET /containers/{id}/logs`.
pub async fn logs(d: &Arc<Daemon>, req: &Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    let (out, err, follow, ts) = (
        flag(&q, "stdout"),
        flag(&q, "stderr"),
        flag(&q, "follow"),
        flag(&q, "timestamps"),
    );
    if !out && !err {
        return Err(ApiError::bad("Bad parameters: you must choose at least one stream"));
    }
    let tail: Option<usize> = q.get("tail").filter(|t| *t != "all").and_then(|t| t.parse().ok());
    // Docker's clients send 0 for "no bound".
    let time = |k: &str| -> Result<Option<i128>, ApiError> {
        q.get(k)
            .filter(|s| !s.is_empty() && *s != "0")
            .map(|s| {
                berth_oci::time::parse_point(s, berth_oci::time::now_nanos())
                    .ok_or_else(|| ApiError::bad(format!("invalid value for {k}: {s}")))
            })
            .transpose()
    };
    let opts = berth_engine::logs::LogOptions {
        since: time("since")?,
        until: time("until")?,
        tail,
        stdout: out,
        stderr: err,
    };
    let (cid, dir, tty) = d
        .engine(move |e| {
            let r = e.resolve(&id)?;
            Ok((r.id.clone(), e.dir(&r.id), r.tty))
        })
        .await?;
    let (tx, body) = channel_body();
    let dd = d.clone();
    tokio::spawn(async move {
        let mut reader = Some(berth_engine::logs::Reader::new(&dir.join("json.log"), opts));
        let mut first = true;
        // Following: once the container has stopped, one last read, then the end.
        let mut last = !follow;
        loop {
            let Some(mut rd) = reader.take() else { return };
            let backlog = first;
            first = false;
            let Ok((rd, pick)) = tokio::task::spawn_blocking(move || {
                let got = if backlog { rd.backlog() } else { rd.more() };
                (rd, got)
            })
            .await
            else {
                return;
            };
            reader = Some(rd);
            for en in &pick {
                let mut line = Vec::new();
                if ts {
                    line.extend_from_slice(en.time.as_bytes());
                    line.push(b' ');
                }
                line.extend_from_slice(en.log.as_bytes());
                let chunk = if tty {
                    line
                } else {
                    let stream = if en.stream == "stderr" {
                        att::STDERR
                    } else {
                        att::STDOUT
                    };
                    att::frame(stream, &line)
                };
                if tx.send(Bytes::from(chunk)).await.is_err() {
                    return;
                }
            }
            if last {
                return;
            }
            let cid = cid.clone();
            last = !dd.engine(move |e| Ok(e.state(&cid).running())).await.unwrap_or(false);
            if !last {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    Ok(crate::streamed(body, crate::stream_type(tty)))
}

/// `POST /containers/{id}/attach`: the connection is hijacked and bridged to the monitor;
/// before the container starts, it waits for the start.
pub async fn attach(d: &Arc<Daemon>, req: Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let q = query(&req);
    let hello = Hello {
        stdin: flag(&q, "stdin"),
        stdout: flag(&q, "stdout"),
        stderr: flag(&q, "stderr"),
        rows: 0,
        cols: 0,
    };
    let (cid, running, tty, dir) = d
        .engine(move |e| {
            let r = e.resolve(&id)?;
            Ok((r.id.clone(), e.state(&r.id).running(), r.tty, e.dir(&r.id)))
        })
        .await?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut req = req;
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(io) = upgrade.await {
            let _ = tx.send(io);
        }
    });
    if running {
        let (dd, c, h) = (d.clone(), cid.clone(), hello);
        tokio::spawn(async move {
            let Ok(io) = rx.await else { return };
            let h2 = h;
            if let Ok(Ok(s)) = tokio::task::spawn_blocking(move || att::connect(&dir, &h2)).await {
                bridge(dd, c, io, s, tty, h.stdin).await;
            }
        });
    } else if let Ok(mut m) = d.pending.lock() {
        m.entry(cid).or_default().push(PendingAttach { hello, tty, io: rx });
    }
    Ok(crate::hijacked(tty))
}

/// `POST /containers/{id}/resize?h=&w=`: the container's terminal takes the new size (its
/// monitor holds the terminal and applies it).
pub async fn resize(d: &Arc<Daemon>, req: &Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let (rows, cols) = crate::exec::size_of(req)?;
    d.engine(move |e| {
        let r = e.resolve(&id)?;
        if !e.state(&r.id).running() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("Container {} is not running", r.id),
            ));
        }
        if r.tty && rows > 0 && cols > 0 {
            use std::io::Write;
            let mut s = att::connect(&e.dir(&r.id), &Hello::default())
                .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("resizing: {err}")))?;
            s.write_all(&att::resize_frame(rows, cols))
                .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("resizing: {err}")))?;
        }
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::OK))
}
