//! Exit codes: one mapping from error kinds, as Docker's CLI uses them.

use std::process::ExitCode;

use berth_oci::ErrorKind;

/// The exit code for a failure of the given kind. runc exits 1 for every runtime failure, and
/// containerd and podman expect exactly that from a runtime; 125 is Docker's code for the
/// engine's own errors.
pub fn runtime_failure(_kind: ErrorKind) -> ExitCode {
    ExitCode::from(1)
}

/// The exit code of a container process, clamped into a byte.
pub fn from_status(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(255))
}
