//! berth-api: `berth daemon`, the Docker Engine API over `berth-engine`, so the `docker` CLI,
//! docker-compose and the SDKs drive berth unchanged. HTTP/1.1 over a unix socket (hyper on
//! a small tokio runtime); every route answers with and without the `/vX.YY` prefix. The
//! engine is synchronous (SQLite, fork/exec), so handlers run it on the blocking pool, each
//! request over its own engine handle. Containers keep their own monitors: the daemon holds
//! no container state of its own, so killing it leaves every container running and the
//! next daemon sees them all (live restore).

pub mod archive;
pub mod build;
pub mod containers;
pub mod create_body;
pub mod exec;
pub mod images;
pub mod networks;
pub mod request;
pub mod streams;
pub mod system;
pub mod volumes;

pub use request::{
    filters, flag, flag_or, json_body, percent_decode, prune_filter, query, read_body, repo_tag, time_nanos,
};

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

/// The API version berth speaks (what `/_ping` and `/version` advertise).
pub const API_VERSION: &str = "1.45";
/// The oldest API version berth accepts.
pub const MIN_API_VERSION: &str = "1.24";
/// The largest request body read into memory (JSON requests).
pub const MAX_BODY: usize = 16 << 20;

/// A response body: whole, or streamed.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// Errors with the HTTP status Docker gives them.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// Docker's `message`.
    pub message: String,
}

impl ApiError {
    /// An error with a status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

/// The HTTP status dockerd answers an error of this kind with (its errdefs mapping): the one
/// place an engine error becomes a status.
pub(crate) fn status_of(kind: berth_oci::ErrorKind) -> StatusCode {
    use berth_oci::ErrorKind as K;
    match kind {
        K::NotFound => StatusCode::NOT_FOUND,
        K::Conflict | K::FailedPrecondition => StatusCode::CONFLICT,
        K::InvalidArgument => StatusCode::BAD_REQUEST,
        K::PermissionDenied => StatusCode::FORBIDDEN,
        K::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        K::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<berth_engine::EngineError> for ApiError {
    fn from(e: berth_engine::EngineError) -> Self {
        ApiError::new(status_of(e.kind()), e.to_string())
    }
}

impl From<berth_engine::images::ImageError> for ApiError {
    fn from(e: berth_engine::images::ImageError) -> Self {
        ApiError::from(berth_engine::EngineError::from(e))
    }
}

/// What every handler shares.
#[derive(Debug)]
pub struct Daemon {
    /// The data root.
    pub root: PathBuf,
    /// The berth binary (monitors are started from it).
    pub exe: PathBuf,
    /// Exit codes seen by the daemon's own connections to monitors, with a generation
    /// counter per container (`wait?condition=next-exit` waits for a newer one).
    pub exits: Mutex<HashMap<String, (u64, i32)>>,
    /// Containers whose monitor connection the daemon holds (an exit code will be recorded
    /// for them, even after `--rm` removed the record).
    pub watching: Mutex<std::collections::HashSet<String>>,
    /// Wakes waiters when an exit is recorded.
    pub exited: tokio::sync::Notify,
    /// Exec instances.
    pub execs: exec::Execs,
    /// Database handles kept open between requests: opening one costs a schema check.
    pub engines: Mutex<Vec<berth_engine::store::Engine>>,
    /// Image store handles kept open between requests.
    pub stores: Mutex<Vec<berth_engine::images::ImageStore>>,
    /// Attach connections made before their container started (`docker run` attaches
    /// first, then starts): the start hands the first one to the monitor.
    pub pending: Mutex<HashMap<String, Vec<streams::PendingAttach>>>,
}

impl Daemon {
    /// Records that a container exited with `code`.
    pub fn record_exit(&self, id: &str, code: i32) {
        if let Ok(mut w) = self.watching.lock() {
            w.remove(id);
        }
        if let Ok(mut m) = self.exits.lock() {
            let e = m.entry(id.to_string()).or_insert((0, 0));
            *e = (e.0 + 1, code);
        }
        self.exited.notify_waiters();
    }

    /// Forgets a monitor connection that ended without an exit code.
    pub fn unwatch(&self, id: &str) {
        if let Ok(mut w) = self.watching.lock() {
            w.remove(id);
        }
        self.exited.notify_waiters();
    }

    /// Whether the daemon holds a monitor connection for a container.
    pub fn is_watching(&self, id: &str) -> bool {
        self.watching.lock().is_ok_and(|w| w.contains(id))
    }

    /// The exit generation and code last recorded for a container.
    pub fn last_exit(&self, id: &str) -> Option<(u64, i32)> {
        self.exits.lock().ok().and_then(|m| m.get(id).copied())
    }

    /// An engine handle: a pooled one, or a new one.
    fn take_engine(&self) -> Result<berth_engine::store::Engine, ApiError> {
        match self.engines.lock().ok().and_then(|mut p| p.pop()) {
            Some(e) => Ok(e),
            None => Ok(berth_engine::store::Engine::open(&self.root)?),
        }
    }

    /// An image store handle: a pooled one, or a new one.
    fn take_store(&self) -> Result<berth_engine::images::ImageStore, ApiError> {
        match self.stores.lock().ok().and_then(|mut p| p.pop()) {
            Some(s) => Ok(s),
            None => Ok(berth_engine::images::ImageStore::open(&self.root)?),
        }
    }

    /// Returns handles to the pools (a few are kept: as many as run at once, bounded).
    fn give_back(&self, e: berth_engine::store::Engine, s: Option<berth_engine::images::ImageStore>) {
        const KEEP: usize = 16;
        if let Ok(mut p) = self.engines.lock() {
            if p.len() < KEEP {
                p.push(e);
            }
        }
        if let (Some(s), Ok(mut p)) = (s, self.stores.lock()) {
            if p.len() < KEEP {
                p.push(s);
            }
        }
    }

    /// Runs `f` with an engine handle on the blocking pool.
    pub async fn engine<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&berth_engine::store::Engine) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let d = self.clone();
        tokio::task::spawn_blocking(move || {
            let e = d.take_engine()?;
            let r = f(&e);
            d.give_back(e, None);
            r
        })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    }

    /// Runs `f` with an engine and an image store on the blocking pool.
    pub async fn with_images<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&berth_engine::store::Engine, &mut berth_engine::images::ImageStore) -> Result<T, ApiError>
            + Send
            + 'static,
    ) -> Result<T, ApiError> {
        let d = self.clone();
        tokio::task::spawn_blocking(move || {
            let e = d.take_engine()?;
            let mut s = d.take_store()?;
            let r = f(&e, &mut s);
            d.give_back(e, Some(s));
            r
        })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    }
}

/// Writes a request body to `path` as it arrives (any size); the file is removed if the
/// body cannot be read or written whole.
/// Refuses a request whose body is still unread, reading (and dropping) up to 1 MiB of it
/// first, as Go's server does: a client still sending (a build context) then reads the
/// answer instead of a broken pipe.
pub async fn refuse<T>(body: Incoming, e: ApiError) -> Result<T, ApiError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut left: usize = 1 << 20;
    let drain = async {
        while left > 0 {
            match body.frame().await {
                Some(Ok(f)) => left = left.saturating_sub(f.data_ref().map_or(0, |d| d.len())),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
    Err(e)
}

/// Writes a request's body to `path` (removed again if it cannot be read whole).
pub async fn spool_body(body: Incoming, path: &Path) -> Result<(), ApiError> {
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    }
    let res = async {
        let mut f = tokio::fs::File::create(path)
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let mut body = body;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ApiError::bad(format!("reading the request body: {e}")))?;
            if let Some(data) = frame.data_ref() {
                f.write_all(data)
                    .await
                    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            }
        }
        f.flush()
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    }
    .await;
    if res.is_err() {
        let _ = tokio::fs::remove_file(path).await;
    }
    res
}

/// Spools a request body to a scratch file, runs `f` on it opened (with an engine and an
/// image store, on the blocking pool) and removes the file whatever happens.
pub async fn with_spooled_body<T: Send + 'static>(
    d: &Arc<Daemon>,
    what: &str,
    body: Incoming,
    f: impl FnOnce(
            &berth_engine::store::Engine,
            &mut berth_engine::images::ImageStore,
            &mut std::fs::File,
        ) -> Result<T, ApiError>
        + Send
        + 'static,
) -> Result<T, ApiError> {
    let tmp = d.root.join("tmp").join(format!(
        "{what}-{}",
        berth_engine::store::new_id().map_err(ApiError::from)?
    ));
    spool_body(body, &tmp).await?;
    let path = tmp.clone();
    let res = d
        .with_images(move |e, s| {
            let mut file = std::fs::File::open(&path)
                .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))?;
            f(e, s, &mut file)
        })
        .await;
    let _ = tokio::fs::remove_file(&tmp).await;
    res
}

/// A whole body.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// A JSON response.
pub fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(full(format!("{v}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "Content-Type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// An empty response.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// A streamed (200) response with a content type.
pub fn streamed(body: Body, content_type: hyper::header::HeaderValue) -> Response<Body> {
    let mut r = Response::new(body);
    r.headers_mut().insert("Content-Type", content_type);
    r
}

/// The content type of a container's stream: raw with a terminal, else multiplexed.
pub fn stream_type(tty: bool) -> hyper::header::HeaderValue {
    hyper::header::HeaderValue::from_static(if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    })
}

/// `101 Switching Protocols` to a raw TCP stream, as dockerd answers attach and exec start.
pub fn hijacked(tty: bool) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert("Connection", hyper::header::HeaderValue::from_static("Upgrade"));
    h.insert("Upgrade", hyper::header::HeaderValue::from_static("tcp"));
    h.insert("Content-Type", stream_type(tty));
    r
}

/// Resolves a container that must be running (Docker's 409 otherwise); returns its id.
pub fn running_id(e: &berth_engine::store::Engine, id: &str) -> Result<String, ApiError> {
    Ok(berth_engine::exec::running(e, id)?.id)
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.status, &json!({ "message": e.message }))
}

/// Strips a `/vX.YY` prefix; refuses versions below the minimum.
fn route_path(path: &str) -> Result<&str, ApiError> {
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some(i) = rest.find('/') {
            let ver = &rest[..i];
            if ver
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            {
                let parse = |v: &str| -> (u32, u32) {
                    let (a, b) = v.split_once('.').unwrap_or((v, "0"));
                    (a.parse().unwrap_or(0), b.parse().unwrap_or(0))
                };
                if parse(ver) < parse(MIN_API_VERSION) {
                    return Err(ApiError::bad(format!(
                        "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                    )));
                }
                if parse(ver) > parse(API_VERSION) {
                    return Err(ApiError::bad(format!(
                        "client version {ver} is too new. Maximum supported API version is {API_VERSION}"
                    )));
                }
                return Ok(&rest[i..]);
            }
        }
    }
    Ok(path)
}

async fn handle(d: Arc<Daemon>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if std::env::var_os("BERTH_API_DEBUG").is_some() {
        eprintln!("berth-api: {method} {}", req.uri());
    }
    let res = match route_path(&path) {
        Ok(p) => {
            let segs: Vec<String> = p.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
            route(d, req, &method, &segs).await
        }
        Err(e) => Err(e),
    };
    let mut resp = match res {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    let h = resp.headers_mut();
    h.insert("Api-Version", hyper::header::HeaderValue::from_static(API_VERSION));
    h.insert("Docker-Experimental", hyper::header::HeaderValue::from_static("false"));
    h.insert("Ostype", hyper::header::HeaderValue::from_static("linux"));
    h.insert(
        "Server",
        hyper::header::HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    Ok(resp)
}

async fn route(
    d: Arc<Daemon>,
    req: Request<Incoming>,
    m: &Method,
    segs: &[String],
) -> Result<Response<Body>, ApiError> {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (m, s.as_slice()) {
        (&Method::GET | &Method::HEAD, ["_ping"]) => Ok(system::ping(m)),
        (&Method::GET, ["version"]) => system::version(&d).await,
        (&Method::GET, ["info"]) => system::info(&d).await,
        (&Method::GET, ["images", "json"]) => images::images(&d, &req).await,
        (&Method::POST, ["build"]) => build::build(&d, req).await,
        (&Method::POST, ["images", "create"]) if query(&req).contains_key("fromSrc") => images::import(&d, req).await,
        (&Method::POST, ["images", "create"]) => images::pull(&d, &req).await,
        (&Method::POST, ["images", name @ .., "push"]) if !name.is_empty() => {
            images::push(&d, &req, name.join("/")).await
        }
        (&Method::GET, ["images", "get"]) => images::save(&d, &req, None).await,
        (&Method::POST, ["images", "load"]) => images::load(&d, req).await,
        (&Method::GET, ["images", name @ .., "get"]) if !name.is_empty() => {
            images::save(&d, &req, Some(name.join("/"))).await
        }
        (&Method::GET, ["images", name @ .., "json"]) if !name.is_empty() => {
            images::image_inspect(&d, name.join("/")).await
        }
        (&Method::GET, ["containers", "json"]) => containers::list(&d, &req).await,
        (&Method::POST, ["containers", "create"]) => containers::create(&d, req).await,
        (&Method::GET, ["containers", id, "json"]) => containers::inspect(&d, &req, id.to_string()).await,
        (&Method::POST, ["containers", id, "start"]) => containers::start(&d, id.to_string()).await,
        (&Method::POST, ["containers", id, "stop"]) => containers::stop(&d, &req, id.to_string(), false).await,
        (&Method::POST, ["containers", id, "restart"]) => containers::stop(&d, &req, id.to_string(), true).await,
        (&Method::POST, ["containers", id, "kill"]) => containers::kill(&d, &req, id.to_string()).await,
        (&Method::POST, ["containers", id, "wait"]) => containers::wait(&d, &req, id.to_string()).await,
        (&Method::DELETE, ["containers", id]) => containers::remove(&d, &req, id.to_string()).await,
        (&Method::GET, ["containers", id, "logs"]) => streams::logs(&d, &req, id.to_string()).await,
        (&Method::POST, ["containers", id, "attach"]) => streams::attach(&d, req, id.to_string()).await,
        (&Method::POST, ["containers", id, "resize"]) => streams::resize(&d, &req, id.to_string()).await,
        (&Method::GET | &Method::HEAD, ["containers", id, "archive"]) => archive::get(&d, &req, id.to_string()).await,
        (&Method::PUT, ["containers", id, "archive"]) => archive::put(&d, req, id.to_string()).await,
        (&Method::POST, ["containers", "prune"]) => containers::container_prune(&d, &req).await,
        (&Method::POST, ["images", "prune"]) => images::image_prune(&d, &req).await,
        (&Method::POST, ["containers", id, "rename"]) => containers::rename(&d, &req, id.to_string()).await,
        (&Method::POST, ["containers", id, "pause"]) => containers::pause(&d, id.to_string(), true).await,
        (&Method::POST, ["containers", id, "unpause"]) => containers::pause(&d, id.to_string(), false).await,
        (&Method::GET, ["containers", id, "changes"]) => containers::changes(&d, id.to_string()).await,
        (&Method::GET, ["containers", id, "top"]) => containers::top(&d, &req, id.to_string()).await,
        (&Method::GET, ["containers", id, "stats"]) => containers::stats(&d, &req, id.to_string()).await,
        (&Method::POST, ["images", name @ .., "tag"]) if !name.is_empty() => {
            images::tag(&d, &req, name.join("/")).await
        }
        (&Method::DELETE, ["images", name @ ..]) if !name.is_empty() => {
            images::image_remove(&d, &req, name.join("/")).await
        }
        (&Method::GET, ["system", "df"]) => system::df(&d).await,
        (&Method::POST, ["containers", id, "update"]) => containers::update(&d, req, id.to_string()).await,
        (&Method::GET, ["containers", id, "export"]) => streams::export(&d, id.to_string()).await,
        (&Method::POST, ["commit"]) => images::commit(&d, req).await,
        (&Method::GET, ["images", name @ .., "history"]) if !name.is_empty() => {
            images::history(&d, name.join("/")).await
        }
        (&Method::POST, ["auth"]) => system::auth(req).await,
        (&Method::POST, ["build", "prune"]) => build::build_prune(&d).await,
        (&Method::GET, ["events"]) => system::events(&d, &req).await,
        (&Method::GET, ["volumes"]) => volumes::volumes(&d, &req).await,
        (&Method::POST, ["volumes", "create"]) => volumes::volume_create(&d, req).await,
        (&Method::POST, ["volumes", "prune"]) => volumes::volume_prune(&d, &req).await,
        (&Method::GET, ["volumes", name]) => volumes::volume_inspect(&d, name.to_string()).await,
        (&Method::DELETE, ["volumes", name]) => volumes::volume_remove(&d, name.to_string()).await,
        (&Method::GET, ["networks"]) => networks::networks(&d, &req).await,
        (&Method::POST, ["networks", "create"]) => networks::network_create(&d, req).await,
        (&Method::POST, ["networks", "prune"]) => networks::network_prune(&d, &req).await,
        (&Method::GET, ["networks", id]) => networks::network_inspect(&d, id.to_string()).await,
        (&Method::DELETE, ["networks", id]) => networks::network_remove(&d, id.to_string()).await,
        (&Method::POST, ["networks", id, "connect"]) => networks::network_connect(&d, req, id.to_string(), true).await,
        (&Method::POST, ["networks", id, "disconnect"]) => {
            networks::network_connect(&d, req, id.to_string(), false).await
        }
        (&Method::POST, ["containers", id, "exec"]) => exec::create(&d, req, id.to_string()).await,
        (&Method::POST, ["exec", id, "start"]) => exec::start(&d, req, id.to_string()).await,
        (&Method::GET, ["exec", id, "json"]) => exec::inspect(&d, id.to_string()).await,
        (&Method::POST, ["exec", id, "resize"]) => exec::resize(&d, &req, id.to_string()).await,
        _ => Err(ApiError::not_found(format!(
            "page not found: {} {}",
            m,
            if s.is_empty() {
                "/".to_string()
            } else {
                format!("/{}", s.join("/"))
            }
        ))),
    }
}

/// The certificates of a TLS listener: the CA that client certificates must chain to, and
/// the daemon's own certificate and key (PEM files, as dockerd's `--tlscacert`,
/// `--tlscert`, `--tlskey`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificates for verifying clients.
    pub ca: PathBuf,
    /// The daemon's certificate chain.
    pub cert: PathBuf,
    /// The daemon's private key.
    pub key: PathBuf,
}

/// Where the daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A unix socket.
    Unix(PathBuf),
    /// TCP, always with TLS and verified client certificates.
    Tcp(String, TlsFiles),
}

/// Parses a `-H` value: `unix:///path` (or a bare path), or `tcp://host:port`, which is
/// served only with TLS and client certificate verification (`tls`): an unauthenticated
/// TCP socket would hand root on this host to anyone who can reach it.
pub fn parse_listen(spec: &str, tls: Option<&TlsFiles>) -> Result<Listen, ServeError> {
    if let Some(p) = spec.strip_prefix("unix://") {
        if p.is_empty() {
            return Err(ServeError::Listen("unix:// needs a socket path".into()));
        }
        return Ok(Listen::Unix(PathBuf::from(p)));
    }
    if let Some(addr) = spec.strip_prefix("tcp://") {
        let Some(tls) = tls else {
            return Err(ServeError::Listen(format!(
                "{spec}: berth serves the API over TCP only with TLS and verified client certificates: give --tlsverify with --tlscacert, --tlscert and --tlskey"
            )));
        };
        let addr = addr.trim_end_matches('/');
        if addr.is_empty() || !addr.contains(':') {
            return Err(ServeError::Listen(format!("{spec}: tcp://HOST:PORT expected")));
        }
        return Ok(Listen::Tcp(addr.to_string(), tls.clone()));
    }
    if spec.starts_with('/') {
        return Ok(Listen::Unix(PathBuf::from(spec)));
    }
    Err(ServeError::Listen(format!(
        "{spec}: unix:///path or tcp://host:port expected"
    )))
}

/// Why the daemon cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A `-H` value it cannot listen on.
    #[error("{0}")]
    Listen(String),
    /// A TLS file or setting.
    #[error("{what}: {message}")]
    Tls {
        /// The file (or `TLS`).
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// A system call.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// The engine's store.
    #[error(transparent)]
    Engine(#[from] berth_engine::EngineError),
}

fn tls_err<E: std::fmt::Display>(what: &Path) -> impl FnOnce(E) -> ServeError {
    let what = what.display().to_string();
    move |e| ServeError::Tls {
        what,
        message: e.to_string(),
    }
}

fn serve_io(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let op = op.into();
    move |source| ServeError::Io { op, source }
}

/// The TLS settings of a TCP listener: TLS 1.2+, and a client certificate signed by the CA
/// is required.
fn tls_acceptor(f: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read_certs = |p: &Path| -> Result<Vec<CertificateDer<'static>>, ServeError> {
        let certs: Vec<_> = CertificateDer::pem_file_iter(p)
            .map_err(tls_err(p))?
            .collect::<Result<_, _>>()
            .map_err(tls_err(p))?;
        if certs.is_empty() {
            return Err(tls_err(p)("no PEM certificate in it"));
        }
        Ok(certs)
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(&f.ca)? {
        roots.add(c).map_err(tls_err(&f.ca))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(tls_err(&f.ca))?;
    let key = PrivateKeyDer::from_pem_file(&f.key).map_err(tls_err(&f.key))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err(Path::new("TLS")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(read_certs(&f.cert)?, key)
        .map_err(tls_err(&f.cert))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves HTTP/1.1 (with upgrades, for hijacked streams) on one accepted connection.
async fn serve_conn<T>(d: Arc<Daemon>, stream: T)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = hyper_util::rt::TokioIo::new(stream);
    let svc = hyper::service::service_fn(move |req| handle(d.clone(), req));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, svc)
        .with_upgrades()
        .await;
}

/// Gives the socket mode 0660 and the group `berth` when that group exists.
fn secure_socket(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let gid = groups.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&"berth"))
            .then(|| f.get(2).and_then(|g| g.parse::<u32>().ok()))
            .flatten()
    });
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid))?;
    }
    Ok(())
}

/// Serves the API on `socket` until the process is killed (or SIGTERM/SIGINT, which stop
/// accepting and return; containers keep running either way).
/// Runs the daemon on `listen` until SIGTERM or SIGINT.
pub fn serve(root: &Path, listen: &[Listen]) -> Result<(), ServeError> {
    let exe = std::env::current_exe().map_err(serve_io("finding the berth binary"))?;
    // Make (or migrate) the engine's tables once, before requests race to.
    berth_engine::store::Engine::open(root)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .map_err(serve_io("starting the runtime"))?;
    let daemon = Arc::new(Daemon {
        root: root.to_path_buf(),
        exe,
        exits: Mutex::new(HashMap::new()),
        watching: Mutex::new(std::collections::HashSet::new()),
        exited: tokio::sync::Notify::new(),
        pending: Mutex::new(HashMap::new()),
        execs: Mutex::new(HashMap::new()),
        engines: Mutex::new(Vec::new()),
        stores: Mutex::new(Vec::new()),
    });
    rt.block_on(async move {
        let mut sockets = Vec::new();
        let mut tasks = tokio::task::JoinSet::new();
        for l in listen {
            match l {
                Listen::Unix(socket) => {
                    if let Some(dir) = socket.parent() {
                        std::fs::create_dir_all(dir).map_err(serve_io(format!("creating {}", dir.display())))?;
                    }
                    // A socket left by a daemon that was killed: nobody answers on it.
                    if socket.exists() && std::os::unix::net::UnixStream::connect(socket).is_err() {
                        let _ = std::fs::remove_file(socket);
                    }
                    let listener = tokio::net::UnixListener::bind(socket)
                        .map_err(serve_io(format!("listening on {}", socket.display())))?;
                    secure_socket(socket).map_err(serve_io(format!("securing {}", socket.display())))?;
                    sockets.push(socket.clone());
                    let d = daemon.clone();
                    tasks.spawn(async move {
                        loop {
                            if let Ok((stream, _)) = listener.accept().await {
                                tokio::spawn(serve_conn(d.clone(), stream));
                            }
                        }
                    });
                }
                Listen::Tcp(addr, files) => {
                    let acceptor = tls_acceptor(files)?;
                    let listener = tokio::net::TcpListener::bind(addr.as_str())
                        .await
                        .map_err(serve_io(format!("listening on tcp://{addr}")))?;
                    let d = daemon.clone();
                    tasks.spawn(async move {
                        loop {
                            let Ok((stream, _)) = listener.accept().await else {
                                continue;
                            };
                            let (d, acceptor) = (d.clone(), acceptor.clone());
                            tokio::spawn(async move {
                                // A client without a certificate the CA signed ends here.
                                if let Ok(tls) = acceptor.accept(stream).await {
                                    serve_conn(d, tls).await;
                                }
                            });
                        }
                    });
                }
            }
        }
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(serve_io("signals"))?;
        let mut int =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).map_err(serve_io("signals"))?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tasks.abort_all();
        for s in sockets {
            let _ = std::fs::remove_file(s);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_dockerds_statuses_by_kind() {
        use berth_engine::EngineError as E;
        let status = |e: E| ApiError::from(e).status;
        assert_eq!(status(E::NoSuchContainer("x".into())), StatusCode::NOT_FOUND);
        assert_eq!(status(E::Conflict("x".into())), StatusCode::CONFLICT);
        assert_eq!(status(E::Invalid("x".into())), StatusCode::BAD_REQUEST);
        let start = |code| E::Start {
            code,
            message: "m".into(),
        };
        assert_eq!(status(start(127)), StatusCode::BAD_REQUEST);
        assert_eq!(status(start(126)), StatusCode::BAD_REQUEST);
        assert_eq!(status(start(125)), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            status(E::Image(berth_engine::images::ImageError::NotFound("x".into()))),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn versions_and_paths() {
        assert_eq!(route_path("/v1.45/containers/json").unwrap(), "/containers/json");
        assert_eq!(route_path("/v1.24/_ping").unwrap(), "/_ping");
        assert_eq!(route_path("/_ping").unwrap(), "/_ping");
        route_path("/v1.12/info").unwrap_err();
        route_path("/v9.99/info").unwrap_err();
        assert_eq!(route_path("/volumes").unwrap(), "/volumes");
        assert_eq!(percent_decode("a%2Fb+c%zz"), "a/b+c%zz");
        assert_eq!(
            parse_listen("unix:///run/x.sock", None).unwrap(),
            Listen::Unix(PathBuf::from("/run/x.sock"))
        );
        let e = parse_listen("tcp://0.0.0.0:2375", None).unwrap_err();
        assert!(e.to_string().contains("--tlsverify"), "{e}");
        let tls = TlsFiles {
            ca: "ca.pem".into(),
            cert: "cert.pem".into(),
            key: "key.pem".into(),
        };
        assert_eq!(
            parse_listen("tcp://127.0.0.1:2376", Some(&tls)).unwrap(),
            Listen::Tcp("127.0.0.1:2376".into(), tls.clone())
        );
        parse_listen("tcp://nowhere", Some(&tls)).unwrap_err();
        parse_listen("http://x", None).unwrap_err();
    }
}
