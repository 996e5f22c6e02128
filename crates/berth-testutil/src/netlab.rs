//! Two "hosts" for overlay tests: network namespaces joined by a veth (the underlay,
//! 192.168.251.1 and .2), each with a bridge `br0` and a "container" namespace on it
//! (10.99.0.2 on host A, 10.99.0.3 on host B, MACs derived from the addresses as berth
//! derives them, MTU 1450). Made with `ip`; every namespace (and so every link) is
//! deleted on drop, even when the test fails.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

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
}
