//! Overlay networks across three "hosts" (issue #21): network namespaces on a bridge of the
//! test's own (192.168.252.0/24, the test's address space), each running berth with a root
//! and a configuration file of its own, one etcd on the bridge. Containers on different
//! hosts reach each other by address and by name, a container started later on the third
//! host is reachable from the others within a second, a removed container is unprogrammed
//! everywhere, a host whose berth (its overlay agent) is killed keeps its traffic, racing
//! hosts never share an address, and bad input is refused with nothing half made.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testutil::{require_root, require_tool, TempDir};

use crate::berth_bin;
use crate::containers::with_busybox;
use crate::images::Berth;

/// The lab: the test bridge (in the test's namespace) and the hosts' namespaces, all
/// deleted on drop.
struct Lab {
    bridge: String,
    hosts: Vec<String>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for h in &self.hosts {
            let _ = Command::new("ip").args(["netns", "del", h]).status();
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).status();
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

const GATEWAY: &str = "192.168.252.254";

impl Lab {
    fn new(n: usize) -> Lab {
        let id = std::process::id() % 100_000;
        let lab = Lab {
            bridge: format!("btov{id}"),
            hosts: (0..n).map(|i| format!("btovh{i}-{id}")).collect(),
        };
        ip(&["link", "add", &lab.bridge, "type", "bridge"]);
        ip(&["addr", "add", &format!("{GATEWAY}/24"), "dev", &lab.bridge]);
        ip(&["link", "set", &lab.bridge, "up"]);
        for (i, h) in lab.hosts.iter().enumerate() {
            let veth = format!("btov{id}-{i}");
            ip(&["netns", "add", h]);
            ip(&["link", "add", &veth, "type", "veth", "peer", "name", "u0", "netns", h]);
            ip(&["link", "set", &veth, "master", &lab.bridge, "up"]);
            ip(&[
                "-n",
                h,
                "addr",
                "add",
                &format!("192.168.252.{}/24", i + 1),
                "dev",
                "u0",
            ]);
            ip(&["-n", h, "link", "set", "u0", "up"]);
            ip(&["-n", h, "link", "set", "lo", "up"]);
        }
        lab
    }
}

/// One host: a berth root (with the busybox image `bb:1`) driven inside the host's network
/// namespace, with its cluster settings in a configuration file of its own.
struct Host {
    b: Berth,
    _img: TempDir,
    netns: String,
    config: PathBuf,
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Ok(o) = self.cmd(&["ps", "-aq", "--no-trunc"]).output() {
            let ids: Vec<String> = String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids.iter().map(String::as_str));
                let _ = self.cmd(&args).output();
            }
        }
        if let Some(pid) = self.agent() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

impl Host {
    fn new(test: &str, netns: &str, store: &str, advertise: &str) -> Host {
        let (b, img) = with_busybox(test);
        let config = b.root.path().join("berth.toml");
        std::fs::write(
            &config,
            format!("[cluster]\nstore = \"{store}\"\nadvertise = \"{advertise}\"\n"),
        )
        .unwrap();
        Host {
            b,
            _img: img,
            netns: netns.to_string(),
            config,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let inner = self.b.cmd(args);
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.netns)).arg(berth_bin());
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c.env("BERTH_CONFIG", &self.config)
            .env("BERTH_CLUSTER_TTL", "3")
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn out(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "berth {args:?} on {} failed: {}{}",
            self.netns,
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    fn fails(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(!o.status.success(), "berth {args:?} on {} should fail", self.netns);
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// A web server container on `net` answering `text`.
    fn web(&self, name: &str, net: &str, text: &str) -> String {
        let script = format!("mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www");
        self.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            net,
            "bb:1",
            "sh",
            "-c",
            &script,
        ])
    }

    /// What `container` fetches from `url` (None: it failed).
    fn fetch(&self, container: &str, url: &str) -> Option<String> {
        let o = self.out(&["exec", container, "timeout", "3", "wget", "-qO-", url]);
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    }

    fn ip_on(&self, container: &str, net: &str) -> String {
        self.ok(&[
            "inspect",
            "-f",
            &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
            container,
        ])
    }

    fn agent(&self) -> Option<i32> {
        std::fs::read_to_string(self.b.root.path().join("run/overlay/agent.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The neighbour entries programmed on `net`'s VxLAN device here.
    fn neighbours(&self, net: &str) -> String {
        let id = self.ok(&["network", "inspect", "-f", "{{.Id}}", net]);
        let ns = self.b.root.path().join(format!("run/netns/ov-{}", &id[..12]));
        let o = Command::new("nsenter")
            .arg(format!("--net={}", ns.display()))
            .args(["ip", "neigh", "show", "dev", "vxlan0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn containers_on_three_hosts_share_an_overlay_network() {
    require_root!();
    require_tool!("etcd");
    require_tool!("nsenter");
    let lab = Lab::new(3);
    let etcd = berth_testutil::etcd::Etcd::start_on("overlay", GATEWAY);
    let hosts: Vec<Host> = lab
        .hosts
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            Host::new(
                &format!("overlay-{i}"),
                ns,
                &etcd.url,
                &format!("192.168.252.{}", i + 1),
            )
        })
        .collect();
    let (a, b, c) = (&hosts[0], &hosts[1], &hosts[2]);

    // Bad input first: no cluster, a store nobody answers at, overlapping subnets, a name
    // taken on another host, encryption this kernel cannot give. Nothing is left behind.
    let lone = Berth::new("overlay-lone");
    let o = lone.out(&["network", "create", "-d", "overlay", "ovx"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("overlay networks need a cluster store"),
        "{err}"
    );
    let away = TempDir::new("overlay-away");
    let away_cfg = away.path().join("berth.toml");
    std::fs::write(
        &away_cfg,
        format!("[cluster]\nstore = \"etcd://{GATEWAY}:1\"\nadvertise = \"192.168.252.1\"\n"),
    )
    .unwrap();
    let o = a
        .cmd(&["network", "create", "-d", "overlay", "ovx"])
        .env("BERTH_CONFIG", &away_cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("the cluster store is unreachable"),
        "{err}"
    );
    let bad_cfg = away.path().join("bad.toml");
    std::fs::write(&bad_cfg, "[cluster]\nstore = \"etcd://x:1\"\nadvertize = \"1.2.3.4\"\n").unwrap();
    let o = a
        .cmd(&["network", "create", "-d", "overlay", "ovx"])
        .env("BERTH_CONFIG", &bad_cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("bad.toml") && err.contains("advertize"),
        "{err}"
    );
    assert!(!a.ok(&["network", "ls"]).contains("ovx"));

    a.ok(&["network", "create", "-d", "overlay", "--subnet", "10.231.0.0/24", "ovt"]);
    let err = b.fails(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.231.0.128/25",
        "ovy",
    ]);
    assert!(err.contains("Pool overlaps") && err.contains("(ovt)"), "{err}");
    let err = b.fails(&["network", "create", "-d", "overlay", "ovt"]);
    assert!(err.contains("already exists"), "{err}");
    a.ok(&["network", "create", "--subnet", "10.232.0.0/24", "local1"]);
    let err = a.fails(&["network", "create", "-d", "overlay", "--subnet", "10.232.0.0/16", "ovz"]);
    assert!(err.contains("Pool overlaps") && err.contains("(local1)"), "{err}");
    let err = a.fails(&["network", "create", "-d", "overlay", "--opt", "encrypted", "ovsec"]);
    assert!(err.contains("encrypted") && err.contains("not created"), "{err}");
    // Every host sees the cluster's network, as global.
    for h in &hosts {
        let ls = h.ok(&[
            "network",
            "ls",
            "--filter",
            "driver=overlay",
            "--format",
            "{{.Name}} {{.Scope}}",
        ]);
        assert_eq!(ls, "ovt global");
    }

    // Containers on two hosts reach each other by address and by name.
    a.web("web1", "ovt", "from-a");
    b.web("web2", "ovt", "from-b");
    let ip1 = a.ip_on("web1", "ovt");
    let ip2 = b.ip_on("web2", "ovt");
    assert!(ip1.starts_with("10.231.0.") && ip2.starts_with("10.231.0.") && ip1 != ip2);
    wait_until("web1 from web2 by address", Duration::from_secs(5), || {
        b.fetch("web2", &format!("http://{ip1}/")).as_deref() == Some("from-a")
    });
    assert_eq!(b.fetch("web2", "http://web1/").as_deref(), Some("from-a"));
    assert_eq!(a.fetch("web1", "http://web2/").as_deref(), Some("from-b"));
    // The overlay's MTU leaves room for VxLAN's headers: a large answer crosses too.
    let big = "x".repeat(20_000);
    b.ok(&["exec", "web2", "sh", "-c", &format!("echo {big} > /www/big")]);
    assert_eq!(a.fetch("web1", "http://web2/big").map(|s| s.len()), Some(20_000));

    // A container started later on the third host: reachable from the others within a second.
    c.web("web3", "ovt", "from-c");
    let started = Instant::now();
    let ip3 = c.ip_on("web3", "ovt");
    wait_until("web3 from host A", Duration::from_secs(1), || {
        a.fetch("web1", "http://web3/").as_deref() == Some("from-c")
    });
    wait_until("web3 from host B", Duration::from_secs(1), || {
        b.fetch("web2", &format!("http://{ip3}/")).as_deref() == Some("from-c")
    });
    eprintln!(
        "web3 reachable from both other hosts {:?} after its run returned",
        started.elapsed()
    );
    assert!(a.neighbours("ovt").contains(&ip3));

    // Removing it removes its entries everywhere, and its name.
    c.ok(&["rm", "-f", "web3"]);
    wait_until("web3 unprogrammed on A and B", Duration::from_secs(5), || {
        !a.neighbours("ovt").contains(&ip3) && !b.neighbours("ovt").contains(&ip3)
    });
    assert_eq!(a.fetch("web1", "http://web3/"), None);

    // Host B's berth dies (its overlay agent, killed by pid); its container keeps talking.
    let agent = b.agent().expect("host B runs an overlay agent");
    assert!(Command::new("kill")
        .args(["-9", &agent.to_string()])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(a.fetch("web1", "http://web2/").as_deref(), Some("from-b"));
    assert_eq!(b.fetch("web2", "http://web1/").as_deref(), Some("from-a"));

    // Two hosts starting containers at the same moment never get the same address.
    let ips: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = [a, b]
            .into_iter()
            .flat_map(|h| (0..3).map(move |i| (h, i)))
            .map(|(h, i)| {
                s.spawn(move || {
                    let name = format!("race{}{i}", &h.netns[5..6]);
                    h.ok(&["run", "-d", "--name", &name, "--network", "ovt", "bb:1", "sleep", "600"]);
                    h.ip_on(&name, "ovt")
                })
            })
            .collect();
        runs.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let mut all = ips.clone();
    all.extend([ip1.clone(), ip2.clone()]);
    let distinct: std::collections::BTreeSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "an address handed out twice: {all:?}");

    // In use, the network stays; with every container gone, it goes everywhere.
    let err = c.fails(&["network", "rm", "ovt"]);
    assert!(err.contains("active endpoints"), "{err}");
    for h in [a, b] {
        let ids = h.ok(&["ps", "-aq"]);
        let mut args = vec!["rm", "-f"];
        args.extend(ids.lines());
        h.ok(&args);
    }
    c.ok(&["network", "rm", "ovt"]);
    for h in [a, b] {
        assert!(!h.ok(&["network", "ls"]).contains("ovt"));
    }
    drop(hosts);
    drop(lab);
}
