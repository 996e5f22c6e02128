//! The overlay's data path between two "hosts" (network namespaces joined by a veth, the
//! underlay): each has a bridge and a VxLAN device made by berth-net, and a "container"
//! namespace on the bridge. With the remote endpoint programmed (FDB and neighbour
//! entries), TCP crosses the tunnel; with it removed, nothing does.
#![allow(clippy::unwrap_used, clippy::tests_outside_test_module)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use berth_net::netns;
use berth_net::vxlan::{self, Remote, Vxlan};
use berth_testutil::require_root;

/// The namespaces the test made (`ip netns` names), deleted even if it fails: their links
/// go with them.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let o = Command::new("ip").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn path(ns: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(ns)
}

#[test]
fn two_hosts_reach_each_other_over_a_vxlan_programmed_by_hand() {
    require_root!();
    let tag = std::process::id() % 100_000;
    let (ha, hb, ca, cb) = (
        format!("bvxha{tag}"),
        format!("bvxhb{tag}"),
        format!("bvxca{tag}"),
        format!("bvxcb{tag}"),
    );
    let _guard = Namespaces(vec![ca.clone(), cb.clone(), ha.clone(), hb.clone()]);
    for n in [&ha, &hb, &ca, &cb] {
        ip(&["netns", "add", n]);
    }
    // The underlay: 192.168.251.1 and .2.
    ip(&[
        "-n", &ha, "link", "add", "u0", "type", "veth", "peer", "name", "u0", "netns", &hb,
    ]);
    let underlay = [(&ha, "192.168.251.1/24"), (&hb, "192.168.251.2/24")];
    for (h, addr) in underlay {
        ip(&["-n", h, "addr", "add", addr, "dev", "u0"]);
        ip(&["-n", h, "link", "set", "u0", "up"]);
        ip(&["-n", h, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", h, "link", "set", "br0", "up"]);
    }
    // The containers: 10.99.0.2 on host A, 10.99.0.3 on host B, with MACs of their own.
    let macs = [[0x02, 0x42, 0x0a, 0x63, 0, 2], [0x02, 0x42, 0x0a, 0x63, 0, 3]];
    let mac_text = |m: &[u8; 6]| m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    for ((h, c), (addr, mac)) in [(&ha, &ca), (&hb, &cb)]
        .into_iter()
        .zip([("10.99.0.2/24", &macs[0]), ("10.99.0.3/24", &macs[1])])
    {
        ip(&[
            "-n", h, "link", "add", "v0", "type", "veth", "peer", "name", "eth0", "netns", c,
        ]);
        ip(&["-n", h, "link", "set", "v0", "master", "br0", "up"]);
        ip(&["-n", c, "link", "set", "eth0", "address", &mac_text(mac)]);
        ip(&["-n", c, "addr", "add", addr, "dev", "eth0"]);
        ip(&["-n", c, "link", "set", "eth0", "mtu", "1450", "up"]);
    }
    // The VxLAN devices, made from inside each host (their sockets on its underlay).
    let vtep = [Ipv4Addr::new(192, 168, 251, 1), Ipv4Addr::new(192, 168, 251, 2)];
    for (h, local) in [(&ha, vtep[0]), (&hb, vtep[1])] {
        let hp = path(h);
        netns::run_in(&hp, || {
            vxlan::ensure(
                &hp,
                &Vxlan {
                    name: "vx42".into(),
                    vni: 42,
                    local,
                    bridge: "br0".into(),
                },
            )
        })
        .unwrap();
    }
    let a = Remote {
        ip: Ipv4Addr::new(10, 99, 0, 2),
        mac: macs[0],
        host: vtep[0],
    };
    let b = Remote {
        ip: Ipv4Addr::new(10, 99, 0, 3),
        mac: macs[1],
        host: vtep[1],
    };
    vxlan::add_remote(&path(&ha), "vx42", &b).unwrap();
    vxlan::add_remote(&path(&hb), "vx42", &a).unwrap();
    // Again is no error.
    vxlan::add_remote(&path(&ha), "vx42", &b).unwrap();
    let fdb = Command::new("bridge")
        .args(["-n", &ha, "fdb", "show", "dev", "vx42"])
        .output()
        .unwrap();
    let fdb = String::from_utf8_lossy(&fdb.stdout).into_owned();
    assert!(
        fdb.contains(&mac_text(&macs[1])) && fdb.contains("dst 192.168.251.2"),
        "{fdb}"
    );

    // TCP from container A to container B, across the tunnel.
    let listener = netns::run_in(&path(&cb), || Ok(TcpListener::bind("10.99.0.3:7777").unwrap())).unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).unwrap();
        got
    });
    let to: SocketAddr = "10.99.0.3:7777".parse().unwrap();
    netns::run_in(&path(&ca), || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
        s.write_all(b"over-the-overlay").unwrap();
        Ok(())
    })
    .unwrap();
    assert_eq!(server.join().unwrap(), "over-the-overlay");

    // Removed, the remote is unreachable (nothing learns it back); removing again is no
    // error.
    vxlan::remove_remote(&path(&ha), "vx42", &b).unwrap();
    vxlan::remove_remote(&path(&ha), "vx42", &b).unwrap();
    ip(&["-n", &ca, "neigh", "flush", "dev", "eth0"]);
    let _listener = netns::run_in(&path(&cb), || Ok(TcpListener::bind("10.99.0.3:7778").unwrap())).unwrap();
    let to: SocketAddr = "10.99.0.3:7778".parse().unwrap();
    let reached = netns::run_in(&path(&ca), || {
        Ok(TcpStream::connect_timeout(&to, Duration::from_millis(800)).is_ok())
    })
    .unwrap();
    assert!(!reached, "reached B with its entries removed");
}
