//! berth's Container Runtime Interface: the gRPC `runtime.v1.RuntimeService` and
//! `runtime.v1.ImageService` a kubelet (or crictl, or critest) drives, over a unix socket.
//!
//! Sandboxes are berth pods and containers are berth containers in them, made and run by the
//! same engine functions as `berth pod` and `berth run`; images are the one image store
//! `berth images` lists. What only the CRI knows of an object (the sandbox's config, a
//! container's metadata and log path) is kept in a `cri.json` beside the container's record
//! (the infra's for a sandbox), so it goes when the object goes, whoever removes it.
//!
//! Every RPC runs the engine on tokio's blocking pool. An RPC berth does not serve answers
//! `Unimplemented` with a message.

pub mod client;
mod container;
mod events;
mod image;
mod meta;
mod metrics;
mod proc;
mod sandbox;
mod service;
mod stats;
pub mod stream;
mod streaming;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_engine::images::ImageStore;
use berth_engine::store::Engine;
use tonic::Status;

pub use service::{ImageServer, RuntimeServer};

/// The runtime's name in `Version`.
pub const RUNTIME_NAME: &str = "berth";
/// The CRI version served.
pub const RUNTIME_API_VERSION: &str = "v1";
/// The default socket.
pub const DEFAULT_SOCKET: &str = "/run/berth/cri.sock";

/// What the server needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The data root (the engine's).
    pub root: PathBuf,
    /// The berth binary: monitors and execs are started from it.
    pub exe: PathBuf,
    /// containerd's `certs.d` directory of per-registry mirrors and TLS settings for pulls.
    pub registry_config: PathBuf,
    /// Where sandboxes' networks come from: the first CNI configuration there (none: berth's
    /// default bridge).
    pub cni: berth_engine::cni::CniOptions,
    /// The streaming server's address (exec, attach and port-forward URLs point there).
    pub stream_address: std::net::IpAddr,
    /// Its port (0: one the kernel picks).
    pub stream_port: u16,
}

/// A server failed to start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    /// The socket could not be made.
    #[error("listening on {path}: {source}")]
    Listen {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("serving CRI: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// The server's shared state: where things are, and pooled engine handles.
#[derive(Debug)]
pub struct Cri {
    opts: Options,
    stream: Arc<stream::StreamServer>,
    engines: Mutex<Vec<Engine>>,
    stores: Mutex<Vec<ImageStore>>,
}

impl Cri {
    /// A server's state for `opts`, its streaming server's URLs on `stream`.
    fn new(opts: Options, stream: Arc<stream::StreamServer>) -> Arc<Cri> {
        Arc::new(Cri {
            opts,
            stream,
            engines: Mutex::new(Vec::new()),
            stores: Mutex::new(Vec::new()),
        })
    }

    /// The data root.
    pub fn root(&self) -> &Path {
        &self.opts.root
    }

    /// Runs `f` with an engine and an image store on the blocking pool.
    pub(crate) async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Cri, &Engine, &mut ImageStore) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let e = match me.engines.lock().ok().and_then(|mut p| p.pop()) {
                Some(e) => e,
                None => Engine::open(&me.opts.root).map_err(engine_status)?,
            };
            let mut s = match me.stores.lock().ok().and_then(|mut p| p.pop()) {
                Some(s) => s,
                None => ImageStore::open(&me.opts.root).map_err(|e| engine_status(e.into()))?,
            };
            let r = f(&me, &e, &mut s);
            if let Ok(mut p) = me.engines.lock() {
                if p.len() < 8 {
                    p.push(e);
                }
            }
            if let Ok(mut p) = me.stores.lock() {
                if p.len() < 8 {
                    p.push(s);
                }
            }
            r
        })
        .await
        .map_err(|e| Status::internal(format!("an engine task failed: {e}")))?
    }
}

/// An engine error as a gRPC status, by its kind.
pub(crate) fn engine_status(e: berth_engine::EngineError) -> Status {
    use berth_oci::ErrorKind as K;
    let msg = e.to_string();
    match e.kind() {
        K::NotFound => Status::not_found(msg),
        K::Conflict => Status::already_exists(msg),
        K::InvalidArgument => Status::invalid_argument(msg),
        K::FailedPrecondition => Status::failed_precondition(msg),
        K::PermissionDenied => Status::permission_denied(msg),
        K::Unavailable => Status::unavailable(msg),
        K::Internal => Status::internal(msg),
    }
}

/// Serves the CRI on the unix socket `path` until `shutdown` resolves. The socket is made
/// 0660 and removed at the end.
pub async fn serve(
    opts: Options,
    path: &Path,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), CriError> {
    let listen_err = |source| CriError::Listen {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(listen_err)?;
    }
    // A socket left by a server that was killed (nobody answers on it) is replaced; one
    // that answers is another server's.
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(listen_err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another server answers on it",
            )));
        }
        std::fs::remove_file(path).map_err(listen_err)?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(listen_err)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(listen_err)?;
    }
    let (streams, stream_listener) = stream::StreamServer::bind(
        opts.stream_address,
        opts.stream_port,
        opts.exe.clone(),
        opts.root.clone(),
    )
    .await
    .map_err(|source| CriError::Listen {
        path: PathBuf::from(format!("{}:{}", opts.stream_address, opts.stream_port)),
        source,
    })?;
    let streaming = tokio::spawn(streams.clone().serve(stream_listener));
    let cri = Cri::new(opts, streams);
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    // On `shutdown` the server stops accepting and lets running calls finish, for at most
    // GRACE: a client that keeps its connection open (a kubelet does) does not hold it up.
    let stopping = std::sync::Arc::new(tokio::sync::Notify::new());
    let notify = stopping.clone();
    let server = tonic::transport::Server::builder()
        .add_service(service::runtime_server(cri.clone()))
        .add_service(service::image_server(cri))
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            notify.notify_one();
        });
    let r = tokio::select! {
        r = server => r,
        () = async {
            stopping.notified().await;
            tokio::time::sleep(GRACE).await;
        } => Ok(()),
    };
    streaming.abort();
    let _ = std::fs::remove_file(path);
    Ok(r?)
}

/// How long a stopping server waits for the calls it is serving.
const GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// A time in nanoseconds since the epoch from the engine's RFC 3339 (0 for Docker's zero
/// time or anything unreadable).
pub(crate) fn nanos(rfc3339: &str) -> i64 {
    berth_oci::time::parse_rfc3339_nanos(rfc3339)
        .and_then(|n| i64::try_from(n).ok())
        .filter(|n| *n > 0)
        .unwrap_or(0)
}

/// Now, in nanoseconds since the epoch.
pub(crate) fn now_nanos() -> i64 {
    i64::try_from(berth_oci::time::now_nanos()).unwrap_or(0)
}

/// `berth cri`: serves on `listen` (a path, or `unix://PATH`) until SIGTERM or SIGINT.
pub fn run(opts: Options, listen: &str) -> Result<(), CriError> {
    serve_blocking(opts, listen, None)
}

/// A server on a thread of its own, stopped by [`Background::stop`] (`berth daemon
/// --cri-listen`: the daemon's API server owns the signals).
#[derive(Debug)]
pub struct Background {
    stop: Arc<tokio::sync::Notify>,
    thread: std::thread::JoinHandle<Result<(), CriError>>,
}

impl Background {
    /// Starts serving on `listen` in a new thread; returns once the socket answers, or with
    /// the server's error if it could not start.
    pub fn start(opts: Options, listen: &str) -> Result<Background, CriError> {
        let stop = Arc::new(tokio::sync::Notify::new());
        let s = stop.clone();
        let path = PathBuf::from(listen.strip_prefix("unix://").unwrap_or(listen));
        let listen = listen.to_string();
        let thread = std::thread::spawn(move || serve_blocking(opts, &listen, Some(s)));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&path).is_err() {
            if thread.is_finished() || std::time::Instant::now() > deadline {
                return Background { stop, thread }.stop().and_then(|()| {
                    Err(CriError::Listen {
                        path,
                        source: std::io::Error::from(std::io::ErrorKind::TimedOut),
                    })
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Ok(Background { stop, thread })
    }

    /// Stops the server and waits for it; its error, if it failed.
    pub fn stop(self) -> Result<(), CriError> {
        // A permit is kept if the server is not waiting yet: the stop is never lost.
        self.stop.notify_one();
        self.thread.join().unwrap_or_else(|_| {
            Err(CriError::Listen {
                path: PathBuf::new(),
                source: std::io::Error::other("the CRI server's thread panicked"),
            })
        })
    }
}

/// Serves until `stop` is notified, or (none given) until SIGTERM or SIGINT.
fn serve_blocking(opts: Options, listen: &str, stop: Option<Arc<tokio::sync::Notify>>) -> Result<(), CriError> {
    let path = PathBuf::from(listen.strip_prefix("unix://").unwrap_or(listen));
    let io = |source| CriError::Listen {
        path: path.clone(),
        source,
    };
    // Make (or migrate) the engine's tables once, before requests race to.
    Engine::open(&opts.root).map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .map_err(io)?;
    rt.block_on(async {
        if let Some(n) = stop {
            return serve(opts, &path, async move { n.notified().await }).await;
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(io)?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).map_err(io)?;
        let stop = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        serve(opts, &path, stop).await
    })
}
