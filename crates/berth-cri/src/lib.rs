//! CRI
