//! berth's nftables table: one `ip` table (per data root) holding every rule berth needs,
//! as fixed chains over sets and maps, so adding or removing a network or a published port
//! is adding or deleting a set element: no rule handles to track, and no rule of anyone
//! else's is ever touched. Driven through `nft -f -`, each call one atomic transaction.
//!
//! - `nets`: subnets whose traffic leaving for elsewhere is masqueraded;
//! - `ports_any` / `ports_ip`: published ports, `proto . port` (any host address) or
//!   `address . proto . port`, mapped to `container address . port`; applied to traffic
//!   arriving for a local address and to the host's own (loopback included);
//! - `cross`: pairs of bridges that must not forward to each other (network isolation);
//! - `internal`: bridges of `--internal` networks, which forward nowhere else.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use crate::ipam::Subnet;
use crate::{io_err, NetError, Result};

/// The table's definition.
fn definition(table: &str) -> String {
    format!(
        r#"table ip {table} {{
  map ports_any {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
  map ports_ip {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}
  set nets {{ type ipv4_addr; flags interval; }}
  set cross {{ type ifname . ifname; }}
  set internal {{ type ifname; }}
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @ports_ip
    fib daddr type local dnat ip to meta l4proto . th dport map @ports_any
  }}
  chain output {{
    type nat hook output priority -100; policy accept;
    fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @ports_ip
    fib daddr type local dnat ip to meta l4proto . th dport map @ports_any
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr @nets ip daddr != @nets masquerade
    ip saddr 127.0.0.0/8 ct status dnat masquerade
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname . oifname @cross drop
    iifname @internal oifname != @internal drop
  }}
}}
"#
    )
}

/// Runs an nft script in the home namespace (see `netns::set_home`): a child spawned from
/// a thread inherits that thread's namespace.
fn run(script: &str) -> Result<()> {
    crate::netns::in_home(|| run_here(script))
}

fn run_here(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_err("running nft"))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(script.as_bytes()).map_err(io_err("writing to nft"))?;
    }
    let out = child.wait_with_output().map_err(io_err("waiting for nft"))?;
    if !out.status.success() {
        return Err(NetError::Nft(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(())
}

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A published port: host side to container side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMap {
    /// The host address it is published on (`None`: every address).
    pub host_ip: Option<Ipv4Addr>,
    /// The host port.
    pub host_port: u16,
    /// The protocol.
    pub proto: Proto,
    /// The container's address.
    pub ip: Ipv4Addr,
    /// The container port.
    pub port: u16,
}

impl PortMap {
    fn element(&self, with_value: bool) -> (String, String) {
        let key = match self.host_ip {
            Some(h) => format!("{h} . {} . {}", self.proto.as_str(), self.host_port),
            None => format!("{} . {}", self.proto.as_str(), self.host_port),
        };
        let map = if self.host_ip.is_some() {
            "ports_ip"
        } else {
            "ports_any"
        };
        let el = if with_value {
            format!("{key} : {} . {}", self.ip, self.port)
        } else {
            key
        };
        (map.to_string(), el)
    }
}

/// berth's table `name` (in the `ip` family).
#[derive(Debug, Clone)]
pub struct Table {
    /// The table's name.
    pub name: String,
}

impl Table {
    /// The table called `name`.
    pub fn new(name: &str) -> Table {
        Table { name: name.to_string() }
    }

    /// Whether the table exists.
    pub fn exists(&self) -> bool {
        crate::netns::in_home(|| {
            Ok(Command::new("nft")
                .args(["list", "table", "ip", &self.name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()))
        })
        .unwrap_or(false)
    }

    /// A batch of changes to this table, applied in one `nft` run (one transaction).
    pub fn batch(&self) -> Batch {
        Batch {
            table: self.name.clone(),
            script: String::new(),
        }
    }
}

/// Changes to berth's table, applied together by [`Batch::apply`]. Each `nft` run costs
/// milliseconds, so callers gather what one operation needs into one batch.
#[derive(Debug, Clone)]
pub struct Batch {
    table: String,
    script: String,
}

impl Batch {
    fn element(&mut self, op: &str, set: &str, el: &str) -> &mut Batch {
        self.script
            .push_str(&format!("{op} element ip {} {set} {{ {el} }}\n", self.table));
        self
    }

    /// Creates the table first (for a table that does not exist yet).
    pub fn create_table(&mut self) -> &mut Batch {
        self.script.insert_str(0, &definition(&self.table));
        self
    }

    /// Deletes the whole table.
    pub fn delete_table(&mut self) -> &mut Batch {
        self.script.push_str(&format!("delete table ip {}\n", self.table));
        self
    }

    /// Masquerades traffic from `subnet` leaving for other networks.
    pub fn add_subnet(&mut self, subnet: &Subnet) -> &mut Batch {
        self.element("add", "nets", &subnet.to_string())
    }

    /// Undoes [`Batch::add_subnet`].
    pub fn remove_subnet(&mut self, subnet: &Subnet) -> &mut Batch {
        self.element("delete", "nets", &subnet.to_string())
    }

    /// Publishes a port.
    pub fn add_port(&mut self, p: &PortMap) -> &mut Batch {
        let (map, el) = p.element(true);
        self.element("add", &map, &el)
    }

    /// Unpublishes a port.
    pub fn remove_port(&mut self, p: &PortMap) -> &mut Batch {
        let (map, el) = p.element(false);
        self.element("delete", &map, &el)
    }

    /// Forbids forwarding between two bridges, both ways.
    pub fn isolate(&mut self, a: &str, b: &str) -> &mut Batch {
        self.element("add", "cross", &format!("\"{a}\" . \"{b}\", \"{b}\" . \"{a}\""))
    }

    /// Undoes [`Batch::isolate`].
    pub fn unisolate(&mut self, a: &str, b: &str) -> &mut Batch {
        self.element("delete", "cross", &format!("\"{a}\" . \"{b}\", \"{b}\" . \"{a}\""))
    }

    /// Marks a bridge internal (no forwarding out of it), or not.
    pub fn set_internal(&mut self, bridge: &str, on: bool) -> &mut Batch {
        self.element(if on { "add" } else { "delete" }, "internal", &format!("\"{bridge}\""))
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.script.is_empty()
    }

    /// Applies the batch: all of it, or (on error) none of it.
    pub fn apply(&self) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        run(&self.script)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_name_the_right_map() {
        let mut p = PortMap {
            host_ip: None,
            host_port: 8080,
            proto: Proto::Tcp,
            ip: Ipv4Addr::new(10, 89, 0, 2),
            port: 80,
        };
        assert_eq!(
            p.element(true),
            ("ports_any".into(), "tcp . 8080 : 10.89.0.2 . 80".into())
        );
        p.host_ip = Some(Ipv4Addr::LOCALHOST);
        p.proto = Proto::Udp;
        assert_eq!(p.element(false), ("ports_ip".into(), "127.0.0.1 . udp . 8080".into()));
        assert!(definition("t").starts_with("table ip t {"));
        let t = Table::new("t");
        let mut b = t.batch();
        assert!(b.is_empty());
        b.add_port(&p).create_table();
        assert!(b.script.starts_with("table ip t {"));
        assert!(b
            .script
            .ends_with("add element ip t ports_ip { 127.0.0.1 . udp . 8080 : 10.89.0.2 . 80 }\n"));
    }
}
