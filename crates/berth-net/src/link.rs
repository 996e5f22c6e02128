//! Links, addresses and routes over rtnetlink. rtnetlink is async; each call here runs on a
//! small current-thread runtime of its own, so callers (the CLI, the monitor) stay
//! synchronous and thread-free.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::{io_err, NetError, Result};

fn block_on<T>(f: impl Future<Output = Result<T>>) -> Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(io_err("starting the netlink runtime"))?;
    rt.block_on(f)
}

fn connect() -> Result<Handle> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(io_err("opening a netlink socket"))?;
    tokio::spawn(conn);
    Ok(handle)
}

fn nl(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetError {
    let op = op.into();
    move |e| NetError::Netlink {
        op,
        message: e.to_string(),
    }
}

/// Whether a netlink error is the kernel's EEXIST.
fn exists(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -libc::EEXIST)
}

async fn index(handle: &Handle, name: &str) -> Result<Option<u32>> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(m)) => Ok(Some(m.header.index)),
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(nl(format!("looking up {name}"))(e)),
    }
}

/// The index of link `name` in the caller's namespace, if it exists.
pub fn index_of(name: &str) -> Result<Option<u32>> {
    block_on(async {
        let h = connect()?;
        index(&h, name).await
    })
}

/// Makes the bridge `name` (if missing) with `gateway/prefix` on it, and brings it up.
pub fn ensure_bridge(name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<()> {
    block_on(async {
        let h = connect()?;
        if index(&h, name).await?.is_none() {
            if let Err(e) = h.link().add(LinkBridge::new(name).build()).execute().await {
                if !exists(&e) {
                    return Err(nl(format!("creating bridge {name}"))(e));
                }
            }
        }
        let idx = index(&h, name)
            .await?
            .ok_or_else(|| NetError::Invalid(format!("bridge {name} vanished")))?;
        if let Err(e) = h.address().add(idx, IpAddr::V4(gateway), prefix).execute().await {
            if !exists(&e) {
                return Err(nl(format!("adding {gateway}/{prefix} to {name}"))(e));
            }
        }
        set_up(&h, idx, name).await
    })
}

async fn set_up(h: &Handle, idx: u32, name: &str) -> Result<()> {
    h.link()
        .set(LinkUnspec::new_with_index(idx).up().build())
        .execute()
        .await
        .map_err(nl(format!("bringing {name} up")))
}

/// Deletes link `name` (a veth takes its peer with it); a missing link is not an error.
pub fn delete(name: &str) -> Result<()> {
    block_on(async {
        let h = connect()?;
        if let Some(idx) = index(&h, name).await? {
            h.link()
                .del(idx)
                .execute()
                .await
                .map_err(nl(format!("deleting {name}")))?;
        }
        Ok(())
    })
}

/// What a container's end of a veth pair gets.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The name inside the container (`eth0`).
    pub ifname: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// The default gateway (`None` on an internal network: no route out).
    pub gateway: Option<Ipv4Addr>,
    /// Its MAC address.
    pub mac: [u8; 6],
}

/// Makes a veth pair in one request: `host` on `bridge` and up, its peer made directly
/// inside the namespace at `netns` as `ep.ifname` with its MAC (no move, no rename: each
/// of those would cost the kernel a network synchronization). Then, inside, the address,
/// the link and `lo` go up and the default route is added.
pub fn add_veth(host: &str, bridge: &str, netns: &Path, ep: &Endpoint) -> Result<()> {
    let ns = std::fs::File::open(netns).map_err(io_err(format!("opening {}", netns.display())))?;
    block_on(async {
        let h = connect()?;
        let br = index(&h, bridge)
            .await?
            .ok_or_else(|| NetError::Invalid(format!("bridge {bridge} does not exist")))?;
        let peer = LinkUnspec::new_with_name(&ep.ifname)
            .address(ep.mac.to_vec())
            .setns_by_fd(ns.as_raw_fd())
            .build();
        let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(host.to_string())
            .controller(br)
            .up()
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        h.link()
            .add(msg)
            .execute()
            .await
            .map_err(nl(format!("creating veth {host}")))
    })?;
    let ep = ep.clone();
    crate::netns::run_in(netns, move || {
        block_on(async move {
            let h = connect()?;
            let pi = index(&h, &ep.ifname)
                .await?
                .ok_or_else(|| NetError::Invalid(format!("{} is not in the namespace", ep.ifname)))?;
            h.address()
                .add(pi, IpAddr::V4(ep.ip), ep.prefix)
                .execute()
                .await
                .map_err(nl(format!("adding {}/{}", ep.ip, ep.prefix)))?;
            set_up(&h, pi, &ep.ifname).await?;
            if let Some(lo) = index(&h, "lo").await? {
                set_up(&h, lo, "lo").await?;
            }
            if let Some(gw) = ep.gateway {
                let route = RouteMessageBuilder::<Ipv4Addr>::new()
                    .gateway(gw)
                    .output_interface(pi)
                    .build();
                h.route()
                    .add(route)
                    .execute()
                    .await
                    .map_err(nl(format!("adding the default route via {gw}")))?;
            }
            Ok(())
        })
    })
}
