//! berth-oci: the thin vocabulary every berth crate shares.
//!
//! It holds container ids and their validation, the error kinds that every public error maps
//! to (after containerd's `errdefs`), and re-exports the `oci-spec` types. It must stay a leaf:
//! no I/O, no dependency on any other berth crate.
#![warn(missing_docs)]
#![deny(unsafe_code)]

mod id;
mod kind;

pub use id::{ContainerId, IdError};
pub use kind::ErrorKind;
pub use oci_spec;
