//! berth-engine integration tests against a real etcd and the real kernel (root): the
//! cluster store (racing allocations, leases, watches) and overlay endpoints kept in step
//! between two namespace hosts. One test binary, so the crate and its dependencies are
//! linked once.
// Integration tests are test code from top to bottom: the in-crate test lints do not apply.
#![allow(clippy::unwrap_used, clippy::tests_outside_test_module)]

mod cluster;
mod overlay;
