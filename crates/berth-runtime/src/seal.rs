//! Protects the runtime binary from being overwritten by a container (CVE-2019-5736).
//!
//! A process the runtime starts inside a container briefly runs the runtime's own binary; if
//! the container's program is `/proc/self/exe`, it keeps running it. Were that binary the
//! host file, the container could reopen it for writing once the runtime exits. So before
//! entering any container the runtime re-executes itself from a read-only, detached overlayfs
//! mount of its own directory: `/proc/self/exe` then names a file on a mount that cannot be
//! written or remounted and is reachable from no mount namespace. This costs one fsmount and
//! one exec (runc measured 1-2% for the same approach), against ~70% for copying the binary
//! into a sealed memfd, which remains only as the fallback for kernels without the new mount
//! API or overlayfs.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;

use berth_safepath::mount;

use berth_safepath::mount::{ATTR_NODEV, ATTR_RDONLY};

/// Set in the environment of the re-executed runtime; removed again at once.
const MARK: &str = "_BERTH_SEALED";

/// Re-executes the current process from a sealed copy of its binary unless it already runs
/// from one. Returns `Ok(())` in the sealed process; never returns on a successful re-exec.
pub fn ensure_sealed() -> io::Result<()> {
    if std::env::var_os(MARK).is_some() {
        // SAFETY-free: the CLI is single-threaded here, which set/remove_var require.
        std::env::remove_var(MARK);
        return Ok(());
    }
    let exe = std::fs::read_link("/proc/self/exe")?;
    let fd = match overlay_fd(&exe) {
        Ok(fd) => fd,
        Err(e) => {
            if std::env::var_os("BERTH_DEBUG_SEAL").is_some() {
                eprintln!("berth-runtime: overlay seal failed, copying to memfd: {e}");
            }
            memfd_copy()?
        }
    };
    let args: Vec<CString> = std::env::args_os().map(cstring).collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            cstring(OsString::from_vec(kv))
        })
        .collect();
    env.push(cstring(OsString::from(format!("{MARK}=1"))));
    let e = nix::unistd::execveat(fd.as_fd(), c"", &args, &env, AtFlags::AT_EMPTY_PATH).err();
    Err(io::Error::from(e.unwrap_or(nix::errno::Errno::EINVAL)))
}

fn cstring(s: OsString) -> CString {
    CString::new(s.as_bytes()).unwrap_or_default()
}

/// A detached read-only overlay of the binary's directory; returns an `O_PATH` descriptor
/// of the binary on it.
fn overlay_fd(exe: &std::path::Path) -> io::Result<OwnedFd> {
    let dir = exe.parent().ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
    let name = exe
        .file_name()
        .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
    // Without an upper layer overlayfs is read-only and cannot be remounted read-write, but
    // then it wants two lower layers that do not overlap: the second is an empty, detached
    // tmpfs.
    let empty = mount::fsopen("tmpfs")?;
    mount::create(&empty)?;
    let empty = mount::fsmount(&empty, ATTR_RDONLY)?;
    let empty_path = format!("/proc/self/fd/{}", empty.as_raw_fd());
    let fs = mount::fsopen("overlay")?;
    let dir_s = dir
        .to_str()
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    if mount::set_string(&fs, "lowerdir+", dir_s).is_ok() {
        mount::set_string(&fs, "lowerdir+", &empty_path)?;
    } else {
        let escaped = dir_s.replace('\\', "\\\\").replace(':', "\\:").replace(',', "\\,");
        mount::set_string(&fs, "lowerdir", &format!("{escaped}:{empty_path}"))?;
    }
    mount::create(&fs)?;
    let mnt = mount::fsmount(&fs, ATTR_RDONLY | ATTR_NODEV)?;
    let fd = nix::fcntl::openat(&mnt, name, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())?;
    Ok(fd)
}

/// The fallback: the binary copied into a sealed memfd.
fn memfd_copy() -> io::Result<OwnedFd> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd = memfd_create("berth-runtime", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)?;
    let mut dst = std::fs::File::from(fd);
    let mut src = std::fs::File::open("/proc/self/exe")?;
    io::copy(&mut src, &mut dst)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    nix::fcntl::fcntl(
        &dst,
        nix::fcntl::FcntlArg::F_ADD_SEALS(nix::fcntl::SealFlag::from_bits_truncate(seals)),
    )?;
    Ok(OwnedFd::from(dst))
}

/// Where the running binary lives, for diagnostics and tests.
pub fn current_exe() -> PathBuf {
    std::fs::read_link("/proc/self/exe").unwrap_or_default()
}
