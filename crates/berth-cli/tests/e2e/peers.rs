//! The real peers drive berth as their runtime: dockerd (`--add-runtime`) and podman
//! (`--runtime`). Each test starts its own daemon or store under a unique prefix and removes
//! it afterwards.

pub mod dockerd;
pub mod podman;
