//! The ids an ordinary user may map into a user namespace: the subordinate ranges of
//! `/etc/subuid` and `/etc/subgid`, written into a namespace's `uid_map` and `gid_map` by
//! the setuid helpers `newuidmap` and `newgidmap` (Debian's `uidmap` package). A rootless
//! engine maps the user's own id to 0 and the subordinate ranges after it, as Podman does.

use std::path::{Path, PathBuf};

use berth_safepath::userns::IdRange;

/// One subordinate range: `count` ids from `start` on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubRange {
    /// First host id.
    pub start: u32,
    /// How many.
    pub count: u32,
}

/// Failures mapping ids.
#[derive(Debug, thiserror::Error)]
pub enum IdMapError {
    /// The user has no entry in `/etc/subuid` or `/etc/subgid`.
    #[error(
        "user {user} has no subordinate {kind}s in {file}: rootless containers need a range \
         there; as root, add one with `usermod --add-sub{kind}s 100000-165535 --add-sub{other}s 100000-165535 {user}`"
    )]
    NoRanges {
        /// `uid` or `gid`.
        kind: &'static str,
        /// The other of the two, for the suggested command.
        other: &'static str,
        /// The user's name.
        user: String,
        /// The file read.
        file: PathBuf,
    },
    /// A setuid helper is missing.
    #[error(
        "{helper} was not found in PATH: rootless containers need it to map the user's \
         subordinate ids; install the uidmap package (apt-get install uidmap)"
    )]
    NoHelper {
        /// `newuidmap` or `newgidmap`.
        helper: &'static str,
    },
    /// A helper refused or failed.
    #[error("{helper} {pid} failed: {message}")]
    Helper {
        /// The helper.
        helper: &'static str,
        /// The target process.
        pid: i32,
        /// What it said.
        message: String,
    },
}

/// The ranges `text` (an `/etc/subuid`-shaped file) gives the user `name` with id `id`:
/// lines `NAME:START:COUNT` or `ID:START:COUNT`; malformed lines and empty ranges are skipped.
pub fn parse_subid(text: &str, name: &str, id: u32) -> Vec<SubRange> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().splitn(3, ':');
            let who = f.next()?;
            let start = f.next()?.trim().parse().ok()?;
            let count = f.next()?.trim().parse().ok()?;
            let mine = who == name || who.parse::<u32>().ok() == Some(id);
            (mine && count > 0).then_some(SubRange { start, count })
        })
        .collect()
}

/// The user's ranges from `file`; none is an error that says how to add one.
pub fn ranges(kind: &'static str, file: &Path, name: &str, id: u32) -> Result<Vec<SubRange>, IdMapError> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let r = parse_subid(&text, name, id);
    if r.is_empty() {
        return Err(IdMapError::NoRanges {
            kind,
            other: if kind == "uid" { "gid" } else { "uid" },
            user: name.to_string(),
            file: file.to_path_buf(),
        });
    }
    Ok(r)
}

/// The map a rootless namespace gets: the user's `own` id as 0, then each range in turn.
pub fn rootless_map(own: u32, ranges: &[SubRange]) -> Vec<IdRange> {
    let mut v = vec![IdRange {
        inside: 0,
        outside: own,
        count: 1,
    }];
    let mut next = 1u32;
    for r in ranges {
        v.push(IdRange {
            inside: next,
            outside: r.start,
            count: r.count,
        });
        next = next.saturating_add(r.count);
    }
    v
}

/// Finds `helper` in `PATH`.
pub fn find_helper(helper: &'static str) -> Result<PathBuf, IdMapError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(helper))
        .find(|p| p.is_file())
        .ok_or(IdMapError::NoHelper { helper })
}

/// Writes `map` into process `pid`'s namespace with `helper` (`newuidmap` or `newgidmap`).
pub fn apply(helper: &'static str, pid: i32, map: &[IdRange]) -> Result<(), IdMapError> {
    let exe = find_helper(helper)?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg(pid.to_string());
    for r in map {
        cmd.args([r.inside.to_string(), r.outside.to_string(), r.count.to_string()]);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| IdMapError::Helper {
            helper,
            pid,
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(IdMapError::Helper {
            helper,
            pid,
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// The name of user `uid` from /etc/passwd (no NSS: the binary is static).
pub fn user_name(uid: u32) -> Option<String> {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| passwd_field(&text, uid, 0))
}

/// The home directory of user `uid` from /etc/passwd.
pub fn user_home(uid: u32) -> Option<PathBuf> {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| passwd_field(&text, uid, 5))
        .map(PathBuf::from)
}

/// Field `n` of the /etc/passwd line for `uid`.
pub fn passwd_field(passwd: &str, uid: u32, n: usize) -> Option<String> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        let id: u32 = f.get(2)?.parse().ok()?;
        let v = f.get(n)?;
        (id == uid && !v.is_empty()).then(|| v.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subid_files_parse_by_name_or_id() {
        let text = "alice:100000:65536\n1001:300000:1000\nbob:165536:65536\nbroken\nalice:1:0\n";
        assert_eq!(
            parse_subid(text, "alice", 1000),
            vec![SubRange {
                start: 100000,
                count: 65536
            }]
        );
        assert_eq!(
            parse_subid(text, "carol", 1001),
            vec![SubRange {
                start: 300000,
                count: 1000
            }]
        );
        assert!(parse_subid(text, "dave", 7).is_empty());
        let m = rootless_map(1000, &parse_subid(text, "alice", 1000));
        assert_eq!(m.len(), 2);
        assert_eq!((m[1].inside, m[1].outside, m[1].count), (1, 100000, 65536));
    }

    #[test]
    fn missing_ranges_say_what_to_add() {
        let t = std::env::temp_dir().join(format!("berth-subuid-{}", std::process::id()));
        std::fs::write(&t, "someone:100000:65536\n").unwrap();
        let e = ranges("uid", &t, "nobody-here", 4242).unwrap_err().to_string();
        let _ = std::fs::remove_file(&t);
        assert!(e.contains("usermod --add-subuids"), "{e}");
        assert!(e.contains("nobody-here"), "{e}");
    }

    #[test]
    fn passwd_fields() {
        let p = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n";
        assert_eq!(passwd_field(p, 1000, 0).as_deref(), Some("alice"));
        assert_eq!(passwd_field(p, 1000, 5).as_deref(), Some("/home/alice"));
        assert_eq!(passwd_field(p, 7, 0), None);
    }
}
