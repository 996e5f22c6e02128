//! CNI against Debian's real plugins (bridge, host-local): two namespaces attached to one
//! bridge reach each other by address, CHECK passes, DEL releases everything.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use berth_net::cni::{ips, Attachment, Cni, Config};
use berth_net::netns;
use berth_testutil::{require_root, unmet, TempDir};
use serde_json::json;

/// Removes what the test made on the host (its bridge, its namespaces) even if it fails.
struct Cleanup {
    bridge: String,
    netns: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.netns {
            netns::remove(n);
        }
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn attachment(id: &str, ns: &Path) -> Attachment {
    Attachment {
        container_id: id.into(),
        netns: ns.to_path_buf(),
        ifname: "eth0".into(),
        args: vec![
            ("K8S_POD_NAMESPACE".into(), "default".into()),
            ("K8S_POD_NAME".into(), id.into()),
        ],
        runtime_config: serde_json::Map::new(),
    }
}

fn links_in(ns: &Path) -> String {
    netns::run_in(ns, || Ok(std::fs::read_to_string("/proc/thread-self/net/dev").unwrap())).unwrap()
}

#[test]
fn namespaces_on_a_cni_bridge_reach_each_other_and_del_releases_them() {
    require_root!();
    let bins = [PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")];
    if !bins
        .iter()
        .any(|d| d.join("bridge").is_file() && d.join("host-local").is_file())
        && unmet("cni", "needs the CNI plugins (containernetworking-plugins)")
    {
        return;
    }
    let dir = TempDir::new("cni");
    let n = std::process::id() % 250;
    let bridge = format!("bcni{}", std::process::id() % 100_000);
    let mut clean = Cleanup {
        bridge: bridge.clone(),
        netns: Vec::new(),
    };
    let conf_dir = dir.path().join("net.d");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let list = json!({
        "cniVersion": "1.0.0",
        "name": "berth-test",
        "plugins": [{
            "type": "bridge",
            "bridge": bridge,
            "isGateway": true,
            "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": format!("10.199.{n}.0/24")}]],
                "dataDir": dir.path().join("ipam").display().to_string(),
            },
        }],
    });
    std::fs::write(conf_dir.join("10-test.conflist"), list.to_string()).unwrap();
    let conf = Config::load(&conf_dir).unwrap().unwrap();
    let cni = Cni {
        bin_dirs: bins.to_vec(),
        cache_dir: dir.path().join("cache"),
    };
    let (ns1, ns2) = (dir.path().join("ns1"), dir.path().join("ns2"));
    for ns in [&ns1, &ns2] {
        netns::create(ns).unwrap();
        clean.netns.push(ns.clone());
    }
    let (a1, a2) = (attachment("sandbox-one", &ns1), attachment("sandbox-two", &ns2));
    let r1 = cni.add(&conf, &a1).unwrap();
    let r2 = cni.add(&conf, &a2).unwrap();
    let (ip1, ip2) = (ips(&r1)[0].clone(), ips(&r2)[0].clone());
    assert!(ip1.starts_with(&format!("10.199.{n}.")) && ip1 != ip2, "{ip1} {ip2}");
    assert!(links_in(&ns1).contains("eth0:"));

    // One reaches the other by its address.
    let listener = netns::run_in(&ns1, || Ok(std::net::TcpListener::bind((ip1.as_str(), 8080)).unwrap())).unwrap();
    let mut out = netns::run_in(&ns2, || {
        Ok(std::net::TcpStream::connect_timeout(
            &format!("{ip1}:8080").parse().unwrap(),
            std::time::Duration::from_secs(5),
        )
        .unwrap())
    })
    .unwrap();
    out.write_all(b"hi").unwrap();
    let (mut inbound, from) = listener.accept().unwrap();
    assert_eq!(from.ip().to_string(), ip2);
    let mut got = [0u8; 2];
    inbound.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hi");

    cni.check(&conf, &a1).unwrap();
    // DEL releases the interface, the address and the cache; a second DEL is no error.
    for _ in 0..2 {
        cni.del(&conf, &a1).unwrap();
    }
    assert!(!links_in(&ns1).contains("eth0:"));
    assert!(cni.cached(&conf, &a1).is_none());
    assert!(cni.check(&conf, &a1).is_err());
    let again = cni.add(&conf, &attachment("sandbox-three", &ns1)).unwrap();
    assert!(ips(&again)[0].starts_with(&format!("10.199.{n}.")));
    cni.del(&conf, &attachment("sandbox-three", &ns1)).unwrap();
    cni.del(&conf, &a2).unwrap();

    // A plugin that is not there: an error naming it, nothing cached.
    let mut bad = conf.clone();
    bad.plugins.push(json!({"type": "no-such-plugin"}));
    let e = cni.add(&bad, &a1).unwrap_err().to_string();
    assert!(e.contains("no-such-plugin"), "{e}");
    assert!(cni.cached(&bad, &a1).is_none());
    assert!(!links_in(&ns1).contains("eth0:"), "the bridge plugin's ADD was undone");
}
