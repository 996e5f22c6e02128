//! The overlay's data path on one host (issue #21's first part): a VxLAN device for a
//! network's VNI, without multicast or learning, on that network's bridge; and the static
//! forwarding (FDB) and neighbour entries that tell it where each remote endpoint lives.
//! What programs them (the cluster store's watches) comes later.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{LinkUnspec, LinkVxlan};

use crate::link::Netlink;
use crate::{io_err, NetError, Result};

/// VxLAN's IANA port.
pub const PORT: u16 = 4789;
/// The overlay's MTU: 1500 less VxLAN's 50 bytes of headers.
pub const MTU: u32 = 1450;

/// What a VxLAN device is made with.
#[derive(Debug, Clone)]
pub struct Vxlan {
    /// Its name.
    pub name: String,
    /// The network's VNI.
    pub vni: u32,
    /// This host's tunnel address (its VTEP).
    pub local: Ipv4Addr,
    /// The bridge it joins (in `netns`).
    pub bridge: String,
}

/// Makes the device, in the namespace at `netns` (its UDP socket stays in the caller's
/// home namespace, where the underlay is), joins it to the bridge and brings it up. It
/// answers ARP for the remote endpoints itself (`proxy`) from the neighbour entries, and
/// learns nothing: every remote MAC is programmed.
pub fn ensure(netns: &Path, v: &Vxlan) -> Result<()> {
    let ns = std::fs::File::open(netns).map_err(io_err(format!("opening {}", netns.display())))?;
    let exists = crate::netns::run_in(netns, || Netlink::open_here()?.index(&v.name))?;
    if exists.is_none() {
        let mut nl = Netlink::open()?;
        let msg = LinkVxlan::new(&v.name, v.vni)
            .port(PORT)
            .local(v.local)
            .learning(false)
            .proxy(true)
            .mtu(MTU)
            .setns_by_fd(ns.as_raw_fd())
            .build();
        nl.call(
            &format!("creating VxLAN {} (VNI {})", v.name, v.vni),
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            0,
        )?;
    }
    crate::netns::run_in(netns, || {
        let mut nl = Netlink::open_here()?;
        let idx = nl
            .index(&v.name)?
            .ok_or_else(|| NetError::Invalid(format!("{} is not in {}", v.name, netns.display())))?;
        let br = nl
            .index(&v.bridge)?
            .ok_or_else(|| NetError::Invalid(format!("bridge {} is not in {}", v.bridge, netns.display())))?;
        let msg = LinkUnspec::new_with_index(idx).controller(br).up().build();
        nl.call(
            &format!("joining {} to {}", v.name, v.bridge),
            RouteNetlinkMessage::SetLink(msg),
            0,
            0,
        )
    })
}

/// A remote endpoint's place: frames for `mac` go to the host at `remote` (an FDB entry
/// on the VxLAN device), and ARP for `ip` is answered with `mac` (a neighbour entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remote {
    /// The endpoint's address on the overlay.
    pub ip: Ipv4Addr,
    /// Its MAC.
    pub mac: [u8; 6],
    /// The VTEP of the host it is on.
    pub host: Ipv4Addr,
}

fn fdb_message(idx: u32, r: &Remote) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = idx;
    m.header.state = NeighbourState::Permanent;
    m.header.flags = NeighbourFlags::Own;
    m.attributes.push(NeighbourAttribute::LinkLayerAddress(r.mac.to_vec()));
    m.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(r.host)));
    m
}

fn neigh_message(idx: u32, r: &Remote) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Inet;
    m.header.ifindex = idx;
    m.header.state = NeighbourState::Permanent;
    m.attributes.push(NeighbourAttribute::LinkLayerAddress(r.mac.to_vec()));
    m.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(r.ip)));
    m
}

/// Programs a remote endpoint on the VxLAN device `dev` in `netns` (again is no error).
pub fn add_remote(netns: &Path, dev: &str, r: &Remote) -> Result<()> {
    crate::netns::run_in(netns, || {
        let mut nl = Netlink::open_here()?;
        let idx = nl
            .index(dev)?
            .ok_or_else(|| NetError::Invalid(format!("{dev} is not in {}", netns.display())))?;
        nl.call(
            &format!("adding the FDB entry of {} on {dev}", r.ip),
            RouteNetlinkMessage::NewNeighbour(fdb_message(idx, r)),
            NLM_F_CREATE | NLM_F_APPEND,
            libc::EEXIST,
        )?;
        nl.call(
            &format!("adding the neighbour entry of {} on {dev}", r.ip),
            RouteNetlinkMessage::NewNeighbour(neigh_message(idx, r)),
            NLM_F_CREATE | NLM_F_REPLACE,
            0,
        )
    })
}

/// Removes a remote endpoint's entries (entries already gone are no error).
pub fn remove_remote(netns: &Path, dev: &str, r: &Remote) -> Result<()> {
    crate::netns::run_in(netns, || {
        let mut nl = Netlink::open_here()?;
        let Some(idx) = nl.index(dev)? else { return Ok(()) };
        nl.call(
            &format!("removing the neighbour entry of {} on {dev}", r.ip),
            RouteNetlinkMessage::DelNeighbour(neigh_message(idx, r)),
            0,
            libc::ENOENT,
        )?;
        nl.call(
            &format!("removing the FDB entry of {} on {dev}", r.ip),
            RouteNetlinkMessage::DelNeighbour(fdb_message(idx, r)),
            0,
            libc::ENOENT,
        )
    })
}
