//! The embedded DNS of user-defined networks, Docker's 127.0.0.11 model without a daemon:
//! each container's monitor holds a UDP socket bound to 127.0.0.11:53 inside the
//! container's network namespace (made there, used from the host). Questions for the name,
//! short id or aliases of a container on the same network are answered from `berth.db`;
//! everything else is relayed to the resolvers the container would otherwise have used,
//! from the host's side (so a host resolver on 127.0.0.53 still works). Messages are parsed
//! and built with `hickory-proto`; the monitor stays single-threaded and polls the sockets
//! in its loop, never blocking on a resolver.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{rdata, RData, Record, RecordType};

/// The resolver address inside the container.
pub const ADDRESS: &str = "127.0.0.11:53";

/// A question relayed upstream and not yet answered.
#[derive(Debug)]
struct Pending {
    upstream: UdpSocket,
    client: SocketAddr,
    deadline: Instant,
}

/// One container's resolver.
#[derive(Debug)]
pub struct Resolver {
    socket: UdpSocket,
    container: String,
    upstream: Vec<SocketAddr>,
    pending: Vec<Pending>,
}

impl Resolver {
    /// A resolver answering on `socket` for container `container` (names on any of its
    /// networks), relaying to `upstream`.
    pub fn new(socket: UdpSocket, container: &str, upstream: &[String]) -> Resolver {
        let _ = socket.set_nonblocking(true);
        Resolver {
            socket,
            container: container.to_string(),
            upstream: upstream
                .iter()
                .filter_map(|s| s.parse::<std::net::IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
                .collect(),
            pending: Vec::new(),
        }
    }

    /// The descriptors to poll for reading.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut v = vec![self.socket.as_fd()];
        v.extend(self.pending.iter().map(|p| p.upstream.as_fd()));
        v
    }

    /// How long until the oldest relayed question expires.
    pub fn wait(&self) -> Option<Duration> {
        self.pending
            .iter()
            .map(|p| p.deadline.saturating_duration_since(Instant::now()))
            .min()
    }

    /// Answers what arrived; relays answers that came back; drops expired relays.
    pub fn service(&mut self, root: &Path) {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = self.socket.recv_from(&mut buf) {
            self.question(root, &buf[..n], from);
        }
        let mut i = 0;
        while i < self.pending.len() {
            let p = &self.pending[i];
            if let Ok(n) = p.upstream.recv(&mut buf) {
                let _ = self.socket.send_to(&buf[..n], p.client);
                self.pending.swap_remove(i);
            } else if Instant::now() > p.deadline {
                self.pending.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    fn question(&mut self, root: &Path, raw: &[u8], from: SocketAddr) {
        let Ok(msg) = Message::from_vec(raw) else { return };
        let Some(q) = msg.queries().first().cloned() else {
            return;
        };
        let name = q.name().to_utf8();
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(ip) = lookup(root, &self.container, &name) {
            let mut r = Message::new();
            r.set_id(msg.id())
                .set_message_type(MessageType::Response)
                .set_op_code(msg.op_code())
                .set_recursion_desired(msg.recursion_desired())
                .set_recursion_available(true)
                .set_authoritative(true)
                .add_query(q.clone());
            if q.query_type() == RecordType::A {
                r.add_answer(Record::from_rdata(q.name().clone(), 600, RData::A(rdata::A(ip))));
            }
            if let Ok(bytes) = r.to_vec() {
                let _ = self.socket.send_to(&bytes, from);
            }
            return;
        }
        // A single-label name no container here has cannot be anyone else's either: no such
        // name, at once (the client's search domains make dotted names of it, which go up).
        let upstream = self.upstream.first().copied().filter(|_| name.contains('.'));
        let Some(up) = upstream else {
            let mut r = Message::new();
            r.set_id(msg.id())
                .set_message_type(MessageType::Response)
                .set_recursion_desired(msg.recursion_desired())
                .set_recursion_available(true)
                .set_response_code(if name.contains('.') {
                    ResponseCode::ServFail
                } else {
                    ResponseCode::NXDomain
                })
                .add_query(q);
            if let Ok(bytes) = r.to_vec() {
                let _ = self.socket.send_to(&bytes, from);
            }
            return;
        };
        let bind: SocketAddr = if up.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        if let Ok(s) = UdpSocket::bind(bind) {
            let _ = s.set_nonblocking(true);
            if s.send_to(raw, up).is_ok() && self.pending.len() < 256 {
                self.pending.push(Pending {
                    upstream: s,
                    client: from,
                    deadline: Instant::now() + Duration::from_secs(5),
                });
            }
        }
    }
}

/// The networks a container is on now: its first one and those connected later.
fn networks_of(engine: &crate::store::Engine, id: &str) -> Vec<(String, String, Vec<String>)> {
    let mut v = Vec::new();
    let st = engine.state(id);
    if let Some(a) = st.net {
        v.push((a.network_id, a.ip, Vec::new()));
    }
    for c in crate::networks::connections(engine, id) {
        if let Some(a) = c.attachment {
            v.push((a.network_id, a.ip, c.aliases));
        }
    }
    v
}

/// The address of the running container called `name` (its name, short or full id,
/// hostname or a network alias) on a network it shares with container `me`.
fn lookup(root: &Path, me: &str, name: &str) -> Option<Ipv4Addr> {
    let engine = crate::store::Engine::open(root).ok()?;
    // Docker's default bridge has no name resolution: only user networks count.
    let default = crate::networks::get(&engine, crate::networks::DEFAULT)
        .ok()
        .map(|n| n.id);
    let mine: Vec<String> = networks_of(&engine, me)
        .into_iter()
        .map(|n| n.0)
        .filter(|n| Some(n) != default.as_ref())
        .collect();
    for r in engine.all().ok()? {
        let named = r.name.eq_ignore_ascii_case(name)
            || (name.len() >= 12 && r.id.starts_with(name))
            || r.hostname.eq_ignore_ascii_case(name);
        if !engine.state(&r.id).running() {
            continue;
        }
        for (i, (net, ip, aliases)) in networks_of(&engine, &r.id).into_iter().enumerate() {
            // The creation-time aliases belong to the first network.
            let alias = if i == 0 { &r.aliases } else { &aliases };
            let hit = named || alias.iter().any(|a| a.eq_ignore_ascii_case(name));
            if hit && mine.contains(&net) {
                return ip.parse().ok();
            }
        }
    }
    // Containers on other hosts of an overlay network this one is on: the endpoints this
    // host last synced (kept while the cluster store is away).
    for net in &mine {
        let Ok(n) = crate::networks::get(&engine, net) else {
            continue;
        };
        if n.driver != crate::networks::overlay::DRIVER {
            continue;
        }
        let Ok(raw) = std::fs::read(crate::networks::overlay::mirror_path(&engine, &n)) else {
            continue;
        };
        let eps: Vec<crate::overlay::Endpoint> = serde_json::from_slice(&raw).unwrap_or_default();
        let found = eps.iter().find(|e| {
            e.names.iter().any(|x| x.eq_ignore_ascii_case(name)) || (name.len() >= 12 && e.container.starts_with(name))
        });
        if let Some(e) = found {
            return Some(e.ip);
        }
    }
    None
}
