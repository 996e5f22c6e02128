//! An overlay network's endpoints as the cluster store keeps them, and a host's VxLAN
//! device kept in step with them (issue #21): every endpoint on another host programmed
//! (its MAC to its host's VTEP, its address to its MAC), every one that went removed.

use std::net::Ipv4Addr;
use std::path::Path;

use berth_net::vxlan::{self, Remote};
use serde::{Deserialize, Serialize};

use crate::cluster::{Store, PREFIX};
use crate::{EngineError, Result};

/// One endpoint: a container on an overlay network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The container's id.
    pub container: String,
    /// Its address on the network (its MAC is derived from it).
    pub ip: Ipv4Addr,
    /// The VTEP of the host it runs on.
    pub vtep: Ipv4Addr,
    /// Its names and aliases (for DNS across hosts).
    #[serde(default)]
    pub names: Vec<String>,
}

/// An overlay network as the cluster keeps it: every host that uses it makes its local
/// row from this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    /// 64 hex digits (the same on every host).
    pub id: String,
    /// Its name, unique in the cluster.
    pub name: String,
    /// `10.0.9.0/24`.
    pub subnet: String,
    /// The gateway address (never handed out).
    pub gateway: String,
    /// The VxLAN network identifier, unique in the cluster.
    pub vni: u32,
    /// `--opt encrypted`.
    #[serde(default)]
    pub encrypted: bool,
    /// Labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// RFC 3339.
    pub created: String,
}

fn def_key(network: &str) -> String {
    format!("{PREFIX}networks/{network}/config")
}

/// Defines a network for the whole cluster, only if no network of that name exists
/// (atomically); whether it was defined.
pub fn define(store: &dyn Store, d: &Definition) -> Result<bool> {
    let v = serde_json::to_vec(d).map_err(|e| EngineError::Invalid(format!("a network: {e}")))?;
    store.create(&def_key(&d.name), &v, 0)
}

/// The network called `name`, if the cluster has one.
pub fn definition(store: &dyn Store, name: &str) -> Result<Option<Definition>> {
    let key = def_key(name);
    Ok(store
        .list(&key)?
        .into_iter()
        .find(|e| e.key == key)
        .and_then(|e| serde_json::from_slice(&e.value).ok()))
}

/// Every overlay network of the cluster.
pub fn definitions(store: &dyn Store) -> Result<Vec<Definition>> {
    Ok(store
        .list(&format!("{PREFIX}networks/"))?
        .into_iter()
        .filter(|e| e.key.ends_with("/config"))
        .filter_map(|e| serde_json::from_slice(&e.value).ok())
        .collect())
}

/// Removes a network and everything of it (addresses, endpoints) from the cluster, and
/// frees its VNI.
pub fn undefine(store: &dyn Store, d: &Definition) -> Result<()> {
    store.delete(&def_key(&d.name))?;
    for e in store.list(&format!("{PREFIX}networks/{}/", d.name))? {
        store.delete(&e.key)?;
    }
    store.delete(&format!("{PREFIX}vnis/{}", d.vni))
}

/// The first VNI (from 4096, as Docker's overlay driver starts) no network holds,
/// claimed for `network` by creating its key only if absent.
pub fn allocate_vni(store: &dyn Store, network: &str) -> Result<u32> {
    let prefix = format!("{PREFIX}vnis/");
    let taken: std::collections::BTreeSet<u32> = store
        .list(&prefix)?
        .iter()
        .filter_map(|e| e.key[prefix.len()..].parse().ok())
        .collect();
    let mut vni = 4096;
    while vni < (1 << 24) {
        if !taken.contains(&vni) && store.create(&format!("{prefix}{vni}"), network.as_bytes(), 0)? {
            return Ok(vni);
        }
        vni += 1;
    }
    Err(EngineError::Invalid("no VxLAN network identifier is left".into()))
}

fn key(network: &str, container: &str) -> String {
    format!("{PREFIX}networks/{network}/endpoints/{container}")
}

/// Publishes an endpoint, for every host of the cluster.
pub fn publish(store: &dyn Store, network: &str, ep: &Endpoint) -> Result<()> {
    let v = serde_json::to_vec(ep).map_err(|e| EngineError::Invalid(format!("an endpoint: {e}")))?;
    store.put(&key(network, &ep.container), &v, 0)
}

/// Withdraws a container's endpoint.
pub fn withdraw(store: &dyn Store, network: &str, container: &str) -> Result<()> {
    store.delete(&key(network, container))
}

/// The network's endpoints.
pub fn endpoints(store: &dyn Store, network: &str) -> Result<Vec<Endpoint>> {
    Ok(store
        .list(&format!("{PREFIX}networks/{network}/endpoints/"))?
        .iter()
        .filter_map(|e| serde_json::from_slice(&e.value).ok())
        .collect())
}

fn remote(ep: &Endpoint) -> Remote {
    let o = ep.ip.octets();
    Remote {
        ip: ep.ip,
        mac: [0x02, 0x42, o[0], o[1], o[2], o[3]],
        host: ep.vtep,
    }
}

/// Brings the VxLAN device `dev` in `netns` in step with the store: the endpoints on other
/// hosts than `local` programmed, those in `programmed` that are gone removed.
/// `programmed` is what this host has programmed (kept by the caller between calls).
/// Returns the endpoints it read.
pub fn sync(
    store: &dyn Store,
    network: &str,
    local: Ipv4Addr,
    netns: &Path,
    dev: &str,
    programmed: &mut Vec<Remote>,
) -> Result<Vec<Endpoint>> {
    let eps = endpoints(store, network)?;
    apply(&eps, local, netns, dev, programmed)?;
    Ok(eps)
}

/// `sync` of endpoints already read.
fn apply(eps: &[Endpoint], local: Ipv4Addr, netns: &Path, dev: &str, programmed: &mut Vec<Remote>) -> Result<()> {
    let wanted: Vec<Remote> = eps.iter().filter(|e| e.vtep != local).map(remote).collect();
    for gone in programmed.iter().filter(|r| !wanted.contains(r)) {
        vxlan::remove_remote(netns, dev, gone).map_err(|e| EngineError::Invalid(e.to_string()))?;
    }
    for r in wanted.iter().filter(|r| !programmed.contains(r)) {
        vxlan::add_remote(netns, dev, r).map_err(|e| EngineError::Invalid(e.to_string()))?;
    }
    *programmed = wanted;
    Ok(())
}

/// Keeps a host's VxLAN device in step with the store until `stop` is set: a full sync,
/// then a watch of the network's endpoints with a sync on every change. When the store
/// goes away the host keeps what it has programmed (its containers keep talking) and,
/// once the store is back, syncs again and watches on: it catches up.
pub fn follow(
    store: &crate::cluster::Etcd,
    network: &str,
    local: Ipv4Addr,
    netns: &Path,
    dev: &str,
    stop: &std::sync::atomic::AtomicBool,
) {
    follow_with(store, network, local, netns, dev, stop, &mut |_| {});
}

/// [`follow`], handing every endpoint list it synced to `synced` (the agent keeps a copy
/// for name resolution while the store is away).
pub fn follow_with(
    store: &crate::cluster::Etcd,
    network: &str,
    local: Ipv4Addr,
    netns: &Path,
    dev: &str,
    stop: &std::sync::atomic::AtomicBool,
    synced: &mut dyn FnMut(&[Endpoint]),
) {
    use std::sync::atomic::Ordering;
    let prefix = format!("{PREFIX}networks/{network}/endpoints/");
    let mut programmed = Vec::new();
    let pause = || std::thread::sleep(std::time::Duration::from_millis(200));
    while !stop.load(Ordering::SeqCst) {
        // Read at a revision, then watched from the next one: nothing falls between.
        let Ok((entries, rev)) = store.list_at(&prefix) else {
            pause();
            continue;
        };
        let eps: Vec<Endpoint> = entries
            .iter()
            .filter_map(|e| serde_json::from_slice(&e.value).ok())
            .collect();
        if apply(&eps, local, netns, dev, &mut programmed).is_err() {
            pause();
            continue;
        }
        synced(&eps);
        // Each change is synced; a failed sync or a broken stream starts over.
        let mut failed = None;
        let watched = store.watch(&prefix, rev + 1, &mut |change| {
            if change.is_some() {
                match sync(store, network, local, netns, dev, &mut programmed) {
                    Ok(eps) => synced(&eps),
                    Err(e) => failed = Some(e),
                }
            }
            !stop.load(Ordering::SeqCst) && failed.is_none()
        });
        if watched.is_err() || failed.is_some() {
            pause();
        }
    }
}
