//! A minimal init for PID 1 (`--init`), in the manner of tini: the container's command
//! runs as its child; the init passes on every signal it gets, reaps every process that
//! is reparented to it, and exits with the command's exit code (128+n for a signal).
//!
//! With berth's runtime the container's stage-2 process becomes the init: it forks just
//! before the exec, so nothing has to be mounted into the container. Before it settles it
//! closes every descriptor above stdio and makes itself non-dumpable, so no host
//! descriptor stays reachable through `/proc/1/fd`. With an external runtime the static
//! berth binary is mounted at [`PATH`] and run as `berth-init -- CMD...`.

use std::ffi::CString;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Where the init binary is mounted for external runtimes.
pub const PATH: &str = "/sbin/berth-init";

/// The annotation that asks berth's runtime for the init.
pub const ANNOTATION: &str = "run.berth.init";

/// Forks: the child returns (with the signal mask as it was, in its own process group,
/// and in the terminal's foreground when stdin is one) and goes on to exec the command;
/// the parent becomes the init and never returns.
pub fn fork_init() -> Result<(), crate::sys::SysError> {
    let all = SigSet::all();
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&all), Some(&mut old))
        .map_err(crate::sys::errno("blocking signals"))?;
    // SAFETY: the process is single-threaded here (the runtime's stage 2).
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
            if nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
                // SAFETY: ignoring SIGTTOU for the tcsetpgrp below; restored right after.
                unsafe { libc::signal(libc::SIGTTOU, libc::SIG_IGN) };
                let _ = nix::unistd::tcsetpgrp(std::io::stdin(), nix::unistd::getpgrp());
                // SAFETY: as above.
                unsafe { libc::signal(libc::SIGTTOU, libc::SIG_DFL) };
            }
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None)
                .map_err(crate::sys::errno("restoring the signal mask"))?;
            Ok(())
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            // SAFETY: closes descriptors by number; nothing in this process uses them again.
            unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
            let _ = nix::sys::prctl::set_dumpable(false);
            let _ = nix::sys::prctl::set_name(c"berth-init");
            hide_cmdline("berth-init");
            supervise(child.as_raw())
        }
        Err(e) => Err(crate::sys::errno("fork")(e)),
    }
}

/// Overwrites this process's argument area with `title`: the init was forked from the
/// runtime's caller without an exec, and its `/proc/1/cmdline` would otherwise show the
/// caller's command line (host paths, the data root) to the container.
fn hide_cmdline(title: &str) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the command name (which may hold spaces); arg_start and arg_end are
    // fields 48 and 49 of proc(5), so 45 and 46 counted from field 3.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let (Some(start), Some(end)) = (
        f.get(45).and_then(|v| v.parse::<usize>().ok()),
        f.get(46).and_then(|v| v.parse::<usize>().ok()),
    ) else {
        return;
    };
    if end <= start {
        return;
    }
    let len = end - start;
    let mut bytes = title.as_bytes().to_vec();
    bytes.truncate(len.saturating_sub(1));
    // SAFETY: [start, end) is this process's own argument strings, on its stack, mapped
    // writable; the process is single-threaded (just forked) and nothing reads argv again.
    unsafe {
        std::ptr::write_bytes(start as *mut u8, 0, len);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), start as *mut u8, bytes.len());
    }
}

/// The annotation that makes the container's process the runtime's own pause (a pod's
/// infra): stage 2 waits there instead of executing the command.
pub const PAUSE_ANNOTATION: &str = "run.berth.pause";

/// The pause: holds the container's namespaces, reaps what is re-parented to it, and ends
/// on SIGTERM or SIGINT. It first re-executes the runtime's binary as `berth-pause`, so
/// nothing the create touched stays mapped (a static binary needs nothing from the empty
/// rootfs); where that exec fails (a dynamically linked build) it sheds what it can and
/// waits where it is.
pub fn pause() -> ! {
    let argv = [c"berth-pause"];
    let env: [&std::ffi::CStr; 0] = [];
    let _ = nix::unistd::execve(c"/proc/self/exe", &argv, &env);
    hide_cmdline("berth-pause");
    pause_loop()
}

/// The pause's wait (`berth-pause`, as the binary re-executed by [`pause`] starts): every
/// signal blocked and taken by `sigwait`, what the start faulted in shed.
pub fn pause_loop() -> ! {
    let all = SigSet::all();
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), None);
    let _ = nix::sys::prctl::set_name(c"berth-pause");
    let shed = crate::shed::Shedder::default();
    loop {
        // Right before the wait, so only the wait's own pages come back.
        shed.shed();
        let mut sig: libc::c_int = 0;
        // SAFETY: a valid signal set and a place for the signal's number.
        if unsafe { libc::sigwait(all.as_ref(), &mut sig) } != 0 {
            continue;
        }
        if sig == libc::SIGTERM || sig == libc::SIGINT {
            crate::sys::child_exit(0);
        }
        while let Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) =
            waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG))
        {}
    }
}

/// The init's loop: every signal but SIGCHLD goes to the child; SIGCHLD reaps. Exits with
/// the child's code when it ends.
fn supervise(child: i32) -> ! {
    let all = SigSet::all();
    loop {
        let sig = all.wait().unwrap_or(Signal::SIGCHLD);
        if sig != Signal::SIGCHLD {
            let _ = crate::sys::kill(child, sig as i32);
            continue;
        }
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, c)) if p.as_raw() == child => crate::sys::child_exit(c),
                Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == child => crate::sys::child_exit(128 + s as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

/// `berth-init [--] CMD [ARG...]`: the init as its own binary (for external runtimes).
pub fn main(args: &[String]) -> ! {
    let args: Vec<&String> = args.iter().skip_while(|a| *a == "--").collect();
    let Some(first) = args.first() else {
        eprintln!("berth-init: usage: berth-init -- COMMAND [ARG...]");
        crate::sys::child_exit(1)
    };
    if let Err(e) = fork_init() {
        eprintln!("berth-init: {e}");
        crate::sys::child_exit(1)
    }
    let argv: Vec<CString> = args.iter().filter_map(|a| CString::new(a.as_bytes()).ok()).collect();
    let file = CString::new(first.as_bytes()).unwrap_or_default();
    crate::process::reset_signal_dispositions();
    let e = nix::unistd::execvp(&file, &argv)
        .err()
        .unwrap_or(nix::errno::Errno::EINVAL);
    eprintln!("berth-init: exec {first}: {e}");
    crate::sys::child_exit(if e == nix::errno::Errno::ENOENT { 127 } else { 126 })
}
