//! The streaming server: `Exec`, `Attach` and `PortForward` answer with a one-time URL on
//! it, and the client (the kubelet, crictl, critest) connects there and upgrades the HTTP
//! connection, to SPDY/3.1 (`X-Stream-Protocol-Version: v5.channel.k8s.io`/`v4...`, or
//! `portforward.k8s.io`) or to a WebSocket (`v5.channel.k8s.io`/`v4...` channels, or
//! `SPDY/3.1+portforward.k8s.io`: SPDY carried in WebSocket messages).
//!
//! An exec runs `berth exec` (in a pseudo-terminal of this server's with `tty`); an attach
//! joins the container's monitor's attach socket; a port forward dials the port inside the
//! sandbox's network namespace.

mod portforward;
pub mod spdy;
mod ws;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A byte stream over a WebSocket's binary messages (SPDY inside a WebSocket).
pub(crate) fn ws_bytes<S>(socket: tokio_tungstenite::WebSocketStream<S>) -> tokio::io::DuplexStream
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    ws::Bytes::new(socket)
}

/// How long a URL stays good.
const TOKEN_TTL: Duration = Duration::from_secs(60);
/// How long a client has to open its streams.
const STREAM_WAIT: Duration = Duration::from_secs(30);
/// The largest request head read.
const MAX_HEAD: usize = 16 << 10;

/// What a URL is for.
#[derive(Debug, Clone)]
pub(crate) enum Job {
    /// A command in a running container.
    Exec {
        /// The container.
        id: String,
        /// The command.
        cmd: Vec<String>,
        /// The streams asked for.
        io: Io,
    },
    /// The container's own stdio, through its monitor.
    Attach {
        /// The container's directory (its `attach.sock`).
        dir: PathBuf,
        /// The streams asked for.
        io: Io,
    },
    /// Ports of a sandbox.
    PortForward {
        /// The sandbox.
        sandbox: String,
        /// Its network namespace (none: the host's).
        netns: Option<PathBuf>,
    },
}

/// The streams an exec or attach asked for.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Io {
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// The server: where it listens, and the URLs handed out and not yet used.
#[derive(Debug)]
pub struct StreamServer {
    addr: SocketAddr,
    exe: PathBuf,
    root: PathBuf,
    tokens: Mutex<HashMap<String, (Job, Instant)>>,
}

impl StreamServer {
    /// Listens on `ip:port` (port 0: one the kernel picks).
    pub(crate) async fn bind(
        ip: IpAddr,
        port: u16,
        exe: PathBuf,
        root: PathBuf,
    ) -> std::io::Result<(Arc<StreamServer>, TcpListener)> {
        let l = TcpListener::bind((ip, port)).await?;
        let addr = l.local_addr()?;
        Ok((
            Arc::new(StreamServer {
                addr,
                exe,
                root,
                tokens: Mutex::new(HashMap::new()),
            }),
            l,
        ))
    }

    /// A one-time URL for `job`.
    pub(crate) fn url(&self, job: Job) -> Result<String, tonic::Status> {
        let kind = match &job {
            Job::Exec { .. } => "exec",
            Job::Attach { .. } => "attach",
            Job::PortForward { .. } => "portforward",
        };
        let token = berth_engine::store::new_id()
            .map_err(|e| tonic::Status::internal(format!("a streaming token: {e}")))?[..32]
            .to_string();
        if let Ok(mut t) = self.tokens.lock() {
            t.retain(|_, (_, at)| at.elapsed() < TOKEN_TTL);
            t.insert(token.clone(), (job, Instant::now()));
        }
        let host = match self.addr {
            SocketAddr::V4(a) => a.to_string(),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        };
        Ok(format!("http://{host}/{kind}/{token}"))
    }

    fn take(&self, kind: &str, token: &str) -> Option<Job> {
        let (job, at) = self.tokens.lock().ok()?.remove(token)?;
        let matches = matches!(
            (kind, &job),
            ("exec", Job::Exec { .. }) | ("attach", Job::Attach { .. }) | ("portforward", Job::PortForward { .. })
        );
        (matches && at.elapsed() < TOKEN_TTL).then_some(job)
    }

    /// Serves connections until the task is dropped.
    pub(crate) async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.connection(conn).await {
                    eprintln!("berth cri: streaming: {e}");
                }
            });
        }
    }

    async fn connection(self: Arc<Self>, mut conn: TcpStream) -> Result<(), String> {
        let _ = conn.set_nodelay(true);
        let head = read_head(&mut conn).await?;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        req.parse(&head).map_err(|e| format!("bad request: {e}"))?;
        let path = req.path.unwrap_or("").to_string();
        let all = |name: &str| -> Vec<String> {
            req.headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .flat_map(|h| {
                    String::from_utf8_lossy(h.value)
                        .split(',')
                        .map(|v| v.trim().to_string())
                        .collect::<Vec<_>>()
                })
                .filter(|v| !v.is_empty())
                .collect()
        };
        let upgrade = all("upgrade").join(",").to_ascii_lowercase();
        let (kind, token) = path
            .trim_start_matches('/')
            .split_once('/')
            .map(|(k, t)| (k.to_string(), t.split('?').next().unwrap_or("").to_string()))
            .unwrap_or_default();
        let Some(job) = self.take(&kind, &token) else {
            return respond(&mut conn, "404 Not Found", "unknown or expired streaming URL").await;
        };
        let portforward = matches!(job, Job::PortForward { .. });
        let spdy = upgrade.contains("spdy/3.1");
        if !spdy && !upgrade.contains("websocket") {
            return respond(
                &mut conn,
                "400 Bad Request",
                "the connection must upgrade to SPDY/3.1 or a WebSocket",
            )
            .await;
        }
        // The subprotocol: SPDY's in X-Stream-Protocol-Version, a WebSocket's in
        // Sec-WebSocket-Protocol.
        let (offered, wanted): (_, &[&str]) = match (spdy, portforward) {
            (true, true) => (all("x-stream-protocol-version"), &["portforward.k8s.io"]),
            (true, false) => (
                all("x-stream-protocol-version"),
                &["v5.channel.k8s.io", "v4.channel.k8s.io"],
            ),
            (false, true) => (
                all("sec-websocket-protocol"),
                &["SPDY/3.1+portforward.k8s.io", "portforward.k8s.io"],
            ),
            (false, false) => (
                all("sec-websocket-protocol"),
                &["v5.channel.k8s.io", "v4.channel.k8s.io"],
            ),
        };
        let Some(proto) = wanted.iter().find(|w| offered.iter().any(|o| o == *w)) else {
            return respond(
                &mut conn,
                "403 Forbidden",
                &format!("unable to upgrade: no common protocol: offered {offered:?}, served {wanted:?}"),
            )
            .await;
        };
        if spdy {
            let resp = format!(
                "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {proto}\r\n\r\n"
            );
            conn.write_all(resp.as_bytes()).await.map_err(|e| e.to_string())?;
            self.run_spdy(conn, job).await;
            return Ok(());
        }
        let key = all("sec-websocket-key").into_iter().next().unwrap_or_default();
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: {proto}\r\n\r\n"
        );
        conn.write_all(resp.as_bytes()).await.map_err(|e| e.to_string())?;
        let socket = tokio_tungstenite::WebSocketStream::from_raw_socket(
            conn,
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        if *proto == "portforward.k8s.io" {
            // The kubelet's own WebSocket port forwarding: the ports are in the query.
            let ports = path
                .split_once('?')
                .map(|(_, q)| {
                    q.split('&')
                        .filter_map(|kv| kv.strip_prefix("port=")?.parse::<u16>().ok())
                        .collect()
                })
                .unwrap_or_default();
            if let Job::PortForward { sandbox, netns } = job {
                ws::port_forward(socket, ports, sandbox, netns).await;
            }
        } else if portforward {
            self.run_spdy(ws::Bytes::new(socket), job).await;
        } else {
            let (input, out) = ws::channels(socket);
            self.run_job(job, input, out).await;
        }
        Ok(())
    }

    /// A SPDY session: the streams gathered, then the job run over them.
    async fn run_spdy<IO: AsyncRead + AsyncWrite + Send + 'static>(self: Arc<Self>, io: IO, job: Job) {
        let (w, mut events) = spdy::start(io);
        match job {
            Job::PortForward { sandbox, netns } => portforward::over_spdy(w, events, &sandbox, netns).await,
            Job::Exec { io, .. } | Job::Attach { io, .. } => {
                let Some((ids, pending)) = gather(&w, &mut events, io).await else {
                    let _ = w.goaway().await;
                    return;
                };
                let (tx, rx) = mpsc::channel(64);
                for i in pending {
                    let _ = tx.send(i).await;
                }
                tokio::spawn(spdy_input(events, ids, tx));
                let out = Output::Spdy { w: w.clone(), ids };
                self.run_job(job, rx, out).await;
                // The client hangs up once it has the status; a moment for it to.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = w.goaway().await;
            }
        }
    }

    async fn run_job(&self, job: Job, input: mpsc::Receiver<Input>, out: Output) {
        let status = match job {
            Job::Exec { id, cmd, io } => self.exec(&id, &cmd, io, input, &out).await,
            Job::Attach { dir, io } => attach(dir, io, input, &out).await,
            Job::PortForward { .. } => Err("port forwarding takes SPDY".into()),
        };
        out.end(Chan::Stdout).await;
        out.end(Chan::Stderr).await;
        let status = match status {
            Ok(0) => serde_json::json!({"metadata": {}, "status": "Success"}),
            Ok(code) => serde_json::json!({
                "metadata": {}, "status": "Failure",
                "message": format!("command terminated with non-zero exit code: exit status {code}"),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            }),
            Err(e) => serde_json::json!({"metadata": {}, "status": "Failure", "message": e, "reason": "InternalError"}),
        };
        out.send(Chan::Error, status.to_string().as_bytes()).await;
        out.end(Chan::Error).await;
        out.close().await;
    }

    /// Runs `berth exec`, its output to the client, the client's input to it; its exit code.
    async fn exec(
        &self,
        id: &str,
        cmd: &[String],
        io: Io,
        mut input: mpsc::Receiver<Input>,
        out: &Output,
    ) -> Result<i32, String> {
        let mut c = tokio::process::Command::new(&self.exe);
        c.arg("--root").arg(&self.root).arg("exec");
        if io.stdin {
            c.arg("-i");
        }
        if io.tty {
            c.arg("-t");
        }
        c.arg(id).args(cmd).kill_on_drop(true);
        let mut pumps = Vec::new();
        let (mut child, to_child, pty): (_, Option<Box<dyn AsyncWrite + Send + Unpin>>, _) = if io.tty {
            let pty = nix::pty::openpty(None, None).map_err(|e| format!("opening a terminal: {e}"))?;
            let slave = std::fs::File::from(pty.slave);
            let dup = |f: &std::fs::File| f.try_clone().map_err(|e| format!("terminal: {e}"));
            c.stdin(dup(&slave)?).stdout(dup(&slave)?).stderr(slave);
            // SAFETY: between fork and exec only async-signal-safe calls: setsid and the
            // ioctl making the terminal on stdin the new session's controlling one.
            unsafe {
                c.pre_exec(|| {
                    if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let child = c.spawn().map_err(|e| format!("starting exec in {id}: {e}"))?;
            drop(c);
            let master = std::fs::File::from(pty.master);
            let reader = tokio::fs::File::from_std(master.try_clone().map_err(|e| format!("terminal: {e}"))?);
            let writer = tokio::fs::File::from_std(master.try_clone().map_err(|e| format!("terminal: {e}"))?);
            pumps.push(tokio::spawn(pump(reader, out.clone(), Chan::Stdout)));
            (child, Some(Box::new(writer) as Box<_>), Some(master))
        } else {
            c.stdin(piped_if(io.stdin))
                .stdout(piped_if(io.stdout))
                .stderr(piped_if(io.stderr));
            let mut child = c.spawn().map_err(|e| format!("starting exec in {id}: {e}"))?;
            if let Some(o) = child.stdout.take() {
                pumps.push(tokio::spawn(pump(o, out.clone(), Chan::Stdout)));
            }
            if let Some(e) = child.stderr.take() {
                pumps.push(tokio::spawn(pump(e, out.clone(), Chan::Stderr)));
            }
            let stdin = child
                .stdin
                .take()
                .map(|s| Box::new(s) as Box<dyn AsyncWrite + Send + Unpin>);
            (child, stdin, None)
        };
        let pid = child.id();
        let mut to_child = to_child;
        let code = loop {
            tokio::select! {
                st = child.wait() => break st.map_err(|e| e.to_string())?.code().unwrap_or(255),
                i = input.recv() => match i {
                    Some(Input::Stdin(d)) => {
                        if let Some(w) = to_child.as_mut() {
                            if w.write_all(&d).await.is_err() {
                                to_child = None;
                            }
                        }
                    }
                    Some(Input::StdinEnd) => {
                        // A terminal has no end of input but its EOF character.
                        if let (Some(w), true) = (to_child.as_mut(), io.tty) {
                            let _ = w.write_all(&[4]).await;
                        } else {
                            to_child = None;
                        }
                    }
                    Some(Input::Resize { width, height }) => {
                        if let Some(m) = &pty {
                            set_size(m, height, width);
                        }
                    }
                    None => {
                        // The client is gone: so is the command.
                        if let Some(p) = pid {
                            let _ = tokio::task::spawn_blocking(move || crate::proc::kill_tree(p)).await;
                        }
                        let _ = child.wait().await;
                        return Err("the client went away".into());
                    }
                },
            }
        };
        drop(to_child);
        drop(pty);
        for p in pumps {
            let _ = tokio::time::timeout(Duration::from_secs(5), p).await;
        }
        Ok(code)
    }
}

fn piped_if(on: bool) -> std::process::Stdio {
    if on {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    }
}

/// Sets a terminal's size.
fn set_size(master: &std::fs::File, rows: u16, cols: u16) {
    use std::os::fd::AsRawFd;
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer; the fd is an open terminal.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// Copies `r` to the client's channel until it ends.
async fn pump(mut r: impl AsyncRead + Unpin, out: Output, ch: Chan) {
    let mut buf = vec![0u8; spdy::CHUNK];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if !out.send(ch, &buf[..n]).await {
                    return;
                }
            }
        }
    }
}

/// Joins the container's attach socket: its output to the client, the client's input to it.
async fn attach(dir: PathBuf, io: Io, mut input: mpsc::Receiver<Input>, out: &Output) -> Result<i32, String> {
    use berth_engine::attach as a;
    let hello = a::Hello {
        stdin: io.stdin,
        stdout: io.stdout,
        stderr: io.stderr,
        rows: 0,
        cols: 0,
    };
    let s = tokio::task::spawn_blocking(move || a::connect(&dir, &hello))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("attaching: {e}"))?;
    s.set_nonblocking(true).map_err(|e| e.to_string())?;
    let s = tokio::net::UnixStream::from_std(s).map_err(|e| e.to_string())?;
    let (mut rd, mut wr) = s.into_split();
    let output = {
        let out = out.clone();
        tokio::spawn(async move {
            loop {
                let mut head = [0u8; 8];
                if rd.read_exact(&mut head).await.is_err() {
                    return;
                }
                let len = usize::try_from(u32::from_be_bytes([head[4], head[5], head[6], head[7]])).unwrap_or(0);
                let mut p = vec![0u8; len.min(a::CLIENT_BUFFER)];
                if rd.read_exact(&mut p).await.is_err() {
                    return;
                }
                let ok = match head[0] {
                    a::STDOUT => out.send(Chan::Stdout, &p).await,
                    a::STDERR => out.send(Chan::Stderr, &p).await,
                    a::EXIT => return,
                    _ => true,
                };
                if !ok {
                    return;
                }
            }
        })
    };
    tokio::pin!(output);
    loop {
        tokio::select! {
            _ = &mut output => return Ok(0),
            i = input.recv() => {
                let frame = match i {
                    Some(Input::Stdin(d)) => a::frame(a::STDIN, &d),
                    Some(Input::StdinEnd) => a::frame(a::CLOSE_STDIN, b""),
                    Some(Input::Resize { width, height }) => a::resize_frame(height, width),
                    None => return Err("the client went away".into()),
                };
                if wr.write_all(&frame).await.is_err() {
                    return Ok(0);
                }
            }
        }
    }
}

/// What the client sends, whatever the protocol.
#[derive(Debug)]
pub(crate) enum Input {
    Stdin(Vec<u8>),
    StdinEnd,
    Resize { width: u16, height: u16 },
}

/// A stream of the exec protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chan {
    Stdout,
    Stderr,
    Error,
}

/// The SPDY streams of an exec or attach.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ids {
    error: u32,
    stdin: Option<u32>,
    stdout: Option<u32>,
    stderr: Option<u32>,
    resize: Option<u32>,
}

/// Where output goes.
#[derive(Debug, Clone)]
pub(crate) enum Output {
    Spdy { w: spdy::Writer, ids: Ids },
    Ws(mpsc::Sender<tokio_tungstenite::tungstenite::Message>),
}

impl Output {
    /// Sends on a channel; false once the client is gone.
    async fn send(&self, ch: Chan, data: &[u8]) -> bool {
        match self {
            Output::Spdy { w, ids } => match spdy_id(ids, ch) {
                Some(id) => w.data(id, data).await,
                None => true,
            },
            Output::Ws(tx) => {
                let n = match ch {
                    Chan::Stdout => 1,
                    Chan::Stderr => 2,
                    Chan::Error => 3,
                };
                let mut m = Vec::with_capacity(data.len() + 1);
                m.push(n);
                m.extend_from_slice(data);
                tx.send(tokio_tungstenite::tungstenite::Message::Binary(m.into()))
                    .await
                    .is_ok()
            }
        }
    }

    /// Half-closes a channel (SPDY's FIN; a WebSocket's channels end with it).
    async fn end(&self, ch: Chan) {
        if let Output::Spdy { w, ids } = self {
            if let Some(id) = spdy_id(ids, ch) {
                let _ = w.fin(id).await;
            }
        }
    }

    async fn close(&self) {
        if let Output::Ws(tx) = self {
            // A normal closure: the client reads it as the end of every channel.
            let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
                reason: "".into(),
            };
            let _ = tx
                .send(tokio_tungstenite::tungstenite::Message::Close(Some(frame)))
                .await;
        }
    }
}

fn spdy_id(ids: &Ids, ch: Chan) -> Option<u32> {
    match ch {
        Chan::Stdout => ids.stdout,
        Chan::Stderr => ids.stderr,
        Chan::Error => Some(ids.error),
    }
}

/// Waits for the streams an exec or attach opens (the error stream, and one per stream it
/// asked for: with a terminal, a resize stream and no stderr), accepting each. Input that
/// arrives meanwhile is kept.
async fn gather(w: &spdy::Writer, events: &mut mpsc::Receiver<spdy::Event>, io: Io) -> Option<(Ids, Vec<Input>)> {
    let want =
        1 + usize::from(io.stdin) + usize::from(io.stdout) + usize::from(io.stderr && !io.tty) + usize::from(io.tty);
    let mut ids = Ids::default();
    let mut error = None;
    let mut seen = 0usize;
    let mut pending = Vec::new();
    let deadline = tokio::time::Instant::now() + STREAM_WAIT;
    while seen < want {
        let e = tokio::time::timeout_at(deadline, events.recv()).await.ok()??;
        match e {
            spdy::Event::Stream { id, headers } => {
                match headers.get("streamtype").map(String::as_str) {
                    Some("error") => error = Some(id),
                    Some("stdin") => ids.stdin = Some(id),
                    Some("stdout") => ids.stdout = Some(id),
                    Some("stderr") => ids.stderr = Some(id),
                    Some("resize") => ids.resize = Some(id),
                    _ => {
                        let _ = w.reset(id, spdy::CANCEL).await;
                        continue;
                    }
                }
                seen += 1;
                if !w.reply(id).await {
                    return None;
                }
            }
            spdy::Event::Data { id, data } if Some(id) == ids.stdin => pending.push(Input::Stdin(data)),
            spdy::Event::Data { id, data } if Some(id) == ids.resize => pending.extend(resizes(&data)),
            spdy::Event::Fin(id) if Some(id) == ids.stdin => pending.push(Input::StdinEnd),
            _ => {}
        }
    }
    ids.error = error?;
    Some((ids, pending))
}

/// The sizes in a resize stream's bytes: JSON objects, `{"Width":W,"Height":H}`.
fn resizes(data: &[u8]) -> Vec<Input> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Size {
        width: u16,
        height: u16,
    }
    serde_json::Deserializer::from_slice(data)
        .into_iter::<Size>()
        .map_while(Result::ok)
        .map(|s| Input::Resize {
            width: s.width,
            height: s.height,
        })
        .collect()
}

/// Turns a SPDY session's events into input; ends (closing `tx`) when the client goes.
async fn spdy_input(mut events: mpsc::Receiver<spdy::Event>, ids: Ids, tx: mpsc::Sender<Input>) {
    while let Some(e) = events.recv().await {
        let inputs = match e {
            spdy::Event::Data { id, data } if Some(id) == ids.stdin => vec![Input::Stdin(data)],
            spdy::Event::Data { id, data } if Some(id) == ids.resize => resizes(&data),
            spdy::Event::Fin(id) if Some(id) == ids.stdin => vec![Input::StdinEnd],
            spdy::Event::Reset(id) if id == ids.error => return,
            _ => Vec::new(),
        };
        for i in inputs {
            if tx.send(i).await.is_err() {
                return;
            }
        }
    }
}

/// Reads an HTTP request's head (through the blank line).
async fn read_head(conn: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut head = Vec::with_capacity(1024);
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Err("request head too large".into());
        }
        // Byte by byte: nothing past the head may be taken from the upgraded stream.
        match tokio::time::timeout(STREAM_WAIT, conn.read(&mut b)).await {
            Ok(Ok(1)) => head.push(b[0]),
            _ => return Err("connection closed before a request".into()),
        }
    }
    Ok(head)
}

async fn respond(conn: &mut TcpStream, status: &str, msg: &str) -> Result<(), String> {
    let r = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
        msg.len()
    );
    let _ = conn.write_all(r.as_bytes()).await;
    Err(format!("{status}: {msg}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_messages_are_read_one_after_another() {
        let r = resizes(br#"{"Width":80,"Height":24}{"Width":100,"Height":30}"#);
        assert!(matches!(
            r[..],
            [
                Input::Resize { width: 80, height: 24 },
                Input::Resize { width: 100, height: 30 }
            ]
        ));
    }
}
