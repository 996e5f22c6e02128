//! berth-oci: the thin vocabulary every berth crate shares.
//!
//! It holds container ids, digests, image references and platforms, the error kinds that every public error maps
//! to (after containerd's `errdefs`), and re-exports the `oci-spec` types. It must stay a leaf:
//! no I/O, no dependency on any other berth crate.
#![warn(missing_docs)]
#![deny(unsafe_code)]

mod digest;
mod id;
mod kind;
mod platform;
mod reference;
pub mod time;
pub mod units;

pub use digest::{to_hex, Algo, Digest, DigestError};
pub use id::{ContainerId, IdError};
pub use kind::ErrorKind;
pub use oci_spec;
pub use platform::Platform;
pub use reference::{Reference, ReferenceError, DEFAULT_DOMAIN};
