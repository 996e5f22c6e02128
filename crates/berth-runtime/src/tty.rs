//! Terminals, for every layer that handles one (the runtime's console, the monitor's attach,
//! the CLI's `-t`, the daemon's TTY execs): a new pty pair, and reading or setting a
//! terminal's window size.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::fcntl::{FcntlArg, FdFlag};

/// A new terminal: (master, slave), both close-on-exec.
pub fn open_pty() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let pair = nix::pty::openpty(None, None)?;
    for fd in [&pair.master, &pair.slave] {
        nix::fcntl::fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    }
    Ok((pair.master, pair.slave))
}

/// The window size of terminal `fd` (rows, columns), if it is a terminal with a size.
pub fn window_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into ws, which is valid for writes.
    let ok = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &raw mut ws) } == 0;
    (ok && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Sets the window size of terminal `fd`; a descriptor that is not a terminal is left alone.
pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from ws, which is valid for reads.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &raw const ws) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_new_terminal_takes_and_reports_its_size() {
        let (master, slave) = open_pty().unwrap();
        set_window_size(master.as_fd(), 40, 132);
        assert_eq!(window_size(slave.as_fd()), Some((40, 132)));
        let null = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(window_size(null.as_fd()), None);
        set_window_size(null.as_fd(), 1, 1); // not a terminal: nothing happens
    }
}
