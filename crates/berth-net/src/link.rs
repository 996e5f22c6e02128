//! Links, addresses and routes over rtnetlink, synchronously: one netlink socket per call,
//! a request and its acknowledgement, no async runtime (callers such as the monitor stay
//! single-threaded and small). The messages are built with rtnetlink's builders.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use rtnetlink::{AddressMessageBuilder, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::{io_err, NetError, Result};

/// A netlink socket to the kernel's routing subsystem, in the calling thread's network
/// namespace.
pub(crate) struct Netlink {
    socket: Socket,
    seq: u32,
}

/// The kernel refused a request: its errno (negative, as netlink reports it).
struct Refused(i32);

impl Netlink {
    /// A socket on the home namespace (see `netns::set_home`): the host's, or a rootless
    /// engine's own.
    pub(crate) fn open() -> Result<Netlink> {
        crate::netns::in_home(Netlink::open_here)
    }

    /// A socket on the calling thread's namespace.
    pub(crate) fn open_here() -> Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(io_err("opening a netlink socket"))?;
        socket.bind_auto().map_err(io_err("binding a netlink socket"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(io_err("connecting a netlink socket"))?;
        Ok(Netlink { socket, seq: 0 })
    }

    /// Sends `msg` and returns the kernel's answers up to its acknowledgement (or the end of
    /// a dump); a refusal is `Err(Ok(Refused))`, a broken socket `Err(Err(..))`.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> std::result::Result<Vec<RouteNetlinkMessage>, std::result::Result<Refused, NetError>> {
        self.seq += 1;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        req.finalize();
        let mut buf = vec![0u8; req.buffer_len()];
        req.serialize(&mut buf);
        self.socket
            .send(&buf, 0)
            .map_err(|e| Err(io_err("sending a netlink request")(e)))?;
        let mut out = Vec::new();
        loop {
            let (data, _) = self
                .socket
                .recv_from_full()
                .map_err(|e| Err(io_err("reading a netlink answer")(e)))?;
            let mut at = 0;
            while at < data.len() {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[at..]).map_err(|e| {
                    Err(NetError::Netlink {
                        op: "reading a netlink answer".into(),
                        message: e.to_string(),
                    })
                })?;
                let len = usize::try_from(m.header.length).unwrap_or(0);
                if m.header.sequence_number == self.seq {
                    match m.payload {
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(out),
                                Some(code) => Err(Ok(Refused(code.get()))),
                            }
                        }
                        NetlinkPayload::Done(_) => return Ok(out),
                        NetlinkPayload::InnerMessage(inner) => out.push(inner),
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                at += (len + 3) & !3;
            }
        }
    }

    /// Sends `msg`: Ok once acknowledged; `what` names it in an error. A refusal with
    /// `-tolerated` (EEXIST, ENODEV...) counts as done.
    pub(crate) fn call(&mut self, what: &str, msg: RouteNetlinkMessage, flags: u16, tolerated: i32) -> Result<()> {
        match self.request(msg, flags) {
            Ok(_) => Ok(()),
            Err(Ok(Refused(code))) if tolerated != 0 && code == -tolerated => Ok(()),
            Err(Ok(Refused(code))) => Err(NetError::Netlink {
                op: what.to_string(),
                message: std::io::Error::from_raw_os_error(-code).to_string(),
            }),
            Err(Err(e)) => Err(e),
        }
    }

    /// The index of link `name`, if it exists.
    pub(crate) fn index(&mut self, name: &str) -> Result<Option<u32>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(m), 0) {
            Ok(answers) => Ok(answers.into_iter().find_map(|a| match a {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })),
            Err(Ok(Refused(code))) if code == -libc::ENODEV => Ok(None),
            Err(Ok(Refused(code))) => Err(NetError::Netlink {
                op: format!("looking up {name}"),
                message: std::io::Error::from_raw_os_error(-code).to_string(),
            }),
            Err(Err(e)) => Err(e),
        }
    }

    fn set_up(&mut self, idx: u32, name: &str) -> Result<()> {
        let msg = LinkUnspec::new_with_index(idx).up().build();
        self.call(&format!("bringing {name} up"), RouteNetlinkMessage::SetLink(msg), 0, 0)
    }

    fn add_address(&mut self, idx: u32, ip: Ipv4Addr, prefix: u8, name: &str) -> Result<()> {
        let msg = AddressMessageBuilder::<Ipv4Addr>::new()
            .index(idx)
            .address(ip, prefix)
            .build();
        let flags = NLM_F_CREATE | NLM_F_EXCL;
        self.call(
            &format!("adding {ip}/{prefix} to {name}"),
            RouteNetlinkMessage::NewAddress(msg),
            flags,
            libc::EEXIST,
        )
    }
}

/// The index of link `name` in the caller's namespace, if it exists.
pub fn index_of(name: &str) -> Result<Option<u32>> {
    Netlink::open()?.index(name)
}

/// Makes the bridge `name` (if missing) with `gateway/prefix` on it, and brings it up.
pub fn ensure_bridge(name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<()> {
    let mut nl = Netlink::open()?;
    if nl.index(name)?.is_none() {
        let msg = LinkBridge::new(name).build();
        nl.call(
            &format!("creating bridge {name}"),
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            libc::EEXIST,
        )?;
    }
    let idx = nl
        .index(name)?
        .ok_or_else(|| NetError::Invalid(format!("bridge {name} vanished")))?;
    nl.add_address(idx, gateway, prefix, name)?;
    nl.set_up(idx, name)
}

/// Deletes link `name` (a veth takes its peer with it); a missing link is not an error.
pub fn delete(name: &str) -> Result<()> {
    let mut nl = Netlink::open()?;
    if let Some(idx) = nl.index(name)? {
        let msg = LinkUnspec::new_with_index(idx).build();
        nl.call(
            &format!("deleting {name}"),
            RouteNetlinkMessage::DelLink(msg),
            0,
            libc::ENODEV,
        )?;
    }
    Ok(())
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
    /// The pair's MTU (`None`: the kernel's 1500); an overlay's is VxLAN's 1450.
    pub mtu: Option<u32>,
}

/// Makes a veth pair in one request: `host` on `bridge` and up, its peer made directly
/// inside the namespace at `netns` as `ep.ifname` with its MAC (no move, no rename: each
/// of those would cost the kernel a network synchronization). Then, inside, the address,
/// the link and `lo` go up and the default route is added.
pub fn add_veth(host: &str, bridge: &str, netns: &Path, ep: &Endpoint) -> Result<()> {
    let ns = std::fs::File::open(netns).map_err(io_err(format!("opening {}", netns.display())))?;
    let mut nl = Netlink::open()?;
    let br = nl
        .index(bridge)?
        .ok_or_else(|| NetError::Invalid(format!("bridge {bridge} does not exist")))?;
    let mut peer = LinkUnspec::new_with_name(&ep.ifname)
        .address(ep.mac.to_vec())
        .setns_by_fd(ns.as_raw_fd());
    let mut msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(host.to_string())
        .controller(br)
        .up();
    if let Some(mtu) = ep.mtu {
        peer = peer.mtu(mtu);
        msg = msg.mtu(mtu);
    }
    let msg = msg.set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build()))).build();
    nl.call(
        &format!("creating veth {host}"),
        RouteNetlinkMessage::NewLink(msg),
        NLM_F_CREATE | NLM_F_EXCL,
        0,
    )?;
    drop(nl);
    crate::netns::run_in(netns, || {
        let mut nl = Netlink::open_here()?;
        let pi = nl
            .index(&ep.ifname)?
            .ok_or_else(|| NetError::Invalid(format!("{} is not in the namespace", ep.ifname)))?;
        nl.add_address(pi, ep.ip, ep.prefix, &ep.ifname)?;
        nl.set_up(pi, &ep.ifname)?;
        if let Some(lo) = nl.index("lo")? {
            nl.set_up(lo, "lo")?;
        }
        if let Some(gw) = ep.gateway {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gw)
                .output_interface(pi)
                .build();
            nl.call(
                &format!("adding the default route via {gw}"),
                RouteNetlinkMessage::NewRoute(route),
                NLM_F_CREATE | NLM_F_EXCL,
                0,
            )?;
        }
        Ok(())
    })
}

/// Brings up the loopback interface of network namespace `netns` (what CNI's `loopback`
/// plugin does for a runtime): a pod's containers talk to each other, and a port forward
/// reaches them, over it.
pub fn loopback_up(netns: &std::path::Path) -> Result<()> {
    crate::netns::run_in(netns, || {
        let mut nl = Netlink::open_here()?;
        if let Some(lo) = nl.index("lo")? {
            nl.set_up(lo, "lo")?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything below runs inside a network namespace of the test's own, removed after.
    #[test]
    fn links_addresses_and_routes_over_a_synchronous_socket() {
        berth_testutil::require_root!();
        let dir = berth_testutil::TempDir::new("netlink");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        crate::netns::create(&a).unwrap();
        crate::netns::create(&b).unwrap();
        let ns_b = b.clone();
        let out = crate::netns::run_in(&a, move || {
            assert!(index_of("lo")?.is_some());
            assert_eq!(index_of("btnl-nosuch")?, None);
            let gw = Ipv4Addr::new(10, 77, 0, 1);
            ensure_bridge("btnl0", gw, 24)?;
            ensure_bridge("btnl0", gw, 24)?; // again: nothing to do, no error
            assert!(index_of("btnl0")?.is_some());
            let ep = Endpoint {
                ifname: "eth0".into(),
                ip: Ipv4Addr::new(10, 77, 0, 2),
                prefix: 24,
                gateway: Some(gw),
                mac: [0x02, 0x42, 10, 77, 0, 2],
                mtu: None,
            };
            add_veth("btnl-v", "btnl0", &ns_b, &ep)?;
            assert!(index_of("btnl-v")?.is_some());
            // A second veth of the same name: the kernel's refusal, named.
            let again = add_veth("btnl-v", "btnl0", &ns_b, &ep).unwrap_err().to_string();
            assert!(again.contains("creating veth btnl-v"), "{again}");
            // Inside b: the peer, up, with its address and the default route (the kernel's
            // own tables for the calling thread's namespace).
            crate::netns::run_in(&ns_b, || {
                assert!(index_of("eth0")?.is_some());
                let net = |f: &str| std::fs::read_to_string(format!("/proc/thread-self/net/{f}")).unwrap();
                assert!(net("fib_trie").contains("10.77.0.2"), "{}", net("fib_trie"));
                let route = net("route");
                assert!(
                    route.lines().any(|l| l.starts_with("eth0\t00000000\t01004D0A")),
                    "{route}"
                );
                Ok(())
            })?;
            delete("btnl-v")?;
            delete("btnl-v")?; // gone: not an error
            assert_eq!(index_of("btnl-v")?, None);
            delete("btnl0")?;
            Ok(())
        });
        let inside = crate::netns::run_in(&b, || {
            let eth = index_of("eth0")?;
            Ok(eth)
        });
        crate::netns::remove(&a);
        crate::netns::remove(&b);
        out.unwrap();
        // The veth's deletion took its peer with it.
        assert_eq!(inside.unwrap(), None);
    }
}
