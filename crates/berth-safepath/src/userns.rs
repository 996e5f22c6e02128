//! Which user namespace this process is in. A rootless berth runs as uid 0 of a user
//! namespace that maps the user's own uid and subordinate ranges; the image store, the
//! runtime and the engine all change a few things there: device nodes cannot be made,
//! overlayfs keeps its metadata in `user.overlay.*` xattrs (the `userxattr` option), and
//! cgroups are only as writable as the host delegates.

use std::sync::OnceLock;

/// One line of `/proc/PID/uid_map` or `gid_map`: `inside outside count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id inside the namespace.
    pub inside: u32,
    /// First id in the parent namespace.
    pub outside: u32,
    /// How many ids.
    pub count: u32,
}

/// Parses an id map's text; malformed lines are skipped.
pub fn parse_map(text: &str) -> Vec<IdRange> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().map(str::parse::<u64>);
            let (Some(Ok(i)), Some(Ok(o)), Some(Ok(c))) = (f.next(), f.next(), f.next()) else {
                return None;
            };
            Some(IdRange {
                inside: u32::try_from(i).ok()?,
                outside: u32::try_from(o).ok()?,
                count: u32::try_from(c).ok()?,
            })
        })
        .collect()
}

/// Whether a map is the initial namespace's identity map of every id.
pub fn is_initial(map: &[IdRange]) -> bool {
    map == [IdRange {
        inside: 0,
        outside: 0,
        count: u32::MAX,
    }]
}

/// This process's uid map (read once: a rootless berth joins its namespace before anything
/// asks).
pub fn own_uid_map() -> &'static [IdRange] {
    static MAP: OnceLock<Vec<IdRange>> = OnceLock::new();
    MAP.get_or_init(|| parse_map(&std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default()))
}

/// Whether this process is in a user namespace other than the initial one.
pub fn in_user_namespace() -> bool {
    let m = own_uid_map();
    !m.is_empty() && !is_initial(m)
}

/// [`in_user_namespace`] read afresh (for a process that has entered one since).
pub fn in_user_namespace_now() -> bool {
    let m = parse_map(&std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default());
    !m.is_empty() && !is_initial(&m)
}

/// The xattr prefix overlayfs uses for its whiteout and opaque markers here: `user.overlay.`
/// in a user namespace (where `trusted.*` is out of reach and mounts take `userxattr`),
/// `trusted.overlay.` otherwise.
pub fn overlay_xattr_prefix() -> &'static str {
    if in_user_namespace() {
        "user.overlay."
    } else {
        "trusted.overlay."
    }
}

/// Maps an id inside the namespace to the parent's, by `map`.
pub fn to_outside(map: &[IdRange], id: u32) -> Option<u32> {
    map.iter()
        .find(|r| id >= r.inside && id - r.inside < r.count)
        .map(|r| r.outside + (id - r.inside))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_parse_and_translate() {
        let m = parse_map("         0       1000          1\n         1     100000      65536\nbad\n");
        assert_eq!(m.len(), 2);
        assert!(!is_initial(&m));
        assert_eq!(to_outside(&m, 0), Some(1000));
        assert_eq!(to_outside(&m, 1), Some(100000));
        assert_eq!(to_outside(&m, 65536), Some(165535));
        assert_eq!(to_outside(&m, 65537), None);
        assert!(is_initial(&parse_map("0 0 4294967295\n")));
    }
}
