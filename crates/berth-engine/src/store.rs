//! Container records: one row per container in `berth.db` (names unique), and a directory
//! `containers/<id>/` holding the bundle, the rootfs mount point, the overlay upper and work
//! directories, the log and `state.json` (written by the monitor, atomically).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

pub use crate::model::{Record, State, Status, ZERO_TIME};
use crate::{io_err, EngineError, Result};

/// The engine's view of a data root.
#[derive(Debug)]
pub struct Engine {
    /// The data root (`/var/lib/berth`).
    pub root: PathBuf,
    /// Runtime state (`/run/berth`, or `<root>/run` for a custom root).
    pub run: PathBuf,
    conn: Connection,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS containers(
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image TEXT NOT NULL,
    created TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS networks(
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS leases(
    network TEXT NOT NULL,
    ip TEXT NOT NULL,
    container TEXT NOT NULL,
    PRIMARY KEY(network, ip)
);
CREATE TABLE IF NOT EXISTS connections(
    container TEXT NOT NULL,
    network TEXT NOT NULL,
    aliases TEXT NOT NULL,
    attachment TEXT,
    PRIMARY KEY(container, network)
);
CREATE TABLE IF NOT EXISTS events(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_nano INTEGER NOT NULL,
    kind TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    attributes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pods(
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settings(
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#;

fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the pid exists.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

impl Engine {
    /// Opens the engine over a data root.
    pub fn open(root: &Path) -> Result<Engine> {
        use berth_image::perms;
        perms::make_dir(root).map_err(io_err("creating", root))?;
        for d in ["containers", "volumes", "tmp"] {
            perms::make_dir(&root.join(d)).map_err(io_err("creating", root.join(d)))?;
        }
        let run = run_dir(root);
        std::fs::create_dir_all(&run).map_err(io_err("creating", &run))?;
        // The run directory may hold the API socket (`/run/berth/berth.sock`), which the
        // `berth` group reaches: others may traverse it, not list it; what it holds is 0700.
        // A rootless user's runtime directory is the user's alone.
        let mode = if crate::rootless::is_rootless() { 0o700 } else { 0o711 };
        perms::set(&run, mode).map_err(io_err("securing", &run))?;
        for d in ["runtime", "runtimes", "netns"] {
            perms::set(&run.join(d), perms::DIR).map_err(io_err("securing", run.join(d)))?;
        }
        let conn = Connection::open(root.join("berth.db"))?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.execute_batch(SCHEMA)?;
        perms::secure(root).map_err(io_err("securing", root))?;
        Ok(Engine {
            root: root.to_path_buf(),
            run,
            conn,
        })
    }

    /// The runtime the engine drives.
    pub fn runtime(&self) -> berth_runtime::container::Runtime {
        berth_runtime::container::Runtime {
            root: self.run.join("runtime"),
            systemd_cgroup: false,
        }
    }

    /// The database connection (for the engine's other tables: networks, leases).
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The runtime a container runs under.
    pub fn rt(&self, r: &Record) -> Result<crate::runtimes::Rt> {
        crate::runtimes::Rt::new(&self.run, &r.runtime)
    }

    /// A container's directory.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// Records a new container (the name must be free).
    pub fn insert(&self, r: &Record) -> Result<()> {
        let json = serde_json::to_string(r).map_err(|e| EngineError::Invalid(e.to_string()))?;
        match self.conn.execute(
            "INSERT INTO containers(id, name, image, created, record) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![r.id, r.name, r.image_id, r.created, json],
        ) {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                let other = self.resolve(&r.name).map(|o| o.id).unwrap_or_default();
                Err(EngineError::Conflict(format!(
                    "Conflict. The container name \"/{}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name.",
                    r.name
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a container's row.
    pub fn delete_row(&self, id: &str) -> Result<()> {
        self.conn.execute("DELETE FROM containers WHERE id = ?1", [id])?;
        Ok(())
    }

    /// All records, newest first.
    pub fn all(&self) -> Result<Vec<Record>> {
        let mut st = self
            .conn
            .prepare("SELECT record FROM containers ORDER BY created DESC")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for j in rows {
            let j = j?;
            out.push(
                serde_json::from_str(&j).map_err(|e| EngineError::Invalid(format!("corrupt container record: {e}")))?,
            );
        }
        Ok(out)
    }

    /// Finds a container by full id, name (with or without `/`), or unique id prefix.
    pub fn resolve(&self, key: &str) -> Result<Record> {
        let key = key.strip_prefix('/').unwrap_or(key);
        let get = |sql: &str, arg: &str| -> Result<Vec<String>> {
            let mut st = self.conn.prepare(sql)?;
            let rows = st.query_map([arg], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        };
        let mut hits = get("SELECT record FROM containers WHERE id = ?1", key)?;
        if hits.is_empty() {
            hits = get("SELECT record FROM containers WHERE name = ?1", key)?;
        }
        if hits.is_empty() && !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            hits = get(
                "SELECT record FROM containers WHERE substr(id, 1, length(?1)) = ?1",
                key,
            )?;
            if hits.len() > 1 {
                return Err(EngineError::Invalid(format!(
                    "multiple IDs found with provided prefix: {key}"
                )));
            }
        }
        match hits.pop() {
            Some(j) => {
                serde_json::from_str(&j).map_err(|e| EngineError::Invalid(format!("corrupt container record: {e}")))
            }
            None => Err(EngineError::NoSuchContainer(key.to_string())),
        }
    }

    /// Whether a name is taken.
    pub fn name_taken(&self, name: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM containers WHERE name = ?1", [name], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Renames a container.
    pub fn rename(&self, id: &str, name: &str) -> Result<()> {
        let mut r = self.resolve(id)?;
        r.name = name.to_string();
        let json = serde_json::to_string(&r).map_err(|e| EngineError::Invalid(e.to_string()))?;
        self.conn.execute(
            "UPDATE containers SET name = ?1, record = ?2 WHERE id = ?3",
            params![name, json, r.id],
        )?;
        Ok(())
    }

    /// Saves a changed record (its name unchanged).
    pub fn save_record(&self, r: &Record) -> Result<()> {
        let json = serde_json::to_string(r).map_err(|e| EngineError::Invalid(e.to_string()))?;
        self.conn
            .execute("UPDATE containers SET record = ?1 WHERE id = ?2", params![json, r.id])?;
        Ok(())
    }

    /// The recorded state, reconciled: a container whose monitor and init are both gone is
    /// exited, whatever the file says (a monitor killed, a reboot).
    pub fn state(&self, id: &str) -> State {
        let p = self.dir(id).join("state.json");
        let mut st: State = std::fs::read(&p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(State::new_created);
        if matches!(st.status, Status::Running | Status::Restarting) && !pid_alive(st.monitor_pid) && !pid_alive(st.pid)
        {
            st.status = Status::Exited;
            if st.exit_code == 0 {
                st.exit_code = 255;
            }
            if st.finished_at == ZERO_TIME {
                st.finished_at = berth_image::store::now();
            }
        }
        st
    }

    /// Writes `state.json` atomically.
    pub fn save_state(&self, id: &str, st: &State) -> Result<()> {
        write_state(&self.dir(id), st)
    }
}

/// Where runtime state lives for a data root: `/run/berth` for the default root (tmpfs, gone
/// after a reboot), the user's runtime directory for a rootless user's default root,
/// `<root>/run` for any other.
pub fn run_dir(root: &Path) -> PathBuf {
    if root == Path::new("/var/lib/berth") {
        PathBuf::from("/run/berth")
    } else if crate::rootless::is_rootless() && root == crate::rootless::default_root() {
        crate::rootless::run_root()
    } else {
        root.join("run")
    }
}

/// Takes an exclusive `flock` on the file at `p` (made if missing), held until the guard
/// drops.
pub(crate) fn lock_file(p: &Path) -> Result<nix::fcntl::Flock<std::fs::File>> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(p)
        .map_err(io_err("opening", p))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| EngineError::Invalid(format!("locking {}: {e}", p.display())))
}

/// Writes a container directory's `state.json` atomically.
pub fn write_state(dir: &Path, st: &State) -> Result<()> {
    let tmp = dir.join("state.json.tmp");
    let data = serde_json::to_vec(st).map_err(|e| EngineError::Invalid(e.to_string()))?;
    let _ = std::fs::remove_file(&tmp);
    crate::ops::write_mode(&tmp, &data, berth_image::perms::PRIVATE)?;
    std::fs::rename(&tmp, dir.join("state.json")).map_err(io_err("writing", dir.join("state.json")))
}

/// A new random container id (64 hex digits).
pub fn new_id() -> Result<String> {
    let mut b = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom").map_err(io_err("opening", "/dev/urandom"))?;
    std::io::Read::read_exact(&mut f, &mut b).map_err(io_err("reading", "/dev/urandom"))?;
    Ok(berth_oci::to_hex(&b))
}

/// A Docker-style random name (`adjective_scientist`).
pub fn random_name(id: &str) -> String {
    const A: [&str; 64] = [
        "admiring",
        "affectionate",
        "amazing",
        "awesome",
        "blissful",
        "bold",
        "brave",
        "busy",
        "calm",
        "charming",
        "clever",
        "compassionate",
        "confident",
        "cool",
        "cranky",
        "dazzling",
        "determined",
        "dreamy",
        "eager",
        "ecstatic",
        "elastic",
        "elated",
        "elegant",
        "epic",
        "fervent",
        "festive",
        "focused",
        "friendly",
        "frosty",
        "funny",
        "gallant",
        "gifted",
        "goofy",
        "gracious",
        "happy",
        "hopeful",
        "inspiring",
        "jolly",
        "jovial",
        "keen",
        "kind",
        "laughing",
        "lucid",
        "magical",
        "modest",
        "musing",
        "nervous",
        "nifty",
        "nostalgic",
        "optimistic",
        "peaceful",
        "pensive",
        "practical",
        "quirky",
        "relaxed",
        "serene",
        "sharp",
        "stoic",
        "tender",
        "trusting",
        "vibrant",
        "wizardly",
        "youthful",
        "zealous",
    ];
    const B: [&str; 64] = [
        "agnesi",
        "babbage",
        "bardeen",
        "bell",
        "bhabha",
        "booth",
        "borg",
        "bose",
        "brattain",
        "cerf",
        "chaum",
        "clarke",
        "curie",
        "darwin",
        "dijkstra",
        "einstein",
        "euclid",
        "euler",
        "fermat",
        "fermi",
        "feynman",
        "galileo",
        "gauss",
        "goldberg",
        "goodall",
        "hamilton",
        "hawking",
        "hopper",
        "hypatia",
        "johnson",
        "kepler",
        "knuth",
        "lamport",
        "leakey",
        "liskov",
        "lovelace",
        "margulis",
        "maxwell",
        "mayer",
        "mccarthy",
        "meitner",
        "mendel",
        "morse",
        "newton",
        "nobel",
        "noether",
        "pare",
        "pasteur",
        "perlman",
        "pike",
        "ptolemy",
        "ramanujan",
        "ritchie",
        "rosalind",
        "shannon",
        "sinoussi",
        "swartz",
        "tesla",
        "thompson",
        "torvalds",
        "turing",
        "volhard",
        "wozniak",
        "yalow",
    ];
    let n = u64::from_str_radix(&id[..8.min(id.len())], 16).unwrap_or(0);
    format!("{}_{}", A[(n % 64) as usize], B[((n >> 6) % 64) as usize])
}

/// Checks a user-given container name (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`).
pub fn valid_name(name: &str) -> bool {
    let name = name.strip_prefix('/').unwrap_or(name);
    name.len() >= 2
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_and_write_as_docker_names_them() {
        for name in [
            "created",
            "running",
            "paused",
            "restarting",
            "removing",
            "exited",
            "dead",
        ] {
            let st = Status::parse(name).unwrap();
            assert_eq!(st.as_str(), name);
            assert_eq!(serde_json::to_value(st).unwrap(), name);
            assert_eq!(serde_json::from_value::<Status>(serde_json::json!(name)).unwrap(), st);
        }
        assert_eq!(Status::parse("sleeping"), None);
        // A state file written before the enum reads the same.
        let old: State = serde_json::from_str(
            r#"{"status":"running","pid":1,"monitor_pid":2,"exit_code":0,"error":"","started_at":"","finished_at":"","oom_killed":false}"#,
        )
        .unwrap();
        assert!(old.running());
    }
}
