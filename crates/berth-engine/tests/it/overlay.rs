//! Endpoints published in a real etcd and two namespace "hosts" kept in step with them:
//! each programs the other's container on its VxLAN device, TCP crosses, and a withdrawn
//! endpoint is unprogrammed on the other host.

use std::time::Duration;

use berth_engine::cluster::Etcd;
use berth_engine::overlay::{self, Endpoint};
use berth_net::netns;
use berth_net::vxlan::{self, Vxlan};
use berth_testutil::netlab::TwoHosts;
use berth_testutil::{require_root, require_tool};

/// A VxLAN device `name` for `vni` on each host's bridge, made from inside the host.
fn devices(lab: &TwoHosts, name: &str, vni: u32) {
    for h in 0..2 {
        let hp = lab.path(h);
        netns::run_in(&hp, || {
            vxlan::ensure(
                &hp,
                &Vxlan {
                    name: name.into(),
                    vni,
                    local: lab.vteps[h],
                    bridge: "br0".into(),
                },
            )
        })
        .unwrap();
    }
}

#[test]
fn hosts_program_each_others_endpoints_from_the_store() {
    require_root!();
    require_tool!("etcd");
    let etcd = berth_testutil::etcd::Etcd::start("overlay");
    let store = Etcd::parse(&etcd.url).unwrap();
    let lab = TwoHosts::new("ov");
    devices(&lab, "vx7", 7);
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
    let server = lab.serve_once(7001);
    lab.send(7001, "programmed-from-etcd");
    assert_eq!(server.join().unwrap(), "programmed-from-etcd");

    // B's container goes: host A's sync removes it, and A reaches B no more.
    overlay::withdraw(&store, "ov7", "ctr-b").unwrap();
    overlay::sync(&store, "ov7", lab.vteps[0], &lab.path(0), "vx7", &mut programmed[0]).unwrap();
    assert!(programmed[0].is_empty());
    lab.flush_neighbours(0);
    let _l = lab.listen(7002);
    let reached = lab.reaches(7002, Duration::from_millis(800));
    assert!(!reached, "reached a withdrawn endpoint");
}

/// Stops the followers when dropped: a failed assertion inside a scope must not leave the
/// scope waiting on them forever.
struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn followers_program_endpoints_as_they_come_and_go_and_survive_the_store() {
    require_root!();
    require_tool!("etcd");
    let mut etcd = Some(berth_testutil::etcd::Etcd::start("follow"));
    let url = etcd.as_ref().unwrap().url.clone();
    let store = Etcd::parse(&url).unwrap();
    let lab = TwoHosts::new("fo");
    devices(&lab, "vx9", 9);
    let _listener = lab.listen(7101);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        for h in 0..2 {
            let (store, lab, stop) = (store.clone(), &lab, &stop);
            s.spawn(move || overlay::follow(&store, "ov9", lab.vteps[h], &lab.path(h), "vx9", stop));
        }
        // The endpoints appear after the followers started: reachable within a second or so.
        let published = std::time::Instant::now();
        for (i, c) in ["ctr-a", "ctr-b"].into_iter().enumerate() {
            let ep = Endpoint {
                container: c.into(),
                ip: lab.ips[i],
                vtep: lab.vteps[i],
                names: Vec::new(),
            };
            overlay::publish(&store, "ov9", &ep).unwrap();
        }
        while !lab.reaches(7101, Duration::from_millis(100)) {
            assert!(published.elapsed() < Duration::from_secs(3), "B never became reachable");
        }
        eprintln!("B reachable {:?} after its endpoint was published", published.elapsed());
        // The store goes: what was programmed stays, and traffic flows.
        drop(etcd.take());
        assert!(
            lab.reaches(7101, Duration::from_secs(2)),
            "traffic stopped with the store"
        );
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    // Back with a store: a withdrawn endpoint is unprogrammed by a follower.
    let etcd = berth_testutil::etcd::Etcd::start("follow2");
    let store = Etcd::parse(&etcd.url).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        let (st, lab2, stop2) = (store.clone(), &lab, &stop);
        s.spawn(move || overlay::follow(&st, "ov9", lab2.vteps[0], &lab2.path(0), "vx9", stop2));
        // B's entries are still on host A from before; published and withdrawn here, the
        // follower removes them.
        let ep = Endpoint {
            container: "ctr-b".into(),
            ip: lab.ips[1],
            vtep: lab.vteps[1],
            names: Vec::new(),
        };
        overlay::publish(&store, "ov9", &ep).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        overlay::withdraw(&store, "ov9", "ctr-b").unwrap();
        let withdrawn = std::time::Instant::now();
        loop {
            lab.flush_neighbours(0);
            if !lab.reaches(7101, Duration::from_millis(200)) {
                break;
            }
            assert!(
                withdrawn.elapsed() < Duration::from_secs(3),
                "a withdrawn endpoint stayed reachable"
            );
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
}
