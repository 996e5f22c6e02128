//! Loading and checking a bundle's `config.json` (OCI runtime spec, config.md / config-linux.md).
//!
//! Parsing is `oci-spec`'s; this module adds the checks the runtime needs before it touches
//! anything, so a bad config fails with an error naming the field, before any state exists.

use std::path::{Path, PathBuf};

use berth_oci::oci_spec::runtime::{LinuxNamespaceType, Spec};
use berth_oci::ErrorKind;

/// Why a bundle's config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// config.json could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// config.json is not a valid OCI runtime config.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What serde reported, with line and column.
        message: String,
    },
    /// A field holds a value the runtime cannot accept.
    #[error("invalid config: {field}: {reason}")]
    Invalid {
        /// The offending field, as a JSON path.
        field: String,
        /// Why it is refused.
        reason: String,
    },
}

impl SpecError {
    /// The error's category.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SpecError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            SpecError::Read { .. } => ErrorKind::Internal,
            _ => ErrorKind::InvalidArgument,
        }
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Reads and parses `bundle/config.json`.
pub fn load(bundle: &Path) -> Result<Spec, SpecError> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).map_err(|source| SpecError::Read {
        path: path.clone(),
        source,
    })?;
    parse(&data).map_err(|e| SpecError::Parse {
        path,
        message: e.to_string(),
    })
}

/// Parses config JSON, mapping serde's error to a message with its position.
pub fn parse(data: &[u8]) -> Result<Spec, serde_json::Error> {
    serde_json::from_slice::<Spec>(data)
}

/// Checks what the runtime relies on: a root, a process with args, absolute mount
/// destinations, namespaces listed once, id mappings only with a user namespace.
pub fn validate(spec: &Spec, need_process: bool) -> Result<(), SpecError> {
    let root = spec.root().as_ref().ok_or_else(|| invalid("root", "missing"))?;
    if root.path().as_os_str().is_empty() {
        return Err(invalid("root.path", "empty"));
    }
    if need_process {
        let process = spec.process().as_ref().ok_or_else(|| invalid("process", "missing"))?;
        match process.args() {
            Some(args) if !args.is_empty() => {}
            _ => return Err(invalid("process.args", "empty: nothing to run")),
        }
        if !process.cwd().is_absolute() {
            return Err(invalid(
                "process.cwd",
                format!("{} is not absolute", process.cwd().display()),
            ));
        }
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(invalid(
                format!("mounts[{i}].destination"),
                format!("{} is not absolute", m.destination().display()),
            ));
        }
    }
    if let Some(linux) = spec.linux() {
        let mut seen = Vec::new();
        let mut user = false;
        for ns in linux.namespaces().iter().flatten() {
            if seen.contains(&ns.typ()) {
                return Err(invalid(
                    "linux.namespaces",
                    format!("namespace {} listed twice", ns.typ()),
                ));
            }
            seen.push(ns.typ());
            if ns.typ() == LinuxNamespaceType::User {
                user = true;
            }
            if let Some(p) = ns.path() {
                if !p.is_absolute() {
                    return Err(invalid(
                        "linux.namespaces",
                        format!("path {} of {} namespace is not absolute", p.display(), ns.typ()),
                    ));
                }
            }
        }
        let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        if maps && !user {
            return Err(invalid("linux.uidMappings", "id mappings need a user namespace"));
        }
        for key in linux.sysctl().iter().flat_map(|m| m.keys()) {
            if key.is_empty() || key.split(['.', '/']).any(|c| c.is_empty() || c == "..") {
                return Err(invalid("linux.sysctl", format!("bad key {key:?}")));
            }
        }
        if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) && !seen.contains(&LinuxNamespaceType::Time) {
            return Err(invalid("linux.timeOffsets", "offsets need a time namespace"));
        }
    }
    Ok(())
}

/// The rootfs path: `root.path`, relative to the bundle when not absolute.
pub fn rootfs(spec: &Spec, bundle: &Path) -> Result<PathBuf, SpecError> {
    let root = spec.root().as_ref().ok_or_else(|| invalid("root", "missing"))?;
    let p = bundle.join(root.path());
    std::fs::canonicalize(&p).map_err(|source| SpecError::Read { path: p, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
        "process":{"user":{"uid":0,"gid":0},"args":["sh"],"cwd":"/"},
        "linux":{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"time"}]}}"#;

    #[test]
    fn accepts_minimal_config_with_time_namespace() {
        let spec = parse(MIN.as_bytes()).unwrap();
        validate(&spec, true).unwrap();
    }

    #[test]
    fn refuses_unknown_namespace_with_position() {
        let bad = MIN.replace(r#"{"type":"time"}"#, r#"{"type":"bogus"}"#);
        let err = parse(bad.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("line"), "{err}");
    }

    #[test]
    fn refuses_relative_mount_and_duplicate_namespace() {
        let bad = MIN.replace(
            r#""linux""#,
            r#""mounts":[{"destination":"tmp","type":"tmpfs","source":"tmpfs"}],"linux""#,
        );
        let spec = parse(bad.as_bytes()).unwrap();
        let err = validate(&spec, true).unwrap_err().to_string();
        assert!(err.contains("mounts[0].destination"), "{err}");
        let dup = MIN.replace(r#"{"type":"time"}"#, r#"{"type":"pid"}"#);
        let spec = parse(dup.as_bytes()).unwrap();
        assert!(validate(&spec, true).unwrap_err().to_string().contains("twice"));
    }

    #[test]
    fn refuses_bad_sysctl_key() {
        let bad = MIN.replace(r#""namespaces""#, r#""sysctl":{"net/../../x":"1"},"namespaces""#);
        let spec = parse(bad.as_bytes()).unwrap();
        assert!(validate(&spec, true).is_err());
    }
}
