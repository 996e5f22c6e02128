//! The builder's errors: a build's (`BuildError`), a step's change to a rootfs
//! (`StepError`), a step's sources (`SourceError`), and the runner's (`RunnerError`).

use std::path::{Path, PathBuf};

use crate::{copy, parse};

/// Why a [`StepRunner`](super::StepRunner) failed: its own error (the engine's, the image store's), kept
/// whole with its causes.
pub type RunnerError = Box<dyn std::error::Error + Send + Sync>;

/// Why a step's change to a rootfs failed: a copy, or anything else the step reports.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// COPY, ADD, WORKDIR and the like.
    #[error(transparent)]
    Copy(#[from] copy::CopyError),
    /// What the step said.
    #[error("{0}")]
    Failed(String),
    /// The runner could not run it.
    #[error("{0}")]
    Runner(RunnerError),
}

impl From<RunnerError> for StepError {
    fn from(e: RunnerError) -> StepError {
        StepError::Runner(e)
    }
}

impl From<String> for StepError {
    fn from(s: String) -> StepError {
        StepError::Failed(s)
    }
}

impl From<&str> for StepError {
    fn from(s: &str) -> StepError {
        StepError::Failed(s.to_string())
    }
}

/// A build error: a message, with the Dockerfile line when one step failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile does not parse.
    #[error("{0}")]
    Parse(#[from] parse::ParseError),
    /// A step failed.
    #[error("{file}:{line}: {message}")]
    Step {
        /// The Dockerfile's name.
        file: String,
        /// Its line.
        line: usize,
        /// What went wrong.
        message: String,
    },
    /// The image store.
    #[error(transparent)]
    Image(#[from] berth_image::ImageError),
    /// The step runner (the engine) failed outside any step.
    #[error("{0}")]
    Runner(RunnerError),
    /// A file or directory of the build's own scratch space.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// To which path.
        path: PathBuf,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// The request cannot be built: no stage, an unknown target, stages in a circle.
    #[error("{0}")]
    Invalid(String),
    /// A build cache entry that does not read back.
    #[error("build cache entry: {0}")]
    Cache(String),
}

/// An I/O failure on `path` as a build error.
pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.to_path_buf();
    move |source| BuildError::Io { op, path, source }
}

/// What goes wrong getting a step's sources: a base image, a URL, a context file.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The base image's name does not parse.
    #[error("invalid base image {image:?}: {message}")]
    Reference {
        /// The name.
        image: String,
        /// Why.
        message: String,
    },
    /// The image store.
    #[error(transparent)]
    Image(#[from] berth_image::ImageError),
    /// Pulling the base image failed.
    #[error("{0}")]
    Pull(RunnerError),
    /// The base image's config does not read.
    #[error("image config of {image}: {message}")]
    Config {
        /// The image.
        image: String,
        /// Why.
        message: String,
    },
    /// A download failed.
    #[error("ADD {url}: {message}")]
    Fetch {
        /// The URL.
        url: String,
        /// The client's or the server's answer.
        message: String,
    },
    /// A download's digest is not the one `--checksum` asked for.
    #[error("ADD {url}: digest mismatch {got}: {want}")]
    Checksum {
        /// The URL.
        url: String,
        /// The digest of what came.
        got: String,
        /// The digest asked for.
        want: String,
    },
    /// Reading a file.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: String,
        /// The answer.
        source: std::io::Error,
    },
}

impl From<SourceError> for StepError {
    fn from(e: SourceError) -> StepError {
        StepError::Failed(e.to_string())
    }
}
