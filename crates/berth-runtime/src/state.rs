//! Container state kept under the runtime root: `<root>/<id>/state.json` (written whole to a
//! temp file and renamed, so readers never see half of it) and `<root>/<id>/exec.fifo`, which
//! the container's init blocks on between `create` and `start`.
//!
//! The status is never stored, it is observed (runtime-spec runtime.md "State"): `creating`
//! until the init's pid is recorded, `created` while the fifo exists, `paused` while the
//! freezer holds the cgroup, `stopped` once the init is gone (matched by pid *and* start time,
//! so a recycled pid is not mistaken for the container).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use berth_oci::oci_spec::runtime::Spec;
use berth_oci::{ContainerId, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::cgroups::CgroupConfig;

/// The runtime's default state root, as runc's `/run/runc`.
pub const DEFAULT_ROOT: &str = "/run/berth-runtime";

/// The file name of the start fifo.
pub const FIFO: &str = "exec.fifo";
const STATE: &str = "state.json";

/// Failures reading or writing container state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// No container with that id exists under the root.
    #[error("container {id} does not exist")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// A container with that id already exists.
    #[error("container {id} already exists")]
    Exists {
        /// The id asked for.
        id: String,
    },
    /// The id is not valid.
    #[error(transparent)]
    Id(#[from] berth_oci::IdError),
    /// A state file could not be read or written.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// state.json is corrupt.
    #[error("parsing {path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What serde reported.
        message: String,
    },
}

impl StateError {
    /// The error's category.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StateError::NotFound { .. } => ErrorKind::NotFound,
            StateError::Exists { .. } => ErrorKind::Conflict,
            StateError::Id(_) => ErrorKind::InvalidArgument,
            StateError::Io { .. } | StateError::Corrupt { .. } => ErrorKind::Internal,
        }
    }
}

/// Lifecycle status, runtime-spec names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being created: the init is not yet waiting for start.
    Creating,
    /// Created: the init waits on the start fifo.
    Created,
    /// The user process runs.
    Running,
    /// The cgroup is frozen.
    Paused,
    /// The init has exited.
    Stopped,
}

impl Status {
    /// The lowercase name used in `state` output.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What the runtime records about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// Container id.
    pub id: String,
    /// Host pid of the init, 0 while creating.
    pub pid: i32,
    /// Start time of the init (field 22 of /proc/pid/stat), to detect pid reuse.
    pub pid_start: u64,
    /// Absolute bundle path.
    pub bundle: PathBuf,
    /// Absolute rootfs path.
    pub rootfs: PathBuf,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Owner user name (or uid).
    pub owner: String,
    /// Where the container's cgroups are.
    pub cgroup: CgroupConfig,
    /// The config the container was created with.
    pub config: Spec,
}

/// The per-container state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    /// `<root>/<id>`.
    pub dir: PathBuf,
    /// The container id.
    pub id: ContainerId,
}

impl StateDir {
    /// The state directory of `id` under `root`; does not check it exists.
    pub fn new(root: &Path, id: &str) -> Result<StateDir, StateError> {
        let id = ContainerId::new(id)?;
        Ok(StateDir {
            dir: root.join(id.as_str()),
            id,
        })
    }

    /// Creates the directory; fails if the container exists.
    pub fn create(&self) -> Result<(), StateError> {
        if let Some(parent) = self.dir.parent() {
            std::fs::create_dir_all(parent).map_err(|source| StateError::Io {
                op: "creating state root",
                path: parent.to_path_buf(),
                source,
            })?;
            restrict(parent);
        }
        match std::fs::create_dir(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(StateError::Exists {
                id: self.id.to_string(),
            }),
            Err(source) => Err(StateError::Io {
                op: "creating state directory",
                path: self.dir.clone(),
                source,
            }),
        }
    }

    /// The start fifo's path.
    pub fn fifo(&self) -> PathBuf {
        self.dir.join(FIFO)
    }

    /// Reads state.json.
    pub fn load(&self) -> Result<State, StateError> {
        let path = self.dir.join(STATE);
        let data = std::fs::read(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                StateError::NotFound {
                    id: self.id.to_string(),
                }
            } else {
                StateError::Io {
                    op: "reading",
                    path: path.clone(),
                    source,
                }
            }
        })?;
        serde_json::from_slice(&data).map_err(|e| StateError::Corrupt {
            path,
            message: e.to_string(),
        })
    }

    /// Writes state.json atomically (temp file, then rename).
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let path = self.dir.join(STATE);
        let tmp = self.dir.join(".state.json.tmp");
        let io = |op, source| StateError::Io {
            op,
            path: tmp.clone(),
            source,
        };
        let data = serde_json::to_vec(state).map_err(|e| io("encoding", e.into()))?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| io("creating", e))?;
        f.write_all(&data).map_err(|e| io("writing", e))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(|e| io("renaming", e))
    }

    /// Removes the state directory and everything in it.
    pub fn remove(&self) -> Result<(), StateError> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Io {
                op: "removing",
                path: self.dir.clone(),
                source,
            }),
        }
    }
}

/// The state root holds container control files; only its owner may enter it.
fn restrict(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
}

/// Reads the start time (clock ticks since boot) and run state letter of a pid.
pub fn proc_stat(pid: i32) -> Option<(u64, char)> {
    let data = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may hold spaces and parens: fields start after the last ')'.
    let rest = &data[data.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // rest starts at field 3 (state); starttime is field 22.
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state))
}

/// Whether the recorded init still lives (not exited, not a zombie, not a recycled pid).
pub fn init_alive(pid: i32, pid_start: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    match proc_stat(pid) {
        Some((start, state)) => start == pid_start && state != 'Z' && state != 'X',
        None => false,
    }
}

pub use berth_oci::time::rfc3339;

/// The OCI state document (runtime-spec runtime.md) with runc's extra fields, which
/// containerd and podman read.
pub fn oci_state_json(state: &State, status: Status) -> serde_json::Value {
    let annotations: HashMap<String, String> = state.config.annotations().clone().unwrap_or_default();
    serde_json::json!({
        "ociVersion": state.config.version(),
        "id": state.id,
        "pid": if status == Status::Stopped { 0 } else { state.pid },
        "status": status.as_str(),
        "bundle": state.bundle,
        "rootfs": state.rootfs,
        "created": state.created,
        "owner": state.owner,
        "annotations": annotations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(1_795_000_000, 5);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40.000000005Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000000000Z");
    }

    #[test]
    fn own_process_is_alive_and_parsed() {
        let pid = i32::try_from(std::process::id()).unwrap();
        let (start, state) = proc_stat(pid).unwrap();
        assert!(matches!(state, 'R' | 'S'));
        assert!(init_alive(pid, start));
        assert!(!init_alive(pid, start + 1));
    }

    #[test]
    fn state_dir_refuses_traversal() {
        StateDir::new(Path::new("/run/x"), "../etc").unwrap_err();
        StateDir::new(Path::new("/run/x"), "a/b").unwrap_err();
    }
}
