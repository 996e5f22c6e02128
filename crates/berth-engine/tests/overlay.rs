//! Endpoints published in a real etcd and two namespace "hosts" kept in step with them:
//! each programs the other's container on its VxLAN device, TCP crosses, and a withdrawn
//! endpoint is unprogrammed on the other host.
#![allow(clippy::unwrap_used, clippy::tests_outside_test_module)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use berth_engine::cluster::Etcd;
use berth_engine::overlay::{self, Endpoint};
use berth_net::netns;
use berth_net::vxlan::{self, Vxlan};
use berth_testutil::netlab::TwoHosts;
use berth_testutil::{require_root, require_tool};

#[test]
fn hosts_program_each_others_endpoints_from_the_store() {
    require_root!();
    require_tool!("etcd");
    let etcd = berth_testutil::etcd::Etcd::start("overlay");
    let store = Etcd::parse(&etcd.url).unwrap();
    let lab = TwoHosts::new("ov");
    for h in 0..2 {
        let hp = lab.path(h);
        netns::run_in(&hp, || {
            vxlan::ensure(
                &hp,
                &Vxlan {
                    name: "vx7".into(),
                    vni: 7,
                    local: lab.vteps[h],
                    bridge: "br0".into(),
                },
            )
        })
        .unwrap();
    }
    // Each host publishes its container.
    for (i, c) in ["ctr-a", "ctr-b"].into_iter().enumerate() {
        let ep = Endpoint {
            container: c.into(),
            ip: lab.ips[i],
            vtep: lab.vteps[i],
            names: vec![c.into()],
        };
        overlay::publish(&store, "ov7", &ep).unwrap();
    }
    assert_eq!(overlay::endpoints(&store, "ov7").unwrap().len(), 2);
    // Each host syncs: it programs the other's endpoint only.
    let mut programmed = [Vec::new(), Vec::new()];
    for (h, done) in programmed.iter_mut().enumerate() {
        overlay::sync(&store, "ov7", lab.vteps[h], &lab.path(h), "vx7", done).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].ip, lab.ips[1 - h]);
    }
    let listener = netns::run_in(&lab.path(3), || Ok(TcpListener::bind("10.99.0.3:7001").unwrap())).unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).unwrap();
        got
    });
    let to: SocketAddr = "10.99.0.3:7001".parse().unwrap();
    netns::run_in(&lab.path(2), || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
        s.write_all(b"programmed-from-etcd").unwrap();
        Ok(())
    })
    .unwrap();
    assert_eq!(server.join().unwrap(), "programmed-from-etcd");

    // B's container goes: host A's sync removes it, and A reaches B no more.
    overlay::withdraw(&store, "ov7", "ctr-b").unwrap();
    overlay::sync(&store, "ov7", lab.vteps[0], &lab.path(0), "vx7", &mut programmed[0]).unwrap();
    assert!(programmed[0].is_empty());
    lab.flush_neighbours(0);
    let _l = netns::run_in(&lab.path(3), || Ok(TcpListener::bind("10.99.0.3:7002").unwrap())).unwrap();
    let to: SocketAddr = "10.99.0.3:7002".parse().unwrap();
    let reached = netns::run_in(&lab.path(2), || {
        Ok(TcpStream::connect_timeout(&to, Duration::from_millis(800)).is_ok())
    })
    .unwrap();
    assert!(!reached, "reached a withdrawn endpoint");
}
