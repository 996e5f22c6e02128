//! berth-image: images on disk and on the wire.
//!
//! - [`content`]: blobs by digest, written atomically and verified;
//! - [`db`]: the metadata database (SQLite, WAL): images, tags, repo digests, snapshots;
//! - [`unpack`]: layer tars extracted entry by entry, confined to the snapshot;
//! - [`snapshot`]: one unpacked directory per chain id, overlayfs stacks over them;
//! - [`diff`]: an overlay upper directory back into a layer tar;
//! - [`registry`], [`pull`], [`push`]: the OCI distribution protocol;
//! - [`archive`]: `save`, `load` and `import`;
//! - [`store`]: the [`store::ImageStore`] that ties them together.
#![warn(missing_docs)]

pub mod archive;
pub mod auth;
pub mod content;
pub mod db;
pub mod diff;
mod error;
pub mod hosts;
pub mod model;
pub mod perms;
pub mod pull;
pub mod push;
pub mod registry;
pub mod snapshot;
pub mod store;
pub mod tree;
pub mod unpack;

pub use error::{ImageError, Result};
