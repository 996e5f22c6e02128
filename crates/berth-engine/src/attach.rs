//! Attaching to a container: its monitor listens on `attach.sock` in the container's
//! directory; a client (a foreground `run`, `start -a`, `attach`, later the API's hijacked
//! connections) connects and speaks in frames shaped like Docker's multiplexed stream: a
//! one-byte kind, three zero bytes, a big-endian u32 length, the payload.
//!
//! Client to monitor: [`HELLO`] first (which streams it wants, and its terminal size),
//! then [`STDIN`] data, [`CLOSE_STDIN`], [`RESIZE`]. Monitor to client: [`STDOUT`],
//! [`STDERR`] (a container with a terminal only has stdout) and, last, [`EXIT`] with the
//! exit code, sent once the container has ended (and, with `--rm`, is gone).
//!
//! The monitor never blocks on a client: each has an output buffer, and a client that falls
//! [`CLIENT_BUFFER`] behind is disconnected rather than stalling the container.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// Bytes for the container's stdin.
pub const STDIN: u8 = 0;
/// The container's stdout (or its terminal).
pub const STDOUT: u8 = 1;
/// The container's stderr.
pub const STDERR: u8 = 2;
/// The client's stdin ended.
pub const CLOSE_STDIN: u8 = 3;
/// The client's terminal size: rows and columns, u16 each.
pub const RESIZE: u8 = 4;
/// The container's exit code, i32.
pub const EXIT: u8 = 5;
/// What the client wants: [`Hello`].
pub const HELLO: u8 = 6;

/// How far a client may fall behind before it is dropped.
pub const CLIENT_BUFFER: usize = 8 << 20;
/// The largest frame accepted from a client.
const MAX_FRAME: usize = 1 << 20;

/// The socket's file name in the container's directory.
pub const SOCKET: &str = "attach.sock";

/// A client's first frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hello {
    /// Forward the client's stdin.
    pub stdin: bool,
    /// Send stdout.
    pub stdout: bool,
    /// Send stderr.
    pub stderr: bool,
    /// Terminal rows (0: unknown).
    pub rows: u16,
    /// Terminal columns (0: unknown).
    pub cols: u16,
}

impl Hello {
    fn encode(&self) -> Vec<u8> {
        let mut p = vec![u8::from(self.stdin), u8::from(self.stdout), u8::from(self.stderr)];
        p.extend_from_slice(&self.rows.to_be_bytes());
        p.extend_from_slice(&self.cols.to_be_bytes());
        p
    }

    fn decode(p: &[u8]) -> Option<Hello> {
        if p.len() < 7 {
            return None;
        }
        Some(Hello {
            stdin: p[0] != 0,
            stdout: p[1] != 0,
            stderr: p[2] != 0,
            rows: u16::from_be_bytes([p[3], p[4]]),
            cols: u16::from_be_bytes([p[5], p[6]]),
        })
    }
}

/// One frame's bytes.
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut f = Vec::with_capacity(8 + payload.len());
    f.extend_from_slice(&[kind, 0, 0, 0]);
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&payload[..len as usize]);
    f
}

/// A resize frame.
pub fn resize_frame(rows: u16, cols: u16) -> Vec<u8> {
    let mut p = rows.to_be_bytes().to_vec();
    p.extend_from_slice(&cols.to_be_bytes());
    frame(RESIZE, &p)
}

/// Reads one frame; `None` at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some((head[0], payload)))
}

/// Splits the first complete frame off `buf`.
fn take_frame(buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    if buf.len() < 8 {
        return None;
    }
    let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    if buf.len() < 8 + len {
        return None;
    }
    let kind = buf[0];
    let payload = buf[8..8 + len].to_vec();
    buf.drain(..8 + len);
    Some((kind, payload))
}

/// A path to `name` in `dir` short enough for a socket address however long `dir` is:
/// through `/proc/self/fd` of an open descriptor of the directory.
fn short_path(dir: &Path, name: &str) -> std::io::Result<(std::fs::File, String)> {
    let d = std::fs::File::open(dir)?;
    let p = format!("/proc/self/fd/{}/{name}", d.as_raw_fd());
    Ok((d, p))
}

/// Connects to the monitor of the container whose directory is `dir` and says hello.
pub fn connect(dir: &Path, hello: &Hello) -> std::io::Result<UnixStream> {
    let (_d, p) = short_path(dir, SOCKET)?;
    let mut s = UnixStream::connect(p)?;
    s.write_all(&frame(HELLO, &hello.encode()))?;
    Ok(s)
}

/// The container's stdin as the monitor holds it: a pipe's write end or the pty master,
/// written without blocking.
#[derive(Debug, Default)]
pub struct StdinSink {
    /// The descriptor; `None` once closed (or when the container has no open stdin).
    pub fd: Option<OwnedFd>,
    pending: Vec<u8>,
    close_after: bool,
    /// Close stdin when the first attached stdin ends (Docker's `StdinOnce`).
    pub once: bool,
    /// The fd is a terminal: never closed, since that would not end its input.
    pub tty: bool,
}

impl StdinSink {
    /// A sink, closed until given a descriptor.
    pub fn new(once: bool, tty: bool) -> StdinSink {
        StdinSink {
            once,
            tty,
            ..StdinSink::default()
        }
    }

    /// Whether there is data waiting to be written.
    pub fn wants_write(&self) -> bool {
        self.fd.is_some() && !self.pending.is_empty()
    }

    fn push(&mut self, data: &[u8]) {
        if self.fd.is_some() && self.pending.len() < CLIENT_BUFFER {
            self.pending.extend_from_slice(data);
            self.flush();
        }
    }

    /// Writes what it can.
    pub fn flush(&mut self) {
        if let Some(fd) = &self.fd {
            while !self.pending.is_empty() {
                match nix::unistd::write(fd, &self.pending) {
                    Ok(n) => {
                        self.pending.drain(..n);
                    }
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(nix::errno::Errno::EAGAIN) => return,
                    Err(_) => {
                        self.pending.clear();
                        self.fd = None;
                        return;
                    }
                }
            }
        }
        if self.close_after && self.pending.is_empty() && !self.tty {
            self.fd = None;
        }
    }

    fn end(&mut self) {
        if self.once {
            self.close_after = true;
            self.flush();
        }
    }
}

#[derive(Debug)]
struct Client {
    s: UnixStream,
    hello: Option<Hello>,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    stdin_ended: bool,
    gone: bool,
}

/// The monitor's side: the listening socket and the attached clients.
#[derive(Debug, Default)]
pub struct Hub {
    listener: Option<UnixListener>,
    clients: Vec<Client>,
    /// The latest terminal size a client asked for.
    pub size: Option<(u16, u16)>,
}

impl Hub {
    /// Listens on `attach.sock` in `dir`.
    pub fn listen(dir: &Path) -> std::io::Result<Hub> {
        let (_d, p) = short_path(dir, SOCKET)?;
        let _ = std::fs::remove_file(&p);
        let l = UnixListener::bind(&p)?;
        l.set_nonblocking(true)?;
        Ok(Hub {
            listener: Some(l),
            ..Hub::default()
        })
    }

    /// Waits up to `timeout` for a client to connect and say hello (a foreground `run`
    /// attaches before the container starts, so it misses none of the output).
    pub fn wait_for_client(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.clients.iter().any(|c| c.hello.is_some()) {
                return true;
            }
            let mut fds = self.fds();
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
            drop(fds);
            self.service(&mut StdinSink::default(), None);
        }
        self.clients.iter().any(|c| c.hello.is_some())
    }

    /// The descriptors to poll: the listener, then each client (for reading, and for writing
    /// while it has output waiting).
    pub fn fds(&self) -> Vec<nix::poll::PollFd<'_>> {
        use nix::poll::{PollFd, PollFlags};
        let mut v = Vec::new();
        if let Some(l) = &self.listener {
            v.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
        }
        for c in &self.clients {
            let mut f = PollFlags::POLLIN;
            if !c.out.is_empty() {
                f |= PollFlags::POLLOUT;
            }
            v.push(PollFd::new(c.s.as_fd(), f));
        }
        v
    }

    /// Accepts new clients, reads what clients sent (stdin goes to `stdin`, resizes to
    /// `console`), writes what is waiting for them, and drops the ones that left.
    pub fn service(&mut self, stdin: &mut StdinSink, console: Option<BorrowedFd<'_>>) {
        if let Some(l) = &self.listener {
            while let Ok((s, _)) = l.accept() {
                if s.set_nonblocking(true).is_ok() {
                    self.clients.push(Client {
                        s,
                        hello: None,
                        inbuf: Vec::new(),
                        out: Vec::new(),
                        stdin_ended: false,
                        gone: false,
                    });
                }
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        let mut size = self.size;
        for c in &mut self.clients {
            if c.gone {
                continue;
            }
            let mut gone = false;
            loop {
                match c.s.read(&mut chunk) {
                    Ok(0) => {
                        gone = true;
                        break;
                    }
                    Ok(n) => c.inbuf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        gone = true;
                        break;
                    }
                }
                if c.inbuf.len() > MAX_FRAME + 8 {
                    gone = true;
                    break;
                }
            }
            while let Some((kind, p)) = take_frame(&mut c.inbuf) {
                match kind {
                    HELLO if c.hello.is_none() => {
                        c.hello = Hello::decode(&p);
                        if let Some(h) = c.hello {
                            if h.rows > 0 && h.cols > 0 {
                                size = Some((h.rows, h.cols));
                                apply_size(console, h.rows, h.cols);
                            }
                        }
                    }
                    STDIN if c.hello.is_some_and(|h| h.stdin) => stdin.push(&p),
                    CLOSE_STDIN if c.hello.is_some_and(|h| h.stdin) && !c.stdin_ended => {
                        c.stdin_ended = true;
                        stdin.end();
                    }
                    RESIZE if p.len() >= 4 => {
                        let (rows, cols) = (u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]]));
                        size = Some((rows, cols));
                        apply_size(console, rows, cols);
                    }
                    _ => {}
                }
            }
            if gone {
                if c.hello.is_some_and(|h| h.stdin) && !c.stdin_ended {
                    c.stdin_ended = true;
                    stdin.end();
                }
                let _ = c.s.shutdown(std::net::Shutdown::Both);
                c.gone = true;
                continue;
            }
            flush_client(c);
        }
        self.size = size;
        self.clients.retain(|c| !c.gone);
    }

    /// Queues container output for the clients that want that stream.
    pub fn broadcast(&mut self, kind: u8, data: &[u8]) {
        if self.clients.is_empty() {
            return;
        }
        let f = frame(kind, data);
        for c in &mut self.clients {
            let wants = c
                .hello
                .is_some_and(|h| if kind == STDERR { h.stderr } else { h.stdout });
            if !wants {
                continue;
            }
            if c.out.len() + f.len() > CLIENT_BUFFER {
                // Too far behind: let it go rather than hold up the container.
                let _ = c.s.shutdown(std::net::Shutdown::Both);
                c.out.clear();
                c.gone = true;
                continue;
            }
            c.out.extend_from_slice(&f);
            flush_client(c);
        }
    }

    /// Sends the exit code to every client, waits (briefly) for their output to go out, and
    /// closes them.
    pub fn finish(&mut self, code: i32) {
        let deadline = Instant::now() + Duration::from_secs(5);
        for mut c in self.clients.drain(..) {
            if c.hello.is_none() || c.gone {
                continue;
            }
            c.out.extend_from_slice(&frame(EXIT, &code.to_be_bytes()));
            let _ = c.s.set_nonblocking(false);
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(10));
            let _ = c.s.set_write_timeout(Some(left));
            let _ = c.s.write_all(&c.out);
            let _ = c.s.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn flush_client(c: &mut Client) {
    while !c.out.is_empty() {
        match c.s.write(&c.out) {
            Ok(0) => return,
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// A new terminal (master, slave), for a front end that runs a process on one.
pub fn open_pty() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    berth_runtime::tty::open_pty()
}

/// Sets a terminal's size.
pub fn apply_size(console: Option<BorrowedFd<'_>>, rows: u16, cols: u16) {
    if let Some(fd) = console {
        berth_runtime::tty::set_window_size(fd, rows, cols);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = frame(STDOUT, b"hello");
        buf.extend(resize_frame(24, 80));
        buf.extend(frame(EXIT, &7i32.to_be_bytes()));
        let mut r = std::io::Cursor::new(buf.clone());
        assert_eq!(read_frame(&mut r).unwrap(), Some((STDOUT, b"hello".to_vec())));
        assert_eq!(read_frame(&mut r).unwrap(), Some((RESIZE, vec![0, 24, 0, 80])));
        assert_eq!(read_frame(&mut r).unwrap(), Some((EXIT, 7i32.to_be_bytes().to_vec())));
        assert_eq!(read_frame(&mut r).unwrap(), None);
        let mut b = buf[..10].to_vec();
        assert_eq!(take_frame(&mut b), None, "an incomplete frame stays");
        let h = Hello {
            stdin: true,
            stdout: true,
            stderr: false,
            rows: 40,
            cols: 120,
        };
        assert_eq!(Hello::decode(&h.encode()), Some(h));
        assert_eq!(Hello::decode(&[1, 1]), None);
    }

    #[test]
    fn a_client_gets_output_and_the_exit_code_over_a_long_path() {
        let base = std::env::temp_dir().join(format!("berth-attach-{}", std::process::id()));
        let dir = base.join("d".repeat(120));
        std::fs::create_dir_all(&dir).unwrap();
        let mut hub = Hub::listen(&dir).unwrap();
        let hello = Hello {
            stdin: true,
            stdout: true,
            stderr: true,
            rows: 0,
            cols: 0,
        };
        let mut c = connect(&dir, &hello).unwrap();
        assert!(hub.wait_for_client(Duration::from_secs(5)));
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut sink = StdinSink::new(true, false);
        sink.fd = Some(w);
        c.write_all(&frame(STDIN, b"typed")).unwrap();
        c.write_all(&frame(CLOSE_STDIN, b"")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while sink.fd.is_some() && Instant::now() < deadline {
            hub.service(&mut sink, None);
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut got = String::new();
        std::fs::File::from(r).read_to_string(&mut got).unwrap();
        assert_eq!(got, "typed", "stdin arrives and, with StdinOnce, is closed after");
        hub.broadcast(STDERR, b"err\n");
        hub.finish(3);
        assert_eq!(read_frame(&mut c).unwrap(), Some((STDERR, b"err\n".to_vec())));
        assert_eq!(read_frame(&mut c).unwrap(), Some((EXIT, 3i32.to_be_bytes().to_vec())));
        assert_eq!(read_frame(&mut c).unwrap(), None);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
