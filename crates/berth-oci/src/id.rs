//! Container ids. An id names a directory under the runtime's state root, so it must never
//! be able to name anything else: no `/`, no `..`, nothing that is not printable ASCII.

use std::fmt;

use crate::ErrorKind;

/// The longest id accepted; ids name directories, and 1024 is far above any real id (64 hex).
const MAX_ID_LEN: usize = 1024;

/// A validated container id: `[A-Za-z0-9][A-Za-z0-9_.+-]*`, at most 1024 bytes, never `.` or
/// `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(String);

/// Why a string is not a valid container id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    /// The id is empty.
    #[error("container id is empty")]
    Empty,
    /// The id is longer than [`MAX_ID_LEN`].
    #[error("container id is longer than {MAX_ID_LEN} bytes")]
    TooLong,
    /// The id holds a character outside the allowed set.
    #[error("invalid container id {id:?}: only letters, digits and '_', '.', '+', '-' are allowed, and it must start with a letter or digit")]
    BadCharacter {
        /// The rejected id.
        id: String,
    },
}

impl IdError {
    /// Every id error is the caller's fault.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

impl ContainerId {
    /// Validates `s` as a container id.
    pub fn new(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        if s.len() > MAX_ID_LEN {
            return Err(IdError::TooLong);
        }
        let bytes = s.as_bytes();
        let ok_first = bytes[0].is_ascii_alphanumeric();
        let ok_rest = bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-'));
        if !ok_first || !ok_rest {
            return Err(IdError::BadCharacter { id: s.to_string() });
        }
        Ok(ContainerId(s.to_string()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ContainerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_docker_and_podman_ids() {
        let docker = "4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b";
        assert_eq!(ContainerId::new(docker).unwrap().as_str(), docker);
        ContainerId::new("my-ctr_1.2+x").unwrap();
    }

    #[test]
    fn refuses_path_like_ids() {
        for bad in ["", ".", "..", "../x", "a/b", "/abs", "a\0b", " a", "-a", "a b", "é"] {
            assert!(ContainerId::new(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(ContainerId::new(&"a".repeat(2000)), Err(IdError::TooLong));
    }
}
