//! berth-runtime integration tests against the real kernel (root): cgroup managers on every
//! hierarchy this host has, the v2 device filter, and confined path resolution on a real tree.
//! Processes put into cgroups are spawned children, never the test harness itself.
// Integration tests are test code from top to bottom: the in-crate test lints do not apply.
#![allow(clippy::unwrap_used, clippy::tests_outside_test_module)]

mod cgroups;
