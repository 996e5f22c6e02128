//! A container's streams: `logs`, `attach` (a hijacked connection bridged to the
//! container's monitor), `resize`, and `export` (its filesystem as a tar).

use std::sync::Arc;
use std::time::Duration;

use berth_engine::attach::{self as att, Hello};
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{empty, flag, query, ApiError, Body, Daemon};

/// An attach made before its container started.
#[derive(Debug)]
pub struct PendingAttach {
    pub(crate) hello: Hello,
    pub(crate) tty: bool,
    pub(crate) io: tokio::sync::oneshot::Receiver<hyper::upgrade::Upgraded>,
}

pub(crate) fn dbg_api(m: &str) {
    if std::env::var_os("BERTH_API_DEBUG").is_some() {
        eprintln!("berth-api: {m}");
    }
}

/// Reads monitor frames off `stream` into `out` until the exit frame; returns the code.
pub(crate) async fn pump_out(
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
pub(crate) async fn bridge(
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
pub(crate) async fn observe(d: Arc<Daemon>, id: String, stream: std::os::unix::net::UnixStream) {
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

/// Bytes written to it go to a response body.
struct ChannelWriter(tokio::sync::mpsc::Sender<Bytes>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Bytes::copy_from_slice(b))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET /containers/{id}/export`: the container's filesystem as a tar stream.
pub async fn export(d: &Arc<Daemon>, id: String) -> Result<Response<Body>, ApiError> {
    let cid = d.engine(move |e| Ok(e.resolve(&id)?.id)).await?;
    let (tx, body) = channel_body();
    let dd = d.clone();
    tokio::spawn(async move {
        let _ = dd
            .engine(move |e| {
                let mut out = std::io::BufWriter::with_capacity(256 * 1024, ChannelWriter(tx));
                berth_engine::commit::export(e, &cid, &mut out)?;
                std::io::Write::flush(&mut out)
                    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
                Ok(())
            })
            .await;
    });
    Ok(crate::streamed(body, HeaderValue::from_static("application/x-tar")))
}
