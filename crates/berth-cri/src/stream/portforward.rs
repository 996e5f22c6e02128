//! Port forwarding over SPDY (`portforward.k8s.io`, directly or inside a WebSocket): each
//! pair of streams (`requestID`: an error and a data stream, `port`) is one connection to
//! the port inside the sandbox's network namespace.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::spdy;

/// Forwards the port each pair of streams (`requestID`: an error and a data stream, `port`)
/// names, inside the sandbox's network namespace.
pub(super) async fn over_spdy(
    w: spdy::Writer,
    mut events: mpsc::Receiver<spdy::Event>,
    sandbox: &str,
    netns: Option<PathBuf>,
) {
    #[derive(Default)]
    struct Pair {
        error: Option<u32>,
        data: Option<u32>,
        port: String,
    }
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut sinks: HashMap<u32, mpsc::Sender<Option<Vec<u8>>>> = HashMap::new();
    while let Some(e) = events.recv().await {
        match e {
            spdy::Event::Stream { id, headers } => {
                let (Some(kind), Some(req)) = (headers.get("streamtype"), headers.get("requestid")) else {
                    let _ = w.reset(id, spdy::CANCEL).await;
                    continue;
                };
                if !w.reply(id).await {
                    return;
                }
                let p = pairs.entry(req.clone()).or_default();
                match kind.as_str() {
                    "error" => p.error = Some(id),
                    "data" => p.data = Some(id),
                    _ => {}
                }
                if let Some(port) = headers.get("port") {
                    p.port.clone_from(port);
                }
                if let (Some(err), Some(data)) = (p.error, p.data) {
                    let (tx, rx) = mpsc::channel(64);
                    sinks.insert(data, tx);
                    let port = p.port.clone();
                    pairs.remove(req);
                    tokio::spawn(forward(
                        w.clone(),
                        err,
                        data,
                        port,
                        sandbox.to_string(),
                        netns.clone(),
                        rx,
                    ));
                }
            }
            spdy::Event::Data { id, data } => {
                if let Some(s) = sinks.get(&id) {
                    let _ = s.send(Some(data)).await;
                }
            }
            spdy::Event::Fin(id) => {
                if let Some(s) = sinks.get(&id) {
                    let _ = s.send(None).await;
                }
            }
            spdy::Event::Reset(id) => {
                sinks.remove(&id);
            }
        }
    }
}

/// One forwarded connection: the data stream to the port and back.
async fn forward(
    w: spdy::Writer,
    err: u32,
    data: u32,
    port: String,
    sandbox: String,
    netns: Option<PathBuf>,
    mut from_client: mpsc::Receiver<Option<Vec<u8>>>,
) {
    let fail = |m: String| {
        let w = w.clone();
        async move {
            let _ = w.data(err, m.as_bytes()).await;
            let _ = w.fin(err).await;
            let _ = w.fin(data).await;
        }
    };
    let Ok(p) = port.parse::<u16>() else {
        return fail(format!("invalid port {port:?}")).await;
    };
    let sock = match connect_in(netns, p).await {
        Ok(s) => s,
        Err(e) => return fail(format!("error forwarding port {p} to pod {sandbox}: {e}")).await,
    };
    let (mut rd, mut wr) = sock.into_split();
    let to_client = {
        let w = w.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; spdy::CHUNK];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if !w.data(data, &buf[..n]).await {
                            return;
                        }
                    }
                }
            }
            let _ = w.fin(data).await;
        })
    };
    while let Some(m) = from_client.recv().await {
        match m {
            Some(d) => {
                if wr.write_all(&d).await.is_err() {
                    break;
                }
            }
            None => break,
        }
    }
    let _ = wr.shutdown().await;
    let _ = to_client.await;
    let _ = w.fin(err).await;
}

/// A TCP connection to `port` on the loopback of network namespace `netns` (none: this
/// one's), IPv4 first, then IPv6.
pub(crate) async fn connect_in(netns: Option<PathBuf>, port: u16) -> std::io::Result<TcpStream> {
    let dial = move || -> std::io::Result<std::net::TcpStream> {
        if let Some(ns) = &netns {
            let f = std::fs::File::open(ns)?;
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        }
        let t = Duration::from_secs(10);
        std::net::TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), t).or_else(|_| {
            std::net::TcpStream::connect_timeout(&SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)), t)
        })
    };
    // A thread of its own: it enters the namespace and ends, so no pooled thread is left in
    // another network namespace. The socket stays in the one it was made in.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(dial());
    });
    let s = rx
        .await
        .map_err(|_| std::io::Error::other("the dialing thread died"))??;
    s.set_nonblocking(true)?;
    TcpStream::from_std(s)
}
