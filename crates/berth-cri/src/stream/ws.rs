//! The WebSocket side of streaming: Kubernetes' channel protocol (`v4`/`v5.channel.k8s.io`:
//! each binary message starts with its channel, 0 stdin, 1 stdout, 2 stderr, 3 the error
//! status, 4 resize; in v5, `[255, channel]` closes a channel), and a byte pipe carrying
//! SPDY for `SPDY/3.1+portforward.k8s.io`.

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
