//! The processes a server started: a `berth exec` and what it runs in the container (its
//! descendants: `berth exec` is their subreaper), killed together.

/// The children of every thread of `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `pid` and its descendants, parents before children.
pub(crate) fn tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while let Some(&p) = all.get(i) {
        for c in children(p) {
            if !all.contains(&c) {
                all.push(c);
            }
        }
        i += 1;
    }
    all
}

/// Sends `sig` to `p` (not to init or a bad pid).
fn signal(p: u32, sig: i32) {
    let Ok(p) = i32::try_from(p) else { return };
    if p > 1 {
        // SAFETY: a signal to one process by a positive pid, one this server started or one
        // of its descendants.
        unsafe { libc::kill(p, sig) };
    }
}

/// SIGKILLs `pid` and its descendants; returns once each has died (or after 2 s), so a
/// caller that reports the kill reports a command that is no longer running. The tree is
/// stopped first, walked again until no new process appears (one forked while the tree
/// was read is caught: its stopped parent cannot die and orphan it), then killed children
/// first.
pub(crate) fn kill_tree(pid: u32) {
    let mut all: Vec<u32> = Vec::new();
    for _ in 0..50 {
        let new: Vec<u32> = tree(pid).into_iter().filter(|p| !all.contains(p)).collect();
        if new.is_empty() {
            break;
        }
        for &p in &new {
            signal(p, libc::SIGSTOP);
        }
        all.extend(new);
    }
    for &p in all.iter().rev() {
        signal(p, libc::SIGKILL);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while all.iter().any(|p| running(*p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Whether `pid` is alive (neither gone nor a zombie waiting to be reaped).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_is_killed_with_its_grandchildren() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 100 & sleep 100 & wait"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while tree(pid).len() < 3 {
            assert!(std::time::Instant::now() < deadline, "the sleeps never started");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let all = tree(pid);
        kill_tree(pid);
        assert!(!child.wait().unwrap().success());
        for p in &all[1..] {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            // A killed grandchild is reaped by init, or lingers as a zombie for a moment.
            while std::fs::read_to_string(format!("/proc/{p}/stat"))
                .is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
            {
                assert!(std::time::Instant::now() < deadline, "{p} outlived kill_tree");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}
