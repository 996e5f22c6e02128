//! Who a container's process is: `user[:group]` resolved against the image's passwd and
//! group files, and the supplementary groups it gets.

use std::path::PathBuf;

use crate::store::Record;
use crate::{EngineError, Result};

/// Finds `/etc/passwd` or `/etc/group` through the image's layers, top first.
fn image_file(lowers: &[PathBuf], rel: &str) -> Option<String> {
    for l in lowers {
        let p = l.join(rel);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
            return std::fs::read_to_string(p).ok();
        }
    }
    None
}

/// Resolves `user[:group]` (names or numbers) against the image's passwd and group files.
pub fn resolve_user(spec: &str, lowers: &[PathBuf]) -> Result<(u32, u32, Vec<u32>)> {
    if spec.is_empty() {
        return Ok((0, 0, Vec::new()));
    }
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = image_file(lowers, "etc/passwd").unwrap_or_default();
    let group = image_file(lowers, "etc/group").unwrap_or_default();
    let (uid, mut gid, name) = match u.parse::<u32>() {
        Ok(n) => {
            let entry = passwd.lines().find(|l| l.split(':').nth(2) == Some(u));
            let gid = entry.and_then(|l| l.split(':').nth(3)?.parse().ok()).unwrap_or(0);
            (n, gid, entry.and_then(|l| l.split(':').next()).map(str::to_string))
        }
        Err(_) => {
            let l = passwd.lines().find(|l| l.split(':').next() == Some(u)).ok_or_else(|| {
                EngineError::Invalid(format!("unable to find user {u}: no matching entries in passwd file"))
            })?;
            let f: Vec<&str> = l.split(':').collect();
            let uid = f.get(2).and_then(|x| x.parse().ok()).unwrap_or(0);
            let gid = f.get(3).and_then(|x| x.parse().ok()).unwrap_or(0);
            (uid, gid, Some(u.to_string()))
        }
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .lines()
                .find(|l| l.split(':').next() == Some(g))
                .and_then(|l| l.split(':').nth(2)?.parse().ok())
                .ok_or_else(|| {
                    EngineError::Invalid(format!("unable to find group {g}: no matching entries in group file"))
                })?,
        };
    }
    let mut extra = Vec::new();
    if let Some(name) = name {
        for l in group.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if f.get(3).is_some_and(|m| m.split(',').any(|x| x == name)) {
                if let Some(id) = f.get(2).and_then(|x| x.parse::<u32>().ok()) {
                    if id != gid {
                        extra.push(id);
                    }
                }
            }
        }
    }
    Ok((uid, gid, extra))
}

/// A process's supplementary groups: its own group first (as containerd and runc give it),
/// those the image's group file gives the user (none with `groups_strict`), then
/// `--group-add`'s, each once.
pub(crate) fn additional_groups(r: &Record, lowers: &[PathBuf], gid: u32, from_image: Vec<u32>) -> Result<Vec<u32>> {
    if r.group_add.is_empty() && !r.groups_strict {
        return Ok(from_image);
    }
    let mut all = vec![gid];
    if !r.groups_strict {
        all.extend(from_image);
    }
    let group = image_file(lowers, "etc/group").unwrap_or_default();
    for g in &r.group_add {
        let id = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .lines()
                .find(|l| l.split(':').next() == Some(g.as_str()))
                .and_then(|l| l.split(':').nth(2)?.parse().ok())
                .ok_or_else(|| {
                    EngineError::Invalid(format!("unable to find group {g}: no matching entries in group file"))
                })?,
        };
        all.push(id);
    }
    let mut seen = std::collections::BTreeSet::new();
    all.retain(|g| seen.insert(*g));
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_merge_the_images_and_the_added_unless_strict() {
        let dir = berth_testutil::TempDir::new("groups");
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nu:x:1000:1000::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "u:x:1000:\nextra:x:50000:u\naudio:x:29:\n",
        )
        .unwrap();
        let lowers = vec![dir.path().to_path_buf()];
        let (uid, gid, from_image) = resolve_user("1000", &lowers).unwrap();
        assert_eq!((uid, gid, from_image.clone()), (1000, 1000, vec![50000]));
        let mut r = Record::default();
        assert_eq!(
            additional_groups(&r, &lowers, gid, from_image.clone()).unwrap(),
            vec![50000]
        );
        r.group_add = vec!["1234".into(), "audio".into(), "1234".into()];
        assert_eq!(
            additional_groups(&r, &lowers, gid, from_image.clone()).unwrap(),
            vec![1000, 50000, 1234, 29]
        );
        r.groups_strict = true;
        assert_eq!(
            additional_groups(&r, &lowers, gid, from_image.clone()).unwrap(),
            vec![1000, 1234, 29]
        );
        r.group_add = vec!["nosuch".into()];
        let e = additional_groups(&r, &lowers, gid, from_image).unwrap_err().to_string();
        assert!(e.contains("unable to find group nosuch"), "{e}");
    }
}
