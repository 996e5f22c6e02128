//! The channel between the runtime and the processes it forks: a `SOCK_SEQPACKET` socket
//! pair, so each message arrives whole. A message is one tag byte and a small payload; a
//! descriptor (the pty master) rides along as `SCM_RIGHTS`.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Parent -> child: go on.
    Go,
    /// Child -> parent: write my uid/gid maps (I just unshared a user namespace).
    MapIds,
    /// Child -> parent: the container process's host pid.
    Pid(i32),
    /// Child -> parent: namespaces and mounts are ready; run the createRuntime hooks.
    CreateRuntime,
    /// Child -> parent: here is the pty master (descriptor attached).
    Console,
    /// Child -> parent: about to wait for start (create) or to exec (exec).
    Ready,
    /// Parent -> child: createRuntime hooks ran; here is the OCI state for later hooks.
    State(String),
    /// Either way: it failed, with the message and the exit code Docker gives such a
    /// failure (127, 126; 0: none in particular).
    Error {
        /// 127, 126 or 0.
        code: u8,
        /// What failed, with its causes.
        message: String,
    },
}

impl Msg {
    fn encode(&self) -> Vec<u8> {
        match self {
            Msg::Go => vec![b'g'],
            Msg::MapIds => vec![b'm'],
            Msg::Pid(p) => {
                let mut v = vec![b'p'];
                v.extend_from_slice(&p.to_le_bytes());
                v
            }
            Msg::CreateRuntime => vec![b'h'],
            Msg::Console => vec![b'c'],
            Msg::Ready => vec![b'r'],
            Msg::State(s) => {
                let mut v = vec![b's'];
                v.extend_from_slice(s.as_bytes());
                v
            }
            Msg::Error { code, message } => {
                let mut v = vec![b'e', *code];
                v.extend_from_slice(message.as_bytes());
                v
            }
        }
    }

    fn decode(b: &[u8]) -> io::Result<Msg> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad sync message");
        Ok(match b.first().ok_or_else(bad)? {
            b'g' => Msg::Go,
            b'm' => Msg::MapIds,
            b'p' => Msg::Pid(i32::from_le_bytes(
                b.get(1..5).ok_or_else(bad)?.try_into().map_err(|_| bad())?,
            )),
            b'h' => Msg::CreateRuntime,
            b'c' => Msg::Console,
            b'r' => Msg::Ready,
            b's' => Msg::State(String::from_utf8_lossy(&b[1..]).into_owned()),
            b'e' => Msg::Error {
                code: *b.get(1).ok_or_else(bad)?,
                message: String::from_utf8_lossy(b.get(2..).unwrap_or_default()).into_owned(),
            },
            _ => return Err(bad()),
        })
    }
}

/// One end of the channel.
#[derive(Debug)]
pub struct Chan(pub OwnedFd);

/// Makes a connected pair (parent end, child end), both close-on-exec.
pub fn pair() -> io::Result<(Chan, Chan)> {
    let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
    Ok((Chan(a), Chan(b)))
}

impl Chan {
    /// Sends a message.
    pub fn send(&self, msg: &Msg) -> io::Result<()> {
        self.send_with_fd(msg, None)
    }

    /// Sends a message with a descriptor attached.
    pub fn send_with_fd(&self, msg: &Msg, fd: Option<RawFd>) -> io::Result<()> {
        let data = msg.encode();
        let iov = [IoSlice::new(&data)];
        let fds = fd.map(|f| [f]);
        let cmsg: Vec<ControlMessage<'_>> = fds.iter().map(|f| ControlMessage::ScmRights(f)).collect();
        sendmsg::<()>(self.0.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)?;
        Ok(())
    }

    /// Receives a message (and a descriptor, if one came). End of file (every peer gone)
    /// is `UnexpectedEof`.
    pub fn recv(&self) -> io::Result<(Msg, Option<OwnedFd>)> {
        let mut buf = vec![0u8; 8192];
        let mut cbuf = nix::cmsg_space!([RawFd; 1]);
        let (n, fd) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let m = loop {
                match recvmsg::<()>(
                    self.0.as_raw_fd(),
                    &mut iov,
                    Some(&mut cbuf),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                ) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    r => break r?,
                }
            };
            let mut fd = None;
            for c in m.cmsgs()? {
                if let ControlMessageOwned::ScmRights(fds) = c {
                    for f in fds {
                        // SAFETY: SCM_RIGHTS installed this descriptor in our table; we own it.
                        fd = Some(unsafe { OwnedFd::from_raw_fd(f) });
                    }
                }
            }
            (m.bytes, fd)
        };
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer exited"));
        }
        Ok((Msg::decode(&buf[..n])?, fd))
    }

    /// Receives and requires `want`; an `Error` message becomes an error.
    pub fn expect(&self, want: &Msg) -> io::Result<()> {
        match self.recv()?.0 {
            m if &m == want => Ok(()),
            Msg::Error { message, .. } => Err(io::Error::other(message)),
            m => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected {want:?}, got {m:?}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_with_fd() {
        let (a, b) = pair().unwrap();
        for m in [
            Msg::Go,
            Msg::Pid(-5),
            Msg::Error {
                code: 127,
                message: "boom".into(),
            },
            Msg::Ready,
        ] {
            a.send(&m).unwrap();
            assert_eq!(b.recv().unwrap().0, m);
        }
        let f = std::fs::File::open("/dev/null").unwrap();
        a.send_with_fd(&Msg::Console, Some(f.as_raw_fd())).unwrap();
        let (m, fd) = b.recv().unwrap();
        assert_eq!(m, Msg::Console);
        assert!(fd.is_some());
        drop(a);
        assert_eq!(b.recv().unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
