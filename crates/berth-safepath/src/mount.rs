//! The kernel's descriptor-based mount API (`fsopen`, `fsconfig`, `fsmount`, `move_mount`),
//! which nix lacks: a filesystem is configured option by option (no one-page limit on the
//! options, as overlays of many layers need), mounted detached, and attached by descriptor.
//! Shared by the image store (overlay rootfs) and the runtime (its sealed binary).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// `MOUNT_ATTR_RDONLY` (linux/mount.h), as `fsmount`'s u32 flags take it.
pub const ATTR_RDONLY: u32 = 0x1;
/// `MOUNT_ATTR_NODEV`.
pub const ATTR_NODEV: u32 = 0x4;

fn fd_of(rc: libc::c_long) -> io::Result<OwnedFd> {
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(rc).map_err(|_| io::Error::other("descriptor out of range"))?;
    // SAFETY: the syscall returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ok(rc: libc::c_long) -> io::Result<()> {
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `fsopen(2)`: a new filesystem context of type `fstype` (close-on-exec).
pub fn fsopen(fstype: &str) -> io::Result<OwnedFd> {
    let name = CString::new(fstype)?;
    // SAFETY: name is a valid NUL-terminated string for the duration of the call.
    fd_of(unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), libc::FSOPEN_CLOEXEC) })
}

/// `fsconfig(FSCONFIG_SET_STRING)`: option `key` is `value`.
pub fn set_string(fs: &OwnedFd, key: &str, value: &str) -> io::Result<()> {
    let k = CString::new(key)?;
    let v = CString::new(value)?;
    // SAFETY: k and v are valid NUL-terminated strings; fs is an open fs context.
    ok(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_SET_STRING,
            k.as_ptr(),
            v.as_ptr(),
            0,
        )
    })
}

/// `fsconfig(FSCONFIG_SET_FLAG)`: the boolean option `key` is on.
pub fn set_flag(fs: &OwnedFd, key: &str) -> io::Result<()> {
    let k = CString::new(key)?;
    // SAFETY: k is a valid NUL-terminated string; SET_FLAG takes no value.
    ok(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_SET_FLAG,
            k.as_ptr(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    })
}

/// `fsconfig(FSCONFIG_CMD_CREATE)`: the filesystem is made from the options set.
pub fn create(fs: &OwnedFd) -> io::Result<()> {
    // SAFETY: CMD_CREATE takes no pointers.
    ok(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    })
}

/// `fsmount(2)` with the given `MOUNT_ATTR_*` flags: a detached mount, visible nowhere.
pub fn fsmount(fs: &OwnedFd, attrs: u32) -> io::Result<OwnedFd> {
    // SAFETY: fsmount takes a descriptor and integers.
    fd_of(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), libc::FSMOUNT_CLOEXEC, attrs) })
}

/// `move_mount(2)`: attaches the detached mount `mnt` at `target`.
pub fn attach(mnt: &OwnedFd, target: &Path) -> io::Result<()> {
    let empty = CString::new("")?;
    let t = CString::new(target.as_os_str().as_encoded_bytes())?;
    // SAFETY: a detached mount descriptor, an empty path (with F_EMPTY_PATH) and a
    // NUL-terminated target path, all live for the call.
    ok(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
}

/// `move_mount(2)`: attaches the detached mount `mnt` on the file or directory `target`
/// (an `O_PATH` descriptor), found by no path.
pub fn attach_on(mnt: &OwnedFd, target: &impl AsRawFd) -> io::Result<()> {
    let empty = CString::new("")?;
    // SAFETY: two open descriptors and empty paths with F_EMPTY_PATH and T_EMPTY_PATH.
    ok(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            target.as_raw_fd(),
            empty.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
}

/// `open_tree(OPEN_TREE_CLONE)`: a detached copy of the mount at `path` (with its submounts
/// when `recursive`), which may be changed and attached elsewhere, in another mount
/// namespace too.
pub fn clone_tree(path: &Path, recursive: bool) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let p = CString::new(path.as_os_str().as_bytes())?;
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    // SAFETY: p is a valid NUL-terminated path for the duration of the call.
    fd_of(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            p.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | if recursive { AT_RECURSIVE } else { 0 },
        )
    })
}

/// `mount_setattr(MOUNT_ATTR_IDMAP)`: the detached mount `mnt` shows its files' owners
/// through the id mapping of user namespace `userns` (a file of uid N on disk appears as
/// the namespace's N mapped outward). Linux 5.12, for the filesystem's owner namespace's
/// root only.
pub fn set_idmap(mnt: &OwnedFd, userns: &impl AsRawFd) -> io::Result<()> {
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    let fd = u64::try_from(userns.as_raw_fd()).map_err(|_| io::Error::other("bad descriptor"))?;
    // struct mount_attr, version 0: attr_set, attr_clr, propagation, userns_fd.
    let attr: [u64; 4] = [MOUNT_ATTR_IDMAP, 0, 0, fd];
    let empty = CString::new("")?;
    // SAFETY: a 32-byte mount_attr from a valid pointer, a NUL-terminated (empty) path, and
    // descriptors open for the call's duration.
    ok(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    })
}
