//! A container's endpoints on networks: its network namespace, its attachment (address
//! lease, veth, published ports, `/etc/hosts`, the embedded DNS socket) made by its monitor
//! before it starts and released when it stops, and `network connect`/`disconnect`.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use berth_net::nft::{PortMap, Proto};
use rusqlite::params;

use super::*;

/// For `--network`, `--pid`, `--ipc` and `--uts container:X`: points the bundle's
/// namespaces at X's (its network namespace file, or its init's namespaces), which must be
/// running now.
pub fn join_container(engine: &Engine, r: &Record) -> Result<()> {
    let joins: Vec<(&str, &str)> = [
        ("network", r.network_mode.as_str()),
        ("pid", r.pid_mode.as_str()),
        ("ipc", r.ipc_mode.as_str()),
        ("uts", r.uts_mode.as_str()),
    ]
    .into_iter()
    .filter_map(|(ty, mode)| mode.strip_prefix("container:").map(|other| (ty, other)))
    .collect();
    if joins.is_empty() {
        return Ok(());
    }
    let mut paths = Vec::new();
    for (ty, other) in joins {
        let o = engine.resolve(other)?;
        let st = engine.state(&o.id);
        if !st.running() {
            return Err(EngineError::Conflict(format!(
                "cannot join {ty} namespace of a non running container: {}",
                o.name
            )));
        }
        let own = netns_path(engine, &o.id);
        let path = if ty == "network" && own.exists() {
            own
        } else {
            let name = if ty == "network" { "net" } else { ty };
            PathBuf::from(format!("/proc/{}/ns/{name}", st.pid))
        };
        paths.push((ty, path));
    }
    let cfg = engine.dir(&r.id).join("config.json");
    let mut spec: serde_json::Value = std::fs::read(&cfg)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| EngineError::Invalid(format!("reading {}", cfg.display())))?;
    if let Some(nss) = spec["linux"]["namespaces"].as_array_mut() {
        for ns in nss.iter_mut() {
            if let Some((_, path)) = paths.iter().find(|(ty, _)| ns["type"] == *ty) {
                ns["path"] = serde_json::json!(path.display().to_string());
            }
        }
    }
    let text = serde_json::to_vec_pretty(&spec).map_err(|e| EngineError::Invalid(e.to_string()))?;
    std::fs::write(&cfg, text).map_err(crate::io_err("writing", &cfg))
}

/// Forgets a removed container's connections.
pub fn forget(engine: &Engine, container: &str) {
    let _ = engine
        .conn()
        .execute("DELETE FROM connections WHERE container = ?1", params![container]);
}

/// Where a container's network namespace is mounted.
pub fn netns_path(engine: &Engine, id: &str) -> PathBuf {
    engine.run.join("netns").join(id)
}

/// A free host port (the kernel's choice), for `-P` and `-p CONTAINERPORT`.
pub(crate) fn free_port(proto: Proto) -> Result<u16> {
    let port = match proto {
        Proto::Tcp => std::net::TcpListener::bind("0.0.0.0:0").and_then(|l| l.local_addr()),
        Proto::Udp => std::net::UdpSocket::bind("0.0.0.0:0").and_then(|l| l.local_addr()),
    }
    .map_err(crate::io_err("finding a free port", "0.0.0.0:0"))?
    .port();
    Ok(port)
}

/// The ports a container publishes: its `-p`s, and with `-P` its exposed ports not among
/// them.
pub(crate) fn wanted_ports(r: &Record) -> Result<Vec<Wanted>> {
    let mut wanted = Vec::new();
    for spec in &r.publish {
        wanted.extend(parse_publish(spec)?);
    }
    if r.publish_all {
        for p in &r.exposed_ports {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            if let Ok(port) = port.parse::<u16>() {
                let proto = if proto == "udp" { Proto::Udp } else { Proto::Tcp };
                if !wanted.iter().any(|w| w.2 == port && w.3 == proto) {
                    wanted.push((None, None, port, proto));
                }
            }
        }
    }
    Ok(wanted)
}

/// Takes an address on network `n` for `container`: `want` if given (and free), else the
/// lowest free one.
fn lease(engine: &Engine, n: &Network, want: &str, container: &str) -> Result<Ipv4Addr> {
    let subnet = n.subnet()?;
    // IMMEDIATE: the read of the used addresses and the insert are one write transaction, so a
    // concurrent lease waits on the busy timeout instead of failing to upgrade its read lock.
    let tx = rusqlite::Transaction::new_unchecked(engine.conn(), rusqlite::TransactionBehavior::Immediate)?;
    let mut used: BTreeSet<Ipv4Addr> = BTreeSet::from([n.gateway()?]);
    {
        let mut st = tx.prepare("SELECT ip FROM leases WHERE network = ?1")?;
        for ip in st.query_map(params![n.id], |row| row.get::<_, String>(0))? {
            if let Ok(ip) = ip?.parse() {
                used.insert(ip);
            }
        }
    }
    let ip = match want.parse::<Ipv4Addr>() {
        Ok(w) if used.contains(&w) => {
            return Err(EngineError::Conflict(format!("Address already in use: {w}")));
        }
        Ok(w) => w,
        Err(_) => subnet.allocate(&used, &n.name).map_err(net_err)?,
    };
    tx.execute(
        "INSERT INTO leases(network, ip, container) VALUES (?1, ?2, ?3)",
        params![n.id, ip.to_string(), container],
    )?;
    tx.commit()?;
    Ok(ip)
}

/// A network the container was connected to after its creation (`network connect`).
#[derive(Debug, Clone)]
pub struct Connection {
    /// The network's id.
    pub network_id: String,
    /// `--alias`es on it.
    pub aliases: Vec<String>,
    /// `--ip` wanted on it.
    pub ip: String,
    /// Its attachment while the container runs.
    pub attachment: Option<Attachment>,
}

/// The networks `container` was connected to with `network connect`.
pub fn connections(engine: &Engine, container: &str) -> Vec<Connection> {
    let Ok(mut st) = engine
        .conn()
        .prepare("SELECT network, aliases, attachment FROM connections WHERE container = ?1 ORDER BY rowid")
    else {
        return Vec::new();
    };
    let Ok(rows) = st.query_map(params![container], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, Option<String>>(2)?,
        ))
    }) else {
        return Vec::new();
    };
    rows.filter_map(std::result::Result::ok)
        .map(|(network_id, aliases, att)| {
            let (aliases, ip): (Vec<String>, String) = serde_json::from_str(&aliases).unwrap_or_default();
            Connection {
                network_id,
                aliases,
                ip,
                attachment: att.and_then(|a| serde_json::from_str(&a).ok()),
            }
        })
        .collect()
}

fn save_connection(engine: &Engine, container: &str, network_id: &str, att: Option<&Attachment>) -> Result<()> {
    let json = att.map(|a| serde_json::to_string(a).unwrap_or_default());
    engine.conn().execute(
        "UPDATE connections SET attachment = ?3 WHERE container = ?1 AND network = ?2",
        params![container, network_id, json],
    )?;
    Ok(())
}

/// Attaches the running container `r` (its namespace exists) to one more network, as
/// interface `ifname`, with no default route (that stays with its first network).
fn attach_extra(
    engine: &Engine,
    r: &Record,
    n: &Network,
    ifname: &str,
    want_ip: &str,
    aliases: &[String],
) -> Result<Attachment> {
    if n.driver == super::overlay::DRIVER {
        let _guard = lock(engine)?;
        return super::overlay::join(engine, r, n, ifname, want_ip, aliases);
    }
    let subnet = n.subnet()?;
    let gateway = n.gateway()?;
    let ns = netns_path(engine, &r.id);
    let veth = format!("vc{}{}", &r.id[..7], &n.id[..6]);
    // The previous run's pair may still be there (the kernel destroys a namespace, and the
    // veths in it, in the background).
    let _ = berth_net::link::delete(&veth);
    let _guard = lock(engine)?;
    let ip = lease(engine, n, want_ip, &r.id)?;
    let made = (|| -> Result<Attachment> {
        bring_up(engine, n)?;
        let mac = berth_net::ipam::mac_for(ip);
        let ep = berth_net::link::Endpoint {
            ifname: ifname.to_string(),
            ip,
            prefix: subnet.prefix,
            gateway: None,
            mac,
            mtu: None,
        };
        berth_net::link::add_veth(&veth, &n.bridge, &ns, &ep).map_err(net_err)?;
        Ok(Attachment::new(n, ip, subnet.prefix, gateway, &mac, &veth))
    })();
    if made.is_err() {
        let _ = engine.conn().execute(
            "DELETE FROM leases WHERE container = ?1 AND network = ?2",
            params![r.id, n.id],
        );
    }
    made
}

/// The resolv.conf a container had before it was pointed at the embedded resolver: the
/// resolver's upstream servers come from it.
fn upstream_conf(engine: &Engine, id: &str) -> std::path::PathBuf {
    engine.dir(id).join("resolv.conf.upstream")
}

/// The name servers the container's resolver relays to.
fn upstream_servers(engine: &Engine, id: &str) -> Vec<String> {
    let orig = upstream_conf(engine, id);
    let text = std::fs::read_to_string(&orig)
        .or_else(|_| std::fs::read_to_string(engine.dir(id).join("resolv.conf")))
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|ns| *ns != "127.0.0.11")
        .map(str::to_string)
        .collect()
}

/// Points a container's resolv.conf at the embedded resolver (127.0.0.11, `ndots:0`),
/// keeping its search and option lines; the servers it had become the upstream. Rewritten
/// in place, so the file bind-mounted into a running container changes too.
fn use_embedded_dns(engine: &Engine, id: &str) -> Result<Vec<String>> {
    let p = engine.dir(id).join("resolv.conf");
    let orig = upstream_conf(engine, id);
    if !orig.exists() {
        std::fs::copy(&p, &orig).map_err(crate::io_err("copying", &p))?;
    }
    let old = std::fs::read_to_string(&orig).map_err(crate::io_err("reading", &orig))?;
    let mut text = String::from("nameserver 127.0.0.11\n");
    for l in old.lines().filter(|l| !l.starts_with("options ndots:0")) {
        match l.split_whitespace().next() {
            Some("nameserver") | None => {}
            Some(_) => {
                text.push_str(l);
                text.push('\n');
            }
        }
    }
    text.push_str("options ndots:0\n");
    if std::fs::read_to_string(&p).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&p, text).map_err(crate::io_err("writing", &p))?;
    }
    Ok(upstream_servers(engine, id))
}

/// Attaches a running container's connected networks (its monitor, at each start).
pub fn attach_connections(engine: &Engine, r: &Record) -> Result<()> {
    for (i, c) in connections(engine, &r.id).into_iter().enumerate() {
        let n = get(engine, &c.network_id)?;
        let att = attach_extra(engine, r, &n, &format!("eth{}", i + 1), &c.ip, &c.aliases)?;
        save_connection(engine, &r.id, &n.id, Some(&att))?;
    }
    Ok(())
}

/// `network connect`: a container joins one more network (at once if it runs, else at its
/// next start).
pub fn connect(engine: &Engine, network: &str, container: &str, aliases: &[String], ip: Option<&str>) -> Result<()> {
    let n = get(engine, network)?;
    let r = engine.resolve(container)?;
    if r.network().is_private() {
        return Err(EngineError::Conflict(format!(
            "container cannot be connected to network {}: it uses the {} network mode",
            n.name, r.network_mode
        )));
    }
    let primary = get(engine, &r.network_mode)?;
    if primary.id == n.id || connections(engine, &r.id).iter().any(|c| c.network_id == n.id) {
        return Err(EngineError::Conflict(format!(
            "endpoint with name {} already exists in network {}",
            r.name, n.name
        )));
    }
    if n.name == DEFAULT && !aliases.is_empty() {
        return Err(EngineError::Invalid(
            "network-scoped aliases are only supported for user-defined networks".into(),
        ));
    }
    if let Some(want) = ip {
        let w: Ipv4Addr = want
            .parse()
            .map_err(|_| EngineError::Invalid(format!("invalid IPv4 address: {want}")))?;
        if !n.subnet()?.contains(w) {
            return Err(EngineError::Invalid(format!(
                "no configured subnet contains IP address {want}"
            )));
        }
    }
    let meta = serde_json::to_string(&(aliases, ip.unwrap_or(""))).map_err(|e| EngineError::Invalid(e.to_string()))?;
    engine.conn().execute(
        "INSERT INTO connections(container, network, aliases, attachment) VALUES (?1, ?2, ?3, NULL)",
        params![r.id, n.id, meta],
    )?;
    let st = engine.state(&r.id);
    if st.running() && netns_path(engine, &r.id).exists() {
        let ifname = format!("eth{}", connections(engine, &r.id).len());
        match attach_extra(engine, &r, &n, &ifname, ip.unwrap_or(""), aliases) {
            Ok(att) => {
                save_connection(engine, &r.id, &n.id, Some(&att))?;
                // Names on a user network resolve through the embedded resolver, which the
                // container's monitor already listens with.
                if n.name != DEFAULT {
                    use_embedded_dns(engine, &r.id)?;
                }
            }
            Err(e) => {
                let _ = engine.conn().execute(
                    "DELETE FROM connections WHERE container = ?1 AND network = ?2",
                    params![r.id, n.id],
                );
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Whether `network` is the one `container` was created on.
pub fn is_primary(engine: &Engine, network: &str, container: &str) -> Result<bool> {
    let n = get(engine, network)?;
    let r = engine.resolve(container)?;
    Ok(get(engine, &r.network_mode).is_ok_and(|p| p.id == n.id))
}

/// Sets the aliases and fixed address a container that is not running has on the network it
/// was created on (what docker-compose does by disconnecting and reconnecting it with
/// aliases before the first start).
pub fn set_primary_endpoint(engine: &Engine, container: &str, aliases: &[String], ip: Option<&str>) -> Result<()> {
    let mut r = engine.resolve(container)?;
    if engine.state(&r.id).running() {
        return Err(EngineError::Conflict(format!("container {} is running", r.id)));
    }
    for a in aliases {
        if !r.aliases.contains(a) {
            r.aliases.push(a.clone());
        }
    }
    if let Some(ip) = ip {
        r.ip = ip.to_string();
    }
    engine.save_record(&r)
}

/// `network disconnect`: undoes [`connect`]. (A container's first network stays: berth
/// does not yet take a container off the network it was created on.)
pub fn disconnect(engine: &Engine, network: &str, container: &str) -> Result<()> {
    let n = get(engine, network)?;
    let r = engine.resolve(container)?;
    let Some(c) = connections(engine, &r.id).into_iter().find(|c| c.network_id == n.id) else {
        if get(engine, &r.network_mode).is_ok_and(|p| p.id == n.id) {
            return Err(EngineError::Conflict(format!(
                "container {} was created on network {}: berth cannot take it off that network yet",
                r.name, n.name
            )));
        }
        return Err(EngineError::Conflict(format!(
            "container {} is not connected to network {}",
            r.name, n.name
        )));
    };
    if let Some(a) = &c.attachment {
        let _guard = lock(engine)?;
        if n.driver == super::overlay::DRIVER {
            super::overlay::delete_veth(engine, &n, &a.veth);
            super::overlay::leave(engine, &r.id, &[(n.id.clone(), a.ip.clone())]);
        }
        let _ = berth_net::link::delete(&a.veth);
        let _ = engine.conn().execute(
            "DELETE FROM leases WHERE container = ?1 AND network = ?2",
            params![r.id, n.id],
        );
    }
    engine.conn().execute(
        "DELETE FROM connections WHERE container = ?1 AND network = ?2",
        params![r.id, n.id],
    )?;
    if users(engine, &n.id)?.is_empty() {
        tear_down_idle(engine, std::slice::from_ref(&n.id), std::time::Duration::ZERO);
    }
    Ok(())
}

/// Attaches a container to its network before it starts: namespace, veth, address,
/// published ports, `/etc/hosts`; on a user network also the embedded DNS socket
/// (127.0.0.11:53 inside) and a `resolv.conf` pointing at it. `None` for `none`, `host`
/// and `container:X`.
pub fn attach(engine: &Engine, r: &Record) -> Result<Option<(Attachment, Option<std::net::UdpSocket>)>> {
    if r.network().is_user_mode() {
        return super::usermode::attach(engine, r).map(|a| Some((a, None)));
    }
    if r.network().is_private() {
        return Ok(None);
    }
    let n = get(engine, &r.network_mode)?;
    if n.driver == super::overlay::DRIVER {
        return attach_overlay(engine, r, &n).map(Some);
    }
    let subnet = n.subnet()?;
    let gateway = n.gateway()?;
    let ns = netns_path(engine, &r.id);
    let veth = format!("vb{}", &r.id[..11]);
    start_clean(engine, r, &ns)?;
    // The previous run's pair may still be there (the kernel destroys a namespace, and the
    // veths in it, in the background).
    let _guard = lock(engine)?;
    let _ = berth_net::link::delete(&veth);
    let ip = lease(engine, &n, &r.ip, &r.id)?;
    let made = (|| -> Result<(Attachment, Option<std::net::UdpSocket>)> {
        bring_up(engine, &n)?;
        berth_net::netns::create(&ns).map_err(net_err)?;
        let mac = berth_net::ipam::mac_for(ip);
        let ep = berth_net::link::Endpoint {
            ifname: "eth0".into(),
            ip,
            prefix: subnet.prefix,
            gateway: (!n.internal).then_some(gateway),
            mac,
            mtu: None,
        };
        berth_net::link::add_veth(&veth, &n.bridge, &ns, &ep).map_err(net_err)?;
        let mut att = Attachment::new(&n, ip, subnet.prefix, gateway, &mac, &veth);
        att.ports = publish_ports(engine, r, ip)?;
        // Rootless, the bridge is out of the host's reach: a forwarder carries the ports.
        if crate::rootless::is_rootless() {
            let home = crate::rootless::network_home_path(&engine.run);
            crate::forward::spawn(engine, &r.id, &home, ip, &att.ports)?;
        }
        write_hosts(engine, r, ip, gateway)?;
        // Every bridged container gets the resolver socket: one on the default bridge uses
        // it once it is connected to a user network (its resolv.conf is rewritten then).
        let dns = Some(resolver_socket(&ns)?);
        att.dns_upstream = if n.name != DEFAULT || connections(engine, &r.id).iter().any(|c| c.network_id != n.id) {
            use_embedded_dns(engine, &r.id)?
        } else {
            upstream_servers(engine, &r.id)
        };
        Ok((att, dns))
    })();
    match made {
        Ok(made) => Ok(Some(made)),
        Err(e) => {
            drop(_guard);
            detach(engine, r, None);
            Err(e)
        }
    }
}

/// Leftovers of a previous run (a monitor killed mid-way): undone first. Only when there
/// are some, so a normal start takes no lock and changes nothing in the database for
/// nothing.
fn start_clean(engine: &Engine, r: &Record, ns: &std::path::Path) -> Result<()> {
    let leased: i64 = engine.conn().query_row(
        "SELECT COUNT(*) FROM leases WHERE container = ?1",
        params![r.id],
        |row| row.get(0),
    )?;
    if leased > 0 || ns.exists() {
        detach(engine, r, None);
    }
    Ok(())
}

/// Publishes `r`'s ports (`-p`, `-P`) to its address `ip`: the nftables elements, and what
/// was published.
fn publish_ports(engine: &Engine, r: &Record, ip: Ipv4Addr) -> Result<Vec<Published>> {
    let t = table(engine)?;
    let mut batch = t.batch();
    let floor = super::usermode::unprivileged_port_start();
    let mut ports = Vec::new();
    for (host_ip, host_port, port, proto) in wanted_ports(r)? {
        let host_port = match host_port {
            Some(h) => h,
            None => free_port(proto)?,
        };
        super::usermode::check_host_port(host_port, floor)?;
        batch.add_port(&PortMap {
            host_ip,
            host_port,
            proto,
            ip,
            port,
        });
        ports.push(Published {
            host_ip: host_ip.map_or("0.0.0.0".to_string(), |i| i.to_string()),
            host_port,
            proto: proto.as_str().into(),
            port,
        });
    }
    batch.apply().map_err(|e| match e {
        berth_net::NetError::Nft(m) if m.contains("exists") => {
            let list: Vec<String> = ports.iter().map(|p| format!("{}:{}", p.host_ip, p.host_port)).collect();
            EngineError::Conflict(format!(
                "Bind for {} failed: port is already allocated",
                list.join(", ")
            ))
        }
        e => net_err(e),
    })?;
    Ok(ports)
}

/// The embedded resolver's socket, bound to 127.0.0.11:53 inside the namespace at `ns`.
fn resolver_socket(ns: &std::path::Path) -> Result<std::net::UdpSocket> {
    berth_net::netns::run_in(ns, || {
        std::net::UdpSocket::bind(crate::dns::ADDRESS).map_err(|e| berth_net::NetError::Io {
            op: format!("binding {}", crate::dns::ADDRESS),
            source: e,
        })
    })
    .map_err(net_err)
}

/// [`attach`] to an overlay network: the container's first leg on the overlay (`eth0`),
/// its second on the default bridge (`eth1`, the default route, its published ports), as
/// Docker's overlay driver gives it `docker_gwbridge`; names resolve across the cluster.
fn attach_overlay(engine: &Engine, r: &Record, n: &Network) -> Result<(Attachment, Option<std::net::UdpSocket>)> {
    if crate::rootless::is_rootless() {
        return Err(EngineError::Invalid(
            "overlay networks need root (their VxLAN devices are the host's)".into(),
        ));
    }
    let ns = netns_path(engine, &r.id);
    start_clean(engine, r, &ns)?;
    let guard = lock(engine)?;
    let made = (|| -> Result<(Attachment, Option<std::net::UdpSocket>)> {
        berth_net::netns::create(&ns).map_err(net_err)?;
        let mut att = super::overlay::join(engine, r, n, "eth0", &r.ip, &r.aliases)?;
        let out = get(engine, DEFAULT)?;
        let veth = format!("vb{}", &r.id[..11]);
        let _ = berth_net::link::delete(&veth);
        let eip = lease(engine, &out, "", &r.id)?;
        bring_up(engine, &out)?;
        let ep = berth_net::link::Endpoint {
            ifname: "eth1".into(),
            ip: eip,
            prefix: out.subnet()?.prefix,
            gateway: Some(out.gateway()?),
            mac: berth_net::ipam::mac_for(eip),
            mtu: None,
        };
        berth_net::link::add_veth(&veth, &out.bridge, &ns, &ep).map_err(net_err)?;
        att.egress = Some(eip.to_string());
        att.ports = publish_ports(engine, r, eip)?;
        write_hosts(engine, r, att.ip.parse().unwrap_or(eip), n.gateway()?)?;
        let sock = resolver_socket(&ns)?;
        att.dns_upstream = use_embedded_dns(engine, &r.id)?;
        Ok((att, Some(sock)))
    })();
    if made.is_err() {
        drop(guard);
        detach(engine, r, None);
    }
    made
}

/// `/etc/hosts` for a container: localhost, its name at its address (127.0.1.1 without
/// one), and its `--add-host` lines (`host-gateway`: the gateway of its network).
pub fn hosts_file(r: &Record, ip: Option<(Ipv4Addr, Ipv4Addr)>) -> String {
    let me = ip.map_or("127.0.1.1".to_string(), |(i, _)| i.to_string());
    let mut text = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
        .to_string();
    for (name, addr) in &r.extra_hosts {
        let addr = match (addr.as_str(), ip) {
            ("host-gateway", Some((_, gw))) => gw.to_string(),
            ("host-gateway", None) => "127.0.0.1".to_string(),
            (a, _) => a.to_string(),
        };
        text.push_str(&format!("{addr}\t{name}\n"));
    }
    text.push_str(&format!("{me}\t{}\n", r.hostname));
    text
}

pub(crate) fn write_hosts(engine: &Engine, r: &Record, ip: Ipv4Addr, gateway: Ipv4Addr) -> Result<()> {
    let p = engine.dir(&r.id).join("hosts");
    // Written in place: the file is bind-mounted into the container.
    std::fs::write(&p, hosts_file(r, Some((ip, gateway)))).map_err(crate::io_err("writing", &p))?;
    // A pod's infra: its containers' names go back in.
    if !r.pod.is_empty() {
        if let Ok(pod) = crate::pods::get(engine, &r.pod) {
            crate::pods::write_hosts(engine, &pod)?;
        }
    }
    Ok(())
}

/// Undoes [`attach`] at once: [`release`], then the bridge and table of networks left
/// unused. Safe to repeat, and to call for a container that never attached.
pub fn detach(engine: &Engine, r: &Record, att: Option<&Attachment>) {
    let idle = release(engine, r, att, true);
    tear_down_idle(engine, &idle, std::time::Duration::ZERO);
}

/// The container's part of [`detach`]: its published ports, its leases and, with
/// `unmount`, its namespace (the kernel then destroys the namespace and, with it, both ends
/// of the veth pair, in the background). An unmount waits for an RCU grace period, so the
/// monitor leaves it (to [`remove_netns`]) until its client has its answer. Returns the
/// networks the container left without users.
pub fn release(engine: &Engine, r: &Record, att: Option<&Attachment>, unmount: bool) -> Vec<String> {
    if r.network().is_user_mode() {
        super::usermode::release(engine, r);
        return Vec::new();
    }
    crate::forward::stop(engine, &r.id);
    let Ok(_guard) = lock(engine) else { return Vec::new() };
    if let (Some(a), Ok(t)) = (att, table(engine)) {
        let mut b = t.batch();
        for p in &a.ports {
            b.remove_port(&PortMap {
                host_ip: p.host_ip.parse().ok().filter(|i: &Ipv4Addr| !i.is_unspecified()),
                host_port: p.host_port,
                proto: if p.proto == "udp" { Proto::Udp } else { Proto::Tcp },
                ip: a
                    .egress
                    .as_deref()
                    .unwrap_or(&a.ip)
                    .parse()
                    .unwrap_or(Ipv4Addr::UNSPECIFIED),
                port: p.port,
            });
        }
        let _ = b.apply();
    }
    let ns = netns_path(engine, &r.id);
    if ns.exists() {
        if unmount {
            berth_net::netns::remove(&ns);
        }
    } else {
        // No namespace (a half-made attachment): the host end may still be there.
        let _ = berth_net::link::delete(&format!("vb{}", &r.id[..11]));
    }
    let leases: Vec<(String, String)> = {
        let Ok(mut st) = engine
            .conn()
            .prepare("SELECT network, ip FROM leases WHERE container = ?1")
        else {
            return Vec::new();
        };
        let Ok(rows) = st.query_map(params![r.id], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        }) else {
            return Vec::new();
        };
        rows.filter_map(std::result::Result::ok).collect()
    };
    super::overlay::leave(engine, &r.id, &leases);
    let networks: Vec<String> = leases.into_iter().map(|(n, _)| n).collect();
    let _ = engine
        .conn()
        .execute("DELETE FROM leases WHERE container = ?1", params![r.id]);
    networks
        .into_iter()
        .filter(|id| users(engine, id).map(|u| u.is_empty()).unwrap_or(false))
        .collect()
}

/// Unmounts and removes a container's network namespace (see [`release`]).
pub fn remove_netns(engine: &Engine, id: &str) {
    berth_net::netns::remove(&netns_path(engine, id));
}
