//! IPv4 subnets and address allocation. The gateway is the subnet's first host address;
//! containers get the lowest free address after it (Docker's sequential allocation).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::{NetError, Result};

/// An IPv4 subnet, `10.89.0.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    /// The network address (host bits zero).
    pub addr: Ipv4Addr,
    /// Prefix length, 8 to 30.
    pub prefix: u8,
}

impl Subnet {
    /// Parses `A.B.C.D/N`; host bits must be zero, and the prefix leave room for hosts.
    pub fn parse(s: &str) -> Result<Subnet> {
        let bad = |why: &str| NetError::Invalid(format!("invalid subnet {s:?}: {why}"));
        let (a, p) = s.split_once('/').ok_or_else(|| bad("expected ADDRESS/PREFIX"))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = p.parse().map_err(|_| bad("bad prefix length"))?;
        if !(8..=30).contains(&prefix) {
            return Err(bad("prefix length must be between 8 and 30"));
        }
        let n = Subnet { addr, prefix };
        if u32::from(addr) & !n.mask() != 0 {
            return Err(bad("host bits are set"));
        }
        Ok(n)
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    /// Whether `ip` is inside the subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    /// Whether two subnets share any address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// The broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// The first host address (the default gateway).
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + 1)
    }

    /// The lowest address that is neither the network, the broadcast, nor in `used`.
    pub fn allocate(&self, used: &BTreeSet<Ipv4Addr>, name: &str) -> Result<Ipv4Addr> {
        let (lo, hi) = (u32::from(self.addr) + 1, u32::from(self.broadcast()));
        (lo..hi)
            .map(Ipv4Addr::from)
            .find(|ip| !used.contains(ip))
            .ok_or_else(|| NetError::Exhausted(name.to_string()))
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A locally administered MAC address derived from an IPv4 address, as Docker does
/// (`02:42:` + the four address bytes).
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// `02:42:0a:59:00:02`.
pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_allocate() {
        let s = Subnet::parse("10.89.0.0/24").unwrap();
        assert_eq!(s.first_host(), Ipv4Addr::new(10, 89, 0, 1));
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 89, 0, 255));
        assert!(s.contains(Ipv4Addr::new(10, 89, 0, 77)));
        assert!(!s.contains(Ipv4Addr::new(10, 89, 1, 1)));
        let mut used = BTreeSet::from([s.first_host()]);
        assert_eq!(s.allocate(&used, "n").unwrap(), Ipv4Addr::new(10, 89, 0, 2));
        used.insert(Ipv4Addr::new(10, 89, 0, 2));
        used.insert(Ipv4Addr::new(10, 89, 0, 4));
        assert_eq!(s.allocate(&used, "n").unwrap(), Ipv4Addr::new(10, 89, 0, 3));
        let tiny = Subnet::parse("10.1.1.0/30").unwrap();
        let full = BTreeSet::from([Ipv4Addr::new(10, 1, 1, 1), Ipv4Addr::new(10, 1, 1, 2)]);
        assert!(matches!(tiny.allocate(&full, "t"), Err(NetError::Exhausted(_))));
        for bad in ["10.89.0.1/24", "10.89.0.0", "10.89.0.0/31", "x/24", "10.89.0.0/abc"] {
            Subnet::parse(bad).unwrap_err();
        }
        assert!(s.overlaps(&Subnet::parse("10.89.0.128/25").unwrap()));
        assert!(!s.overlaps(&Subnet::parse("10.90.0.0/16").unwrap()));
        assert_eq!(mac_string(&mac_for(Ipv4Addr::new(10, 89, 0, 2))), "02:42:0a:59:00:02");
    }
}
