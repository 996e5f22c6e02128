//! The image layer's error type.

use std::path::PathBuf;

use berth_oci::ErrorKind;

/// Everything that can go wrong with images, blobs, snapshots and registries.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The metadata database failed.
    #[error("metadata database: {0}")]
    Db(#[from] rusqlite::Error),
    /// No such image, tag, blob or manifest.
    #[error("{0}")]
    NotFound(String),
    /// The request or a piece of content is malformed.
    #[error("{0}")]
    Invalid(String),
    /// Content does not match its digest or size.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Which blob or layer.
        what: String,
        /// The digest it should have.
        expected: String,
        /// The digest it has.
        actual: String,
    },
    /// A layer tar that cannot be unpacked safely.
    #[error("layer {layer}: entry {entry:?}: {reason}")]
    BadLayer {
        /// The layer's digest.
        layer: String,
        /// The tar entry.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// The operation conflicts with the current state (an image in use, a tag elsewhere).
    #[error("{0}")]
    Conflict(String),
    /// A registry answered with an error or could not be reached.
    #[error("{registry}: {message}")]
    Registry {
        /// The registry host.
        registry: String,
        /// What happened.
        message: String,
        /// Whether the registry said no to our credentials.
        unauthorized: bool,
    },
}

impl ImageError {
    /// The kind callers branch on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ImageError::NotFound(_) => ErrorKind::NotFound,
            ImageError::Invalid(_) | ImageError::BadLayer { .. } => ErrorKind::InvalidArgument,
            ImageError::Conflict(_) => ErrorKind::Conflict,
            ImageError::Registry { unauthorized: true, .. } => ErrorKind::PermissionDenied,
            ImageError::Registry { .. } => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }
}

/// Maps an io::Error into [`ImageError::Io`].
pub(crate) fn io_err(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ImageError {
    let path = path.into();
    move |source| ImageError::Io { op, path, source }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, ImageError>;
