//! Overlay networks on this host (issue #21): one L2 network across the hosts of a cluster,
//! carried in VxLAN, as Docker's overlay driver builds it.
//!
//! The network's definition, its addresses and its endpoints live in the cluster store
//! (`crate::overlay`); each host that runs one of its containers keeps a local row (made
//! from the definition on first use) and, while it does, a namespace of the network's own
//! (`<run>/netns/ov-<id>`) holding a bridge and the VxLAN device. A container joins with a
//! veth whose other end is on that bridge (MTU 1450), and gets a second leg on the default
//! bridge for the world (its default route, NAT, its published ports), as Docker's
//! `docker_gwbridge` does. The endpoints on other hosts are programmed on the VxLAN device
//! once at attach, then kept in step by the host's overlay agent (`agent`).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use rusqlite::params;

use super::*;
use crate::cluster::{self, Config, Etcd, Store as _};
use crate::overlay::{self as store_overlay, Definition};

/// The driver's name.
pub const DRIVER: &str = "overlay";
/// The bridge in a network's namespace.
pub const BRIDGE: &str = "br0";
/// The VxLAN device in a network's namespace.
pub const VXLAN: &str = "vxlan0";

/// This host's cluster, which an overlay network needs.
pub(crate) fn cluster() -> Result<(Config, Etcd)> {
    match cluster::config()? {
        Some(c) => {
            let e = c.etcd()?;
            Ok((c, e))
        }
        None => Err(EngineError::Invalid(format!(
            "overlay networks need a cluster store: start `berth daemon --cluster-store etcd://HOST:PORT --cluster-advertise IP`, or set `store` and `advertise` in the [cluster] table of {}",
            cluster::config_path().display()
        ))),
    }
}

/// Where network `n`'s namespace (bridge and VxLAN device) is mounted on this host.
pub fn namespace(engine: &Engine, n: &Network) -> PathBuf {
    engine.run.join("netns").join(format!("ov-{}", &n.id[..12]))
}

/// The endpoints of `n` last synced on this host (the embedded DNS reads them, so names
/// on other hosts resolve while the store is away).
pub fn mirror_path(engine: &Engine, n: &Network) -> PathBuf {
    engine.run.join("overlay").join(format!("{}.json", n.id))
}

/// Writes the endpoints of `n` for the embedded DNS (atomically).
pub(crate) fn write_mirror(path: &std::path::Path, eps: &[store_overlay::Endpoint]) {
    if let Some(d) = path.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    let tmp = path.with_extension("tmp");
    if let Ok(v) = serde_json::to_vec(eps) {
        if std::fs::write(&tmp, v).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }
}

fn row(d: &Definition) -> Network {
    Network {
        id: d.id.clone(),
        name: d.name.clone(),
        driver: DRIVER.into(),
        bridge: format!("ov-{}", &d.id[..12.min(d.id.len())]),
        subnet: d.subnet.clone(),
        gateway: d.gateway.clone(),
        internal: false,
        labels: d.labels.clone(),
        created: d.created.clone(),
        vni: d.vni,
        encrypted: d.encrypted,
    }
}

/// An overlay network's `Options` in `network inspect`, as Docker's overlay driver shows
/// them.
pub fn options_json(n: &Network) -> serde_json::Value {
    let mut o = serde_json::json!({"com.docker.network.driver.overlay.vxlanid_list": n.vni.to_string()});
    if n.encrypted {
        o["encrypted"] = serde_json::json!("");
    }
    o
}

/// The subnets of the cluster's overlay networks, named.
pub(super) fn cluster_subnets(store: &Etcd) -> Result<Vec<(String, Subnet)>> {
    Ok(store_overlay::definitions(store)?
        .into_iter()
        .filter_map(|d| Subnet::parse(&d.subnet).ok().map(|s| (d.name, s)))
        .collect())
}

/// `network create -d overlay`: the network defined for the whole cluster (its name
/// claimed in the store, a VNI allocated), then this host's row. `subnet` and `gateway`
/// were checked against every network this host and the cluster know.
pub(super) fn create(
    engine: &Engine,
    o: &CreateOptions,
    store: &Etcd,
    subnet: Subnet,
    gateway: Ipv4Addr,
) -> Result<Network> {
    if o.encrypted {
        return Err(EngineError::Invalid(
            "--opt encrypted: berth encrypts overlay traffic with the kernel's IPsec (ESP), which is not built yet; this network was not created".into(),
        ));
    }
    if store_overlay::definition(store, &o.name)?.is_some() {
        return Err(EngineError::Conflict(format!(
            "network with name {} already exists",
            o.name
        )));
    }
    let vni = store_overlay::allocate_vni(store, &o.name)?;
    let d = Definition {
        id: crate::store::new_id()?,
        name: o.name.clone(),
        subnet: subnet.to_string(),
        gateway: gateway.to_string(),
        vni,
        encrypted: o.encrypted,
        labels: o.labels.clone(),
        created: berth_oci::time::now(),
    };
    let free_vni = || {
        let _ = store.delete(&format!("{}vnis/{vni}", cluster::PREFIX));
    };
    match store_overlay::define(store, &d) {
        Ok(true) => {}
        Ok(false) => {
            free_vni();
            return Err(EngineError::Conflict(format!(
                "network with name {} already exists",
                o.name
            )));
        }
        Err(e) => {
            free_vni();
            return Err(e);
        }
    }
    let n = row(&d);
    if let Err(e) = insert(engine, &n) {
        let _ = store_overlay::undefine(store, &d);
        return Err(e);
    }
    Ok(n)
}

/// The cluster's network called (or with id) `name`, made known on this host. None when
/// this host is in no cluster, the store does not answer or has no such network.
pub(super) fn import(engine: &Engine, name: &str) -> Option<Network> {
    let (_, store) = cluster().ok()?;
    let d = store_overlay::definitions(&store)
        .ok()?
        .into_iter()
        .find(|d| d.name == name || d.id == name || (name.len() >= 12 && d.id.starts_with(name)))?;
    let n = row(&d);
    match insert(engine, &n) {
        Ok(()) | Err(EngineError::Conflict(_)) => Some(n),
        Err(_) => None,
    }
}

/// Brings this host's overlay rows in step with the cluster (for `network ls`): networks
/// defined elsewhere appear, those removed elsewhere go (unless a container here still
/// uses one). Without a cluster, or with the store away, nothing changes.
pub(super) fn refresh(engine: &Engine) {
    let Ok((_, store)) = cluster() else { return };
    let Ok(defs) = store_overlay::definitions(&store) else {
        return;
    };
    for d in &defs {
        let _ = insert(engine, &row(d));
    }
    let Ok(local) = list(engine) else { return };
    for n in local.iter().filter(|n| n.driver == DRIVER) {
        if !defs.iter().any(|d| d.id == n.id) && users(engine, &n.id).is_ok_and(|u| u.is_empty()) {
            let _ = engine
                .conn()
                .execute("DELETE FROM networks WHERE id = ?1", params![n.id]);
        }
    }
}

/// `network rm` of an overlay network: refused while any host has an endpoint on it;
/// then gone from the cluster.
pub(super) fn remove(n: &Network) -> Result<()> {
    let (_, store) = cluster()?;
    let eps = store_overlay::endpoints(&store, &n.name)?;
    if !eps.is_empty() {
        let on: Vec<String> = eps
            .iter()
            .map(|e| format!("{} on {}", &e.container[..12.min(e.container.len())], e.vtep))
            .collect();
        return Err(EngineError::Conflict(format!(
            "error while removing network: network {} id {} has active endpoints ({})",
            n.name,
            n.id,
            on.join(", ")
        )));
    }
    if let Some(d) = store_overlay::definition(&store, &n.name)?.filter(|d| d.id == n.id) {
        store_overlay::undefine(&store, &d)?;
    }
    Ok(())
}

/// Makes network `n`'s namespace on this host (bridge, VxLAN device with the network's VNI
/// from this host's VTEP), unless it is there.
fn bring_up(engine: &Engine, n: &Network, cfg: &Config) -> Result<PathBuf> {
    let ns = namespace(engine, n);
    if ns.exists() {
        return Ok(ns);
    }
    berth_net::netns::create(&ns).map_err(net_err)?;
    let made = (|| {
        let subnet = n.subnet()?;
        let gw = n.gateway()?;
        berth_net::netns::run_in(&ns, || berth_net::link::ensure_bridge(BRIDGE, gw, subnet.prefix)).map_err(net_err)?;
        berth_net::vxlan::ensure(
            &ns,
            &berth_net::vxlan::Vxlan {
                name: VXLAN.into(),
                vni: n.vni,
                local: cfg.advertise,
                bridge: BRIDGE.into(),
            },
        )
        .map_err(|e| EngineError::Invalid(format!("network {}: {e}", n.name)))
    })();
    if made.is_err() {
        berth_net::netns::remove(&ns);
    }
    made.map(|()| ns)
}

/// Takes network `n`'s namespace on this host down (its last container here left): the
/// bridge, the VxLAN device and what was programmed on it go with it.
pub(super) fn tear_down(engine: &Engine, n: &Network) {
    berth_net::netns::remove(&namespace(engine, n));
    let _ = std::fs::remove_file(mirror_path(engine, n));
}

/// An address of `n` for `container` from the cluster: `want` if no host holds it, else the
/// first free one.
fn claim(store: &Etcd, n: &Network, want: &str, container: &str) -> Result<Ipv4Addr> {
    let subnet = n.subnet()?;
    match want.parse::<Ipv4Addr>() {
        Ok(w) => {
            if !subnet.contains(w) || w == n.gateway()? {
                return Err(EngineError::Invalid(format!(
                    "no configured subnet contains IP address {w}"
                )));
            }
            let key = format!("{}networks/{}/ips/{w}", cluster::PREFIX, n.name);
            if store.create(&key, container.as_bytes(), 0)? {
                Ok(w)
            } else {
                Err(EngineError::Conflict(format!("Address already in use: {w}")))
            }
        }
        Err(_) => cluster::allocate_ip(store, &n.name, &subnet, container),
    }
}

/// The names a container answers to on a network: its name, short id, hostname, aliases.
fn names(r: &Record, aliases: &[String]) -> Vec<String> {
    let mut v = vec![r.name.clone(), r.id[..12].to_string()];
    if !r.hostname.is_empty() && !v.contains(&r.hostname) {
        v.push(r.hostname.clone());
    }
    v.extend(aliases.iter().cloned());
    v
}

/// Joins the container `r` (its namespace at `ns` exists) to overlay network `n` as
/// `ifname`: an address from the cluster, a veth to the network's bridge, its endpoint
/// published and the other hosts' endpoints programmed here. The attachment (without ports
/// or egress).
pub(super) fn join(
    engine: &Engine,
    r: &Record,
    n: &Network,
    ifname: &str,
    want: &str,
    aliases: &[String],
) -> Result<Attachment> {
    let (cfg, store) = cluster()?;
    // The network may have been removed by another host since this one learnt of it.
    if store_overlay::definition(&store, &n.name)?.is_none_or(|d| d.id != n.id) {
        return Err(EngineError::NoSuchNetwork(n.name.clone()));
    }
    let subnet = n.subnet()?;
    let ip = claim(&store, n, want, &r.id)?;
    let made = (|| -> Result<Attachment> {
        engine.conn().execute(
            "INSERT INTO leases(network, ip, container) VALUES (?1, ?2, ?3)",
            params![n.id, ip.to_string(), r.id],
        )?;
        let ovns = bring_up(engine, n, &cfg)?;
        let mac = berth_net::ipam::mac_for(ip);
        let veth = format!("vo{}{}", &r.id[..7], &n.id[..6]);
        let ns = netns_path(engine, &r.id);
        let ep = berth_net::link::Endpoint {
            ifname: ifname.to_string(),
            ip,
            prefix: subnet.prefix,
            gateway: None,
            mac,
            mtu: Some(berth_net::vxlan::MTU),
        };
        berth_net::netns::run_in(&ovns, || {
            let _ = berth_net::link::delete(&veth);
            berth_net::link::add_veth(&veth, BRIDGE, &ns, &ep)
        })
        .map_err(net_err)?;
        let endpoint = store_overlay::Endpoint {
            container: r.id.clone(),
            ip,
            vtep: cfg.advertise,
            names: names(r, aliases),
        };
        store_overlay::publish(&store, &n.name, &endpoint)?;
        // What is known now is programmed now: the container reaches the network's other
        // endpoints from its first packet; the agent keeps it so from here on.
        let eps = store_overlay::sync(&store, &n.name, cfg.advertise, &ovns, VXLAN, &mut Vec::new())?;
        write_mirror(&mirror_path(engine, n), &eps);
        Ok(Attachment::new(n, ip, subnet.prefix, n.gateway()?, &mac, &veth))
    })();
    if made.is_err() {
        let _ = store_overlay::withdraw(&store, &n.name, &r.id);
        let _ = cluster::release_ip(&store, &n.name, ip);
        let _ = engine.conn().execute(
            "DELETE FROM leases WHERE container = ?1 AND network = ?2",
            params![r.id, n.id],
        );
    }
    made
}

/// A container left overlay networks here (`leases`: network id and address): its
/// endpoints withdrawn and addresses given back in the cluster, so every host unprograms
/// it. The store away: they stay there (named in no error: the container is gone either
/// way), and another host's container may not take those addresses until they are freed.
pub(super) fn leave(engine: &Engine, container: &str, leases: &[(String, String)]) {
    let overlays: Vec<(Network, Ipv4Addr)> = leases
        .iter()
        .filter_map(|(net, ip)| {
            let n = get(engine, net).ok().filter(|n| n.driver == DRIVER)?;
            Some((n, ip.parse().ok()?))
        })
        .collect();
    if overlays.is_empty() {
        return;
    }
    let Ok((_, store)) = cluster() else { return };
    for (n, ip) in overlays {
        let _ = store_overlay::withdraw(&store, &n.name, container);
        let _ = cluster::release_ip(&store, &n.name, ip);
    }
}

/// Deletes a container's veth on overlay network `n` (`network disconnect`).
pub(super) fn delete_veth(engine: &Engine, n: &Network, veth: &str) {
    let ovns = namespace(engine, n);
    if ovns.exists() {
        let _ = berth_net::netns::run_in(&ovns, || berth_net::link::delete(veth));
    }
}
