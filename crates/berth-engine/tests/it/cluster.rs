//! The cluster store against a real etcd (started here on loopback, stopped by pid):
//! addresses claimed by racing hosts are never handed out twice, a host's registration
//! lasts while its lease is renewed and goes after, a key is created only once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use berth_engine::cluster::{self, Etcd, Store};
use berth_testutil::require_tool;

#[test]
fn racing_hosts_never_get_the_same_address_and_leases_end_registrations() {
    require_tool!("etcd");
    let server = berth_testutil::etcd::Etcd::start("cluster");
    let subnet = berth_net::ipam::Subnet::parse("10.98.0.0/26").unwrap();
    // Two "hosts" allocating at once, 30 addresses each.
    let got: Vec<Vec<std::net::Ipv4Addr>> = std::thread::scope(|s| {
        let hs: Vec<_> = ["host-a", "host-b"]
            .into_iter()
            .map(|h| {
                let store = Etcd::parse(&server.url).unwrap();
                s.spawn(move || {
                    (0..30)
                        .map(|i| cluster::allocate_ip(&store, "ov", &subnet, &format!("{h}/{i}")).unwrap())
                        .collect()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: BTreeSet<_> = got.iter().flatten().copied().collect();
    assert_eq!(all.len(), 60, "an address was handed out twice: {got:?}");
    assert!(!all.contains(&subnet.first_host()), "the gateway was handed out");
    let store = Etcd::parse(&server.url).unwrap();
    // 62 hosts in a /26, less the gateway: one left, then none.
    let last = cluster::allocate_ip(&store, "ov", &subnet, "host-a/last").unwrap();
    assert!(!all.contains(&last));
    let e = cluster::allocate_ip(&store, "ov", &subnet, "host-a/more")
        .unwrap_err()
        .to_string();
    assert!(e.contains("ov"), "{e}");
    // Released, an address is handed out again.
    cluster::release_ip(&store, "ov", last).unwrap();
    assert_eq!(
        cluster::allocate_ip(&store, "ov", &subnet, "host-b/again").unwrap(),
        last
    );

    // A key is created once.
    assert!(store.create("/berth/x", b"1", 0).unwrap());
    assert!(!store.create("/berth/x", b"2", 0).unwrap());
    assert_eq!(store.list("/berth/x").unwrap()[0].value, b"1");

    // A registration lasts while its lease is renewed, and goes after.
    let lease = cluster::register_host(&store, "host-a", "192.168.250.1".parse().unwrap(), 2).unwrap();
    assert_eq!(
        cluster::hosts(&store).unwrap(),
        [("host-a".to_string(), "192.168.250.1".parse().unwrap())]
    );
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1000));
        store.keep_alive(lease).unwrap();
    }
    assert_eq!(cluster::hosts(&store).unwrap().len(), 1, "renewed, the host stays");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster::hosts(&store).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the lease never ended the registration");
        std::thread::sleep(Duration::from_millis(200));
    }
    store.keep_alive(lease).unwrap_err();
}

#[test]
fn a_list_larger_than_one_chunk_comes_whole() {
    require_tool!("etcd");
    let server = berth_testutil::etcd::Etcd::start("biglist");
    let store = Etcd::parse(&server.url).unwrap();
    for i in 0..60 {
        store.put(&format!("/berth/many/{i:02}"), &[b'v'; 300], 0).unwrap();
    }
    let got = store.list("/berth/many/").unwrap();
    assert_eq!(got.len(), 60);
    assert!(got.iter().all(|e| e.value == [b'v'; 300]));
}

#[test]
fn a_watch_streams_puts_and_deletes_as_they_happen() {
    require_tool!("etcd");
    let server = berth_testutil::etcd::Etcd::start("watch");
    let store = Etcd::parse(&server.url).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let watcher = {
        let store = store.clone();
        std::thread::spawn(move || {
            store
                .watch("/berth/w/", 0, &mut |c| {
                    let Some(c) = c else { return true };
                    let last = c == cluster::Change::Delete("/berth/w/a".into());
                    tx.send((c, Instant::now())).unwrap();
                    !last
                })
                .unwrap();
        })
    };
    // Once a sentinel written here comes back, the watch is in place.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        store.put("/berth/w/ready", b"1", 0).unwrap();
        if rx.recv_timeout(Duration::from_millis(200)).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the watch never saw anything");
    }
    while rx.try_recv().is_ok() {}
    // Keys outside the prefix are not seen.
    store.put("/berth/other", b"x", 0).unwrap();
    let put_at = Instant::now();
    store.put("/berth/w/a", b"1", 0).unwrap();
    // A change larger than a chunk of the stream comes whole.
    let big = vec![b'x'; 50_000];
    store.put("/berth/w/b", &big, 0).unwrap();
    store.delete("/berth/w/a").unwrap();
    let mut got: Vec<(cluster::Change, Instant)> = Vec::new();
    while got.len() < 3 {
        let (c, at) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        if !matches!(&c, cluster::Change::Put(e) if e.key == "/berth/w/ready") {
            got.push((c, at));
        }
    }
    watcher.join().unwrap();
    let changes: Vec<cluster::Change> = got.iter().map(|(c, _)| c.clone()).collect();
    assert_eq!(
        changes,
        [
            cluster::Change::Put(cluster::Entry {
                key: "/berth/w/a".into(),
                value: b"1".to_vec()
            }),
            cluster::Change::Put(cluster::Entry {
                key: "/berth/w/b".into(),
                value: big.clone()
            }),
            cluster::Change::Delete("/berth/w/a".into()),
        ]
    );
    // A change reaches a watcher well within a second.
    assert!(
        got[0].1.duration_since(put_at) < Duration::from_secs(1),
        "{:?}",
        got[0].1.duration_since(put_at)
    );
}
