//! berth-engine: containers as Docker users know them, over `berth-image` (the root
//! filesystem) and `berth-runtime` (the process), with no daemon: each container has a
//! small monitor process ([`monitor`]) that creates and starts it, holds its output, writes
//! its log, reaps it and records how it ended.
//!
//! - [`store`]: container records in the metadata database (names unique, ids and prefixes
//!   resolved like Docker's) and each container's directory;
//! - [`spec`]: image config + options -> the OCI bundle's `config.json`;
//! - [`logs`]: Docker's json-file log format, rotated;
//! - [`monitor`]: the per-container monitor.
#![warn(missing_docs)]
// The inspect JSON is one large json! literal.
#![recursion_limit = "256"]

pub mod attach;
pub mod build;
pub mod cdi;
pub mod cluster;
pub mod cni;
pub mod commit;
pub mod cp;
pub mod create;
pub mod dns;
pub mod events;
pub mod exec;
pub mod forward;
pub mod health;
pub mod images;
pub mod inspect;
pub mod keeper;
mod kernel;
pub mod kprobe;
pub mod kstatus;
pub mod list;
pub mod logs;
pub mod model;
pub mod monitor;
pub mod networks;
pub mod ops;
pub mod options;
pub mod overlay;
pub mod pods;
pub mod rootless;
pub mod runtimes;
pub mod spec;
pub mod store;
pub mod userns;
pub mod users;
pub mod volumes;

use berth_oci::ErrorKind;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No such container.
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    /// No such network.
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    /// No such volume.
    #[error("get {0}: no such volume")]
    NoSuchVolume(String),
    /// A path (in a container, or on the host) that is not there.
    #[error("{0}")]
    NotFound(String),
    /// A name is taken, or the container is in the wrong state.
    #[error("{0}")]
    Conflict(String),
    /// Bad options.
    #[error("{0}")]
    Invalid(String),
    /// The container could not start; `code` is Docker's exit code for it (125-127).
    #[error("{message}")]
    Start {
        /// 125, 126 or 127.
        code: i32,
        /// The runtime's message.
        message: String,
    },
    /// Images.
    #[error(transparent)]
    Image(#[from] berth_image::ImageError),
    /// A build failed.
    #[error(transparent)]
    Build(#[from] berth_build::build::BuildError),
    /// The runtime.
    #[error(transparent)]
    Runtime(#[from] berth_runtime::container::ContainerError),
    /// The metadata database.
    #[error("metadata database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A file operation.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl EngineError {
    /// The exit code Docker gives a container that failed to start this way: 127 (its
    /// program is not there), 126 (it cannot be run), else 125.
    pub fn start_code(&self) -> i32 {
        match self {
            EngineError::Start { code, .. } => *code,
            EngineError::Runtime(e) => i32::from(e.exit_code()),
            _ => 125,
        }
    }

    /// The kind callers branch on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::NoSuchContainer(_)
            | EngineError::NoSuchVolume(_)
            | EngineError::NoSuchNetwork(_)
            | EngineError::NotFound(_) => ErrorKind::NotFound,
            EngineError::Conflict(_) => ErrorKind::Conflict,
            EngineError::Invalid(_) => ErrorKind::InvalidArgument,
            EngineError::Image(e) => e.kind(),
            EngineError::Build(e) => match e {
                berth_build::build::BuildError::Image(e) => e.kind(),
                berth_build::build::BuildError::Parse(_)
                | berth_build::build::BuildError::Step { .. }
                | berth_build::build::BuildError::Invalid(_) => ErrorKind::InvalidArgument,
                _ => ErrorKind::Internal,
            },
            // A program that is not there or cannot be run is the caller's to fix, as
            // dockerd says (a bad configuration); any other start failure is the system's.
            EngineError::Start { code: 126 | 127, .. } => ErrorKind::InvalidArgument,
            EngineError::Runtime(e) if e.exit_code() != 125 => ErrorKind::InvalidArgument,
            EngineError::Runtime(e) => e.kind(),
            _ => ErrorKind::Internal,
        }
    }
}

pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<std::path::PathBuf>,
) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.into();
    move |source| EngineError::Io { op, path, source }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, EngineError>;
