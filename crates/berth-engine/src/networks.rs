//! Networks as Docker users know them, over berth-net: the default `bridge` network and
//! user-defined bridges, rows in `berth.db` with their address leases; a container's
//! attachment (network namespace, veth, address, published ports) made by its monitor
//! before the container starts and undone when it stops or is removed.
//!
//! A network's bridge and its nftables elements exist while some container is attached to
//! it: the first attachment brings them up, the last detachment takes them down, and the
//! table goes with the last network in use. So with no container running, nothing of
//! berth's is left in the kernel's network configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use berth_net::ipam::Subnet;
use berth_net::nft::Table;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

pub use crate::model::{Attachment, Published};
use crate::store::{Engine, Record};
use crate::{EngineError, Result};

pub mod agent;
mod endpoints;
pub use endpoints::*;
pub mod overlay;
pub mod usermode;

/// The default network's name.
pub const DEFAULT: &str = "bridge";

/// A network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Network {
    /// 64 hex digits.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// `bridge`.
    pub driver: String,
    /// The host bridge's interface name.
    pub bridge: String,
    /// `10.89.0.0/24`.
    pub subnet: String,
    /// The gateway (the bridge's address).
    pub gateway: String,
    /// No route out.
    pub internal: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// RFC 3339.
    pub created: String,
    /// An overlay's VxLAN network identifier (0: a bridge).
    #[serde(default)]
    pub vni: u32,
    /// An overlay's `--opt encrypted`.
    #[serde(default)]
    pub encrypted: bool,
}

impl Network {
    /// Docker's scope: `global` for an overlay (the cluster's), else `local`.
    pub fn scope(&self) -> &'static str {
        if self.driver == overlay::DRIVER {
            "global"
        } else {
            "local"
        }
    }

    fn subnet(&self) -> Result<Subnet> {
        Subnet::parse(&self.subnet).map_err(net_err)
    }

    fn gateway(&self) -> Result<Ipv4Addr> {
        self.gateway
            .parse()
            .map_err(|_| EngineError::Invalid(format!("network {}: bad gateway {}", self.name, self.gateway)))
    }
}

impl Attachment {
    fn new(n: &Network, ip: Ipv4Addr, prefix: u8, gateway: Ipv4Addr, mac: &[u8; 6], veth: &str) -> Attachment {
        Attachment {
            network: n.name.clone(),
            network_id: n.id.clone(),
            ip: ip.to_string(),
            prefix,
            gateway: gateway.to_string(),
            mac: berth_net::ipam::mac_string(mac),
            veth: veth.to_string(),
            ports: Vec::new(),
            dns_upstream: Vec::new(),
            egress: None,
        }
    }
}

/// A bridge name (or prefix) berth will use: an interface name, and safe inside nft's
/// quoted strings.
fn check_ifname(name: &str, max: usize) -> Result<()> {
    if name.is_empty() || name.len() > max || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(EngineError::Invalid(format!("invalid bridge name {name:?}")));
    }
    Ok(())
}

fn net_err(e: berth_net::NetError) -> EngineError {
    EngineError::Invalid(e.to_string())
}

/// A setting fixed when first read: from the environment variable `env` if set, else
/// `default`. Keeps a data root's bridge, subnet and table names stable.
fn setting(engine: &Engine, key: &str, env: &str, default: &str) -> Result<String> {
    let c = engine.conn();
    if let Some(v) = c
        .query_row("SELECT value FROM settings WHERE key = ?1", params![key], |r| {
            r.get::<_, String>(0)
        })
        .optional()?
    {
        return Ok(v);
    }
    let v = std::env::var(env).unwrap_or_else(|_| default.to_string());
    c.execute(
        "INSERT OR IGNORE INTO settings(key, value) VALUES (?1, ?2)",
        params![key, v],
    )?;
    Ok(c.query_row("SELECT value FROM settings WHERE key = ?1", params![key], |r| r.get(0))?)
}

/// berth's nftables table for this data root (`BERTH_NFT_TABLE`, default `berth`).
pub fn table(engine: &Engine) -> Result<Table> {
    let name = setting(engine, "nft_table", "BERTH_NFT_TABLE", "berth")?;
    // It goes into nft's command language: a plain identifier only.
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(EngineError::Invalid(format!("invalid nftables table name {name:?}")));
    }
    Ok(Table::new(&name))
}

/// Every network.
pub fn list(engine: &Engine) -> Result<Vec<Network>> {
    ensure_default(engine)?;
    let mut st = engine.conn().prepare("SELECT record FROM networks ORDER BY name")?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for r in rows {
        out.push(serde_json::from_str(&r?).map_err(|e| EngineError::Invalid(e.to_string()))?);
    }
    Ok(out)
}

/// A network by name, full id or unique id prefix.
pub fn get(engine: &Engine, name: &str) -> Result<Network> {
    let all = list(engine)?;
    if let Some(n) = all.iter().find(|n| n.name == name || n.id == name) {
        return Ok(n.clone());
    }
    let by_prefix: Vec<&Network> = all
        .iter()
        .filter(|n| !name.is_empty() && n.id.starts_with(name))
        .collect();
    match by_prefix.as_slice() {
        [n] => Ok((*n).clone()),
        [] => overlay::import(engine, name).ok_or_else(|| EngineError::NoSuchNetwork(name.to_string())),
        _ => Err(EngineError::Invalid(format!(
            "network {name} is ambiguous ({} matches found)",
            by_prefix.len()
        ))),
    }
}

fn insert(engine: &Engine, n: &Network) -> Result<()> {
    let json = serde_json::to_string(n).map_err(|e| EngineError::Invalid(e.to_string()))?;
    engine
        .conn()
        .execute(
            "INSERT INTO networks(id, name, record) VALUES (?1, ?2, ?3)",
            params![n.id, n.name, json],
        )
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                EngineError::Conflict(format!("network with name {} already exists", n.name))
            }
            e => e.into(),
        })?;
    Ok(())
}

/// The default `bridge` network (bridge `BERTH_BRIDGE`, default `berth0`, on
/// `BERTH_BRIDGE_SUBNET`, default 10.89.0.0/16: clear of Docker's 172.17.0.0/16).
pub fn ensure_default(engine: &Engine) -> Result<()> {
    let c = engine.conn();
    let have: Option<String> = c
        .query_row("SELECT id FROM networks WHERE name = ?1", params![DEFAULT], |r| {
            r.get(0)
        })
        .optional()?;
    if have.is_some() {
        return Ok(());
    }
    let subnet = Subnet::parse(&setting(
        engine,
        "bridge_subnet",
        "BERTH_BRIDGE_SUBNET",
        "10.89.0.0/16",
    )?)
    .map_err(net_err)?;
    let n = Network {
        id: crate::store::new_id()?,
        name: DEFAULT.into(),
        driver: "bridge".into(),
        bridge: {
            let b = setting(engine, "bridge_name", "BERTH_BRIDGE", "berth0")?;
            check_ifname(&b, 15)?;
            b
        },
        subnet: subnet.to_string(),
        gateway: subnet.first_host().to_string(),
        internal: false,
        labels: BTreeMap::new(),
        created: berth_oci::time::now(),
        vni: 0,
        encrypted: false,
    };
    match insert(engine, &n) {
        Ok(()) | Err(EngineError::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Options of `network create`.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// The name.
    pub name: String,
    /// `--subnet` (default: the next free /24 of the network pool).
    pub subnet: Option<String>,
    /// `--gateway` (default: the subnet's first address).
    pub gateway: Option<String>,
    /// `--internal`.
    pub internal: bool,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `-d`: `bridge` (also when empty) or `overlay`.
    pub driver: String,
    /// `--opt encrypted` (overlay).
    pub encrypted: bool,
}

/// A network's driver options (`-o K[=V]`, the API's `Options`): whether an overlay asks
/// for encryption (`encrypted`). A bridge's options are accepted and not used; an overlay
/// knows no other.
pub fn encrypted_option<'a>(driver: &str, opts: impl IntoIterator<Item = &'a str>) -> Result<bool> {
    let mut encrypted = false;
    for o in opts {
        let (k, v) = o.split_once('=').unwrap_or((o, ""));
        match (driver, k) {
            (overlay::DRIVER, "encrypted") => encrypted = !matches!(v, "false" | "0"),
            (overlay::DRIVER, _) => {
                return Err(EngineError::Invalid(format!(
                    "unknown overlay network option {k:?} (known: encrypted)"
                )))
            }
            _ => {}
        }
    }
    Ok(encrypted)
}

/// `network create`: a user-defined bridge network, or an overlay network of the cluster.
pub fn create(engine: &Engine, o: &CreateOptions) -> Result<Network> {
    if o.name.is_empty() || !o.name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
        return Err(EngineError::Invalid(format!("invalid network name {:?}", o.name)));
    }
    let overlay = match o.driver.as_str() {
        "" | "bridge" => None,
        overlay::DRIVER => {
            if crate::rootless::is_rootless() {
                return Err(EngineError::Invalid(
                    "overlay networks need root (their VxLAN devices are the host's)".into(),
                ));
            }
            Some(overlay::cluster()?.1)
        }
        d => return Err(EngineError::NotFound(format!("plugin \"{d}\" not found"))),
    };
    if o.encrypted && overlay.is_none() {
        return Err(EngineError::Invalid(
            "--opt encrypted is an overlay network's option".into(),
        ));
    }
    let existing = list(engine)?;
    if existing.iter().any(|n| n.name == o.name) {
        return Err(EngineError::Conflict(format!(
            "network with name {} already exists",
            o.name
        )));
    }
    // The address space a new network must stay out of: this host's networks and, for an
    // overlay, every overlay network of the cluster.
    let mut named: Vec<(String, Subnet)> = existing
        .iter()
        .filter_map(|n| n.subnet().ok().map(|s| (n.name.clone(), s)))
        .collect();
    if let Some(store) = &overlay {
        named.extend(overlay::cluster_subnets(store)?);
    }
    let taken: Vec<Subnet> = named.iter().map(|(_, s)| *s).collect();
    let subnet = match &o.subnet {
        Some(s) => {
            let s = Subnet::parse(s).map_err(net_err)?;
            if let Some((name, _)) = named.iter().find(|(_, t)| t.overlaps(&s)) {
                return Err(EngineError::Conflict(format!(
                    "invalid pool request: Pool overlaps with other one on this address space ({name})"
                )));
            }
            s
        }
        None => {
            // The next free /24 of the pool (`BERTH_NETWORK_POOL`, default 10.90.0.0/15;
            // overlays: `BERTH_OVERLAY_POOL`, default 10.200.0.0/16).
            let pool = if overlay.is_some() {
                setting(engine, "overlay_pool", "BERTH_OVERLAY_POOL", "10.200.0.0/16")?
            } else {
                setting(engine, "network_pool", "BERTH_NETWORK_POOL", "10.90.0.0/15")?
            };
            let pool = Subnet::parse(&pool).map_err(net_err)?;
            let count = if pool.prefix >= 24 {
                1
            } else {
                1u32 << (24 - u32::from(pool.prefix))
            };
            (0..count)
                .map(|i| Subnet {
                    addr: Ipv4Addr::from(u32::from(pool.addr) + (i << 8)),
                    prefix: 24,
                })
                .find(|s| !taken.iter().any(|t| t.overlaps(s)))
                .ok_or_else(|| EngineError::Invalid(format!("no free subnet left in {pool}")))?
        }
    };
    let gateway = match &o.gateway {
        Some(g) => {
            let ip: Ipv4Addr = g
                .parse()
                .map_err(|_| EngineError::Invalid(format!("invalid gateway {g:?}")))?;
            if !subnet.contains(ip) || ip == subnet.addr || ip == subnet.broadcast() {
                return Err(EngineError::Invalid(format!(
                    "gateway {g} is not a host address of {subnet}"
                )));
            }
            ip
        }
        None => subnet.first_host(),
    };
    if let Some(store) = &overlay {
        let n = overlay::create(engine, o, store, subnet, gateway)?;
        crate::events::record(
            engine,
            "network",
            "create",
            &n.id,
            serde_json::json!({"name": n.name, "type": overlay::DRIVER}),
        );
        return Ok(n);
    }
    let id = crate::store::new_id()?;
    let prefix = setting(engine, "bridge_prefix", "BERTH_BRIDGE_PREFIX", "br-")?;
    check_ifname(&prefix, 10)?;
    let n = Network {
        bridge: format!("{prefix}{}", &id[..12.min(15usize.saturating_sub(prefix.len()))]),
        id,
        name: o.name.clone(),
        driver: "bridge".into(),
        subnet: subnet.to_string(),
        gateway: gateway.to_string(),
        internal: o.internal,
        labels: o.labels.clone(),
        created: berth_oci::time::now(),
        vni: 0,
        encrypted: false,
    };
    insert(engine, &n)?;
    crate::events::record(
        engine,
        "network",
        "create",
        &n.id,
        serde_json::json!({"name": n.name, "type": "bridge"}),
    );
    Ok(n)
}

/// Containers (ids) with a lease on network `id`.
fn users(engine: &Engine, id: &str) -> Result<Vec<String>> {
    let mut st = engine
        .conn()
        .prepare("SELECT container FROM leases WHERE network = ?1")?;
    let rows = st.query_map(params![id], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// `network rm`: refused while a container uses it; the default network stays.
pub fn remove(engine: &Engine, name: &str) -> Result<Network> {
    let n = get(engine, name)?;
    if n.name == DEFAULT {
        return Err(EngineError::Conflict(format!(
            "{DEFAULT} is a pre-defined network and cannot be removed"
        )));
    }
    let using: Vec<String> = engine
        .all()?
        .into_iter()
        .filter(|r| r.network_mode == n.name || r.network_mode == n.id)
        .map(|r| r.name)
        .collect();
    let connected: Vec<String> = {
        let mut st = engine
            .conn()
            .prepare("SELECT container FROM connections WHERE network = ?1")?;
        let rows = st.query_map(params![n.id], |r| r.get::<_, String>(0))?;
        rows.filter_map(std::result::Result::ok)
            .filter_map(|id| engine.resolve(&id).ok().map(|r| r.name))
            .collect()
    };
    let mut using = using;
    using.extend(connected);
    if !using.is_empty() || !users(engine, &n.id)?.is_empty() {
        return Err(EngineError::Conflict(format!(
            "error while removing network: network {} id {} has active endpoints ({})",
            n.name,
            n.id,
            using.join(", ")
        )));
    }
    if n.driver == overlay::DRIVER {
        overlay::remove(&n)?;
    }
    engine
        .conn()
        .execute("DELETE FROM networks WHERE id = ?1", params![n.id])?;
    // A monitor may still be keeping the bridge for a next user: there will be none.
    let _guard = lock(engine)?;
    tear_down(engine, &n);
    crate::events::record(
        engine,
        "network",
        "destroy",
        &n.id,
        serde_json::json!({"name": n.name, "type": n.driver}),
    );
    Ok(n)
}

/// Serializes bring-up and teardown of bridges and the table among berth processes.
fn lock(engine: &Engine) -> Result<Option<nix::fcntl::Flock<std::fs::File>>> {
    // A data root removed under a lingering teardown (a test's, or `rm -rf` of a scratch
    // root): nobody is left to race with, and the lock file must not bring it back.
    if !engine.root.exists() {
        return Ok(None);
    }
    let p = engine.run.join("netns").join(".lock");
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).map_err(crate::io_err("creating", d))?;
    }
    let guard = crate::store::lock_file(&p)?;
    // A rootless engine's bridges are in its own network namespace.
    if crate::rootless::is_rootless() {
        crate::rootless::network_home(&engine.run)?;
    }
    Ok(Some(guard))
}

fn sysctl(path: &str, value: &str) {
    let _ = std::fs::write(path, value);
}

/// Makes the network's bridge and nftables elements. A bridge that is already up means
/// the network is (its first user did this), so the common case costs one netlink lookup.
fn bring_up(engine: &Engine, n: &Network) -> Result<()> {
    if berth_net::link::index_of(&n.bridge).map_err(net_err)?.is_some() {
        return Ok(());
    }
    let subnet = n.subnet()?;
    berth_net::link::ensure_bridge(&n.bridge, n.gateway()?, subnet.prefix).map_err(net_err)?;
    // Published ports reach containers from 127.0.0.1 too; containers reach out.
    sysctl(&format!("/proc/sys/net/ipv4/conf/{}/route_localnet", n.bridge), "1");
    sysctl("/proc/sys/net/ipv4/ip_forward", "1");
    let t = table(engine)?;
    let mut b = t.batch();
    if !t.exists() {
        b.create_table();
    }
    b.add_subnet(&subnet);
    if n.internal {
        b.set_internal(&n.bridge, true);
    }
    for other in list(engine)? {
        if other.id != n.id && berth_net::link::index_of(&other.bridge).ok().flatten().is_some() {
            b.isolate(&n.bridge, &other.bridge);
        }
    }
    b.apply().map_err(net_err)
}

/// Takes the network's bridge and elements down (its last user left), and the table with
/// the last network in use.
fn tear_down(engine: &Engine, n: &Network) {
    if n.driver == overlay::DRIVER {
        overlay::tear_down(engine, n);
        return;
    }
    // Already down (another monitor got here first): nothing to do.
    if !matches!(berth_net::link::index_of(&n.bridge), Ok(Some(_))) {
        return;
    }
    let Ok(t) = table(engine) else { return };
    let _ = berth_net::link::delete(&n.bridge);
    let any_left = engine
        .conn()
        .query_row("SELECT COUNT(*) FROM leases", [], |r| r.get::<_, i64>(0))
        .unwrap_or(1)
        > 0;
    let mut b = t.batch();
    if !any_left {
        b.delete_table();
    } else {
        if let Ok(subnet) = n.subnet() {
            b.remove_subnet(&subnet);
        }
        if n.internal {
            b.set_internal(&n.bridge, false);
        }
        for other in list(engine).unwrap_or_default().iter().filter(|o| o.id != n.id) {
            if berth_net::link::index_of(&other.bridge).ok().flatten().is_some() {
                b.unisolate(&n.bridge, &other.bridge);
            }
        }
    }
    let _ = b.apply();
}

pub use crate::options::Wanted;

/// `-p [ip:][hostPort:]containerPort[/proto]`: the single ports it asks for.
pub fn parse_publish(spec: &str) -> Result<Vec<Wanted>> {
    Ok(crate::options::PortSpec::parse(spec)?.wanted())
}

/// Takes down the bridges (and elements, and the table) of `networks` that still have no
/// user after `linger`. A monitor lingers a moment after its container is gone, so a run
/// that follows at once finds the bridge up instead of paying to make it again.
pub fn tear_down_idle(engine: &Engine, networks: &[String], linger: std::time::Duration) {
    if networks.is_empty() {
        return;
    }
    let deadline = std::time::Instant::now() + linger;
    loop {
        let busy = networks
            .iter()
            .all(|id| users(engine, id).map(|u| !u.is_empty()).unwrap_or(true));
        if busy || std::time::Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50).min(linger));
    }
    let Ok(_guard) = lock(engine) else { return };
    for id in networks {
        if users(engine, id).map(|u| u.is_empty()).unwrap_or(false) {
            if let Ok(n) = get(engine, id) {
                tear_down(engine, &n);
            }
        }
    }
}

/// The networks that pass `network ls` filters, Docker's way: `name` (a substring),
/// `id` (a prefix), `driver`, `label` (`k` or `k=v`), `type` (`custom` or `builtin`),
/// `dangling` (no container attached). Values of one key are ORed, keys ANDed.
pub fn filtered(engine: &Engine, filters: &std::collections::HashMap<String, Vec<String>>) -> Result<Vec<Network>> {
    for k in filters.keys() {
        if !["name", "id", "driver", "label", "type", "dangling", "scope"].contains(&k.as_str()) {
            return Err(EngineError::Invalid(format!("invalid filter '{k}'")));
        }
    }
    overlay::refresh(engine);
    let builtin = |n: &Network| ["bridge", "host", "none"].contains(&n.name.as_str());
    let mut out = Vec::new();
    for n in list(engine)? {
        let any = |k: &str, f: &dyn Fn(&str) -> bool| filters.get(k).is_none_or(|vs| vs.iter().any(|v| f(v)));
        let keep = any("name", &|v| n.name.contains(v))
            && any("id", &|v| n.id.starts_with(v))
            && any("driver", &|v| n.driver == v)
            && any("scope", &|v| v == n.scope())
            && any("type", &|v| {
                if v == "builtin" {
                    builtin(&n)
                } else {
                    v == "custom" && !builtin(&n)
                }
            })
            && filters.get("label").is_none_or(|vs| {
                vs.iter().all(|l| match l.split_once('=') {
                    Some((k, v)) => n.labels.get(k).is_some_and(|x| x == v),
                    None => n.labels.contains_key(l),
                })
            })
            && any("dangling", &|v| {
                let used = crate::inspect::network_json(engine, &n)["Containers"]
                    .as_object()
                    .is_some_and(|m| !m.is_empty());
                let want = v == "true" || v == "1";
                !builtin(&n) && used != want
            });
        if keep {
            out.push(n);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_net::nft::Proto;

    #[test]
    fn publish_specs_parse_like_docker() {
        let p = parse_publish("8080:80").unwrap();
        assert_eq!(p, vec![(None, Some(8080), 80, Proto::Tcp)]);
        let p = parse_publish("127.0.0.1:8080:80/udp").unwrap();
        assert_eq!(p, vec![(Some(Ipv4Addr::LOCALHOST), Some(8080), 80, Proto::Udp)]);
        let p = parse_publish("127.0.0.1::80").unwrap();
        assert_eq!(p, vec![(Some(Ipv4Addr::LOCALHOST), None, 80, Proto::Tcp)]);
        assert_eq!(parse_publish("80").unwrap(), vec![(None, None, 80, Proto::Tcp)]);
        let p = parse_publish("9000-9001:80-81").unwrap();
        assert_eq!(
            p,
            vec![(None, Some(9000), 80, Proto::Tcp), (None, Some(9001), 81, Proto::Tcp)]
        );
        for bad in ["", "x", "1:2:3:4", "80/sctp", "0", "9000-9002:80-81", "300.0.0.1:1:1"] {
            parse_publish(bad).unwrap_err();
        }
    }
}
