//! berth-net integration tests against the real kernel (root): CNI with Debian's plugins,
//! and the overlay's VxLAN data path between two namespace hosts. One test binary, so the
//! crate and its dependencies are linked once.
// Integration tests are test code from top to bottom: the in-crate test lints do not apply.
#![allow(clippy::unwrap_used, clippy::tests_outside_test_module)]

mod cni;
mod vxlan;
