//! The WebSocket side of streaming: Kubernetes' channel protocol (`v4`/`v5.channel.k8s.io`:
//! each binary message starts with its channel, 0 stdin, 1 stdout, 2 stderr, 3 the error
//! status, 4 resize; in v5, `[255, channel]` closes a channel), the kubelet's port
//! forwarding (`portforward.k8s.io`: per port a data channel 2i and an error channel 2i+1,
//! each opened by the server with the port, two bytes little-endian), and a byte pipe
//! carrying SPDY for `SPDY/3.1+portforward.k8s.io`.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{resizes, Input, Output};

/// Channels of the protocol.
const STDIN: u8 = 0;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// The client's input, and where output goes, for a WebSocket exec or attach. The input
/// ends when the client closes the connection; output is sent until [`Output::close`].
pub(crate) fn channels<S>(socket: WebSocketStream<S>) -> (mpsc::Receiver<Input>, Output)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut source) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let (in_tx, in_rx) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(Ok(m)) = source.next().await {
            let inputs = match m {
                Message::Binary(b) => match b.split_first() {
                    Some((&STDIN, d)) => vec![Input::Stdin(d.to_vec())],
                    Some((&RESIZE, d)) => resizes(d),
                    Some((&CLOSE, [STDIN, ..])) => vec![Input::StdinEnd],
                    _ => Vec::new(),
                },
                Message::Close(_) => break,
                _ => Vec::new(),
            };
            for i in inputs {
                if in_tx.send(i).await.is_err() {
                    return;
                }
            }
        }
    });
    (in_rx, Output::Ws(out_tx))
}

/// The bytes of a WebSocket's binary messages, both ways, as a stream.
pub(crate) struct Bytes;

impl Bytes {
    /// A byte stream over `socket`: what is written goes out as binary messages, what
    /// arrives in them is read.
    #[allow(clippy::new_ret_no_self)]
    pub(crate) fn new<S>(socket: WebSocketStream<S>) -> tokio::io::DuplexStream
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mine, theirs) = tokio::io::duplex(1 << 16);
        let (mut rd, mut wr) = tokio::io::split(theirs);
        let (mut sink, mut source) = socket.split();
        tokio::spawn(async move {
            let mut buf = vec![0u8; super::spdy::CHUNK + 64];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if sink.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = sink.close().await;
        });
        tokio::spawn(async move {
            while let Some(Ok(m)) = source.next().await {
                let ok = match m {
                    Message::Binary(b) => wr.write_all(&b).await.is_ok(),
                    Message::Close(_) => false,
                    _ => true,
                };
                if !ok {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        mine
    }
}

/// Forwards `ports` over a WebSocket (`portforward.k8s.io`): one connection per port, in the
/// sandbox's network namespace, for the life of the socket.
pub(crate) async fn port_forward<S>(
    socket: WebSocketStream<S>,
    ports: Vec<u16>,
    sandbox: String,
    netns: Option<std::path::PathBuf>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut source) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let msg = |ch: usize, data: &[u8]| {
        let mut m = vec![u8::try_from(ch).unwrap_or(u8::MAX)];
        m.extend_from_slice(data);
        Message::Binary(m.into())
    };
    let mut to_port: Vec<Option<mpsc::Sender<Vec<u8>>>> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (data, error) = (2 * i, 2 * i + 1);
        // Channels past 255 cannot be named: such ports are not served.
        if error > 254 {
            to_port.push(None);
            continue;
        }
        for ch in [data, error] {
            let _ = out_tx.send(msg(ch, &port.to_le_bytes())).await;
        }
        let conn = match super::portforward::connect_in(netns.clone(), *port).await {
            Ok(c) => c,
            Err(e) => {
                let text = format!("error forwarding port {port} to pod {sandbox}: {e}");
                let _ = out_tx.send(msg(error, text.as_bytes())).await;
                to_port.push(None);
                continue;
            }
        };
        let (mut rd, mut wr) = conn.into_split();
        let out = out_tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; super::spdy::CHUNK];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if out.send(msg(data, &buf[..n])).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
        tokio::spawn(async move {
            while let Some(d) = rx.recv().await {
                if wr.write_all(&d).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        to_port.push(Some(tx));
    }
    while let Some(Ok(m)) = source.next().await {
        match m {
            Message::Binary(b) => {
                let Some((&ch, d)) = b.split_first() else { continue };
                let ch = usize::from(ch);
                if ch % 2 == 0 {
                    if let Some(Some(tx)) = to_port.get(ch / 2) {
                        let _ = tx.send(d.to_vec()).await;
                    }
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    drop(to_port);
    drop(out_tx);
    // The ports' readers end when their connections do; the socket is not kept for them.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), writer).await;
}
