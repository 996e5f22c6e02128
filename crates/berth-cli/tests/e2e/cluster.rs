//! `berth daemon --cluster-store --cluster-advertise` (issue #21's start): the host is
//! registered in etcd while the daemon lives and goes with its lease when it dies; a
//! store that cannot be reached, or half the flags, stop the daemon before it serves.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use berth_engine::cluster::{self, Etcd};
use berth_testutil::{require_root, require_tool, TempDir};

use crate::images::Berth;

/// A daemon killed by pid when the test ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_daemon_registers_its_host_in_the_cluster_store_while_it_lives() {
    require_root!();
    require_tool!("etcd");
    let b = Berth::new("cluster-daemon");
    let sock_dir = TempDir::new("cluster-daemon-sock");
    let sock = format!("unix://{}", sock_dir.path().join("b.sock").display());
    // Half the flags, or a store nobody answers at: an error, nothing served.
    let o = b.out(&["daemon", "-H", &sock, "--cluster-advertise", "127.0.0.1"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("needs --cluster-store"));
    let o = b.out(&[
        "daemon",
        "-H",
        &sock,
        "--cluster-store",
        "etcd://127.0.0.1:1",
        "--cluster-advertise",
        "127.0.0.1",
    ]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !o.status.success() && err.contains("the cluster store is unreachable"),
        "{err}"
    );
    assert!(!sock_dir.path().join("b.sock").exists());

    let etcd = berth_testutil::etcd::Etcd::start("cluster-daemon");
    let store = Etcd::parse(&etcd.url).unwrap();
    let child = b
        .cmd(&[
            "daemon",
            "-H",
            &sock,
            "--cluster-store",
            &etcd.url,
            "--cluster-advertise",
            "127.0.0.1:4789",
        ])
        .env("BERTH_CLUSTER_TTL", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut daemon = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster::hosts(&store).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the daemon never registered");
        std::thread::sleep(Duration::from_millis(50));
    }
    let vteps: Vec<_> = cluster::hosts(&store).unwrap().into_iter().map(|(_, v)| v).collect();
    assert_eq!(vteps, ["127.0.0.1".parse::<std::net::Ipv4Addr>().unwrap()]);
    // Its lease is renewed: still there well past its 2 s.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        cluster::hosts(&store).unwrap().len(),
        1,
        "the registration lapsed while the daemon lived"
    );
    // Killed, it renews nothing: the host goes with the lease.
    let _ = daemon.0.kill();
    let _ = daemon.0.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster::hosts(&store).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "a dead host stayed registered");
        std::thread::sleep(Duration::from_millis(100));
    }
}
