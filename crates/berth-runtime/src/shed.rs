//! Shedding the memory a process that mostly waits does not need: the clean pages of the
//! binary's mappings, the stack below where it runs, the heap's free pages.

/// Gives back memory a long-lived waiter (the container monitor, a pod's pause) touched
/// but does not need while it waits: the pages of
/// the binary that were only ever read (code, read-only data), the stack below where it now
/// runs, and the heap's free pages. Dropped file pages fault back from the page cache on
/// the next use, 64 KiB at a time: the kernel's fault-around maps a whole window whatever
/// `madvise` advice the mapping has (measured on 6.18: `MADV_RANDOM` changes nothing), so
/// every burst of work (a log line, an attach, a probe) leaves a few windows mapped until
/// the next shed. The ranges are found once, at the first shed, from `/proc/self/smaps`:
/// later sheds are a few `madvise` calls.
#[derive(Debug, Default)]
pub struct Shedder {
    /// Found at the first shed (not on the start path).
    ranges: std::cell::OnceCell<Ranges>,
}

/// What a [`Shedder`] drops.
#[derive(Debug, Default)]
struct Ranges {
    /// Private mappings of the binary's own file with no modified page. Only the binary's:
    /// its mappings last as long as the process, while another file's (a library loaded and
    /// unloaded, a file read through `mmap`) could be unmapped and its addresses reused by
    /// the heap, whose live pages a later shed would then zero.
    files: Vec<(usize, usize)>,
    /// The main stack's mapping.
    stack: Option<(usize, usize)>,
}

impl Ranges {
    /// From `/proc/self/smaps` (none if it is unreadable).
    fn read() -> Ranges {
        let mut me = Ranges::default();
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
            return me;
        };
        // The binary as its mappings name it: the path `/proc/self/exe` links to and its
        // inode (the device column of smaps is the underlying file system's on overlayfs,
        // not what `stat` reports, so it is not compared).
        let exe = std::fs::read_link("/proc/self/exe")
            .ok()
            .zip(std::fs::metadata("/proc/self/exe").ok())
            .map(|(path, m)| {
                use std::os::unix::fs::MetadataExt;
                (path.to_string_lossy().into_owned(), m.ino().to_string())
            });
        // (start, end, a clean read-only file mapping so far)
        let mut current: Option<(usize, usize, bool)> = None;
        let finish = |r: Option<(usize, usize, bool)>, files: &mut Vec<(usize, usize)>| {
            if let Some((a, b, true)) = r {
                files.push((a, b));
            }
        };
        for line in smaps.lines() {
            let mut f = line.split_whitespace();
            let Some(first) = f.next() else { continue };
            if let Some((a, b)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
                let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
                    continue;
                };
                finish(current.take(), &mut me.files);
                let perms = f.next().unwrap_or("");
                let inode = f.nth(2).unwrap_or("");
                let path = f.collect::<Vec<_>>().join(" ");
                if path == "[stack]" {
                    me.stack = Some((a, b));
                }
                let ours = exe.as_ref().is_some_and(|(p, i)| *p == path && i == inode);
                let candidate = (perms == "r-xp" || perms == "r--p") && ours;
                current = Some((a, b, candidate));
            } else if first == "Anonymous:" && f.next() != Some("0") {
                // A page of it was written (relocated data): not the file's, keep it.
                if let Some(c) = current.as_mut() {
                    c.2 = false;
                }
            }
        }
        finish(current.take(), &mut me.files);
        me
    }
}

impl Shedder {
    /// Drops what the last burst of work faulted in (see [`Shedder`]).
    pub fn shed(&self) {
        let ranges = self.ranges.get_or_init(Ranges::read);
        // The heap and the stack first, the binary's pages last: what runs after the last
        // `madvise` (this function's return, the caller's wait) is all that faults back.
        // SAFETY: malloc_trim only returns free heap memory to the kernel.
        unsafe { libc::malloc_trim(0) };
        // The part of the stack deeper calls used (clap, SQLite and the runtime go deep):
        // unused until a deeper call faults fresh zero pages back in.
        let here = 0u8;
        let sp = std::ptr::addr_of!(here) as usize;
        if let Some((lo, hi)) = ranges.stack {
            let keep_below = sp.saturating_sub(8 << 10) & !0xfff;
            if keep_below > lo && keep_below < hi {
                // SAFETY: the range lies below the current stack pointer with an 8 KiB
                // margin (past the red zone); nothing live is there, dropped pages come back
                // zeroed.
                unsafe { libc::madvise(lo as *mut libc::c_void, keep_below - lo, libc::MADV_DONTNEED) };
            }
        }
        for &(a, b) in &ranges.files {
            // SAFETY: a private file mapping of this process whose pages are all unmodified
            // file pages: dropping them only unmaps them until the next access, which reads
            // them back from the file.
            unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_binarys_own_clean_mappings_are_shed() {
        let r = Ranges::read();
        assert!(!r.files.is_empty(), "the test binary's text is found");
        let smaps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        for (a, b) in &r.files {
            let line = smaps.lines().find(|l| l.starts_with(&format!("{a:x}-{b:x} "))).unwrap();
            assert!(line.ends_with(&*exe.to_string_lossy()), "{line}");
            assert!(!line.split_whitespace().nth(1).unwrap().contains('w'), "{line}");
        }
        // A shed leaves the process working.
        Shedder::default().shed();
        let v: Vec<u64> = (0..1000).collect();
        assert_eq!(v.iter().sum::<u64>(), 499_500);
    }
}
