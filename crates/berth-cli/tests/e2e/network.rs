//! Networking end to end: the default bridge, published ports reached from the host (over
//! 127.0.0.1 and the bridge's address), `-P`, user networks and their isolation, `none`
//! and `host`, and a teardown that leaves no link, namespace or nftables table behind.
//! All traffic goes to loopback or to addresses on bridges these tests made.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use berth_testutil::require_root;

use crate::containers::{inspect, with_busybox};
use crate::images::Berth;

/// GET / from `addr:port`, retried while the server starts.
fn http_get(addr: Ipv4Addr, port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&(addr, port).into(), Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })();
        match got {
            Ok(body) if body.contains("200 OK") => return body,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            other => panic!("GET http://{addr}:{port}/ failed: {other:?}"),
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What of berth's networking is left in the kernel for this test instance once things
/// settle (a monitor keeps an idle bridge for two seconds, and the kernel destroys
/// namespaces and their veths in the background): its bridges, the veths of the
/// containers `ids`, network namespace files, its nftables table.
fn footprint(b: &Berth, ids: &[String]) -> (Vec<String>, usize, bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let f = footprint_now(b, ids);
        if (f.0.is_empty() && f.1 == 0 && !f.2) || Instant::now() > deadline {
            return f;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn footprint_now(b: &Berth, ids: &[String]) -> (Vec<String>, usize, bool) {
    let pid = std::process::id() % 10000;
    let (bridge, user) = (format!("bt{pid}b{}", b.net), format!("bt{pid}n{:x}-", b.net));
    let links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            *n == bridge
                || n.starts_with(&user)
                || ids
                    .iter()
                    .any(|id| *n == format!("vb{}", &id[..11]) || n.starts_with(&format!("vc{}", &id[..7])))
        })
        .collect();
    let netns = std::fs::read_dir(b.root.path().join("run/netns"))
        .map(|d| {
            d.filter(|e| !e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0);
    let table = std::process::Command::new("nft")
        .args(["list", "table", "ip", &format!("bt{}_{}", std::process::id(), b.net)])
        .output()
        .unwrap()
        .status
        .success();
    (links, netns, table)
}

fn ids(b: &Berth, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| inspect(b, n)["Id"].as_str().unwrap().to_string())
        .collect()
}

const WEB: &str = "mkdir -p /www && echo served-by-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www";

#[test]
fn default_bridge_and_published_ports() {
    require_root!();
    let (b, d) = with_busybox("net-bridge");
    // A container on the default bridge: an address in the subnet, a route out via the
    // gateway, its name in /etc/hosts.
    let out = b.ok(&[
        "run",
        "--rm",
        "--hostname",
        "boxy",
        "bb:1",
        "sh",
        "-c",
        "ip -4 -o addr show eth0; ip route; grep boxy /etc/hosts",
    ]);
    let subnet_prefix = format!("10.{}.{}.", 200 + (std::process::id() % 20), b.net);
    assert!(out.contains(&format!("inet {subnet_prefix}2/24")), "{out}");
    assert!(out.contains(&format!("default via {subnet_prefix}1 dev eth0")), "{out}");
    assert!(out.contains(&format!("{subnet_prefix}2\tboxy")), "{out}");

    // Published ports: a fixed one on 127.0.0.1, one on every address, and -P for EXPOSE.
    let tar = d.path().join("rootfs.tar");
    b.ok(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        "-c",
        "EXPOSE 80/tcp",
        tar.to_str().unwrap(),
        "bb:web",
    ]);
    let (p1, p2) = (free_port(), free_port());
    b.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--hostname",
        "web",
        "-p",
        &format!("127.0.0.1:{p1}:80"),
        "-p",
        &format!("{p2}:80"),
        "bb:1",
        "sh",
        "-c",
        WEB,
    ]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "auto",
        "--hostname",
        "auto",
        "-P",
        "bb:web",
        "sh",
        "-c",
        WEB,
    ]);
    assert!(http_get(Ipv4Addr::LOCALHOST, p1).contains("served-by-web"));
    let gateway: Ipv4Addr = format!("{subnet_prefix}1").parse().unwrap();
    assert!(
        http_get(gateway, p2).contains("served-by-web"),
        "published on every address"
    );
    assert!(http_get(Ipv4Addr::LOCALHOST, p2).contains("served-by-web"));
    // -P picked a free port for EXPOSE 80, shown by `port`, `ps` and inspect.
    let port_line = b.ok(&["port", "auto", "80"]);
    let auto_port: u16 = port_line.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert!(http_get(Ipv4Addr::LOCALHOST, auto_port).contains("served-by-auto"));
    assert_eq!(
        b.ok(&["port", "web"]),
        format!("80/tcp -> 127.0.0.1:{p1}\n80/tcp -> 0.0.0.0:{p2}\n")
    );
    assert!(b
        .ok(&["ps", "--format", "{{.Ports}}", "--filter", "name=web"])
        .contains(&format!("127.0.0.1:{p1}->80/tcp")));
    let v = inspect(&b, "web");
    assert_eq!(v["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"], p1.to_string());
    let web_ip = v["NetworkSettings"]["IPAddress"].as_str().unwrap().to_string();
    assert!(web_ip.starts_with(&subnet_prefix));
    assert_eq!(
        v["NetworkSettings"]["Networks"]["bridge"]["Gateway"],
        gateway.to_string()
    );
    // Container to container over the bridge.
    let got = b.ok(&["exec", "auto", "wget", "-qO-", &format!("http://{web_ip}/")]);
    assert_eq!(got, "served-by-web\n");
    // A port already published is refused (Docker's error), and nothing is left of the try.
    let o = b.out(&[
        "run",
        "-d",
        "--name",
        "clash",
        "-p",
        &format!("{p2}:80"),
        "bb:1",
        "sleep",
        "60",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("port is already allocated"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    b.ok(&["rm", "-f", "clash"]);
    // Bad specs fail at create.
    assert_eq!(b.out(&["create", "-p", "99999:80", "bb:1"]).status.code(), Some(125));

    // Stopped, the container lets its address and ports go; started again, it has them.
    b.ok(&["stop", "-t", "1", "web"]);
    assert!(b.ok(&["port", "web"]).is_empty());
    b.ok(&["start", "web"]);
    assert!(http_get(Ipv4Addr::LOCALHOST, p1).contains("served-by-web"));

    // none: only lo; host: the host's interfaces.
    let none = b.ok(&["run", "--rm", "--network", "none", "bb:1", "ls", "/sys/class/net"]);
    assert_eq!(none.split_whitespace().collect::<Vec<_>>(), ["lo"]);
    let host = b.ok(&["run", "--rm", "--network", "host", "bb:1", "ls", "/sys/class/net"]);
    let mut mine: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    mine.sort();
    assert!(
        mine.iter()
            .all(|n| host.contains(n.as_str()) || n.starts_with("vb") || n.starts_with("bt")),
        "{host}"
    );

    let made = ids(&b, &["web", "auto"]);
    b.ok(&["rm", "-f", "web", "auto"]);
    let (links, netns, table) = footprint(&b, &made);
    assert!(links.is_empty(), "links left: {links:?}");
    assert_eq!(netns, 0, "network namespaces left");
    assert!(!table, "nftables table left");
}

#[test]
fn user_networks_are_isolated_and_torn_down() {
    require_root!();
    let (b, _d) = with_busybox("net-user");
    b.ok(&["network", "create", "--label", "team=a", "front"]);
    b.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("10.{}.77.0/24", 220 + b.net % 30),
        "back",
    ]);
    assert_eq!(
        b.out(&["network", "create", "front"]).status.code(),
        Some(1),
        "names are unique"
    );
    let ls = b.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert_eq!(ls, "back bridge\nbridge bridge\nfront bridge\n");
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["network", "inspect", "back"])).unwrap();
    assert_eq!(
        v[0]["IPAM"]["Config"][0]["Subnet"],
        format!("10.{}.77.0/24", 220 + b.net % 30)
    );
    assert_eq!(v[0]["Labels"], serde_json::json!({}));

    b.ok(&[
        "run",
        "-d",
        "--name",
        "f1",
        "--network",
        "front",
        "--network-alias",
        "api",
        "bb:1",
        "sh",
        "-c",
        WEB,
    ]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "f2",
        "--network",
        "front",
        "bb:1",
        "sleep",
        "300",
    ]);
    b.ok(&["run", "-d", "--name", "b1", "--network", "back", "bb:1", "sleep", "300"]);
    let f1_ip = inspect(&b, "f1")["NetworkSettings"]["Networks"]["front"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    // Same network: reachable (ping and HTTP).
    b.ok(&["exec", "f2", "ping", "-c", "1", "-W", "2", &f1_ip]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = b.out(&["exec", "f2", "wget", "-qO-", &format!("http://{f1_ip}/")]);
        if o.status.success() {
            assert!(String::from_utf8_lossy(&o.stdout).starts_with("served-by-"));
            break;
        }
        assert!(Instant::now() < deadline, "f1's server never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    // By name and by alias, through the network's embedded DNS (127.0.0.11).
    assert_eq!(
        b.ok(&["exec", "f2", "head", "-1", "/etc/resolv.conf"]),
        "nameserver 127.0.0.11\n"
    );
    for name in ["f1", "api"] {
        let got = b.ok(&["exec", "f2", "wget", "-qO-", &format!("http://{name}/")]);
        assert!(got.starts_with("served-by-"), "{name}: {got}");
    }
    assert!(b
        .ok(&["exec", "f2", "ping", "-c", "1", "-W", "2", "f1"])
        .contains(&f1_ip));
    // Another network's names are not known there (answered locally: no such name).
    let o = b.out(&["exec", "b1", "nslookup", "f1"]);
    assert!(!o.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(said.contains("NXDOMAIN"), "{said}");
    assert_eq!(
        b.out(&["run", "--rm", "--network-alias", "x", "bb:1", "true"])
            .status
            .code(),
        Some(125)
    );
    // Another network, or the default bridge: not reachable.
    assert!(!b
        .out(&["exec", "b1", "ping", "-c", "1", "-W", "1", &f1_ip])
        .status
        .success());
    assert!(!b
        .out(&["run", "--rm", "bb:1", "ping", "-c", "1", "-W", "1", &f1_ip])
        .status
        .success());
    // Inspect lists the members; rm of a network in use is refused and changes nothing.
    let members = b.ok(&["network", "inspect", "front"]);
    assert!(members.contains("\"f1\"") && members.contains("\"f2\""));
    let o = b.out(&["network", "rm", "front"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("has active endpoints"));
    assert!(b.ok(&["network", "ls", "-q"]).lines().count() == 3);
    assert_eq!(
        b.out(&["run", "--rm", "--network", "nosuch", "bb:1", "true"])
            .status
            .code(),
        Some(125)
    );
    assert_eq!(b.out(&["network", "rm", "bridge"]).status.code(), Some(1));

    let made = ids(&b, &["f1", "f2", "b1"]);
    b.ok(&["rm", "-f", "f1", "f2", "b1"]);
    assert_eq!(b.ok(&["network", "rm", "front", "back"]), "front\nback\n");
    let (links, netns, table) = footprint(&b, &made);
    assert!(links.is_empty(), "links left: {links:?}");
    assert_eq!(netns, 0);
    assert!(!table);
    // --internal: no route out of the network.
    b.ok(&["network", "create", "--internal", "closed"]);
    let routes = b.ok(&["run", "--rm", "--network", "closed", "bb:1", "ip", "route"]);
    assert!(!routes.contains("default"), "{routes}");
    assert!(routes.contains("dev eth0"), "{routes}");
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["network", "inspect", "closed"])).unwrap();
    assert_eq!(v[0]["Internal"], true);
    b.ok(&["network", "rm", "closed"]);
    b.ok(&["network", "create", "spare"]);
    assert_eq!(b.ok(&["network", "prune", "-f"]), "Deleted Networks:\nspare\n");
}

#[test]
fn container_mode_hosts_dns_and_fixed_addresses() {
    require_root!();
    let (b, _d) = with_busybox("net-share");
    // container:X shares X's stack: a server on X's 127.0.0.1 answers the second container.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "pod",
        "bb:1",
        "sh",
        "-c",
        "mkdir /www; echo from-pod > /www/index.html; exec httpd -f -p 127.0.0.1:8000 -h /www",
    ]);
    let pod_ip = inspect(&b, "pod")["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = b.out(&[
            "run",
            "--rm",
            "--network",
            "container:pod",
            "bb:1",
            "wget",
            "-qO-",
            "http://127.0.0.1:8000/",
        ]);
        if o.status.success() {
            assert_eq!(String::from_utf8_lossy(&o.stdout), "from-pod\n");
            break;
        }
        assert!(Instant::now() < deadline, "the pod's server never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    let shared = b.ok(&[
        "run",
        "--rm",
        "--network",
        "container:pod",
        "bb:1",
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(shared.contains(&format!("inet {pod_ip}/")), "{shared}");
    // A stopped or missing container cannot lend its stack; ports cannot be published there.
    b.ok(&["create", "--name", "idle", "bb:1", "true"]);
    assert_eq!(
        b.out(&["run", "--rm", "--network", "container:idle", "bb:1", "true"])
            .status
            .code(),
        Some(125)
    );
    assert_eq!(
        b.out(&["run", "--rm", "--network", "container:nosuch", "bb:1", "true"])
            .status
            .code(),
        Some(125)
    );
    assert_eq!(
        b.out(&["run", "--rm", "--network", "container:pod", "-p", "80", "bb:1", "true"])
            .status
            .code(),
        Some(125)
    );

    // --add-host (host-gateway is the network's gateway), --dns, --dns-search, --dns-option.
    let out = b.ok(&[
        "run",
        "--rm",
        "--add-host",
        "db:10.1.2.3",
        "--add-host",
        "gw:host-gateway",
        "--dns",
        "10.9.9.9",
        "--dns-search",
        "example.test",
        "--dns-option",
        "ndots:2",
        "bb:1",
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf",
    ]);
    let gateway = format!("10.{}.{}.1", 200 + (std::process::id() % 20), b.net);
    assert!(
        out.contains("10.1.2.3\tdb\n") && out.contains(&format!("{gateway}\tgw\n")),
        "{out}"
    );
    assert!(
        out.contains("nameserver 10.9.9.9\nsearch example.test\noptions ndots:2\n"),
        "{out}"
    );
    assert_eq!(
        b.out(&["run", "--rm", "--add-host", "bad", "bb:1", "true"])
            .status
            .code(),
        Some(125)
    );
    assert_eq!(
        b.out(&["run", "--rm", "--dns", "not-an-ip", "bb:1", "true"])
            .status
            .code(),
        Some(125)
    );

    // --ip on a user network; refused on the default bridge, outside the subnet, or taken.
    let subnet = format!("10.{}.78", 220 + b.net % 30);
    b.ok(&["network", "create", "--subnet", &format!("{subnet}.0/24"), "fixed"]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "pinned",
        "--network",
        "fixed",
        "--ip",
        &format!("{subnet}.77"),
        "bb:1",
        "sleep",
        "300",
    ]);
    assert_eq!(
        inspect(&b, "pinned")["NetworkSettings"]["Networks"]["fixed"]["IPAddress"],
        format!("{subnet}.77")
    );
    let o = b.out(&[
        "run",
        "--rm",
        "--network",
        "fixed",
        "--ip",
        &format!("{subnet}.77"),
        "bb:1",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Address already in use"));
    assert_eq!(
        b.out(&["run", "--rm", "--ip", &format!("{subnet}.9"), "bb:1", "true"])
            .status
            .code(),
        Some(125)
    );
    assert_eq!(
        b.out(&["run", "--rm", "--network", "fixed", "--ip", "10.0.0.9", "bb:1", "true"])
            .status
            .code(),
        Some(125)
    );

    let made = ids(&b, &["pod", "idle", "pinned"]);
    b.ok(&["rm", "-f", "pod", "idle", "pinned"]);
    b.ok(&["network", "rm", "fixed"]);
    let (links, netns, table) = footprint(&b, &made);
    assert!(links.is_empty() && netns == 0 && !table, "{links:?} {netns} {table}");
}

#[test]
fn connect_and_disconnect() {
    require_root!();
    let (b, _d) = with_busybox("net-connect");
    b.ok(&["network", "create", "na"]);
    b.ok(&["network", "create", "nb"]);
    b.ok(&["run", "-d", "--name", "x1", "--network", "na", "bb:1", "sh", "-c", WEB]);
    b.ok(&["run", "-d", "--name", "y1", "--network", "nb", "bb:1", "sleep", "300"]);
    let fetch = |from: &str, name: &str| b.out(&["exec", from, "wget", "-qO-", &format!("http://{name}/")]);
    assert!(!fetch("y1", "x1").status.success(), "not on x1's network yet");
    // Connected while running: a second interface, names both ways, an alias.
    b.ok(&["network", "connect", "--alias", "web", "na", "y1"]);
    let addrs = b.ok(&["exec", "y1", "ip", "-4", "-o", "addr"]);
    assert!(addrs.contains("eth0") && addrs.contains("eth1"), "{addrs}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fetch("y1", "x1").status.success() {
        assert!(Instant::now() < deadline, "x1 never answered y1");
        std::thread::sleep(Duration::from_millis(100));
    }
    let y1_na = inspect(&b, "y1")["NetworkSettings"]["Networks"]["na"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(b.ok(&["exec", "x1", "nslookup", "web"]).contains(&y1_na));
    assert!(b.ok(&["network", "inspect", "na"]).contains("\"y1\""));
    assert_eq!(
        b.out(&["network", "connect", "na", "y1"]).status.code(),
        Some(1),
        "already connected"
    );
    assert_eq!(b.out(&["network", "rm", "na"]).status.code(), Some(1), "in use");
    // The connection survives a restart.
    b.ok(&["restart", "-t", "1", "y1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fetch("y1", "x1").status.success() {
        assert!(Instant::now() < deadline, "x1 not reachable after the restart");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Disconnected: the interface and the route to x1 are gone.
    b.ok(&["network", "disconnect", "na", "y1"]);
    assert!(!b.ok(&["exec", "y1", "ip", "-4", "-o", "addr"]).contains("eth1"));
    assert!(!fetch("y1", "x1").status.success());
    assert_eq!(
        b.out(&["network", "disconnect", "na", "y1"]).status.code(),
        Some(1),
        "not connected"
    );
    // Connected while stopped: joins at the next start.
    b.ok(&["stop", "-t", "1", "y1"]);
    b.ok(&["network", "connect", "na", "y1"]);
    b.ok(&["start", "y1"]);
    assert!(b.ok(&["exec", "y1", "ip", "-4", "-o", "addr"]).contains("eth1"));
    // A container on the default bridge has no name resolution (as in Docker) until it
    // joins a user network; then the embedded resolver answers it.
    b.ok(&["run", "-d", "--name", "z1", "bb:1", "sleep", "300"]);
    assert!(!b.out(&["exec", "z1", "nslookup", "x1"]).status.success());
    let before = b.ok(&["exec", "z1", "cat", "/etc/resolv.conf"]);
    assert!(!before.contains("127.0.0.11"), "{before}");
    b.ok(&["network", "connect", "na", "z1"]);
    assert!(b
        .ok(&["exec", "z1", "cat", "/etc/resolv.conf"])
        .starts_with("nameserver 127.0.0.11\n"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fetch("z1", "x1").status.success() {
        assert!(Instant::now() < deadline, "z1 never reached x1 by name");
        std::thread::sleep(Duration::from_millis(100));
    }
    // After a restart it still resolves.
    b.ok(&["restart", "-t", "0", "z1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fetch("z1", "x1").status.success() {
        assert!(Instant::now() < deadline, "z1 lost x1's name after a restart");
        std::thread::sleep(Duration::from_millis(100));
    }
    let made = ids(&b, &["x1", "y1", "z1"]);
    b.ok(&["rm", "-f", "x1", "y1", "z1"]);
    b.ok(&["network", "rm", "na", "nb"]);
    let (links, netns, table) = footprint(&b, &made);
    assert!(links.is_empty() && netns == 0 && !table, "{links:?} {netns} {table}");
}
