//! berth-net: container networking without a daemon. A bridge per network with the gateway
//! address on it; per container a persistent network namespace (a bind-mounted nsfs file,
//! so it outlives any process and can be shared by `--network container:X`), a veth pair
//! into the bridge, an address from the network's subnet, a default route; outbound NAT,
//! published ports and isolation between networks in berth's own nftables table.
//!
//! - [`cni`]: CNI configuration lists and their plugins (ADD, CHECK, DEL, cached results);
//! - [`ipam`]: IPv4 subnets and address allocation (the leases themselves are stored by
//!   the engine, in its database);
//! - [`netns`]: persistent network namespaces, and running code inside one;
//! - [`link`]: bridges, veth pairs, addresses and routes over rtnetlink;
//! - [`nft`]: the nftables rules, through `nft`'s command language.
//!
//! Nothing here depends on the engine or the runtime: the engine joins them.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod cni;
pub mod ipam;
pub mod link;
pub mod netns;
pub mod nft;
pub mod vxlan;

/// Everything that can go wrong in networking.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Bad input (a subnet, an address, a port spec).
    #[error("{0}")]
    Invalid(String),
    /// The subnet has no free address left.
    #[error("no available IPv4 addresses on network {0}")]
    Exhausted(String),
    /// A netlink request failed.
    #[error("netlink: {op}: {message}")]
    Netlink {
        /// What was being done.
        op: String,
        /// The kernel's answer.
        message: String,
    },
    /// `nft` failed.
    #[error("nftables: {0}")]
    Nft(String),
    /// A system call or file operation.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, NetError>;

pub(crate) fn io_err(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetError {
    let op = op.into();
    move |source| NetError::Io { op, source }
}
