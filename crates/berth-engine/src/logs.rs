//! Container logs in Docker's json-file format (`{"log":"...\n","stream":"stdout","time":
//! "..."}` per line), rotated by size: `json.log`, then `json.log.1` ... `json.log.N-1`.
//! Rotation is on by default (10 MB x 3 files), since unbounded logs fill disks.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One log record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// The line, with its newline.
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// RFC 3339 with nanoseconds.
    pub time: String,
}

/// Appends records, rotating at `max_size` bytes and keeping `max_files` files; and, for a
/// CRI container, each record again in the CRI's format to the log the kubelet reads.
#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
    cri: Option<(PathBuf, File)>,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(berth_image::perms::LOG)
        .open(path)
}

impl Writer {
    /// Opens (appending) the log at `path`.
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> std::io::Result<Writer> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(berth_image::perms::LOG)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(Writer {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
            cri: None,
        })
    }

    /// Also writes every record to `path` in the CRI's format (`TIME STREAM P|F LINE`).
    pub fn with_cri(mut self, path: &Path) -> std::io::Result<Writer> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        self.cri = Some((path.to_path_buf(), open_append(path)?));
        Ok(self)
    }

    /// Opens the CRI log again at its path (after the kubelet moved it away to rotate it).
    pub fn reopen_cri(&mut self) -> std::io::Result<()> {
        if let Some((path, file)) = &mut self.cri {
            *file = open_append(path)?;
        }
        Ok(())
    }

    /// Writes one record.
    pub fn write(&mut self, stream: &str, line: &[u8]) -> std::io::Result<()> {
        // Written by hand, not through serde: this runs in the idle monitor, where every
        // code page touched counts against its memory.
        let mut buf = Vec::with_capacity(line.len() + 80);
        buf.extend_from_slice(b"{\"log\":\"");
        escape_into(&mut buf, &String::from_utf8_lossy(line));
        buf.extend_from_slice(b"\",\"stream\":\"");
        buf.extend_from_slice(stream.as_bytes());
        let now = berth_image::store::now();
        buf.extend_from_slice(b"\",\"time\":\"");
        buf.extend_from_slice(now.as_bytes());
        buf.extend_from_slice(b"\"}\n");
        if let Some((_, file)) = &mut self.cri {
            // A full line is tagged F and written without its newline; a piece of a longer
            // one (or an unterminated end) is tagged P.
            let (tag, body) = match line.strip_suffix(b"\n") {
                Some(body) => (&b" F "[..], body),
                None => (&b" P "[..], line),
            };
            let mut out = Vec::with_capacity(line.len() + 48);
            out.extend_from_slice(now.as_bytes());
            out.push(b' ');
            out.extend_from_slice(stream.as_bytes());
            out.extend_from_slice(tag);
            out.extend_from_slice(body);
            out.push(b'\n');
            file.write_all(&out)?;
        }
        if self.max_size == 1 {
            // The `none` driver: drained, not kept.
            return Ok(());
        }
        if self.max_size > 0 && self.size + buf.len() as u64 > self.max_size && self.size > 0 {
            self.rotate()?;
        }
        self.file.write_all(&buf)?;
        self.size += buf.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.max_files <= 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        for i in (1..self.max_files - 1).rev() {
            let from = numbered(&self.path, i);
            if from.exists() {
                std::fs::rename(&from, numbered(&self.path, i + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(berth_image::perms::LOG)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// JSON string escaping (RFC 8259): quote, backslash and control characters.
fn escape_into(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
}

fn numbered(p: &Path, i: u32) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

/// Every record, oldest first, across rotated files.
pub fn read_all(path: &Path) -> Vec<Entry> {
    Reader::new(path, LogOptions::default()).backlog()
}

/// Which records a [`Reader`] gives: Docker's `logs` options.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Only records at or after this time (nanoseconds since the epoch).
    pub since: Option<i128>,
    /// Only records at or before this time (nanoseconds since the epoch).
    pub until: Option<i128>,
    /// Of the records already written, only the last this many.
    pub tail: Option<usize>,
    /// Records of the container's stdout.
    pub stdout: bool,
    /// Records of its stderr.
    pub stderr: bool,
}

impl Default for LogOptions {
    fn default() -> LogOptions {
        LogOptions {
            since: None,
            until: None,
            tail: None,
            stdout: true,
            stderr: true,
        }
    }
}

impl LogOptions {
    fn wants(&self, e: &Entry) -> bool {
        let stream = if e.stream == "stderr" { self.stderr } else { self.stdout };
        if !stream {
            return false;
        }
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let t = berth_oci::time::parse_rfc3339_nanos(&e.time)
            .and_then(|n| i128::try_from(n).ok())
            .unwrap_or(0);
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u)
    }
}

/// Reads a container's log for every front end (`berth logs`, `GET /containers/{id}/logs`):
/// first what is already written ([`Reader::backlog`]), then, following, what comes after
/// ([`Reader::more`]), across rotations (a rotated file is read to its end before the new
/// one is taken up, by inode).
#[derive(Debug)]
pub struct Reader {
    path: PathBuf,
    opts: LogOptions,
    /// The file being read and its inode.
    file: Option<(BufReader<File>, u64)>,
    /// A line read without its newline yet.
    partial: String,
}

fn inode(f: &File) -> u64 {
    f.metadata()
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap_or(0)
}

impl Reader {
    /// A reader of the log at `path` (the container's `json.log`).
    pub fn new(path: &Path, opts: LogOptions) -> Reader {
        Reader {
            path: path.to_path_buf(),
            opts,
            file: None,
            partial: String::new(),
        }
    }

    /// The records written so far, oldest first, the options' `tail` applied.
    pub fn backlog(&mut self) -> Vec<Entry> {
        // The current file first, so a rotation meanwhile is seen (and its file not read
        // twice).
        self.file = File::open(&self.path).ok().map(|f| {
            let ino = inode(&f);
            (BufReader::new(f), ino)
        });
        let current = self.file.as_ref().map(|(_, i)| *i);
        let mut out = Vec::new();
        for i in (1..100).rev() {
            let Ok(f) = File::open(numbered(&self.path, i)) else {
                continue;
            };
            if Some(inode(&f)) == current {
                continue;
            }
            for line in BufReader::new(f).lines().map_while(std::result::Result::ok) {
                keep(&self.opts, &line, &mut out);
            }
        }
        out.extend(self.more());
        if let Some(n) = self.opts.tail {
            out.drain(..out.len().saturating_sub(n));
        }
        out
    }

    /// The records written since the last call (none: nothing new yet).
    pub fn more(&mut self) -> Vec<Entry> {
        let mut out = Vec::new();
        loop {
            if self.file.is_none() {
                self.file = File::open(&self.path).ok().map(|f| {
                    let ino = inode(&f);
                    (BufReader::new(f), ino)
                });
            }
            let Some((rd, ino)) = self.file.as_mut() else {
                return out;
            };
            let ino = *ino;
            while let Ok(n) = rd.read_line(&mut self.partial) {
                if n == 0 || !self.partial.ends_with('\n') {
                    break;
                }
                let line = std::mem::take(&mut self.partial);
                keep(&self.opts, &line, &mut out);
            }
            // Rotated away: this file is read to its end; the new one is next.
            let now = std::fs::metadata(&self.path)
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                .ok();
            if now.is_some_and(|n| n != ino) {
                self.file = None;
                self.partial.clear();
                continue;
            }
            return out;
        }
    }
}

/// Adds the record on `line` to `out` if the options want it.
fn keep(opts: &LogOptions, line: &str, out: &mut Vec<Entry>) {
    if let Ok(e) = serde_json::from_str::<Entry>(line) {
        if opts.wants(&e) {
            out.push(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_docker_json_and_rotates() {
        let dir = berth_testutil::TempDir::new("logs");
        let p = dir.path().join("json.log");
        let mut w = Writer::open(&p, 400, 3).unwrap();
        for i in 0..40 {
            w.write(
                if i % 2 == 0 { "stdout" } else { "stderr" },
                format!("line {i}\n").as_bytes(),
            )
            .unwrap();
        }
        let first: serde_json::Value =
            serde_json::from_str(std::fs::read_to_string(&p).unwrap().lines().next().unwrap()).unwrap();
        assert!(first["log"].as_str().unwrap().starts_with("line "));
        assert!(first["time"].as_str().unwrap().ends_with('Z'));
        assert!(numbered(&p, 1).exists() && numbered(&p, 2).exists() && !numbered(&p, 3).exists());
        let all = read_all(&p);
        assert!(all.len() < 40, "old records rotated away");
        assert_eq!(all.last().unwrap().log, "line 39\n");
        let total: u64 = [p.clone(), numbered(&p, 1), numbered(&p, 2)]
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        assert!(total <= 3 * 400);
    }

    #[test]
    fn a_reader_filters_tails_and_follows_across_rotations() {
        let dir = berth_testutil::TempDir::new("logs-reader");
        let p = dir.path().join("json.log");
        let mut w = Writer::open(&p, 400, 3).unwrap();
        let line = |w: &mut Writer, i: usize| {
            let stream = if i.is_multiple_of(2) { "stdout" } else { "stderr" };
            w.write(stream, format!("line {i}\n").as_bytes()).unwrap();
        };
        for i in 0..6 {
            line(&mut w, i);
        }
        let logs = |r: &[Entry]| r.iter().map(|e| e.log.trim_end().to_string()).collect::<Vec<_>>();
        let tail = LogOptions {
            tail: Some(2),
            ..LogOptions::default()
        };
        assert_eq!(logs(&Reader::new(&p, tail).backlog()), ["line 4", "line 5"]);
        let only_err = LogOptions {
            stdout: false,
            ..LogOptions::default()
        };
        assert_eq!(
            logs(&Reader::new(&p, only_err).backlog()),
            ["line 1", "line 3", "line 5"]
        );
        // `until` includes its own instant, `since` too (Docker's bounds).
        let all = read_all(&p);
        let at = |e: &Entry| i128::try_from(berth_oci::time::parse_rfc3339_nanos(&e.time).unwrap()).unwrap();
        let window = LogOptions {
            since: Some(at(&all[2])),
            until: Some(at(&all[3])),
            ..LogOptions::default()
        };
        let got = logs(&Reader::new(&p, window).backlog());
        assert!(
            got.contains(&"line 2".to_string()) && got.contains(&"line 3".to_string()),
            "{got:?}"
        );
        assert!(!got.contains(&"line 5".to_string()), "{got:?}");
        // Following: every later record once, in order, though the file rotates under it.
        let mut r = Reader::new(&p, LogOptions::default());
        assert_eq!(r.backlog().len(), 6);
        assert!(r.more().is_empty());
        let mut seen = Vec::new();
        for i in 6..30 {
            line(&mut w, i);
            if i.is_multiple_of(5) {
                seen.extend(logs(&r.more()));
            }
        }
        seen.extend(logs(&r.more()));
        let want: Vec<String> = (6..30).map(|i| format!("line {i}")).collect();
        assert_eq!(seen, want);
    }
}
