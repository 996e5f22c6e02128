//! A client of the CRI over a unix socket (the k8s-cri crate's tonic clients): what the
//! project's tests and `bench/cri.sh` drive a CRI server with, berth's or containerd's.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

pub use k8s_cri::v1 as cri;

/// Both services over one connection.
#[derive(Debug, Clone)]
pub struct Client {
    /// The RuntimeService.
    pub runtime: RuntimeServiceClient<Channel>,
    /// The ImageService.
    pub images: ImageServiceClient<Channel>,
}

/// Connects to the CRI server on the unix socket `path` (a path, or `unix://PATH`).
pub async fn connect(path: &Path) -> Result<Client, tonic::transport::Error> {
    let p = path.to_string_lossy();
    let path = PathBuf::from(p.strip_prefix("unix://").unwrap_or(&p));
    // The URI is a placeholder: every connection goes to the socket.
    let channel = Endpoint::from_static("http://[::]:50051")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
        }))
        .await?;
    Ok(Client {
        runtime: RuntimeServiceClient::new(channel.clone()),
        images: ImageServiceClient::new(channel),
    })
}

/// Streaming clients: the URLs `Exec`, `Attach` and `PortForward` return, spoken to as the
/// kubelet's clients do (a WebSocket with Kubernetes' channels, or SPDY/3.1).
pub mod streaming {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    use crate::stream::spdy::{self, Event};

    /// What an exec or attach gave back.
    #[derive(Debug, Default, Clone)]
    pub struct Output {
        /// Channel 1.
        pub stdout: Vec<u8>,
        /// Channel 2.
        pub stderr: Vec<u8>,
        /// The status on the error channel (`{"status":"Success"}` or a failure with its
        /// exit code).
        pub status: serde_json::Value,
    }

    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn host_and_path(url: &str) -> Result<(String, String), Error> {
        let rest = url.strip_prefix("http://").ok_or("not an http:// URL")?;
        let (host, path) = rest.split_once('/').ok_or("no path in the URL")?;
        Ok((host.to_string(), format!("/{path}")))
    }

    /// Runs an exec or attach over a WebSocket (`v5.channel.k8s.io`): sends `resize` (width,
    /// height) if given, then `stdin` and its end if given, and collects the output until
    /// the server closes.
    pub async fn ws_exec(url: &str, stdin: Option<&[u8]>, resize: Option<(u16, u16)>) -> Result<Output, Error> {
        let mut req = url.replacen("http://", "ws://", 1).into_client_request()?;
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "v5.channel.k8s.io".parse()?);
        let (ws, resp) = tokio_tungstenite::connect_async(req).await?;
        if resp.headers().get("sec-websocket-protocol").map(|v| v.as_bytes()) != Some(b"v5.channel.k8s.io") {
            return Err("the server chose another protocol".into());
        }
        let (mut tx, mut rx) = ws.split();
        if let Some((w, h)) = resize {
            let mut m = vec![4u8];
            m.extend_from_slice(format!(r#"{{"Width":{w},"Height":{h}}}"#).as_bytes());
            tx.send(Message::Binary(m.into())).await?;
        }
        if let Some(input) = stdin {
            let mut m = vec![0u8];
            m.extend_from_slice(input);
            tx.send(Message::Binary(m.into())).await?;
            tx.send(Message::Binary(vec![255u8, 0].into())).await?;
        }
        let mut out = Output::default();
        let mut status = Vec::new();
        while let Some(m) = rx.next().await {
            match m? {
                Message::Binary(b) => match b.split_first() {
                    Some((1, d)) => out.stdout.extend_from_slice(d),
                    Some((2, d)) => out.stderr.extend_from_slice(d),
                    Some((3, d)) => status.extend_from_slice(d),
                    _ => {}
                },
                Message::Close(_) => break,
                _ => {}
            }
        }
        out.status = serde_json::from_slice(&status).unwrap_or_default();
        Ok(out)
    }

    /// Upgrades a connection to `url` to SPDY/3.1 with `protocol` (or, with `ws`, opens a
    /// WebSocket carrying SPDY, `SPDY/3.1+portforward.k8s.io`).
    pub async fn spdy_connect(
        url: &str,
        protocol: &str,
        ws: bool,
    ) -> Result<(spdy::Writer, tokio::sync::mpsc::Receiver<Event>), Error> {
        if ws {
            let mut req = url.replacen("http://", "ws://", 1).into_client_request()?;
            req.headers_mut()
                .insert("Sec-WebSocket-Protocol", format!("SPDY/3.1+{protocol}").parse()?);
            let (socket, _) = tokio_tungstenite::connect_async(req).await?;
            return Ok(spdy::start(crate::stream::ws_bytes(socket)));
        }
        let (host, path) = host_and_path(url)?;
        let mut conn = TcpStream::connect(&host).await?;
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {protocol}\r\nContent-Length: 0\r\n\r\n"
        );
        conn.write_all(req.as_bytes()).await?;
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if conn.read(&mut b).await? == 0 {
                return Err("the server closed before answering".into());
            }
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        if !head.starts_with("HTTP/1.1 101") {
            return Err(format!("no upgrade: {head}").into());
        }
        Ok(spdy::start(conn))
    }

    /// Runs an exec or attach over SPDY (`v4.channel.k8s.io`): opens the error, stdout and
    /// stderr streams (and stdin, sent and closed, if given) and collects the output.
    pub async fn spdy_exec(url: &str, stdin: Option<&[u8]>) -> Result<Output, Error> {
        let (w, mut events) = spdy_connect(url, "v4.channel.k8s.io", false).await?;
        let mut streams = vec![(1u32, "error"), (3, "stdout"), (5, "stderr")];
        if stdin.is_some() {
            streams.push((7, "stdin"));
        }
        for (id, kind) in &streams {
            w.open(*id, &[("streamType", kind)]).await;
        }
        if let Some(input) = stdin {
            w.data(7, input).await;
            w.fin(7).await;
        }
        let mut out = Output::default();
        let mut status = Vec::new();
        let mut open = 3;
        while open > 0 {
            match events.recv().await {
                Some(Event::Data { id: 1, data }) => status.extend_from_slice(&data),
                Some(Event::Data { id: 3, data }) => out.stdout.extend_from_slice(&data),
                Some(Event::Data { id: 5, data }) => out.stderr.extend_from_slice(&data),
                Some(Event::Fin(1 | 3 | 5)) => open -= 1,
                Some(_) => {}
                None => break,
            }
        }
        out.status = serde_json::from_slice(&status).unwrap_or_default();
        Ok(out)
    }

    /// Forwards `port` over the kubelet's WebSocket protocol (`portforward.k8s.io`): sends
    /// `request` on its data channel and returns what comes back on it until nothing more
    /// has come for 300 ms (or the error channel's message).
    pub async fn ws_port_forward(url: &str, port: u16, request: &[u8]) -> Result<Vec<u8>, Error> {
        let mut req = format!("{}?port={port}", url.replacen("http://", "ws://", 1)).into_client_request()?;
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "portforward.k8s.io".parse()?);
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
        let (mut tx, mut rx) = ws.split();
        let mut m = vec![0u8];
        m.extend_from_slice(request);
        tx.send(Message::Binary(m.into())).await?;
        // Each channel opens with the port, two bytes little-endian.
        let (mut data, mut error) = (Vec::new(), Vec::new());
        let (mut data_open, mut error_open) = (false, false);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let wait = if data.is_empty() && error.is_empty() {
                deadline
            } else {
                (tokio::time::Instant::now() + std::time::Duration::from_millis(300)).min(deadline)
            };
            let Ok(Some(m)) = tokio::time::timeout_at(wait, rx.next()).await else {
                break;
            };
            if let Message::Binary(b) = m? {
                match b.split_first() {
                    Some((0, d)) if !data_open => {
                        data_open = true;
                        if d != port.to_le_bytes() {
                            return Err("the data channel did not open with the port".into());
                        }
                    }
                    Some((1, _)) if !error_open => error_open = true,
                    Some((0, d)) => data.extend_from_slice(d),
                    Some((1, d)) => error.extend_from_slice(d),
                    _ => {}
                }
            }
        }
        if !error.is_empty() {
            return Err(String::from_utf8_lossy(&error).into_owned().into());
        }
        Ok(data)
    }

    /// Forwards one connection to `port` through a port-forward URL (SPDY, or SPDY in a
    /// WebSocket with `ws`): sends `request`, half-closes, and returns what came back, or
    /// the error stream's message.
    pub async fn port_forward(url: &str, port: u16, request: &[u8], ws: bool) -> Result<Vec<u8>, Error> {
        let (w, mut events) = spdy_connect(url, "portforward.k8s.io", ws).await?;
        let port = port.to_string();
        w.open(1, &[("streamType", "error"), ("port", &port), ("requestID", "0")])
            .await;
        w.fin(1).await;
        w.open(3, &[("streamType", "data"), ("port", &port), ("requestID", "0")])
            .await;
        w.data(3, request).await;
        w.fin(3).await;
        let (mut data, mut error) = (Vec::new(), Vec::new());
        let mut open = 2;
        while open > 0 {
            match events.recv().await {
                Some(Event::Data { id: 1, data: d }) => error.extend_from_slice(&d),
                Some(Event::Data { id: 3, data: d }) => data.extend_from_slice(&d),
                Some(Event::Fin(1 | 3)) => open -= 1,
                Some(_) => {}
                None => break,
            }
        }
        if !error.is_empty() {
            return Err(String::from_utf8_lossy(&error).into_owned().into());
        }
        Ok(data)
    }
}
