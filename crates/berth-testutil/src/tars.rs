//! Layer tars made in code, hostile ones included: headers are written by hand so names
//! like `../x` or `/etc/passwd` get through (the `tar` crate's builder refuses them).

/// One entry of a hand-made tar.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A directory.
    Dir(String, u32),
    /// A regular file with content.
    File(String, u32, Vec<u8>),
    /// A symlink `name -> target`.
    Symlink(String, String),
    /// A hard link `name` to `target`.
    Hardlink(String, String),
    /// A character device.
    Char(String, u32, u32),
    /// A fifo.
    Fifo(String),
    /// A file whose header claims `size` bytes but carries none (a truncated/bomb header).
    Lying(String, u64),
    /// A file with PAX extended attributes (`SCHILY.xattr.*`).
    FileXattr(String, Vec<u8>, Vec<(String, Vec<u8>)>),
    /// A regular file (mode 0644) owned by `uid:gid`.
    Owned(String, u32, u32, Vec<u8>),
}

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0width$o}\0", v, width = field.len() - 1);
    if s.len() == field.len() {
        field.copy_from_slice(s.as_bytes());
        return;
    }
    // GNU base-256 for values that do not fit in octal.
    field.fill(0);
    field[0] = 0x80;
    let n = field.len();
    field[n - 8..].copy_from_slice(&v.to_be_bytes());
}

fn header(name: &str, typ: u8, mode: u32, size: u64, link: &str) -> [u8; 512] {
    let mut h = [0u8; 512];
    let nb = name.as_bytes();
    assert!(nb.len() <= 100, "name too long for a plain header");
    h[..nb.len()].copy_from_slice(nb);
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_700_000_000);
    h[156] = typ;
    let lb = link.as_bytes();
    h[157..157 + lb.len()].copy_from_slice(lb);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(512) {
        out.push(0);
    }
}

/// Builds an uncompressed tar.
pub fn build(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        match e {
            Entry::Dir(n, m) => out.extend(header(n, b'5', *m, 0, "")),
            Entry::File(n, m, data) => {
                out.extend(header(n, b'0', *m, data.len() as u64, ""));
                out.extend(data);
                pad(&mut out);
            }
            Entry::Symlink(n, t) => out.extend(header(n, b'2', 0o777, 0, t)),
            Entry::Hardlink(n, t) => out.extend(header(n, b'1', 0o644, 0, t)),
            Entry::Char(n, maj, min) => {
                let mut h = header(n, b'3', 0o666, 0, "");
                octal(&mut h[329..337], u64::from(*maj));
                octal(&mut h[337..345], u64::from(*min));
                h[148..156].copy_from_slice(b"        ");
                let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
                h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
                out.extend(h);
            }
            Entry::Fifo(n) => out.extend(header(n, b'6', 0o644, 0, "")),
            Entry::Owned(n, uid, gid, data) => {
                let mut h = header(n, b'0', 0o644, data.len() as u64, "");
                octal(&mut h[108..116], u64::from(*uid));
                octal(&mut h[116..124], u64::from(*gid));
                h[148..156].copy_from_slice(b"        ");
                let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
                h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
                out.extend(h);
                out.extend(data);
                pad(&mut out);
            }
            Entry::Lying(n, size) => {
                out.extend(header(n, b'0', 0o644, *size, ""));
                out.extend([0u8; 512]);
            }
            Entry::FileXattr(n, data, xattrs) => {
                let mut pax = Vec::new();
                for (k, v) in xattrs {
                    let body_len = format!(" SCHILY.xattr.{k}=").len() + v.len() + 1;
                    let mut total = body_len + 1;
                    while format!("{total}").len() + body_len != total {
                        total = format!("{total}").len() + body_len;
                    }
                    pax.extend(format!("{total} SCHILY.xattr.{k}=").as_bytes());
                    pax.extend(v);
                    pax.push(b'\n');
                }
                out.extend(header("PaxHeader", b'x', 0o644, pax.len() as u64, ""));
                out.extend(&pax);
                pad(&mut out);
                out.extend(header(n, b'0', 0o644, data.len() as u64, ""));
                out.extend(data);
                pad(&mut out);
            }
        }
    }
    out.extend([0u8; 1024]);
    out
}

/// gzip of some bytes.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut e, data).expect("gzip");
    e.finish().expect("gzip")
}
