//! Error kinds: the small set of categories every public berth error maps to, so the API can
//! pick an HTTP status and the CLI an exit code in one place each.

use std::fmt;

/// What kind of failure an error is, independent of where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The named object does not exist.
    NotFound,
    /// The object already exists, or its state conflicts with the request.
    Conflict,
    /// The request itself is malformed.
    InvalidArgument,
    /// The system is not in a state where the operation can run.
    FailedPrecondition,
    /// The caller lacks the privilege for the operation.
    PermissionDenied,
    /// A needed resource or service is not available.
    Unavailable,
    /// Anything else: a bug or an unexpected system failure.
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::FailedPrecondition => "failed precondition",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        };
        f.write_str(s)
    }
}
