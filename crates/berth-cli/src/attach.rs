//! The client side of attaching (`run` in the foreground, `start -a`, `attach`): our stdin
//! into the container, its output to our stdout/stderr, our terminal's size to its terminal,
//! signals to the container (`--sig-proxy`), and Docker's detach keys (ctrl-p ctrl-q).

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use berth_engine::attach::{self, Hello};
use nix::sys::signal::{SigSet, Signal};

/// How the session runs.
#[derive(Debug, Clone)]
pub struct Session {
    /// The container has a terminal: our stdin goes raw and our size follows it.
    pub tty: bool,
    /// Forward our stdin.
    pub stdin: bool,
    /// Forward SIGINT, SIGTERM... to the container (without a terminal).
    pub sig_proxy: bool,
    /// The key sequence that detaches (empty: none).
    pub detach_keys: Vec<u8>,
    /// The data root and container, for signal forwarding.
    pub root: PathBuf,
    /// The container's id.
    pub id: String,
}

/// Parses Docker's `--detach-keys`: comma-separated `ctrl-<letter>`, `ctrl-@`, `ctrl-[`..
/// or single characters.
pub fn parse_detach_keys(s: &str) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    if s.is_empty() {
        return Ok(out);
    }
    for k in s.split(',') {
        let k = k.trim();
        if let Some(c) = k.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [b] if b.is_ascii_lowercase() => b - b'a' + 1,
                [b] if b.is_ascii_uppercase() => b - b'A' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => anyhow::bail!("Unknown character: '{k}'"),
            };
            out.push(b);
        } else if k.len() == 1 {
            out.push(k.as_bytes()[0]);
        } else {
            anyhow::bail!("Unknown character: '{k}'");
        }
    }
    Ok(out)
}

/// Our terminal's size, when stdin is one.
pub fn terminal_size() -> Option<(u16, u16)> {
    berth_runtime::tty::window_size(std::io::stdin().as_fd())
}

/// Whether stdin is a terminal.
pub fn stdin_is_tty() -> bool {
    nix::unistd::isatty(std::io::stdin().as_fd()).unwrap_or(false)
}

/// The hello for a session.
pub fn hello(stdin: bool, tty: bool) -> Hello {
    let (rows, cols) = if tty { terminal_size().unwrap_or((0, 0)) } else { (0, 0) };
    Hello {
        stdin,
        stdout: true,
        stderr: true,
        rows,
        cols,
    }
}

/// Restores the terminal's mode when dropped.
struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    fn enter(on: bool) -> RawMode {
        if !on || !stdin_is_tty() {
            return RawMode(None);
        }
        let stdin = std::io::stdin();
        let Ok(saved) = nix::sys::termios::tcgetattr(stdin.as_fd()) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        let _ = nix::sys::termios::tcsetattr(stdin.as_fd(), nix::sys::termios::SetArg::TCSANOW, &raw);
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(std::io::stdin().as_fd(), nix::sys::termios::SetArg::TCSANOW, t);
        }
    }
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The container ended with this code.
    Exited(i32),
    /// The user detached; the container runs on.
    Detached,
    /// The monitor closed the connection without a code.
    Lost,
}

/// Runs the session to its end.
pub fn run(stream: UnixStream, s: &Session) -> anyhow::Result<End> {
    let writer = Arc::new(Mutex::new(stream.try_clone().context("cloning the attach connection")?));
    // Signals are taken by one thread, blocked everywhere else (threads inherit the mask).
    let mut set = SigSet::empty();
    set.add(Signal::SIGWINCH);
    if s.sig_proxy && !s.tty {
        // The runtime's foreground set; SIGWINCH among them stays a resize.
        for sig in berth_runtime::supervise::FORWARD {
            set.add(sig);
        }
    }
    set.thread_block().context("blocking signals")?;
    {
        let writer = Arc::clone(&writer);
        let (root, id, tty) = (s.root.clone(), s.id.clone(), s.tty);
        std::thread::spawn(move || loop {
            let Ok(sig) = set.wait() else { return };
            if sig == Signal::SIGWINCH {
                if let (true, Some((rows, cols))) = (tty, terminal_size()) {
                    if let Ok(mut w) = writer.lock() {
                        let _ = w.write_all(&attach::resize_frame(rows, cols));
                    }
                }
            } else {
                forward_signal(&root, &id, sig);
            }
        });
    }
    let _raw = RawMode::enter(s.tty && s.stdin);
    let detached = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if s.stdin {
        let writer = Arc::clone(&writer);
        let keys = s.detach_keys.clone();
        let detached = Arc::clone(&detached);
        let shut = stream.try_clone().context("cloning the attach connection")?;
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 8192];
            let mut matched = 0usize;
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        if let Ok(mut w) = writer.lock() {
                            let _ = w.write_all(&attach::frame(attach::CLOSE_STDIN, b""));
                        }
                        return;
                    }
                    Ok(n) => n,
                };
                let mut data = Vec::with_capacity(n);
                for &b in &buf[..n] {
                    if !keys.is_empty() && b == keys[matched] {
                        matched += 1;
                        if matched == keys.len() {
                            detached.store(true, std::sync::atomic::Ordering::SeqCst);
                            let _ = shut.shutdown(std::net::Shutdown::Both);
                            return;
                        }
                        continue;
                    }
                    // A partial sequence that did not complete goes through after all.
                    data.extend_from_slice(&keys[..matched]);
                    matched = 0;
                    data.push(b);
                }
                if !data.is_empty() {
                    let ok = writer
                        .lock()
                        .map(|mut w| w.write_all(&attach::frame(attach::STDIN, &data)).is_ok())
                        .unwrap_or(false);
                    if !ok {
                        return;
                    }
                }
            }
        });
    }
    let mut reader = std::io::BufReader::new(stream);
    let mut code = None;
    loop {
        match attach::read_frame(&mut reader) {
            Ok(Some((attach::STDOUT, p))) => {
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(&p);
                let _ = o.flush();
            }
            Ok(Some((attach::STDERR, p))) => {
                let _ = std::io::stderr().write_all(&p);
            }
            Ok(Some((attach::EXIT, p))) if p.len() == 4 => {
                code = Some(i32::from_be_bytes([p[0], p[1], p[2], p[3]]));
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    if detached.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(End::Detached);
    }
    Ok(code.map_or(End::Lost, End::Exited))
}

fn forward_signal(root: &Path, id: &str, sig: Signal) {
    if let Ok(e) = berth_engine::store::Engine::open(root) {
        let _ = berth_engine::ops::signal(&e, id, sig.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_like_docker() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("ctrl-a,x").unwrap(), vec![1, b'x']);
        assert_eq!(parse_detach_keys("").unwrap(), Vec::<u8>::new());
        parse_detach_keys("ctrl-1").unwrap_err();
        parse_detach_keys("abc").unwrap_err();
    }
}
