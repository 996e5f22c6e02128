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

/// Appends records, rotating at `max_size` bytes and keeping `max_files` files.
#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
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
        })
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
        buf.extend_from_slice(b"\",\"time\":\"");
        buf.extend_from_slice(berth_image::store::now().as_bytes());
        buf.extend_from_slice(b"\"}\n");
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
    let mut files = Vec::new();
    for i in (1..100).rev() {
        let p = numbered(path, i);
        if p.exists() {
            files.push(p);
        }
    }
    files.push(path.to_path_buf());
    let mut out = Vec::new();
    for f in files {
        if let Ok(f) = File::open(&f) {
            for line in BufReader::new(f).lines().map_while(std::result::Result::ok) {
                if let Ok(e) = serde_json::from_str::<Entry>(&line) {
                    out.push(e);
                }
            }
        }
    }
    out
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
}
