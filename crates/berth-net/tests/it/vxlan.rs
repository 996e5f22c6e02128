//! The overlay's data path between two "hosts" (network namespaces joined by a veth, the
//! underlay): each has a bridge and a VxLAN device made by berth-net, and a "container"
//! namespace on the bridge. With the remote endpoint programmed (FDB and neighbour
//! entries), TCP crosses the tunnel; with it removed, nothing does.

use std::process::Command;
use std::time::Duration;

use berth_net::netns;
use berth_net::vxlan::{self, Remote, Vxlan};
use berth_testutil::netlab::{mac_for, TwoHosts};
use berth_testutil::require_root;

#[test]
fn two_hosts_reach_each_other_over_a_vxlan_programmed_by_hand() {
    require_root!();
    let lab = TwoHosts::new("vx");
    // The VxLAN devices, made from inside each host (their sockets on its underlay).
    for h in 0..2 {
        let hp = lab.path(h);
        netns::run_in(&hp, || {
            vxlan::ensure(
                &hp,
                &Vxlan {
                    name: "vx42".into(),
                    vni: 42,
                    local: lab.vteps[h],
                    bridge: "br0".into(),
                },
            )
        })
        .unwrap();
    }
    let remote = |i: usize| Remote {
        ip: lab.ips[i],
        mac: mac_for(lab.ips[i]),
        host: lab.vteps[i],
    };
    vxlan::add_remote(&lab.path(0), "vx42", &remote(1)).unwrap();
    vxlan::add_remote(&lab.path(1), "vx42", &remote(0)).unwrap();
    // Again is no error.
    vxlan::add_remote(&lab.path(0), "vx42", &remote(1)).unwrap();
    let fdb = Command::new("bridge")
        .args(["-n", &lab.names[0], "fdb", "show", "dev", "vx42"])
        .output()
        .unwrap();
    let fdb = String::from_utf8_lossy(&fdb.stdout).into_owned();
    assert!(
        fdb.contains("02:42:0a:63:00:03") && fdb.contains("dst 192.168.251.2"),
        "{fdb}"
    );

    // TCP from container A to container B, across the tunnel.
    let server = lab.serve_once(7777);
    lab.send(7777, "over-the-overlay");
    assert_eq!(server.join().unwrap(), "over-the-overlay");

    // Removed, the remote is unreachable (nothing learns it back); removing again is no
    // error.
    vxlan::remove_remote(&lab.path(0), "vx42", &remote(1)).unwrap();
    vxlan::remove_remote(&lab.path(0), "vx42", &remote(1)).unwrap();
    lab.flush_neighbours(0);
    let _listener = lab.listen(7778);
    assert!(
        !lab.reaches(7778, Duration::from_millis(800)),
        "reached B with its entries removed"
    );
}
