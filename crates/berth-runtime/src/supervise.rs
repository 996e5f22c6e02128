//! Foreground supervision for `run` and `exec` without `-d`: wait for the process, forward
//! signals to it, and shuttle bytes between our terminal and its pty when it has one. One
//! thread, one poll loop over a signalfd and the descriptors.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Signals forwarded to the container process.
pub const FORWARD: [Signal; 8] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

/// Blocks the forwarded signals and SIGCHLD; call before the process starts running so none
/// is lost.
pub fn block_signals() -> std::io::Result<SigSet> {
    let mut set = SigSet::empty();
    for s in FORWARD {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    set.thread_block()?;
    Ok(set)
}

fn copy(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 8192];
    match nix::unistd::read(from, &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            let mut off = 0;
            while off < n {
                match nix::unistd::write(to, &buf[off..n]) {
                    Ok(w) => off += w,
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => return false,
                }
            }
            true
        }
    }
}

fn copy_winsize(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    if let Some((rows, cols)) = crate::tty::window_size(from) {
        crate::tty::set_window_size(to, rows, cols);
    }
}

/// Waits for `pid` (our child, or reparented to us as subreaper), forwarding signals and
/// proxying `pty`. Returns the exit code as a shell reports it (128+n for a signal).
pub fn supervise(pid: i32, signals: SigSet, pty: Option<OwnedFd>) -> std::io::Result<i32> {
    supervise_stdin(pid, signals, pty, true)
}

/// [`supervise`], forwarding our stdin to the pty only when `forward_stdin` (exec `-t`
/// without `-i` shows the output but types nothing).
pub fn supervise_stdin(pid: i32, signals: SigSet, pty: Option<OwnedFd>, forward_stdin: bool) -> std::io::Result<i32> {
    let sfd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC)?;
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let saved = pty.as_ref().filter(|_| forward_stdin).and_then(|_| {
        let t = nix::sys::termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = t.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        nix::sys::termios::tcsetattr(stdin.as_fd(), nix::sys::termios::SetArg::TCSANOW, &raw).ok()?;
        Some(t)
    });
    if let Some(p) = &pty {
        copy_winsize(stdin.as_fd(), p.as_fd());
    }
    let mut code = None;
    let mut stdin_open = pty.is_some() && forward_stdin;
    let mut pty_open = pty.is_some();
    while code.is_none() || pty_open {
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(p) = &pty {
            if pty_open {
                fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
            }
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        // Once the process has exited, drain the pty briefly and stop.
        let timeout = if code.is_some() {
            PollTimeout::from(50u16)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(0) => break,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect();
        drop(fds);
        if ready[0] {
            if let Ok(Some(info)) = sfd.read_signal() {
                let signo = i32::try_from(info.ssi_signo).unwrap_or(0);
                if signo == libc::SIGCHLD {
                    loop {
                        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                            Ok(WaitStatus::Exited(p, c)) if p.as_raw() == pid => code = Some(c),
                            Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == pid => code = Some(128 + s as i32),
                            Ok(WaitStatus::StillAlive) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                } else if signo == libc::SIGWINCH {
                    if let Some(p) = &pty {
                        copy_winsize(stdin.as_fd(), p.as_fd());
                    }
                } else {
                    let _ = crate::sys::kill(pid, signo);
                }
            }
        }
        if let Some(p) = &pty {
            let mut i = 1;
            if pty_open {
                if ready.get(i) == Some(&true) && !copy(p.as_fd(), stdout.as_fd()) {
                    pty_open = false;
                }
                i += 1;
            }
            if stdin_open && ready.get(i) == Some(&true) && !copy(stdin.as_fd(), p.as_fd()) {
                stdin_open = false;
            }
        }
    }
    if let Some(t) = saved {
        let _ = nix::sys::termios::tcsetattr(stdin.as_fd(), nix::sys::termios::SetArg::TCSANOW, &t);
    }
    Ok(code.unwrap_or(255))
}
