//! berth-runtime: the OCI runtime. It turns a bundle (a rootfs and `config.json`, runtime-spec
//! v1.2) into an isolated process: namespaces, a pivot_root'ed rootfs with its mounts and
//! devices, cgroups v1 or v2, rlimits, capabilities, no_new_privs, seccomp and hooks; then
//! runs the runc-compatible lifecycle over it (create, start, state, kill, delete, exec,
//! pause, resume, update, ps, events).
//!
//! It knows nothing of images, networks or the engine; it takes a bundle. It starts no
//! threads and no async runtime: it forks, and forking is only sound single-threaded.
#![warn(missing_docs)]

pub mod cgroups;
pub mod container;
pub mod features;
pub mod hooks;
pub mod idmap;
mod init;
pub mod minit;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub use berth_safepath as safepath;
pub mod seal;
pub mod seccomp;
pub mod shed;
pub mod spec;
pub mod specgen;
pub mod state;
pub mod supervise;
pub mod sync;
mod sys;
pub use sys::SysError;
pub mod tty;
pub use sys::{kill, reserve_fds};

pub use container::{parse_signal, ContainerError, CreateOpts, Created, ExecOpts, Runtime};
pub use state::{Status, DEFAULT_ROOT};
