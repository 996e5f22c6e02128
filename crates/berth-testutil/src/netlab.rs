//! Two "hosts" for overlay tests: network namespaces joined by a veth (the underlay,
//! 192.168.251.1 and .2), each with a bridge `br0` and a "container" namespace on it
//! (10.99.0.2 on host A, 10.99.0.3 on host B, MACs derived from the addresses as berth
//! derives them, MTU 1450). Made with `ip`; every namespace (and so every link) is
//! deleted on drop, even when the test fails.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The lab.
#[derive(Debug)]
pub struct TwoHosts {
    /// `ip netns` names: host A, host B, container A, container B.
    pub names: [String; 4],
    /// The hosts' underlay addresses (VTEPs).
    pub vteps: [Ipv4Addr; 2],
    /// The containers' overlay addresses.
    pub ips: [Ipv4Addr; 2],
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let o = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        o.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The MAC berth gives `ip` (`02:42` and the address).
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

impl TwoHosts {
    /// Builds it; `tag` keeps its names apart from other tests'.
    pub fn new(tag: &str) -> TwoHosts {
        let id = std::process::id() % 100_000;
        let names = ["ha", "hb", "ca", "cb"].map(|n| format!("b{tag}{n}{id}"));
        let lab = TwoHosts {
            names,
            vteps: [Ipv4Addr::new(192, 168, 251, 1), Ipv4Addr::new(192, 168, 251, 2)],
            ips: [Ipv4Addr::new(10, 99, 0, 2), Ipv4Addr::new(10, 99, 0, 3)],
        };
        let [ha, hb, ca, cb] = &lab.names;
        for n in &lab.names {
            ip(&["netns", "add", n]);
        }
        ip(&[
            "-n", ha, "link", "add", "u0", "type", "veth", "peer", "name", "u0", "netns", hb,
        ]);
        for (h, vtep) in [(ha, lab.vteps[0]), (hb, lab.vteps[1])] {
            ip(&["-n", h, "addr", "add", &format!("{vtep}/24"), "dev", "u0"]);
            ip(&["-n", h, "link", "set", "u0", "up"]);
            ip(&["-n", h, "link", "add", "br0", "type", "bridge"]);
            ip(&["-n", h, "link", "set", "br0", "up"]);
        }
        for (h, c, addr) in [(ha, ca, lab.ips[0]), (hb, cb, lab.ips[1])] {
            let mac = mac_for(addr).map(|b| format!("{b:02x}")).join(":");
            ip(&[
                "-n", h, "link", "add", "v0", "type", "veth", "peer", "name", "eth0", "netns", c,
            ]);
            ip(&["-n", h, "link", "set", "v0", "master", "br0", "up"]);
            ip(&["-n", c, "link", "set", "eth0", "address", &mac]);
            ip(&["-n", c, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
            ip(&["-n", c, "link", "set", "eth0", "mtu", "1450", "up"]);
        }
        lab
    }

    /// A namespace's path (`/run/netns/NAME`), by index into `names`.
    pub fn path(&self, i: usize) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.names[i])
    }

    /// Flushes container `i`'s neighbour cache (so a removed remote is looked up again).
    pub fn flush_neighbours(&self, i: usize) {
        ip(&["-n", &self.names[2 + i], "neigh", "flush", "dev", "eth0"]);
    }

    /// Runs `f` on a thread of its own inside container `i`'s network namespace.
    pub fn in_container<T: Send>(&self, i: usize, f: impl FnOnce() -> T + Send) -> T {
        let path = self.path(2 + i);
        std::thread::scope(|s| {
            s.spawn(move || {
                let ns = std::fs::File::open(&path).expect("the container's namespace");
                // SAFETY: setns moves only this thread, with a descriptor it holds open.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "entering {}", path.display());
                f()
            })
            .join()
            .expect("a thread in the container's namespace")
        })
    }

    /// Container B listening on `port`.
    pub fn listen(&self, port: u16) -> TcpListener {
        let at = SocketAddr::from((self.ips[1], port));
        self.in_container(1, || TcpListener::bind(at).expect("listening in container B"))
    }

    /// Container B listening on `port`; the text of its first connection, from a thread.
    pub fn serve_once(&self, port: u16) -> std::thread::JoinHandle<String> {
        let l = self.listen(port);
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("a connection");
            let mut got = String::new();
            s.read_to_string(&mut got).expect("its text");
            got
        })
    }

    /// Whether container A reaches B's `port` within `wait`.
    pub fn reaches(&self, port: u16, wait: Duration) -> bool {
        let to = SocketAddr::from((self.ips[1], port));
        self.in_container(0, || TcpStream::connect_timeout(&to, wait).is_ok())
    }

    /// Container A sends `text` to B's `port` (it must connect within 5 s).
    pub fn send(&self, port: u16, text: &str) {
        let to = SocketAddr::from((self.ips[1], port));
        self.in_container(0, || {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).expect("reaching container B");
            s.write_all(text.as_bytes()).expect("sending");
        });
    }
}
